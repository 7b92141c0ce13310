//! The persisted state of resharding jobs: table `grant_reshard_jobs` on the cluster's first
//! shard, one row per job.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use grant_core::{Backend, Error, Result, ShardId, ValueKind};
use sea_query::{Alias, Expr, ExprTrait, Value};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cluster::Cluster;

const TABLE: &str = "grant_reshard_jobs";

const CREATE: &str = "CREATE TABLE IF NOT EXISTS grant_reshard_jobs (\
    id TEXT PRIMARY KEY, model_table TEXT NOT NULL, target TEXT NOT NULL, phase TEXT NOT NULL, \
    cursors TEXT NOT NULL, rows_copied BIGINT NOT NULL, rows_total BIGINT NOT NULL, \
    started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, source TEXT NOT NULL DEFAULT '')";

/// Job tables made before the job recorded its source placement gain the column.
const ADD_SOURCE: &str =
    "ALTER TABLE grant_reshard_jobs ADD COLUMN source TEXT NOT NULL DEFAULT ''";

/// On every source shard: the jobs whose moved rows have left this shard. The marker is
/// written in the same transaction that deletes the shard's moved rows, so "marked" and
/// "deleted" are one fact: a recovery knows exactly which sources still own their rows.
const MARKS: &str = "CREATE TABLE IF NOT EXISTS grant_reshard_moved (\
    job_id TEXT PRIMARY KEY, moved_at BIGINT NOT NULL)";

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
    /// The placement the job moves rows from (its `Debug` fingerprint).
    pub(crate) source: String,
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The shard the job table lives on: the cluster's first.
fn first_shard<DB: Backend>(cluster: &Cluster<DB>) -> Result<(String, ShardId)> {
    cluster.first_shard("resharding jobs")
}

fn db_error(shard: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "resharding job table `{TABLE}` on shard `{shard}`: {what} failed: {e}; check that the \
         shard is reachable and writable"
    ))
}

/// A statement on the job table's shard, through the cluster's statement path.
async fn execute<DB: Backend>(
    cluster: &Cluster<DB>,
    (name, id): &(String, ShardId),
    what: &str,
    statement: (String, SqlxValues),
) -> Result<u64> {
    cluster
        .execute("-", *id, statement)
        .await
        .map_err(|e| db_error(name, what, e))
}

/// A read on the job table's shard (its primary), through the cluster's statement path.
async fn fetch<DB: Backend>(
    cluster: &Cluster<DB>,
    (name, id): &(String, ShardId),
    what: &str,
    statement: (String, SqlxValues),
) -> Result<Vec<DB::Row>> {
    cluster
        .fetch("-", *id, Some(crate::ReadPolicy::Primary), statement)
        .await
        .map_err(|e| db_error(name, what, e))
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

pub(crate) fn no_values() -> SqlxValues {
    SqlxValues(sea_query::Values(Vec::new()))
}

/// Creates the job table if missing, with every column.
async fn ensure_table<DB: Backend>(cluster: &Cluster<DB>, at: &(String, ShardId)) -> Result<()> {
    execute(
        cluster,
        at,
        "create table",
        (CREATE.to_owned(), no_values()),
    )
    .await?;
    // The `source` column, added by a later version: only when missing — `ALTER TABLE` takes
    // an exclusive lock on the job table even when there is nothing to add.
    let columns = fetch(
        cluster,
        at,
        "list columns",
        crate::schema::columns_query::<DB>(TABLE),
    )
    .await?;
    let has_source = columns
        .iter()
        .any(|row| matches!(DB::get_string(row, 0), Ok(Some(name)) if name == "source"));
    if has_source {
        return Ok(());
    }
    // PostgreSQL says `IF NOT EXISTS`; SQLite has no such clause and answers "duplicate
    // column", which is the same fact.
    let add = if <DB as Backend>::NAME == "PostgreSQL" {
        ADD_SOURCE.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS")
    } else {
        ADD_SOURCE.to_owned()
    };
    if let Err(e) = cluster.execute("-", at.1, (add, no_values())).await {
        let text = e.to_string();
        if !(text.contains("duplicate column") || text.contains("already exists")) {
            return Err(db_error(&at.0, "add column `source`", e));
        }
    }
    Ok(())
}

/// Creates the job table (idempotent) and inserts `row`.
pub(crate) async fn create<DB: Backend>(cluster: &Cluster<DB>, row: &JobRow) -> Result<()> {
    let at = first_shard(cluster)?;
    ensure_table(cluster, &at).await?;
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
                "source",
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
            row.source.clone().into(),
        ])
        .build_sqlx(DB::builder());
    execute(cluster, &at, "insert job", (sql, values)).await?;
    Ok(())
}

/// Writes the job's phase, cursors and counts.
pub(crate) async fn save<DB: Backend>(cluster: &Cluster<DB>, row: &JobRow) -> Result<()> {
    let at = first_shard(cluster)?;
    let (sql, values) = sea_query::Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("phase"), row.phase.clone())
        .value(Alias::new("cursors"), encode_cursors(&row.cursors))
        .value(Alias::new("rows_copied"), row.rows_copied)
        .value(Alias::new("rows_total"), row.rows_total)
        .value(Alias::new("updated_at"), now_millis())
        .and_where(Expr::col(Alias::new("id")).eq(row.id.clone()))
        .build_sqlx(DB::builder());
    execute(cluster, &at, "update job", (sql, values)).await?;
    Ok(())
}

