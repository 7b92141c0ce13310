//! Replicas, read policies, read-your-writes, health checks, circuit breaking and failover —
//! on SQLite files standing in for a primary and its replicas (the replica files are filled by
//! hand, as streaming replication would).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::tempdir;
use grant::prelude::*;
use grant::{Balance, Circuit, HealthConfig};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "notes")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Note {
    #[primary_key]
    id: i64,
    body: String,
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// Writes `rows` straight into a replica file, as replication would, marking the body.
async fn replicate(cluster: &Cluster<Sqlite>, shard: &str, replica: usize, rows: &[Note]) {
    let pool = cluster.replica_pool(shard, replica).unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
    for n in rows {
        sqlx::query("INSERT OR REPLACE INTO notes VALUES (?, ?)")
            .bind(n.id)
            .bind(format!("{} (replica_{replica})", n.body))
            .execute(pool)
            .await
            .unwrap();
    }
}

fn note(id: i64) -> Note {
    Note {
        id,
        body: format!("note {id}"),
    }
}

#[tokio::test]
async fn reads_follow_the_policy_and_writes_stay_on_the_primary() {
    let dir = tempdir();
    let cluster = Cluster::<Sqlite>::builder()
        .shard("shard_0", path(dir.path(), "p0.db"))
        .shard("shard_1", path(dir.path(), "p1.db"))
        .replica("shard_0", path(dir.path(), "r0.db"))
        .replica("shard_1", path(dir.path(), "r1.db"))
        .read_your_writes(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    Note::create_table(&cluster).await.unwrap();
    let id = 1;
    let shard = Note::shard_for(&id).name();
    note(id).insert(&cluster).await.unwrap();
    replicate(&cluster, &shard, 0, &[note(id)]).await;

    // Default policy: the primary.
    assert_eq!(
        Note::find(&cluster, id).await.unwrap().unwrap().body,
        "note 1"
    );

    // PreferReplica right after a write: read-your-writes keeps the read on the primary...
    cluster.log().start();
    let q = || {
        Note::query()
            .filter(Note::ID.eq(id))
            .read_policy(ReadPolicy::PreferReplica)
    };
    assert_eq!(q().one(&cluster).await.unwrap().unwrap().body, "note 1");
    // ...and once the window has passed, the replica serves it.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        q().one(&cluster).await.unwrap().unwrap().body,
        "note 1 (replica_0)"
    );
    let endpoints: Vec<&str> = cluster.log().stop().iter().map(|e| e.endpoint).collect();
    assert_eq!(endpoints, ["primary", "replica_0"]);

    // Writes always go to the primary, and restart the window.
    cluster.log().start();
    Note {
        id,
        body: "changed".into(),
    }
    .update(&cluster)
    .await
    .unwrap();
    assert_eq!(q().one(&cluster).await.unwrap().unwrap().body, "changed");
    let endpoints: Vec<&str> = cluster.log().stop().iter().map(|e| e.endpoint).collect();
    assert_eq!(endpoints, ["primary", "primary"]);

    // ReplicaOnly never reads the primary.
    let from_replica = q()
        .read_policy(ReadPolicy::ReplicaOnly)
        .one(&cluster)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_replica.body, "note 1 (replica_0)");

    let status = cluster.status();
    assert_eq!(status.len(), 2);
    let ep = &status[0].endpoints;
    assert_eq!(ep.len(), 2);
    assert_eq!(
        (ep[0].endpoint.as_str(), ep[1].endpoint.as_str()),
        ("primary", "replica_0")
    );
    assert!(ep.iter().all(|e| e.healthy && e.circuit == Circuit::Closed));
    let primary = &cluster.status()[Note::shard_for(&id).index() as usize].endpoints[0];
    assert!(primary.latency_mean.is_some() && primary.latency_p95 >= primary.latency_mean);
    assert_eq!(primary.error_rate, 0.0);
}

#[tokio::test]
async fn replica_only_without_replicas_is_refused_by_name() {
    let cluster = Cluster::<Sqlite>::memory(2).await.unwrap();
    Note::create_table(&cluster).await.unwrap();
    let err = Note::query()
        .filter(Note::ID.eq(1))
        .read_policy(ReadPolicy::ReplicaOnly)
        .all(&cluster)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ShardUnavailable { .. }), "{msg}");
    assert!(msg.contains("no replica"), "{msg}");
}

