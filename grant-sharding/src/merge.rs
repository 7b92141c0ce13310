//! The merger (L3): per-shard row streams into the one ordered answer one database would give.
//!
//! * ordered rows: a streaming k-way merge (a heap over one row stream per shard), so memory is
//!   O(shards × stream buffer), not O(rows); the offset is skipped once, after the merge;
//! * `DISTINCT`: duplicates across shards are dropped during the merge;
//! * how values compare: [`compare_values`] orders values the way both backends do (NULLs
//!   first or last, `-0.0 = 0.0`, text in byte order), and `values_key` is the canonical
//!   encoding of a key used to tell values apart.
//!
//! Aggregates are combined elsewhere: partial results per shard and group are folded by the
//! `Acc` accumulators in [`crate::select`] (counts and sums added, minima and maxima compared,
//! averages as total sum over total count, distinct counts as the size of the union of the
//! distinct values).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use grant_core::value::{encode_key, is_null};
use grant_core::{Error, Nulls, Order, Result, ShardId};
use sea_query::Value;

use crate::exec::Policy;

/// Compares two non-NULL-aware values as the backends order them: integers and floats by
/// number ([`compare_floats`]: `-0.0` equals `0.0`, NaN after every number), strings by bytes
/// (SQLite's `BINARY` collation, PostgreSQL's `C` collation), NULL first when `nulls_first`,
/// else last.
pub fn compare_values(a: &Value, b: &Value, nulls_first: bool) -> Ordering {
    match (is_null(a), is_null(b)) {
        (true, true) => return Ordering::Equal,
        (true, false) => {
            return if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        (false, true) => {
            return if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        (false, false) => {}
    }
    match (number(a), number(b)) {
        (Some(Num::Int(x)), Some(Num::Int(y))) => return x.cmp(&y),
        (Some(x), Some(y)) => return compare_floats(x.as_f64(), y.as_f64()),
        _ => {}
    }
    match (a, b) {
        (Value::String(Some(x)), Value::String(Some(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(Some(x)), Value::Bytes(Some(y))) => x.cmp(y),
        (Value::Bool(Some(x)), Value::Bool(Some(y))) => x.cmp(y),
        (Value::Char(Some(x)), Value::Char(Some(y))) => x.cmp(y),
        // Dates and instants in time order, uuids by bytes, decimals by number; different
        // kinds never meet in one typed column: ordered stably anyway.
        _ => grant_core::types::compare(a, b)
            .unwrap_or_else(|| format!("{a:?}").cmp(&format!("{b:?}"))),
    }
}

/// Compares two floats as PostgreSQL orders `float8` (and SQLite `REAL`): by number, `-0.0`
/// equal to `0.0` (so ties between them fall to the next ordering key, the primary key at the
/// latest, as in one database), NaN greater than every number and equal to every other NaN.
/// (SQLite has no NaN: it stores one as NULL.)
pub fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // Neither is NaN: `partial_cmp` is total here, and says -0.0 == 0.0.
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }
}

fn number(v: &Value) -> Option<Num> {
    Some(match v {
        Value::TinyInt(Some(x)) => Num::Int(i128::from(*x)),
        Value::SmallInt(Some(x)) => Num::Int(i128::from(*x)),
        Value::Int(Some(x)) => Num::Int(i128::from(*x)),
        Value::BigInt(Some(x)) => Num::Int(i128::from(*x)),
        Value::TinyUnsigned(Some(x)) => Num::Int(i128::from(*x)),
        Value::SmallUnsigned(Some(x)) => Num::Int(i128::from(*x)),
        Value::Unsigned(Some(x)) => Num::Int(i128::from(*x)),
        Value::BigUnsigned(Some(x)) => Num::Int(i128::from(*x)),
        Value::Float(Some(x)) => Num::Float(f64::from(*x)),
        Value::Double(Some(x)) => Num::Float(*x),
        _ => return None,
    })
}

/// One sort key's direction and where its NULLs go in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyOrder {
    pub(crate) order: Order,
    pub(crate) nulls_first: bool,
}

impl KeyOrder {
    /// The direction with explicit or backend-default NULL placement.
    pub(crate) fn new(
        order: Order,
        nulls: Option<Nulls>,
        backend_nulls_first_in_asc: bool,
    ) -> Self {
        let nulls_first = match nulls {
            Some(Nulls::First) => true,
            Some(Nulls::Last) => false,
            // Both backends mirror their NULL placement under DESC.
            None => match order {
                Order::Asc => backend_nulls_first_in_asc,
                Order::Desc => !backend_nulls_first_in_asc,
            },
        };
        KeyOrder { order, nulls_first }
    }
}

/// Compares two key vectors under an ordering.
pub(crate) fn compare_keys(a: &[Value], b: &[Value], order: &[KeyOrder]) -> Ordering {
    for ((x, y), k) in a.iter().zip(b).zip(order) {
        let o = match (is_null(x), is_null(y)) {
            (false, false) => {
                let o = compare_values(x, y, true);
                match k.order {
                    Order::Asc => o,
                    Order::Desc => o.reverse(),
                }
            }
            _ => compare_values(x, y, k.nulls_first),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// A row on its way through the merge: its sort key and the item itself.
pub(crate) type Keyed<T> = (Vec<Value>, T);

/// One shard's row stream.
pub(crate) struct Source<'a, T> {
    pub(crate) shard: ShardId,
    pub(crate) rows: BoxStream<'a, Result<Keyed<T>>>,
}

struct Head<'o, T> {
    key: Vec<Value>,
    item: T,
    source: usize,
    order: &'o [KeyOrder],
}

impl<T> PartialEq for Head<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Head<'_, T> {}
impl<T> PartialOrd for Head<'_, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Head<'_, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse, so the smallest key comes out first; equal keys
        // come out in shard order.
        compare_keys(&self.key, &other.key, self.order)
            .then(self.source.cmp(&other.source))
            .reverse()
    }
}

