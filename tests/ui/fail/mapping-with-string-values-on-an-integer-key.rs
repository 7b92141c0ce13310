use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "mapping", on = "tenant", map(acme = "shard_a", globex = "shard_b"))]
pub struct Tenant {
    #[primary_key]
    pub tenant: i64,
}

fn main() {}
