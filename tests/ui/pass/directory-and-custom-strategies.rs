//! The `directory` and `custom` strategies: options, defaults, and a user resolver type.

use std::borrow::Cow;

use grant::prelude::*;
use grant::{KeyPart, ModelMeta, Resolver};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "directory", on = "tenant_id", count = 4)]
pub struct Tenant {
    #[primary_key]
    pub tenant_id: i64,
    pub name: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(
    strategy = "directory",
    on = "org",
    count = 2,
    prefix = "db_",
    home = "db_1",
    policy = "explicit"
)]
pub struct Account {
    #[primary_key]
    pub org: String,
    #[primary_key]
    pub id: i64,
}

#[derive(Debug, Default)]
pub struct FirstShard;

impl Resolver for FirstShard {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Owned(vec![ShardId::new(0)])
    }

    fn shard_for_key(&self, _model: &'static ModelMeta, _key: &[KeyPart<'_>]) -> Result<ShardId> {
        Ok(ShardId::new(0))
    }
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "custom", on = ["a", "b"], resolver = "FirstShard")]
pub struct Pair {
    #[primary_key]
    pub a: i64,
    #[primary_key]
    pub b: String,
}

fn main() {
    let spec = <Tenant as Model>::DIRECTORY.unwrap();
    assert_eq!(spec.shards.len(), 4);
    assert_eq!(spec.home, "shard_0");
    assert_eq!(spec.policy, "least_rows");
    let spec = <Account as Model>::DIRECTORY.unwrap();
    assert_eq!(spec.shards[1].to_string(), "db_1");
    assert_eq!(spec.home, "db_1");
    assert!(<Pair as Model>::DIRECTORY.is_none());
    assert_eq!(Pair::shard_for(&(1, "x".to_string())), ShardId::new(0));
    assert_eq!(Pair::shards(), [ShardId::new(0)]);
}
