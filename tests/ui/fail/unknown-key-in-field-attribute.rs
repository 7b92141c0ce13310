use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
    #[grant(rename = "display_name")]
    pub name: String,
}

fn main() {}
