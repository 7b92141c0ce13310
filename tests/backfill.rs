//! The bulk backfill — PostgreSQL: binary `COPY` from source to target; SQLite: the targets
//! attached to the source's connection, `INSERT .. SELECT` — against tables like a real
//! application's: source tables created by hand that lag behind the model (a column the
//! model does not know, columns in another order, `VARCHAR` and `INTEGER` where Grant creates
//! `TEXT` and `INTEGER`), text primary keys that need escaping in an array literal (quotes,
//! backslashes, braces, commas, `NULL`, the empty string, non-ASCII), NULLs, and target copies
//! corrupted behind the job's back between the copy and the verification pass. The oracle is
//! the set of rows written before the job, compared row by row with what each shard holds
//! afterwards; the bulk path and the row path must end identical.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/sides.rs"]
#[macro_use]
mod sides;

use std::collections::BTreeMap;

use grant::prelude::*;
use grant::reshard::ReshardBackend;
use grant::reshard::{Phase, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;
use grant::{Backend, FromShardRow, Placement};
use sides::Side;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "handles")]
#[shard(strategy = "hash", on = "handle", count = 2)]
struct Handle {
    #[primary_key]
    handle: String,
    owner_id: i32,
    display: String,
    bio: Option<String>,
    score: f64,
    verified: bool,
}

/// Text keys an array literal must escape, then ordinary ones.
fn handles(n: usize) -> Vec<Handle> {
    let odd = [
        "",
        "NULL",
        "null",
        "a\"b",
        "back\\slash",
        "{braces}",
        "com,ma",
        " spaced ",
        "tab\tx",
        "new\nline",
        "Zoë",
        "日本語",
        "emoji 🦀",
        "'single'",
        "semi;colon",
        "\\\"both\\\"",
    ];
    let mut out: Vec<Handle> = odd
        .iter()
        .map(|s| s.to_string())
        .chain((0..n).map(|i| format!("user_{i:05}")))
        .enumerate()
        .map(|(i, handle)| Handle {
            handle,
            owner_id: i as i32 * 7,
            display: format!("Display {i} “quoted”"),
            bio: (i % 3 != 0).then(|| format!("bio {i}\\ with \"quotes\"")),
            score: i as f64 / 3.0,
            verified: i % 2 == 0,
        })
        .collect();
    out.sort_by(|a, b| a.handle.cmp(&b.handle));
    out
}

/// Hand-made source tables: columns in another order, an extra column, `VARCHAR`.
async fn lagging_tables<S: Side>(side: &S) {
    for i in 0..2 {
        side.execute(
            i,
            "CREATE TABLE handles (legacy_flag TEXT DEFAULT 'kept', verified BOOLEAN NOT NULL, \
             score DOUBLE PRECISION NOT NULL, bio TEXT, display VARCHAR(200) NOT NULL, \
             owner_id INTEGER NOT NULL, handle VARCHAR(100) PRIMARY KEY)",
        )
        .await;
    }
}

/// Every shard's rows, by shard name.
async fn layout<DB: Backend>(c: &Cluster<DB>) -> BTreeMap<String, Vec<Handle>>
where
    Handle: FromShardRow<DB>,
{
    let mut out = BTreeMap::new();
    for i in 0..4u32 {
        let shard = ShardId::prefixed("shard_", i);
        let mut rows = Handle::on_shard(shard).all(c).await.unwrap();
        rows.sort_by(|a, b| a.handle.cmp(&b.handle));
        out.insert(format!("shard_{i}"), rows);
    }
    out
}

/// Reshards 2 → 4 with the bulk path on or off, corrupting target copies between the copy
/// and the verification pass; returns the layout afterwards.
async fn reshard<S: Side>(side: &S, bulk: bool) -> (BTreeMap<String, Vec<Handle>>, Vec<Handle>)
where
    S::DB: ReshardBackend,
    Handle: FromShardRow<S::DB>,
{
    let c = side.cluster(4).await;
    lagging_tables(side).await;
    let rows = handles(3_000);
    Handle::insert_many(&c, &rows).await.unwrap();

    let new = Placement::resolver(HashResolver::new(4));
    let plan = ReshardPlan::new::<Handle, S::DB>(&c, new).await.unwrap();
    let options = ReshardOptions::default().bulk(bulk).bulk_batch_size(700);
    let job = ReshardJob::<Handle, S::DB>::start(&c, plan, options)
        .await
        .unwrap();
    job.copy().await.unwrap();
    let copied = job.status().rows_copied;
    assert!(copied > 1_000, "{copied} rows copied");

    // Behind the job's back: change one copy on each target and delete another.
    let mut corrupted = 0;
    for i in 2..4 {
        corrupted += side
            .execute(
                i,
                "UPDATE handles SET display = 'corrupted' WHERE handle = (SELECT min(handle) \
                 FROM handles); DELETE FROM handles WHERE handle = (SELECT max(handle) FROM \
                 handles)",
            )
            .await;
    }
    assert_eq!(corrupted, 4);
    let status = job.run().await.unwrap();
    assert_eq!(status.phase, Phase::Done);
    if bulk {
        assert!(status.bulk_batches > 0, "the bulk path ran no bulk batch");
    } else {
        assert_eq!(status.bulk_batches, 0, "the row path ran bulk batches");
    }
    assert!(
        status.rows_repaired >= 4,
        "the verification pass repaired {} rows, 4 were corrupted",
        status.rows_repaired
    );
    (layout(&c).await, rows)
}

on_both!(
    "backfill_",
    bulk_backfill_moves_awkward_rows_exactly_like_the_row_path
);
async fn bulk_backfill_moves_awkward_rows_exactly_like_the_row_path<S: Side>(side: &S)
where
    S::DB: ReshardBackend,
    Handle: FromShardRow<S::DB>,
{
    let (bulk, oracle) = reshard(side, true).await;
    let (rows, _) = reshard(&side.another("_rows"), false).await;

    // The oracle: every row once, on the shard its key resolves to, with its values.
    let mut seen = Vec::new();
    for (shard, held) in &bulk {
        for row in held {
            let home = HashResolver::new(4).shard_for(&row.handle);
            assert_eq!(
                &home.name(),
                shard,
                "row {:?} lies on {shard}, its key resolves to {home}",
                row.handle
            );
        }
        seen.extend(held.iter().cloned());
    }
    seen.sort_by(|a, b| a.handle.cmp(&b.handle));
    assert_eq!(seen.len(), oracle.len(), "rows after the reshard");
    for (got, want) in seen.iter().zip(&oracle) {
        assert_eq!(got, want);
    }
    assert_eq!(bulk, rows, "the bulk path and the row path end differently");
}
