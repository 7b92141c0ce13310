//! Schema changes on every shard, with a per-shard report: a half-applied change is reported,
//! never hidden.

use futures_util::future::join_all;
use grant_core::{Backend, Error, Model, Result, ShardId};
use sea_query::Values;
use sea_query_sqlx::SqlxValues;

use crate::cluster::Cluster;

/// The ledger table [`Cluster::migrate`] keeps on every shard.
pub const LEDGER: &str = crate::cluster::MIGRATION_LEDGER;

/// One named, ordered schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// A unique, stable name, e.g. `"0001_create_users"`; migrations apply in slice order.
    pub name: &'static str,
    /// The SQL to run (one statement).
    pub sql: &'static str,
}

/// What happened on one shard.
#[derive(Debug)]
pub struct ShardOutcome {
    /// The shard's name.
    pub shard: String,
    /// Migrations applied now, in order.
    pub applied: Vec<&'static str>,
    /// Migrations found already applied.
    pub skipped: Vec<&'static str>,
    /// The migration that failed (nothing of it was applied) and why; later ones were not tried.
    pub failed: Option<(&'static str, Error)>,
}

/// Per-shard results of a schema change.
#[derive(Debug)]
pub struct SchemaReport {
    /// One entry per shard, in cluster order.
    pub shards: Vec<ShardOutcome>,
}

impl SchemaReport {
    /// Whether every shard succeeded.
    pub fn is_complete(&self) -> bool {
        self.shards.iter().all(|s| s.failed.is_none())
    }

    /// The shards that failed, with the failing migration and error.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &'static str, &Error)> {
        self.shards.iter().filter_map(|s| {
            s.failed
                .as_ref()
                .map(|(name, error)| (s.shard.as_str(), *name, error))
        })
    }

    /// `Ok` when complete, else [`Error::Config`] naming every shard that failed and why, and
    /// saying that rerunning applies only what is missing.
    ///
    /// # Errors
    ///
    /// As described.
    pub fn into_result(self) -> Result<Self> {
        if self.is_complete() {
            return Ok(self);
        }
        let failed: Vec<String> = self
            .failures()
            .map(|(shard, name, error)| format!("`{name}` on `{shard}`: {error}"))
            .collect();
        Err(Error::Config(format!(
            "schema change half-applied: failed {}; the other shards succeeded; fix the cause \
             and run it again — shards that already have a migration skip it",
            failed.join("; ")
        )))
    }
}

fn no_values() -> SqlxValues {
    SqlxValues(Values(Vec::new()))
}

impl<DB: Backend> Cluster<DB> {
    fn id_at(&self, i: usize) -> ShardId {
        self.shard_id(i).unwrap_or(ShardId::new(i as u32))
    }

    /// Runs `sql` on every shard, in parallel; reports each shard's outcome (rows affected or
    /// error) rather than stopping at the first failure.
    ///
    /// `sql` is trusted text (DDL and maintenance statements): never build it from user input.
    pub async fn execute_on_all_shards(&self, sql: &str) -> Vec<(String, Result<u64>)> {
        let names: Vec<String> = self.shard_names().map(str::to_owned).collect();
        let results = join_all(
            names
                .iter()
                .enumerate()
                .map(|(i, _)| self.execute("-", self.id_at(i), (sql.to_owned(), no_values()))),
        )
        .await;
        // The statement may have changed tables: check them again before their next use.
        self.forget_schemas();
        names.into_iter().zip(results).collect()
    }

    /// Applies `migrations` on every shard, in parallel across shards and in order on each:
    /// each migration runs in one transaction with its entry in the [`LEDGER`] table, so a shard
    /// has a migration entirely or not at all, and rerunning skips what a shard already has.
    ///
    /// # Errors
    ///
    /// Only when the ledger itself cannot be created or read on a shard — reported in that
    /// shard's outcome like any other failure; the call itself returns every shard's outcome.
    ///
    /// Tables are checked against their models again before their next use (the schema
    /// check's cache is cleared).
    pub async fn migrate(&self, migrations: &[Migration]) -> SchemaReport {
        let names: Vec<String> = self.shard_names().map(str::to_owned).collect();
        let shards = join_all(names.into_iter().enumerate().map(|(i, shard)| async move {
            let mut outcome = ShardOutcome {
                shard: shard.clone(),
                applied: Vec::new(),
                skipped: Vec::new(),
                failed: None,
            };
            let id = self.id_at(i);
            let ledger = format!(
                "CREATE TABLE IF NOT EXISTS {LEDGER} (name VARCHAR(255) PRIMARY KEY, \
                 applied_at VARCHAR(64) NOT NULL)"
            );
            if let Err(e) = self.execute("-", id, (ledger, no_values())).await {
                outcome.failed = Some(("(ledger)", e));
                return outcome;
            }
            for m in migrations {
                let mut check = sea_query::Query::select();
                check.expr(sea_query::Expr::val(1)).from(LEDGER).and_where(
                    sea_query::ExprTrait::eq(sea_query::Expr::col("name"), m.name),
                );
                let statement = sea_query_sqlx::SqlxBinder::build_sqlx(&check, DB::builder());
                match self
                    .fetch("-", id, Some(crate::ReadPolicy::Primary), statement)
                    .await
                {
                    Ok(rows) if !rows.is_empty() => {
                        outcome.skipped.push(m.name);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        outcome.failed = Some((m.name, e));
                        return outcome;
                    }
                }
                let mut record = sea_query::Query::insert();
                record
                    .into_table(LEDGER)
                    .columns(["name", "applied_at"])
                    .values_panic([m.name.into(), now().into()]);
                let statements = vec![
                    (m.sql.to_owned(), no_values()),
                    sea_query_sqlx::SqlxBinder::build_sqlx(&record, DB::builder()),
                ];
                match self.execute_atomic("-", id, statements).await {
                    Ok(_) => outcome.applied.push(m.name),
                    Err(e) => {
                        outcome.failed = Some((m.name, e));
                        return outcome;
                    }
                }
            }
            outcome
        }))
        .await;
        self.forget_schemas();
        SchemaReport { shards }
    }

