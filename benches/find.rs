//! A routed `find` through Grant against the same statement through plain sqlx on an identical
//! database (in-memory SQLite; PostgreSQL when `GRANT_PG_URL` names a server), and throughput
//! with 8 concurrent tasks.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use grant::prelude::*;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct User {
    #[primary_key]
    id: i64,
    name: String,
    balance: i64,
}

const ROWS: i64 = 10_000;

fn users() -> Vec<User> {
    (0..ROWS)
        .map(|id| User {
            id,
            name: format!("user {id}"),
            balance: id * 3,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = rt.block_on(async {
        let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
        User::create_table(&cluster).await.unwrap();
        User::insert_many(&cluster, &users()).await.unwrap();
        cluster
    });
    let mut group = c.benchmark_group("find_sqlite_memory");
    let mut k = 0_i64;
    group.bench_function("grant User::find", |b| {
        b.to_async(&rt).iter(|| {
            k = (k + 7919) % ROWS;
            let cluster = &cluster;
            async move { User::find(cluster, k).await.unwrap().unwrap() }
        })
    });
    let mut k = 0_i64;
    group.bench_function("plain sqlx, same statement, same shard pool", |b| {
        b.to_async(&rt).iter(|| {
            k = (k + 7919) % ROWS;
            let pool = cluster.pool(&User::shard_for(&k).name()).unwrap().clone();
            async move {
                sqlx::query_as::<_, (i64, String, i64)>(
                    r#"SELECT "id", "name", "balance" FROM "users" WHERE "id" = ? LIMIT ?"#,
                )
                .bind(k)
                .bind(1_i64)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .unwrap()
            }
        })
    });
    group.bench_function("grant, 8 concurrent tasks x 100 finds", |b| {
        b.to_async(&rt).iter(|| {
            let cluster = cluster.clone();
            async move {
                let tasks: Vec<_> = (0..8)
                    .map(|t| {
                        let cluster = cluster.clone();
                        tokio::spawn(async move {
                            for i in 0..100 {
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
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
