use grant::prelude::*;

#[derive(Model)]
#[shard(strategy = "hash", on = "code", count = 2)]
pub struct Country {
    #[primary_key]
    pub code: String,
}

fn main() {}
