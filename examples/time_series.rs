//! Time series by month: sensor readings keyed by day (`YYYYMMDD`) live in one SQLite file per
//! month with the `range` strategy. A query over a period reads only the months it covers; old
//! months can be archived by detaching one file.
//!
//! Run with `cargo run --example time_series`. Rerunnable: it starts from empty SQLite shard files
//! each time (in `target/grant-time-series`, or the directory in `GRANT_DATA_DIR`).

use grant::prelude::*;

/// One reading of one sensor on one day.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "readings")]
#[shard(
    strategy = "range",
    on = "day",
    ranges(
        archive = ..20250101,
        m2025_01 = 20250101..20250201,
        m2025_02 = 20250201..20250301,
        m2025_03 = 20250301..20250401,
        m2025_04 = 20250401..20250501,
        m2025_05 = 20250501..20250601,
        current = 20250601..,
    )
)]
struct Reading {
    #[primary_key]
    day: i32,
    #[primary_key]
    sensor: i64,
    celsius: f64,
}

const MONTH_DAYS: [i32; 7] = [31, 31, 28, 31, 30, 31, 30];

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

    // December 2024 to June 2025, 20 sensors, one reading per sensor and day.
    let mut readings = Vec::new();
    for (month, &days) in MONTH_DAYS.iter().enumerate() {
        let (year, month) = if month == 0 {
            (2024, 12)
        } else {
            (2025, month as i32)
        };
        for d in 1..=days {
            let day = year * 10_000 + month * 100 + d;
            for sensor in 0..20 {
                let celsius = 5.0
                    + f64::from(month % 12) * 2.5
                    + f64::from(d % 7) * 0.3
                    + sensor as f64 * 0.1;
                readings.push(Reading {
                    day,
                    sensor,
                    celsius,
                });
            }
        }
    }
    Reading::insert_many(&cluster, &readings).await?;
    println!("{}", cluster.distribution::<Reading>().await?);

    // One week in March: one month's file.
    cluster.log().start();
    let week = Reading::query()
        .filter(Reading::DAY.between(20250310, 20250316))
        .count(&cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!("readings 2025-03-10 ..= 2025-03-16: {week}, read from {touched:?}");
    assert_eq!(week, 7 * 20);
    assert_eq!(touched, ["m2025_03"]);

    // A period across a month boundary: two files; the average is exact across them.
    cluster.log().start();
    let avg = Reading::query()
        .filter(Reading::DAY.gte(20250420).and(Reading::DAY.lt(20250510)))
        .avg(Reading::CELSIUS, &cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!("mean 2025-04-20 .. 2025-05-10: {avg:.3?} °C, read from {touched:?}");
    assert_eq!(touched, ["m2025_04", "m2025_05"]);
    let expected: Vec<f64> = readings
        .iter()
        .filter(|r| (20250420..20250510).contains(&r.day))
        .map(|r| r.celsius)
        .collect();
    let mean = expected.iter().sum::<f64>() / expected.len() as f64;
    assert!(avg.is_some_and(|a| (a - mean).abs() < 1e-9));

    // Everything before 2025 is in the archive file.
    cluster.log().start();
    let old = Reading::query()
        .filter(Reading::DAY.lt(20250101))
        .count(&cluster)
        .await?;
    let touched = shards(cluster.log().stop());
    println!("readings before 2025: {old}, read from {touched:?}");
    assert_eq!(touched, ["archive"]);

    // One sensor's latest readings: the key is the day, so this reads every month.
    cluster.log().start();
    let latest = Reading::query()
        .filter(Reading::SENSOR.eq(7))
        .order_by(Reading::DAY, Order::Desc)
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
        [20250630, 20250629, 20250628]
    );
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
