use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id")]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
