//! The one error type of Grant.

use crate::shard::ShardId;

/// Result alias used throughout Grant.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Grant.
///
/// Every message names the model, the shard and the key where they are known, and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shard key was needed to route an operation but was absent (NULL or not given).
    ///
    /// Grant never falls back to a default shard for a missing key.
    #[error(
        "model `{model}`: shard key `{key}` is missing ({detail}); give the key a value, \
         or run the query with `on_shard(..)` / `on_all_shards()`"
    )]
    MissingShardKey {
        /// The model being routed.
        model: &'static str,
        /// The shard key column.
        key: &'static str,
        /// What exactly was missing.
        detail: String,
    },

    /// A write would have changed the shard key of an existing row in place.
    ///
    /// Nothing was written. Move a row explicitly: delete it and insert it under the new key.
    #[error(
        "model `{model}`: refusing to change shard key `{key}` from {from} to {to} in place \
         (the row lives on shard `{shard}`); nothing was written. A row moves by `delete` on the \
         old key followed by `insert` with the new key"
    )]
    ShardKeyMutation {
        /// The model being written.
        model: &'static str,
        /// The shard key column.
        key: &'static str,
        /// The shard the row lives on.
        shard: ShardId,
        /// The original key, rendered.
        from: String,
        /// The new key, rendered.
        to: String,
    },

    /// A shard named by a model (or by the caller) does not exist in the cluster.
    #[error(
        "model `{model}` needs shard `{shard}`, which the cluster does not have (it has: {known}); \
         add it with `Cluster::builder().shard(\"{shard}\", url)`"
    )]
    UnknownShard {
        /// The model that needed the shard (or `"-"` when none).
        model: &'static str,
        /// The missing shard's name.
        shard: String,
        /// The shards the cluster does have, comma separated.
        known: String,
    },

    /// A shard could not be reached or failed while serving a query.
    #[error("model `{model}`: shard `{shard}` is unavailable: {source}")]
    ShardUnavailable {
        /// The model being queried.
        model: &'static str,
        /// The shard that failed.
        shard: ShardId,
        /// The underlying failure.
        #[source]
        source: sqlx::Error,
    },

    /// Shards did not answer within the allowed time.
    #[error("model `{model}`: shard(s) {shards} did not answer within {millis} ms")]
    Timeout {
        /// The model being queried.
        model: &'static str,
        /// The shards that did not answer, comma separated.
        shards: String,
        /// The limit that was exceeded, in milliseconds.
        millis: u128,
    },

    /// The operation cannot be answered correctly (yet) and was refused rather than answered wrongly.
    #[error("model `{model}`: unsupported: {reason}")]
    Unsupported {
        /// The model concerned.
        model: &'static str,
        /// Why it is refused and what to do instead.
        reason: String,
    },

    /// The row an update or delete addressed does not exist.
    #[error(
        "model `{model}`: no row with primary key {key} on shard `{shard}`; \
         nothing was written (if the shard key was changed, move the row with delete + insert)"
    )]
    NotFound {
        /// The model being written.
        model: &'static str,
        /// The shard that was asked.
        shard: ShardId,
        /// The primary key, rendered.
        key: String,
    },

    /// A distributed transaction's outcome is not yet known everywhere.
    #[error("transaction `{gid}` is in doubt: {detail}")]
    InDoubt {
        /// The global transaction id.
        gid: String,
        /// What is known.
        detail: String,
    },

    /// A statement inside a single-shard transaction addressed rows that live on another shard.
    ///
    /// Nothing was run: a transaction's statements never run outside its shard.
    #[error(
        "model `{model}`: key {key} lives on shard `{shard}`, but this transaction runs on shard \
         `{transaction_shard}`; nothing was run. Open the transaction for that key's shard, or use \
         a multi-shard transaction (`cluster.begin()`, PostgreSQL) or a saga"
    )]
    WrongShard {
        /// The model the statement was about.
        model: &'static str,
        /// The key (or the query's filter), rendered.
        key: String,
        /// The shard the rows live on.
        shard: ShardId,
        /// The shard the transaction runs on.
        transaction_shard: ShardId,
    },

    /// A database error outside any shard context (connecting, configuration).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A database error on one shard, with the model and shard it happened on.
    #[error("model `{model}` on shard `{shard}`: {source}")]
    Shard {
        /// The model concerned.
        model: &'static str,
        /// The shard the statement ran on.
        shard: ShardId,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },

    /// A shard's table lacks columns the model has (a migration not yet applied there), or the
    /// table does not exist on the shard. Found by `cluster.check_schema::<M>()`, by
    /// `create_table` and before the model's first statement on each shard; nothing was run.
    ///
    /// (SQLite would otherwise read a missing column `"due_at"` as the string literal
    /// `'due_at'` and answer wrongly.)
    #[error(
        "model `{model}`: table `{table}` on shard `{shard}` {}; nothing was run. Apply \
         the migration that brings the table up to the model (`cluster.migrate(..)`), or create \
         it with `{model}::create_table(&cluster)` when it is missing",
        schema_problem(.missing)
    )]
    SchemaMismatch {
        /// The model whose table was checked.
        model: &'static str,
        /// The table's name.
        table: &'static str,
        /// The shard whose table differs.
        shard: ShardId,
        /// The missing columns (empty when the whole table is missing).
        missing: Vec<&'static str>,
    },

    /// The cluster configuration is invalid.
    #[error("cluster configuration: {0}")]
    Config(String),
}

