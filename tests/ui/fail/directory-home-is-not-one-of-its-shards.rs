use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "directory", on = "tenant_id", count = 3, home = "shard_3")]
pub struct Tenant {
    #[primary_key]
    pub tenant_id: i64,
}

fn main() {}
