//! The `pg_hash` strategy: exactly where PostgreSQL's `PARTITION BY HASH` puts a row.
//!
//! A table `PARTITION BY HASH (k1, k2, ...)` with partitions `FOR VALUES WITH (MODULUS m,
//! REMAINDER r)` keeps a row in the partition whose remainder is the row hash modulo `m`. With
//! `#[shard(strategy = "pg_hash", count = m)]` the row with the same key lives on shard `r`, so
//! data moves between native PostgreSQL hash partitions (or a proxy that places rows the same
//! way) and Grant shards without moving a row — composite keys included.
//!
//! The placement, as PostgreSQL computes it (`compute_partition_hash_value` in
//! `src/backend/partitioning/partbounds.c`, the hash support functions of each type's
//! `hash_ops` operator class, and Bob Jenkins' lookup3 in `src/common/hashfn.c`; the facts are
//! collected in the repository's DESIGN.md):
//!
//! * every key column is hashed with its type's 64-bit extended hash and the seed
//!   [`PARTITION_SEED`];
//! * integers (`int2`, `int4`, `int8` alike): `lo = v as u32`, `hi = (v >> 32) as u32`,
//!   `lo ^= if v >= 0 { hi } else { !hi }`, hash = [`hash_uint32_extended`]`(lo, seed)` — so a
//!   value hashes the same whatever its integer width;
//! * `text` / `varchar` (deterministic collation), `bytea` and `uuid`: [`hash_bytes_extended`]
//!   over the value's bytes (UTF-8 text; the 16 bytes of a UUID);
//! * the row hash folds [`hash_combine64`] over the non-NULL key columns, starting from 0;
//! * the partition is `row_hash % modulus`.
//!
//! PostgreSQL's lookup3 reads 4-byte words in the machine's byte order; the placement here is
//! that of little-endian servers (x86-64, ARM64), which `tests/pg_hash.rs` checks against a real
//! PostgreSQL for every supported type.

use grant_core::{KeyPart, KeyVisitor, Model, Result, ShardId, ShardKey};
use sea_query::Value;

/// The seed PostgreSQL hashes partition keys with (`HASH_PARTITION_SEED` in
/// `src/include/catalog/partition.h`).
pub const PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// The constant PostgreSQL's `hash_combine64` adds (from boost's `hash_combine`).
const COMBINE: u64 = 0x49a0_f4dd_15e5_a8e3;

/// The constant lookup3 starts from (the golden ratio), before the length and 3923095 are added.
const GOLDEN: u32 = 0x9e37_79b9;

/// lookup3's `mix`: mixes three 32-bit values reversibly.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3's `final`: the final mixing of three 32-bit values into `c` (and `b`).
#[inline(always)]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// The initial state for a key of `len` bytes and a 64-bit seed: `a = b = c = golden + len +
/// 3923095`, then the seed's high half added to `a`, its low half to `b`, and mixed.
#[inline(always)]
fn start(len: u32, seed: u64) -> (u32, u32, u32) {
    let init = GOLDEN.wrapping_add(len).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    (a, b, c)
}

/// A little-endian 32-bit word from (up to) four bytes.
#[inline(always)]
fn word(bytes: &[u8]) -> u32 {
    let mut w = [0_u8; 4];
    w[..bytes.len()].copy_from_slice(bytes);
    u32::from_le_bytes(w)
}

