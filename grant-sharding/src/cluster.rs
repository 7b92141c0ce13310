//! The cluster: named shards — each a primary and zero or more replicas, each endpoint with its
//! own connection pool and health — and the query log.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use grant_core::{Backend, Error, Model, Result, ShardId};
use sea_query::{Value, Values};
use sea_query_sqlx::SqlxValues;
use sqlx::Pool;
use sqlx::pool::{PoolConnection, PoolOptions};
use tracing::Instrument;

use crate::extensions::Extensions;
use crate::health::{EndpointStatus, Health, HealthConfig, ShardStatus};
use crate::observe::Statement;
use crate::parking::Parking;

/// Default time a statement on one shard may take before [`Error::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time to wait for a free pooled connection.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time one connection attempt may take (at `connect()`, and when Grant tries an
/// endpoint directly to learn why its pool has no connection).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on the shard statements one query has in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Default read-your-writes window: after a write to a shard, its reads go to the primary this
/// long (replicas may lag), as Rails does by default.
pub const DEFAULT_READ_YOUR_WRITES: Duration = Duration::from_secs(2);

/// Where reads go. Writes always go to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadPolicy {
    /// The primary; a healthy replica only while the primary is down (failover).
    #[default]
    Primary,
    /// A healthy replica, except within the read-your-writes window after a write to the
    /// shard; the primary when no replica is healthy.
    PreferReplica,
    /// A healthy replica, never the primary.
    ReplicaOnly,
}

/// How reads pick among a shard's healthy replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// In turn.
    #[default]
    RoundRobin,
    /// The one with the fewest connections in use.
    LeastBusy,
}

/// A set of named shards, each a primary database (plus optional replicas) reached through
/// its own connection pools.
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
    shards: ShardSet<DB>,
    /// State that higher layers keep per cluster (run-time placements, two-phase commit).
    extensions: Extensions,
    /// How every pool is built (the builder's and [`Cluster::add_shard`]'s).
    pool_settings: PoolSettings,
    /// Whether background health probes run (else an open circuit lets a trial request through
    /// every `health.interval`).
    probes: bool,
    timeout: Duration,
    acquire_timeout: Duration,
    /// The server-side statement timeout set on every connection, if any.
    statement_timeout: Option<Duration>,
    concurrency: usize,
    read_policy: ReadPolicy,
    balance: Balance,
    read_your_writes: Duration,
    /// The shard holding the cluster's own tables (`ClusterBuilder::control_shard`; `None`: the
    /// first shard).
    control: Option<String>,
    health: HealthConfig,
    epoch: Instant,
    log: QueryLog,
}

/// How every endpoint pool is configured (the builder's settings): the one pool factory, used
/// by the builder and by [`Cluster::add_shard`], so every option applies to every pool.
#[derive(Debug, Clone, Copy)]
struct PoolSettings {
    max_connections: u32,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 5,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            idle_timeout: None,
            statement_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl PoolSettings {
    /// A pool for endpoint `label` of shard `shard` at `url`. Unless `lazy`, one connection is
    /// made first, within the connect timeout, so that an endpoint that cannot be reached fails
    /// with its cause (refused, unknown host, authentication failed, ...) rather than after the
    /// pool's acquire timeout as "pool timed out".
    async fn pool<DB: Backend>(
        &self,
        shard: ShardId,
        label: &'static str,
        url: &str,
        lazy: bool,
    ) -> Result<(Pool<DB>, Origin)> {
        let origin = Origin::new(address_of(url));
        let broken = Arc::clone(&origin.broken);
        let mut options = PoolOptions::<DB>::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .after_connect(|connection, _| DB::after_connect(connection))
            // No ping at checkout (a round trip per statement): a connection is checked
            // only when it idled long, or was idle when a connection of its endpoint broke.
            .test_before_acquire(false)
            .before_acquire(move |connection, meta| {
                let check = broken.check(meta.idle_for);
                Box::pin(async move {
                    if check {
                        sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            });
        if let Some(idle) = self.idle_timeout {
            options = options.idle_timeout(idle);
        }
        let mut connect = DB::connect_options(url).map_err(|e| {
            Error::Config(format!(
                "shard `{shard}`: bad url `{}`: {e}",
                redact_url(url)
            ))
        })?;
        if let Some(limit) = self.statement_timeout {
            connect = DB::with_statement_timeout(connect, limit);
        }
        if lazy {
            return Ok((options.connect_lazy_with(connect), origin));
        }
        if let Some(cause) = connect_cause::<DB>(&connect, self.connect_timeout).await {
            return Err(unreachable(
                "-",
                shard,
                label,
                &address_of(url),
                &cause,
                "check the url and that the database is up (or build the cluster with \
                 `.lazy(true)` to connect on first use)",
            ));
        }
        // The server answered: the pool's first connection is made at once.
        tokio::time::timeout(self.connect_timeout, options.connect_with(connect.clone()))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
            .map_err(|e| {
                unreachable(
                    "-",
                    shard,
                    label,
                    &address_of(url),
                    &Cause::of(&e),
                    "check that the database is up",
                )
            })
            .map(|pool| (pool, origin))
    }
}

/// Whether a statement failed because its connection broke: an I/O error on it, a protocol
/// error, or PostgreSQL ending the session (SQLSTATE 57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now).
fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// Whether a statement failed because its table or one of its columns does not exist:
/// PostgreSQL's SQLSTATE 42P01 (undefined table) and 42703 (undefined column); SQLite's
/// "no such table", "no such column" and "has no column named".
pub(crate) fn names_missing_schema(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    if matches!(db.code().as_deref(), Some("42P01" | "42703")) {
        return true;
    }
    let message = db.message();
    message.contains("no such table")
        || message.contains("no such column")
        || message.contains("has no column named")
}

/// Why an endpoint could not be connected.
#[derive(Debug)]
struct Cause {
    kind: std::io::ErrorKind,
    text: String,
}

impl Cause {
    /// The cause of a failed connection attempt, in words, with what to do.
    fn of(error: &sqlx::Error) -> Cause {
        use std::io::ErrorKind;
        let (kind, text) = match error {
            sqlx::Error::Io(e) if e.kind() == ErrorKind::ConnectionRefused => (
                ErrorKind::ConnectionRefused,
                format!(
                    "connection refused ({e}): nothing listens at that host and port — the \
                     server is down or the port is wrong; start it or fix the url"
                ),
            ),
            sqlx::Error::Io(e) if is_dns_failure(e) => (
                ErrorKind::NotFound,
                format!(
                    "unknown host: the DNS lookup of the host name failed ({e}); fix the host \
                     name in the url"
                ),
            ),
            sqlx::Error::Io(e) => (e.kind(), format!("the connection failed: {e}")),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = db.message();
                let text = match code.as_str() {
                    "28P01" | "28000" => format!(
                        "authentication failed ({message}, SQLSTATE {code}): check the user \
                         name and password in the url"
                    ),
                    "3D000" => format!(
                        "the database does not exist ({message}, SQLSTATE {code}): create it, \
                         or fix the database name in the url"
                    ),
                    "57P03" => format!(
                        "the server cannot accept connections now ({message}, SQLSTATE {code}): \
                         it is starting up or shutting down; retry shortly"
                    ),
                    "53300" => format!(
                        "the server has no connection slot left ({message}, SQLSTATE {code}): \
                         lower `max_connections` of the cluster or raise the server's"
                    ),
                    _ => format!("the server refused the session: {message} (SQLSTATE {code})"),
                };
                let kind = if code.starts_with("28") {
                    ErrorKind::PermissionDenied
                } else {
                    ErrorKind::NotConnected
                };
                (kind, text)
            }
            sqlx::Error::Tls(e) => (
                ErrorKind::NotConnected,
                format!("the TLS handshake failed ({e}); check the url's sslmode and certificates"),
            ),
            sqlx::Error::PoolTimedOut => (
                ErrorKind::TimedOut,
                "no connection within the connect timeout: the host may be unreachable or a \
                 firewall drops the packets; check the host and port (or raise \
                 `ClusterBuilder::connect_timeout` for a slow network)"
                    .to_owned(),
            ),
            other => (
                ErrorKind::NotConnected,
                format!("the connection failed: {other}"),
            ),
        };
        Cause { kind, text }
    }

    fn timed_out(limit: Duration) -> Cause {
        Cause {
            kind: std::io::ErrorKind::TimedOut,
            text: format!(
                "no answer within the connect timeout ({} ms): the host may be unreachable or a \
                 firewall drops the packets; check the host and port (or raise \
                 `ClusterBuilder::connect_timeout` for a slow network)",
                limit.as_millis()
            ),
        }
    }
}

/// Whether an I/O error is a failed host name lookup (the resolver's errors carry no
/// `ErrorKind` of their own, only the resolver's text).
fn is_dns_failure(e: &std::io::Error) -> bool {
    let text = e.to_string();
    [
        "failed to lookup address",
        "Name or service not known",
        "No address associated with hostname",
        "nodename nor servname",
        "No such host",
        "Temporary failure in name resolution",
    ]
    .iter()
    .any(|s| text.contains(s))
}

/// Why one direct connection attempt with `options` fails, within `limit`; `None` when it
/// connects (the connection is closed again). Direct, not through a pool: a pool retries a
/// refused connection until its acquire timeout and then hides the cause behind "pool timed
/// out".
async fn connect_cause<DB: Backend>(
    options: &<DB::Connection as sqlx::Connection>::Options,
    limit: Duration,
) -> Option<Cause> {
    use sqlx::{ConnectOptions, Connection};
    match tokio::time::timeout(limit, options.connect()).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            None
        }
        Ok(Err(e)) => Some(Cause::of(&e)),
        Err(_) => Some(Cause::timed_out(limit)),
    }
}

/// The endpoint at `url`, for errors: the url without its password and driver settings.
fn address_of(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(base, _)| base);
    redact_url(url)
}

