//! What a saga costs over running its steps directly: two single-row updates on two SQLite
//! shard files, directly vs as a two-step saga (which adds the saga log writes: one insert and
//! five updates on the log shard).
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use grant::prelude::*;
use sqlx::SqlitePool;

async fn bump(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE counters SET n = n + 1 WHERE id = 1")
        .execute(pool)
        .await?;
    Ok(())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = rt.block_on(async {
        let cluster = Cluster::<Sqlite>::builder()
            .shard("shard_0", dir.path().join("s0.db").display().to_string())
            .shard("shard_1", dir.path().join("s1.db").display().to_string())
            .connect()
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
            "INSERT INTO counters VALUES (1, 0)",
        ] {
            for (_, r) in cluster.execute_on_all_shards(sql).await {
                r.unwrap();
            }
        }
        cluster
    });
    let saga = Saga::<Sqlite>::new("bump both")
        .step(
            "shard_0",
            |c, _| Box::pin(async move { Ok(bump(c.pool("shard_0").unwrap()).await?) }),
            |_, _| Box::pin(async { Ok(()) }),
        )
        .step(
            "shard_1",
            |c, _| Box::pin(async move { Ok(bump(c.pool("shard_1").unwrap()).await?) }),
            |_, _| Box::pin(async { Ok(()) }),
        );
    rt.block_on(saga.ensure_log(&cluster)).unwrap();

    let mut group = c.benchmark_group("saga_sqlite_files");
    group.bench_function("two updates directly", |b| {
        b.to_async(&rt).iter(|| async {
            bump(cluster.pool("shard_0").unwrap()).await.unwrap();
            bump(cluster.pool("shard_1").unwrap()).await.unwrap();
        })
    });
    group.bench_function("two-step saga", |b| {
        b.to_async(&rt).iter(|| async {
            let report = saga.run(&cluster, "").await.unwrap();
            assert!(report.is_completed());
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
