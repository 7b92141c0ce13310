//! Online resharding on SQLite shard files: 4 → 8 hash shards while writers insert, update and
//! delete; kill mid-copy and resume in a fresh cluster; rollback before cutover.

mod common;
#[path = "common/reshard.rs"]
mod scenario;

use std::path::Path;
use std::time::{Duration, Instant};

use grant::Placement;
use grant::prelude::*;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan};
use scenario::{Account, check_layout, eight, preload, start_writers, wait_for};

const ROWS: i64 = 20_000;

async fn cluster(dir: &Path) -> Cluster<Sqlite> {
    let mut b = Cluster::<Sqlite>::builder();
    for i in 0..8 {
        b = b.shard(
            format!("shard_{i}"),
            dir.join(format!("shard_{i}.db")).display().to_string(),
        );
    }
    b.connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_to_eight_under_writes() {
    let dir = common::tempdir();
    let c = cluster(dir.path()).await;
    let mut expected = preload(&c, ROWS).await;
    let plan = ReshardPlan::new::<Account, Sqlite>(&c, eight())
        .await
        .unwrap();
    println!("{plan}");
    assert_eq!(plan.rows_total(), ROWS as u64);
    let moving = plan.rows_to_move() as f64 / ROWS as f64;
    assert!(
        (0.45..0.55).contains(&moving),
        "{moving} of the rows move, expected about half"
    );
    assert!(
        plan.moves()
            .iter()
            .all(|m| m.to.index() == m.from.index() + 4)
    );

    let writers = start_writers(&c, &expected, ROWS + 1);
    let job = ReshardJob::<Account, Sqlite>::start(&c, plan, ReshardOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    let status = job.run().await.unwrap();
    let took = started.elapsed();
    // Writes keep working on the new placement.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acked = writers.stop(&mut expected).await;
    println!(
        "sqlite 4->8 under writes: {} rows copied in {took:?} ({:.0} rows/s), {} verified, {} \
         repaired, {} dirty keys, pause {:?}, {acked} acknowledged writes",
        status.rows_copied,
        status.rows_copied as f64 / took.as_secs_f64(),
        status.rows_verified,
        status.rows_repaired,
        status.dirty_at_cutover,
        status.pause
    );
    assert_eq!(status.phase, Phase::Done);
    assert!(acked > 100, "only {acked} writes ran during the reshard");
    check_layout(&c, 8, 8, &expected).await;
    assert_eq!(
        Account::query().count(&c).await.unwrap(),
        expected.len() as u64
    );
    let sample = expected.values().next().unwrap();
    assert_eq!(
        Account::find(&c, sample.id).await.unwrap().as_ref(),
        Some(sample)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_copy_resumes_in_a_new_process() {
    let dir = common::tempdir();
    let a = cluster(dir.path()).await;
    let mut expected = preload(&a, ROWS).await;
    let writers = start_writers(&a, &expected, ROWS + 1);
    let plan = ReshardPlan::new::<Account, Sqlite>(&a, eight())
        .await
        .unwrap();
    let job =
        ReshardJob::<Account, Sqlite>::start(&a, plan, ReshardOptions::default().batch_size(250))
            .await
            .unwrap();
    let id = job.id();
    tokio::select! {
        r = job.copy() => panic!("the copy finished before it was killed: {r:?}"),
        () = wait_for(Duration::from_secs(120), || job.status().rows_copied >= 2_000) => {}
    }
    let copied_before = job.status().rows_copied;
    drop(job); // the process dies: its in-memory placement and journal with it
    let next = expected.keys().last().copied().unwrap_or(0).max(ROWS) + 1_000_000;
    writers.stop(&mut expected).await;
    drop(a);

    // A new process: static placement again; its writes are not dual-written until resume.
    let b = cluster(dir.path()).await;
    let writers = start_writers(&b, &expected, next);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = ReshardJob::<Account, Sqlite>::resume(&b, &id, eight(), ReshardOptions::default())
        .await
        .unwrap();
    // The persisted count may lag the killed run's by one batch per source (4 in parallel).
    let resumed_at = job.status().rows_copied;
    assert!(
        resumed_at > 0 && resumed_at + 4 * 250 >= copied_before,
        "the resumed job starts from its persisted cursors ({resumed_at} copied, {copied_before} \
         before the kill)"
    );
    let status = job.run().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    writers.stop(&mut expected).await;
    println!("resumed: {status:?}");
    assert_eq!(status.phase, Phase::Done);
    check_layout(&b, 8, 8, &expected).await;

    // Resuming a finished job is refused, naming it.
    let err = ReshardJob::<Account, Sqlite>::resume(&b, &id, eight(), ReshardOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&id), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_before_cutover_keeps_the_old_topology() {
    let dir = common::tempdir();
    let c = cluster(dir.path()).await;
    let mut expected = preload(&c, ROWS / 2).await;
    let writers = start_writers(&c, &expected, ROWS + 1);
    let plan = ReshardPlan::new::<Account, Sqlite>(&c, eight())
        .await
        .unwrap();
    let job = ReshardJob::<Account, Sqlite>::start(&c, plan, ReshardOptions::default())
        .await
        .unwrap();
    job.copy().await.unwrap();
    job.verify().await.unwrap();
    // Writes by filter need the job's journal of keys: refused while the model migrates,
    // with nothing written (writes by key go on, journaled).
    let err = Account::query()
        .filter(Account::BALANCE.gte(0))
        .set(Account::OWNER, "nobody".to_owned())
        .update(&c)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("being resharded"), "{err}");
    let err = Account::query()
        .filter(Account::BALANCE.gte(0))
        .delete(&c)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("being resharded"), "{err}");
    assert_eq!(
        Account::query()
            .filter(Account::OWNER.eq("nobody".to_owned()))
            .count(&c)
            .await
            .unwrap(),
        0
    );
    // A wrong placement is refused on resume.
    let err = ReshardJob::<Account, Sqlite>::resume(
        &c,
        &job.id(),
        Placement::resolver(grant::resolve::HashResolver::new(16)),
        ReshardOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("same placement"), "{err}");
    job.rollback().await.unwrap();
    assert_eq!(job.status().phase, Phase::RolledBack);
    tokio::time::sleep(Duration::from_millis(200)).await;
    writers.stop(&mut expected).await;
    assert!(
        c.placement::<Account>().is_none(),
        "back on the static placement"
    );
    // Shards 0..3 hold the table placed by 4 hash shards; the copies on 4..7 are gone.
    check_layout(&c, 4, 4, &expected).await;
    for i in 4..8 {
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            dir.path().join(format!("shard_{i}.db")).display()
        ))
        .await
        .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "shard_{i} still holds {n} copies after the rollback");
    }
    assert!(job.cutover().await.is_err(), "no cutover after a rollback");
}

