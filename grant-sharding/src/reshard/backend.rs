//! What the backfill needs beyond [`Backend`]: a source transaction that locks the rows it reads.

use futures_util::future::BoxFuture;
use grant_core::Backend;
use sea_query_sqlx::SqlxValues;

/// A backend the resharding job can lock source rows on: the batch's source transaction and
/// the clause that locks the rows a `SELECT` reads.
pub trait ReshardBackend: Backend {
    /// Appended to the batch's `SELECT`: ` FOR SHARE` on PostgreSQL (writers of those rows wait
    /// for the batch); empty on SQLite, whose batch transaction holds the write lock instead.
    const LOCK_CLAUSE: &'static str;

    /// Begins the batch's source transaction: `BEGIN IMMEDIATE` on SQLite (no other writer
    /// until commit), a plain `BEGIN` on PostgreSQL.
    fn begin_locked(
        pool: &sqlx::Pool<Self>,
    ) -> BoxFuture<'_, Result<sqlx::Transaction<'static, Self>, sqlx::Error>>;

    /// Runs a query inside the transaction and returns its rows.
    fn fetch_in<'a>(
        tx: &'a mut sqlx::Transaction<'static, Self>,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>>;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! reshard_backend {
    ($db:ty, $lock:expr, $begin:expr) => {
        impl ReshardBackend for $db {
            const LOCK_CLAUSE: &'static str = $lock;

            fn begin_locked(
                pool: &sqlx::Pool<Self>,
            ) -> BoxFuture<'_, Result<sqlx::Transaction<'static, Self>, sqlx::Error>> {
                Box::pin(async move {
                    match $begin {
                        Some(statement) => pool.begin_with(statement).await,
                        None => pool.begin().await,
                    }
                })
            }

            fn fetch_in<'a>(
                tx: &'a mut sqlx::Transaction<'static, Self>,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
                        .fetch_all(&mut **tx)
                        .await
                })
            }
        }
    };
}

#[cfg(feature = "sqlite")]
reshard_backend!(sqlx::Sqlite, "", Some("BEGIN IMMEDIATE"));
#[cfg(feature = "postgres")]
reshard_backend!(sqlx::Postgres, " FOR SHARE", None::<&'static str>);
