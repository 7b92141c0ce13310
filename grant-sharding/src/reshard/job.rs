//! [`ReshardJob`]: the online move — dual writes, locked backfill, verification, cutover,
//! cleanup, resume and rollback.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt};
use grant_core::{Error, FromShardRow, Model, Result, ShardId, ValueKind};
use sea_query::Value;
use tokio::sync::OwnedRwLockWriteGuard;

use super::Journal;
use super::backend::{BulkCopy, ReshardBackend};
use super::plan::{ReshardPlan, shard_of};
use super::store::{self, JobRow};
use crate::cluster::{Cluster, ReadPolicy};
use crate::merge::values_key;
use crate::placement::{Placement, WriteObserver};
use crate::stmt;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Persisted, not started.
    Planned,
    /// Dual writes on; the backfill copies batches.
    Copying,
    /// The full verification pass compares (and repairs) every moving row.
    Verifying,
    /// Under the model's gate: dirty keys re-verified, moved rows deleted from their sources,
    /// placement switched.
    Cutover,
    /// After the switch, finishing up.
    Cleanup,
    /// The model is on its new placement.
    Done,
    /// Rolled back: the model is on its old placement, copies removed.
    RolledBack,
    /// A rollback is deleting the copies from the targets (the model is back on its old
    /// placement); [`ReshardJob::resume`] finishes it.
    RollingBack,
}

impl Phase {
    /// The persisted name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::Copying => "copying",
            Phase::Verifying => "verifying",
            Phase::Cutover => "cutover",
            Phase::Cleanup => "cleanup",
            Phase::Done => "done",
            Phase::RolledBack => "rolled back",
            Phase::RollingBack => "rolling back",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Planned,
            Phase::Copying,
            Phase::Verifying,
            Phase::Cutover,
            Phase::Cleanup,
            Phase::Done,
            Phase::RolledBack,
            Phase::RollingBack,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job runs.
#[derive(Debug, Clone)]
pub struct ReshardOptions {
    /// Rows read from a source per batch (each batch holds its source rows locked while it
    /// copies them). Default 1,000.
    pub batch_size: usize,
    /// Rows per batch when the backend copies in bulk ([`ReshardOptions::bulk`]; SQLite, PostgreSQL):
    /// a bulk batch of 10,000 rows holds its rows locked about as long as a row-by-row batch
    /// of 1,000. Default 10,000; [`ReshardOptions::batch_size`] sets both.
    pub bulk_batch_size: usize,
    /// Sleep between batches of one source. Default none.
    pub throttle: Option<Duration>,
    /// Cap on rows moved per second over the whole job. Default none.
    pub max_rows_per_sec: Option<u64>,
    /// Source shards copied (verified, cut over) at once. Default 1: the interrupted-job chaos
    /// test lost rows written by other processes when sources were copied at once (its cause
    /// is not found yet); one at a time it has not. Above 1 is at your own risk. When a shard
    /// of the new placement is also a source (a hash count change, a consistent-hash ring
    /// gaining a shard) every phase takes one source at a time whatever this says.
    pub parallelism: usize,
    /// How long the job's start waits for every live instance of the cluster (every process
    /// connected to these shards) to follow the migration — to dual-write — before it copies a
    /// row (see [`Cluster::await_followed`]); past it the start is undone and fails naming the
    /// instances that did not follow. Default 30 s.
    pub follow_timeout: Duration,
    /// Copy and verify with the backend's bulk path (`Some(true)`) instead of decoding,
    /// upserting and reading back each row (`Some(false)`); `None` (the default): the
    /// backend's choice ([`ReshardBackend::BULK_BY_DEFAULT`]) — on SQLite the bulk path (the
    /// targets attached to the source's connection, rows copied by `INSERT .. SELECT` and
    /// compared in SQL), on PostgreSQL for now the row path (its bulk path, binary `COPY`
    /// from source to target with rows compared by hash, waits for the interrupted-job chaos
    /// test to run clean with it; see the README's Resharding section).
    pub bulk: Option<bool>,
    /// Test hook (feature `testing`): stop the job for good at a chosen step, as if its
    /// process died there.
    #[cfg(feature = "testing")]
    pub crash: Option<Arc<CrashPoint>>,
}

/// A point at which a job stops, for tests (feature `testing`): at its `n`-th step — a
/// statement it is about to run, a phase it is about to record — counted over every phase or
/// only in one, the job either never returns, as if its process died there (drop its future
/// and its cluster once [`CrashPoint::hit`] reports it, then recover the documented way), or
/// fails with an error and lives on ([`CrashPoint::fail_in`]).
#[cfg(feature = "testing")]
#[derive(Debug, Default)]
pub struct CrashPoint {
    phase: Option<Phase>,
    fail: bool,
    remaining: AtomicU64,
    hit: Mutex<Option<Phase>>,
    seen: Mutex<BTreeMap<&'static str, u64>>,
}

#[cfg(feature = "testing")]
impl CrashPoint {
    /// Stops the job for good at its `steps`-th step (the first is 1; 0 never stops it, and
    /// only counts steps: [`CrashPoint::steps_in`]).
    pub fn after(steps: u64) -> Arc<Self> {
        Arc::new(CrashPoint {
            remaining: AtomicU64::new(steps),
            ..CrashPoint::default()
        })
    }

    /// Stops the job for good at its `steps`-th step in `phase`.
    pub fn in_phase(phase: Phase, steps: u64) -> Arc<Self> {
        Arc::new(CrashPoint {
            phase: Some(phase),
            remaining: AtomicU64::new(steps),
            ..CrashPoint::default()
        })
    }

    /// Makes the job's `steps`-th step in `phase` fail with an error (the job lives on).
    pub fn fail_in(phase: Phase, steps: u64) -> Arc<Self> {
        Arc::new(CrashPoint {
            phase: Some(phase),
            fail: true,
            remaining: AtomicU64::new(steps),
            ..CrashPoint::default()
        })
    }

    /// The phase the job was in when it stopped (or failed) here, once it did.
    pub fn hit(&self) -> Option<Phase> {
        *self.hit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this point fails a step rather than stopping the job for good.
    pub fn is_failure(&self) -> bool {
        self.fail
    }

    /// Steps the job took in `phase` so far.
    pub fn steps_in(&self, phase: Phase) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(phase.as_str()).copied().unwrap_or(0)
    }

    /// Counts one step; true when this is the one to stop at.
    fn arrive(&self, phase: Phase) -> bool {
        *self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(phase.as_str())
            .or_default() += 1;
        if self.phase.is_some_and(|p| p != phase) {
            return false;
        }
        let stop = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
            == Ok(1);
        if stop {
            *self.hit.lock().unwrap_or_else(|e| e.into_inner()) = Some(phase);
        }
        stop
    }
}

impl Default for ReshardOptions {
    fn default() -> Self {
        ReshardOptions {
            batch_size: 1000,
            bulk_batch_size: 10_000,
            throttle: None,
            max_rows_per_sec: None,
            parallelism: 1,
            follow_timeout: Duration::from_secs(30),
            bulk: None,
            #[cfg(feature = "testing")]
            crash: None,
        }
    }
}

impl ReshardOptions {
    /// Sets [`ReshardOptions::batch_size`].
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self.bulk_batch_size = self.batch_size;
        self
    }

    /// Sets [`ReshardOptions::bulk_batch_size`] only.
    pub fn bulk_batch_size(mut self, n: usize) -> Self {
        self.bulk_batch_size = n.max(1);
        self
    }

    /// Sets [`ReshardOptions::throttle`].
    pub fn throttle(mut self, d: Duration) -> Self {
        self.throttle = Some(d);
        self
    }

    /// Sets [`ReshardOptions::max_rows_per_sec`].
    pub fn max_rows_per_sec(mut self, n: u64) -> Self {
        self.max_rows_per_sec = Some(n.max(1));
        self
    }

    /// Sets [`ReshardOptions::parallelism`].
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// Sets [`ReshardOptions::bulk`]: the bulk path on or off, whatever the backend's
    /// default.
    pub fn bulk(mut self, on: bool) -> Self {
        self.bulk = Some(on);
        self
    }

    /// Whether a job on backend `DB` copies in bulk with these options.
    fn bulk_on<DB: ReshardBackend>(&self) -> bool {
        DB::HAS_BULK_COPY && self.bulk.unwrap_or(DB::BULK_BY_DEFAULT)
    }

    /// Sets [`ReshardOptions::crash`] (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn crash(mut self, point: Arc<CrashPoint>) -> Self {
        self.crash = Some(point);
        self
    }
}

/// A snapshot of a job's progress ([`ReshardJob::status`]).
#[derive(Debug, Clone)]
pub struct ReshardStatus {
    /// The phase.
    pub phase: Phase,
    /// Rows copied to their targets so far (over every run of the job).
    pub rows_copied: u64,
    /// Rows the plan expects to move (an estimate: writers add and remove rows meanwhile).
    pub rows_total: u64,
    /// Rows compared on source and target by the verification pass.
    pub rows_verified: u64,
    /// Rows the verification pass and the cutover repaired (copied again or deleted).
    pub rows_repaired: u64,
    /// Rows copied per second in this run's copy phase.
    pub rows_per_sec: f64,
    /// Time left for the copy at the current rate.
    pub eta: Option<Duration>,
    /// How long the cutover held the model's operations (once it ran).
    pub pause: Option<Duration>,
    /// Keys written by the application and re-verified under the gate at cutover.
    pub dirty_at_cutover: u64,
    /// Batches this job ran on the backend's bulk path ([`ReshardOptions::bulk`]) in this
    /// process; 0 when every batch went row by row.
    pub bulk_batches: u64,
    /// Source rows the copy and verification passes read in this process (the moving rows and
    /// those that stay; a tenant move reads only the tenant's).
    pub rows_scanned: u64,
}

