//! The PostgreSQL test harness itself: a server starts, databases are per test, a server
//! the process never drops is still stopped and removed when the process exits, and a
//! streaming replica follows its primary.

#[path = "common/pg.rs"]
mod pg;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use grant_sharding::testing::postgres::{Collation, PgServer};

/// Set in the child process of `a_leaked_server_is_removed_when_the_process_exits`.
const CHILD_VAR: &str = "GRANT_PG_HARNESS_LEAK_CHILD";

#[tokio::test]
async fn databases_are_fresh_and_per_test() {
    let Some(env) = pg::env().await else { return };
    let started = Instant::now();
    let url = env.database("pg_harness_fresh").await;
    let created = started.elapsed();
    let pool = pg::pool(&url).await;
    sqlx::query("CREATE TABLE t (x BIGINT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // Creating it again drops the old one first. (Not on a GRANT_PG_URL server: dropping a
    // database forces a checkpoint, which takes seconds there with fsync on.)
    if env.server().is_some() {
        let again = env.database("pg_harness_fresh").await;
        assert_eq!(again, url);
    }
    let pool = pg::pool(&url).await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let expected_tables = if env.server().is_some() { 0 } else { 1 };
    assert_eq!(tables, expected_tables);
    // Text sorts by the locale (ICU en-US), as in most production databases, not by bytes.
    let sort = "SELECT s FROM (VALUES ('b'), ('B'), ('a'), ('é'), ('日本'), (''), ('_x')) v(s) \
                ORDER BY s";
    let sorted: Vec<String> = sqlx::query_scalar(sort).fetch_all(&pool).await.unwrap();
    assert_eq!(sorted, ["", "_x", "a", "b", "B", "é", "日本"]);
    let provider: String = sqlx::query_scalar(
        "SELECT datlocprovider::text || ' ' || COALESCE(daticulocale, '') FROM pg_database \
         WHERE datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(provider, "i en-US");
    // Byte order only where a test asks for it.
    let c_url = env.database_with("pg_harness_fresh_c", Collation::C).await;
    let c_pool = pg::pool(&c_url).await;
    let bytes: Vec<String> = sqlx::query_scalar(sort).fetch_all(&c_pool).await.unwrap();
    let mut expected = bytes.clone();
    expected.sort();
    assert_eq!(bytes, expected);
    assert_ne!(bytes, sorted);
    c_pool.close().await;
    pool.close().await;

    let started = Instant::now();
    let cluster = env.cluster("pg_harness_fresh", 8).await;
    eprintln!(
        "pg_harness: one database in {created:?}, an 8-shard cluster in {:?}",
        started.elapsed()
    );
    assert_eq!(
        cluster.shard_names().collect::<Vec<_>>(),
        (0..8).map(|i| format!("shard_{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn a_leaked_server_is_removed_when_the_process_exits() {
    if std::env::var_os(CHILD_VAR).is_some() {
        // The child: start a server, never drop it, exit.
        let server = PgServer::start().expect("start PostgreSQL in the child");
        println!(
            "LEAKED {} {}",
            server.port(),
            server.data_dir().parent().unwrap().display()
        );
        std::mem::forget(server);
        return;
    }
    // Same decision as every other test: skip, or fail under CI.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(env) = rt.block_on(pg::env()) else {
        return;
    };
    if env.server().is_none() {
        eprintln!("pg_harness: GRANT_PG_URL names an external server: no leak test");
        return;
    }
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_leaked_server_is_removed_when_the_process_exits",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("LEAKED ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("child printed no server: {stdout}"));
    let mut words = line.split_whitespace();
    let port: u16 = words.next().unwrap().parse().unwrap();
    let dir = PathBuf::from(words.next().unwrap());
    // The watchdog notices the exit at once; allow for a slow machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (dir.exists() || listening(port)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!listening(port), "a server still listens on port {port}");
    eprintln!(
        "pg_harness: a child process started a server, exited, and the watchdog removed it, \
         in {:?}",
        started.elapsed()
    );
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[tokio::test]
async fn a_replica_follows_its_primary() {
    let Some(env) = pg::env().await else { return };
    let Some(primary) = env.server() else {
        eprintln!("pg_harness: GRANT_PG_URL names an external server: no replica test");
        return;
    };
    let url = env.database("pg_harness_replica").await;
    let pool = pg::pool(&url).await;
    sqlx::query("CREATE TABLE t (x BIGINT)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1), (2)")
        .execute(&pool)
        .await
        .unwrap();
    let started = Instant::now();
    let replica = tokio::task::spawn_blocking(|| primary.start_replica())
        .await
        .unwrap()
        .unwrap();
    let replica_url = replica.url(&pg::database_name("pg_harness_replica", "all"));
    let replica_pool = pg::pool(&replica_url).await;
    let sum: i64 = sqlx::query_scalar("SELECT SUM(x)::BIGINT FROM t")
        .fetch_one(&replica_pool)
        .await
        .unwrap();
    assert_eq!(sum, 3);
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&replica_pool)
        .await
        .unwrap();
    assert!(in_recovery, "the replica is a standby");
    // Writes stream over.
    sqlx::query("INSERT INTO t VALUES (4)")
        .execute(&pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sum: i64 = sqlx::query_scalar("SELECT SUM(x)::BIGINT FROM t")
            .fetch_one(&replica_pool)
            .await
            .unwrap();
        if sum == 7 {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Read-only.
    let err = sqlx::query("INSERT INTO t VALUES (8)")
        .execute(&replica_pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    replica_pool.close().await;
    pool.close().await;
    let dir = replica.data_dir().parent().unwrap().to_path_buf();
    let port = replica.port();
    tokio::task::spawn_blocking(|| drop(replica)).await.unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!listening(port));
    eprintln!("pg_harness: a replica starts in {:?}", started.elapsed());
}
