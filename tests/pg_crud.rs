//! CRUD on real PostgreSQL shard databases: placement, finds, updates, deletes, key mutation,
//! injection, missing shards. The same checks as `sqlite_crud.rs`, on `Cluster<Postgres>`.
//!
//! The server is a throwaway one started by `grant_sharding::testing::postgres` (or the one
//! `GRANT_PG_URL` names); each test has its own databases, named after it.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::{OrderItem, User, user};
use grant::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_land_where_shard_for_says() {
    const TEST: &str = "pg_crud_ten_thousand_users";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 8).await;
    User::create_table(&cluster).await.unwrap();
    User::create_table(&cluster).await.unwrap(); // idempotent

    let users: Vec<User> = (1..=10_000).map(user).collect();
    assert_eq!(User::insert_many(&cluster, &users).await.unwrap(), 10_000);

    // Read every shard database with plain sqlx, bypassing Grant.
    let mut total = 0;
    for i in 0..8usize {
        let pool = pg::pool(&pg::shard_url(env, TEST, i)).await;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users")
            .fetch_all(&pool)
            .await
            .unwrap();
        for id in &ids {
            assert_eq!(
                User::shard_for(id),
                ShardId::new(i as u32),
                "user {id} in shard_{i}"
            );
        }
        let share = ids.len() as f64 / 10_000.0;
        assert!(
            (0.105..=0.145).contains(&share),
            "shard_{i} holds {:.2}% of the users, expected 12.5% ± 2%",
            share * 100.0
        );
        total += ids.len();
        pool.close().await;
    }
    assert_eq!(total, 10_000);

    for u in &users {
        assert_eq!(User::find(&cluster, u.id).await.unwrap().as_ref(), Some(u));
    }
    assert_eq!(User::find(&cluster, 10_001).await.unwrap(), None);
    assert_eq!(User::query().count(&cluster).await.unwrap(), 10_000);
}

#[tokio::test]
async fn composite_keys_find_update_delete() {
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster("pg_crud_composite_keys", 8).await;
    OrderItem::create_table(&cluster).await.unwrap();
    let mut items = Vec::new();
    for order_id in 1..=50 {
        for product_id in 1..=3 {
            items.push(OrderItem {
                order_id,
                product_id,
                quantity: (order_id * product_id) as i32,
            });
        }
    }
    assert_eq!(OrderItem::insert_many(&cluster, &items).await.unwrap(), 150);

    // Every item of an order sits on the order's shard.
    for order_id in 1..=50_i64 {
        let shard = OrderItem::shard_for(&order_id);
        let on_shard = OrderItem::on_shard(shard)
            .filter(OrderItem::ORDER_ID.eq(order_id))
            .count(&cluster)
            .await
            .unwrap();
        assert_eq!(on_shard, 3);
    }

    let found = OrderItem::find(&cluster, (7, 2)).await.unwrap().unwrap();
    assert_eq!(found.quantity, 14);
    assert_eq!(OrderItem::find(&cluster, (7, 9)).await.unwrap(), None);

    let mut changed = found.clone();
    changed.quantity = 99;
    changed.update(&cluster).await.unwrap();
    assert_eq!(
        OrderItem::find(&cluster, (7, 2))
            .await
            .unwrap()
            .unwrap()
            .quantity,
        99
    );
    // Siblings untouched.
    assert_eq!(
        OrderItem::find(&cluster, (7, 1))
            .await
            .unwrap()
            .unwrap()
            .quantity,
        7
    );

    assert!(changed.delete(&cluster).await.unwrap());
    assert!(!changed.delete(&cluster).await.unwrap());
    assert_eq!(OrderItem::find(&cluster, (7, 2)).await.unwrap(), None);
    assert_eq!(OrderItem::query().count(&cluster).await.unwrap(), 149);
}

#[tokio::test]
async fn insert_update_delete_one_user() {
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster("pg_crud_one_user", 8).await;
    User::create_table(&cluster).await.unwrap();
    let mut u = user(42);
    u.insert(&cluster).await.unwrap();
    // A duplicate primary key is the shard's error, naming model and shard.
    let err = u.insert(&cluster).await.unwrap_err().to_string();
    assert!(
        err.contains("User") && err.contains(&User::shard_for(&42).to_string()),
        "{err}"
    );

    u.balance = 1234;
    u.email = None;
    u.update(&cluster).await.unwrap();
    assert_eq!(User::find(&cluster, 42).await.unwrap(), Some(u.clone()));

    let ghost = user(43);
    let err = ghost.update(&cluster).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    assert!(u.delete(&cluster).await.unwrap());
    assert_eq!(User::find(&cluster, 42).await.unwrap(), None);
}

