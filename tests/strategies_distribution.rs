//! How every strategy spreads rows, measured with `cluster.distribution::<M>()` on in-memory
//! SQLite shards, and the consistent-hash ring's promise: adding a shard moves about `1/(n+1)`
//! of the keys, all of them onto the new shard.

use grant::prelude::*;
use grant::resolve::ConsistentHashResolver;
use grant::{Distribution, ShardRows};

const ROWS: i64 = 20_000;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "id", count = 8)]
struct ByHash {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = "id", count = 8)]
struct ByPgHash {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = ["tenant", "user_id"], count = 8)]
struct ByPair {
    #[primary_key]
    tenant: String,
    #[primary_key]
    user_id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = ["tenant", "user_id"], count = 8)]
struct ByPgPair {
    #[primary_key]
    tenant: String,
    #[primary_key]
    user_id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "consistent_hash", on = "id", count = 8)]
struct ByRing {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "consistent_hash", on = "id", count = 9)]
struct ByRingGrown {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "consistent_hash",
    on = "id",
    count = 4,
    weights(shard_0 = 3)
)]
struct ByWeightedRing {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "range", on = "id", ranges(shard_0 = ..5000, shard_1 = 5000..12000, shard_2 = 12000..))]
struct ByRange {
    #[primary_key]
    id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "mapping",
    on = "region",
    map(de = "shard_0", fr = "shard_0", us = "shard_1"),
    default = "shard_2"
)]
struct ByRegion {
    #[primary_key]
    region: String,
    #[primary_key]
    id: i64,
}

async fn loaded<M: Model>(rows: &[M]) -> (Cluster<Sqlite>, Distribution) {
    let cluster = Cluster::<Sqlite>::memory(M::shards().len().max(3))
        .await
        .unwrap();
    grant::__private::crud::create_table::<M, Sqlite>(&cluster)
        .await
        .unwrap();
    grant::__private::crud::insert_many(&cluster, rows)
        .await
        .unwrap();
    let d = cluster.distribution::<M>().await.unwrap();
    eprint!("{d}");
    assert_eq!(d.total(), rows.len() as u64);
    // The distribution is what placement says, shard by shard.
    for s in d.shards() {
        let placed = rows.iter().filter(|r| r.shard_of() == s.shard).count() as u64;
        assert_eq!(s.rows, placed, "{}", s.shard);
    }
    (cluster, d)
}

#[test]
fn statistics() {
    let d = Distribution::new(
        "M",
        vec![
            ShardRows {
                shard: ShardId::new(0),
                rows: 2,
            },
            ShardRows {
                shard: ShardId::new(1),
                rows: 4,
            },
            ShardRows {
                shard: ShardId::new(2),
                rows: 4,
            },
            ShardRows {
                shard: ShardId::new(3),
                rows: 4,
            },
            ShardRows {
                shard: ShardId::new(4),
                rows: 5,
            },
            ShardRows {
                shard: ShardId::new(5),
                rows: 5,
            },
            ShardRows {
                shard: ShardId::new(6),
                rows: 7,
            },
            ShardRows {
                shard: ShardId::new(7),
                rows: 9,
            },
        ],
    );
    assert_eq!(d.total(), 40);
    assert_eq!(d.mean(), 5.0);
    assert_eq!(d.std_dev(), 2.0);
    assert_eq!(d.coefficient_of_variation(), 0.4);
    assert_eq!(d.max_deviation(), 0.8);
    assert_eq!(d.rows(ShardId::new(7)), Some(9));
    assert_eq!(d.rows(ShardId::new(8)), None);
    let empty = Distribution::new("M", vec![]);
    assert_eq!(
        (empty.mean(), empty.std_dev(), empty.max_deviation()),
        (0.0, 0.0, 0.0)
    );
    assert!(
        d.to_string()
            .contains("40 rows on 8 shards, mean 5.0, std dev 2.0")
    );
}

