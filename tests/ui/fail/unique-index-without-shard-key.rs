use grant::prelude::*;

// Each shard can only enforce uniqueness among its own rows: an email unique across tenants
// cannot be promised by a table sharded by tenant.
#[derive(Sharded, Debug, Clone)]
#[grant(unique(email, name))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Account {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    #[grant(unique)]
    pub email: String,
    pub name: String,
}

fn main() {}
