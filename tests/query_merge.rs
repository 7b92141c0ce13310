//! Cross-shard answers equal one database's: the same rows in 8 shards and in one plain SQLite
//! database, the same queries on both.

mod common;

use common::User;
use grant::prelude::*;

fn rows() -> Vec<User> {
    // Deterministic pseudo-random rows with NULLs, duplicates, negatives, unicode and quotes.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let names = ["ada", "Bob", "émile", "zoë", "o'neil", "\"q\"", "ada", ""];
    (1..=600)
        .map(|id| User {
            id: if id % 7 == 0 { -id } else { id },
            name: names[(next() % 8) as usize].to_string(),
            region: ["eu", "us", "apac"][(next() % 3) as usize].to_string(),
            active: next() % 2 == 0,
            balance: (next() % 200) as i64 - 100,
            email: (next() % 4 != 0).then(|| format!("{}@x", next() % 50)),
        })
        .collect()
}

async fn clusters() -> (Cluster<Sqlite>, Cluster<Sqlite>) {
    let sharded = Cluster::<Sqlite>::memory(8).await.unwrap();
    let single = Cluster::<Sqlite>::memory(1).await.unwrap();
    User::create_table(&sharded).await.unwrap();
    let data = rows();
    User::insert_many(&sharded, &data).await.unwrap();
    // The reference: one database holding every row, queried with plain sqlx.
    let pool = single.pool("shard_0").unwrap();
    sqlx::query(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL, \
         active BOOLEAN NOT NULL, balance INTEGER NOT NULL, email TEXT)",
    )
    .execute(pool)
    .await
    .unwrap();
    for u in &data {
        sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)")
            .bind(u.id)
            .bind(&u.name)
            .bind(&u.region)
            .bind(u.active)
            .bind(u.balance)
            .bind(&u.email)
            .execute(pool)
            .await
            .unwrap();
    }
    (sharded, single)
}

async fn reference_ids(single: &Cluster<Sqlite>, sql: &str) -> Vec<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(single.pool("shard_0").unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn ordered_pages_match_one_database() {
    let (sharded, single) = clusters().await;
    let cases: Vec<(&str, Query<User>)> = vec![
        (
            "ORDER BY balance DESC, id ASC",
            User::query().order_by(User::BALANCE, Order::Desc),
        ),
        (
            "ORDER BY name ASC, id ASC",
            User::query().order_by(User::NAME, Order::Asc),
        ),
        (
            "ORDER BY email ASC, id ASC",
            User::query().order_by(User::EMAIL, Order::Asc),
        ),
        (
            "ORDER BY email DESC, balance ASC, id ASC",
            User::query()
                .order_by(User::EMAIL, Order::Desc)
                .order_by(User::BALANCE, Order::Asc),
        ),
        (
            "ORDER BY id DESC",
            User::query().order_by(User::ID, Order::Desc),
        ),
    ];
    for (order_sql, query) in cases {
        for (limit, offset) in [
            (None, 0),
            (Some(10), 0),
            (Some(25), 40),
            (Some(5), 598),
            (Some(5), 700),
            (None, 13),
        ] {
            for (where_sql, cond) in [
                ("", None),
                (" WHERE active = 1", Some(User::ACTIVE.eq(true))),
                (
                    " WHERE balance BETWEEN -10 AND 50 OR region = 'eu'",
                    Some(User::BALANCE.between(-10, 50).or(User::REGION.eq("eu"))),
                ),
            ] {
                let mut q = query.clone();
                if let Some(c) = cond {
                    q = q.filter(c);
                }
                let mut sql = format!("SELECT id FROM users{where_sql} {order_sql}");
                if let Some(l) = limit {
                    q = q.limit(l);
                    sql += &format!(" LIMIT {l}");
                } else if offset > 0 {
                    sql += " LIMIT -1";
                }
                if offset > 0 {
                    q = q.offset(offset);
                    sql += &format!(" OFFSET {offset}");
                }
                let got: Vec<i64> = q
                    .clone()
                    .all(&sharded)
                    .await
                    .unwrap()
                    .iter()
                    .map(|u| u.id)
                    .collect();
                let want = reference_ids(&single, &sql).await;
                assert_eq!(got, want, "{sql}");
                assert_eq!(
                    q.count(&sharded).await.unwrap(),
                    want.len() as u64,
                    "count of {sql}"
                );
            }
        }
    }
}

type ReferenceAggregates = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<String>,
);

#[tokio::test]
async fn aggregates_match_one_database() {
    let (sharded, single) = clusters().await;
    let pool = single.pool("shard_0").unwrap();
    for (where_sql, cond) in [
        ("", None),
        (" WHERE region = 'us'", Some(User::REGION.eq("us"))),
        (" WHERE balance > 1000", Some(User::BALANCE.gt(1000))),
        (" WHERE name LIKE 'a%'", Some(User::NAME.like("a%"))),
        (" WHERE email IS NULL", Some(User::EMAIL.is_null())),
    ] {
        let q = match cond {
            Some(c) => User::query().filter(c),
            None => User::query(),
        };
        let (count, sum, min, max, avg, min_email): ReferenceAggregates =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*), SUM(balance), MIN(balance), MAX(balance), AVG(balance), MIN(email) FROM users{where_sql}"
            )))
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(
            q.clone().count(&sharded).await.unwrap(),
            count as u64,
            "{where_sql}"
        );
        assert_eq!(
            q.clone().sum(User::BALANCE, &sharded).await.unwrap(),
            sum,
            "{where_sql}"
        );
        assert_eq!(
            q.clone().min(User::BALANCE, &sharded).await.unwrap(),
            min,
            "{where_sql}"
        );
        assert_eq!(
            q.clone().max(User::BALANCE, &sharded).await.unwrap(),
            max,
            "{where_sql}"
        );
        assert_eq!(
            q.clone().min(User::EMAIL, &sharded).await.unwrap(),
            min_email,
            "{where_sql}"
        );
        let got_avg = q.clone().avg(User::BALANCE, &sharded).await.unwrap();
        match (got_avg, avg) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{where_sql}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{where_sql}"),
        }
    }
    // Aggregates over a page are refused, not answered wrongly.
    let err = User::query()
        .limit(3)
        .sum(User::BALANCE, &sharded)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[derive(sqlx::FromRow, Debug, PartialEq)]
struct NameBalance {
    name: String,
    balance: i64,
}

#[tokio::test]
async fn projections_into_from_row_structs_and_tuples() {
    let (sharded, _single) = clusters().await;
    let full = User::query()
        .filter(User::ACTIVE.eq(true))
        .order_by(User::BALANCE, Order::Desc)
        .limit(20)
        .offset(5);
    let want: Vec<NameBalance> = full
        .clone()
        .all(&sharded)
        .await
        .unwrap()
        .into_iter()
        .map(|u| NameBalance {
            name: u.name,
            balance: u.balance,
        })
        .collect();
    assert_eq!(want.len(), 20);
    let got: Vec<NameBalance> = full
        .clone()
        .select_as((User::NAME, User::BALANCE), &sharded)
        .await
        .unwrap();
    assert_eq!(got, want);
    let tuples: Vec<(String, i64)> = full
        .clone()
        .select((User::NAME, User::BALANCE))
        .all(&sharded)
        .await
        .unwrap();
    assert_eq!(
        tuples,
        want.iter()
            .map(|w| (w.name.clone(), w.balance))
            .collect::<Vec<_>>()
    );
    let err = full
        .select_as::<NameBalance, _, _>((User::NAME, User::BALANCE.sum()), &sharded)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}
