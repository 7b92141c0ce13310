//! `cluster.id_generator()` across OS processes: 4 processes take 10,000 ids each from one
//! cluster (SQLite shard files, then PostgreSQL) while a fifth is killed half-way holding its
//! node id, and a sixth, started once that lease ran out, takes the node over. No id is issued
//! twice, and each process's ids increase.

#[path = "common/pg.rs"]
mod pg;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Child, Command};
use std::time::Duration;

use grant::prelude::*;

const IDS: usize = 10_000;
const LEASE: Duration = Duration::from_secs(2);

/// The child side: with `GRANT_ID_WORKER` set, takes `GRANT_ID_COUNT` ids (pausing
/// `GRANT_ID_PAUSE_MS` after every 100) and writes them, one per line, to `GRANT_ID_OUT`.
#[test]
fn id_worker() {
    let Some(url) = std::env::var_os("GRANT_ID_WORKER") else {
        return;
    };
    let url = url.into_string().unwrap();
    let out = std::env::var("GRANT_ID_OUT").unwrap();
    let count: usize = std::env::var("GRANT_ID_COUNT").unwrap().parse().unwrap();
    let pause: u64 = std::env::var("GRANT_ID_PAUSE_MS").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&out).unwrap());
        macro_rules! run {
            ($db:ty) => {{
                let cluster = Cluster::<$db>::builder()
                    .shard("shard_0", url.as_str())
                    .connect()
                    .await
                    .unwrap();
                let ids = cluster.id_generator_with_lease(LEASE).await.unwrap();
                writeln!(file, "node {}", ids.node()).unwrap();
                for i in 0..count {
                    writeln!(file, "{}", ids.next()).unwrap();
                    if i % 100 == 99 {
                        file.flush().unwrap(); // what a kill leaves is on disk
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
                file.flush().unwrap();
                drop(ids);
                tokio::time::sleep(Duration::from_millis(200)).await; // the release
            }};
        }
        if url.starts_with("postgres") {
            run!(Postgres)
        } else {
            run!(Sqlite)
        }
    });
}

fn spawn(url: &str, out: &std::path::Path, count: usize, pause_ms: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "id_worker", "--nocapture", "--test-threads=1"])
        .env("GRANT_ID_WORKER", url)
        .env("GRANT_ID_OUT", out)
        .env("GRANT_ID_COUNT", count.to_string())
        .env("GRANT_ID_PAUSE_MS", pause_ms.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start a worker process")
}

/// (node, ids) a worker wrote.
fn read(out: &std::path::Path) -> (i64, Vec<i64>) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut lines = text.lines();
    let node = lines
        .next()
        .and_then(|l| l.strip_prefix("node "))
        .map_or(-1, |n| n.parse().unwrap());
    (node, lines.filter_map(|l| l.parse().ok()).collect())
}

async fn scenario(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(format!("{name}.ids"));
    // The one to be killed takes its node first and then ids slowly.
    let mut doomed = spawn(url, &out("doomed"), IDS, 100);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let workers: Vec<Child> = (0..4)
        .map(|i| spawn(url, &out(&format!("w{i}")), IDS, 10))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    doomed.kill().unwrap(); // SIGKILL: its lease is not given back
    doomed.wait().unwrap();
    let (doomed_node, doomed_ids) = read(&out("doomed"));
    assert!(
        !doomed_ids.is_empty() && doomed_ids.len() < IDS,
        "killed half-way: {}",
        doomed_ids.len()
    );
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
    // After the lease ran out, a new process takes the killed one's node id over.
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;
    let mut heir = spawn(url, &out("heir"), IDS, 0);
    assert!(heir.wait().unwrap().success());
    let (heir_node, heir_ids) = read(&out("heir"));

    let mut all: HashSet<i64> = HashSet::new();
    let mut total = 0;
    let mut nodes = Vec::new();
    for name in ["doomed", "w0", "w1", "w2", "w3", "heir"] {
        let (node, ids) = read(&out(name));
        nodes.push(node);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{name}: ids increase");
        if name != "doomed" {
            assert_eq!(ids.len(), IDS, "{name}");
        }
        total += ids.len();
        all.extend(ids);
    }
    assert_eq!(
        all.len(),
        total,
        "no id twice among {total} (nodes {nodes:?})"
    );
    // Fresh table: the killed process leased node 0, the workers 1..=4 (gave them back when
    // done); the heir takes the lowest expired one, the killed process's, and starts above
    // the high-water mark it held.
    let mut working = nodes[1..5].to_vec();
    working.sort();
    assert_eq!(
        (nodes[0], working),
        (0, vec![1, 2, 3, 4]),
        "node ids: {nodes:?}"
    );
    assert_eq!(heir_node, doomed_node);
    assert!(
        heir_ids[0] > *doomed_ids.last().unwrap(),
        "the heir starts above the killed one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_no_id_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("control.db").display().to_string();
    scenario(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_no_id_on_postgres() {
    let Some(env) = pg::env().await else { return };
    let url = env.database("ids_processes").await;
    scenario(&url).await;
}
