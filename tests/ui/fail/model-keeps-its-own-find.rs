// Without `#[grant(methods(find = ".."))]` a model's own inherent `find` clashes with the
// generated one; the error names both.
use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 2)]
struct User {
    #[primary_key]
    id: i64,
}

impl User {
    fn find(name: &str) -> Option<User> {
        let _ = name;
        None
    }
}

fn main() {}
