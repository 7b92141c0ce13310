//! [`ReshardPlan`]: which rows move from which shard to which, before anything moves.

use std::collections::BTreeMap;
use std::fmt;

use futures_util::future::{join_all, try_join_all};
use grant_core::{Backend, Error, Model, Result, ShardId, ValueKind};
use sea_query::Value;
use sea_query_sqlx::SqlxBinder;

use crate::cluster::{Cluster, ReadPolicy};
use crate::placement::Placement;
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
        let per_source = try_join_all(sources.iter().map(|&source| {
            let (new, kinds) = (&new, &kinds);
            async move {
                let rows = cluster.count_rows::<M>(source).await?;
                let mut select = sea_query::Query::select();
                for &i in key_columns::<M>() {
                    select.column(M::META.columns[i].name);
                }
                select.from(M::META.table).limit(SAMPLE_LIMIT);
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
