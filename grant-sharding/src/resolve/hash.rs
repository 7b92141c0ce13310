//! The `hash` strategy: SipHash-2-4 with fixed keys over the canonical key encoding, modulo the
//! shard count.
//!
//! The encoding is defined in [`grant_core::key`]: each key part is a 4-byte little-endian length
//! followed by the part's bytes (integers widened to `i64`, little-endian; strings as UTF-8).
//! SipHash-2-4 is keyed with [`K0`] and [`K1`]. The placement is therefore identical across
//! processes, platforms and releases; test vectors pin it (`tests/hash_vectors.rs`). Never
//! replace this with `std`'s `DefaultHasher`, whose output may change between Rust releases.

use grant_core::{Error, KeyPart, KeyVisitor, Model, Result, ShardId, ShardKey};
use sea_query::Value;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// First SipHash key: the ASCII bytes `grant-k0` read little-endian.
pub const K0: u64 = u64::from_le_bytes(*b"grant-k0");
/// Second SipHash key: the ASCII bytes `shard-k1` read little-endian.
pub const K1: u64 = u64::from_le_bytes(*b"shard-k1");

/// Feeds the canonical encoding to SipHash through a small stack buffer, so a typical key is
/// hashed with one `write` call (the hash is the same however the bytes are split).
struct SipVisitor {
    hasher: SipHasher24,
    buf: [u8; 64],
    len: usize,
}

impl SipVisitor {
    #[inline]
    fn new() -> Self {
        SipVisitor {
            hasher: SipHasher24::new_with_keys(K0, K1),
            buf: [0; 64],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() <= self.buf.len() {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            self.hasher.write(&self.buf[..self.len]);
            self.len = 0;
            self.hasher.write(bytes);
        }
    }

    #[inline]
    fn finish(mut self) -> u64 {
        self.hasher.write(&self.buf[..self.len]);
        self.hasher.finish()
    }
}

impl KeyVisitor for SipVisitor {
    #[inline]
    fn part(&mut self, part: KeyPart<'_>) {
        part.with_bytes(|bytes| {
            self.push(&(bytes.len() as u32).to_le_bytes());
            self.push(bytes);
        });
    }
}

/// The 64-bit SipHash-2-4 of a key's canonical encoding.
#[inline]
pub fn key_hash<K: ShardKey + ?Sized>(key: &K) -> u64 {
    let mut visitor = SipVisitor::new();
    key.visit(&mut visitor);
    visitor.finish()
}

/// The 64-bit hash of a key given as parts (used for dynamic values).
#[inline]
pub fn parts_hash<'a>(parts: impl IntoIterator<Item = KeyPart<'a>>) -> u64 {
    let mut visitor = SipVisitor::new();
    for part in parts {
        visitor.part(part);
    }
    visitor.finish()
}

/// The shard index of `key` among `count` shards: `hash % count`.
///
/// # Panics
///
/// Never for `count > 0`; the derive rejects `count = 0` at compile time.
#[inline]
pub fn shard_index<K: ShardKey + ?Sized>(key: &K, count: u32) -> u32 {
    (key_hash(key) % u64::from(count.max(1))) as u32
}

/// The shard of model `M` (with `count` hash shards) for a dynamic value of its shard-key column.
///
/// # Errors
///
/// [`Error::MissingShardKey`] when the value is NULL or not of a key type — never shard 0.
pub fn route_value<M: Model>(value: &Value, count: u32) -> Result<ShardId> {
    match KeyPart::from_value(value) {
        Some(part) => {
            let index = (parts_hash([part]) % u64::from(count.max(1))) as usize;
            M::shards().get(index).copied().ok_or_else(|| {
                Error::Config(format!(
                    "model `{}` declares {count} hash shards but lists {}",
                    M::META.name,
                    M::shards().len()
                ))
            })
        }
        None => Err(Error::MissingShardKey {
            model: M::META.name,
            key: M::META.shard_key_name(),
            detail: format!("got {value:?}, which is NULL or not an integer or string"),
        }),
    }
}

/// The `hash` strategy as a value: `count` shards named `{prefix}{index}`.
///
/// # Examples
///
/// ```
/// use grant_sharding::resolve::HashResolver;
/// let r = HashResolver::new(8);
/// assert_eq!(r.shard_for(&42_i64), r.shard_for(&42_i32));
/// assert_eq!(r.shard_for(&42_i64).to_string(), format!("shard_{}", r.shard_for(&42_i64).index()));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HashResolver {
    count: u32,
    prefix: &'static str,
}

impl HashResolver {
    /// `count` shards named `shard_0 ..`.
    pub const fn new(count: u32) -> Self {
        Self::with_prefix(count, grant_core::shard::DEFAULT_PREFIX)
    }

    /// `count` shards named `{prefix}0 ..`.
    pub const fn with_prefix(count: u32, prefix: &'static str) -> Self {
        HashResolver { count, prefix }
    }

    /// The number of shards.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The shard for `key`.
    #[inline]
    pub fn shard_for<K: ShardKey + ?Sized>(&self, key: &K) -> ShardId {
        ShardId::prefixed(self.prefix, shard_index(key, self.count))
    }
}
