use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "consistent_hash", on = "id", count = 4, policy = "round_robin")]
pub struct Counter {
    #[primary_key]
    pub id: i64,
}

fn main() {}
