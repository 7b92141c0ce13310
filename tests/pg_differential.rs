//! Differential test of the cross-shard query engine on PostgreSQL: the same random rows in an
//! 8-shard `Cluster<Postgres>` and in one plain PostgreSQL database; the harness of
//! `differential.rs` (filters, ORDER BY on any columns with NULL placement, LIMIT/OFFSET past
//! the end, every aggregate, GROUP BY with HAVING, DISTINCT, keyset pages) runs every query
//! through Grant and, as hand-written SQL, through plain sqlx on the single database. Results
//! must be equal.
//!
//! The databases use byte-order text (`LC_COLLATE 'C'`), as Rust's `str` order does.
//! `GRANT_DIFF_SEED` and `GRANT_DIFF_QUERIES` explore other seeds and sizes.

mod diff;

use diff::PgSide;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shards_answer_like_one_database() {
    let Some(side) = PgSide::new("pg_differential").await else {
        return;
    };
    diff::run(&side).await;
}
