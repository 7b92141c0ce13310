//! Routing cost: `shard_for` for integer and string keys, and building a routed `find`
//! statement (route + SQL + bound values), without I/O.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use grant::prelude::*;
use grant::resolve::HashResolver;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 8)]
struct User {
    #[primary_key]
    id: i64,
    name: String,
    balance: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "tenant", count = 16)]
struct Tenant {
    #[primary_key]
    tenant: String,
    plan: String,
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_for");
    let mut k = 0_i64;
    group.bench_function("i64", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            User::shard_for(black_box(&k))
        })
    });
    let key = "tenant-8f14e45fceea167a5a36dedd4bea2543".to_string();
    group.bench_function("String (38 bytes)", |b| {
        b.iter(|| Tenant::shard_for(black_box(&key)))
    });
    let resolver = HashResolver::new(8);
    group.bench_function("HashResolver i64", |b| {
        b.iter(|| resolver.shard_for(black_box(&42_i64)))
    });
    group.finish();

    c.bench_function("routed find statement (route + SQL + binds)", |b| {
        b.iter(|| {
            let q = User::query().filter(User::ID.eq(black_box(42_i64)));
            let shards = q.shards().unwrap();
            let (sql, values) = grant::__private::crud::find_statement::<User, Sqlite>(&42);
            black_box((shards, sql, values))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
