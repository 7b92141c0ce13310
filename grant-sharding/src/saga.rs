//! Sagas: an operation across shards as ordered steps, each with a forward action and a
//! compensating action, its progress persisted so a crash resumes or compensates.
//!
//! A saga is the multi-shard answer where two-phase commit is unavailable (SQLite) or unwanted
//! (long-running work, external calls). It is not atomic: other readers may see the steps
//! applied one by one. What it does guarantee:
//!
//! - The steps run in order. When a forward action fails, the compensations run in reverse
//!   order — the failed step's own compensation first (its outcome is unknown: it may have
//!   written before failing), then those of the completed steps.
//! - Every state change is written to the saga log (the [`SAGA_LOG`] table on one shard, by
//!   default the cluster's first) *before* the next action runs, so a process that stops
//!   mid-saga leaves a record [`Cluster::resume_sagas`] finishes: an interrupted saga is
//!   compensated, or — when the definition says [`Saga::resume_forward`] — continued forward.
//! - A failing compensation is retried with exponential backoff a bounded number of times
//!   ([`Saga::compensation_retries`], [`Saga::retry_backoff`]); if it still fails the saga ends
//!   [`SagaStatus::Failed`] with the error in the report, in the log and in a `tracing` error
//!   event — never silently dropped — and the next [`Cluster::resume_sagas`] tries again.
//!
//! # Writing actions
//!
//! An action is an `async` closure over `&Cluster<DB>` and the [`StepContext`] (saga id, step
//! id, the saga's input), written `|cluster, step| Box::pin(async move { ... })`. Because a
//! crash can interrupt an action after it wrote but before the log recorded it, actions must
//! be idempotent, and compensations must also be harmless when the forward action never ran.
//! The [`StepContext::step_id`] is stable across retries and resumes: record it with the
//! action's writes, in the same shard transaction (e.g. as the primary key of an operations
//! table), and skip the write when it is already there.
//!
//! # Examples
//!
//! `examples/saga.rs` is a complete, runnable program (`cargo run --example saga`): an order
//! on the customer's shard and a stock reservation on the product's shard, the second order
//! compensated when stock runs out. `tests/common/saga_bank.rs` is a transfer between accounts
//! on three shards, with idempotent actions keyed by the step id. In outline:
//!
//! ```ignore
//! use grant::prelude::*;
//!
//! let order = Saga::<Sqlite>::new("place order")
//!     .step(
//!         "create order",
//!         |cluster, step| Box::pin(async move { create_order(cluster, step).await }),
//!         |cluster, step| Box::pin(async move { cancel_order(cluster, step).await }),
//!     )
//!     .step(
//!         "reserve stock",
//!         |cluster, step| Box::pin(async move { reserve(cluster, step).await }),
//!         |cluster, step| Box::pin(async move { release(cluster, step).await }),
//!     );
//! let report = order.run(&cluster, "7,42,3").await?; // the input, given to every action
//! match report.status {
//!     SagaStatus::Completed => {}
//!     SagaStatus::Compensated => println!("not placed: {:?}", report.error),
//!     _ => eprintln!("needs attention: {:?}", report.compensation_failure),
//! }
//!
//! // At startup: finish what a previous process left unfinished.
//! let resumed = cluster.resume_sagas(&SagaRegistry::new().register(order)).await?;
//! ```
//!
//! # Cancel safety
//!
//! The futures of [`Saga::run`] and [`Cluster::resume_sagas`] may be dropped at any await
//! point (a crash is the extreme case): the log then says which step was running, and
//! [`Cluster::resume_sagas`] finishes the saga. A dropped run is not rolled back by itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use grant_core::{Backend, Error, Result, ShardId};
use sea_query::{Expr, ExprTrait, Query, Values};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cluster::Cluster;

/// The saga log table, created on the log shard by [`Saga::ensure_log`], or by the first run
/// or resume that finds it missing.
///
/// One row per saga (`step = -1`, `name` = the saga's name, `input` = its input) and one per
/// step (`step` = its index, `name` = the step's name), each with `status`, `attempts`, the
/// last `error` and `updated_at` (Unix milliseconds).
pub const SAGA_LOG: &str = "grant_saga_log";

/// The `step` value of a saga's own row in the log.
const SAGA_ROW: i64 = -1;

/// Errors about the log name it as the model.
const MODEL: &str = SAGA_LOG;

/// Default number of retries of a failing compensation after its first attempt.
pub const DEFAULT_COMPENSATION_RETRIES: u32 = 4;

/// Default delay before the first retry of a failing compensation; it doubles per retry.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The longest delay between two compensation attempts.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(10);

/// Where one step stands, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// The forward action started; whether it applied is unknown until it returns.
    Running,
    /// The forward action succeeded.
    Done,
    /// The compensation started (or is being retried).
    Compensating,
    /// The compensation succeeded: the step is undone.
    Compensated,
    /// The compensation failed every attempt; the error is in the log.
    Failed,
}

