//! One topology for every process: a placement set at run time by one OS process is persisted
//! on the control shard and followed by every other process of the cluster — one started
//! before the change (within the poll interval), one started after the placing process was
//! killed (at connect). On SQLite shard files and PostgreSQL shard databases; the rows are
//! checked from outside Grant (plain sqlx), each on the shard the final topology names, once.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::resolve::HashResolver;
use grant::{Backend, FromShardRow, Placement};

const SHARDS: usize = 8;
const ROWS: i64 = 2_000;

/// A row whose static placement is 4 hash shards; at run time it is placed on 8.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "items")]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Item {
    /// The key.
    #[primary_key]
    pub id: i64,
    /// Some payload.
    pub label: String,
}

fn item(id: i64) -> Item {
    Item {
        id,
        label: format!("item {id}"),
    }
}

async fn connect<DB: Backend>(base: &str) -> Cluster<DB> {
    procs::connect(base, Duration::from_millis(200)).await
}

/// The child side: with `GRANT_TOPO_ROLE` set, plays that role against the shards at
/// `GRANT_TOPO_BASE`, signalling through files in `GRANT_TOPO_DIR`.
#[test]
fn topology_worker() {
    let Some(role) = std::env::var_os("GRANT_TOPO_ROLE") else {
        return;
    };
    let role = role.into_string().unwrap();
    let base = std::env::var("GRANT_TOPO_BASE").unwrap();
    let dir = PathBuf::from(std::env::var("GRANT_TOPO_DIR").unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        if base.starts_with("postgres") {
            play::<Postgres>(&role, &base, &dir).await;
        } else {
            play::<Sqlite>(&role, &base, &dir).await;
        }
    });
}

