//! The `hash` strategy: SipHash-2-4 with fixed keys over the canonical key encoding, modulo the
//! shard count.
//!
//! The encoding is defined in [`grant_core::key`]: each key part is a 4-byte little-endian length
//! followed by the part's bytes (integers widened to `i64`, little-endian; strings as UTF-8).
//! SipHash-2-4 is keyed with [`K0`] and [`K1`]. The placement is therefore identical across
//! processes, platforms and releases; test vectors pin it (`tests/hash_vectors.rs`). Never
//! replace this with the standard library's default hasher, whose output may change between Rust
//! releases.

use grant_core::{KeyPart, KeyVisitor, Model, Result, ShardId, ShardKey};
use sea_query::Value;

/// First SipHash key: the ASCII bytes `grant-k0` read little-endian.
pub const K0: u64 = u64::from_le_bytes(*b"grant-k0");
/// Second SipHash key: the ASCII bytes `shard-k1` read little-endian.
pub const K1: u64 = u64::from_le_bytes(*b"shard-k1");

/// SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012), streaming:
/// the message in 8-byte little-endian words, two rounds per word; the last word holds the
/// remaining bytes and the length modulo 256 in its top byte; four rounds to finish.
///
/// The same function as `siphasher`'s `SipHasher24` (checked by tests over many lengths and
/// splits), written out so that an integer key part is absorbed as a whole word without a byte
/// buffer: hashing an `i64` key is a few nanoseconds of arithmetic.
#[derive(Clone, Copy)]
struct Sip24 {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
    /// Bytes not yet absorbed (the low `ntail` bytes).
    tail: u64,
    ntail: u32,
    /// Message length so far (only its low byte matters).
    len: u64,
}

