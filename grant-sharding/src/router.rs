//! The router: which shards a query must visit, and what each of them is asked.
//!
//! Equality and `IN` on the shard key (also inside `AND` / `OR`) prune shards, and each visited
//! shard receives only its own keys: `id IN (1, 3)` with 1 and 3 on different shards sends
//! `id IN (1)` to one and `id IN (3)` to the other. Without a usable key the query goes to the
//! task-local shard context if one is set, else to every shard.

use std::collections::BTreeSet;

use grant_core::{CmpOp, Error, Model, Node, Result, ShardId};

use crate::context::current_shard;

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
pub(crate) fn plan<M: Model>(target: Target, filter: Option<&Node>) -> Result<Vec<Leg>> {
    match target {
        Target::Shard(shard) => {
            if !M::shards().contains(&shard) {
                return Err(Error::UnknownShard {
                    model: M::META.name,
                    shard: shard.name(),
                    known: M::shards()
                        .iter()
                        .map(ShardId::name)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Ok(vec![(shard, filter.cloned())])
        }
        Target::All => Ok(all::<M>(filter)),
        Target::Auto => {
            let pruned = match (M::META.shard_key, filter) {
                (Some(key), Some(node)) => key_shards::<M>(node, key)?,
                _ => None,
            };
            match pruned {
                Some(indexes) => {
                    let mut legs = Vec::with_capacity(indexes.len());
                    for index in indexes {
                        let shard = M::shards()[index];
                        let key = M::META.shard_key.unwrap_or_default();
                        let narrowed = match filter {
                            Some(node) => narrow::<M>(node, key, shard)?,
                            None => Node::Const(true),
                        };
                        if !matches!(narrowed, Node::Const(false)) {
                            legs.push((shard, Some(narrowed)));
                        }
                    }
                    Ok(legs)
                }
                None => match current_shard() {
                    Some(shard) => plan::<M>(Target::Shard(shard), filter),
                    None => Ok(all::<M>(filter)),
                },
            }
        }
    }
}

fn all<M: Model>(filter: Option<&Node>) -> Vec<Leg> {
    M::shards()
        .iter()
        .map(|&shard| (shard, filter.cloned()))
        .collect()
}

/// The shard indexes the filter allows, or `None` when it does not constrain the shard key.
fn key_shards<M: Model>(node: &Node, key: usize) -> Result<Option<BTreeSet<usize>>> {
    Ok(match node {
        Node::Cmp {
            col,
            op: CmpOp::Eq,
            value,
        } if col.index == key => Some(BTreeSet::from(
            [M::shard_for_value(value)?.index() as usize],
        )),
        Node::In { col, values } if col.index == key => {
            let mut set = BTreeSet::new();
            for value in values {
                set.insert(M::shard_for_value(value)?.index() as usize);
            }
            Some(set)
        }
        Node::And(nodes) => {
            let mut acc: Option<BTreeSet<usize>> = None;
            for node in nodes {
                if let Some(set) = key_shards::<M>(node, key)? {
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
                match key_shards::<M>(node, key)? {
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

/// The filter as `shard` should see it: key equalities and `IN` lists of other shards removed.
fn narrow<M: Model>(node: &Node, key: usize, shard: ShardId) -> Result<Node> {
    Ok(match node {
        Node::Cmp {
            col,
            op: CmpOp::Eq,
            value,
        } if col.index == key => {
            if M::shard_for_value(value)? == shard {
                node.clone()
            } else {
                Node::Const(false)
            }
        }
        Node::In { col, values } if col.index == key => {
            let mut own = Vec::new();
            for value in values {
                if M::shard_for_value(value)? == shard {
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
            let mut kept = Vec::with_capacity(nodes.len());
            for node in nodes {
                let n = narrow::<M>(node, key, shard)?;
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
                let n = narrow::<M>(node, key, shard)?;
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