/// How a merge tells duplicate items apart for `DISTINCT`.
pub(crate) type DistinctKey<T> = fn(&T) -> Vec<u8>;

/// The page a merge produces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub(crate) offset: u64,
    pub(crate) limit: Option<u64>,
}

/// Streaming k-way merge of per-shard streams sorted by `order` (an empty `order` concatenates
/// in shard order). Skips `page.offset` rows, keeps `page.limit`, stops pulling as soon as the
/// page is full. With `distinct`, rows with equal distinct keys count once.
pub(crate) async fn merge_streams<T>(
    mut sources: Vec<Source<'_, T>>,
    order: &[KeyOrder],
    page: Page,
    distinct: Option<DistinctKey<T>>,
    policy: &Policy,
) -> Result<(Vec<T>, Vec<(ShardId, Error)>)> {
    let mut failed = Vec::new();
    let mut out = Vec::new();
    let mut skipped = 0_u64;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let full = |out: &Vec<T>| page.limit.is_some_and(|l| out.len() as u64 >= l);
    if page.limit == Some(0) {
        return Ok((out, failed));
    }
    let mut emit = |item: T, out: &mut Vec<T>| {
        if let Some(key_of) = distinct
            && !seen.insert(key_of(&item))
        {
            return;
        }
        if skipped < page.offset {
            skipped += 1;
        } else {
            out.push(item);
        }
    };

    if order.is_empty() {
        for source in &mut sources {
            while !full(&out) {
                match pull(source, policy).await {
                    Pulled::Row((_, item)) => emit(item, &mut out),
                    Pulled::End => break,
                    Pulled::Failed(error) if policy.partial => {
                        failed.push((source.shard, error));
                        break;
                    }
                    Pulled::Failed(error) => return Err(error),
                }
            }
        }
        return Ok((out, failed));
    }

    let mut heap = BinaryHeap::with_capacity(sources.len());
    let firsts = futures_util::future::join_all(sources.iter_mut().map(|s| pull(s, policy))).await;
    for (i, first) in firsts.into_iter().enumerate() {
        match first {
            Pulled::Row((key, item)) => heap.push(Head {
                key,
                item,
                source: i,
                order,
            }),
            Pulled::End => {}
            Pulled::Failed(error) if policy.partial => failed.push((sources[i].shard, error)),
            Pulled::Failed(error) => return Err(error),
        }
    }
    while let Some(head) = heap.pop() {
        if full(&out) {
            break;
        }
        let source = head.source;
        emit(head.item, &mut out);
        if full(&out) {
            break;
        }
        match pull(&mut sources[source], policy).await {
            Pulled::Row((key, item)) => heap.push(Head {
                key,
                item,
                source,
                order,
            }),
            Pulled::End => {}
            Pulled::Failed(error) if policy.partial => failed.push((sources[source].shard, error)),
            Pulled::Failed(error) => return Err(error),
        }
    }
    Ok((out, failed))
}

