use grant::prelude::*;

#[derive(Default)]
pub struct NotAResolver;

#[derive(Sharded)]
#[shard(strategy = "custom", on = "id", resolver = "NotAResolver")]
pub struct Counter {
    #[primary_key]
    pub id: i64,
}

fn main() {}
