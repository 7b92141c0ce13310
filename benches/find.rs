//! A routed `find` through Grant against the same statement through plain sqlx (prepared and
//! cached by sqlx, on the very same shard pool, so the database, the pool settings and the
//! connections are identical), and throughput with 8 concurrent tasks:
//!
//! - `find_sqlite_memory`: 4 in-memory SQLite shards;
//! - `find_postgres`: 4 PostgreSQL shard databases on a throwaway server started here with the
//!   test harness (`initdb` + `pg_ctl`), or on the server `GRANT_PG_URL` names. Without either
//!   the group is skipped with a line on stderr.
//!
//! On PostgreSQL the same statement also runs on one dedicated connection per shard (no
//! pool), the floor an in-process layer can reach; and a count over 4 and over 2 shards is
//! measured against the slowest shard's statement alone and against all of them at once
//! (`count_postgres_4_shards`, `count_postgres_2_shards`).
//!
//! Targets: Grant ≤ 1.10× plain sqlx on SQLite, ≤ 1.05× on PostgreSQL; Grant ≤ 1.15× the
//! dedicated connection on PostgreSQL.
#![allow(missing_docs)]

#[path = "common/pg.rs"]
mod pg;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use grant::prelude::*;
use grant::{Backend, FromShardRow};
use grant_sharding::testing::postgres::database_name;
use tokio::runtime::Runtime;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct User {
    #[primary_key]
    id: i64,
    name: String,
    balance: i64,
}

/// The same table over 2 shards (the count over 2 shards: on 2 cores, the most statements that
/// can run at once).
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Pair {
    #[primary_key]
    id: i64,
    name: String,
    balance: i64,
}

const ROWS: i64 = 10_000;
const TASKS: i64 = 8;
const FINDS_PER_TASK: i64 = 100;

fn users() -> Vec<User> {
    (0..ROWS)
        .map(|id| User {
            id,
            name: format!("user {id}"),
            balance: id * 3,
        })
        .collect()
}

/// The statement Grant's `find` sends, spelled by hand for plain sqlx.
trait Dialect: Backend {
    const FIND: &'static str;
}

impl Dialect for Sqlite {
    const FIND: &'static str =
        r#"SELECT "id", "name", "balance" FROM "users" WHERE "id" = ? LIMIT ?"#;
}

impl Dialect for Postgres {
    const FIND: &'static str =
        r#"SELECT "id", "name", "balance" FROM "users" WHERE "id" = $1 LIMIT $2"#;
}

async fn plain_find<DB>(pool: &sqlx::Pool<DB>, k: i64) -> (i64, String, i64)
where
    DB: Dialect,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    String: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    (i64, String, i64): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    sqlx::query_as::<DB, (i64, String, i64)>(DB::FIND)
        .bind(k)
        .bind(1_i64)
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap()
}

/// The same statement on a dedicated connection (no pool: the floor an in-process layer can
/// reach), prepared and cached by sqlx.
async fn dedicated_find<DB>(conn: &mut DB::Connection, k: i64) -> (i64, String, i64)
where
    DB: Dialect,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    String: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    (i64, String, i64): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    sqlx::query_as::<DB, (i64, String, i64)>(DB::FIND)
        .bind(k)
        .bind(1_i64)
        .fetch_optional(&mut *conn)
        .await
        .unwrap()
        .unwrap()
}

/// Which side of a paired find benchmark runs.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Grant,
    Pool,
    Dedicated,
}

