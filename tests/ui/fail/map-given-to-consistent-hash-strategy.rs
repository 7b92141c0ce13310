use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "consistent_hash", on = "id", count = 4, map(eu = "shard_eu"))]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