impl StepStatus {
    /// The word stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => StepStatus::Pending,
            "running" => StepStatus::Running,
            "done" => StepStatus::Done,
            "compensating" => StepStatus::Compensating,
            "compensated" => StepStatus::Compensated,
            "failed" => StepStatus::Failed,
            _ => return None,
        })
    }

    /// Whether a compensation still has to run for a step in this state (it may have applied).
    fn needs_compensation(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Compensated)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a whole saga stands, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStatus {
    /// Forward actions are running (or were, when the process stopped).
    Running,
    /// Compensations are running (or were, when the process stopped).
    Compensating,
    /// Every forward action succeeded.
    Completed,
    /// A forward action failed or was interrupted, and every step that may have applied was
    /// compensated.
    Compensated,
    /// A compensation failed every attempt: the data is partly applied until a later
    /// [`Cluster::resume_sagas`] succeeds. Needs attention; the log names the step and error.
    Failed,
}

impl SagaStatus {
    /// The word stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => SagaStatus::Running,
            "compensating" => SagaStatus::Compensating,
            "completed" => SagaStatus::Completed,
            "compensated" => SagaStatus::Compensated,
            "failed" => SagaStatus::Failed,
            _ => return None,
        })
    }

    /// Whether nothing is left to do ([`Completed`](SagaStatus::Completed) or
    /// [`Compensated`](SagaStatus::Compensated)).
    pub fn is_final(self) -> bool {
        matches!(self, SagaStatus::Completed | SagaStatus::Compensated)
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action is told about the step it runs for.
#[derive(Debug, Clone)]
pub struct StepContext {
    saga_id: String,
    saga_name: String,
    index: usize,
    name: String,
    input: String,
    attempt: u32,
}

impl StepContext {
    /// The saga's id (unique per run; see [`Saga::run_with_id`]).
    pub fn saga_id(&self) -> &str {
        &self.saga_id
    }

    /// The saga definition's name.
    pub fn saga_name(&self) -> &str {
        &self.saga_name
    }

    /// The step's position, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A stable id of this step of this saga, `{saga_id}/{index}`: the same for the forward
    /// action and the compensation, across retries, crashes and resumes. Record it with the
    /// action's writes to make them idempotent.
    pub fn step_id(&self) -> String {
        format!("{}/{}", self.saga_id, self.index)
    }

    /// The input the saga was started with (persisted in the log).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Which attempt this is, from 1 (compensations are retried; forward actions run once per
    /// run or resume).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// The error an action returns: any error — a [`grant_core::Error`] (`?` converts it) or the
/// application's own (e.g. "insufficient funds"); downcast it to tell them apart.
pub type StepError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an action returns.
pub type StepResult = std::result::Result<(), StepError>;

/// A forward or compensating action.
type Action<DB> = Arc<
    dyn for<'a> Fn(&'a Cluster<DB>, &'a StepContext) -> BoxFuture<'a, StepResult> + Send + Sync,
>;

struct Step<DB: Backend> {
    name: String,
    forward: Action<DB>,
    compensate: Action<DB>,
}

impl<DB: Backend> Clone for Step<DB> {
    fn clone(&self) -> Self {
        Step {
            name: self.name.clone(),
            forward: Arc::clone(&self.forward),
            compensate: Arc::clone(&self.compensate),
        }
    }
}

/// A saga definition: a name and ordered steps. Build it once, run it many times.
///
/// See the [module documentation](self) for the guarantees and how to write actions.
pub struct Saga<DB: Backend> {
    name: String,
    steps: Vec<Step<DB>>,
    log_shard: Option<String>,
    resume_forward: bool,
    retries: u32,
    backoff: Duration,
}

impl<DB: Backend> Clone for Saga<DB> {
    fn clone(&self) -> Self {
        Saga {
            name: self.name.clone(),
            steps: self.steps.clone(),
            log_shard: self.log_shard.clone(),
            resume_forward: self.resume_forward,
            retries: self.retries,
            backoff: self.backoff,
        }
    }
}

impl<DB: Backend> fmt::Debug for Saga<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.name)
            .field(
                "steps",
                &self
                    .steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("log_shard", &self.log_shard)
            .field("resume_forward", &self.resume_forward)
            .field("compensation_retries", &self.retries)
            .field("retry_backoff", &self.backoff)
            .finish()
    }
}

/// How one run (or resume) of a saga ended.
#[derive(Debug)]
pub struct SagaReport {
    /// The saga's id.
    pub id: String,
    /// The saga definition's name.
    pub name: String,
    /// The final status: [`SagaStatus::Completed`], [`SagaStatus::Compensated`] or
    /// [`SagaStatus::Failed`].
    pub status: SagaStatus,
    /// The step whose forward action failed or was interrupted (index), when the saga was
    /// compensated.
    pub failed_step: Option<usize>,
    /// That step's error, when this call saw it (a resumed saga's original error is in the log).
    pub error: Option<StepError>,
    /// The step whose compensation failed every attempt, and its last error
    /// ([`SagaStatus::Failed`]).
    pub compensation_failure: Option<(usize, StepError)>,
}

impl SagaReport {
    /// Whether every forward action succeeded.
    pub fn is_completed(&self) -> bool {
        self.status == SagaStatus::Completed
    }
}

