//! [`ReshardPlan`]: which rows move from which shard to which, before anything moves.

use std::collections::BTreeMap;
use std::fmt;

use futures_util::future::{join_all, try_join_all};
use grant_core::key::OwnedKeyPart;
use grant_core::{Backend, Error, Model, Result, ShardId, ValueKind};
use sea_query::{Condition, Expr, ExprTrait, Value};
use sea_query_sqlx::SqlxBinder;

use crate::cluster::{Cluster, ReadPolicy};
use crate::placement::{Pins, Placement};
use crate::resolve::key_columns;

/// Above this many rows on a source shard the plan samples that many keys instead of scanning
/// them all.
pub const SAMPLE_LIMIT: u64 = 200_000;

/// Rows moving from one shard to another (estimated when the source was sampled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// Where the rows are.
    pub from: ShardId,
    /// Where they go.
    pub to: ShardId,
    /// How many (estimated from a sample above [`SAMPLE_LIMIT`] rows per source).
    pub rows: u64,
}

/// The moves that take model rows from their current placement to a new one: printable
/// (`Display`), computed from each source shard's `COUNT(*)` and a scan of its keys.
#[derive(Debug, Clone)]
pub struct ReshardPlan {
    pub(crate) model: &'static str,
    pub(crate) table: &'static str,
    pub(crate) old: Placement,
    pub(crate) new: Placement,
    pub(crate) sources: Vec<(ShardId, u64)>,
    pub(crate) moves: Vec<Move>,
    pub(crate) sampled: bool,
    /// The rows that can move at all, when fewer than all ([`scope`]): every scan of the
    /// job (copy, verification, cleanup) reads only them.
    pub(crate) scope: Option<Condition>,
}

/// The shard-key values that can change shards between `old` and `new` when the two differ
/// only in pins over the same base placement (a tenant move): the keys pinned differently.
/// `None` when any key may move (or the base cannot be compared exactly).
fn pinned_moves(old: &Placement, new: &Placement) -> Option<Vec<Vec<OwnedKeyPart>>> {
    fn split(p: &Placement) -> (&Placement, Option<std::sync::Arc<Pins>>) {
        match p {
            Placement::Pinned { base, pins } => (&**base, Some(pins.clone())),
            other => (other, None),
        }
    }
    let ((b0, p0), (b1, p1)) = (split(old), split(new));
    if (p0.is_none() && p1.is_none()) || !Placement::co_locates(Some(b0), Some(b1)) {
        return None;
    }
    let (p0, p1) = (p0.unwrap_or_default(), p1.unwrap_or_default());
    let mut keys: Vec<Vec<OwnedKeyPart>> = Vec::new();
    for (key, _) in p0.iter().chain(p1.iter()) {
        let parts: Vec<_> = key.iter().map(OwnedKeyPart::as_part).collect();
        let (a, b) = (p0.get(&parts), p1.get(&parts));
        if a.map(|s| s.name()) != b.map(|s| s.name()) && !keys.iter().any(|k| k == key) {
            keys.push(key.to_vec());
        }
    }
    Some(keys)
}

/// The condition selecting model `M`'s rows whose shard key is one of `keys`, or `None` when a
/// key part cannot be written back as the column's value (a date or timestamp shard key).
fn keys_condition<M: Model>(keys: &[Vec<OwnedKeyPart>]) -> Option<Condition> {
    let columns = key_columns::<M>();
    // No key can move: a condition no row meets.
    let mut any = Condition::any().add(Expr::val(1).eq(0));
    for key in keys {
        if key.len() != columns.len() {
            return None;
        }
        let mut all = Condition::all();
        for (part, &i) in key.iter().zip(columns) {
            let column = &M::META.columns[i];
            let value = match (part, column.kind) {
                (OwnedKeyPart::Int(v), ValueKind::I16 | ValueKind::I32 | ValueKind::I64) => {
                    Value::BigInt(Some(*v))
                }
                (OwnedKeyPart::Text(t), ValueKind::String) => Value::String(Some(t.to_string())),
                (OwnedKeyPart::Bytes(b), ValueKind::Bytes) => Value::Bytes(Some(b.to_vec())),
                _ => return None,
            };
            all = all.add(Expr::col(column.name).eq(value));
        }
        any = any.add(all);
    }
    Some(any)
}

