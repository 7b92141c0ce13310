//! What the backfill needs beyond [`Backend`]: a source transaction that locks the rows it
//! reads, and the backend's bulk copy of a batch (PostgreSQL: binary `COPY`, see [`BulkCopy`]).

use futures_util::future::BoxFuture;
use grant_core::Backend;
use sea_query_sqlx::SqlxValues;

/// One batch's rows bound for one target, copied in bulk: the rows of `table` with these
/// primary keys (locked by the source transaction, in the source's primary-key order) go to
/// the target's `table` and their keys to its copies registry, in one transaction on the
/// target that commits only once the target provably holds every row as the source does.
#[derive(Debug)]
pub struct BulkCopy {
    /// The model's table.
    pub table: &'static str,
    /// The model's columns, in order.
    pub columns: Vec<&'static str>,
    /// The primary-key columns.
    pub key: Vec<&'static str>,
    /// The batch's moving keys bound for this target, in the source's primary-key order.
    pub keys: Vec<Vec<sea_query::Value>>,
    /// The target's copies registry (`placement::fence::copies_table`).
    pub copies: String,
    /// Verification pass: write only rows that are missing or differ (and count them).
    pub verify: bool,
    /// The schema name the target is attached under on the source's connection, when the
    /// backend attaches targets ([`ReshardBackend::ATTACHES_TARGETS`]: SQLite).
    pub attached: Option<String>,
}

/// The schema name the `i`-th target of a batch is attached under
/// ([`ReshardBackend::ATTACHES_TARGETS`]).
pub(crate) fn attached_schema(i: usize) -> String {
    format!("grant_t{i}")
}

/// The schema name a batch's source is attached under when the backend attaches targets
/// (every statement of the batch names it: the connection's `main` is a neutral one).
pub(crate) const SOURCE_SCHEMA: &str = "grant_s";

/// What a [`BulkCopy`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkOutcome {
    /// Rows that arrived from the source.
    pub rows: u64,
    /// Rows written to the target (every row when copying; missing or differing ones when
    /// verifying).
    pub written: u64,
    /// Rows that still differ from what arrived after the write (the target transaction was
    /// rolled back; the job fails naming the shard).
    pub differ: u64,
}

/// A backend the resharding job can lock source rows on: the batch's source transaction and
/// the clause that locks the rows a `SELECT` reads.
pub trait ReshardBackend: Backend {
    /// Appended to the batch's `SELECT`: ` FOR SHARE` on PostgreSQL (writers of those rows wait
    /// for the batch); empty on SQLite, whose batch transaction holds the write lock instead.
    const LOCK_CLAUSE: &'static str;

    /// Whether a batch's source transaction locks the whole database (SQLite's
    /// `BEGIN IMMEDIATE`) rather than the rows it reads. The job no longer needs it to decide:
    /// a job whose sources are also targets copies one source at a time on every backend.
    const BATCH_LOCKS_DATABASE: bool;

    /// Whether [`ReshardBackend::bulk_copy`] copies (PostgreSQL, SQLite).
    const HAS_BULK_COPY: bool = false;

    /// Whether a job copies in bulk unless its options say otherwise
    /// ([`ReshardOptions::bulk`](super::ReshardOptions::bulk)): SQLite.
    const BULK_BY_DEFAULT: bool = false;

    /// Whether a bulk batch's targets are attached to the source's connection (SQLite:
    /// `ATTACH`, then one `BEGIN IMMEDIATE` that locks the source and every target): its
    /// source transaction is then begun by [`ReshardBackend::begin_attached`].
    const ATTACHES_TARGETS: bool = false;

