//! Differential test of the cross-shard query engine: the same random rows in an 8-shard
//! cluster and in one plain database; at least 1,000 random queries (filters, ORDER BY on any
//! columns with NULL placement, LIMIT/OFFSET past the end, every aggregate, GROUP BY with
//! HAVING, DISTINCT, keyset pages) run through Grant and, as hand-written SQL, through plain sqlx
//! on the single database. Results must be equal.
//!
//! `GRANT_DIFF_SEED` and `GRANT_DIFF_QUERIES` explore other seeds and sizes.

mod diff;

use diff::SqliteSide;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_shards_answer_like_one_database() {
    let side = SqliteSide::new().await;
    diff::run(&side).await;
}
