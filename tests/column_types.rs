//! Real column types on real shards, each scenario on SQLite files and on PostgreSQL (ICU
//! `en-US` databases): uuids (also as the shard key), timestamps with and without time zone,
//! dates of `chrono` and `time`, exact decimals, JSON, `#[derive(SqlEnum)]` enums, all nullable
//! too. Answers over 4 shards are compared with one database holding every row (a 1-shard
//! cluster, and on PostgreSQL plain SQL on it) and with the rows as written.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/rng.rs"]
mod rng;

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use grant::prelude::*;
use grant::{Backend, FromShardRow, Json};
use rng::Rng;
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(SqlEnum, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Status {
    Open,
    #[grant(rename = "in_progress")]
    InProgress,
    Closed,
}

#[derive(Sharded, Clone, Debug, PartialEq)]
#[grant(table = "issues")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
struct Issue {
    #[primary_key]
    tenant_id: Uuid,
    #[primary_key]
    id: i64,
    status: Status,
    priority: Option<Status>,
    opened_at: DateTime<Utc>,
    closed_at: Option<OffsetDateTime>,
    due: Option<NaiveDate>,
    due_t: Option<time::Date>,
    logged: NaiveDateTime,
    estimate: Option<Decimal>,
    settings: serde_json::Value,
    labels: Json<Vec<String>>,
    reporter: Option<Uuid>,
}

/// A random uuid.
fn uuid(rng: &mut Rng) -> Uuid {
    Uuid::from_u64_pair(rng.next(), rng.next())
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// 400 issues of 8 tenants, with ties, NULLs, offsets other than UTC, decimals of every scale.
fn issues() -> Vec<Issue> {
    let mut rng = Rng(13);
    let tenants: Vec<Uuid> = (0..8).map(|_| uuid(&mut rng)).collect();
    let people: Vec<Uuid> = (0..5).map(|_| uuid(&mut rng)).collect();
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let statuses = [Status::Open, Status::InProgress, Status::Closed];
    let decimals = [
        "1.1",
        "1.10",
        "-3.25",
        "0",
        "12345678901234567.891",
        "-0.0001",
        "250",
        "99.999",
    ];
    let mut prev_opened = base;
    (0..400)
        .map(|i| {
            // Microseconds: what PostgreSQL keeps.
            let opened_at = if rng.below(10) == 0 {
                prev_opened // a tie
            } else {
                base + Duration::microseconds((rng.below(90 * 86_400_000_000)) as i64)
            };
            prev_opened = opened_at;
            let closed_at = (rng.below(3) != 0).then(|| {
                let offset =
                    time::UtcOffset::from_hms([0, 2, -5][rng.below(3) as usize], 0, 0).unwrap();
                OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(opened_at.timestamp_micros() + rng.below(1 << 36) as i64) * 1000,
                )
                .unwrap()
                .to_offset(offset)
            });
            let due = (rng.below(5) != 0).then(|| {
                NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + Duration::days(rng.below(200) as i64)
            });
            let due_t = due.map(|d| {
                time::Date::from_calendar_date(
                    chrono::Datelike::year(&d),
                    time::Month::try_from(chrono::Datelike::month(&d) as u8).unwrap(),
                    chrono::Datelike::day(&d) as u8,
                )
                .unwrap()
            });
            let estimate = match rng.below(10) {
                0 | 1 => None,
                2..=5 => Some(dec(decimals[rng.below(decimals.len() as u64) as usize])),
                _ => Some(Decimal::new(
                    rng.below(2_000_000) as i64 - 1_000_000,
                    rng.below(5) as u32,
                )),
            };
            let theme = ["dark", "light"][i as usize % 2];
            Issue {
                tenant_id: tenants[rng.below(8) as usize],
                id: i,
                status: statuses[rng.below(3) as usize],
                priority: (rng.below(4) != 0).then(|| statuses[rng.below(3) as usize]),
                opened_at,
                closed_at,
                due,
                due_t,
                logged: opened_at.naive_utc() + Duration::hours(rng.below(48) as i64),
                estimate,
                settings: serde_json::json!({ "theme": theme, "n": i }),
                labels: Json(vec![format!("l{}", i % 3), "x".to_owned()]),
                reporter: (rng.below(4) != 0).then(|| people[rng.below(5) as usize]),
            }
        })
        .collect()
}

/// One backend's shards for a scenario.
trait Side: Sync {
    type DB: Backend;
    /// A cluster of `n` shards named `name_0 ..`, new and empty.
    async fn cluster(&self, name: &str, n: usize) -> Cluster<Self::DB>;
}

struct Files(tempfile::TempDir);

impl Side for Files {
    type DB = Sqlite;
    async fn cluster(&self, name: &str, n: usize) -> Cluster<Sqlite> {
        let dir = self.0.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        common::sqlite_cluster(&dir, n).await
    }
}

struct Databases {
    env: &'static pg::PgEnv,
    test: &'static str,
}

impl Side for Databases {
    type DB = Postgres;
    async fn cluster(&self, name: &str, n: usize) -> Cluster<Postgres> {
        self.env.cluster(&format!("{}_{name}", self.test), n).await
    }
}

macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(&super::Files(super::common::tempdir())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(env) = super::pg::env().await else {
                    return;
                };
                let test = concat!("types_", stringify!($scenario));
                super::$scenario(&super::Databases { env, test }).await;
            }
        }
    };
}

