//! Every strategy's attribute syntax compiles, with composite keys where allowed.
use grant::prelude::*;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = "id", count = 8)]
pub struct Account {
    #[primary_key]
    pub id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = ["tenant_id", "user_id"], count = 8)]
pub struct Document {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub user_id: i64,
    #[primary_key]
    pub doc_id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = ["tenant", "id"], count = 5)]
pub struct Invoice {
    #[primary_key]
    pub tenant: String,
    #[primary_key]
    pub id: i32,
    pub uuid: Vec<u8>,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "consistent_hash", on = "id", count = 16, vnodes = 64, weights(shard_0 = 2, "shard_15" = 0.5))]
pub struct Session {
    #[primary_key]
    pub id: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "range", on = "day", ranges(shard_old = ..20250101, shard_2025 = 20250101..20260101, "shard-now" = 20260101..))]
pub struct Event {
    #[primary_key]
    pub day: i32,
    #[primary_key]
    pub id: i64,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "range", on = "sensor", ranges(low = -1000..=-1, high = 0..1000))]
pub struct Reading {
    #[primary_key]
    pub sensor: i16,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "geographic", on = "region", map(eu = "shard_eu", "us-east" = "shard_us"), default = "shard_other")]
pub struct Customer {
    #[primary_key]
    pub region: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "lookup", on = "tenant", map(1 = "shard_big", -2 = "shard_small"))]
pub struct Tenant {
    #[primary_key]
    pub tenant: i64,
}

fn main() {
    assert_eq!(Account::shard_for(&42).index(), 2);
    assert_eq!(
        Document::shard_for(&(1, 2)),
        <Document as Model>::shard_of_key(&(1, 2, 3))
    );
    assert!(Invoice::shard_for(&("acme".to_string(), 7)).index() < 5);
    assert!(Session::shard_for(&"s".to_string()).index() < 16);
    assert_eq!(Event::shard_for(&20250505).to_string(), "shard_2025");
    assert_eq!(Event::shard_for(&20990101).to_string(), "shard-now");
    assert_eq!(Reading::shard_for(&-1).to_string(), "low");
    assert!(Reading::try_shard_for(&1000).is_err());
    assert_eq!(
        Customer::shard_for(&"us-east".to_string()).to_string(),
        "shard_us"
    );
    assert_eq!(
        Customer::shard_for(&"mars".to_string()).to_string(),
        "shard_other"
    );
    assert_eq!(Tenant::shard_for(&-2).to_string(), "shard_small");
    assert!(Tenant::try_shard_for(&3).is_err());
}