    /// Begins a bulk batch's source transaction on a connection of its own with the source
    /// attached as `grant_s` and `targets` as [`BulkCopy::attached`] names them (`grant_t0`,
    /// `grant_t1`, ..), for backends that attach targets; the connection is closed afterwards,
    /// never pooled.
    /// `Ok(None)` when a target cannot be attached (an in-memory database): the job copies
    /// row by row.
    fn begin_attached<'a>(
        source: &'a sqlx::Pool<Self>,
        targets: &'a [&'a sqlx::Pool<Self>],
    ) -> BoxFuture<'a, Result<Option<sqlx::Transaction<'static, Self>>, sqlx::Error>> {
        let _ = (source, targets);
        Box::pin(async { Ok(None) })
    }

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

    /// Copies a batch's rows from `source` (whose batch transaction is `tx`) to `target` in
    /// bulk (see `BulkCopy`), or `None` when the backend copies row by row (decoded,
    /// upserted, read back).
    fn bulk_copy<'a>(
        tx: &'a mut sqlx::Transaction<'static, Self>,
        source: &'a sqlx::Pool<Self>,
        target: &'a sqlx::Pool<Self>,
        copy: &'a BulkCopy,
    ) -> Option<BoxFuture<'a, Result<BulkOutcome, sqlx::Error>>> {
        let _ = (tx, source, target, copy);
        None
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! reshard_backend {
    ($db:ty, $lock:expr, $begin:expr) => {
        reshard_backend!($db, $lock, $begin, {});
    };
    ($db:ty, $lock:expr, $begin:expr, { $($bulk:item)* }) => {
        impl ReshardBackend for $db {
            const LOCK_CLAUSE: &'static str = $lock;
            const BATCH_LOCKS_DATABASE: bool = $lock.is_empty();

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

            $($bulk)*
        }
    };
}

#[cfg(feature = "sqlite")]
reshard_backend!(sqlx::Sqlite, "", Some("BEGIN IMMEDIATE"), {
    const HAS_BULK_COPY: bool = true;
    const BULK_BY_DEFAULT: bool = true;
    const ATTACHES_TARGETS: bool = true;

    fn begin_attached<'a>(
        source: &'a sqlx::Pool<Self>,
        targets: &'a [&'a sqlx::Pool<Self>],
    ) -> BoxFuture<'a, Result<Option<sqlx::Transaction<'static, Self>>, sqlx::Error>> {
        Box::pin(lite::begin_attached(source, targets))
    }

    fn bulk_copy<'a>(
        tx: &'a mut sqlx::Transaction<'static, Self>,
        _source: &'a sqlx::Pool<Self>,
        _target: &'a sqlx::Pool<Self>,
        copy: &'a BulkCopy,
    ) -> Option<BoxFuture<'a, Result<BulkOutcome, sqlx::Error>>> {
        Some(Box::pin(lite::bulk_copy(tx, copy)))
    }
});

/// SQLite's bulk copy: the source and the targets are attached to a connection of its own
/// (`ATTACH 'source.db' AS grant_s`, `ATTACH 'target.db' AS grant_t0`, in one order of their
/// paths), whose `BEGIN IMMEDIATE` then holds the source and every attached target for writing
/// until it commits — no writer of either runs meanwhile, and a
/// dual write waits for the batch. The rows never leave SQLite:
///
/// - **copy**: the target's rows of the keys are deleted (a dual write may have put some
///   there), then `INSERT INTO grant_t0."t" (..) SELECT .. FROM grant_s."t" WHERE key IN (..)`
///   and the keys into the target's copies registry the same way;
/// - **verify**: the keys whose source row has no identical target row (every column
///   compared with `IS`) are copied again as above, and then there must be none.
///
/// The batch commits once; the copy is atomic on each database it writes.
#[cfg(feature = "sqlite")]
mod lite {
    use grant_core::cond::quoted;
    use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

    use super::{BulkCopy, BulkOutcome, SOURCE_SCHEMA, attached_schema as schema};
    use crate::stmt::{keys_literal, literal_row};

    /// Keys per statement (each statement writes them as literals).
    const KEYS_PER_STATEMENT: usize = 10_000;

    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

    /// The file of a pool's database, when it can be attached by name (not in memory, on
    /// disk already), made absolute so that every batch orders the same file alike.
    fn attachable(pool: &sqlx::SqlitePool) -> Option<std::path::PathBuf> {
        let options = pool.connect_options();
        let file = options.get_filename();
        if file.as_os_str().is_empty() || file.to_str() == Some(":memory:") {
            return None;
        }
        std::fs::canonicalize(file).ok()
    }

