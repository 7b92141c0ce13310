//! The `mapping` strategy (also written `geographic` or `lookup`): each listed key value names
//! its shard — data residency by region, a tenant pinned to its own database — with an optional
//! default shard for values not listed.
//!
//! Without a default, a value that is not listed has no shard, and routing it is an
//! [`Error::UnknownShard`] naming the value, never a guess.

use std::borrow::Cow;
use std::cmp::Ordering;

use grant_core::{Error, KeyPart, KeyVisitor, Model, Result, ShardId, ShardKey};
use sea_query::Value;

/// A value a mapping lists: an integer or a string.
///
/// Ordered for lookups: integers before strings, integers by value, strings by length and then
/// by bytes (most comparisons are then settled by the length alone).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MappingKey {
    /// An integer key value (of any width).
    Int(i64),
    /// A string key value.
    Text(Cow<'static, str>),
}

impl MappingKey {
    /// A string key value known at compile time.
    pub const fn text(s: &'static str) -> Self {
        MappingKey::Text(Cow::Borrowed(s))
    }

    /// How this key orders against a key part, in [`MappingKey`]'s order.
    #[inline]
    fn cmp_part(&self, part: &KeyPart<'_>) -> Ordering {
        match (self, part) {
            (MappingKey::Int(a), KeyPart::Int(b)) => a.cmp(b),
            (MappingKey::Text(a), KeyPart::Text(b)) => text_order(a, b),
            (MappingKey::Int(_), _) => Ordering::Less,
            (MappingKey::Text(_), KeyPart::Int(_)) => Ordering::Greater,
            // Byte strings and UUIDs are never listed: they order after every listed key.
            (MappingKey::Text(_), _) => Ordering::Less,
        }
    }
}

