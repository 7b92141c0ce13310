//! Transactions on real PostgreSQL shards: single-shard transactions, two-phase commit across
//! shards, prepare failures, coordinator crashes (test failpoints) and recovery, background
//! retry of phase two, reference-table fan-out, shard-key moves, and the bank-transfer
//! invariant under injected faults.

#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use grant::prelude::*;
use grant::txn::Failpoint;
use grant::{Executed, RecoveryReport, TwoPhase};
use pg::PgEnv;

/// A bank account, spread over 4 shards.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Account {
    /// Account number.
    #[primary_key]
    pub id: i64,
    /// Balance in cents.
    pub balance: i64,
}

/// The ledger: one row per applied transfer, on the shard of the debited account.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "transfers")]
#[shard(strategy = "hash", on = "from_id", count = 4)]
pub struct Transfer {
    /// Debited account (the shard key: same shard as the account).
    #[primary_key]
    pub from_id: i64,
    /// Transfer id.
    #[primary_key]
    pub id: i64,
    /// Credited account.
    pub to_id: i64,
    /// Amount in cents.
    pub amount: i64,
}

/// A reference table: the same rows on every shard.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "currencies", reference)]
pub struct Currency {
    /// ISO code.
    #[primary_key]
    pub code: String,
    /// Decimal places.
    pub digits: i32,
}

/// A cluster of `n` fresh shard databases for `test`, with 2PC settings for tests.
async fn cluster(env: &PgEnv, test: &str, n: usize, abandon_after: Duration) -> Cluster<Postgres> {
    drop(env.cluster(test, n).await); // creates the databases
    connect(env, test, n, abandon_after).await
}

/// Connects to the shard databases `cluster` created (recovery runs at connect).
async fn connect(env: &PgEnv, test: &str, n: usize, abandon_after: Duration) -> Cluster<Postgres> {
    let mut builder = Cluster::<Postgres>::builder()
        .max_connections(20)
        .timeout(Duration::from_secs(20))
        .two_phase(
            TwoPhase::default()
                .abandon_after(abandon_after)
                .retry_every(Duration::from_millis(100)),
        );
    for i in 0..n {
        builder = builder.shard(format!("shard_{i}"), pg::shard_url(env, test, i));
    }
    builder.connect().await.unwrap()
}

