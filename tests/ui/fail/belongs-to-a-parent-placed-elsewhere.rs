use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "tenant_id", count = 8)]
pub struct Issue {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
}

// Four shards where the parent has eight: a comment would not live on its issue's shard.
#[derive(Sharded, Debug, Clone)]
#[grant(belongs_to(Issue, key(tenant_id, issue_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Comment {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub issue_id: i64,
}

fn main() {}
