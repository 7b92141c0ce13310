use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "range", on = "day", ranges(shard_old = ..20250101, shard_new = 20250101..), default = "shard_old")]
pub struct Event {
    #[primary_key]
    pub day: i32,
}

fn main() {}
