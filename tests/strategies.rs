//! Every strategy through the derive and real (in-memory SQLite) shards: placement agrees with
//! the resolver types, rows land where `shard_for` says, and the router prunes what the strategy
//! allows — seen through the query log — for composite keys (`hash`, `pg_hash`), ranges and
//! mappings. Keys no shard holds are errors naming the key, never a default shard.

use std::collections::{BTreeMap, BTreeSet};

use grant::prelude::*;
use grant::resolve::{
    ConsistentHashResolver, HashResolver, KeyRange, MappingResolver, PgHashResolver, RangeResolver,
};
use sea_query::Value;

/// A document of a user of a tenant, placed by (tenant, user).
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = ["tenant_id", "user_id"], count = 8)]
struct Doc {
    #[primary_key]
    tenant_id: i64,
    #[primary_key]
    user_id: i64,
    #[primary_key]
    doc_id: i64,
    title: String,
}

/// The same key in the other field order, PostgreSQL-compatible.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = ["tenant", "user_id"], count = 4)]
struct PgDoc {
    #[primary_key]
    user_id: i64,
    #[primary_key]
    tenant: String,
    body: String,
}

/// Events by day (`YYYYMMDD`), a range per year and open ends.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "range",
    on = "day",
    ranges(shard_old = ..20240101, shard_2024 = 20240101..20250101, shard_2025 = 20250101..20260101, shard_new = 20260101..)
)]
struct Event {
    #[primary_key]
    day: i32,
    #[primary_key]
    id: i64,
    kind: String,
}

/// Readings in a closed range of keys: keys outside have no shard.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "range", on = "sensor", ranges(shard_a = 0..100, "shard-b" = 100..=199, shard_a = 200..300))]
struct Reading {
    #[primary_key]
    sensor: i64,
    value: i64,
}

/// Customers by region, with a default shard.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "geographic", on = "region", map(de = "shard_eu", fr = "shard_eu", "us-east" = "shard_us", us = "shard_us"), default = "shard_other")]
struct Customer {
    #[primary_key]
    region: String,
    #[primary_key]
    id: i64,
    name: String,
}

/// Tenants pinned by id, no default.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "lookup", on = "tenant", map(1 = "shard_big", 2 = "shard_big", 3 = "shard_small", -4 = "shard_small"))]
struct Pinned {
    #[primary_key]
    tenant: i32,
    #[primary_key]
    id: i64,
}

/// A ring of 16 shards, 150 vnodes each (the default).
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "consistent_hash", on = "id", count = 16)]
struct Ring16 {
    #[primary_key]
    id: i64,
}

/// A weighted ring with a composite key.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "consistent_hash", on = ["a", "b"], count = 3, vnodes = 100, weights(ring_0 = 2, ring_2 = 0.5), prefix = "ring_")]
struct Weighted {
    #[primary_key]
    a: i64,
    #[primary_key]
    b: String,
}

fn shards_of(log: &[grant::Executed]) -> Vec<String> {
    log.iter().map(|e| e.shard.clone()).collect()
}

fn doc(tenant_id: i64, user_id: i64, doc_id: i64) -> Doc {
    Doc {
        tenant_id,
        user_id,
        doc_id,
        title: format!("doc {tenant_id}/{user_id}/{doc_id}"),
    }
}

/// A cluster of in-memory shards with these names.
async fn cluster(names: &[&str]) -> Cluster<Sqlite> {
    let mut builder = Cluster::<Sqlite>::builder().max_connections(1);
    for name in names {
        builder = builder.shard(*name, "sqlite::memory:");
    }
    builder.connect().await.unwrap()
}

