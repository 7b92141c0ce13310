//! Tenant moves: one shard-key value — a tenant, with the rows of every co-located model that
//! carries it — moved online to a named shard, as one operation.
//!
//! Each model switches to [`Placement::Pinned`]: the tenant's key pinned to the shard over the
//! model's placement until then (its static one, a resolver, or earlier pins). Its rows move
//! by a resharding job of their own ([`ReshardJob`]: dual writes, locked backfill,
//! verification, fence, cutover). The models are planned and started first, then all copied
//! and verified, then cut over one after the other: the tenant's models switch one cutover
//! pause apart (tens of milliseconds in `examples/hot_tenant.rs`), not at one instant — a
//! query joining two of them in that window may miss the tenant's rows.
//!
//! [`TenantMove::run`] is also the recovery: after a crash, or an error, run the same move
//! again (on a new cluster): a model already there is skipped, a model whose job is
//! unfinished resumes it (a cutover in progress is finished), the others start.
//! [`TenantMove::rollback`] undoes the unfinished ones instead.

use futures_util::future::BoxFuture;
use grant_core::key::describe_values;
use grant_core::{Error, FromShardRow, Model, Result, ShardId};
use sea_query::Value;

use super::{Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan, ReshardStatus};
use crate::cluster::Cluster;
use crate::placement::{Pins, Placement};

/// Moves one tenant's rows of several co-located models to a named shard (see the
/// [module docs](self)).
///
/// ```ignore
/// let report = TenantMove::new(&cluster, 42_i64, "tenant_42")
///     .model::<Org>()
///     .model::<Project>()
///     .model::<Issue>()
///     .run()
///     .await?;
/// ```
pub struct TenantMove<DB: ReshardBackend> {
    cluster: Cluster<DB>,
    key: Vec<Value>,
    shard: String,
    options: ReshardOptions,
    models: Vec<Box<dyn MoveModel<DB>>>,
}

/// What a tenant move did to one model.
#[derive(Debug, Clone)]
pub struct TenantMoved {
    /// The model's name.
    pub model: &'static str,
    /// The job's final status, or `None` when the tenant's rows were on the shard already.
    pub status: Option<ReshardStatus>,
}

