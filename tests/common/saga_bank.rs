//! The saga tests' application, the same on SQLite and PostgreSQL: a bank whose accounts live
//! on different shards, a three-step transfer saga (debit the payer, credit the payee, credit
//! the fee account), idempotent actions keyed by the saga's step ids, and injectable faults.
//!
//! Use from a test file with `#[path = "common/saga_bank.rs"] mod bank;`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grant::__private::sea_query_sqlx::SqlxValues;
use grant::prelude::*;
use grant::saga::{StepContext, StepResult};
use grant::{Backend, Value};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 3)]
pub struct Account {
    #[primary_key]
    pub id: i64,
    pub balance: i64,
}

/// Opening balance of every account.
pub const OPENING: i64 = 1_000;

/// Creates the accounts and ops tables on every shard and opens three accounts, one per shard:
/// `[payer, payee, fee account]`.
pub async fn open_bank<DB: Backend>(cluster: &Cluster<DB>) -> [i64; 3] {
    Account::create_table(cluster)
        .await
        .expect("accounts table");
    for (shard, outcome) in cluster
        .execute_on_all_shards(
            "CREATE TABLE IF NOT EXISTS ops (op_id VARCHAR(255) PRIMARY KEY, \
             account BIGINT NOT NULL, delta BIGINT NOT NULL, compensated BIGINT NOT NULL)",
        )
        .await
    {
        outcome.unwrap_or_else(|e| panic!("ops table on {shard}: {e}"));
    }
    // The first ids that land on shard_0, shard_1 and shard_2.
    let mut ids = [0i64; 3];
    for shard in 0..3u32 {
        ids[shard as usize] = (1..)
            .find(|id| Account::shard_for(id).index() == shard)
            .expect("an id on every shard");
    }
    for id in ids {
        Account {
            id,
            balance: OPENING,
        }
        .insert(cluster)
        .await
        .expect("open account");
    }
    ids
}

/// The transfer's input: payer, payee, fee account, amount, fee.
pub fn transfer_input(accounts: [i64; 3], amount: i64, fee: i64) -> String {
    format!(
        "{},{},{},{amount},{fee}",
        accounts[0], accounts[1], accounts[2]
    )
}

/// The account and balance change of step `index` of a transfer with this input.
fn leg(input: &str, index: usize) -> (i64, i64) {
    let v: Vec<i64> = input
        .split(',')
        .map(|p| p.parse().expect("transfer input"))
        .collect();
    let (amount, fee) = (v[3], v[4]);
    match index {
        0 => (v[0], -(amount + fee)),
        1 => (v[1], amount),
        _ => (v[2], fee),
    }
}

/// The balances of the three accounts, read from their shards.
pub async fn balances<DB: Backend>(cluster: &Cluster<DB>, accounts: [i64; 3]) -> [i64; 3] {
    let mut out = [0; 3];
    for (i, id) in accounts.into_iter().enumerate() {
        let rows = DB::fetch_all(
            pool_of(cluster, id),
            "SELECT balance FROM accounts WHERE id = $1".into(),
            values(vec![id.into()]),
        )
        .await
        .expect("read balance");
        assert_eq!(rows.len(), 1, "account {id} exists once");
        out[i] = DB::get_i64(&rows[0], 0)
            .expect("balance")
            .expect("not null");
    }
    out
}

/// Ops rows still applied (not compensated), over every shard.
pub async fn applied_ops<DB: Backend>(cluster: &Cluster<DB>) -> i64 {
    let mut total = 0;
    for name in cluster.shard_names() {
        let pool = cluster.pool(name).expect("shard pool");
        let rows = DB::fetch_all(
            pool,
            "SELECT COUNT(*) FROM ops WHERE compensated = 0".into(),
            values(vec![]),
        )
        .await
        .expect("count ops");
        total += DB::get_i64(&rows[0], 0).expect("count").unwrap_or(0);
    }
    total
}

fn values(v: Vec<Value>) -> SqlxValues {
    SqlxValues(grant::__private::sea_query::Values(v))
}

fn pool_of<DB: Backend>(cluster: &Cluster<DB>, account: i64) -> &sqlx::Pool<DB> {
    cluster
        .pool(&Account::shard_for(&account).name())
        .expect("the account's shard")
}

