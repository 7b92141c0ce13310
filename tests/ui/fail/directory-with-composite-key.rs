use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "directory", on = ["org", "id"], count = 3)]
pub struct Account {
    #[primary_key]
    pub org: String,
    #[primary_key]
    pub id: i64,
}

fn main() {}