impl Error {
    /// Wraps a database error that happened on `shard` while working on `model`.
    ///
    /// Connection-level failures become [`Error::ShardUnavailable`]; everything else
    /// [`Error::Shard`].
    /// A statement the server cancelled (PostgreSQL SQLSTATE 57014, `query_canceled`: its
    /// `statement_timeout` ran out, or a cancel request) becomes [`Error::Timeout`] naming the
    /// shard; see [`Error::on_shard_limited`] to state the limit.
    pub fn on_shard(model: &'static str, shard: ShardId, source: sqlx::Error) -> Self {
        Self::on_shard_limited(model, shard, source, None)
    }

    /// [`Error::on_shard`], knowing the server-side `statement_timeout` the shard's connections
    /// run under (as set by the cluster's `statement_timeout` option), so that a statement the
    /// server cancelled reports the limit it exceeded.
    pub fn on_shard_limited(
        model: &'static str,
        shard: ShardId,
        source: sqlx::Error,
        statement_timeout: Option<std::time::Duration>,
    ) -> Self {
        if let sqlx::Error::Database(db) = &source
            && db.code().as_deref() == Some(QUERY_CANCELED)
        {
            return Error::Timeout {
                model,
                shards: format!(
                    "{shard} (the server cancelled the statement: {}, SQLSTATE {QUERY_CANCELED}; \
                     raise `statement_timeout` or make the statement cheaper)",
                    db.message()
                ),
                millis: statement_timeout.map_or(0, |d| d.as_millis()),
            };
        }
        if is_unavailable(&source) {
            Error::ShardUnavailable {
                model,
                shard,
                source,
            }
        } else {
            Error::Shard {
                model,
                shard,
                source,
            }
        }
    }

    /// The shard this error happened on, if it names one.
    pub fn shard(&self) -> Option<ShardId> {
        match self {
            Error::ShardUnavailable { shard, .. }
            | Error::Shard { shard, .. }
            | Error::ShardKeyMutation { shard, .. }
            | Error::NotFound { shard, .. }
            | Error::SchemaMismatch { shard, .. }
            | Error::WrongShard { shard, .. } => Some(*shard),
            _ => None,
        }
    }
}

/// What [`Error::SchemaMismatch`] found, in words.
fn schema_problem(missing: &[&'static str]) -> String {
    if missing.is_empty() {
        return "does not exist".to_owned();
    }
    let list: Vec<String> = missing.iter().map(|c| format!("`{c}`")).collect();
    format!(
        "lacks column(s) {} of the model (a migration not yet applied on this shard?)",
        list.join(", ")
    )
}

/// PostgreSQL's `query_canceled`: `statement_timeout` or a cancel request
/// (postgresql.org/docs/current/errcodes-appendix.html).
const QUERY_CANCELED: &str = "57014";

/// Whether a driver error means the shard cannot serve at all (as opposed to a statement error).
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code() {
            // PostgreSQL: class 08 connection exceptions, 57P01-57P03 shutdown / cannot connect
            // now, 53300 too many connections (postgresql.org/docs/current/errcodes-appendix.html).
            Some(code) if code.starts_with("08") || code.starts_with("57P") || code == "53300" => {
                true
            }
            // SQLite: SQLITE_CANTOPEN (14) and its extended codes (14 | n << 8)
            // (sqlite.org/rescode.html).
            Some(code) => code.parse::<u32>().is_ok_and(|c| c & 0xff == 14),
            None => false,
        },
        _ => false,
    }
}
