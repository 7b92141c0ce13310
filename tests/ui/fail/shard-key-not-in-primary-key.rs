use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "region", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
    pub region: String,
}

fn main() {}