/// PostgreSQL's `hash_bytes_extended`: lookup3 over `bytes` with a 64-bit seed, returning
/// `(b << 32) | c`.
///
/// The bytes are consumed 12 at a time into `a`, `b`, `c` as little-endian words, mixing after
/// each block; the last 0..=11 bytes are added to `a` and `b` from their lowest byte and to `c`
/// from its second byte (PostgreSQL keeps the lowest byte of `c` for the length, which it has
/// already added to the initial state), then the state is finally mixed.
///
/// # Examples
///
/// ```
/// use grant_sharding::resolve::pg_hash::{PARTITION_SEED, hash_bytes_extended};
/// // The same bytes hash alike whatever their type (text, bytea, uuid).
/// assert_eq!(hash_bytes_extended(b"hello", PARTITION_SEED), hash_bytes_extended(b"hello", PARTITION_SEED));
/// ```
pub fn hash_bytes_extended(bytes: &[u8], seed: u64) -> u64 {
    let (mut a, mut b, mut c) = start(bytes.len() as u32, seed);
    let mut chunks = bytes.chunks_exact(12);
    for block in &mut chunks {
        a = a.wrapping_add(word(&block[0..4]));
        b = b.wrapping_add(word(&block[4..8]));
        c = c.wrapping_add(word(&block[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    let tail = chunks.remainder();
    let n = tail.len();
    a = a.wrapping_add(word(&tail[..n.min(4)]));
    if n > 4 {
        b = b.wrapping_add(word(&tail[4..n.min(8)]));
    }
    if n > 8 {
        // Bytes 8, 9, 10 go to bits 8..32 of `c`.
        c = c.wrapping_add(word(&tail[8..n]) << 8);
    }
    final_mix(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// PostgreSQL's `hash_bytes_uint32_extended`: lookup3 of one 32-bit value with a 64-bit seed.
#[inline]
pub fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let (mut a, mut b, mut c) = start(4, seed);
    a = a.wrapping_add(k);
    final_mix(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// PostgreSQL's `hashint8extended` (also what `int2` and `int4` values hash to: their widening
/// to `int8` leaves the folded word unchanged).
#[inline]
pub fn hash_int_extended(v: i64, seed: u64) -> u64 {
    let mut lo = v as u32;
    let hi = (v >> 32) as u32;
    lo ^= if v >= 0 { hi } else { !hi };
    hash_uint32_extended(lo, seed)
}

/// PostgreSQL's `hash_combine64`: `a ^ (b + 0x49a0f4dd15e5a8e3 + (a << 54) + (a >> 7))`,
/// wrapping.
#[inline]
pub const fn hash_combine64(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(COMBINE)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7)
}

/// The partition hash of one key column's value, with [`PARTITION_SEED`].
#[inline]
pub fn part_hash(part: KeyPart<'_>) -> u64 {
    match part {
        KeyPart::Int(v) => hash_int_extended(v, PARTITION_SEED),
        KeyPart::Text(s) => hash_bytes_extended(s.as_bytes(), PARTITION_SEED),
        KeyPart::Bytes(b) => hash_bytes_extended(b, PARTITION_SEED),
        KeyPart::Uuid(u) => hash_bytes_extended(&u, PARTITION_SEED),
    }
}

/// Folds the key's parts into PostgreSQL's row hash.
struct RowHash(u64);

impl KeyVisitor for RowHash {
    #[inline]
    fn part(&mut self, part: KeyPart<'_>) {
        self.0 = hash_combine64(self.0, part_hash(part));
    }
}

/// PostgreSQL's row hash of a (possibly composite) key: [`hash_combine64`] folded over the
/// columns' hashes, starting from 0.
///
/// # Examples
///
/// ```
/// use grant_sharding::resolve::pg_hash::row_hash;
/// assert_eq!(row_hash(&42_i64) % 8, 2);
/// assert_eq!(row_hash(&(42_i64, "hello")) % 8, 2);
/// ```
#[inline]
pub fn row_hash<K: ShardKey + ?Sized>(key: &K) -> u64 {
    let mut hash = RowHash(0);
    key.visit(&mut hash);
    hash.0
}

/// The row hash of a key given as parts (dynamic values).
#[inline]
pub fn parts_row_hash<'a>(parts: impl IntoIterator<Item = KeyPart<'a>>) -> u64 {
    let mut hash = RowHash(0);
    for part in parts {
        hash.part(part);
    }
    hash.0
}

/// The partition (remainder) of `key` for `modulus` partitions: `row_hash % modulus`.
#[inline]
pub fn shard_index<K: ShardKey + ?Sized>(key: &K, modulus: u32) -> u32 {
    (row_hash(key) % u64::from(modulus.max(1))) as u32
}

/// The shard of model `M` (with `modulus` pg_hash shards) for a dynamic value of its one
/// shard-key column.
///
/// # Errors
///
/// [`Error::MissingShardKey`](grant_core::Error::MissingShardKey) when the value is NULL or not
/// of a key type — never shard 0.
pub fn route_value<M: Model>(value: &Value, modulus: u32) -> Result<ShardId> {
    route_values::<M>(std::slice::from_ref(value), modulus)
}

/// The shard of model `M` for dynamic values of all its shard-key columns, in key order.
///
/// # Errors
///
/// [`Error::MissingShardKey`](grant_core::Error::MissingShardKey) naming the column when a value
/// is NULL or not of a key type, or when the number of values is not the number of key columns.
pub fn route_values<M: Model>(values: &[Value], modulus: u32) -> Result<ShardId> {
    let hash = super::key_parts::<M, _>(values, |parts| parts_row_hash(parts.iter().copied()))?;
    super::nth_shard::<M>((hash % u64::from(modulus.max(1))) as usize)
}

/// The `pg_hash` strategy as a value: `modulus` shards named `{prefix}{remainder}`.
///
/// # Examples
///
/// ```
/// use grant_sharding::resolve::PgHashResolver;
/// let r = PgHashResolver::new(8);
/// assert_eq!(r.shard_for(&42_i64).index(), 2);      // as PostgreSQL: REMAINDER 2 of MODULUS 8
/// assert_eq!(r.shard_for(&42_i32), r.shard_for(&42_i64));
/// assert_eq!(r.shard_for("hello").to_string(), "shard_4");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PgHashResolver {
    modulus: u32,
    prefix: &'static str,
}

impl PgHashResolver {
    /// `modulus` shards named `shard_0 ..`.
    pub const fn new(modulus: u32) -> Self {
        Self::with_prefix(modulus, grant_core::shard::DEFAULT_PREFIX)
    }

    /// `modulus` shards named `{prefix}0 ..`.
    pub const fn with_prefix(modulus: u32, prefix: &'static str) -> Self {
        PgHashResolver { modulus, prefix }
    }

    /// The modulus: the number of shards.
    pub const fn modulus(&self) -> u32 {
        self.modulus
    }

    /// The stem of the shard names (`shard_` by default).
    pub const fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The shard for `key`: the one whose index is PostgreSQL's remainder.
    #[inline]
    pub fn shard_for<K: ShardKey + ?Sized>(&self, key: &K) -> ShardId {
        ShardId::prefixed(self.prefix, shard_index(key, self.modulus))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spot values of DESIGN.md ("Facts to build on"), modulus 8.
    #[test]
    fn postgres_spot_values() {
        assert_eq!(shard_index(&1_i64, 8), 0);
        assert_eq!(shard_index(&42_i64, 8), 2);
        assert_eq!(shard_index(&-1_i64, 8), 5);
        assert_eq!(shard_index(&i64::MAX, 8), 6);
        assert_eq!(shard_index(&i64::MIN, 8), 7);
        assert_eq!(shard_index("hello", 8), 4);
        assert_eq!(shard_index("héllo", 8), 3);
        assert_eq!(shard_index(&(42_i64, "hello"), 8), 2);
    }

    #[test]
    fn integer_widths_hash_alike() {
        for v in [0_i32, 1, -1, 42, i32::MAX, i32::MIN, 123_456] {
            assert_eq!(row_hash(&v), row_hash(&i64::from(v)), "{v}");
        }
        for v in [0_i16, -7, i16::MAX, i16::MIN] {
            assert_eq!(row_hash(&v), row_hash(&i64::from(v)), "{v}");
        }
    }

    #[test]
    fn text_bytes_and_uuid_hash_their_bytes() {
        let bytes: [u8; 16] = *b"0123456789abcdef";
        assert_eq!(
            part_hash(KeyPart::Uuid(bytes)),
            part_hash(KeyPart::Bytes(&bytes))
        );
        assert_eq!(
            part_hash(KeyPart::Text("abc")),
            part_hash(KeyPart::Bytes(b"abc"))
        );
    }

    #[test]
    fn every_tail_length_is_consumed() {
        // Changing any one byte of keys of 0..40 bytes changes the hash (each tail position is
        // read), and no two lengths of zeros collide.
        let mut seen = std::collections::HashSet::new();
        for len in 0..40 {
            let zeros = vec![0_u8; len];
            assert!(seen.insert(hash_bytes_extended(&zeros, PARTITION_SEED)));
            for i in 0..len {
                let mut one = zeros.clone();
                one[i] = 1;
                assert_ne!(
                    hash_bytes_extended(&one, PARTITION_SEED),
                    hash_bytes_extended(&zeros, PARTITION_SEED),
                    "len {len}, byte {i}"
                );
            }
        }
    }

    #[test]
    fn combine_folds_from_zero() {
        let h = part_hash(KeyPart::Int(42));
        assert_eq!(row_hash(&42_i64), hash_combine64(0, h));
        assert_eq!(
            parts_row_hash([KeyPart::Int(42), KeyPart::Text("hello")]),
            row_hash(&(42_i64, "hello"))
        );
    }
}
