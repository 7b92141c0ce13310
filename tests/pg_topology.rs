//! PostgreSQL for real: 4 shards spread over 2 server processes — `shard_0` and `shard_2` on
//! server A, `shard_1` and `shard_3` on server B — and a streaming replica of server B (a third
//! process) serving `shard_1`'s reads.
//!
//! - routed CRUD, scatter queries, reads proven to run on the replica, the differential suite;
//! - failover under a mixed workload: server B crashes (`pg_ctl stop -m immediate`) and comes
//!   back; every acknowledged write is there afterwards;
//! - the server-side statement timeout (`statement_timeout`, SQLSTATE 57014 → `Error::Timeout`);
//! - pool exhaustion, a slow shard and 1,000 concurrent tasks, on PostgreSQL.
//!
//! These tests need server processes of their own (one of them is stopped), so `GRANT_PG_URL`
//! cannot stand in: without the PostgreSQL server binaries they skip with a line on stderr, and
//! under `CI=true` they fail.

#[path = "common/pg.rs"]
mod pg;

/// The differential harness of `differential.rs` over a 4-shard `Item`.
mod diff4 {
    #![allow(dead_code, unreachable_pub, missing_docs)]

    use grant::prelude::*;

    #[derive(Sharded, Debug, Clone, PartialEq)]
    #[grant(table = "items")]
    #[shard(strategy = "hash", on = "id", count = 4)]
    pub struct Item {
        #[primary_key]
        pub id: i64,
        pub grp: String,
        pub cat: Option<String>,
        pub a: i64,
        pub b: Option<i64>,
        pub f: Option<f64>,
        pub flag: bool,
    }

    include!("diff/harness.rs");
}

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::{Circuit, ClusterBuilder, HealthConfig};
use grant_sharding::testing::postgres::{PgEnv, PgServer, database_name, own_server_or_skip};
use sea_query::{Condition, Expr};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPoolOptions};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct Account {
    #[primary_key]
    id: i64,
    owner: String,
    balance: i64,
}

fn account(id: i64) -> Account {
    Account {
        id,
        owner: format!("owner {id}"),
        balance: id * 10,
    }
}

/// The `nth` non-negative id that lives on `shard`.
fn key_on(shard: u32, nth: usize) -> i64 {
    (0..)
        .filter(|id| Account::shard_for(id).index() == shard)
        .nth(nth)
        .unwrap()
}

const SHARDS: usize = 4;

/// Two servers and a replica of the second.
struct Topology {
    a: PgServer,
    b: PgServer,
    b_replica: PgServer,
}

impl Topology {
    /// Starts the three processes (blocking), or `None` to skip.
    fn start(test: &str) -> Option<Topology> {
        let a = own_server_or_skip(test)?;
        let b = PgServer::start().unwrap_or_else(|e| panic!("{test}: server B: {e}"));
        let b_replica = b
            .start_replica()
            .unwrap_or_else(|e| panic!("{test}: replica of server B: {e}"));
        Some(Topology { a, b, b_replica })
    }

    /// Starts them from an async test.
    fn start_here(test: &str) -> Option<Topology> {
        tokio::task::block_in_place(|| Topology::start(test))
    }

    fn server_of(&self, shard: usize) -> &PgServer {
        if shard.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }

    fn database(test: &str, shard: usize) -> String {
        database_name(test, &format!("shard_{shard}"))
    }

    fn shard_url(&self, test: &str, shard: usize) -> String {
        self.server_of(shard).url(&Self::database(test, shard))
    }

    fn replica_url(&self, test: &str) -> String {
        self.b_replica.url(&Self::database(test, 1))
    }

    /// Fresh shard databases for `test` on their servers; returns once the replica has
    /// `shard_1`'s too.
    async fn create_databases(&self, test: &str) {
        for i in 0..SHARDS {
            PgEnv::external(self.server_of(i).url("postgres"))
                .create_database(&Self::database(test, i))
                .await
                .unwrap_or_else(|e| panic!("{test}: create shard_{i}: {e}"));
        }
        let replica = self.replica_url(test);
        wait_until(
            Duration::from_secs(30),
            "the replica has shard_1's database",
            || {
                let replica = replica.clone();
                async move {
                    match PgConnection::connect(&replica).await {
                        Ok(conn) => {
                            let _ = conn.close().await;
                            true
                        }
                        Err(_) => false,
                    }
                }
            },
        )
        .await;
    }

