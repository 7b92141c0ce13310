//! Every shard statement runs through one statement path — span, metrics, breaker outcome,
//! timeout class — whatever issues it: migrations, single-shard and two-phase transactions,
//! recovery and the resharding backfill, not only plain queries. Counted with the `metrics`
//! facade (a local recorder on a current-thread runtime, so only this test's statements land
//! in it).

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/reshard.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::time::Duration;

use grant::prelude::*;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan};
use grant::{Migration, TwoPhase, observe};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use scenario::{Account, account, eight, preload};

/// Statements counted since the last snapshot (taking one drains the counters), per (model,
/// shard).
fn counts(snapshotter: &Snapshotter) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != observe::names::STATEMENTS {
            continue;
        }
        let label = |name: &str| {
            key.key()
                .labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        if let DebugValue::Counter(n) = value {
            *out.entry((label("model"), label("shard"))).or_default() += n;
        }
    }
    out
}

/// How many statements of `model` ran on `shard` in `delta`.
fn ran(delta: &BTreeMap<(String, String), u64>, model: &str, shard: &str) -> u64 {
    delta
        .get(&(model.to_owned(), shard.to_owned()))
        .copied()
        .unwrap_or(0)
}

const NOTES: &[Migration] = &[Migration {
    name: "0001_notes",
    sql: "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
}];

#[test]
fn migrations_transactions_and_the_backfill_are_statements_on_sqlite() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = common::tempdir();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let mut builder = Cluster::<Sqlite>::builder();
            for i in 0..8 {
                builder = builder.shard(
                    format!("shard_{i}"),
                    dir.path()
                        .join(format!("shard_{i}.db"))
                        .display()
                        .to_string(),
                );
            }
            let cluster = builder.connect().await.unwrap();

            // A migration: the ledger, the ledger lookup, the change with its entry.
            counts(&snapshotter);
            cluster.migrate(NOTES).await.into_result().unwrap();
            let after = counts(&snapshotter);
            for i in 0..8 {
                assert_eq!(ran(&after, "-", &format!("shard_{i}")), 3);
            }

            // A single-shard transaction: BEGIN, the schema check, INSERT, COMMIT.
            preload(&cluster, 2_000).await;
            let home = Account::shard_for(&5_000).name();
            counts(&snapshotter);
            let mut tx = cluster.begin_for::<Account>(&5_000).await.unwrap();
            tx.insert(&account(5_000)).await.unwrap();
            tx.commit().await.unwrap();
            let after = counts(&snapshotter);
            assert!(ran(&after, "Account", &home) >= 3, "{after:?}");

            // The resharding backfill: every source and target statement, and the job table.
            counts(&snapshotter);
            let plan = ReshardPlan::new::<Account, Sqlite>(&cluster, eight())
                .await
                .unwrap();
            let job = ReshardJob::<Account, Sqlite>::start(
                &cluster,
                plan,
                ReshardOptions::default().batch_size(250),
            )
            .await
            .unwrap();
            assert_eq!(job.run().await.unwrap().phase, Phase::Done);
            let after = counts(&snapshotter);
            for i in 0..8 {
                // Sources read and lock their pages; targets receive the copies.
                assert!(
                    ran(&after, "Account", &format!("shard_{i}")) >= 3,
                    "shard_{i}: {after:?}"
                );
            }
            assert!(ran(&after, "-", "shard_0") >= 2, "{after:?}");
            assert_eq!(Account::query().count(&cluster).await.unwrap(), 2_001);
        })
    });
}

/// An account on two PostgreSQL shards.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "pair_accounts")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Pair {
    #[primary_key]
    id: i64,
    balance: i64,
}

/// Two-phase commit and recovery on PostgreSQL run through the statement path, and a
/// transaction's connection that breaks feeds its endpoint's health.
#[test]
fn two_phase_commit_and_recovery_are_statements_on_postgres() {
    const TEST: &str = "statement_path_2pc";
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let Some(env) = pg::env().await else { return };
            drop(env.cluster(TEST, 2).await);
            let mut builder = Cluster::<Postgres>::builder()
                .two_phase(TwoPhase::default().abandon_after(Duration::from_millis(100)));
            for i in 0..2 {
                builder = builder.shard(format!("shard_{i}"), pg::shard_url(env, TEST, i));
            }
            let cluster = builder.connect().await.unwrap();
            Pair::create_table(&cluster).await.unwrap();
            let a = 1;
            let b = (2..)
                .find(|id| Pair::shard_for(id).index() != Pair::shard_for(&a).index())
                .unwrap();

            counts(&snapshotter);
            let mut tx = cluster.begin().await.unwrap();
            tx.insert(&Pair { id: a, balance: 1 }).await.unwrap();
            tx.insert(&Pair { id: b, balance: 2 }).await.unwrap();
            tx.commit().await.unwrap();
            let after = counts(&snapshotter);
            for i in 0..2 {
                let shard = format!("shard_{i}");
                let all: u64 = ["Pair", "-"].iter().map(|m| ran(&after, m, &shard)).sum();
                // BEGIN, INSERT, PREPARE TRANSACTION, COMMIT PREPARED at least.
                assert!(all >= 4, "{shard}: {all} statements: {after:?}");
            }

            counts(&snapshotter);
            cluster.recover().await.unwrap();
            let after = counts(&snapshotter);
            let recovery: u64 = after.values().sum();
            assert!(recovery >= 2, "recovery ran {recovery} statements");

            // The server ends a transaction's session: the next statement in it fails as
            // what it is, and the endpoint's health shows it.
            let admin = pg::pool(&env.url("postgres")).await;
            let mut tx = cluster.begin_for::<Pair>(&a).await.unwrap();
            assert!(tx.find::<Pair>(a).await.unwrap().is_some());
            let database = pg::database_name(TEST, &format!("shard_{}", tx.shard().index()));
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&database)
            .execute(&admin)
            .await
            .unwrap();
            let err = tx.find::<Pair>(a).await.unwrap_err();
            assert!(matches!(err, Error::ShardUnavailable { .. }), "{err:?}");
            let shard = tx.shard().name();
            drop(tx);
            let status = cluster
                .status()
                .into_iter()
                .find(|s| s.shard == shard)
                .unwrap();
            let primary = &status.endpoints[0];
            assert!(primary.error_rate > 0.0, "{primary:?}");
            assert!(primary.last_error.is_some(), "{primary:?}");
            // The pool recovers by itself: the next statement finds a live connection.
            assert!(Pair::find(&cluster, a).await.unwrap().is_some());
        })
    });
}