#[derive(Debug)]
struct Progress {
    phase: Mutex<Phase>,
    copied: AtomicU64,
    copied_this_run: AtomicU64,
    verified: AtomicU64,
    repaired: AtomicU64,
    dirty: AtomicU64,
    bulk_batches: AtomicU64,
    scanned: AtomicU64,
    copy_started: Mutex<Option<Instant>>,
    pause: Mutex<Option<Duration>>,
}

/// What a batch does with the moving rows it locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Upsert every moving row into its target, then compare.
    Copy,
    /// Compare, and upsert only rows that differ or are missing.
    Verify,
}

/// An online move of one model's rows to a new placement (see the [module docs](super)).
///
/// # Cancel safety
///
/// Every method may be cancelled (its future dropped, or the process killed) at any point:
/// a batch in flight rolls back its source transaction, the persisted cursors point after the
/// last verified batch, each source gives up its moved rows in one transaction that also
/// records it, and [`ReshardJob::resume`] continues from the persisted phase (on the same
/// cluster, or a new one after a restart): before cutover it re-installs dual writes and runs
/// a full verification again, during cutover it finishes the move, during a rollback it
/// finishes the rollback. A finished or rolled-back job never runs again.
pub struct ReshardJob<M: Model, DB: ReshardBackend> {
    cluster: Cluster<DB>,
    plan: ReshardPlan,
    options: ReshardOptions,
    epoch: AtomicU64,
    journal: Arc<Journal>,
    row: tokio::sync::Mutex<JobRow>,
    progress: Progress,
    /// Moving keys found on each source by the verification pass (deleted from the sources at
    /// cutover).
    moved: Mutex<BTreeMap<ShardId, Vec<Vec<Value>>>>,
    /// Whether a complete verification pass ran in this run since the last copy: the only
    /// state a cutover may start from.
    verified: AtomicBool,
    /// The model's gate, kept in write mode after a cutover failed past its decision (some
    /// sources may have given up their rows): the model's operations wait until
    /// [`ReshardJob::cutover`] (or `run`) finishes the move or [`ReshardJob::rollback`] undoes
    /// it, instead of reading a half-moved table.
    fence: Mutex<Option<OwnedRwLockWriteGuard<()>>>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model, DB: ReshardBackend> fmt::Debug for ReshardJob<M, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReshardJob")
            .field("model", &M::META.name)
            .field("plan", &self.plan)
            .field("options", &self.options)
            .field("status", &self.status())
            .finish()
    }
}

impl<M: Model, DB: ReshardBackend> ReshardJob<M, DB> {
    /// The job's id (persisted; give it to [`ReshardJob::resume`]).
    pub fn id(&self) -> String {
        self.row
            .try_lock()
            .map(|r| r.id.clone())
            .unwrap_or_default()
    }

    /// The plan the job follows.
    pub fn plan(&self) -> &ReshardPlan {
        &self.plan
    }

    /// Progress now: phase, rows copied of the total, rate, ETA, verification counts and the
    /// cutover pause.
    pub fn status(&self) -> ReshardStatus {
        let p = &self.progress;
        let copied = p.copied.load(Ordering::Relaxed);
        let this_run = p.copied_this_run.load(Ordering::Relaxed);
        let total = self.plan.rows_to_move();
        let started = *p.copy_started.lock().unwrap_or_else(|e| e.into_inner());
        let rate = started.map_or(0.0, |s| {
            let secs = s.elapsed().as_secs_f64();
            if secs > 0.0 {
                this_run as f64 / secs
            } else {
                0.0
            }
        });
        let phase = *p.phase.lock().unwrap_or_else(|e| e.into_inner());
        let eta = (rate > 0.0 && phase == Phase::Copying)
            .then(|| Duration::from_secs_f64(total.saturating_sub(copied) as f64 / rate));
        ReshardStatus {
            phase,
            rows_copied: copied,
            rows_total: total,
            rows_verified: p.verified.load(Ordering::Relaxed),
            rows_repaired: p.repaired.load(Ordering::Relaxed),
            rows_per_sec: rate,
            eta,
            pause: *p.pause.lock().unwrap_or_else(|e| e.into_inner()),
            dirty_at_cutover: p.dirty.load(Ordering::Relaxed),
            bulk_batches: p.bulk_batches.load(Ordering::Relaxed),
            rows_scanned: p.scanned.load(Ordering::Relaxed),
        }
    }
}

static JOB_SEQ: AtomicU64 = AtomicU64::new(0);

/// The shard-key values inside primary-key `values`.
fn key_of_pk<M: Model>(pk: &[Value]) -> Vec<Value> {
    crate::placement::shard_key_of_pk::<M>(pk)
}

