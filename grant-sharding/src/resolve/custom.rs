//! The `custom` strategy: a user type implementing [`Resolver`].
//!
//! `#[shard(strategy = "custom", on = "id", resolver = "path::Type")]` places the model's rows
//! with one value of `Type` (built with `Default` on first use) through these functions; the
//! same type can also be installed on a cluster at run time with
//! [`cluster.set_placement::<M>(Placement::resolver(value))`](crate::Cluster::set_placement).

pub use super::Resolver;

use grant_core::key::OwnedKeyPart;
use grant_core::{KeyPart, KeyVisitor, Model, Result, ShardId, ShardKey};
use sea_query::Value;

use super::MAX_KEY_COLUMNS;

/// The shard of `key` under `resolver`, for model `M`.
///
/// # Errors
///
/// The resolver's error.
pub fn try_shard_for<M: Model, R: Resolver + ?Sized, K: ShardKey + ?Sized>(
    resolver: &R,
    key: &K,
) -> Result<ShardId> {
    let mut parts = Parts {
        parts: [None, None, None, None],
        len: 0,
    };
    key.visit(&mut parts);
    let mut borrowed = [KeyPart::Int(0); MAX_KEY_COLUMNS];
    let len = parts.len.min(MAX_KEY_COLUMNS);
    for (slot, part) in borrowed.iter_mut().zip(parts.parts.iter().flatten()) {
        *slot = part.as_part();
    }
    resolver.shard_for_key(M::META, &borrowed[..len])
}

/// [`try_shard_for`], with [`ShardId::UNPLACED`] for a key the resolver refuses.
pub fn shard_for<M: Model, R: Resolver + ?Sized, K: ShardKey + ?Sized>(
    resolver: &R,
    key: &K,
) -> ShardId {
    try_shard_for::<M, R, K>(resolver, key).unwrap_or(ShardId::UNPLACED)
}

/// The shard of dynamic shard-key `values` under `resolver`, for model `M`.
///
/// # Errors
///
/// [`grant_core::Error::MissingShardKey`] for a NULL or non-key value; the resolver's error.
pub fn route_values<M: Model, R: Resolver + ?Sized>(
    resolver: &R,
    values: &[Value],
) -> Result<ShardId> {
    super::key_parts::<M, _>(values, |parts| resolver.shard_for_key(M::META, parts))?
}

/// Collects up to [`MAX_KEY_COLUMNS`] key parts (integers without allocating).
struct Parts {
    parts: [Option<OwnedKeyPart>; MAX_KEY_COLUMNS],
    len: usize,
}

impl KeyVisitor for Parts {
    fn part(&mut self, part: KeyPart<'_>) {
        if let Some(slot) = self.parts.get_mut(self.len) {
            *slot = Some(OwnedKeyPart::from(part));
        }
        self.len += 1;
    }
}
