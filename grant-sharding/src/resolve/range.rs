//! The `range` strategy: integer keys in half-open ranges, each range on a named shard.
//!
//! Ranges are `start..end` (start included, end excluded); the first may be open below
//! (`..end`) and the last open above (`start..`). Ranges never overlap. A shard may hold several
//! ranges. A key outside every range has no shard: the fallible lookups say so, naming the key.
//!
//! Besides placing a key, a range resolver tells which shards a range of keys can touch
//! ([`RangeResolver::shards_overlapping`]), which lets the router send `between`, `lt`, `lte`,
//! `gt` and `gte` conditions on the key to only those shards.

use std::borrow::Cow;
use std::ops::Bound;

use grant_core::key::IntKey;
use grant_core::{Error, KeyPart, Model, Result, ShardId};
use sea_query::Value;

/// One range of keys and the shard holding it: `start..end`, start included, end excluded;
/// `None` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// First key of the range, or `None` for no lower bound.
    pub start: Option<i64>,
    /// First key after the range, or `None` for no upper bound.
    pub end: Option<i64>,
    /// The shard holding the range.
    pub shard: ShardId,
}

impl KeyRange {
    /// `start..end` on `shard`.
    pub const fn new(start: Option<i64>, end: Option<i64>, shard: ShardId) -> Self {
        KeyRange { start, end, shard }
    }

    /// Whether `key` lies in the range.
    #[inline]
    pub const fn contains(&self, key: i64) -> bool {
        let above = match self.start {
            Some(s) => key >= s,
            None => true,
        };
        let below = match self.end {
            Some(e) => key < e,
            None => true,
        };
        above && below
    }

