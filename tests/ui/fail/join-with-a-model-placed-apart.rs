use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct User {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
}

// No `belongs_to(User, ..)`: a comment is not known to live on its author's shard.
#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Comment {
    #[primary_key]
    pub tenant_id: i64,
    #[primary_key]
    pub id: i64,
    pub author_id: i64,
}

fn main() {
    let _ = Comment::query().join_parent::<User>();
}
