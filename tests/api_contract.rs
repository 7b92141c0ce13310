//! The public API contract: names from DESIGN.md exist, handles and futures are `Send + Sync`,
//! dynamic keys never fall back to a default shard.

mod common;

use common::{OrderItem, User, user};
use grant::prelude::*;
use grant::{Executed, QueryLog, Value};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Cluster<Sqlite>>();
    assert_send_sync::<Cluster<Postgres>>();
    assert_send_sync::<Query<User>>();
    assert_send_sync::<Cond<User>>();
    assert_send_sync::<Tracked<User>>();
    assert_send_sync::<Error>();
    assert_send_sync::<ShardId>();
    assert_send_sync::<QueryLog>();
    assert_send_sync::<Executed>();
}

#[tokio::test]
async fn futures_are_send() {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    User::create_table(&cluster).await.unwrap();
    let u = user(1);
    assert_send(&u.insert(&cluster));
    assert_send(&User::find(&cluster, 1));
    assert_send(&User::insert_many(&cluster, &[]));
    assert_send(&u.update(&cluster));
    assert_send(&u.delete(&cluster));
    assert_send(&User::query().all(&cluster));
    assert_send(&User::query().count(&cluster));
    assert_send(&User::query().sum(User::BALANCE, &cluster));
    assert_send(&User::query().avg(User::BALANCE, &cluster));
    assert_send(&OrderItem::find(&cluster, (1, 2)));
    assert_send(&grant::with_shard(ShardId::new(1), async {}));
    // And they run on a multi-threaded runtime's worker.
    let c = cluster.clone();
    tokio::spawn(async move { User::query().count(&c).await })
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn shard_ids() {
    let id = User::shard_for(&7);
    let copy = id;
    assert_eq!(id, copy);
    assert_eq!(format!("{id}"), format!("shard_{}", id.index()));
    assert!(format!("{id:?}").contains(&id.to_string()));
    let mut set = std::collections::HashSet::new();
    set.insert(id);
    assert!(set.contains(&ShardId::new(id.index())));
    assert_eq!(
        <User as Model>::shards().len(),
        8,
        "count = 8 means shard_0 .. shard_7"
    );
    assert_eq!(<OrderItem as Model>::shards()[3], ShardId::new(3));
    assert_eq!(ShardId::named(1, "eu").to_string(), "eu");
}

#[test]
fn missing_dynamic_keys_are_errors_never_shard_zero() {
    for value in [
        Value::BigInt(None),
        Value::String(None),
        Value::Bool(Some(true)),
    ] {
        let err = User::shard_for_value(&value).unwrap_err();
        match &err {
            Error::MissingShardKey { model, key, .. } => {
                assert_eq!((*model, *key), ("User", "id"));
            }
            other => panic!("expected MissingShardKey, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("User") && msg.contains("`id`"), "{msg}");
    }
    // A dynamic value routes like the typed key.
    assert_eq!(
        User::shard_for_value(&Value::BigInt(Some(42))).unwrap(),
        User::shard_for(&42)
    );
    assert_eq!(
        User::shard_for_value(&Value::Int(Some(42))).unwrap(),
        User::shard_for(&42)
    );
}

#[test]
fn model_metadata() {
    let meta = <OrderItem as Model>::META;
    assert_eq!(meta.table, "order_item");
    assert_eq!(meta.primary_key, &[0, 1]);
    assert_eq!(meta.shard_key, Some(0));
    assert_eq!(<User as Model>::META.table, "users");
    assert!(<User as Model>::META.columns[5].nullable);
    assert!(!<User as Model>::META.columns[0].nullable);
    assert_eq!(User::ID.name(), "id");
    assert_eq!(User::EMAIL.index(), 5);
}
