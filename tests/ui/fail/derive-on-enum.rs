use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 8)]
pub enum User {
    Active { id: i64 },
    Closed { id: i64 },
}

fn main() {}
