use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "mapping", on = "region", map())]
pub struct Customer {
    #[primary_key]
    pub region: String,
}

fn main() {}
