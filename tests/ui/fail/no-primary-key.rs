use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    pub id: i64,
    pub name: String,
}

fn main() {}