#[test]
fn composite_keys_place_as_the_resolvers_do() {
    for t in -3..20_i64 {
        for u in [0_i64, 1, 7, 1 << 40, -9] {
            let shard = Doc::shard_for(&(t, u));
            assert_eq!(shard, HashResolver::new(8).shard_for(&(t, u)));
            assert_eq!(
                shard,
                <Doc as Model>::shard_for_values(&[Value::BigInt(Some(t)), Value::BigInt(Some(u))])
                    .unwrap()
            );
            assert_eq!(<Doc as Model>::shard_of_key(&(t, u, 99)), shard);
            assert_eq!(doc(t, u, 5).shard_of(), shard);
            assert_eq!(<Doc as Sharded>::shard_key(&doc(t, u, 5)), (&t, &u));

            // The key is (tenant, user_id) in `on` order, whatever the field order.
            let tenant = format!("t{t}");
            let pg = PgDoc::shard_for(&(tenant.clone(), u));
            assert_eq!(pg, PgHashResolver::new(4).shard_for(&(tenant.as_str(), u)));
            assert_eq!(<PgDoc as Model>::shard_of_key(&(u, tenant.clone())), pg);
        }
    }
    // A single value is not a composite key.
    let err = <Doc as Model>::shard_for_value(&Value::BigInt(Some(1))).unwrap_err();
    assert!(matches!(err, Error::MissingShardKey { .. }), "{err}");
    assert!(err.to_string().contains("tenant_id, user_id"), "{err}");
    let err = <Doc as Model>::shard_for_values(&[Value::BigInt(Some(1)), Value::BigInt(None)])
        .unwrap_err();
    assert!(err.to_string().contains("`user_id`"), "{err}");
    assert_eq!(<Doc as Model>::META.shard_key_columns, &[0, 1]);
    assert_eq!(<PgDoc as Model>::META.shard_key_columns, &[1, 0]);
}

#[tokio::test]
async fn composite_key_equality_prunes_to_one_shard() {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    Doc::create_table(&cluster).await.unwrap();
    let docs: Vec<Doc> = (0..10)
        .flat_map(|t| (0..10).map(move |u| doc(t, u, t * 100 + u)))
        .collect();
    Doc::insert_many(&cluster, &docs).await.unwrap();
    for i in 0..8 {
        let here = Doc::on_shard(ShardId::new(i)).all(&cluster).await.unwrap();
        assert!(
            here.iter()
                .all(|d| Doc::shard_for(&(d.tenant_id, d.user_id)) == ShardId::new(i))
        );
    }

    // Both key columns: one shard.
    cluster.log().start();
    let rows = Doc::query()
        .filter(Doc::TENANT_ID.eq(3).and(Doc::USER_ID.eq(4)))
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(rows, vec![doc(3, 4, 304)]);
    assert_eq!(
        shards_of(&cluster.log().stop()),
        [Doc::shard_for(&(3, 4)).name()]
    );

    // With other conditions around, in any order.
    cluster.log().start();
    let n = Doc::query()
        .filter(
            Doc::TITLE
                .like("doc%")
                .and(Doc::USER_ID.eq(4))
                .and(Doc::TENANT_ID.eq(3)),
        )
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(cluster.log().stop().len(), 1);

    // find by the primary key.
    cluster.log().start();
    assert_eq!(
        Doc::find(&cluster, (3, 4, 304)).await.unwrap(),
        Some(doc(3, 4, 304))
    );
    assert_eq!(
        shards_of(&cluster.log().stop()),
        [Doc::shard_for(&(3, 4)).name()]
    );

    // One key column alone cannot prune.
    cluster.log().start();
    let n = Doc::query()
        .filter(Doc::TENANT_ID.eq(3))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(cluster.log().stop().len(), 8);

    // IN on one column, equality on the other: each shard gets only its own users.
    let users: Vec<i64> = (0..10).collect();
    cluster.log().start();
    let mut rows = Doc::query()
        .filter(Doc::TENANT_ID.eq(5).and(Doc::USER_ID.is_in(users.clone())))
        .all(&cluster)
        .await
        .unwrap();
    rows.sort_by_key(|d| d.user_id);
    assert_eq!(
        rows,
        (0..10).map(|u| doc(5, u, 500 + u)).collect::<Vec<_>>()
    );
    let mut expected: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for u in &users {
        expected
            .entry(Doc::shard_for(&(5, *u)).name())
            .or_default()
            .insert(*u);
    }
    let mut seen: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for e in cluster.log().stop() {
        let bound: BTreeSet<i64> = e
            .values
            .iter()
            .filter_map(|v| match v {
                Value::BigInt(Some(u)) if *u != 5 => Some(*u),
                _ => None,
            })
            .collect();
        assert!(seen.insert(e.shard.clone(), bound).is_none(), "{e:?}");
    }
    // Each shard's users (5 itself may also be a user: allow it in the bound values).
    for (shard, users) in &expected {
        let got = &seen[shard];
        let want: BTreeSet<i64> = users.iter().copied().filter(|u| *u != 5).collect();
        assert_eq!(got, &want, "{shard}");
    }
    assert_eq!(seen.len(), expected.len());

    // IN on both columns: the combinations are placed.
    cluster.log().start();
    let n = Doc::query()
        .filter(Doc::TENANT_ID.is_in([1, 2]).and(Doc::USER_ID.is_in([3, 4])))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 4);
    let visited: BTreeSet<String> = shards_of(&cluster.log().stop()).into_iter().collect();
    let placed: BTreeSet<String> = [(1, 3), (1, 4), (2, 3), (2, 4)]
        .iter()
        .map(|k| Doc::shard_for(k).name())
        .collect();
    assert_eq!(visited, placed);

    // OR of two full keys: their two shards at most, each asked only its own branch.
    let a = (1_i64, 1_i64);
    let b = (0..10)
        .flat_map(|t| (0..10).map(move |u| (t, u)))
        .find(|k| Doc::shard_for(k) != Doc::shard_for(&a))
        .unwrap();
    cluster.log().start();
    let n = Doc::query()
        .filter(
            Doc::TENANT_ID
                .eq(a.0)
                .and(Doc::USER_ID.eq(a.1))
                .or(Doc::TENANT_ID.eq(b.0).and(Doc::USER_ID.eq(b.1))),
        )
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let log = cluster.log().stop();
    assert_eq!(log.len(), 2);
    for e in &log {
        assert_eq!(e.values.len(), 2, "each shard gets one branch: {e:?}");
    }

    // Contradictions visit nothing.
    cluster.log().start();
    let n = Doc::query()
        .filter(
            Doc::TENANT_ID
                .is_in(Vec::<i64>::new())
                .and(Doc::USER_ID.eq(1)),
        )
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(cluster.log().stop().is_empty());
}