/// The 4-shard cluster and the one database holding every row, both loaded with `rows`.
async fn loaded<S: Side>(side: &S, rows: &[Issue]) -> (Cluster<S::DB>, Cluster<S::DB>)
where
    Issue: FromShardRow<S::DB>,
{
    let sharded = side.cluster("sharded", 4).await;
    let single = side.cluster("single", 1).await;
    // One database holding every row: the model placed on the single shard.
    single
        .set_placement::<Issue>(grant::Placement::resolver(
            grant::resolve::HashResolver::new(1),
        ))
        .unwrap();
    for cluster in [&sharded, &single] {
        Issue::create_table(cluster).await.unwrap();
        Issue::create_table(cluster).await.unwrap(); // idempotent
        assert_eq!(
            Issue::insert_many(cluster, rows).await.unwrap(),
            rows.len() as u64
        );
    }
    (sharded, single)
}

/// What a filter keeps, judged on the rows as written.
type Want = Box<dyn Fn(&Issue) -> bool>;

fn keys(rows: &[Issue]) -> Vec<(Uuid, i64)> {
    rows.iter().map(|r| (r.tenant_id, r.id)).collect()
}

on_both!(every_type_round_trips_and_filters_as_one_database_does);
async fn every_type_round_trips_and_filters_as_one_database_does<S: Side>(side: &S)
where
    Issue: FromShardRow<S::DB>,
{
    let rows = issues();
    let (sharded, single) = loaded(side, &rows).await;

    // Every row reads back as written, from the shard its uuid key hashes to.
    for row in &rows {
        let got = Issue::find(&sharded, (row.tenant_id, row.id))
            .await
            .unwrap();
        assert_eq!(
            got.as_ref(),
            Some(row),
            "find {:?}",
            (row.tenant_id, row.id)
        );
        let on = Issue::on_shard(Issue::shard_for(&row.tenant_id))
            .filter(Issue::ID.eq(row.id))
            .count(&sharded)
            .await
            .unwrap();
        assert_eq!(on, 1);
    }

    let cut = rows[17].opened_at;
    let someone = rows.iter().find_map(|r| r.reporter).unwrap();
    let filters: Vec<(&str, Cond<Issue>, Want)> = vec![
        (
            "estimate > 1.1",
            Issue::ESTIMATE.gt(dec("1.10")),
            Box::new(|r: &Issue| r.estimate.is_some_and(|e| e > dec("1.1"))),
        ),
        (
            "estimate = 1.1",
            Issue::ESTIMATE.eq(dec("1.1")),
            Box::new(|r: &Issue| r.estimate == Some(dec("1.1"))),
        ),
        (
            "estimate between",
            Issue::ESTIMATE.between(dec("-3.25"), dec("99.999")),
            Box::new(|r: &Issue| {
                r.estimate
                    .is_some_and(|e| e >= dec("-3.25") && e <= dec("99.999"))
            }),
        ),
        (
            "opened_at >= cut",
            Issue::OPENED_AT.gte(cut),
            Box::new(move |r: &Issue| r.opened_at >= cut),
        ),
        (
            "closed_at < cut (offsets)",
            Issue::CLOSED_AT.lt(OffsetDateTime::from_unix_timestamp(cut.timestamp()).unwrap()),
            Box::new(move |r: &Issue| {
                r.closed_at.is_some_and(|c| {
                    c.unix_timestamp_nanos() < i128::from(cut.timestamp()) * 1_000_000_000
                })
            }),
        ),
        (
            "closed_at is null",
            Issue::CLOSED_AT.is_null(),
            Box::new(|r: &Issue| r.closed_at.is_none()),
        ),
        (
            "status = in_progress",
            Issue::STATUS.eq(Status::InProgress),
            Box::new(|r: &Issue| r.status == Status::InProgress),
        ),
        (
            "priority in (open, closed)",
            Issue::PRIORITY.is_in([Status::Open, Status::Closed]),
            Box::new(|r: &Issue| matches!(r.priority, Some(Status::Open | Status::Closed))),
        ),
        (
            "reporter = someone",
            Issue::REPORTER.eq(someone),
            Box::new(move |r: &Issue| r.reporter == Some(someone)),
        ),
        (
            "due < 2025-03-01",
            Issue::DUE.lt(NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()),
            Box::new(|r: &Issue| {
                r.due
                    .is_some_and(|d| d < NaiveDate::from_ymd_opt(2025, 3, 1).unwrap())
            }),
        ),
        (
            "due_t >= 2025-03-01",
            Issue::DUE_T.gte(time::macros::date!(2025 - 03 - 01)),
            Box::new(|r: &Issue| {
                r.due_t
                    .is_some_and(|d| d >= time::macros::date!(2025 - 03 - 01))
            }),
        ),
        (
            "logged > cut",
            Issue::LOGGED.gt(cut.naive_utc()),
            Box::new(move |r: &Issue| r.logged > cut.naive_utc()),
        ),
    ];
    for (what, cond, want) in filters {
        let mut expected: Vec<(Uuid, i64)> =
            keys(&rows.iter().filter(|r| want(r)).cloned().collect::<Vec<_>>());
        expected.sort_by(|a, b| (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1)));
        let query = || {
            Issue::on_all_shards()
                .filter(cond.clone())
                .order_by(Issue::TENANT_ID, Order::Asc)
                .order_by(Issue::ID, Order::Asc)
        };
        let got = keys(&query().all(&sharded).await.unwrap());
        let one = keys(&query().all(&single).await.unwrap());
        assert_eq!(one, expected, "{what}: one database");
        assert_eq!(got, expected, "{what}: 4 shards");
        assert!(
            !expected.is_empty() || what.contains("null"),
            "{what}: the filter matches rows"
        );
    }

    // A filter on the uuid shard key routes to the tenant's shard alone.
    let tenant = rows[0].tenant_id;
    let mine = Issue::query()
        .filter(Issue::TENANT_ID.eq(tenant))
        .count(&sharded)
        .await
        .unwrap();
    assert_eq!(
        mine,
        rows.iter().filter(|r| r.tenant_id == tenant).count() as u64
    );
}

