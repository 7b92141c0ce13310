//! Code generation for a checked model.
//!
//! Generated code names everything by absolute path (`::grant::__private::...`, `::core`,
//! `::std`) and lives inside `const _: () = { ... };`. Bounds that must hold for a field's type
//! are where-clauses spanned at that type, so the compiler points at the field.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Index, Type, Visibility};

use crate::attr::MapKey;
use crate::valid::{Column as ValidColumn, Model, Placement, Plan, Sharding};

thread_local! {
    /// The `grant` crate's path for the derive being expanded (`#[grant(crate = ..)]`), set by
    /// [`CratePath::set`] for the duration of one expansion.
    static CRATE: std::cell::RefCell<Option<syn::Path>> = const { std::cell::RefCell::new(None) };
}

/// Sets the `grant` crate's path for one expansion; the default (`::grant`) is back on drop.
pub(crate) struct CratePath(());

impl CratePath {
    pub(crate) fn set(path: Option<syn::Path>) -> CratePath {
        CRATE.with(|c| *c.borrow_mut() = path);
        CratePath(())
    }
}

impl Drop for CratePath {
    fn drop(&mut self) {
        CRATE.with(|c| *c.borrow_mut() = None);
    }
}

/// `::grant::__private` (or `<path>::__private` under `#[grant(crate = "<path>")]`), the only
/// path generated code uses besides `::core` and `::std`.
pub(crate) fn private() -> TokenStream {
    CRATE.with(|c| match &*c.borrow() {
        Some(path) => quote!(#path::__private),
        None => quote!(::grant::__private),
    })
}

/// [`private`] spanned at `span`, for bounds the compiler should report there.
fn private_at(span: Span) -> TokenStream {
    CRATE.with(|c| match &*c.borrow() {
        Some(path) => quote_spanned!(span=> #path::__private),
        None => quote_spanned!(span=> ::grant::__private),
    })
}

/// A where-clause predicate that holds exactly when the model's own impls hold, without being
/// checked where it is written: `for<'w> Self: Trait`. A bound without generic parameters is
/// checked at its definition ("trivial bound", rust-lang/rust#48214); this form is checked only
/// where it is used. Impls that depend on the `Model` impl carry it, so a field whose type breaks
/// a bound of the `Model` impl gives one error at that field, not one per generated item.
fn deferred(bound: TokenStream) -> TokenStream {
    quote!(for<'__grant> #bound)
}

/// Drops repeated where-clause predicates (a single `ShardKey` key is bounded once).
fn dedup(predicates: &mut Vec<TokenStream>) {
    let mut seen = std::collections::HashSet::new();
    predicates.retain(|p| seen.insert(p.to_string()));
}

/// The expansion of a checked model.
pub(crate) fn expand(model: &Model<'_>) -> TokenStream {
    let model_impl = model_impl(model);
    let sharded_impl = sharded_impl(model);
    let row_impl = from_row_impl(model);
    let helpers = helpers(model);
    let columns: Vec<ColumnConst<'_>> = model
        .columns
        .iter()
        .enumerate()
        .map(|(index, c)| ColumnConst {
            constant: c.constant.clone(),
            ty: c.ty,
            name: c.name.clone(),
            index,
            key: c.primary_key,
        })
        .collect();
    let shard_for = match &model.placement {
        Placement::Sharded(sharding) => ShardFor::Typed {
            ty: key_type(model, sharding),
            route: route(model, &quote!(key)),
            try_route: try_route(model, &quote!(key)),
            bounds: key_bounds(model, sharding)
                .into_iter()
                .map(|(ty, bound)| deferred(quote!(#ty: #bound)))
                .collect(),
        },
        Placement::Single { .. } => ShardFor::Absent,
    };
    let inherent = inherent_impl(&Inherent {
        ident: model.ident,
        vis: model.vis,
        table: &model.table,
        columns: &columns,
        shard_for,
        bodies: Bodies::Real,
        reference: is_reference(model),
        methods: &model.methods,
    });
    let relations = relations(model);
    quote! {
        const _: () = {
            #helpers
            #model_impl
            #sharded_impl
            #row_impl
            #inherent
            #relations
        };
    }
}

/// For each `belongs_to(Parent, key(..))`: the compile-time co-location check (constants the
/// compiler evaluates against the parent's placement, failing at the attribute with what to
/// change), `BelongsTo<Parent>`, and the generic `belonging_to` / `belonging_to_each`.
fn relations(model: &Model<'_>) -> TokenStream {
    if model.belongs_to.is_empty() {
        return TokenStream::new();
    }
    let p = private();
    let ident = model.ident;
    let vis = model.vis;
    let child = &model.name;
    let child_key: Vec<&str> = match &model.placement {
        Placement::Sharded(sharding) => sharding
            .key
            .iter()
            .map(|&i| model.columns[i].field.as_str())
            .collect(),
        Placement::Single { .. } => Vec::new(),
    };
    let mut out = TokenStream::new();
    for relation in &model.belongs_to {
        let parent = &relation.parent;
        let parent_name = parent
            .segments
            .last()
            .map_or_else(String::new, |s| crate::ast::unraw(&s.ident));
        let span = relation.span;
        let fields: Vec<&Ident> = relation
            .key
            .iter()
            .map(|&i| model.columns[i].ident)
            .collect();
        let listed: Vec<&str> = relation
            .key
            .iter()
            .map(|&i| model.columns[i].field.as_str())
            .collect();
        let positions = relation.key.iter().map(|&i| Literal::usize_unsuffixed(i));
        let placement_msg = format!(
            "`{child}` belongs_to `{parent_name}` but is not placed like it: a child row must \
             live on its parent's shard, so `{child}` needs the same `#[shard(..)]` strategy, \
             count, shard names and parameters as `{parent_name}` (a `directory` model is placed \
             by its own table and cannot be a parent or a child)"
        );
        let length_msg = format!(
            "`key({})` of `{child}`'s belongs_to(`{parent_name}`) must list one field per \
             primary-key field of `{parent_name}`, in the order of its primary key",
            listed.join(", ")
        );
        let shard_key_msg = format!(
            "`{child}`'s shard key ({}) is not `{parent_name}`'s shard key read through \
             `key({})`: the fields of `key(..)` at the positions of `{parent_name}`'s shard-key \
             fields must be `{child}`'s shard key, in the same order; shard `{child}` on those \
             fields (`#[shard(on = ..)]`)",
            child_key.join(", "),
            listed.join(", ")
        );
        let reads: Vec<TokenStream> = fields
            .iter()
            .zip(&relation.key_spans)
            .map(|(f, span)| quote_spanned!(*span=> ::core::clone::Clone::clone(&self.#f)))
            .collect();
        let parent_key = if reads.len() == 1 {
            reads[0].clone()
        } else {
            quote!((#(#reads),*))
        };
        let check = quote_spanned! {span=>
            const _: () = {
                match #p::colocation(
                    <#ident as #p::Model>::PLACEMENT,
                    <#ident as #p::Model>::META,
                    <#parent as #p::Model>::PLACEMENT,
                    <#parent as #p::Model>::META,
                    &[#(#positions),*],
                ) {
                    #p::Colocation::Colocated => {}
                    #p::Colocation::Placement => ::core::panic!(#placement_msg),
                    #p::Colocation::KeyLength => ::core::panic!(#length_msg),
                    _ => ::core::panic!(#shard_key_msg),
                }
            };
        };
        let positions = relation.key.iter().map(|&i| Literal::usize_unsuffixed(i));
        let parent_key = quote_spanned! {span=>
            fn parent_key(&self) -> <#parent as #p::Model>::PrimaryKey {
                #parent_key
            }
        };
        out.extend(quote! {
            #check

            #[automatically_derived]
            impl #p::BelongsTo<#parent> for #ident {
                const PARENT_KEY: &'static [usize] = &[#(#positions),*];
                #parent_key
            }
        });
    }
    let method = |name: &str| {
        model
            .methods
            .iter()
            .find(|(m, _)| m == name)
            .map_or_else(|| Ident::new(name, Span::call_site()), |(_, i)| i.clone())
    };
    let m_belonging_to = method("belonging_to");
    let m_belonging_to_each = method("belonging_to_each");
    out.extend(quote! {
        #[automatically_derived]
        impl #ident {
            /// The children of `parent` (a model this one `belongs_to`): a query routed to the
            /// parent's shard, which holds them all; filter, order and page it like any query.
            #vis fn #m_belonging_to<P: #p::Model>(parent: &P) -> #p::Query<Self>
            where
                Self: #p::BelongsTo<P>,
            {
                #p::relations::belonging_to::<Self, P>(parent)
            }

            /// The children of each of `parents`, in the order of `parents`, each parent's in
            /// primary-key order: one statement per shard the parents live on, in parallel.
            #vis async fn #m_belonging_to_each<P: #p::Model, DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                parents: &[P],
            ) -> #p::Result<::std::vec::Vec<::std::vec::Vec<Self>>>
            where
                Self: #p::BelongsTo<P> + #p::FromShardRow<DB> + ::core::clone::Clone,
            {
                #p::relations::belonging_to_each::<Self, P, DB>(cluster, parents).await
            }
        }
    });
    out
}

/// Whether the model is a reference table (`#[grant(reference)]`).
fn is_reference(model: &Model<'_>) -> bool {
    matches!(
        model.placement,
        Placement::Single {
            reference: true,
            ..
        }
    )
}

/// The shard-key fields as columns, in key order.
fn key_columns<'m, 'a>(model: &'m Model<'a>, sharding: &Sharding) -> Vec<&'m ValidColumn<'a>> {
    sharding
        .key
        .iter()
        .filter_map(|&i| model.columns.get(i))
        .collect()
}

/// The shard key's type: the field's, or a tuple of the fields' in key order.
fn key_type(model: &Model<'_>, sharding: &Sharding) -> TokenStream {
    match key_columns(model, sharding).as_slice() {
        [only] => {
            let ty = only.ty;
            quote!(#ty)
        }
        many => {
            let types = many.iter().map(|c| c.ty);
            quote!((#(#types,)*))
        }
    }
}

/// Each shard-key field's type with the trait the strategy needs of it, spanned at the type.
fn key_bounds(model: &Model<'_>, sharding: &Sharding) -> Vec<(TokenStream, TokenStream)> {
    let trait_name = match &sharding.plan {
        Plan::Hash { .. }
        | Plan::Consistent { .. }
        | Plan::Directory { .. }
        | Plan::Custom { .. } => "ShardKey",
        Plan::PgHash { .. } => "PgHashKey",
        Plan::Range { .. } => "IntKey",
        Plan::Mapping { text: true, .. } => "TextKey",
        Plan::Mapping { text: false, .. } => "IntKey",
    };
    key_columns(model, sharding)
        .into_iter()
        .map(|c| {
            let ty = c.ty;
            // Every token of the bound spans the field's type, so the compiler reports an
            // unmet bound there.
            let p = private_at(ty.span());
            let name = Ident::new(trait_name, ty.span());
            (quote!(#ty), quote_spanned!(ty.span()=> #p::#name))
        })
        .collect()
}

/// Where the shard key comes from in a generated function.
#[derive(Clone, Copy)]
enum KeyFrom {
    /// `key: &Self::PrimaryKey`.
    PrimaryKey,
    /// `&self`.
    Row,
}

/// An expression of type `&K` where `K: ShardKey` is the shard key (a tuple of references for a
/// composite key, which encodes like the tuple of values).
fn key_expr(model: &Model<'_>, sharding: &Sharding, from: KeyFrom) -> TokenStream {
    let parts: Vec<TokenStream> = match from {
        KeyFrom::PrimaryKey if model.primary_key.len() == 1 => return quote!(key),
        KeyFrom::PrimaryKey => sharding
            .key_in_primary_key
            .iter()
            .map(|&i| {
                let i = Index::from(i);
                quote!(&key.#i)
            })
            .collect(),
        KeyFrom::Row => key_columns(model, sharding)
            .iter()
            .map(|c| {
                let field = c.ident;
                quote!(&self.#field)
            })
            .collect(),
    };
    match parts.as_slice() {
        [only] => only.clone(),
        many => quote!(&(#(#many,)*)),
    }
}

/// The shard of the key `key` (an expression of type `&ShardKey`) under the model's strategy;
/// [`ShardId::UNPLACED`] for a key no shard holds.
///
/// Generated at every place that routes a key (`Model::shard_of`, `Sharded::shard_for`, the
/// inherent `shard_for`) rather than delegating to `Sharded::shard_for`, so that a shard-key type
/// that is not a `ShardKey` gives one error at the field, not type mismatches on
/// `<User as Sharded>::ShardKey`.
fn route(model: &Model<'_>, key: &TokenStream) -> TokenStream {
    let p = private();
    match &model.placement {
        Placement::Sharded(sharding) => match &sharding.plan {
            Plan::Hash { count, prefix } => {
                let count = Literal::u32_suffixed(*count);
                quote!(#p::ShardId::prefixed(#prefix, #p::hash::shard_index(#key, #count)))
            }
            Plan::PgHash { count, prefix } => {
                let count = Literal::u32_suffixed(*count);
                quote!(#p::ShardId::prefixed(#prefix, #p::resolve::pg_hash::shard_index(#key, #count)))
            }
            Plan::Consistent { .. } => quote!(__grant_ring().shard_for(#key)),
            Plan::Range { .. } => quote! {
                ::core::option::Option::unwrap_or(__GRANT_RANGES.shard_for(#key), #p::ShardId::UNPLACED)
            },
            Plan::Mapping { .. } => quote! {
                ::core::option::Option::unwrap_or(__GRANT_MAPPING.shard_for(#key), #p::ShardId::UNPLACED)
            },
            // The directory is in the cluster: pure routing cannot know.
            Plan::Directory { .. } => quote!(#p::directory::unplaced_key(#key)),
            Plan::Custom { .. } => {
                quote!(#p::resolve::custom::shard_for::<Self, _, _>(__grant_resolver(), #key))
            }
        },
        Placement::Single { shard, .. } => quote!(#p::ShardId::named(0, #shard)),
    }
}

/// The fallible form of [`route`] (`Result<ShardId>`), for strategies that can leave a key
/// without a shard; `None` for the others (the traits' defaults wrap [`route`] in `Ok`).
fn try_route(model: &Model<'_>, key: &TokenStream) -> Option<TokenStream> {
    let p = private();
    let Placement::Sharded(sharding) = &model.placement else {
        return None;
    };
    if !sharding.plan.may_leave_keys_unplaced() {
        return None;
    }
    match &sharding.plan {
        Plan::Directory { .. } => {
            return Some(quote! {
                ::core::result::Result::Err(#p::directory::static_route::<Self>(
                    &#p::ShardKey::describe(#key),
                ))
            });
        }
        Plan::Custom { .. } => {
            return Some(quote! {
                #p::resolve::custom::try_shard_for::<Self, _, _>(__grant_resolver(), #key)
            });
        }
        _ => {}
    }
    let (resolver, error) = match &sharding.plan {
        Plan::Range { .. } => (quote!(__GRANT_RANGES), quote!(#p::resolve::range::outside)),
        Plan::Mapping { .. } => (
            quote!(__GRANT_MAPPING),
            quote!(#p::resolve::mapping::unlisted),
        ),
        _ => return None,
    };
    Some(quote! {
        match #resolver.shard_for(#key) {
            ::core::option::Option::Some(shard) => ::core::result::Result::Ok(shard),
            ::core::option::Option::None => ::core::result::Result::Err(
                #error::<Self>(&#resolver, &#p::ShardKey::describe(#key)),
            ),
        }
    })
}

/// The resolver items the strategy needs, inside the `const _` block: the static ranges or
/// mapping, or the hash ring built on first use.
fn helpers(model: &Model<'_>) -> TokenStream {
    let p = private();
    let Placement::Sharded(sharding) = &model.placement else {
        return TokenStream::new();
    };
    let some_i64 = |v: Option<i64>| match v {
        Some(v) => {
            let v = Literal::i64_suffixed(v);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    };
    match &sharding.plan {
        Plan::Hash { .. } | Plan::PgHash { .. } | Plan::Directory { .. } => TokenStream::new(),
        Plan::Custom { resolver } => {
            let r = quote_spanned!(resolver.span()=> #resolver);
            // The one place the type must be a `Resolver` (and `Default`): the errors for a type
            // that is not point at `resolver = ".."`, once; everything else uses the trait object.
            let coerce = quote_spanned! {resolver.span()=>
                let resolver: &'static dyn #p::resolve::Resolver = &*RESOLVER;
            };
            quote! {
                /// The model's resolver, built with `Default` on first use.
                fn __grant_resolver() -> &'static dyn #p::resolve::Resolver {
                    static RESOLVER: ::std::sync::LazyLock<#r> =
                        ::std::sync::LazyLock::new(<#r as ::core::default::Default>::default);
                    #coerce
                    resolver
                }
            }
        }
        Plan::Consistent { prefix, vnodes } => {
            let vnodes = vnodes.iter().map(|&v| Literal::u32_suffixed(v));
            quote! {
                /// The model's hash ring, built on first use.
                fn __grant_ring() -> &'static #p::resolve::ConsistentHashResolver {
                    static RING: ::std::sync::LazyLock<#p::resolve::ConsistentHashResolver> =
                        ::std::sync::LazyLock::new(|| {
                            #p::resolve::ConsistentHashResolver::prefixed(#prefix, &[#(#vnodes),*])
                        });
                    &RING
                }
            }
        }
        Plan::Range {
            shards,
            ranges,
            time,
        } => {
            let key_ty = key_type(model, sharding);
            let bound = |v: Option<i64>| match (v, time) {
                (Some(v), true) => {
                    let v = Literal::i64_suffixed(v);
                    quote!(::core::option::Option::Some(#p::time_bound::<#key_ty>(#v)))
                }
                (v, _) => some_i64(v),
            };
            let ranges = ranges.iter().map(|&(start, end, shard)| {
                let (start, end) = (bound(start), bound(end));
                let id = named(shards, shard);
                quote!(#p::resolve::KeyRange::new(#start, #end, #id))
            });
            quote! {
                static __GRANT_RANGES: #p::resolve::RangeResolver =
                    #p::resolve::RangeResolver::from_sorted(&[#(#ranges),*]);
            }
        }
        Plan::Mapping {
            shards,
            entries,
            default,
            ..
        } => {
            let entries: Vec<TokenStream> = entries
                .iter()
                .map(|(key, shard)| {
                    let key = match key {
                        MapKey::Int(v) => {
                            let v = Literal::i64_suffixed(*v);
                            quote!(#p::resolve::MappingKey::Int(#v))
                        }
                        MapKey::Text(s) => quote!(#p::resolve::MappingKey::text(#s)),
                    };
                    let id = named(shards, *shard);
                    quote!((#key, #id))
                })
                .collect();
            let default = match default {
                Some(d) => {
                    let id = named(shards, *d);
                    quote!(::core::option::Option::Some(#id))
                }
                None => quote!(::core::option::Option::None),
            };
            let len = Literal::usize_unsuffixed(entries.len());
            quote! {
                static __GRANT_MAPPING_ENTRIES: [(#p::resolve::MappingKey, #p::ShardId); #len] =
                    [#(#entries),*];
                static __GRANT_MAPPING: #p::resolve::MappingResolver =
                    #p::resolve::MappingResolver::from_sorted(&__GRANT_MAPPING_ENTRIES, #default);
            }
        }
    }
}

/// `ShardId::named(index, "name")` for the shard at `index` of a strategy that names shards.
fn named(shards: &[String], index: u32) -> TokenStream {
    let p = private();
    let name = shards.get(index as usize).map_or("", String::as_str);
    let index = Literal::u32_unsuffixed(index);
    quote!(#p::ShardId::named(#index, #name))
}

/// `T: SqlType` (which implies `Clone + Into<Value>`) for every field type, spanned at the type.
fn column_bounds(model: &Model<'_>) -> Vec<TokenStream> {
    model
        .columns
        .iter()
        .map(|c| {
            let ty = c.ty;
            let p = private_at(ty.span());
            // `Clone` and `Into<Value>` are supertraits: one error for a type without a column.
            quote_spanned! {ty.span()=> #ty: #p::SqlType }
        })
        .collect()
}

/// The bound the strategy needs of each shard-key field's type, spanned at the type.
fn shard_key_bounds(model: &Model<'_>) -> Vec<TokenStream> {
    match &model.placement {
        Placement::Sharded(sharding) => key_bounds(model, sharding)
            .into_iter()
            .map(|(ty, bound)| quote_spanned!(ty.span()=> #ty: #bound))
            .collect(),
        Placement::Single { .. } => Vec::new(),
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
    bounds.extend(shard_key_bounds(model));

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
                kind: <#ty as #p::SqlType>::KIND,
            }
        }
    });
    let pk_indices = model
        .primary_key
        .iter()
        .map(|&i| Literal::usize_unsuffixed(i));
    let (shard_key_index, shard_key_columns) = match &model.placement {
        Placement::Sharded(sharding) => {
            let first = sharding.key.first().copied().unwrap_or_default();
            let first = Literal::usize_unsuffixed(first);
            let all = sharding.key.iter().map(|&i| Literal::usize_unsuffixed(i));
            (
                quote!(::core::option::Option::Some(#first)),
                quote!(&[#(#all),*]),
            )
        }
        Placement::Single { .. } => (quote!(::core::option::Option::None), quote!(&[])),
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
    let directory = match &model.placement {
        Placement::Sharded(Sharding {
            plan:
                Plan::Directory {
                    count,
                    prefix,
                    home,
                    policy,
                },
            ..
        }) => {
            let len = Literal::usize_unsuffixed(*count as usize);
            let n = Literal::u32_suffixed(*count);
            quote! {
                const DIRECTORY: ::core::option::Option<#p::DirectorySpec> =
                    ::core::option::Option::Some(#p::DirectorySpec {
                        shards: &{
                            let mut shards = [#p::ShardId::prefixed(#prefix, 0); #len];
                            let mut index: u32 = 0;
                            while index < #n {
                                shards[index as usize] = #p::ShardId::prefixed(#prefix, index);
                                index += 1;
                            }
                            shards
                        },
                        home: #home,
                        policy: #policy,
                    });
            }
        }
        _ => TokenStream::new(),
    };
    let reference = if is_reference(model) {
        quote!(
            const REFERENCE: bool = true;
        )
    } else {
        TokenStream::new()
    };

    let indexes = if model.indexes.is_empty() {
        TokenStream::new()
    } else {
        let entries = model.indexes.iter().map(|index| {
            let name = &index.name;
            let columns = index.columns.iter().map(|&i| Literal::usize_unsuffixed(i));
            let unique = index.unique;
            quote!(#p::IndexMeta { name: #name, columns: &[#(#columns),*], unique: #unique })
        });
        quote!(
            const INDEXES: &'static [#p::IndexMeta] = &[#(#entries),*];
        )
    };

    let signature = match &model.placement {
        Placement::Sharded(sharding) => sharding.plan.signature(&model.table),
        Placement::Single {
            shard,
            reference: false,
        } => format!("single/{shard}"),
        Placement::Single {
            reference: true, ..
        } => format!("reference/{}", model.table),
    };

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
                shard_key_columns: #shard_key_columns,
            };

            #directory
            #reference
            #indexes
            const PLACEMENT: &'static str = #signature;

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

/// `shards`, `shard_of_key`, `shard_of`, `shard_for_value`, `shard_for_values`, and where the
/// strategy needs them `shards_for_range`, `try_shard_of_key` and `try_shard_of`.
fn placement_fns(model: &Model<'_>) -> TokenStream {
    let p = private();
    let sharding = match &model.placement {
        Placement::Sharded(sharding) => sharding,
        Placement::Single { shard, .. } => {
            return quote! {
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
            };
        }
    };
    let shards = match &sharding.plan {
        Plan::Hash { count, prefix }
        | Plan::PgHash { count, prefix }
        | Plan::Directory { count, prefix, .. } => prefixed_shards(*count, prefix),
        Plan::Custom { .. } => quote! {
            static SHARDS: ::std::sync::LazyLock<::std::vec::Vec<#p::ShardId>> =
                ::std::sync::LazyLock::new(|| {
                    ::std::borrow::Cow::into_owned(#p::resolve::Resolver::shards(
                        __grant_resolver(),
                    ))
                });
        },
        Plan::Consistent { prefix, vnodes } => prefixed_shards(vnodes.len() as u32, prefix),
        Plan::Range { shards, .. } | Plan::Mapping { shards, .. } => {
            let len = Literal::usize_unsuffixed(shards.len());
            let ids = (0..shards.len() as u32).map(|i| named(shards, i));
            quote!(static SHARDS: [#p::ShardId; #len] = [#(#ids),*];)
        }
    };
    let route_values = |values: TokenStream| match &sharding.plan {
        Plan::Hash { count, .. } => {
            let count = Literal::u32_suffixed(*count);
            quote!(#p::hash::route_values::<Self>(#values, #count))
        }
        Plan::PgHash { count, .. } => {
            let count = Literal::u32_suffixed(*count);
            quote!(#p::resolve::pg_hash::route_values::<Self>(#values, #count))
        }
        Plan::Consistent { .. } => {
            quote!(#p::resolve::consistent::route_values::<Self>(__grant_ring(), #values))
        }
        Plan::Range { .. } => {
            quote!(#p::resolve::range::route_values::<Self>(&__GRANT_RANGES, #values))
        }
        Plan::Mapping { .. } => {
            quote!(#p::resolve::mapping::route_values::<Self>(&__GRANT_MAPPING, #values))
        }
        Plan::Directory { .. } => quote! {
            ::core::result::Result::Err(#p::directory::static_route::<Self>(
                &::std::format!("{:?}", #values),
            ))
        },
        Plan::Custom { .. } => {
            quote!(#p::resolve::custom::route_values::<Self, _>(__grant_resolver(), #values))
        }
    };
    let route_value = match &sharding.plan {
        Plan::Hash { count, .. } if sharding.key.len() == 1 => {
            let count = Literal::u32_suffixed(*count);
            quote!(#p::hash::route_value::<Self>(value, #count))
        }
        _ => route_values(quote!(::core::slice::from_ref(value))),
    };
    let route_values = route_values(quote!(values));
    let key_of_pk = key_expr(model, sharding, KeyFrom::PrimaryKey);
    let key_of_row = key_expr(model, sharding, KeyFrom::Row);
    let route_key = route(model, &key_of_pk);
    let route_row = route(model, &key_of_row);
    let fallible = match (try_route(model, &key_of_pk), try_route(model, &key_of_row)) {
        (Some(try_key), Some(try_row)) => quote! {
            fn try_shard_of_key(key: &Self::PrimaryKey) -> #p::Result<#p::ShardId> {
                #try_key
            }

            fn try_shard_of(&self) -> #p::Result<#p::ShardId> {
                #try_row
            }
        },
        _ => TokenStream::new(),
    };
    let range = match &sharding.plan {
        Plan::Range { .. } => quote! {
            fn shards_for_range(
                low: ::core::ops::Bound<&#p::sea_query::Value>,
                high: ::core::ops::Bound<&#p::sea_query::Value>,
            ) -> #p::Result<::core::option::Option<::std::vec::Vec<#p::ShardId>>> {
                #p::resolve::range::shards_for_range(&__GRANT_RANGES, low, high)
            }
        },
        Plan::Custom { .. } => quote! {
            fn shards_for_range(
                low: ::core::ops::Bound<&#p::sea_query::Value>,
                high: ::core::ops::Bound<&#p::sea_query::Value>,
            ) -> #p::Result<::core::option::Option<::std::vec::Vec<#p::ShardId>>> {
                #p::resolve::Resolver::shards_for_range(
                    __grant_resolver(),
                    <Self as #p::Model>::META,
                    low,
                    high,
                )
            }
        },
        _ => TokenStream::new(),
    };
    quote! {
        fn shards() -> &'static [#p::ShardId] {
            #shards
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

        fn shard_for_values(
            values: &[#p::sea_query::Value],
        ) -> #p::Result<#p::ShardId> {
            #route_values
        }

        #range
        #fallible
    }
}

/// `static SHARDS` of `count` shards named `{prefix}{i}`.
fn prefixed_shards(count: u32, prefix: &str) -> TokenStream {
    let p = private();
    let len = Literal::usize_unsuffixed(count as usize);
    let count = Literal::u32_suffixed(count);
    quote! {
        static SHARDS: [#p::ShardId; #len] = {
            let mut shards = [#p::ShardId::prefixed(#prefix, 0); #len];
            let mut index: u32 = 0;
            while index < #count {
                shards[index as usize] = #p::ShardId::prefixed(#prefix, index);
                index += 1;
            }
            shards
        };
    }
}

fn sharded_impl(model: &Model<'_>) -> TokenStream {
    let p = private();
    let Placement::Sharded(sharding) = &model.placement else {
        return TokenStream::new();
    };
    let columns = key_columns(model, sharding);
    if columns.is_empty() {
        return TokenStream::new();
    }
    let ident = model.ident;
    let key_ty = key_type(model, sharding);
    let (ref_ty, row_ref) = match columns.as_slice() {
        [only] => {
            let (field, ty) = (only.ident, only.ty);
            (quote!(&'__grant_key #ty), quote!(&self.#field))
        }
        many => {
            let types = many.iter().map(|c| c.ty);
            let fields = many.iter().map(|c| c.ident);
            (
                quote!((#(&'__grant_key #types,)*)),
                quote!((#(&self.#fields,)*)),
            )
        }
    };
    // The `Model` impl carries the checked bounds; these only restate them.
    let mut holds = vec![
        deferred(quote!(Self: #p::Model)),
        deferred(quote!(#key_ty: #p::ShardKey)),
    ];
    holds.extend(
        key_bounds(model, sharding)
            .into_iter()
            .map(|(ty, bound)| deferred(quote!(#ty: #bound))),
    );
    dedup(&mut holds);
    let shard_for = route(model, &quote!(key));
    let try_shard_for = try_route(model, &quote!(key)).map(|body| {
        quote! {
            fn try_shard_for(key: &Self::ShardKey) -> #p::Result<#p::ShardId> {
                #body
            }
        }
    });
    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications)]
        impl #p::Sharded for #ident
        where
            #(#holds,)*
        {
            type ShardKey = #key_ty;
            type ShardKeyRef<'__grant_key> = #ref_ty;

            fn shard_key(&self) -> Self::ShardKeyRef<'_> {
                #row_ref
            }

            fn shard_for(key: &Self::ShardKey) -> #p::ShardId {
                #shard_for
            }

            #try_shard_for
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
            #ty: #p::SqlType
        }
    });
    let fields = model.columns.iter().enumerate().map(|(i, c)| {
        let (field, ty) = (c.ident, c.ty);
        let i = Literal::usize_unsuffixed(i);
        quote!(#field: <__DB as #p::Backend>::get_column::<#ty>(row, offset + #i)?)
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
                <Self as #p::FromShardRow<__DB>>::from_row_at(row, 0)
            }

            fn from_row_at(
                row: &<__DB as #p::sqlx::Database>::Row,
                offset: usize,
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
    /// A primary-key (hence also every shard-key) column: typed `Column<_, _, Key>`, so that
    /// an update by filter cannot assign it.
    pub(crate) key: bool,
}

/// The inherent `shard_for` and `try_shard_for` to generate.
pub(crate) enum ShardFor {
    /// None (`#[derive(Model)]`).
    Absent,
    /// `shard_for(key: &T)`, computing `route` (the same as `Sharded::shard_for`), and
    /// `try_shard_for(key: &T)` computing `try_route` (or `Ok(route)` when absent).
    Typed {
        /// The shard key's type (a tuple for a composite key).
        ty: TokenStream,
        route: TokenStream,
        try_route: Option<TokenStream>,
        /// Deferred bounds the bodies rely on (the strategy's key traits).
        bounds: Vec<TokenStream>,
    },
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
    pub(crate) shard_for: ShardFor,
    pub(crate) bodies: Bodies,
    /// A reference table: writes and `create_table` go to every shard.
    pub(crate) reference: bool,
    /// Generated methods renamed with `#[grant(methods(..))]`: (generated name, new name).
    pub(crate) methods: &'a [(String, Ident)],
}

impl Inherent<'_> {
    /// The name the generated method `name` gets.
    fn method(&self, name: &str) -> Ident {
        self.methods
            .iter()
            .find(|(m, _)| m == name)
            .map_or_else(|| Ident::new(name, Span::call_site()), |(_, i)| i.clone())
    }
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
    let [
        m_create_table,
        m_insert,
        m_insert_many,
        m_upsert,
        m_upsert_many,
        m_update,
        m_delete,
        m_find,
        m_find_tracked,
        m_query,
        m_on_shard,
        m_on_all_shards,
        m_shard_for,
        m_try_shard_for,
        _,
        _,
    ] = crate::attr::METHODS.map(|m| inherent.method(m));
    let like_shard_for =
        format!("Like `{m_shard_for}`, or the error naming `key` when no shard holds it. Pure.");
    let like_find = format!(
        "Like `{m_find}`, returning the row as a `Tracked` handle that remembers it as read."
    );
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
            key,
        } = c;
        let doc = format!("The `{name}` column of `{table}`, for typed conditions and ordering.");
        let index = Literal::usize_unsuffixed(*index);
        let role = if *key {
            quote!(#p::KeyColumn)
        } else {
            quote!(#p::DataColumn)
        };
        quote! {
            #[doc = #doc]
            #vis const #constant: #p::Column<Self, #ty, #role> = #p::Column::new(#name, #index);
        }
    });

    let shard_for = match &inherent.shard_for {
        ShardFor::Absent => TokenStream::new(),
        ShardFor::Typed {
            ty,
            route,
            try_route,
            ..
        } => {
            let call = body(route.clone());
            let try_call = body(
                try_route
                    .clone()
                    .unwrap_or_else(|| quote!(::core::result::Result::Ok(#route))),
            );
            quote! {
                /// The shard holding the rows with shard key `key`. Pure: no I/O.
                #vis fn #m_shard_for(key: &#ty) -> #p::ShardId {
                    #call
                }

                #[doc = #like_shard_for]
                #vis fn #m_try_shard_for(key: &#ty) -> #p::Result<#p::ShardId> {
                    #try_call
                }
            }
        }
        ShardFor::Any => quote! {
            /// The shard holding the rows with shard key `key`. Pure: no I/O.
            #vis fn #m_shard_for<K: ?::core::marker::Sized>(key: &K) -> #p::ShardId {
                ::core::unreachable!()
            }

            #[doc = #like_shard_for]
            #vis fn #m_try_shard_for<K: ?::core::marker::Sized>(key: &K) -> #p::Result<#p::ShardId> {
                ::core::unreachable!()
            }
        },
    };

    // Reference tables write every shard (one atomic transaction); others the row's shard.
    let writes = if inherent.reference {
        quote!(#p::txn)
    } else {
        quote!(#p::crud)
    };
    let create_table = body(quote!(#writes::create_table::<Self, DB>(cluster).await));
    let insert = body(quote!(#writes::insert(cluster, self).await));
    let insert_many = body(quote!(#writes::insert_many(cluster, rows).await));
    let upsert = body(quote!(#writes::upsert(cluster, self).await));
    let upsert_many = body(quote!(#writes::upsert_many(cluster, rows).await));
    let update = body(quote!(#writes::update(cluster, self).await));
    let delete = body(quote!(#writes::delete(cluster, self).await));
    let find = body(quote!(#p::crud::find(cluster, key).await));
    let find_tracked = body(quote!(#p::crud::find_tracked(cluster, key).await));
    let query = body(quote!(#p::Query::auto()));
    let on_shard = body(quote!(#p::Query::on_shard(shard)));
    let on_all_shards = body(quote!(#p::Query::on_all_shards()));
    let (allow_unused, where_clause) = match inherent.bodies {
        Bodies::Real => {
            let mut holds = vec![deferred(quote!(Self: #p::Model))];
            if let ShardFor::Typed { ty, bounds, .. } = &inherent.shard_for {
                holds.push(deferred(quote!(#ty: #p::ShardKey)));
                holds.extend(bounds.iter().cloned());
            }
            dedup(&mut holds);
            (TokenStream::new(), quote!(where #(#holds),*))
        }
        Bodies::Placeholder => (quote!(#[allow(unused_variables)]), TokenStream::new()),
    };

    quote! {
        #[automatically_derived]
        #[allow(unused_qualifications)]
        #allow_unused
        impl #ident
        #where_clause
        {
            #(#constants)*

            #shard_for

            /// Creates the table, if it does not exist, on every shard the model uses.
            #vis async fn #m_create_table<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #create_table
            }

            /// Inserts this row on its shard.
            #vis async fn #m_insert<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #insert
            }

            /// Inserts `rows`, grouped per shard, shards in parallel; returns the number inserted.
            #vis async fn #m_insert_many<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                rows: &[Self],
            ) -> #p::Result<u64> {
                #insert_many
            }

            /// Inserts this row on its shard, or updates every other column of the row with its
            /// primary key where one exists: atomic on its shard (`ON CONFLICT DO UPDATE`).
            #vis async fn #m_upsert<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #upsert
            }

            /// Upserts `rows`, grouped per shard (a primary key given twice: the last row);
            /// returns the number of distinct rows written.
            #vis async fn #m_upsert_many<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                rows: &[Self],
            ) -> #p::Result<u64> {
                #upsert_many
            }

            /// Updates this row (found by its primary key) on its shard.
            #vis async fn #m_update<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<()> {
                #update
            }

            /// Deletes this row (found by its primary key); returns whether a row was deleted.
            #vis async fn #m_delete<DB: #p::Backend>(
                &self,
                cluster: &#p::Cluster<DB>,
            ) -> #p::Result<bool> {
                #delete
            }

            /// The row with primary key `key`, read from the one shard that can hold it.
            #vis async fn #m_find<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                key: <Self as #p::Model>::PrimaryKey,
            ) -> #p::Result<::core::option::Option<Self>>
            where
                Self: #p::FromShardRow<DB>,
            {
                #find
            }

            #[doc = #like_find]
            #vis async fn #m_find_tracked<DB: #p::Backend>(
                cluster: &#p::Cluster<DB>,
                key: <Self as #p::Model>::PrimaryKey,
            ) -> #p::Result<::core::option::Option<#p::Tracked<Self>>>
            where
                Self: #p::FromShardRow<DB>,
            {
                #find_tracked
            }

            /// A query routed by its conditions: to the shards its shard-key conditions allow.
            #vis fn #m_query() -> #p::Query<Self> {
                #query
            }

            /// A query run on the shard `shard` only.
            #vis fn #m_on_shard(shard: #p::ShardId) -> #p::Query<Self> {
                #on_shard
            }

            /// A query run on every shard the model uses, results merged.
            #vis fn #m_on_all_shards() -> #p::Query<Self> {
                #on_all_shards
            }
        }
    }
}