/// One step's row in the saga log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The step's position, from 0.
    pub index: usize,
    /// The step's name.
    pub name: String,
    /// Where it stands.
    pub status: StepStatus,
    /// Compensation attempts made so far.
    pub attempts: u32,
    /// The last error of its forward action or compensation.
    pub error: Option<String>,
    /// When the row last changed, in Unix milliseconds.
    pub updated_at: i64,
}

/// A saga as its log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaRecord {
    /// The saga's id.
    pub id: String,
    /// The saga definition's name.
    pub name: String,
    /// Where it stands.
    pub status: SagaStatus,
    /// The input it was started with.
    pub input: String,
    /// The error that made it compensate, or its compensation fail.
    pub error: Option<String>,
    /// When the saga's row last changed, in Unix milliseconds.
    pub updated_at: i64,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
}

impl<DB: Backend> Saga<DB> {
    /// A saga definition called `name` (the name [`SagaRegistry`] finds it by), without steps.
    pub fn new(name: impl Into<String>) -> Self {
        Saga {
            name: name.into(),
            steps: Vec::new(),
            log_shard: None,
            resume_forward: false,
            retries: DEFAULT_COMPENSATION_RETRIES,
            backoff: DEFAULT_RETRY_BACKOFF,
        }
    }

    /// Adds a step after the others: its forward action and the compensation that undoes it.
    ///
    /// Both are written `|cluster, step| Box::pin(async move { ... })` and must be idempotent;
    /// the compensation must also succeed (doing nothing) when the forward action never
    /// applied. See the [module documentation](self).
    pub fn step<F, C>(mut self, name: impl Into<String>, forward: F, compensate: C) -> Self
    where
        F: for<'a> Fn(&'a Cluster<DB>, &'a StepContext) -> BoxFuture<'a, StepResult>
            + Send
            + Sync
            + 'static,
        C: for<'a> Fn(&'a Cluster<DB>, &'a StepContext) -> BoxFuture<'a, StepResult>
            + Send
            + Sync
            + 'static,
    {
        self.steps.push(Step {
            name: name.into(),
            forward: Arc::new(forward),
            compensate: Arc::new(compensate),
        });
        self
    }

    /// Keeps this saga's log on the shard called `shard` (default: the cluster's first shard).
    pub fn log_shard(mut self, shard: impl Into<String>) -> Self {
        self.log_shard = Some(shard.into());
        self
    }

    /// What [`Cluster::resume_sagas`] does with a run that stopped during its forward actions:
    /// `false` (the default) compensates it; `true` continues it forward, rerunning the
    /// interrupted step (its action must be idempotent) and compensating only if a step then
    /// fails. Sagas already compensating are always compensated.
    pub fn resume_forward(mut self, forward: bool) -> Self {
        self.resume_forward = forward;
        self
    }

    /// How many times a failing compensation is retried after its first attempt before the
    /// saga ends [`SagaStatus::Failed`] (default [`DEFAULT_COMPENSATION_RETRIES`]).
    pub fn compensation_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The delay before the first retry of a failing compensation; it doubles per retry, up to
    /// [`MAX_RETRY_BACKOFF`] (default [`DEFAULT_RETRY_BACKOFF`]).
    pub fn retry_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The definition's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step names, in order.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }

    /// Creates the [`SAGA_LOG`] table on the log shard if it is missing.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] when the cluster lacks the log shard; the database's error when
    /// the table cannot be created.
    pub async fn ensure_log(&self, cluster: &Cluster<DB>) -> Result<()> {
        let shard = log_shard_id(cluster, self.log_shard.as_deref())?;
        ensure_log_on(cluster, shard).await
    }

    /// Runs the saga with a fresh id: every step forward, or — when one fails — the
    /// compensations in reverse. The input is stored in the log and given to every action.
    ///
    /// # Errors
    ///
    /// A failing step is not an error: the report says [`SagaStatus::Compensated`] (or
    /// [`SagaStatus::Failed`] when a compensation gave up) and carries the step's error. `Err`
    /// means the saga log could not be written or read — the saga then stands where the log
    /// last recorded it, and [`Cluster::resume_sagas`] finishes it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the saga unfinished in the log, for
    /// [`Cluster::resume_sagas`].
    pub async fn run(&self, cluster: &Cluster<DB>, input: impl Into<String>) -> Result<SagaReport> {
        self.start(cluster, new_id(&self.name), input.into(), false)
            .await
    }

    /// [`run`](Self::run) with an id of the caller's choosing (e.g. a request id), so a retried
    /// request cannot start the same saga twice.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a saga with this id is already in the log (nothing runs); else
    /// as [`run`](Self::run).
    pub async fn run_with_id(
        &self,
        cluster: &Cluster<DB>,
        id: impl Into<String>,
        input: impl Into<String>,
    ) -> Result<SagaReport> {
        self.start(cluster, id.into(), input.into(), true).await
    }

