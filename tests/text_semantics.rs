//! Conditions and orders that mean the same on every backend, checked on SQLite files and on
//! PostgreSQL shards (ICU en-US databases):
//!
//! * `like` is case-sensitive (SQLite's own `LIKE` is not), `ilike` folds the ASCII letters
//!   only, `\` escapes `%`, `_` and itself, and `contains` / `starts_with` / `ends_with` match
//!   text literally — against a reference matcher, over mixed case, accents, `%`, `_`, `\`,
//!   GLOB metacharacters;
//! * floats across shards order as one database orders them: `-0.0` ties with `0.0` (broken by
//!   the primary key), NaN after every number (PostgreSQL; SQLite stores NaN as NULL).

#![allow(missing_docs)]

#[path = "common/pg.rs"]
mod pg;

use grant::prelude::*;
use grant::{Backend, FromShardRow, like};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "docs")]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Doc {
    #[primary_key]
    pub id: i64,
    pub body: String,
}

const BODIES: &[&str] = &[
    "crash",
    "Crash",
    "CRASH report",
    "a crash",
    "no crash here",
    "cräsh",
    "CRÄSH",
    "100%",
    "100% sure",
    "1000",
    "50_50",
    "5050",
    "back\\slash",
    "back/slash",
    "a\\%b",
    "a%b",
    "[x]",
    "x",
    "*star*",
    "?q",
    "É",
    "é",
    "e",
    "E",
    "Straße",
    "STRASSE",
    "ǅ",
    "ǆ",
    "日本",
    "",
    "%",
    "_",
    "\\",
];

const PATTERNS: &[&str] = &[
    "%crash%",
    "crash",
    "C%",
    "c%",
    "%ä%",
    "%Ä%",
    "100\\%%",
    "100%",
    "50\\_50",
    "50_50",
    "%\\\\%",
    "back\\\\slash",
    "a\\\\\\%b",
    "[x]",
    "*%",
    "?_",
    "é",
    "É",
    "e",
    "_",
    "%",
    "",
    "%SS%",
    "%ss%",
    "ǅ",
    "\\%",
    "\\_",
    "\\\\",
    "%\\",
];

fn docs() -> Vec<Doc> {
    BODIES
        .iter()
        .enumerate()
        .map(|(i, b)| Doc {
            id: i as i64 * 37 % 101,
            body: (*b).to_string(),
        })
        .collect()
}

async fn ids<DB: Backend>(cluster: &Cluster<DB>, cond: Cond<Doc>) -> Vec<i64>
where
    Doc: FromShardRow<DB>,
{
    let mut ids: Vec<i64> = Doc::query()
        .filter(cond)
        .all(cluster)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    ids.sort();
    ids
}

fn want(data: &[Doc], keep: impl Fn(&str) -> bool) -> Vec<i64> {
    let mut ids: Vec<i64> = data
        .iter()
        .filter(|d| keep(&d.body))
        .map(|d| d.id)
        .collect();
    ids.sort();
    ids
}

async fn like_suite<DB: Backend>(cluster: &Cluster<DB>)
where
    Doc: FromShardRow<DB>,
{
    let backend = <DB as Backend>::NAME;
    let data = docs();
    Doc::create_table(cluster).await.unwrap();
    Doc::insert_many(cluster, &data).await.unwrap();
    for pattern in PATTERNS {
        for ilike in [false, true] {
            let cond = || {
                if ilike {
                    Doc::BODY.ilike(*pattern)
                } else {
                    Doc::BODY.like(*pattern)
                }
            };
            let what = if ilike { "ilike" } else { "like" };
            let expected = want(&data, |b| like::matches(pattern, b, ilike));
            assert_eq!(
                ids(cluster, cond()).await,
                expected,
                "{backend}: {what} {pattern:?}"
            );
            let rest = want(&data, |b| !like::matches(pattern, b, ilike));
            assert_eq!(
                ids(cluster, cond().not()).await,
                rest,
                "{backend}: NOT {what} {pattern:?}"
            );
        }
    }
    // The numbers: `%crash%` is case-sensitive on every backend.
    let crash = Doc::query()
        .filter(Doc::BODY.like("%crash%"))
        .count(cluster)
        .await
        .unwrap();
    assert_eq!(crash, 3, "{backend}: like %crash%");
    let any_case = Doc::query()
        .filter(Doc::BODY.ilike("%crash%"))
        .count(cluster)
        .await
        .unwrap();
    assert_eq!(any_case, 5, "{backend}: ilike %crash%");
    // Literal text, wildcards and all.
    for text in [
        "%", "_", "\\", "crash", "100%", "a\\%b", "*", "?", "[", "é", "",
    ] {
        assert_eq!(
            ids(cluster, Doc::BODY.contains(text)).await,
            want(&data, |b| b.contains(text)),
            "{backend}: contains {text:?}"
        );
        assert_eq!(
            ids(cluster, Doc::BODY.starts_with(text)).await,
            want(&data, |b| b.starts_with(text)),
            "{backend}: starts_with {text:?}"
        );
        assert_eq!(
            ids(cluster, Doc::BODY.ends_with(text)).await,
            want(&data, |b| b.ends_with(text)),
            "{backend}: ends_with {text:?}"
        );
    }
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "readings")]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Reading {
    #[primary_key]
    pub id: i64,
    pub v: Option<f64>,
}

const VALUES: &[Option<f64>] = &[
    Some(-0.0),
    Some(0.0),
    Some(1.5),
    Some(-1.5),
    Some(f64::NAN),
    None,
    Some(f64::INFINITY),
    Some(f64::NEG_INFINITY),
    Some(0.0),
    Some(-0.0),
];

