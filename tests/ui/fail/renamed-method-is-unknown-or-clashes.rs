use grant::prelude::*;

#[derive(Sharded)]
#[grant(methods(fnd = "lookup"))]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Unknown {
    #[primary_key]
    id: i64,
}

#[derive(Sharded)]
#[grant(methods(find = "look up"))]
#[shard(strategy = "hash", on = "id", count = 2)]
struct NotAnIdentifier {
    #[primary_key]
    id: i64,
}

#[derive(Sharded)]
#[grant(methods(find = "insert"))]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Clash {
    #[primary_key]
    id: i64,
}

#[derive(Sharded)]
#[shard(strategy = "hash", on = "id", count = 2)]
struct BadConstant {
    #[primary_key]
    #[grant(constant = "type")]
    id: i64,
}

fn main() {}
