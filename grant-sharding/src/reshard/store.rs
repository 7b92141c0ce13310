//! The persisted state of resharding jobs: table `grant_reshard_jobs` on the cluster's first
//! shard, one row per job.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use grant_core::{Backend, Error, Result, ValueKind};
use sea_query::{Alias, Expr, ExprTrait, Value};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cluster::Cluster;

const TABLE: &str = "grant_reshard_jobs";

const CREATE: &str = "CREATE TABLE IF NOT EXISTS grant_reshard_jobs (\
    id TEXT PRIMARY KEY, model_table TEXT NOT NULL, target TEXT NOT NULL, phase TEXT NOT NULL, \
    cursors TEXT NOT NULL, rows_copied BIGINT NOT NULL, rows_total BIGINT NOT NULL, \
    started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)";

/// One job's row.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub(crate) id: String,
    pub(crate) table: String,
    pub(crate) target: String,
    pub(crate) phase: String,
    /// Source shard name → encoded last key copied and verified there.
    pub(crate) cursors: BTreeMap<String, String>,
    pub(crate) rows_copied: i64,
    pub(crate) rows_total: i64,
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn first_pool<DB: Backend>(cluster: &Cluster<DB>) -> Result<(String, &sqlx::Pool<DB>)> {
    let name = cluster
        .shard_names()
        .next()
        .ok_or_else(|| Error::Config("the cluster has no shard to keep resharding jobs on".into()))?
        .to_owned();
    let pool = cluster
        .pool(&name)
        .ok_or_else(|| Error::Config(format!("shard `{name}` has no pool")))?;
    Ok((name, pool))
}

fn db_error(shard: &str, what: &str, e: sqlx::Error) -> Error {
    Error::Config(format!(
        "resharding job table `{TABLE}` on shard `{shard}`: {what} failed: {e}; check that the \
         shard is reachable and writable"
    ))
}

fn encode_cursors(cursors: &BTreeMap<String, String>) -> String {
    cursors
        .iter()
        .map(|(shard, key)| format!("{shard}={key}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_cursors(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.split_once('='))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

/// Creates the job table (idempotent) and inserts `row`.
pub(crate) async fn create<DB: Backend>(cluster: &Cluster<DB>, row: &JobRow) -> Result<()> {
    let (shard, pool) = first_pool(cluster)?;
    DB::execute(
        pool,
        CREATE.to_owned(),
        SqlxValues(sea_query::Values(Vec::new())),
    )
    .await
    .map_err(|e| db_error(&shard, "create table", e))?;
    let now = now_millis();
    let (sql, values) = sea_query::Query::insert()
        .into_table(Alias::new(TABLE))
        .columns(
            [
                "id",
                "model_table",
                "target",
                "phase",
                "cursors",
                "rows_copied",
                "rows_total",
                "started_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            row.id.clone().into(),
            row.table.clone().into(),
            row.target.clone().into(),
            row.phase.clone().into(),
            encode_cursors(&row.cursors).into(),
            row.rows_copied.into(),
            row.rows_total.into(),
            now.into(),
            now.into(),
        ])
        .build_sqlx(DB::builder());
    DB::execute(pool, sql, values)
        .await
        .map_err(|e| db_error(&shard, "insert job", e))?;
    Ok(())
}

/// Writes the job's phase, cursors and counts.
pub(crate) async fn save<DB: Backend>(cluster: &Cluster<DB>, row: &JobRow) -> Result<()> {
    let (shard, pool) = first_pool(cluster)?;
    let (sql, values) = sea_query::Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("phase"), row.phase.clone())
        .value(Alias::new("cursors"), encode_cursors(&row.cursors))
        .value(Alias::new("rows_copied"), row.rows_copied)
        .value(Alias::new("rows_total"), row.rows_total)
        .value(Alias::new("updated_at"), now_millis())
        .and_where(Expr::col(Alias::new("id")).eq(row.id.clone()))
        .build_sqlx(DB::builder());
    DB::execute(pool, sql, values)
        .await
        .map_err(|e| db_error(&shard, "update job", e))?;
    Ok(())
}

/// Loads job `id`.
pub(crate) async fn load<DB: Backend>(cluster: &Cluster<DB>, id: &str) -> Result<JobRow> {
    let (shard, pool) = first_pool(cluster)?;
    DB::execute(
        pool,
        CREATE.to_owned(),
        SqlxValues(sea_query::Values(Vec::new())),
    )
    .await
    .map_err(|e| db_error(&shard, "create table", e))?;
    let (sql, values) = sea_query::Query::select()
        .columns(
            [
                "id",
                "model_table",
                "target",
                "phase",
                "cursors",
                "rows_copied",
                "rows_total",
            ]
            .map(Alias::new),
        )
        .from(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("id")).eq(id.to_owned()))
        .build_sqlx(DB::builder());
    let rows = DB::fetch_all(pool, sql, values)
        .await
        .map_err(|e| db_error(&shard, "read job", e))?;
    let row = rows.first().ok_or_else(|| {
        Error::Config(format!(
            "no resharding job `{id}` in `{TABLE}` on shard `{shard}`; pass the id \
             `ReshardJob::id()` returned when the job started"
        ))
    })?;
    let text = |i: usize| -> Result<String> {
        match DB::get_value(row, i, ValueKind::String).map_err(|e| db_error(&shard, "decode", e))? {
            Value::String(Some(s)) => Ok(s),
            other => Err(Error::Config(format!(
                "job `{id}`: column {i} is {other:?}"
            ))),
        }
    };
    let int = |i: usize| -> Result<i64> {
        match DB::get_value(row, i, ValueKind::I64).map_err(|e| db_error(&shard, "decode", e))? {
            Value::BigInt(Some(v)) => Ok(v),
            other => Err(Error::Config(format!(
                "job `{id}`: column {i} is {other:?}"
            ))),
        }
    };
    Ok(JobRow {
        id: text(0)?,
        table: text(1)?,
        target: text(2)?,
        phase: text(3)?,
        cursors: decode_cursors(&text(4)?),
        rows_copied: int(5)?,
        rows_total: int(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_roundtrip() {
        let mut c = BTreeMap::new();
        c.insert("shard_0".to_owned(), "i:5".to_owned());
        c.insert("shard_1".to_owned(), "i:-7,s:61".to_owned());
        assert_eq!(decode_cursors(&encode_cursors(&c)), c);
        assert!(decode_cursors("").is_empty());
    }
}
