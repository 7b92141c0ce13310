//! The `directory` strategy on real databases (SQLite files and PostgreSQL): key → shard entries
//! in a directory table on a designated shard, recorded before the row is written, cached in
//! process, with the round-robin, least-rows and explicit policies, and shards added at run time.

mod common;
#[path = "common/pg.rs"]
mod pg;

use grant::prelude::*;
use grant::{Backend, FromShardRow, Placement};
use std::time::Duration;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tenants")]
#[shard(
    strategy = "directory",
    on = "tenant_id",
    count = 3,
    policy = "round_robin"
)]
struct Tenant {
    #[primary_key]
    tenant_id: i64,
    name: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "directory", on = "org", count = 3, home = "shard_2")]
struct Account {
    #[primary_key]
    org: String,
    #[primary_key]
    id: i64,
    balance: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "vips")]
#[shard(strategy = "directory", on = "id", count = 3, policy = "explicit")]
struct Vip {
    #[primary_key]
    id: i64,
    name: String,
}

fn tenant(id: i64) -> Tenant {
    Tenant {
        tenant_id: id,
        name: format!("tenant {id}"),
    }
}

fn directory_of<M: Model, DB: Backend>(cluster: &Cluster<DB>) -> std::sync::Arc<grant::Directory> {
    match cluster.placement::<M>().map(|s| s.placement.clone()) {
        Some(Placement::Directory(d)) => d,
        other => panic!("expected a directory placement, got {other:?}"),
    }
}

