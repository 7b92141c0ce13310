//! Co-located relations (L4): a child model declared `#[grant(belongs_to(Parent, key(..)))]`
//! lives on its parent's shard (the derive proves it at compile time), so a parent's children
//! are one routed query, the children of many parents one statement per shard, and a child
//! query joined with its parent ([`Query::join_parent`]) one statement per shard, merged like
//! any query.

use std::collections::HashMap;
use std::marker::PhantomData;

use grant_core::key::describe_values;
use grant_core::value::is_null;
use grant_core::{
    Backend, BelongsTo, CmpOp, ColumnRef, Cond, Error, FromShardRow, Model, Node, Order, Result,
};
use sea_query::Value;

use crate::cluster::Cluster;
use crate::placement::Placement;
use crate::query::{JoinSpec, Query};

/// The most parents one statement of [`belonging_to_each`] asks for (the router splits them per
/// shard; more parents are asked for in several rounds).
const PARENTS_PER_STATEMENT: usize = 500;

fn key_column<C: Model>(i: usize) -> ColumnRef {
    ColumnRef {
        name: C::META.columns[i].name,
        index: i,
    }
}

/// `child.key = parent primary key` as a condition of `C`.
fn parent_condition<C: BelongsTo<P>, P: Model>(parent_key: &P::PrimaryKey) -> Node {
    let mut nodes: Vec<Node> = C::PARENT_KEY
        .iter()
        .zip(P::primary_key_values(parent_key))
        .map(|(&i, value)| Node::Cmp {
            col: key_column::<C>(i),
            op: CmpOp::Eq,
            value,
        })
        .collect();
    if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::And(nodes)
    }
}

/// The children of `parent`: a query of `C` filtered on the columns holding the parent's
/// primary key, routed like any query — to the parent's shard, which holds them all.
pub fn belonging_to<C: BelongsTo<P>, P: Model>(parent: &P) -> Query<C> {
    Query::auto().filter(Cond::from_node(parent_condition::<C, P>(
        &parent.primary_key(),
    )))
}

/// The children of each of `parents`, in the order of `parents` (each parent's children in
/// primary-key order; a parent listed twice gets them twice): one statement per shard the
/// parents live on (in rounds of 500 parents), shards in parallel.
///
/// # Errors
///
/// As [`Query::all`].
pub async fn belonging_to_each<C, P, DB>(
    cluster: &Cluster<DB>,
    parents: &[P],
) -> Result<Vec<Vec<C>>>
where
    C: BelongsTo<P> + FromShardRow<DB> + Clone,
    P: Model,
    DB: Backend,
{
    // Each distinct parent key once: its rendering -> the positions of the parents with it.
    let mut wanted: HashMap<String, Vec<usize>> = HashMap::new();
    let mut keys: Vec<P::PrimaryKey> = Vec::new();
    for (i, parent) in parents.iter().enumerate() {
        let key = parent.primary_key();
        let text = describe_values(&P::primary_key_values(&key));
        let slot = wanted.entry(text).or_default();
        if slot.is_empty() {
            keys.push(key);
        }
        slot.push(i);
    }
    let mut out: Vec<Vec<C>> = vec![Vec::new(); parents.len()];
    for round in keys.chunks(PARENTS_PER_STATEMENT) {
        let filter = if let [single] = C::PARENT_KEY {
            // One key column: `IN (..)`, split per shard by the router.
            Node::In {
                col: key_column::<C>(*single),
                values: round
                    .iter()
                    .flat_map(|k| P::primary_key_values(k))
                    .collect::<Vec<Value>>(),
            }
        } else {
            Node::Or(round.iter().map(parent_condition::<C, P>).collect())
        };
        let mut query = Query::<C>::auto().filter(Cond::from_node(filter));
        for &i in C::META.primary_key {
            query = query.push_order(i, Order::Asc, None);
        }
        for child in query.all(cluster).await? {
            let text = describe_values(&P::primary_key_values(&child.parent_key()));
            if let Some(positions) = wanted.get(&text) {
                for &i in positions {
                    out[i].push(child.clone());
                }
            }
        }
    }
    Ok(out)
}

