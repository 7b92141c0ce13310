//! Failing and slow shards: errors name the shard, arrive within the timeout, cancel the rest;
//! `allow_partial` returns the healthy shards' rows and the failed list.

mod common;

use std::time::{Duration, Instant};

use common::{User, tempdir, user};
use grant::prelude::*;
use sea_query::{Condition, Expr};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// 4 SQLite file shards holding users 1..=100; shard `slow` (if any) sleeps `delay` in every
/// statement that uses [`wait_here`].
async fn cluster(dir: &std::path::Path, slow: Option<(usize, Duration)>) -> Cluster<Sqlite> {
    let mut pools = Vec::new();
    for i in 0..4 {
        let delay = match slow {
            Some((s, d)) if s == i => d,
            _ => Duration::ZERO,
        };
        let options = SqliteConnectOptions::new()
            .filename(dir.join(format!("shard_{i}.db")))
            .create_if_missing(true)
            .collation("grant_delay", move |a: &str, b: &str| {
                std::thread::sleep(delay);
                a.cmp(b)
            });
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        pools.push((format!("shard_{i}"), pool));
    }
    Cluster::from_pools(pools, Duration::from_secs(30)).unwrap()
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct User4 {
    #[primary_key]
    id: i64,
    name: String,
}

async fn load(cluster: &Cluster<Sqlite>) {
    User4::create_table(cluster).await.unwrap();
    let rows: Vec<User4> = (1..=100)
        .map(|id| User4 {
            id,
            name: user(id).name,
        })
        .collect();
    User4::insert_many(cluster, &rows).await.unwrap();
}

/// A condition that makes a shard wait (its `grant_delay` collation sleeps) and is true
/// everywhere.
fn wait4() -> Cond<User4> {
    Cond::raw(Condition::all().add(Expr::cust("'a' = 'a' COLLATE grant_delay")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shard_times_out_by_name_and_partial_returns_the_rest() {
    let dir = tempdir();
    let slow = 2;
    let cluster = cluster(dir.path(), Some((slow, Duration::from_secs(3)))).await;
    load(&cluster).await;

    let started = Instant::now();
    let err = User4::on_all_shards()
        .filter(wait4())
        .timeout(Duration::from_millis(300))
        .all(&cluster)
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::Timeout { model, shards, .. } => {
            assert_eq!(*model, "User4");
            assert_eq!(shards, "shard_2", "{err}");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(
        took < Duration::from_millis(2500),
        "failed after {took:?}, not within the timeout"
    );

    // The same with a count (scatter path) and with an ordered merge (streaming path).
    let err = User4::on_all_shards()
        .filter(wait4())
        .timeout(Duration::from_millis(300))
        .count(&cluster)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { shards, .. } if shards == "shard_2"),
        "{err}"
    );

    let partial = User4::on_all_shards()
        .filter(wait4())
        .order_by(User4::ID, Order::Asc)
        .timeout(Duration::from_millis(300))
        .allow_partial()
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(partial.failed.len(), 1);
    assert_eq!(partial.failed[0].0, ShardId::new(2));
    assert!(matches!(partial.failed[0].1, Error::Timeout { .. }));
    let expected: Vec<i64> = (1..=100)
        .filter(|id| User4::shard_for(id).index() != 2)
        .collect();
    assert_eq!(
        partial.value.iter().map(|u| u.id).collect::<Vec<_>>(),
        expected
    );
    assert!(!partial.is_complete());

    let counted = User4::on_all_shards()
        .filter(wait4())
        .timeout(Duration::from_millis(300))
        .allow_partial()
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(counted.value, expected.len() as u64);
    assert_eq!(counted.failed.len(), 1);

    // Queries that don't need the slow shard are unaffected.
    let id = (1..).find(|id| User4::shard_for(id).index() != 2).unwrap();
    assert!(User4::find(&cluster, id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_shard_fails_the_query_by_name_and_cancels_the_rest() {
    let dir = tempdir();
    let good = cluster(dir.path(), Some((1, Duration::from_secs(3)))).await;
    load(&good).await;
    // The same shards, but shard_3 lives in a directory that does not exist.
    let mut builder = Cluster::<Sqlite>::builder()
        .lazy(true)
        .acquire_timeout(Duration::from_secs(2));
    for i in 0..3 {
        builder = builder.shard(
            format!("shard_{i}"),
            dir.path()
                .join(format!("shard_{i}.db"))
                .display()
                .to_string(),
        );
    }
    builder = builder.shard("shard_3", "/nonexistent-grant-dir/shard_3.db");
    let cluster = builder.connect().await.unwrap();

    let started = Instant::now();
    let err = User4::on_all_shards().all(&cluster).await.unwrap_err();
    match &err {
        Error::ShardUnavailable { model, shard, .. } => {
            assert_eq!(*model, "User4");
            assert_eq!(*shard, ShardId::new(3));
        }
        other => panic!("expected ShardUnavailable, got {other:?}"),
    }
    assert!(err.to_string().contains("shard_3"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let partial = User4::on_all_shards()
        .allow_partial()
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(partial.failed.len(), 1);
    assert_eq!(partial.failed[0].0, ShardId::new(3));
    let mut ids: Vec<i64> = partial.value.iter().map(|u| u.id).collect();
    ids.sort();
    let expected: Vec<i64> = (1..=100)
        .filter(|id| User4::shard_for(id).index() != 3)
        .collect();
    assert_eq!(ids, expected);

    // Routed work on healthy shards keeps going.
    let id = (1..).find(|id| User4::shard_for(id).index() == 0).unwrap();
    assert!(User4::find(&cluster, id).await.unwrap().is_some());

    // One shard failing fast cancels the others: the slow shard (shard_1 sleeps 3 s in
    // `good`'s pools) does not hold the error back.
    let mixed = Cluster::from_pools(
        vec![
            ("shard_0".to_string(), good.pool("shard_0").unwrap().clone()),
            ("shard_1".to_string(), good.pool("shard_1").unwrap().clone()),
            ("shard_2".to_string(), good.pool("shard_2").unwrap().clone()),
            (
                "shard_3".to_string(),
                cluster.pool("shard_3").unwrap().clone(),
            ),
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    let started = Instant::now();
    let err = User4::on_all_shards()
        .filter(wait4())
        .count(&mixed)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ShardUnavailable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "the error waited for the slow shard: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn statement_errors_name_model_and_shard() {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    // No table: the schema check says so, naming the model, the table and the shard.
    let err = User::find(&cluster, 7).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::SchemaMismatch { .. }) && msg.contains("does not exist"),
        "{err:?}: {msg}"
    );
    assert!(
        msg.contains("User") && msg.contains(&User::shard_for(&7).to_string()),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_times_out_instead_of_hanging() {
    let dir = tempdir();
    let mut builder = Cluster::<Sqlite>::builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200));
    for i in 0..4 {
        builder = builder.shard(
            format!("shard_{i}"),
            dir.path()
                .join(format!("shard_{i}.db"))
                .display()
                .to_string(),
        );
    }
    let cluster = builder.connect().await.unwrap();
    load(&cluster).await;
    let held = cluster.pool("shard_1").unwrap().acquire().await.unwrap();
    let id = (1..).find(|id| User4::shard_for(id).index() == 1).unwrap();
    let started = Instant::now();
    let err = User4::find(&cluster, id).await.unwrap_err();
    match &err {
        Error::Timeout { model, shards, .. } => {
            assert_eq!(*model, "User4");
            assert!(shards.contains("shard_1"), "{err}");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Other shards are unaffected, and the shard recovers once the connection is back.
    let other = (1..).find(|id| User4::shard_for(id).index() == 0).unwrap();
    assert!(User4::find(&cluster, other).await.unwrap().is_some());
    drop(held);
    assert!(User4::find(&cluster, id).await.unwrap().is_some());
}