impl<DB: ReshardBackend> std::fmt::Debug for TenantMove<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMove")
            .field("key", &describe_values(&self.key))
            .field("shard", &self.shard)
            .field(
                "models",
                &self.models.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<DB: ReshardBackend> TenantMove<DB> {
    /// A move of the tenant whose (single-column) shard key is `key` to the cluster's shard
    /// `shard` (add it first with [`Cluster::add_shard`] to isolate the tenant).
    pub fn new(cluster: &Cluster<DB>, key: impl Into<Value>, shard: impl Into<String>) -> Self {
        Self::composite(cluster, vec![key.into()], shard)
    }

    /// [`TenantMove::new`] for a composite shard key: one value per key column, in key order.
    pub fn composite(cluster: &Cluster<DB>, key: Vec<Value>, shard: impl Into<String>) -> Self {
        TenantMove {
            cluster: cluster.clone(),
            key,
            shard: shard.into(),
            options: ReshardOptions::default(),
            models: Vec::new(),
        }
    }

    /// Moves model `M`'s rows of the tenant too. List parents before their children: models
    /// are cut over in this order.
    pub fn model<M: Model + FromShardRow<DB>>(mut self) -> Self {
        self.models
            .push(Box::new(ModelMove::<M>(std::marker::PhantomData)));
        self
    }

    /// The options of every model's job (batch sizes, throttle, bulk copy).
    pub fn options(mut self, options: ReshardOptions) -> Self {
        self.options = options;
        self
    }

    /// The target shard, checked against the cluster.
    fn target(&self) -> Result<ShardId> {
        let model = self.models.first().map_or("-", |m| m.name());
        self.cluster
            .shard_named(&self.shard)
            .ok_or_else(|| Error::UnknownShard {
                model,
                shard: self.shard.clone(),
                known: self.cluster.shard_names().collect::<Vec<_>>().join(", "),
            })
    }

    /// Moves the tenant: every model planned and started, then copied and verified, then cut
    /// over in the order given. Running it again after an error or a crash continues the
    /// move (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] without models, or when a model is migrating elsewhere;
    /// [`Error::UnknownShard`] for a shard the cluster lacks; [`Error::MissingShardKey`] when
    /// the key does not fit a model's shard key; a job's error (run the move again to continue
    /// it, or [`TenantMove::rollback`]). When a model fails to start, the models started
    /// before it in this run are rolled back.
    pub async fn run(&self) -> Result<Vec<TenantMoved>> {
        if self.models.is_empty() {
            return Err(Error::Config(format!(
                "tenant move of key {} to shard `{}` names no model; add them with \
                 `.model::<M>()`",
                describe_values(&self.key),
                self.shard
            )));
        }
        let target = self.target()?;
        let mut jobs: Vec<(&'static str, Option<Box<dyn Running + '_>>)> = Vec::new();
        for m in &self.models {
            match m.prepare(self, target).await {
                Ok(job) => jobs.push((m.name(), job)),
                Err(e) => {
                    for (_, job) in jobs.iter().rev() {
                        if let Some(job) = job
                            && job.fresh()
                        {
                            let _ = job.rollback().await;
                        }
                    }
                    return Err(e);
                }
            }
        }
        for (_, job) in &jobs {
            if let Some(job) = job {
                job.copy_verify().await?;
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        for (model, job) in jobs {
            let status = match job {
                Some(job) => Some(job.cutover().await?),
                None => None,
            };
            out.push(TenantMoved { model, status });
        }
        Ok(out)
    }

    /// Undoes the move's unfinished jobs (models already cut over stay moved: move the tenant
    /// back with a move to its old shard). Returns the models rolled back.
    ///
    /// # Errors
    ///
    /// A job's error (call it again).
    pub async fn rollback(&self) -> Result<Vec<&'static str>> {
        let target = self.target()?;
        let mut out = Vec::new();
        for m in self.models.iter().rev() {
            if m.rollback(self, target).await? {
                out.push(m.name());
            }
        }
        Ok(out)
    }
}

/// `placement` with `key` (its shard-key parts for model `M`) pinned to `target`; `None` when
/// the key is on `target` already.
fn pinned<M: Model>(
    placement: &Placement,
    key: &[Value],
    target: ShardId,
) -> Result<Option<Placement>> {
    let (base, pins) = match placement {
        Placement::Pinned { base, pins } => ((**base).clone(), (**pins).clone()),
        Placement::Static | Placement::Resolver(_) => (placement.clone(), Pins::new()),
        other => {
            return Err(Error::Unsupported {
                model: M::META.name,
                reason: format!(
                    "a tenant move needs the model placed by its static strategy, a resolver \
                     or pins over one; it is placed by {other:?}"
                ),
            });
        }
    };
    if placement.shard_for_values::<M>(key)?.map(|s| s.name()) == Some(target.name()) {
        return Ok(None);
    }
    let on_base = base.shard_for_values::<M>(key)?;
    let pins = crate::resolve::key_parts::<M, _>(key, |parts| {
        let pins = pins.without(parts);
        if on_base.map(|s| s.name()) == Some(target.name()) {
            pins
        } else {
            pins.with(parts, target)
        }
    })?;
    Ok(Some(if pins.is_empty() {
        base
    } else {
        Placement::Pinned {
            base: Box::new(base),
            pins: std::sync::Arc::new(pins),
        }
    }))
}

/// One model of a tenant move, with its type erased.
trait MoveModel<DB: ReshardBackend>: Send + Sync {
    fn name(&self) -> &'static str;

    /// The model's job towards the move (resumed or started), or `None` when its rows are
    /// there already.
    fn prepare<'a>(
        &'a self,
        mv: &'a TenantMove<DB>,
        target: ShardId,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Running + 'a>>>>;

    /// Rolls back the model's unfinished job of this move; whether there was one.
    fn rollback<'a>(
        &'a self,
        mv: &'a TenantMove<DB>,
        target: ShardId,
    ) -> BoxFuture<'a, Result<bool>>;
}

/// A model's job while the move runs.
trait Running: Send + Sync {
    /// Whether the job was started by this run (a failed start of another model rolls it
    /// back).
    fn fresh(&self) -> bool;
    fn copy_verify(&self) -> BoxFuture<'_, Result<()>>;
    fn cutover(&self) -> BoxFuture<'_, Result<ReshardStatus>>;
    fn rollback(&self) -> BoxFuture<'_, Result<()>>;
}

struct ModelMove<M>(std::marker::PhantomData<fn() -> M>);

struct Job<M: Model, DB: ReshardBackend> {
    job: ReshardJob<M, DB>,
    fresh: bool,
}

impl<M: Model + FromShardRow<DB>, DB: ReshardBackend> Running for Job<M, DB> {
    fn fresh(&self) -> bool {
        self.fresh
    }

    fn copy_verify(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if matches!(self.job.status().phase, Phase::Done) {
                return Ok(());
            }
            self.job.copy().await?;
            self.job.verify().await
        })
    }

    fn cutover(&self) -> BoxFuture<'_, Result<ReshardStatus>> {
        Box::pin(async move {
            if !matches!(self.job.status().phase, Phase::Done) {
                self.job.cutover().await?;
            }
            Ok(self.job.status())
        })
    }

    fn rollback(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.job.rollback())
    }
}

