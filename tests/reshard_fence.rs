//! Grant processes that write and read through two reshards made by another process.
//!
//! Three writer processes — Grant clusters following the topology store — insert, update and
//! delete accounts of their own key range and, after each acknowledged write, read it back
//! (`find`) and now and then count their range (a scatter): every operation must succeed and
//! every read must equal what the process wrote, through both cutovers — a process still on
//! the migrating placement meets the migration's fence in the database and runs its operation
//! again on the new placement. Meanwhile this process reshards 4 → 8 and then 8 → 4 (which
//! copies rows onto shards the old placement reads), then moves one writer's account (a
//! tenant of this model) to a shard of its own; one writer is killed (SIGKILL) during the
//! first job and a new one started. Afterwards every acknowledged write exists exactly once,
//! on the shard the final placement names, and a process started afterwards reads them all.
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
use grant::reshard::{Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan, TenantMove};
use grant::resolve::HashResolver;
use grant::{Backend, FromShardRow, Placement};
use scenario::{Account, account, eight, preload};

const SHARDS: usize = 8;
const ROWS: i64 = 1_200;
/// Writes each writer makes between two steps of the scenario.
const STRIDE: usize = 30;

use procs::{urls, wait_for};

async fn connect<DB: Backend>(base: &str) -> Cluster<DB> {
    procs::connect(base, Duration::from_millis(100)).await
}

fn range(t: i64) -> (i64, i64) {
    let lo = (t + 1) * 1_000_000;
    (lo, lo + 1_000_000)
}

/// The child side: with `GRANT_FW_WRITER` = `t`, writes accounts of range `t` until `stop`
/// appears in `GRANT_FW_DIR`, logging each acknowledged write (`u id version balance` or
/// `d id`) and checking every read.
#[test]
fn fence_writer() {
    let Some(t) = std::env::var_os("GRANT_FW_WRITER") else {
        return;
    };
    let t: i64 = t.into_string().unwrap().parse().unwrap();
    let base = std::env::var("GRANT_FW_BASE").unwrap();
    let dir = PathBuf::from(std::env::var("GRANT_FW_DIR").unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        if base.starts_with("postgres") {
            write::<Postgres>(t, &base, &dir).await;
        } else {
            write::<Sqlite>(t, &base, &dir).await;
        }
    });
}

async fn write<DB: ReshardBackend>(t: i64, base: &str, dir: &Path)
where
    Account: FromShardRow<DB>,
{
    let cluster = connect::<DB>(base).await;
    let (lo, hi) = range(t);
    let mut log =
        std::io::BufWriter::new(std::fs::File::create(dir.join(format!("writer{t}.log"))).unwrap());
    let mut mine: BTreeMap<i64, Account> = BTreeMap::new();
    let mut next = lo;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
    let mut ops = 0u64;
    std::fs::write(dir.join(format!("writer{t}.ready")), "").unwrap();
    while !dir.join("stop").exists() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ops += 1;
        let choice = seed % 10;
        let pick = |seed: u64, mine: &BTreeMap<i64, Account>| {
            let ids: Vec<i64> = mine.keys().copied().collect();
            ids[(seed / 10 % ids.len() as u64) as usize]
        };
        let id = if mine.len() < 20 || choice < 5 {
            let a = account(next);
            next += 1;
            a.insert(&cluster)
                .await
                .unwrap_or_else(|e| panic!("writer {t}: insert {}: {e}", a.id));
            writeln!(log, "u {} {} {}", a.id, a.version, a.balance).unwrap();
            mine.insert(a.id, a.clone());
            a.id
        } else if choice < 8 {
            let id = pick(seed, &mine);
            let a = mine.get_mut(&id).unwrap();
            a.version += 1;
            a.balance = (seed % 10_000) as i64;
            a.update(&cluster)
                .await
                .unwrap_or_else(|e| panic!("writer {t}: update {id}: {e}"));
            writeln!(log, "u {} {} {}", a.id, a.version, a.balance).unwrap();
            id
        } else {
            let id = pick(seed, &mine);
            let deleted = mine[&id]
                .delete(&cluster)
                .await
                .unwrap_or_else(|e| panic!("writer {t}: delete {id}: {e}"));
            assert!(deleted, "writer {t}: delete {id} found no row");
            writeln!(log, "d {id}").unwrap();
            mine.remove(&id);
            id
        };
        log.flush().unwrap(); // what a kill leaves is on disk
        let read = Account::find(&cluster, id)
            .await
            .unwrap_or_else(|e| panic!("writer {t}: find {id}: {e}"));
        assert_eq!(read.as_ref(), mine.get(&id), "writer {t}: find {id}");
        if ops.is_multiple_of(10) {
            let counted = Account::query()
                .filter(Account::ID.gte(lo).and(Account::ID.lt(hi)))
                .count(&cluster)
                .await
                .unwrap_or_else(|e| panic!("writer {t}: count: {e}"));
            assert_eq!(counted, mine.len() as u64, "writer {t}: count of its range");
        }
    }
}

