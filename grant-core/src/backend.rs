//! The backend abstraction: what Grant needs from each sqlx database type.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sea_query::Value;

use crate::column::SqlType;
use crate::value::ValueKind;
use sea_query::{ColumnType, QueryBuilder, SchemaBuilder};
use sea_query_sqlx::SqlxValues;

/// How a backend writes Grant's `like` and `ilike` (see [`crate::like`] for what they mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LikeSyntax {
    /// `col COLLATE "<TEXT_COLLATION>" LIKE p` and `... ILIKE p` (the backslash is
    /// PostgreSQL's default escape character): in the `C` collation PostgreSQL's `LIKE`
    /// compares characters exactly and `ILIKE` folds ASCII letters only.
    CollatedIlike,
    /// `col GLOB g` (the pattern translated to `GLOB` syntax, case-sensitive) and
    /// `col LIKE p ESCAPE '\'` (SQLite's `LIKE` folds ASCII letters only).
    GlobAndLike,
}

/// A database Grant can shard over: implemented for sqlx's `Sqlite` and `Postgres`.
pub trait Backend: sqlx::Database + Sized {
    /// Human name for messages.
    const NAME: &'static str;
    /// The most bind parameters one statement may carry.
    const MAX_BIND_PARAMS: usize;
    /// Whether NULL sorts before every value in ascending order (SQLite) or after (PostgreSQL).
    const NULLS_FIRST_IN_ASC: bool;

    /// The collation cross-shard ordering and `MIN`/`MAX` of text use, so every shard sorts
    /// text the way the merger compares it (by bytes). `None`: the default already does.
    const TEXT_COLLATION: Option<&'static str>;

    /// How this backend spells Grant's `like` (case-sensitive) and `ilike` (ASCII letters
    /// case-insensitive), so both mean the same everywhere (see [`crate::like`]).
    const LIKE: LikeSyntax;

    /// sea-query's builder for this dialect.
    type Builder: QueryBuilder + SchemaBuilder + Default + Send + Sync;

    /// The dialect's query builder.
    fn builder() -> Self::Builder {
        Self::Builder::default()
    }

    /// Connection options for a shard URL. SQLite accepts `sqlite:` URLs and plain file paths and
    /// creates missing files.
    ///
    /// # Errors
    ///
    /// The driver's error for a malformed URL.
    fn connect_options(
        url: &str,
    ) -> Result<<Self::Connection as sqlx::Connection>::Options, sqlx::Error>;

    /// Connection options that make the server itself cancel any statement running longer than
    /// `timeout` on connections made with them.
    ///
    /// PostgreSQL: the `statement_timeout` setting, sent in the connection's startup packet
    /// (`options=-c statement_timeout=<ms>`); a statement it cancels fails with SQLSTATE 57014.
    /// SQLite has no server and no such setting: the options come back unchanged, and only
    /// Grant's client-side timeout applies. That is also the default for a backend that does
    /// not say otherwise.
    fn with_statement_timeout(
        options: <Self::Connection as sqlx::Connection>::Options,
        timeout: std::time::Duration,
    ) -> <Self::Connection as sqlx::Connection>::Options {
        let _ = timeout;
        options
    }

    /// Prepares every new connection before its pool hands it out (sqlx's `after_connect`).
    ///
    /// SQLite: double-quoted strings are identifiers only (`SQLITE_DBCONFIG_DQS_DML` off), so
    /// a column the table lacks is the error "no such column" instead of being read as a
    /// string literal — a wrong answer. Other backends: nothing, the default.
    fn after_connect(connection: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        let _ = connection;
        Box::pin(async { Ok(()) })
    }

