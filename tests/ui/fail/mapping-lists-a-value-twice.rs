use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "mapping", on = "region", map(eu = "shard_eu", us = "shard_us", eu = "shard_us"))]
pub struct Customer {
    #[primary_key]
    pub region: String,
}

fn main() {}
