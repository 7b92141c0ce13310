use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Issue {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub title: String,
}

fn main() {
    // The shard key: the row would be left on the wrong shard.
    let _ = Issue::query().set(Issue::TENANT_ID, 2);
    // Another primary-key column: the row's identity.
    let _ = Issue::query().set(Issue::TITLE, "t".to_owned()).set(Issue::ID, 3);
}
