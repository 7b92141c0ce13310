//! Errors that say what happened, on PostgreSQL: an endpoint that cannot be connected is
//! reported as what it is — connection refused, unknown host, authentication failed — within
//! the connect timeout, at `connect()`, on a lazy cluster's first query and when a server stops
//! mid-run; `cluster.status()` reflects the statements that failed; pools made by `add_shard`
//! get every option of the builder.
//!
//! The refused and unknown-host cases need no server. The others start their own (or use the
//! shared one); without the PostgreSQL server binaries they skip with a line on stderr, and
//! under `CI=true` they fail.

#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use grant::ClusterBuilder;
use grant::prelude::*;
use grant_sharding::testing::postgres::{PgServer, database_name, own_server_or_skip};
use sea_query::{Condition, Expr};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "err_items")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Item {
    #[primary_key]
    id: i64,
    label: String,
}

/// Placed on three shards, the third added at run time.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "err_items")]
#[shard(strategy = "hash", on = "id", count = 3)]
struct Wide {
    #[primary_key]
    id: i64,
    label: String,
}

fn item(id: i64) -> Item {
    Item {
        id,
        label: format!("item {id}"),
    }
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn two_shards(url: &str) -> ClusterBuilder<Postgres> {
    Cluster::<Postgres>::builder()
        .shard("shard_0", url)
        .shard("shard_1", url)
}

/// `err` is `ShardUnavailable` on one of the model's shards, its message holding every one of
/// `needles`.
fn assert_unavailable(err: &Error, model: &str, needles: &[&str]) {
    match err {
        Error::ShardUnavailable {
            model: m, shard, ..
        } => {
            assert_eq!(*m, model, "{err}");
            assert!(shard.name().starts_with("shard_"), "{err}");
        }
        other => panic!("expected ShardUnavailable, got {other:?}: {other}"),
    }
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }
}

#[tokio::test]
async fn connect_to_a_closed_port_says_refused_within_the_connect_timeout() {
    let port = closed_port();
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/none");
    let started = Instant::now();
    let err = two_shards(&url)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_unavailable(
        &err,
        "-",
        &["refused", "primary", &format!("127.0.0.1:{port}")],
    );
    assert!(!err.to_string().contains("s3cret"), "password shown: {err}");
    assert!(took < Duration::from_secs(4), "failed after {took:?}");
}

#[tokio::test]
async fn connect_to_an_unknown_host_says_so() {
    let started = Instant::now();
    let err = two_shards("postgres://postgres@nonexistent.invalid:5432/none")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_unavailable(&err, "-", &["unknown host", "DNS", "nonexistent.invalid"]);
    assert!(took < Duration::from_secs(4), "failed after {took:?}");
}

