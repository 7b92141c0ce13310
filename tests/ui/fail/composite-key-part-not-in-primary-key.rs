use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = ["tenant_id", "user_id"], count = 8)]
pub struct Document {
    #[primary_key]
    pub tenant_id: i64,
    pub user_id: i64,
    #[primary_key]
    pub doc_id: i64,
}

fn main() {}
