//! CRUD on real shards, one scenario per area, each run on SQLite shard files and on PostgreSQL
//! shard databases: placement, finds, updates, deletes, composite keys, key mutation,
//! injection, missing shards. What Grant wrote is checked from outside it, with plain sqlx.
//!
//! A scenario is generic over [`Side`] (one backend's shards); `on_both!` makes one test per
//! backend. PostgreSQL is the shared throwaway server of `grant_sharding::testing::postgres` (or
//! the one `GRANT_PG_URL` names); each test has its own databases, named after it.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/sides.rs"]
#[macro_use]
mod sides;

use common::{OrderItem, User, user};
use grant::FromShardRow;
use grant::prelude::*;
use sides::Side;
use sqlx::sqlite::SqlitePoolOptions;

/// A user row as stored: `(id, name, email)`.
type Stored = (i64, String, Option<String>);

/// Reading a shard's `users` table bypassing Grant.
trait Users: Side {
    /// Every row of the `users` table of shard `i`, read with plain sqlx (bypassing Grant),
    /// ordered by id.
    async fn users_on(&self, i: usize) -> Vec<Stored>;
}

impl Users for sides::Files {
    async fn users_on(&self, i: usize) -> Vec<Stored> {
        let pool = SqlitePoolOptions::new()
            .connect(&self.shard_url(i))
            .await
            .unwrap();
        let rows = sqlx::query_as("SELECT id, name, email FROM users ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    }
}

impl Users for sides::Databases {
    async fn users_on(&self, i: usize) -> Vec<Stored> {
        let pool = pg::pool(&self.shard_url(i)).await;
        let rows = sqlx::query_as("SELECT id, name, email FROM users ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    }
}

on_both!("crud_", ten_thousand_users_land_where_shard_for_says);
async fn ten_thousand_users_land_where_shard_for_says<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
    OrderItem: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
    User::create_table(&cluster).await.unwrap();
    User::create_table(&cluster).await.unwrap(); // idempotent

    let users: Vec<User> = (1..=10_000).map(user).collect();
    assert_eq!(User::insert_many(&cluster, &users).await.unwrap(), 10_000);

    let mut total = 0;
    for i in 0..8usize {
        let rows = side.users_on(i).await;
        for (id, _, _) in &rows {
            assert_eq!(
                User::shard_for(id),
                ShardId::new(i as u32),
                "user {id} in shard_{i}"
            );
        }
        let share = rows.len() as f64 / 10_000.0;
        assert!(
            (0.105..=0.145).contains(&share),
            "shard_{i} holds {:.2}% of the users, expected 12.5% ± 2%",
            share * 100.0
        );
        total += rows.len();
    }
    assert_eq!(total, 10_000);

    for u in &users {
        assert_eq!(User::find(&cluster, u.id).await.unwrap().as_ref(), Some(u));
    }
    assert_eq!(User::find(&cluster, 10_001).await.unwrap(), None);
    assert_eq!(User::query().count(&cluster).await.unwrap(), 10_000);
}

on_both!("crud_", composite_keys_find_update_delete);
async fn composite_keys_find_update_delete<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
    OrderItem: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
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
    let quantity = |k| {
        let cluster = &cluster;
        async move {
            OrderItem::find(cluster, k)
                .await
                .unwrap()
                .map(|i| i.quantity)
        }
    };
    assert_eq!(quantity((7, 2)).await, Some(99));
    // Siblings untouched.
    assert_eq!(quantity((7, 1)).await, Some(7));
    assert_eq!(quantity((7, 3)).await, Some(21));

    assert!(changed.delete(&cluster).await.unwrap());
    assert!(!changed.delete(&cluster).await.unwrap());
    assert_eq!(OrderItem::find(&cluster, (7, 2)).await.unwrap(), None);
    assert_eq!(OrderItem::query().count(&cluster).await.unwrap(), 149);
}

on_both!("crud_", insert_update_delete_one_user);
async fn insert_update_delete_one_user<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
    OrderItem: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
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
    let shard = User::shard_for(&42).index() as usize;
    assert_eq!(
        side.users_on(shard).await,
        [(42, "user 42".to_string(), None)]
    );

    let ghost = user(43);
    let err = ghost.update(&cluster).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    assert!(u.delete(&cluster).await.unwrap());
    assert_eq!(User::find(&cluster, 42).await.unwrap(), None);
    assert_eq!(side.users_on(shard).await, []);
}

on_both!("crud_", shard_key_mutation_is_refused_and_writes_nothing);
async fn shard_key_mutation_is_refused_and_writes_nothing<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
    OrderItem: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
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