/// Where an endpoint is (its url without the password, for errors) and when one of its
/// connections was last found broken.
#[derive(Debug)]
struct Origin {
    address: String,
    broken: Arc<Broken>,
}

impl Origin {
    fn new(address: String) -> Origin {
        Origin {
            address,
            broken: Arc::new(Broken::default()),
        }
    }
}

/// How long a connection may sit idle and still go to a statement unchecked. HikariCP skips
/// its liveness check for connections used within the last 500 ms (`aliveBypassWindowMs`);
/// Grant does the same, and checks the rest with one ping.
pub const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// When a connection of an endpoint last broke (nanoseconds since `BROKEN_EPOCH`; 0: never):
/// every connection that sat idle in the pool then is pinged before its next statement, so a
/// restarted server costs one failed statement (a read is retried), not one per pooled
/// connection.
#[derive(Debug, Default)]
struct Broken {
    at: AtomicU64,
}

static BROKEN_EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl Broken {
    fn now() -> u64 {
        (BROKEN_EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64).max(1)
    }

    /// A connection of the endpoint failed at the connection level.
    fn mark(&self) {
        self.at.store(Broken::now(), Ordering::Relaxed);
    }

    /// Whether a connection idle for `idle_for` must be pinged before use: it idled longer
    /// than [`ALIVE_BYPASS`], or a connection broke while it was idle.
    fn check(&self, idle_for: Duration) -> bool {
        if idle_for >= ALIVE_BYPASS {
            return true;
        }
        let at = self.at.load(Ordering::Relaxed);
        at != 0 && Broken::now().saturating_sub(idle_for.as_nanos() as u64) <= at
    }
}

/// The address shown for an endpoint whose pool was given to the cluster ready-made.
const GIVEN_POOL: &str = "(a pool given to the cluster)";

/// `url` with any password left out (in the user info and in a `password=` parameter).
fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme) = out.find("://") {
        let rest = scheme + 3;
        let end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..end].rfind('@')
            && let Some(colon) = out[rest..rest + at].find(':')
        {
            out.replace_range(rest + colon..rest + at, "");
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
    }
    out
}

/// [`Error::ShardUnavailable`] for endpoint `label` at `address` of `shard`, which cannot be
/// connected because of `cause`.
fn unreachable(
    model: &'static str,
    shard: ShardId,
    label: &str,
    address: &str,
    cause: &Cause,
    what_to_do: &str,
) -> Error {
    Error::ShardUnavailable {
        model,
        shard,
        source: sqlx::Error::Io(std::io::Error::new(
            cause.kind,
            format!(
                "{label} at `{address}` cannot be connected: {}; {what_to_do}",
                cause.text
            ),
        )),
    }
}

/// Shards in slots that never move: a slot, once filled, lives as long as the cluster, so
/// readers borrow shards without a lock and [`Cluster::add_shard`] / [`Cluster::remove_shard`]
/// change the set while queries run. A removed shard's slot is marked removed, never reused.
struct ShardSet<DB: Backend> {
    chunks: Box<[OnceLock<Chunk<DB>>]>,
    /// Slots filled so far.
    len: AtomicUsize,
    /// Live shard name → slot.
    by_name: RwLock<HashMap<String, usize>>,
    /// Serializes additions and removals.
    change: Mutex<()>,
}

/// One chunk of shard slots, allocated when its first slot is filled.
type Chunk<DB> = Box<[OnceLock<Shard<DB>>]>;

/// Slots per chunk and chunks: at most 4096 shards over a cluster's life.
const CHUNK: usize = 64;
const CHUNKS: usize = 64;

impl<DB: Backend> ShardSet<DB> {
    fn new() -> Self {
        ShardSet {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
            by_name: RwLock::new(HashMap::new()),
            change: Mutex::new(()),
        }
    }

    #[inline]
    fn slot(&self, i: usize) -> Option<&Shard<DB>> {
        self.chunks.get(i / CHUNK)?.get()?.get(i % CHUNK)?.get()
    }

    fn slot_mut(&mut self, i: usize) -> Option<&mut Shard<DB>> {
        self.chunks
            .get_mut(i / CHUNK)?
            .get_mut()?
            .get_mut(i % CHUNK)?
            .get_mut()
    }

    /// Slots filled so far (live or removed).
    #[inline]
    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The live shards with their slots, in the order they were added.
    fn live(&self) -> impl Iterator<Item = (usize, &Shard<DB>)> {
        (0..self.len()).filter_map(|i| {
            self.slot(i)
                .filter(|s| !s.removed.load(Ordering::Acquire))
                .map(|s| (i, s))
        })
    }

    fn names(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, usize>> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.names().get(name).copied()
    }

    /// Adds a shard in the next slot; `Err` naming it when the name is taken or the set full.
    fn push(&self, make: impl FnOnce(usize) -> Shard<DB>) -> Result<usize> {
        let _guard = self.change.lock().unwrap_or_else(|e| e.into_inner());
        let i = self.len();
        let shard = make(i);
        let mut names = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        if names.contains_key(&shard.name) {
            return Err(Error::Config(format!(
                "shard `{}` is listed twice; shard names are unique in a cluster",
                shard.name
            )));
        }
        let chunk = self
            .chunks
            .get(i / CHUNK)
            .ok_or_else(|| {
                Error::Config(format!(
                    "cannot add shard `{}`: a cluster holds at most {} shards over its life",
                    shard.name,
                    CHUNK * CHUNKS
                ))
            })?
            .get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        names.insert(shard.name.clone(), i);
        if let Err(shard) = chunk[i % CHUNK].set(shard) {
            names.remove(&shard.name);
            return Err(Error::Config(format!("shard slot {i} already filled")));
        }
        self.len.store(i + 1, Ordering::Release);
        Ok(i)
    }
}

struct Shard<DB: Backend> {
    name: String,
    /// Set by [`Cluster::remove_shard`]: the shard takes no more statements.
    removed: AtomicBool,
    /// The name as a `ShardId` for errors about this cluster shard (see [`Cluster::shard_id`]).
    id: ShardId,
    primary: Endpoint<DB>,
    replicas: Vec<Endpoint<DB>>,
    next_replica: AtomicUsize,
    /// When the last write here succeeded, in nanoseconds since the cluster's epoch (0: never).
    last_write: AtomicU64,
    /// The models whose table here was found to have every column (see
    /// [`Cluster::check_schema`]); cleared by a migration.
    schema_ok: RwLock<HashSet<std::any::TypeId, foldhash::fast::FixedState>>,
}

struct Endpoint<DB: Backend> {
    label: &'static str,
    /// The name of the shard this endpoint serves, for spans and metric labels.
    shard: &'static str,
    pool: Pool<DB>,
    health: Health,
    /// Where it is, as a url without its password (for errors).
    address: String,
    /// When one of its connections last broke (see [`Broken`]).
    broken: Arc<Broken>,
    /// Connections of finished statements, kept for the next ones (see [`crate::parking`]).
    parked: Arc<Parking<DB>>,
}

impl<DB: Backend> Endpoint<DB> {
    fn new(label: &'static str, shard: &'static str, pool: Pool<DB>, origin: Origin) -> Self {
        let parked = Arc::new(Parking::new(pool.options().get_max_connections()));
        Endpoint {
            label,
            shard,
            pool,
            health: Health::default(),
            address: origin.address,
            broken: origin.broken,
            parked,
        }
    }

    /// Connections busy with a statement or a transaction (parked ones are idle).
    fn in_use(&self) -> u32 {
        self.pool.size().saturating_sub(self.idle())
    }

