//! Sagas on real PostgreSQL shard databases: the scenarios of `sagas.rs` (a transfer across
//! three shards with a failure injected at every step, a crash at every step followed by a
//! restart that resumes, compensation retries), on `Cluster<Postgres>`.
//!
//! The server is a throwaway one started by `grant_sharding::testing::postgres` (or the one
//! `GRANT_PG_URL` names); each test has its own databases, named after it.

#[path = "common/saga_bank.rs"]
mod bank;
mod common;
#[path = "common/pg.rs"]
mod pg;

use grant::prelude::*;

#[tokio::test]
async fn a_transfer_without_faults_applies_every_step_once() {
    let Some(env) = pg::env().await else { return };
    bank::completes_without_faults(&env.cluster("pg_sagas_no_faults", 3).await).await;
}

#[tokio::test]
async fn a_failure_at_every_step_restores_the_opening_balances() {
    let Some(env) = pg::env().await else { return };
    bank::failure_at_every_step_compensates(&env.cluster("pg_sagas_every_step_fails", 3).await)
        .await;
}

/// A "process": a new cluster on the test's existing shard databases.
async fn reconnect(env: &pg::PgEnv, test: &str) -> Cluster<Postgres> {
    let mut builder = Cluster::<Postgres>::builder();
    for i in 0..3 {
        builder = builder.shard(format!("shard_{i}"), pg::shard_url(env, test, i));
    }
    builder.connect().await.expect("reconnect")
}

#[tokio::test]
async fn a_crash_at_every_step_is_compensated_after_restart() {
    const TEST: &str = "pg_sagas_crash_compensate";
    let Some(env) = pg::env().await else { return };
    drop(env.cluster(TEST, 3).await); // fresh databases
    bank::crash_at_every_step_then_resume(async || reconnect(env, TEST).await, false).await;
}

#[tokio::test]
async fn a_crash_at_every_step_is_completed_after_restart_when_resuming_forward() {
    const TEST: &str = "pg_sagas_crash_forward";
    let Some(env) = pg::env().await else { return };
    drop(env.cluster(TEST, 3).await);
    bank::crash_at_every_step_then_resume(async || reconnect(env, TEST).await, true).await;
}

#[tokio::test]
async fn a_compensation_that_fails_twice_is_retried() {
    let Some(env) = pg::env().await else { return };
    bank::compensation_failing_twice_is_retried(&env.cluster("pg_sagas_retry", 3).await).await;
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_is_reported_then_resumed() {
    let Some(env) = pg::env().await else { return };
    bank::compensation_giving_up_is_reported_and_resumed(
        &env.cluster("pg_sagas_gives_up", 3).await,
    )
    .await;
}
