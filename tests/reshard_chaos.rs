//! The resharding chaos test on SQLite shard files and on PostgreSQL: see
//! `tests/common/chaos.rs`. Beside the test's own process (the job's, which "dies" at every
//! interruption, and its writer tasks), three writer processes — the test binary re-executed
//! (`chaos_writer`), Grant clusters following the topology store — write and read their own
//! tickets through every round; one is killed (SIGKILL) in the third round and a fourth one
//! started. Every one of their acknowledged writes is checked at the end.

#[path = "common/chaos.rs"]
mod chaos;
mod common;
#[path = "common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use grant::prelude::*;

/// The writer processes' side: with `GRANT_CW_WRITER` = `t`, writes until `stop` appears in
/// `GRANT_CW_DIR` (see `chaos::external_writer`).
#[test]
fn chaos_writer() {
    let Some(t) = std::env::var_os("GRANT_CW_WRITER") else {
        return;
    };
    let t: i64 = t.into_string().unwrap().parse().unwrap();
    let urls: Vec<String> = std::env::var("GRANT_CW_BASE")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let dir = PathBuf::from(std::env::var("GRANT_CW_DIR").unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        macro_rules! write {
            ($db:ty) => {{
                let mut b = Cluster::<$db>::builder().topology_poll(Duration::from_millis(100));
                for (i, url) in urls.iter().enumerate() {
                    b = b.shard(format!("shard_{i}"), url.as_str());
                }
                chaos::external_writer(b.connect().await.unwrap(), t, &dir).await;
            }};
        }
        if urls[0].starts_with("postgres") {
            write!(Postgres)
        } else {
            write!(Sqlite)
        }
    });
}

fn external(urls: Vec<String>, dir: &Path) -> chaos::External {
    let base = urls.join("\n");
    let logs = dir.to_owned();
    chaos::External::new(
        dir.to_owned(),
        Box::new(move |t| -> Child {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "chaos_writer", "--nocapture", "--test-threads=1"])
                .env("GRANT_CW_WRITER", t.to_string())
                .env("GRANT_CW_BASE", &base)
                .env("GRANT_CW_DIR", &logs)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start a writer process")
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reshard_chaos() {
    let dir = common::tempdir();
    let path = dir.path().to_owned();
    let urls: Vec<String> = (0..8)
        .map(|i| path.join(format!("shard_{i}.db")).display().to_string())
        .collect();
    let connect = |follow: bool| {
        let urls = urls.clone();
        async move {
            let mut b = Cluster::<Sqlite>::builder().follow_topology(follow);
            for (i, url) in urls.iter().enumerate() {
                b = b.shard(format!("shard_{i}"), url.as_str());
            }
            b.connect().await.unwrap()
        }
    };
    let logs = common::tempdir();
    let stats = chaos::run(
        "sqlite",
        connect,
        chaos::interruptions_wanted(),
        chaos::seed(),
        Some(external(urls.clone(), logs.path())),
    )
    .await;
    assert!(stats.interruptions() >= chaos::interruptions_wanted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_reshard_chaos() {
    const TEST: &str = "pg_reshard_chaos";
    let Some(env) = pg::env().await else { return };
    drop(env.cluster(TEST, 8).await);
    let urls: Vec<String> = (0..8).map(|i| pg::shard_url(env, TEST, i)).collect();
    let connect = |follow: bool| {
        let urls = urls.clone();
        async move {
            let mut b = Cluster::<Postgres>::builder().follow_topology(follow);
            for (i, url) in urls.iter().enumerate() {
                b = b.shard(format!("shard_{i}"), url.as_str());
            }
            b.connect().await.unwrap()
        }
    };
    let logs = common::tempdir();
    let stats = chaos::run(
        "postgres",
        connect,
        chaos::interruptions_wanted(),
        chaos::seed(),
        Some(external(urls.clone(), logs.path())),
    )
    .await;
    assert!(stats.interruptions() >= chaos::interruptions_wanted());
}