    /// Checks that the cluster has every shard model `M` uses ([`Cluster::check`]) and that
    /// on each of them the model's table exists with every column of the model (extra columns
    /// are fine). SQLite: `PRAGMA table_info`; PostgreSQL: `information_schema.columns` of the
    /// current schema. A table found complete is remembered until the next
    /// [`Cluster::migrate`]; Grant runs the same check before a model's first statement on each
    /// shard, so a missing column is an error, never a wrong answer.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] for a missing shard; [`Error::SchemaMismatch`] naming the table,
    /// the shard and the missing columns (or the missing table), saying to migrate; the
    /// shard's error when it cannot be asked.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future only forgoes the check; nothing is written.
    pub async fn check_schema<M: Model>(&self) -> Result<()> {
        self.check::<M>()?;
        let shards = match self.placement::<M>() {
            Some(state) => state.placement.all_shards::<M>(),
            None => M::shards().to_vec(),
        };
        for outcome in join_all(shards.into_iter().map(|s| self.verify_table::<M>(s))).await {
            outcome?;
        }
        Ok(())
    }

    /// The schema check of model `M`'s table on `shard` before a statement: a cached answer
    /// after the first time (see [`Cluster::check_schema`]).
    #[inline]
    pub(crate) async fn ensure_schema<M: Model>(&self, shard: ShardId) -> Result<()> {
        if self.schema_verified::<M>(shard) {
            return Ok(());
        }
        self.verify_table::<M>(shard).await
    }

    /// [`Cluster::ensure_schema`] on every shard of `shards` (in parallel), returning only a
    /// [`Error::SchemaMismatch`]: a shard that cannot be asked fails its statement instead
    /// (where a query may tolerate failed shards).
    pub(crate) async fn ensure_schemas<M: Model>(
        &self,
        shards: impl IntoIterator<Item = ShardId>,
    ) -> Result<()> {
        let pending: Vec<ShardId> = shards
            .into_iter()
            .filter(|&s| !self.schema_verified::<M>(s))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        for outcome in join_all(pending.into_iter().map(|s| self.verify_table::<M>(s))).await {
            if let Err(e @ Error::SchemaMismatch { .. }) = outcome {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The schema check of model `M`'s table on each of `shards`, uncached (after
    /// `create_table`: a table of that name may have existed before).
    pub(crate) async fn verify_tables<M: Model>(&self, shards: &[ShardId]) -> Result<()> {
        for outcome in join_all(shards.iter().map(|&s| self.verify_table::<M>(s))).await {
            outcome?;
        }
        Ok(())
    }

    /// Reads the columns of model `M`'s table on `shard` and compares them with the model's.
    async fn verify_table<M: Model>(&self, shard: ShardId) -> Result<()> {
        let rows = self
            .fetch_unlogged(M::META.name, shard, columns_query::<DB>(M::META.table))
            .await?;
        self.compare_columns::<M>(shard, &rows)
    }

    /// Compares the column names in `rows` (of [`columns_query`]) with model `M`'s: remembers
    /// a complete table, or names what is missing.
    pub(crate) fn compare_columns<M: Model>(&self, shard: ShardId, rows: &[DB::Row]) -> Result<()> {
        let table = M::META.table;
        let mut present = std::collections::HashSet::with_capacity(rows.len());
        for row in rows {
            if let Some(name) =
                DB::get_string(row, 0).map_err(|e| Error::on_shard(M::META.name, shard, e))?
            {
                present.insert(name);
            }
        }
        let missing: Vec<&'static str> = M::META
            .column_names()
            .filter(|c| !present.contains(*c))
            .collect();
        if missing.is_empty() {
            self.set_schema_verified::<M>(shard);
            return Ok(());
        }
        Err(Error::SchemaMismatch {
            model: M::META.name,
            table,
            shard,
            missing: if present.is_empty() {
                Vec::new()
            } else {
                missing
            },
        })
    }
}

/// The statement that lists the columns of `table` on a shard: SQLite's `PRAGMA table_info`;
/// PostgreSQL's `information_schema.columns` of the current schema.
pub(crate) fn columns_query<DB: Backend>(table: &'static str) -> (String, SqlxValues) {
    let sql = if <DB as Backend>::NAME == "SQLite" {
        "SELECT name FROM pragma_table_info(?)"
    } else {
        "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1"
    };
    (sql.to_owned(), SqlxValues(Values(vec![table.into()])))
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix:{secs}")
}
