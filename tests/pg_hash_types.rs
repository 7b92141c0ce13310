//! `pg_hash` over uuid, date and timestamp keys against a real PostgreSQL: tables
//! `PARTITION BY HASH` (modulus 8 and 5) get at least 10,000 random keys of each type, written
//! by sqlx as an application would; every row's partition (`tableoid`) must be the shard Grant
//! places the key on, through the derive's `shard_for` and the router's `shard_for_value`.
//! Timestamps carry nanoseconds and lie before and after PostgreSQL's epoch (2000-01-01), so
//! the truncation to microseconds is checked on both sides.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/rng.rs"]
mod rng;

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use grant::prelude::*;
use rng::Rng;
use sea_query::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

const KEYS: usize = 10_000;

macro_rules! models {
    ($($name:ident: $ty:ty, $count:literal;)*) => {$(
        #[derive(Sharded, Debug, Clone, PartialEq)]
        #[shard(strategy = "pg_hash", on = "k", count = $count)]
        struct $name {
            #[primary_key]
            k: $ty,
        }
    )*};
}

models! {
    Uuid8: Uuid, 8;
    Uuid5: Uuid, 5;
    Date8: NaiveDate, 8;
    Date5: NaiveDate, 5;
    TimeDate8: time::Date, 8;
    Stamp8: NaiveDateTime, 8;
    Stamp5: NaiveDateTime, 5;
    Instant8: DateTime<Utc>, 8;
    Instant5: DateTime<Utc>, 5;
    Offset8: OffsetDateTime, 8;
}

/// Nanoseconds from 1900 to 2100, around PostgreSQL's epoch.
fn instant(rng: &mut Rng) -> DateTime<Utc> {
    let span: i64 = 200 * 365 * 86_400;
    let secs = -2_208_988_800 + rng.below(span as u64) as i64; // from 1900-01-01
    let nanos = match rng.below(3) {
        0 => 0,
        1 => rng.below(1_000_000) as u32 * 1000, // microseconds
        _ => rng.below(1_000_000_000) as u32,    // nanoseconds: truncated by sqlx
    };
    DateTime::from_timestamp(secs, nanos).unwrap()
}

/// Creates `table (k <ty>)` `PARTITION BY HASH (k)` with `modulus` partitions `{table}_p{r}`.
async fn partitioned(pool: &PgPool, table: &str, ty: &str, modulus: u32) {
    let sql =
        format!("CREATE TABLE {table} (i int NOT NULL, k {ty} NOT NULL) PARTITION BY HASH (k)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
    for r in 0..modulus {
        let sql = format!(
            "CREATE TABLE {table}_p{r} PARTITION OF {table} \
             FOR VALUES WITH (MODULUS {modulus}, REMAINDER {r})"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Inserts `keys` (row `i` holds `keys[i]`) one statement per key, as an application writes
/// them, and returns each row's partition remainder by `i`.
async fn placed<K>(pool: &PgPool, table: &str, ty: &str, modulus: u32, keys: &[K]) -> Vec<u32>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Clone + Send + Sync,
{
    partitioned(pool, table, ty, modulus).await;
    let mut tx = pool.begin().await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} VALUES ($1, $2)"
        )))
        .bind(i as i32)
        .bind(k.clone())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let rows: Vec<(i32, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT i, tableoid::regclass::text FROM {table} ORDER BY i"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), keys.len());
    let remainders: Vec<u32> = rows
        .iter()
        .map(|(_, p)| p.rsplit_once("_p").unwrap().1.parse().unwrap())
        .collect();
    let distinct: HashSet<u32> = remainders.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        modulus as usize,
        "{table}: every partition gets rows"
    );
    remainders
}

