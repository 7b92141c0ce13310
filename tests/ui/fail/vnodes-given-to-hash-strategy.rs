use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 8, vnodes = 150)]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
