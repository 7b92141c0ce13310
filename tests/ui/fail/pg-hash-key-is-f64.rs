use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "pg_hash", on = "reading", count = 8)]
pub struct Sample {
    #[primary_key]
    pub reading: f64,
}

fn main() {}
