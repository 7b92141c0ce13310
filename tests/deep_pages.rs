//! Deep pages across shards: a shard is asked for its share of `offset + limit` rows first and
//! for more only when its chunk comes back full. Answers must equal one database's whatever the
//! distribution — here a skewed one, where every early row of the order lives on one shard, so
//! that shard must be asked again (keyset continuation) several times.

mod common;

use common::User;
use grant::prelude::*;

/// The shard every row sorting early lives on.
const HOT: &str = "shard_3";

fn rows() -> Vec<User> {
    let names = ["ada", "Bob", "émile", "zoë", "o'neil", "", "ada", "\"q\""];
    (1..=24_000_i64)
        .map(|id| {
            let hot = User::shard_for(&id).name() == HOT;
            User {
                id,
                name: names[(id % 8) as usize].to_string(),
                region: ["eu", "us", "apac"][(id % 3) as usize].to_string(),
                active: id % 2 == 0,
                // Rows of the hot shard come first in ascending balance and last in descending.
                balance: if hot { id % 97 } else { 1_000 + id % 89 },
                // NULLs and duplicates in a nullable sort column; the hot shard's sort first.
                email: match id % 5 {
                    0 => None,
                    _ if hot => Some(format!("a{}@x", id % 13)),
                    _ => Some(format!("m{}@x", id % 17)),
                },
            }
        })
        .collect()
}

async fn reference(data: &[User]) -> sqlx::SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL, \
         active BOOLEAN NOT NULL, balance INTEGER NOT NULL, email TEXT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for u in data {
        sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)")
            .bind(u.id)
            .bind(&u.name)
            .bind(&u.region)
            .bind(u.active)
            .bind(u.balance)
            .bind(&u.email)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_pages_equal_one_database_under_skew() {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    User::create_table(&cluster).await.unwrap();
    let data = rows();
    User::insert_many(&cluster, &data).await.unwrap();
    let one = reference(&data).await;

    type Shape = (&'static str, fn(Query<User>) -> Query<User>);
    let shapes: [Shape; 5] = [
        ("balance, id", |q| q.order_by(User::BALANCE, Order::Asc)),
        ("balance DESC, id", |q| {
            q.order_by(User::BALANCE, Order::Desc)
        }),
        ("email, id", |q| q.order_by(User::EMAIL, Order::Asc)),
        ("email DESC, balance, id", |q| {
            q.order_by(User::EMAIL, Order::Desc)
                .order_by(User::BALANCE, Order::Asc)
        }),
        ("name DESC, email, id", |q| {
            q.order_by(User::NAME, Order::Desc)
                .order_by(User::EMAIL, Order::Asc)
        }),
    ];
    let mut continued = 0;
    for (sql_order, shape) in shapes {
        for (limit, offset) in [
            (10, 0),
            (700, 900),
            (100, 2_500),
            (2_000, 1_000),
            (50, 6_000),
            (25, 23_990),
            (100, 30_000),
        ] {
            cluster.log().start();
            let got: Vec<i64> = shape(User::on_all_shards())
                .filter(User::ID.gt(0))
                .limit(limit)
                .offset(offset)
                .all(&cluster)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.id)
                .collect();
            let statements = cluster.log().take();
            let hot = statements.iter().filter(|s| s.shard == HOT).count();
            if hot > 1 {
                continued += 1;
            }
            let want: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM users WHERE id > 0 ORDER BY {sql_order} LIMIT {limit} OFFSET {offset}"
            )))
            .fetch_all(&one)
            .await
            .unwrap();
            assert_eq!(
                got, want,
                "ORDER BY {sql_order} LIMIT {limit} OFFSET {offset} ({hot} statements on {HOT})"
            );
        }
    }
    assert!(
        continued >= 5,
        "the skewed shard was asked again (keyset continuation) in only {continued} queries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_even_distribution_asks_each_shard_once_for_its_share() {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    User::create_table(&cluster).await.unwrap();
    let data: Vec<User> = (1..=4_000_i64)
        .map(|id| User {
            id,
            name: format!("n{id}"),
            region: "eu".into(),
            active: true,
            balance: (id * 7_919) % 4_001,
            email: None,
        })
        .collect();
    User::insert_many(&cluster, &data).await.unwrap();
    cluster.log().start();
    let page = User::on_all_shards()
        .order_by(User::BALANCE, Order::Asc)
        .limit(100)
        .offset(3_000)
        .all(&cluster)
        .await
        .unwrap();
    let statements = cluster.log().take();
    let mut want = data.clone();
    want.sort_by_key(|u| (u.balance, u.id));
    assert_eq!(page, want[3_000..3_100].to_vec());
    assert_eq!(
        statements.len(),
        8,
        "one statement per shard: {statements:#?}"
    );
    for s in &statements {
        assert!(
            s.sql.contains("LIMIT") && !s.sql.contains("OFFSET"),
            "shards get a LIMIT and no OFFSET: {}",
            s.sql
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_projected_and_distinct_pages_equal_one_database_under_skew() {
    let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
    User::create_table(&cluster).await.unwrap();
    let data = rows();
    User::insert_many(&cluster, &data).await.unwrap();
    let one = reference(&data).await;
    for (limit, offset) in [(100, 2_500), (1_500, 1_200), (40, 7_000)] {
        cluster.log().start();
        let got: Vec<(i64, i64)> = User::on_all_shards()
            .select((User::BALANCE, User::ID))
            .order_by(User::BALANCE, Order::Asc)
            .limit(limit)
            .offset(offset)
            .all(&cluster)
            .await
            .unwrap();
        let hot = cluster
            .log()
            .take()
            .iter()
            .filter(|s| s.shard == HOT)
            .count();
        assert!(
            hot > 1,
            "LIMIT {limit} OFFSET {offset}: {HOT} was asked once"
        );
        let want: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT balance, id FROM users ORDER BY balance, id LIMIT {limit} OFFSET {offset}"
        )))
        .fetch_all(&one)
        .await
        .unwrap();
        assert_eq!(got, want, "projection LIMIT {limit} OFFSET {offset}");
    }
    // DISTINCT (email, balance) pairs: duplicates within and across shards.
    for (limit, offset) in [(50, 0), (100, 1_100), (30, 1_900), (10, 50_000)] {
        let got: Vec<(Option<String>, i64)> = User::on_all_shards()
            .select((User::EMAIL, User::BALANCE))
            .distinct()
            .order_by(User::EMAIL, Order::Asc)
            .order_by(User::BALANCE, Order::Desc)
            .limit(limit)
            .offset(offset)
            .all(&cluster)
            .await
            .unwrap();
        let want: Vec<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT email, balance FROM users ORDER BY email, balance DESC \
             LIMIT {limit} OFFSET {offset}"
        )))
        .fetch_all(&one)
        .await
        .unwrap();
        assert_eq!(got, want, "DISTINCT LIMIT {limit} OFFSET {offset}");
    }
}
