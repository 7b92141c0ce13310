use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "directory", on = "tenant_id", count = 3, policy = "fewest_keys")]
pub struct Tenant {
    #[primary_key]
    pub tenant_id: i64,
}

fn main() {}