    pub(super) async fn begin_attached(
        source: &sqlx::SqlitePool,
        targets: &[&sqlx::SqlitePool],
    ) -> Result<Option<Tx>, sqlx::Error> {
        let mut files = Vec::with_capacity(targets.len() + 1);
        let Some(file) = attachable(source) else {
            return Ok(None);
        };
        files.push((file, SOURCE_SCHEMA.to_owned()));
        for (i, target) in targets.iter().enumerate() {
            let Some(file) = attachable(target) else {
                return Ok(None);
            };
            files.push((file, schema(i)));
        }
        // The connection's own database is an empty one in memory, and the source and the
        // targets are attached in one order shared by every batch (their paths): `BEGIN
        // IMMEDIATE` locks attached databases in attachment order, so batches of several
        // sources at once that share databases wait for each other and never deadlock.
        files.sort();
        let options = (*source.connect_options()).clone().filename(":memory:");
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let mut conn = pool.acquire().await?;
        // The attachments stay with the connection: it is closed after the batch.
        conn.close_on_drop();
        for (file, name) in &files {
            sqlx::query(AssertSqlSafe(format!(
                "ATTACH DATABASE '{}' AS {name}",
                file.display().to_string().replace('\'', "''"),
            )))
            .execute(&mut *conn)
            .await?;
        }
        let tx = sqlx::Transaction::begin(conn, Some("BEGIN IMMEDIATE".into_sql_str())).await?;
        Ok(Some(tx))
    }

    /// `key IN (..)` of `keys` as literals, columns prefixed with `alias.` when given.
    fn keys_in(alias: &str, names: &[&str], keys: &[Vec<sea_query::Value>]) -> String {
        keys_literal::<sqlx::Sqlite>((!alias.is_empty()).then_some(alias), names, keys)
    }