impl<M: Model> ModelMove<M> {
    /// The placement this move takes `M` to, from the cluster's current one (a migration's
    /// target when one runs: it must be this move's).
    fn goal<DB: ReshardBackend>(mv: &TenantMove<DB>, target: ShardId) -> Result<GoalOf> {
        let current = mv
            .cluster
            .placement::<M>()
            .map_or(Placement::Static, |s| s.placement.clone());
        if let Placement::Migrating { new, .. } = &current {
            let ours = new.shard_for_values::<M>(&mv.key)?.map(|s| s.name()) == Some(target.name());
            if !ours {
                return Err(Error::Config(format!(
                    "model `{}` is being resharded towards {new:?}, which does not put key {} \
                     on shard `{}`: finish or roll back that job (`ReshardJob::resume`) \
                     before moving the tenant",
                    M::META.name,
                    describe_values(&mv.key),
                    target.name()
                )));
            }
            return Ok(GoalOf::Migrating((**new).clone()));
        }
        Ok(match pinned::<M>(&current, &mv.key, target)? {
            Some(goal) => GoalOf::Start(goal),
            None => GoalOf::There,
        })
    }
}

enum GoalOf {
    /// A migration towards this placement runs (a job to resume).
    Migrating(Placement),
    /// The move must start, towards this placement.
    Start(Placement),
    /// The tenant's rows are on the shard already.
    There,
}

impl<M: Model + FromShardRow<DB>, DB: ReshardBackend> MoveModel<DB> for ModelMove<M> {
    fn name(&self) -> &'static str {
        M::META.name
    }

    fn prepare<'a>(
        &'a self,
        mv: &'a TenantMove<DB>,
        target: ShardId,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Running + 'a>>>> {
        Box::pin(async move {
            let cluster = &mv.cluster;
            let goal = Self::goal(mv, target)?;
            let unfinished = ReshardJob::<M, DB>::unfinished(cluster).await?;
            let (job, fresh) = match (goal, unfinished.first()) {
                (GoalOf::Migrating(new) | GoalOf::Start(new), Some(id)) => (
                    ReshardJob::<M, DB>::resume(cluster, id, new, mv.options.clone()).await?,
                    false,
                ),
                (GoalOf::Migrating(new), None) => {
                    return Err(Error::Config(format!(
                        "model `{}` is migrating towards {new:?} without a resharding job; \
                         end that migration (`cluster.cutover` or `abort_migration`) first",
                        M::META.name
                    )));
                }
                (GoalOf::Start(new), None) => {
                    let plan = ReshardPlan::new::<M, DB>(cluster, new).await?;
                    (
                        ReshardJob::<M, DB>::start(cluster, plan, mv.options.clone()).await?,
                        true,
                    )
                }
                (GoalOf::There, _) => return Ok(None),
            };
            Ok(Some(Box::new(Job { job, fresh }) as Box<dyn Running + 'a>))
        })
    }

    fn rollback<'a>(
        &'a self,
        mv: &'a TenantMove<DB>,
        target: ShardId,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let cluster = &mv.cluster;
            let Some(id) = ReshardJob::<M, DB>::unfinished(cluster)
                .await?
                .into_iter()
                .next()
            else {
                return Ok(false);
            };
            let new = match Self::goal(mv, target)? {
                GoalOf::Migrating(new) | GoalOf::Start(new) => new,
                GoalOf::There => return Ok(false),
            };
            let job = ReshardJob::<M, DB>::resume(cluster, &id, new, mv.options.clone()).await?;
            if matches!(job.status().phase, Phase::Done) {
                return Ok(false);
            }
            job.rollback().await?;
            Ok(true)
        })
    }
}