fn agree<K: std::fmt::Debug>(table: &str, keys: &[K], pg: &[u32], grant: impl Fn(&K) -> u32) {
    let wrong: Vec<String> = keys
        .iter()
        .zip(pg)
        .filter(|(k, r)| grant(k) != **r)
        .take(10)
        .map(|(k, r)| format!("{k:?}: PostgreSQL remainder {r}, Grant {}", grant(k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{table}: Grant disagrees with PostgreSQL:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_hash_places_uuid_date_and_timestamp_keys_where_postgres_partitions_them() {
    const TEST: &str = "pg_hash_types";
    let Some(env) = pg::env().await else { return };
    let url = env.database(TEST).await;
    let pool = pg::pool(&url).await;
    let mut rng = Rng(0x7e57_da7e);

    // uuid: random, nil and max.
    let mut uuids: Vec<Uuid> = vec![Uuid::nil(), Uuid::max()];
    uuids.extend((0..KEYS).map(|_| Uuid::from_u64_pair(rng.next(), rng.next())));
    let pg8 = placed(&pool, "t_uuid_8", "uuid", 8, &uuids).await;
    agree("uuid/8", &uuids, &pg8, |k| {
        let dynamic = <Uuid8 as Model>::shard_for_value(&Value::Uuid(Some(*k))).unwrap();
        assert_eq!(Uuid8::shard_for(k), dynamic);
        dynamic.index()
    });
    let pg5 = placed(&pool, "t_uuid_5", "uuid", 5, &uuids).await;
    agree("uuid/5", &uuids, &pg5, |k| Uuid5::shard_for(k).index());

    // date: 1900 .. 2100, the epoch and the day before it.
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    let mut dates: Vec<NaiveDate> = vec![epoch, epoch.pred_opt().unwrap()];
    dates.extend(
        (0..KEYS).map(|_| epoch + chrono::Duration::days((rng.next() % 73_000) as i64 - 36_500)),
    );
    let pg8 = placed(&pool, "t_date_8", "date", 8, &dates).await;
    agree("date/8", &dates, &pg8, |k| {
        let dynamic = <Date8 as Model>::shard_for_value(&Value::ChronoDate(Some(*k))).unwrap();
        assert_eq!(Date8::shard_for(k), dynamic);
        dynamic.index()
    });
    let pg5 = placed(&pool, "t_date_5", "date", 5, &dates).await;
    agree("date/5", &dates, &pg5, |k| Date5::shard_for(k).index());
    let time_dates: Vec<time::Date> = dates
        .iter()
        .map(|d| {
            time::Date::from_julian_day(
                (*d - NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap()).num_days() as i32,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(time_dates[0], time::macros::date!(2000 - 01 - 01));
    agree("time::Date/8", &time_dates, &pg8, |k| {
        TimeDate8::shard_for(k).index()
    });

    // timestamp and timestamptz, with nanoseconds, before and after the epoch.
    let mut instants: Vec<DateTime<Utc>> = vec![
        epoch.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        DateTime::from_timestamp(946_684_799, 999_999_999).unwrap(), // 1 ns before the epoch
    ];
    instants.extend((0..KEYS).map(|_| instant(&mut rng)));
    let naive: Vec<NaiveDateTime> = instants.iter().map(|t| t.naive_utc()).collect();
    let pg8 = placed(&pool, "t_ts_8", "timestamp", 8, &naive).await;
    agree("timestamp/8", &naive, &pg8, |k| {
        let dynamic = <Stamp8 as Model>::shard_for_value(&Value::ChronoDateTime(Some(*k))).unwrap();
        assert_eq!(Stamp8::shard_for(k), dynamic);
        dynamic.index()
    });
    let pg5 = placed(&pool, "t_ts_5", "timestamp", 5, &naive).await;
    agree("timestamp/5", &naive, &pg5, |k| {
        Stamp5::shard_for(k).index()
    });

    let pg8 = placed(&pool, "t_tstz_8", "timestamptz", 8, &instants).await;
    agree("timestamptz/8", &instants, &pg8, |k| {
        let dynamic =
            <Instant8 as Model>::shard_for_value(&Value::ChronoDateTimeUtc(Some(*k))).unwrap();
        assert_eq!(Instant8::shard_for(k), dynamic);
        dynamic.index()
    });
    let pg5 = placed(&pool, "t_tstz_5", "timestamptz", 5, &instants).await;
    agree("timestamptz/5", &instants, &pg5, |k| {
        Instant5::shard_for(k).index()
    });
    // The same instants as `time::OffsetDateTime` in another offset: the same partitions.
    let offsets: Vec<OffsetDateTime> = instants
        .iter()
        .map(|t| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.timestamp_nanos_opt().unwrap()))
                .unwrap()
                .to_offset(time::macros::offset!(-05:00))
        })
        .collect();
    agree("OffsetDateTime/8", &offsets, &pg8, |k| {
        let dynamic =
            <Offset8 as Model>::shard_for_value(&Value::TimeDateTimeWithTimeZone(Some(*k)))
                .unwrap();
        assert_eq!(Offset8::shard_for(k), dynamic);
        dynamic.index()
    });
    pool.close().await;
}
