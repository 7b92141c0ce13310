//! The derive input as Grant sees it: a struct with named fields and their attributes, borrowing
//! from the syn tree so every part keeps its span.

use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::Derive;
use crate::attr::{self, Container, Errors, FieldAttrs};

/// A struct with named fields.
pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: Container<'a>,
    pub(crate) fields: Vec<Field<'a>>,
}

/// One named field.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) attrs: FieldAttrs,
}

impl<'a> Input<'a> {
    /// Reads the struct; `None` (with the error recorded) when the item is not a struct with
    /// named fields. Attribute errors are recorded and parsing goes on.
    pub(crate) fn from_syn(
        input: &'a DeriveInput,
        kind: Derive,
        errors: &mut Errors,
    ) -> Option<Self> {
        let derive = kind.as_written();
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(unnamed) => {
                    errors.spanned(
                        unnamed,
                        format!(
                            "`{derive}` needs a struct with named fields, one per column; tuple \
                             structs are not supported"
                        ),
                    );
                    return None;
                }
                Fields::Unit => {
                    errors.spanned(
                        &input.ident,
                        format!(
                            "`{derive}` needs a struct with named fields, one per column; \
                             `{}` has none",
                            input.ident
                        ),
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                errors.spanned(
                    data.enum_token,
                    format!("`{derive}` only supports structs with named fields, not enums"),
                );
                return None;
            }
            Data::Union(data) => {
                errors.spanned(
                    data.union_token,
                    format!("`{derive}` only supports structs with named fields, not unions"),
                );
                return None;
            }
        };
        if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
            errors.spanned(
                &input.generics,
                format!(
                    "`{derive}` does not support generic parameters; a model is a concrete row type"
                ),
            );
        }
        let attrs = attr::container(&input.attrs, kind, errors);
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                let attrs = attr::field(&field.attrs, errors);
                field.ident.as_ref().map(|ident| Field {
                    ident,
                    ty: &field.ty,
                    attrs,
                })
            })
            .collect();
        Some(Input {
            ident: &input.ident,
            vis: &input.vis,
            attrs,
            fields,
        })
    }
}

impl Field<'_> {
    /// The field name without `r#`.
    pub(crate) fn name(&self) -> String {
        unraw(self.ident)
    }
}

/// An identifier's name without `r#`.
pub(crate) fn unraw(ident: &Ident) -> String {
    syn::ext::IdentExt::unraw(ident).to_string()
}

/// Whether `ty` is syntactically an `Option<_>` (the last path segment is `Option`). A type alias
/// of an `Option` is caught by the `ShardKey` bound instead.
pub(crate) fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Option"),
        Type::Group(group) => is_option(&group.elem),
        Type::Paren(paren) => is_option(&paren.elem),
        _ => false,
    }
}
