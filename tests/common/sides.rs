//! One scenario per area, run on both backends: `Files` (SQLite shard files in a directory of
//! the test's own) and `Databases` (PostgreSQL databases named after the test, on the shared
//! throwaway server or `GRANT_PG_URL`), and `on_both!` making one test per backend.
//!
//! Use from a test file with `#[path = "common/sides.rs"] #[macro_use] mod sides;` next to
//! `#[path = "common/pg.rs"] mod pg;`; a scenario is an `async fn name<S: Side>(side: &S)`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use grant::Backend;
use grant::prelude::*;

use super::pg;

/// One backend's shards for a scenario.
pub trait Side: Sync {
    /// The backend.
    type DB: Backend;

    /// A cluster of `n` shards `shard_0 ..`, new and empty.
    async fn cluster(&self, n: usize) -> Cluster<Self::DB>;

    /// The URL of shard `i` of that cluster, for plain sqlx access bypassing Grant.
    fn shard_url(&self, i: usize) -> String;

    /// Another set of shards of this backend, independent of these (a second database per
    /// shard, or a second directory).
    fn another(&self, suffix: &str) -> Self
    where
        Self: Sized;

    /// Runs `sql` (one or more statements) on shard `i` with plain sqlx, bypassing Grant;
    /// returns the rows affected.
    async fn execute(&self, i: usize, sql: &str) -> u64;

    /// A new cluster on the same `n` shards, as they are (what a new process connects to).
    async fn reopen(&self, n: usize) -> Cluster<Self::DB> {
        let mut builder = Cluster::<Self::DB>::builder();
        for i in 0..n {
            builder = builder.shard(format!("shard_{i}"), self.shard_url(i));
        }
        builder.connect().await.expect("reconnect the shards")
    }
}

/// SQLite shard files in a directory of the test's own.
pub struct Files(pub tempfile::TempDir);

impl Files {
    pub fn new() -> Self {
        Files(
            tempfile::Builder::new()
                .prefix("grant-test-")
                .tempdir()
                .expect("temp dir"),
        )
    }
}

impl Side for Files {
    type DB = Sqlite;

    async fn cluster(&self, n: usize) -> Cluster<Sqlite> {
        let mut builder = Cluster::<Sqlite>::builder();
        for i in 0..n {
            builder = builder.shard(format!("shard_{i}"), self.shard_url(i));
        }
        builder.connect().await.expect("connect sqlite shards")
    }

    fn shard_url(&self, i: usize) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.0.path().join(format!("shard_{i}.db")).display()
        )
    }

    fn another(&self, _suffix: &str) -> Self {
        Files::new()
    }

    async fn execute(&self, i: usize, sql: &str) -> u64 {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&self.shard_url(i))
            .await
            .expect("connect a shard file");
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        done.rows_affected()
    }
}

/// PostgreSQL databases named after the test.
pub struct Databases {
    pub env: &'static pg::PgEnv,
    pub test: &'static str,
}

impl Side for Databases {
    type DB = Postgres;

    async fn cluster(&self, n: usize) -> Cluster<Postgres> {
        self.env.cluster(self.test, n).await
    }

    fn shard_url(&self, i: usize) -> String {
        pg::shard_url(self.env, self.test, i)
    }

    fn another(&self, suffix: &str) -> Self {
        Databases {
            env: self.env,
            test: Box::leak(format!("{}{suffix}", self.test).into_boxed_str()),
        }
    }

    async fn execute(&self, i: usize, sql: &str) -> u64 {
        let pool = pg::pool(&self.shard_url(i)).await;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        done.rows_affected()
    }
}

/// One test per backend for the scenario `$scenario`, its PostgreSQL databases named
/// `$prefix` + the scenario.
macro_rules! on_both {
    ($prefix:literal, $scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(&super::sides::Files::new()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(env) = super::pg::env().await else {
                    return;
                };
                let test = concat!($prefix, stringify!($scenario));
                super::$scenario(&super::sides::Databases { env, test }).await;
            }
        }
    };
}
