//! Routing on real PostgreSQL shard databases, seen through the query log: key equality visits
//! one shard, `is_in` sends each shard only the keys that live there.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;

use common::{User, user};
use sea_query::Value;

fn key(v: &Value) -> i64 {
    match v {
        Value::BigInt(Some(k)) => *k,
        other => panic!("unexpected value {other:?}"),
    }
}

#[tokio::test]
async fn keys_route_to_their_shards() {
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster("pg_routing_keys", 8).await;
    User::create_table(&cluster).await.unwrap();
    let users: Vec<User> = (1..=200).map(user).collect();
    User::insert_many(&cluster, &users).await.unwrap();

    // Key equality: one shard, the one `shard_for` names.
    cluster.log().start();
    let rows = User::query()
        .filter(User::ID.eq(7))
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(rows, vec![user(7)]);
    let log = cluster.log().stop();
    assert_eq!(
        log.iter().map(|e| e.shard.as_str()).collect::<Vec<_>>(),
        [User::shard_for(&7).name()]
    );

    cluster.log().start();
    assert_eq!(User::find(&cluster, 7).await.unwrap(), Some(user(7)));
    let log = cluster.log().stop();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].shard, User::shard_for(&7).name());

    // Equality inside an AND still routes.
    cluster.log().start();
    let n = User::query()
        .filter(User::ACTIVE.eq(false).and(User::ID.eq(7)))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(cluster.log().stop().len(), 1);

    // IN over many keys: every shard visited gets exactly the keys that live there (pgdog#639).
    let keys: Vec<i64> = (1..=40).collect();
    cluster.log().start();
    let mut rows = User::query()
        .filter(User::ID.is_in(keys.clone()))
        .all(&cluster)
        .await
        .unwrap();
    rows.sort_by_key(|u| u.id);
    assert_eq!(rows, keys.iter().map(|&k| user(k)).collect::<Vec<_>>());
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for k in &keys {
        expected
            .entry(User::shard_for(k).name())
            .or_default()
            .push(*k);
    }
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in cluster.log().stop() {
        let ks = e.values.iter().map(key).collect();
        assert!(seen.insert(e.shard.clone(), ks).is_none(), "{e:?}");
    }
    assert_eq!(seen, expected);

    // No key: every shard.
    cluster.log().start();
    let n = User::on_all_shards().count(&cluster).await.unwrap();
    assert_eq!(n, 200);
    assert_eq!(cluster.log().stop().len(), 8);
}
