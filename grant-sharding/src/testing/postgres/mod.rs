//! PostgreSQL for tests, with no manual setup.
//!
//! [`available`] gives the process-wide [`PgEnv`]: the server named by `GRANT_PG_URL` when that
//! is set, else a [`PgServer`] of our own started on first use (`initdb` + `pg_ctl` from the
//! installed PostgreSQL server binaries, in a temporary directory, removed when the process
//! ends). Each test then creates its own databases on it, named after the test, so tests run
//! in parallel: [`PgEnv::cluster`] for a cluster of fresh shard databases, [`PgEnv::database`]
//! for one more (a reference database holding all rows, say). Databases sort text as
//! production ones do, by a locale (ICU `en-US`, see [`Collation`]), unless a test asks for
//! byte order ([`PgEnv::cluster_with`], [`PgEnv::database_with`]).
//!
//! Tests that need server processes of their own — several servers, or one to stop and
//! restart — call [`own_server_or_skip`] instead.
//!
//! When there is no PostgreSQL (no binaries and no `GRANT_PG_URL`), [`available`] prints a loud
//! `skipping: no PostgreSQL` line to stderr and returns `None`, so the test can return early —
//! except under CI (`CI=true` or `CI=1`), where a missing PostgreSQL is a failure and it panics.
//!
//! # Examples
//!
//! ```no_run
//! # async fn example() {
//! use grant_sharding::testing::postgres;
//! let Some(pg) = postgres::available().await else {
//!     return; // no PostgreSQL here; a line on stderr says so
//! };
//! let cluster = pg.cluster("my_test", 8).await; // shard_0 .. shard_7, fresh databases
//! let reference = pg.database("my_test").await; // one more database URL
//! # drop((cluster, reference));
//! # }
//! ```

mod server;

use server::NO_BINARIES;
pub use server::PgServer;

use std::io::Write as _;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Postgres};
use tokio::sync::OnceCell;

use crate::Cluster;

/// The environment variable naming an existing server to use instead of starting one, as a URL
/// to a database the tests may connect to and create databases from:
/// `postgres://user[:password]@host:port/postgres`.
pub const URL_VAR: &str = "GRANT_PG_URL";

/// How long connecting to the maintenance database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest database name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

/// Where tests create their databases: an external server (`GRANT_PG_URL`) or a [`PgServer`]
/// started by this process.
#[derive(Debug)]
pub struct PgEnv {
    /// URL of the database to connect to for `CREATE DATABASE`.
    maintenance: String,
    server: Option<PgServer>,
}

impl PgEnv {
    /// An existing server, reached through `url` (its database is used for `CREATE DATABASE`;
    /// the user must have the `CREATEDB` privilege).
    pub fn external(url: impl Into<String>) -> PgEnv {
        PgEnv {
            maintenance: url.into(),
            server: None,
        }
    }

    /// A server started by this process; the environment owns it.
    pub fn started(server: PgServer) -> PgEnv {
        PgEnv {
            maintenance: server.url("postgres"),
            server: Some(server),
        }
    }

    /// The server this process started, if it started one (not for `GRANT_PG_URL`).
    pub fn server(&self) -> Option<&PgServer> {
        self.server.as_ref()
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        with_database(&self.maintenance, database)
    }

    /// Creates the database `name` (dropping one of that name first) with the default
    /// [`Collation`] (ICU `en-US`, as production databases sort) and returns its URL.
    ///
    /// # Errors
    ///
    /// The driver's error when the server cannot be reached or refuses (a server built without
    /// ICU refuses the default collation).
    pub async fn create_database(&self, name: &str) -> Result<String, sqlx::Error> {
        self.create_database_with(name, Collation::default()).await
    }