impl Sip24 {
    #[inline(always)]
    fn new(k0: u64, k1: u64) -> Self {
        Sip24 {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    /// Absorbs one full message word.
    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.round();
        self.v0 ^= m;
    }

    /// Appends `n` (1..=8) bytes given as the low bytes of `x`.
    #[inline(always)]
    fn push(&mut self, x: u64, n: u32) {
        self.len = self.len.wrapping_add(u64::from(n));
        let filled = self.ntail + n;
        if self.ntail == 0 {
            if n == 8 {
                self.compress(x);
            } else {
                self.tail = x;
                self.ntail = n;
            }
        } else if filled < 8 {
            self.tail |= x << (8 * self.ntail);
            self.ntail = filled;
        } else {
            self.compress(self.tail | (x << (8 * self.ntail)));
            // The bytes of `x` that did not fit (none when `filled == 8`).
            self.ntail = filled - 8;
            self.tail = if self.ntail == 0 {
                0
            } else {
                x >> (8 * (n - self.ntail))
            };
        }
    }

    #[inline(always)]
    fn write_u32(&mut self, x: u32) {
        self.push(u64::from(x), 4);
    }

    #[inline(always)]
    fn write_u64(&mut self, x: u64) {
        self.push(x, 8);
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        // Complete a partly filled word first, so the rest is absorbed word by word.
        if self.ntail != 0 && !rest.is_empty() {
            let take = rest.len().min(8 - self.ntail as usize);
            let (head, tail) = rest.split_at(take);
            self.push(le_word(head), take as u32);
            rest = tail;
        }
        let mut words = rest.chunks_exact(8);
        // The state in locals, so the loop keeps it in registers.
        let mut state = [self.v0, self.v1, self.v2, self.v3];
        for word in &mut words {
            let mut w = [0_u8; 8];
            w.copy_from_slice(word);
            let m = u64::from_le_bytes(w);
            state[3] ^= m;
            sip_round(&mut state);
            sip_round(&mut state);
            state[0] ^= m;
        }
        [self.v0, self.v1, self.v2, self.v3] = state;
        self.len = self.len.wrapping_add((rest.len() & !7) as u64);
        let rest = words.remainder();
        if !rest.is_empty() {
            self.push(le_word(rest), rest.len() as u32);
        }
    }

    #[inline(always)]
    fn finish(mut self) -> u64 {
        let m = self.tail | ((self.len & 0xff) << 56);
        self.compress(m);
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        self.round();
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

/// One SipRound over the state `[v0, v1, v2, v3]`.
#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    let [mut v0, mut v1, mut v2, mut v3] = *v;
    v0 = v0.wrapping_add(v1);
    v1 = v1.rotate_left(13) ^ v0;
    v0 = v0.rotate_left(32);
    v2 = v2.wrapping_add(v3);
    v3 = v3.rotate_left(16) ^ v2;
    v0 = v0.wrapping_add(v3);
    v3 = v3.rotate_left(21) ^ v0;
    v2 = v2.wrapping_add(v1);
    v1 = v1.rotate_left(17) ^ v2;
    v2 = v2.rotate_left(32);
    *v = [v0, v1, v2, v3];
}

/// Up to 8 bytes as a little-endian word (missing high bytes zero), without a variable-length
/// copy: two overlapping 4-byte reads for 4..=8 bytes, three single bytes for 1..=3.
#[inline(always)]
fn le_word(bytes: &[u8]) -> u64 {
    let n = bytes.len().min(8);
    let u32_at = |at: usize| {
        let mut w = [0_u8; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    match n {
        0 => 0,
        1..=3 => {
            u64::from(bytes[0])
                | (u64::from(bytes[n / 2]) << (8 * (n / 2)))
                | (u64::from(bytes[n - 1]) << (8 * (n - 1)))
        }
        _ => u32_at(0) | (u32_at(n - 4) << (8 * (n - 4))),
    }
}

/// SipHash-2-4 of `bytes` with the keys `k0`, `k1`.
///
/// # Examples
///
/// ```
/// use grant_sharding::resolve::hash::sip24;
/// // The reference vector of the SipHash paper: key 00..0f, empty message.
/// let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
/// let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
/// assert_eq!(sip24(k0, k1, &[]), 0x726fdb47dd0e0e31);
/// ```
#[inline]
pub fn sip24(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
    let mut sip = Sip24::new(k0, k1);
    sip.write(bytes);
    sip.finish()
}

/// Feeds the canonical encoding of each key part to SipHash: the part's length as 4
/// little-endian bytes, then its bytes (an integer as one 8-byte word).
struct SipVisitor(Sip24);

impl SipVisitor {
    #[inline(always)]
    fn new() -> Self {
        SipVisitor(Sip24::new(K0, K1))
    }

    #[inline(always)]
    fn finish(self) -> u64 {
        self.0.finish()
    }
}

impl KeyVisitor for SipVisitor {
    #[inline(always)]
    fn part(&mut self, part: KeyPart<'_>) {
        match part {
            KeyPart::Int(v) => {
                self.0.write_u32(8);
                self.0.write_u64(v as u64);
            }
            other => other.with_bytes(|bytes| {
                self.0.write_u32(bytes.len() as u32);
                self.0.write(bytes);
            }),
        }
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

/// The shard of model `M` (with `count` hash shards) for a dynamic value of its one shard-key
/// column.
///
/// # Errors
///
/// [`Error::MissingShardKey`](grant_core::Error::MissingShardKey) when the value is NULL or not
/// of a key type — never shard 0.
pub fn route_value<M: Model>(value: &Value, count: u32) -> Result<ShardId> {
    route_values::<M>(std::slice::from_ref(value), count)
}

/// The shard of model `M` (with `count` hash shards) for dynamic values of every shard-key
/// column, in key order.
///
/// # Errors
///
/// [`Error::MissingShardKey`](grant_core::Error::MissingShardKey) naming the column whose value
/// is NULL or not of a key type, or when a key column has no value.
pub fn route_values<M: Model>(values: &[Value], count: u32) -> Result<ShardId> {
    let hash = super::key_parts::<M, _>(values, |parts| parts_hash(parts.iter().copied()))?;
    super::nth_shard::<M>((hash % u64::from(count.max(1))) as usize)
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

    /// The stem of the shard names (`shard_` by default).
    pub const fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The shard for `key`.
    #[inline]
    pub fn shard_for<K: ShardKey + ?Sized>(&self, key: &K) -> ShardId {
        ShardId::prefixed(self.prefix, shard_index(key, self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siphasher::sip::SipHasher24;
    use std::hash::Hasher;

    fn reference(chunks: &[&[u8]]) -> u64 {
        let mut h = SipHasher24::new_with_keys(K0, K1);
        for c in chunks {
            h.write(c);
        }
        h.finish()
    }

    /// The streaming SipHash agrees with `siphasher` for every length around the word
    /// boundaries, however the message is split.
    #[test]
    fn streaming_siphash_is_siphash() {
        let bytes: Vec<u8> = (0..200_u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..bytes.len() {
            assert_eq!(
                sip24(K0, K1, &bytes[..len]),
                reference(&[&bytes[..len]]),
                "length {len}"
            );
        }
        for len in 0..40 {
            for cut in 0..=len {
                let mut sip = Sip24::new(K0, K1);
                sip.write(&bytes[..cut]);
                sip.write(&bytes[cut..len]);
                assert_eq!(
                    sip.finish(),
                    reference(&[&bytes[..len]]),
                    "{len} cut at {cut}"
                );
            }
        }
        // Integer words and 4-byte prefixes at every alignment.
        for lead in 0..9 {
            let mut sip = Sip24::new(K0, K1);
            sip.write(&bytes[..lead]);
            sip.write_u32(0xdead_beef);
            sip.write_u64(0x0123_4567_89ab_cdef);
            sip.write_u32(7);
            let mut message = bytes[..lead].to_vec();
            message.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
            message.extend_from_slice(&0x0123_4567_89ab_cdef_u64.to_le_bytes());
            message.extend_from_slice(&7_u32.to_le_bytes());
            assert_eq!(sip.finish(), reference(&[&message]), "lead {lead}");
        }
    }

    /// Keys hash their canonical encoding: composite and long keys included.
    #[test]
    fn keys_hash_their_encoding() {
        let encode = |parts: &[&[u8]]| {
            let mut out = Vec::new();
            for p in parts {
                out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                out.extend_from_slice(p);
            }
            out
        };
        for v in [0_i64, -1, 42, i64::MIN, i64::MAX] {
            assert_eq!(key_hash(&v), reference(&[&encode(&[&v.to_le_bytes()])]));
        }
        for len in [0, 1, 7, 8, 9, 60, 61, 100, 250] {
            let text = "é".repeat(len);
            assert_eq!(
                key_hash(text.as_str()),
                reference(&[&encode(&[text.as_bytes()])])
            );
            assert_eq!(
                key_hash(&(len as i64, text.as_str(), -3_i32)),
                reference(&[&encode(&[
                    &(len as i64).to_le_bytes(),
                    text.as_bytes(),
                    &(-3_i64).to_le_bytes()
                ])])
            );
        }
    }
}