on_both!(orders_and_aggregates_match_one_database);
async fn orders_and_aggregates_match_one_database<S: Side>(side: &S)
where
    Issue: FromShardRow<S::DB>,
{
    let rows = issues();
    let (sharded, single) = loaded(side, &rows).await;

    // ORDER BY every orderable type, both directions, both NULL placements, a page deep inside.
    macro_rules! check_order {
        ($col:expr, $key:expr) => {
            for order in [Order::Asc, Order::Desc] {
                for nulls in [Nulls::First, Nulls::Last] {
                    let query = || {
                        Issue::on_all_shards()
                            .order_by_nulls($col, order, nulls)
                            .limit(60)
                            .offset(150)
                    };
                    let got = keys(&query().all(&sharded).await.unwrap());
                    let one = keys(&query().all(&single).await.unwrap());
                    // The rows as written, sorted in Rust: ties by the primary key (uuid bytes).
                    let mut want = rows.clone();
                    want.sort_by(|a, b| {
                        let (ka, kb) = ($key(a), $key(b));
                        let o = match (ka.is_some(), kb.is_some()) {
                            (false, false) => std::cmp::Ordering::Equal,
                            (false, true) => {
                                if nulls == Nulls::First {
                                    std::cmp::Ordering::Less
                                } else {
                                    std::cmp::Ordering::Greater
                                }
                            }
                            (true, false) => {
                                if nulls == Nulls::First {
                                    std::cmp::Ordering::Greater
                                } else {
                                    std::cmp::Ordering::Less
                                }
                            }
                            (true, true) => {
                                let o = ka.cmp(&kb);
                                if order == Order::Desc { o.reverse() } else { o }
                            }
                        };
                        o.then_with(|| {
                            (a.tenant_id.as_bytes(), a.id).cmp(&(b.tenant_id.as_bytes(), b.id))
                        })
                    });
                    let want = keys(&want[150..210]);
                    let what = format!("{} {order:?} nulls {nulls:?}", stringify!($col));
                    assert_eq!(one, want, "{what}: one database");
                    assert_eq!(got, want, "{what}: 4 shards");
                }
            }
        };
    }
    check_order!(Issue::OPENED_AT, |r: &Issue| Some(r.opened_at));
    check_order!(Issue::CLOSED_AT, |r: &Issue| r.closed_at);
    check_order!(Issue::DUE, |r: &Issue| r.due);
    check_order!(Issue::DUE_T, |r: &Issue| r.due_t);
    check_order!(Issue::LOGGED, |r: &Issue| Some(r.logged));
    check_order!(Issue::ESTIMATE, |r: &Issue| r.estimate);
    check_order!(Issue::REPORTER, |r: &Issue| r
        .reporter
        .map(|u| *u.as_bytes()));
    check_order!(Issue::PRIORITY, |r: &Issue| r
        .priority
        .map(|p| p.as_sql_str()));

    // Aggregates: exact decimal sums, PostgreSQL's avg(numeric) scale, MIN/MAX of each type.
    let estimates: Vec<Decimal> = rows.iter().filter_map(|r| r.estimate).collect();
    let total: Decimal = estimates.iter().sum();
    for cluster in [&sharded, &single] {
        let all = || Issue::on_all_shards();
        assert_eq!(
            all().sum(Issue::ESTIMATE, cluster).await.unwrap(),
            Some(total)
        );
        let avg = all().avg(Issue::ESTIMATE, cluster).await.unwrap().unwrap();
        // PostgreSQL's avg(numeric) scale (here 4 digits: 16 significant ones).
        assert_eq!(
            avg,
            (total / Decimal::from(estimates.len())).round_dp(avg.scale())
        );
        assert_eq!(
            all().min(Issue::OPENED_AT, cluster).await.unwrap(),
            rows.iter().map(|r| r.opened_at).min()
        );
        assert_eq!(
            all().max(Issue::CLOSED_AT, cluster).await.unwrap(),
            rows.iter().filter_map(|r| r.closed_at).max()
        );
        assert_eq!(
            all().min(Issue::ESTIMATE, cluster).await.unwrap(),
            estimates.iter().min().copied()
        );
        assert_eq!(
            all().max(Issue::DUE_T, cluster).await.unwrap(),
            rows.iter().filter_map(|r| r.due_t).max()
        );
        let none = all()
            .filter(Issue::ESTIMATE.is_null())
            .sum(Issue::ESTIMATE, cluster)
            .await
            .unwrap();
        assert_eq!(none, None);
    }
    let avg_sharded = Issue::on_all_shards()
        .avg(Issue::ESTIMATE, &sharded)
        .await
        .unwrap();
    let avg_single = Issue::on_all_shards()
        .avg(Issue::ESTIMATE, &single)
        .await
        .unwrap();
    assert_eq!(
        avg_sharded.map(|d| d.to_string()),
        avg_single.map(|d| d.to_string())
    );

    // GROUP BY an enum (and by a nullable one): counts and exact sums per group.
    type Row = (Status, i64, Option<Decimal>);
    let grouped = |cluster| async move {
        Issue::on_all_shards()
            .select((Issue::STATUS, count(), Issue::ESTIMATE.sum()))
            .group_by(Issue::STATUS)
            .order_by(Issue::STATUS, Order::Asc)
            .all(cluster)
            .await
            .unwrap()
    };
    let got: Vec<Row> = grouped(&sharded).await;
    let one: Vec<Row> = grouped(&single).await;
    let mut want: Vec<Row> = [Status::Closed, Status::InProgress, Status::Open] // by stored text
        .into_iter()
        .map(|s| {
            let of: Vec<&Issue> = rows.iter().filter(|r| r.status == s).collect();
            let sum = of.iter().filter_map(|r| r.estimate).reduce(|a, b| a + b);
            (s, of.len() as i64, sum)
        })
        .collect();
    want.sort_by_key(|r| r.0.as_sql_str());
    assert_eq!(one, want, "GROUP BY enum: one database");
    assert_eq!(got, want, "GROUP BY enum: 4 shards");
    let by_priority: Vec<(Option<Status>, i64)> = Issue::on_all_shards()
        .select((Issue::PRIORITY, count()))
        .group_by(Issue::PRIORITY)
        .all(&sharded)
        .await
        .unwrap();
    assert_eq!(by_priority.iter().map(|g| g.1).sum::<i64>(), 400);
    assert_eq!(
        by_priority.len(),
        4,
        "three statuses and NULL: {by_priority:?}"
    );
}

