//! [`ReshardJob`]: the online move — dual writes, locked backfill, verification, cutover,
//! cleanup, resume and rollback.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt};
use grant_core::{Error, FromShardRow, Model, Result, ShardId};
use sea_query::Value;

use super::backend::ReshardBackend;
use super::plan::{ReshardPlan, key_columns, shard_of};
use super::store::{self, JobRow};
use super::{Journal, sql};
use crate::cluster::{Cluster, ReadPolicy};
use crate::merge::values_key;
use crate::placement::Placement;

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
    /// Rolled back before cutover: the model is on its old placement, copies removed.
    RolledBack,
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
    /// Sleep between batches of one source. Default none.
    pub throttle: Option<Duration>,
    /// Cap on rows moved per second over the whole job. Default none.
    pub max_rows_per_sec: Option<u64>,
    /// Source shards copied at once. Default 4. When a shard is both a source and a target
    /// (e.g. a consistent-hash ring gaining a shard) the job copies one source at a time, so
    /// two batches never wait on each other's locks.
    pub parallelism: usize,
}

impl Default for ReshardOptions {
    fn default() -> Self {
        ReshardOptions {
            batch_size: 1000,
            throttle: None,
            max_rows_per_sec: None,
            parallelism: 4,
        }
    }
}

impl ReshardOptions {
    /// Sets [`ReshardOptions::batch_size`].
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
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
}

#[derive(Debug)]
struct Progress {
    phase: Mutex<Phase>,
    copied: AtomicU64,
    copied_this_run: AtomicU64,
    verified: AtomicU64,
    repaired: AtomicU64,
    dirty: AtomicU64,
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
/// Every method may be cancelled (its future dropped, or the process killed): a batch in
/// flight rolls back its source transaction, the persisted cursors point after the last
/// verified batch, and [`ReshardJob::resume`] continues from there (on the same cluster, or a
/// new one after a restart).
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
        }
    }
}

static JOB_SEQ: AtomicU64 = AtomicU64::new(0);