    /// Creates the database `name` (dropping one of that name first) with `collation`, UTF-8,
    /// from `template0`, and returns its URL.
    ///
    /// # Errors
    ///
    /// The driver's error when the server cannot be reached or refuses.
    pub async fn create_database_with(
        &self,
        name: &str,
        collation: Collation,
    ) -> Result<String, sqlx::Error> {
        let mut conn = self.connect().await?;
        let quoted = quote_ident(name);
        let forced = format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)");
        if sqlx::raw_sql(sqlx::AssertSqlSafe(forced))
            .execute(&mut conn)
            .await
            .is_err()
        {
            // Before PostgreSQL 13 there is no FORCE.
            let plain = format!("DROP DATABASE IF EXISTS {quoted}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(plain))
                .execute(&mut conn)
                .await?;
        }
        let create = format!(
            "CREATE DATABASE {quoted} TEMPLATE template0 ENCODING 'UTF8' {}",
            collation.sql()
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(self.url(name))
    }

    /// Drops the database `name` if it exists (closing its connections).
    ///
    /// # Errors
    ///
    /// The driver's error when the server cannot be reached or refuses.
    pub async fn drop_database(&self, name: &str) -> Result<(), sqlx::Error> {
        let mut conn = self.connect().await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    /// A cluster of `shards` fresh databases, one per shard: database
    /// [`database_name`]`(test, "shard_<i>")` is the cluster's shard `shard_<i>`. The databases
    /// have the default [`Collation`] (ICU `en-US`).
    ///
    /// # Panics
    ///
    /// When a database cannot be created or connected (a test fixture: the message says why).
    pub async fn cluster(&self, test: &str, shards: usize) -> Cluster<Postgres> {
        self.cluster_with(test, shards, Collation::default()).await
    }

    /// [`PgEnv::cluster`] with databases of `collation`.
    ///
    /// # Panics
    ///
    /// As [`PgEnv::cluster`].
    pub async fn cluster_with(
        &self,
        test: &str,
        shards: usize,
        collation: Collation,
    ) -> Cluster<Postgres> {
        let urls = futures_util::future::try_join_all(
            (0..shards).map(|i| self.create_database_for(test, format!("shard_{i}"), collation)),
        )
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot create the shard databases: {e}"));
        let mut builder = Cluster::<Postgres>::builder();
        for (i, url) in urls.into_iter().enumerate() {
            builder = builder.shard(format!("shard_{i}"), url);
        }
        builder
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect the shard databases: {e}"))
    }

    /// One more fresh database for `test` ([`database_name`]`(test, "all")`), e.g. the
    /// reference database holding all rows, with the default [`Collation`]; returns its URL.
    ///
    /// # Panics
    ///
    /// When the database cannot be created (a test fixture: the message says why).
    pub async fn database(&self, test: &str) -> String {
        self.database_with(test, Collation::default()).await
    }

    /// [`PgEnv::database`] with `collation`.
    ///
    /// # Panics
    ///
    /// As [`PgEnv::database`].
    pub async fn database_with(&self, test: &str, collation: Collation) -> String {
        self.create_database_for(test, "all".into(), collation)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot create a database: {e}"))
    }

    async fn create_database_for(
        &self,
        test: &str,
        suffix: String,
        collation: Collation,
    ) -> Result<String, String> {
        let name = database_name(test, &suffix);
        self.create_database_with(&name, collation)
            .await
            .map_err(|e| format!("database `{name}` on {}: {e}", self.maintenance))
    }

    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&self.maintenance)).await
        {
            Ok(conn) => conn,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            ))),
        }
    }
}

/// The database name for `test` and `suffix`: `<test>_<suffix>_p<process id>`, lowercased, every
/// character outside `[a-z0-9_]` replaced by `_`, at most 63 bytes (a long test name is cut and
/// tagged with a hash of the whole name, so names stay distinct).
///
/// The process id keeps two runs against one external server apart.
///
/// # Examples
///
/// ```
/// use grant_sharding::testing::postgres::database_name;
/// let name = database_name("pg_crud::Finds-All", "shard_3");
/// assert_eq!(name, format!("pg_crud__finds_all_shard_3_p{}", std::process::id()));
/// ```
pub fn database_name(test: &str, suffix: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut stem = clean(test);
    if !stem.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        stem.insert_str(0, "t_");
    }
    let tail = if suffix.is_empty() {
        format!("_p{}", std::process::id())
    } else {
        format!("_{}_p{}", clean(suffix), std::process::id())
    };
    if stem.len() + tail.len() > MAX_NAME {
        // FNV-1a of the whole test name keeps cut names apart.
        let hash = test.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let tag = format!("_{hash:08x}");
        let keep = MAX_NAME.saturating_sub(tail.len() + tag.len());
        stem.truncate(keep);
        stem.push_str(&tag);
    }
    stem.push_str(&tail);
    stem.truncate(MAX_NAME);
    stem
}

static SHARED: OnceCell<Result<PgEnv, String>> = OnceCell::const_new();

/// How a test database sorts text.
///
/// Production PostgreSQL databases rarely use the `C` collation, so tests don't either unless
/// they ask: the default is ICU `en-US`, under which `ORDER BY` on text follows the locale
/// (`a` < `B` < `b`, punctuation ignored at first), not bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Collation {
    /// ICU `en-US` (`LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`, with `C.utf8` for the libc
    /// categories, which every glibc has): the default.
    #[default]
    IcuEnUs,
    /// Byte order (`LOCALE_PROVIDER libc LOCALE 'C'`): only for a test that asks for it on
    /// purpose.
    C,
}

impl Collation {
    /// The locale clauses of `CREATE DATABASE`.
    fn sql(self) -> &'static str {
        match self {
            Collation::IcuEnUs => "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.utf8'",
            Collation::C => "LOCALE_PROVIDER libc LOCALE 'C'",
        }
    }
}

/// The process-wide PostgreSQL for tests, or why there is none.
///
/// `GRANT_PG_URL` when set (checked by connecting to it), else a [`PgServer`] started on the
/// first call and shared by every later call of the process (it stops when the process ends).
pub async fn try_shared() -> Result<&'static PgEnv, &'static str> {
    SHARED
        .get_or_init(init)
        .await
        .as_ref()
        .map_err(String::as_str)
}