/// The benchmarks of one backend; `dedicated` holds one connection per shard (PostgreSQL).
fn group<DB>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    cluster: &Cluster<DB>,
    dedicated: Option<&tokio::sync::Mutex<Vec<DB::Connection>>>,
) where
    DB: Dialect,
    User: FromShardRow<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    String: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    (i64, String, i64): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    // The shard pools, by shard index, for plain sqlx.
    let pools: Vec<sqlx::Pool<DB>> = (0..4)
        .map(|i| cluster.pool(&format!("shard_{i}")).unwrap().clone())
        .collect();
    let mut group = c.benchmark_group(name);
    // Grant, plain sqlx on the same pool and (PostgreSQL) plain sqlx on a dedicated
    // connection run interleaved — one find each, in rotating order — and each benchmark
    // reports its own side. A sample is the median find of the sample times the iteration
    // count: on a shared, loaded machine every side sees the same load, and a scheduler
    // hiccup in one find does not decide a sample. Grant / reference median ratio of every
    // sample: the paired figures.
    let paired = std::sync::Mutex::new((Vec::<f64>::new(), Vec::<f64>::new()));
    let mut sides = vec![
        ("grant User::find", Side::Grant),
        ("plain sqlx, same statement, same shard pool", Side::Pool),
    ];
    if dedicated.is_some() {
        sides.push((
            "plain sqlx, same statement, one dedicated connection per shard",
            Side::Dedicated,
        ));
    }
    let sides = &sides;
    for &(label, side) in sides {
        group.bench_function(label, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let pools = &pools;
                let paired = &paired;
                async move {
                    let mut conns = match dedicated {
                        Some(d) => Some(d.lock().await),
                        None => None,
                    };
                    let mut took: [Vec<Duration>; 3] = Default::default();
                    for i in 0..iters {
                        let k = (i as i64 * 7919) % ROWS;
                        let shard = User::shard_for(&k).index() as usize;
                        for turn in 0..sides.len() {
                            let (_, run) = sides[(i as usize + turn) % sides.len()];
                            let started = Instant::now();
                            match run {
                                Side::Grant => {
                                    black_box(User::find(cluster, k).await.unwrap().unwrap());
                                }
                                // The routing a hand-written application would do too.
                                Side::Pool => {
                                    black_box(plain_find(&pools[shard], k).await);
                                }
                                Side::Dedicated => {
                                    let conns = conns.as_mut().unwrap();
                                    black_box(dedicated_find::<DB>(&mut conns[shard], k).await);
                                }
                            }
                            took[run as usize].push(started.elapsed());
                        }
                    }
                    let median = |v: &mut Vec<Duration>| {
                        v.sort_unstable();
                        v.get(v.len() / 2).copied().unwrap_or_default()
                    };
                    let [g, p, d] = took.each_mut().map(median);
                    let mut paired = paired.lock().unwrap();
                    paired.0.push(g.as_secs_f64() / p.as_secs_f64());
                    if !d.is_zero() {
                        paired.1.push(g.as_secs_f64() / d.as_secs_f64());
                    }
                    [g, p, d][side as usize].saturating_mul(iters as u32)
                }
            })
        });
    }
    let (mut pool_ratios, mut dedicated_ratios) = paired.into_inner().unwrap();
    for (ratios, what) in [
        (&mut pool_ratios, "plain sqlx on the same pool"),
        (
            &mut dedicated_ratios,
            "plain sqlx on a dedicated connection",
        ),
    ] {
        ratios.sort_by(f64::total_cmp);
        if let Some(median) = ratios.get(ratios.len() / 2) {
            eprintln!(
                "{name}: Grant / {what}, median of {} paired samples: {median:.3}",
                ratios.len()
            );
        }
    }
    // Throughput: 8 tasks x 100 finds, Grant and plain sqlx batches interleaved the same way
    // (here each side reports its total time).
    let tasks_paired = std::sync::Mutex::new(Vec::<f64>::new());
    for (label, grant_side) in [
        ("grant, 8 concurrent tasks x 100 finds", true),
        ("plain sqlx, 8 concurrent tasks x 100 finds", false),
    ] {
        group.bench_function(label, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let cluster = cluster.clone();
                let pools = pools.clone();
                let tasks_paired = &tasks_paired;
                async move {
                    let (mut grant, mut plain) = (Duration::ZERO, Duration::ZERO);
                    for i in 0..iters {
                        for grant_turn in [i % 2 == 0, i % 2 == 1] {
                            let started = Instant::now();
                            if grant_turn {
                                grant_tasks(&cluster).await;
                                grant += started.elapsed();
                            } else {
                                plain_tasks(&pools).await;
                                plain += started.elapsed();
                            }
                        }
                    }
                    tasks_paired
                        .lock()
                        .unwrap()
                        .push(grant.as_secs_f64() / plain.as_secs_f64());
                    if grant_side { grant } else { plain }
                }
            })
        });
    }
    let mut ratios = tasks_paired.into_inner().unwrap();
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        eprintln!(
            "{name}: 8 tasks, Grant / plain sqlx, median of {} paired samples: {median:.3}",
            ratios.len()
        );
    }
    group.finish();
}