    async fn start(
        &self,
        cluster: &Cluster<DB>,
        id: String,
        input: String,
        check_duplicate: bool,
    ) -> Result<SagaReport> {
        let log = Log::new(
            cluster,
            log_shard_id(cluster, self.log_shard.as_deref())?,
            &id,
        );
        // The log table is created when the first statement on it fails (then that statement
        // is retried once), which spares every run the DDL round trips.
        if check_duplicate {
            let existing = match log.load().await {
                Ok(existing) => existing,
                Err(_) => {
                    ensure_log_on(cluster, log.shard).await?;
                    log.load().await?
                }
            };
            if existing.is_some() {
                return Err(Error::Config(format!(
                    "saga `{}`: id `{id}` is already in the saga log on shard `{}`; pick a new \
                     id, or read its outcome with `Saga::record`",
                    self.name, log.shard
                )));
            }
            log.start(&self.name, &input, &self.steps).await?;
        } else if log.start(&self.name, &input, &self.steps).await.is_err() {
            ensure_log_on(cluster, log.shard).await?;
            log.start(&self.name, &input, &self.steps).await?;
        }
        let statuses = vec![StepStatus::Pending; self.steps.len()];
        self.forward(&log, &input, statuses, 0).await
    }

    /// The log's record of saga `id`, or `None` when the log has no such saga.
    ///
    /// # Errors
    ///
    /// The database's error when the log cannot be read.
    pub async fn record(&self, cluster: &Cluster<DB>, id: &str) -> Result<Option<SagaRecord>> {
        let log = Log::new(
            cluster,
            log_shard_id(cluster, self.log_shard.as_deref())?,
            id,
        );
        ensure_log_on(cluster, log.shard).await?;
        log.load().await
    }

    /// Finishes saga `id` from where its log stands (see [`Cluster::resume_sagas`], which calls
    /// this for every unfinished saga): a finished saga is left alone and reported as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the log has no saga `id`, or when it was started by a
    /// different definition (another name, or other steps); else as [`run`](Self::run).
    pub async fn resume(&self, cluster: &Cluster<DB>, id: &str) -> Result<SagaReport> {
        let log = Log::new(
            cluster,
            log_shard_id(cluster, self.log_shard.as_deref())?,
            id,
        );
        ensure_log_on(cluster, log.shard).await?;
        let record = log.load().await?.ok_or_else(|| {
            Error::Config(format!(
                "saga `{}`: no saga `{id}` in the saga log on shard `{}`",
                self.name, log.shard
            ))
        })?;
        self.resume_record(&log, record).await
    }

    async fn resume_record(&self, log: &Log<'_, DB>, record: SagaRecord) -> Result<SagaReport> {
        let same_steps = record.steps.len() == self.steps.len()
            && record
                .steps
                .iter()
                .zip(&self.steps)
                .all(|(r, s)| r.name == s.name);
        if record.name != self.name || !same_steps {
            return Err(Error::Config(format!(
                "saga `{}` on shard `{}` was started as `{}` with steps [{}], but this \
                 definition is `{}` with steps [{}]; resume it with the definition that \
                 started it (keep old definitions registered until their sagas finish)",
                record.id,
                log.shard,
                record.name,
                record
                    .steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.name,
                self.step_names().collect::<Vec<_>>().join(", ")
            )));
        }
        let statuses: Vec<StepStatus> = record.steps.iter().map(|s| s.status).collect();
        let interrupted = statuses.iter().position(|s| *s != StepStatus::Done);
        match record.status {
            SagaStatus::Completed | SagaStatus::Compensated => Ok(SagaReport {
                id: record.id,
                name: record.name,
                status: record.status,
                failed_step: None,
                error: None,
                compensation_failure: None,
            }),
            SagaStatus::Running => match interrupted {
                // Every step applied; the process stopped before recording the end.
                None => {
                    log.set_saga(SagaStatus::Completed, None).await?;
                    Ok(self.report(log, SagaStatus::Completed))
                }
                Some(from) if self.resume_forward => {
                    self.forward(log, &record.input, statuses, from).await
                }
                Some(from) => {
                    log.set_saga(
                        SagaStatus::Compensating,
                        Some("interrupted (the process stopped); compensating on resume"),
                    )
                    .await?;
                    let mut report = self.compensate(log, &record.input, statuses).await?;
                    report.failed_step = Some(from);
                    Ok(report)
                }
            },
            SagaStatus::Compensating | SagaStatus::Failed => {
                log.set_saga(SagaStatus::Compensating, record.error.as_deref())
                    .await?;
                let mut report = self.compensate(log, &record.input, statuses).await?;
                report.failed_step = interrupted;
                Ok(report)
            }
        }
    }

    fn report(&self, log: &Log<'_, DB>, status: SagaStatus) -> SagaReport {
        SagaReport {
            id: log.id.to_owned(),
            name: self.name.clone(),
            status,
            failed_step: None,
            error: None,
            compensation_failure: None,
        }
    }

    fn context(&self, log: &Log<'_, DB>, input: &str, index: usize, attempt: u32) -> StepContext {
        StepContext {
            saga_id: log.id.to_owned(),
            saga_name: self.name.clone(),
            index,
            name: self.steps[index].name.clone(),
            input: input.to_owned(),
            attempt,
        }
    }