    /// Connections ready for a statement: idle in the pool or parked.
    fn idle(&self) -> u32 {
        self.pool.num_idle() as u32 + self.parked.len() as u32
    }

    /// A connection for a statement: the one parked last, else one from the pool. A parked
    /// connection gets the pool's check (see [`Broken::check`]): pinged first when it waited
    /// long or a connection of the endpoint broke meanwhile; one that fails the ping is
    /// closed and the next one tried.
    async fn checkout(&self) -> std::result::Result<PoolConnection<DB>, sqlx::Error> {
        while let Some((mut conn, waited)) = self.parked.take() {
            if !self.broken.check(waited) {
                return Ok(conn);
            }
            if sqlx::Connection::ping(&mut *conn).await.is_ok() {
                return Ok(conn);
            }
            conn.close_on_drop();
        }
        self.pool.acquire().await
    }

    /// Runs one statement on a connection of the endpoint ([`Endpoint::checkout`]); the
    /// connection is parked for the next statement when it succeeded, and given back to the
    /// pool (which tests it) when it failed or the future was dropped half-way.
    async fn run<T>(
        &self,
        work: impl for<'c> FnOnce(
            &'c mut DB::Connection,
        ) -> BoxFuture<'c, std::result::Result<T, sqlx::Error>>,
    ) -> std::result::Result<T, sqlx::Error> {
        let mut conn = self.checkout().await?;
        let out = work(&mut conn).await;
        if out.is_ok() {
            self.parked.park(conn);
        }
        out
    }
}

/// Labels of replica endpoints: `replica_0`, `replica_1`, ... (static for spans and metrics).
fn replica_label(i: usize) -> &'static str {
    const LABELS: [&str; 8] = [
        "replica_0",
        "replica_1",
        "replica_2",
        "replica_3",
        "replica_4",
        "replica_5",
        "replica_6",
        "replica_7",
    ];
    LABELS
        .get(i)
        .copied()
        .unwrap_or_else(|| Box::leak(format!("replica_{i}").into_boxed_str()))
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
            .field("read_policy", &self.inner.read_policy)
            .finish()
    }
}

/// Builds a [`Cluster`]: `Cluster::<Sqlite>::builder().shard("shard_0", url)...connect().await?`.
pub struct ClusterBuilder<DB: Backend> {
    shards: Vec<(String, String)>,
    replicas: Vec<(String, String)>,
    max_connections: u32,
    acquire_timeout: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    statement_timeout: Option<Duration>,
    concurrency: usize,
    lazy: bool,
    idle_timeout: Option<Duration>,
    read_policy: ReadPolicy,
    balance: Balance,
    read_your_writes: Duration,
    control: Option<String>,
    health: HealthConfig,
    health_checks: bool,
    /// Extension slots handed to the cluster (settings of higher layers, e.g. `.two_phase(..)`).
    pub(crate) extensions: Extensions,
    /// Run once the cluster is connected (not with `.lazy(true)`), in order; an error fails the
    /// connect.
    on_connect: Vec<ConnectHook<DB>>,
    _db: std::marker::PhantomData<DB>,
}

/// A hook run when a cluster has connected (see [`ClusterBuilder::on_connect`]): how a feature
/// such as two-phase recovery acts at start-up without the cluster naming it.
pub(crate) type ConnectHook<DB> =
    for<'a> fn(&'a Cluster<DB>) -> futures_util::future::BoxFuture<'a, Result<()>>;

impl<DB: Backend> fmt::Debug for ClusterBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field(
                "shards",
                &self.shards.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "replicas",
                &self.replicas.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl<DB: Backend> ClusterBuilder<DB> {
    /// Runs `hook` once the cluster has connected (after the hooks added before it; not with
    /// `.lazy(true)`).
    pub(crate) fn on_connect(mut self, hook: ConnectHook<DB>) -> Self {
        self.on_connect.push(hook);
        self
    }

    /// Adds a shard named `name` whose primary is at `url` (for SQLite a `sqlite:` URL or a file
    /// path; the file is created if missing).
    pub fn shard(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.shards.push((name.into(), url.into()));
        self
    }

    /// The shard that holds the cluster's own tables — the topology (every model's run-time
    /// placement), resharding jobs, id leases — default the first shard added. Every process
    /// of an application must name the same one.
    pub fn control_shard(mut self, name: impl Into<String>) -> Self {
        self.control = Some(name.into());
        self
    }

    /// Adds a read replica at `url` to the shard named `shard` (a streaming replica of its
    /// primary). Writes never go to replicas.
    pub fn replica(mut self, shard: impl Into<String>, url: impl Into<String>) -> Self {
        self.replicas.push((shard.into(), url.into()));
        self
    }

    /// Where reads go by default (default [`ReadPolicy::Primary`]); queries can override it.
    pub fn read_policy(mut self, policy: ReadPolicy) -> Self {
        self.read_policy = policy;
        self
    }

    /// How reads pick among healthy replicas (default [`Balance::RoundRobin`]).
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// After a write to a shard, its reads go to the primary for this long (default 2 s).
    pub fn read_your_writes(mut self, window: Duration) -> Self {
        self.read_your_writes = window;
        self
    }

    /// Background health checks of every endpoint (off unless called): probes every
    /// `interval`, each allowed `timeout`; `failures_to_open` consecutive failures open the
    /// endpoint's circuit, the next successful probe closes it.
    pub fn health_checks(mut self, config: HealthConfig) -> Self {
        self.health = config;
        self.health_checks = true;
        self
    }

    /// Close connections idle this long (default: sqlx's, 10 minutes).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// Connections per endpoint pool (default 5).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for a pooled connection (default 10 s); then [`Error::Timeout`].
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// How long one connection attempt may take (default 5 s): at `connect()` (unless
    /// `.lazy(true)`) every endpoint is connected once within it, and an endpoint that cannot
    /// be — the server refuses connections, the host name is unknown, authentication fails, no
    /// answer — is [`Error::ShardUnavailable`] naming the shard, the endpoint (its url without
    /// the password) and the cause. Later, when a pool has no connection to give, Grant tries
    /// the endpoint directly within this time to report the cause instead of a pool timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long one statement on one shard may take before [`Error::Timeout`] (default 30 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Makes the database itself cancel any statement running longer than `d`, on every
    /// connection of every endpoint (off by default).
    ///
    /// PostgreSQL: sets the server's `statement_timeout` at connect (in the startup packet, so
    /// no extra round trip). Unlike [`timeout`](Self::timeout), which stops waiting on the
    /// client side while the server may still be working, the server stops the statement and
    /// frees its locks and its connection; the statement fails with [`Error::Timeout`] naming
    /// the shard (SQLSTATE 57014). Set it a little below `timeout` so the server gives up first.
    ///
    /// SQLite has no server and no such setting: there the option does nothing, and only
    /// `timeout` bounds a statement.
    pub fn statement_timeout(mut self, d: Duration) -> Self {
        self.statement_timeout = Some(d);
        self
    }

    /// How many shard statements one query may have in flight at once (default 64). Ordered
    /// cross-shard reads stream from every shard they visit at once regardless.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Don't connect at `connect()`: each endpoint connects on first use (an unreachable shard
    /// then fails the queries that need it, with [`Error::ShardUnavailable`] naming it).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// The pool settings every endpoint of the cluster gets.
    fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            idle_timeout: self.idle_timeout,
            statement_timeout: self.statement_timeout,
            connect_timeout: self.connect_timeout,
        }
    }

    /// Connects every endpoint, in parallel, and starts the health checks if configured. On
    /// PostgreSQL (unless `.lazy(true)` or turned off in [`TwoPhase`](crate::TwoPhase)) it then
    /// runs two-phase recovery ([`Cluster::recover`]); what that cannot finish is retried in the
    /// background, never failing the connect.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for duplicate names, no shards, a replica of an unknown shard, a bad
    /// url, or a two-phase coordinator shard the cluster lacks; [`Error::ShardUnavailable`]
    /// for an endpoint that cannot be connected within the connect timeout, naming the shard,
    /// the endpoint and the cause (connection refused, unknown host, authentication failed,
    /// no such database, no answer).
    pub async fn connect(mut self) -> Result<Cluster<DB>> {
        if self.shards.is_empty() {
            return Err(Error::Config(
                "a cluster needs at least one shard: call `.shard(name, url)`".into(),
            ));
        }
        for (shard, _) in &self.replicas {
            if !self.shards.iter().any(|(n, _)| n == shard) {
                return Err(Error::Config(format!(
                    "replica of shard `{shard}`, which the cluster does not have; add it with \
                     `.shard(\"{shard}\", url)` first"
                )));
            }
        }
        let settings = self.pool_settings();
        let id = |name: &str| {
            let slot = self.shards.iter().position(|(n, _)| n == name).unwrap_or(0);
            ShardId::named(slot as u32, intern(name))
        };
        let primaries = futures_util::future::try_join_all(
            self.shards
                .iter()
                .map(|(name, url)| settings.pool::<DB>(id(name), "primary", url, self.lazy)),
        )
        .await?;
        let mut replica_labels: HashMap<&str, usize> = HashMap::new();
        let replicas =
            futures_util::future::try_join_all(self.replicas.iter().map(|(name, url)| {
                let n = replica_labels.entry(name.as_str()).or_insert(0);
                let label = replica_label(*n);
                *n += 1;
                settings.pool::<DB>(id(name), label, url, self.lazy)
            }))
            .await?;
        let mut cluster = Cluster::from_endpoints(
            self.shards
                .iter()
                .zip(primaries)
                .map(|((n, _), (pool, origin))| (n.clone(), pool, origin))
                .collect(),
            self.timeout,
        )?;
        {
            let inner = Arc::get_mut(&mut cluster.inner)
                .ok_or_else(|| Error::Config("cluster shared while building".into()))?;
            inner.concurrency = self.concurrency;
            inner.acquire_timeout = self.acquire_timeout;
            inner.statement_timeout = self.statement_timeout;
            inner.read_policy = self.read_policy;
            inner.balance = self.balance;
            inner.read_your_writes = self.read_your_writes;
            inner.control = self.control.take();
            inner.health = self.health;
            inner.probes = self.health_checks;
            inner.pool_settings = settings;
            inner.extensions = std::mem::take(&mut self.extensions);
            for ((shard, _), pool) in self.replicas.iter().zip(replicas) {
                let Some(i) = inner.shards.find(shard) else {
                    continue;
                };
                let Some(target) = inner.shards.slot_mut(i) else {
                    continue;
                };
                let label = replica_label(target.replicas.len());
                let shard = target.primary.shard;
                let (pool, origin) = pool;
                target
                    .replicas
                    .push(Endpoint::new(label, shard, pool, origin));
            }
        }
        if self.health_checks {
            spawn_health_checks(Arc::downgrade(&cluster.inner), self.health);
        }
        if !self.lazy {
            for hook in &self.on_connect {
                hook(&cluster).await?;
            }
        }
        Ok(cluster)
    }
}

