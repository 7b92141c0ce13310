//! The router: which shards a query must visit, and what each of them is asked.
//!
//! Equality and `IN` on the shard key (also inside `AND` / `OR`) prune shards, and each visited
//! shard receives only its own keys: `id IN (1, 3)` with 1 and 3 on different shards sends
//! `id IN (1)` to one and `id IN (3)` to the other. A composite shard key prunes when an `AND`
//! gives every key column an equality (or an `IN` list: the combinations are placed, up to
//! [`MAX_COMBINATIONS`]). For strategies that place ranges of keys (`range`), `lt`, `lte`, `gt`,
//! `gte` and `between` on the key prune to the shards whose ranges they touch. Without a usable
//! key the query goes to the task-local shard context if one is set, else to every shard.
//!
//! Every decision goes through the model's run-time [`Placement`] when the cluster has one for
//! it (reads use the `old` side of a migration), else through the model's static placement. A
//! directory placement answers from its cache, which the query fills before planning: a key the
//! directory does not know has no rows, so it prunes to no shard.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Bound;

use grant_core::{CmpOp, Error, Model, Node, Result, ShardId};
use sea_query::Value;

use crate::context::current_shard;
use crate::placement::Placement;
use crate::resolve::key_columns;

/// The shard of dynamic key `values` under `placement` (static when `None`); `None` when a
/// directory knows no such key.
fn resolve<M: Model>(placement: Option<&Placement>, values: &[Value]) -> Result<Option<ShardId>> {
    match placement {
        Some(p) => p.shard_for_values::<M>(values),
        None => match values {
            [value] => M::shard_for_value(value).map(Some),
            _ => M::shard_for_values(values).map(Some),
        },
    }
}

/// The shards of `M` under `placement`.
fn model_shards<M: Model>(placement: Option<&Placement>) -> Cow<'_, [ShardId]> {
    match placement {
        Some(p) => p.shards::<M>(),
        None => Cow::Borrowed(M::shards()),
    }
}

/// Where a query was told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Routed by the filter's shard key, else the context, else all shards.
    Auto,
    /// Exactly this shard.
    Shard(ShardId),
    /// Every shard of the model.
    All,
}

/// One shard's part of a query: the shard and its (possibly narrowed) filter.
pub(crate) type Leg = (ShardId, Option<Node>);

