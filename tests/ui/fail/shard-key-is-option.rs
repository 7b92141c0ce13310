use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "tenant", count = 8)]
pub struct Document {
    #[primary_key]
    pub id: i64,
    #[primary_key]
    pub tenant: Option<String>,
}

fn main() {}
