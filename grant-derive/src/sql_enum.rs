//! `#[derive(SqlEnum)]`: a fieldless enum stored as the text of its variant's name.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

/// Expands the derive, or returns every mistake as a compile error at its token.
pub(crate) fn expand(input: DeriveInput) -> TokenStream {
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut krate: syn::Path = syn::parse_quote!(::grant);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("grant")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse()?;
                Ok(())
            } else {
                Err(meta.error(
                    "unknown attribute of `#[derive(SqlEnum)]`: the enum takes \
                     `#[grant(crate = \"..\")]`, its variants `#[grant(rename = \"..\")]`",
                ))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let Data::Enum(data) = &input.data else {
        return syn::Error::new(
            Span::call_site(),
            "`#[derive(SqlEnum)]` is for fieldless enums (stored as the variant's name); for a \
             struct use `#[derive(Sharded)]` or `#[derive(Model)]`",
        )
        .to_compile_error();
    };
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "`#[derive(SqlEnum)]` takes an enum without generic parameters",
        ));
    }
    if data.variants.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.ident,
            "`#[derive(SqlEnum)]` needs at least one variant: a column of an empty enum could \
             hold nothing",
        ));
    }
    let mut names: Vec<(syn::Ident, String, Span)> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.push(syn::Error::new_spanned(
                &variant.fields,
                format!(
                    "variant `{}` has fields; `#[derive(SqlEnum)]` stores only the variant's \
                     name, so every variant must be fieldless (use a `Json<_>` column for data)",
                    variant.ident
                ),
            ));
        }
        let mut name = variant.ident.to_string();
        let mut span = variant.ident.span();
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("grant")) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        return Err(syn::Error::new_spanned(
                            &lit,
                            "a variant's stored name cannot be empty",
                        ));
                    }
                    name = lit.value();
                    span = lit.span();
                    Ok(())
                } else {
                    Err(meta.error(
                        "unknown attribute of a `#[derive(SqlEnum)]` variant: it takes \
                         `#[grant(rename = \"..\")]`",
                    ))
                }
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if let Some((other, _, _)) = names.iter().find(|(_, n, _)| *n == name) {
            errors.push(syn::Error::new(
                span,
                format!(
                    "variants `{other}` and `{}` are both stored as \"{name}\"; rename one \
                     (`#[grant(rename = \"..\")]`)",
                    variant.ident
                ),
            ));
        }
        names.push((variant.ident.clone(), name, span));
    }
    if !errors.is_empty() {
        return errors.into_iter().map(|e| e.to_compile_error()).collect();
    }

    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let idents: Vec<_> = names.iter().map(|(i, _, _)| i).collect();
    let texts: Vec<_> = names.iter().map(|(_, n, _)| n).collect();
    let list = texts
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let enum_name = ident.to_string();
    quote! {
        #[automatically_derived]
        impl #ident {
            /// The text this variant is stored as.
            pub const fn as_sql_str(&self) -> &'static str {
                match self {
                    #(Self::#idents => #texts,)*
                }
            }
        }

        #[automatically_derived]
        impl #p::SqlType for #ident {
            const KIND: #p::ValueKind = #p::ValueKind::String;
            fn column_type() -> #p::sea_query::ColumnType {
                #p::sea_query::ColumnType::Text
            }
        }

        #[automatically_derived]
        impl #p::Orderable for #ident {}

        #[automatically_derived]
        impl #p::FromValue for #ident {
            fn from_value(value: #p::sea_query::Value) -> #p::Result<Self> {
                match value {
                    #p::sea_query::Value::String(::core::option::Option::Some(text)) => {
                        match text.as_str() {
                            #(#texts => ::core::result::Result::Ok(Self::#idents),)*
                            other => ::core::result::Result::Err(#p::Error::Unsupported {
                                model: #enum_name,
                                reason: ::std::format!(
                                    "the column holds {:?}, which is not a variant of `{}` \
                                     (stored as one of {}); add the variant or fix the row",
                                    other, #enum_name, #list
                                ),
                            }),
                        }
                    }
                    other => ::core::result::Result::Err(#p::Error::Unsupported {
                        model: #enum_name,
                        reason: ::std::format!(
                            "cannot read {:?} as `{}` (a text column); use Option<{}> for a \
                             nullable column",
                            other, #enum_name, #enum_name
                        ),
                    }),
                }
            }
        }

        #[automatically_derived]
        impl ::core::convert::From<#ident> for #p::sea_query::Value {
            fn from(value: #ident) -> Self {
                #p::sea_query::Value::String(::core::option::Option::Some(
                    ::std::string::String::from(value.as_sql_str()),
                ))
            }
        }

        #[automatically_derived]
        impl #p::sea_query::Nullable for #ident {
            fn null() -> #p::sea_query::Value {
                #p::sea_query::Value::String(::core::option::Option::None)
            }
        }
    }
}
