//! The cluster: named shards, one connection pool each, and the query log.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tracing::Instrument;

use crate::observe::Statement;
use futures_util::stream::BoxStream;
use grant_core::{Backend, Error, Model, Result, ShardId};
use sea_query::Value;
use sea_query_sqlx::SqlxValues;
use sqlx::Pool;
use sqlx::pool::PoolOptions;

/// Default time a statement on one shard may take before [`Error::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The endpoint label of a shard's primary.
const PRIMARY: &str = "primary";

/// Default time to wait for a free pooled connection.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on the shard statements one query has in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// A set of named shards, each a database reached through its own connection pool.
///
/// Cheap to clone (an `Arc`); share one per application.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> grant_core::Result<()> {
/// use grant_sharding::Cluster;
/// use sqlx::Sqlite;
/// let cluster = Cluster::<Sqlite>::memory(4).await?;
/// assert_eq!(cluster.shard_names().collect::<Vec<_>>(), ["shard_0", "shard_1", "shard_2", "shard_3"]);
/// # Ok(()) }
/// ```
pub struct Cluster<DB: Backend> {
    inner: Arc<Inner<DB>>,
}

struct Inner<DB: Backend> {
    shards: Vec<Shard<DB>>,
    by_name: HashMap<String, usize>,
    timeout: Duration,
    acquire_timeout: Duration,
    concurrency: usize,
    log: QueryLog,
}

struct Shard<DB: Backend> {
    name: String,
    /// The name as a `ShardId` for errors about this cluster shard (see [`Cluster::shard_id`]).
    id: ShardId,
    pool: Pool<DB>,
}