/// Applies `delta` to `account` once per `op_id`: the balance change and the op row commit in
/// one transaction on the account's shard, and neither happens when the op row exists (applied,
/// or compensated before it ever applied).
pub async fn apply_once<DB: Backend>(
    cluster: &Cluster<DB>,
    op_id: &str,
    account: i64,
    delta: i64,
) -> Result<()> {
    let op = || Value::from(op_id.to_owned());
    let statements = vec![
        (
            "UPDATE accounts SET balance = balance + $1 WHERE id = $2 \
             AND NOT EXISTS (SELECT 1 FROM ops WHERE op_id = $3)"
                .to_owned(),
            values(vec![delta.into(), account.into(), op()]),
        ),
        (
            "INSERT INTO ops (op_id, account, delta, compensated) SELECT $1, $2, $3, 0 \
             WHERE NOT EXISTS (SELECT 1 FROM ops WHERE op_id = $4)"
                .to_owned(),
            values(vec![op(), account.into(), delta.into(), op()]),
        ),
    ];
    DB::execute_atomic(pool_of(cluster, account), statements).await?;
    Ok(())
}

/// Undoes `op_id` once: reverses its balance change if it applied and is not compensated yet,
/// and leaves a compensated op row either way (so a late forward action cannot apply).
pub async fn undo_once<DB: Backend>(
    cluster: &Cluster<DB>,
    op_id: &str,
    account: i64,
) -> Result<()> {
    let op = || Value::from(op_id.to_owned());
    let statements = vec![
        (
            "UPDATE accounts SET balance = balance - COALESCE((SELECT delta FROM ops \
             WHERE op_id = $1 AND compensated = 0), 0) WHERE id = $2"
                .to_owned(),
            values(vec![op(), account.into()]),
        ),
        (
            "UPDATE ops SET compensated = 1 WHERE op_id = $1".to_owned(),
            values(vec![op()]),
        ),
        (
            "INSERT INTO ops (op_id, account, delta, compensated) SELECT $1, $2, 0, 1 \
             WHERE NOT EXISTS (SELECT 1 FROM ops WHERE op_id = $3)"
                .to_owned(),
            values(vec![op(), account.into(), op()]),
        ),
    ];
    DB::execute_atomic(pool_of(cluster, account), statements).await?;
    Ok(())
}

/// What goes wrong in a forward action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Returns an error before writing.
    FailBefore,
    /// Writes, then returns an error (the caller cannot know whether it applied).
    FailAfter,
    /// The process "stops" before writing: the action never returns.
    CrashBefore,
    /// The process "stops" after writing, before the saga log records it.
    CrashAfter,
}

/// Faults to inject, shared by the saga's actions.
#[derive(Debug, Default)]
pub struct Faults {
    forward: Mutex<Option<(usize, Fault)>>,
    /// Step index → how many more times its compensation fails.
    compensation_failures: Mutex<HashMap<usize, u32>>,
    /// Compensation calls per step.
    pub compensation_calls: [AtomicU32; 3],
    /// Signalled when an action "crashes" (stops for good): the test then drops the saga.
    pub crashed: tokio::sync::Notify,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn forward(self: &Arc<Self>, step: usize, fault: Fault) -> Arc<Self> {
        *self.forward.lock().unwrap() = Some((step, fault));
        Arc::clone(self)
    }

    pub fn compensation_fails(self: &Arc<Self>, step: usize, times: u32) -> Arc<Self> {
        self.compensation_failures
            .lock()
            .unwrap()
            .insert(step, times);
        Arc::clone(self)
    }

    fn forward_fault(&self, step: usize) -> Option<Fault> {
        match *self.forward.lock().unwrap() {
            Some((s, fault)) if s == step => Some(fault),
            _ => None,
        }
    }

