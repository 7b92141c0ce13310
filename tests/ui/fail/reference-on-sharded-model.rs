use grant::prelude::*;

#[derive(Sharded)]
#[grant(reference)]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
