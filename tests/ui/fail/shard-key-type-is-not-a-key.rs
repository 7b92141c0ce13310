use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "x", count = 8)]
pub struct Point {
    #[primary_key]
    pub x: f64,
    #[primary_key]
    pub y: f64,
}

fn main() {}