#[tokio::test]
async fn pg_hash_composite_rows_land_where_shard_for_says() {
    let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
    PgDoc::create_table(&cluster).await.unwrap();
    let rows: Vec<PgDoc> = (0..200)
        .map(|i| PgDoc {
            user_id: i % 17,
            tenant: format!("tenant-{}", i / 17),
            body: format!("body {i}"),
        })
        .collect();
    PgDoc::insert_many(&cluster, &rows).await.unwrap();
    for i in 0..4 {
        let here = PgDoc::on_shard(ShardId::new(i))
            .all(&cluster)
            .await
            .unwrap();
        assert!(!here.is_empty());
        for row in here {
            assert_eq!(
                PgDoc::shard_for(&(row.tenant.clone(), row.user_id)).index(),
                i
            );
        }
    }
    cluster.log().start();
    let n = PgDoc::query()
        .filter(PgDoc::TENANT.eq("tenant-3").and(PgDoc::USER_ID.eq(5)))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        shards_of(&cluster.log().stop()),
        [PgDoc::shard_for(&("tenant-3".to_owned(), 5)).name()]
    );
}

#[test]
fn range_placement() {
    assert_eq!(Event::shard_for(&19991231).to_string(), "shard_old");
    assert_eq!(Event::shard_for(&i32::MIN).to_string(), "shard_old");
    assert_eq!(Event::shard_for(&20240101).to_string(), "shard_2024");
    assert_eq!(Event::shard_for(&20241231).to_string(), "shard_2024");
    assert_eq!(Event::shard_for(&20250101).to_string(), "shard_2025");
    assert_eq!(Event::shard_for(&20251231).to_string(), "shard_2025");
    assert_eq!(Event::shard_for(&20260101).to_string(), "shard_new");
    assert_eq!(Event::shard_for(&i32::MAX).to_string(), "shard_new");
    // Shards are listed in the order written; indexes are positions in that list.
    let names: Vec<String> = <Event as Model>::shards()
        .iter()
        .map(ShardId::name)
        .collect();
    assert_eq!(
        names,
        ["shard_old", "shard_2024", "shard_2025", "shard_new"]
    );
    assert_eq!(Event::shard_for(&20250505), ShardId::named(2, "shard_2025"));

    // The same ranges as a resolver value.
    let resolver = RangeResolver::new([
        KeyRange::new(Some(20260101), None, ShardId::named(3, "shard_new")),
        KeyRange::new(None, Some(20240101), ShardId::named(0, "shard_old")),
        KeyRange::new(
            Some(20240101),
            Some(20250101),
            ShardId::named(1, "shard_2024"),
        ),
        KeyRange::new(
            Some(20250101),
            Some(20260101),
            ShardId::named(2, "shard_2025"),
        ),
    ])
    .unwrap();
    for day in [
        -1, 0, 20231231, 20240101, 20240615, 20250101, 20251231, 20260101, 30000101,
    ] {
        assert_eq!(
            resolver.shard_for(&day),
            Some(Event::shard_for(&day)),
            "{day}"
        );
    }

    // A shard may hold several ranges; outside every range there is no shard.
    assert_eq!(Reading::shard_for(&5).to_string(), "shard_a");
    assert_eq!(Reading::shard_for(&150).to_string(), "shard-b");
    assert_eq!(Reading::shard_for(&250).to_string(), "shard_a");
    assert_eq!(<Reading as Model>::shards().len(), 2);
    assert!(Reading::shard_for(&300).is_unplaced());
    assert!(Reading::shard_for(&-1).is_unplaced());
    let err = Reading::try_shard_for(&300).unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    let message = err.to_string();
    for part in ["Reading", "sensor = 300", "0..100", "ranges(..)"] {
        assert!(message.contains(part), "{message} lacks {part}");
    }
    let err = <Reading as Model>::shard_for_value(&Value::BigInt(Some(-5))).unwrap_err();
    assert!(err.to_string().contains("sensor = -5"), "{err}");
    assert!(<Reading as Model>::try_shard_of_key(&1000).is_err());
}