    /// Runs a statement on a pool and returns all rows.
    fn fetch_all(
        pool: &sqlx::Pool<Self>,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'_, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Runs a statement on a pool and returns its first row, if any, without reading on
    /// (sqlx's `fetch_optional`: for a one-row answer it saves SQLite a step and a message from
    /// its worker thread). By default, [`fetch_all`](Self::fetch_all)'s first row.
    fn fetch_optional(
        pool: &sqlx::Pool<Self>,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>> {
        Box::pin(async move { Ok(Self::fetch_all(pool, sql, values).await?.into_iter().next()) })
    }

    /// Runs a statement on a pool and returns the number of rows it affected.
    fn execute(
        pool: &sqlx::Pool<Self>,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'_, Result<u64, sqlx::Error>>;

    /// Runs statements in one transaction on a pool: all or nothing. Returns the rows affected.
    fn execute_atomic(
        pool: &sqlx::Pool<Self>,
        statements: Vec<(String, SqlxValues)>,
    ) -> BoxFuture<'_, Result<u64, sqlx::Error>>;

    /// Whether the backend has two-phase commit (`PREPARE TRANSACTION` / `COMMIT PREPARED`), which
    /// atomic transactions over several shards need.
    const TWO_PHASE: bool;

    /// The statement that opens a transaction that may write. SQLite uses `BEGIN IMMEDIATE`, so
    /// the write lock is taken up front and a transaction never fails half-way upgrading it.
    const BEGIN: &'static str;

    /// Runs a statement on one connection (inside whatever transaction it has open) and returns
    /// the number of rows it affected.
    fn execute_on<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>>;

    /// Runs a statement on one connection and returns all rows.
    fn fetch_all_on<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Runs a statement on one connection and returns its first row, if any, without reading
    /// on (see [`fetch_optional`](Self::fetch_optional)). By default,
    /// [`fetch_all_on`](Self::fetch_all_on)'s first row.
    fn fetch_optional_on<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        values: SqlxValues,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        Box::pin(async move {
            Ok(Self::fetch_all_on(conn, sql, values)
                .await?
                .into_iter()
                .next())
        })
    }

    /// The statement that notifies the listeners of `channel` (PostgreSQL: `SELECT
    /// pg_notify(..)`, delivered when it commits); `None` for a backend without notifications.
    fn notify_sql(channel: &str) -> Option<String> {
        let _ = channel;
        None
    }

    /// A stream that yields once per notification on `channel`, over a connection of its own
    /// made with `options` — outside every pool of the cluster, so it takes no connection from
    /// them (PostgreSQL `LISTEN`; it ends if the listener fails for good); `None` for a
    /// backend without notifications (SQLite: followers poll).
    fn listen(
        options: <Self::Connection as sqlx::Connection>::Options,
        channel: &'static str,
    ) -> BoxFuture<'static, Option<BoxStream<'static, ()>>> {
        let _ = (options, channel);
        Box::pin(async { None })
    }

    /// Runs parameterless SQL (`BEGIN`, `COMMIT`, `PREPARE TRANSACTION '..'`) on one connection
    /// with the simple query protocol.
    fn raw_on<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;

    /// Runs a statement on a pool and streams its rows as the database produces them.
    fn fetch_stream(
        pool: &sqlx::Pool<Self>,
        sql: String,
        values: SqlxValues,
    ) -> BoxStream<'_, Result<Self::Row, sqlx::Error>>;

    /// Reads column `index` of a row as a dynamic value of `kind` (NULL included).
    fn get_value(row: &Self::Row, index: usize, kind: ValueKind) -> Result<Value, sqlx::Error> {
        Ok(match kind {
            ValueKind::Bool => Value::Bool(Self::get_bool(row, index)?),
            ValueKind::I16 => Value::SmallInt(Self::get_i16(row, index)?),
            ValueKind::I32 => Value::Int(Self::get_i32(row, index)?),
            ValueKind::I64 => Value::BigInt(Self::get_i64(row, index)?),
            ValueKind::F32 => Value::Float(Self::get_f32(row, index)?),
            ValueKind::F64 => Value::Double(Self::get_f64(row, index)?),
            ValueKind::String => Value::String(Self::get_string(row, index)?),
            ValueKind::Bytes => Value::Bytes(Self::get_bytes(row, index)?),
            #[allow(unreachable_patterns)]
            other => Self::get_feature_value(row, index, other)?,
        })
    }

    /// Reads column `index` of a row as a value of one of the feature kinds (`chrono`, `time`,
    /// `uuid`, `rust_decimal`, `json`); [`get_value`](Self::get_value) reads the others.
    fn get_feature_value(
        row: &Self::Row,
        index: usize,
        kind: ValueKind,
    ) -> Result<Value, sqlx::Error>;

    /// Reads column `index` of a row as a `T` (NULL only for `Option<_>`).
    fn get_column<T: SqlType>(row: &Self::Row, index: usize) -> Result<T, sqlx::Error> {
        let value = Self::get_value(row, index, T::KIND)?;
        T::from_value(value).map_err(|e| sqlx::Error::ColumnDecode {
            index: index.to_string(),
            source: Box::new(e),
        })
    }

    /// The collation a column of `column_type` is declared with and compared under, so every
    /// shard orders it as the merger does: text in byte order (`TEXT_COLLATION`), and on SQLite
    /// decimals (stored as text) by number ([`crate::types::DECIMAL_COLLATION`]).
    fn sort_collation(column_type: &ColumnType) -> Option<&'static str> {
        if crate::cond::is_text_type(column_type) {
            Self::TEXT_COLLATION
        } else {
            None
        }
    }

    /// The type `create_table` declares a column of `column_type` with (SQLite stores decimals
    /// as text: a `real` column would round them).
    fn ddl_column_type(column_type: ColumnType) -> ColumnType {
        column_type
    }

    /// The exact per-shard sum of a decimal column, `{}` standing for the quoted column:
    /// `SUM({})` (PostgreSQL's `numeric` sum is exact), SQLite's
    /// [`crate::types::DECIMAL_SUM`].
    const DECIMAL_SUM_SQL: &'static str = "SUM({})";

    /// Reads a nullable `bool` column.
    fn get_bool(row: &Self::Row, index: usize) -> Result<Option<bool>, sqlx::Error>;
    /// Reads a nullable `i16` column.
    fn get_i16(row: &Self::Row, index: usize) -> Result<Option<i16>, sqlx::Error>;
    /// Reads a nullable `i32` column.
    fn get_i32(row: &Self::Row, index: usize) -> Result<Option<i32>, sqlx::Error>;
    /// Reads a nullable `i64` column.
    fn get_i64(row: &Self::Row, index: usize) -> Result<Option<i64>, sqlx::Error>;
    /// Reads a nullable `f32` column.
    fn get_f32(row: &Self::Row, index: usize) -> Result<Option<f32>, sqlx::Error>;
    /// Reads a nullable `f64` column.
    fn get_f64(row: &Self::Row, index: usize) -> Result<Option<f64>, sqlx::Error>;
    /// Reads a nullable text column.
    fn get_string(row: &Self::Row, index: usize) -> Result<Option<String>, sqlx::Error>;
    /// Reads a nullable bytes column.
    fn get_bytes(row: &Self::Row, index: usize) -> Result<Option<Vec<u8>>, sqlx::Error>;

    /// Reads column `index` of a row.
    fn get<T>(row: &Self::Row, index: usize) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, Self> + sqlx::Type<Self>;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! backend {
    ($db:ty, $name:literal, $max:expr, $nulls_first:expr, $collation:expr, $like:expr,
     $builder:ty, $opts:expr,
     $stmt_timeout:expr, $after:expr, two_phase: $two_phase:expr, begin: $begin:literal,
     adapt: $adapt:expr, decimal: $decimal:expr, { $($extra:tt)* }) => {
        impl Backend for $db {
            const NAME: &'static str = $name;
            const TWO_PHASE: bool = $two_phase;
            const BEGIN: &'static str = $begin;
            const TEXT_COLLATION: Option<&'static str> = $collation;
            const LIKE: LikeSyntax = $like;
            const MAX_BIND_PARAMS: usize = $max;
            const NULLS_FIRST_IN_ASC: bool = $nulls_first;
            type Builder = $builder;

            $($extra)*

            fn get_feature_value(
                row: &Self::Row,
                index: usize,
                kind: ValueKind,
            ) -> Result<Value, sqlx::Error> {
                let _ = (row, index);
                #[allow(unreachable_patterns, unreachable_code)]
                Ok(match kind {
                    #[cfg(feature = "chrono")]
                    ValueKind::ChronoDate => Value::ChronoDate(sqlx::Row::try_get(row, index)?),
                    #[cfg(feature = "chrono")]
                    ValueKind::ChronoDateTime => {
                        Value::ChronoDateTime(sqlx::Row::try_get(row, index)?)
                    }
                    #[cfg(feature = "chrono")]
                    ValueKind::ChronoDateTimeUtc => {
                        Value::ChronoDateTimeUtc(sqlx::Row::try_get(row, index)?)
                    }
                    #[cfg(feature = "time")]
                    ValueKind::TimeDate => Value::TimeDate(sqlx::Row::try_get(row, index)?),
                    #[cfg(feature = "time")]
                    ValueKind::TimeOffsetDateTime => {
                        let t: Option<time::OffsetDateTime> = sqlx::Row::try_get(row, index)?;
                        Value::TimeDateTimeWithTimeZone(
                            t.map(|t| t.to_offset(time::UtcOffset::UTC)),
                        )
                    }
                    #[cfg(feature = "uuid")]
                    ValueKind::Uuid => Value::Uuid(sqlx::Row::try_get(row, index)?),
                    #[cfg(feature = "rust_decimal")]
                    ValueKind::Decimal => Value::Decimal($decimal(row, index)?),
                    #[cfg(feature = "json")]
                    ValueKind::Json => {
                        let v: Option<serde_json::Value> = sqlx::Row::try_get(row, index)?;
                        Value::Json(v.map(Box::new))
                    }
                    other => {
                        return Err(sqlx::Error::Protocol(format!(
                            "Grant reads column {index} as {other:?} through get_value"
                        )));
                    }
                })
            }

            fn connect_options(
                url: &str,
            ) -> Result<<Self::Connection as sqlx::Connection>::Options, sqlx::Error> {
                $opts(url)
            }

            fn with_statement_timeout(
                options: <Self::Connection as sqlx::Connection>::Options,
                timeout: std::time::Duration,
            ) -> <Self::Connection as sqlx::Connection>::Options {
                $stmt_timeout(options, timeout)
            }

            fn after_connect(
                connection: &mut Self::Connection,
            ) -> BoxFuture<'_, Result<(), sqlx::Error>> {
                $after(connection)
            }

            fn fetch_all(
                pool: &sqlx::Pool<Self>,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'_, Result<Vec<Self::Row>, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                        .fetch_all(pool)
                        .await
                })
            }

            fn fetch_optional(
                pool: &sqlx::Pool<Self>,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'_, Result<Option<Self::Row>, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                        .fetch_optional(pool)
                        .await
                })
            }

            fn execute(
                pool: &sqlx::Pool<Self>,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'_, Result<u64, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                })
            }

            fn execute_atomic(
                pool: &sqlx::Pool<Self>,
                statements: Vec<(String, SqlxValues)>,
            ) -> BoxFuture<'_, Result<u64, sqlx::Error>> {
                Box::pin(async move {
                    let mut tx = pool.begin().await?;
                    let mut affected = 0;
                    for (sql, values) in statements {
                        affected += sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(affected)
                })
            }

            fn execute_on<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                        .execute(conn)
                        .await
                        .map(|r| r.rows_affected())
                })
            }

            fn fetch_all_on<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                        .fetch_all(conn)
                        .await
                })
            }

            fn fetch_optional_on<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
                values: SqlxValues,
            ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
                Box::pin(async move {
                    sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values))
                        .fetch_optional(conn)
                        .await
                })
            }

            fn raw_on<'c>(
                conn: &'c mut Self::Connection,
                sql: String,
            ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            }

            fn fetch_stream(
                pool: &sqlx::Pool<Self>,
                sql: String,
                values: SqlxValues,
            ) -> BoxStream<'_, Result<Self::Row, sqlx::Error>> {
                sqlx::query_with(sqlx::AssertSqlSafe(sql), $adapt(values)).fetch(pool)
            }

            fn get_bool(row: &Self::Row, index: usize) -> Result<Option<bool>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_i16(row: &Self::Row, index: usize) -> Result<Option<i16>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_i32(row: &Self::Row, index: usize) -> Result<Option<i32>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_i64(row: &Self::Row, index: usize) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_f32(row: &Self::Row, index: usize) -> Result<Option<f32>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_f64(row: &Self::Row, index: usize) -> Result<Option<f64>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_string(row: &Self::Row, index: usize) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }
            fn get_bytes(row: &Self::Row, index: usize) -> Result<Option<Vec<u8>>, sqlx::Error> {
                sqlx::Row::try_get(row, index)
            }

            fn get<T>(row: &Self::Row, index: usize) -> Result<T, sqlx::Error>
            where
                T: for<'r> sqlx::Decode<'r, Self> + sqlx::Type<Self>,
            {
                sqlx::Row::try_get(row, index)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
fn sqlite_options(url: &str) -> Result<sqlx::sqlite::SqliteConnectOptions, sqlx::Error> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use std::str::FromStr;
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    #[cfg(feature = "rust_decimal")]
    let options = options.collation(
        crate::types::DECIMAL_COLLATION,
        crate::types::compare_decimal_text,
    );
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(std::time::Duration::from_secs(10)))
}