    /// Whether the range holds no key (`start >= end`).
    pub const fn is_empty(&self) -> bool {
        matches!((self.start, self.end), (Some(s), Some(e)) if s >= e)
    }
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = self.start {
            write!(f, "{s}")?;
        }
        f.write_str("..")?;
        if let Some(e) = self.end {
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Integer ranges on named shards.
///
/// # Examples
///
/// ```
/// use std::ops::Bound;
/// use grant_core::ShardId;
/// use grant_sharding::resolve::{KeyRange, RangeResolver};
///
/// let old = ShardId::named(0, "shard_old");
/// let y2025 = ShardId::named(1, "shard_2025");
/// let now = ShardId::named(2, "shard_now");
/// let r = RangeResolver::new([
///     KeyRange::new(None, Some(20250101), old),
///     KeyRange::new(Some(20250101), Some(20260101), y2025),
///     KeyRange::new(Some(20260101), None, now),
/// ]).unwrap();
/// assert_eq!(r.shard_for(&20250615), Some(y2025));
/// assert_eq!(r.shard_for(&19991231), Some(old));
/// assert_eq!(
///     r.shards_overlapping(Bound::Included(20251201), Bound::Excluded(20260201)),
///     [y2025, now]
/// );
/// ```
#[derive(Debug, Clone)]
pub struct RangeResolver {
    /// Sorted by start, disjoint, none empty.
    ranges: Cow<'static, [KeyRange]>,
}

impl RangeResolver {
    /// Ranges already sorted by start, disjoint and non-empty — what `#[derive(Sharded)]`
    /// generates after checking them at compile time. Lookups on ranges that break these rules
    /// give unspecified (but memory-safe) answers; [`RangeResolver::new`] checks them.
    pub const fn from_sorted(ranges: &'static [KeyRange]) -> Self {
        RangeResolver {
            ranges: Cow::Borrowed(ranges),
        }
    }

    /// Ranges in any order.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no ranges, an empty range (`start >= end`) or two overlapping
    /// ranges, naming them.
    pub fn new(ranges: impl IntoIterator<Item = KeyRange>) -> Result<Self> {
        let mut ranges: Vec<KeyRange> = ranges.into_iter().collect();
        if ranges.is_empty() {
            return Err(Error::Config("range strategy: no ranges given".into()));
        }
        if let Some(empty) = ranges.iter().find(|r| r.is_empty()) {
            return Err(Error::Config(format!(
                "range strategy: range {empty} of shard `{}` is empty; its start must be below \
                 its end",
                empty.shard
            )));
        }
        ranges.sort_by_key(|r| r.start.map_or(i128::MIN, i128::from));
        for pair in ranges.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let overlap = match (a.end, b.start) {
                (Some(end), Some(start)) => end > start,
                _ => true,
            };
            if overlap {
                return Err(Error::Config(format!(
                    "range strategy: range {b} of shard `{}` overlaps range {a} of shard `{}`",
                    b.shard, a.shard
                )));
            }
        }
        Ok(RangeResolver {
            ranges: Cow::Owned(ranges),
        })
    }

    /// The ranges, sorted by start.
    pub fn ranges(&self) -> &[KeyRange] {
        &self.ranges
    }

    /// The range holding `key`, if any.
    #[inline]
    pub fn range_of(&self, key: i64) -> Option<&KeyRange> {
        // The last range starting at or before `key` is the only candidate.
        let after = self
            .ranges
            .partition_point(|r| r.start.is_none_or(|s| s <= key));
        let candidate = self.ranges.get(after.checked_sub(1)?)?;
        candidate.contains(key).then_some(candidate)
    }

    /// The shard holding the integer `key`, or `None` when it is outside every range.
    #[inline]
    pub fn shard_for_int(&self, key: i64) -> Option<ShardId> {
        self.range_of(key).map(|r| r.shard)
    }

    /// The shard holding `key`, or `None` when it is outside every range.
    #[inline]
    pub fn shard_for<K: IntKey + ?Sized>(&self, key: &K) -> Option<ShardId> {
        self.shard_for_int(key.to_i64())
    }

    /// The shards holding any key between `low` and `high`, in index order, each once.
    pub fn shards_overlapping(&self, low: Bound<i64>, high: Bound<i64>) -> Vec<ShardId> {
        // As closed bounds over i128, so that `Excluded(i64::MAX)` and friends need no care.
        let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
        let low = match low {
            Bound::Included(v) => i128::from(v),
            Bound::Excluded(v) => i128::from(v) + 1,
            Bound::Unbounded => min,
        };
        let high = match high {
            Bound::Included(v) => i128::from(v),
            Bound::Excluded(v) => i128::from(v) - 1,
            Bound::Unbounded => max,
        };
        let mut out: Vec<ShardId> = Vec::new();
        if low > high {
            return out;
        }
        for r in self.ranges.iter() {
            let start = r.start.map_or(min, i128::from);
            let last = r.end.map_or(max, |e| i128::from(e) - 1);
            if start <= high && low <= last && !out.contains(&r.shard) {
                out.push(r.shard);
            }
        }
        out.sort();
        out
    }
}

/// The shard of model `M`, placed by `ranges`, for a dynamic value of its key column.
///
/// # Errors
///
/// [`Error::MissingShardKey`] when the value is NULL or not an integer; [`Error::UnknownShard`]
/// naming the value when it is outside every range.
pub fn route_values<M: Model>(ranges: &RangeResolver, values: &[Value]) -> Result<ShardId> {
    let key = super::key_parts::<M, _>(values, |parts| match parts {
        [KeyPart::Int(v)] => Some(*v),
        _ => None,
    })?;
    let Some(key) = key else {
        return Err(Error::MissingShardKey {
            model: M::META.name,
            key: M::META.shard_key_name(),
            detail: format!("got {values:?}; the `range` strategy needs one integer"),
        });
    };
    ranges
        .shard_for_int(key)
        .ok_or_else(|| outside::<M>(ranges, &key.to_string()))
}

/// [`Error::UnknownShard`] for a key (rendered) outside every range of model `M`.
pub fn outside<M: Model>(ranges: &RangeResolver, key: &str) -> Error {
    let covered: Vec<String> = ranges.ranges().iter().map(ToString::to_string).collect();
    super::unplaced::<M>(
        key,
        &format!(
            "is outside every range ({}); add a range holding it to `#[shard(ranges(..))]`",
            covered.join(", ")
        ),
    )
}

/// The shards of model `M`, placed by `ranges`, that may hold keys between the dynamic values
/// `low` and `high`; `None` (no pruning) when a bound is not an integer.
///
/// # Errors
///
/// Never; the `Result` is the router's hook signature.
pub fn shards_for_range(
    ranges: &RangeResolver,
    low: Bound<&Value>,
    high: Bound<&Value>,
) -> Result<Option<Vec<ShardId>>> {
    fn int(bound: Bound<&Value>) -> Option<Bound<i64>> {
        Some(match bound {
            Bound::Included(v) => match KeyPart::from_value(v)? {
                KeyPart::Int(i) => Bound::Included(i),
                _ => return None,
            },
            Bound::Excluded(v) => match KeyPart::from_value(v)? {
                KeyPart::Int(i) => Bound::Excluded(i),
                _ => return None,
            },
            Bound::Unbounded => Bound::Unbounded,
        })
    }
    Ok(match (int(low), int(high)) {
        (Some(low), Some(high)) => Some(ranges.shards_overlapping(low, high)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ShardId = ShardId::named(0, "a");
    const B: ShardId = ShardId::named(1, "b");
    const C: ShardId = ShardId::named(2, "c");

    fn three() -> RangeResolver {
        RangeResolver::new([
            KeyRange::new(Some(100), None, C),
            KeyRange::new(None, Some(0), A),
            KeyRange::new(Some(0), Some(100), B),
        ])
        .unwrap()
    }

    #[test]
    fn keys_find_their_range() {
        let r = three();
        assert_eq!(r.shard_for_int(i64::MIN), Some(A));
        assert_eq!(r.shard_for_int(-1), Some(A));
        assert_eq!(r.shard_for_int(0), Some(B));
        assert_eq!(r.shard_for_int(99), Some(B));
        assert_eq!(r.shard_for_int(100), Some(C));
        assert_eq!(r.shard_for_int(i64::MAX), Some(C));
    }

    #[test]
    fn closed_ends_and_static_ranges() {
        static RANGES: RangeResolver = RangeResolver::from_sorted(&[
            KeyRange::new(Some(10), Some(20), A),
            KeyRange::new(Some(20), Some(30), B),
        ]);
        assert_eq!(RANGES.shard_for_int(9), None);
        assert_eq!(RANGES.shard_for_int(10), Some(A));
        assert_eq!(RANGES.shard_for_int(29), Some(B));
        assert_eq!(RANGES.shard_for_int(30), None);
        assert_eq!(RANGES.shard_for(&15_i32), Some(A));
    }

    #[test]
    fn overlapping_shards() {
        let r = three();
        use Bound::*;
        assert_eq!(r.shards_overlapping(Unbounded, Unbounded), [A, B, C]);
        assert_eq!(r.shards_overlapping(Included(0), Excluded(100)), [B]);
        assert_eq!(r.shards_overlapping(Included(0), Included(100)), [B, C]);
        assert_eq!(r.shards_overlapping(Excluded(-1), Excluded(100)), [B]);
        assert_eq!(r.shards_overlapping(Included(-1), Excluded(0)), [A]);
        assert_eq!(r.shards_overlapping(Included(5), Included(4)), []);
        assert_eq!(r.shards_overlapping(Excluded(i64::MAX), Unbounded), []);
        assert_eq!(r.shards_overlapping(Unbounded, Excluded(i64::MIN)), []);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(RangeResolver::new([]).is_err());
        let empty = RangeResolver::new([KeyRange::new(Some(5), Some(5), A)]).unwrap_err();
        assert!(empty.to_string().contains("5..5"), "{empty}");
        let overlap = RangeResolver::new([
            KeyRange::new(None, Some(10), A),
            KeyRange::new(Some(5), None, B),
        ])
        .unwrap_err();
        assert!(overlap.to_string().contains("overlaps"), "{overlap}");
        assert!(
            RangeResolver::new([KeyRange::new(None, None, A), KeyRange::new(None, None, B)])
                .is_err()
        );
    }
}
