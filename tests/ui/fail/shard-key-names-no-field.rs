use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "idd", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
    pub name: String,
}

fn main() {}
