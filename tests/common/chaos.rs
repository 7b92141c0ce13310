//! The resharding chaos scenario shared by tests/reshard_chaos.rs (SQLite files and
//! PostgreSQL): a composite-key model (`tenant_id, id`, sharded on `tenant_id`, hundreds of
//! rows per tenant) is resharded 4 → 8 → 4 → ... in rounds. Every round's job is interrupted at
//! random steps of every phase — the process "dies" (the job's future, its cluster and its
//! writers are dropped) or a step fails and the process goes on — and recovered the
//! documented way: a new cluster with the model's placement set, `ReshardJob::unfinished`,
//! `resume`, then `run` (or `rollback`). Writers insert, update and delete concurrently in
//! some rounds. After every round every acknowledged row exists exactly once, on the shard the
//! final placement names, and no other shard holds a row of the table.
//!
//! `GRANT_CHAOS_SEED` picks the random sequence, `GRANT_CHAOS_INTERRUPTIONS` how many
//! interruptions to reach (default 100).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grant::FromShardRow;
use grant::Placement;
use grant::prelude::*;
use grant::reshard::{CrashPoint, Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tickets")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Ticket {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub title: String,
    pub version: i64,
}

pub type Key = (i64, i64);

pub const TENANTS: i64 = 128;
pub const PER_TENANT: i64 = 200;

pub fn ticket(tenant_id: i64, id: i64) -> Ticket {
    Ticket {
        tenant_id,
        id,
        title: format!("ticket {tenant_id}/{id} «crash» 'q'"),
        version: 0,
    }
}

/// splitmix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn seed() -> u64 {
    std::env::var("GRANT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe)
}

