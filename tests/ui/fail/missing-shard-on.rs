use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