/// Values as SQLite stores them (see [`crate::types::sqlite_value`]).
#[cfg(feature = "sqlite")]
fn sqlite_values(mut values: SqlxValues) -> SqlxValues {
    for value in values.0.0.iter_mut() {
        crate::types::sqlite_value(value);
    }
    values
}

/// A decimal stored as text (or, written by another tool, as a number).
#[cfg(all(feature = "sqlite", feature = "rust_decimal"))]
fn sqlite_decimal(
    row: &sqlx::sqlite::SqliteRow,
    index: usize,
) -> Result<Option<rust_decimal::Decimal>, sqlx::Error> {
    use std::str::FromStr;
    let text: Option<String> = match sqlx::Row::try_get(row, index) {
        Ok(text) => text,
        Err(sqlx::Error::ColumnDecode { .. }) => {
            sqlx::Row::try_get::<Option<f64>, _>(row, index)?.map(|f| f.to_string())
        }
        Err(e) => return Err(e),
    };
    text.map(|t| {
        rust_decimal::Decimal::from_str(&t)
            .or_else(|_| rust_decimal::Decimal::from_scientific(&t))
            .map_err(|e| sqlx::Error::ColumnDecode {
                index: index.to_string(),
                source: format!("`{t}` is not a decimal: {e}").into(),
            })
    })
    .transpose()
}