/// On PostgreSQL the columns have PostgreSQL's types, and plain SQL on the one database holding
/// every row gives the same sum and average (to the digit) as Grant over 4 shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_types_and_numeric_aggregates_are_postgres_own() {
    const TEST: &str = "types_pg_native";
    let Some(env) = pg::env().await else { return };
    let rows = issues();
    let side = Databases { env, test: TEST };
    let (sharded, _single) = loaded(&side, &rows).await;
    let plain = pg::pool(&env.url(&pg::database_name(&format!("{TEST}_single"), "shard_0"))).await;
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_name = 'issues' ORDER BY ordinal_position",
    )
    .fetch_all(&plain)
    .await
    .unwrap();
    let types: std::collections::HashMap<_, _> = types.into_iter().collect();
    assert_eq!(types["tenant_id"], "uuid");
    assert_eq!(types["opened_at"], "timestamp with time zone");
    assert_eq!(types["closed_at"], "timestamp with time zone");
    assert_eq!(types["logged"], "timestamp without time zone");
    assert_eq!(types["due"], "date");
    assert_eq!(types["estimate"], "numeric");
    assert_eq!(types["settings"], "jsonb");
    assert_eq!(types["status"], "text");

    let (sum, avg): (String, String) =
        sqlx::query_as("SELECT sum(estimate)::text, avg(estimate)::text FROM issues")
            .fetch_one(&plain)
            .await
            .unwrap();
    let got_sum = Issue::on_all_shards()
        .sum(Issue::ESTIMATE, &sharded)
        .await
        .unwrap()
        .unwrap();
    let got_avg = Issue::on_all_shards()
        .avg(Issue::ESTIMATE, &sharded)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got_sum.to_string(), sum);
    assert_eq!(got_avg.to_string(), avg);
    let theme: String = sqlx::query_scalar("SELECT settings->>'theme' FROM issues WHERE id = 3")
        .fetch_one(&plain)
        .await
        .unwrap();
    assert_eq!(theme, "light");
    plain.close().await;
}