/// The process-wide PostgreSQL for tests, or `None` after printing a loud
/// `skipping: no PostgreSQL` line to stderr.
///
/// # Panics
///
/// When there is no PostgreSQL and the environment variable `CI` is `true` or `1` (under CI a
/// missing PostgreSQL is a failure, not a skip), and when `GRANT_PG_URL` is set but unusable.
pub async fn available() -> Option<&'static PgEnv> {
    match try_shared().await {
        Ok(env) => Some(env),
        Err(why) if std::env::var_os(URL_VAR).is_some_and(|v| !v.is_empty()) => {
            panic!("{why}")
        }
        Err(why) if in_ci() => panic!(
            "PostgreSQL is required under CI (CI={}), but there is none: {why}",
            std::env::var("CI").unwrap_or_default()
        ),
        Err(why) => {
            // Straight to the stderr handle: `eprintln!` would be captured by the test harness
            // and shown only for failing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! skipping: no PostgreSQL: {why}\n!!! this test checked nothing; install the \
                 PostgreSQL server binaries (initdb, pg_ctl) or set {URL_VAR}\n"
            );
            None
        }
    }
}

/// The process-wide PostgreSQL for tests.
///
/// # Panics
///
/// When there is none, with the reason; use [`available`] to skip instead.
pub async fn shared() -> &'static PgEnv {
    match try_shared().await {
        Ok(env) => env,
        Err(why) => panic!("no PostgreSQL for tests: {why}"),
    }
}

/// A cluster of `shards` fresh databases on the [`shared`] server, shards named
/// `shard_0 .. shard_{shards-1}`; see [`PgEnv::cluster`].
///
/// # Panics
///
/// When there is no PostgreSQL or the databases cannot be created.
pub async fn pg_cluster(test: &str, shards: usize) -> Cluster<Postgres> {
    shared().await.cluster(test, shards).await
}

/// One more fresh database for `test` on the [`shared`] server; returns its URL. See
/// [`PgEnv::database`].
///
/// # Panics
///
/// When there is no PostgreSQL or the database cannot be created.
pub async fn pg_database(test: &str) -> String {
    shared().await.database(test).await
}

async fn init() -> Result<PgEnv, String> {
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        let env = PgEnv::external(url);
        return match env.connect().await {
            Ok(conn) => {
                let _ = conn.close().await;
                Ok(env)
            }
            Err(e) => Err(format!(
                "{URL_VAR}={} cannot be reached: {e}",
                env.maintenance
            )),
        };
    }
    tokio::task::spawn_blocking(PgServer::start)
        .await
        .map_err(|e| format!("starting PostgreSQL panicked: {e}"))?
        .map(PgEnv::started)
}

/// A [`PgServer`] of the test's own, for tests that need server processes to themselves (to
/// stop and restart them, or to spread shards over several servers), or `None` after printing
/// a loud `skipping: no PostgreSQL server binaries` line to stderr. `GRANT_PG_URL` does not
/// help here: such a test must control its servers.
///
/// Blocking (`initdb` and `pg_ctl start` take a second or two): call it from
/// `tokio::task::spawn_blocking` or `block_in_place` inside async tests.
///
/// # Panics
///
/// When the server cannot start and the environment variable `CI` is `true` or `1` (under CI a
/// missing PostgreSQL is a failure, not a skip), or when the binaries exist but the server
/// fails to start anyway (a broken setup is never a skip).
pub fn own_server_or_skip(test: &str) -> Option<PgServer> {
    match PgServer::start() {
        Ok(server) => Some(server),
        Err(why) if in_ci() => panic!(
            "{test}: PostgreSQL is required under CI (CI={}), but no server could start: {why}",
            std::env::var("CI").unwrap_or_default()
        ),
        Err(why)
            if why.starts_with(NO_BINARIES)
                || why.starts_with("GRANT_PG_BIN")
                || why.starts_with("running as root") =>
        {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! skipping {test}: no PostgreSQL server binaries: {why}\n!!! this test \
                 checked nothing; install the PostgreSQL server binaries (initdb, pg_ctl)\n"
            );
            None
        }
        Err(why) => panic!("{test}: the PostgreSQL server binaries are there, but: {why}"),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// `"name"`, with embedded quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database (the path) replaced by `database`, query string kept.
fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority_start..].find('/') {
        Some(i) => &head[..authority_start + i],
        None => head,
    };
    format!("{base}/{database}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_database_swapped() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgres://h:1/db?sslmode=disable", "x"),
            "postgres://h:1/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres:///db?host=/run/postgresql", "x"),
            "postgres:///x?host=/run/postgresql"
        );
    }

    #[test]
    fn names_are_clean_short_and_distinct() {
        let pid = std::process::id();
        assert_eq!(
            database_name("a::B-c", "shard_0"),
            format!("a__b_c_shard_0_p{pid}")
        );
        assert_eq!(database_name("9lives", ""), format!("t_9lives_p{pid}"));
        let long_a = format!("{}_a", "x".repeat(80));
        let long_b = format!("{}_b", "x".repeat(80));
        let a = database_name(&long_a, "shard_7");
        let b = database_name(&long_b, "shard_7");
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.ends_with(&format!("_shard_7_p{pid}")), "{a}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_environment_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PgEnv>();
        assert_send_sync::<PgServer>();
    }
}
