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
//!
//! The same on 8 SQLite shard files (`backfill_sqlite`): the bulk path (the targets attached to
//! the source's connection, `INSERT .. SELECT`, compared in SQL) and the row path against the
//! floor the issue names there — each source's rows copied by one `ATTACH` + `INSERT INTO
//! target SELECT .. FROM source`, one source after another (as the job copies them: a SQLite
//! batch locks its whole source database).
#![allow(missing_docs)]

#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use grant::prelude::*;
use grant::reshard::{Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;
use grant::{FromShardRow, Placement};
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
async fn timed_copy<DB: ReshardBackend>(cluster: &Cluster<DB>, bulk: bool) -> (Duration, u64)
where
    Account: FromShardRow<DB>,
{
    let plan = ReshardPlan::new::<Account, DB>(cluster, Placement::resolver(HashResolver::new(8)))
        .await
        .unwrap();
    let mut options = ReshardOptions::default().bulk(bulk);
    if let Some(n) = std::env::var("BACKFILL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options = options.bulk_batch_size(n);
    }
    let job = ReshardJob::<Account, DB>::start(cluster, plan, options)
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

/// The SQLite floor: each source file's rows copied by `ATTACH` + `INSERT .. SELECT` into
/// `floor_accounts` of a target file, one source after another.
async fn sqlite_floor(files: &[std::path::PathBuf]) -> (Duration, u64) {
    let mut conns = Vec::new();
    for i in 0..SOURCES {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
            "sqlite://{}",
            files[i].display()
        ))
        .await
        .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ATTACH DATABASE '{}' AS floor; CREATE TABLE IF NOT EXISTS floor.floor_accounts (id \
             INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT \
             NOT NULL, balance INTEGER NOT NULL, active BOOLEAN NOT NULL, note TEXT); DELETE \
             FROM floor.floor_accounts",
            files[SOURCES + i].display()
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        conns.push(conn);
    }
    let started = Instant::now();
    let mut moved = 0;
    for conn in &mut conns {
        moved += sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO floor.floor_accounts ({COLUMNS}) SELECT {COLUMNS} FROM main.accounts"
        )))
        .execute(&mut *conn)
        .await
        .unwrap()
        .rows_affected();
    }
    (started.elapsed(), moved)
}

/// Times `grant` (bulk, row path) against `floor` in one group, printing the rates.
fn paired<F>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    names: [&str; 3],
    moving: u64,
    mut run: impl FnMut(Option<bool>) -> F,
) where
    F: std::future::Future<Output = (Duration, u64)>,
{
    let mut group = c.benchmark_group(group);
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    let mut report = Vec::new();
    for (name, bulk) in names.into_iter().zip([Some(true), Some(false), None]) {
        let elements = if bulk.is_some() { moving } else { ROWS as u64 };
        group.throughput(Throughput::Elements(elements));
        let (mut rows, mut spent) = (0u64, Duration::ZERO);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (took, moved) = run(bulk).await;
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

fn sqlite(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<std::path::PathBuf> = (0..8)
        .map(|i| dir.path().join(format!("shard_{i}.db")))
        .collect();
    let (cluster, moving) = rt.block_on(async {
        let mut builder = Cluster::<Sqlite>::builder();
        for (i, file) in files.iter().enumerate() {
            builder = builder.shard(format!("shard_{i}"), file.display().to_string());
        }
        let cluster = builder.connect().await.unwrap();
        Account::create_table(&cluster).await.unwrap();
        let rows: Vec<Account> = (1..=ROWS).map(account).collect();
        for chunk in rows.chunks(10_000) {
            Account::insert_many(&cluster, chunk).await.unwrap();
        }
        let moving = ReshardPlan::new::<Account, Sqlite>(
            &cluster,
            Placement::resolver(HashResolver::new(8)),
        )
        .await
        .unwrap()
        .rows_to_move();
        (cluster, moving)
    });
    paired(
        c,
        rt,
        "backfill_sqlite",
        [
            "grant copy phase, bulk (attached INSERT .. SELECT)",
            "grant copy phase, row path",
            "floor: ATTACH + INSERT .. SELECT",
        ],
        moving,
        |bulk| {
            let (cluster, files) = (&cluster, &files);
            async move {
                match bulk {
                    Some(bulk) => timed_copy(cluster, bulk).await,
                    None => sqlite_floor(files).await,
                }
            }
        },
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os("BACKFILL_PG_ONLY").is_none() {
        sqlite(c, &rt);
    }
    if std::env::var_os("BACKFILL_SQLITE_ONLY").is_some() {
        return;
    }
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

    paired(
        c,
        &rt,
        "backfill_postgres",
        [
            "grant copy phase, bulk (binary COPY)",
            "grant copy phase, row path",
            "floor: COPY TO STDOUT | COPY FROM STDIN",
        ],
        moving,
        |bulk| {
            let (cluster, sources, targets) = (&cluster, &sources, &targets);
            async move {
                match bulk {
                    Some(bulk) => timed_copy(cluster, bulk).await,
                    None => floor(sources, targets).await,
                }
            }
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
