//! What the tests that run several OS processes share (the test binary re-executed as a child
//! that runs one `#[test]` doing nothing unless its environment says so): the shard URLs
//! handed to the children (one per line), connecting to them, re-running the binary, waiting
//! for a child's signal file, and the bases on SQLite files and PostgreSQL databases.
//!
//! Use from a test file with `#[path = "common/procs.rs"] mod procs;` next to
//! `#[path = "common/pg.rs"] mod pg;`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use grant::Backend;
use grant::prelude::*;

use super::pg;

/// The shard URLs of a base, one per line.
pub fn urls(base: &str) -> Vec<String> {
    base.lines().map(str::to_owned).collect()
}

/// A cluster of the base's shards (`shard_0` ..) following the topology store every `poll`.
pub async fn connect<DB: Backend>(base: &str, poll: Duration) -> Cluster<DB> {
    let mut builder = Cluster::<DB>::builder().topology_poll(poll);
    for (i, url) in urls(base).iter().enumerate() {
        builder = builder.shard(format!("shard_{i}"), url.as_str());
    }
    builder.connect().await.unwrap()
}

/// Re-runs this test binary as a child running only `test`, with `env` set.
pub fn rerun(test: &str, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("start a child process")
}

/// Waits (at most a minute) for `path` to exist: a signal file another process writes.
pub async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` SQLite shard files in `dir`.
pub fn sqlite_base(dir: &Path, n: usize) -> String {
    (0..n)
        .map(|i| dir.join(format!("shard_{i}.db")).display().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `n` fresh PostgreSQL shard databases named after `test` (`None`: no PostgreSQL here,
/// outside CI).
pub async fn pg_base(test: &'static str, n: usize) -> Option<String> {
    let env = pg::env().await?;
    drop(env.cluster(test, n).await); // fresh shard databases
    Some(
        (0..n)
            .map(|i| pg::shard_url(env, test, i))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}
