//! `#[grant(table = ...)]` and `#[grant(column = ...)]` rename; the Rust names stay.
#![deny(missing_docs, warnings)]

use grant::prelude::*;

/// An account.
#[derive(Sharded, Debug, Clone)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "tenant_id", count = 2, prefix = "acct_")]
pub struct Account {
    /// The tenant: shard key and first part of the primary key.
    #[primary_key]
    #[grant(column = "tenant")]
    pub tenant_id: String,
    /// A raw identifier field.
    #[primary_key]
    pub r#type: i32,
    /// Renamed column.
    #[grant(column = "display_name")]
    pub name: String,
    /// Bytes.
    pub avatar: Vec<u8>,
    /// Floats.
    pub score: f64,
}

fn main() {
    let meta = <Account as Model>::META;
    assert_eq!(meta.table, "accounts");
    let names: Vec<&str> = meta.column_names().collect();
    assert_eq!(names, ["tenant", "type", "display_name", "avatar", "score"]);
    assert_eq!(meta.columns[0].field, "tenant_id");
    assert_eq!(meta.shard_key_name(), "tenant");
    assert_eq!(Account::NAME.name(), "display_name");
    assert_eq!(Account::TYPE.name(), "type");
    assert_eq!(Account::TENANT_ID.index(), 0);

    let shard = Account::shard_for(&"acme".to_owned());
    assert!(shard.to_string().starts_with("acct_"));
    assert_eq!(<Account as Model>::shards()[1].to_string(), "acct_1");
    let key = ("acme".to_owned(), 3);
    assert_eq!(<Account as Model>::shard_of_key(&key), shard);
    assert_eq!(<Account as Model>::primary_key_values(&key).len(), 2);
}