/// A cluster handle that does not keep it alive ([`Cluster::downgrade`]).
pub(crate) struct WeakCluster<DB: Backend>(Weak<Inner<DB>>);

impl<DB: Backend> Clone for WeakCluster<DB> {
    fn clone(&self) -> Self {
        WeakCluster(Weak::clone(&self.0))
    }
}

impl<DB: Backend> WeakCluster<DB> {
    /// The cluster, unless every `Cluster` handle was dropped.
    pub(crate) fn upgrade(&self) -> Option<Cluster<DB>> {
        self.0.upgrade().map(|inner| Cluster { inner })
    }
}

/// Probes every endpoint every `config.interval` until the cluster is dropped.
fn spawn_health_checks<DB: Backend>(inner: Weak<Inner<DB>>, config: HealthConfig) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let endpoints = inner
                .shards
                .live()
                .flat_map(|(_, s)| std::iter::once(&s.primary).chain(&s.replicas));
            futures_util::future::join_all(endpoints.map(|e| probe(e, config))).await;
        }
    });
}

async fn probe<DB: Backend>(endpoint: &Endpoint<DB>, config: HealthConfig) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        config.timeout,
        DB::fetch_all(
            &endpoint.pool,
            "SELECT 1".into(),
            SqlxValues(Values(Vec::new())),
        ),
    )
    .await;
    let failed = match outcome {
        Ok(Ok(_)) => return endpoint.health.success(started.elapsed()),
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => None,
        Ok(Err(e)) => Some(e.to_string()),
    };
    // No connection within the probe's time: say why (a pool hides a refused connection).
    let error = match failed {
        Some(error) => error,
        None => match connect_cause::<DB>(&endpoint.pool.connect_options(), config.timeout).await {
            Some(cause) => format!(
                "{} at `{}` cannot be connected: {}",
                endpoint.label, endpoint.address, cause.text
            ),
            None => format!("health probe timed out after {:?}", config.timeout),
        },
    };
    endpoint.health.failure(&error, config.failures_to_open);
}

impl<DB: Backend> Cluster<DB> {
    /// A builder without any feature's connect hook (see `Cluster::builder`, which adds them).
    pub(crate) fn bare_builder() -> ClusterBuilder<DB> {
        ClusterBuilder {
            shards: Vec::new(),
            replicas: Vec::new(),
            max_connections: 5,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            statement_timeout: None,
            concurrency: DEFAULT_CONCURRENCY,
            lazy: false,
            idle_timeout: None,
            read_policy: ReadPolicy::Primary,
            balance: Balance::RoundRobin,
            read_your_writes: DEFAULT_READ_YOUR_WRITES,
            control: None,
            health: HealthConfig::default(),
            health_checks: false,
            extensions: Extensions::default(),
            on_connect: Vec::new(),
            _db: std::marker::PhantomData,
        }
    }

    /// A cluster over already-connected pools, `(name, pool)` in order (primaries only).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for duplicate names or no shards.
    pub fn from_pools(pools: Vec<(String, Pool<DB>)>, timeout: Duration) -> Result<Self> {
        Self::from_endpoints(
            pools
                .into_iter()
                .map(|(name, pool)| (name, pool, Origin::new(GIVEN_POOL.to_owned())))
                .collect(),
            timeout,
        )
    }

