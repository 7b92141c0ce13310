//! The differential harness: random data, random queries, two answers compared.
//!
//! The model `Item` (8 hash shards) is defined here; the harness itself lives in `harness.rs`,
//! included below, so a test with another shard count can include it beside its own `Item`
//! (see `pg_topology.rs`).
#![allow(dead_code, unreachable_pub, missing_docs)]

use grant::prelude::*;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "items")]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct Item {
    #[primary_key]
    pub id: i64,
    pub grp: String,
    pub cat: Option<String>,
    pub a: i64,
    pub b: Option<i64>,
    pub f: Option<f64>,
    pub flag: bool,
}

include!("harness.rs");