    // Nothing written, seen from outside Grant: every shard holds exactly its rows.
    let mut names = Vec::new();
    for i in 0..8usize {
        for (id, name, _) in side.users_on(i).await {
            assert_eq!(User::shard_for(&id).index(), i as u32, "user {id}");
            names.push((id, name));
        }
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

on_both!("crud_", values_are_bound_never_spliced);
async fn values_are_bound_never_spliced<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
    OrderItem: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
    User::create_table(&cluster).await.unwrap();
    let evil = "'; drop table users; --";
    let mut u = user(5);
    u.name = evil.to_string();
    u.email = Some("\"quoted\" 'single' \\ back $1 $$ E'\\x00' ?1 :name".into());
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
    assert_eq!(side.users_on(shard).await, [(5, u.name, u.email)]);
}

on_both!("crud_", missing_shards_are_named);
async fn missing_shards_are_named<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
    OrderItem: FromShardRow<S::DB>,
{
    let cluster = side.cluster(4).await; // User needs 8
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

/// Every user row on every shard, read from outside Grant, with the shard it sits on.
async fn stored_everywhere<S: Users>(side: &S, shards: usize) -> Vec<(usize, Stored)> {
    let mut all = Vec::new();
    for i in 0..shards {
        all.extend(side.users_on(i).await.into_iter().map(|row| (i, row)));
    }
    all
}

on_both!("crud_", upsert_inserts_new_rows_and_updates_existing_ones);
async fn upsert_inserts_new_rows_and_updates_existing_ones<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
    User::create_table(&cluster).await.unwrap();
    let mut ada = user(1);
    ada.upsert(&cluster).await.unwrap();
    ada.name = "ada, renamed".into();
    ada.email = None;
    ada.upsert(&cluster).await.unwrap();
    assert_eq!(User::find(&cluster, 1).await.unwrap(), Some(ada.clone()));

    // 100 new rows, 50 existing ones changed, and key 7 given twice: the last one is written.
    User::insert_many(&cluster, &(100..150).map(user).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut batch: Vec<User> = (100..250).map(user).collect();
    for row in &mut batch {
        row.name = format!("{} v2", row.name);
    }
    batch.push(User {
        name: "seven, first".into(),
        ..user(7)
    });
    batch.push(User {
        name: "seven, last".into(),
        ..user(7)
    });
    assert_eq!(User::upsert_many(&cluster, &batch).await.unwrap(), 151);

    let stored = stored_everywhere(side, 8).await;
    assert_eq!(stored.len(), 1 + 150 + 1, "{stored:?}");
    for (shard, (id, name, email)) in &stored {
        assert_eq!(
            User::shard_for(id).index() as usize,
            *shard,
            "row {id} on shard {shard}"
        );
        let expected = match *id {
            1 => ada.clone(),
            7 => User {
                name: "seven, last".into(),
                ..user(7)
            },
            id => User {
                name: format!("user {id} v2"),
                ..user(id)
            },
        };
        assert_eq!((name, email), (&expected.name, &expected.email), "row {id}");
    }

    // In a shard's transaction too: rolled back, nothing changes; committed, it does.
    let mut tx = cluster.begin_for::<User>(&1).await.unwrap();
    tx.upsert(&User {
        name: "rolled back".into(),
        ..ada.clone()
    })
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(User::find(&cluster, 1).await.unwrap(), Some(ada.clone()));
    let mut tx = cluster.begin_for::<User>(&1).await.unwrap();
    tx.upsert(&User {
        name: "committed".into(),
        ..ada.clone()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        User::find(&cluster, 1).await.unwrap().unwrap().name,
        "committed"
    );
}

on_both!("crud_", concurrent_upserts_of_one_new_key_leave_one_row);
async fn concurrent_upserts_of_one_new_key_leave_one_row<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
    User::create_table(&cluster).await.unwrap();
    for round in 0..3i64 {
        let id = 1_000 + round;
        let writers = (0..32).map(|w| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                User {
                    name: format!("writer {w}"),
                    ..user(id)
                }
                .upsert(&cluster)
                .await
            })
        });
        for outcome in futures_util::future::join_all(writers).await {
            outcome.unwrap().unwrap();
        }
        let stored: Vec<_> = stored_everywhere(side, 8)
            .await
            .into_iter()
            .filter(|(_, (i, _, _))| *i == id)
            .collect();
        assert_eq!(stored.len(), 1, "round {round}: {stored:?}");
        let (_, (_, name, _)) = &stored[0];
        let writer: u32 = name
            .strip_prefix("writer ")
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: `{name}` is no writer's value"));
        assert!(writer < 32);
    }
}