    /// Runs the forward actions from step `from` on; compensates when one fails.
    async fn forward(
        &self,
        log: &Log<'_, DB>,
        input: &str,
        mut statuses: Vec<StepStatus>,
        from: usize,
    ) -> Result<SagaReport> {
        for index in from..self.steps.len() {
            // Recorded before the action runs: a crash from here on leaves "running", and a
            // resume treats the step as possibly applied.
            log.set_step(index, StepStatus::Running, None, None).await?;
            statuses[index] = StepStatus::Running;
            let step = self.context(log, input, index, 1);
            match (self.steps[index].forward)(log.cluster, &step).await {
                Ok(()) => {
                    log.set_step(index, StepStatus::Done, None, None).await?;
                    statuses[index] = StepStatus::Done;
                }
                Err(error) => {
                    let message = format!("step `{}` failed: {error}", self.steps[index].name);
                    tracing::warn!(
                        saga = %self.name,
                        saga_id = %log.id,
                        step = %self.steps[index].name,
                        %error,
                        "saga step failed; compensating"
                    );
                    log.set_step(index, StepStatus::Running, None, Some(&error.to_string()))
                        .await?;
                    log.set_saga(SagaStatus::Compensating, Some(&message))
                        .await?;
                    let mut report = self.compensate(log, input, statuses).await?;
                    report.failed_step = Some(index);
                    report.error = Some(error);
                    return Ok(report);
                }
            }
        }
        log.set_saga(SagaStatus::Completed, None).await?;
        Ok(self.report(log, SagaStatus::Completed))
    }

    /// Compensates, in reverse order, every step that may have applied.
    async fn compensate(
        &self,
        log: &Log<'_, DB>,
        input: &str,
        statuses: Vec<StepStatus>,
    ) -> Result<SagaReport> {
        for index in (0..self.steps.len()).rev() {
            if !statuses[index].needs_compensation() {
                continue;
            }
            log.set_step(index, StepStatus::Compensating, None, None)
                .await?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let step = self.context(log, input, index, attempt);
                let error = match (self.steps[index].compensate)(log.cluster, &step).await {
                    Ok(()) => {
                        log.set_step(index, StepStatus::Compensated, Some(attempt), None)
                            .await?;
                        break;
                    }
                    Err(error) => error,
                };
                let message = error.to_string();
                if attempt > self.retries {
                    tracing::error!(
                        saga = %self.name,
                        saga_id = %log.id,
                        step = %self.steps[index].name,
                        attempts = attempt,
                        %error,
                        "saga compensation failed every attempt; the saga is left partly \
                         applied until `resume_sagas` succeeds"
                    );
                    log.set_step(index, StepStatus::Failed, Some(attempt), Some(&message))
                        .await?;
                    log.set_saga(
                        SagaStatus::Failed,
                        Some(&format!(
                            "compensation of step `{}` failed {attempt} times, last: {message}; \
                             fix the cause and run `resume_sagas` again",
                            self.steps[index].name
                        )),
                    )
                    .await?;
                    let mut report = self.report(log, SagaStatus::Failed);
                    report.compensation_failure = Some((index, error));
                    return Ok(report);
                }
                tracing::warn!(
                    saga = %self.name,
                    saga_id = %log.id,
                    step = %self.steps[index].name,
                    attempt,
                    %error,
                    "saga compensation failed; retrying"
                );
                log.set_step(
                    index,
                    StepStatus::Compensating,
                    Some(attempt),
                    Some(&message),
                )
                .await?;
                tokio::time::sleep(backoff(self.backoff, attempt)).await;
            }
        }
        log.set_saga(SagaStatus::Compensated, None).await?;
        Ok(self.report(log, SagaStatus::Compensated))
    }
}

/// The delay after failed attempt `attempt` (from 1): `base * 2^(attempt-1)`, at most
/// [`MAX_RETRY_BACKOFF`].
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << Ord::min(attempt - 1, 20))
        .min(MAX_RETRY_BACKOFF)
}

/// Saga definitions by name, for [`Cluster::resume_sagas`].
pub struct SagaRegistry<DB: Backend> {
    sagas: BTreeMap<String, Saga<DB>>,
    stale_after: Duration,
}

impl<DB: Backend> Default for SagaRegistry<DB> {
    fn default() -> Self {
        SagaRegistry {
            sagas: BTreeMap::new(),
            stale_after: Duration::ZERO,
        }
    }
}

impl<DB: Backend> fmt::Debug for SagaRegistry<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaRegistry")
            .field("sagas", &self.sagas.keys().collect::<Vec<_>>())
            .field("stale_after", &self.stale_after)
            .finish()
    }
}

impl<DB: Backend> SagaRegistry<DB> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the definition named `saga.name()`.
    pub fn register(mut self, saga: Saga<DB>) -> Self {
        self.sagas.insert(saga.name.clone(), saga);
        self
    }

    /// The definition called `name`.
    pub fn get(&self, name: &str) -> Option<&Saga<DB>> {
        self.sagas.get(name)
    }

    /// Resume only sagas whose log row is at least this old (default: zero, every unfinished
    /// saga). Set it above your longest step when other processes may be running sagas while
    /// this one resumes, so it does not compensate a saga that is still in progress elsewhere.
    pub fn stale_after(mut self, age: Duration) -> Self {
        self.stale_after = age;
        self
    }
}

