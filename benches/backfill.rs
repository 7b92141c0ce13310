//! The resharding backfill against its floor, paired in one run: a 4 → 8 hash reshard of
//! 200,000 rows (100,000 move) on 8 PostgreSQL databases of one server, timing the copy phase
//! (`ReshardJob::copy`) alone, with the bulk path (binary `COPY` from source to target) and the
//! row path (decode, upsert, read back), against the floor the issue names: `COPY (SELECT ..)
//! TO STDOUT (FORMAT binary)` on each source piped into `COPY .. FROM STDIN (FORMAT binary)`
//! on a target (into a table with the same primary key), the four sources at once as the job
//! copies them.
//!
//! Each iteration plans and starts a fresh job outside the timing and rolls it back after it
//! (the documented way back; the copies are deleted), so every iteration copies the same rows
//! into empty targets. PostgreSQL is `GRANT_PG_URL` or a throwaway server started here.
#![allow(missing_docs)]

#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use grant::Placement;
use grant::prelude::*;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;
use grant_sharding::testing::postgres::database_name;
use sqlx::postgres::PgPoolCopyExt;

const ROWS: i64 = 200_000;
const SOURCES: usize = 4;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct Account {
    #[primary_key]
    id: i64,
    tenant_id: i64,
    name: String,
    email: String,
    balance: i64,
    active: bool,
    note: Option<String>,
}

fn account(id: i64) -> Account {
    Account {
        id,
        tenant_id: id % 97,
        name: format!("Customer {id}"),
        email: format!("customer{id}@example.com"),
        balance: (id * 7919) % 100_000,
        active: id % 5 != 0,
        note: (id % 3 == 0).then(|| format!("note for {id}")),
    }
}

const COLUMNS: &str = "id, tenant_id, name, email, balance, active, note";

/// Plans and starts a job (untimed), times its copy phase, rolls it back (untimed).
async fn timed_copy(cluster: &Cluster<Postgres>, bulk: bool) -> (Duration, u64) {
    let plan =
        ReshardPlan::new::<Account, Postgres>(cluster, Placement::resolver(HashResolver::new(8)))
            .await
            .unwrap();
    let mut options = ReshardOptions::default().bulk(bulk);
    if let Some(n) = std::env::var("BACKFILL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options = options.bulk_batch_size(n);
    }
    let job = ReshardJob::<Account, Postgres>::start(cluster, plan, options)
        .await
        .unwrap();
    let started = Instant::now();
    job.copy().await.unwrap();
    let took = started.elapsed();
    let copied = job.status().rows_copied;
    job.rollback().await.unwrap();
    assert_eq!(job.status().phase, Phase::RolledBack);
    (took, copied)
}

/// The floor: each source's rows piped with binary COPY into `floor_accounts` on a target,
/// the sources at once.
async fn floor(sources: &[sqlx::PgPool], targets: &[sqlx::PgPool]) -> (Duration, u64) {
    for target in targets {
        sqlx::raw_sql("TRUNCATE floor_accounts")
            .execute(target)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let moved = futures_util::future::join_all(sources.iter().zip(targets).map(
        |(source, target)| async move {
            let mut sink = target
                .copy_in_raw(&format!(
                    "COPY floor_accounts ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await
                .unwrap();
            let mut stream = source
                .copy_out_raw(&format!(
                    "COPY (SELECT {COLUMNS} FROM accounts) TO STDOUT (FORMAT binary)"
                ))
                .await
                .unwrap();
            while let Some(chunk) = stream.next().await {
                sink.send(chunk.unwrap()).await.unwrap();
            }
            sink.finish().await.unwrap()
        },
    ))
    .await;
    (started.elapsed(), moved.iter().sum())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Declared before the cluster: dropped (stopped) after it.
    let Some((env, _server)) = pg::postgres("backfill_postgres") else {
        return;
    };
    let (cluster, sources, targets, moving) = rt.block_on(async {
        let mut builder = Cluster::<Postgres>::builder();
        let mut urls = Vec::new();
        for i in 0..8 {
            let url = env
                .create_database(&database_name("bench_backfill", &format!("shard_{i}")))
                .await
                .unwrap();
            builder = builder.shard(format!("shard_{i}"), url.clone());
            urls.push(url);
        }
        let cluster = builder.connect().await.unwrap();
        Account::create_table(&cluster).await.unwrap();
        let rows: Vec<Account> = (1..=ROWS).map(account).collect();
        for chunk in rows.chunks(10_000) {
            Account::insert_many(&cluster, chunk).await.unwrap();
        }
        let pool = |url: String| async move {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .unwrap()
        };
        let mut sources = Vec::new();
        let mut targets = Vec::new();
        for (i, url) in urls.into_iter().enumerate() {
            let p = pool(url).await;
            if i < SOURCES {
                sources.push(p);
            } else {
                sqlx::raw_sql(
                    "CREATE TABLE floor_accounts (id BIGINT PRIMARY KEY, tenant_id BIGINT NOT \
                     NULL, name TEXT NOT NULL, email TEXT NOT NULL, balance BIGINT NOT NULL, \
                     active BOOLEAN NOT NULL, note TEXT)",
                )
                .execute(&p)
                .await
                .unwrap();
                targets.push(p);
            }
        }
        let moving = ReshardPlan::new::<Account, Postgres>(
            &cluster,
            Placement::resolver(HashResolver::new(8)),
        )
        .await
        .unwrap()
        .rows_to_move();
        (cluster, sources, targets, moving)
    });

    let mut group = c.benchmark_group("backfill_postgres");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let mut report = Vec::new();
    for (name, bulk) in [
        ("grant copy phase, bulk (binary COPY)", Some(true)),
        ("grant copy phase, row path", Some(false)),
        ("floor: COPY TO STDOUT | COPY FROM STDIN", None),
    ] {
        let elements = if bulk.is_some() { moving } else { ROWS as u64 };
        group.throughput(Throughput::Elements(elements));
        let (mut rows, mut spent) = (0u64, Duration::ZERO);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (took, moved) = match bulk {
                            Some(bulk) => timed_copy(&cluster, bulk).await,
                            None => floor(&sources, &targets).await,
                        };
                        assert_eq!(moved, elements, "{name}: rows moved");
                        total += took;
                        rows += moved;
                        spent += took;
                    }
                    total
                })
            })
        });
        let rate = rows as f64 / spent.as_secs_f64();
        println!("{name}: {rate:.0} rows/s");
        report.push((name, rate));
    }
    group.finish();
    if let [bulk, row, floor] = report[..] {
        println!(
            "bulk / floor {:.2}; row path / floor {:.2}; bulk / row path {:.2}",
            bulk.1 / floor.1,
            row.1 / floor.1,
            bulk.1 / row.1
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