on_both!("crud_", delete_by_filter_removes_what_one_database_would);
async fn delete_by_filter_removes_what_one_database_would<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
    User::create_table(&cluster).await.unwrap();
    let users: Vec<User> = (1..=1_000).map(user).collect();
    User::insert_many(&cluster, &users).await.unwrap();
    // The oracle: what deleting `balance < 0 AND region = 'eu'` from one table leaves.
    let doomed = |u: &User| u.balance < 0 && u.region == "eu";
    let n = User::query()
        .filter(User::BALANCE.lt(0).and(User::REGION.eq("eu".to_owned())))
        .delete(&cluster)
        .await
        .unwrap();
    assert_eq!(n, users.iter().filter(|u| doomed(u)).count() as u64);
    let mut left: Vec<i64> = stored_everywhere(side, 8)
        .await
        .into_iter()
        .map(|(_, (id, _, _))| id)
        .collect();
    left.sort_unstable();
    let expected: Vec<i64> = users.iter().filter(|u| !doomed(u)).map(|u| u.id).collect();
    assert_eq!(left, expected);

    // Routed by the shard key: one statement, on the key's shard only.
    cluster.log().start();
    assert_eq!(
        User::query()
            .filter(User::ID.eq(4))
            .delete(&cluster)
            .await
            .unwrap(),
        1
    );
    let sent = cluster.log().stop();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].shard, User::shard_for(&4).name());
    assert!(sent[0].sql.starts_with("DELETE"), "{sent:?}");
    assert_eq!(User::find(&cluster, 4).await.unwrap(), None);
    // Again: nothing left to delete.
    assert_eq!(
        User::query()
            .filter(User::ID.eq(4))
            .delete(&cluster)
            .await
            .unwrap(),
        0
    );

    // A page of rows is not a set to delete.
    let err = User::query().limit(10).delete(&cluster).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { model: "User", .. }),
        "{err}"
    );
    // No filter: every row, on every shard.
    let remaining = expected.len() as u64 - 1;
    assert_eq!(
        User::on_all_shards().delete(&cluster).await.unwrap(),
        remaining
    );
    assert!(stored_everywhere(side, 8).await.is_empty());
}

on_both!("crud_", update_by_filter_changes_what_one_database_would);
async fn update_by_filter_changes_what_one_database_would<S: Users>(side: &S)
where
    User: FromShardRow<S::DB>,
{
    let cluster = side.cluster(8).await;
    User::create_table(&cluster).await.unwrap();
    let users: Vec<User> = (1..=1_000).map(user).collect();
    User::insert_many(&cluster, &users).await.unwrap();
    // The oracle: what `UPDATE users SET name = 'frozen', email = NULL, active = false WHERE
    // balance < 0 AND region = 'eu'` does to one table.
    let hit = |u: &User| u.balance < 0 && u.region == "eu";
    let expected: Vec<User> = users
        .iter()
        .map(|u| {
            if hit(u) {
                User {
                    name: "frozen".into(),
                    email: None,
                    active: false,
                    ..u.clone()
                }
            } else {
                u.clone()
            }
        })
        .collect();
    let n = User::query()
        .filter(User::BALANCE.lt(0).and(User::REGION.eq("eu".to_owned())))
        .set(User::NAME, "frozen".to_owned())
        .set(User::EMAIL, None)
        .set(User::ACTIVE, true)
        .set(User::ACTIVE, false) // the last assignment of a column wins
        .update(&cluster)
        .await
        .unwrap();
    let hits = users.iter().filter(|u| hit(u)).count() as u64;
    assert!(hits > 50, "the scenario must update many rows: {hits}");
    assert_eq!(n, hits);
    // Checked from outside Grant: every shard's rows, by plain sqlx.
    let mut stored: Vec<Stored> = stored_everywhere(side, 8)
        .await
        .into_iter()
        .map(|(_, row)| row)
        .collect();
    stored.sort_unstable();
    let want: Vec<Stored> = expected
        .iter()
        .map(|u| (u.id, u.name.clone(), u.email.clone()))
        .collect();
    assert_eq!(stored, want);
    let mut all = User::on_all_shards().all(&cluster).await.unwrap();
    all.sort_by_key(|u| u.id);
    assert_eq!(all, expected);

    // Routed by the shard key: one statement, on the key's shard only.
    cluster.log().start();
    assert_eq!(
        User::query()
            .filter(User::ID.eq(4))
            .set(User::BALANCE, 77)
            .update(&cluster)
            .await
            .unwrap(),
        1
    );
    let sent = cluster.log().stop();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].shard, User::shard_for(&4).name());
    assert!(sent[0].sql.starts_with("UPDATE"), "{sent:?}");
    assert_eq!(User::find(&cluster, 4).await.unwrap().unwrap().balance, 77);
    // A key no row has: nothing updated.
    assert_eq!(
        User::query()
            .filter(User::ID.eq(5_000))
            .set(User::BALANCE, 1)
            .update(&cluster)
            .await
            .unwrap(),
        0
    );
    // Values are bound: a quote in a value is stored as written.
    let odd = "O'Brien\"; DROP TABLE users; --".to_owned();
    User::query()
        .filter(User::ID.eq(5))
        .set(User::NAME, odd.clone())
        .update(&cluster)
        .await
        .unwrap();
    assert_eq!(User::find(&cluster, 5).await.unwrap().unwrap().name, odd);

    // A page of rows is not a set to update.
    let err = User::query()
        .limit(10)
        .set(User::BALANCE, 0)
        .update(&cluster)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { model: "User", .. }),
        "{err}"
    );
    // No filter: every row, on every shard.
    assert_eq!(
        User::on_all_shards()
            .set(User::REGION, "moon".to_owned())
            .update(&cluster)
            .await
            .unwrap(),
        1_000
    );
    assert_eq!(
        User::query()
            .filter(User::REGION.ne("moon".to_owned()))
            .count(&cluster)
            .await
            .unwrap(),
        0
    );
}