#[tokio::test]
async fn shard_key_mutation_is_refused_and_writes_nothing() {
    const TEST: &str = "pg_crud_shard_key_mutation";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 8).await;
    User::create_table(&cluster).await.unwrap();
    User::insert_many(&cluster, &[user(1), user(2)])
        .await
        .unwrap();

    let mut tracked = User::find_tracked(&cluster, 1).await.unwrap().unwrap();
    tracked.id = 2;
    tracked.name = "moved".into();
    cluster.log().start();
    let err = tracked.save(&cluster).await.unwrap_err();
    assert!(cluster.log().stop().is_empty(), "nothing may be sent");
    match &err {
        Error::ShardKeyMutation {
            model,
            key,
            from,
            to,
            ..
        } => {
            assert_eq!((*model, *key), ("User", "id"));
            assert_eq!((from.as_str(), to.as_str()), ("1", "2"));
        }
        other => panic!("expected ShardKeyMutation, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("delete") && msg.contains("insert"), "{msg}");
    assert_eq!(User::find(&cluster, 1).await.unwrap(), Some(user(1)));
    assert_eq!(User::find(&cluster, 2).await.unwrap(), Some(user(2)));

    // Nothing written, seen from outside Grant: every shard database holds exactly its rows.
    let mut names = Vec::new();
    for i in 0..8usize {
        let pool = pg::pool(&pg::shard_url(env, TEST, i)).await;
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM users ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        for (id, _) in &rows {
            assert_eq!(User::shard_for(id).index(), i as u32, "user {id}");
        }
        names.extend(rows);
        pool.close().await;
    }
    names.sort();
    assert_eq!(
        names,
        [(1, "user 1".to_string()), (2, "user 2".to_string())]
    );

    // A non-key change saves fine.
    let mut tracked = User::find_tracked(&cluster, 1).await.unwrap().unwrap();
    tracked.balance = -5;
    tracked.save(&cluster).await.unwrap();
    assert_eq!(User::find(&cluster, 1).await.unwrap().unwrap().balance, -5);

    // The explicit move: delete the old key, insert under the new one.
    let tracked = User::find_tracked(&cluster, 1).await.unwrap().unwrap();
    let mut moved = tracked.clone().into_inner();
    moved.id = 1001;
    assert!(tracked.delete(&cluster).await.unwrap());
    moved.insert(&cluster).await.unwrap();
    assert_eq!(User::find(&cluster, 1).await.unwrap(), None);
    assert_eq!(User::find(&cluster, 1001).await.unwrap(), Some(moved));
}

#[tokio::test]
async fn values_are_bound_never_spliced() {
    const TEST: &str = "pg_crud_values_are_bound";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 8).await;
    User::create_table(&cluster).await.unwrap();
    let evil = "'; drop table users; --";
    let mut u = user(5);
    u.name = evil.to_string();
    u.email = Some("\"quoted\" 'single' \\ back $1 $$ E'\\x00'".into());
    u.insert(&cluster).await.unwrap();
    let back = User::find(&cluster, 5).await.unwrap().unwrap();
    assert_eq!(back, u);
    let by_name = User::query()
        .filter(User::NAME.eq(evil))
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(by_name, vec![u.clone()]);
    assert_eq!(User::query().count(&cluster).await.unwrap(), 1);

    // Stored verbatim, read back with plain sqlx.
    let shard = User::shard_for(&5).index() as usize;
    let pool = pg::pool(&pg::shard_url(env, TEST, shard)).await;
    let (name, email): (String, Option<String>) =
        sqlx::query_as("SELECT name, email FROM users WHERE id = 5")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((name, email), (u.name, u.email));
    pool.close().await;
}

#[tokio::test]
async fn missing_shards_are_named() {
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster("pg_crud_missing_shards", 4).await; // User needs 8
    let err = cluster.check::<User>().unwrap_err();
    match &err {
        Error::UnknownShard { model, shard, .. } => {
            assert_eq!(*model, "User");
            assert_eq!(shard, "shard_4");
        }
        other => panic!("expected UnknownShard, got {other}"),
    }
    assert!(err.to_string().contains("shard_4"), "{err}");
    assert!(cluster.check::<OrderItem>().is_ok());

    // First use fails the same way, before anything is written.
    let err = User::create_table(&cluster).await.unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    let id = (0..).find(|id| User::shard_for(id).index() >= 4).unwrap();
    let err = User::find(&cluster, id).await.unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    let err = user(id).insert(&cluster).await.unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
}