fn spawn(t: i64, base: &str, dir: &Path) -> Child {
    procs::rerun(
        "fence_writer",
        &[
            ("GRANT_FW_WRITER", t.to_string()),
            ("GRANT_FW_BASE", base.to_owned()),
            ("GRANT_FW_DIR", dir.display().to_string()),
        ],
    )
}

/// What writer `t` acknowledged, replayed: each account's last state (`None`: deleted), and
/// the number of writes logged.
fn acknowledged(dir: &Path, t: i64) -> (BTreeMap<i64, Option<(i64, i64)>>, usize) {
    let text = std::fs::read_to_string(dir.join(format!("writer{t}.log"))).unwrap_or_default();
    let mut state = BTreeMap::new();
    let mut n = 0;
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[..] {
            ["u", id, version, balance] => {
                let (Ok(id), Ok(version), Ok(balance)) =
                    (id.parse(), version.parse(), balance.parse())
                else {
                    continue; // a line cut by the kill
                };
                state.insert(id, Some((version, balance)));
            }
            ["d", id] => {
                let Ok(id) = id.parse() else { continue };
                state.insert(id, None);
            }
            _ => continue,
        }
        n += 1;
    }
    (state, n)
}

/// Waits until each writer in `alive` logged `more` writes beyond what it had.
async fn writes_go_on(dir: &Path, alive: &[i64], more: usize, what: &str) {
    let start: Vec<usize> = alive.iter().map(|&t| acknowledged(dir, t).1).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (&t, &from) in alive.iter().zip(&start) {
        while acknowledged(dir, t).1 < from + more {
            assert!(
                Instant::now() < deadline,
                "writer {t} stopped writing ({what})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn reshard<DB>(cluster: &Cluster<DB>, to: Placement) -> Duration
where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    let plan = ReshardPlan::new::<Account, DB>(cluster, to).await.unwrap();
    let job = ReshardJob::<Account, DB>::start(cluster, plan, slow())
        .await
        .unwrap();
    let status = job.run().await.unwrap();
    assert_eq!(status.phase, Phase::Done);
    status.pause.unwrap()
}

fn slow() -> ReshardOptions {
    ReshardOptions::default()
        .batch_size(50)
        .throttle(Duration::from_millis(30))
}

async fn scenario<DB>(base: &str)
where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let cluster = connect::<DB>(base).await;
    let preloaded = preload(&cluster, ROWS).await;
    let mut writers: BTreeMap<i64, Child> = (0..3).map(|t| (t, spawn(t, base, dir))).collect();
    for t in 0..3 {
        wait_for(&dir.join(format!("writer{t}.ready"))).await;
    }
    writes_go_on(dir, &[0, 1, 2], STRIDE, "before the jobs").await;

    // 4 -> 8, step by step; writer 1 dies during the copy and writer 3 starts.
    let plan = ReshardPlan::new::<Account, DB>(&cluster, eight())
        .await
        .unwrap();
    let job = ReshardJob::<Account, DB>::start(&cluster, plan, slow())
        .await
        .unwrap();
    writes_go_on(dir, &[0, 1, 2], 10, "with dual writes").await;
    job.copy().await.unwrap();
    let mut killed = writers.remove(&1).unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    writers.insert(3, spawn(3, base, dir));
    wait_for(&dir.join("writer3.ready")).await;
    let alive = [0, 2, 3];
    job.verify().await.unwrap();
    writes_go_on(dir, &alive, STRIDE, "after verifying").await;
    job.cutover().await.unwrap();
    assert_eq!(job.status().phase, Phase::Done);
    let first_pause = job.status().pause.unwrap();
    writes_go_on(dir, &alive, STRIDE, "after the first cutover").await;

    // 8 -> 4: the copies land on shards the old placement reads.
    let four = Placement::resolver(HashResolver::new(4));
    let second_pause = reshard(&cluster, four).await;
    writes_go_on(dir, &alive, STRIDE, "after the second cutover").await;

    // A tenant move: writer 0's fourth account to shard 7, which the 4-shard placement does
    // not use; every writer process follows the pinned placement.
    let tenant = range(0).0 + 3;
    let moved = TenantMove::new(&cluster, tenant, "shard_7")
        .model::<Account>()
        .options(slow())
        .run()
        .await
        .unwrap();
    let tenant_pause = moved[0].status.as_ref().unwrap().pause.unwrap();
    writes_go_on(dir, &alive, STRIDE, "after the tenant move").await;
    std::fs::write(dir.join("stop"), "").unwrap();
    for (t, mut child) in writers {
        assert!(child.wait().unwrap().success(), "writer {t} failed");
    }

    // The oracle: the preloaded rows and what every writer acknowledged.
    let mut expected: BTreeMap<i64, Option<(i64, i64)>> = preloaded
        .values()
        .map(|a| (a.id, Some((a.version, a.balance))))
        .collect();
    let mut total = 0;
    for t in 0..4 {
        let (state, n) = acknowledged(dir, t);
        assert!(n > 0, "writer {t} wrote nothing");
        total += n;
        expected.extend(state);
    }
    let fresh = connect::<DB>(base).await;
    // Every shard read as it is: a cluster of its own placement (not the topology's).
    let mut builder = Cluster::<DB>::builder().follow_topology(false);
    for (i, url) in urls(base).iter().enumerate() {
        builder = builder.shard(format!("shard_{i}"), url.as_str());
    }
    let inspect = builder.connect().await.unwrap();
    inspect.set_placement::<Account>(eight()).unwrap();
    let four = HashResolver::new(4);
    let home = |id: i64| {
        if id == tenant {
            7
        } else {
            four.shard_for(&id).index() as usize
        }
    };
    let mut stored: BTreeMap<i64, Account> = BTreeMap::new();
    for i in 0..SHARDS {
        let shard = inspect.shard_id(i).unwrap();
        for row in Account::on_shard(shard).all(&inspect).await.unwrap() {
            assert_eq!(home(row.id), i, "row {} on the wrong shard", row.id);
            assert!(
                stored.insert(row.id, row.clone()).is_none(),
                "row {} twice",
                row.id
            );
        }
    }
    // The killed writer's last write may have been applied without being logged: at most
    // one of its accounts may differ from its log.
    let (lo, hi) = range(1);
    let mut deviations = Vec::new();
    for (&id, want) in &expected {
        let got = stored.get(&id).map(|a| (a.version, a.balance));
        if got != *want {
            deviations.push((id, *want, got));
        }
    }
    for (id, _, got) in stored
        .iter()
        .map(|(id, a)| (id, (), (a.version, a.balance)))
    {
        if !expected.contains_key(id) {
            deviations.push((*id, None, Some(got)));
        }
    }
    assert!(
        deviations.len() <= 1 && deviations.iter().all(|(id, ..)| (lo..hi).contains(id)),
        "acknowledged writes differ from the stored rows: {deviations:?}"
    );
    let live = expected.values().filter(|s| s.is_some()).count() as u64;
    let counted = Account::query().count(&fresh).await.unwrap();
    assert!(
        counted.abs_diff(live) <= u64::from(!deviations.is_empty()),
        "a new process counts {counted}, {live} acknowledged"
    );
    eprintln!(
        "{total} writes by 4 writer processes through 2 reshards and a tenant move; cutover \
         pauses {first_pause:?}, {second_pause:?} and {tenant_pause:?}; {} rows at the end",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_processes_write_through_reshards_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario::<Sqlite>(&procs::sqlite_base(dir.path(), SHARDS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_processes_write_through_reshards_on_postgres() {
    let Some(base) = procs::pg_base("reshard_fence", SHARDS).await else {
        return;
    };
    scenario::<Postgres>(&base).await;
}
