//! Rows per second moved by an online 4 → 8 hash reshard of 20,000 rows on SQLite shard files
//! (plan, start, copy, verify, cutover), without concurrent writes and with one writer task
//! inserting, updating and deleting throughout. Each iteration starts from fresh shard files,
//! loaded outside the timing.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use grant::Placement;
use grant::prelude::*;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;

const ROWS: i64 = 20_000;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct Account {
    #[primary_key]
    id: i64,
    owner: String,
    balance: i64,
}

fn account(id: i64) -> Account {
    Account {
        id,
        owner: format!("owner {id}"),
        balance: id % 1000,
    }
}

/// Fresh shard files with `ROWS` accounts on the derive's 4 hash shards (8 shards in all).
async fn loaded(dir: &std::path::Path) -> Cluster<Sqlite> {
    let mut b = Cluster::<Sqlite>::builder();
    for i in 0..8 {
        let file = dir.join(format!("shard_{i}.db"));
        b = b.shard(format!("shard_{i}"), file.display().to_string());
    }
    let cluster = b.connect().await.unwrap();
    Account::create_table(&cluster).await.unwrap();
    let rows: Vec<Account> = (1..=ROWS).map(account).collect();
    for chunk in rows.chunks(5_000) {
        Account::insert_many(&cluster, chunk).await.unwrap();
    }
    cluster
}

/// Plans and runs the reshard; returns the rows copied.
async fn reshard(cluster: &Cluster<Sqlite>) -> u64 {
    let plan =
        ReshardPlan::new::<Account, Sqlite>(cluster, Placement::resolver(HashResolver::new(8)))
            .await
            .unwrap();
    let job = ReshardJob::<Account, Sqlite>::start(cluster, plan, ReshardOptions::default())
        .await
        .unwrap();
    let status = job.run().await.unwrap();
    assert_eq!(status.phase, Phase::Done);
    status.rows_copied
}

/// One writer task on keys above `ROWS`: inserts, updates and deletes its own rows until
/// `stop`; counts acknowledged writes.
fn writer(
    cluster: &Cluster<Sqlite>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let mut next = ROWS + 1;
        let mut mine: Vec<Account> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match next % 3 {
                0 | 1 => {
                    let a = account(next);
                    a.insert(&cluster).await.unwrap();
                    mine.push(a);
                }
                _ => {
                    if let Some(mut a) = mine.pop() {
                        a.balance += 1;
                        a.update(&cluster).await.unwrap();
                        if next % 2 == 0 {
                            assert!(a.delete(&cluster).await.unwrap());
                        } else {
                            mine.insert(0, a);
                        }
                    }
                }
            }
            next += 1;
            acked.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Rows that move (the same every iteration: the keys and the hash are fixed).
    let moving = rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = loaded(dir.path()).await;
        ReshardPlan::new::<Account, Sqlite>(&cluster, Placement::resolver(HashResolver::new(8)))
            .await
            .unwrap()
            .rows_to_move()
    });

    let mut group = c.benchmark_group("reshard_sqlite_files");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(moving));
    for writers in [false, true] {
        let name = if writers {
            "4 to 8 hash, 20000 rows, one writer"
        } else {
            "4 to 8 hash, 20000 rows, no writes"
        };
        let mut copied = 0u64;
        let mut spent = Duration::ZERO;
        let mut writes = 0u64;
        let mut runs = 0u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().unwrap();
                        let cluster = loaded(dir.path()).await;
                        let stop = Arc::new(AtomicBool::new(false));
                        let acked = Arc::new(AtomicU64::new(0));
                        let task = writers
                            .then(|| writer(&cluster, Arc::clone(&stop), Arc::clone(&acked)));
                        let start = Instant::now();
                        let rows = reshard(&cluster).await;
                        let took = start.elapsed();
                        stop.store(true, Ordering::Relaxed);
                        if let Some(task) = task {
                            task.await.unwrap();
                        }
                        total += took;
                        copied += rows;
                        spent += took;
                        writes += acked.load(Ordering::Relaxed);
                        runs += 1;
                    }
                    total
                })
            })
        });
        println!(
            "{name}: {:.0} rows/s copied, plan to cutover ({moving} rows move; {:.0} \
             acknowledged writes per reshard over {runs} runs)",
            copied as f64 / spent.as_secs_f64(),
            writes as f64 / runs.max(1) as f64
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
