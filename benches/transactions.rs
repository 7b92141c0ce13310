//! Transaction latency on PostgreSQL: a single-shard transaction (`begin_for`, one locked read
//! and one update, `COMMIT`) against a two-phase transaction over 2 shards (the same on each
//! shard, then `PREPARE TRANSACTION` on both, the decision row, `COMMIT PREPARED` on both).
//! The ratio of the two is the price of atomicity across shards. Two variants of the latter:
//! the coordinator shard (holding `grant_2pc_log`) takes part — its own transaction records the
//! decision and commits plainly, the other shard prepares — or it does not (a third shard
//! coordinates: both shards prepare, the decision is a separate write).
//!
//! Uses the throwaway server of `grant_sharding::testing::postgres` (or `GRANT_PG_URL`); note
//! that server runs with `fsync=off`, so durable commits on real disks cost more, and more so
//! for two-phase commit (three synchronous writes instead of one).
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use grant::prelude::*;
use grant_sharding::testing::postgres;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Account {
    #[primary_key]
    id: i64,
    balance: i64,
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some((cluster, remote)) = rt.block_on(async {
        let env = postgres::available().await?;
        let cluster = env.cluster("bench_transactions", 3).await;
        Account::create_table(&cluster).await.unwrap();
        let rows: Vec<Account> = (1..=100).map(|id| Account { id, balance: 0 }).collect();
        Account::insert_many(&cluster, &rows).await.unwrap();
        // The same shards, coordinated by shard_2, which the model does not use.
        let mut builder = Cluster::<Postgres>::builder()
            .two_phase(grant::TwoPhase::default().coordinator("shard_2"));
        for i in 0..3 {
            let name = postgres::database_name("bench_transactions", &format!("shard_{i}"));
            builder = builder.shard(format!("shard_{i}"), env.url(&name));
        }
        Some((cluster, builder.connect().await.unwrap()))
    }) else {
        eprintln!("skipping benches/transactions.rs: no PostgreSQL");
        return;
    };
    let a = 1;
    let b = (2..)
        .find(|id| Account::shard_for(id) != Account::shard_for(&a))
        .unwrap();

    let mut group = c.benchmark_group("transaction");
    group.bench_function("single_shard", |bench| {
        bench.to_async(&rt).iter(|| async {
            let mut tx = cluster.begin_for::<Account>(&a).await.unwrap();
            let mut row = tx.find_for_update::<Account>(a).await.unwrap().unwrap();
            row.balance += 1;
            tx.update(&row).await.unwrap();
            tx.commit().await.unwrap();
        })
    });
    group.bench_function("two_phase_2_shards", |bench| {
        bench.to_async(&rt).iter(|| async {
            let mut tx = cluster.begin().await.unwrap();
            for id in [a, b] {
                let mut row = tx.find_for_update::<Account>(id).await.unwrap().unwrap();
                row.balance += 1;
                tx.update(&row).await.unwrap();
            }
            tx.commit().await.unwrap();
        })
    });
    group.bench_function("two_phase_2_shards_remote_coordinator", |bench| {
        bench.to_async(&rt).iter(|| async {
            let mut tx = remote.begin().await.unwrap();
            for id in [a, b] {
                let mut row = tx.find_for_update::<Account>(id).await.unwrap().unwrap();
                row.balance += 1;
                tx.update(&row).await.unwrap();
            }
            tx.commit().await.unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