#[tokio::test]
async fn a_lazy_cluster_on_a_closed_port_says_refused_and_its_status_shows_it() {
    let port = closed_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/none");
    // The acquire timeout is long: the first statement must not wait for it.
    let cluster = two_shards(&url)
        .lazy(true)
        .acquire_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let status = cluster.status();
    assert!(status[0].endpoints[0].healthy);
    assert_eq!(status[0].endpoints[0].error_rate, 0.0);

    let key = (0..).find(|k| Item::shard_for(k).index() == 0).unwrap();
    let started = Instant::now();
    let err = Item::find(&cluster, key).await.unwrap_err();
    assert_unavailable(&err, "Item", &["shard_0", "refused", "cluster.status()"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failed after {:?}",
        started.elapsed()
    );
    // Known down: the next statements fail at once, each saying why.
    let started = Instant::now();
    let err = Item::query()
        .filter(Item::ID.eq(key))
        .count(&cluster)
        .await
        .unwrap_err();
    assert_unavailable(&err, "Item", &["shard_0", "refused"]);
    let err = item(key).insert(&cluster).await.unwrap_err();
    assert_unavailable(&err, "Item", &["shard_0"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let shard_0 = &cluster.status()[0].endpoints[0];
    assert!(!shard_0.healthy, "{shard_0:?}");
    assert!(shard_0.error_rate > 0.0, "{shard_0:?}");
    assert!(shard_0.consecutive_failures >= 3, "{shard_0:?}");
    let last = shard_0.last_error.as_deref().unwrap_or_default();
    assert!(last.contains("refused"), "{last}");
    // The other shard was never asked: untouched.
    let shard_1 = &cluster.status()[1].endpoints[0];
    assert!(shard_1.healthy && shard_1.error_rate == 0.0, "{shard_1:?}");
}

/// Prepends `line` to the server's `pg_hba.conf` and reloads it.
async fn require_password(server: &PgServer, line: &str) {
    let hba = server.data_dir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("{line}\n{old}")).unwrap();
    let admin = pg::pool(&server.url("postgres")).await;
    let reloaded: bool = sqlx::query_scalar("SELECT pg_reload_conf()")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(reloaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_says_authentication_failed() {
    const TEST: &str = "errors_wrong_password";
    let Some(server) = tokio::task::block_in_place(|| own_server_or_skip(TEST)) else {
        return;
    };
    let admin = pg::pool(&server.url("postgres")).await;
    sqlx::query("CREATE ROLE grant_pw LOGIN PASSWORD 'right'")
        .execute(&admin)
        .await
        .unwrap();
    require_password(&server, "host all grant_pw 127.0.0.1/32 scram-sha-256").await;
    let url = format!(
        "postgres://grant_pw:wrong@127.0.0.1:{}/postgres",
        server.port()
    );
    let err = two_shards(&url)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert_unavailable(&err, "-", &["authentication failed", "28P01", "password"]);
    assert!(!err.to_string().contains("wrong@"), "password shown: {err}");
    // The right one connects.
    let url = url.replace(":wrong@", ":right@");
    two_shards(&url).connect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_run_is_unavailable_refused_and_unhealthy_until_it_returns() {
    const TEST: &str = "errors_stopped_mid_run";
    let Some(mut server) = tokio::task::block_in_place(|| own_server_or_skip(TEST)) else {
        return;
    };
    let admin = pg::pool(&server.url("postgres")).await;
    // The default acquire timeout (10 s): sqlx's pool retries refused connections until then,
    // yet each failure below is reported within about the connect timeout (1 s).
    let mut builder = Cluster::<Postgres>::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(15));
    for i in 0..2 {
        let db = database_name(TEST, &format!("shard_{i}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
            .execute(&admin)
            .await
            .unwrap();
        builder = builder.shard(format!("shard_{i}"), server.url(&db));
    }
    admin.close().await;
    let cluster = builder.connect().await.unwrap();
    Item::create_table(&cluster).await.unwrap();
    let rows: Vec<Item> = (0..20).map(item).collect();
    Item::insert_many(&cluster, &rows).await.unwrap();
    assert_eq!(Item::on_all_shards().count(&cluster).await.unwrap(), 20);

    tokio::task::block_in_place(|| server.stop()).unwrap();
    let within = |started: Instant, what: &str| {
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "{what} took {took:?}");
    };
    let started = Instant::now();
    let err = Item::on_all_shards().count(&cluster).await.unwrap_err();
    assert_unavailable(&err, "Item", &["refused"]);
    within(started, "the first count");
    let started = Instant::now();
    let err = Item::find(&cluster, 3).await.unwrap_err();
    assert_unavailable(&err, "Item", &["refused"]);
    within(started, "find");
    let started = Instant::now();
    let err = Item::on_all_shards()
        .order_by(Item::ID, Order::Asc)
        .all(&cluster)
        .await
        .unwrap_err();
    assert_unavailable(&err, "Item", &["refused"]);
    within(started, "the ordered query");
    let started = Instant::now();
    let err = item(100).insert(&cluster).await.unwrap_err();
    assert_unavailable(&err, "Item", &[]);
    within(started, "insert");
    // Every statement's failure counts: three in a row open a shard's circuit.
    for i in 0..2 {
        for _ in 0..3 {
            let err = Item::on_shard(ShardId::new(i))
                .count(&cluster)
                .await
                .unwrap_err();
            assert_unavailable(&err, "Item", &[&format!("shard_{i}")]);
        }
    }
    for shard in cluster.status() {
        let primary = &shard.endpoints[0];
        assert!(!primary.healthy, "{}: {primary:?}", shard.shard);
        assert!(primary.error_rate > 0.0, "{}: {primary:?}", shard.shard);
        let last = primary.last_error.as_deref().unwrap_or_default();
        assert!(last.contains("refused"), "{}: {last}", shard.shard);
    }

    // Back: without health checks, a trial statement per interval closes the circuit.
    tokio::task::block_in_place(|| server.restart()).unwrap();
    let started = Instant::now();
    loop {
        match Item::on_all_shards().count(&cluster).await {
            Ok(n) => {
                assert_eq!(n, 20);
                break;
            }
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(15),
                "not back after {:?}: {e}",
                started.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.status().iter().all(|s| s.endpoints[0].healthy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_added_at_run_time_gets_the_statement_timeout() {
    const TEST: &str = "errors_add_shard_statement_timeout";
    let Some(env) = pg::env().await else { return };
    let limit = Duration::from_millis(300);
    let mut builder = Cluster::<Postgres>::builder()
        .statement_timeout(limit)
        .timeout(Duration::from_secs(10));
    for i in 0..2 {
        let url = env
            .create_database(&database_name(TEST, &format!("shard_{i}")))
            .await
            .unwrap();
        builder = builder.shard(format!("shard_{i}"), url);
    }
    let cluster = builder.connect().await.unwrap();
    let url = env
        .create_database(&database_name(TEST, "shard_2"))
        .await
        .unwrap();
    let added = cluster.add_shard("shard_2", &url).await.unwrap();
    assert_eq!(added.name(), "shard_2");
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(cluster.pool("shard_2").unwrap())
        .await
        .unwrap();
    assert_eq!(shown, "300ms");
    sqlx::query("CREATE TABLE err_items (id BIGINT PRIMARY KEY, label TEXT NOT NULL)")
        .execute(cluster.pool("shard_2").unwrap())
        .await
        .unwrap();
    let sleep =
        Cond::<Wide>::raw(Condition::all().add(Expr::cust("(SELECT true FROM pg_sleep(3))")));
    let started = Instant::now();
    let err = Wide::on_shard(added)
        .filter(sleep)
        .count(&cluster)
        .await
        .unwrap_err();
    match &err {
        Error::Timeout { shards, millis, .. } => {
            assert!(shards.starts_with("shard_2 "), "{err}");
            assert!(shards.contains("57014"), "{err}");
            assert_eq!(*millis, 300);
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Pools check no connection at checkout: the server ending every session (as
/// `pg_terminate_backend`, an `idle_session_timeout` or a failover does) costs no read an
/// error — a read whose connection turns out broken runs once more on another — and the
/// connections that idled through it are pinged before their next statement, so a write right
/// after the first read finds a live one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_ended_by_the_server_cost_no_read_an_error() {
    const TEST: &str = "errors_sessions_ended";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 2).await;
    Item::create_table(&cluster).await.unwrap();
    let rows: Vec<Item> = (0..40).map(item).collect();
    Item::insert_many(&cluster, &rows).await.unwrap();
    let admin = pg::pool(&env.url("postgres")).await;
    let databases: Vec<String> = (0..2)
        .map(|i| database_name(TEST, &format!("shard_{i}")))
        .collect();
    for round in 0..5 {
        // Several pooled connections per shard, all idle now.
        let finds = (0..8).map(|k| Item::find(&cluster, k));
        for found in futures_util::future::join_all(finds).await {
            assert!(found.unwrap().is_some());
        }
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
        )
        .bind(&databases)
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(ended.len() >= 2, "round {round}: ended {}", ended.len());
        // Within the alive-bypass window: no ping would have caught these.
        assert_eq!(Item::find(&cluster, 3).await.unwrap(), Some(item(3)));
        assert_eq!(
            Item::on_all_shards().count(&cluster).await.unwrap(),
            40 + round
        );
        let all = Item::on_all_shards()
            .order_by(Item::ID, Order::Asc)
            .all(&cluster)
            .await
            .unwrap();
        assert_eq!(all.len() as u64, 40 + round);
        item(1_000 + round as i64).insert(&cluster).await.unwrap();
    }
    for shard in cluster.status() {
        assert!(shard.endpoints[0].healthy, "{shard:?}");
    }
}

/// A cluster on `shards` fresh databases of test `test` with `max_connections` per pool,
/// holding items 0 to 19.
async fn small_pools(env: &pg::PgEnv, test: &str, shards: usize, max: u32) -> Cluster<Postgres> {
    let mut builder = Cluster::<Postgres>::builder()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(3));
    for i in 0..shards {
        let url = env
            .create_database(&database_name(test, &format!("shard_{i}")))
            .await
            .unwrap();
        builder = builder.shard(format!("shard_{i}"), url);
    }
    let cluster = builder.connect().await.unwrap();
    Item::create_table(&cluster).await.unwrap();
    Item::insert_many(&cluster, &(0..20).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    cluster
}

/// Grant keeps the connection of a finished statement checked out for the next one (so no
/// statement pays sqlx's release ping). Those parked connections must leave room for code
/// that uses the pool directly and for transactions: with two connections per pool, right
/// after a burst of statements both can be taken from the pool at once, and two transactions
/// run side by side, well within the acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_leave_room_for_the_pool_s_other_users() {
    const TEST: &str = "errors_parked_room";
    let Some(env) = pg::env().await else { return };
    let cluster = small_pools(env, TEST, 2, 2).await;
    let shard = Item::shard_for(&0).name();
    let on_shard: Vec<i64> = (0..20)
        .filter(|k| Item::shard_for(k).name() == shard)
        .collect();
    for round in 0..3 {
        let finds = (0..16).map(|k| Item::find(&cluster, k % 20));
        for found in futures_util::future::join_all(finds).await {
            assert!(found.unwrap().is_some());
        }
        let pool = cluster.pool(&shard).unwrap();
        let started = Instant::now();
        let (a, b) = tokio::join!(pool.acquire(), pool.acquire());
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: two connections of a pool of two took {:?}",
            started.elapsed()
        );
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *a)
            .await
            .unwrap();
        let two: i32 = sqlx::query_scalar("SELECT 2")
            .fetch_one(&mut *b)
            .await
            .unwrap();
        assert_eq!((one, two), (1, 2));
        drop((a, b));
        // Two transactions on the shard at once, each holding a connection to its end.
        let started = Instant::now();
        let transfer = |k: i64| {
            let cluster = cluster.clone();
            async move {
                let mut tx = cluster.begin().await.unwrap();
                let mut row = item(k);
                row.label = format!("round {round}");
                tx.update(&row).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.commit().await.unwrap();
            }
        };
        tokio::join!(transfer(on_shard[0]), transfer(on_shard[1]));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "round {round}: two transactions took {:?}",
            started.elapsed()
        );
        for k in &on_shard[..2] {
            let row = Item::find(&cluster, *k).await.unwrap().unwrap();
            assert_eq!(row.label, format!("round {round}"));
        }
    }
    // Parked connections count as idle: once the statements are done, none is in use.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let busy: u32 = cluster
            .status()
            .iter()
            .flat_map(|s| s.endpoints.iter().map(|e| e.in_use))
            .sum();
        if busy == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{busy} connections still in use");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A statement dropped half-way (the caller's own timeout) must not leave its connection
/// parked for the next statement, which would then wait for the abandoned one to finish
/// (or read its rows). The connection goes back to the pool, which settles it; the next
/// statements get ready connections at once and the right answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_dropped_half_way_leaves_no_busy_connection_parked() {
    const TEST: &str = "errors_dropped_half_way";
    let Some(env) = pg::env().await else { return };
    // Room for each round's abandoned connection, which stays busy until its sleep ends.
    let cluster = small_pools(env, TEST, 2, 8).await;
    let shard = Item::shard_for(&0);
    for round in 0..3 {
        // Connections parked by finished statements.
        for k in 0..6 {
            assert!(Item::find(&cluster, k).await.unwrap().is_some());
        }
        let sleep =
            Cond::<Item>::raw(Condition::all().add(Expr::cust("(SELECT true FROM pg_sleep(2))")));
        let slow = Item::on_shard(shard).filter(sleep).count(&cluster);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slow)
                .await
                .is_err(),
            "round {round}: the sleep finished early"
        );
        for k in 0..20 {
            let started = Instant::now();
            assert_eq!(Item::find(&cluster, k).await.unwrap(), Some(item(k)));
            assert!(
                started.elapsed() < Duration::from_millis(700),
                "round {round}: find({k}) waited {:?} (behind the abandoned statement?)",
                started.elapsed()
            );
        }
        assert_eq!(Item::on_all_shards().count(&cluster).await.unwrap(), 20);
    }
}
