use grant::prelude::*;

// An alias hides the `Option` from the derive; the `ShardKey` bound still catches it.
type MaybeTenant = Option<String>;

#[derive(Sharded)]
#[shard(strategy = "hash", on = "tenant", count = 8)]
pub struct Document {
    #[primary_key]
    pub id: i64,
    #[primary_key]
    pub tenant: MaybeTenant,
}

fn main() {}
