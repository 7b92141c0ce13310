//! Online resharding on SQLite shard files: 50,000 accounts on 4 hash shards move to 8 while a
//! writer task keeps inserting, updating and deleting. Prints the plan, drives a progress bar
//! from `job.status()`, then checks that every row lies on the shard its key resolves to and
//! that the table equals the writer's log of acknowledged writes.
//!
//! Run with `cargo run --release --example reshard` (`GRANT_RESHARD_ROWS` changes the row
//! count). The shard files live in a temporary directory, removed at exit.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use grant::Placement;
use grant::prelude::*;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan, ReshardStatus};
use grant::resolve::HashResolver;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct Account {
    #[primary_key]
    id: i64,
    owner: String,
    balance: i64,
}

fn account(id: i64) -> Account {
    Account {
        id,
        owner: format!("owner {id}"),
        balance: id * 7 % 1000,
    }
}

type BoxError = Box<dyn Error + Send + Sync>;

/// One writer task: inserts new keys, updates and deletes existing ones until told to stop, and
/// logs every acknowledged write (`None` = deleted).
fn start_writer(
    cluster: &Cluster<Sqlite>,
    alive: Vec<Account>,
    mut next: i64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Result<BTreeMap<i64, Option<Account>>, BoxError>> {
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let mut mine = alive;
        let mut log = BTreeMap::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        while !stop.load(Ordering::Relaxed) {
            // A linear congruential generator (Knuth's MMIX constants) picks the operation.
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let pick = (seed >> 33) as usize;
            match pick % 10 {
                0..=3 => {
                    let a = account(next);
                    next += 1;
                    a.insert(&cluster).await?;
                    log.insert(a.id, Some(a.clone()));
                    mine.push(a);
                }
                4..=7 => {
                    let i = pick / 10 % mine.len();
                    mine[i].balance += 1;
                    mine[i].update(&cluster).await?;
                    log.insert(mine[i].id, Some(mine[i].clone()));
                }
                _ => {
                    let a = mine.swap_remove(pick / 10 % mine.len());
                    if !a.delete(&cluster).await? {
                        return Err(format!("deleting account {} found no row", a.id).into());
                    }
                    log.insert(a.id, None);
                }
            }
            acked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(log)
    })
}

fn show(bar: &ProgressBar, s: &ReshardStatus) {
    bar.set_length(s.rows_total.max(s.rows_copied).max(1));
    bar.set_position(s.rows_copied);
    let eta = s
        .eta
        .map_or_else(|| "-".to_string(), |e| format!("{:.1}s", e.as_secs_f64()));
    bar.set_message(format!(
        "{:<9} {:>7.0} rows/s  ETA {eta}  verified {}",
        s.phase.as_str(),
        s.rows_per_sec,
        s.rows_verified
    ));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let rows: i64 = std::env::var("GRANT_RESHARD_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir()?;
    let mut builder = Cluster::<Sqlite>::builder();
    for i in 0..8 {
        let file = dir.path().join(format!("shard_{i}.db"));
        builder = builder.shard(format!("shard_{i}"), file.display().to_string());
    }
    let cluster = builder.connect().await?;

    // 1. Load the rows on the derive's 4 hash shards (shard_0..shard_3).
    let loaded = Instant::now();
    Account::create_table(&cluster).await?;
    let all: Vec<Account> = (1..=rows).map(account).collect();
    for chunk in all.chunks(5_000) {
        Account::insert_many(&cluster, chunk).await?;
    }
    println!(
        "loaded {rows} accounts on 4 hash shards in {:.2?}",
        loaded.elapsed()
    );

    // 2. Plan the move to 8 hash shards.
    let plan =
        ReshardPlan::new::<Account, Sqlite>(&cluster, Placement::resolver(HashResolver::new(8)))
            .await?;
    println!("{plan}\n");

    // 3. A writer keeps inserting, updating and deleting while the job runs.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = start_writer(
        &cluster,
        all.clone(),
        rows + 1,
        Arc::clone(&stop),
        Arc::clone(&acked),
    );

    let job =
        ReshardJob::<Account, Sqlite>::start(&cluster, plan, ReshardOptions::default()).await?;
    println!("job {} started: dual writes on", job.id());
    let bar = ProgressBar::new(job.status().rows_total.max(1));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos:>6}/{len:6} {msg}",
        )?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let steps = async {
        job.copy().await?;
        let copied = started.elapsed();
        job.verify().await?;
        job.cutover().await?;
        Ok::<_, grant::Error>(copied)
    };
    tokio::pin!(steps);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut phase = Phase::Planned;
    let copy_took = loop {
        tokio::select! {
            r = &mut steps => break r?,
            _ = tick.tick() => {
                let s = job.status();
                if s.phase != phase {
                    phase = s.phase;
                    let at = started.elapsed();
                    bar.suspend(|| println!("{at:>9.2?}  phase {phase}: {} rows copied", s.rows_copied));
                }
                show(&bar, &s);
            }
        }
    };
    let took = started.elapsed();
    let status = job.status();
    show(&bar, &status);
    bar.finish_and_clear();
    println!(
        "{took:>9.2?}  phase {}: {} rows copied",
        status.phase, status.rows_copied
    );

    // Writes keep working on the new placement; then stop the writer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let log = writer.await??;
    let mut expected: BTreeMap<i64, Account> = all.into_iter().map(|a| (a.id, a)).collect();
    for (id, row) in log {
        match row {
            Some(a) => expected.insert(id, a),
            None => expected.remove(&id),
        };
    }

    // 4. Every row on the shard 8 hash shards place it on, and the table equal to the log.
    let eight = HashResolver::new(8);
    let mut found: BTreeMap<i64, Account> = BTreeMap::new();
    for i in 0..8 {
        let shard = ShardId::prefixed("shard_", i);
        let on_shard = Account::on_shard(shard).all(&cluster).await?;
        println!("  {shard}: {} rows", on_shard.len());
        for a in on_shard {
            let home = eight.shard_for(&a.id);
            if home != shard {
                return Err(
                    format!("account {} lies on {shard}, its key says {home}", a.id).into(),
                );
            }
            if found.insert(a.id, a).is_some() {
                return Err("an account lies on two shards".into());
            }
        }
    }
    if found != expected {
        let missing = expected.keys().filter(|k| !found.contains_key(k)).count();
        let extra = found.keys().filter(|k| !expected.contains_key(k)).count();
        return Err(format!(
            "the table differs from the acknowledged writes: {missing} missing, {extra} extra, \
             {} rows expected, {} found",
            expected.len(),
            found.len()
        )
        .into());
    }

    assert_eq!(status.phase, Phase::Done);
    println!(
        "\nchecked: all {} rows lie on their new shard and match the {} acknowledged writes",
        found.len(),
        acked.load(Ordering::Relaxed)
    );
    println!(
        "copied {} rows in {copy_took:.2?} ({:.0} rows/s); verify + cutover done after {took:.2?} \
         ({:.0} rows/s end to end)",
        status.rows_copied,
        status.rows_copied as f64 / copy_took.as_secs_f64(),
        status.rows_copied as f64 / took.as_secs_f64(),
    );
    println!(
        "verified {} rows, repaired {}; cutover re-verified {} dirty keys and paused writes for \
         {:.2?}",
        status.rows_verified,
        status.rows_repaired,
        status.dirty_at_cutover,
        status.pause.unwrap_or_default()
    );
    Ok(())
}