pub fn interruptions_wanted() -> u64 {
    std::env::var("GRANT_CHAOS_INTERRUPTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
}

/// Where the model's rows live: `None` is the derive's 4 hash shards.
pub fn placement(count: Option<u32>) -> Placement {
    match count {
        None => Placement::Static,
        Some(n) => Placement::resolver(HashResolver::new(n)),
    }
}

/// Acknowledged writes and the writes in flight when a process died.
#[derive(Debug, Default)]
pub struct WriteLog {
    /// In order: key → the row after the write (`None`: deleted).
    pub acked: Vec<(Key, Option<Ticket>)>,
    /// Writes not acknowledged: key → (before, after); either may be what the table holds.
    pub in_flight: BTreeMap<Key, (Option<Ticket>, Option<Ticket>)>,
}

pub struct Writers {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriteLog>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// Writers on fresh keys `first..` (each writer its own residue): inserts, updates and deletes
/// of their own rows, across all tenants.
/// Where a key's row and registry entries are, shard by shard (PostgreSQL counts the rows a
/// `SELECT` returns; SQLite reports none), with the model's placement: for a lost row's report.
async fn whereabouts<DB: ReshardBackend>(cluster: &Cluster<DB>, key: (i64, i64)) -> String {
    let (t, id) = key;
    let mut out = format!("placement {:?};", cluster.placement::<Ticket>());
    for table in ["tickets", "grant_copies_tickets", "grant_journal_tickets"] {
        let sql = format!("SELECT 1 FROM {table} WHERE tenant_id = {t} AND id = {id}");
        for (shard, n) in cluster.execute_on_all_shards(&sql).await {
            match n {
                Ok(0) => {}
                Ok(n) => out.push_str(&format!(" {table}@{shard}={n}")),
                Err(e) => out.push_str(&format!(" {table}@{shard}: {e}")),
            }
        }
    }
    out
}

pub fn start_writers<DB>(
    cluster: &Cluster<DB>,
    first: i64,
    n: i64,
    seed: u64,
    context: String,
) -> Writers
where
    DB: ReshardBackend,
    Ticket: FromShardRow<DB>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(WriteLog::default()));
    let handles = (0..n)
        .map(|w| {
            let (cluster, stop, log) = (cluster.clone(), Arc::clone(&stop), Arc::clone(&log));
            let context = context.clone();
            let mut rng = Rng::new(seed ^ ((w as u64 + 1) * 0x1234_5678));
            tokio::spawn(async move {
                let mut next = first + w;
                let mut mine: Vec<Ticket> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let pick = rng.below(10);
                    let (key, before, after) = if pick < 3 || mine.is_empty() {
                        let t = ticket(rng.below(TENANTS as u64) as i64, next);
                        next += n;
                        ((t.tenant_id, t.id), None, Some(t))
                    } else if pick < 7 {
                        let i = rng.below(mine.len() as u64) as usize;
                        let mut t = mine[i].clone();
                        t.version += 1;
                        t.title = format!("{} v{}", t.title, t.version);
                        ((t.tenant_id, t.id), Some(mine[i].clone()), Some(t))
                    } else {
                        let i = rng.below(mine.len() as u64) as usize;
                        let t = mine[i].clone();
                        ((t.tenant_id, t.id), Some(t), None)
                    };
                    log.lock()
                        .unwrap()
                        .in_flight
                        .insert(key, (before.clone(), after.clone()));
                    match (&before, &after) {
                        (None, Some(t)) => {
                            t.insert(&cluster).await.unwrap_or_else(|e| {
                                panic!("{context}: writer {w}: insert {key:?}: {e}")
                            });
                            mine.push(t.clone());
                        }
                        (Some(_), Some(t)) => {
                            if let Err(e) = t.update(&cluster).await {
                                let seen = whereabouts(&cluster, key).await;
                                panic!("{context}: writer {w}: update {key:?}: {e}; {seen}")
                            }
                            let i = mine
                                .iter()
                                .position(|m| (m.tenant_id, m.id) == key)
                                .unwrap();
                            mine[i] = t.clone();
                        }
                        (Some(t), None) => {
                            let found = t.delete(&cluster).await.unwrap_or_else(|e| {
                                panic!("{context}: writer {w}: delete {key:?}: {e}")
                            });
                            if !found {
                                let seen = whereabouts(&cluster, key).await;
                                panic!(
                                    "writer {w}: delete {key:?} found no row: it was lost; {seen}"
                                );
                            }
                            mine.retain(|m| (m.tenant_id, m.id) != key);
                        }
                        (None, None) => unreachable!(),
                    }
                    {
                        let mut log = log.lock().unwrap();
                        log.in_flight.remove(&key);
                        log.acked.push((key, after));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    Writers { stop, log, handles }
}

impl Writers {
    /// Stops the writers (gracefully: nothing in flight) and returns their log.
    pub async fn stop(self) -> WriteLog {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.await.expect("a writer failed");
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Aborts every writer where it is (at its next await).
    pub fn abort(&self) {
        for h in &self.handles {
            h.abort();
        }
    }

    /// The process dies: the writers stop wherever they are.
    pub async fn kill(self) -> WriteLog {
        self.abort();
        for h in self.handles {
            if let Err(e) = h.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// What the table must hold.
#[derive(Debug, Default)]
pub struct Expected {
    pub rows: BTreeMap<Key, Ticket>,
    /// Keys whose last write was in flight when its process died: either version is right.
    pub either: BTreeMap<Key, (Option<Ticket>, Option<Ticket>)>,
}

impl Expected {
    pub fn apply(&mut self, log: WriteLog) {
        for (key, row) in log.acked {
            match row {
                Some(t) => self.rows.insert(key, t),
                None => self.rows.remove(&key),
            };
        }
        for (key, versions) in log.in_flight {
            self.rows.remove(&key);
            self.either.insert(key, versions);
        }
    }
}

/// Every row of every shard `shard_0..shard_7` (read through `inspect`, whose placement
/// names all eight), checked against `expected`: each on the shard
/// `count` hash shards name (no row at all on the other shards), none twice, none missing,
/// none changed. Resolves the in-flight keys to what the table holds.
pub async fn check<DB>(
    cluster: &Cluster<DB>,
    inspect: &Cluster<DB>,
    count: u32,
    expected: &mut Expected,
    context: &str,
) where
    DB: ReshardBackend,
    Ticket: FromShardRow<DB>,
{
    let resolver = HashResolver::new(count);
    let mut seen: BTreeMap<Key, Ticket> = BTreeMap::new();
    for i in 0..8u32 {
        let shard = ShardId::prefixed("shard_", i);
        let rows = Ticket::on_shard(shard).all(inspect).await.unwrap();
        for row in rows {
            let key = (row.tenant_id, row.id);
            assert!(
                i < count && resolver.shard_for(&row.tenant_id).index() == i,
                "{context}: ticket {key:?} lies on shard_{i}, but {count} hash shards place it \
                 on {}",
                resolver.shard_for(&row.tenant_id)
            );
            if key.1 >= EXTERNAL_BASE {
                // Another process's row, written while this runs: checked at the end.
                continue;
            }
            if let Some(dup) = seen.insert(key, row) {
                panic!("{context}: ticket {key:?} is on two shards ({dup:?})");
            }
        }
    }
    for (key, (before, after)) in std::mem::take(&mut expected.either) {
        let now = seen.get(&key);
        assert!(
            now == before.as_ref() || now == after.as_ref(),
            "{context}: in-flight ticket {key:?} is {now:?}, neither {before:?} nor {after:?}"
        );
        if let Some(row) = now {
            expected.rows.insert(key, row.clone());
        }
    }
    let missing: Vec<_> = expected
        .rows
        .keys()
        .filter(|k| !seen.contains_key(k))
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !expected.rows.contains_key(k))
        .collect();
    let changed: Vec<_> = expected
        .rows
        .iter()
        .filter(|(k, v)| seen.get(k).is_some_and(|s| s != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "{context}: the table differs from the acknowledged writes: {} missing (e.g. {:?}), {} \
         extra (e.g. {:?}), {} changed (e.g. {:?}); {} rows expected, {} found",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>(),
        changed.len(),
        changed.iter().take(5).collect::<Vec<_>>(),
        expected.rows.len(),
        seen.len()
    );
    assert_eq!(
        Ticket::query()
            .filter(Ticket::ID.lt(EXTERNAL_BASE))
            .count(cluster)
            .await
            .unwrap(),
        expected.rows.len() as u64,
        "{context}: the cluster's count"
    );
}

/// Ids from here on belong to writer processes (`external`): `EXTERNAL_BASE + t * 10^7 ..`.
pub const EXTERNAL_BASE: i64 = 1_000_000_000;

fn external_range(t: i64) -> (i64, i64) {
    let lo = EXTERNAL_BASE + t * 10_000_000;
    (lo, lo + 10_000_000)
}

fn external_ticket(t: i64, tenant_id: i64, id: i64, version: i64) -> Ticket {
    Ticket {
        tenant_id,
        id,
        title: format!("process {t} ticket {id} v{version} «ext»"),
        version,
    }
}

/// A writer process's loop (the test binary re-executed, `external::spawn`): inserts, updates
/// and deletes tickets of its own id range across all tenants through `cluster` (which follows
/// the topology store) until `stop` appears in `dir`, logging each acknowledged write
/// (`u tenant id version` / `d tenant id`) and checking each by reading it back; every tenth
/// write it counts its range (a scatter). Any failed operation or differing read panics: the
/// process exits with an error.
pub async fn external_writer<DB>(cluster: Cluster<DB>, t: i64, dir: &std::path::Path)
where
    DB: ReshardBackend,
    Ticket: FromShardRow<DB>,
{
    use std::io::Write;
    let (lo, hi) = external_range(t);
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(dir.join(format!("external{t}.log"))).unwrap(),
    );
    let mut rng = Rng::new(0xe7e7_0000 + t as u64);
    let mut mine: BTreeMap<Key, Ticket> = BTreeMap::new();
    let mut next = lo;
    let mut ops = 0u64;
    std::fs::write(dir.join(format!("external{t}.ready")), "").unwrap();
    while !dir.join("stop").exists() {
        ops += 1;
        let pick = rng.below(10);
        let key = if mine.len() < 10 || pick < 4 {
            let row = external_ticket(t, rng.below(TENANTS as u64) as i64, next, 0);
            next += 1;
            row.insert(&cluster)
                .await
                .unwrap_or_else(|e| panic!("process {t}: insert {}: {e}", row.id));
            writeln!(log, "u {} {} 0", row.tenant_id, row.id).unwrap();
            let key = (row.tenant_id, row.id);
            mine.insert(key, row);
            key
        } else {
            let keys: Vec<Key> = mine.keys().copied().collect();
            let key = keys[rng.below(keys.len() as u64) as usize];
            if pick < 8 {
                let old = &mine[&key];
                let row = external_ticket(t, key.0, key.1, old.version + 1);
                row.update(&cluster)
                    .await
                    .unwrap_or_else(|e| panic!("process {t}: update {key:?}: {e}"));
                writeln!(log, "u {} {} {}", key.0, key.1, row.version).unwrap();
                mine.insert(key, row);
            } else {
                let found = mine[&key]
                    .delete(&cluster)
                    .await
                    .unwrap_or_else(|e| panic!("process {t}: delete {key:?}: {e}"));
                assert!(
                    found,
                    "process {t}: delete {key:?} found no row: it was lost"
                );
                writeln!(log, "d {} {}", key.0, key.1).unwrap();
                mine.remove(&key);
            }
            key
        };
        log.flush().unwrap(); // what a kill leaves is on disk
        let read = Ticket::find(&cluster, key)
            .await
            .unwrap_or_else(|e| panic!("process {t}: find {key:?}: {e}"));
        assert_eq!(read.as_ref(), mine.get(&key), "process {t}: find {key:?}");
        if ops.is_multiple_of(10) {
            let counted = Ticket::query()
                .filter(Ticket::ID.gte(lo).and(Ticket::ID.lt(hi)))
                .count(&cluster)
                .await
                .unwrap_or_else(|e| panic!("process {t}: count: {e}"));
            assert_eq!(
                counted,
                mine.len() as u64,
                "process {t}: count of its range"
            );
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Writer processes beside the chaos test's own process.
pub struct External {
    /// Starts writer process `t` (the test binary re-executed).
    pub spawn: Box<dyn Fn(i64) -> std::process::Child>,
    /// Where they log and look for `stop`.
    pub dir: std::path::PathBuf,
    children: BTreeMap<i64, std::process::Child>,
    killed: Option<i64>,
}

impl Drop for External {
    /// A failed test leaves no writer process behind.
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl External {
    pub fn new(dir: std::path::PathBuf, spawn: Box<dyn Fn(i64) -> std::process::Child>) -> Self {
        External {
            spawn,
            dir,
            children: BTreeMap::new(),
            killed: None,
        }
    }

    async fn start(&mut self, t: i64) {
        self.children.insert(t, (self.spawn)(t));
        let ready = self.dir.join(format!("external{t}.ready"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            assert!(
                Instant::now() < deadline,
                "writer process {t} did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL for process `t`.
    fn kill(&mut self, t: i64) {
        let mut child = self.children.remove(&t).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.killed = Some(t);
    }

    /// Stops the processes, then checks every row they acknowledged: once, on the shard
    /// `count` hash shards name, as last written (the killed process's last write may have
    /// been applied without being logged: one of its rows may differ).
    async fn finish<DB>(mut self, inspect: &Cluster<DB>, count: u32, label: &str) -> usize
    where
        DB: ReshardBackend,
        Ticket: FromShardRow<DB>,
    {
        std::fs::write(self.dir.join("stop"), "").unwrap();
        let children = std::mem::take(&mut self.children);
        for (t, mut child) in children {
            assert!(
                child.wait().unwrap().success(),
                "{label}: writer process {t} failed"
            );
        }
        let mut expected: BTreeMap<Key, Option<i64>> = BTreeMap::new();
        let mut writes = 0;
        for t in 0..4 {
            let text = std::fs::read_to_string(self.dir.join(format!("external{t}.log")))
                .unwrap_or_default();
            for line in text.lines() {
                let parts: Vec<&str> = line.split(' ').collect();
                let num = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok());
                match (parts.first(), num(1), num(2), num(3)) {
                    (Some(&"u"), Some(tenant), Some(id), Some(version)) => {
                        expected.insert((tenant, id), Some(version));
                    }
                    (Some(&"d"), Some(tenant), Some(id), _) => {
                        expected.insert((tenant, id), None);
                    }
                    _ => continue, // a line cut by the kill
                }
                writes += 1;
            }
        }
        let resolver = HashResolver::new(count);
        let mut seen: BTreeMap<Key, Ticket> = BTreeMap::new();
        for i in 0..8u32 {
            let shard = ShardId::prefixed("shard_", i);
            for row in Ticket::on_shard(shard).all(inspect).await.unwrap() {
                let key = (row.tenant_id, row.id);
                if key.1 < EXTERNAL_BASE {
                    continue;
                }
                assert_eq!(
                    resolver.shard_for(&row.tenant_id).index(),
                    i,
                    "{label}: process ticket {key:?} on shard_{i}"
                );
                assert!(
                    seen.insert(key, row).is_none(),
                    "{label}: process ticket {key:?} on two shards"
                );
            }
        }
        let mut differ = Vec::new();
        for (key, version) in &expected {
            let stored = seen.get(key);
            let want = version
                .map(|v| external_ticket((key.1 - EXTERNAL_BASE) / 10_000_000, key.0, key.1, v));
            if stored != want.as_ref() {
                differ.push((*key, *version, stored.map(|r| r.version)));
            }
        }
        for key in seen.keys() {
            if !expected.contains_key(key) {
                differ.push((*key, None, Some(seen[key].version)));
            }
        }
        let killed = self.killed.map(external_range);
        assert!(
            differ.len() <= 1
                && differ
                    .iter()
                    .all(|(k, ..)| killed.is_some_and(|(lo, hi)| (lo..hi).contains(&k.1))),
            "{label}: the writer processes' acknowledged writes differ from the table: {differ:?}"
        );
        writes
    }
}

/// Interruptions by the phase they hit.
#[derive(Debug, Default)]
pub struct Stats {
    pub by_phase: BTreeMap<&'static str, u64>,
    pub failures: u64,
    pub rounds: u64,
    pub rollbacks: u64,
    pub with_writers: u64,
}

impl Stats {
    pub fn interruptions(&self) -> u64 {
        self.by_phase.values().sum::<u64>() + self.failures
    }
}

const PHASES: [Phase; 6] = [
    Phase::Planned,
    Phase::Copying,
    Phase::Verifying,
    Phase::Cutover,
    Phase::Cleanup,
    Phase::RollingBack,
];

/// Waits until `point` stopped its job.
async fn stopped(point: &CrashPoint) {
    while point.hit().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn is_failpoint(e: &Error) -> bool {
    e.to_string().contains("test failpoint")
}

/// One process's attempt at the round's job: connect, resume (or start), drive it. A step
/// that fails (a failpoint) is recovered in the same process: by resuming again, or by
/// `run()` — or `rollback()` when `roll_back_after_failure` — on the same job. Returns the
/// phase the job ended in, or `None` when the process died.
#[allow(clippy::too_many_arguments)]
async fn attempt<DB, F, Fut>(
    connect: &F,
    from: Option<u32>,
    to: u32,
    roll_back: bool,
    roll_back_after_failure: bool,
    point: Arc<CrashPoint>,
    writers: Option<(i64, u64)>,
    expected: &mut Expected,
) -> Result<Option<Phase>>
where
    DB: ReshardBackend,
    Ticket: FromShardRow<DB>,
    F: Fn(bool) -> Fut,
    Fut: Future<Output = Cluster<DB>>,
{
    let cluster = connect(true).await;
    // The documented recovery: the model's placement as it was when the job started — a new
    // process reads it from the topology store; a migration the dead process left is resumed
    // as it is (`set_placement` refuses to override it).
    let migrating = matches!(
        cluster.placement::<Ticket>().as_deref(),
        Some(grant::PlacementState {
            placement: Placement::Migrating { .. },
            ..
        })
    );
    if from.is_some() && !migrating {
        cluster.set_placement::<Ticket>(placement(from))?;
    }
    let mut options = ReshardOptions::default().crash(Arc::clone(&point));
    // GRANT_CHAOS_BULK=1 / 0 forces the bulk backfill on or off (default: the backend's).
    if let Ok(bulk) = std::env::var("GRANT_CHAOS_BULK") {
        options = options.bulk(bulk == "1");
    }
    let crew: Arc<Mutex<Option<Writers>>> = Arc::new(Mutex::new(None));
    let work = async {
        let mut failed = false;
        let job = loop {
            let new = placement(Some(to));
            let got = match ReshardJob::<Ticket, DB>::unfinished(&cluster)
                .await?
                .first()
            {
                Some(id) => {
                    ReshardJob::<Ticket, DB>::resume(&cluster, id, new, options.clone()).await
                }
                None => {
                    let plan = ReshardPlan::new::<Ticket, DB>(&cluster, new).await?;
                    ReshardJob::<Ticket, DB>::start(&cluster, plan, options.clone()).await
                }
            };
            match got {
                Ok(job) => break job,
                Err(e) if is_failpoint(&e) && !failed => failed = true,
                Err(e) => return Err(e),
            }
        };
        if let Some((first, seed)) = writers {
            *crew.lock().unwrap() = Some(start_writers(
                &cluster,
                first,
                3,
                seed,
                format!(
                    "{from:?}->{to} roll_back={roll_back} point={point:?} job phase at start {}",
                    job.status().phase
                ),
            ));
        }
        let mut roll = roll_back;
        loop {
            let phase = job.status().phase;
            let step = match phase {
                Phase::Done | Phase::RolledBack => return Ok(phase),
                Phase::Copying if roll && !failed => match job.copy().await {
                    Ok(()) => job.rollback().await,
                    Err(e) => Err(e),
                },
                Phase::RollingBack => job.rollback().await,
                _ if roll => job.rollback().await,
                _ => job.run().await.map(|_| ()),
            };
            match step {
                Ok(()) => {}
                Err(e) if is_failpoint(&e) && !failed => {
                    failed = true;
                    roll = roll_back_after_failure;
                }
                Err(e) => return Err(e),
            }
        }
    };
    // The process dies at the crash point: its writers stop there too, before anything the
    // job held (its gate, its transactions) is let go.
    let died = async {
        if point.is_failure() {
            std::future::pending::<()>().await;
        }
        stopped(&point).await;
        if let Some(crew) = crew.lock().unwrap().as_ref() {
            crew.abort();
        }
    };
    let outcome = tokio::select! {
        r = work => Some(r),
        () = died => None,
    };
    let crew = crew.lock().unwrap().take();
    if let Some(crew) = crew {
        let log = match outcome {
            None => crew.kill().await,
            Some(_) => crew.stop().await,
        };
        expected.apply(log);
    }
    drop(cluster);
    outcome.transpose()
}

/// The chaos test: rounds of reshards interrupted and recovered until `wanted` interruptions
/// happened. `connect` makes a new cluster (a new process) over the same 8 shard databases.
pub async fn run<DB, F, Fut>(
    label: &str,
    connect: F,
    wanted: u64,
    seed: u64,
    mut external: Option<External>,
) -> Stats
where
    DB: ReshardBackend,
    Ticket: FromShardRow<DB>,
    F: Fn(bool) -> Fut,
    Fut: Future<Output = Cluster<DB>>,
{
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut expected = Expected::default();
    {
        let c = connect(true).await;
        Ticket::create_table(&c).await.unwrap();
        let rows: Vec<Ticket> = (0..TENANTS)
            .flat_map(|t| (0..PER_TENANT).map(move |i| ticket(t, t * PER_TENANT + i)))
            .collect();
        for chunk in rows.chunks(4000) {
            Ticket::insert_many(&c, chunk).await.unwrap();
        }
        let mut per_source = [0u64; 4];
        for r in &rows {
            per_source[Ticket::shard_for(&r.tenant_id).index() as usize] += 1;
        }
        assert!(
            per_source.iter().all(|&n| n >= 5_000),
            "every source holds at least 5,000 rows: {per_source:?}"
        );
        expected.rows = rows.into_iter().map(|t| ((t.tenant_id, t.id), t)).collect();
    }
    if let Some(external) = &mut external {
        for t in 0..3 {
            external.start(t).await;
        }
    }
    // Steps seen per phase (grows as attempts see more), to aim interruptions inside phases.
    let mut span: BTreeMap<&'static str, u64> = PHASES.iter().map(|p| (p.as_str(), 4)).collect();
    let mut stats = Stats::default();
    let mut current: Option<u32> = None;
    let mut next_key = 10_000_000i64;
    while stats.interruptions() < wanted {
        stats.rounds += 1;
        if stats.rounds == 3
            && let Some(external) = &mut external
        {
            // One writer process dies (SIGKILL) and another one starts.
            external.kill(1);
            external.start(3).await;
        }
        assert!(
            stats.rounds <= 200,
            "{label}: 200 rounds without {wanted} interruptions"
        );
        let count = current.unwrap_or(4);
        let to = if count == 4 { 8 } else { 4 };
        let roll_back = rng.chance(25);
        stats.rollbacks += u64::from(roll_back);
        let mut crashes_left = 2 + rng.below(5);
        let mut last_hit: Option<Phase> = None;
        let mut attempts = 0;
        let ended = loop {
            attempts += 1;
            assert!(
                attempts < 30,
                "{label}: round {} does not end",
                stats.rounds
            );
            let point = if crashes_left == 0 {
                CrashPoint::after(0)
            } else {
                // Aim at a phase this attempt reaches: a fresh job passes every phase; a
                // resumed one copies what is left, verifies everything again and cuts over; a
                // resumed cutover finishes in cleanup, a resumed rollback rolls back.
                let phase = match last_hit {
                    None if roll_back => {
                        [Phase::Planned, Phase::Copying, Phase::RollingBack][rng.below(3) as usize]
                    }
                    None => [
                        Phase::Planned,
                        Phase::Copying,
                        Phase::Verifying,
                        Phase::Cutover,
                    ][rng.below(4) as usize],
                    Some(Phase::Cutover | Phase::Cleanup) => Phase::Cleanup,
                    Some(_) if roll_back => Phase::RollingBack,
                    Some(Phase::RollingBack) => Phase::RollingBack,
                    Some(_) => [Phase::Verifying, Phase::Cutover][rng.below(2) as usize],
                };
                // Later attempts have less left to do in cleanup and rollback.
                let reach = match (last_hit, phase) {
                    (Some(_), Phase::Cleanup | Phase::RollingBack) => span[phase.as_str()] / 3,
                    _ => span[phase.as_str()],
                };
                let n = 1 + rng.below(reach);
                if rng.chance(15) && phase != Phase::Planned {
                    CrashPoint::fail_in(phase, n)
                } else {
                    CrashPoint::in_phase(phase, n)
                }
            };
            let writers = rng.chance(50).then(|| {
                next_key += 1_000_000;
                (next_key, rng.next())
            });
            stats.with_writers += u64::from(writers.is_some());
            let roll_back_after_failure = rng.chance(50);
            let result = attempt(
                &connect,
                current,
                to,
                roll_back,
                roll_back_after_failure,
                Arc::clone(&point),
                writers,
                &mut expected,
            )
            .await;
            for p in PHASES {
                let s = span.get_mut(p.as_str()).unwrap();
                *s = (*s).max(point.steps_in(p));
            }
            if std::env::var("GRANT_CHAOS_TRACE").is_ok() {
                eprintln!(
                    "{label} round {} attempt {attempts}: {count}->{to} roll_back={roll_back} \
                     after_failure={roll_back_after_failure} writers={} point={point:?} -> {:?}",
                    stats.rounds,
                    writers.is_some(),
                    result.as_ref().map_err(|e| e.to_string())
                );
            }
            if point.is_failure() && point.hit().is_some() {
                stats.failures += 1;
                crashes_left = crashes_left.saturating_sub(1);
            }
            match result {
                Ok(Some(phase)) => break phase,
                Ok(None) => {
                    let phase = point.hit().expect("stopped without a crash");
                    *stats.by_phase.entry(phase.as_str()).or_default() += 1;
                    crashes_left = crashes_left.saturating_sub(1);
                    last_hit = Some(phase);
                }
                Err(e) => panic!(
                    "{label}: round {}: the job failed: {e} (crash point {:?})",
                    stats.rounds,
                    point.hit()
                ),
            }
        };
        // A fresh process on the final placement checks the table.
        let moved = ended == Phase::Done;
        let final_count = if moved { to } else { count };
        let c = connect(true).await;
        if moved {
            current = Some(to);
        }
        if current.is_some() {
            c.set_placement::<Ticket>(placement(current)).unwrap();
        }
        let context = format!(
            "{label}: round {} ({} → {}, {})",
            stats.rounds,
            count,
            to,
            if moved { "moved" } else { "rolled back" }
        );
        // Every shard read as it is, whatever the placement says.
        // A cluster of its own topology: its placement must not reach the application's.
        let inspect = connect(false).await;
        inspect.set_placement::<Ticket>(placement(Some(8))).unwrap();
        check(&c, &inspect, final_count, &mut expected, &context).await;
        assert!(
            ReshardJob::<Ticket, DB>::unfinished(&c)
                .await
                .unwrap()
                .is_empty(),
            "{context}: a job is left unfinished"
        );
    }
    let external_writes = match external {
        Some(external) => {
            let inspect = connect(false).await;
            inspect.set_placement::<Ticket>(placement(Some(8))).unwrap();
            external.finish(&inspect, current.unwrap_or(4), label).await
        }
        None => 0,
    };
    println!(
        "{label} chaos: {} interruptions ({:?}, {} failed steps) over {} rounds ({} rolled back, \
         {} attempts with writers), {} rows at the end, {external_writes} writes by writer \
         processes, {:?}",
        stats.interruptions(),
        stats.by_phase,
        stats.failures,
        stats.rounds,
        stats.rollbacks,
        stats.with_writers,
        expected.rows.len(),
        started.elapsed()
    );
    stats
}
