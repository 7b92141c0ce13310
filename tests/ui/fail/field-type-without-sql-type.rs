use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
    pub tags: Vec<String>,
}

fn main() {}