/// Decides the shards for a query of `M` and narrows the filter for each.
pub(crate) fn plan<M: Model>(
    placement: Option<&Placement>,
    target: Target,
    filter: Option<&Node>,
) -> Result<Vec<Leg>> {
    let p = placement;
    match target {
        Target::Shard(shard) => {
            // An explicit shard may be any the model uses: both sides of a migration.
            let shards: Cow<'_, [ShardId]> = match p {
                Some(p) => Cow::Owned(p.all_shards::<M>()),
                None => Cow::Borrowed(M::shards()),
            };
            if !shards.contains(&shard) {
                return Err(Error::UnknownShard {
                    model: M::META.name,
                    shard: shard.name(),
                    known: shards
                        .iter()
                        .map(ShardId::name)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Ok(vec![(shard, filter.cloned())])
        }
        Target::All => Ok(all::<M>(p, filter)),
        Target::Auto => {
            let key = key_columns::<M>();
            let pruned = match filter {
                Some(node) if !key.is_empty() => key_shards::<M>(p, node, key)?,
                _ => None,
            };
            match pruned {
                Some(shards) => {
                    let mut legs = Vec::with_capacity(shards.len());
                    for shard in shards {
                        let narrowed = match filter {
                            Some(node) => narrow::<M>(p, node, key, shard)?,
                            None => Node::Const(true),
                        };
                        if !matches!(narrowed, Node::Const(false)) {
                            legs.push((shard, Some(narrowed)));
                        }
                    }
                    Ok(legs)
                }
                None => match current_shard() {
                    Some(shard) => plan::<M>(p, Target::Shard(shard), filter),
                    None => Ok(all::<M>(p, filter)),
                },
            }
        }
    }
}

fn all<M: Model>(placement: Option<&Placement>, filter: Option<&Node>) -> Vec<Leg> {
    model_shards::<M>(placement)
        .iter()
        .map(|&shard| (shard, filter.cloned()))
        .collect()
}

/// The values compared with the (single-column) shard key by equality or `IN` anywhere in
/// `node`: what a directory must look up before the query is planned.
pub(crate) fn key_values_in<M: Model>(node: &Node) -> Vec<&Value> {
    fn walk<'a>(node: &'a Node, key: usize, out: &mut Vec<&'a Value>) {
        match node {
            Node::Cmp {
                col,
                op: CmpOp::Eq,
                value,
            } if col.index == key => out.push(value),
            Node::In { col, values } if col.index == key => out.extend(values),
            Node::And(nodes) | Node::Or(nodes) => {
                for n in nodes {
                    walk(n, key, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let [key] = key_columns::<M>() {
        walk(node, *key, &mut out);
    }
    out
}

/// The most key combinations a composite-key `AND` of `IN` lists is placed one by one; above it
/// the `AND` does not prune.
pub(crate) const MAX_COMBINATIONS: usize = 1024;

/// The shards the filter allows, or `None` when it does not constrain the shard key.
fn key_shards<M: Model>(
    p: Option<&Placement>,
    node: &Node,
    key: &[usize],
) -> Result<Option<BTreeSet<ShardId>>> {
    let single = match key {
        [single] => Some(*single),
        _ => None,
    };
    Ok(match node {
        Node::Cmp { col, op, value } if Some(col.index) == single => match op {
            CmpOp::Eq => Some(
                resolve::<M>(p, std::slice::from_ref(value))?
                    .into_iter()
                    .collect(),
            ),
            CmpOp::Lt => range_shards::<M>(p, Bound::Unbounded, Bound::Excluded(value))?,
            CmpOp::Lte => range_shards::<M>(p, Bound::Unbounded, Bound::Included(value))?,
            CmpOp::Gt => range_shards::<M>(p, Bound::Excluded(value), Bound::Unbounded)?,
            CmpOp::Gte => range_shards::<M>(p, Bound::Included(value), Bound::Unbounded)?,
            CmpOp::Ne => None,
        },
        Node::Between { col, low, high } if Some(col.index) == single => {
            range_shards::<M>(p, Bound::Included(low), Bound::Included(high))?
        }
        Node::In { col, values } if Some(col.index) == single => {
            let mut set = BTreeSet::new();
            for value in values {
                set.extend(resolve::<M>(p, std::slice::from_ref(value))?);
            }
            Some(set)
        }
        Node::And(nodes) => {
            let mut acc: Option<BTreeSet<ShardId>> = match single {
                Some(_) => None,
                None => combination_shards::<M>(p, nodes, key)?,
            };
            for node in nodes {
                if let Some(set) = key_shards::<M>(p, node, key)? {
                    acc = Some(match acc {
                        Some(prev) => prev.intersection(&set).copied().collect(),
                        None => set,
                    });
                }
            }
            acc
        }
        Node::Or(nodes) => {
            let mut acc = BTreeSet::new();
            for node in nodes {
                match key_shards::<M>(p, node, key)? {
                    Some(set) => acc.extend(set),
                    None => return Ok(None),
                }
            }
            Some(acc)
        }
        Node::Const(false) => Some(BTreeSet::new()),
        _ => None,
    })
}

/// The shards a range condition on the (single) key allows, when the strategy can tell.
fn range_shards<M: Model>(
    p: Option<&Placement>,
    low: Bound<&Value>,
    high: Bound<&Value>,
) -> Result<Option<BTreeSet<ShardId>>> {
    let shards = match p {
        Some(p) => p.shards_for_range::<M>(low, high)?,
        None => M::shards_for_range(low, high)?,
    };
    Ok(shards.map(|shards| shards.into_iter().collect()))
}

/// For a composite key: the values each key column is restricted to by the `AND`'s direct
/// children (an equality or an `IN` list), or `None` when some key column is unrestricted.
fn key_values<'a>(nodes: &'a [Node], key: &[usize]) -> Option<Vec<&'a [Value]>> {
    key.iter()
        .map(|&column| {
            nodes.iter().find_map(|node| match node {
                Node::Cmp {
                    col,
                    op: CmpOp::Eq,
                    value,
                } if col.index == column => Some(std::slice::from_ref(value)),
                Node::In { col, values } if col.index == column => Some(values.as_slice()),
                _ => None,
            })
        })
        .collect()
}

/// Calls `f` with every combination of the columns' values (at most [`MAX_COMBINATIONS`]);
/// `false` when there are more.
fn for_each_combination(
    columns: &[&[Value]],
    mut f: impl FnMut(&[Value]) -> Result<()>,
) -> Result<bool> {
    let total = columns
        .iter()
        .try_fold(1_usize, |n, values| n.checked_mul(values.len()));
    match total {
        Some(n) if n <= MAX_COMBINATIONS => {}
        _ => return Ok(false),
    }
    let mut at = vec![0_usize; columns.len()];
    let mut combination: Vec<Value> = Vec::with_capacity(columns.len());
    if columns.iter().any(|values| values.is_empty()) {
        return Ok(true);
    }
    loop {
        combination.clear();
        combination.extend(
            columns
                .iter()
                .zip(&at)
                .map(|(values, &i)| values[i].clone()),
        );
        f(&combination)?;
        // Advance the odometer, last column fastest.
        let mut column = columns.len();
        loop {
            if column == 0 {
                return Ok(true);
            }
            column -= 1;
            at[column] += 1;
            if at[column] < columns[column].len() {
                break;
            }
            at[column] = 0;
        }
    }
}

/// The shards of a composite key fully restricted by the `AND`'s children, if it is.
fn combination_shards<M: Model>(
    p: Option<&Placement>,
    nodes: &[Node],
    key: &[usize],
) -> Result<Option<BTreeSet<ShardId>>> {
    let Some(columns) = key_values(nodes, key) else {
        return Ok(None);
    };
    let mut set = BTreeSet::new();
    let complete = for_each_combination(&columns, |values| {
        set.extend(resolve::<M>(p, values)?);
        Ok(())
    })?;
    Ok(complete.then_some(set))
}

/// The filter as `shard` should see it: key equalities and `IN` lists of other shards removed.
fn narrow<M: Model>(
    p: Option<&Placement>,
    node: &Node,
    key: &[usize],
    shard: ShardId,
) -> Result<Node> {
    let single = match key {
        [single] => Some(*single),
        _ => None,
    };
    Ok(match node {
        Node::Cmp {
            col,
            op: CmpOp::Eq,
            value,
        } if Some(col.index) == single => {
            if resolve::<M>(p, std::slice::from_ref(value))? == Some(shard) {
                node.clone()
            } else {
                Node::Const(false)
            }
        }
        Node::In { col, values } if Some(col.index) == single => {
            let mut own = Vec::new();
            for value in values {
                if resolve::<M>(p, std::slice::from_ref(value))? == Some(shard) {
                    own.push(value.clone());
                }
            }
            if own.is_empty() {
                Node::Const(false)
            } else {
                Node::In {
                    col: *col,
                    values: own,
                }
            }
        }
        Node::And(nodes) => {
            let nodes = match single {
                Some(_) => Cow::Borrowed(nodes.as_slice()),
                None => match narrow_combinations::<M>(p, nodes, key, shard)? {
                    Some(narrowed) => narrowed,
                    None => return Ok(Node::Const(false)),
                },
            };
            let mut kept = Vec::with_capacity(nodes.len());
            for node in nodes.iter() {
                let n = narrow::<M>(p, node, key, shard)?;
                if matches!(n, Node::Const(false)) {
                    return Ok(Node::Const(false));
                }
                kept.push(n);
            }
            Node::And(kept)
        }
        Node::Or(nodes) => {
            let mut kept = Vec::with_capacity(nodes.len());
            for node in nodes {
                let n = narrow::<M>(p, node, key, shard)?;
                if !matches!(n, Node::Const(false)) {
                    kept.push(n);
                }
            }
            match kept.len() {
                0 => Node::Const(false),
                1 => kept.pop().unwrap_or(Node::Const(false)),
                _ => Node::Or(kept),
            }
        }
        // Under NOT (and anything else) nothing can be narrowed without changing the meaning.
        other => other.clone(),
    })
}

/// For a composite key fully restricted by an `AND`'s children: `None` when no combination
/// lives on `shard` (the `AND` matches nothing there); else the children, with the one `IN` list
/// (when only one key column has several values) cut to the values whose combinations live on
/// `shard`.
fn narrow_combinations<'a, M: Model>(
    p: Option<&Placement>,
    nodes: &'a [Node],
    key: &[usize],
    shard: ShardId,
) -> Result<Option<Cow<'a, [Node]>>> {
    let Some(columns) = key_values(nodes, key) else {
        return Ok(Some(Cow::Borrowed(nodes)));
    };
    let mut kept: Vec<Vec<Value>> = Vec::new();
    let complete = for_each_combination(&columns, |values| {
        if resolve::<M>(p, values)? == Some(shard) {
            kept.push(values.to_vec());
        }
        Ok(())
    })?;
    if !complete {
        return Ok(Some(Cow::Borrowed(nodes)));
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let several: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i].len() > 1)
        .collect();
    let [position] = several.as_slice() else {
        return Ok(Some(Cow::Borrowed(nodes)));
    };
    let column = key[*position];
    let own: Vec<Value> = kept.iter().map(|c| c[*position].clone()).collect();
    let mut out = nodes.to_vec();
    // The node `key_values` took the column's values from: the first restricting it.
    let restricting = out.iter_mut().find(|node| match node {
        Node::Cmp {
            col, op: CmpOp::Eq, ..
        }
        | Node::In { col, .. } => col.index == column,
        _ => false,
    });
    if let Some(Node::In { values, .. }) = restricting {
        *values = own;
    }
    Ok(Some(Cow::Owned(out)))
}
