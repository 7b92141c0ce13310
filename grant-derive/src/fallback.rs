//! Placeholder impls emitted beside compile errors.
//!
//! When the derive reports an error, it still generates the `Model` (and, when the key's type is
//! known, `Sharded`) impls and the inherent items, with `unreachable!()` bodies and no bounds.
//! Code that uses the model (`User::ID`, `User::find(..)`, `Query<User>`) then compiles against
//! them, and the user sees the derive's errors instead of dozens of follow-on ones.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::Derive;
use crate::ast::{Input, is_option, unraw};
use crate::expand::{Bodies, ColumnConst, Inherent, ShardFor, inherent_impl, private};
use crate::names::{screaming_snake_case, snake_case};

/// The placeholder impls for `input` (nothing for a generic item: its impls cannot be guessed).
pub(crate) fn expand(input: &DeriveInput, parsed: Option<&Input<'_>>, kind: Derive) -> TokenStream {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return TokenStream::new();
    }
    let p = private();
    let ident = &input.ident;
    let name = unraw(ident);
    let fields = parsed.map_or(&[][..], |parsed| parsed.fields.as_slice());
    let table = parsed
        .and_then(|parsed| parsed.attrs.table.get())
        .map_or_else(|| snake_case(&name), LitStr::value);

    let pk_types: Vec<_> = fields
        .iter()
        .filter(|f| f.attrs.primary_key.is_some())
        .map(|f| f.ty)
        .collect();
    let pk_type = match pk_types.as_slice() {
        [only] => quote!(#only),
        many => quote!((#(#many,)*)),
    };

    // The shard key's type, when `on` names fields that are not `Option`s: the field's type, or
    // a tuple of them for a composite key.
    let key_types: Option<Vec<&syn::Type>> = parsed
        .and_then(|parsed| parsed.attrs.shard.as_ref())
        .and_then(|shard| shard.on.get())
        .and_then(|on| {
            on.fields
                .iter()
                .map(|lit| {
                    let on = lit.value();
                    let on = on.strip_prefix("r#").unwrap_or(&on).to_owned();
                    fields
                        .iter()
                        .find(|f| f.name() == on)
                        .map(|f| f.ty)
                        .filter(|ty| !is_option(ty))
                })
                .collect()
        });
    let key_ty = key_types.map(|types| match types.as_slice() {
        [only] => quote!(#only),
        many => quote!((#(#many,)*)),
    });

    let sharded_impl = match (kind, &key_ty) {
        (Derive::Sharded, Some(key_ty)) => quote! {
            #[automatically_derived]
            #[allow(unused_qualifications, unused_variables)]
            impl #p::Sharded for #ident {
                type ShardKey = #key_ty;
                type ShardKeyRef<'__grant_key> = &'__grant_key #key_ty;
                fn shard_key(&self) -> Self::ShardKeyRef<'_> {
                    ::core::unreachable!()
                }
                fn shard_for(key: &Self::ShardKey) -> #p::ShardId {
                    ::core::unreachable!()
                }
            }
        },
        _ => TokenStream::new(),
    };
    let shard_for = match (kind, key_ty) {
        (Derive::Model, _) => ShardFor::Absent,
        (Derive::Sharded, Some(ty)) => ShardFor::Typed {
            ty,
            route: TokenStream::new(),
            try_route: None,
            bounds: Vec::new(),
        },
        (Derive::Sharded, None) => ShardFor::Any,
    };

    // Column constants, skipping clashing names (already reported).
    let mut seen = HashSet::new();
    let columns: Vec<ColumnConst<'_>> = fields
        .iter()
        .enumerate()
        .filter_map(|(index, f)| {
            let field = f.name();
            let constant = f
                .attrs
                .constant
                .get()
                .map_or_else(|| screaming_snake_case(&field), LitStr::value);
            if !seen.insert(constant.clone()) {
                return None;
            }
            Some(ColumnConst {
                constant: syn::Ident::new(&constant, f.ident.span()),
                ty: f.ty,
                name: f.attrs.column.get().map_or(field, LitStr::value),
                index,
                key: f.attrs.primary_key.is_some(),
            })
        })
        .collect();
    let inherent = inherent_impl(&Inherent {
        ident,
        vis: &input.vis,
        table: &table,
        columns: &columns,
        shard_for,
        bodies: Bodies::Placeholder,
        reference: false,
        methods: parsed.map_or(&[][..], |parsed| parsed.attrs.methods.as_slice()),
    });

    quote! {
        const _: () = {
            #[automatically_derived]
            #[allow(unused_qualifications, unused_variables)]
            impl #p::Model for #ident {
                type PrimaryKey = #pk_type;
                const META: &'static #p::ModelMeta = &#p::ModelMeta {
                    name: #name,
                    table: #table,
                    columns: &[],
                    primary_key: &[],
                    shard_key: ::core::option::Option::None,
                    shard_key_columns: &[],
                };
                fn primary_key(&self) -> Self::PrimaryKey {
                    ::core::unreachable!()
                }
                fn primary_key_values(
                    key: &Self::PrimaryKey,
                ) -> ::std::vec::Vec<#p::sea_query::Value> {
                    ::core::unreachable!()
                }
                fn values(&self) -> ::std::vec::Vec<#p::sea_query::Value> {
                    ::core::unreachable!()
                }
                fn value(&self, column: usize) -> #p::sea_query::Value {
                    ::core::unreachable!()
                }
                fn shards() -> &'static [#p::ShardId] {
                    ::core::unreachable!()
                }
                fn shard_of_key(key: &Self::PrimaryKey) -> #p::ShardId {
                    ::core::unreachable!()
                }
                fn shard_of(&self) -> #p::ShardId {
                    ::core::unreachable!()
                }
                fn shard_for_value(
                    value: &#p::sea_query::Value,
                ) -> #p::Result<#p::ShardId> {
                    ::core::unreachable!()
                }
            }

            #sharded_impl

            #[automatically_derived]
            #[allow(unused_qualifications, unused_variables)]
            impl<__DB: #p::Backend> #p::FromShardRow<__DB> for #ident {
                fn from_row(
                    row: &<__DB as #p::sqlx::Database>::Row,
                ) -> ::core::result::Result<Self, #p::sqlx::Error> {
                    ::core::unreachable!()
                }
            }

            #inherent
        };
    }
}