/// Loads job `id`.
pub(crate) async fn load<DB: Backend>(cluster: &Cluster<DB>, id: &str) -> Result<JobRow> {
    let at = first_shard(cluster)?;
    ensure_table(cluster, &at).await?;
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
                "source",
            ]
            .map(Alias::new),
        )
        .from(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("id")).eq(id.to_owned()))
        .build_sqlx(DB::builder());
    let rows = fetch(cluster, &at, "read job", (sql, values)).await?;
    let shard = &at.0;
    let row = rows.first().ok_or_else(|| {
        Error::Config(format!(
            "no resharding job `{id}` in `{TABLE}` on shard `{shard}`; pass the id \
             `ReshardJob::id()` returned when the job started"
        ))
    })?;
    let text = |i: usize| -> Result<String> {
        match DB::get_value(row, i, ValueKind::String).map_err(|e| db_error(shard, "decode", e))? {
            Value::String(Some(s)) => Ok(s),
            other => Err(Error::Config(format!(
                "job `{id}`: column {i} is {other:?}"
            ))),
        }
    };
    let int = |i: usize| -> Result<i64> {
        match DB::get_value(row, i, ValueKind::I64).map_err(|e| db_error(shard, "decode", e))? {
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
        source: text(7)?,
    })
}

/// The ids and phases of the jobs on `table` that are neither done nor rolled back, oldest
/// first.
pub(crate) async fn unfinished<DB: Backend>(
    cluster: &Cluster<DB>,
    table: &str,
) -> Result<Vec<(String, String)>> {
    let at = first_shard(cluster)?;
    ensure_table(cluster, &at).await?;
    let (sql, values) = sea_query::Query::select()
        .columns([Alias::new("id"), Alias::new("phase")])
        .from(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("model_table")).eq(table.to_owned()))
        .and_where(Expr::col(Alias::new("phase")).is_not_in(["done", "rolled back"]))
        .order_by(Alias::new("started_at"), sea_query::Order::Asc)
        .order_by(Alias::new("id"), sea_query::Order::Asc)
        .build_sqlx(DB::builder());
    let rows = fetch(cluster, &at, "list jobs", (sql, values)).await?;
    let shard = &at.0;
    rows.iter()
        .map(|row| {
            let text = |i: usize| match DB::get_value(row, i, ValueKind::String) {
                Ok(Value::String(Some(s))) => Ok(s),
                Ok(other) => Err(Error::Config(format!(
                    "`{TABLE}` on shard `{shard}`: column {i} is {other:?}"
                ))),
                Err(e) => Err(db_error(shard, "decode", e)),
            };
            Ok((text(0)?, text(1)?))
        })
        .collect()
}

/// Creates the moved-marker table on `shard` (idempotent).
pub(crate) async fn create_marks<DB: Backend>(
    cluster: &Cluster<DB>,
    model: &'static str,
    shard: ShardId,
) -> Result<()> {
    cluster
        .execute_atomic(model, shard, vec![(MARKS.to_owned(), no_values())])
        .await?;
    Ok(())
}

/// The statement that claims job `id`'s marker on the shard it runs on, inside the
/// transaction that gives up (or takes back) the shard's rows: it returns a row when it wrote
/// the marker (the shard had not given up its rows), none when the marker was there. Being an
/// insert, it waits for any other transaction that wrote the marker and has not ended (a
/// cancelled run's statement still finishing on the server), so what it answers is settled.
pub(crate) fn claim<DB: Backend>(id: &str) -> (String, SqlxValues) {
    sea_query::Query::insert()
        .into_table(Alias::new("grant_reshard_moved"))
        .columns([Alias::new("job_id"), Alias::new("moved_at")])
        .values_panic([id.to_owned().into(), now_millis().into()])
        .on_conflict(
            sea_query::OnConflict::column(Alias::new("job_id"))
                .do_nothing()
                .to_owned(),
        )
        .returning_col(Alias::new("job_id"))
        .build_sqlx(DB::builder())
}

/// The statement that removes job `id`'s marker (a rollback copied the rows back).
pub(crate) fn unmark<DB: Backend>(id: &str) -> (String, SqlxValues) {
    sea_query::Query::delete()
        .from_table(Alias::new("grant_reshard_moved"))
        .and_where(Expr::col(Alias::new("job_id")).eq(id.to_owned()))
        .build_sqlx(DB::builder())
}

/// The statement that reads job `id`'s marker.
pub(crate) fn marked<DB: Backend>(id: &str) -> (String, SqlxValues) {
    sea_query::Query::select()
        .column(Alias::new("job_id"))
        .from(Alias::new("grant_reshard_moved"))
        .and_where(Expr::col(Alias::new("job_id")).eq(id.to_owned()))
        .build_sqlx(DB::builder())
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
