//! A `pub(crate)` struct gets `pub(crate)` items; a private one private items; neither warns.
#![deny(missing_docs, unreachable_pub, dead_code, warnings)]

mod models {
    use grant::prelude::*;

    #[derive(Sharded, Debug, Clone)]
    #[shard(strategy = "hash", on = "id", count = 3)]
    pub(crate) struct Session {
        #[primary_key]
        pub(crate) id: i64,
        pub(crate) token: String,
    }

    #[derive(Model, Debug, Clone)]
    struct Private {
        #[primary_key]
        id: i32,
    }

    pub(crate) fn shard_of_private() -> ShardId {
        <Private as Model>::shards()[0]
    }
}

fn main() {
    use grant::prelude::*;
    let session = models::Session {
        id: 5,
        token: String::new(),
    };
    assert_eq!(session.shard_of(), models::Session::shard_for(&5));
    assert_eq!(models::Session::TOKEN.name(), "token");
    assert_eq!(models::shard_of_private().index(), 0);
    let _ = session.token;
}