#[tokio::test]
async fn range_conditions_prune_shards() {
    let names = ["shard_old", "shard_2024", "shard_2025", "shard_new"];
    let cluster = cluster(&names).await;
    cluster.check::<Event>().unwrap();
    Event::create_table(&cluster).await.unwrap();
    let days = [
        20230105, 20231231, 20240101, 20240601, 20250101, 20251231, 20260101, 20270101,
    ];
    let events: Vec<Event> = days
        .iter()
        .enumerate()
        .map(|(i, &day)| Event {
            day,
            id: i as i64,
            kind: "k".into(),
        })
        .collect();
    Event::insert_many(&cluster, &events).await.unwrap();
    for name in names {
        let shard = <Event as Model>::shards()
            .iter()
            .find(|s| s.is_named(name))
            .copied()
            .unwrap();
        for e in Event::on_shard(shard).all(&cluster).await.unwrap() {
            assert_eq!(Event::shard_for(&e.day), shard);
        }
    }

    async fn visited(cluster: &Cluster<Sqlite>, cond: Cond<Event>) -> (u64, Vec<String>) {
        cluster.log().start();
        let n = Event::query().filter(cond).count(cluster).await.unwrap();
        let mut shards = shards_of(&cluster.log().stop());
        shards.sort();
        (n, shards)
    }
    let count = |f: &dyn Fn(i32) -> bool| days.iter().filter(|d| f(**d)).count() as u64;

    let (n, shards) = visited(&cluster, Event::DAY.between(20240301, 20250301)).await;
    assert_eq!(n, count(&|d| (20240301..=20250301).contains(&d)));
    assert_eq!(shards, ["shard_2024", "shard_2025"]);

    let (n, shards) = visited(&cluster, Event::DAY.lt(20240101)).await;
    assert_eq!(n, 2);
    assert_eq!(shards, ["shard_old"]);

    let (n, shards) = visited(&cluster, Event::DAY.lte(20240101)).await;
    assert_eq!(n, 3);
    assert_eq!(shards, ["shard_2024", "shard_old"]);

    let (n, shards) = visited(&cluster, Event::DAY.gte(20260101)).await;
    assert_eq!(n, 2);
    assert_eq!(shards, ["shard_new"]);

    let (n, shards) = visited(&cluster, Event::DAY.gt(20260100)).await;
    assert_eq!(n, 2);
    assert_eq!(shards, ["shard_new"]);

    // Integer ranges: keys 20251232 .. 20260100 belong to shard_2025 too.
    let (n, shards) = visited(&cluster, Event::DAY.gt(20251231)).await;
    assert_eq!(n, 2);
    assert_eq!(shards, ["shard_2025", "shard_new"]);

    // Bounds combine: (gt AND lt) is the intersection.
    let (n, shards) = visited(
        &cluster,
        Event::DAY.gt(20240101).and(Event::DAY.lt(20250102)),
    )
    .await;
    assert_eq!(n, count(&|d| d > 20240101 && d < 20250102));
    assert_eq!(shards, ["shard_2024", "shard_2025"]);

    // OR of ranges: the union.
    let (n, shards) = visited(
        &cluster,
        Event::DAY.lt(20230201).or(Event::DAY.gte(20270101)),
    )
    .await;
    assert_eq!(n, 2);
    assert_eq!(shards, ["shard_new", "shard_old"]);

    // An empty range visits nothing.
    let (n, shards) = visited(&cluster, Event::DAY.between(20250101, 20241231)).await;
    assert_eq!(n, 0);
    assert!(shards.is_empty());

    // Equality routes to one shard; a range on another column cannot prune.
    let (n, shards) = visited(&cluster, Event::DAY.eq(20240601)).await;
    assert_eq!((n, shards), (1, vec!["shard_2024".to_owned()]));
    let (n, shards) = visited(&cluster, Event::ID.lt(3)).await;
    assert_eq!(n, 3);
    assert_eq!(shards.len(), 4);
    // NOT of a range cannot prune either.
    let (_, shards) = visited(&cluster, Event::DAY.lt(20240101).not()).await;
    assert_eq!(shards.len(), 4);
}

