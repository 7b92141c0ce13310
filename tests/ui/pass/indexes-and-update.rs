use grant::prelude::*;

// A unique set holding the shard key, a unique shard key column, plain indexes; an update by
// filter of ordinary columns.
#[derive(Sharded, Debug, Clone)]
#[grant(unique(tenant_id, email), index(name, day))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Account {
    #[primary_key]
    #[grant(unique)]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub email: String,
    #[grant(index)]
    pub name: String,
    pub day: i32,
    pub note: Option<String>,
}

fn main() {
    use grant::Model;
    assert_eq!(Account::INDEXES.len(), 4);
    let _update = Account::query()
        .filter(Account::TENANT_ID.eq(1))
        .set(Account::NAME, "x".to_owned())
        .set(Account::NOTE, None);
    // Key columns still order, filter and aggregate.
    let _q = Account::query().order_by(Account::ID, Order::Asc);
    let _m = Account::ID.max();
}