    /// A builder for the 4-shard cluster of `test`, `shard_1` with its replica.
    fn builder(&self, test: &str) -> ClusterBuilder<Postgres> {
        let mut builder = Cluster::<Postgres>::builder();
        for i in 0..SHARDS {
            builder = builder.shard(format!("shard_{i}"), self.shard_url(test, i));
        }
        builder.replica("shard_1", self.replica_url(test))
    }
}

/// The topology the tests that stop nothing share (each with its own databases).
fn shared() -> Option<&'static Topology> {
    static SHARED: OnceLock<Option<Topology>> = OnceLock::new();
    tokio::task::block_in_place(|| {
        SHARED
            .get_or_init(|| Topology::start("pg_topology"))
            .as_ref()
    })
}

/// Polls `check` every 50 ms until it holds; fails the test after `limit`. Returns the wait.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True only where the statement runs on a standby (a streaming replica).
fn in_recovery() -> Cond<Account> {
    Cond::raw(Condition::all().add(Expr::cust("pg_is_in_recovery()")))
}

/// True, after sleeping `secs` seconds on the shards whose database is one of `databases`
/// (every shard when empty).
fn sleep_on(secs: f64, databases: &[String]) -> Cond<Account> {
    let sleep = format!("(SELECT true FROM pg_sleep({secs}))");
    let sql = if databases.is_empty() {
        sleep
    } else {
        let list: Vec<String> = databases.iter().map(|d| format!("'{d}'")).collect();
        format!(
            "(CASE WHEN current_database() IN ({}) THEN {sleep} ELSE true END)",
            list.join(", ")
        )
    };
    Cond::raw(Condition::all().add(Expr::cust(sql)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_on_two_servers_with_a_replica_serve_crud_scatter_and_replica_reads() {
    const TEST: &str = "topology_crud";
    let Some(topo) = shared() else { return };
    topo.create_databases(TEST).await;
    let cluster = topo.builder(TEST).connect().await.unwrap();

    // Each shard pool reaches the server process it should; the replica is a standby.
    for i in 0..SHARDS {
        let pool = cluster.pool(&format!("shard_{i}")).unwrap();
        let port: i32 = sqlx::query_scalar("SELECT inet_server_port()")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(port as u16, topo.server_of(i).port(), "shard_{i}");
        let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(!standby, "shard_{i}'s primary is in recovery");
    }
    let replica = cluster.replica_pool("shard_1", 0).unwrap();
    let (port, standby): (i32, bool) =
        sqlx::query_as("SELECT inet_server_port(), pg_is_in_recovery()")
            .fetch_one(replica)
            .await
            .unwrap();
    assert_eq!(port as u16, topo.b_replica.port());
    assert!(standby, "the replica is not a standby");
    assert_ne!(topo.a.port(), topo.b.port());

    // Routed writes land on the shard (and so the server) `shard_for` names.
    Account::create_table(&cluster).await.unwrap();
    let mut rows: Vec<Account> = (0..400).map(account).collect();
    assert_eq!(Account::insert_many(&cluster, &rows).await.unwrap(), 400);
    for i in 0..SHARDS {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts")
            .fetch_all(cluster.pool(&format!("shard_{i}")).unwrap())
            .await
            .unwrap();
        assert!(ids.len() > 60, "shard_{i} holds only {} rows", ids.len());
        for id in ids {
            assert_eq!(Account::shard_for(&id).index(), i as u32, "account {id}");
        }
    }
    for row in &rows {
        assert_eq!(
            Account::find(&cluster, row.id).await.unwrap().as_ref(),
            Some(row)
        );
    }
    let extra = account(10_000);
    extra.insert(&cluster).await.unwrap();
    rows.push(extra.clone());
    rows[7].balance = -5;
    rows[7].update(&cluster).await.unwrap();
    assert_eq!(
        Account::find(&cluster, 7).await.unwrap(),
        Some(rows[7].clone())
    );
    assert!(rows[8].delete(&cluster).await.unwrap());
    rows.remove(8);
    assert_eq!(Account::find(&cluster, 8).await.unwrap(), None);

    // Scatter queries across both servers.
    assert_eq!(
        Account::query().count(&cluster).await.unwrap(),
        rows.len() as u64
    );
    let sum: Option<i64> = Account::query()
        .sum(Account::BALANCE, &cluster)
        .await
        .unwrap();
    assert_eq!(sum, Some(rows.iter().map(|r| r.balance).sum()));
    let mut top = rows.clone();
    top.sort_by(|x, y| y.balance.cmp(&x.balance).then(x.id.cmp(&y.id)));
    let got = Account::query()
        .order_by(Account::BALANCE, Order::Desc)
        .order_by(Account::ID, Order::Asc)
        .limit(5)
        .offset(3)
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(got, top[3..8].to_vec());
    let keys: Vec<i64> = (0..4).map(|s| key_on(s, 3)).collect();
    cluster.log().start();
    let found = Account::query()
        .filter(Account::ID.is_in(keys.clone()))
        .order_by(Account::ID, Order::Asc)
        .all(&cluster)
        .await
        .unwrap();
    let executed = cluster.log().stop();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), sorted);
    let touched: HashSet<&str> = executed.iter().map(|e| e.shard.as_str()).collect();
    assert_eq!(touched.len(), 4, "{executed:?}");

    // Reads on the replica: wait until it has replayed shard_1's rows, then prove where a read
    // ran — the query log's endpoint, and a condition only a standby satisfies.
    let on_1: Vec<&Account> = rows
        .iter()
        .filter(|r| Account::shard_for(&r.id).index() == 1)
        .collect();
    let expected = on_1.len() as i64;
    wait_until(
        Duration::from_secs(20),
        "the replica catches up",
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM accounts")
                .fetch_one(replica)
                .await
                .is_ok_and(|n| n == expected)
        },
    )
    .await;
    let k = on_1[0].id;
    cluster.log().start();
    let on_replica = Account::query()
        .filter(Account::ID.eq(k).and(in_recovery()))
        .read_policy(ReadPolicy::ReplicaOnly)
        .all(&cluster)
        .await
        .unwrap();
    let executed = cluster.log().stop();
    assert_eq!(on_replica, vec![on_1[0].clone()]);
    assert_eq!(executed.len(), 1);
    assert_eq!(
        (executed[0].shard.as_str(), executed[0].endpoint),
        ("shard_1", "replica_0")
    );
    let on_primary = Account::query()
        .filter(Account::ID.eq(k).and(in_recovery()))
        .read_policy(ReadPolicy::Primary)
        .all(&cluster)
        .await
        .unwrap();
    assert!(on_primary.is_empty(), "the primary claims to be a standby");
    // A shard without a replica refuses a replica-only read, naming itself.
    let err = Account::query()
        .filter(Account::ID.eq(key_on(3, 0)))
        .read_policy(ReadPolicy::ReplicaOnly)
        .all(&cluster)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ShardUnavailable { shard, .. } if shard.to_string() == "shard_3"),
        "{err}"
    );
    // Writes go to the primary, whatever the read policy.
    cluster.log().start();
    account(20_001).insert(&cluster).await.unwrap();
    let executed = cluster.log().stop();
    assert!(
        executed.iter().all(|e| e.endpoint == "primary"),
        "{executed:?}"
    );

    // The differential suite on this topology: 4 shards on 2 servers vs one database.
    let single_url = PgEnv::external(topo.a.url("postgres"))
        .create_database(&database_name(TEST, "all"))
        .await
        .unwrap();
    let single = PgPoolOptions::new()
        .max_connections(2)
        .connect(&single_url)
        .await
        .unwrap();
    let side = diff4::PgSide {
        cluster: cluster.clone(),
        single,
        locale_tables: false,
    };
    diff4::run_n(&side, 200).await;
}

