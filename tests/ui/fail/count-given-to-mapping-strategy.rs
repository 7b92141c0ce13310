use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "geographic", on = "region", count = 2, map(eu = "shard_eu", us = "shard_us"))]
pub struct Customer {
    #[primary_key]
    pub region: String,
}

fn main() {}
