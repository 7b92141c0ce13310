use grant::prelude::*;

#[derive(Sharded)]
#[grant(tabel = "users")]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