    /// A cluster over `(name, pool, origin)` primaries, in order.
    fn from_endpoints(
        endpoints: Vec<(String, Pool<DB>, Origin)>,
        timeout: Duration,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::Config("a cluster needs at least one shard".into()));
        }
        let shards = ShardSet::new();
        for (name, pool, origin) in endpoints {
            shards.push(|i| new_shard(i, name, pool, origin))?;
        }
        Ok(Cluster {
            inner: Arc::new(Inner {
                shards,
                extensions: Extensions::default(),
                pool_settings: PoolSettings::default(),
                probes: false,
                timeout,
                acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
                statement_timeout: None,
                concurrency: DEFAULT_CONCURRENCY,
                read_policy: ReadPolicy::Primary,
                balance: Balance::RoundRobin,
                read_your_writes: DEFAULT_READ_YOUR_WRITES,
                control: None,
                health: HealthConfig::default(),
                epoch: Instant::now(),
                log: QueryLog::default(),
            }),
        })
    }

    /// The shard names, in the order they were added (removed shards left out).
    pub fn shard_names(&self) -> impl Iterator<Item = &str> {
        self.inner.shards.live().map(|(_, s)| s.name.as_str())
    }

    /// The cluster shard at position `index` (in the order shards were added, removed shards
    /// left out) as a [`ShardId`] named like it.
    pub fn shard_id(&self, index: usize) -> Option<ShardId> {
        self.inner.shards.live().nth(index).map(|(_, s)| s.id)
    }

    /// The live cluster shard named `name`, as a [`ShardId`].
    pub(crate) fn shard_named(&self, name: &str) -> Option<ShardId> {
        self.inner
            .shards
            .live()
            .find(|(_, s)| s.name == name)
            .map(|(_, s)| s.id)
    }

    /// The shard that holds the cluster's own tables (topology, resharding jobs, id leases):
    /// the control shard ([`ClusterBuilder::control_shard`], default the first), named and as
    /// a [`ShardId`]. `what` says what it is wanted for, in the error.
    pub(crate) fn first_shard(&self, what: &str) -> Result<(String, ShardId)> {
        let shard = match &self.inner.control {
            Some(name) => self
                .inner
                .shards
                .live()
                .map(|(_, s)| s)
                .find(|s| &s.name == name)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "the control shard `{name}` (for {what}) is not a shard of the cluster; \
                         add it with `.shard(\"{name}\", url)` or name another"
                    ))
                })?,
            None => self
                .inner
                .shards
                .live()
                .next()
                .map(|(_, s)| s)
                .ok_or_else(|| {
                    Error::Config(format!("the cluster has no shard to keep {what} on"))
                })?,
        };
        Ok((shard.name.clone(), shard.id))
    }

    /// A handle that does not keep the cluster alive (for background tasks of higher layers).
    pub(crate) fn downgrade(&self) -> WeakCluster<DB> {
        WeakCluster(Arc::downgrade(&self.inner))
    }

    /// The primary pool of the shard called `name`, for direct access.
    pub fn pool(&self, name: &str) -> Option<&Pool<DB>> {
        let i = self.inner.shards.find(name)?;
        self.inner.shards.slot(i).map(|s| &s.primary.pool)
    }

    /// The pool of replica `replica` of the shard called `name`.
    pub fn replica_pool(&self, name: &str, replica: usize) -> Option<&Pool<DB>> {
        let shard = self.inner.shards.slot(self.inner.shards.find(name)?)?;
        shard.replicas.get(replica).map(|e| &e.pool)
    }

    /// The cluster's extension slots: per-cluster state of higher layers.
    pub(crate) fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    /// Adds a shard named `name` whose primary is at `url` to the live cluster, connecting it
    /// with the builder's pool settings (all of them: connections, timeouts, the server-side
    /// `statement_timeout`). Queries keep running meanwhile; models start using
    /// the shard when their placement names it (see [`Cluster::set_placement`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a name the cluster already has or a bad url;
    /// [`Error::ShardUnavailable`] naming the shard, its url (without password) and the cause
    /// when it cannot be connected within the connect timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes adds nothing.
    pub async fn add_shard(&self, name: impl Into<String>, url: &str) -> Result<ShardId> {
        let name = name.into();
        if self.inner.shards.find(&name).is_some() {
            return Err(Error::Config(format!(
                "cannot add shard `{name}`: the cluster already has a shard of that name"
            )));
        }
        let next = ShardId::named(self.inner.shards.len() as u32, intern(&name));
        let (pool, origin) = self
            .inner
            .pool_settings
            .pool::<DB>(next, "primary", url, false)
            .await?;
        self.add_endpoint(name, pool, origin)
    }

    /// Adds a shard named `name` over an already-connected `pool` to the live cluster (see
    /// [`Cluster::add_shard`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a name the cluster already has.
    pub fn add_shard_pool(&self, name: impl Into<String>, pool: Pool<DB>) -> Result<ShardId> {
        let name = name.into();
        self.add_endpoint(name, pool, Origin::new(GIVEN_POOL.into()))
    }

    /// Adds a shard named `name` whose primary at `address` is reached through `pool`.
    fn add_endpoint(&self, name: String, pool: Pool<DB>, origin: Origin) -> Result<ShardId> {
        let i = self
            .inner
            .shards
            .push(|i| new_shard(i, name, pool, origin))?;
        self.inner
            .shards
            .slot(i)
            .map(|s| s.id)
            .ok_or_else(|| Error::Config(format!("shard slot {i} is empty")))
    }

    /// Takes the shard called `name` out of the cluster and closes its pools unless one of its
    /// tables holds a row (see [`Cluster::remove_shard`], which first checks the placements).
    ///
    /// # Errors
    ///
    /// As `remove_shard`, for the shard itself.
    pub(crate) async fn remove_endpoint(&self, name: &str) -> Result<()> {
        let Some(i) = self.inner.shards.find(name) else {
            return Err(Error::Config(format!(
                "cannot remove shard `{name}`: the cluster has no such shard (it has {})",
                self.shard_names().collect::<Vec<_>>().join(", ")
            )));
        };
        if self.inner.shards.live().count() <= 1 {
            return Err(Error::Config(format!(
                "cannot remove shard `{name}`: it is the cluster's last shard"
            )));
        }
        let Some(shard) = self.inner.shards.slot(i) else {
            return Err(Error::Config(format!("shard slot {i} is empty")));
        };
        // Take the shard out of routing first, so no new write lands while its tables are
        // counted; put it back if they hold rows.
        shard.removed.store(true, Ordering::Release);
        let held = match self.rows_held(shard).await {
            Ok(held) => held,
            Err(e) => {
                shard.removed.store(false, Ordering::Release);
                return Err(e);
            }
        };
        if let Some((table, rows)) = held {
            shard.removed.store(false, Ordering::Release);
            return Err(Error::Config(format!(
                "cannot remove shard `{name}`: its table `{table}` still holds {rows} row(s); \
                 move them to other shards (reshard) or delete them, then remove the shard — \
                 nothing was changed"
            )));
        }
        {
            let _guard = self
                .inner
                .shards
                .change
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut names = self
                .inner
                .shards
                .by_name
                .write()
                .unwrap_or_else(|e| e.into_inner());
            names.remove(name);
        }
        shard.primary.parked.clear();
        shard.primary.pool.close().await;
        for replica in &shard.replicas {
            replica.parked.clear();
            replica.pool.close().await;
        }
        Ok(())
    }

    /// The first table of `shard` holding rows, with its row count (Grant's ledger aside).
    async fn rows_held(&self, shard: &Shard<DB>) -> Result<Option<(String, i64)>> {
        let pool = &shard.primary.pool;
        let id = shard.id;
        let list = if <DB as Backend>::NAME == "SQLite" {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name"
        } else {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             ORDER BY table_name"
        };
        let tables = DB::fetch_all(pool, list.into(), SqlxValues(Values(Vec::new())))
            .await
            .map_err(|e| Error::on_shard("-", id, e))?;
        for row in &tables {
            let table = DB::get_string(row, 0)
                .map_err(|e| Error::on_shard("-", id, e))?
                .unwrap_or_default();
            if table == MIGRATION_LEDGER {
                continue;
            }
            let count = format!("SELECT COUNT(*) FROM \"{}\"", table.replace('"', "\"\""));
            let rows = DB::fetch_all(pool, count, SqlxValues(Values(Vec::new())))
                .await
                .map_err(|e| Error::on_shard("-", id, e))?;
            let n = match rows.first() {
                Some(row) => DB::get_i64(row, 0)
                    .map_err(|e| Error::on_shard("-", id, e))?
                    .unwrap_or(0),
                None => 0,
            };
            if n > 0 {
                return Ok(Some((table, n)));
            }
        }
        Ok(None)
    }

    /// The per-statement timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The server-side statement timeout every connection runs under, if one was set with
    /// [`ClusterBuilder::statement_timeout`].
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.inner.statement_timeout
    }

    /// How many shard statements one query may have in flight at once.
    pub fn max_concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// The query log: record which shards (and endpoints) statements touched.
    pub fn log(&self) -> &QueryLog {
        &self.inner.log
    }

    /// Health, latency, error rate and pool use of every endpoint of every shard.
    pub fn status(&self) -> Vec<ShardStatus> {
        self.inner
            .shards
            .live()
            .map(|(_, shard)| ShardStatus {
                shard: shard.name.clone(),
                endpoints: std::iter::once(&shard.primary)
                    .chain(&shard.replicas)
                    .map(|e| {
                        let (latency_mean, latency_p95) = e.health.latency();
                        EndpointStatus {
                            endpoint: e.label.to_string(),
                            healthy: !e.health.is_open(),
                            circuit: e.health.circuit(),
                            consecutive_failures: e.health.consecutive_failures(),
                            latency_mean,
                            latency_p95,
                            error_rate: e.health.error_rate(),
                            in_use: e.in_use(),
                            idle: e.idle(),
                            last_error: e.health.last_error(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Checks that the cluster has every shard model `M` uses (without I/O; to check the
    /// model's tables on them too, see [`Cluster::check_schema`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] naming the first missing shard.
    pub fn check<M: Model>(&self) -> Result<()> {
        match self.placement::<M>() {
            Some(state) => {
                for shard in state.placement.all_shards::<M>() {
                    self.shard_ref(M::META.name, shard)?;
                }
            }
            None => {
                for &shard in M::shards() {
                    self.shard_ref(M::META.name, shard)?;
                }
            }
        }
        Ok(())
    }

    /// The live cluster shard `shard` names, or [`Error::UnknownShard`].
    #[inline]
    fn shard_ref(&self, model: &'static str, shard: ShardId) -> Result<&Shard<DB>> {
        let shards = &self.inner.shards;
        let len = shards.len();
        let found = if len <= 32 {
            (0..len)
                .filter_map(|i| shards.slot(i))
                .find(|s| shard.is_named(&s.name) && !s.removed.load(Ordering::Acquire))
        } else {
            shards
                .find(&shard.name())
                .and_then(|i| shards.slot(i))
                .filter(|s| !s.removed.load(Ordering::Acquire))
        };
        found.ok_or_else(|| Error::UnknownShard {
            model,
            shard: shard.name(),
            known: self.shard_names().collect::<Vec<_>>().join(", "),
        })
    }

    /// Whether model `M`'s table on `shard` was found to have every column since the last
    /// migration (the hot path of the schema check: one uncontended read lock and a hash).
    #[inline]
    pub(crate) fn schema_verified<M: Model>(&self, shard: ShardId) -> bool {
        self.shard_ref(M::META.name, shard).is_ok_and(|s| {
            s.schema_ok
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&std::any::TypeId::of::<M>())
        })
    }

    /// Remembers that model `M`'s table on `shard` has every column.
    pub(crate) fn set_schema_verified<M: Model>(&self, shard: ShardId) {
        if let Ok(s) = self.shard_ref(M::META.name, shard) {
            s.schema_ok
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(std::any::TypeId::of::<M>());
        }
    }

    /// Forgets every schema check (after a migration: tables may have changed).
    pub(crate) fn forget_schemas(&self) {
        for (_, s) in self.inner.shards.live() {
            s.schema_ok
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }

    /// The position of `shard` among the live cluster shards (as [`Cluster::shard_id`] and
    /// [`Cluster::shard_names`] count them), or [`Error::UnknownShard`].
    pub(crate) fn shard_index(&self, model: &'static str, shard: ShardId) -> Result<usize> {
        let found = self.shard_ref(model, shard)?;
        self.inner
            .shards
            .live()
            .position(|(_, s)| std::ptr::eq(s, found))
            .ok_or_else(|| Error::UnknownShard {
                model,
                shard: shard.name(),
                known: self.shard_names().collect::<Vec<_>>().join(", "),
            })
    }

    /// Checks that `shard` exists, without running anything.
    pub(crate) fn shard_pool(&self, model: &'static str, shard: ShardId) -> Result<&Pool<DB>> {
        Ok(&self.shard_ref(model, shard)?.primary.pool)
    }

    fn since_epoch(&self) -> u64 {
        (self.inner.epoch.elapsed().as_nanos() as u64).max(1)
    }

    /// The shard a write goes to (its primary), or a fail-fast [`Error::ShardUnavailable`]
    /// while the primary's circuit is open.
    fn writable(&self, model: &'static str, shard: ShardId) -> Result<&Shard<DB>> {
        let s = self.shard_ref(model, shard)?;
        if !s.primary.health.admits(self.trial_after()) {
            return Err(self.circuit_open(
                model,
                shard,
                &s.primary,
                "writes go to the primary only",
            ));
        }
        Ok(s)
    }

    /// The endpoint a read goes to under `policy` (default: the cluster's), or a fail-fast
    /// [`Error::ShardUnavailable`].
    fn endpoint(
        &self,
        model: &'static str,
        shard: ShardId,
        policy: Option<ReadPolicy>,
    ) -> Result<&Endpoint<DB>> {
        let s = self.shard_ref(model, shard)?;
        let policy = policy.unwrap_or(self.inner.read_policy);
        let recent_write = {
            let at = s.last_write.load(Ordering::Relaxed);
            at != 0
                && self.since_epoch().saturating_sub(at)
                    < self.inner.read_your_writes.as_nanos() as u64
        };
        let primary_up = s.primary.health.admits(self.trial_after());
        let replica = || self.pick_replica(s);
        let chosen = match policy {
            ReadPolicy::Primary if primary_up => Some(&s.primary),
            // Failover: the primary is down, a healthy replica serves the read.
            ReadPolicy::Primary => replica(),
            ReadPolicy::PreferReplica if recent_write && primary_up => Some(&s.primary),
            ReadPolicy::PreferReplica => replica().or(primary_up.then_some(&s.primary)),
            ReadPolicy::ReplicaOnly => replica(),
        };
        chosen.ok_or_else(|| {
            let why = if s.replicas.is_empty() {
                "the shard has no replica to fail over to"
            } else {
                "no replica of the shard is healthy either"
            };
            let down = if policy == ReadPolicy::ReplicaOnly && primary_up {
                s.replicas.first().unwrap_or(&s.primary)
            } else {
                &s.primary
            };
            self.circuit_open(model, shard, down, why)
        })
    }

    fn pick_replica<'a>(&self, shard: &'a Shard<DB>) -> Option<&'a Endpoint<DB>> {
        let trial = self.trial_after();
        let healthy = shard.replicas.iter().filter(|r| r.health.admits(trial));
        match self.inner.balance {
            Balance::LeastBusy => healthy.min_by_key(|r| r.in_use()),
            Balance::RoundRobin => {
                let healthy: Vec<&Endpoint<DB>> = healthy.collect();
                if healthy.is_empty() {
                    return None;
                }
                let turn = shard.next_replica.fetch_add(1, Ordering::Relaxed);
                Some(healthy[turn % healthy.len()])
            }
        }
    }

    /// How long an open circuit rejects requests before one goes through as the trial: only
    /// when no background probes run to close it (then `health.interval`).
    #[inline]
    fn trial_after(&self) -> Option<Duration> {
        (!self.inner.probes).then_some(self.inner.health.interval)
    }

    fn circuit_open(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
        why: &str,
    ) -> Error {
        let last = endpoint
            .health
            .last_error()
            .unwrap_or_else(|| "no response".into());
        Error::ShardUnavailable {
            model,
            shard,
            source: sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!(
                    "{} is down (circuit open after {} consecutive failures; last: {last}); {why}; \
                     retry when `cluster.status()` shows it healthy",
                    endpoint.label,
                    endpoint.health.consecutive_failures()
                ),
            )),
        }
    }

    /// Runs a query on one shard and returns its rows, within the timeout.
    pub(crate) async fn fetch(
        &self,
        model: &'static str,
        shard: ShardId,
        policy: Option<ReadPolicy>,
        (sql, values): (String, SqlxValues),
    ) -> Result<Vec<DB::Row>> {
        let endpoint = self.endpoint(model, shard, policy)?;
        self.inner
            .log
            .record(shard, endpoint.label, sql.as_str(), &values);
        let again = (sql.clone(), values.clone());
        self.bounded_retry(
            model,
            shard,
            endpoint,
            endpoint.run(move |c| DB::fetch_all_on(c, sql, values)),
            Some(move || endpoint.run(move |c| DB::fetch_all_on(c, again.0, again.1))),
            |rows| rows.len() as u64,
        )
        .await
    }

    /// [`Cluster::fetch`], as a task of its own on the runtime when `spread` (a scatter's leg
    /// beside others): the shards' statements then run on every worker thread at once —
    /// encoding, the protocol work and decoding of one shard do not wait for another's.
    /// Dropping the future aborts the task, which cancels its statement as dropping `fetch`
    /// does.
    pub(crate) async fn fetch_leg(
        &self,
        spread: bool,
        model: &'static str,
        shard: ShardId,
        policy: Option<ReadPolicy>,
        statement: (String, SqlxValues),
    ) -> Result<Vec<DB::Row>> {
        if !spread {
            return self.fetch(model, shard, policy, statement).await;
        }
        use tracing::Instrument;
        let cluster = self.clone();
        let task = AbortOnDrop(tokio::spawn(
            async move { cluster.fetch(model, shard, policy, statement).await }.in_current_span(),
        ));
        match task.join().await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::on_shard(model, shard, sqlx::Error::WorkerCrashed)),
        }
    }

    /// `COUNT(*)` of model `M`'s table on `shard`'s primary (of the rows meeting `scope`, when
    /// given): one plain statement, no query planning and no model gate (the directory's least-rows policy counts while its caller
    /// holds the gate; a resharding plan counts its sources).
    pub(crate) async fn count_rows<M: Model>(
        &self,
        shard: ShardId,
        scope: Option<sea_query::Condition>,
    ) -> Result<u64> {
        let mut select = sea_query::Query::select();
        select
            .expr(sea_query::Func::count(sea_query::Expr::col(
                sea_query::Asterisk,
            )))
            .from(M::META.table);
        if let Some(scope) = scope {
            select.cond_where(scope);
        }
        let rows = self
            .fetch(
                M::META.name,
                shard,
                Some(ReadPolicy::Primary),
                sea_query_sqlx::SqlxBinder::build_sqlx(&select, DB::builder()),
            )
            .await?;
        let n = match rows.first() {
            Some(row) => DB::get_i64(row, 0)
                .map_err(|e| Error::on_shard(M::META.name, shard, e))?
                .unwrap_or(0),
            None => 0,
        };
        Ok(n.max(0) as u64)
    }

    /// [`Cluster::fetch`] of a statement of Grant's own (the schema check), left out of the
    /// query log, which shows what the application's operations sent.
    pub(crate) async fn fetch_unlogged(
        &self,
        model: &'static str,
        shard: ShardId,
        (sql, values): (String, SqlxValues),
    ) -> Result<Vec<DB::Row>> {
        let endpoint = self.endpoint(model, shard, Some(ReadPolicy::Primary))?;
        self.bounded(
            model,
            shard,
            endpoint,
            endpoint.run(move |c| DB::fetch_all_on(c, sql, values)),
            |rows| rows.len() as u64,
        )
        .await
    }

    /// Runs a query on one shard and returns its first row, if any, within the timeout (the
    /// one-row read of `find`).
    pub(crate) async fn fetch_optional(
        &self,
        model: &'static str,
        shard: ShardId,
        policy: Option<ReadPolicy>,
        (sql, values): (String, SqlxValues),
    ) -> Result<Option<DB::Row>> {
        let endpoint = self.endpoint(model, shard, policy)?;
        self.inner
            .log
            .record(shard, endpoint.label, sql.as_str(), &values);
        let again = (sql.clone(), values.clone());
        self.bounded_retry(
            model,
            shard,
            endpoint,
            endpoint.run(move |c| DB::fetch_optional_on(c, sql, values)),
            Some(move || endpoint.run(move |c| DB::fetch_optional_on(c, again.0, again.1))),
            |row| u64::from(row.is_some()),
        )
        .await
    }

    /// Streams the rows of a query on one shard (errors name the model and shard).
    pub(crate) fn stream(
        &self,
        model: &'static str,
        shard: ShardId,
        policy: Option<ReadPolicy>,
        (sql, values): (String, SqlxValues),
    ) -> Result<BoxStream<'_, Result<DB::Row>>> {
        let endpoint = self.endpoint(model, shard, policy)?;
        self.inner
            .log
            .record(shard, endpoint.label, sql.as_str(), &values);
        let mut statement = Statement::start(model, endpoint.shard, endpoint.label);
        let started = Instant::now();
        let mut first = true;
        let preflight = self.preflight(model, shard, endpoint);
        let rows = Self::retried_stream(endpoint, sql, values)
            .map(move |row| {
                let ok = row.is_ok();
                if first {
                    first = false;
                    if ok {
                        endpoint.health.success(started.elapsed());
                    }
                }
                match row {
                    Ok(row) => {
                        statement.add_rows(1);
                        Ok(row)
                    }
                    Err(e) => {
                        statement.fail();
                        Err(e)
                    }
                }
            })
            // Classifying a pool timeout may try the endpoint directly (async).
            .then(move |row| async move {
                match row {
                    Ok(row) => Ok(row),
                    Err(e) => Err(self.shard_error(model, shard, endpoint, e).await),
                }
            });
        // A shard known to be down fails before its rows are asked for.
        let mut rows = Some(rows);
        Ok(futures_util::stream::once(preflight)
            .flat_map(move |checked| match (checked, rows.take()) {
                (Ok(()), Some(rows)) => rows.left_stream(),
                (checked, _) => futures_util::stream::iter(checked.err().map(Err)).right_stream(),
            })
            .boxed())
    }

    /// The rows of a read, started once more on another connection when the first one's
    /// connection turns out broken before any row came (see [`Cluster::bounded_retry`]).
    fn retried_stream(
        endpoint: &Endpoint<DB>,
        sql: String,
        values: SqlxValues,
    ) -> impl futures_util::Stream<Item = std::result::Result<DB::Row, sqlx::Error>> + '_ {
        let again = (sql.clone(), values.clone());
        let first = DB::fetch_stream(&endpoint.pool, sql, values);
        futures_util::stream::once(async move {
            let (head, rest) = first.into_future().await;
            match head {
                Some(Err(e)) if connection_lost(&e) => {
                    endpoint.broken.mark();
                    DB::fetch_stream(&endpoint.pool, again.0, again.1).left_stream()
                }
                head => futures_util::stream::iter(head).chain(rest).right_stream(),
            }
        })
        .flatten()
    }

    /// Runs a write on one shard's primary and returns the rows it affected.
    pub(crate) async fn execute(
        &self,
        model: &'static str,
        shard: ShardId,
        (sql, values): (String, SqlxValues),
    ) -> Result<u64> {
        let target = self.writable(model, shard)?;
        let endpoint = &target.primary;
        self.inner
            .log
            .record(shard, endpoint.label, sql.as_str(), &values);
        let n = self
            .bounded(
                model,
                shard,
                endpoint,
                endpoint.run(move |c| DB::execute_on(c, sql, values)),
                |n| *n,
            )
            .await?;
        target
            .last_write
            .store(self.since_epoch(), Ordering::Relaxed);
        Ok(n)
    }

    /// Runs writes in one transaction on one shard's primary; returns the rows they affected.
    pub(crate) async fn execute_atomic(
        &self,
        model: &'static str,
        shard: ShardId,
        statements: Vec<(String, SqlxValues)>,
    ) -> Result<u64> {
        Ok(self
            .execute_atomic_each(model, shard, statements)
            .await?
            .into_iter()
            .sum())
    }

    /// [`Cluster::execute_atomic`], with the rows each statement affected, in order.
    pub(crate) async fn execute_atomic_each(
        &self,
        model: &'static str,
        shard: ShardId,
        statements: Vec<(String, SqlxValues)>,
    ) -> Result<Vec<u64>> {
        let target = self.writable(model, shard)?;
        let endpoint = &target.primary;
        for (sql, values) in &statements {
            self.inner.log.record(shard, endpoint.label, sql, values);
        }
        let work = async {
            let mut conn = endpoint.checkout().await?;
            // The backend's write transaction (SQLite: `BEGIN IMMEDIATE`, so one that reads
            // first — `CREATE TABLE IF NOT EXISTS` of a table that exists — never fails
            // taking the write lock after another process wrote).
            let mut tx =
                sqlx::Connection::begin_with(&mut *conn, sqlx::AssertSqlSafe(DB::BEGIN.to_owned()))
                    .await?;
            let mut affected = Vec::with_capacity(statements.len());
            for (sql, values) in statements {
                affected.push(DB::execute_on(&mut *tx, sql, values).await?);
            }
            tx.commit().await?;
            // Committed: the connection is clean for the next statement. On an error above
            // the transaction rolls back as the connection goes back to the pool.
            endpoint.parked.park(conn);
            Ok(affected)
        };
        let n = self
            .bounded(model, shard, endpoint, work, |n: &Vec<u64>| n.iter().sum())
            .await?;
        target
            .last_write
            .store(self.since_epoch(), Ordering::Relaxed);
        Ok(n)
    }

    /// A driver error on an endpoint, classified (and fed to its health): a pool with no
    /// connection to give within the acquire timeout is diagnosed with one direct connection
    /// attempt — [`Error::ShardUnavailable`] with the cause (refused, unknown host,
    /// authentication failed, no answer) when the endpoint cannot be connected, else a
    /// pool-exhaustion [`Error::Timeout`]; a statement the server cancelled (its
    /// `statement_timeout`) is [`Error::Timeout`]; other connection failures
    /// [`Error::ShardUnavailable`]; the rest [`Error::Shard`].
    async fn shard_error(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
        error: sqlx::Error,
    ) -> Error {
        if connection_lost(&error) {
            endpoint.broken.mark();
        }
        let error = match error {
            sqlx::Error::PoolTimedOut => {
                let options = endpoint.pool.connect_options();
                let limit = self.inner.pool_settings.connect_timeout;
                match connect_cause::<DB>(&options, limit).await {
                    Some(cause) => unreachable(
                        model,
                        shard,
                        endpoint.label,
                        &endpoint.address,
                        &cause,
                        &format!(
                            "its pool found no connection within the acquire timeout ({} ms); \
                             check that the server is up (`cluster.status()` shows its health)",
                            self.inner.acquire_timeout.as_millis()
                        ),
                    ),
                    None => Error::Timeout {
                        model,
                        shards: format!(
                            "{shard} (no free connection in its pool of {}: every connection \
                             stayed busy; raise `max_connections` or `acquire_timeout`, or \
                             lower the concurrency)",
                            self.inner.pool_settings.max_connections
                        ),
                        millis: self.inner.acquire_timeout.as_millis(),
                    },
                }
            }
            other => {
                if names_missing_schema(&other) {
                    // Another process (or a hand-run statement) changed the table after it
                    // was checked — a migration changes every shard: the next statements
                    // check the tables again and say which column is missing.
                    self.forget_schemas();
                }
                Error::on_shard_limited(model, shard, other, self.inner.statement_timeout)
            }
        };
        if matches!(error, Error::ShardUnavailable { .. }) {
            endpoint
                .health
                .failure(&error.to_string(), self.inner.health.failures_to_open);
        }
        error
    }

    /// Before a statement on an endpoint whose pool holds no connection and whose last request
    /// failed at the connection level: one direct connection attempt (within the connect
    /// timeout), so that a server still down fails the statement at once with its cause
    /// instead of after the pool's acquire timeout. Otherwise (the hot path) two atomic loads.
    async fn preflight(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
    ) -> Result<()> {
        // A pool with connections, or an endpoint that answered before and has not failed
        // since, goes straight to the statement. An empty pool that failed last — or that was
        // never tried (a lazy cluster's first statement) — is tried directly first, within the
        // connect timeout, so an unreachable server says why at once instead of after the
        // pool's acquire timeout.
        // After a connection-level failure the pool may still hold connections the server
        // has gone away from: the endpoint is tried directly whatever the pool holds, until a
        // statement succeeds again.
        if endpoint.health.consecutive_failures() == 0
            && (endpoint.pool.size() != 0 || !endpoint.health.untried())
        {
            return Ok(());
        }
        let options = endpoint.pool.connect_options();
        let limit = self.inner.pool_settings.connect_timeout;
        match connect_cause::<DB>(&options, limit).await {
            None => Ok(()),
            Some(cause) => {
                let error = unreachable(
                    model,
                    shard,
                    endpoint.label,
                    &endpoint.address,
                    &cause,
                    "check that the server is up (`cluster.status()` shows its health)",
                );
                endpoint
                    .health
                    .failure(&error.to_string(), self.inner.health.failures_to_open);
                Err(error)
            }
        }
    }

    /// A statement on a connection the caller holds (a transaction's, two-phase commit's,
    /// recovery's) on `shard`'s primary: the statement path without the pool — its
    /// `grant.statement` span and metrics, the breaker's outcome, the cluster's timeout and
    /// the error classification every other statement gets.
    pub(crate) async fn on_held<T>(
        &self,
        model: &'static str,
        shard: ShardId,
        work: impl Future<Output = std::result::Result<T, sqlx::Error>>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T> {
        let endpoint = &self.shard_ref(model, shard)?.primary;
        let mut statement = Statement::start(model, endpoint.shard, endpoint.label);
        let started = Instant::now();
        let attempt = async {
            match work.await {
                Ok(v) => Ok(v),
                Err(e) => Err(self.shard_error(model, shard, endpoint, e).await),
            }
        };
        let outcome = tokio::time::timeout(self.inner.timeout, attempt)
            .instrument(statement.span())
            .await;
        self.settle(
            model,
            shard,
            endpoint,
            &mut statement,
            started,
            outcome,
            rows,
        )
    }

    /// A connection from `shard`'s primary pool for a transaction: the endpoint's preflight,
    /// the diagnosis of a pool that cannot connect, the cluster's timeout and the error
    /// classification of the statement path (no span: nothing is sent yet).
    pub(crate) async fn acquire_primary(
        &self,
        model: &'static str,
        shard: ShardId,
    ) -> Result<sqlx::pool::PoolConnection<DB>> {
        let endpoint = &self.writable(model, shard)?.primary;
        let attempt = async {
            self.preflight(model, shard, endpoint).await?;
            match self
                .diagnosed(model, shard, endpoint, endpoint.checkout())
                .await?
            {
                Ok(conn) => Ok(conn),
                Err(e) => Err(self.shard_error(model, shard, endpoint, e).await),
            }
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.timed_out(model, shard, endpoint)),
        }
    }

    /// The statement timeout's error, fed to the endpoint's health.
    fn timed_out(&self, model: &'static str, shard: ShardId, endpoint: &Endpoint<DB>) -> Error {
        let error = Error::Timeout {
            model,
            shards: shard.name(),
            millis: self.inner.timeout.as_millis(),
        };
        endpoint
            .health
            .failure(&error.to_string(), self.inner.health.failures_to_open);
        error
    }

    /// The end of a statement: its outcome recorded in its span, metrics and endpoint health.
    #[allow(clippy::too_many_arguments)]
    fn settle<T>(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
        statement: &mut Statement,
        started: Instant,
        outcome: std::result::Result<Result<T>, tokio::time::error::Elapsed>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T> {
        match outcome {
            Ok(Ok(v)) => {
                endpoint.health.success(started.elapsed());
                statement.add_rows(rows(&v));
                Ok(v)
            }
            Ok(Err(e)) => {
                statement.fail();
                Err(e)
            }
            Err(_) => {
                statement.fail();
                Err(self.timed_out(model, shard, endpoint))
            }
        }
    }

    /// Runs `work`; when it is still waiting after the connect timeout, the server is also
    /// tried directly, alongside (idle connections may be ones the server has gone away
    /// from, so the pool's state proves nothing): sqlx's pool keeps
    /// retrying a refused connection until its acquire timeout, so a server stopped mid-run
    /// would otherwise be reported only then. A server that cannot be connected fails the
    /// statement with the cause; one that answers lets the statement go on (a long statement,
    /// or a busy pool, costs that one extra connection).
    async fn diagnosed<T>(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
        work: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<std::result::Result<T, sqlx::Error>> {
        let limit = self.inner.pool_settings.connect_timeout;
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            done = &mut work => return Ok(done),
            () = tokio::time::sleep(limit) => {}
        }
        let options = endpoint.pool.connect_options();
        let probe = connect_cause::<DB>(&options, limit);
        tokio::select! {
            biased;
            done = &mut work => Ok(done),
            cause = probe => match cause {
                None => Ok(work.await),
                Some(cause) => {
                    let error = unreachable(
                        model,
                        shard,
                        endpoint.label,
                        &endpoint.address,
                        &cause,
                        "check that the server is up (`cluster.status()` shows its health)",
                    );
                    endpoint
                        .health
                        .failure(&error.to_string(), self.inner.health.failures_to_open);
                    Err(error)
                }
            },
        }
    }

    async fn bounded<T>(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
        work: impl Future<Output = std::result::Result<T, sqlx::Error>>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T> {
        self.bounded_retry(
            model,
            shard,
            endpoint,
            work,
            None::<fn() -> std::future::Ready<std::result::Result<T, sqlx::Error>>>,
            rows,
        )
        .await
    }

    /// [`Cluster::bounded`] of a read: `again` runs the statement once more, on another
    /// connection, when the first attempt's connection turned out broken (the server closed
    /// it: restarted, or ended idle sessions). Only reads are retried — a write whose
    /// connection broke may have been applied, and running it twice could apply it twice.
    async fn bounded_retry<T, Again, Retry>(
        &self,
        model: &'static str,
        shard: ShardId,
        endpoint: &Endpoint<DB>,
        work: impl Future<Output = std::result::Result<T, sqlx::Error>>,
        again: Option<Retry>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T>
    where
        Retry: FnOnce() -> Again,
        Again: Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        let mut statement = Statement::start(model, endpoint.shard, endpoint.label);
        let started = Instant::now();
        // One deadline for the whole statement: the preflight of an endpoint known to be
        // failing, the statement, and the diagnosis of a pool with no connection to give.
        let attempt = async {
            self.preflight(model, shard, endpoint).await?;
            let error = match self.diagnosed(model, shard, endpoint, work).await? {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let error = match again {
                Some(again) if connection_lost(&error) => {
                    // Every connection idle now is pinged before its next use.
                    endpoint.broken.mark();
                    match self.diagnosed(model, shard, endpoint, again()).await? {
                        Ok(v) => return Ok(v),
                        Err(e) => e,
                    }
                }
                _ => error,
            };
            Err(self.shard_error(model, shard, endpoint, error).await)
        };
        let outcome = tokio::time::timeout(self.inner.timeout, attempt)
            .instrument(statement.span())
            .await;
        self.settle(
            model,
            shard,
            endpoint,
            &mut statement,
            started,
            outcome,
            rows,
        )
    }
}

/// A shard in slot `slot` named `name` with primary `pool`.
fn new_shard<DB: Backend>(slot: usize, name: String, pool: Pool<DB>, origin: Origin) -> Shard<DB> {
    // A ShardId holds a `&'static str`: each distinct shard name is leaked once per process.
    let leaked = intern(&name);
    Shard {
        name,
        removed: AtomicBool::new(false),
        id: ShardId::named(slot as u32, leaked),
        primary: Endpoint::new("primary", leaked, pool, origin),
        replicas: Vec::new(),
        next_replica: AtomicUsize::new(0),
        last_write: AtomicU64::new(0),
        schema_ok: RwLock::new(HashSet::default()),
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
                .after_connect(|connection, _| <sqlx::Sqlite as Backend>::after_connect(connection))
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
    /// The endpoint: `primary`, `replica_0`, ...
    pub endpoint: &'static str,
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

    pub(crate) fn record(
        &self,
        shard: ShardId,
        endpoint: &'static str,
        sql: &str,
        values: &SqlxValues,
    ) {
        if self.on.load(Ordering::Relaxed) {
            self.lock().push(Executed {
                shard: shard.name(),
                endpoint,
                sql: sql.to_owned(),
                values: values.0.0.clone(),
            });
        }
    }
}

/// A spawned task aborted when its handle is dropped (a cancelled scatter cancels its legs).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> std::result::Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The table of applied migrations (`crate::schema`): Grant's own, it holds no rows of a model.
pub(crate) const MIGRATION_LEDGER: &str = "grant_migrations";

/// A `&'static str` for a shard name given at run time: each distinct name is leaked once per
/// process ([`ShardId`] holds `&'static str` names).
pub fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}
