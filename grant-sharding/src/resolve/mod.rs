//! Resolvers: from a shard key to a shard.
//!
//! Each strategy is a type usable without the derive; `#[shard(strategy = ...)]` selects one and
//! the derive's generated code calls it:
//!
//! | strategy | type | shards | keys |
//! |---|---|---|---|
//! | `hash` | [`HashResolver`] | `count`, named `{prefix}{i}` | any [`ShardKey`](grant_core::ShardKey), composite too |
//! | `pg_hash` | [`PgHashResolver`] | `count` = PostgreSQL's modulus | [`PgHashKey`](grant_core::key::PgHashKey), composite too |
//! | `consistent_hash` | [`ConsistentHashResolver`] | `count`, optional weights | any shard key, composite too |
//! | `range` | [`RangeResolver`] | named, one per range (or several ranges per name) | [`IntKey`](grant_core::key::IntKey) |
//! | `mapping` (`geographic`, `lookup`) | [`MappingResolver`] | named, plus an optional default | [`IntKey`](grant_core::key::IntKey) or [`TextKey`](grant_core::key::TextKey) |
//! | `directory` | [`Directory`](crate::placement::directory::Directory) | `count`, named `{prefix}{i}`; more at run time ([`Directory::add_shard`](crate::placement::directory::Directory::add_shard)) | one column, any [`ShardKey`](grant_core::ShardKey); entries in a table on the `home` shard, cached |
//! | `custom` | your type implementing [`Resolver`] | the resolver's [`Resolver::shards`] | any, composite too |
//!
//! Placement at run time: a cluster can override a model's static strategy with any
//! [`Resolver`] (the built-in ones implement it: a [`ConsistentHashResolver`] that gained a shard,
//! a [`MappingResolver`] with a new entry), a [`Directory`](crate::placement::directory::Directory), or a migration between two placements
//! (dual writes) — see [`crate::placement`].

pub mod consistent;
pub mod custom;
pub mod hash;
pub mod mapping;
pub mod pg_hash;
pub mod range;
mod resolver;

pub use consistent::ConsistentHashResolver;
pub use hash::HashResolver;
pub use mapping::{MappingKey, MappingResolver};
pub use pg_hash::PgHashResolver;
pub use range::{KeyRange, RangeResolver};
pub use resolver::{Resolver, describe, hex, names};

use grant_core::{Error, KeyPart, Model, Result, ShardId};
use sea_query::Value;

/// Escapes `text` as one token of a resolver or placement spec: `%`, spaces, newlines and other
/// control characters become `%XX`, so tokens split on spaces and nested specs stay one token.
pub(crate) fn spec_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c == ' ' || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('%'); // the empty token (a lone `%` is never an escape)
    }
    out
}

/// The text of a token written by [`spec_escape`]; `None` for a malformed escape.
pub(crate) fn spec_unescape(token: &str) -> Option<String> {
    if token == "%" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The most columns a composite shard key may have (the tuple sizes [`grant_core::ShardKey`] is
/// implemented for).
pub const MAX_KEY_COLUMNS: usize = 4;

/// Calls `f` with the key parts of dynamic `values` of model `M`'s shard-key columns, in key
/// order.
///
/// # Errors
///
/// [`Error::MissingShardKey`] naming the column whose value is NULL or not of a key type, or
/// when the number of values is not the number of key columns — never a default shard.
pub fn key_parts<M: Model, R>(values: &[Value], f: impl FnOnce(&[KeyPart<'_>]) -> R) -> Result<R> {
    let meta = M::META;
    let columns = key_columns::<M>();
    if values.len() != columns.len() || values.len() > MAX_KEY_COLUMNS {
        return Err(Error::MissingShardKey {
            model: meta.name,
            key: meta.shard_key_name(),
            detail: format!(
                "the shard key ({}) has {} column(s), got {} value(s); give a value for each \
                 key column",
                meta.shard_key_names(),
                columns.len(),
                values.len()
            ),
        });
    }
    let mut parts = [KeyPart::Int(0); MAX_KEY_COLUMNS];
    for ((slot, value), &column) in parts.iter_mut().zip(values).zip(columns) {
        *slot = KeyPart::from_value(value).ok_or_else(|| Error::MissingShardKey {
            model: meta.name,
            key: meta.columns.get(column).map_or("-", |c| c.name),
            detail: format!("got {value:?}, which is NULL or not an integer, string or bytes"),
        })?;
    }
    Ok(f(&parts[..values.len()]))
}

/// Model `M`'s shard-key columns (positions in `M::META.columns`), in key order: the one
/// lookup every layer uses.
pub(crate) fn key_columns<M: Model>() -> &'static [usize] {
    match M::META.shard_key_columns {
        [] => M::META.shard_key.as_slice(),
        columns => columns,
    }
}

/// The shard at position `index` of model `M`'s shard list.
///
/// # Errors
///
/// [`Error::Config`] when the model lists fewer shards (a hand-written `Model` impl whose
/// `shards()` disagrees with its strategy).
pub fn nth_shard<M: Model>(index: usize) -> Result<ShardId> {
    M::shards().get(index).copied().ok_or_else(|| {
        Error::Config(format!(
            "model `{}` routed a key to shard position {index}, but lists only {} shards",
            M::META.name,
            M::shards().len()
        ))
    })
}

/// The error for a key no shard of model `M` holds: [`Error::UnknownShard`] whose `shard` names
/// the key column and value (`<none for region = "br">`) and whose `known` lists the model's
/// shards followed by `why` (which says what to do).
pub fn unplaced<M: Model>(key: &str, why: &str) -> Error {
    let shards = M::shards()
        .iter()
        .map(ShardId::name)
        .collect::<Vec<_>>()
        .join(", ");
    Error::UnknownShard {
        model: M::META.name,
        shard: format!("<none for {} = {key}>", M::META.shard_key_names()),
        known: format!("{shards}; {key} {why}"),
    }
}
