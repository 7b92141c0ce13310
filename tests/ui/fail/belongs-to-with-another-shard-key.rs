use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Issue {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
}

// Sharded by its own id: the issue's tenant is not the comment's shard key.
#[derive(Sharded, Debug, Clone)]
#[grant(belongs_to(Issue, key(tenant_id, issue_id)))]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Comment {
    #[primary_key]
    pub id: i64,
    pub tenant_id: i64,
    pub issue_id: i64,
}

// The key lists one field where the parent's primary key has two.
#[derive(Sharded, Debug, Clone)]
#[grant(belongs_to(Issue, key(tenant_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Label {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
}

// A field that does not exist.
#[derive(Sharded, Debug, Clone)]
#[grant(belongs_to(Issue, key(tenant_id, isue_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Watch {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub issue_id: i64,
}

fn main() {}
