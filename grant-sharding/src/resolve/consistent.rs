//! The `consistent_hash` strategy: a hash ring with virtual nodes.
//!
//! Every shard owns `vnodes` points on a 64-bit ring (scaled by its weight): point `v` of shard
//! `name` is the SipHash-2-4 (the keys of the [`hash`](super::hash) strategy) of the UTF-8 bytes
//! `"{name}#{v}"`. A key hashes exactly as under the `hash` strategy ([`key_hash`]) and belongs to
//! the shard owning the first point at or after its hash, wrapping around.
//!
//! A shard's points depend only on its name, so adding a shard adds points and changes nothing
//! else: the keys that move — about `1/(n+1)` of them with `n` equal shards before — all move
//! onto the new shard, and removing a shard moves only that shard's keys. Placement is stable
//! across processes, platforms and releases, like the `hash` strategy's.

use std::fmt;
use std::hash::Hasher;

use grant_core::{Error, Model, Result, ShardId, ShardKey};
use sea_query::Value;
use siphasher::sip::SipHasher24;

use super::hash::{K0, K1, key_hash, parts_hash};

/// Virtual nodes per shard (of weight 1) when not given.
pub const DEFAULT_VNODES: u32 = 150;

/// The most points one ring may hold (shards × vnodes × weight).
pub const MAX_POINTS: usize = 1 << 24;

/// The ring position of virtual node `vnode` of the shard called `name`: SipHash-2-4 of
/// `"{name}#{vnode}"`.
///
/// # Examples
///
/// ```
/// use grant_sharding::resolve::consistent::point;
/// assert_eq!(point("shard_0", 0), point("shard_0", 0));
/// assert_ne!(point("shard_0", 0), point("shard_0", 1));
/// ```
pub fn point(name: &str, vnode: u32) -> u64 {
    let mut hasher = SipHasher24::new_with_keys(K0, K1);
    hasher.write(format!("{name}#{vnode}").as_bytes());
    hasher.finish()
}

/// A hash ring over named shards.
///
/// # Examples
///
/// ```
/// use grant_core::ShardId;
/// use grant_sharding::resolve::ConsistentHashResolver;
///
/// let ring = ConsistentHashResolver::new(16);                     // shard_0 .. shard_15, 150 vnodes
/// let shard = ring.shard_for(&42_i64);
/// assert!(shard.index() < 16);
///
/// // Weighted: shard_big gets twice the points of shard_small.
/// let weighted = ConsistentHashResolver::weighted(
///     [(ShardId::named(0, "shard_small"), 1.0), (ShardId::named(1, "shard_big"), 2.0)],
///     150,
/// ).unwrap();
/// assert_eq!(weighted.vnodes_of(1), 300);
/// ```
#[derive(Clone)]
pub struct ConsistentHashResolver {
    shards: Vec<ShardId>,
    vnodes: Vec<u32>,
    /// Ring positions, ascending.
    points: Vec<u64>,
    /// The shard position owning each point.
    owners: Vec<u32>,
    /// `index[b]` is the first point whose top bits are at least `b`: a lookup searches only
    /// its hash's bucket (about one point) instead of the whole ring.
    index: Vec<u32>,
    /// `64 - log2(buckets)`: a hash's bucket is `hash >> shift`.
    shift: u32,
}

impl fmt::Debug for ConsistentHashResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsistentHashResolver")
            .field("shards", &self.shards)
            .field("vnodes", &self.vnodes)
            .field("points", &self.points.len())
            .finish()
    }
}

impl ConsistentHashResolver {
    /// `count` shards named `shard_0 ..`, [`DEFAULT_VNODES`] points each.
    pub fn new(count: u32) -> Self {
        Self::with_vnodes(count, DEFAULT_VNODES)
    }

    /// `count` shards named `shard_0 ..`, `vnodes` points each.
    pub fn with_vnodes(count: u32, vnodes: u32) -> Self {
        let shards: Vec<ShardId> = (0..count).map(ShardId::new).collect();
        let vnodes = vec![vnodes; shards.len()];
        Self::with_vnode_counts(&shards, &vnodes)
    }

