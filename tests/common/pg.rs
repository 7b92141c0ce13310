//! PostgreSQL for the integration tests: the shared throwaway server (or `GRANT_PG_URL`) from
//! `grant_sharding::testing::postgres`, and plain-sqlx access to its databases.
//!
//! Use from a test file with `#[path = "common/pg.rs"] mod pg;`. A test starts with
//! `let Some(env) = pg::env().await else { return };` — without PostgreSQL it is skipped with a
//! loud line on stderr, or fails under CI (`CI=true`).
#![allow(dead_code, unreachable_pub, missing_docs)]

pub use grant_sharding::testing::postgres::{PgEnv, available, database_name};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The shared PostgreSQL, or `None` (skip) when there is none outside CI.
pub async fn env() -> Option<&'static PgEnv> {
    available().await
}

/// A small plain-sqlx pool on `url`, bypassing Grant.
pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// The URL of shard `i` of the cluster `env.cluster(test, n)` made.
pub fn shard_url(env: &PgEnv, test: &str, i: usize) -> String {
    env.url(&database_name(test, &format!("shard_{i}")))
}
