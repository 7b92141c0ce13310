//! 1,000 concurrent tasks on different shards: no cross-talk between tasks, contexts or rows.

mod common;

use common::{User, sqlite_cluster, tempdir, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_see_only_their_own_rows() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    User::create_table(&cluster).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..1_000_i64 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let id = 10_000 + t;
            let mut mine = user(id);
            mine.name = format!("task {t}");
            mine.insert(&cluster).await.unwrap();
            tokio::task::yield_now().await;
            // Unkeyed reads inside the task's shard context see only that shard.
            let shard = User::shard_for(&id);
            let seen = grant::with_shard(shard, async {
                tokio::task::yield_now().await;
                User::query()
                    .filter(User::NAME.eq(format!("task {t}")))
                    .all(&cluster)
                    .await
                    .unwrap()
            })
            .await;
            assert_eq!(seen, vec![mine.clone()]);
            mine.balance = t;
            mine.update(&cluster).await.unwrap();
            let back = User::find(&cluster, id).await.unwrap().unwrap();
            assert_eq!((back.name.as_str(), back.balance), (mine.name.as_str(), t));
            shard
        }));
    }
    let mut per_shard = [0u32; 8];
    for t in tasks {
        per_shard[t.await.unwrap().index() as usize] += 1;
    }
    assert!(per_shard.iter().all(|&n| n > 50), "{per_shard:?}");
    assert_eq!(User::query().count(&cluster).await.unwrap(), 1_000);
    let total: Option<i64> = User::query().sum(User::BALANCE, &cluster).await.unwrap();
    assert_eq!(total, Some((0..1_000).sum()));
}