    /// Shards with weights: shard `i` gets `round(vnodes × weight_i)` points (at least one).
    /// A shard's [`ShardId::index`] is its position in `shards`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no shards, a weight that is not a positive finite number, a shard
    /// listed twice, or a ring of more than [`MAX_POINTS`] points.
    pub fn weighted(shards: impl IntoIterator<Item = (ShardId, f64)>, vnodes: u32) -> Result<Self> {
        let mut ids = Vec::new();
        let mut counts = Vec::new();
        let mut total = 0_usize;
        for (shard, weight) in shards {
            if !(weight.is_finite() && weight > 0.0) {
                return Err(Error::Config(format!(
                    "consistent hash: shard `{shard}` has weight {weight}; weights must be \
                     positive numbers"
                )));
            }
            if ids.iter().any(|s: &ShardId| s.name() == shard.name()) {
                return Err(Error::Config(format!(
                    "consistent hash: shard `{shard}` is listed twice"
                )));
            }
            let n = (f64::from(vnodes) * weight)
                .round()
                .clamp(1.0, u32::MAX as f64) as u32;
            total = total.saturating_add(n as usize);
            ids.push(shard);
            counts.push(n);
        }
        if ids.is_empty() {
            return Err(Error::Config(
                "consistent hash: a ring needs at least one shard".into(),
            ));
        }
        if total > MAX_POINTS {
            return Err(Error::Config(format!(
                "consistent hash: {total} ring points is more than {MAX_POINTS}; use fewer vnodes"
            )));
        }
        Ok(Self::with_vnode_counts(&ids, &counts))
    }

    /// Shards `{prefix}0 ..` with `vnodes[i]` points for shard `{prefix}{i}` — the ring of
    /// `#[shard(strategy = "consistent_hash", prefix = .., count = vnodes.len(), ..)]`.
    pub fn prefixed(prefix: &'static str, vnodes: &[u32]) -> Self {
        let shards: Vec<ShardId> = (0..vnodes.len() as u32)
            .map(|i| ShardId::prefixed(prefix, i))
            .collect();
        Self::with_vnode_counts(&shards, vnodes)
    }

    /// Shard `shards[i]` gets `vnodes[i]` points (a missing count is [`DEFAULT_VNODES`]; a shard
    /// with 0 points owns no key). This is what `#[derive(Sharded)]` builds, once, on first use.
    pub fn with_vnode_counts(shards: &[ShardId], vnodes: &[u32]) -> Self {
        let counts: Vec<u32> = (0..shards.len())
            .map(|i| vnodes.get(i).copied().unwrap_or(DEFAULT_VNODES))
            .collect();
        let total: usize = counts.iter().map(|&n| n as usize).sum();
        let mut ring: Vec<(u64, &str, u32)> = Vec::with_capacity(total);
        let names: Vec<String> = shards.iter().map(ShardId::name).collect();
        for (owner, (name, &n)) in names.iter().zip(&counts).enumerate() {
            for v in 0..n {
                ring.push((point(name, v), name.as_str(), owner as u32));
            }
        }
        // Ties (two equal 64-bit points) go to the smaller name, so the order shards are listed
        // in never matters.
        ring.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        ring.dedup_by_key(|p| p.0);
        let points: Vec<u64> = ring.iter().map(|p| p.0).collect();
        // About one point per bucket, at most 2^16 buckets.
        let bits = points.len().next_power_of_two().trailing_zeros().min(16);
        let shift = 64 - bits;
        let buckets = 1_usize << bits;
        let index = (0..=buckets)
            .map(|b| {
                let start = (b as u128) << shift;
                points.partition_point(|&p| u128::from(p) < start) as u32
            })
            .collect();
        ConsistentHashResolver {
            shards: shards.to_vec(),
            vnodes: counts,
            owners: ring.iter().map(|p| p.2).collect(),
            points,
            index,
            shift,
        }
    }

    /// The shards, in index order.
    pub fn shards(&self) -> &[ShardId] {
        &self.shards
    }

    /// The number of points of the shard at position `index`.
    pub fn vnodes_of(&self, index: usize) -> u32 {
        self.vnodes.get(index).copied().unwrap_or(0)
    }