/// What one operation of the workload did.
#[derive(Debug, Clone)]
struct Record {
    op: &'static str,
    /// The shard it was routed to (`None`: a scatter over all).
    shard: Option<u32>,
    started: Instant,
    took: Duration,
    /// Why it failed: the shard the error names, whether it was `ShardUnavailable`, the message.
    failed: Option<(u32, bool, String)>,
}

/// Acknowledged writes, and update values that failed (a failed statement may still have
/// committed: its value may be the one found afterwards).
#[derive(Debug, Default)]
struct Acked {
    balance: HashMap<i64, i64>,
    maybe: HashMap<i64, Vec<i64>>,
}

fn shard_named(err: &Error) -> Option<u32> {
    let text = err.to_string();
    (0..SHARDS as u32).find(|i| text.contains(&format!("shard_{i}")))
}

/// One workload task: inserts and updates of its own accounts, finds of the preloaded ones,
/// partial scatter counts — on every shard, until `stop`.
async fn worker(
    cluster: Cluster<Postgres>,
    task: i64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut mine: Vec<i64> = Vec::new();
    let mut n = 0_i64;
    let mut step = task as u64;
    while !stop.load(Ordering::Relaxed) {
        step = step.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let pick = (step >> 33) as usize;
        let started = Instant::now();
        let (op, shard, outcome): (&'static str, Option<u32>, Result<()>) = match pick % 4 {
            0 => {
                n += 1;
                let id = 1_000_000 * (task + 1) + n;
                let row = Account {
                    id,
                    owner: format!("task {task}"),
                    balance: 0,
                };
                let outcome = row.insert(&cluster).await.map(|_| ());
                if outcome.is_ok() {
                    acked.lock().unwrap().balance.insert(id, 0);
                    mine.push(id);
                }
                ("insert", Some(Account::shard_for(&id).index()), outcome)
            }
            1 if !mine.is_empty() => {
                let id = mine[pick % mine.len()];
                n += 1;
                let row = Account {
                    id,
                    owner: format!("task {task}"),
                    balance: n,
                };
                let outcome = row.update(&cluster).await.map(|_| ());
                let mut acked = acked.lock().unwrap();
                match outcome {
                    Ok(()) => {
                        acked.balance.insert(id, n);
                    }
                    Err(_) => acked.maybe.entry(id).or_default().push(n),
                }
                ("update", Some(Account::shard_for(&id).index()), outcome)
            }
            2 => {
                let partial = Account::on_all_shards()
                    .filter(Account::ID.lt(200))
                    .allow_partial()
                    .count(&cluster)
                    .await;
                let outcome = partial.map(|p| {
                    let answered: u64 = (0..200_i64)
                        .filter(|id| !p.failed.iter().any(|(s, _)| *s == Account::shard_for(id)))
                        .count() as u64;
                    assert_eq!(p.value, answered, "partial count");
                    for (shard, err) in &p.failed {
                        records.push(Record {
                            op: "scatter",
                            shard: Some(shard.index()),
                            started,
                            took: started.elapsed(),
                            failed: Some((
                                shard_named(err).unwrap_or(u32::MAX),
                                matches!(err, Error::ShardUnavailable { .. }),
                                err.to_string(),
                            )),
                        });
                    }
                });
                ("scatter", None, outcome)
            }
            _ => {
                let id = (pick % 200) as i64;
                let outcome = Account::find(&cluster, id).await.map(|found| {
                    assert_eq!(found, Some(account(id)), "find {id}");
                });
                ("find", Some(Account::shard_for(&id).index()), outcome)
            }
        };
        records.push(Record {
            op,
            shard,
            started,
            took: started.elapsed(),
            failed: outcome.err().map(|e| {
                (
                    shard_named(&e).unwrap_or(u32::MAX),
                    matches!(e, Error::ShardUnavailable { .. }),
                    e.to_string(),
                )
            }),
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    records
}

fn circuit(cluster: &Cluster<Postgres>, shard: &str, endpoint: &str) -> Circuit {
    cluster
        .status()
        .iter()
        .find(|s| s.shard == shard)
        .and_then(|s| s.endpoints.iter().find(|e| e.endpoint == endpoint))
        .map(|e| e.circuit)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_b_crashes_mid_workload_and_comes_back_without_losing_an_acknowledged_write() {
    const TEST: &str = "topology_failover";
    const TIMEOUT: Duration = Duration::from_secs(1);
    // Slack on a loaded 2-core machine on top of the configured timeout.
    const SLACK: Duration = Duration::from_secs(1);
    // Failing fast: no I/O, no waiting; well below TIMEOUT even on a loaded machine.
    const FAST: Duration = Duration::from_millis(500);
    let Some(mut topo) = Topology::start_here(TEST) else {
        return;
    };
    topo.create_databases(TEST).await;
    let cluster = topo
        .builder(TEST)
        .timeout(TIMEOUT)
        .acquire_timeout(TIMEOUT)
        .max_connections(4)
        .health_checks(HealthConfig {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            failures_to_open: 2,
        })
        .connect()
        .await
        .unwrap();
    Account::create_table(&cluster).await.unwrap();
    let preload: Vec<Account> = (0..200).map(account).collect();
    Account::insert_many(&cluster, &preload).await.unwrap();
    let on_1 = preload
        .iter()
        .filter(|r| Account::shard_for(&r.id).index() == 1)
        .count() as i64;
    let replica = cluster.replica_pool("shard_1", 0).unwrap().clone();
    wait_until(
        Duration::from_secs(20),
        "the replica catches up",
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM accounts")
                .fetch_one(&replica)
                .await
                .is_ok_and(|n| n == on_1)
        },
    )
    .await;

    // The mixed workload, on every shard.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let workers: Vec<_> = (0..6)
        .map(|t| tokio::spawn(worker(cluster.clone(), t, stop.clone(), acked.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Crash server B (shard_1, shard_3) under load.
    let crashed = Instant::now();
    tokio::task::block_in_place(|| topo.b.stop()).unwrap();
    let waited = wait_until(Duration::from_secs(6), "B's circuits open", || async {
        circuit(&cluster, "shard_1", "primary") == Circuit::Open
            && circuit(&cluster, "shard_3", "primary") == Circuit::Open
    })
    .await;
    let opened = Instant::now();
    eprintln!("server B down: circuits open {waited:?} after the crash was seen");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // While B is down, deterministic checks beside the workload.
    assert_eq!(circuit(&cluster, "shard_1", "replica_0"), Circuit::Closed);
    assert_eq!(circuit(&cluster, "shard_0", "primary"), Circuit::Closed);
    assert_eq!(circuit(&cluster, "shard_2", "primary"), Circuit::Closed);
    // Shards on A serve reads and writes.
    for shard in [0, 2] {
        let id = key_on(shard, 5);
        assert_eq!(
            Account::find(&cluster, id).await.unwrap(),
            Some(account(id))
        );
        let fresh = account(
            (100_000_000..)
                .find(|id| Account::shard_for(id).index() == shard)
                .unwrap(),
        );
        fresh.insert(&cluster).await.unwrap();
        acked
            .lock()
            .unwrap()
            .balance
            .insert(fresh.id, fresh.balance);
    }
    // Writes to B's shards fail fast, naming the shard and saying why.
    for shard in [1, 3] {
        let row = account(
            (200_000_000..)
                .find(|id| Account::shard_for(id).index() == shard)
                .unwrap(),
        );
        let started = Instant::now();
        let err = row.insert(&cluster).await.unwrap_err();
        let took = started.elapsed();
        match &err {
            Error::ShardUnavailable {
                model, shard: s, ..
            } => {
                assert_eq!(*model, "Account");
                assert_eq!(s.to_string(), format!("shard_{shard}"));
            }
            other => panic!("expected ShardUnavailable, got {other}"),
        }
        let text = err.to_string();
        assert!(text.contains("writes go to the primary only"), "{text}");
        assert!(text.contains("cluster.status()"), "{text}");
        assert!(took < FAST, "a write waited {took:?}");
    }
    // Reads of shard_1 fail over to its replica; shard_3 has none and fails fast.
    let k1 = key_on(1, 2);
    cluster.log().start();
    assert_eq!(
        Account::find(&cluster, k1).await.unwrap(),
        Some(account(k1))
    );
    let executed = cluster.log().stop();
    assert!(
        executed
            .iter()
            .any(|e| e.shard == "shard_1" && e.endpoint == "replica_0"),
        "{executed:?}"
    );
    let started = Instant::now();
    let err = Account::find(&cluster, key_on(3, 2)).await.unwrap_err();
    assert!(
        matches!(&err, Error::ShardUnavailable { shard, .. } if shard.to_string() == "shard_3"),
        "{err}"
    );
    assert!(err.to_string().contains("no replica"), "{err}");
    assert!(started.elapsed() < FAST);
    // A scatter names the shard that is really gone (shard_1's replica answers for it).
    let partial = Account::on_all_shards()
        .allow_partial()
        .count(&cluster)
        .await
        .unwrap();
    let failed: Vec<String> = partial.failed.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(failed, ["shard_3"]);
    let err = Account::on_all_shards().count(&cluster).await.unwrap_err();
    assert!(
        matches!(&err, Error::ShardUnavailable { shard, .. } if shard.to_string() == "shard_3"),
        "{err}"
    );

    // Server B comes back: the health checks close its circuits, writes succeed.
    let restarting = Instant::now();
    tokio::task::block_in_place(|| topo.b.restart()).unwrap();
    let waited = wait_until(Duration::from_secs(10), "B's circuits close", || async {
        circuit(&cluster, "shard_1", "primary") == Circuit::Closed
            && circuit(&cluster, "shard_3", "primary") == Circuit::Closed
    })
    .await;
    let closed = Instant::now();
    eprintln!("server B back: circuits closed {waited:?} after the restart");
    for shard in [1, 3] {
        let row = account(
            (300_000_000..)
                .find(|id| Account::shard_for(id).index() == shard)
                .unwrap(),
        );
        row.insert(&cluster).await.unwrap();
        acked.lock().unwrap().balance.insert(row.id, row.balance);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for w in workers {
        records.extend(w.await.unwrap());
    }

    // What the workload saw.
    let grace = Duration::from_millis(300);
    let mut served_on_a_while_down = 0;
    let mut failed_on_b = 0;
    let mut timed_out = 0;
    let mut replica_reads = 0;
    for r in &records {
        let during = r.started + r.took > crashed && r.started < closed + grace;
        match &r.failed {
            None => {
                if during && matches!(r.shard, Some(0 | 2)) {
                    served_on_a_while_down += 1;
                }
                if r.op == "find"
                    && r.shard == Some(1)
                    && r.started > opened
                    && r.started < restarting
                {
                    replica_reads += 1;
                }
            }
            Some((named, unavailable, message)) => {
                assert!(during, "{} failed outside the outage: {message}", r.op);
                assert!(
                    matches!(r.shard, Some(1 | 3)) && Some(*named) == r.shard,
                    "{} on {:?} failed naming shard_{named}: {message}",
                    r.op,
                    r.shard
                );
                assert!(
                    r.took <= TIMEOUT + SLACK,
                    "{} on shard_{named} failed after {:?}: {message}",
                    r.op,
                    r.took
                );
                assert!(
                    *unavailable || message.contains("did not answer within"),
                    "{message}"
                );
                if r.started > opened && r.started < restarting {
                    // Circuit open: fail fast, as unavailable; shard_1's reads don't fail.
                    let at = r.started - opened;
                    assert!(
                        *unavailable && r.took < FAST,
                        "{} on shard_{named}, {at:?} after the circuits opened, took {:?}: \
                         {message}",
                        r.op,
                        r.took
                    );
                    assert!(
                        r.op == "insert" || r.op == "update" || r.shard == Some(3),
                        "{} on shard_{named}, {at:?} after the circuits opened: {message}",
                        r.op
                    );
                }
                failed_on_b += 1;
                timed_out += usize::from(!*unavailable);
            }
        }
    }
    eprintln!(
        "{} operations: {served_on_a_while_down} served by A during the outage, {failed_on_b} \
         failed on B ({timed_out} of them timed out before the circuit opened, the rest \
         unavailable), {replica_reads} shard_1 reads served by its replica",
        records.len()
    );
    assert!(served_on_a_while_down > 20, "{served_on_a_while_down}");
    assert!(failed_on_b > 0);
    assert!(replica_reads > 0);

    // Every acknowledged write is on its shard, with its last acknowledged value (or a value
    // whose write failed after it: a failed statement may still have committed).
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let mut present: HashMap<i64, (usize, i64)> = HashMap::new();
    for i in 0..SHARDS {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&topo.shard_url(TEST, i))
            .await
            .unwrap();
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, balance FROM accounts")
            .fetch_all(&pool)
            .await
            .unwrap();
        for (id, balance) in rows {
            present.insert(id, (i, balance));
        }
        pool.close().await;
    }
    for (id, balance) in &acked.balance {
        let (shard, found) = present
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged account {id} is gone"));
        assert_eq!(
            *shard as u32,
            Account::shard_for(id).index(),
            "account {id}"
        );
        let maybe = acked.maybe.get(id).map(Vec::as_slice).unwrap_or_default();
        assert!(
            found == balance || maybe.contains(found),
            "account {id}: balance {found}, acknowledged {balance}"
        );
    }
    assert!(acked.balance.len() > 50, "{}", acked.balance.len());
    for r in &preload {
        assert_eq!(present.get(&r.id).map(|p| p.1), Some(r.balance));
    }
    // The restarted server kept its settings.
    let setting: String = sqlx::query_scalar("SHOW max_prepared_transactions")
        .fetch_one(cluster.pool("shard_1").unwrap())
        .await
        .unwrap();
    assert_eq!(setting, "50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_cancels_a_statement_past_statement_timeout_naming_the_shard() {
    const TEST: &str = "topology_statement_timeout";
    let Some(topo) = shared() else { return };
    topo.create_databases(TEST).await;
    let limit = Duration::from_millis(300);
    let cluster = topo
        .builder(TEST)
        .statement_timeout(limit)
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    assert_eq!(cluster.statement_timeout(), Some(limit));
    for i in 0..SHARDS {
        let shown: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(cluster.pool(&format!("shard_{i}")).unwrap())
            .await
            .unwrap();
        assert_eq!(shown, "300ms", "shard_{i}");
    }
    Account::create_table(&cluster).await.unwrap();
    let rows: Vec<Account> = (0..40).map(account).collect();
    Account::insert_many(&cluster, &rows).await.unwrap();

    let k = key_on(2, 1);
    let started = Instant::now();
    let err = Account::query()
        .filter(Account::ID.eq(k).and(sleep_on(3.0, &[])))
        .all(&cluster)
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::Timeout {
            model,
            shards,
            millis,
        } => {
            assert_eq!(*model, "Account");
            assert!(shards.starts_with("shard_2 "), "{err}");
            assert!(shards.contains("57014"), "{err}");
            assert_eq!(*millis, 300);
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(err.to_string().contains("statement_timeout"), "{err}");
    assert!(
        took < Duration::from_millis(2000),
        "cancelled after {took:?}"
    );
    // A cancelled statement says nothing about the shard's health; the shard keeps serving.
    assert_eq!(Account::find(&cluster, k).await.unwrap(), Some(account(k)));
    let status = cluster.status();
    let shard_2 = status.iter().find(|s| s.shard == "shard_2").unwrap();
    assert!(shard_2.endpoints[0].healthy);
    assert_eq!(shard_2.endpoints[0].consecutive_failures, 0);

    // In a scatter, the query fails naming a cancelled shard.
    let err = Account::on_all_shards()
        .filter(sleep_on(3.0, &[Topology::database(TEST, 3)]))
        .count(&cluster)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { shards, .. } if shards.starts_with("shard_3 ")),
        "{err}"
    );
}

#[tokio::test]
async fn statement_timeout_is_accepted_and_inert_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::<Sqlite>::builder()
        .shard("shard_0", dir.path().join("s0.db").display().to_string())
        .statement_timeout(Duration::from_millis(1))
        .connect()
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) \
         SELECT count(*) FROM c",
    )
    .fetch_one(cluster.pool("shard_0").unwrap())
    .await
    .unwrap();
    assert_eq!(n, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_times_out_naming_the_shard_and_other_shards_serve() {
    const TEST: &str = "topology_pool_exhaustion";
    let Some(topo) = shared() else { return };
    topo.create_databases(TEST).await;
    let cluster = topo
        .builder(TEST)
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    Account::create_table(&cluster).await.unwrap();
    let rows: Vec<Account> = (0..40).map(account).collect();
    Account::insert_many(&cluster, &rows).await.unwrap();

    // Hold shard_0's only connection with a 2 s statement.
    let k0 = key_on(0, 0);
    let holder = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            Account::query()
                .filter(Account::ID.eq(k0).and(sleep_on(2.0, &[])))
                .all(&cluster)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let err = Account::find(&cluster, key_on(0, 1)).await.unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::Timeout { model, shards, .. } => {
            assert_eq!(*model, "Account");
            assert!(shards.starts_with("shard_0 (no free connection"), "{err}");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "waited {took:?} for a connection, not ~300 ms"
    );
    // The other shards, on both servers, have pools of their own.
    for shard in 1..4 {
        let id = key_on(shard, 0);
        assert_eq!(
            Account::find(&cluster, id).await.unwrap(),
            Some(account(id))
        );
    }
    assert_eq!(holder.await.unwrap().unwrap(), vec![account(k0)]);
    // Once the connection is back, shard_0 serves again.
    let id = key_on(0, 1);
    assert_eq!(
        Account::find(&cluster, id).await.unwrap(),
        Some(account(id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shard_times_out_by_name_and_partial_returns_the_rest() {
    const TEST: &str = "topology_slow_shard";
    let Some(topo) = shared() else { return };
    topo.create_databases(TEST).await;
    let cluster = topo.builder(TEST).connect().await.unwrap();
    Account::create_table(&cluster).await.unwrap();
    let rows: Vec<Account> = (0..100).map(account).collect();
    Account::insert_many(&cluster, &rows).await.unwrap();
    let slow = sleep_on(3.0, &[Topology::database(TEST, 3)]);

    let started = Instant::now();
    let err = Account::on_all_shards()
        .filter(slow.clone())
        .timeout(Duration::from_millis(400))
        .count(&cluster)
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::Timeout { model, shards, .. } => {
            assert_eq!(*model, "Account");
            assert_eq!(shards, "shard_3", "{err}");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(took < Duration::from_millis(2000), "failed after {took:?}");

    let partial = Account::on_all_shards()
        .filter(slow)
        .order_by(Account::ID, Order::Asc)
        .timeout(Duration::from_millis(400))
        .allow_partial()
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(partial.failed.len(), 1);
    assert_eq!(partial.failed[0].0.to_string(), "shard_3");
    let expected: Vec<Account> = rows
        .into_iter()
        .filter(|r| Account::shard_for(&r.id).index() != 3)
        .collect();
    assert_eq!(partial.value, expected);
    // Routed work on the other shards is unaffected.
    let id = key_on(1, 0);
    assert_eq!(
        Account::find(&cluster, id).await.unwrap(),
        Some(account(id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_on_two_servers_see_only_their_own_rows() {
    const TEST: &str = "topology_thousand_tasks";
    let Some(topo) = shared() else { return };
    topo.create_databases(TEST).await;
    let cluster = topo
        .builder(TEST)
        .acquire_timeout(Duration::from_secs(60))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    Account::create_table(&cluster).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..1_000_i64 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let id = 10_000 + t;
            let mut mine = Account {
                id,
                owner: format!("task {t}"),
                balance: 0,
            };
            mine.insert(&cluster).await.unwrap();
            tokio::task::yield_now().await;
            // Unkeyed reads inside the task's shard context see only that shard.
            let shard = Account::shard_for(&id);
            let seen = grant::with_shard(shard, async {
                tokio::task::yield_now().await;
                Account::query()
                    .filter(Account::OWNER.eq(format!("task {t}")))
                    .all(&cluster)
                    .await
                    .unwrap()
            })
            .await;
            assert_eq!(seen, vec![mine.clone()]);
            mine.balance = t;
            mine.update(&cluster).await.unwrap();
            let back = Account::find(&cluster, id).await.unwrap().unwrap();
            assert_eq!(
                (back.owner.as_str(), back.balance),
                (mine.owner.as_str(), t)
            );
            shard
        }));
    }
    let mut per_shard = [0u32; SHARDS];
    for t in tasks {
        per_shard[t.await.unwrap().index() as usize] += 1;
    }
    assert!(per_shard.iter().all(|&n| n > 150), "{per_shard:?}");
    assert_eq!(Account::query().count(&cluster).await.unwrap(), 1_000);
    let total: Option<i64> = Account::query()
        .sum(Account::BALANCE, &cluster)
        .await
        .unwrap();
    assert_eq!(total, Some((0..1_000).sum()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_connections_is_unavailable_by_name_not_a_pool_timeout() {
    // A loopback port nobody listens on: every connection attempt is refused at once, and the
    // pool retries until its acquire timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("postgres://postgres@127.0.0.1:{port}/none");
    let mut builder = Cluster::<Postgres>::builder()
        .lazy(true)
        .acquire_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(5))
        // Probes record the failures; the circuit stays closed so requests reach the pool.
        .health_checks(HealthConfig {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
            failures_to_open: 1_000,
        });
    for i in 0..SHARDS {
        builder = builder.shard(format!("shard_{i}"), refused.clone());
    }
    let cluster = builder.connect().await.unwrap();
    wait_until(Duration::from_secs(5), "a probe fails", || async {
        cluster.status()[2].endpoints[0].consecutive_failures > 0
    })
    .await;
    let id = key_on(2, 0);
    let started = Instant::now();
    let err = Account::find(&cluster, id).await.unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::ShardUnavailable { model, shard, .. } => {
            assert_eq!(*model, "Account");
            assert_eq!(shard.to_string(), "shard_2");
        }
        other => panic!("expected ShardUnavailable, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("cluster.status()"), "{text}");
    assert!(took < Duration::from_millis(1500), "failed after {took:?}");
}
