//! The resharding chaos test on SQLite shard files and on PostgreSQL: see
//! `tests/common/chaos.rs`.

#[path = "common/chaos.rs"]
mod chaos;
mod common;
#[path = "common/pg.rs"]
mod pg;

use grant::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reshard_chaos() {
    let dir = common::tempdir();
    let path = dir.path().to_owned();
    let connect = |follow: bool| {
        let path = path.clone();
        async move {
            let mut b = Cluster::<Sqlite>::builder().follow_topology(follow);
            for i in 0..8 {
                b = b.shard(
                    format!("shard_{i}"),
                    path.join(format!("shard_{i}.db")).display().to_string(),
                );
            }
            b.connect().await.unwrap()
        }
    };
    let stats = chaos::run(
        "sqlite",
        connect,
        chaos::interruptions_wanted(),
        chaos::seed(),
    )
    .await;
    assert!(stats.interruptions() >= chaos::interruptions_wanted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_reshard_chaos() {
    const TEST: &str = "pg_reshard_chaos";
    let Some(env) = pg::env().await else { return };
    drop(env.cluster(TEST, 8).await);
    let connect = |follow: bool| async move {
        let mut b = Cluster::<Postgres>::builder().follow_topology(follow);
        for i in 0..8 {
            b = b.shard(format!("shard_{i}"), pg::shard_url(env, TEST, i));
        }
        b.connect().await.unwrap()
    };
    let stats = chaos::run(
        "postgres",
        connect,
        chaos::interruptions_wanted(),
        chaos::seed(),
    )
    .await;
    assert!(stats.interruptions() >= chaos::interruptions_wanted());
}
