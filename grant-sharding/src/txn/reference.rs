//! Reference (broadcast) tables: `#[derive(Model)] #[grant(reference)]`, identical rows on every
//! shard of the cluster. The derive's generated methods call these.
//!
//! Writes go to every shard in one [`Transaction`](super::Transaction): two-phase commit on
//! PostgreSQL, so a shard that fails leaves nothing written anywhere. SQLite has no two-phase
//! commit: on a cluster of several SQLite shards reference writes are refused with
//! [`Error::Unsupported`](grant_core::Error::Unsupported) (a cluster of one shard works).
//! Reads (`find`, `query`) go to one shard, the model's `#[grant(shard = "...")]` (default
//! `shard_0`), and inside a single-shard transaction to that transaction's shard.

use futures_util::future::try_join_all;
use grant_core::{Backend, Model, Result};
use sea_query_sqlx::SqlxValues;

use super::Transaction;
use crate::cluster::Cluster;

/// Creates the reference table on every shard of the cluster, in parallel (idempotent), then
/// checks that each has every column of the model (a table of that name may have existed).
///
/// # Errors
///
/// A shard's error; [`Error::SchemaMismatch`](grant_core::Error::SchemaMismatch) naming the
/// shard whose older table lacks a column.
pub async fn create_table<M: Model, DB: Backend>(cluster: &Cluster<DB>) -> Result<()> {
    let sql = crate::stmt::create_table::<M, DB>();
    let shards: Vec<_> = (0..cluster.shard_names().count())
        .filter_map(|i| cluster.shard_id(i))
        .collect();
    try_join_all(shards.iter().map(|&shard| {
        let statement = (sql.clone(), SqlxValues(sea_query::Values(Vec::new())));
        async move { cluster.execute(M::META.name, shard, statement).await }
    }))
    .await?;
    // The table may have existed before, made by an older version of the model.
    cluster.verify_tables::<M>(&shards).await?;
    crate::crud::create_indexes::<M, DB>(cluster, &shards).await
}

/// Ends a transaction after its write: commit after success, roll back after failure.
async fn finish<DB: Backend, T>(tx: Transaction<DB>, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Inserts `row` on every shard, atomically.
///
/// # Errors
///
/// [`Error::Unsupported`](grant_core::Error::Unsupported) on several SQLite shards; a shard's
/// error (nothing written anywhere); as [`Transaction::commit`].
pub async fn insert<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    let mut tx = cluster.begin().await?;
    let outcome = tx.insert(row).await;
    finish(tx, outcome).await
}

/// Inserts `rows` on every shard, atomically; returns how many rows (counted once).
///
/// # Errors
///
/// As [`insert`].
pub async fn insert_many<M: Model, DB: Backend>(cluster: &Cluster<DB>, rows: &[M]) -> Result<u64> {
    let mut tx = cluster.begin().await?;
    let outcome = tx.insert_many(rows).await;
    finish(tx, outcome).await
}

/// Upserts `row` on every shard, atomically: inserted, or every other column updated where
/// its primary key exists.
///
/// # Errors
///
/// As [`insert`].
pub async fn upsert<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    let mut tx = cluster.begin().await?;
    let outcome = tx.upsert(row).await;
    finish(tx, outcome).await
}

/// Upserts `rows` on every shard, atomically (a primary key given twice: the last row);
/// returns how many distinct rows (counted once).
///
/// # Errors
///
/// As [`insert`].
pub async fn upsert_many<M: Model, DB: Backend>(cluster: &Cluster<DB>, rows: &[M]) -> Result<u64> {
    let mut tx = cluster.begin().await?;
    let outcome = tx.upsert_many(rows).await;
    finish(tx, outcome).await
}

/// Updates `row` on every shard, atomically.
///
/// # Errors
///
/// [`Error::NotFound`](grant_core::Error::NotFound) when a shard lacks the row (nothing
/// written); as [`insert`].
pub async fn update<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    let mut tx = cluster.begin().await?;
    let outcome = tx.update(row).await;
    finish(tx, outcome).await
}

/// Deletes `row` on every shard, atomically; returns whether a row was deleted.
///
/// # Errors
///
/// As [`insert`].
pub async fn delete<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<bool> {
    let mut tx = cluster.begin().await?;
    let outcome = tx.delete(row).await;
    finish(tx, outcome).await
}
