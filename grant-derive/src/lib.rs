//! Derive macros for Grant: `#[derive(Sharded)]` for tables spread over shards by a shard key and
//! `#[derive(Model)]` for unsharded tables that live on one shard.
//!
//! Use them through the `grant` facade (`use grant::prelude::*;`): the generated code refers only
//! to `::grant::...` paths, so an application needs no other dependency.
//!
//! The macros work in stages, one module each: read the struct (`ast`) and its attributes
//! (`attr`), check them against each other (`valid`: the shard key names a field, is not an
//! `Option` and is part of the primary key), then generate code (`expand`). Every mistake is
//! reported at once, each at the token that caused it; beside the errors the macros emit
//! placeholder impls (`fallback`) so that one mistake does not cascade into dozens.
//!
//! A field type without an SQL type, or a shard key whose type is not a shard key type (an alias of
//! an `Option`, an `f64`), is reported by the compiler at the field's type: the generated `Model`
//! impl states those bounds in its where-clause.

mod ast;
mod attr;
mod expand;
mod fallback;
mod names;
mod valid;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

/// Derives `Model` and `Sharded` for a struct whose rows are spread over shards by a shard key.
///
/// ```ignore
/// use grant::prelude::*;
///
/// #[derive(Sharded, Debug, Clone, PartialEq)]
/// #[grant(table = "users")]
/// #[shard(strategy = "hash", on = "id", count = 8)]
/// pub struct User {
///     #[primary_key]
///     pub id: i64,
///     #[grant(column = "display_name")]
///     pub name: String,
///     pub email: Option<String>,
/// }
///
/// let shard = User::shard_for(&7);            // pure: no I/O
/// let rows = User::query().filter(User::NAME.eq("Ada")).all(&cluster).await?;
/// ```
///
/// # Container attributes
///
/// * `#[shard(strategy = "hash", on = "<field>", count = N)]` — required. `strategy` picks how a
///   key maps to a shard; the only strategy today is `hash` (stable SipHash-2-4 of the key,
///   remainder `count`). `on` names the shard-key field: it must be a `#[primary_key]` field and
///   not an `Option`. `count` is the number of shards, `1 ..= 65536`.
/// * `#[shard(prefix = "shard_")]` — optional: the stem of the cluster shard names the model uses,
///   `{prefix}0 .. {prefix}{count - 1}`. Default `"shard_"`.
/// * `#[grant(table = "...")]` — optional: the SQL table name. Default: the struct name in
///   snake case (`OrderItem` → `order_item`).
///
/// # Field attributes
///
/// * `#[primary_key]` — the field is (part of) the primary key. At least one field must have it;
///   with several, the key is a tuple of them in field order.
/// * `#[grant(column = "...")]` — the SQL column name. Default: the field name.
///
/// Every field type must have an SQL type (`grant::SqlType`: `bool`, `i16`, `i32`, `i64`, `f32`,
/// `f64`, `String`, `Vec<u8>` and `Option` of those); the shard key's type must be a
/// `grant::ShardKey` (an integer or a string, never an `Option`). The compiler reports a field
/// that breaks these rules at the field's type.
///
/// # What it generates
///
/// * `impl grant::Model for User`: the primary key type (the field's type, or a tuple in field
///   order), the table's metadata (`META`), key and column values, and placement: the model's
///   shards and the shard of a key, a row or a dynamic value.
/// * `impl grant::Sharded for User`: the shard-key type and `shard_for(&key)`.
/// * `impl<DB: Backend> grant::FromShardRow<DB> for User`: decoding a row whose columns are the
///   model's columns in order.
/// * An inherent `impl User` with the struct's visibility:
///   * one typed column constant per field, the field name in upper snake case
///     (`User::ID: Column<User, i64>`), for conditions and ordering;
///   * `User::shard_for(&key) -> ShardId`;
///   * `User::create_table(&cluster)`, `user.insert(&cluster)`,
///     `User::insert_many(&cluster, &rows)`, `user.update(&cluster)`, `user.delete(&cluster)`,
///     `User::find(&cluster, key)`, `User::find_tracked(&cluster, key)`;
///   * `User::query()`, `User::on_shard(id)`, `User::on_all_shards()`.
///
/// Generics, enums, unions and tuple structs are not supported.
#[proc_macro_derive(Sharded, attributes(shard, grant, primary_key))]
pub fn derive_sharded(input: TokenStream) -> TokenStream {
    derive_sharded_inner(input.into()).into()
}

