use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct Event<T> {
    #[primary_key]
    pub id: i64,
    pub payload: T,
}

fn main() {}
