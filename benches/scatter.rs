//! Scatter-gather costs:
//!
//! * (a) 8 shards whose statement each takes ~100 ms: the query's wall time should be about
//!   the slowest shard's (≤ 1.3 × 100 ms), not the sum (800 ms);
//! * (b) `ORDER BY score LIMIT 100` and `LIMIT 100 OFFSET 10000` over 8 × 100,000 rows through
//!   the streaming merge, against the same query on one database holding all 800,000 rows
//!   (plain sqlx); and the merge's peak heap, which must not grow with the row count (measured
//!   with a counting allocator at 8 × 10,000 and 8 × 100,000 rows, printed before the timings).
#![allow(missing_docs)]
#![allow(unsafe_code)] // the counting allocator below: GlobalAlloc is an unsafe trait

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use grant::prelude::*;
use sea_query::{Condition, Expr};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "events")]
#[shard(strategy = "hash", on = "id", count = 8)]
struct Event {
    #[primary_key]
    id: i64,
    score: i64,
    label: String,
}

fn rows(n: i64) -> Vec<Event> {
    (0..n)
        .map(|id| Event {
            id,
            score: (id.wrapping_mul(2_654_435_761) % 1_000_003).abs(),
            label: format!("event-{id}"),
        })
        .collect()
}

async fn sharded(n: i64) -> Cluster<Sqlite> {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    Event::create_table(&cluster).await.unwrap();
    Event::insert_many(&cluster, &rows(n)).await.unwrap();
    cluster
}

async fn single(n: i64) -> sqlx::SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, score INTEGER NOT NULL, label TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for e in rows(n) {
        sqlx::query("INSERT INTO events VALUES (?, ?, ?)")
            .bind(e.id)
            .bind(e.score)
            .bind(e.label)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool
}

fn page(offset: u64) -> Query<Event> {
    Event::on_all_shards()
        .order_by(Event::SCORE, Order::Asc)
        .limit(100)
        .offset(offset)
}

async fn peak_during<F: std::future::Future>(f: F) -> (usize, F::Output) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f.await;
    (PEAK.load(Ordering::SeqCst) - base, out)
}

/// 8 file shards whose `grant_delay` collation sleeps 100 ms per statement.
async fn sleepy() -> (Cluster<Sqlite>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut pools = Vec::new();
    for i in 0..8 {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join(format!("shard_{i}.db")))
            .create_if_missing(true)
            .collation("grant_delay", |a: &str, b: &str| {
                std::thread::sleep(Duration::from_millis(100));
                a.cmp(b)
            });
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        pools.push((format!("shard_{i}"), pool));
    }
    let cluster = Cluster::from_pools(pools, Duration::from_secs(30)).unwrap();
    Event::create_table(&cluster).await.unwrap();
    // One row per shard, so the delay runs once per shard.
    let mut picked = Vec::new();
    for shard in 0..8 {
        let id = (0..)
            .find(|id| Event::shard_for(id).index() == shard)
            .unwrap();
        picked.push(Event {
            id,
            score: 0,
            label: "x".into(),
        });
    }
    Event::insert_many(&cluster, &picked).await.unwrap();
    (cluster, dir)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // (a) parallel fan-out.
    let (slow, _dir) = rt.block_on(sleepy());
    let wait =
        || Cond::<Event>::raw(Condition::all().add(Expr::cust("label = 'x' COLLATE grant_delay")));
    let mut group = c.benchmark_group("scatter_8_shards_x_100ms");
    group.sample_size(10);
    group.bench_function("count over 8 sleeping shards", |b| {
        b.to_async(&rt).iter(|| async {
            Event::on_all_shards()
                .filter(wait())
                .count(&slow)
                .await
                .unwrap()
        })
    });
    group.bench_function("one sleeping shard (reference)", |b| {
        b.to_async(&rt).iter(|| async {
            Event::on_shard(ShardId::new(0))
                .filter(wait())
                .count(&slow)
                .await
                .unwrap()
        })
    });
    group.finish();

    // (b) ordered merge vs one database.
    let small = rt.block_on(sharded(80_000));
    let (small_peak, _) = rt.block_on(peak_during(page(10_000).all(&small)));
    drop(small);
    let big = rt.block_on(sharded(800_000));
    let one = rt.block_on(single(800_000));
    let (big_peak, got) = rt.block_on(peak_during(page(10_000).all(&big)));
    let got = got.unwrap();
    let want: Vec<i64> = rt
        .block_on(
            sqlx::query_scalar("SELECT id FROM events ORDER BY score, id LIMIT 100 OFFSET 10000")
                .fetch_all(&one),
        )
        .unwrap();
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), want);
    let (big_peak_0, _) = rt.block_on(peak_during(page(0).all(&big)));
    println!(
        "peak heap of the merge, LIMIT 100 OFFSET 10000: {:.1} KiB at 8 x 10,000 rows, {:.1} KiB at 8 x 100,000 rows; LIMIT 100: {:.1} KiB at 8 x 100,000",
        small_peak as f64 / 1024.0,
        big_peak as f64 / 1024.0,
        big_peak_0 as f64 / 1024.0
    );

    // The keyset alternative to a deep OFFSET: the page after row 10,000.
    let cursor = rt
        .block_on(page(9_999).limit(1).all(&big))
        .unwrap()
        .pop()
        .unwrap();
    let keyset = || {
        Event::on_all_shards()
            .order_by(Event::SCORE, Order::Asc)
            .after(&cursor)
            .limit(100)
    };
    let by_keyset: Vec<i64> = rt
        .block_on(keyset().all(&big))
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(by_keyset, want, "the keyset page equals the OFFSET page");

    let mut group = c.benchmark_group("order_by_limit_800k_rows");
    group.sample_size(10);
    group.bench_function("grant 8 shards keyset page after row 10000", |b| {
        b.to_async(&rt)
            .iter(|| async { keyset().all(&big).await.unwrap() })
    });
    for offset in [0_u64, 10_000] {
        group.bench_function(format!("grant 8 shards LIMIT 100 OFFSET {offset}"), |b| {
            b.to_async(&rt)
                .iter(|| async { page(offset).all(&big).await.unwrap() })
        });
        group.bench_function(format!("one database LIMIT 100 OFFSET {offset}"), |b| {
            b.to_async(&rt).iter(|| async {
                sqlx::query_as::<_, (i64, i64, String)>(sqlx::AssertSqlSafe(format!(
                    "SELECT id, score, label FROM events ORDER BY score, id LIMIT 100 OFFSET {offset}"
                )))
                .fetch_all(&one)
                .await
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
