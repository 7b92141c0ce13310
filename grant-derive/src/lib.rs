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
//! A field type without an SQL type, or a shard key whose type the strategy cannot place (an
//! alias of an `Option`, an `f64`), is reported by the compiler at the field's type: the
//! generated `Model` impl states those bounds in its where-clause.

mod ast;
mod attr;
mod expand;
mod fallback;
mod names;
mod sql_enum;
mod timetext;
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
/// * `#[shard(strategy = "...", on = ..., <strategy options>)]` — required. `strategy` picks how a
///   key maps to a shard (below). `on` names the shard-key field — `on = "id"` — or, for a
///   composite shard key, several fields in key order — `on = ["tenant_id", "user_id"]` (at most
///   4; `hash`, `pg_hash` and `consistent_hash` only). Every shard-key field must be a
///   `#[primary_key]` field and not an `Option`. The shard key's type is the field's type, or a
///   tuple of the fields' types in `on` order: `Doc::shard_for(&(tenant, user))`.
/// * `#[grant(table = "...")]` — optional: the SQL table name. Default: the struct name in
///   snake case (`OrderItem` → `order_item`).
/// * `#[grant(crate = "...")]` — optional: the path generated code uses for the `grant` crate,
///   for a crate that re-exports Grant under another name (`crate = "::my_app::db::grant"`).
///   Default `::grant`.
///
/// ## Strategies
///
/// | strategy | options | shards | key types |
/// |---|---|---|---|
/// | `hash` | `count = N`, `prefix = "shard_"` | `{prefix}0 .. {prefix}{N-1}` | any `ShardKey`, composite too |
/// | `pg_hash` | `count = N`, `prefix = "shard_"` | as `hash`; `N` is PostgreSQL's modulus | `PgHashKey`: integers to `i64`, `String`, `Vec<u8>`, `[u8; 16]` (uuid), composite too |
/// | `consistent_hash` | `count = N`, `prefix`, `vnodes = 150`, `weights(<shard> = w, ..)` | as `hash` | any `ShardKey`, composite too |
/// | `range` | `ranges(<shard> = <range>, ..)` | the names in `ranges`, in order | `IntKey`: integers to `i64` |
/// | `mapping` (also `geographic`, `lookup`) | `map(<value> = "<shard>", ..)`, `default = "<shard>"` | the names in `map`, then `default` | `TextKey` (`String`) for string values, `IntKey` for integer values |
///
/// * `hash` — SipHash-2-4 with fixed keys of the key's canonical bytes, remainder `count`; stable
///   forever (`grant::resolve::hash`). `count` is `1 ..= 65536`; `prefix` (default `"shard_"`)
///   is the stem of the cluster shard names.
/// * `pg_hash` — exactly where PostgreSQL puts the row in a table `PARTITION BY HASH (<on
///   columns>)` with partitions `FOR VALUES WITH (MODULUS count, REMAINDER r)`: shard `r`
///   (`grant::resolve::pg_hash`).
/// * `consistent_hash` — a hash ring with `vnodes` points per shard (default 150, `1 ..= 65536`);
///   `weights(shard_0 = 2, shard_3 = 0.5)` scales a shard's points (names are the model's
///   `{prefix}{i}`). Adding a shard (`count = N + 1`) moves about `1/(N+1)` of the keys, all onto
///   the new shard.
/// * `range` — integer ranges on named shards: `ranges(shard_2024 = ..20250101, shard_2025 =
///   20250101..20260101, shard_now = 20260101..)`. A range is `start..end` (end excluded),
///   `start..=end` (end included), `..end` or `start..` (open below or above; only the first and
///   last range can be open). Bounds are integer literals (negative ones too). Ranges may be
///   written in any order but must neither overlap nor leave gaps between them; a shard may hold
///   several ranges. A key below the first or above the last closed range has no shard
///   (`Error::UnknownShard` naming it). `lt`, `lte`, `gt`, `gte` and `between` on the key prune
///   the shards a query visits. A shard name is an identifier or a string (`"shard-2024" = ..`).
/// * `mapping` — listed values on named shards: `map(de = "shard_eu", fr = "shard_eu", "us-east"
///   = "shard_us")`; values are identifiers or strings (a `String` key) or integers (`map(1 =
///   "shard_big", -2 = "shard_small")`, an integer key). `default = "shard_other"` takes every
///   value not listed; without it, an unlisted value has no shard and routing it is
///   `Error::UnknownShard` naming the value — never a guess.
///
/// Options of another strategy (`count` with `range`, `vnodes` with `hash`, ...), a malformed,
/// empty, overlapping or gapped range, an empty `map()`, a value listed twice, and a key type the
/// strategy cannot place (`pg_hash` on an `f64`, `range` on a `String`) are compile errors at the
/// offending token.
///
/// Strategies that name their shards give `ShardId::named(index, "name")`, `index` being the
/// position in the model's shard list. A key no shard holds gets `ShardId::UNPLACED` from the
/// infallible `shard_for` (operations routed there fail with `Error::UnknownShard`);
/// `try_shard_for` returns that error naming the key.
///
/// # Field attributes
///
/// * `#[primary_key]` — the field is (part of) the primary key. At least one field must have it;
///   with several, the key is a tuple of them in field order.
/// * `#[grant(column = "...")]` — the SQL column name. Default: the field name.
///
/// Every field type must have an SQL type (`grant::SqlType`: `bool`, `i16`, `i32`, `i64`, `f32`,
/// `f64`, `String`, `Vec<u8>` and `Option` of those); the shard key's type must be one the
/// strategy can place (`grant::ShardKey`, `grant::PgHashKey`, `grant::IntKey` or
/// `grant::TextKey`, never an `Option`). The compiler reports a field that breaks these rules at
/// the field's type.
///
/// # What it generates
///
/// * `impl grant::Model for User`: the primary key type (the field's type, or a tuple in field
///   order), the table's metadata (`META`), key and column values, and placement: the model's
///   shards and the shard of a key, a row or a dynamic value.
/// * `impl grant::Sharded for User`: the shard-key type, the row's key (`shard_key()`),
///   `shard_for(&key)` and `try_shard_for(&key)`.
/// * `impl<DB: Backend> grant::FromShardRow<DB> for User`: decoding a row whose columns are the
///   model's columns in order.
/// * An inherent `impl User` with the struct's visibility:
///   * one typed column constant per field, the field name in upper snake case
///     (`User::ID: Column<User, i64>`), for conditions and ordering;
///   * `User::shard_for(&key) -> ShardId` and `User::try_shard_for(&key) -> Result<ShardId>`;
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
/// * `#[grant(reference)]` — optional: a reference (broadcast) table, identical rows on every
///   shard of the cluster. `create_table`, `insert`, `insert_many`, `update` and `delete` then
///   write every shard in one atomic transaction (two-phase commit on PostgreSQL; refused with
///   `Error::Unsupported` on a cluster of several SQLite shards); `find` and `query` read the
///   shard named by `#[grant(shard = "...")]`, and inside a single-shard transaction that
///   transaction's shard. `Model::REFERENCE` is `true`.
/// * `#[grant(crate = "...")]` — optional: the path generated code uses for the `grant` crate,
///   for a crate that re-exports Grant under another name (`crate = "::my_app::db::grant"`).
///   Default `::grant`.
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
/// Derives Grant's column traits for a fieldless enum, stored as the text of the variant's
/// name: usable as a field type, in filters, `ORDER BY` (by that text, in byte order) and
/// `GROUP BY`.
///
/// ```ignore
/// #[derive(SqlEnum, Clone, Copy, Debug, PartialEq, Eq)]
/// enum Status {
///     Open,
///     #[grant(rename = "in_progress")]
///     InProgress,
///     Closed,
/// }
///
/// Issue::query().filter(Issue::STATUS.eq(Status::Open)).count(&cluster).await?;
/// ```
///
/// * `#[grant(rename = "...")]` on a variant: the text stored for it (default: its name).
/// * `#[grant(crate = "...")]` on the enum: the path of the `grant` crate (default `::grant`).
///
/// Reading a row whose text is no variant is an error naming the enum and the text, never a
/// default variant. Generated: `SqlType`, `FromValue`, `Orderable`, `From<Enum> for Value`,
/// `sea_query::Nullable` (so `Option<Enum>` columns work) and `Enum::as_sql_str()`.
#[proc_macro_derive(SqlEnum, attributes(grant))]
pub fn derive_sql_enum(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => sql_enum::expand(input).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

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
    let _crate_path =
        expand::CratePath::set(parsed.as_ref().and_then(|p| p.attrs.krate.get().cloned()));
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