/// The checks every backend passes. `reopen` connects a second cluster to the same databases
/// (another process, with an empty cache).
async fn suite<DB: Backend, F, Fut>(cluster: &Cluster<DB>, reopen: F)
where
    Tenant: FromShardRow<DB>,
    Account: FromShardRow<DB>,
    Vip: FromShardRow<DB>,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Cluster<DB>>,
{
    Tenant::create_table(cluster).await.unwrap();
    Account::create_table(cluster).await.unwrap();
    Vip::create_table(cluster).await.unwrap();

    // Pure routing cannot know a directory model's shard, and says so.
    assert!(Tenant::shard_for(&1).is_unplaced());
    let err = Tenant::try_shard_for(&1).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("directory"), "{err}");

    // Round robin: 30 new tenants, 10 per shard; each entry recorded before its row.
    cluster.log().start();
    for id in 1..=30 {
        tenant(id).insert(cluster).await.unwrap();
    }
    let log = cluster.log().stop();
    let first_insert = log
        .iter()
        .position(|e| e.sql.contains("\"tenants\""))
        .unwrap();
    let first_entry = log
        .iter()
        .position(|e| e.sql.contains("grant_directory") && e.sql.starts_with("INSERT"))
        .unwrap();
    assert!(
        first_entry < first_insert,
        "the directory entry is written before the row: {log:#?}"
    );
    let d = cluster.distribution::<Tenant>().await.unwrap();
    assert_eq!(d.total(), 30);
    for s in d.shards() {
        assert_eq!(s.rows, 10, "{d}");
    }

    // A cache hit: exactly one statement, on the tenant's shard, none to the directory.
    cluster.log().start();
    let t7 = Tenant::find(cluster, 7).await.unwrap().unwrap();
    let log = cluster.log().stop();
    assert_eq!(t7, tenant(7));
    assert_eq!(log.len(), 1, "{log:#?}");
    let dir = directory_of::<Tenant, DB>(cluster);
    assert_eq!(
        Some(log[0].shard.as_str()),
        dir.cached_key(&7_i64).map(|s| s.name()).as_deref()
    );

    // An unknown key: one lookup on the home shard, then None — no shard scanned.
    cluster.log().start();
    assert_eq!(Tenant::find(cluster, 999).await.unwrap(), None);
    let log = cluster.log().stop();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].shard, "shard_0");
    assert!(log[0].sql.contains("grant_directory"), "{}", log[0].sql);

    // Queries with keys visit only their shards; unknown keys visit none.
    let q = Tenant::query().filter(Tenant::TENANT_ID.is_in([1_i64, 2, 999]));
    let shards = q.shards_on(cluster).await.unwrap();
    assert_eq!(shards.len(), 2, "{shards:?}");
    let mut rows = q.all(cluster).await.unwrap();
    rows.sort_by_key(|t| t.tenant_id);
    assert_eq!(rows, vec![tenant(1), tenant(2)]);
    assert!(
        Tenant::query()
            .filter(Tenant::TENANT_ID.eq(999))
            .shards_on(cluster)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(Tenant::query().count(cluster).await.unwrap(), 30);

    // Update and delete go to the key's shard; unknown keys are not found.
    let mut renamed = tenant(7);
    renamed.name = "renamed".into();
    renamed.update(cluster).await.unwrap();
    assert_eq!(
        Tenant::find(cluster, 7).await.unwrap().unwrap().name,
        "renamed"
    );
    let err = tenant(998).update(cluster).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(tenant(30).delete(cluster).await.unwrap());
    assert!(!tenant(30).delete(cluster).await.unwrap());
    assert!(!tenant(997).delete(cluster).await.unwrap());

    // Durable: another process (empty cache) finds every tenant through the table.
    let other = reopen().await;
    for id in 1..30 {
        let found = Tenant::find(&other, id).await.unwrap().unwrap();
        assert_eq!(found.tenant_id, id);
    }
    assert_eq!(Tenant::find(&other, 999).await.unwrap(), None);
    // It agrees with this process on every key, and keeps the key's shard on re-insert.
    let there = directory_of::<Tenant, DB>(&other);
    for id in 1..30_i64 {
        assert_eq!(
            there.cached_key(&id).map(|s| s.name()),
            dir.cached_key(&id).map(|s| s.name())
        );
    }
    tenant(30).insert(&other).await.unwrap();
    assert!(Tenant::find(cluster, 30).await.unwrap().is_some());

    // Least rows (the default policy), directory on shard_2: five orgs pinned to shard_0
    // first, then new orgs fill shard_1 and shard_2 until every shard holds five rows.
    let accounts = directory_of::<Account, DB>(cluster);
    assert_eq!(accounts.home().name(), "shard_2");
    for i in 0..5 {
        let org = format!("pinned-{i}");
        accounts
            .assign::<Account, DB, _>(cluster, org.as_str(), "shard_0")
            .await
            .unwrap();
        Account {
            org,
            id: i,
            balance: 0,
        }
        .insert(cluster)
        .await
        .unwrap();
    }
    for i in 0..10 {
        Account {
            org: format!("new-é-{i}"),
            id: i,
            balance: i,
        }
        .insert(cluster)
        .await
        .unwrap();
    }
    let d = cluster.distribution::<Account>().await.unwrap();
    for s in d.shards() {
        assert_eq!(s.rows, 5, "{d}");
    }
    // Reassigning a key that has a shard is refused (that is resharding).
    let err = accounts
        .assign::<Account, DB, _>(cluster, "pinned-0", "shard_1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("resharding"), "{err}");

    // Explicit policy: an unassigned key is refused, naming it; assigned keys land there.
    let vip = Vip {
        id: 42,
        name: "Ada".into(),
    };
    let err = vip.insert(cluster).await.unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(err.to_string().contains("42"), "{err}");
    assert!(err.to_string().contains("assign"), "{err}");
    let vips = directory_of::<Vip, DB>(cluster);
    vips.assign::<Vip, DB, _>(cluster, &42_i64, "shard_1")
        .await
        .unwrap();
    vip.insert(cluster).await.unwrap();
    let on_1 = Vip::on_shard(ShardId::new(1)).all(cluster).await.unwrap();
    assert_eq!(on_1, vec![vip.clone()]);
}

#[tokio::test]
async fn directory_on_sqlite_files() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 3).await;
    let path = dir.path().to_owned();
    suite(&cluster, || common::sqlite_cluster(&path, 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_on_postgres() {
    const TEST: &str = "directory_on_postgres";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 3).await;
    suite(&cluster, || async {
        let mut builder = Cluster::<Postgres>::builder();
        for i in 0..3 {
            builder = builder.shard(format!("shard_{i}"), pg::shard_url(env, TEST, i));
        }
        builder.connect().await.unwrap()
    })
    .await;
}

/// A shard added to the live cluster and the directory receives new keys at once; a closed
/// shard receives none, and its keys stay readable.
#[tokio::test]
async fn directory_gains_and_closes_shards_at_run_time() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 3).await;
    Tenant::create_table(&cluster).await.unwrap();
    for id in 1..=6 {
        tenant(id).insert(&cluster).await.unwrap();
    }
    let added = cluster
        .add_shard(
            "shard_3",
            &dir.path().join("shard_3.db").display().to_string(),
        )
        .await
        .unwrap();
    assert_eq!(added.name(), "shard_3");
    let directory = directory_of::<Tenant, Sqlite>(&cluster);
    directory.add_shard("shard_3");
    Tenant::create_table(&cluster).await.unwrap(); // now on shard_3 too
    for id in 7..=14 {
        tenant(id).insert(&cluster).await.unwrap();
    }
    let d = cluster.distribution::<Tenant>().await.unwrap();
    assert_eq!(d.shards().len(), 4, "{d}");
    assert_eq!(d.rows(directory.shards()[3]), Some(2), "{d}");

    directory.close_shard("shard_0").unwrap();
    let before = d.rows(directory.shards()[0]).unwrap();
    for id in 15..=20 {
        tenant(id).insert(&cluster).await.unwrap();
    }
    let d = cluster.distribution::<Tenant>().await.unwrap();
    assert_eq!(d.rows(directory.shards()[0]), Some(before), "{d}");
    assert_eq!(d.total(), 20);
    for id in 1..=20 {
        assert!(Tenant::find(&cluster, id).await.unwrap().is_some(), "{id}");
    }
}