#[tokio::test]
async fn hash_strategies_spread_evenly() {
    let (_, d) = loaded(&(0..ROWS).map(|id| ByHash { id }).collect::<Vec<_>>()).await;
    // 2,500 rows per shard expected; a binomial spread has std dev ≈ 47 (1.9%).
    assert!(d.coefficient_of_variation() < 0.05, "{d}");
    assert!(d.max_deviation() < 0.1, "{d}");

    let (_, d) = loaded(&(0..ROWS).map(|id| ByPgHash { id }).collect::<Vec<_>>()).await;
    assert!(d.coefficient_of_variation() < 0.05, "{d}");
    assert!(d.max_deviation() < 0.1, "{d}");

    let pairs: Vec<(String, i64)> = (0..ROWS)
        .map(|i| (format!("tenant-{}", i % 50), i / 50))
        .collect();
    let rows: Vec<ByPair> = pairs
        .iter()
        .map(|(tenant, user_id)| ByPair {
            tenant: tenant.clone(),
            user_id: *user_id,
        })
        .collect();
    let (_, d) = loaded(&rows).await;
    assert!(d.coefficient_of_variation() < 0.05, "{d}");
    let rows: Vec<ByPgPair> = pairs
        .iter()
        .map(|(tenant, user_id)| ByPgPair {
            tenant: tenant.clone(),
            user_id: *user_id,
        })
        .collect();
    let (_, d) = loaded(&rows).await;
    assert!(d.coefficient_of_variation() < 0.05, "{d}");
}

#[tokio::test]
async fn consistent_hash_spreads_by_weight() {
    let (_, d) = loaded(&(0..ROWS).map(|id| ByRing { id }).collect::<Vec<_>>()).await;
    // A ring's arcs vary more than a modulus: with 150 vnodes a shard's share is within about
    // 1/sqrt(150) ≈ 8% of the mean.
    assert!(d.coefficient_of_variation() < 0.15, "{d}");
    assert!(d.max_deviation() < 0.3, "{d}");

    // shard_0 has weight 3: about 3/6 of the rows, the others 1/6 each.
    let (_, d) = loaded(
        &(0..ROWS)
            .map(|id| ByWeightedRing { id })
            .collect::<Vec<_>>(),
    )
    .await;
    let share = d.rows(ShardId::new(0)).unwrap() as f64 / ROWS as f64;
    assert!((share - 0.5).abs() < 0.05, "shard_0 holds {share:.3}\n{d}");
    for i in 1..4 {
        let share = d.rows(ShardId::new(i)).unwrap() as f64 / ROWS as f64;
        assert!(
            (share - 1.0 / 6.0).abs() < 0.04,
            "shard_{i} holds {share:.3}\n{d}"
        );
    }
}

#[tokio::test]
async fn range_and_mapping_place_exactly() {
    let (_, d) = loaded(&(0..ROWS).map(|id| ByRange { id }).collect::<Vec<_>>()).await;
    let rows: Vec<u64> = d.shards().iter().map(|s| s.rows).collect();
    assert_eq!(rows, [5000, 7000, (ROWS - 12000) as u64]);

    let regions = ["de", "fr", "us", "br", "jp"];
    let customers: Vec<ByRegion> = (0..ROWS)
        .map(|id| ByRegion {
            region: regions[(id % 5) as usize].to_owned(),
            id,
        })
        .collect();
    let (_, d) = loaded(&customers).await;
    let per = (ROWS / 5) as u64;
    let rows: Vec<(String, u64)> = d
        .shards()
        .iter()
        .map(|s| (s.shard.name(), s.rows))
        .collect();
    assert_eq!(
        rows,
        [
            ("shard_0".to_owned(), 2 * per),
            ("shard_1".to_owned(), per),
            ("shard_2".to_owned(), 2 * per)
        ]
    );
}

#[tokio::test]
async fn distribution_needs_every_shard_of_the_model() {
    let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
    let err = cluster.distribution::<ByHash>().await.unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(err.to_string().contains("shard_4"), "{err}");
}