/// 8 tasks, 100 finds each, through Grant.
async fn grant_tasks<DB>(cluster: &Cluster<DB>)
where
    DB: Backend,
    User: FromShardRow<DB>,
{
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                for i in 0..FINDS_PER_TASK {
                    let k = (t * 1_000 + i * 13) % ROWS;
                    User::find(&cluster, k).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The same through plain sqlx on the shard pools.
async fn plain_tasks<DB>(pools: &[sqlx::Pool<DB>])
where
    DB: Dialect,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    String: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    (i64, String, i64): for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row>,
{
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let pools = pools.to_vec();
            tokio::spawn(async move {
                for i in 0..FINDS_PER_TASK {
                    let k = (t * 1_000 + i * 13) % ROWS;
                    let pool = &pools[User::shard_for(&k).index() as usize];
                    plain_find(pool, k).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A count over the N PostgreSQL shards of `count` (`M::on_all_shards().count()`) through
/// Grant against two references, measured in turn in the same iterations: the slowest of the
/// same N statements, each alone on its dedicated connection (target: Grant ≤ 1.2× the
/// slowest), and the N statements at once on the N dedicated connections (what the machine
/// allows: on 2 cores no more than two server backends run at once).
fn count_group<F>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    count: F,
    dedicated: &tokio::sync::Mutex<Vec<sqlx::PgConnection>>,
) where
    F: AsyncFn() -> u64,
{
    const SQL: &str = r#"SELECT COUNT(*) FROM "users""#;
    let mut group = c.benchmark_group(name);
    let paired = std::sync::Mutex::new(Vec::<(f64, f64)>::new());
    for (label, side) in [
        ("grant on_all_shards().count()", 0usize),
        ("slowest shard's COUNT(*) alone, dedicated connection", 1),
        (
            "the COUNT(*) of every shard at once, dedicated connections",
            2,
        ),
    ] {
        group.bench_function(label, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let paired = &paired;
                let count = &count;
                async move {
                    let mut conns = dedicated.lock().await;
                    let mut samples: [Vec<Duration>; 3] = Default::default();
                    for i in 0..iters as usize {
                        for turn in 0..3 {
                            match (i + turn) % 3 {
                                0 => {
                                    let started = Instant::now();
                                    let n = count().await;
                                    samples[0].push(started.elapsed());
                                    assert_eq!(n, ROWS as u64);
                                }
                                1 => {
                                    let mut worst = Duration::ZERO;
                                    for conn in conns.iter_mut() {
                                        let started = Instant::now();
                                        let n: i64 = sqlx::query_scalar(SQL)
                                            .fetch_one(&mut *conn)
                                            .await
                                            .unwrap();
                                        worst = worst.max(started.elapsed());
                                        black_box(n);
                                    }
                                    samples[1].push(worst);
                                }
                                _ => {
                                    let started = Instant::now();
                                    let counts = futures_util::future::join_all(
                                        conns.iter_mut().map(|conn| {
                                            sqlx::query_scalar::<_, i64>(SQL).fetch_one(conn)
                                        }),
                                    )
                                    .await;
                                    samples[2].push(started.elapsed());
                                    let total: i64 = counts.into_iter().map(Result::unwrap).sum();
                                    assert_eq!(total, ROWS);
                                }
                            }
                        }
                    }
                    let median = |v: &mut Vec<Duration>| {
                        v.sort_unstable();
                        v[v.len() / 2]
                    };
                    let [g, s, t] = samples.each_mut().map(median);
                    paired.lock().unwrap().push((
                        g.as_secs_f64() / s.as_secs_f64(),
                        g.as_secs_f64() / t.as_secs_f64(),
                    ));
                    [g, s, t][side].saturating_mul(iters as u32)
                }
            })
        });
    }
    let mut ratios = paired.into_inner().unwrap();
    let n = ratios.len();
    if n > 0 {
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let slowest = ratios[n / 2].0;
        ratios.sort_by(|a, b| a.1.total_cmp(&b.1));
        let together = ratios[n / 2].1;
        eprintln!(
            "{name}, medians of {n} paired samples: Grant / slowest shard alone \
             {slowest:.3}; Grant / the statements at once {together:.3}"
        );
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let sqlite = rt.block_on(async {
        let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
        User::create_table(&cluster).await.unwrap();
        User::insert_many(&cluster, &users()).await.unwrap();
        cluster
    });
    group(c, &rt, "find_sqlite_memory", &sqlite, None);

    // Declared before the cluster: dropped (stopped) after it.
    let Some((env, _server)) = pg::postgres("find_postgres") else {
        return;
    };
    let pg = rt.block_on(async {
        let mut builder = Cluster::<Postgres>::builder();
        for i in 0..4 {
            let url = env
                .create_database(&database_name("bench_find", &format!("shard_{i}")))
                .await
                .unwrap();
            builder = builder.shard(format!("shard_{i}"), url);
        }
        let cluster = builder.connect().await.unwrap();
        User::create_table(&cluster).await.unwrap();
        User::insert_many(&cluster, &users()).await.unwrap();
        cluster
    });
    let dedicated = rt.block_on(async {
        let mut conns = Vec::new();
        for i in 0..4 {
            let url = env.url(&database_name("bench_find", &format!("shard_{i}")));
            conns.push(
                <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                    .await
                    .unwrap(),
            );
        }
        tokio::sync::Mutex::new(conns)
    });
    group(c, &rt, "find_postgres", &pg, Some(&dedicated));
    count_group(
        c,
        &rt,
        "count_postgres_4_shards",
        async || User::on_all_shards().count(&pg).await.unwrap(),
        &dedicated,
    );
    let (pair, pair_dedicated) = rt.block_on(async {
        let mut builder = Cluster::<Postgres>::builder();
        let mut conns = Vec::new();
        for i in 0..2 {
            let url = env
                .create_database(&database_name("bench_count_pair", &format!("shard_{i}")))
                .await
                .unwrap();
            builder = builder.shard(format!("shard_{i}"), &url);
            conns.push(
                <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                    .await
                    .unwrap(),
            );
        }
        let cluster = builder.connect().await.unwrap();
        Pair::create_table(&cluster).await.unwrap();
        let rows: Vec<Pair> = users()
            .into_iter()
            .map(|u| Pair {
                id: u.id,
                name: u.name,
                balance: u.balance,
            })
            .collect();
        Pair::insert_many(&cluster, &rows).await.unwrap();
        (cluster, tokio::sync::Mutex::new(conns))
    });
    count_group(
        c,
        &rt,
        "count_postgres_2_shards",
        async || Pair::on_all_shards().count(&pair).await.unwrap(),
        &pair_dedicated,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
