//! Tenant pins: a few shard-key values placed on named shards over a base placement — a hot
//! tenant isolated on a shard of its own ([`Placement::Pinned`](super::Placement::Pinned)).
//!
//! Pins are meant for a handful of keys (they are looked up by a scan, before the base
//! placement): to place many keys one by one, use a directory.

use std::fmt;

use grant_core::key::{OwnedKeyPart, describe_part};
use grant_core::{KeyPart, ShardId};

/// Shard-key values pinned to shards, in key order (so two equal sets print the same: a
/// resharding job's fingerprint).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pins {
    entries: Vec<(Vec<OwnedKeyPart>, ShardId)>,
}

impl Pins {
    /// No pins.
    pub fn new() -> Self {
        Self::default()
    }

    /// These pins with `key` (its shard-key parts) on `shard`, replacing a pin of the same key.
    pub fn with(mut self, key: &[KeyPart<'_>], shard: ShardId) -> Self {
        let owned: Vec<OwnedKeyPart> = key.iter().map(|p| OwnedKeyPart::from(*p)).collect();
        match self.entries.binary_search_by(|(k, _)| k.cmp(&owned)) {
            Ok(i) => self.entries[i].1 = shard,
            Err(i) => self.entries.insert(i, (owned, shard)),
        }
        self
    }

    /// These pins without `key`'s.
    pub fn without(mut self, key: &[KeyPart<'_>]) -> Self {
        self.entries.retain(|(k, _)| !same(k, key));
        self
    }

    /// The shard `key` is pinned to.
    #[inline]
    pub fn get(&self, key: &[KeyPart<'_>]) -> Option<ShardId> {
        self.entries
            .iter()
            .find(|(k, _)| same(k, key))
            .map(|(_, shard)| *shard)
    }

    /// Every pin: the key's parts and its shard, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[OwnedKeyPart], ShardId)> {
        self.entries.iter().map(|(k, s)| (k.as_slice(), *s))
    }

    /// How many keys are pinned.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is pinned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the pins' shards missing from `out` (by name).
    pub(crate) fn add_shards(&self, out: &mut Vec<ShardId>) {
        for (_, shard) in &self.entries {
            if !out.iter().any(|s| s.name() == shard.name()) {
                out.push(*shard);
            }
        }
    }
}

fn same(owned: &[OwnedKeyPart], key: &[KeyPart<'_>]) -> bool {
    owned.len() == key.len() && owned.iter().zip(key).all(|(o, k)| o.as_part() == *k)
}

impl fmt::Debug for Pins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, shard) in &self.entries {
            let parts: Vec<String> = key.iter().map(|p| describe_part(&p.as_part())).collect();
            map.entry(&format_args!("{}", parts.join(", ")), &shard.name());
        }
        map.finish()
    }
}
