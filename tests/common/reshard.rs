//! The resharding scenario shared by tests/reshard.rs (SQLite) and tests/pg_reshard.rs:
//! an `Account` model on 4 hash shards, writer tasks that insert, update and delete their own
//! keys continuously and log every acknowledged write, and the checks.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use grant::FromShardRow;
use grant::Placement;
use grant::prelude::*;
use grant::reshard::ReshardBackend;
use grant::resolve::HashResolver;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Account {
    #[primary_key]
    pub id: i64,
    pub owner: String,
    pub balance: i64,
    pub version: i64,
}

pub fn account(id: i64) -> Account {
    Account {
        id,
        owner: format!("owner {id} 'quoted' ünï"),
        balance: id * 3 % 1000,
        version: 0,
    }
}

pub const WRITERS: i64 = 4;

/// The 8-shard placement the tests move to.
pub fn eight() -> Placement {
    Placement::resolver(HashResolver::new(8))
}

/// Writer tasks: task `t` owns the keys `k` with `k % WRITERS == t`.
pub struct Writers {
    stop: Arc<AtomicBool>,
    pub acked: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<BTreeMap<i64, Option<Account>>>>,
}

/// Starts the writers on `cluster`; `alive` are the keys that exist now, `next` the first
/// key never used.
pub fn start_writers<DB>(
    cluster: &Cluster<DB>,
    alive: &BTreeMap<i64, Account>,
    next: i64,
) -> Writers
where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let handles = (0..WRITERS)
        .map(|t| {
            let cluster = cluster.clone();
            let stop = Arc::clone(&stop);
            let acked = Arc::clone(&acked);
            let mut mine: Vec<Account> = alive
                .values()
                .filter(|a| a.id.rem_euclid(WRITERS) == t)
                .cloned()
                .collect();
            let mut next_key = next + (t - next.rem_euclid(WRITERS)).rem_euclid(WRITERS);
            tokio::spawn(async move {
                let mut log: BTreeMap<i64, Option<Account>> = BTreeMap::new();
                let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let pick = (seed >> 33) as usize;
                    match pick % 10 {
                        0..=3 => {
                            let a = account(next_key);
                            next_key += WRITERS;
                            a.insert(&cluster)
                                .await
                                .unwrap_or_else(|e| panic!("writer {t}: insert {}: {e}", a.id));
                            log.insert(a.id, Some(a.clone()));
                            mine.push(a);
                        }
                        4..=7 if !mine.is_empty() => {
                            let i = pick / 10 % mine.len();
                            let a = &mut mine[i];
                            a.balance += 1;
                            a.version += 1;
                            a.update(&cluster)
                                .await
                                .unwrap_or_else(|e| panic!("writer {t}: update {}: {e}", a.id));
                            log.insert(a.id, Some(a.clone()));
                        }
                        _ if !mine.is_empty() => {
                            let i = pick / 10 % mine.len();
                            let a = mine.swap_remove(i);
                            let deleted = a
                                .delete(&cluster)
                                .await
                                .unwrap_or_else(|e| panic!("writer {t}: delete {}: {e}", a.id));
                            assert!(deleted, "writer {t}: delete {} found no row", a.id);
                            log.insert(a.id, None);
                        }
                        _ => {}
                    }
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                log
            })
        })
        .collect();
    Writers {
        stop,
        acked,
        handles,
    }
}

impl Writers {
    /// Stops the writers and applies their logs to `expected`.
    pub async fn stop(self, expected: &mut BTreeMap<i64, Account>) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            for (id, row) in h.await.expect("writer task panicked") {
                match row {
                    Some(a) => {
                        expected.insert(id, a);
                    }
                    None => {
                        expected.remove(&id);
                    }
                }
            }
        }
        self.acked.load(Ordering::Relaxed)
    }
}

/// Loads `n` accounts on the static 4-shard placement.
pub async fn preload<DB>(cluster: &Cluster<DB>, n: i64) -> BTreeMap<i64, Account>
where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    Account::create_table(cluster).await.unwrap();
    let rows: Vec<Account> = (1..=n).map(account).collect();
    for chunk in rows.chunks(5000) {
        Account::insert_many(cluster, chunk).await.unwrap();
    }
    rows.into_iter().map(|a| (a.id, a)).collect()
}

/// Every row on shard `shard_{i}` for `i < count`, checked to lie where `placement_count`
/// hash shards put its key, and the union equal to `expected` (no duplicates).
pub async fn check_layout<DB>(
    cluster: &Cluster<DB>,
    shards: u32,
    placed_by: u32,
    expected: &BTreeMap<i64, Account>,
) where
    DB: ReshardBackend,
    Account: FromShardRow<DB>,
{
    let resolver = HashResolver::new(placed_by);
    let mut seen: BTreeMap<i64, Account> = BTreeMap::new();
    for i in 0..shards {
        let shard = ShardId::prefixed("shard_", i);
        let rows = Account::on_shard(shard).all(cluster).await.unwrap();
        for row in rows {
            assert_eq!(
                resolver.shard_for(&row.id).index(),
                i,
                "account {} lies on shard_{i}, but {placed_by} hash shards place it on {}",
                row.id,
                resolver.shard_for(&row.id)
            );
            if let Some(dup) = seen.insert(row.id, row) {
                panic!("account {} is on two shards ({dup:?})", dup.id);
            }
        }
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !seen.contains_key(k))
        .take(5)
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !expected.contains_key(k))
        .take(5)
        .collect();
    let changed: Vec<_> = expected
        .iter()
        .filter(|(k, v)| seen.get(k).is_some_and(|s| s != *v))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "table differs from the log of acknowledged writes: missing {missing:?}, extra \
         {extra:?}, changed {changed:?} ({} rows expected, {} found)",
        expected.len(),
        seen.len()
    );
}

/// Waits until `f` holds (polling), at most `limit`.
pub async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