impl<M, DB> ReshardJob<M, DB>
where
    M: Model + FromShardRow<DB>,
    DB: ReshardBackend,
{
    fn new_job(
        cluster: &Cluster<DB>,
        plan: ReshardPlan,
        options: ReshardOptions,
        row: JobRow,
        phase: Phase,
    ) -> Self {
        let copied = row.rows_copied.max(0) as u64;
        ReshardJob {
            cluster: cluster.clone(),
            plan,
            options,
            epoch: AtomicU64::new(0),
            journal: Arc::new(Journal::default()),
            row: tokio::sync::Mutex::new(row),
            progress: Progress {
                phase: Mutex::new(phase),
                copied: AtomicU64::new(copied),
                copied_this_run: AtomicU64::new(0),
                verified: AtomicU64::new(0),
                repaired: AtomicU64::new(0),
                dirty: AtomicU64::new(0),
                bulk_batches: AtomicU64::new(0),
                scanned: AtomicU64::new(0),
                copy_started: Mutex::new(None),
                pause: Mutex::new(None),
            },
            moved: Mutex::new(BTreeMap::new()),
            verified: AtomicBool::new(false),
            fence: Mutex::new(None),
            _model: PhantomData,
        }
    }

    /// One step of the job: where a test's `CrashPoint` may stop it.
    async fn step(&self) -> Result<()> {
        #[cfg(feature = "testing")]
        if let Some(point) = &self.options.crash
            && point.arrive(self.status().phase)
        {
            if point.fail {
                return Err(Error::Config(format!(
                    "model `{}`: resharding step failed (test failpoint)",
                    M::META.name
                )));
            }
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    /// Persists a new job for `plan`, creates the model's table on the new shards and starts
    /// dual writes (the model becomes [`Placement::Migrating`]). Then drive it with
    /// [`ReshardJob::run`] (or [`copy`](ReshardJob::copy), [`verify`](ReshardJob::verify),
    /// [`cutover`](ReshardJob::cutover) one by one).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the model's placement changed since the plan or it is already
    /// migrating; a shard's error.
    pub async fn start(
        cluster: &Cluster<DB>,
        plan: ReshardPlan,
        options: ReshardOptions,
    ) -> Result<Self> {
        if plan.table != M::META.table {
            return Err(Error::Config(format!(
                "the plan is for table `{}`, not model `{}` (table `{}`)",
                plan.table,
                M::META.name,
                M::META.table
            )));
        }
        if let Some((other, phase)) = store::unfinished(cluster, M::META.table).await?.first() {
            return Err(Error::Config(format!(
                "model `{}` (table `{}`) has an unfinished resharding job `{other}` ({phase}); \
                 resume it (`ReshardJob::resume`) and finish or roll it back before starting \
                 another",
                M::META.name,
                M::META.table
            )));
        }
        let id = format!(
            "{}-{}-{}",
            M::META.table,
            store::now_millis(),
            JOB_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let row = JobRow {
            id,
            table: M::META.table.to_owned(),
            target: plan.fingerprint(),
            phase: Phase::Planned.as_str().to_owned(),
            cursors: BTreeMap::new(),
            rows_copied: 0,
            rows_total: plan.rows_to_move() as i64,
            source: format!("{:?}", plan.old),
        };
        store::create(cluster, &row).await?;
        let job = Self::new_job(cluster, plan, options, row, Phase::Planned);
        job.step().await?;
        if let Err(e) = job.begin(true).await {
            // Some process did not follow the migration: it was undone before a row was
            // copied, so the job ends here (rolled back) and another may start later.
            if matches!(e, Error::Timeout { .. }) && job.status().phase == Phase::Planned {
                job.finish(Phase::RolledBack).await?;
            }
            return Err(e);
        }
        Ok(job)
    }

    /// The ids of model `M`'s jobs that are neither done nor rolled back (at most one, since
    /// [`ReshardJob::start`] refuses while one exists): what a new process resumes after a
    /// crash.
    ///
    /// # Errors
    ///
    /// The job table's shard's error.
    pub async fn unfinished(cluster: &Cluster<DB>) -> Result<Vec<String>> {
        Ok(store::unfinished(cluster, M::META.table)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Continues job `id` after a crash or a cancelled run — on this cluster or on a new one
    /// (a new process): `new` must be the placement the job was started with (its `Debug`
    /// fingerprint is checked), and the model's placement on this cluster must be the one the
    /// job started from (a run-time placement is set again with `cluster.set_placement`
    /// first). What it does depends on the phase the job recorded:
    ///
    /// - before cutover (planned, copying, verifying): re-installs dual writes; continue with
    ///   [`ReshardJob::run`], which copies from the persisted cursors and then runs the full
    ///   verification pass, repairing whatever was written while no job ran;
    /// - cutover or cleanup: finishes the move here, before returning — each source that had
    ///   not given up its rows is made the authority again (its rows copied to their targets,
    ///   target copies it no longer has deleted), then every source's moved rows leave it and
    ///   the model switches to `new`; the job is then done (`run()` returns at once);
    /// - rolling back: finishes the rollback here.
    ///
    /// Call it before the new process serves the model: until then its reads and writes use
    /// the old placement alone.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unknown job, another model's job, a finished or rolled-back
    /// job, a different target placement, or a model whose placement here is not the job's
    /// source; as [`ReshardJob::start`].
    pub async fn resume(
        cluster: &Cluster<DB>,
        id: &str,
        new: Placement,
        options: ReshardOptions,
    ) -> Result<Self> {
        let row = store::load(cluster, id).await?;
        if row.table != M::META.table {
            return Err(Error::Config(format!(
                "resharding job `{id}` moves table `{}`, not model `{}` (table `{}`)",
                row.table,
                M::META.name,
                M::META.table
            )));
        }
        let fingerprint = format!("{new:?}");
        if row.target != fingerprint {
            return Err(Error::Config(format!(
                "resharding job `{id}` of model `{}` was started towards {}, not {fingerprint}; \
                 pass the same placement again",
                M::META.name,
                row.target
            )));
        }
        let phase = Phase::parse(&row.phase).unwrap_or(Phase::Planned);
        if matches!(phase, Phase::Done | Phase::RolledBack) {
            return Err(Error::Config(format!(
                "resharding job `{id}` of model `{}` already finished ({phase}); it cannot run \
                 again — plan a new job",
                M::META.name
            )));
        }
        let current = cluster.placement::<M>();
        let (old, epoch) = match current.as_deref() {
            Some(crate::placement::PlacementState {
                epoch,
                placement: Placement::Migrating { old, new: n },
            }) if format!("{n:?}") == fingerprint => ((**old).clone(), Some(*epoch)),
            Some(state) => (state.placement.clone(), None),
            None => (Placement::Static, None),
        };
        if epoch.is_none() && format!("{old:?}") == fingerprint {
            // This cluster already switched (a run cancelled after the switch, before it
            // recorded it): every source gave up its rows before the switch.
            let plan = ReshardPlan::between::<M, DB>(cluster, old.clone(), new).await?;
            let job = Self::new_job(cluster, plan, options, row, phase);
            job.finish(Phase::Done).await?;
            return Ok(job);
        }
        let source = format!("{old:?}");
        if !row.source.is_empty() && row.source != source {
            return Err(Error::Config(format!(
                "resharding job `{id}` of model `{}` moves rows from {}, but the model's \
                 placement on this cluster is {source}; set the job's source placement \
                 (`cluster.set_placement`) before resuming",
                M::META.name,
                row.source
            )));
        }
        let plan = ReshardPlan::between::<M, DB>(cluster, old, new).await?;
        let job = Self::new_job(cluster, plan, options, row, phase);
        match phase {
            Phase::RollingBack => {
                if let Some(epoch) = epoch {
                    job.epoch.store(epoch, Ordering::Release);
                }
                job.rollback().await?;
            }
            _ => {
                match epoch {
                    Some(epoch) => {
                        job.epoch.store(epoch, Ordering::Release);
                        job.install_journal();
                        job.ensure_marks().await?;
                        job.ensure_capture().await?;
                        if matches!(phase, Phase::Cutover | Phase::Cleanup) {
                            // Decided: the fence stays down.
                            job.ensure_registry(false).await?;
                        } else {
                            job.open_migration(false).await?;
                        }
                    }
                    None => job.begin(false).await?,
                }
                if matches!(phase, Phase::Cutover | Phase::Cleanup) {
                    job.finish_cutover().await?;
                }
            }
        }
        Ok(job)
    }

    fn install_journal(&self) {
        self.cluster
            .placements()
            .observe(M::META.table, Some(Arc::clone(&self.journal) as _));
    }

    fn gate(&self) -> Arc<tokio::sync::RwLock<()>> {
        self.cluster.placements().gate(M::META.table)
    }

    /// The gate in write mode: the one a failed cutover kept, or a new hold.
    async fn hold_gate(&self) -> OwnedRwLockWriteGuard<()> {
        let kept = self.fence.lock().unwrap_or_else(|e| e.into_inner()).take();
        match kept {
            Some(held) => held,
            None => self.gate().write_owned().await,
        }
    }

    /// Journal first, then dual writes, and the table on the new shards — under the gate, so
    /// in-flight operations finish first and none writes before the table exists. Keeps the
    /// recorded phase (a resumed cutover or rollback continues from it). A `fresh` job starts
    /// from empty copies registries.
    async fn begin(&self, fresh: bool) -> Result<()> {
        self.install_journal();
        self.ensure_marks().await?;
        self.ensure_capture().await?;
        self.open_migration(fresh).await?;
        let epoch = {
            let _drained = self.hold_gate().await;
            // The table on every shard first: other processes follow the persisted migration
            // at once (PostgreSQL notifies them) and dual-write to the new shards.
            crate::crud::create_table_on::<M, DB>(&self.cluster, &self.fenced_shards()).await?;
            self.cluster
                .begin_guarded_migration::<M>(self.plan.new.clone())?
        };
        // Every process must dual-write before a row is copied: one still writing the old
        // placement only would write behind the backfill's back (its writes are journaled by
        // the capture, but it would also go on after the cutover).
        if let Err(e) = self
            .cluster
            .await_followed::<M>(epoch, self.options.follow_timeout)
            .await
        {
            let _drained = self.hold_gate().await;
            self.cluster.abort_migration::<M>(epoch)?;
            return Err(e);
        }
        self.epoch.store(epoch, Ordering::Release);
        if self.status().phase == Phase::Planned {
            self.set_phase(Phase::Copying).await?;
        }
        Ok(())
    }

    /// The change-capture journal and triggers on every source (see `capture`): every write of
    /// any process to a source's rows is journaled in its own transaction from here on.
    async fn ensure_capture(&self) -> Result<()> {
        let statements = super::capture::bounded::<DB>(super::capture::create::<M, DB>());
        self.on_each(self.sources(), statements).await
    }

    /// Every shard an operation under the migrating placement may touch: the old placement's,
    /// the new one's, the sources and the targets.
    fn fenced_shards(&self) -> Vec<ShardId> {
        let mut out = self.plan.old.all_shards::<M>();
        out.extend(self.plan.new.all_shards::<M>());
        out.extend(self.sources());
        out.extend(self.targets());
        out.sort();
        out.dedup_by(|a, b| a.name() == b.name());
        out
    }

    /// `statements` (no values) on each of `shards` in one transaction each, in parallel.
    async fn on_each(&self, shards: Vec<ShardId>, statements: Vec<String>) -> Result<()> {
        try_join_all(shards.into_iter().map(|shard| {
            let batch: Vec<_> = statements
                .iter()
                .map(|sql| (sql.clone(), store::no_values()))
                .collect();
            async move {
                self.cluster
                    .execute_atomic(M::META.name, shard, batch)
                    .await
            }
        }))
        .await?;
        Ok(())
    }

    /// The copies registry on every shard of the new placement (emptied when `clear`), then
    /// the migration's fence on every shard it touches (`placement::fence`): both exist
    /// before any process migrates (their reads and writes name them).
    async fn open_migration(&self, clear: bool) -> Result<()> {
        self.ensure_registry(clear).await?;
        self.lower_fence().await
    }

    /// The copies registry on every shard of the new placement, emptied when `clear`.
    async fn ensure_registry(&self, clear: bool) -> Result<()> {
        let mut statements = vec![stmt::create_copies::<M, DB>()];
        if clear {
            statements.push(stmt::clear_copies::<M>());
        }
        self.on_each(self.targets(), statements).await
    }

    /// Puts the fence (back) up: operations under the migrating placement go on.
    async fn lower_fence(&self) -> Result<()> {
        self.on_each(
            self.fenced_shards(),
            vec![crate::placement::fence::create_fence::<M>()],
        )
        .await
    }

    /// Takes the fence down on every shard (under the gate, before a cutover or a rollback
    /// decides): waits for the statements that named it, then every statement of a process
    /// still on the migrating placement fails, writing nothing, and is run again once that
    /// process follows the switch. On PostgreSQL the drop gives up after `lock_timeout` (2 s)
    /// behind a long statement rather than queue every other one behind it, and is tried
    /// three times.
    async fn raise_fence(&self) -> Result<()> {
        let statements =
            super::capture::bounded::<DB>(vec![crate::placement::fence::drop_fence::<M>()]);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.on_each(self.fenced_shards(), statements.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 3 => {
                    tracing::warn!(model = M::META.name, error = %e, "cannot take the fence down yet; retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the copies registries once the model no longer migrates (logged, never fails
    /// the job: a new job empties them).
    async fn drop_copies(&self) {
        let fence = crate::placement::fence::drop_fence::<M>();
        for target in self.fenced_shards() {
            let statement = if self.targets().iter().any(|t| t.name() == target.name()) {
                vec![
                    (fence.clone(), store::no_values()),
                    (stmt::drop_copies::<M>(), store::no_values()),
                ]
            } else {
                vec![(fence.clone(), store::no_values())]
            };
            if let Err(e) = self
                .cluster
                .execute_atomic(M::META.name, target, statement)
                .await
            {
                tracing::warn!(
                    model = M::META.name,
                    shard = %target,
                    error = %e,
                    "cannot remove the resharding job's copies registry (the next job empties it)"
                );
            }
        }
    }

    /// Empties every source's capture journal (the verification pass starts after it).
    async fn clear_capture(&self) -> Result<()> {
        let sql = super::capture::clear::<M>();
        try_join_all(self.sources().into_iter().map(|source| {
            let sql = sql.clone();
            async move {
                self.cluster
                    .execute(M::META.name, source, (sql, store::no_values()))
                    .await
            }
        }))
        .await?;
        Ok(())
    }

    /// The primary keys the sources' capture journals hold for rows of their own (a write on a
    /// shard to a row that lives elsewhere under the old placement — the backfill's and the
    /// dual writes' target side — is not the source's and is left out).
    async fn captured(&self) -> Result<Vec<Vec<Value>>> {
        let sql = super::capture::read::<M>();
        let kinds: Vec<_> = M::META
            .primary_key
            .iter()
            .map(|&i| M::META.columns[i].kind)
            .collect();
        let per_source = try_join_all(self.sources().into_iter().map(|source| {
            let (sql, kinds) = (sql.clone(), &kinds);
            async move {
                let rows = self
                    .cluster
                    .fetch_unlogged(M::META.name, source, (sql, store::no_values()))
                    .await?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut key = Vec::with_capacity(kinds.len());
                    for (j, &kind) in kinds.iter().enumerate() {
                        key.push(
                            DB::get_value(row, j, kind)
                                .map_err(|e| Error::on_shard(M::META.name, source, e))?,
                        );
                    }
                    let from = shard_of::<M>(&self.plan.old, &key_of_pk::<M>(&key))?;
                    if from.name() == source.name() {
                        keys.push(key);
                    }
                }
                Ok::<_, Error>(keys)
            }
        }))
        .await?;
        Ok(per_source.into_iter().flatten().collect())
    }

    /// Removes the capture triggers and journals (the job is done or rolled back); a failure
    /// is logged, never fails the job (the triggers only journal).
    async fn drop_capture(&self) {
        let statements = super::capture::bounded::<DB>(super::capture::drop::<M, DB>());
        for source in self.sources() {
            let batch: Vec<_> = statements
                .iter()
                .map(|sql| (sql.clone(), store::no_values()))
                .collect();
            if let Err(e) = self
                .cluster
                .execute_atomic(M::META.name, source, batch)
                .await
            {
                tracing::warn!(
                    model = M::META.name,
                    shard = %source,
                    error = %e,
                    "cannot remove the resharding job's change capture (its next job or resume \
                     removes it); the triggers only journal"
                );
            }
        }
    }

    /// The moved-marker table on every source.
    async fn ensure_marks(&self) -> Result<()> {
        try_join_all(
            self.sources()
                .into_iter()
                .map(|s| store::create_marks(&self.cluster, M::META.name, s)),
        )
        .await?;
        Ok(())
    }

    async fn set_phase(&self, phase: Phase) -> Result<()> {
        self.step().await?;
        *self
            .progress
            .phase
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = phase;
        let mut row = self.row.lock().await;
        row.phase = phase.as_str().to_owned();
        row.rows_copied = self.progress.copied.load(Ordering::Relaxed) as i64;
        store::save(&self.cluster, &row).await
    }

    /// Refuses to work on a job that is finished or rolled back — in memory or as recorded
    /// (another run of the same job may have finished it) — or that is not in one of `allowed`.
    async fn ensure_phase(&self, what: &str, allowed: &[Phase]) -> Result<Phase> {
        let id = self.id_now().await;
        let recorded = store::load(&self.cluster, &id).await?;
        let recorded = Phase::parse(&recorded.phase).unwrap_or(Phase::Planned);
        let phase = self.status().phase;
        for p in [phase, recorded] {
            if matches!(p, Phase::Done | Phase::RolledBack) {
                return Err(Error::Config(format!(
                    "resharding job `{id}` of model `{}` already finished ({p}); `{what}` \
                     refused — a finished job never runs again; plan a new job",
                    M::META.name
                )));
            }
        }
        if !allowed.contains(&phase) || !allowed.contains(&recorded) {
            return Err(Error::Config(format!(
                "resharding job `{id}` of model `{}`: `{what}` refused in phase {phase} \
                 (recorded: {recorded})",
                M::META.name
            )));
        }
        Ok(phase)
    }

    async fn id_now(&self) -> String {
        self.row.lock().await.id.clone()
    }

    /// Copy, verify, cut over: the whole move — or, for a job whose cutover was interrupted,
    /// the rest of it. Returns the final status; a job that is already done returns at once.
    ///
    /// # Errors
    ///
    /// A shard's error (the job can be resumed); [`Error::Config`] when the job was rolled
    /// back, or the model's placement was changed by someone else meanwhile.
    pub async fn run(&self) -> Result<ReshardStatus> {
        match self.status().phase {
            Phase::Done => return Ok(self.status()),
            Phase::Cutover | Phase::Cleanup => {
                self.finish_cutover().await?;
                return Ok(self.status());
            }
            _ => {}
        }
        self.copy().await?;
        self.verify().await?;
        self.cutover().await?;
        Ok(self.status())
    }

    fn sources(&self) -> Vec<ShardId> {
        self.plan.sources.iter().map(|(s, _)| *s).collect()
    }

    /// Every shard of the new placement that is not a source's own shard for all its rows:
    /// where moved rows (and orphaned copies) can be.
    fn targets(&self) -> Vec<ShardId> {
        let mut out = self.plan.new.all_shards::<M>();
        out.extend(self.plan.targets());
        out.sort();
        out.dedup_by(|a, b| a.name() == b.name());
        out
    }

    /// Whether a shard of the new placement is also a source.
    fn overlaps(&self) -> bool {
        let targets = self.targets();
        self.sources()
            .iter()
            .any(|s| targets.iter().any(|t| t.name() == s.name()))
    }

    /// Sources handled at once by the cutover and a rollback: one at a time when a shard of
    /// the new placement is also a source.
    fn parallelism(&self) -> usize {
        if self.overlaps() {
            1
        } else {
            self.options.parallelism.max(1)
        }
    }

    /// Sources copied (and verified) at once. Only a database-wide batch lock (SQLite's) can
    /// make two batches wait on each other: a PostgreSQL bulk batch locks its own rows, and
    /// the target rows it writes are keys no other batch locks. (The row path keeps its one
    /// source at a time.)
    fn copy_parallelism(&self) -> usize {
        // Also on the bulk path: the chaos test lost rows written by other processes when
        // sources that are also targets copied at once (PostgreSQL's bulk path, once in four
        // runs; SQLite's with its batches' databases locked in one order, at once), which it
        // never does one source at a time.
        if self.overlaps() {
            1
        } else {
            self.options.parallelism.max(1)
        }
    }

    /// The backfill: every source shard, batch by batch from its persisted cursor, the moving
    /// rows upserted into their targets under the source lock and read back to compare.
    ///
    /// # Errors
    ///
    /// A shard's error naming it; the job can be resumed. [`Error::Config`] for a job past
    /// its cutover, finished or rolled back.
    pub async fn copy(&self) -> Result<()> {
        self.ensure_phase("copy", &[Phase::Planned, Phase::Copying, Phase::Verifying])
            .await?;
        self.verified.store(false, Ordering::Release);
        self.set_phase(Phase::Copying).await?;
        *self
            .progress
            .copy_started
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        futures_util::stream::iter(self.sources())
            .map(|source| self.copy_source(source))
            .buffer_unordered(self.copy_parallelism())
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn copy_source(&self, source: ShardId) -> Result<()> {
        let mut cursor = match self.row.lock().await.cursors.get(&source.name()) {
            Some(text) => Some(stmt::decode_key::<M>(text)?),
            None => None,
        };
        while let Some((last, moved)) = self.batch(source, cursor.as_deref(), Mode::Copy).await? {
            self.progress.copied.fetch_add(moved, Ordering::Relaxed);
            self.progress
                .copied_this_run
                .fetch_add(moved, Ordering::Relaxed);
            self.step().await?;
            {
                let mut row = self.row.lock().await;
                row.cursors
                    .insert(source.name().to_owned(), stmt::encode_key(&last)?);
                row.rows_copied = self.progress.copied.load(Ordering::Relaxed) as i64;
                store::save(&self.cluster, &row).await?;
            }
            cursor = Some(last);
            self.throttle().await;
        }
        Ok(())
    }

    async fn throttle(&self) {
        if let Some(d) = self.options.throttle {
            tokio::time::sleep(d).await;
        }
        if let Some(cap) = self.options.max_rows_per_sec {
            let started = *self
                .progress
                .copy_started
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(started) = started {
                let done = self.progress.copied_this_run.load(Ordering::Relaxed);
                let due = Duration::from_secs_f64(done as f64 / cap as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn shard_error(&self, shard: ShardId) -> impl Fn(sqlx::Error) -> Error {
        move |source| Error::Shard {
            model: M::META.name,
            shard,
            source,
        }
    }

    fn decode(&self, shard: ShardId, rows: &[DB::Row]) -> Result<Vec<M>> {
        rows.iter()
            .map(|r| M::from_row(r).map_err(self.shard_error(shard)))
            .collect()
    }

    /// The source transaction of a batch or a move: `source`'s rows it reads stay locked
    /// until it ends.
    async fn locked(&self, source: ShardId) -> Result<sqlx::Transaction<'static, DB>> {
        self.step().await?;
        let pool = self.cluster.shard_pool(M::META.name, source)?;
        self.cluster
            .on_held(M::META.name, source, DB::begin_locked(pool), |_| 0)
            .await
    }

    /// Runs one statement inside `source`'s transaction.
    async fn in_tx(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        source: ShardId,
        (sql, values): stmt::Statement,
    ) -> Result<Vec<DB::Row>> {
        self.step().await?;
        self.cluster
            .on_held(
                M::META.name,
                source,
                DB::fetch_in(tx, sql, values),
                |rows| rows.len() as u64,
            )
            .await
    }

    async fn commit(&self, tx: sqlx::Transaction<'static, DB>, source: ShardId) -> Result<()> {
        self.step().await?;
        self.cluster
            .on_held(M::META.name, source, tx.commit(), |_| 0)
            .await
    }

    /// The next page of `source`'s rows (primary-key order) after `cursor`, read and locked
    /// inside its transaction; moves the cursor; empty past the end.
    async fn locked_page(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        source: ShardId,
        cursor: &mut Option<Vec<Value>>,
    ) -> Result<Vec<M>> {
        let statement = stmt::scan::<M, DB>(
            cursor.as_deref(),
            self.options.batch_size,
            DB::LOCK_CLAUSE,
            self.plan.scope.as_ref(),
        );
        let rows = self.in_tx(tx, source, statement).await?;
        let rows = self.decode(source, &rows)?;
        if let Some(last) = rows.last() {
            *cursor = Some(M::primary_key_values(&last.primary_key()));
        }
        Ok(rows)
    }

    /// `items` of `source` grouped by the shard the new placement puts their shard-key
    /// values (`key`) on, leaving out those that stay.
    fn by_target<T>(
        &self,
        source: ShardId,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> Vec<Value>,
    ) -> Result<BTreeMap<ShardId, Vec<T>>> {
        let mut by_target: BTreeMap<ShardId, Vec<T>> = BTreeMap::new();
        for item in items {
            let target = shard_of::<M>(&self.plan.new, &key(&item))?;
            if target.name() != source.name() {
                by_target.entry(target).or_default().push(item);
            }
        }
        Ok(by_target)
    }

    /// `rows` of `source` grouped by target ([`ReshardJob::by_target`]).
    fn moving<'r>(&self, source: ShardId, rows: &'r [M]) -> Result<BTreeMap<ShardId, Vec<&'r M>>> {
        self.by_target(source, rows, |row| crate::placement::row_key_values(*row))
    }

    /// Primary `keys` of `source` grouped by target ([`ReshardJob::by_target`]).
    fn route(
        &self,
        source: ShardId,
        keys: Vec<Vec<Value>>,
    ) -> Result<BTreeMap<ShardId, Vec<Vec<Value>>>> {
        self.by_target(source, keys, |key| key_of_pk::<M>(key))
    }

    /// One batch of `source` after `after`, its rows locked: returns the batch's last key and
    /// how many rows moved, or `None` past the end.
    async fn batch(
        &self,
        source: ShardId,
        after: Option<&[Value]>,
        mode: Mode,
    ) -> Result<Option<(Vec<Value>, u64)>> {
        if self.options.bulk_on::<DB>() {
            return self.bulk_batch(source, after, mode).await;
        }
        self.row_batch(source, after, mode).await
    }

    /// [`ReshardJob::batch`] row by row: the batch's rows locked, decoded, upserted into their
    /// targets and read back to compare.
    async fn row_batch(
        &self,
        source: ShardId,
        after: Option<&[Value]>,
        mode: Mode,
    ) -> Result<Option<(Vec<Value>, u64)>> {
        let mut tx = self.locked(source).await?;
        let mut cursor = after.map(<[Value]>::to_vec);
        let rows = self.locked_page(&mut tx, source, &mut cursor).await?;
        let Some(last) = cursor.filter(|_| !rows.is_empty()) else {
            self.commit(tx, source).await?;
            return Ok(None);
        };
        self.progress
            .scanned
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        let by_target = self.moving(source, &rows)?;
        try_join_all(
            by_target
                .iter()
                .map(|(target, rows)| self.sync_target(*target, rows, mode)),
        )
        .await?;
        self.commit(tx, source).await?;
        let moved: u64 = by_target.values().map(|r| r.len() as u64).sum();
        if mode == Mode::Verify {
            let mut keys = self.moved.lock().unwrap_or_else(|e| e.into_inner());
            let keys = keys.entry(source).or_default();
            for rows in by_target.values() {
                keys.extend(rows.iter().map(|r| M::primary_key_values(&r.primary_key())));
            }
        }
        Ok(Some((last, moved)))
    }

    /// [`ReshardJob::batch`] with the backend's bulk copy: the batch locks and reads only the
    /// primary keys, routes them, and each target takes its rows straight from the source
    /// ([`BulkCopy`]), compared there in SQL before its transaction commits.
    async fn bulk_batch(
        &self,
        source: ShardId,
        after: Option<&[Value]>,
        mode: Mode,
    ) -> Result<Option<(Vec<Value>, u64)>> {
        // SQLite attaches the batch's targets to a source connection before it locks: the
        // plan's targets of this source — or, when the plan lists none (a sampled plan, rows
        // written since), those of the batch's rows read without the lock; a target the
        // locked batch needs beyond them is attached on the next try.
        let mut attached: Vec<ShardId> = Vec::new();
        if DB::ATTACHES_TARGETS {
            for m in &self.plan.moves {
                if m.from.name() == source.name() && !attached.contains(&m.to) {
                    attached.push(m.to);
                }
            }
        }
        if DB::ATTACHES_TARGETS && attached.is_empty() {
            let statement = stmt::scan_keys::<M, DB>(
                None,
                after,
                self.options.bulk_batch_size,
                "",
                self.plan.scope.as_ref(),
            );
            let rows = self
                .cluster
                .fetch(M::META.name, source, Some(ReadPolicy::Primary), statement)
                .await?;
            let keys = stmt::decode_pks::<M, DB>(source, &rows)?;
            let Some(last) = keys.last().cloned() else {
                return Ok(None);
            };
            attached = self.route(source, keys)?.into_keys().collect();
            if attached.is_empty() {
                // Nothing of this batch moves (a row inserted since is dual-written).
                return Ok(Some((last, 0)));
            }
        }
        let (mut tx, last, by_target) = loop {
            let mut tx = if DB::ATTACHES_TARGETS {
                match self.attached(source, &attached).await? {
                    Some(tx) => tx,
                    // A target that cannot be attached (in memory): row by row.
                    None => return self.row_batch(source, after, mode).await,
                }
            } else {
                self.locked(source).await?
            };
            // Copying locks only the moving rows, as the copy reads them (a row deleted
            // since this scan is not copied; one inserted since is dual-written by its
            // writer); the verification pass locks the batch here, as the row path does.
            let lock = if mode == Mode::Verify {
                DB::LOCK_CLAUSE
            } else {
                ""
            };
            let keys = self.batch_keys(&mut tx, source, after, lock).await?;
            let Some(last) = keys.last().cloned() else {
                self.commit(tx, source).await?;
                return Ok(None);
            };
            let scanned = keys.len() as u64;
            let by_target = self.route(source, keys)?;
            let before = attached.len();
            if DB::ATTACHES_TARGETS {
                for target in by_target.keys() {
                    if !attached.contains(target) {
                        attached.push(*target);
                    }
                }
            }
            if attached.len() == before {
                self.progress.scanned.fetch_add(scanned, Ordering::Relaxed);
                break (tx, last, by_target);
            }
            // A target not attached: try again with it (the transaction rolls back).
            drop(tx);
        };
        let mut moved = 0u64;
        for (target, keys) in &by_target {
            self.step().await?;
            let copy = BulkCopy {
                table: M::META.table,
                columns: M::META.column_names().collect(),
                key: stmt::pk_names::<M>(),
                keys: keys.clone(),
                copies: crate::placement::fence::copies_table::<M>(),
                verify: mode == Mode::Verify,
                attached: attached
                    .iter()
                    .position(|a| a == target)
                    .map(super::backend::attached_schema),
            };
            let pool = self.cluster.shard_pool(M::META.name, *target)?;
            let from = self.cluster.shard_pool(M::META.name, source)?;
            let Some(work) = DB::bulk_copy(&mut tx, from, pool, &copy) else {
                unreachable!("HAS_BULK_COPY backends copy in bulk")
            };
            let outcome = self
                .cluster
                .on_held(M::META.name, *target, work, |o| o.rows)
                .await?;
            if outcome.rows > keys.len() as u64 || outcome.differ > 0 {
                return Err(Error::Config(format!(
                    "model `{}`: resharding copied {} of {} locked rows from shard `{source}` to \
                     shard `{target}`, and the target {} — its transaction was rolled back and \
                     nothing was deleted; check both shards (a trigger or a column type that \
                     alters rows?) and resume the job",
                    M::META.name,
                    outcome.rows,
                    keys.len(),
                    if outcome.differ > 0 {
                        "does not hold them as the source does (row hashes differ)"
                    } else {
                        "lacks some"
                    }
                )));
            }
            if mode == Mode::Verify {
                self.progress
                    .verified
                    .fetch_add(outcome.rows, Ordering::Relaxed);
                if outcome.written > 0 {
                    self.progress
                        .repaired
                        .fetch_add(outcome.written, Ordering::Relaxed);
                    tracing::warn!(
                        model = M::META.name,
                        shard = %target,
                        rows = outcome.written,
                        "resharding: target rows differ from their source; copied them again"
                    );
                }
            }
            moved += outcome.rows;
        }
        self.commit(tx, source).await?;
        self.progress.bulk_batches.fetch_add(1, Ordering::Relaxed);
        if mode == Mode::Verify {
            let mut moved_keys = self.moved.lock().unwrap_or_else(|e| e.into_inner());
            let moved_keys = moved_keys.entry(source).or_default();
            for keys in by_target.into_values() {
                moved_keys.extend(keys);
            }
        }
        Ok(Some((last, moved)))
    }

    /// The primary keys of the next bulk batch of `source` after `after`, read in `tx`: packed
    /// into one row where the backend can ([`stmt::scan_keys_packed`]), else one row per key.
    async fn batch_keys(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        source: ShardId,
        after: Option<&[Value]>,
        lock: &str,
    ) -> Result<Vec<Vec<Value>>> {
        let (size, scope) = (self.options.bulk_batch_size, self.plan.scope.as_ref());
        // Where the batch's connection has the source attached (its `main` is a neutral one).
        let schema = DB::ATTACHES_TARGETS.then_some(super::backend::SOURCE_SCHEMA);
        if lock.is_empty()
            && let Some(statement) = stmt::scan_keys_packed::<M, DB>(schema, after, size, scope)
        {
            let rows = self.in_tx(tx, source, statement).await?;
            let read = |i, kind| {
                rows.first()
                    .map(|row| DB::get_value(row, i, kind))
                    .transpose()
                    .map_err(|e| Error::on_shard(M::META.name, source, e))
            };
            let packed = read(0, ValueKind::String)?;
            let count = read(1, ValueKind::I64)?;
            let odd = read(2, ValueKind::I64)?;
            if let (Some(Value::BigInt(Some(count))), Some(Value::BigInt(Some(0)))) = (count, odd) {
                let packed = match &packed {
                    Some(Value::String(Some(text))) => Some(text.as_str()),
                    _ => None,
                };
                if let Some(keys) = stmt::unpack_pks::<M>(packed, count as usize) {
                    return Ok(keys);
                }
            }
        }
        let statement = stmt::scan_keys::<M, DB>(schema, after, size, lock, scope);
        let rows = self.in_tx(tx, source, statement).await?;
        stmt::decode_pks::<M, DB>(source, &rows)
    }

    /// A bulk batch's source transaction on a connection of its own with `targets` attached
    /// ([`ReshardBackend::begin_attached`]), or `None` when one cannot be.
    async fn attached(
        &self,
        source: ShardId,
        targets: &[ShardId],
    ) -> Result<Option<sqlx::Transaction<'static, DB>>> {
        self.step().await?;
        let pool = self.cluster.shard_pool(M::META.name, source)?;
        let pools = targets
            .iter()
            .map(|t| self.cluster.shard_pool(M::META.name, *t))
            .collect::<Result<Vec<_>>>()?;
        self.cluster
            .on_held(
                M::META.name,
                source,
                DB::begin_attached(pool, &pools),
                |_| 0,
            )
            .await
    }

    /// The rows `statement` reads from `shard` for `keys`, one statement per chunk of keys
    /// under the backend's bind-parameter limit.
    async fn fetch_by_keys(
        &self,
        shard: ShardId,
        keys: &[Vec<Value>],
        statement: fn(&[Vec<Value>]) -> stmt::Statement,
    ) -> Result<Vec<DB::Row>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(stmt::keys_per_statement::<M, DB>()) {
            self.step().await?;
            out.extend(
                self.cluster
                    .fetch(
                        M::META.name,
                        shard,
                        Some(ReadPolicy::Primary),
                        statement(chunk),
                    )
                    .await?,
            );
        }
        Ok(out)
    }

    /// Rows of `shard` with these keys, by key.
    async fn fetch_keys(&self, shard: ShardId, keys: &[Vec<Value>]) -> Result<HashMap<Vec<u8>, M>> {
        let rows = self
            .fetch_by_keys(shard, keys, stmt::fetch_keys::<M, DB>)
            .await?;
        Ok(self
            .decode(shard, &rows)?
            .into_iter()
            .map(|row| (values_key(&M::primary_key_values(&row.primary_key())), row))
            .collect())
    }

    /// Upserts `rows` into `target` with their keys in its copies registry, in one
    /// transaction.
    async fn upsert(&self, target: ShardId, rows: &[&M]) -> Result<()> {
        self.step().await?;
        let mut statements = stmt::upserts::<M, DB>(rows);
        statements.extend(stmt::register_copies::<M, DB>(rows));
        self.cluster
            .execute_atomic(M::META.name, target, statements)
            .await?;
        Ok(())
    }

    /// Makes `target` hold exactly `rows` (for their keys): upserts them all (copy) or only
    /// those that differ (verify), then compares both sides row by row, value by value, and
    /// copies again what differs. Returns the rows that had to be copied again.
    async fn sync_target(&self, target: ShardId, rows: &[&M], mode: Mode) -> Result<usize> {
        if mode == Mode::Copy {
            self.upsert(target, rows).await?;
        }
        let keys: Vec<Vec<Value>> = rows
            .iter()
            .map(|r| M::primary_key_values(&r.primary_key()))
            .collect();
        let there = self.fetch_keys(target, &keys).await?;
        if mode == Mode::Verify {
            self.progress
                .verified
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
        }
        let differ: Vec<&M> = rows
            .iter()
            .zip(&keys)
            .filter(|(row, key)| {
                there
                    .get(&values_key(key))
                    .is_none_or(|copy| copy.values() != row.values())
            })
            .map(|(row, _)| *row)
            .collect();
        if differ.is_empty() {
            return Ok(0);
        }
        self.progress
            .repaired
            .fetch_add(differ.len() as u64, Ordering::Relaxed);
        tracing::warn!(
            model = M::META.name,
            shard = %target,
            rows = differ.len(),
            "resharding: target rows differ from their source; copying them again"
        );
        self.upsert(target, &differ).await?;
        Ok(differ.len())
    }

    /// Proves that `target` holds each of `rows` exactly (copying what is missing or
    /// different, then reading it back): the check before their source copies are deleted.
    async fn prove_at(&self, target: ShardId, rows: &[&M]) -> Result<()> {
        for chunk in rows.chunks(stmt::keys_per_statement::<M, DB>()) {
            if self.sync_target(target, chunk, Mode::Verify).await? == 0 {
                continue;
            }
            let keys: Vec<Vec<Value>> = chunk
                .iter()
                .map(|r| M::primary_key_values(&r.primary_key()))
                .collect();
            let there = self.fetch_keys(target, &keys).await?;
            if let Some(row) = chunk.iter().zip(&keys).find_map(|(row, key)| {
                there
                    .get(&values_key(key))
                    .is_none_or(|copy| copy.values() != row.values())
                    .then_some(row)
            }) {
                return Err(Error::Config(format!(
                    "model `{}`: resharding cannot prove that shard `{target}` holds row {:?} \
                     after copying it there; nothing was deleted from its source — check the \
                     shard and resume the job",
                    M::META.name,
                    M::primary_key_values(&row.primary_key())
                )));
            }
        }
        Ok(())
    }

    /// Whether `source` has given up its moved rows for this job (its marker exists).
    async fn gave_up(&self, source: ShardId) -> Result<bool> {
        self.step().await?;
        let id = self.id_now().await;
        let rows = self
            .cluster
            .fetch(
                M::META.name,
                source,
                Some(ReadPolicy::Primary),
                store::marked::<DB>(&id),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Refuses a step that treats the sources as the authority (deleting target copies they
    /// lack) unless the model is migrating under this job and no source has given up rows.
    async fn ensure_sources_own(&self, what: &str) -> Result<()> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let migrating = matches!(
            self.cluster.placement::<M>().as_deref(),
            Some(crate::placement::PlacementState { epoch: now, placement: Placement::Migrating { .. } }) if *now == epoch
        );
        if !migrating {
            return Err(Error::Config(format!(
                "resharding job `{}` of model `{}`: {what} refused — the model is not \
                 migrating under this job (its placement changed); resume the job",
                self.id_now().await,
                M::META.name
            )));
        }
        for source in self.sources() {
            if self.gave_up(source).await? {
                return Err(Error::Config(format!(
                    "resharding job `{}` of model `{}`: {what} refused — source `{source}` \
                     already gave up its moved rows (cutover ran); call `run()` or `resume` \
                     to finish the cutover",
                    self.id_now().await,
                    M::META.name
                )));
            }
        }
        Ok(())
    }

    /// The full verification pass: every moving row compared on source and target under the
    /// source lock (repaired on mismatch), then target copies whose source row is gone
    /// deleted. Starts a clean dirty-key journal (after draining in-flight operations), so the
    /// cutover re-verifies only what was written from here on.
    ///
    /// # Errors
    ///
    /// A shard's error naming it. [`Error::Config`] for a job past its cutover, finished or
    /// rolled back.
    pub async fn verify(&self) -> Result<()> {
        self.ensure_phase("verify", &[Phase::Copying, Phase::Verifying])
            .await?;
        self.verified.store(false, Ordering::Release);
        self.set_phase(Phase::Verifying).await?;
        {
            let gate = self.gate();
            let _drained = gate.write().await;
            self.journal.take();
            self.clear_capture().await?;
        }
        self.moved.lock().unwrap_or_else(|e| e.into_inner()).clear();
        futures_util::stream::iter(self.sources())
            .map(|source| async move {
                let mut cursor: Option<Vec<Value>> = None;
                while let Some((last, _)) =
                    self.batch(source, cursor.as_deref(), Mode::Verify).await?
                {
                    cursor = Some(last);
                    self.throttle().await;
                }
                Ok::<_, Error>(())
            })
            .buffer_unordered(self.copy_parallelism())
            .try_collect::<Vec<()>>()
            .await?;
        self.ensure_sources_own("deleting orphaned copies").await?;
        try_join_all(
            self.targets()
                .into_iter()
                .map(|t| self.clean_target(t, CleanMode::Orphans)),
        )
        .await?;
        self.verified.store(true, Ordering::Release);
        Ok(())
    }

    /// Scans `target` for rows another shard owns under the old placement: deletes those whose
    /// source row is gone (`Orphans`) or all of them (`Copies`, rollback). Only while the
    /// sources are the authority ([`ReshardJob::ensure_sources_own`]).
    async fn clean_target(&self, target: ShardId, mode: CleanMode) -> Result<()> {
        let mut cursor: Option<Vec<Value>> = None;
        loop {
            let rows = self.next_page(target, &mut cursor).await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut by_owner: BTreeMap<ShardId, Vec<Vec<Value>>> = BTreeMap::new();
            for row in &rows {
                let owner = shard_of::<M>(&self.plan.old, &crate::placement::row_key_values(row))?;
                if owner.name() != target.name() {
                    by_owner
                        .entry(owner)
                        .or_default()
                        .push(M::primary_key_values(&row.primary_key()));
                }
            }
            let mut doomed: Vec<Vec<Value>> = Vec::new();
            for (owner, keys) in by_owner {
                match mode {
                    CleanMode::Copies => doomed.extend(keys),
                    CleanMode::Orphans => {
                        let there = self.fetch_keys(owner, &keys).await?;
                        doomed.extend(
                            keys.into_iter()
                                .filter(|k| !there.contains_key(&values_key(k))),
                        );
                    }
                }
            }
            if mode == CleanMode::Orphans {
                self.progress
                    .repaired
                    .fetch_add(doomed.len() as u64, Ordering::Relaxed);
            }
            self.delete_keys(target, &doomed).await?;
        }
    }

    /// The next batch of `shard`'s rows in primary-key order after `cursor` (unlocked), moving
    /// the cursor to its last row; empty past the end.
    async fn next_page(&self, shard: ShardId, cursor: &mut Option<Vec<Value>>) -> Result<Vec<M>> {
        self.step().await?;
        let rows = self
            .cluster
            .fetch(
                M::META.name,
                shard,
                Some(ReadPolicy::Primary),
                stmt::scan::<M, DB>(
                    cursor.as_deref(),
                    self.options.batch_size,
                    "",
                    self.plan.scope.as_ref(),
                ),
            )
            .await?;
        let rows = self.decode(shard, &rows)?;
        if let Some(last) = rows.last() {
            *cursor = Some(M::primary_key_values(&last.primary_key()));
        }
        Ok(rows)
    }

    async fn delete_keys(&self, shard: ShardId, keys: &[Vec<Value>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.step().await?;
        let statements = keys
            .chunks(stmt::keys_per_statement::<M, DB>())
            .map(stmt::delete_keys::<M, DB>)
            .collect();
        self.cluster
            .execute_atomic(M::META.name, shard, statements)
            .await?;
        Ok(())
    }

    /// Switches the model to the new placement: under the model's gate (in-flight operations
    /// drained, new ones wait) re-verifies the keys written since the verification pass, then
    /// each source gives up its moved rows — in one transaction per source that first proves
    /// every one of them is at its target, deletes them and records that it did — and the
    /// placement switches atomically. [`ReshardStatus::pause`] tells how long operations
    /// waited.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the verification pass has not completed in this run, or the job
    /// is finished or rolled back; a shard's error. A failure before any source gave up its
    /// rows leaves the job verifying (call `cutover` again, `run`, or `rollback`); a failure
    /// after it keeps the model's operations waiting on its gate until `cutover`/`run`
    /// finishes the move or `rollback` undoes it (a new process: `resume`).
    pub async fn cutover(&self) -> Result<()> {
        let phase = self
            .ensure_phase(
                "cutover",
                &[Phase::Verifying, Phase::Cutover, Phase::Cleanup],
            )
            .await?;
        if matches!(phase, Phase::Cutover | Phase::Cleanup) {
            return self.finish_cutover().await;
        }
        if !self.verified.load(Ordering::Acquire) {
            return Err(Error::Config(format!(
                "resharding job `{}` of model `{}`: cutover needs a complete verification pass \
                 in this run first; call `verify()` or `run()`",
                self.id_now().await,
                M::META.name
            )));
        }
        let held = self.hold_gate().await;
        let started = Instant::now();
        // Other processes stop at the fence: from here nothing more reaches the sources.
        if let Err(e) = match self.raise_fence().await {
            Ok(()) => self.step().await,
            Err(e) => Err(e),
        } {
            let _ = self.lower_fence().await;
            return Err(e);
        }
        // Every process's writes since the verification pass: the sources' capture journals,
        // and this process's own journal.
        let captured = match self.captured().await {
            Ok(captured) => captured,
            Err(e) => {
                let _ = self.lower_fence().await;
                return Err(e);
            }
        };
        let mut dirty = self.journal.take();
        let mut seen: std::collections::HashSet<Vec<u8>> =
            dirty.iter().map(|k| values_key(k)).collect();
        for key in captured {
            if seen.insert(values_key(&key)) {
                dirty.push(key);
            }
        }
        let mut moved = std::mem::take(&mut *self.moved.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = self.reverify(&dirty, &mut moved).await {
            // Nothing left any source: put the journal back and let writers go on.
            for key in dirty {
                self.journal.written(key);
            }
            *self.moved.lock().unwrap_or_else(|e| e.into_inner()) = moved;
            let _ = self.lower_fence().await;
            return Err(e);
        }
        self.progress
            .dirty
            .store(dirty.len() as u64, Ordering::Relaxed);
        // The decision: from here on the job only moves forward (or is undone by rollback).
        if let Err(e) = self.set_phase(Phase::Cutover).await {
            *self.moved.lock().unwrap_or_else(|e| e.into_inner()) = moved;
            let _ = self.lower_fence().await;
            return Err(e);
        }
        // The journals were read: the capture has done its work, and the sources' deletes of
        // their moved rows need not pay for it.
        self.drop_capture().await;
        let outcome = futures_util::stream::iter(self.sources())
            .map(|source| {
                let keys = moved.get(&source).cloned().unwrap_or_default();
                async move { self.give_up(source, Selection::Keys(keys)).await }
            })
            .buffer_unordered(self.parallelism())
            .try_collect::<Vec<()>>()
            .await;
        if let Err(e) = outcome {
            *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
            return Err(e);
        }
        self.switch(held, started).await
    }

    /// Makes the target of each dirty key equal to its source row (or absent with it),
    /// adding the keys whose rows move to `moved`.
    async fn reverify(
        &self,
        dirty: &[Vec<Value>],
        moved: &mut BTreeMap<ShardId, Vec<Vec<Value>>>,
    ) -> Result<()> {
        let mut by_source: BTreeMap<ShardId, Vec<(Vec<Value>, ShardId)>> = BTreeMap::new();
        for key in dirty {
            let shard_key = key_of_pk::<M>(key);
            let from = shard_of::<M>(&self.plan.old, &shard_key)?;
            let to = shard_of::<M>(&self.plan.new, &shard_key)?;
            if from.name() != to.name() {
                by_source.entry(from).or_default().push((key.clone(), to));
            }
        }
        for (source, keys) in by_source {
            let plain: Vec<Vec<Value>> = keys.iter().map(|(k, _)| k.clone()).collect();
            let rows = self.fetch_keys(source, &plain).await?;
            let mut upsert: BTreeMap<ShardId, Vec<&M>> = BTreeMap::new();
            let mut delete: BTreeMap<ShardId, Vec<Vec<Value>>> = BTreeMap::new();
            for (key, to) in keys {
                match rows.get(&values_key(&key)) {
                    Some(row) => {
                        upsert.entry(to).or_default().push(row);
                        moved.entry(source).or_default().push(key);
                    }
                    None => delete.entry(to).or_default().push(key),
                }
            }
            for (to, keys) in delete {
                self.delete_keys(to, &keys).await?;
            }
            for (to, rows) in upsert {
                self.upsert(to, &rows).await?;
            }
        }
        Ok(())
    }

    /// `source` gives up its moved rows, in one transaction on it that holds them locked:
    /// proves each is at its target (copying it there when missing or different — the
    /// source is the authority until this commits), deletes them and records the marker. A
    /// source that already did only hands over rows written to it since (by a process on
    /// the old placement). With `Selection::All` every row of the source is examined, and
    /// target copies the source no longer has are deleted first (they were deleted while no
    /// job dual-wrote).
    async fn give_up(&self, source: ShardId, selection: Selection) -> Result<()> {
        let id = self.id_now().await;
        let mut tx = self.locked(source).await?;
        // Claimed: the marker is written in this transaction and commits with the deletes.
        let done = self
            .in_tx(&mut tx, source, store::claim::<DB>(&id))
            .await?
            .is_empty();
        let keys = match selection {
            Selection::Keys(keys) if !done => self.hand_over_keys(&mut tx, source, keys).await?,
            _ => self.hand_over_all(&mut tx, source, done).await?,
        };
        for chunk in keys.chunks(stmt::keys_per_statement::<M, DB>()) {
            self.in_tx(&mut tx, source, stmt::delete_keys::<M, DB>(chunk))
                .await?;
        }
        self.commit(tx, source).await
    }

    /// The cutover's hand-over of the moving `keys` the verification pass and the journal
    /// found (their targets already equal the source rows): proves each key is present at its
    /// target — reading only keys — and copies the rows that are not (read from the source
    /// under its lock). Returns the keys to delete from the source.
    async fn hand_over_keys(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        source: ShardId,
        keys: Vec<Vec<Value>>,
    ) -> Result<Vec<Vec<Value>>> {
        let mut by_target: BTreeMap<ShardId, Vec<Vec<Value>>> = BTreeMap::new();
        for key in keys {
            let target = shard_of::<M>(&self.plan.new, &key_of_pk::<M>(&key))?;
            if target.name() != source.name() {
                by_target.entry(target).or_default().push(key);
            }
        }
        let mut out = Vec::new();
        for (target, keys) in by_target {
            let present = self.present_keys(target, &keys).await?;
            let missing: Vec<Vec<Value>> = keys
                .iter()
                .filter(|k| !present.contains(&values_key(k)))
                .cloned()
                .collect();
            let mut rows: Vec<M> = Vec::new();
            for chunk in missing.chunks(stmt::keys_per_statement::<M, DB>()) {
                let (mut sql, values) = stmt::fetch_keys::<M, DB>(chunk);
                sql.push_str(DB::LOCK_CLAUSE);
                let found = self.in_tx(tx, source, (sql, values)).await?;
                rows.extend(self.decode(source, &found)?);
            }
            if !rows.is_empty() {
                let rows: Vec<&M> = rows.iter().collect();
                self.upsert(target, &rows).await?;
                self.prove_at(target, &rows).await?;
            }
            out.extend(keys);
        }
        Ok(out)
    }

    /// A recovery's hand-over: every row of the source is read under its lock. A source that
    /// had not given up its rows (`done` false) is the authority for them: target copies it no
    /// longer has are deleted, each moving row is proven at its target (copied when missing or
    /// different). One that had hands over the rows written to it since, as the newest
    /// version. Returns the keys to delete from the source.
    async fn hand_over_all(
        &self,
        tx: &mut sqlx::Transaction<'static, DB>,
        source: ShardId,
        done: bool,
    ) -> Result<Vec<Vec<Value>>> {
        let mut rows = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.locked_page(tx, source, &mut cursor).await?;
            if page.is_empty() {
                break;
            }
            rows.extend(page);
        }
        let by_target = self.moving(source, &rows)?;
        if !done {
            let present: std::collections::HashSet<Vec<u8>> = by_target
                .values()
                .flatten()
                .map(|r| values_key(&M::primary_key_values(&r.primary_key())))
                .collect();
            for target in self.targets() {
                self.delete_orphans_of(target, source, &present).await?;
            }
        }
        for (target, rows) in &by_target {
            if done {
                self.upsert(*target, rows).await?;
            }
            self.prove_at(*target, rows).await?;
        }
        Ok(by_target
            .values()
            .flatten()
            .map(|r| M::primary_key_values(&r.primary_key()))
            .collect())
    }

    /// The primary keys among `keys` that `shard` holds (keys only are read).
    async fn present_keys(
        &self,
        shard: ShardId,
        keys: &[Vec<Value>],
    ) -> Result<std::collections::HashSet<Vec<u8>>> {
        let rows = self
            .fetch_by_keys(shard, keys, stmt::fetch_pks::<M, DB>)
            .await?;
        rows.iter()
            .map(|row| {
                stmt::decode_pk::<M, DB>(row)
                    .map(|key| values_key(&key))
                    .map_err(self.shard_error(shard))
            })
            .collect()
    }

    /// Deletes the rows of `target` that `source` owns under the old placement and that are
    /// not in `present` (the source's moving rows now).
    async fn delete_orphans_of(
        &self,
        target: ShardId,
        source: ShardId,
        present: &std::collections::HashSet<Vec<u8>>,
    ) -> Result<()> {
        let mut cursor: Option<Vec<Value>> = None;
        loop {
            let rows = self.next_page(target, &mut cursor).await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut doomed = Vec::new();
            for row in &rows {
                let owner = shard_of::<M>(&self.plan.old, &crate::placement::row_key_values(row))?;
                let key = M::primary_key_values(&row.primary_key());
                if owner.name() == source.name()
                    && owner.name() != target.name()
                    && !present.contains(&values_key(&key))
                {
                    doomed.push(key);
                }
            }
            self.progress
                .repaired
                .fetch_add(doomed.len() as u64, Ordering::Relaxed);
            self.delete_keys(target, &doomed).await?;
        }
    }

    /// The switch: placement to `new`, the gate released, the job recorded done.
    async fn switch(&self, held: OwnedRwLockWriteGuard<()>, started: Instant) -> Result<()> {
        let epoch = self.epoch.load(Ordering::Acquire);
        // Every source gave up its rows: the gate stays held until the placement switched.
        let switched = match self.step().await {
            Ok(()) => self.cluster.cutover::<M>(epoch),
            Err(e) => Err(e),
        };
        if let Err(e) = switched {
            *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
            return Err(e);
        }
        let pause = started.elapsed();
        drop(held);
        *self
            .progress
            .pause
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(pause);
        tracing::info!(model = M::META.name, ?pause, "resharding: cut over");
        self.finish(Phase::Done).await
    }

    async fn finish(&self, phase: Phase) -> Result<()> {
        self.cluster.placements().observe(M::META.table, None);
        self.set_phase(phase).await?;
        self.drop_capture().await;
        self.drop_copies().await;
        Ok(())
    }

    /// Finishes a cutover that was interrupted (a crash, a cancelled or failed `cutover`):
    /// under the gate, every source gives up its rows, examining all of them (a source that
    /// had not given them up is the authority for them: what was written to it while no job
    /// dual-wrote is copied, target copies it no longer has are deleted), then the placement
    /// switches.
    async fn finish_cutover(&self) -> Result<()> {
        let held = self.hold_gate().await;
        let started = Instant::now();
        // Decided: the fence is down (again, if a process of this job put it up).
        if let Err(e) = self.raise_fence().await {
            *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
            return Err(e);
        }
        if self.status().phase != Phase::Cleanup
            && let Err(e) = self.set_phase(Phase::Cleanup).await
        {
            *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
            return Err(e);
        }
        let outcome = futures_util::stream::iter(self.sources())
            .map(|source| self.give_up(source, Selection::All))
            .buffer_unordered(self.parallelism())
            .try_collect::<Vec<()>>()
            .await;
        if let Err(e) = outcome {
            *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
            return Err(e);
        }
        self.switch(held, started).await
    }

    /// Rolls the move back: the model returns to its old placement and the copies are deleted
    /// from the targets. Before cutover the sources were never changed except by the
    /// application's own writes; after a cutover that failed (or was interrupted) half-way,
    /// the sources that gave up their rows get them back from the targets first, under the
    /// gate. An interrupted rollback is finished by calling it again, or by
    /// [`ReshardJob::resume`] in a new process.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] once the job is done or rolled back; a shard's error (call
    /// `rollback` again to finish).
    pub async fn rollback(&self) -> Result<()> {
        let phase = self
            .ensure_phase(
                "rollback",
                &[
                    Phase::Planned,
                    Phase::Copying,
                    Phase::Verifying,
                    Phase::Cutover,
                    Phase::Cleanup,
                    Phase::RollingBack,
                ],
            )
            .await?;
        self.verified.store(false, Ordering::Release);
        if phase != Phase::RollingBack {
            let held = self.hold_gate().await;
            let epoch = self.epoch.load(Ordering::Acquire);
            let migrating = matches!(
                self.cluster.placement::<M>().as_deref(),
                Some(crate::placement::PlacementState { epoch: now, placement: Placement::Migrating { .. } }) if *now == epoch
            );
            // Other processes stop at the fence until they follow the return to the old
            // placement; the copies on shards the old placement reads go first (once it is
            // back, nothing leaves them out of a read).
            if migrating && let Err(e) = self.raise_fence().await {
                *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
                return Err(e);
            }
            if matches!(phase, Phase::Cutover | Phase::Cleanup) {
                let outcome = futures_util::stream::iter(self.sources())
                    .map(|source| self.take_back(source))
                    .buffer_unordered(self.parallelism())
                    .try_collect::<Vec<()>>()
                    .await;
                if let Err(e) = outcome {
                    *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
                    return Err(e);
                }
            }
            if migrating && let Err(e) = self.delete_registered_copies().await {
                *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
                return Err(e);
            }
            if migrating {
                self.cluster.abort_migration::<M>(epoch)?;
            }
            self.cluster.placements().observe(M::META.table, None);
            drop(held);
            self.set_phase(Phase::RollingBack).await?;
        }
        // The sources are the authority again: none may hold a marker now.
        for source in self.sources() {
            if self.gave_up(source).await? {
                return Err(Error::Config(format!(
                    "resharding job `{}` of model `{}`: source `{source}` still records that \
                     it gave up its rows; nothing deleted — call `rollback` again",
                    self.id_now().await,
                    M::META.name
                )));
            }
        }
        try_join_all(
            self.targets()
                .into_iter()
                .map(|t| self.clean_target(t, CleanMode::Copies)),
        )
        .await?;
        self.finish(Phase::RolledBack).await
    }

    /// Deletes the copies the registry names on every target the old placement reads (a
    /// rollback, before the old placement returns).
    async fn delete_registered_copies(&self) -> Result<()> {
        let read = self.plan.old.shards::<M>().into_owned();
        let targets: Vec<ShardId> = self
            .targets()
            .into_iter()
            .filter(|t| read.iter().any(|r| r.name() == t.name()))
            .collect();
        self.step().await?;
        self.on_each(targets, vec![stmt::delete_registered::<M>()])
            .await
    }

    /// A source that gave up its moved rows takes them back from the targets (which were the
    /// authority for them), in one transaction that also removes its marker.
    async fn take_back(&self, source: ShardId) -> Result<()> {
        let id = self.id_now().await;
        let mut tx = self.locked(source).await?;
        if !self
            .in_tx(&mut tx, source, store::claim::<DB>(&id))
            .await?
            .is_empty()
        {
            // No marker was there: the source kept its rows. Undo the claim.
            self.step().await?;
            return tx.rollback().await.map_err(self.shard_error(source));
        }
        for target in self.targets() {
            if target.name() == source.name() {
                continue;
            }
            let mut cursor: Option<Vec<Value>> = None;
            loop {
                let rows = self.next_page(target, &mut cursor).await?;
                if rows.is_empty() {
                    break;
                }
                let mut mine: Vec<&M> = Vec::new();
                for row in &rows {
                    let owner =
                        shard_of::<M>(&self.plan.old, &crate::placement::row_key_values(row))?;
                    if owner.name() == source.name() {
                        mine.push(row);
                    }
                }
                for statement in stmt::upserts::<M, DB>(&mine) {
                    self.in_tx(&mut tx, source, statement).await?;
                }
            }
        }
        self.in_tx(&mut tx, source, store::unmark::<DB>(&id))
            .await?;
        self.commit(tx, source).await
    }
}

/// Which rows of a source a cutover examines.
#[derive(Debug)]
enum Selection {
    /// The moving keys the verification pass and the journal found.
    Keys(Vec<Vec<Value>>),
    /// Every row (a recovery: nothing is known about the source).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CleanMode {
    Orphans,
    Copies,
}
