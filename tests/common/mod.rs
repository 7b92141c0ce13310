//! Shared models and cluster helpers for the integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use grant::prelude::*;
use std::path::Path;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
    pub name: String,
    pub region: String,
    pub active: bool,
    pub balance: i64,
    pub email: Option<String>,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "order_id", count = 4)]
pub struct OrderItem {
    #[primary_key]
    pub order_id: i64,
    #[primary_key]
    pub product_id: i64,
    pub quantity: i32,
}

pub fn user(id: i64) -> User {
    User {
        id,
        name: format!("user {id}"),
        region: ["eu", "us", "apac"][id.rem_euclid(3) as usize].to_string(),
        active: id % 2 == 0,
        balance: (id * 37) % 1000 - 200,
        email: (id % 5 != 0).then(|| format!("u{id}@example.com")),
    }
}

/// A cluster of `n` SQLite shard files `shard_0.db ..` in `dir`.
pub async fn sqlite_cluster(dir: &Path, n: usize) -> Cluster<Sqlite> {
    let mut builder = Cluster::<Sqlite>::builder();
    for i in 0..n {
        builder = builder.shard(
            format!("shard_{i}"),
            dir.join(format!("shard_{i}.db")).display().to_string(),
        );
    }
    builder.connect().await.expect("connect sqlite shards")
}

/// A fresh directory for one test's shard files.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("grant-test-")
        .tempdir()
        .expect("temp dir")
}