    /// The number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points (every shard has 0 vnodes).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The shard owning ring position `hash`: the owner of the first point at or after it,
    /// wrapping around. [`ShardId::UNPLACED`] for an empty ring.
    #[inline]
    pub fn shard_for_hash(&self, hash: u64) -> ShardId {
        let bucket = hash.checked_shr(self.shift).unwrap_or(0) as usize;
        let (mut at, end) = match (self.index.get(bucket), self.index.get(bucket + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, 0),
        };
        // The bucket's points are the only ones that can be the first at or after `hash`;
        // past them, the next bucket's first point is (or the ring wraps around).
        while at < end && self.points[at] < hash {
            at += 1;
        }
        let at = if at >= self.points.len() { 0 } else { at };
        match self.owners.get(at) {
            Some(&owner) => self.shards[owner as usize],
            None => ShardId::UNPLACED,
        }
    }

    /// The shard for `key`.
    #[inline]
    pub fn shard_for<K: ShardKey + ?Sized>(&self, key: &K) -> ShardId {
        self.shard_for_hash(key_hash(key))
    }
}

/// The shard of model `M`, placed by `ring`, for dynamic values of every shard-key column.
///
/// # Errors
///
/// [`Error::MissingShardKey`] naming the column whose value is NULL or not of a key type.
pub fn route_values<M: Model>(ring: &ConsistentHashResolver, values: &[Value]) -> Result<ShardId> {
    let hash = super::key_parts::<M, _>(values, |parts| parts_hash(parts.iter().copied()))?;
    Ok(ring.shard_for_hash(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_lands_on_a_listed_shard() {
        let ring = ConsistentHashResolver::new(5);
        assert_eq!(ring.len(), 750);
        for k in 0..1000_i64 {
            assert!(ring.shard_for(&k).index() < 5);
        }
    }

    #[test]
    fn adding_a_shard_moves_keys_only_onto_it() {
        let before = ConsistentHashResolver::new(8);
        let after = ConsistentHashResolver::new(9);
        let mut moved = 0;
        for k in 0..20_000_i64 {
            let (a, b) = (before.shard_for(&k), after.shard_for(&k));
            if a != b {
                assert_eq!(b.index(), 8, "key {k} moved from {a} to {b}");
                moved += 1;
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn listing_order_does_not_matter() {
        let a = ConsistentHashResolver::weighted(
            [(ShardId::named(0, "x"), 1.0), (ShardId::named(1, "y"), 1.0)],
            50,
        )
        .unwrap();
        let b = ConsistentHashResolver::weighted(
            [(ShardId::named(0, "y"), 1.0), (ShardId::named(1, "x"), 1.0)],
            50,
        )
        .unwrap();
        for k in 0..2000_i64 {
            assert_eq!(a.shard_for(&k).name(), b.shard_for(&k).name());
        }
    }

    #[test]
    fn bad_weights_are_refused() {
        for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(ConsistentHashResolver::weighted([(ShardId::new(0), w)], 10).is_err());
        }
        assert!(ConsistentHashResolver::weighted([], 10).is_err());
        assert!(
            ConsistentHashResolver::weighted([(ShardId::new(0), 1.0), (ShardId::new(0), 1.0)], 10)
                .is_err()
        );
    }

    #[test]
    fn the_bucket_index_finds_what_a_full_search_finds() {
        for (count, vnodes) in [(1, 1), (1, 3), (3, 7), (16, 150), (5, 1000)] {
            let ring = ConsistentHashResolver::with_vnodes(count, vnodes);
            let full = |hash: u64| {
                let at = ring.points.partition_point(|&p| p < hash);
                let at = if at == ring.points.len() { 0 } else { at };
                ring.shards[ring.owners[at] as usize]
            };
            let mut probes: Vec<u64> = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 63];
            for &p in &ring.points {
                probes.extend([p, p.wrapping_sub(1), p.wrapping_add(1)]);
            }
            for k in 0..5000_i64 {
                probes.push(key_hash(&k));
            }
            for hash in probes {
                assert_eq!(
                    ring.shard_for_hash(hash),
                    full(hash),
                    "{count}x{vnodes} {hash:#x}"
                );
            }
        }
    }

    #[test]
    fn empty_ring_places_nothing() {
        let ring = ConsistentHashResolver::with_vnode_counts(&[ShardId::new(0)], &[0]);
        assert!(ring.is_empty());
        assert!(ring.shard_for(&1_i64).is_unplaced());
    }
}
