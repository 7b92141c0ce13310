use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Issue {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
}

// An `i32` tenant hashes differently from the issue's `i64` one.
#[derive(Sharded, Debug, Clone)]
#[grant(belongs_to(Issue, key(tenant_id, issue_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Comment {
    #[primary_key]
    pub tenant_id: i32,
    #[primary_key]
    pub id: i64,
    pub issue_id: i64,
}

fn main() {}