#[tokio::test]
async fn keys_outside_every_range_are_errors() {
    let cluster = cluster(&["shard_a", "shard-b"]).await;
    Reading::create_table(&cluster).await.unwrap();
    Reading {
        sensor: 250,
        value: 1,
    }
    .insert(&cluster)
    .await
    .unwrap();
    assert_eq!(
        Reading::find(&cluster, 250).await.unwrap(),
        Some(Reading {
            sensor: 250,
            value: 1
        })
    );

    let err = Reading::query()
        .filter(Reading::SENSOR.eq(999))
        .all(&cluster)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(err.to_string().contains("sensor = 999"), "{err}");

    // Writing a key no shard holds writes nothing anywhere.
    cluster.log().start();
    let err = Reading {
        sensor: 999,
        value: 1,
    }
    .insert(&cluster)
    .await
    .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(cluster.log().stop().is_empty());
    assert_eq!(Reading::on_all_shards().count(&cluster).await.unwrap(), 1);
}

#[test]
fn mapping_placement() {
    assert_eq!(
        Customer::shard_for(&"de".to_owned()).to_string(),
        "shard_eu"
    );
    assert_eq!(
        Customer::shard_for(&"fr".to_owned()).to_string(),
        "shard_eu"
    );
    assert_eq!(
        Customer::shard_for(&"us".to_owned()).to_string(),
        "shard_us"
    );
    assert_eq!(
        Customer::shard_for(&"us-east".to_owned()).to_string(),
        "shard_us"
    );
    assert_eq!(
        Customer::shard_for(&"br".to_owned()).to_string(),
        "shard_other"
    );
    assert_eq!(
        Customer::shard_for(&String::new()).to_string(),
        "shard_other"
    );
    let names: Vec<String> = <Customer as Model>::shards()
        .iter()
        .map(ShardId::name)
        .collect();
    assert_eq!(names, ["shard_eu", "shard_us", "shard_other"]);

    let resolver = MappingResolver::new(
        [
            ("de", ShardId::named(0, "shard_eu")),
            ("fr", ShardId::named(0, "shard_eu")),
            ("us", ShardId::named(1, "shard_us")),
            ("us-east", ShardId::named(1, "shard_us")),
        ],
        Some(ShardId::named(2, "shard_other")),
    )
    .unwrap();
    for region in ["de", "fr", "us", "us-east", "br", "", "DE", "dé"] {
        assert_eq!(
            resolver.shard_for(region),
            Some(Customer::shard_for(&region.to_owned())),
            "{region}"
        );
    }

    assert_eq!(Pinned::shard_for(&1).to_string(), "shard_big");
    assert_eq!(Pinned::shard_for(&-4).to_string(), "shard_small");
    assert!(Pinned::shard_for(&5).is_unplaced());
    let err = Pinned::try_shard_for(&5).unwrap_err();
    let message = err.to_string();
    for part in ["Pinned", "tenant = 5", "not in the mapping", "default"] {
        assert!(message.contains(part), "{message} lacks {part}");
    }
    let err = <Pinned as Model>::shard_for_value(&Value::Int(Some(77))).unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(err.to_string().contains("tenant = 77"), "{err}");
    let err = <Pinned as Model>::shard_for_value(&Value::Int(None)).unwrap_err();
    assert!(matches!(err, Error::MissingShardKey { .. }), "{err}");
}