/// Prepared transactions left in the shard databases (read directly with sqlx).
async fn prepared(env: &PgEnv, test: &str, n: usize) -> Vec<String> {
    let mut gids = Vec::new();
    for i in 0..n {
        let pool = pg::pool(&pg::shard_url(env, test, i)).await;
        let mut here: Vec<String> = sqlx::query_scalar(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        gids.append(&mut here);
        pool.close().await;
    }
    gids
}

/// The account ids on shard `i`'s database, read directly.
async fn ids_on(env: &PgEnv, test: &str, i: usize, table: &str) -> Vec<i64> {
    let pool = pg::pool(&pg::shard_url(env, test, i)).await;
    let sql = format!("SELECT id FROM {table} ORDER BY id");
    let ids = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    ids
}

/// Two account ids on different shards.
fn apart() -> (i64, i64) {
    let a = 1;
    let b = (2..)
        .find(|id| Account::shard_for(id) != Account::shard_for(&a))
        .unwrap();
    (a, b)
}

async fn setup(cluster: &Cluster<Postgres>, accounts: i64) {
    Account::create_table(cluster).await.unwrap();
    Transfer::create_table(cluster).await.unwrap();
    let rows: Vec<Account> = (1..=accounts)
        .map(|id| Account { id, balance: 1000 })
        .collect();
    Account::insert_many(cluster, &rows).await.unwrap();
}

/// Moves `amount` from `from` to `to` with a ledger row, in one transaction; rows locked in id
/// order so concurrent transfers never deadlock.
async fn transfer(
    cluster: &Cluster<Postgres>,
    id: i64,
    from: i64,
    to: i64,
    amount: i64,
    failpoint: Option<Failpoint>,
) -> Result<()> {
    let mut tx = cluster.begin().await?;
    let (lo, hi) = (from.min(to), from.max(to));
    let mut first = tx.find_for_update::<Account>(lo).await?.expect("account");
    let mut second = tx.find_for_update::<Account>(hi).await?.expect("account");
    let (debit, credit) = if from == lo {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    debit.balance -= amount;
    credit.balance += amount;
    tx.update(&first).await?;
    tx.update(&second).await?;
    tx.insert(&Transfer {
        from_id: from,
        id,
        to_id: to,
        amount,
    })
    .await?;
    if let Some(point) = failpoint {
        tx.fail_at(point);
    }
    tx.commit().await
}

async fn balance(cluster: &Cluster<Postgres>, id: i64) -> i64 {
    Account::find(cluster, id).await.unwrap().unwrap().balance
}

/// Runs recovery until nothing is left (undecided transactions need `abandon_after` to pass).
async fn recover_all(cluster: &Cluster<Postgres>) -> RecoveryReport {
    let mut total = RecoveryReport::default();
    for _ in 0..100 {
        let report = cluster.recover().await.unwrap();
        total.committed.extend(report.committed.clone());
        total.rolled_back.extend(report.rolled_back.clone());
        total.finished.extend(report.finished.clone());
        if report.is_clean() {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("recovery did not finish: {total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_shard_transactions_on_postgres() {
    const TEST: &str = "pg_txn_single";
    let Some(env) = pg::env().await else { return };
    let cluster = cluster(env, TEST, 4, Duration::from_secs(60)).await;
    setup(&cluster, 8).await;
    let (a, b) = apart();

    let mut tx = cluster.begin_for::<Account>(&a).await.unwrap();
    let mut acc = tx.find_for_update::<Account>(a).await.unwrap().unwrap();
    acc.balance = 1;
    tx.update(&acc).await.unwrap();
    // Other connections don't see it before commit.
    assert_eq!(balance(&cluster, a).await, 1000);
    // Rows of another shard are refused by name, nothing run.
    let err = tx.find::<Account>(b).await.unwrap_err();
    match &err {
        Error::WrongShard {
            model,
            key,
            shard,
            transaction_shard,
        } => {
            assert_eq!(*model, "Account");
            assert_eq!(*key, b.to_string());
            assert_eq!(*shard, Account::shard_for(&b));
            assert_eq!(*transaction_shard, Account::shard_for(&a));
        }
        other => panic!("expected WrongShard, got {other}"),
    }
    // The transaction survives the refusal (nothing was sent).
    tx.commit().await.unwrap();
    assert_eq!(balance(&cluster, a).await, 1);

    // Rollback on PostgreSQL.
    let mut tx = cluster.begin_for::<Account>(&a).await.unwrap();
    tx.delete_key::<Account>(&a).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(balance(&cluster, a).await, 1);

    // A multi-shard transaction touching one shard commits plainly: no PREPARE.
    cluster.log().start();
    transfer(&cluster, 1, a, a, 0, None).await.unwrap();
    let sent = cluster.log().stop();
    assert!(sent.iter().any(|e| e.sql == "COMMIT"), "{sent:#?}");
    assert!(!sent.iter().any(|e| e.sql.contains("PREPARE")), "{sent:#?}");

    // Reading one shard and writing another: the reader commits plainly, no PREPARE either.
    cluster.log().start();
    let mut tx = cluster.begin().await.unwrap();
    let seen = tx.find::<Account>(b).await.unwrap().unwrap();
    let mut acc = tx.find_for_update::<Account>(a).await.unwrap().unwrap();
    acc.balance = seen.balance;
    tx.update(&acc).await.unwrap();
    assert_eq!(tx.shards().len(), 2);
    tx.commit().await.unwrap();
    let sent = cluster.log().stop();
    assert!(!sent.iter().any(|e| e.sql.contains("PREPARE")), "{sent:#?}");
    assert_eq!(sent.iter().filter(|e| e.sql == "COMMIT").count(), 2);
    assert_eq!(balance(&cluster, a).await, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_applies_everywhere() {
    const TEST: &str = "pg_txn_2pc_commit";
    let Some(env) = pg::env().await else { return };
    let cluster = cluster(env, TEST, 4, Duration::from_secs(60)).await;
    setup(&cluster, 16).await;
    let on = |shard: u32, skip: i64| {
        (skip + 1..)
            .find(|id| Account::shard_for(id).index() == shard)
            .unwrap()
    };

    // Shards 1 and 2: the coordinator (shard_0) only holds the decision row.
    let (a, b) = (on(1, 0), on(2, 0));
    cluster.log().start();
    transfer(&cluster, 1, a, b, 250, None).await.unwrap();
    let sent = cluster.log().stop();
    assert_eq!(balance(&cluster, a).await, 750);
    assert_eq!(balance(&cluster, b).await, 1250);
    // One PREPARE and one COMMIT PREPARED per shard, gids `grant:<txid>:<shard>`.
    let prepares: Vec<&str> = sent
        .iter()
        .filter(|e| e.sql.starts_with("PREPARE TRANSACTION 'grant:"))
        .map(|e| e.sql.as_str())
        .collect();
    assert_eq!(prepares.len(), 2, "{sent:#?}");
    for shard in ["shard_1", "shard_2"] {
        assert!(
            prepares.iter().any(|p| p.ends_with(&format!(":{shard}'"))),
            "{prepares:?}"
        );
    }
    let commits: Vec<&str> = sent
        .iter()
        .filter(|e| e.sql.starts_with("COMMIT PREPARED"))
        .map(|e| e.shard.as_str())
        .collect();
    assert_eq!(commits.len(), 2, "{sent:#?}");
    // The decision row, on shard_0, was written before the first COMMIT PREPARED.
    let decision = sent
        .iter()
        .position(|e| e.sql.contains("INSERT INTO grant_2pc_log") && e.shard == "shard_0")
        .unwrap();
    let first_commit = sent
        .iter()
        .position(|e| e.sql.starts_with("COMMIT PREPARED"))
        .unwrap();
    assert!(decision < first_commit, "{sent:#?}");

    // Shards 0 and 3: the coordinator shard takes part; its own transaction records the
    // decision and commits plainly, shard_3 prepares.
    let (c, d) = (on(0, 0), on(3, 0));
    cluster.log().start();
    transfer(&cluster, 2, c, d, 100, None).await.unwrap();
    let sent = cluster.log().stop();
    assert_eq!(balance(&cluster, c).await, 900);
    assert_eq!(balance(&cluster, d).await, 1100);
    let prepares: Vec<&Executed> = sent
        .iter()
        .filter(|e| e.sql.starts_with("PREPARE TRANSACTION"))
        .collect();
    assert_eq!(prepares.len(), 1, "{sent:#?}");
    assert_eq!(prepares[0].shard, "shard_3");
    let local_commit = sent
        .iter()
        .position(|e| e.sql == "COMMIT" && e.shard == "shard_0")
        .unwrap();
    let decision = sent
        .iter()
        .position(|e| e.sql.contains("INSERT INTO grant_2pc_log"))
        .unwrap();
    let commit_prepared = sent
        .iter()
        .position(|e| e.sql.starts_with("COMMIT PREPARED") && e.shard == "shard_3")
        .unwrap();
    assert!(
        decision < local_commit && local_commit < commit_prepared,
        "{sent:#?}"
    );

    assert!(prepared(env, TEST, 4).await.is_empty());
    // Nothing for recovery to do.
    let report = cluster.recover().await.unwrap();
    assert!(
        report.committed.is_empty() && report.rolled_back.is_empty(),
        "{report:?}"
    );
    let ledger = Transfer::on_all_shards().all(&cluster).await.unwrap();
    assert_eq!(ledger.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_prepare_rolls_back_every_shard() {
    const TEST: &str = "pg_txn_prepare_fails";
    let Some(env) = pg::env().await else { return };
    let cluster = cluster(env, TEST, 4, Duration::from_secs(60)).await;
    setup(&cluster, 8).await;
    let (a, b) = apart();
    // A deferred constraint trigger on b's shard fails at PREPARE (deferred checks run there).
    let pool = pg::pool(&pg::shard_url(
        env,
        TEST,
        Account::shard_for(&b).index() as usize,
    ))
    .await;
    for sql in [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse AFTER UPDATE ON accounts \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()",
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    }
    let err = transfer(&cluster, 1, a, b, 100, None).await.unwrap_err();
    assert!(err.to_string().contains("refused at commit"), "{err}");
    assert_eq!(balance(&cluster, a).await, 1000);
    assert_eq!(balance(&cluster, b).await, 1000);
    assert!(
        Transfer::query()
            .filter(Transfer::FROM_ID.eq(a))
            .all(&cluster)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(prepared(env, TEST, 4).await.is_empty());
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_a_coordinator_crash() {
    const TEST: &str = "pg_txn_crash_recover";
    let Some(env) = pg::env().await else { return };
    let abandon = Duration::from_millis(500);
    let cluster = cluster(env, TEST, 4, abandon).await;
    setup(&cluster, 16).await;
    // Neither on the coordinator shard (shard_0): both prepare.
    let (a, b) = (on(1), on(2));

    // Crash after prepare, before the decision: rolled back once abandoned.
    let err = transfer(&cluster, 1, a, b, 10, Some(Failpoint::AfterPrepare))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InDoubt { gid, .. } if gid.starts_with("grant:")),
        "{err}"
    );
    assert_eq!(prepared(env, TEST, 4).await.len(), 2);
    // Young: left alone (its coordinator might still decide).
    let early = connect_with(env, TEST, 4, Duration::from_secs(3600), false)
        .await
        .recover()
        .await
        .unwrap();
    assert_eq!(early.pending.len(), 2, "{early:?}");
    assert_eq!(prepared(env, TEST, 4).await.len(), 2);
    tokio::time::sleep(abandon).await;
    let report = cluster.recover().await.unwrap();
    assert_eq!(report.rolled_back.len(), 2, "{report:?}");
    assert!(report.committed.is_empty());
    assert!(prepared(env, TEST, 4).await.is_empty());
    assert_eq!(balance(&cluster, a).await, 1000);
    assert_eq!(balance(&cluster, b).await, 1000);
    // Idempotent: nothing left to do.
    let again = cluster.recover().await.unwrap();
    assert!(
        again.committed.is_empty() && again.rolled_back.is_empty(),
        "{again:?}"
    );

    // Crash after the decision: committed by recovery, whatever the age.
    transfer(&cluster, 2, a, b, 20, Some(Failpoint::AfterDecision))
        .await
        .unwrap_err();
    // Locks are held until then: the rows still show the old balances to others.
    assert_eq!(balance(&cluster, a).await, 1000);
    let report = cluster.recover().await.unwrap();
    assert_eq!(report.committed.len(), 2, "{report:?}");
    assert_eq!(balance(&cluster, a).await, 980);
    assert_eq!(balance(&cluster, b).await, 1020);

    // Crash after the first COMMIT PREPARED: recovery commits the rest.
    transfer(&cluster, 3, a, b, 30, Some(Failpoint::AfterFirstCommit))
        .await
        .unwrap_err();
    assert_eq!(prepared(env, TEST, 4).await.len(), 1);
    let report = cluster.recover().await.unwrap();
    assert_eq!(report.committed.len(), 1, "{report:?}");
    assert_eq!(balance(&cluster, a).await, 950);
    assert_eq!(balance(&cluster, b).await, 1050);
    assert!(prepared(env, TEST, 4).await.is_empty());

    // A restart: a new cluster (as a new process would) recovers at connect.
    transfer(&cluster, 4, a, b, 40, Some(Failpoint::AfterDecision))
        .await
        .unwrap_err();
    drop(cluster);
    let restarted = connect(env, TEST, 4, abandon).await;
    assert!(prepared(env, TEST, 4).await.is_empty());
    assert_eq!(balance(&restarted, a).await, 910);
    assert_eq!(balance(&restarted, b).await, 1090);
    let ledger = Transfer::on_all_shards().all(&restarted).await.unwrap();
    let ids: BTreeSet<i64> = ledger.iter().map(|t| t.id).collect();
    assert_eq!(ids, BTreeSet::from([2, 3, 4]));

    // With the coordinator shard taking part, only the other shard prepares; a crash before
    // its COMMIT (the decision) rolls back, a crash after it commits.
    let (c, d) = (on(0), on(3));
    transfer(&restarted, 5, c, d, 50, Some(Failpoint::AfterPrepare))
        .await
        .unwrap_err();
    assert_eq!(prepared(env, TEST, 4).await.len(), 1);
    tokio::time::sleep(abandon).await;
    let report = recover_all(&restarted).await;
    assert_eq!(report.rolled_back.len(), 1, "{report:?}");
    assert_eq!(balance(&restarted, c).await, 1000);
    transfer(&restarted, 6, c, d, 60, Some(Failpoint::AfterDecision))
        .await
        .unwrap_err();
    let report = recover_all(&restarted).await;
    assert_eq!(report.committed.len(), 1, "{report:?}");
    assert_eq!(balance(&restarted, c).await, 940);
    assert_eq!(balance(&restarted, d).await, 1060);
    assert!(prepared(env, TEST, 4).await.is_empty());
}

/// The first account id on shard `shard` of 4.
fn on(shard: u32) -> i64 {
    (1..)
        .find(|id| Account::shard_for(id).index() == shard)
        .unwrap()
}

async fn connect_with(
    env: &PgEnv,
    test: &str,
    n: usize,
    abandon_after: Duration,
    recover_on_connect: bool,
) -> Cluster<Postgres> {
    let mut builder = Cluster::<Postgres>::builder().two_phase(
        TwoPhase::default()
            .abandon_after(abandon_after)
            .recover_on_connect(recover_on_connect),
    );
    for i in 0..n {
        builder = builder.shard(format!("shard_{i}"), pg::shard_url(env, test, i));
    }
    builder.connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_shard_is_enough() {
    const TEST: &str = "pg_txn_one_connection";
    let Some(env) = pg::env().await else { return };
    drop(env.cluster(TEST, 4).await);
    let mut builder = Cluster::<Postgres>::builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .two_phase(TwoPhase::default().abandon_after(Duration::from_millis(200)));
    for i in 0..4 {
        builder = builder.shard(format!("shard_{i}"), pg::shard_url(env, TEST, i));
    }
    let cluster = builder.connect().await.unwrap();
    setup(&cluster, 16).await;
    // The coordinator shard takes part (shard_0), then not (shards 1 and 2).
    transfer(&cluster, 1, on(0), on(3), 10, None).await.unwrap();
    transfer(&cluster, 2, on(1), on(2), 10, None).await.unwrap();
    transfer(
        &cluster,
        3,
        on(0),
        on(3),
        10,
        Some(Failpoint::AfterDecision),
    )
    .await
    .unwrap_err();
    transfer(&cluster, 4, on(1), on(2), 10, Some(Failpoint::AfterPrepare))
        .await
        .unwrap_err();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = recover_all(&cluster).await;
    assert_eq!(report.committed.len(), 1, "{report:?}");
    assert_eq!(report.rolled_back.len(), 2, "{report:?}");
    assert!(prepared(env, TEST, 4).await.is_empty());
    assert_eq!(balance(&cluster, on(0)).await, 980);
    assert_eq!(balance(&cluster, on(1)).await, 990);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_two_failure_is_in_doubt_and_retried_in_the_background() {
    const TEST: &str = "pg_txn_retry";
    let Some(env) = pg::env().await else { return };
    let cluster = cluster(env, TEST, 4, Duration::from_secs(60)).await;
    setup(&cluster, 8).await;
    let (a, b) = apart();
    let err = transfer(&cluster, 1, a, b, 5, Some(Failpoint::FirstCommitFails))
        .await
        .unwrap_err();
    match &err {
        Error::InDoubt { gid, detail } => {
            assert!(gid.starts_with("grant:"), "{err}");
            assert!(detail.contains("committed"), "{err}");
        }
        other => panic!("expected InDoubt, got {other}"),
    }
    // The background task (every 100 ms here) finishes phase two without anyone calling recover.
    for _ in 0..100 {
        if prepared(env, TEST, 4).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(prepared(env, TEST, 4).await.is_empty());
    assert_eq!(balance(&cluster, a).await, 995);
    assert_eq!(balance(&cluster, b).await, 1005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_participant_leaves_nothing_applied() {
    const TEST: &str = "pg_txn_killed";
    let Some(env) = pg::env().await else { return };
    let cluster = cluster(env, TEST, 4, Duration::from_secs(60)).await;
    setup(&cluster, 8).await;
    let (a, b) = apart();
    let mut tx = cluster.begin().await.unwrap();
    let mut x = tx.find_for_update::<Account>(a).await.unwrap().unwrap();
    let mut y = tx.find_for_update::<Account>(b).await.unwrap().unwrap();
    x.balance -= 7;
    y.balance += 7;
    tx.update(&x).await.unwrap();
    tx.update(&y).await.unwrap();
    // Kill b's backend, idle in the transaction, from an admin connection.
    let admin = pg::pool(&env.url("postgres")).await;
    let db = pg::database_name(TEST, &format!("shard_{}", Account::shard_for(&b).index()));
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND state = 'idle in transaction'",
    )
    .bind(&db)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![true]);
    let err = tx.commit().await.unwrap_err();
    assert!(
        matches!(&err, Error::ShardUnavailable { .. } | Error::Shard { .. }),
        "{err}"
    );
    assert_eq!(balance(&cluster, a).await, 1000);
    assert_eq!(balance(&cluster, b).await, 1000);
    assert!(prepared(env, TEST, 4).await.is_empty());
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_table_fan_out_is_all_or_nothing() {
    const TEST: &str = "pg_txn_reference";
    let Some(env) = pg::env().await else { return };
    let cluster = cluster(env, TEST, 4, Duration::from_secs(60)).await;
    Currency::create_table(&cluster).await.unwrap();
    Account::create_table(&cluster).await.unwrap();
    let eur = Currency {
        code: "EUR".into(),
        digits: 2,
    };
    eur.insert(&cluster).await.unwrap();
    let codes = |i: usize| async move {
        let pool = pg::pool(&pg::shard_url(env, TEST, i)).await;
        let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM currencies ORDER BY code")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        codes
    };
    for i in 0..4 {
        assert_eq!(codes(i).await, vec!["EUR".to_string()], "shard_{i}");
    }
    // Reads from one shard, and inside a single-shard transaction from its own shard.
    assert_eq!(
        Currency::find(&cluster, "EUR".into()).await.unwrap(),
        Some(eur.clone())
    );
    let mut tx = cluster.begin_for::<Account>(&3).await.unwrap();
    assert_eq!(
        tx.find::<Currency>("EUR".into()).await.unwrap(),
        Some(eur.clone())
    );
    tx.rollback().await.unwrap();

    // One shard fails (a conflicting row on shard_2 only): nothing written anywhere.
    let pool = pg::pool(&pg::shard_url(env, TEST, 2)).await;
    sqlx::query("INSERT INTO currencies (code, digits) VALUES ('JPY', 0)")
        .execute(&pool)
        .await
        .unwrap();
    let usd_jpy = [
        Currency {
            code: "USD".into(),
            digits: 2,
        },
        Currency {
            code: "JPY".into(),
            digits: 0,
        },
    ];
    let err = Currency::insert_many(&cluster, &usd_jpy).await.unwrap_err();
    assert!(matches!(&err, Error::Shard { .. }), "{err}");
    for i in [0, 1, 3] {
        assert_eq!(codes(i).await, vec!["EUR".to_string()], "shard_{i}");
    }
    assert_eq!(codes(2).await, vec!["EUR".to_string(), "JPY".to_string()]);

    // An update fans out too; a shard lacking the row fails it everywhere.
    sqlx::query("DELETE FROM currencies WHERE code = 'EUR'")
        .execute(&pool)
        .await
        .unwrap();
    let err = Currency {
        code: "EUR".into(),
        digits: 3,
    }
    .update(&cluster)
    .await
    .unwrap_err();
    assert!(matches!(&err, Error::NotFound { .. }), "{err}");
    for i in [0, 1, 3] {
        let pool = pg::pool(&pg::shard_url(env, TEST, i)).await;
        let digits: i32 = sqlx::query_scalar("SELECT digits FROM currencies WHERE code = 'EUR'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(digits, 2, "shard_{i}");
        pool.close().await;
    }
    pool.close().await;

    // An upsert fans out all or nothing too, and inserts where a shard lacks the row: EUR is
    // back on shard_2, and the JPY only shard_2 had no longer fails the batch.
    Currency {
        code: "EUR".into(),
        digits: 3,
    }
    .upsert(&cluster)
    .await
    .unwrap();
    assert_eq!(Currency::upsert_many(&cluster, &usd_jpy).await.unwrap(), 2);
    for i in 0..4 {
        assert_eq!(codes(i).await, ["EUR", "JPY", "USD"], "shard_{i}");
        let pool = pg::pool(&pg::shard_url(env, TEST, i)).await;
        let digits: Vec<i32> = sqlx::query_scalar("SELECT digits FROM currencies ORDER BY code")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(digits, [3, 0, 2], "shard_{i}");
        pool.close().await;
    }
    assert!(prepared(env, TEST, 4).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_key_leaves_the_row_on_exactly_one_shard() {
    const TEST: &str = "pg_txn_move_key";
    let Some(env) = pg::env().await else { return };
    let abandon = Duration::from_millis(300);
    let cluster = cluster(env, TEST, 4, abandon).await;
    setup(&cluster, 0).await;
    let (a, b) = apart();
    let shard = |id: i64| Account::shard_for(&id).index() as usize;
    let row = Account { id: a, balance: 42 };
    row.insert(&cluster).await.unwrap();
    let whereis = |id: i64| async move {
        let mut on = Vec::new();
        for i in 0..4 {
            if ids_on(env, TEST, i, "accounts").await.contains(&id) {
                on.push(i);
            }
        }
        on
    };

    // Crash before the decision: recovery rolls back; the row stays where it was.
    let mut tx = cluster.begin().await.unwrap();
    tx.move_key(&row, b).await.unwrap();
    tx.fail_at(Failpoint::AfterPrepare);
    tx.commit().await.unwrap_err();
    tokio::time::sleep(abandon).await;
    recover_all(&cluster).await;
    assert_eq!(whereis(a).await, vec![shard(a)]);
    assert_eq!(whereis(b).await, Vec::<usize>::new());

    // Crash after the decision: recovery completes the move.
    let mut tx = cluster.begin().await.unwrap();
    tx.move_key(&row, b).await.unwrap();
    tx.fail_at(Failpoint::AfterDecision);
    tx.commit().await.unwrap_err();
    recover_all(&cluster).await;
    assert_eq!(whereis(a).await, Vec::<usize>::new());
    assert_eq!(whereis(b).await, vec![shard(b)]);
    assert_eq!(
        Account::find(&cluster, b).await.unwrap(),
        Some(Account { id: b, balance: 42 })
    );

    // The target key taken: the move fails, nothing changes.
    let back = Account { id: b, balance: 42 };
    Account { id: a, balance: 1 }
        .insert(&cluster)
        .await
        .unwrap();
    let err = cluster.move_key(&back, a).await.unwrap_err();
    assert!(matches!(&err, Error::Shard { .. }), "{err}");
    assert_eq!(whereis(a).await, vec![shard(a)]);
    assert_eq!(whereis(b).await, vec![shard(b)]);
    // A missing row: NotFound, nothing written.
    let ghost = Account {
        id: 999_999,
        balance: 0,
    };
    let err = cluster.move_key(&ghost, 999_998).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { .. }), "{err}");
    assert!(prepared(env, TEST, 4).await.is_empty());
}

/// 2,000 transfers between accounts on different shards from 16 tasks, while participant
/// backends are killed and coordinators stop between prepare and commit; then recovery. The
/// total is unchanged, nothing stays prepared, and every acknowledged transfer is applied
/// exactly once (the ledger and every balance agree).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_keep_the_invariant_under_faults() {
    const TEST: &str = "pg_txn_bank";
    const ACCOUNTS: i64 = 64;
    const TASKS: i64 = 16;
    const PER_TASK: i64 = 125;
    let Some(env) = pg::env().await else { return };
    let abandon = Duration::from_secs(1);
    let cluster = cluster(env, TEST, 4, abandon).await;
    setup(&cluster, ACCOUNTS).await;

    // Recovery keeps running, as a restarted coordinator's would: crashed transactions hold
    // row locks until it resolves them.
    let stop = Arc::new(AtomicBool::new(false));
    let recovering = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let _ = cluster.recover().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    // Faults: a participant backend of a random shard killed now and then.
    let killer = {
        let stop = stop.clone();
        let admin = pg::pool(&env.url("postgres")).await;
        let dbs: Vec<String> = (0..4)
            .map(|i| pg::database_name(TEST, &format!("shard_{i}")))
            .collect();
        tokio::spawn(async move {
            let mut kills = 0u32;
            let mut seed = 0x9e37_79b9_u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(40)).await;
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let db = &dbs[(seed >> 33) as usize % dbs.len()];
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM \
                     pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' \
                     AND state <> 'idle' ORDER BY random() LIMIT 1) victim",
                )
                .bind(db)
                .fetch_one(&admin)
                .await
                .unwrap_or(0);
                kills += n as u32;
            }
            admin.close().await;
            kills
        })
    };

    #[derive(Debug)]
    enum Outcome {
        Acked,
        /// In doubt; `true` when the coordinator stopped at the failpoint (a fault may put a
        /// transfer in doubt before it gets there: then its decision may not have landed).
        InDoubt(bool),
        Failed,
    }
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ (task as u64 + 1).wrapping_mul(0x9e37);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut outcomes = Vec::new();
            for i in 0..PER_TASK {
                let id = task * 1000 + i;
                let from = (next() % ACCOUNTS as u64) as i64 + 1;
                let to = loop {
                    let to = (next() % ACCOUNTS as u64) as i64 + 1;
                    if Account::shard_for(&to) != Account::shard_for(&from) {
                        break to;
                    }
                };
                let amount = (next() % 100) as i64 + 1;
                let failpoint = match next() % 40 {
                    0 => Some(Failpoint::AfterPrepare),
                    1 => Some(Failpoint::AfterDecision),
                    2 => Some(Failpoint::AfterFirstCommit),
                    _ => None,
                };
                let outcome = match transfer(&cluster, id, from, to, amount, failpoint).await {
                    Ok(()) => Outcome::Acked,
                    Err(Error::InDoubt { detail, .. }) => {
                        Outcome::InDoubt(detail.contains("(test failpoint)"))
                    }
                    Err(_) => Outcome::Failed,
                };
                outcomes.push((id, failpoint, outcome));
            }
            outcomes
        }));
    }
    let mut acked = BTreeSet::new();
    let mut in_doubt = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let mut must_commit = BTreeSet::new();
    for task in tasks {
        for (id, failpoint, outcome) in task.await.unwrap() {
            match outcome {
                Outcome::Acked => {
                    assert!(failpoint.is_none(), "transfer {id} passed its failpoint");
                    acked.insert(id);
                }
                Outcome::InDoubt(at_failpoint) => {
                    if at_failpoint
                        && matches!(
                            failpoint,
                            Some(Failpoint::AfterDecision | Failpoint::AfterFirstCommit)
                        )
                    {
                        must_commit.insert(id);
                    }
                    in_doubt.insert(id);
                }
                Outcome::Failed => {
                    failed.insert(id);
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    recovering.await.unwrap();
    let kills = killer.await.unwrap();
    tokio::time::sleep(abandon).await;
    recover_all(&cluster).await;

    assert_eq!(acked.len() + in_doubt.len() + failed.len(), 2000);
    assert!(kills > 0, "no backend was killed");
    assert!(
        !must_commit.is_empty(),
        "no coordinator crashed after its decision"
    );
    assert!(
        acked.len() > 1000,
        "only {} of 2000 transfers succeeded",
        acked.len()
    );
    eprintln!(
        "bank: {} acknowledged, {} in doubt, {} failed, {kills} backends killed",
        acked.len(),
        in_doubt.len(),
        failed.len()
    );

    // Nothing stays prepared.
    assert_eq!(prepared(env, TEST, 4).await, Vec::<String>::new());
    // The total is unchanged.
    let accounts = Account::on_all_shards().all(&cluster).await.unwrap();
    assert_eq!(accounts.len() as i64, ACCOUNTS);
    assert_eq!(
        accounts.iter().map(|a| a.balance).sum::<i64>(),
        ACCOUNTS * 1000
    );
    // Every acknowledged transfer is in the ledger, once; nothing failed is.
    let ledger = Transfer::on_all_shards().all(&cluster).await.unwrap();
    let ids: BTreeSet<i64> = ledger.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), ledger.len(), "a transfer id twice in the ledger");
    for id in &acked {
        assert!(
            ids.contains(id),
            "acknowledged transfer {id} is not applied"
        );
    }
    for id in &must_commit {
        assert!(
            ids.contains(id),
            "decided transfer {id} was not applied by recovery"
        );
    }
    for id in &ids {
        assert!(
            acked.contains(id) || in_doubt.contains(id),
            "transfer {id} failed but was applied"
        );
    }
    // Each balance is exactly the ledger's account: applied once, all of its parts.
    let mut expected: BTreeMap<i64, i64> = (1..=ACCOUNTS).map(|id| (id, 1000)).collect();
    for t in &ledger {
        *expected.get_mut(&t.from_id).unwrap() -= t.amount;
        *expected.get_mut(&t.to_id).unwrap() += t.amount;
    }
    for account in &accounts {
        assert_eq!(
            account.balance, expected[&account.id],
            "account {} disagrees with the ledger",
            account.id
        );
    }
}