/// SQLite has no server-side statement timeout: unchanged.
#[cfg(feature = "sqlite")]
fn sqlite_statement_timeout(
    options: sqlx::sqlite::SqliteConnectOptions,
    _timeout: std::time::Duration,
) -> sqlx::sqlite::SqliteConnectOptions {
    options
}

/// Switches SQLite's double-quoted string literals off for statements (DML) on `connection`:
/// `"due_at"` then always names a column, and a missing one is "no such column" instead of
/// the text `'due_at'` (sqlite.org/quirks.html#dblquote). DDL keeps the legacy behaviour, so
/// schemas written with it still load.
#[cfg(feature = "sqlite")]
fn sqlite_after_connect(
    connection: &mut sqlx::SqliteConnection,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        use std::ffi::c_int;
        let mut handle = connection.lock_handle().await?;
        let db = handle.as_raw_handle().as_ptr();
        // SAFETY: `db` is the open connection's handle, held locked for this call;
        // SQLITE_DBCONFIG_DQS_DML takes an int (0: off) and an int pointer that may be null
        // (sqlite.org/c3ref/c_dbconfig_defensive.html).
        #[allow(unsafe_code)]
        let rc = unsafe {
            libsqlite3_sys::sqlite3_db_config(
                db,
                libsqlite3_sys::SQLITE_DBCONFIG_DQS_DML,
                0 as c_int,
                std::ptr::null_mut::<c_int>(),
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            return Err(sqlx::Error::Protocol(format!(
                "SQLite refused SQLITE_DBCONFIG_DQS_DML (code {rc})"
            )));
        }
        #[cfg(feature = "rust_decimal")]
        crate::sqlite_decimal::register(db)?;
        Ok(())
    })
}