/// Strings by length, then by bytes.
#[inline]
fn text_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl Ord for MappingKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (MappingKey::Int(a), MappingKey::Int(b)) => a.cmp(b),
            (MappingKey::Text(a), MappingKey::Text(b)) => text_order(a, b),
            (MappingKey::Int(_), MappingKey::Text(_)) => Ordering::Less,
            (MappingKey::Text(_), MappingKey::Int(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for MappingKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<i64> for MappingKey {
    fn from(v: i64) -> Self {
        MappingKey::Int(v)
    }
}

impl From<i32> for MappingKey {
    fn from(v: i32) -> Self {
        MappingKey::Int(i64::from(v))
    }
}

impl From<&'static str> for MappingKey {
    fn from(s: &'static str) -> Self {
        MappingKey::text(s)
    }
}

impl From<String> for MappingKey {
    fn from(s: String) -> Self {
        MappingKey::Text(Cow::Owned(s))
    }
}

impl std::fmt::Display for MappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MappingKey::Int(v) => write!(f, "{v}"),
            MappingKey::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// Listed key values → shards, with an optional default.
///
/// # Examples
///
/// ```
/// use grant_core::ShardId;
/// use grant_sharding::resolve::MappingResolver;
///
/// let eu = ShardId::named(0, "shard_eu");
/// let us = ShardId::named(1, "shard_us");
/// let other = ShardId::named(2, "shard_other");
/// let by_region = MappingResolver::new([("de", eu), ("fr", eu), ("us", us)], Some(other)).unwrap();
/// assert_eq!(by_region.shard_for("fr"), Some(eu));
/// assert_eq!(by_region.shard_for("br"), Some(other));
///
/// let strict = MappingResolver::new([("de", eu)], None).unwrap();
/// assert_eq!(strict.shard_for("br"), None);
/// ```
#[derive(Debug, Clone)]
pub struct MappingResolver {
    /// In `MappingKey`'s order, keys distinct.
    entries: Cow<'static, [(MappingKey, ShardId)]>,
    default: Option<ShardId>,
}

impl MappingResolver {
    /// Entries already sorted by key ([`MappingKey`]'s order) with distinct keys — what
    /// `#[derive(Sharded)]` generates after checking them at compile time.
    /// [`MappingResolver::new`] sorts and checks them.
    pub const fn from_sorted(
        entries: &'static [(MappingKey, ShardId)],
        default: Option<ShardId>,
    ) -> Self {
        MappingResolver {
            entries: Cow::Borrowed(entries),
            default,
        }
    }

    /// Entries in any order.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no entries, or a key value listed twice (naming it).
    pub fn new<K: Into<MappingKey>>(
        entries: impl IntoIterator<Item = (K, ShardId)>,
        default: Option<ShardId>,
    ) -> Result<Self> {
        let mut entries: Vec<(MappingKey, ShardId)> =
            entries.into_iter().map(|(k, s)| (k.into(), s)).collect();
        if entries.is_empty() {
            return Err(Error::Config(
                "mapping strategy: no entries given; list at least one value and its shard".into(),
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = entries.windows(2).find(|p| p[0].0 == p[1].0) {
            return Err(Error::Config(format!(
                "mapping strategy: value {} is listed twice (to `{}` and `{}`)",
                pair[0].0, pair[0].1, pair[1].1
            )));
        }
        Ok(MappingResolver {
            entries: Cow::Owned(entries),
            default,
        })
    }

    /// The listed entries, in [`MappingKey`]'s order.
    pub fn entries(&self) -> &[(MappingKey, ShardId)] {
        &self.entries
    }

    /// The shard of values that are not listed.
    pub fn default_shard(&self) -> Option<ShardId> {
        self.default
    }

    /// The shard of a key part: its entry's, else the default, else `None`.
    #[inline]
    pub fn shard_for_part(&self, part: KeyPart<'_>) -> Option<ShardId> {
        match self.entries.binary_search_by(|(k, _)| k.cmp_part(&part)) {
            Ok(i) => Some(self.entries[i].1),
            Err(_) => self.default,
        }
    }

    /// The shard of `key`: its entry's, else the default, else `None`.
    #[inline]
    pub fn shard_for<K: ShardKey + ?Sized>(&self, key: &K) -> Option<ShardId> {
        let mut lookup = Lookup {
            mapping: self,
            found: None,
        };
        key.visit(&mut lookup);
        lookup.found.flatten()
    }
}

/// Looks up the first part of a key (a mapping's key has one column).
struct Lookup<'m> {
    mapping: &'m MappingResolver,
    found: Option<Option<ShardId>>,
}

impl KeyVisitor for Lookup<'_> {
    #[inline]
    fn part(&mut self, part: KeyPart<'_>) {
        if self.found.is_none() {
            self.found = Some(self.mapping.shard_for_part(part));
        }
    }
}

/// The shard of model `M`, placed by `mapping`, for a dynamic value of its key column.
///
/// # Errors
///
/// [`Error::MissingShardKey`] when the value is NULL or not of a key type;
/// [`Error::UnknownShard`] naming the value when it is not listed and there is no default.
pub fn route_values<M: Model>(mapping: &MappingResolver, values: &[Value]) -> Result<ShardId> {
    let found = super::key_parts::<M, _>(values, |parts| match parts {
        [part] => mapping.shard_for_part(*part).ok_or_else(|| describe(part)),
        _ => Err(String::new()),
    })?;
    found.map_err(|value| unlisted::<M>(mapping, &value))
}

fn describe(part: &KeyPart<'_>) -> String {
    match part {
        KeyPart::Int(v) => v.to_string(),
        KeyPart::Text(s) => format!("{s:?}"),
        KeyPart::Bytes(b) => format!("{b:?}"),
        KeyPart::Uuid(u) => grant_core::key::describe_uuid(u),
    }
}

/// [`Error::UnknownShard`] for a value (rendered) that model `M`'s mapping does not list.
pub fn unlisted<M: Model>(mapping: &MappingResolver, value: &str) -> Error {
    let listed: Vec<String> = mapping
        .entries()
        .iter()
        .take(8)
        .map(|(k, _)| k.to_string())
        .collect();
    let more = if mapping.entries().len() > listed.len() {
        ", ..."
    } else {
        ""
    };
    super::unplaced::<M>(
        value,
        &format!(
            "is not in the mapping ({}{more}) and there is no `default`; add it to \
             `#[shard(map(..))]` or set `default = \"<shard>\"`",
            listed.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_with_the_listing() {
        let names = ["", "a", "b", "ab", "ba", "abc", "é", "日本", "zz", "aaaa"];
        let r = MappingResolver::new(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), ShardId::new(i as u32))),
            None,
        )
        .unwrap();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(r.shard_for(*n), Some(ShardId::new(i as u32)), "{n:?}");
        }
        for missing in ["c", "abcd", "日", "A"] {
            assert_eq!(r.shard_for(missing), None, "{missing:?}");
        }
        let ints =
            MappingResolver::new([(-5_i64, ShardId::new(0)), (7, ShardId::new(1))], None).unwrap();
        assert_eq!(ints.shard_for(&-5_i64), Some(ShardId::new(0)));
        assert_eq!(ints.shard_for(&7_i32), Some(ShardId::new(1)));
        assert_eq!(ints.shard_for(&8_i64), None);
        assert_eq!(ints.shard_for("7"), None);
    }

    #[test]
    fn duplicates_and_empty_mappings_are_refused() {
        assert!(MappingResolver::new(Vec::<(i64, ShardId)>::new(), None).is_err());
        let err = MappingResolver::new([("eu", ShardId::new(0)), ("eu", ShardId::new(1))], None)
            .unwrap_err();
        assert!(err.to_string().contains("\"eu\" is listed twice"), "{err}");
    }
}