/// Issue 11, finding 1: a job interrupted in cutover, resumed in a new process — `resume`
/// finishes the move — and then `run()` as the README says: before the fix `run()` copied,
/// "verified" against sources that no longer held the moved rows and deleted them from their
/// targets as orphans. Now `run()` of a finished job returns at once and copy/verify refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_cutover_then_resume_and_run_loses_nothing() {
    use grant::reshard::CrashPoint;
    use std::sync::Arc;
    let dir = common::tempdir();
    let a = cluster(dir.path()).await;
    let expected = preload(&a, ROWS / 2).await;
    let plan = ReshardPlan::new::<Account, Sqlite>(&a, eight())
        .await
        .unwrap();
    // Stop at the 3rd step of the cutover: some sources may have given up their rows.
    let point = CrashPoint::in_phase(Phase::Cutover, 3);
    let job = ReshardJob::<Account, Sqlite>::start(
        &a,
        plan,
        ReshardOptions::default().crash(Arc::clone(&point)),
    )
    .await
    .unwrap();
    let id = job.id();
    tokio::select! {
        r = job.run() => panic!("the job finished before it was interrupted: {r:?}"),
        () = wait_for(Duration::from_secs(120), || point.hit().is_some()) => {}
    }
    drop(job);
    drop(a);

    let b = cluster(dir.path()).await;
    assert_eq!(
        ReshardJob::<Account, Sqlite>::unfinished(&b).await.unwrap(),
        vec![id.clone()]
    );
    let job = ReshardJob::<Account, Sqlite>::resume(&b, &id, eight(), ReshardOptions::default())
        .await
        .unwrap();
    assert_eq!(
        job.status().phase,
        Phase::Done,
        "resume finished the cutover"
    );
    let status = job.run().await.unwrap();
    assert_eq!(status.phase, Phase::Done);
    check_layout(&b, 8, 8, &expected).await;
    for refused in [job.copy().await, job.verify().await, job.rollback().await] {
        let err = refused.unwrap_err().to_string();
        assert!(err.contains("already finished"), "{err}");
    }
    check_layout(&b, 8, 8, &expected).await;
}

/// Issue 11, finding 2: a cutover that fails after the decision (a source failed while giving
/// up its rows) can be rolled back — before the fix `rollback()` refused ("past cutover") and
/// the model stayed dual-writing — and, in another run, finished by `run()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_cutover_rolls_back_or_finishes() {
    use grant::reshard::CrashPoint;
    use std::sync::Arc;
    for finish in [false, true] {
        let dir = common::tempdir();
        let c = cluster(dir.path()).await;
        let mut expected = preload(&c, ROWS / 2).await;
        let writers = start_writers(&c, &expected, ROWS + 1);
        let plan = ReshardPlan::new::<Account, Sqlite>(&c, eight())
            .await
            .unwrap();
        let point = CrashPoint::fail_in(Phase::Cutover, 6);
        let job = ReshardJob::<Account, Sqlite>::start(
            &c,
            plan,
            ReshardOptions::default().crash(Arc::clone(&point)),
        )
        .await
        .unwrap();
        let err = job.run().await.unwrap_err();
        assert!(err.to_string().contains("test failpoint"), "{err}");
        assert_eq!(job.status().phase, Phase::Cutover);
        if finish {
            assert_eq!(job.run().await.unwrap().phase, Phase::Done);
        } else {
            job.rollback().await.unwrap();
            assert_eq!(job.status().phase, Phase::RolledBack);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        writers.stop(&mut expected).await;
        let n = if finish { 8 } else { 4 };
        check_layout(&c, n, n, &expected).await;
        assert_eq!(
            Account::query().count(&c).await.unwrap(),
            expected.len() as u64
        );
    }
}