impl<DB: Backend> Clone for Cluster<DB> {
    fn clone(&self) -> Self {
        Cluster {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<DB: Backend> fmt::Debug for Cluster<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("backend", &<DB as Backend>::NAME)
            .field("shards", &self.shard_names().collect::<Vec<_>>())
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// Builds a [`Cluster`]: `Cluster::<Sqlite>::builder().shard("shard_0", url)...connect().await?`.
pub struct ClusterBuilder<DB: Backend> {
    shards: Vec<(String, String)>,
    max_connections: u32,
    acquire_timeout: Duration,
    timeout: Duration,
    concurrency: usize,
    lazy: bool,
    idle_timeout: Option<Duration>,
    _db: std::marker::PhantomData<DB>,
}

impl<DB: Backend> fmt::Debug for ClusterBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field(
                "shards",
                &self.shards.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl<DB: Backend> ClusterBuilder<DB> {
    /// Adds a shard named `name` at `url` (for SQLite a `sqlite:` URL or a file path; the file is
    /// created if missing).
    pub fn shard(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.shards.push((name.into(), url.into()));
        self
    }

    /// Close connections idle this long (default: sqlx's, 10 minutes).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// Connections per shard pool (default 5).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for a pooled connection (default 10 s).
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// How long one statement on one shard may take before [`Error::Timeout`] (default 30 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// How many shard statements one query may have in flight at once (default 64). Ordered
    /// cross-shard reads stream from every shard they visit at once regardless.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Don't connect at `connect()`: each shard connects on first use (an unreachable shard
    /// then fails the queries that need it, with [`Error::ShardUnavailable`] naming it).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Connects every shard, in parallel.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for duplicate names, no shards, a bad url or a shard that cannot be
    /// reached (naming it).
    pub async fn connect(self) -> Result<Cluster<DB>> {
        if self.shards.is_empty() {
            return Err(Error::Config(
                "a cluster needs at least one shard: call `.shard(name, url)`".into(),
            ));
        }
        let lazy = self.lazy;
        let pools = futures_util::future::try_join_all(self.shards.iter().map(|(name, url)| {
            let mut options = PoolOptions::<DB>::new()
                .max_connections(self.max_connections)
                .acquire_timeout(self.acquire_timeout);
            if let Some(idle) = self.idle_timeout {
                options = options.idle_timeout(idle);
            }
            async move {
                let connect = DB::connect_options(url)
                    .map_err(|e| Error::Config(format!("shard `{name}`: bad url `{url}`: {e}")))?;
                if lazy {
                    return Ok(options.connect_lazy_with(connect));
                }
                options.connect_with(connect).await.map_err(|e| {
                    Error::Config(format!(
                        "shard `{name}` cannot be reached at `{url}`: {e}; check the url and that \
                         the database is up"
                    ))
                })
            }
        }))
        .await?;
        let mut cluster = Cluster::from_pools(
            self.shards.into_iter().map(|(n, _)| n).zip(pools).collect(),
            self.timeout,
        )?;
        if let Some(inner) = Arc::get_mut(&mut cluster.inner) {
            inner.concurrency = self.concurrency;
            inner.acquire_timeout = self.acquire_timeout;
        }
        Ok(cluster)
    }
}

impl<DB: Backend> Cluster<DB> {
    /// A builder for a cluster of named shards.
    pub fn builder() -> ClusterBuilder<DB> {
        ClusterBuilder {
            shards: Vec::new(),
            max_connections: 5,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            lazy: false,
            idle_timeout: None,
            _db: std::marker::PhantomData,
        }
    }

    /// A cluster over already-connected pools, `(name, pool)` in order.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for duplicate names or no shards.
    pub fn from_pools(pools: Vec<(String, Pool<DB>)>, timeout: Duration) -> Result<Self> {
        if pools.is_empty() {
            return Err(Error::Config("a cluster needs at least one shard".into()));
        }
        let mut by_name = HashMap::new();
        let mut shards = Vec::with_capacity(pools.len());
        for (i, (name, pool)) in pools.into_iter().enumerate() {
            if by_name.insert(name.clone(), i).is_some() {
                return Err(Error::Config(format!("shard `{name}` is listed twice")));
            }
            // A ShardId holds a `&'static str`: cluster shard names are leaked once per cluster
            // construction (a few bytes each; clusters are built once per process in practice).
            let id = ShardId::named(i as u32, Box::leak(name.clone().into_boxed_str()));
            shards.push(Shard { name, id, pool });
        }
        Ok(Cluster {
            inner: Arc::new(Inner {
                shards,
                by_name,
                timeout,
                acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
                concurrency: DEFAULT_CONCURRENCY,
                log: QueryLog::default(),
            }),
        })
    }

    /// The shard names, in the order they were added.
    pub fn shard_names(&self) -> impl Iterator<Item = &str> {
        self.inner.shards.iter().map(|s| s.name.as_str())
    }

    /// The cluster shard at position `index` (in the order shards were added) as a [`ShardId`]
    /// named like it.
    pub fn shard_id(&self, index: usize) -> Option<ShardId> {
        self.inner.shards.get(index).map(|s| s.id)
    }

    /// The pool of the shard called `name`, for direct access.
    pub fn pool(&self, name: &str) -> Option<&Pool<DB>> {
        self.inner
            .by_name
            .get(name)
            .map(|&i| &self.inner.shards[i].pool)
    }

    /// The per-statement timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How many shard statements one query may have in flight at once.
    pub fn max_concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// The query log: record which shards statements touched.
    pub fn log(&self) -> &QueryLog {
        &self.inner.log
    }

    /// Checks that the cluster has every shard model `M` uses.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] naming the first missing shard.
    pub fn check<M: Model>(&self) -> Result<()> {
        for &shard in M::shards() {
            self.shard_pool(M::META.name, shard)?;
        }
        Ok(())
    }

    /// The pool for `shard`, or [`Error::UnknownShard`].
    pub(crate) fn shard_pool(&self, model: &'static str, shard: ShardId) -> Result<&Pool<DB>> {
        let shards = &self.inner.shards;
        let found = if shards.len() <= 32 {
            shards.iter().position(|s| shard.is_named(&s.name))
        } else {
            self.inner.by_name.get(&shard.name()).copied()
        };
        match found {
            Some(i) => Ok(&shards[i].pool),
            None => Err(Error::UnknownShard {
                model,
                shard: shard.name(),
                known: self.shard_names().collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Runs a query on one shard and returns its rows, within the timeout.
    pub(crate) async fn fetch(
        &self,
        model: &'static str,
        shard: ShardId,
        (sql, values): (String, SqlxValues),
    ) -> Result<Vec<DB::Row>> {
        let pool = self.shard_pool(model, shard)?;
        self.inner.log.record(shard, sql.as_str(), &values);
        self.bounded(model, shard, DB::fetch_all(pool, sql, values), |rows| {
            rows.len() as u64
        })
        .await
    }

    /// Streams the rows of a query on one shard (errors name the model and shard).
    pub(crate) fn stream(
        &self,
        model: &'static str,
        shard: ShardId,
        (sql, values): (String, SqlxValues),
    ) -> Result<BoxStream<'_, Result<DB::Row>>> {
        let pool = self.shard_pool(model, shard)?;
        self.inner.log.record(shard, sql.as_str(), &values);
        let mut statement = Statement::start(model, shard, PRIMARY);
        Ok(DB::fetch_stream(pool, sql, values)
            .map(move |row| match row {
                Ok(row) => {
                    statement.add_rows(1);
                    Ok(row)
                }
                Err(e) => {
                    statement.fail();
                    Err(self.shard_error(model, shard, e))
                }
            })
            .boxed())
    }

    /// Runs a statement on one shard and returns the rows it affected, within the timeout.
    pub(crate) async fn execute(
        &self,
        model: &'static str,
        shard: ShardId,
        (sql, values): (String, SqlxValues),
    ) -> Result<u64> {
        let pool = self.shard_pool(model, shard)?;
        self.inner.log.record(shard, sql.as_str(), &values);
        self.bounded(model, shard, DB::execute(pool, sql, values), |n| *n)
            .await
    }

    /// Runs statements in one transaction on one shard, within the timeout.
    pub(crate) async fn execute_atomic(
        &self,
        model: &'static str,
        shard: ShardId,
        statements: Vec<(String, SqlxValues)>,
    ) -> Result<u64> {
        let pool = self.shard_pool(model, shard)?;
        for (sql, values) in &statements {
            self.inner.log.record(shard, sql, values);
        }
        self.bounded(model, shard, DB::execute_atomic(pool, statements), |n| *n)
            .await
    }

    /// A driver error on `shard`, classified: an exhausted pool is a [`Error::Timeout`] after the
    /// acquire timeout; connection failures [`Error::ShardUnavailable`]; the rest
    /// [`Error::Shard`].
    fn shard_error(&self, model: &'static str, shard: ShardId, error: sqlx::Error) -> Error {
        match error {
            sqlx::Error::PoolTimedOut => Error::Timeout {
                model,
                shards: format!("{shard} (no free connection in its pool)"),
                millis: self.inner.acquire_timeout.as_millis(),
            },
            other => Error::on_shard(model, shard, other),
        }
    }

    async fn bounded<T>(
        &self,
        model: &'static str,
        shard: ShardId,
        work: impl Future<Output = std::result::Result<T, sqlx::Error>>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T> {
        let mut statement = Statement::start(model, shard, PRIMARY);
        let outcome = tokio::time::timeout(self.inner.timeout, work)
            .instrument(statement.span())
            .await;
        match outcome {
            Ok(Ok(v)) => {
                statement.add_rows(rows(&v));
                Ok(v)
            }
            Ok(Err(e)) => {
                statement.fail();
                Err(self.shard_error(model, shard, e))
            }
            Err(_) => {
                statement.fail();
                Err(Error::Timeout {
                    model,
                    shards: shard.name(),
                    millis: self.inner.timeout.as_millis(),
                })
            }
        }
    }
}

#[cfg(feature = "sqlite")]
impl Cluster<sqlx::Sqlite> {
    /// `n` in-memory SQLite shards named `shard_0 .. shard_{n-1}` (one connection each, so the
    /// database lives as long as the cluster).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `n = 0`; a database error if SQLite cannot open memory databases.
    pub async fn memory(n: usize) -> Result<Self> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let mut pools = Vec::with_capacity(n);
        for i in 0..n {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(SqliteConnectOptions::new().in_memory(true))
                .await?;
            pools.push((format!("{}{i}", grant_core::shard::DEFAULT_PREFIX), pool));
        }
        Cluster::from_pools(pools, DEFAULT_TIMEOUT)
    }
}

/// One statement as it was sent to a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// The shard's name.
    pub shard: String,
    /// The SQL text, with placeholders.
    pub sql: String,
    /// The bound values.
    pub values: Vec<Value>,
}

/// A log of the statements a cluster sends, off by default (recording costs one atomic load per
/// statement when off).
///
/// # Examples
///
/// ```ignore
/// cluster.log().start();
/// User::find(&cluster, 7).await?;
/// let executed = cluster.log().take();
/// assert_eq!(executed.len(), 1);
/// assert_eq!(executed[0].shard, User::shard_for(&7).to_string());
/// ```
#[derive(Debug, Default)]
pub struct QueryLog {
    on: AtomicBool,
    entries: Mutex<Vec<Executed>>,
}

impl QueryLog {
    /// Starts recording (clearing what was recorded before).
    pub fn start(&self) {
        self.lock().clear();
        self.on.store(true, Ordering::SeqCst);
    }

    /// Stops recording and returns what was recorded.
    pub fn stop(&self) -> Vec<Executed> {
        self.on.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.lock())
    }

    /// Returns what was recorded so far and keeps recording.
    pub fn take(&self) -> Vec<Executed> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Executed>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, shard: ShardId, sql: &str, values: &SqlxValues) {
        if self.on.load(Ordering::Relaxed) {
            self.lock().push(Executed {
                shard: shard.name(),
                sql: sql.to_owned(),
                values: values.0.0.clone(),
            });
        }
    }
}
