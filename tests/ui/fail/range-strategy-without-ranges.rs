use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "range", on = "day")]
pub struct Event {
    #[primary_key]
    pub day: i32,
}

fn main() {}
