use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[grant(index(tenant_id, emial), unique(tenant_id, name, name))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Account {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub email: String,
    pub name: String,
    #[grant(index = true)]
    pub day: i32,
}

fn main() {}
