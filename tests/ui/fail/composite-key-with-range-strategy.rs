use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "range", on = ["day", "id"], ranges(shard_old = ..20250101, shard_new = 20250101..))]
pub struct Event {
    #[primary_key]
    pub day: i32,
    #[primary_key]
    pub id: i64,
}

fn main() {}
