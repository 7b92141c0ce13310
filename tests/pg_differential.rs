//! Differential test of the cross-shard query engine on PostgreSQL: the same random rows in an
//! 8-shard `Cluster<Postgres>` and in one plain PostgreSQL database; the harness of
//! `differential.rs` (filters, ORDER BY on any columns with NULL placement, LIMIT/OFFSET past
//! the end, every aggregate, GROUP BY with HAVING, DISTINCT, keyset pages) runs every query
//! through Grant and, as hand-written SQL, through plain sqlx on the single database. Results
//! must be equal.
//!
//! The databases sort by ICU `en-US`, as production ones do; the reference table's text columns
//! are `COLLATE "C"`, so the reference is one byte-order database — what Grant must answer. The
//! second test makes the shard tables by hand in the databases' locale (text not `COLLATE "C"`),
//! so only Grant's explicit per-statement collation keeps the answers in byte order.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shards_with_locale_tables_answer_like_one_database() {
    let Some(mut side) = PgSide::new("pg_differential_locale").await else {
        return;
    };
    side.locale_tables = true;
    diff::run_n(&side, 500).await;
}
