//! Routing cost: `shard_for` of every strategy for integer and string keys (targets: `hash` and
//! `pg_hash` ≤ 30 ns for integer keys, `consistent_hash` ≤ 100 ns at 16 shards × 150 vnodes,
//! `range` and `mapping` ≤ 30 ns, `directory` cache hit ≤ 100 ns), and building a routed `find`
//! statement (route + SQL + bound values), without I/O.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use grant::prelude::*;
use grant::resolve::{
    ConsistentHashResolver, HashResolver, KeyRange, MappingResolver, PgHashResolver, RangeResolver,
};

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

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = "id", count = 8)]
struct PgUser {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = ["tenant", "user_id"], count = 8)]
struct PgDoc {
    #[primary_key]
    tenant: i64,
    #[primary_key]
    user_id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "consistent_hash", on = "id", count = 16, vnodes = 150)]
struct RingUser {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "range",
    on = "day",
    ranges(
        old = ..20250101,
        m01 = 20250101..20250201,
        m02 = 20250201..20250301,
        m03 = 20250301..20250401,
        m04 = 20250401..20250501,
        m05 = 20250501..20250601,
        m06 = 20250601..20250701,
        m07 = 20250701..20250801,
        m08 = 20250801..20250901,
        m09 = 20250901..20251001,
        m10 = 20251001..20251101,
        m11 = 20251101..20251201,
        current = 20251201..,
    )
)]
struct Reading {
    #[primary_key]
    day: i32,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "mapping",
    on = "country",
    map(
        de = "eu",
        fr = "eu",
        it = "eu",
        es = "eu",
        nl = "eu",
        us = "us",
        ca = "us",
        mx = "us",
        jp = "apac",
        sg = "apac"
    ),
    default = "other"
)]
struct Customer {
    #[primary_key]
    country: String,
}

fn strategies(c: &mut Criterion) {
    let mut group = c.benchmark_group("strategy");
    let mut k = 0_i64;
    group.bench_function("hash i64", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            User::shard_for(black_box(&k))
        })
    });
    group.bench_function("pg_hash i64", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            PgUser::shard_for(black_box(&k))
        })
    });
    let pg = PgHashResolver::new(8);
    group.bench_function("PgHashResolver i64", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            pg.shard_for(black_box(&k))
        })
    });
    let key = "tenant-8f14e45fceea167a5a36dedd4bea2543".to_string();
    group.bench_function("pg_hash String (38 bytes)", |b| {
        b.iter(|| pg.shard_for(black_box(key.as_str())))
    });
    group.bench_function("pg_hash (i64, i64)", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            PgDoc::shard_for(black_box(&(k, k >> 3)))
        })
    });
    group.bench_function("consistent_hash i64 (16 shards x 150 vnodes)", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            RingUser::shard_for(black_box(&k))
        })
    });
    let ring = ConsistentHashResolver::new(16);
    group.bench_function("ConsistentHashResolver i64 (16 x 150)", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            ring.shard_for(black_box(&k))
        })
    });
    let mut day = 0_u32;
    group.bench_function("range i32 (13 ranges)", |b| {
        b.iter(|| {
            day = (day + 7) % 400;
            let key = 20241201 + (day / 31) as i32 * 100 + (day % 31) as i32;
            Reading::shard_for(black_box(&key))
        })
    });
    let ranges = RangeResolver::new((0..13).map(|i| {
        KeyRange::new(
            (i > 0).then_some(i * 1000),
            (i < 12).then_some((i + 1) * 1000),
            ShardId::new(i as u32),
        )
    }))
    .unwrap();
    group.bench_function("RangeResolver i64 (13 ranges)", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            ranges.shard_for(black_box(&(k % 14_000)))
        })
    });
    let countries: Vec<String> = ["de", "us", "jp", "br", "fr", "mx", "sg", "es"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut i = 0;
    group.bench_function("mapping String (10 values + default)", |b| {
        b.iter(|| {
            i = (i + 1) % countries.len();
            Customer::shard_for(black_box(&countries[i]))
        })
    });
    let mapping = MappingResolver::new(
        (0..10_i64).map(|v| (v, ShardId::new((v % 3) as u32))),
        Some(ShardId::new(3)),
    )
    .unwrap();
    group.bench_function("MappingResolver i64 (10 values + default)", |b| {
        b.iter(|| {
            k = k.wrapping_add(0x9e37_79b9);
            mapping.shard_for(black_box(&(k % 12)))
        })
    });
    group.finish();
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

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "directory", on = "id", count = 4, policy = "round_robin")]
struct DirUser {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "directory",
    on = "tenant",
    count = 4,
    policy = "round_robin"
)]
struct DirTenant {
    #[primary_key]
    tenant: String,
}

/// A directory's cache hit: 10,000 keys placed through a real (in-memory SQLite) cluster, then
/// looked up in the in-process cache.
fn directory(c: &mut Criterion) {
    const KEYS: i64 = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tenants: Vec<String> = (0..KEYS).map(|k| format!("tenant-{k:032x}")).collect();
    let (users, names) = rt.block_on(async {
        let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
        DirUser::create_table(&cluster).await.unwrap();
        DirTenant::create_table(&cluster).await.unwrap();
        let rows: Vec<DirUser> = (0..KEYS).map(|id| DirUser { id }).collect();
        DirUser::insert_many(&cluster, &rows).await.unwrap();
        let rows: Vec<DirTenant> = tenants
            .iter()
            .map(|t| DirTenant { tenant: t.clone() })
            .collect();
        DirTenant::insert_many(&cluster, &rows).await.unwrap();
        let get = |p: Option<std::sync::Arc<grant::PlacementState>>| match p
            .map(|s| s.placement.clone())
        {
            Some(grant::Placement::Directory(d)) => d,
            other => panic!("not a directory: {other:?}"),
        };
        (
            get(cluster.placement::<DirUser>()),
            get(cluster.placement::<DirTenant>()),
        )
    });
    let mut group = c.benchmark_group("strategy");
    let mut k = 0_i64;
    group.bench_function("directory cache hit i64 (10k keys)", |b| {
        b.iter(|| {
            k = (k + 7919) % KEYS;
            users.cached_key(black_box(&k)).unwrap()
        })
    });
    let mut i = 0_usize;
    group.bench_function("directory cache hit String (10k keys, 39 bytes)", |b| {
        b.iter(|| {
            i = (i + 7919) % tenants.len();
            names.cached_key(black_box(tenants[i].as_str())).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench, strategies, directory);
criterion_main!(benches);
