use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "custom", on = "id", resolver = "my resolver")]
pub struct Counter {
    #[primary_key]
    pub id: i64,
}

fn main() {}