#[tokio::test]
async fn mapping_routes_and_refuses_unmapped_values() {
    let cluster = cluster(&["shard_eu", "shard_us", "shard_other"]).await;
    Customer::create_table(&cluster).await.unwrap();
    let regions = ["de", "fr", "us", "us-east", "br", "jp"];
    let customers: Vec<Customer> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| Customer {
            region: r.to_string(),
            id: i as i64,
            name: format!("c{i}"),
        })
        .collect();
    Customer::insert_many(&cluster, &customers).await.unwrap();
    let eu = Customer::on_shard(Customer::shard_for(&"de".to_owned()))
        .all(&cluster)
        .await
        .unwrap();
    let mut eu_regions: Vec<String> = eu.into_iter().map(|c| c.region).collect();
    eu_regions.sort();
    assert_eq!(eu_regions, ["de", "fr"]);

    cluster.log().start();
    let n = Customer::query()
        .filter(Customer::REGION.is_in(["de", "fr"]))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(shards_of(&cluster.log().stop()), ["shard_eu"]);

    cluster.log().start();
    let n = Customer::query()
        .filter(Customer::REGION.eq("jp"))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(shards_of(&cluster.log().stop()), ["shard_other"]);

    // Without a default: unmapped values are refused, naming the value.
    let pinned = cluster_pinned().await;
    let err = Pinned::query()
        .filter(Pinned::TENANT.is_in([1, 9]))
        .all(&pinned)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(err.to_string().contains("tenant = 9"), "{err}");
    pinned.log().start();
    let err = Pinned { tenant: 9, id: 1 }
        .insert(&pinned)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(pinned.log().stop().is_empty());
}

async fn cluster_pinned() -> Cluster<Sqlite> {
    let cluster = cluster(&["shard_big", "shard_small"]).await;
    Pinned::create_table(&cluster).await.unwrap();
    cluster
}

#[test]
fn consistent_hash_places_as_the_ring_does() {
    let ring = ConsistentHashResolver::new(16);
    for k in -500..500_i64 {
        assert_eq!(Ring16::shard_for(&k), ring.shard_for(&k), "{k}");
        assert_eq!(
            <Ring16 as Model>::shard_for_value(&Value::BigInt(Some(k))).unwrap(),
            ring.shard_for(&k)
        );
    }
    assert_eq!(<Ring16 as Model>::shards().len(), 16);

    let weighted = ConsistentHashResolver::weighted(
        [
            (ShardId::prefixed("ring_", 0), 2.0),
            (ShardId::prefixed("ring_", 1), 1.0),
            (ShardId::prefixed("ring_", 2), 0.5),
        ],
        100,
    )
    .unwrap();
    assert_eq!(weighted.vnodes_of(0), 200);
    assert_eq!(weighted.vnodes_of(2), 50);
    for a in 0..300_i64 {
        let b = format!("b{a}");
        let shard = Weighted::shard_for(&(a, b.clone()));
        assert_eq!(shard, weighted.shard_for(&(a, b.as_str())));
        assert!(shard.to_string().starts_with("ring_"));
    }
}

#[test]
fn every_strategy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<HashResolver>();
    assert_send_sync::<PgHashResolver>();
    assert_send_sync::<ConsistentHashResolver>();
    assert_send_sync::<RangeResolver>();
    assert_send_sync::<MappingResolver>();
}
