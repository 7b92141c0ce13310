//! Resharding while *other OS processes* write.
//!
//! - Two writer processes that are not Grant clusters at all (a tool writing the database with
//!   plain SQL, by the model's static placement: the old shards only, no dual writes, no
//!   journal of the job's process) update their own accounts through the whole job; one is
//!   killed (SIGKILL) half-way. The sources' change capture (triggers into a journal, in the
//!   writing transaction) hands their writes to the cutover: afterwards every acknowledged
//!   write is there, once, on the shard the new placement names.
//! - A Grant process that does not follow the topology (an hour's poll, stopped with SIGSTOP)
//!   holds the job's start:
//!   it fails naming that process and leaves the model as it was; once it is gone, and with a
//!   following process alive, the job starts.
//!
//! On SQLite shard files and PostgreSQL shard databases.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/procs.rs"]
mod procs;
#[path = "common/reshard.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::reshard::{Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;
use grant::{Backend, FromShardRow};
use scenario::{Account, account, eight, preload};
use sea_query_sqlx::SqlxBinder;

const SHARDS: usize = 8;
const ROWS: i64 = 1_000;

use procs::{connect, urls, wait_for};

/// The child side: with `GRANT_RW_WRITER` = `t` set, updates the accounts `id % 2 == t` in a
/// loop (a balance change and `version + 1` each), appending `id version` to its log after
/// each acknowledged update, until `stop` appears in `GRANT_RW_DIR`.
#[test]
fn reshard_idle() {
    let Some(name) = std::env::var_os("GRANT_RW_IDLE") else {
        return;
    };
    let name = name.into_string().unwrap();
    let base = std::env::var("GRANT_RW_BASE").unwrap();
    let dir = PathBuf::from(std::env::var("GRANT_RW_DIR").unwrap());
    let poll: u64 = std::env::var("GRANT_RW_POLL_MS").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        macro_rules! idle {
            ($db:ty) => {{
                let _cluster = connect::<$db>(&base, Duration::from_millis(poll)).await;
                std::fs::write(dir.join(format!("{name}.ready")), "").unwrap();
                while !dir.join(format!("{name}.stop")).exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }};
        }
        if base.starts_with("postgres") {
            idle!(Postgres)
        } else {
            idle!(Sqlite)
        }
    });
}

/// A Grant process that connects with a `poll_ms` topology poll and idles until told to stop.
fn spawn_idle(name: &str, poll_ms: u64, base: &str, dir: &Path) -> Child {
    procs::rerun(
        "reshard_idle",
        &[
            ("GRANT_RW_IDLE", name.to_owned()),
            ("GRANT_RW_POLL_MS", poll_ms.to_string()),
            ("GRANT_RW_BASE", base.to_owned()),
            ("GRANT_RW_DIR", dir.display().to_string()),
        ],
    )
}

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

async fn write<DB: Backend>(t: i64, base: &str, dir: &Path) {
    // Not a cluster: plain SQL on the shard the static (old) placement names.
    let mut pools = Vec::new();
    for url in urls(base) {
        pools.push(
            sqlx::pool::PoolOptions::<DB>::new()
                .max_connections(1)
                .connect_with(DB::connect_options(&url).unwrap())
                .await
                .unwrap(),
        );
    }
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
        let (sql, values) = sea_query::Query::update()
            .table("accounts")
            .values([
                ("version", row.version.into()),
                ("balance", row.balance.into()),
            ])
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("id"), id))
            .build_sqlx(DB::builder());
        let pool = &pools[Account::shard_for(&id).index() as usize];
        match DB::execute(pool, sql, values).await {
            Ok(1) => {
                writeln!(log, "{id} {} {}", row.version, row.balance).unwrap();
                log.flush().unwrap(); // what a kill leaves is on disk
            }
            other => panic!("writer {t}: update of {id}: {other:?}"),
        }
    }
}

fn spawn(t: i64, base: &str, dir: &Path) -> Child {
    procs::rerun(
        "reshard_writer",
        &[
            ("GRANT_RW_WRITER", t.to_string()),
            ("GRANT_RW_BASE", base.to_owned()),
            ("GRANT_RW_DIR", dir.display().to_string()),
        ],
    )
}

/// Sends `signal` (`STOP`, `CONT`) to a child process.
fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {}", child.id());
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

async fn scenario<DB>(base: &str)
where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    let dir = tempfile::tempdir().unwrap();
    let cluster = connect::<DB>(base, Duration::from_millis(200)).await;
    preload(&cluster, ROWS).await;

    // A process that does not follow the topology holds the start: refused, naming it, with
    // the model left as it was. It polls hourly and is stopped (SIGSTOP: a stalled process,
    // its heartbeat still young) — on PostgreSQL a running one would hear of the change.
    let mut deaf = spawn_idle("deaf", 3_600_000, base, dir.path());
    let mut follower = spawn_idle("follower", 200, base, dir.path());
    for name in ["deaf", "follower"] {
        wait_for(&dir.path().join(format!("{name}.ready"))).await;
    }
    signal(&deaf, "STOP");
    let quick = ReshardOptions {
        follow_timeout: Duration::from_secs(2),
        ..ReshardOptions::default()
    };
    let plan = ReshardPlan::new::<Account, DB>(&cluster, eight())
        .await
        .unwrap();
    let started = Instant::now();
    let err = ReshardJob::<Account, DB>::start(&cluster, plan, quick.clone())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, grant::Error::Timeout { .. }) && msg.contains("not followed"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("pid {}", deaf.id())),
        "names the process: {msg}"
    );
    assert!(!msg.contains(&format!("pid {}", follower.id())), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        cluster.placement::<Account>().is_none(),
        "the start was undone"
    );
    std::fs::write(dir.path().join("deaf.stop"), "").unwrap();
    signal(&deaf, "CONT");
    assert!(deaf.wait().unwrap().success());
    // Gone (it left the instances table as it ended), and with the follower following within
    // its poll, the job starts; rolled back, the scenario below starts afresh.
    let plan = ReshardPlan::new::<Account, DB>(&cluster, eight())
        .await
        .unwrap();
    let started = Instant::now();
    let job = ReshardJob::<Account, DB>::start(&cluster, plan, quick)
        .await
        .unwrap();
    eprintln!(
        "the job's start waited {:?} for the following process",
        started.elapsed()
    );
    job.rollback().await.unwrap();
    std::fs::write(dir.path().join("follower.stop"), "").unwrap();
    assert!(follower.wait().unwrap().success());

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
    scenario::<Sqlite>(&procs::sqlite_base(dir.path(), SHARDS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_other_processes_lose_nothing_on_postgres() {
    let Some(base) = procs::pg_base("reshard_processes", SHARDS).await else {
        return;
    };
    scenario::<Postgres>(&base).await;
}
