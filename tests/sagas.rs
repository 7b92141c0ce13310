//! Sagas on real SQLite shard files: a transfer across three shards with a failure injected at
//! every step, a crash at every step followed by a restart that resumes, compensation retries,
//! and the saga log's record of it all. The scenarios live in `common/saga_bank.rs` and run on
//! PostgreSQL too (`pg_sagas.rs`).

#[path = "common/saga_bank.rs"]
mod bank;
mod common;

use std::path::Path;
use std::sync::Arc;

use common::{sqlite_cluster, tempdir};
use grant::prelude::*;
use grant::saga::{SagaRecord, SagaReport, StepContext};

#[tokio::test]
async fn a_transfer_without_faults_applies_every_step_once() {
    let dir = tempdir();
    bank::completes_without_faults(&sqlite_cluster(dir.path(), 3).await).await;
}

#[tokio::test]
async fn a_failure_at_every_step_restores_the_opening_balances() {
    let dir = tempdir();
    bank::failure_at_every_step_compensates(&sqlite_cluster(dir.path(), 3).await).await;
}

#[tokio::test]
async fn a_crash_at_every_step_is_compensated_after_restart() {
    let dir = tempdir();
    let path: &Path = dir.path();
    bank::crash_at_every_step_then_resume(async || sqlite_cluster(path, 3).await, false).await;
}

#[tokio::test]
async fn a_crash_at_every_step_is_completed_after_restart_when_resuming_forward() {
    let dir = tempdir();
    let path: &Path = dir.path();
    bank::crash_at_every_step_then_resume(async || sqlite_cluster(path, 3).await, true).await;
}

#[tokio::test]
async fn a_compensation_that_fails_twice_is_retried() {
    let dir = tempdir();
    bank::compensation_failing_twice_is_retried(&sqlite_cluster(dir.path(), 3).await).await;
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_is_reported_then_resumed() {
    let dir = tempdir();
    bank::compensation_giving_up_is_reported_and_resumed(&sqlite_cluster(dir.path(), 3).await)
        .await;
}

fn noop<'a>(
    _: &'a Cluster<Sqlite>,
    _: &'a StepContext,
) -> futures_util::future::BoxFuture<'a, grant::saga::StepResult> {
    Box::pin(async { Ok(()) })
}

#[tokio::test]
async fn the_log_lives_on_the_chosen_shard_and_an_unknown_shard_is_refused() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 3).await;
    let saga = Saga::<Sqlite>::new("noop")
        .step("only", noop, noop)
        .log_shard("shard_2");
    let report = saga.run(&cluster, "").await.unwrap();
    assert!(report.is_completed());
    for (i, name) in ["shard_0", "shard_1", "shard_2"].into_iter().enumerate() {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'grant_saga_log'")
                .fetch_one(cluster.pool(name).unwrap())
                .await
                .unwrap();
        assert_eq!(n, i64::from(i == 2), "{name}");
    }

    let lost = Saga::<Sqlite>::new("noop")
        .step("only", noop, noop)
        .log_shard("shard_9");
    let error = lost.run(&cluster, "").await.unwrap_err();
    assert!(matches!(error, Error::UnknownShard { .. }), "{error}");
    assert!(error.to_string().contains("shard_9"), "{error}");
}

#[tokio::test]
async fn a_caller_chosen_id_runs_once() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 2).await;
    let saga = Saga::<Sqlite>::new("noop").step("only", noop, noop);
    let first = saga
        .run_with_id(&cluster, "request-42", "in")
        .await
        .unwrap();
    assert_eq!(first.id, "request-42");
    let error = saga
        .run_with_id(&cluster, "request-42", "in")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("request-42") && message.contains("already"),
        "{message}"
    );
}