fn readings() -> Vec<Reading> {
    (0..60)
        .map(|i| Reading {
            id: (i * 23) % 61,
            v: VALUES[(i as usize * 7) % VALUES.len()],
        })
        .collect()
}

/// `reference(sql)`: the ids one database holding every row returns for `sql`.
async fn float_suite<DB: Backend, R>(cluster: &Cluster<DB>, data: &[Reading], reference: R)
where
    Reading: FromShardRow<DB>,
    R: AsyncFn(&str) -> Vec<i64>,
{
    let backend = <DB as Backend>::NAME;
    Reading::create_table(cluster).await.unwrap();
    Reading::insert_many(cluster, data).await.unwrap();
    let ids = |rows: Vec<Reading>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    for (dir, sql_dir) in [(Order::Asc, "ASC"), (Order::Desc, "DESC")] {
        let q = || Reading::query().order_by(Reading::V, dir);
        let want = reference(&format!(
            "SELECT id FROM readings ORDER BY v {sql_dir}, id ASC"
        ))
        .await;
        assert_eq!(
            ids(q().all(cluster).await.unwrap()),
            want,
            "{backend}: ORDER BY v {sql_dir}"
        );
        assert_eq!(
            ids(q().limit(9).offset(7).all(cluster).await.unwrap()),
            want[7..16],
            "{backend}: ORDER BY v {sql_dir} page"
        );
        // Keyset pages step over the -0.0 / 0.0 ties exactly.
        let mut pages = Vec::new();
        let mut last: Option<Reading> = None;
        loop {
            let mut page = q().limit(4);
            if let Some(l) = &last {
                page = page.after(l);
            }
            let got = page.all(cluster).await.unwrap();
            if got.is_empty() {
                break;
            }
            last = got.last().cloned();
            pages.extend(ids(got));
            assert!(pages.len() <= want.len(), "{backend}: keyset pages overrun");
        }
        assert_eq!(pages, want, "{backend}: keyset pages by v {sql_dir}");
    }
    // Groups: -0.0 and 0.0 are one group, NaNs another (PostgreSQL).
    let groups: Vec<i64> = Reading::query()
        .select((Reading::V, count()))
        .group_by(Reading::V)
        .order_by(Reading::V, Order::Asc)
        .all(cluster)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, n): (Option<f64>, i64)| n)
        .collect();
    let want = reference("SELECT COUNT(*) FROM readings GROUP BY v ORDER BY v ASC").await;
    assert_eq!(groups, want, "{backend}: GROUP BY v");
}

/// `INSERT` of a reading for the reference database, `float` spelling a non-NaN float.
fn reading_sql(r: &Reading, nan: &str, float: fn(f64) -> String) -> String {
    let v = match r.v {
        None => "NULL".to_string(),
        Some(v) if v.is_nan() => nan.to_string(),
        Some(v) => float(v),
    };
    format!("INSERT INTO readings (id, v) VALUES ({}, {v})", r.id)
}

fn sqlite_float(v: f64) -> String {
    match v {
        f64::INFINITY => "9e999".into(),
        f64::NEG_INFINITY => "-9e999".into(),
        v => format!("{v:?}"),
    }
}

fn pg_float(v: f64) -> String {
    let text = match v {
        f64::INFINITY => "Infinity".into(),
        f64::NEG_INFINITY => "-Infinity".into(),
        v => format!("{v:?}"),
    };
    format!("CAST('{text}' AS DOUBLE PRECISION)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_like_ilike_and_float_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = Cluster::<Sqlite>::builder();
    for i in 0..4 {
        builder = builder.shard(
            format!("shard_{i}"),
            dir.path().join(format!("s{i}.db")).display().to_string(),
        );
    }
    let cluster = builder.connect().await.unwrap();
    like_suite(&cluster).await;

    let single = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE readings (id BIGINT PRIMARY KEY, v DOUBLE)")
        .execute(&single)
        .await
        .unwrap();
    let data = readings();
    for r in &data {
        // SQLite has no NaN: binding one stores NULL, as on the shards.
        sqlx::query(sqlx::AssertSqlSafe(reading_sql(r, "NULL", sqlite_float)))
            .execute(&single)
            .await
            .unwrap();
    }
    let nan = data.iter().find(|r| r.v.is_some_and(f64::is_nan)).unwrap();
    float_suite(&cluster, &data, async |sql: &str| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
    .await;
    let stored = Reading::find(&cluster, nan.id).await.unwrap().unwrap();
    assert_eq!(stored.v, None, "SQLite stores NaN as NULL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_like_ilike_and_float_order() {
    const TEST: &str = "text_semantics";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 4).await;
    like_suite(&cluster).await;

    let single = pg::pool(&env.database(TEST).await).await;
    sqlx::query("CREATE TABLE readings (id BIGINT PRIMARY KEY, v DOUBLE PRECISION)")
        .execute(&single)
        .await
        .unwrap();
    let data = readings();
    for r in &data {
        let nan = "CAST('NaN' AS DOUBLE PRECISION)";
        sqlx::query(sqlx::AssertSqlSafe(reading_sql(r, nan, pg_float)))
            .execute(&single)
            .await
            .unwrap();
    }
    float_suite(&cluster, &data, async |sql: &str| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
    .await;
    // NaN is the greatest value, as in one PostgreSQL database.
    let max = Reading::query().max(Reading::V, &cluster).await.unwrap();
    assert!(max.is_some_and(f64::is_nan), "{max:?}");
    let min = Reading::query().min(Reading::V, &cluster).await.unwrap();
    assert_eq!(min, Some(f64::NEG_INFINITY));
}