/// Polls `check` every 5 ms until it holds (10 s at most).
async fn wait_for(what: &str, check: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "least_rows_members")]
#[shard(strategy = "directory", on = "id", count = 2, policy = "least_rows")]
struct Member {
    #[primary_key]
    id: i64,
    name: String,
}

/// A least-rows insert holds the model's gate (read) while the directory counts each shard's
/// rows; the counting must not take the gate again, or a writer queued meanwhile (a resharding
/// cutover) deadlocks both. The directory lookup is held on a table lock so the writer queues
/// exactly between the insert's gate read and its counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_rows_insert_completes_while_a_gate_writer_waits() {
    const TEST: &str = "least_rows_gate_writer";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 2).await;
    Member::create_table(&cluster).await.unwrap();
    // The directory table exists (an explicit assignment counts nothing).
    directory_of::<Member, Postgres>(&cluster)
        .assign::<Member, Postgres, _>(&cluster, &1_i64, "shard_1")
        .await
        .unwrap();
    let home = pg::pool(&pg::shard_url(env, TEST, 0)).await;
    let mut lock = home.begin().await.unwrap();
    sqlx::query("LOCK TABLE grant_directory IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let gate = grant_sharding::testing::model_gate::<Member, Postgres>(&cluster);
    let insert = tokio::spawn({
        let cluster = cluster.clone();
        async move {
            Member {
                id: 2,
                name: "two".into(),
            }
            .insert(&cluster)
            .await
        }
    });
    // The insert holds the gate in read mode (waiting on the locked directory lookup).
    wait_for("the insert holds the gate", || gate.try_write().is_err()).await;
    // A writer queues behind it: from now on a new read of the gate waits for the writer.
    let writer = tokio::spawn({
        let gate = gate.clone();
        async move {
            drop(gate.write().await);
        }
    });
    wait_for("the writer is queued", || gate.try_read().is_err()).await;
    lock.commit().await.unwrap();

    let placed = tokio::time::timeout(Duration::from_secs(10), insert)
        .await
        .expect("the least-rows insert deadlocked on the model gate behind a queued writer")
        .unwrap();
    placed.unwrap();
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the queued writer never got the gate")
        .unwrap();
    let found = Member::find(&cluster, 2).await.unwrap();
    assert_eq!(found.map(|m| m.name), Some("two".to_owned()));
}
