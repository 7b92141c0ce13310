//! The merger: combines per-shard answers into the answer one database would give.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use grant_core::{Model, Order};
use sea_query::Value;

/// Compares two values as the backend's `ORDER BY ... ASC` would: integers and floats by
/// number, strings by bytes (SQLite's `BINARY` collation, PostgreSQL's `C` collation), NULL
/// first when `nulls_first`, else last.
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
        (Some(x), Some(y)) => return x.as_f64().total_cmp(&y.as_f64()),
        _ => {}
    }
    match (a, b) {
        (Value::String(Some(x)), Value::String(Some(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bytes(Some(x)), Value::Bytes(Some(y))) => x.cmp(y),
        (Value::Bool(Some(x)), Value::Bool(Some(y))) => x.cmp(y),
        (Value::Char(Some(x)), Value::Char(Some(y))) => x.cmp(y),
        // Different kinds never meet in one typed column; order them stably anyway.
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
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

/// Whether a value is SQL NULL.
pub fn is_null(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(None)
            | Value::TinyInt(None)
            | Value::SmallInt(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::TinyUnsigned(None)
            | Value::SmallUnsigned(None)
            | Value::Unsigned(None)
            | Value::BigUnsigned(None)
            | Value::Float(None)
            | Value::Double(None)
            | Value::String(None)
            | Value::Char(None)
            | Value::Bytes(None)
    )
}

/// A row ordering: columns with directions, compared as the backend does.
#[derive(Debug, Clone)]
pub(crate) struct RowOrder {
    pub(crate) keys: Vec<(usize, Order)>,
    pub(crate) nulls_first: bool,
}

impl RowOrder {
    pub(crate) fn compare<M: Model>(&self, a: &M, b: &M) -> Ordering {
        for &(column, order) in &self.keys {
            let o = compare_values(&a.value(column), &b.value(column), self.nulls_first);
            let o = match order {
                Order::Asc => o,
                Order::Desc => o.reverse(),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

struct Head<'a, M> {
    row: M,
    source: usize,
    order: &'a RowOrder,
}

impl<M: Model> PartialEq for Head<'_, M> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<M: Model> Eq for Head<'_, M> {}
impl<M: Model> PartialOrd for Head<'_, M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M: Model> Ord for Head<'_, M> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the smallest row comes out first; equal rows
        // come out in shard order.
        self.order
            .compare(&self.row, &other.row)
            .then(self.source.cmp(&other.source))
            .reverse()
    }
}

/// K-way merge of per-shard sorted row lists, skipping `offset` rows and keeping at most
/// `limit`. Stops as soon as the page is full.
pub(crate) fn merge_sorted<M: Model>(
    parts: Vec<Vec<M>>,
    order: &RowOrder,
    offset: u64,
    limit: Option<u64>,
) -> Vec<M> {
    let mut iters: Vec<std::vec::IntoIter<M>> = parts.into_iter().map(Vec::into_iter).collect();
    let mut heap = BinaryHeap::with_capacity(iters.len());
    for (source, it) in iters.iter_mut().enumerate() {
        if let Some(row) = it.next() {
            heap.push(Head { row, source, order });
        }
    }
    let mut out = Vec::new();
    let mut skipped = 0;
    while let Some(Head { row, source, .. }) = heap.pop() {
        if limit.is_some_and(|l| out.len() as u64 >= l) {
            break;
        }
        if skipped < offset {
            skipped += 1;
        } else {
            out.push(row);
        }
        if let Some(next) = iters[source].next() {
            heap.push(Head {
                row: next,
                source,
                order,
            });
        }
    }
    out
}

/// Concatenates per-shard lists (no order requested), skipping `offset` and keeping `limit`.
pub(crate) fn concat<M>(parts: Vec<Vec<M>>, offset: u64, limit: Option<u64>) -> Vec<M> {
    let rows = parts.into_iter().flatten().skip(offset as usize);
    match limit {
        Some(l) => rows.take(l as usize).collect(),
        None => rows.collect(),
    }
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
}
