//! The fence of a migrating model: how a process that still routes by a migration's placement
//! learns — from the database, in the statement it sends — that the migration was decided.
//!
//! While a model migrates ([`Placement::Migrating`](super::Placement::Migrating)), the
//! resharding job keeps two tables on the model's shards:
//!
//! - the **fence** `grant_fence_<table>` on every shard of the old and the new placement: every
//!   statement an operation sends under the migrating placement names it — a write's
//!   transaction ends with `SELECT 1 FROM <fence> WHERE 1 = 0` before it commits, a read's
//!   condition holds `NOT EXISTS (SELECT 1 FROM <fence> WHERE 1 = 0)` — which costs a catalog
//!   lookup while the table exists. The job drops it under the model's gate before it decides
//!   a cutover (or undoes a migration); the drop waits for the transactions that named it.
//!   From then on every statement of a process still on the migrating placement fails with
//!   "no such table" / SQLSTATE 42P01 naming the fence, and nothing of it is written. Grant
//!   recognises it ([`is_fenced`]), reads the topology store ([`Follower`]) and runs the
//!   operation again — on the new placement once the job persisted the switch (when every
//!   source gave up its rows), or as before if the job put the fence back up after a failed
//!   attempt. The application sees a pause, never an error or a stale row.
//! - the **copies registry** `grant_copies_<table>` on every shard of the new placement: the
//!   primary keys of the rows written there for the new placement (the backfill, the other
//!   side of a dual write). Reads under the migrating placement leave those rows out, so a row
//!   is read once, where the old placement has it — also when rows move onto shards the old
//!   placement reads (8 → 4, a tenant joining a shard that holds others).
//!
//! A dual write whose own shard's transaction committed before the fence, and whose other side
//! then met it, is complete: its source write is in the source's change capture (`reshard`),
//! which the job reads after the fence is down and copies to the target.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use grant_core::cond::quoted;
use grant_core::{Backend, Error, Model, Result};
use sea_query::{Condition, Expr};

use crate::cluster::Cluster;
use crate::placement::{Placement, PlacementState};

/// The fence table of `M` (see the module docs).
pub(crate) fn fence_table<M: Model>() -> String {
    format!("grant_fence_{}", M::META.table)
}

/// The copies registry of `M` (see the module docs).
pub(crate) fn copies_table<M: Model>() -> String {
    format!("grant_copies_{}", M::META.table)
}

/// `CREATE TABLE IF NOT EXISTS` of the fence (one column, never a row).
pub(crate) fn create_fence<M: Model>() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (fenced INTEGER)",
        quoted(&fence_table::<M>())
    )
}

/// `DROP TABLE IF EXISTS` of the fence.
pub(crate) fn drop_fence<M: Model>() -> String {
    format!("DROP TABLE IF EXISTS {}", quoted(&fence_table::<M>()))
}

/// The statement a write's transaction starts with under a migrating placement: fails once the
/// fence is down, costs a catalog lookup while it stands.
pub(crate) fn probe<M: Model>() -> String {
    format!("SELECT 1 FROM {} WHERE 1 = 0", quoted(&fence_table::<M>()))
}

/// The condition a read under a migrating placement carries: true while the fence stands, an
/// error once it is down.
pub(crate) fn standing<M: Model>() -> Condition {
    Condition::all().add(Expr::cust(format!(
        "NOT EXISTS (SELECT 1 FROM {} WHERE 1 = 0)",
        quoted(&fence_table::<M>())
    )))
}

/// Whether `error` is a statement of `M` that met its fence (the fence table is gone).
pub(crate) fn is_fenced<M: Model>(error: &Error) -> bool {
    let Error::Shard {
        source: sqlx::Error::Database(db),
        ..
    } = error
    else {
        return false;
    };
    db.message().contains(&fence_table::<M>())
        && (db.message().contains("no such table") || db.code().as_deref() == Some("42P01"))
}

/// Whether operations under `state` name the fence: a migrating placement that a resharding
/// job guards (a migration begun by hand is not).
pub(crate) fn guards<M: Model, DB: Backend>(cluster: &Cluster<DB>, state: &PlacementState) -> bool {
    matches!(state.placement, Placement::Migrating { .. })
        && cluster.placements().is_guarded(M::META.table)
}

/// Reads the topology store now and applies what changed (the topology feature's hook: the
/// placement layer does not name it).
pub(crate) trait Follower: Send + Sync + std::fmt::Debug {
    /// One read of the store, applied as the periodic follower applies it.
    fn follow(&self) -> BoxFuture<'static, Result<()>>;
}

/// How often a fenced operation reads the topology store while it waits.
const FOLLOW_EVERY: Duration = Duration::from_millis(20);

impl<DB: Backend> Cluster<DB> {
    /// Runs `op` — one operation of `M` that reads the placement under the model's gate — and
    /// runs it again each time it meets the fence of a migration, once the topology store
    /// names a later placement of `M` (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// `op`'s error; [`Error::Timeout`] when the migration stays fenced longer than the
    /// cluster's timeout (at least 30 s: a job stopped in the middle of its cutover — resume
    /// it); the fence error itself on a cluster that does not follow the topology store.
    pub(crate) async fn through_fence<M, T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        M: Model,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut started: Option<Instant> = None;
        loop {
            // At most the epoch `op` runs at (0 without any run-time placement: the hot
            // path pays one atomic load).
            let before = if self.placements().any() {
                self.placements().epoch_of(M::META.table)
            } else {
                0
            };
            // Boxed: the operation's future stays out of every caller's (a debug build's
            // deep futures overflow a test thread's stack otherwise).
            let error = match Box::pin(op()).await {
                Err(e) if is_fenced::<M>(&e) => e,
                other => return other,
            };
            let started = *started.get_or_insert_with(Instant::now);
            let limit = self.timeout().max(Duration::from_secs(30));
            let Some(follower) = self.placements().follower() else {
                return Err(Error::Unsupported {
                    model: M::META.name,
                    reason: format!(
                        "refused: a resharding job decided the migration of table `{}` (its \
                         fence is down: {error}), and this cluster does not follow the topology \
                         store to learn the new placement — set it here \
                         (`cluster.set_placement`) once the job is done, or connect with \
                         `follow_topology(true)`",
                        M::META.table
                    ),
                });
            };
            if started.elapsed() > limit {
                return Err(Error::Timeout {
                    model: M::META.name,
                    shards: format!(
                        "{} (a resharding job fenced the migration of epoch {before} and has                          not switched the placement since: it stopped in its cutover or                          rollback — resume it with `ReshardJob::resume`)",
                        M::META.table
                    ),
                    millis: limit.as_millis(),
                });
            }
            if let Err(e) = follower.follow().await {
                tracing::debug!(error = %e, "cannot read the topology store; retrying");
            }
            // Unchanged: the job is deciding (or put the fence back after a failure): the
            // operation is tried again shortly either way.
            if self.placements().epoch_of(M::META.table) <= before {
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
            tracing::debug!(
                model = M::META.name,
                "an operation met the fence of a migration; running it again"
            );
        }
    }
}