    fn compensation_should_fail(&self, step: usize) -> bool {
        let mut failures = self.compensation_failures.lock().unwrap();
        match failures.get_mut(&step) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

async fn forward<DB: Backend>(
    cluster: &Cluster<DB>,
    step: &StepContext,
    faults: &Faults,
) -> StepResult {
    let fault = faults.forward_fault(step.index());
    match fault {
        Some(Fault::FailBefore) => {
            return Err(format!("injected failure before step {}", step.index()).into());
        }
        Some(Fault::CrashBefore) => {
            faults.crashed.notify_one();
            std::future::pending::<()>().await
        }
        _ => {}
    }
    let (account, delta) = leg(step.input(), step.index());
    apply_once(cluster, &step.step_id(), account, delta).await?;
    match fault {
        Some(Fault::FailAfter) => {
            Err(format!("injected failure after step {} wrote", step.index()).into())
        }
        Some(Fault::CrashAfter) => {
            faults.crashed.notify_one();
            std::future::pending().await
        }
        _ => Ok(()),
    }
}

async fn compensate<DB: Backend>(
    cluster: &Cluster<DB>,
    step: &StepContext,
    faults: &Faults,
) -> StepResult {
    faults.compensation_calls[step.index()].fetch_add(1, Ordering::SeqCst);
    if faults.compensation_should_fail(step.index()) {
        return Err(format!(
            "injected compensation failure at step {} (attempt {})",
            step.index(),
            step.attempt()
        )
        .into());
    }
    let (account, _) = leg(step.input(), step.index());
    undo_once(cluster, &step.step_id(), account).await?;
    Ok(())
}

/// The transfer saga, with `faults` injected into its actions.
pub fn transfer<DB: Backend>(faults: &Arc<Faults>) -> Saga<DB> {
    let mut saga = Saga::new("transfer")
        .compensation_retries(3)
        .retry_backoff(Duration::from_millis(5));
    for name in ["debit payer", "credit payee", "credit fee account"] {
        let (f, c) = (Arc::clone(faults), Arc::clone(faults));
        saga = saga.step(
            name,
            move |cluster, step| {
                let f = Arc::clone(&f);
                Box::pin(async move { forward(cluster, step, &f).await })
            },
            move |cluster, step| {
                let c = Arc::clone(&c);
                Box::pin(async move { compensate(cluster, step, &c).await })
            },
        );
    }
    saga
}

// ---------------------------------------------------------------------------------------------
// Scenarios, run by tests/sagas.rs (SQLite files) and tests/pg_sagas.rs (PostgreSQL).

use grant::saga::{SagaRecord, SagaRegistry, StepStatus};

const AMOUNT: i64 = 50;
const FEE: i64 = 5;

/// Balances after a fully applied transfer.
pub const APPLIED: [i64; 3] = [OPENING - AMOUNT - FEE, OPENING + AMOUNT, OPENING + FEE];

/// Balances before any transfer.
pub const UNTOUCHED: [i64; 3] = [OPENING; 3];

fn step_statuses(record: &SagaRecord) -> Vec<StepStatus> {
    record.steps.iter().map(|s| s.status).collect()
}

/// No fault: every step applies once, the log says completed.
pub async fn completes_without_faults<DB: Backend>(cluster: &Cluster<DB>) {
    let accounts = open_bank(cluster).await;
    let saga = transfer::<DB>(&Faults::new());
    let report = saga
        .run(cluster, transfer_input(accounts, AMOUNT, FEE))
        .await
        .expect("saga log reachable");
    assert_eq!(report.status, SagaStatus::Completed, "{report:?}");
    assert!(report.is_completed() && report.error.is_none());
    assert_eq!(balances(cluster, accounts).await, APPLIED);
    assert_eq!(applied_ops(cluster).await, 3);

    let record = saga.record(cluster, &report.id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Completed);
    assert_eq!(record.name, "transfer");
    assert_eq!(record.input, transfer_input(accounts, AMOUNT, FEE));
    assert_eq!(record.error, None);
    assert_eq!(step_statuses(&record), [StepStatus::Done; 3]);
    assert_eq!(
        record
            .steps
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["debit payer", "credit payee", "credit fee account"]
    );

    // Nothing to resume.
    let registry = SagaRegistry::new().register(saga);
    let resumed = cluster.resume_sagas(&registry).await.unwrap();
    assert!(
        resumed.resumed.is_empty() && resumed.is_clean(),
        "{resumed:?}"
    );
}

/// A failure injected at every step in turn — before its write, and after it (outcome unknown
/// to the saga) — leaves every balance as it was, and the log says compensated.
pub async fn failure_at_every_step_compensates<DB: Backend>(cluster: &Cluster<DB>) {
    let accounts = open_bank(cluster).await;
    for step in 0..3 {
        for fault in [Fault::FailBefore, Fault::FailAfter] {
            let case = format!("fault {fault:?} at step {step}");
            let faults = Faults::new().forward(step, fault);
            let saga = transfer::<DB>(&faults);
            let report = saga
                .run(cluster, transfer_input(accounts, AMOUNT, FEE))
                .await
                .expect("saga log reachable");
            assert_eq!(report.status, SagaStatus::Compensated, "{case}: {report:?}");
            assert_eq!(report.failed_step, Some(step), "{case}");
            let error = report.error.as_ref().expect("the step's error").to_string();
            assert!(error.contains("injected failure"), "{case}: {error}");
            assert_eq!(balances(cluster, accounts).await, UNTOUCHED, "{case}");
            assert_eq!(applied_ops(cluster).await, 0, "{case}");

            // The failed step and the ones before it were compensated (latest first, once
            // each); the ones after it never ran.
            for (i, calls) in faults.compensation_calls.iter().enumerate() {
                let expected = u32::from(i <= step);
                assert_eq!(calls.load(Ordering::SeqCst), expected, "{case}: step {i}");
            }
            let record = saga.record(cluster, &report.id).await.unwrap().unwrap();
            assert_eq!(record.status, SagaStatus::Compensated, "{case}");
            let expected: Vec<StepStatus> = (0..3)
                .map(|i| {
                    if i <= step {
                        StepStatus::Compensated
                    } else {
                        StepStatus::Pending
                    }
                })
                .collect();
            assert_eq!(step_statuses(&record), expected, "{case}");
            let logged = record.error.expect("the saga's error is logged");
            assert!(
                logged.contains("injected failure") && logged.contains(&record.steps[step].name),
                "{case}: {logged}"
            );
            assert!(
                record.steps[step]
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("injected failure")),
                "{case}: {:?}",
                record.steps[step]
            );
        }
    }
}

/// Runs the transfer until the action of `step` "crashes" (never returns), then drops the
/// saga's future — what a process stopping there leaves behind. Returns the saga id.
async fn crash_at<DB: Backend>(
    cluster: &Cluster<DB>,
    accounts: [i64; 3],
    step: usize,
    fault: Fault,
) -> String {
    let faults = Faults::new().forward(step, fault);
    let saga = transfer::<DB>(&faults);
    let id = format!("crash-{step}-{fault:?}");
    let input = transfer_input(accounts, AMOUNT, FEE);
    tokio::select! {
        report = saga.run_with_id(cluster, id.clone(), input) => {
            panic!("the saga ran to its end despite the crash: {report:?}")
        }
        () = faults.crashed.notified() => {}
    }
    // The log shows where it stopped: `step` running, the ones before done.
    let record = saga.record(cluster, &id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    let expected: Vec<StepStatus> = (0..3)
        .map(|i| match i.cmp(&step) {
            std::cmp::Ordering::Less => StepStatus::Done,
            std::cmp::Ordering::Equal => StepStatus::Running,
            std::cmp::Ordering::Greater => StepStatus::Pending,
        })
        .collect();
    assert_eq!(step_statuses(&record), expected);
    id
}

/// A crash at every step in turn (before and after its write), then a restart — a new cluster
/// on the same databases — that resumes: compensated by default, completed exactly once with
/// `resume_forward`.
pub async fn crash_at_every_step_then_resume<DB: Backend>(
    connect: impl AsyncFn() -> Cluster<DB>,
    forward: bool,
) {
    let cluster = connect().await;
    let accounts = open_bank(&cluster).await;
    drop(cluster);
    for step in 0..3 {
        for fault in [Fault::CrashBefore, Fault::CrashAfter] {
            let case = format!("crash {fault:?} at step {step}");
            let cluster = connect().await;
            let id = crash_at(&cluster, accounts, step, fault).await;
            drop(cluster); // the process is gone

            let cluster = connect().await; // the restarted process
            let saga = transfer::<DB>(&Faults::new()).resume_forward(forward);
            let registry = SagaRegistry::new().register(saga.clone());
            let report = cluster.resume_sagas(&registry).await.expect("resume");
            assert!(report.is_clean(), "{case}: {report:?}");
            assert_eq!(report.resumed.len(), 1, "{case}: {report:?}");
            let resumed = &report.resumed[0];
            assert_eq!(resumed.id, id);
            let record = saga.record(&cluster, &id).await.unwrap().unwrap();
            if forward {
                assert_eq!(resumed.status, SagaStatus::Completed, "{case}");
                assert_eq!(balances(&cluster, accounts).await, APPLIED, "{case}");
                assert_eq!(applied_ops(&cluster).await, 3, "{case}");
                assert_eq!(step_statuses(&record), [StepStatus::Done; 3], "{case}");
                // Put the money back for the next case, with a fresh transfer the other way.
                reset(&cluster, accounts).await;
            } else {
                assert_eq!(resumed.status, SagaStatus::Compensated, "{case}");
                assert_eq!(resumed.failed_step, Some(step), "{case}");
                assert_eq!(balances(&cluster, accounts).await, UNTOUCHED, "{case}");
                assert_eq!(applied_ops(&cluster).await, 0, "{case}");
                let expected: Vec<StepStatus> = (0..3)
                    .map(|i| {
                        if i <= step {
                            StepStatus::Compensated
                        } else {
                            StepStatus::Pending
                        }
                    })
                    .collect();
                assert_eq!(step_statuses(&record), expected, "{case}");
            }
            assert_eq!(record.status, resumed.status, "{case}");
            // A second resume finds nothing left to do.
            let again = cluster.resume_sagas(&registry).await.unwrap();
            assert!(again.resumed.is_empty(), "{case}: {again:?}");
        }
    }
}

/// Restores the opening balances and forgets the ops (between forward-resume cases).
async fn reset<DB: Backend>(cluster: &Cluster<DB>, accounts: [i64; 3]) {
    for id in accounts {
        Account {
            id,
            balance: OPENING,
        }
        .update(cluster)
        .await
        .unwrap();
    }
    for (shard, outcome) in cluster.execute_on_all_shards("DELETE FROM ops").await {
        outcome.unwrap_or_else(|e| panic!("clear ops on {shard}: {e}"));
    }
}

/// A compensation that fails twice and then succeeds is retried: three attempts, logged.
pub async fn compensation_failing_twice_is_retried<DB: Backend>(cluster: &Cluster<DB>) {
    let accounts = open_bank(cluster).await;
    let faults = Faults::new()
        .forward(2, Fault::FailBefore)
        .compensation_fails(1, 2);
    let saga = transfer::<DB>(&faults);
    let report = saga
        .run(cluster, transfer_input(accounts, AMOUNT, FEE))
        .await
        .unwrap();
    assert_eq!(report.status, SagaStatus::Compensated, "{report:?}");
    assert!(report.compensation_failure.is_none());
    assert_eq!(faults.compensation_calls[1].load(Ordering::SeqCst), 3);
    assert_eq!(faults.compensation_calls[0].load(Ordering::SeqCst), 1);
    assert_eq!(balances(cluster, accounts).await, UNTOUCHED);

    let record = saga.record(cluster, &report.id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
    assert_eq!(record.steps[1].status, StepStatus::Compensated);
    assert_eq!(record.steps[1].attempts, 3);
    assert!(
        record.steps[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("attempt 2")),
        "the last failure is kept in the log: {:?}",
        record.steps[1]
    );
    assert_eq!(record.steps[0].attempts, 1);
}

/// A compensation that fails every attempt ends the saga `Failed` — reported, logged — and a
/// later resume (the cause fixed) compensates it.
pub async fn compensation_giving_up_is_reported_and_resumed<DB: Backend>(cluster: &Cluster<DB>) {
    let accounts = open_bank(cluster).await;
    let faults = Faults::new()
        .forward(2, Fault::FailAfter)
        .compensation_fails(0, 100);
    let saga = transfer::<DB>(&faults);
    let report = saga
        .run(cluster, transfer_input(accounts, AMOUNT, FEE))
        .await
        .unwrap();
    assert_eq!(report.status, SagaStatus::Failed, "{report:?}");
    let (step, error) = report.compensation_failure.as_ref().expect("reported");
    assert_eq!(*step, 0);
    assert!(error.to_string().contains("injected compensation failure"));
    // 1 attempt + 3 retries.
    assert_eq!(faults.compensation_calls[0].load(Ordering::SeqCst), 4);
    // Steps 2 and 1 were undone, the debit not yet.
    assert_eq!(
        balances(cluster, accounts).await,
        [OPENING - AMOUNT - FEE, OPENING, OPENING]
    );
    let record = saga.record(cluster, &report.id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Failed);
    assert_eq!(
        step_statuses(&record),
        [
            StepStatus::Failed,
            StepStatus::Compensated,
            StepStatus::Compensated
        ]
    );
    assert_eq!(record.steps[0].attempts, 4);
    let logged = record.error.expect("logged");
    assert!(logged.contains("failed 4 times"), "{logged}");

    // The cause is fixed; the next resume finishes the compensation.
    let registry = SagaRegistry::new().register(transfer::<DB>(&Faults::new()));
    let resumed = cluster.resume_sagas(&registry).await.unwrap();
    assert!(resumed.is_clean(), "{resumed:?}");
    assert_eq!(resumed.resumed.len(), 1);
    assert_eq!(resumed.resumed[0].status, SagaStatus::Compensated);
    assert_eq!(balances(cluster, accounts).await, UNTOUCHED);
    assert_eq!(applied_ops(cluster).await, 0);
    let record = saga.record(cluster, &report.id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
    assert_eq!(step_statuses(&record), [StepStatus::Compensated; 3]);
}