#[tokio::test]
async fn least_busy_balancing_avoids_a_busy_replica() {
    let dir = tempdir();
    let cluster = Cluster::<Sqlite>::builder()
        .shard("shard_0", path(dir.path(), "p0.db"))
        .shard("shard_1", path(dir.path(), "p1.db"))
        .replica("shard_0", path(dir.path(), "a0.db"))
        .replica("shard_0", path(dir.path(), "b0.db"))
        .replica("shard_1", path(dir.path(), "a1.db"))
        .replica("shard_1", path(dir.path(), "b1.db"))
        .read_policy(ReadPolicy::ReplicaOnly)
        .balance(Balance::LeastBusy)
        .connect()
        .await
        .unwrap();
    let id = 4;
    let shard = Note::shard_for(&id).name();
    // The primaries have the table too, as a replicated database would (the schema check
    // reads it there).
    Note::create_table(&cluster).await.unwrap();
    for r in 0..2 {
        replicate(&cluster, &shard, r, &[note(id)]).await;
    }
    // Let a pool take its connections back (a released connection returns asynchronously).
    let settle = |r: usize| {
        let pool = cluster.replica_pool(&shard, r).unwrap().clone();
        async move {
            while pool.num_idle() < pool.size() as usize {
                tokio::task::yield_now().await;
            }
        }
    };
    settle(0).await;
    let _busy = cluster
        .replica_pool(&shard, 0)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    for _ in 0..4 {
        settle(1).await;
        let got = Note::find(&cluster, id).await.unwrap().unwrap();
        assert_eq!(got.body, "note 4 (replica_1)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_primary_opens_its_circuit_reads_fail_over_and_it_comes_back() {
    let dir = tempdir();
    // shard_0's primary lives in a directory that does not exist yet: it is down.
    let missing = dir.path().join("later");
    let cluster = Cluster::<Sqlite>::builder()
        .shard("shard_0", path(&missing, "p0.db"))
        .shard("shard_1", path(dir.path(), "p1.db"))
        .replica("shard_0", path(dir.path(), "r0.db"))
        .lazy(true)
        .acquire_timeout(Duration::from_millis(500))
        .health_checks(HealthConfig {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            failures_to_open: 2,
        })
        .connect()
        .await
        .unwrap();
    let id = (0..).find(|id| Note::shard_for(id).index() == 0).unwrap();
    replicate(&cluster, "shard_0", 0, &[note(id)]).await;

    // The probes open the circuit.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.status()[0].endpoints[0].circuit != Circuit::Open {
        assert!(
            Instant::now() < deadline,
            "circuit never opened: {:?}",
            cluster.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = &cluster.status()[0].endpoints[0];
    assert!(!status.healthy && status.last_error.is_some() && status.error_rate > 0.0);

    // Reads fail over to the replica...
    let started = Instant::now();
    let got = Note::find(&cluster, id).await.unwrap().unwrap();
    assert_eq!(got.body, format!("note {id} (replica_0)"));
    // ...writes fail fast, saying why.
    let err = note(id).insert(&cluster).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ShardUnavailable { .. }), "{msg}");
    assert!(
        msg.contains("shard_0") && msg.contains("circuit open"),
        "{msg}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "not fast: {:?}",
        started.elapsed()
    );
    // The other shard is unaffected.
    let other = (0..).find(|id| Note::shard_for(id).index() == 1).unwrap();
    assert!(cluster.status()[1].endpoints[0].healthy);
    assert!(
        matches!(
            Note::find(&cluster, other).await,
            Err(Error::SchemaMismatch { .. })
        ),
        "no table yet, but reachable"
    );

    // The primary comes back: a probe closes the circuit and writes succeed.
    std::fs::create_dir_all(&missing).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.status()[0].endpoints[0].circuit != Circuit::Closed {
        assert!(
            Instant::now() < deadline,
            "circuit never closed: {:?}",
            cluster.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Note::create_table(&cluster).await.unwrap();
    note(id).insert(&cluster).await.unwrap();
    assert_eq!(
        Note::find(&cluster, id).await.unwrap().unwrap().body,
        format!("note {id}")
    );
}
