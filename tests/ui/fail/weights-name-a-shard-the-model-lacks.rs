use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "consistent_hash", on = "id", count = 4, weights(shard_1 = 2, shard_4 = 2))]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
