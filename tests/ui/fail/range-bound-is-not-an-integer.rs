use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "range", on = "day", ranges(shard_old = .."2025-01-01", shard_new = 20250101..))]
pub struct Event {
    #[primary_key]
    pub day: i32,
}

fn main() {}