#[tokio::test]
async fn resume_leaves_unknown_sagas_alone_and_refuses_a_changed_definition() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 3).await;
    let accounts = bank::open_bank(&cluster).await;
    let faults = bank::Faults::new().forward(1, bank::Fault::CrashBefore);
    let saga = bank::transfer::<Sqlite>(&faults);
    tokio::select! {
        r = saga.run_with_id(&cluster, "t-1", bank::transfer_input(accounts, 10, 1)) => panic!("{r:?}"),
        () = faults.crashed.notified() => {}
    }

    // No definition called "transfer": reported as unknown, untouched.
    let other = SagaRegistry::new().register(Saga::<Sqlite>::new("other").step("only", noop, noop));
    let report = cluster.resume_sagas(&other).await.unwrap();
    assert_eq!(report.unknown, [("t-1".to_owned(), "transfer".to_owned())]);
    assert!(!report.is_clean());

    // A "transfer" with other steps: refused, naming both step lists.
    let changed =
        SagaRegistry::new().register(Saga::<Sqlite>::new("transfer").step("only", noop, noop));
    let report = cluster.resume_sagas(&changed).await.unwrap();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    let message = report.errors[0].1.to_string();
    assert!(
        message.contains("t-1") && message.contains("debit payer") && message.contains("only"),
        "{message}"
    );
    let record: SagaRecord = saga.record(&cluster, "t-1").await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);

    // The right definition finishes it.
    let registry = SagaRegistry::new().register(bank::transfer::<Sqlite>(&bank::Faults::new()));
    let report = cluster.resume_sagas(&registry).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(bank::balances(&cluster, accounts).await, bank::UNTOUCHED);
}

#[tokio::test]
async fn two_resumers_do_not_compensate_the_same_saga_twice() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 3).await;
    let accounts = bank::open_bank(&cluster).await;
    let faults = bank::Faults::new().forward(2, bank::Fault::CrashAfter);
    let saga = bank::transfer::<Sqlite>(&faults);
    tokio::select! {
        r = saga.run_with_id(&cluster, "t-2", bank::transfer_input(accounts, 10, 1)) => panic!("{r:?}"),
        () = faults.crashed.notified() => {}
    }
    let counted = bank::Faults::new();
    let registry = SagaRegistry::new().register(bank::transfer::<Sqlite>(&counted));
    let (a, b) = tokio::join!(
        cluster.resume_sagas(&registry),
        cluster.resume_sagas(&registry)
    );
    let resumed: Vec<SagaReport> = a
        .unwrap()
        .resumed
        .into_iter()
        .chain(b.unwrap().resumed)
        .collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    for calls in &counted.compensation_calls {
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
    assert_eq!(bank::balances(&cluster, accounts).await, bank::UNTOUCHED);
}

#[tokio::test]
async fn resume_skips_sagas_younger_than_stale_after() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 3).await;
    let accounts = bank::open_bank(&cluster).await;
    let faults = bank::Faults::new().forward(1, bank::Fault::CrashAfter);
    let saga = bank::transfer::<Sqlite>(&faults);
    tokio::select! {
        r = saga.run_with_id(&cluster, "t-3", bank::transfer_input(accounts, 10, 1)) => panic!("{r:?}"),
        () = faults.crashed.notified() => {}
    }
    // Possibly still running in another process: left alone.
    let patient = SagaRegistry::new()
        .register(bank::transfer::<Sqlite>(&bank::Faults::new()))
        .stale_after(std::time::Duration::from_secs(3600));
    let report = cluster.resume_sagas(&patient).await.unwrap();
    assert!(report.resumed.is_empty(), "{report:?}");
    let record = saga.record(&cluster, "t-3").await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);

    let registry = SagaRegistry::new().register(bank::transfer::<Sqlite>(&bank::Faults::new()));
    let report = cluster.resume_sagas(&registry).await.unwrap();
    assert_eq!(report.resumed.len(), 1, "{report:?}");
    assert_eq!(bank::balances(&cluster, accounts).await, bank::UNTOUCHED);
}

#[test]
fn sagas_and_their_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let saga = bank::transfer::<Sqlite>(&Arc::new(bank::Faults::default()));
    send_sync(&saga);
    send_sync(&SagaRegistry::<Sqlite>::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = Cluster::<Sqlite>::memory(1).await.unwrap();
        send(&saga.run(&cluster, ""));
        send(&cluster.resume_sagas(&SagaRegistry::new()));
    });
}