/// The rows of model `M` that can change shards from `old` to `new`, when that is a known few
/// keys (a tenant move): `None` means every row may.
pub(crate) fn scope<M: Model>(old: &Placement, new: &Placement) -> Option<Condition> {
    keys_condition::<M>(&pinned_moves(old, new)?)
}

/// Whether `placement` can be an end of a move (no directory, no migration).
fn check_side<M: Model>(placement: &Placement, which: &str) -> Result<()> {
    match placement {
        Placement::Static | Placement::Resolver(_) => Ok(()),
        Placement::Pinned { base, .. } => check_side::<M>(base, which),
        Placement::Directory(_) => Err(Error::Unsupported {
            model: M::META.name,
            reason: format!(
                "resharding from or to a directory placement is not supported yet ({which} \
                 side); reassign directory entries with the directory API"
            ),
        }),
        _ => Err(Error::Unsupported {
            model: M::META.name,
            reason: format!("the {which} placement is a migration; cut it over or abort it first"),
        }),
    }
}

impl ReshardPlan {
    /// Plans moving model `M`'s rows on `cluster` from its current placement (static, or a
    /// run-time resolver) to `new`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for directory placements or a model already migrating;
    /// [`Error::UnknownShard`] when `new` names a shard the cluster lacks; a shard's error.
    pub async fn new<M: Model, DB: Backend>(cluster: &Cluster<DB>, new: Placement) -> Result<Self> {
        let old = cluster
            .placement::<M>()
            .map_or(Placement::Static, |s| s.placement.clone());
        Self::between::<M, DB>(cluster, old, new).await
    }

    /// Plans moving model `M`'s rows from placement `old` to `new`.
    pub(crate) async fn between<M: Model, DB: Backend>(
        cluster: &Cluster<DB>,
        old: Placement,
        new: Placement,
    ) -> Result<Self> {
        check_side::<M>(&old, "current")?;
        check_side::<M>(&new, "new")?;
        for shard in new.all_shards::<M>() {
            cluster.shard_pool(M::META.name, shard)?;
        }
        let sources: Vec<ShardId> = old.shards::<M>().into_owned();
        // A source without the model's table (or columns) is refused by the schema check,
        // which names the table, the shard and what is missing, before anything is counted.
        for outcome in join_all(sources.iter().map(|&s| cluster.ensure_schema::<M>(s))).await {
            outcome?;
        }
        let kinds: Vec<ValueKind> = key_columns::<M>()
            .iter()
            .map(|&i| M::META.columns[i].kind)
            .collect();
        let scope = scope::<M>(&old, &new);
        let per_source = try_join_all(sources.iter().map(|&source| {
            let (new, kinds, scope) = (&new, &kinds, &scope);
            async move {
                let rows = cluster.count_rows::<M>(source, scope.clone()).await?;
                let mut select = sea_query::Query::select();
                for &i in key_columns::<M>() {
                    select.column(M::META.columns[i].name);
                }
                select.from(M::META.table).limit(SAMPLE_LIMIT);
                if let Some(scope) = scope {
                    select.cond_where(scope.clone());
                }
                let keys = cluster
                    .fetch(
                        M::META.name,
                        source,
                        Some(ReadPolicy::Primary),
                        select.build_sqlx(DB::builder()),
                    )
                    .await?;
                let mut to: BTreeMap<ShardId, u64> = BTreeMap::new();
                for row in &keys {
                    let values = kinds
                        .iter()
                        .enumerate()
                        .map(|(i, k)| DB::get_value(row, i, *k))
                        .collect::<std::result::Result<Vec<Value>, _>>()
                        .map_err(|e| Error::Shard {
                            model: M::META.name,
                            shard: source,
                            source: e,
                        })?;
                    let target = shard_of::<M>(new, &values)?;
                    if target.name() != source.name() {
                        *to.entry(target).or_default() += 1;
                    }
                }
                let scanned = keys.len() as u64;
                let scale = |n: u64| {
                    if scanned == 0 || scanned >= rows {
                        n
                    } else {
                        (n as f64 * rows as f64 / scanned as f64).round() as u64
                    }
                };
                let moves: Vec<Move> = to
                    .into_iter()
                    .map(|(to, n)| Move {
                        from: source,
                        to,
                        rows: scale(n),
                    })
                    .collect();
                Ok::<_, Error>(((source, rows), moves, scanned < rows))
            }
        }))
        .await?;
        let mut plan = ReshardPlan {
            model: M::META.name,
            table: M::META.table,
            old,
            new,
            sources: Vec::new(),
            moves: Vec::new(),
            sampled: false,
            scope,
        };
        for (source, moves, sampled) in per_source {
            plan.sources.push(source);
            plan.moves.extend(moves);
            plan.sampled |= sampled;
        }
        Ok(plan)
    }