/// Adding a shard to a ring of `n` moves `moved` of `keys`: about `1/(n+1)`, all onto the new
/// shard.
fn assert_growth_moves_only_onto_the_new_shard(
    before: &ConsistentHashResolver,
    after: &ConsistentHashResolver,
    keys: i64,
) {
    let n = before.shards().len();
    let new = after.shards()[n];
    let mut moved = 0_i64;
    for k in 0..keys {
        let (a, b) = (before.shard_for(&k), after.shard_for(&k));
        if a != b {
            assert_eq!(
                b, new,
                "key {k} moved from {a} to {b}, not onto the new shard"
            );
            moved += 1;
        }
    }
    let share = moved as f64 / keys as f64;
    let expected = 1.0 / (n + 1) as f64;
    eprintln!(
        "{n} → {} shards: {share:.4} of the keys moved (1/(n+1) = {expected:.4})",
        n + 1
    );
    assert!(
        (share - expected).abs() <= 0.2 * expected,
        "{n} → {} shards moved {share:.4} of the keys, expected {expected:.4} ± 20%",
        n + 1
    );
}

#[test]
fn adding_a_shard_moves_about_one_in_n_plus_one_keys_all_onto_it() {
    for n in [2, 3, 4, 5, 8, 12, 16, 24, 32] {
        assert_growth_moves_only_onto_the_new_shard(
            &ConsistentHashResolver::new(n),
            &ConsistentHashResolver::new(n + 1),
            100_000,
        );
    }
}

#[test]
fn removing_a_shard_moves_only_its_keys() {
    let all = ConsistentHashResolver::new(8);
    // Remove shard_3: a ring over the others (same names, so the same points).
    let rest: Vec<ShardId> = (0..8).filter(|&i| i != 3).map(ShardId::new).collect();
    let without = ConsistentHashResolver::with_vnode_counts(&rest, &[150; 7]);
    for k in 0..50_000_i64 {
        let (a, b) = (all.shard_for(&k), without.shard_for(&k));
        if a.index() != 3 {
            assert_eq!(a, b, "key {k} moved off a shard that stayed");
        }
    }
}

#[tokio::test]
async fn growing_the_ring_through_the_derive() {
    // The same keys under `count = 8` and `count = 9`: rows that move, move onto shard_8.
    let keys: Vec<i64> = (0..ROWS).collect();
    let moved: Vec<i64> = keys
        .iter()
        .copied()
        .filter(|k| ByRing::shard_for(k).index() != ByRingGrown::shard_for(k).index())
        .collect();
    assert!(moved.iter().all(|k| ByRingGrown::shard_for(k).index() == 8));
    let share = moved.len() as f64 / keys.len() as f64;
    assert!((share - 1.0 / 9.0).abs() <= 0.2 / 9.0, "{share}");

    // After copying the moved rows to the new shard (and deleting them from the old ones), the
    // grown model finds every row.
    let cluster = Cluster::<Sqlite>::memory(9).await.unwrap();
    ByRing::create_table(&cluster).await.unwrap();
    ByRingGrown::create_table(&cluster).await.unwrap();
    let rows: Vec<ByRing> = keys.iter().map(|&id| ByRing { id }).collect();
    ByRing::insert_many(&cluster, &rows).await.unwrap();
    let before = cluster.distribution::<ByRing>().await.unwrap();
    assert_eq!(before.total(), ROWS as u64);
    let _ = ByRingGrown::insert_many(
        &cluster,
        &keys
            .iter()
            .map(|&id| ByRingGrown { id })
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let after = cluster.distribution::<ByRingGrown>().await.unwrap();
    assert_eq!(after.rows(ShardId::new(8)), Some(moved.len() as u64));
    for i in 0..8 {
        let stayed = before.rows(ShardId::new(i)).unwrap()
            - moved
                .iter()
                .filter(|k| ByRing::shard_for(k).index() == i)
                .count() as u64;
        assert_eq!(after.rows(ShardId::new(i)), Some(stayed), "shard_{i}");
    }
}
