//! Routing seen through the query log: which shards each statement touched, with which keys.

mod common;

use std::collections::BTreeMap;

use common::{User, user};
use grant::prelude::*;
use sea_query::Value;

async fn loaded() -> Cluster<Sqlite> {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    User::create_table(&cluster).await.unwrap();
    let users: Vec<User> = (1..=200).map(user).collect();
    User::insert_many(&cluster, &users).await.unwrap();
    cluster
}

fn shards_of(log: &[grant::Executed]) -> Vec<String> {
    log.iter().map(|e| e.shard.clone()).collect()
}

#[tokio::test]
async fn key_equality_hits_one_shard() {
    let cluster = loaded().await;
    cluster.log().start();
    let rows = User::query()
        .filter(User::ID.eq(7))
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(rows, vec![user(7)]);
    assert_eq!(
        shards_of(&cluster.log().stop()),
        [User::shard_for(&7).name()]
    );

    cluster.log().start();
    assert_eq!(User::find(&cluster, 7).await.unwrap(), Some(user(7)));
    assert_eq!(
        shards_of(&cluster.log().stop()),
        [User::shard_for(&7).name()]
    );

    // Equality inside an AND still routes.
    cluster.log().start();
    let n = User::query()
        .filter(User::ACTIVE.eq(false).and(User::ID.eq(7)))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(cluster.log().stop().len(), 1);
}

#[tokio::test]
async fn is_in_sends_each_shard_only_its_own_keys() {
    let cluster = loaded().await;
    // Pick two keys on different shards (the pgdog#639 case).
    let a = 1_i64;
    let b = (2..)
        .find(|k| User::shard_for(k) != User::shard_for(&a))
        .unwrap();
    cluster.log().start();
    let mut rows = User::query()
        .filter(User::ID.is_in([a, b]))
        .all(&cluster)
        .await
        .unwrap();
    rows.sort_by_key(|u| u.id);
    assert_eq!(rows, vec![user(a), user(b)]);
    let log = cluster.log().stop();
    assert_eq!(log.len(), 2, "{log:#?}");
    for e in &log {
        let keys: Vec<&Value> = e.values.iter().collect();
        assert_eq!(keys.len(), 1, "{e:?}");
        let key = match keys[0] {
            Value::BigInt(Some(k)) => *k,
            other => panic!("unexpected value {other:?}"),
        };
        assert_eq!(User::shard_for(&key).name(), e.shard);
    }

    // Many keys: every shard visited gets exactly the keys that live there.
    let keys: Vec<i64> = (1..=40).collect();
    cluster.log().start();
    let n = User::query()
        .filter(User::ID.is_in(keys.clone()))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 40);
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for k in &keys {
        expected
            .entry(User::shard_for(k).name())
            .or_default()
            .push(*k);
    }
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in cluster.log().stop() {
        let ks = e
            .values
            .iter()
            .map(|v| match v {
                Value::BigInt(Some(k)) => *k,
                other => panic!("unexpected value {other:?}"),
            })
            .collect();
        assert!(seen.insert(e.shard.clone(), ks).is_none());
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn or_of_key_equalities_prunes_and_other_filters_scatter() {
    let cluster = loaded().await;
    let a = 3_i64;
    let b = (4..)
        .find(|k| User::shard_for(k) != User::shard_for(&a))
        .unwrap();
    cluster.log().start();
    let n = User::query()
        .filter(User::ID.eq(a).or(User::ID.eq(b)))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(cluster.log().stop().len(), 2);

    // OR with a non-key branch must visit every shard.
    cluster.log().start();
    let n = User::query()
        .filter(User::ID.eq(a).or(User::BALANCE.lt(-150)))
        .count(&cluster)
        .await
        .unwrap();
    let expected = (1..=200)
        .map(user)
        .filter(|u| u.id == a || u.balance < -150)
        .count() as u64;
    assert_eq!(n, expected);
    assert_eq!(cluster.log().stop().len(), 8);

    // NOT over the key cannot prune.
    cluster.log().start();
    let n = User::query()
        .filter(User::ID.eq(a).not())
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 199);
    assert_eq!(cluster.log().stop().len(), 8);

    // Contradictory key equalities visit nothing and match nothing.
    cluster.log().start();
    let n = User::query()
        .filter(User::ID.eq(a).and(User::ID.eq(b)))
        .count(&cluster)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(cluster.log().stop().is_empty());
}