async fn play<DB: Backend>(role: &str, base: &str, dir: &Path)
where
    Item: FromShardRow<DB>,
{
    if role == "hourly" {
        // Polls once an hour: a change reaches it only by notification (PostgreSQL).
        let cluster = procs::connect::<DB>(base, Duration::from_secs(3600)).await;
        std::fs::write(dir.join("hourly.ready"), "").unwrap();
        procs::wait_for(&dir.join("hourly.go")).await;
        let started = Instant::now();
        while cluster.placement::<Item>().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the hourly process did not hear of the change"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        std::fs::write(
            dir.join("hourly.followed"),
            started.elapsed().as_micros().to_string(),
        )
        .unwrap();
        procs::wait_for(&dir.join("hourly.stop")).await;
        return;
    }
    let cluster = connect::<DB>(base).await;
    match role {
        // Places the model on 8 shards, writes every row, says so, then waits to be killed.
        "placer" => {
            procs::wait_for(&dir.join("follower.ready")).await;
            Item::create_table(&cluster).await.unwrap();
            cluster
                .set_placement::<Item>(Placement::resolver(HashResolver::new(8)))
                .unwrap();
            std::fs::write(dir.join("placer.changed"), "").unwrap();
            Item::create_table(&cluster).await.unwrap();
            let rows: Vec<Item> = (1..=ROWS).map(item).collect();
            Item::insert_many(&cluster, &rows).await.unwrap();
            std::fs::write(dir.join("placer.done"), "").unwrap();
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        // Connected before the change: must follow it without being told, then find them all.
        "follower" => {
            std::fs::write(dir.join("follower.ready"), "").unwrap();
            procs::wait_for(&dir.join("placer.changed")).await;
            let seen = Instant::now();
            loop {
                // Followed: the model's shards are the 8 of the new placement.
                let shards = cluster
                    .placement::<Item>()
                    .map_or(4, |p| p.placement.shards::<Item>().len());
                if shards == 8 {
                    break;
                }
                assert!(
                    seen.elapsed() < Duration::from_secs(20),
                    "the follower never saw the new placement"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let followed = seen.elapsed();
            procs::wait_for(&dir.join("placer.done")).await;
            assert_eq!(
                Item::on_all_shards().count(&cluster).await.unwrap(),
                ROWS as u64
            );
            for id in 1..=ROWS {
                assert_eq!(Item::find(&cluster, id).await.unwrap(), Some(item(id)));
            }
            std::fs::write(dir.join("follower.done"), followed.as_millis().to_string()).unwrap();
        }
        // Started after the placer died: the placement is there at connect.
        "late" => {
            let placement = cluster.placement::<Item>().expect("a placement at connect");
            assert_eq!(
                placement.placement.shards::<Item>().len(),
                8,
                "{placement:?}"
            );
            assert_eq!(
                Item::on_all_shards().count(&cluster).await.unwrap(),
                ROWS as u64
            );
            for id in 1..=ROWS {
                assert_eq!(Item::find(&cluster, id).await.unwrap(), Some(item(id)));
            }
            // Its own change reaches the others too: back to the static placement, which
            // holds none of these rows (so this is only a routing check).
            cluster.clear_placement::<Item>().unwrap();
            std::fs::write(dir.join("late.done"), "").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, base: &str, dir: &Path) -> Child {
    procs::rerun(
        "topology_worker",
        &[
            ("GRANT_TOPO_ROLE", role.to_owned()),
            ("GRANT_TOPO_BASE", base.to_owned()),
            ("GRANT_TOPO_DIR", dir.display().to_string()),
        ],
    )
}

/// Every shard's `items` rows, read on a pool of their own (not through the cluster):
/// (shard index, id).
async fn stored<DB: Backend>(base: &str) -> Vec<(usize, i64)> {
    let mut out = Vec::new();
    for (i, url) in procs::urls(base).iter().enumerate() {
        let pool = sqlx::pool::PoolOptions::<DB>::new()
            .max_connections(1)
            .connect_with(DB::connect_options(url).unwrap())
            .await
            .unwrap();
        let values = sea_query_sqlx::SqlxValues(sea_query::Values(Vec::new()));
        if let Ok(rows) = DB::fetch_all(&pool, "SELECT id FROM items".into(), values).await {
            for row in &rows {
                out.push((i, DB::get_i64(row, 0).unwrap().unwrap()));
            }
        }
        pool.close().await;
    }
    out
}

async fn scenario<DB: Backend>(base: &str)
where
    Item: FromShardRow<DB>,
{
    let dir = tempfile::tempdir().unwrap();
    let mut follower = spawn("follower", base, dir.path());
    let mut placer = spawn("placer", base, dir.path());
    procs::wait_for(&dir.path().join("placer.done")).await;
    placer.kill().unwrap(); // SIGKILL: nothing of it survives but what it persisted
    placer.wait().unwrap();
    assert!(follower.wait().unwrap().success(), "the follower failed");
    let follow_ms: u64 = std::fs::read_to_string(dir.path().join("follower.done"))
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("the running process followed the change within {follow_ms} ms");
    let mut late = spawn("late", base, dir.path());
    assert!(late.wait().unwrap().success(), "the late process failed");

    // From outside Grant: every row once, on the shard the 8-shard placement names.
    let rows = stored::<DB>(base).await;
    assert_eq!(rows.len(), ROWS as usize, "every row exactly once");
    let placement = HashResolver::new(8);
    for (shard, id) in rows {
        assert_eq!(
            shard as u32,
            placement.shard_for(&id).index(),
            "row {id} on shard_{shard}"
        );
    }

    // This process, connected now, follows the late process's last change (static again).
    let cluster = connect::<DB>(base).await;
    assert!(cluster.placement::<Item>().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_follow_one_topology_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario::<Sqlite>(&procs::sqlite_base(dir.path(), SHARDS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_follow_one_topology_on_postgres() {
    let Some(base) = procs::pg_base("topology_processes", SHARDS).await else {
        return;
    };
    scenario::<Postgres>(&base).await;
}

/// PostgreSQL tells every process of a placement change at once (`LISTEN`/`NOTIFY`): a
/// process that polls the store once an hour follows within a moment, and a change that waits
/// for every process to follow it (a reshard's start) is not held for its poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_processes_of_a_change_at_once() {
    let Some(base) = procs::pg_base("topology_notify", SHARDS).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect::<Postgres>(&base).await;
    let mut hourly = spawn("hourly", &base, dir.path());
    procs::wait_for(&dir.path().join("hourly.ready")).await;
    std::fs::write(dir.path().join("hourly.go"), "").unwrap();
    let started = Instant::now();
    let epoch = cluster
        .set_placement::<Item>(Placement::resolver(HashResolver::new(8)))
        .unwrap();
    cluster
        .await_followed::<Item>(epoch, Duration::from_secs(10))
        .await
        .unwrap();
    let acknowledged = started.elapsed();
    procs::wait_for(&dir.path().join("hourly.followed")).await;
    let followed: u64 = std::fs::read_to_string(dir.path().join("hourly.followed"))
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(dir.path().join("hourly.stop"), "").unwrap();
    assert!(hourly.wait().unwrap().success());
    eprintln!(
        "a process polling hourly followed in {:.1} ms; every process had acknowledged the \
         change {acknowledged:?} after it was made",
        followed as f64 / 1000.0
    );
    assert!(acknowledged < Duration::from_secs(3), "{acknowledged:?}");
}