/// What [`Cluster::resume_sagas`] did.
#[derive(Debug, Default)]
pub struct ResumeReport {
    /// The sagas it finished (or tried to: a [`SagaStatus::Failed`] one still needs attention).
    pub resumed: Vec<SagaReport>,
    /// Unfinished sagas whose name no registered definition has, as `(id, name)`: left alone.
    pub unknown: Vec<(String, String)>,
    /// Sagas it could not resume, with the error (e.g. the definition's steps changed).
    pub errors: Vec<(String, Error)>,
}

impl ResumeReport {
    /// Whether every unfinished saga is now completed or compensated.
    pub fn is_clean(&self) -> bool {
        self.unknown.is_empty()
            && self.errors.is_empty()
            && self.resumed.iter().all(|r| r.status.is_final())
    }
}

impl<DB: Backend> Cluster<DB> {
    /// Finishes every unfinished saga in the saga logs of `registry`'s definitions: those
    /// interrupted during forward actions are compensated (or continued, for definitions with
    /// [`Saga::resume_forward`]); those interrupted while compensating, or whose compensation
    /// gave up earlier ([`SagaStatus::Failed`]), are compensated again. Run it at startup.
    ///
    /// Two resumers never run the same saga at once: each claims a saga by a conditional
    /// update of its log row before touching it. Sagas still running in another process look
    /// unfinished too — see [`SagaRegistry::stale_after`].
    ///
    /// # Errors
    ///
    /// `Err` only when a saga log cannot be created or listed; a saga that cannot be resumed
    /// is reported in [`ResumeReport::errors`] and the others still run.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the sagas where their logs stand; call it again.
    pub async fn resume_sagas(&self, registry: &SagaRegistry<DB>) -> Result<ResumeReport> {
        let mut shards: Vec<ShardId> = Vec::new();
        for saga in registry.sagas.values() {
            let shard = log_shard_id(self, saga.log_shard.as_deref())?;
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        let mut report = ResumeReport::default();
        let cutoff = now_millis() - registry.stale_after.as_millis() as i64;
        for shard in shards {
            ensure_log_on(self, shard).await?;
            for (id, name, updated_at) in unfinished(self, shard, cutoff).await? {
                let Some(saga) = registry.get(&name) else {
                    tracing::warn!(saga = %name, saga_id = %id, shard = %shard,
                        "unfinished saga has no registered definition; left alone");
                    report.unknown.push((id, name));
                    continue;
                };
                // A saga whose log shard is another one is not this shard's business.
                if log_shard_id(self, saga.log_shard.as_deref())? != shard {
                    continue;
                }
                let log = Log::new(self, shard, &id);
                match log.claim(updated_at).await {
                    Ok(true) => {}
                    Ok(false) => continue, // another resumer (or the run itself) moved it
                    Err(e) => {
                        report.errors.push((id, e));
                        continue;
                    }
                }
                let outcome = match log.load().await {
                    Ok(Some(record)) => saga.resume_record(&log, record).await,
                    Ok(None) => continue,
                    Err(e) => Err(e),
                };
                if let Err(e) = log.release().await {
                    tracing::warn!(saga_id = %id, error = %e, "saga resumed; its hold stays until it lapses");
                }
                match outcome {
                    Ok(r) => report.resumed.push(r),
                    Err(e) => report.errors.push((id, e)),
                }
            }
        }
        Ok(report)
    }
}

/// The log shard: `name`, or the cluster's first shard.
fn log_shard_id<DB: Backend>(cluster: &Cluster<DB>, name: Option<&str>) -> Result<ShardId> {
    let found = match name {
        None => cluster.shard_id(0),
        Some(name) => cluster.shard_named(name),
    };
    found.ok_or_else(|| Error::UnknownShard {
        model: MODEL,
        shard: name.unwrap_or("<first shard>").to_owned(),
        known: cluster.shard_names().collect::<Vec<_>>().join(", "),
    })
}

/// How long a resumer's claim hides a saga from other resumers, renewed at each change it makes.
const CLAIM_HOLD_MS: i64 = 30_000;

/// `updated_at` for a change to a saga's log: the present, or — while a resumer holds the
/// saga (its `updated_at` is in the future) — a renewed hold.
fn held_or_now() -> Expr {
    let now = now_millis();
    Expr::cust(format!(
        "CASE WHEN \"updated_at\" > {now} THEN {} ELSE {now} END",
        now + CLAIM_HOLD_MS
    ))
}

fn no_values() -> SqlxValues {
    SqlxValues(Values(Vec::new()))
}

async fn ensure_log_on<DB: Backend>(cluster: &Cluster<DB>, shard: ShardId) -> Result<()> {
    let table = format!(
        "CREATE TABLE IF NOT EXISTS {SAGA_LOG} (\
         saga_id VARCHAR(255) NOT NULL, \
         step BIGINT NOT NULL, \
         name VARCHAR(255) NOT NULL, \
         status VARCHAR(16) NOT NULL, \
         input TEXT, \
         attempts BIGINT NOT NULL DEFAULT 0, \
         error TEXT, \
         updated_at BIGINT NOT NULL, \
         PRIMARY KEY (saga_id, step))"
    );
    let index = format!(
        "CREATE INDEX IF NOT EXISTS {SAGA_LOG}_open ON {SAGA_LOG} (step, status, updated_at)"
    );
    for sql in [table, index] {
        // PostgreSQL's IF NOT EXISTS can still lose a race with a concurrent creator (a unique
        // violation in its catalog): the second attempt then sees the table.
        if cluster
            .execute(MODEL, shard, (sql.clone(), no_values()))
            .await
            .is_err()
        {
            cluster.execute(MODEL, shard, (sql, no_values())).await?;
        }
    }
    Ok(())
}

/// Unfinished sagas on `shard` last touched at or before `cutoff`: `(id, name, updated_at)`.
async fn unfinished<DB: Backend>(
    cluster: &Cluster<DB>,
    shard: ShardId,
    cutoff: i64,
) -> Result<Vec<(String, String, i64)>> {
    let mut select = Query::select();
    select
        .columns(["saga_id", "name", "updated_at"])
        .from(SAGA_LOG)
        .and_where(Expr::col("step").eq(SAGA_ROW))
        .and_where(Expr::col("status").is_in([
            SagaStatus::Running.as_str(),
            SagaStatus::Compensating.as_str(),
            SagaStatus::Failed.as_str(),
        ]))
        .and_where(Expr::col("updated_at").lte(cutoff))
        .order_by("updated_at", sea_query::Order::Asc)
        .order_by("saga_id", sea_query::Order::Asc);
    let rows = cluster
        .fetch(MODEL, shard, None, select.build_sqlx(DB::builder()))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                text::<DB>(row, 0, shard)?.unwrap_or_default(),
                text::<DB>(row, 1, shard)?.unwrap_or_default(),
                int::<DB>(row, 2, shard)?,
            ))
        })
        .collect()
}

