//! Grant's metrics on a local Prometheus endpoint.
//!
//! `cargo run --example metrics` runs a workload on 4 in-memory SQLite shards, serves the
//! metrics at `http://127.0.0.1:9464/metrics` (or `GRANT_METRICS_ADDR`), scrapes itself once and
//! prints Grant's lines. With `-- --serve` it keeps serving until Ctrl-C.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use grant::prelude::*;
use metrics_exporter_prometheus::PrometheusBuilder;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct Account {
    #[primary_key]
    id: i64,
    owner: String,
    balance: i64,
}

#[tokio::main]
async fn main() -> grant::Result<()> {
    let addr: SocketAddr = std::env::var("GRANT_METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9464".into())
        .parse()
        .map_err(|e| Error::Config(format!("GRANT_METRICS_ADDR: {e}")))?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| Error::Config(format!("cannot serve metrics on {addr}: {e}")))?;

    let cluster = Cluster::<Sqlite>::memory(4).await?;
    Account::create_table(&cluster).await?;
    let accounts: Vec<Account> = (1..=1000)
        .map(|id| Account {
            id,
            owner: format!("owner {id}"),
            balance: id * 10,
        })
        .collect();
    Account::insert_many(&cluster, &accounts).await?;
    for id in 1..=100 {
        Account::find(&cluster, id).await?;
    }
    let rich = Account::query()
        .filter(Account::BALANCE.gt(5000))
        .count(&cluster)
        .await?;
    println!("workload done ({rich} rich accounts); metrics at http://{addr}/metrics");

    // Scrape ourselves once, as Prometheus would.
    let body = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .map_err(|e| Error::Config(e.to_string()))?
        .map_err(|e| Error::Config(format!("scrape: {e}")))?;
    for line in body
        .lines()
        .filter(|l| l.starts_with("grant_") && l.contains("shard="))
        .take(12)
    {
        println!("{line}");
    }
    if std::env::args().any(|a| a == "--serve") {
        println!("serving until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(())
}

fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
