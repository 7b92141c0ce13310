//! Code generation for a checked model.
//!
//! Generated code names everything by absolute path (`::grant::__private::...`, `::core`,
//! `::std`) and lives inside `const _: () = { ... };`. Bounds that must hold for a field's type
//! are where-clauses spanned at that type, so the compiler points at the field.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Index, Type, Visibility};

use crate::attr::Strategy;
use crate::valid::{Model, Placement};

/// `::grant::__private`, the only path generated code uses besides `::core` and `::std`.
pub(crate) fn private() -> TokenStream {
    quote!(::grant::__private)
}

/// `::grant::__private` spanned at `span`, for bounds the compiler should report there.
fn private_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::grant::__private)
}

/// A where-clause predicate that holds exactly when the model's own impls hold, without being
/// checked where it is written: `for<'w> Self: Trait`. A bound without generic parameters is
/// checked at its definition ("trivial bound", rust-lang/rust#48214); this form is checked only
/// where it is used. Impls that depend on the `Model` impl carry it, so a field whose type breaks
/// a bound of the `Model` impl gives one error at that field, not one per generated item.
fn deferred(bound: TokenStream) -> TokenStream {
    quote!(for<'__grant> #bound)
}

/// The expansion of a checked model.
pub(crate) fn expand(model: &Model<'_>) -> TokenStream {
    let model_impl = model_impl(model);
    let sharded_impl = sharded_impl(model);
    let row_impl = from_row_impl(model);
    let columns: Vec<ColumnConst<'_>> = model
        .columns
        .iter()
        .enumerate()
        .map(|(index, c)| ColumnConst {
            constant: c.constant.clone(),
            ty: c.ty,
            name: c.name.clone(),
            index,
        })
        .collect();
    let shard_for = match &model.placement {
        Placement::Sharded { key, .. } => {
            model
                .columns
                .get(*key)
                .map_or(ShardFor::Absent, |c| ShardFor::Typed {
                    ty: c.ty,
                    route: route(model, &quote!(key)),
                })
        }
        Placement::Single { .. } => ShardFor::Absent,
    };
    let inherent = inherent_impl(&Inherent {
        ident: model.ident,
        vis: model.vis,
        table: &model.table,
        columns: &columns,
        shard_for,
        bodies: Bodies::Real,
    });
    quote! {
        const _: () = {
            #model_impl
            #sharded_impl
            #row_impl
            #inherent
        };
    }
}

/// The shard of the key `key` (an expression of type `&ShardKey`) under the model's strategy.
///
/// Generated at every place that routes a key (`Model::shard_of`, `Sharded::shard_for`, the
/// inherent `shard_for`) rather than delegating to `Sharded::shard_for`, so that a shard-key type
/// that is not a `ShardKey` gives one error at the field, not type mismatches on
/// `<User as Sharded>::ShardKey`.
fn route(model: &Model<'_>, key: &TokenStream) -> TokenStream {
    let p = private();
    match &model.placement {
        Placement::Sharded {
            strategy: Strategy::Hash,
            count,
            prefix,
            ..
        } => {
            let count = Literal::u32_suffixed(*count);
            quote!(#p::ShardId::prefixed(#prefix, #p::hash::shard_index(#key, #count)))
        }
        Placement::Single { shard } => quote!(#p::ShardId::named(0, #shard)),
    }
}

/// `T: SqlType + Clone + Into<Value>` for every field type, spanned at the type.
fn column_bounds(model: &Model<'_>) -> Vec<TokenStream> {
    model
        .columns
        .iter()
        .map(|c| {
            let ty = c.ty;
            let p = private_at(ty.span());
            quote_spanned! {ty.span()=>
                #ty: #p::SqlType
                    + ::core::clone::Clone
                    + ::core::convert::Into<#p::sea_query::Value>
            }
        })
        .collect()
}

/// `T: ShardKey` for the shard key's type, spanned at the type.
fn shard_key_bound(model: &Model<'_>) -> Option<TokenStream> {
    match &model.placement {
        Placement::Sharded { key, .. } => model.columns.get(*key).map(|c| {
            let ty = c.ty;
            let p = private_at(ty.span());
            quote_spanned!(ty.span()=> #ty: #p::ShardKey)
        }),
        Placement::Single { .. } => None,
    }
}

fn clone_into_value(expr: TokenStream) -> TokenStream {
    let p = private();
    quote! {
        ::core::convert::Into::<#p::sea_query::Value>::into(::core::clone::Clone::clone(#expr))
    }
}

fn model_impl(model: &Model<'_>) -> TokenStream {
    let p = private();
    let ident = model.ident;
    let name = &model.name;
    let table = &model.table;
    let mut bounds = column_bounds(model);
    bounds.extend(shard_key_bound(model));

    let pk_fields: Vec<_> = model
        .primary_key
        .iter()
        .filter_map(|&i| model.columns.get(i))
        .collect();
    let pk_type = match pk_fields.as_slice() {
        [only] => {
            let ty = only.ty;
            quote!(#ty)
        }
        many => {
            let types = many.iter().map(|c| c.ty);
            quote!((#(#types,)*))
        }
    };
    let pk_value = match pk_fields.as_slice() {
        [only] => {
            let field = only.ident;
            quote!(::core::clone::Clone::clone(&self.#field))
        }
        many => {
            let values = many.iter().map(|c| {
                let field = c.ident;
                quote!(::core::clone::Clone::clone(&self.#field))
            });
            quote!((#(#values,)*))
        }
    };
    let pk_values: Vec<TokenStream> = if pk_fields.len() == 1 {
        vec![clone_into_value(quote!(key))]
    } else {
        (0..pk_fields.len())
            .map(|i| {
                let i = Index::from(i);
                clone_into_value(quote!(&key.#i))
            })
            .collect()
    };

    let column_metas = model.columns.iter().map(|c| {
        let (column, field, primary_key, ty) = (&c.name, &c.field, c.primary_key, c.ty);
        quote! {
            #p::ColumnMeta {
                name: #column,
                field: #field,
                primary_key: #primary_key,
                nullable: <#ty as #p::SqlType>::NULLABLE,
                column_type: <#ty as #p::SqlType>::column_type,
            }
        }
    });
    let pk_indices = model
        .primary_key
        .iter()
        .map(|&i| Literal::usize_unsuffixed(i));
    let shard_key_index = match &model.placement {
        Placement::Sharded { key, .. } => {
            let key = Literal::usize_unsuffixed(*key);
            quote!(::core::option::Option::Some(#key))
        }
        Placement::Single { .. } => quote!(::core::option::Option::None),
    };

    let values = model.columns.iter().map(|c| {
        let field = c.ident;
        clone_into_value(quote!(&self.#field))
    });
    let value_arms = model.columns.iter().enumerate().map(|(i, c)| {
        let field = c.ident;
        let i = Literal::usize_unsuffixed(i);
        let value = clone_into_value(quote!(&self.#field));
        quote!(#i => #value,)
    });

    let placement = placement_fns(model);

    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications)]
        impl #p::Model for #ident
        where
            #(#bounds,)*
        {
            type PrimaryKey = #pk_type;

            const META: &'static #p::ModelMeta = &#p::ModelMeta {
                name: #name,
                table: #table,
                columns: &[#(#column_metas),*],
                primary_key: &[#(#pk_indices),*],
                shard_key: #shard_key_index,
            };

            fn primary_key(&self) -> Self::PrimaryKey {
                #pk_value
            }

            fn primary_key_values(
                key: &Self::PrimaryKey,
            ) -> ::std::vec::Vec<#p::sea_query::Value> {
                ::std::vec![#(#pk_values),*]
            }

            fn values(&self) -> ::std::vec::Vec<#p::sea_query::Value> {
                ::std::vec![#(#values),*]
            }

            fn value(&self, column: usize) -> #p::sea_query::Value {
                match column {
                    #(#value_arms)*
                    _ => #p::sea_query::Value::Bool(::core::option::Option::None),
                }
            }

            #placement
        }
    }
}

/// `shards`, `shard_of_key`, `shard_of` and `shard_for_value`.
fn placement_fns(model: &Model<'_>) -> TokenStream {
    let p = private();
    match &model.placement {
        Placement::Sharded {
            strategy,
            count,
            prefix,
            key,
            key_in_primary_key,
        } => {
            let len = Literal::usize_unsuffixed(*count as usize);
            let count = Literal::u32_suffixed(*count);
            let Some(key_field) = model.columns.get(*key).map(|c| c.ident) else {
                return quote!(::core::compile_error!("grant-derive: shard key out of range"););
            };
            let key_of_pk = if model.primary_key.len() == 1 {
                quote!(key)
            } else {
                let i = Index::from(*key_in_primary_key);
                quote!(&key.#i)
            };
            let route_value = match strategy {
                Strategy::Hash => quote!(#p::hash::route_value::<Self>(value, #count)),
            };
            let route_key = route(model, &key_of_pk);
            let route_row = route(model, &quote!(&self.#key_field));
            quote! {
                fn shards() -> &'static [#p::ShardId] {
                    static SHARDS: [#p::ShardId; #len] = {
                        let mut shards = [#p::ShardId::prefixed(#prefix, 0); #len];
                        let mut index: u32 = 0;
                        while index < #count {
                            shards[index as usize] = #p::ShardId::prefixed(#prefix, index);
                            index += 1;
                        }
                        shards
                    };
                    &SHARDS
                }

                fn shard_of_key(key: &Self::PrimaryKey) -> #p::ShardId {
                    #route_key
                }

                fn shard_of(&self) -> #p::ShardId {
                    #route_row
                }

                fn shard_for_value(
                    value: &#p::sea_query::Value,
                ) -> #p::Result<#p::ShardId> {
                    #route_value
                }
            }
        }
        Placement::Single { shard } => quote! {
            fn shards() -> &'static [#p::ShardId] {
                static SHARDS: [#p::ShardId; 1] = [#p::ShardId::named(0, #shard)];
                &SHARDS
            }

            fn shard_of_key(_key: &Self::PrimaryKey) -> #p::ShardId {
                #p::ShardId::named(0, #shard)
            }

            fn shard_of(&self) -> #p::ShardId {
                #p::ShardId::named(0, #shard)
            }

            fn shard_for_value(
                _value: &#p::sea_query::Value,
            ) -> #p::Result<#p::ShardId> {
                ::core::result::Result::Ok(#p::ShardId::named(0, #shard))
            }
        },
    }
}

fn sharded_impl(model: &Model<'_>) -> TokenStream {
    let p = private();
    let Placement::Sharded { key, .. } = &model.placement else {
        return TokenStream::new();
    };
    let Some(key) = model.columns.get(*key) else {
        return TokenStream::new();
    };
    let ident = model.ident;
    let (key_field, key_ty) = (key.ident, key.ty);
    // The `Model` impl carries the checked bounds; these only restate them.
    let model_holds = deferred(quote!(Self: #p::Model));
    let key_is_a_key = deferred(quote!(#key_ty: #p::ShardKey));
    let shard_for = route(model, &quote!(key));
    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications)]
        impl #p::Sharded for #ident
        where
            #model_holds,
            #key_is_a_key,
        {
            type ShardKey = #key_ty;

            fn shard_key(&self) -> &Self::ShardKey {
                &self.#key_field
            }

            fn shard_for(key: &Self::ShardKey) -> #p::ShardId {
                #shard_for
            }
        }
    }
}

fn from_row_impl(model: &Model<'_>) -> TokenStream {
    let p = private();
    let ident = model.ident;
    let bounds = model.columns.iter().map(|c| {
        let ty = c.ty;
        let p = private_at(ty.span());
        quote_spanned! {ty.span()=>
            #ty: for<'r> #p::sqlx::Decode<'r, __DB> + #p::sqlx::Type<__DB>
        }
    });
    let fields = model.columns.iter().enumerate().map(|(i, c)| {
        let (field, ty) = (c.ident, c.ty);
        let i = Literal::usize_unsuffixed(i);
        quote!(#field: <__DB as #p::Backend>::get::<#ty>(row, #i)?)
    });
    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications)]
        impl<__DB: #p::Backend> #p::FromShardRow<__DB> for #ident
        where
            #(#bounds,)*
        {
            fn from_row(
                row: &<__DB as #p::sqlx::Database>::Row,
            ) -> ::core::result::Result<Self, #p::sqlx::Error> {
                ::core::result::Result::Ok(Self {
                    #(#fields,)*
                })
            }
        }
    }
}

/// A typed column constant to generate.
pub(crate) struct ColumnConst<'a> {
    pub(crate) constant: Ident,
    pub(crate) ty: &'a Type,
    pub(crate) name: String,
    pub(crate) index: usize,
}

/// The inherent `shard_for` to generate.
pub(crate) enum ShardFor<'a> {
    /// None (`#[derive(Model)]`).
    Absent,
    /// `shard_for(key: &T)`, computing `route` (the same as `Sharded::shard_for`).
    Typed { ty: &'a Type, route: TokenStream },
    /// A placeholder accepting any key (fallback when the key's type is unknown).
    Any,
}

/// Real bodies, or `unreachable!()` placeholders beside a compile error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bodies {
    Real,
    Placeholder,
}

/// What the inherent impl needs.
pub(crate) struct Inherent<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) table: &'a str,
    pub(crate) columns: &'a [ColumnConst<'a>],
    pub(crate) shard_for: ShardFor<'a>,
    pub(crate) bodies: Bodies,
}

/// The inherent `impl User { ... }`: column constants, `shard_for`, CRUD and query entry points.
pub(crate) fn inherent_impl(inherent: &Inherent<'_>) -> TokenStream {
    let p = private();
    let Inherent {
        ident,
        vis,
        table,
        columns,
        ..
    } = inherent;
    let body = |real: TokenStream| match inherent.bodies {
        Bodies::Real => real,
        Bodies::Placeholder => quote!(::core::unreachable!()),
    };

    let constants = columns.iter().map(|c| {
        let ColumnConst {
            constant,
            ty,
            name,
            index,
        } = c;
        let doc = format!("The `{name}` column of `{table}`, for typed conditions and ordering.");
        let index = Literal::usize_unsuffixed(*index);
        quote! {
            #[doc = #doc]
            #vis const #constant: #p::Column<Self, #ty> = #p::Column::new(#name, #index);
        }
    });

    let shard_for = match &inherent.shard_for {
        ShardFor::Absent => TokenStream::new(),
        ShardFor::Typed { ty, route } => {
            let call = body(route.clone());
            quote! {
                /// The shard holding the rows with shard key `key`. Pure: no I/O.
                #vis fn shard_for(key: &#ty) -> #p::ShardId {
                    #call
                }
            }
        }
        ShardFor::Any => quote! {
            /// The shard holding the rows with shard key `key`. Pure: no I/O.
            #vis fn shard_for<K: ?::core::marker::Sized>(key: &K) -> #p::ShardId {
                ::core::unreachable!()
            }
        },
    };

    let create_table = body(quote!(#p::crud::create_table::<Self, DB>(cluster).await));
    let insert = body(quote!(#p::crud::insert(cluster, self).await));
    let insert_many = body(quote!(#p::crud::insert_many(cluster, rows).await));
    let update = body(quote!(#p::crud::update(cluster, self).await));
    let delete = body(quote!(#p::crud::delete(cluster, self).await));
    let find = body(quote!(#p::crud::find(cluster, key).await));
    let find_tracked = body(quote!(#p::crud::find_tracked(cluster, key).await));
    let query = body(quote!(#p::Query::auto()));
    let on_shard = body(quote!(#p::Query::on_shard(shard)));
    let on_all_shards = body(quote!(#p::Query::on_all_shards()));
    let (allow_unused, where_clause) = match inherent.bodies {
        Bodies::Real => {
            let mut holds = vec![deferred(quote!(Self: #p::Model))];
            if let ShardFor::Typed { ty, .. } = &inherent.shard_for {
                holds.push(deferred(quote!(#ty: #p::ShardKey)));
            }
            (TokenStream::new(), quote!(where #(#holds),*))
        }
        Bodies::Placeholder => (quote!(#[allow(unused_variables)]), TokenStream::new()),
    };

    quote! {
        #[automatically_derived]
        #[allow(dead_code, unused_qualifications)]
        #allow_unused
        impl #ident
        #where_clause
        {
            #(#constants)*

            #shard_for

            /// Creates the table, if it does not exist, on every shard the model uses.
            #vis async fn create_table<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #create_table
            }

            /// Inserts this row on its shard.
            #vis async fn insert<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #insert
            }

            /// Inserts `rows`, grouped per shard, shards in parallel; returns the number inserted.
            #vis async fn insert_many<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                rows: &[Self],
            ) -> #p::Result<u64> {
                #insert_many
            }

            /// Updates this row (found by its primary key) on its shard.
            #vis async fn update<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #update
            }

            /// Deletes this row (found by its primary key); returns whether a row was deleted.
            #vis async fn delete<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<bool> {
                #delete
            }

            /// The row with primary key `key`, read from the one shard that can hold it.
            #vis async fn find<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                key: <Self as #p::Model>::PrimaryKey,
            ) -> #p::Result<::core::option::Option<Self>>
            where
                Self: #p::FromShardRow<DB>,
            {
                #find
            }

            /// Like `find`, returning the row as a `Tracked` handle that remembers it as read.
            #vis async fn find_tracked<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                key: <Self as #p::Model>::PrimaryKey,
            ) -> #p::Result<::core::option::Option<#p::Tracked<Self>>>
            where
                Self: #p::FromShardRow<DB>,
            {
                #find_tracked
            }

            /// A query routed by its conditions: to the shards its shard-key conditions allow.
            #vis fn query() -> #p::Query<Self> {
                #query
            }

            /// A query run on the shard `shard` only.
            #vis fn on_shard(shard: #p::ShardId) -> #p::Query<Self> {
                #on_shard
            }

            /// A query run on every shard the model uses, results merged.
            #vis fn on_all_shards() -> #p::Query<Self> {
                #on_all_shards
            }
        }
    }
}