/// On SQLite, what Grant stores is readable by anyone: instants as UTC text that sorts as time,
/// decimals as text without trailing zeros, uuids as 16-byte blobs, enums as their names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_sortable_text() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 1).await;
    cluster
        .set_placement::<Issue>(grant::Placement::resolver(
            grant::resolve::HashResolver::new(1),
        ))
        .unwrap();
    Issue::create_table(&cluster).await.unwrap();
    let mut row = issues().remove(0);
    row.estimate = Some(dec("12.50"));
    row.status = Status::InProgress;
    row.closed_at = Some(time::macros::datetime!(2025-03-01 12:00:00.5 +02:00));
    // SQLite keeps nanoseconds (PostgreSQL keeps microseconds).
    row.opened_at =
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + Duration::nanoseconds(123_456_789);
    row.insert(&cluster).await.unwrap();
    let plain = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("shard_0.db").display()
    ))
    .await
    .unwrap();
    let (estimate, status, closed, tenant, opened): (String, String, String, Vec<u8>, String) =
        sqlx::query_as("SELECT estimate, status, closed_at, tenant_id, opened_at FROM issues")
            .fetch_one(&plain)
            .await
            .unwrap();
    assert_eq!(estimate, "12.5");
    assert_eq!(status, "in_progress");
    assert_eq!(closed, "2025-03-01T10:00:00.500+00:00");
    assert_eq!(tenant, row.tenant_id.as_bytes().to_vec());
    assert_eq!(opened, "2025-03-01T09:00:00.123456789+00:00");
    plain.close().await;
    let back = Issue::find(&cluster, (row.tenant_id, row.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, row);
    assert_eq!(back.closed_at.unwrap().offset(), time::UtcOffset::UTC);
}

