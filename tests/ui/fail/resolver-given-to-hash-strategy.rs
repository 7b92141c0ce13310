use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 4, resolver = "crate::Parity")]
pub struct Counter {
    #[primary_key]
    pub id: i64,
}

fn main() {}
