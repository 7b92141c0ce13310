use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "range", on = "day", ranges(shard_old = ..20250101, shard_new = 20260101..20250101))]
pub struct Event {
    #[primary_key]
    pub day: i32,
}

fn main() {}