impl<C: Model> Query<C> {
    /// Joins each matching row with its parent `P` (a model `C` `belongs_to`), on each shard:
    /// the parent lives on its child's shard, so the join runs there, in the same statement, and
    /// the shards' answers merge like any query's (order, limit and offset are the child
    /// query's). A row whose parent is missing comes with `None` (a left join).
    ///
    /// A model `C` does not belong to is a compile error.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// // An issue page: its comments, oldest first, each with its author, in one statement.
    /// let page: Vec<(Comment, Option<User>)> = Comment::belonging_to(&issue)
    ///     .order_by(Comment::CREATED_AT, Order::Asc)
    ///     .join_parent::<User>()
    ///     .all(&cluster)
    ///     .await?;
    /// ```
    pub fn join_parent<P: Model>(self) -> Joined<C, P>
    where
        C: BelongsTo<P>,
    {
        Joined {
            query: self,
            _parent: PhantomData,
        }
    }
}

/// A query of child rows joined with their parent on each shard ([`Query::join_parent`]).
pub struct Joined<C, P> {
    query: Query<C>,
    _parent: PhantomData<fn() -> P>,
}

impl<C: Model, P: Model> std::fmt::Debug for Joined<C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined")
            .field("child", &C::META.name)
            .field("parent", &P::META.name)
            .field("query", &self.query)
            .finish()
    }
}

impl<C: BelongsTo<P>, P: Model> Joined<C, P> {
    /// Every matching child row with its parent (`None` when the parent row is missing), in
    /// the child query's order.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] while the two models' run-time placements differ (`set_placement`
    /// or a reshard of one of them, a tenant move between its models' cutovers) or one of them
    /// migrates: rows placed apart at run time need not be co-located, so the join is refused
    /// rather than answered from one shard's half (load the parents with their own query
    /// meanwhile). Equal placements Grant can describe exactly — both resharded to the same
    /// built-in resolver, a tenant moved with both models — keep them co-located, and the join
    /// runs. Otherwise as [`Query::all`].
    pub async fn all<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Vec<(C, Option<P>)>>
    where
        C: FromShardRow<DB>,
        P: FromShardRow<DB>,
    {
        let (child, parent) = (cluster.placement::<C>(), cluster.placement::<P>());
        if !Placement::co_locates(
            child.as_ref().map(|s| &s.placement),
            parent.as_ref().map(|s| &s.placement),
        ) {
            return Err(Error::Unsupported {
                model: C::META.name,
                reason: format!(
                    "a join of {} with {} while their run-time placements differ (set_placement, \
                     a reshard, or a tenant move between the cutovers of its models) or one is \
                     migrating: their rows need not be on the same shards; query the parents by \
                     key instead (belonging_to_each from the parent side), or finish the move",
                    C::META.name,
                    P::META.name
                ),
            });
        }
        let columns: Vec<&'static str> = C::META.column_names().collect();
        let join = JoinSpec {
            table: P::META.table,
            columns: P::META.column_names().collect(),
            on: P::META
                .primary_key
                .iter()
                .zip(C::PARENT_KEY)
                .map(|(&p, &c)| (p, C::META.columns[c].name))
                .collect(),
        };
        let offset = columns.len();
        // The parent's first primary-key column is NULL exactly when the left join found none.
        let probe = offset + P::META.primary_key[0];
        let probe_kind = P::META.columns[P::META.primary_key[0]].kind;
        let rows = self
            .query
            .fetch_rows(cluster, false, &columns, Some(&join), |row| {
                let child = C::from_row_at(row, 0)?;
                let parent = if is_null(&DB::get_value(row, probe, probe_kind)?) {
                    None
                } else {
                    Some(P::from_row_at(row, offset)?)
                };
                Ok((child, parent))
            })
            .await?;
        Ok(rows.value)
    }
}
