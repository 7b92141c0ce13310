use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "0", count = 8)]
pub struct User(#[primary_key] pub i64, pub String);

fn main() {}