fn text<DB: Backend>(row: &DB::Row, i: usize, shard: ShardId) -> Result<Option<String>> {
    DB::get_string(row, i).map_err(|e| Error::on_shard(MODEL, shard, e))
}

fn int<DB: Backend>(row: &DB::Row, i: usize, shard: ShardId) -> Result<i64> {
    DB::get_i64(row, i)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::on_shard(MODEL, shard, e))
}

/// One saga's rows in the log.
struct Log<'c, DB: Backend> {
    cluster: &'c Cluster<DB>,
    shard: ShardId,
    id: &'c str,
}

impl<'c, DB: Backend> Log<'c, DB> {
    fn new(cluster: &'c Cluster<DB>, shard: ShardId, id: &'c str) -> Self {
        Log { cluster, shard, id }
    }

    async fn execute(&self, statement: (String, SqlxValues)) -> Result<u64> {
        self.cluster.execute(MODEL, self.shard, statement).await
    }

    /// Writes the saga's row and one pending row per step, in one statement.
    async fn start(&self, name: &str, input: &str, steps: &[Step<DB>]) -> Result<()> {
        let now = now_millis();
        let mut insert = Query::insert();
        insert.into_table(SAGA_LOG).columns([
            "saga_id",
            "step",
            "name",
            "status",
            "input",
            "attempts",
            "updated_at",
        ]);
        let rows = std::iter::once((SAGA_ROW, name, SagaStatus::Running.as_str(), Some(input)))
            .chain(steps.iter().enumerate().map(|(i, s)| {
                (
                    i as i64,
                    s.name.as_str(),
                    StepStatus::Pending.as_str(),
                    None,
                )
            }));
        for (step, name, status, input) in rows {
            insert
                .values([
                    Expr::val(self.id),
                    Expr::val(step),
                    Expr::val(name),
                    Expr::val(status),
                    Expr::val(input.map(str::to_owned)),
                    Expr::val(0i64),
                    Expr::val(now),
                ])
                .map_err(|e| Error::Config(format!("saga log insert: {e}")))?;
        }
        self.execute(insert.build_sqlx(DB::builder())).await?;
        Ok(())
    }

    async fn update(
        &self,
        step: i64,
        status: &str,
        attempts: Option<u32>,
        error: Option<Option<&str>>,
    ) -> Result<()> {
        let mut update = Query::update();
        update
            .table(SAGA_LOG)
            .value("status", status)
            .value("updated_at", held_or_now());
        if let Some(attempts) = attempts {
            update.value("attempts", i64::from(attempts));
        }
        if let Some(error) = error {
            update.value("error", error.map(str::to_owned));
        }
        update
            .and_where(Expr::col("saga_id").eq(self.id))
            .and_where(Expr::col("step").eq(step));
        let n = self.execute(update.build_sqlx(DB::builder())).await?;
        if n == 0 {
            return Err(Error::Config(format!(
                "saga `{}`: its row for step {step} is missing from the saga log on shard `{}` \
                 (was the log table cleared?)",
                self.id, self.shard
            )));
        }
        Ok(())
    }