enum Pulled<T> {
    Row(Keyed<T>),
    End,
    Failed(Error),
}

async fn pull<T>(source: &mut Source<'_, T>, policy: &Policy) -> Pulled<T> {
    match tokio::time::timeout_at(policy.deadline, source.rows.next()).await {
        Ok(Some(Ok(row))) => Pulled::Row(row),
        Ok(Some(Err(error))) => Pulled::Failed(error),
        Ok(None) => Pulled::End,
        Err(_) => Pulled::Failed(policy.timeout_error([source.shard])),
    }
}

/// The encoding of a row's values for `DISTINCT` / `GROUP BY` identity.
pub(crate) fn values_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for v in values {
        encode_key(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_follow_the_backend() {
        let null = Value::BigInt(None);
        let one = Value::BigInt(Some(1));
        assert_eq!(compare_values(&null, &one, true), Ordering::Less);
        assert_eq!(compare_values(&null, &one, false), Ordering::Greater);
        assert_eq!(compare_values(&null, &null, false), Ordering::Equal);
        let desc_sqlite = KeyOrder::new(Order::Desc, None, true);
        assert!(!desc_sqlite.nulls_first);
        let desc_pg = KeyOrder::new(Order::Desc, None, false);
        assert!(desc_pg.nulls_first);
        assert_eq!(
            compare_keys(
                std::slice::from_ref(&one),
                std::slice::from_ref(&null),
                &[desc_pg]
            ),
            Ordering::Greater
        );
        let explicit = KeyOrder::new(Order::Desc, Some(Nulls::Last), false);
        assert_eq!(compare_keys(&[one], &[null], &[explicit]), Ordering::Less);
    }

    #[test]
    fn numbers_compare_across_widths_and_strings_by_bytes() {
        assert_eq!(
            compare_values(&Value::Int(Some(-5)), &Value::BigInt(Some(3)), true),
            Ordering::Less
        );
        assert_eq!(
            compare_values(&Value::Double(Some(2.5)), &Value::BigInt(Some(2)), true),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(&Value::from("Z"), &Value::from("a"), true),
            Ordering::Less
        );
        assert_eq!(
            compare_values(&Value::from("é"), &Value::from("z"), true),
            Ordering::Greater
        );
    }

    #[test]
    fn floats_compare_as_postgres_orders_them() {
        let d = |v: f64| Value::Double(Some(v));
        assert_eq!(compare_values(&d(-0.0), &d(0.0), true), Ordering::Equal);
        assert_eq!(compare_values(&d(0.0), &d(-0.0), true), Ordering::Equal);
        assert_eq!(
            compare_values(&d(f64::NAN), &d(f64::INFINITY), true),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(&d(-f64::NAN), &d(1e300), true),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(&d(f64::NAN), &d(-f64::NAN), true),
            Ordering::Equal
        );
        assert_eq!(
            compare_values(&d(f64::NEG_INFINITY), &d(-1.0), true),
            Ordering::Less
        );
        assert_eq!(
            compare_values(&Value::Float(Some(f32::NAN)), &d(1.0), true),
            Ordering::Greater
        );
        // NaN is a value, not NULL: NULL still goes where the backend puts it.
        assert_eq!(
            compare_values(&Value::Double(None), &d(f64::NAN), false),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(&Value::Double(None), &d(f64::NAN), true),
            Ordering::Less
        );
        // -0.0 / 0.0 ties fall to the next key (the primary key).
        let asc = KeyOrder::new(Order::Asc, None, false);
        let a = [d(0.0), Value::BigInt(Some(1))];
        let b = [d(-0.0), Value::BigInt(Some(2))];
        assert_eq!(compare_keys(&a, &b, &[asc, asc]), Ordering::Less);
        // DISTINCT / GROUP BY identity agrees.
        assert_eq!(values_key(&[d(-0.0)]), values_key(&[d(0.0)]));
        assert_eq!(values_key(&[d(f64::NAN)]), values_key(&[d(-f64::NAN)]));
        assert_ne!(values_key(&[d(f64::NAN)]), values_key(&[d(f64::INFINITY)]));
    }
}