/// The shard-key values inside primary-key `values`.
fn key_of_pk<M: Model>(pk: &[Value]) -> Vec<Value> {
    key_columns::<M>()
        .iter()
        .filter_map(|column| {
            M::META
                .primary_key
                .iter()
                .position(|p| p == column)
                .and_then(|at| pk.get(at).cloned())
        })
        .collect()
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
                copy_started: Mutex::new(None),
                pause: Mutex::new(None),
            },
            moved: Mutex::new(BTreeMap::new()),
            _model: PhantomData,
        }
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
        };
        store::create(cluster, &row).await?;
        let job = Self::new_job(cluster, plan, options, row, Phase::Planned);
        job.begin().await?;
        Ok(job)
    }

    /// Continues job `id` after a crash or a cancelled run — on this cluster or on a new one
    /// (a new process): `new` must be the placement the job was started with (its `Debug`
    /// fingerprint is checked). Re-installs dual writes and continues from the persisted
    /// cursors; the verification pass before cutover then repairs whatever the application
    /// wrote while no job ran.
    ///
    /// A job that crashed during cutover is finished here: the model is switched to `new` and
    /// the moved rows left on their sources are moved (upserted into their targets when
    /// missing there) and deleted. Resume such a job before the application writes again.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unknown job, another model's job, a finished job or a
    /// different placement; as [`ReshardJob::start`].
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
                "resharding job `{id}` of model `{}` already finished ({phase})",
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
        let plan = ReshardPlan::between::<M, DB>(cluster, old, new).await?;
        let job = Self::new_job(cluster, plan, options, row, phase);
        if matches!(phase, Phase::Cutover | Phase::Cleanup) {
            job.finish_after_crash(epoch).await?;
            return Ok(job);
        }
        match epoch {
            Some(epoch) => {
                job.epoch.store(epoch, Ordering::Release);
                job.install_journal();
            }
            None => job.begin().await?,
        }
        Ok(job)
    }

    fn install_journal(&self) {
        self.cluster
            .placements()
            .reshard
            .set_journal(M::META.table, Some(Arc::clone(&self.journal)));
    }

    fn gate(&self) -> Arc<tokio::sync::RwLock<()>> {
        self.cluster.placements().reshard.gate(M::META.table)
    }

    /// Journal first, then dual writes, and the table on the new shards — under the gate, so
    /// in-flight operations finish first and none writes before the table exists.
    async fn begin(&self) -> Result<()> {
        self.install_journal();
        let epoch = {
            let gate = self.gate();
            let _drained = gate.write().await;
            let epoch = self.cluster.begin_migration::<M>(self.plan.new.clone())?;
            if let Err(e) = crate::crud::create_table::<M, DB>(&self.cluster).await {
                self.cluster.abort_migration::<M>(epoch)?;
                return Err(e);
            }
            epoch
        };
        self.epoch.store(epoch, Ordering::Release);
        self.set_phase(Phase::Copying).await
    }

    async fn set_phase(&self, phase: Phase) -> Result<()> {
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

    /// Copy, verify, cut over: the whole move. Returns the final status.
    ///
    /// # Errors
    ///
    /// A shard's error (the job can be resumed); [`Error::Config`] when the model's placement
    /// was changed by someone else meanwhile.
    pub async fn run(&self) -> Result<ReshardStatus> {
        self.copy().await?;
        self.verify().await?;
        self.cutover().await?;
        Ok(self.status())
    }

    fn sources(&self) -> Vec<ShardId> {
        self.plan.sources.iter().map(|(s, _)| *s).collect()
    }

    fn parallelism(&self) -> usize {
        let targets = self.plan.targets();
        let overlap = self
            .sources()
            .iter()
            .any(|s| targets.iter().any(|t| t.name() == s.name()));
        if overlap {
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
    /// A shard's error naming it; the job can be resumed.
    pub async fn copy(&self) -> Result<()> {
        self.set_phase(Phase::Copying).await?;
        *self
            .progress
            .copy_started
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        futures_util::stream::iter(self.sources())
            .map(|source| self.copy_source(source))
            .buffer_unordered(self.parallelism())
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn copy_source(&self, source: ShardId) -> Result<()> {
        let mut cursor = match self.row.lock().await.cursors.get(&source.name()) {
            Some(text) => Some(sql::decode_key::<M>(text)?),
            None => None,
        };
        while let Some((last, moved)) = self.batch(source, cursor.as_deref(), Mode::Copy).await? {
            self.progress.copied.fetch_add(moved, Ordering::Relaxed);
            self.progress
                .copied_this_run
                .fetch_add(moved, Ordering::Relaxed);
            {
                let mut row = self.row.lock().await;
                row.cursors
                    .insert(source.name().to_owned(), sql::encode_key(&last)?);
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

    /// One batch of `source` after `after`, its rows locked: returns the batch's last key and
    /// how many rows moved, or `None` past the end.
    async fn batch(
        &self,
        source: ShardId,
        after: Option<&[Value]>,
        mode: Mode,
    ) -> Result<Option<(Vec<Value>, u64)>> {
        let pool = self.cluster.shard_pool(M::META.name, source)?;
        let mut tx = DB::begin_locked(pool)
            .await
            .map_err(self.shard_error(source))?;
        let (sql, values) = sql::scan::<M, DB>(after, self.options.batch_size, DB::LOCK_CLAUSE);
        let rows = DB::fetch_in(&mut tx, sql, values)
            .await
            .map_err(self.shard_error(source))?;
        let rows = self.decode(source, &rows)?;
        let Some(last) = rows.last() else {
            tx.commit().await.map_err(self.shard_error(source))?;
            return Ok(None);
        };
        let last = M::primary_key_values(&last.primary_key());
        let mut by_target: BTreeMap<ShardId, Vec<&M>> = BTreeMap::new();
        for row in &rows {
            let target = shard_of::<M>(&self.plan.new, &crate::placement::row_key_values(row))?;
            if target.name() != source.name() {
                by_target.entry(target).or_default().push(row);
            }
        }
        try_join_all(
            by_target
                .iter()
                .map(|(target, rows)| self.sync_target(*target, rows, mode)),
        )
        .await?;
        tx.commit().await.map_err(self.shard_error(source))?;
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

    /// Rows of `shard` with these keys, by key.
    async fn fetch_keys(&self, shard: ShardId, keys: &[Vec<Value>]) -> Result<HashMap<Vec<u8>, M>> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(sql::keys_per_statement::<M, DB>()) {
            let rows = self
                .cluster
                .fetch(
                    M::META.name,
                    shard,
                    Some(ReadPolicy::Primary),
                    sql::fetch_keys::<M, DB>(chunk),
                )
                .await?;
            for row in self.decode(shard, &rows)? {
                let key = M::primary_key_values(&row.primary_key());
                out.insert(values_key(&key), row);
            }
        }
        Ok(out)
    }

    /// Makes `target` hold exactly `rows` (for their keys): upserts them all (copy) or only
    /// those that differ (verify), then compares both sides row by row, value by value.
    async fn sync_target(&self, target: ShardId, rows: &[&M], mode: Mode) -> Result<()> {
        if mode == Mode::Copy {
            self.cluster
                .execute_atomic(M::META.name, target, sql::upserts::<M, DB>(rows))
                .await?;
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
            return Ok(());
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
        self.cluster
            .execute_atomic(M::META.name, target, sql::upserts::<M, DB>(&differ))
            .await?;
        Ok(())
    }

    /// The full verification pass: every moving row compared on source and target under the
    /// source lock (repaired on mismatch), then target copies whose source row is gone
    /// deleted. Starts a clean dirty-key journal (after draining in-flight operations), so the
    /// cutover re-verifies only what was written from here on.
    ///
    /// # Errors
    ///
    /// A shard's error naming it.
    pub async fn verify(&self) -> Result<()> {
        self.set_phase(Phase::Verifying).await?;
        {
            let gate = self.gate();
            let _drained = gate.write().await;
            self.journal.take();
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
            .buffer_unordered(self.parallelism())
            .try_collect::<Vec<()>>()
            .await?;
        try_join_all(
            self.plan
                .targets()
                .into_iter()
                .map(|t| self.clean_target(t, CleanMode::Orphans)),
        )
        .await?;
        Ok(())
    }

    /// Scans `target` for rows another shard owns under the old placement: deletes those whose
    /// source row is gone (`Orphans`) or all of them (`Copies`, rollback).
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
        let rows = self
            .cluster
            .fetch(
                M::META.name,
                shard,
                Some(ReadPolicy::Primary),
                sql::scan::<M, DB>(cursor.as_deref(), self.options.batch_size, ""),
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
        let statements = keys
            .chunks(sql::keys_per_statement::<M, DB>())
            .map(sql::delete_keys::<M, DB>)
            .collect();
        self.cluster
            .execute_atomic(M::META.name, shard, statements)
            .await?;
        Ok(())
    }

    /// Switches the model to the new placement: under the model's gate (in-flight operations
    /// drained, new ones wait) re-verifies the keys written since the verification pass,
    /// deletes the moved rows from their sources and switches the placement atomically.
    /// [`ReshardStatus::pause`] tells how long operations waited.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the verification pass has not run in this job; a shard's error
    /// (nothing switched: the job can be resumed, or rolled back if no source row was deleted
    /// yet).
    pub async fn cutover(&self) -> Result<()> {
        let phase = self.status().phase;
        if phase != Phase::Verifying {
            return Err(Error::Config(format!(
                "resharding job `{}` of model `{}`: cutover needs the verification pass first \
                 (phase now: {phase}); call `verify()` or `run()`",
                self.id(),
                M::META.name
            )));
        }
        self.set_phase(Phase::Cutover).await?;
        let gate = self.gate();
        let held = gate.write().await;
        let started = Instant::now();
        let dirty = self.journal.take();
        self.progress
            .dirty
            .store(dirty.len() as u64, Ordering::Relaxed);
        let mut moved = std::mem::take(&mut *self.moved.lock().unwrap_or_else(|e| e.into_inner()));
        // Dirty keys: make each target equal to its source row (or absent with it).
        let mut by_source: BTreeMap<ShardId, Vec<(Vec<Value>, ShardId)>> = BTreeMap::new();
        for key in dirty {
            let shard_key = key_of_pk::<M>(&key);
            let from = shard_of::<M>(&self.plan.old, &shard_key)?;
            let to = shard_of::<M>(&self.plan.new, &shard_key)?;
            if from.name() != to.name() {
                by_source.entry(from).or_default().push((key, to));
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
                self.cluster
                    .execute_atomic(M::META.name, to, sql::upserts::<M, DB>(&rows))
                    .await?;
            }
        }
        // Moved rows leave their sources, shards in parallel.
        try_join_all(
            moved
                .iter()
                .map(|(source, keys)| self.delete_keys(*source, keys)),
        )
        .await?;
        let epoch = self.epoch.load(Ordering::Acquire);
        self.cluster.cutover::<M>(epoch)?;
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
        self.cluster
            .placements()
            .reshard
            .set_journal(M::META.table, None);
        self.set_phase(phase).await
    }

    /// A crash during cutover: switch to the new placement, then move what is left on the
    /// sources (copy where the target lacks the row, delete from the source).
    async fn finish_after_crash(&self, migrating_epoch: Option<u64>) -> Result<()> {
        {
            let gate = self.gate();
            let _held = gate.write().await;
            match migrating_epoch {
                Some(epoch) => {
                    self.cluster.cutover::<M>(epoch)?;
                }
                None => {
                    self.cluster.set_placement::<M>(self.plan.new.clone())?;
                }
            }
        }
        self.set_phase(Phase::Cleanup).await?;
        for source in self.sources() {
            let mut cursor: Option<Vec<Value>> = None;
            loop {
                let rows = self.next_page(source, &mut cursor).await?;
                if rows.is_empty() {
                    break;
                }
                let mut by_target: BTreeMap<ShardId, Vec<&M>> = BTreeMap::new();
                for row in &rows {
                    let t = shard_of::<M>(&self.plan.new, &crate::placement::row_key_values(row))?;
                    if t.name() != source.name() {
                        by_target.entry(t).or_default().push(row);
                    }
                }
                for (target, rows) in by_target {
                    let keys: Vec<Vec<Value>> = rows
                        .iter()
                        .map(|r| M::primary_key_values(&r.primary_key()))
                        .collect();
                    let there = self.fetch_keys(target, &keys).await?;
                    let missing: Vec<&M> = rows
                        .iter()
                        .zip(&keys)
                        .filter(|(_, k)| !there.contains_key(&values_key(k)))
                        .map(|(r, _)| *r)
                        .collect();
                    if !missing.is_empty() {
                        self.cluster
                            .execute_atomic(M::META.name, target, sql::upserts::<M, DB>(&missing))
                            .await?;
                    }
                    self.delete_keys(source, &keys).await?;
                }
            }
        }
        self.finish(Phase::Done).await
    }

    /// Rolls back before cutover: the model returns to its old placement (in-flight operations
    /// drained first) and the copies are deleted from the targets. The old topology is intact:
    /// the sources were never changed except by the application's own writes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] after cutover (phase cutover, cleanup or done); a shard's error
    /// (the model is already back on the old placement; call `rollback` again to finish
    /// deleting the copies).
    pub async fn rollback(&self) -> Result<()> {
        let phase = self.status().phase;
        if matches!(phase, Phase::Cutover | Phase::Cleanup | Phase::Done) {
            return Err(Error::Config(format!(
                "resharding job `{}` of model `{}` is past cutover ({phase}); reshard back \
                 with a new job instead",
                self.id(),
                M::META.name
            )));
        }
        {
            let gate = self.gate();
            let _held = gate.write().await;
            let epoch = self.epoch.load(Ordering::Acquire);
            let migrating = matches!(
                self.cluster.placement::<M>().as_deref(),
                Some(crate::placement::PlacementState { epoch: now, placement: Placement::Migrating { .. } }) if *now == epoch
            );
            if migrating {
                self.cluster.abort_migration::<M>(epoch)?;
            }
        }
        self.cluster
            .placements()
            .reshard
            .set_journal(M::META.table, None);
        try_join_all(
            self.plan
                .targets()
                .into_iter()
                .map(|t| self.clean_target(t, CleanMode::Copies)),
        )
        .await?;
        self.set_phase(Phase::RolledBack).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CleanMode {
    Orphans,
    Copies,
}
