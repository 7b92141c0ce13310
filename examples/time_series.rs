//! Time series by month: sensor readings keyed by their day (a `chrono::NaiveDate`, with the
//! instant they were taken as a `DateTime<Utc>`) live in one SQLite file per month with the
//! `range` strategy, its bounds written as dates. A query over a period reads only the months it covers; old
//! months can be archived by detaching one file.
//!
//! Run with `cargo run --example time_series`. Rerunnable: it starts from empty SQLite shard files
//! each time (in `target/grant-time-series`, or the directory in `GRANT_DATA_DIR`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use grant::prelude::*;

/// One reading of one sensor on one day.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "readings")]
#[shard(
    strategy = "range",
    on = "day",
    ranges(
        archive = .."2025-01-01",
        m2025_01 = "2025-01-01".."2025-02-01",
        m2025_02 = "2025-02-01".."2025-03-01",
        m2025_03 = "2025-03-01".."2025-04-01",
        m2025_04 = "2025-04-01".."2025-05-01",
        m2025_05 = "2025-05-01".."2025-06-01",
        current = "2025-06-01"..,
    )
)]
struct Reading {
    #[primary_key]
    day: NaiveDate,
    #[primary_key]
    sensor: i64,
    taken_at: DateTime<Utc>,
    celsius: f64,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a calendar date")
}

#[tokio::main]
async fn main() -> grant::Result<()> {
    let dir = data_dir("grant-time-series")?;
    let mut builder = Cluster::<Sqlite>::builder();
    for shard in <Reading as Model>::shards() {
        let name = shard.name();
        let path = dir.join(format!("{name}.db")).display().to_string();
        builder = builder.shard(name, path);
    }
    let cluster = builder.connect().await?;
    Reading::create_table(&cluster).await?;

    // December 2024 to June 2025, 20 sensors, one reading per sensor and day, at 06:00 UTC
    // plus a minute per sensor.
    let mut readings = Vec::new();
    let mut day = date(2024, 12, 1);
    while day < date(2025, 7, 1) {
        for sensor in 0..20 {
            let celsius = 5.0
                + f64::from(day.month() % 12) * 2.5
                + f64::from(day.day() % 7) * 0.3
                + sensor as f64 * 0.1;
            let taken_at = Utc.from_utc_datetime(&day.and_hms_opt(6, 0, 0).expect("06:00"))
                + Duration::minutes(sensor);
            readings.push(Reading {
                day,
                sensor,
                taken_at,
                celsius,
            });
        }
        day += Duration::days(1);
    }
    Reading::insert_many(&cluster, &readings).await?;
    println!("{}", cluster.distribution::<Reading>().await?);

    // One week in March: one month's file.
    cluster.log().start();
    let week = Reading::query()
        .filter(Reading::DAY.between(date(2025, 3, 10), date(2025, 3, 16)))
        .count(&cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!("readings 2025-03-10 ..= 2025-03-16: {week}, read from {touched:?}");
    assert_eq!(week, 7 * 20);
    assert_eq!(touched, ["m2025_03"]);

    // A period across a month boundary: two files; the average is exact across them.
    cluster.log().start();
    let avg = Reading::query()
        .filter(
            Reading::DAY
                .gte(date(2025, 4, 20))
                .and(Reading::DAY.lt(date(2025, 5, 10))),
        )
        .avg(Reading::CELSIUS, &cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!("mean 2025-04-20 .. 2025-05-10: {avg:.3?} °C, read from {touched:?}");
    assert_eq!(touched, ["m2025_04", "m2025_05"]);
    let expected: Vec<f64> = readings
        .iter()
        .filter(|r| (date(2025, 4, 20)..date(2025, 5, 10)).contains(&r.day))
        .map(|r| r.celsius)
        .collect();
    let mean = expected.iter().sum::<f64>() / expected.len() as f64;
    assert!(avg.is_some_and(|a| (a - mean).abs() < 1e-9));

    // Everything before 2025 is in the archive file.
    cluster.log().start();
    let old = Reading::query()
        .filter(Reading::DAY.lt(date(2025, 1, 1)))
        .count(&cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!("readings before 2025: {old}, read from {touched:?}");
    assert_eq!(touched, ["archive"]);

    // One sensor's latest readings, newest instant first: the key is the day, so this reads
    // every month and merges them by time.
    cluster.log().start();
    let latest = Reading::query()
        .filter(Reading::SENSOR.eq(7))
        .order_by(Reading::TAKEN_AT, Order::Desc)
        .limit(3)
        .all(&cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!(
        "sensor 7, last 3 days: {:?} (read from {} files)",
        latest.iter().map(|r| r.day).collect::<Vec<_>>(),
        touched.len()
    );
    assert_eq!(
        latest.iter().map(|r| r.day).collect::<Vec<_>>(),
        [date(2025, 6, 30), date(2025, 6, 29), date(2025, 6, 28)]
    );
    assert_eq!(latest[0].taken_at.to_rfc3339(), "2025-06-30T06:07:00+00:00");

    // The readings of one morning hour, across sensors: a filter on the instant.
    let from = Utc.with_ymd_and_hms(2025, 6, 30, 6, 5, 0).unwrap();
    let five = Reading::query()
        .filter(Reading::DAY.eq(date(2025, 6, 30)))
        .filter(Reading::TAKEN_AT.between(from, from + Duration::minutes(4)))
        .count(&cluster)
        .await?;
    println!("readings 2025-06-30 06:05 ..= 06:09 UTC: {five}");
    assert_eq!(five, 5);
    println!("time_series: ok");
    Ok(())
}

fn shards(log: Vec<grant::Executed>) -> Vec<String> {
    let mut names: Vec<String> = log.into_iter().map(|e| e.shard).collect();
    names.sort();
    names
}

/// An empty directory for the example's shard files.
fn data_dir(name: &str) -> grant::Result<std::path::PathBuf> {
    let dir = std::env::var("GRANT_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join(name)
        });
    let fail = |e: std::io::Error| Error::Config(format!("{}: {e}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(fail)?;
    }
    std::fs::create_dir_all(&dir).map_err(fail)?;
    Ok(dir)
}