/// Derives `Model` for an unsharded table: one that lives on a single shard of the cluster
/// (reference data, configuration, small lookup tables).
///
/// ```ignore
/// use grant::prelude::*;
///
/// #[derive(Model, Debug, Clone, PartialEq)]
/// #[grant(table = "countries", shard = "shard_0")]
/// pub struct Country {
///     #[primary_key]
///     pub code: String,
///     pub name: String,
/// }
/// ```
///
/// # Container attributes
///
/// * `#[grant(table = "...")]` — optional: the SQL table name. Default: the struct name in
///   snake case.
/// * `#[grant(shard = "...")]` — optional: the name of the cluster shard holding the table.
///   Default `"shard_0"`.
///
/// `#[shard(..)]` is not allowed: a table spread over shards derives `Sharded` instead.
///
/// # Field attributes
///
/// * `#[primary_key]` — the field is (part of) the primary key; at least one field must have it.
/// * `#[grant(column = "...")]` — the SQL column name. Default: the field name.
///
/// # What it generates
///
/// The same as `#[derive(Sharded)]` except the `Sharded` impl and `shard_for`: `impl Model`
/// (placing every row on the one shard), `impl FromShardRow<DB>`, typed column constants, and the
/// inherent `create_table`, `insert`, `insert_many`, `update`, `delete`, `find`, `find_tracked`,
/// `query`, `on_shard` and `on_all_shards`.
#[proc_macro_derive(Model, attributes(grant, primary_key, shard))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    derive_model_inner(input.into()).into()
}

/// Which derive is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Derive {
    /// `#[derive(Sharded)]`.
    Sharded,
    /// `#[derive(Model)]`.
    Model,
}

impl Derive {
    /// The derive as the user writes it, for messages.
    fn as_written(self) -> &'static str {
        match self {
            Derive::Sharded => "#[derive(Sharded)]",
            Derive::Model => "#[derive(Model)]",
        }
    }
}

/// `#[derive(Sharded)]` on a token stream: the expansion, or compile errors beside placeholder
/// impls.
fn derive_sharded_inner(input: TokenStream2) -> TokenStream2 {
    derive(input, Derive::Sharded)
}

/// `#[derive(Model)]` on a token stream.
fn derive_model_inner(input: TokenStream2) -> TokenStream2 {
    derive(input, Derive::Model)
}

fn derive(input: TokenStream2, kind: Derive) -> TokenStream2 {
    match run(input, kind) {
        Ok(tokens) => tokens,
        Err((error, placeholder)) => {
            let error = error.to_compile_error();
            quote::quote! {
                #error
                #placeholder
            }
        }
    }
}

/// Parse → validate → expand. On error: every error found, and the placeholder impls.
fn run(input: TokenStream2, kind: Derive) -> Result<TokenStream2, (syn::Error, TokenStream2)> {
    let input: syn::DeriveInput = syn::parse2(input).map_err(|e| (e, TokenStream2::new()))?;
    let mut errors = attr::Errors::default();
    let parsed = ast::Input::from_syn(&input, kind, &mut errors);
    let checked = parsed
        .as_ref()
        .and_then(|parsed| valid::check(parsed, kind, &mut errors));
    match (errors.finish(), checked) {
        (Ok(()), Some(model)) => Ok(expand::expand(&model)),
        (Err(error), _) => Err((error, fallback::expand(&input, parsed.as_ref(), kind))),
        (Ok(()), None) => Err((
            syn::Error::new_spanned(&input.ident, "internal error in grant-derive: no model"),
            fallback::expand(&input, parsed.as_ref(), kind),
        )),
    }
}
