use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "mapping", on = "tenant", map(1 = "shard_a", two = "shard_b"))]
pub struct Tenant {
    #[primary_key]
    pub tenant: i64,
}

fn main() {}