#[tokio::test]
async fn explicit_targets() {
    let cluster = loaded().await;
    let shard = User::shard_for(&10);
    cluster.log().start();
    let rows = User::on_shard(shard).all(&cluster).await.unwrap();
    assert!(rows.iter().all(|u| User::shard_for(&u.id) == shard));
    assert!(rows.iter().any(|u| u.id == 10));
    assert_eq!(shards_of(&cluster.log().stop()), [shard.name()]);

    // on_shard keeps to its shard even when the key points elsewhere.
    let other = (0..).find(|k| User::shard_for(k) != shard).unwrap();
    let rows = User::on_shard(shard)
        .filter(User::ID.eq(other))
        .all(&cluster)
        .await
        .unwrap();
    assert!(rows.is_empty());

    cluster.log().start();
    let n = User::on_all_shards().count(&cluster).await.unwrap();
    assert_eq!(n, 200);
    assert_eq!(cluster.log().stop().len(), 8);

    let err = User::on_shard(ShardId::new(9))
        .all(&cluster)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
}

#[tokio::test]
async fn context_routes_unkeyed_queries() {
    let cluster = loaded().await;
    let shard = ShardId::new(3);
    let expected = User::on_shard(shard).count(&cluster).await.unwrap();
    cluster.log().start();
    let (n, keyed) = grant::with_shard(shard, async {
        let n = User::query().count(&cluster).await.unwrap();
        // A key in the filter still wins over the context.
        let keyed = User::query()
            .filter(User::ID.eq(7))
            .one(&cluster)
            .await
            .unwrap();
        (n, keyed)
    })
    .await;
    assert_eq!(n, expected);
    assert_eq!(keyed, Some(user(7)));
    let log = cluster.log().stop();
    assert_eq!(shards_of(&log), [shard.name(), User::shard_for(&7).name()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_nest_and_never_leak_between_tasks() {
    assert_eq!(grant::current_shard(), None);
    let mut tasks = Vec::new();
    for t in 0..400u32 {
        tasks.push(tokio::spawn(async move {
            let outer = ShardId::new(t % 8);
            grant::with_shard(outer, async move {
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                    assert_eq!(grant::current_shard(), Some(outer));
                    let inner = ShardId::new((t + 1) % 8);
                    grant::with_shard(inner, async {
                        tokio::task::yield_now().await;
                        assert_eq!(grant::current_shard(), Some(inner));
                    })
                    .await;
                    assert_eq!(grant::current_shard(), Some(outer));
                }
                // A task spawned inside the context does not inherit it.
                let child = tokio::spawn(async { grant::current_shard() })
                    .await
                    .unwrap();
                assert_eq!(child, None);
            })
            .await;
            assert_eq!(grant::current_shard(), None);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn routing_is_pure_and_typed() {
    // i32 and i64 keys route alike; ShardId's index is the remainder.
    for k in [-3_i64, 0, 1, 77, 1 << 40] {
        let s = User::shard_for(&k);
        assert!(s.index() < 8);
        assert_eq!(s.to_string(), format!("shard_{}", s.index()));
        if let Ok(small) = i32::try_from(k) {
            assert_eq!(grant::resolve::HashResolver::new(8).shard_for(&small), s);
        }
    }
    let q = User::query().filter(User::ID.eq(7));
    assert_eq!(q.shards().unwrap(), vec![User::shard_for(&7)]);
    assert_eq!(User::query().shards().unwrap().len(), 8);
}
