// One mistake (`on` names no field) gives one error: the code using the model still compiles
// against the placeholder impls the derive emits beside the error.
use grant::prelude::*;

#[derive(Sharded, Debug, Clone)]
#[shard(strategy = "hash", on = "user_id", count = 8)]
pub struct User {
    #[primary_key]
    pub id: i64,
    pub balance: i64,
}

#[allow(dead_code)]
async fn usage(cluster: &Cluster<Sqlite>) -> grant::Result<()> {
    let _ = User::shard_for(&7);
    let _: Option<User> = User::find(cluster, 7).await?;
    let _ = User::query()
        .filter(User::BALANCE.gt(5))
        .all(cluster)
        .await?;
    Ok(())
}

fn main() {}