    async fn run(tx: &mut Tx, sql: String) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }

    /// Replaces the target's rows of `keys` by the source's, and registers them.
    async fn put(
        tx: &mut Tx,
        copy: &BulkCopy,
        to: &str,
        keys: &[Vec<sea_query::Value>],
    ) -> Result<u64, sqlx::Error> {
        let table = quoted(copy.table);
        let cols = copy
            .columns
            .iter()
            .map(|c| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let pk = copy
            .key
            .iter()
            .map(|c| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut written = 0;
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let filter = keys_in("", &copy.key, chunk);
            run(tx, format!("DELETE FROM {to}.{table} WHERE {filter}")).await?;
            written += run(
                tx,
                format!("INSERT INTO {to}.{table} ({cols}) SELECT {cols} FROM {SOURCE_SCHEMA}.{table} WHERE {filter}"),
            )
            .await?;
            run(
                tx,
                format!(
                    "INSERT OR IGNORE INTO {to}.{} ({pk}) SELECT {pk} FROM {SOURCE_SCHEMA}.{table} WHERE {filter}",
                    quoted(&copy.copies)
                ),
            )
            .await?;
        }
        Ok(written)
    }

    /// The keys of `keys` whose source row has no identical row at the target (each key's
    /// position is sent along, so no key value is decoded back).
    async fn differing(
        tx: &mut Tx,
        copy: &BulkCopy,
        to: &str,
        keys: &[Vec<sea_query::Value>],
    ) -> Result<Vec<Vec<sea_query::Value>>, sqlx::Error> {
        let table = quoted(copy.table);
        let names: Vec<String> = (0..copy.key.len()).map(|i| format!("k{i}")).collect();
        let on = copy
            .key
            .iter()
            .zip(&names)
            .map(|(c, k)| format!("s.{} = k.{k}", quoted(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let same = copy
            .columns
            .iter()
            .map(|c| format!("d.{0} IS s.{0}", quoted(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut out = Vec::new();
        for (n, chunk) in keys.chunks(KEYS_PER_STATEMENT).enumerate() {
            let list = chunk
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let mut row = vec![sea_query::Value::BigInt(Some(i as i64))];
                    row.extend(key.iter().cloned());
                    literal_row::<sqlx::Sqlite>(&row)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let rows = sqlx::query(AssertSqlSafe(format!(
                "WITH k(i, {}) AS (VALUES {list}) SELECT k.i FROM k JOIN {SOURCE_SCHEMA}.{table} AS s ON \
                 {on} WHERE NOT EXISTS (SELECT 1 FROM {to}.{table} AS d WHERE {same})",
                names.join(", ")
            )))
            .fetch_all(&mut **tx)
            .await?;
            for row in rows {
                let i: i64 = row.try_get(0)?;
                out.push(keys[n * KEYS_PER_STATEMENT + i as usize].clone());
            }
        }
        Ok(out)
    }

    pub(super) async fn bulk_copy(
        tx: &mut Tx,
        copy: &BulkCopy,
    ) -> Result<BulkOutcome, sqlx::Error> {
        let to = copy.attached.clone().ok_or_else(|| {
            sqlx::Error::Protocol("a SQLite bulk copy needs its target attached".into())
        })?;
        let table = quoted(copy.table);
        if !copy.verify {
            let written = put(tx, copy, &to, &copy.keys).await?;
            return Ok(BulkOutcome {
                rows: written,
                written,
                differ: 0,
            });
        }
        let filter = keys_in("", &copy.key, &copy.keys);
        let (rows,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT count(*) FROM {SOURCE_SCHEMA}.{table} WHERE {filter}"
        )))
        .fetch_one(&mut **tx)
        .await?;
        let rows = rows as u64;
        let differ = differing(tx, copy, &to, &copy.keys).await?;
        let mut written = 0;
        if !differ.is_empty() {
            written = put(tx, copy, &to, &differ).await?;
        }
        let still = if differ.is_empty() {
            0
        } else {
            differing(tx, copy, &to, &differ).await?.len() as u64
        };
        Ok(BulkOutcome {
            rows,
            written,
            differ: still,
        })
    }
}
#[cfg(feature = "postgres")]
reshard_backend!(sqlx::Postgres, " FOR SHARE", None::<&'static str>, {
    const HAS_BULK_COPY: bool = true;

    fn bulk_copy<'a>(
        tx: &'a mut sqlx::Transaction<'static, Self>,
        source: &'a sqlx::Pool<Self>,
        target: &'a sqlx::Pool<Self>,
        copy: &'a BulkCopy,
    ) -> Option<BoxFuture<'a, Result<BulkOutcome, sqlx::Error>>> {
        Some(Box::pin(pg::bulk_copy(tx, source, target, copy)))
    }
});

/// PostgreSQL's bulk copy, in one transaction on the target:
///
/// - **copy**: the target's rows of the keys are deleted (a dual write may have put some
///   there), then the keys written to the copies registry (rows before registry entries, as
///   the application's dual writes do); then a reader on the source sends the rows with
///   `COPY (SELECT .. FOR SHARE) TO STDOUT (FORMAT binary)` — locking exactly the moving rows
///   as it reads them, until the target has committed; each column cast to the target
///   column's type — straight into the target's `COPY .. FROM STDIN (FORMAT binary)`; the
///   bytes pass through Grant undecoded. Keys are one array literal (`= ANY('{..}'::bigint[])`)
///   where they can be. A dual write that lands a key in between (unique violation) or a
///   deadlock with one runs the target's part again. Connections of a copy cut off midway are
///   closed ([`Held`]). The copy trusts `COPY` and commits without waiting for the disk: the
///   verification pass, which always runs before the cutover, compares every row.
/// - **verify**: both sides hash each locked row's text form (session formats pinned: time
///   zone, date and interval styles, float digits, bytea output), rows missing or different
///   at the target are copied again as above, and both sides' row count and hash sum of those
///   rows (order-free, so two collations agree) must then match, or the target rolls back.
#[cfg(feature = "postgres")]
mod pg {
    use std::collections::HashMap;

    use futures_util::StreamExt;
    use grant_core::cond::quoted;
    use sea_query::PostgresQueryBuilder;
    use sea_query::Value;
    use sqlx::{AssertSqlSafe, Row};

    use super::{BulkCopy, BulkOutcome};
    use crate::stmt::keys_literal;

    /// Pins every setting a row's text form depends on, for this transaction.
    const FORMATS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; \
        SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; \
        SET LOCAL bytea_output = 'hex'";

    /// A copy-phase transaction's commit: acknowledged before its WAL is flushed.
    const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";

    /// Tries of the target's part when a dual write races the copy (a retry finds the
    /// source rows locked by the try before: only writes already past their source can race
    /// it).
    const TRIES: usize = 8;

    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    /// A pooled connection that is closed, not returned to its pool, unless released: a
    /// `COPY` cut off mid-stream (the job's future dropped, a timeout) leaves the protocol
    /// where sqlx cannot resume it, and closing the connection also rolls back its work.
    struct Held {
        conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
        clean: bool,
    }

    impl Held {
        async fn acquire(pool: &sqlx::PgPool) -> Result<Self, sqlx::Error> {
            Ok(Held {
                conn: pool.acquire().await?,
                clean: false,
            })
        }

        /// Back to the pool (the connection is idle, outside any transaction).
        fn release(mut self) {
            self.clean = true;
        }
    }

    impl std::ops::Deref for Held {
        type Target = sqlx::PgConnection;
        fn deref(&self) -> &sqlx::PgConnection {
            &self.conn
        }
    }

    impl std::ops::DerefMut for Held {
        fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
            &mut self.conn
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            if !self.clean {
                self.conn.close_on_drop();
            }
        }
    }

    struct Shape<'a> {
        copy: &'a BulkCopy,
        table: String,
        columns: String,
        keys: String,
        /// The source's columns, each cast to the target column's type.
        casts: String,
        /// The source's key columns, cast likewise.
        key_casts: String,
        /// The key columns' types at the target.
        key_types: Vec<String>,
    }

    impl Shape<'_> {
        /// `"k" = ANY('{..}'::type[])` for a one-column integer or text key (one
        /// literal, parsed several times faster than an `IN` list of as many), otherwise an
        /// `IN` list.
        fn filter(&self, keys: &[Vec<Value>]) -> String {
            match self.array(keys) {
                Some(array) => format!("{} = ANY({array})", self.keys),
                None => keys_literal::<sqlx::Postgres>(None, &self.copy.key, keys),
            }
        }

        /// A `SELECT` of `keys` as rows of the key columns (named and typed as the target's).
        fn keyset(&self, keys: &[Vec<Value>]) -> String {
            use sea_query::QueryBuilder as _;
            if let Some(array) = self.array(keys) {
                return format!("SELECT unnest({array}) AS {}", self.keys);
            }
            let rows = keys
                .iter()
                .map(|key| {
                    let parts = key
                        .iter()
                        .map(|v| PostgresQueryBuilder.value_to_string(v))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("({parts})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            let typed = self
                .copy
                .key
                .iter()
                .zip(&self.key_types)
                .enumerate()
                .map(|(i, (c, ty))| format!("column{}::{ty} AS {}", i + 1, quoted(c)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("SELECT {typed} FROM (VALUES {rows}) v")
        }

        /// The keys of a one-column key as one typed array literal, when their values allow.
        fn array(&self, keys: &[Vec<Value>]) -> Option<String> {
            use sea_query::QueryBuilder as _;
            let [_] = &self.copy.key[..] else {
                return None;
            };
            let mut text = String::from("{");
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                match key.first()? {
                    Value::BigInt(Some(v)) => text.push_str(&v.to_string()),
                    Value::Int(Some(v)) => text.push_str(&v.to_string()),
                    Value::SmallInt(Some(v)) => text.push_str(&v.to_string()),
                    Value::String(Some(v)) => {
                        text.push('"');
                        for c in v.chars() {
                            if c == '"' || c == '\\' {
                                text.push('\\');
                            }
                            text.push(c);
                        }
                        text.push('"');
                    }
                    _ => return None,
                }
            }
            text.push('}');
            let literal = PostgresQueryBuilder.value_to_string(&Value::String(Some(text)));
            Some(format!("{literal}::{}[]", self.key_types.first()?))
        }

        /// `ROW(..)::text`'s hash as a number, of `columns`.
        fn hash(columns: &str) -> String {
            format!("('x' || left(md5(ROW({columns})::text), 16))::bit(64)::bigint")
        }

        /// Row count and hash sum of `filter`'s rows (`columns`: plain or cast).
        fn digest(&self, columns: &str, filter: &str) -> String {
            format!(
                "SELECT count(*), coalesce(sum({}::numeric), 0)::text FROM {} WHERE {filter}",
                Self::hash(columns),
                self.table
            )
        }
    }

    pub(super) async fn bulk_copy(
        tx: &mut Tx,
        source: &sqlx::PgPool,
        target: &sqlx::PgPool,
        copy: &BulkCopy,
    ) -> Result<BulkOutcome, sqlx::Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt(tx, source, target, copy).await {
                // A unique violation (a dual write landed a key in between) or a deadlock with
                // the application's writes (this side gives way).
                Err(sqlx::Error::Database(e))
                    if tries < TRIES && matches!(e.code().as_deref(), Some("23505" | "40P01")) =>
                {
                    tracing::debug!(table = copy.table, "bulk copy raced a dual write; again");
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        tx: &mut Tx,
        source: &sqlx::PgPool,
        target: &sqlx::PgPool,
        copy: &BulkCopy,
    ) -> Result<BulkOutcome, sqlx::Error> {
        // The target's transaction, by hand on a held connection (closed if this is cut off).
        let mut conn = Held::acquire(target).await?;
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
        let types: HashMap<String, String> = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(quoted(copy.table))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
        let mut casts = Vec::with_capacity(copy.columns.len());
        for column in &copy.columns {
            let Some(ty) = types.get(*column) else {
                return Err(sqlx::Error::Protocol(format!(
                    "table `{}` on the target has no column `{column}`",
                    copy.table
                )));
            };
            casts.push(format!("{}::{ty}", quoted(column)));
        }
        let list = |names: &[&str]| {
            names
                .iter()
                .map(|c| quoted(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let shape = Shape {
            copy,
            table: quoted(copy.table),
            columns: list(&copy.columns),
            keys: list(&copy.key),
            casts: casts.join(", "),
            key_casts: copy
                .columns
                .iter()
                .zip(&casts)
                .filter(|(c, _)| copy.key.contains(c))
                .map(|(_, cast)| cast.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            key_types: copy.key.iter().map(|c| types[*c].clone()).collect(),
        };

        if !copy.verify {
            // A copy's commits need not wait for the disk: a copy a database crash loses is
            // found missing and copied again by the verification pass that always runs
            // before the cutover.
            sqlx::raw_sql(ASYNC_COMMIT).execute(&mut *conn).await?;
            let (rows, reader) = send(source, &mut conn, &shape, &copy.keys).await?;
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            conn.release();
            done(reader).await?;
            return Ok(BulkOutcome {
                rows,
                written: rows,
                differ: 0,
            });
        }
        sqlx::raw_sql(FORMATS).execute(&mut **tx).await?;
        sqlx::raw_sql(FORMATS).execute(&mut *conn).await?;
        let todo = differing(tx, &mut conn, &shape).await?;
        if todo.is_empty() {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            conn.release();
            return Ok(BulkOutcome {
                rows: copy.keys.len() as u64,
                written: 0,
                differ: 0,
            });
        }
        let (written, reader) = send(source, &mut conn, &shape, &todo).await?;
        // The proof, over the rows copied again.
        let filter = shape.filter(&todo);
        let (there, there_sum): (i64, String) =
            sqlx::query_as(AssertSqlSafe(shape.digest(&shape.columns, &filter)))
                .fetch_one(&mut *conn)
                .await?;
        let (here, here_sum): (i64, String) =
            sqlx::query_as(AssertSqlSafe(shape.digest(&shape.casts, &filter)))
                .fetch_one(&mut **tx)
                .await?;
        let differ = if there == here && there_sum == here_sum {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            0
        } else {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
            (here - there).unsigned_abs().max(1)
        };
        conn.release();
        done(reader).await?;
        Ok(BulkOutcome {
            rows: copy.keys.len() as u64,
            written,
            differ,
        })
    }

    /// The batch's keys whose row the target lacks or holds otherwise (per-row hashes).
    async fn differing(
        tx: &mut Tx,
        conn: &mut Held,
        shape: &Shape<'_>,
    ) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        let keys = &shape.copy.keys;
        let filter = shape.filter(keys);
        let query = |columns: &str, key_columns: &str| {
            format!(
                "SELECT ROW({key_columns})::text, {} FROM {} WHERE {filter}",
                Shape::hash(columns),
                shape.table
            )
        };
        let there: HashMap<String, i64> =
            sqlx::query_as::<_, (String, i64)>(AssertSqlSafe(query(&shape.columns, &shape.keys)))
                .fetch_all(&mut **conn)
                .await?
                .into_iter()
                .collect();
        let here: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "{} ORDER BY {}",
            query(&shape.casts, &shape.key_casts),
            shape.keys
        )))
        .fetch_all(&mut **tx)
        .await?;
        if here.len() != keys.len() {
            return Err(sqlx::Error::Protocol(format!(
                "the source holds {} of the batch's {} locked rows of `{}`",
                here.len(),
                keys.len(),
                shape.copy.table
            )));
        }
        Ok(here
            .iter()
            .zip(keys)
            .filter(|((key, hash), _)| there.get(key) != Some(hash))
            .map(|(_, key)| key.clone())
            .collect())
    }

    /// Replaces the target's rows of `keys` with the source's and registers them as copies:
    /// deletes them and writes their keys to the copies registry (one statement), then pipes
    /// the source's `COPY TO` (on a connection of its own, locking the rows as it reads them;
    /// the verification pass holds them locked already) into the target's `COPY FROM`.
    /// Returns the rows copied.
    async fn send(
        source: &sqlx::PgPool,
        conn: &mut Held,
        shape: &Shape<'_>,
        keys: &[Vec<Value>],
    ) -> Result<(u64, Held), sqlx::Error> {
        let filter = shape.filter(keys);
        // Rows first, then their registry entries: the order of the application's dual
        // writes, so the two never wait on each other in a cycle.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {filter}; \
             INSERT INTO {copies} ({keys}) SELECT {keys} FROM ({keyset}) t \
             ON CONFLICT DO NOTHING",
            table = shape.table,
            copies = quoted(&shape.copy.copies),
            keys = shape.keys,
            keyset = shape.keyset(keys),
        )))
        .execute(&mut **conn)
        .await?;
        let mut sink = conn
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                shape.table, shape.columns
            ))
            .await?;
        let out = format!(
            "COPY (SELECT {} FROM {} WHERE {filter} FOR SHARE) TO STDOUT (FORMAT binary)",
            shape.casts, shape.table
        );
        // The reader's transaction keeps the rows locked until the target has committed.
        let mut reader = Held::acquire(source).await?;
        sqlx::raw_sql("BEGIN; SET LOCAL synchronous_commit = off")
            .execute(&mut *reader)
            .await?;
        let streamed = async {
            let mut rows = reader.copy_out_raw(&out).await?;
            while let Some(chunk) = rows.next().await {
                sink.send(chunk?).await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        if let Err(e) = streamed {
            // The sink must be ended before its connection is used (or dropped) again; the
            // reader, maybe cut off mid-stream, is closed.
            let _ = sink.abort(e.to_string()).await;
            return Err(e);
        }
        let rows = sink.finish().await?;
        Ok((rows, reader))
    }

    /// Ends the reader's transaction once the target committed, and returns it to its pool.
    async fn done(mut reader: Held) -> Result<(), sqlx::Error> {
        sqlx::raw_sql("COMMIT").execute(&mut *reader).await?;
        reader.release();
        Ok(())
    }
}
