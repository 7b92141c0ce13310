//! Grant on PostgreSQL shards given in the environment.
//!
//! ```sh
//! GRANT_SHARD_URLS=postgres://localhost:5432/s0,postgres://localhost:5432/s1 \
//!     cargo run --example postgres
//! ```
//!
//! Optional `GRANT_REPLICA_URLS` (same order, empty entries for shards without a replica) adds
//! a streaming replica per shard and reads prefer it. Creates a table, writes 10,000 accounts,
//! routes finds, runs cross-shard aggregates, prints `cluster.status()`.

use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::{HealthConfig, ReadPolicy};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "grant_example_accounts")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Account {
    #[primary_key]
    id: i64,
    owner: String,
    region: String,
    balance: i64,
}

#[tokio::main]
async fn main() -> grant::Result<()> {
    let Ok(urls) = std::env::var("GRANT_SHARD_URLS") else {
        eprintln!(
            "set GRANT_SHARD_URLS to two comma-separated PostgreSQL URLs (shard_0, shard_1), e.g.\n  \
             GRANT_SHARD_URLS=postgres://postgres@localhost/s0,postgres://postgres@localhost/s1 \
             cargo run --example postgres"
        );
        std::process::exit(2);
    };
    let urls: Vec<&str> = urls.split(',').map(str::trim).collect();
    if urls.len() != 2 {
        return Err(Error::Config(format!(
            "GRANT_SHARD_URLS has {} URLs; this example's model uses 2 shards",
            urls.len()
        )));
    }
    let replicas = std::env::var("GRANT_REPLICA_URLS").unwrap_or_default();
    let mut builder = Cluster::<Postgres>::builder()
        .max_connections(8)
        .timeout(Duration::from_secs(5))
        .health_checks(HealthConfig::default());
    for (i, url) in urls.iter().enumerate() {
        builder = builder.shard(format!("shard_{i}"), *url);
    }
    for (i, url) in replicas.split(',').map(str::trim).enumerate() {
        if !url.is_empty() {
            builder = builder.replica(format!("shard_{i}"), url);
        }
    }
    if !replicas.is_empty() {
        builder = builder.read_policy(ReadPolicy::PreferReplica);
    }
    let cluster = builder.connect().await?;
    cluster.check::<Account>()?;
    Account::create_table(&cluster).await?;
    cluster
        .execute_on_all_shards("TRUNCATE grant_example_accounts")
        .await
        .into_iter()
        .try_for_each(|(_, r)| r.map(|_| ()))?;

    let accounts: Vec<Account> = (1..=10_000)
        .map(|id| Account {
            id,
            owner: format!("owner {id}"),
            region: ["eu", "us", "apac"][(id % 3) as usize].into(),
            balance: (id * 7919) % 10_000,
        })
        .collect();
    let started = Instant::now();
    let n = Account::insert_many(&cluster, &accounts).await?;
    println!("inserted {n} accounts in {:?}", started.elapsed());

    let started = Instant::now();
    for id in 1..=1_000 {
        Account::find(&cluster, id).await?;
    }
    println!("1,000 routed finds in {:?}", started.elapsed());

    let per_region: Vec<(String, i64, Option<i64>, Option<f64>)> = Account::query()
        .select((
            Account::REGION,
            count(),
            Account::BALANCE.sum(),
            Account::BALANCE.avg(),
        ))
        .group_by(Account::REGION)
        .all(&cluster)
        .await?;
    for (region, n, sum, avg) in per_region {
        println!("  {region}: {n} accounts, total {sum:?}, mean {avg:.1?}");
    }
    let top = Account::query()
        .order_by(Account::BALANCE, Order::Desc)
        .limit(3)
        .all(&cluster)
        .await?;
    println!(
        "top 3: {:?}",
        top.iter().map(|a| (a.id, a.balance)).collect::<Vec<_>>()
    );

    for shard in cluster.status() {
        for e in shard.endpoints {
            println!(
                "{} {}: healthy={} mean={:?} p95={:?} errors={:.1}% pool in use/idle {}/{}",
                shard.shard,
                e.endpoint,
                e.healthy,
                e.latency_mean,
                e.latency_p95,
                e.error_rate * 100.0,
                e.in_use,
                e.idle
            );
        }
    }
    Ok(())
}
