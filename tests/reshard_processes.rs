//! Resharding while *other OS processes* write: two writer processes update their own accounts
//! through the whole job — connected before it began and never told of it (their topology poll
//! is an hour), so they write the old shards only, with no dual writes and no journal of the
//! job's process — and one of them is killed (SIGKILL) half-way. The sources' change capture
//! (triggers into a journal, in the writing transaction) hands their writes to the cutover:
//! afterwards every acknowledged write is there, once, on the shard the new placement names.
//! On SQLite shard files and PostgreSQL shard databases.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/reshard.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::reshard::{Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;
use grant::{Backend, FromShardRow};
use scenario::{Account, account, eight, preload};

const SHARDS: usize = 8;
const ROWS: i64 = 1_000;

fn urls(base: &str) -> Vec<String> {
    base.lines().map(str::to_owned).collect()
}

async fn connect<DB: Backend>(base: &str, poll: Duration) -> Cluster<DB> {
    let mut builder = Cluster::<DB>::builder().topology_poll(poll);
    for (i, url) in urls(base).iter().enumerate() {
        builder = builder.shard(format!("shard_{i}"), url.as_str());
    }
    builder.connect().await.unwrap()
}

/// The child side: with `GRANT_RW_WRITER` = `t` set, updates the accounts `id % 2 == t` in a
/// loop (a balance change and `version + 1` each), appending `id version` to its log after
/// each acknowledged update, until `stop` appears in `GRANT_RW_DIR`.
#[test]
fn reshard_writer() {
    let Some(t) = std::env::var_os("GRANT_RW_WRITER") else {
        return;
    };
    let t: i64 = t.into_string().unwrap().parse().unwrap();
    let base = std::env::var("GRANT_RW_BASE").unwrap();
    let dir = PathBuf::from(std::env::var("GRANT_RW_DIR").unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        if base.starts_with("postgres") {
            write::<Postgres>(t, &base, &dir).await;
        } else {
            write::<Sqlite>(t, &base, &dir).await;
        }
    });
}

async fn write<DB: Backend>(t: i64, base: &str, dir: &Path)
where
    Account: FromShardRow<DB>,
{
    // Never follows the job: writes by the static (old) placement only.
    let cluster = connect::<DB>(base, Duration::from_secs(3600)).await;
    let mut log =
        std::io::BufWriter::new(std::fs::File::create(dir.join(format!("writer{t}.log"))).unwrap());
    let mut mine: BTreeMap<i64, Account> = (1..=ROWS)
        .filter(|id| id % 2 == t)
        .map(|id| (id, account(id)))
        .collect();
    std::fs::write(dir.join(format!("writer{t}.ready")), "").unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ t as u64;
    while !dir.join("stop").exists() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let ids: Vec<i64> = mine.keys().copied().collect();
        let id = ids[(seed % ids.len() as u64) as usize];
        let row = mine.get_mut(&id).unwrap();
        row.version += 1;
        row.balance = (seed % 10_000) as i64;
        match row.update(&cluster).await {
            Ok(()) => {
                writeln!(log, "{id} {} {}", row.version, row.balance).unwrap();
                log.flush().unwrap(); // what a kill leaves is on disk
            }
            Err(e) => panic!("writer {t}: update of {id} failed: {e}"),
        }
    }
}

fn spawn(t: i64, base: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "reshard_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GRANT_RW_WRITER", t.to_string())
        .env("GRANT_RW_BASE", base)
        .env("GRANT_RW_DIR", dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start a writer process")
}

/// The last (version, balance) a writer acknowledged per id, and how many writes it logged.
fn acknowledged(dir: &Path, t: i64) -> (BTreeMap<i64, (i64, i64)>, usize) {
    let text = std::fs::read_to_string(dir.join(format!("writer{t}.log"))).unwrap_or_default();
    let mut last = BTreeMap::new();
    let mut n = 0;
    for line in text.lines() {
        let parts: Vec<i64> = line.split(' ').filter_map(|p| p.parse().ok()).collect();
        if let [id, version, balance] = parts[..] {
            last.insert(id, (version, balance));
            n += 1;
        }
    }
    (last, n)
}

async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario<DB>(base: &str)
where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect::<DB>(base, Duration::from_millis(200)).await;
    preload(&cluster, ROWS).await;
    let mut writers: Vec<Child> = (0..2).map(|t| spawn(t, base, dir.path())).collect();
    for t in 0..2 {
        wait_for(&dir.path().join(format!("writer{t}.ready"))).await;
    }
    let plan = ReshardPlan::new::<Account, DB>(&cluster, eight())
        .await
        .unwrap();
    let job = ReshardJob::<Account, DB>::start(&cluster, plan, ReshardOptions::default())
        .await
        .unwrap();
    job.copy().await.unwrap();
    // One writer dies half-way: what it acknowledged must survive.
    writers[1].kill().unwrap();
    writers[1].wait().unwrap();
    job.verify().await.unwrap();
    // The surviving writer goes on writing after the verification pass — writes only the
    // sources' capture journals can tell the cutover about.
    let before = acknowledged(dir.path(), 0).1;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged(dir.path(), 0).1 < before + 200 {
        assert!(Instant::now() < deadline, "the writer stopped writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert!(writers[0].wait().unwrap().success(), "writer 0 failed");
    job.cutover().await.unwrap();
    assert_eq!(job.status().phase, Phase::Done);

    // Every acknowledged write is there, on the shard the 8-shard placement names, once.
    let new = HashResolver::new(8);
    let mut rows: BTreeMap<i64, Account> = BTreeMap::new();
    for i in 0..SHARDS {
        let shard = cluster.shard_id(i).unwrap();
        for row in Account::on_shard(shard).all(&cluster).await.unwrap() {
            assert_eq!(new.shard_for(&row.id).index() as usize, i, "row {}", row.id);
            assert!(
                rows.insert(row.id, row.clone()).is_none(),
                "row {} twice",
                row.id
            );
        }
    }
    assert_eq!(rows.len(), ROWS as usize);
    let mut checked = 0;
    for t in 0..2 {
        let (last, n) = acknowledged(dir.path(), t);
        assert!(n > 0, "writer {t} wrote nothing");
        for (id, (version, balance)) in last {
            let row = &rows[&id];
            if t == 0 {
                assert_eq!(
                    (row.version, row.balance),
                    (version, balance),
                    "account {id}"
                );
            } else {
                // Killed: its last update may have been applied without being logged.
                assert!(
                    row.version == version && row.balance == balance || row.version == version + 1,
                    "account {id}: stored {row:?}, acknowledged version {version}"
                );
            }
            checked += 1;
        }
    }
    eprintln!("{checked} accounts written by other processes checked after the cutover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_other_processes_lose_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let base: Vec<String> = (0..SHARDS)
        .map(|i| {
            dir.path()
                .join(format!("shard_{i}.db"))
                .display()
                .to_string()
        })
        .collect();
    scenario::<Sqlite>(&base.join("\n")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_other_processes_lose_nothing_on_postgres() {
    let Some(env) = pg::env().await else { return };
    let test = "reshard_processes";
    drop(env.cluster(test, SHARDS).await);
    let base: Vec<String> = (0..SHARDS).map(|i| pg::shard_url(env, test, i)).collect();
    scenario::<Postgres>(&base.join("\n")).await;
}