    /// The moves, by source then target.
    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// Rows on each source shard now (`COUNT(*)`).
    pub fn sources(&self) -> &[(ShardId, u64)] {
        &self.sources
    }

    /// Rows that will move (estimated when sampled).
    pub fn rows_to_move(&self) -> u64 {
        self.moves.iter().map(|m| m.rows).sum()
    }

    /// Rows the model has now, over all sources.
    pub fn rows_total(&self) -> u64 {
        self.sources.iter().map(|(_, n)| n).sum()
    }

    /// Whether some source had more than [`SAMPLE_LIMIT`] rows (its moves are estimates).
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The target placement.
    pub fn new_placement(&self) -> &Placement {
        &self.new
    }

    /// The target placement's fingerprint (its `Debug`), which a resume must match.
    pub fn fingerprint(&self) -> String {
        format!("{:?}", self.new)
    }

    /// The shards rows move to.
    pub(crate) fn targets(&self) -> Vec<ShardId> {
        let mut out: Vec<ShardId> = self.moves.iter().map(|m| m.to).collect();
        out.sort();
        out.dedup();
        out
    }
}

impl fmt::Display for ReshardPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reshard `{}` (table `{}`): {:?} -> {}",
            self.model,
            self.table,
            self.old,
            self.fingerprint()
        )?;
        for (shard, rows) in &self.sources {
            writeln!(f, "  source {shard}: {rows} rows")?;
        }
        for m in &self.moves {
            writeln!(f, "  move {} -> {}: {} rows", m.from, m.to, m.rows)?;
        }
        write!(
            f,
            "  {} of {} rows move{}",
            self.rows_to_move(),
            self.rows_total(),
            if self.sampled {
                " (estimated from a sample)"
            } else {
                ""
            }
        )
    }
}

/// The shard of shard-key `values` under a static or resolver placement.
pub(crate) fn shard_of<M: Model>(placement: &Placement, values: &[Value]) -> Result<ShardId> {
    placement
        .shard_for_values::<M>(values)?
        .ok_or_else(|| Error::Unsupported {
            model: M::META.name,
            reason: "the placement cannot place this key without a directory lookup".into(),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use grant_core::KeyPart;

    use super::*;
    use crate::resolve::HashResolver;

    fn pinned(base: Placement, pins: &[(i64, u32)]) -> Placement {
        let mut all = Pins::new();
        for &(key, shard) in pins {
            let name: &'static str = Box::leak(format!("shard_{shard}").into_boxed_str());
            all = all.with(&[KeyPart::Int(key)], ShardId::named(shard, name));
        }
        Placement::Pinned {
            base: Box::new(base),
            pins: Arc::new(all),
        }
    }

    #[test]
    fn only_keys_pinned_differently_can_move() {
        let int = |k: i64| vec![OwnedKeyPart::Int(k)];
        let hash = || Placement::resolver(HashResolver::new(4));
        assert_eq!(
            pinned_moves(&Placement::Static, &pinned(Placement::Static, &[(5, 4)])),
            Some(vec![int(5)])
        );
        assert_eq!(
            pinned_moves(&pinned(hash(), &[(5, 4)]), &hash()),
            Some(vec![int(5)])
        );
        assert_eq!(
            pinned_moves(
                &pinned(hash(), &[(5, 4), (7, 4)]),
                &pinned(hash(), &[(5, 4), (7, 5), (9, 6)])
            ),
            Some(vec![int(7), int(9)])
        );
        // Any key may move when the bases differ, or nothing is pinned.
        assert_eq!(
            pinned_moves(&Placement::Static, &pinned(hash(), &[(5, 4)])),
            None
        );
        assert_eq!(pinned_moves(&Placement::Static, &hash()), None);
    }
}