/// `statement_timeout` in milliseconds, at least 1 (0 would switch the limit off).
#[cfg(feature = "postgres")]
fn postgres_statement_timeout(
    options: sqlx::postgres::PgConnectOptions,
    timeout: std::time::Duration,
) -> sqlx::postgres::PgConnectOptions {
    let millis = timeout.as_millis().max(1);
    options.options([("statement_timeout", format!("{millis}ms"))])
}

#[cfg(feature = "postgres")]
fn postgres_options(url: &str) -> Result<sqlx::postgres::PgConnectOptions, sqlx::Error> {
    use std::str::FromStr;
    sqlx::postgres::PgConnectOptions::from_str(url)
}

// SQLite's default SQLITE_MAX_VARIABLE_NUMBER is 32766 since 3.32 (sqlite.org/limits.html).
#[cfg(feature = "sqlite")]
backend!(
    sqlx::Sqlite,
    "SQLite",
    32766,
    true,
    None, // BINARY, the default, compares bytes
    LikeSyntax::GlobAndLike,
    sea_query::SqliteQueryBuilder,
    sqlite_options,
    sqlite_statement_timeout,
    sqlite_after_connect,
    two_phase: false,
    begin: "BEGIN IMMEDIATE",
    adapt: sqlite_values,
    decimal: sqlite_decimal,
    {
        const DECIMAL_SUM_SQL: &'static str = "grant_decimal_sum({})";

        fn sort_collation(column_type: &ColumnType) -> Option<&'static str> {
            match column_type {
                ColumnType::Decimal(_) => Some(crate::types::DECIMAL_COLLATION),
                _ => None,
            }
        }

        fn ddl_column_type(column_type: ColumnType) -> ColumnType {
            match column_type {
                ColumnType::Decimal(_) => ColumnType::custom("decimal_text"),
                other => other,
            }
        }
    }
);
// PostgreSQL's wire protocol counts parameters in an i16: at most 65535.
#[cfg(feature = "postgres")]
backend!(
    sqlx::Postgres,
    "PostgreSQL",
    65535,
    false,
    Some("C"), // byte order whatever the database's locale
    LikeSyntax::CollatedIlike,
    sea_query::PostgresQueryBuilder,
    postgres_options,
    postgres_statement_timeout,
    |_: &mut sqlx::PgConnection| -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async { Ok(()) })
    },
    two_phase: true,
    begin: "BEGIN",
    adapt: std::convert::identity,
    decimal: |row: &sqlx::postgres::PgRow, index: usize| sqlx::Row::try_get(row, index),
    {
        fn notify_sql(channel: &str) -> Option<String> {
            Some(format!("SELECT pg_notify('{}', '')", channel.replace('\'', "''")))
        }

        fn listen(
            options: sqlx::postgres::PgConnectOptions,
            channel: &'static str,
        ) -> BoxFuture<'static, Option<BoxStream<'static, ()>>> {
            Box::pin(async move {
                // A pool of one of its own: the listener holds its connection for good.
                let pool = sqlx::pool::PoolOptions::<Self>::new()
                    .max_connections(1)
                    .connect_lazy_with(options);
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.ok()?;
                listener.listen(channel).await.ok()?;
                let stream = futures_util::stream::unfold(listener, |mut listener| async move {
                    // `recv` reconnects a lost connection itself (a notification sent while
                    // it was away is missed: the poll catches up).
                    listener.recv().await.ok().map(|_| ((), listener))
                });
                Some(Box::pin(stream) as BoxStream<'static, ()>)
            })
        }
    }
);