/// A reading per sensor and instant, in monthly shards by its day (a `range` over dates).
#[derive(Sharded, Clone, Debug, PartialEq)]
#[shard(strategy = "range", on = "day", ranges(
    before = .."2025-01-01",
    m_2025_01 = "2025-01-01".."2025-02-01",
    m_2025_02 = "2025-02-01"..="2025-02-28",
    m_2025_03 = "2025-03-01"..,
))]
struct Reading {
    #[primary_key]
    day: NaiveDate,
    #[primary_key]
    sensor: i64,
    at: DateTime<Utc>,
    value: f64,
}

/// Events in shards by the hour of their instant.
#[derive(Sharded, Clone, Debug, PartialEq)]
#[shard(strategy = "range", on = "at", ranges(
    night = .."2025-03-01T06:00:00Z",
    day = "2025-03-01T06:00:00Z"..,
))]
struct Event {
    #[primary_key]
    at: OffsetDateTime,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_over_dates_places_rows_in_monthly_shards_and_prunes_by_day() {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
    let name = |day| Reading::shard_for(&day).name().to_owned();
    assert_eq!(name(d(2024, 12, 31)), "before");
    assert_eq!(name(d(2025, 1, 1)), "m_2025_01");
    assert_eq!(name(d(2025, 1, 31)), "m_2025_01");
    assert_eq!(name(d(2025, 2, 28)), "m_2025_02");
    assert_eq!(name(d(2025, 3, 1)), "m_2025_03");
    assert_eq!(name(d(2031, 7, 4)), "m_2025_03");
    let six = time::macros::datetime!(2025-03-01 06:00 UTC);
    assert_eq!(
        Event::shard_for(&(six - time::Duration::microseconds(1))).name(),
        "night"
    );
    assert_eq!(Event::shard_for(&six).name(), "day");
    // The same instant in another offset is the same key.
    assert_eq!(
        Event::shard_for(&six.to_offset(time::macros::offset!(+09:00))).name(),
        "day"
    );

    let dir = common::tempdir();
    let mut builder = Cluster::<Sqlite>::builder();
    for shard in ["before", "m_2025_01", "m_2025_02", "m_2025_03"] {
        builder = builder.shard(
            shard,
            dir.path().join(format!("{shard}.db")).display().to_string(),
        );
    }
    let cluster = builder.connect().await.unwrap();
    Reading::create_table(&cluster).await.unwrap();
    let start = d(2024, 12, 20);
    let rows: Vec<Reading> = (0..120)
        .map(|i| Reading {
            day: start + Duration::days(i),
            sensor: i % 3,
            at: Utc.from_utc_datetime(&(start + Duration::days(i)).and_hms_opt(12, 0, 0).unwrap()),
            value: i as f64,
        })
        .collect();
    Reading::insert_many(&cluster, &rows).await.unwrap();
    cluster.log().start();
    let february = Reading::query()
        .filter(Reading::DAY.between(d(2025, 2, 1), d(2025, 2, 28)))
        .count(&cluster)
        .await
        .unwrap();
    let touched: std::collections::HashSet<String> = cluster
        .log()
        .stop()
        .into_iter()
        .map(|e| e.shard.to_string())
        .collect();
    assert_eq!(february, 28);
    assert_eq!(
        touched,
        ["m_2025_02".to_owned()].into(),
        "a February filter reads February's shard"
    );
    for row in &rows {
        assert_eq!(
            Reading::find(&cluster, (row.day, row.sensor))
                .await
                .unwrap()
                .as_ref(),
            Some(row)
        );
    }
}
