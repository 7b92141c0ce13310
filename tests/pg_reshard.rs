//! Online resharding on PostgreSQL: 100,000 rows from 4 to 8 hash shards while 4 writers
//! insert, update and delete; kill mid-copy and resume in a fresh cluster; rollback.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/reshard.rs"]
mod scenario;

use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan};
use scenario::{Account, check_layout, eight, preload, start_writers, wait_for};

const ROWS: i64 = 100_000;

/// A second cluster over the same shard databases (a new process).
async fn reconnect(env: &pg::PgEnv, test: &str) -> Cluster<Postgres> {
    let mut b = Cluster::<Postgres>::builder();
    for i in 0..8 {
        b = b.shard(format!("shard_{i}"), pg::shard_url(env, test, i));
    }
    b.connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_four_to_eight_under_writes() {
    const TEST: &str = "pg_reshard_under_writes";
    let Some(env) = pg::env().await else { return };
    let c = env.cluster(TEST, 8).await;
    let mut expected = preload(&c, ROWS).await;

    // Without writers first: the copy rate alone, then rolled back.
    let plan = ReshardPlan::new::<Account, Postgres>(&c, eight())
        .await
        .unwrap();
    println!("{plan}");
    let job = ReshardJob::<Account, Postgres>::start(&c, plan, ReshardOptions::default())
        .await
        .unwrap();
    let t = Instant::now();
    job.copy().await.unwrap();
    let quiet = job.status().rows_copied as f64 / t.elapsed().as_secs_f64();
    job.rollback().await.unwrap();
    check_layout(&c, 4, 4, &expected).await;

    let writers = start_writers(&c, &expected, ROWS + 1);
    let plan = ReshardPlan::new::<Account, Postgres>(&c, eight())
        .await
        .unwrap();
    let job = ReshardJob::<Account, Postgres>::start(&c, plan, ReshardOptions::default())
        .await
        .unwrap();
    let t = Instant::now();
    job.copy().await.unwrap();
    let copy_secs = t.elapsed().as_secs_f64();
    let status = job.run().await.unwrap();
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acked = writers.stop(&mut expected).await;
    println!(
        "postgres 4->8: {quiet:.0} rows/s copied without writers; under writes {} rows copied \
         ({:.0} rows/s), whole job {took:?}, {} verified, {} repaired, {} dirty keys, pause \
         {:?}, {acked} acknowledged writes",
        status.rows_copied,
        status.rows_copied as f64 / copy_secs,
        status.rows_verified,
        status.rows_repaired,
        status.dirty_at_cutover,
        status.pause
    );
    assert_eq!(status.phase, Phase::Done);
    assert!(acked > 100, "only {acked} writes ran during the reshard");
    check_layout(&c, 8, 8, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_killed_mid_copy_resumes_in_a_new_process() {
    const TEST: &str = "pg_reshard_resume";
    let Some(env) = pg::env().await else { return };
    let a = env.cluster(TEST, 8).await;
    let mut expected = preload(&a, ROWS / 4).await;
    let writers = start_writers(&a, &expected, ROWS + 1);
    let plan = ReshardPlan::new::<Account, Postgres>(&a, eight())
        .await
        .unwrap();
    let job =
        ReshardJob::<Account, Postgres>::start(&a, plan, ReshardOptions::default().batch_size(250))
            .await
            .unwrap();
    let id = job.id();
    tokio::select! {
        r = job.copy() => panic!("the copy finished before it was killed: {r:?}"),
        () = wait_for(Duration::from_secs(120), || job.status().rows_copied >= 2_000) => {}
    }
    drop(job);
    writers.stop(&mut expected).await;
    drop(a);

    let b = reconnect(env, TEST).await;
    let writers = start_writers(&b, &expected, ROWS + 10_000_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = ReshardJob::<Account, Postgres>::resume(&b, &id, eight(), ReshardOptions::default())
        .await
        .unwrap();
    let status = job.run().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    writers.stop(&mut expected).await;
    println!("postgres resumed: {status:?}");
    assert_eq!(status.phase, Phase::Done);
    check_layout(&b, 8, 8, &expected).await;
}