    /// Sets a step's status, and its attempts and error when given (a step's last error stays
    /// in the log until a new one replaces it).
    async fn set_step(
        &self,
        index: usize,
        status: StepStatus,
        attempts: Option<u32>,
        error: Option<&str>,
    ) -> Result<()> {
        self.update(index as i64, status.as_str(), attempts, error.map(Some))
            .await
    }

    async fn set_saga(&self, status: SagaStatus, error: Option<&str>) -> Result<()> {
        let error = match status {
            SagaStatus::Completed => Some(None),
            _ => error.map(Some),
        };
        self.update(SAGA_ROW, status.as_str(), None, error).await
    }

    /// Takes the saga for resuming if its row still shows `seen` as its last change, and holds
    /// it: its `updated_at` moves [`CLAIM_HOLD_MS`] into the future (renewed by each change the
    /// resume makes, [`held_or_now`]), so resumers listing sagas meanwhile do not see it as
    /// unfinished and claim it again half-way through its compensation.
    async fn claim(&self, seen: i64) -> Result<bool> {
        let mut update = Query::update();
        update
            .table(SAGA_LOG)
            .value(
                "updated_at",
                Ord::max(now_millis() + CLAIM_HOLD_MS, seen + 1),
            )
            .and_where(Expr::col("saga_id").eq(self.id))
            .and_where(Expr::col("step").eq(SAGA_ROW))
            .and_where(Expr::col("updated_at").eq(seen));
        Ok(self.execute(update.build_sqlx(DB::builder())).await? == 1)
    }

    /// Ends a resume's hold (whatever its outcome): the saga row shows the present again, so
    /// a saga left unfinished is resumable at once.
    async fn release(&self) -> Result<()> {
        let now = now_millis();
        let mut update = Query::update();
        update
            .table(SAGA_LOG)
            .value("updated_at", now)
            .and_where(Expr::col("saga_id").eq(self.id))
            .and_where(Expr::col("step").eq(SAGA_ROW))
            .and_where(Expr::col("updated_at").gt(now));
        self.execute(update.build_sqlx(DB::builder()))
            .await
            .map(|_| ())
    }

    async fn load(&self) -> Result<Option<SagaRecord>> {
        let mut select = Query::select();
        select
            .columns([
                "step",
                "name",
                "status",
                "input",
                "attempts",
                "error",
                "updated_at",
            ])
            .from(SAGA_LOG)
            .and_where(Expr::col("saga_id").eq(self.id))
            .order_by("step", sea_query::Order::Asc);
        let rows = self
            .cluster
            .fetch(MODEL, self.shard, None, select.build_sqlx(DB::builder()))
            .await?;
        let shard = self.shard;
        let corrupt = |what: String| {
            Error::Config(format!(
                "saga `{}` in the saga log on shard `{shard}`: {what}; the log was edited by \
                 hand or by another version",
                self.id
            ))
        };
        let mut record: Option<SagaRecord> = None;
        let mut steps = Vec::new();
        for row in &rows {
            let step = int::<DB>(row, 0, shard)?;
            let name = text::<DB>(row, 1, shard)?.unwrap_or_default();
            let status = text::<DB>(row, 2, shard)?.unwrap_or_default();
            let error = text::<DB>(row, 5, shard)?;
            let updated_at = int::<DB>(row, 6, shard)?;
            if step == SAGA_ROW {
                record = Some(SagaRecord {
                    id: self.id.to_owned(),
                    name,
                    status: SagaStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("unknown saga status `{status}`")))?,
                    input: text::<DB>(row, 3, shard)?.unwrap_or_default(),
                    error,
                    updated_at,
                    steps: Vec::new(),
                });
            } else {
                if step != steps.len() as i64 {
                    return Err(corrupt(format!("step {} is missing", steps.len())));
                }
                steps.push(StepRecord {
                    index: steps.len(),
                    name,
                    status: StepStatus::parse(&status)
                        .ok_or_else(|| corrupt(format!("unknown step status `{status}`")))?,
                    attempts: u32::try_from(int::<DB>(row, 4, shard)?).unwrap_or(u32::MAX),
                    error,
                    updated_at,
                });
            }
        }
        match record {
            Some(mut record) => {
                record.steps = steps;
                Ok(Some(record))
            }
            None if steps.is_empty() => Ok(None),
            None => Err(corrupt("its saga row (step -1) is missing".into())),
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh saga id: the name, the time in microseconds, the process id and a per-process
/// counter — unique across the processes sharing a log (the log's primary key enforces it).
fn new_id(name: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{name}-{micros:x}-{:x}-{:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), MAX_RETRY_BACKOFF);
    }

    #[test]
    fn statuses_round_trip_through_their_log_words() {
        for s in [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Done,
            StepStatus::Compensating,
            StepStatus::Compensated,
            StepStatus::Failed,
        ] {
            assert_eq!(StepStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            SagaStatus::Running,
            SagaStatus::Compensating,
            SagaStatus::Completed,
            SagaStatus::Compensated,
            SagaStatus::Failed,
        ] {
            assert_eq!(SagaStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn ids_are_unique_within_a_process() {
        let a = new_id("t");
        let b = new_id("t");
        assert_ne!(a, b);
        assert!(a.starts_with("t-"));
    }
}
