//! Transactions: single-shard transactions routed by key, atomic multi-shard transactions with
//! two-phase commit (PostgreSQL), crash recovery, reference (broadcast) tables and explicit
//! shard-key moves.
//!
//! * [`ShardTx`] — one shard, one database transaction: `cluster.begin_for::<User>(&key)` (or
//!   [`Cluster::transaction_for`] with a closure). Every statement runs on that shard; one that
//!   addresses rows of another shard is refused with [`Error::WrongShard`] and never runs
//!   elsewhere. SQLite and PostgreSQL.
//! * [`Transaction`] — any shards, all or nothing: `cluster.begin()`. A shard's transaction opens
//!   on the first statement that needs it. Commit of one shard is a plain `COMMIT`; of several,
//!   two-phase commit on PostgreSQL:
//!   1. `PREPARE TRANSACTION 'grant:<txid>:<shard>'` on every participant (any failure: every
//!      prepared one is rolled back and the commit fails, nothing applied);
//!   2. the commit decision is written durably to the coordinator log table `grant_2pc_log` on
//!      the coordinator shard (default: the cluster's first shard; see [`TwoPhase`]);
//!   3. `COMMIT PREPARED` on every participant, then the log row is marked done.
//!
//!   A crash (or a dropped future) between 1 and 3 leaves prepared transactions holding their
//!   locks; [`Cluster::recover`] finishes them: those with a commit decision are committed, those
//!   without one are rolled back once older than [`TwoPhase::abandon_after`]. The decision row's
//!   primary key makes the coordinator's commit and recovery's abort mutually exclusive, so a
//!   slow coordinator and recovery never disagree. Recovery runs at `connect()` for PostgreSQL
//!   clusters ([`TwoPhase::recover_on_connect`]), and when phase two cannot finish now the
//!   commit returns [`Error::InDoubt`] naming the gid while a background task retries.
//!
//!   SQLite has no two-phase commit: a transaction reaching a second shard is refused with
//!   [`Error::Unsupported`] (use a saga).
//! * Reference tables (`#[derive(Model)] #[grant(reference)]`): identical rows on every shard.
//!   Their writes fan out to every shard in one [`Transaction`]; reads go to any one shard,
//!   inside a [`ShardTx`] to the transaction's own shard.
//! * [`Transaction::move_key`] / [`Cluster::move_key`]: a row moves to a new shard key as a
//!   delete on the old shard and an insert on the new one, in one transaction.

mod recover;
mod reference;
mod shard;
mod twopc;

pub use recover::RecoveryReport;
pub use reference::{create_table, delete, insert, insert_many, update, upsert, upsert_many};
pub use shard::ShardTx;
#[cfg(feature = "testing")]
pub use twopc::Failpoint;
pub use twopc::Transaction;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use grant_core::{Backend, Error, FromShardRow, Model, Node, Result, ShardId};
use sea_query::{Expr, LockType};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use sqlx::pool::PoolConnection;

use crate::cluster::{Cluster, ClusterBuilder};
use crate::placement::PlacementState;
use crate::query::{Query, page_sql};
use crate::{crud, stmt};

/// The coordinator log table of two-phase commit.
pub const LOG_TABLE: &str = "grant_2pc_log";

/// Default age after which recovery rolls back a prepared transaction that has no commit
/// decision (its coordinator is presumed dead).
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(60);

/// Two-phase commit settings, given to [`ClusterBuilder::two_phase`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grant_sharding::TwoPhase;
/// let config = TwoPhase::default()
///     .coordinator("shard_0")
///     .abandon_after(Duration::from_secs(30))
///     .recover_on_connect(true);
/// # drop(config);
/// ```
#[derive(Debug, Clone)]
pub struct TwoPhase {
    coordinator: Option<String>,
    abandon_after: Duration,
    recover_on_connect: bool,
    retry_every: Duration,
    retry_for: Duration,
}

impl Default for TwoPhase {
    fn default() -> Self {
        TwoPhase {
            coordinator: None,
            abandon_after: DEFAULT_ABANDON_AFTER,
            recover_on_connect: true,
            retry_every: Duration::from_secs(1),
            retry_for: Duration::from_secs(600),
        }
    }
}

impl TwoPhase {
    /// The shard holding the coordinator log table `grant_2pc_log` (default: the cluster's first
    /// shard). Every process sharing the shards must name the same one.
    pub fn coordinator(mut self, shard: impl Into<String>) -> Self {
        self.coordinator = Some(shard.into());
        self
    }

    /// How old a prepared transaction without a commit decision must be before recovery rolls
    /// it back (default 60 s). Longer than any coordinator takes between `PREPARE` and its
    /// decision; a coordinator that is slower loses (its commit fails, nothing is applied).
    pub fn abandon_after(mut self, age: Duration) -> Self {
        self.abandon_after = age;
        self
    }

    /// Whether `connect()` runs [`Cluster::recover`] (default `true`; PostgreSQL only, and not
    /// for `.lazy(true)` clusters). Recovery at connect never fails the connect: what it could
    /// not finish is logged (`tracing`) and retried in the background.
    pub fn recover_on_connect(mut self, on: bool) -> Self {
        self.recover_on_connect = on;
        self
    }

    /// How often the background task retries a phase two that could not finish (default 1 s),
    /// for at most ten minutes; [`Cluster::recover`] finishes what remains after that.
    pub fn retry_every(mut self, every: Duration) -> Self {
        self.retry_every = every;
        self
    }
}

impl<DB: Backend> ClusterBuilder<DB> {
    /// Two-phase commit settings: coordinator shard, abandon timeout, recovery at connect.
    pub fn two_phase(mut self, config: TwoPhase) -> Self {
        self.extensions.set(TxnState::new(config));
        self
    }
}

/// Per-cluster two-phase commit state.
#[derive(Debug, Default)]
pub(crate) struct TxnState {
    config: TwoPhase,
    /// The coordinator log table exists.
    log_ready: tokio::sync::OnceCell<()>,
    /// Transaction ids a background task is finishing.
    retrying: Mutex<HashSet<String>>,
}

impl TxnState {
    pub(crate) fn new(config: TwoPhase) -> Self {
        TxnState {
            config,
            ..TxnState::default()
        }
    }
}

/// The connect hook of two-phase commit (installed by `Cluster::builder`): see [`at_connect`].
pub(crate) fn connect_hook<DB: Backend>(cluster: &Cluster<DB>) -> BoxFuture<'_, Result<()>> {
    Box::pin(at_connect(cluster))
}

/// Checks the two-phase settings and runs recovery at connect when configured (PostgreSQL).
/// Only a bad setting fails the connect; what recovery cannot finish is retried in the
/// background.
async fn at_connect<DB: Backend>(cluster: &Cluster<DB>) -> Result<()> {
    cluster.coordinator()?;
    if !DB::TWO_PHASE || !cluster.txn().config.recover_on_connect {
        return Ok(());
    }
    match cluster.recover().await {
        Ok(report) if report.is_clean() => {}
        Ok(report) => {
            tracing::warn!(?report, "two-phase recovery at connect left work; retrying");
            recover::spawn_retry(cluster.clone(), None);
        }
        Err(error) => {
            tracing::warn!(%error, "two-phase recovery at connect failed; retrying");
            recover::spawn_retry(cluster.clone(), None);
        }
    }
    Ok(())
}

impl<DB: Backend> Cluster<DB> {
    /// Two-phase commit settings and state, kept in the cluster's extension slots.
    pub(crate) fn txn(&self) -> &TxnState {
        self.extensions().get_or_default()
    }

    /// The coordinator shard's position.
    fn coordinator(&self) -> Result<usize> {
        match &self.txn().config.coordinator {
            None => Ok(0),
            Some(name) => {
                let index = self.shard_names().position(|n| n == name);
                index.ok_or_else(|| {
                    Error::Config(format!(
                        "the two-phase coordinator shard `{name}` is not a shard of the cluster \
                         (it has: {}); name one of them in `TwoPhase::coordinator`",
                        self.shard_names().collect::<Vec<_>>().join(", ")
                    ))
                })
            }
        }
    }

    /// The cluster's id of the shard at `index`.
    fn txn_shard_id(&self, index: usize) -> ShardId {
        self.shard_id(index).unwrap_or(ShardId::UNPLACED)
    }

    /// The cluster position of model `M`'s shard `shard` (a shard [`Cluster::txn_route`]
    /// chose).
    fn index_of<M: Model>(&self, shard: ShardId) -> Result<usize> {
        self.txn_placement::<M>()?;
        self.shard_index(M::META.name, shard)
    }

    /// The run-time placement transactions route model `M` by, if it has one. Transactions
    /// follow a resolver placement (a reshard's result, a grown ring, a mapping with a new
    /// entry) and pinned keys over one (a tenant move's result). A directory (whose lookups
    /// and assignments are writes of their own) and a migration in progress (whose dual
    /// writes and journal a transaction would bypass) are refused, saying what to do.
    fn txn_placement<M: Model>(&self) -> Result<Option<std::sync::Arc<PlacementState>>> {
        let Some(state) = self.placement::<M>() else {
            return Ok(None);
        };
        match &state.placement {
            crate::Placement::Static => Ok(None),
            p if txn_routable(p) => Ok(Some(state)),
            other => {
                let what = if matches!(other, crate::Placement::Migrating { .. }) {
                    "is being resharded (a transaction would bypass the job's dual writes and \
                     journal): write its rows outside a transaction meanwhile (each write is \
                     atomic on its shard, dual-written and journaled), or after the cutover"
                } else {
                    "is placed by a directory, whose lookups and assignments are writes of \
                     their own: write its rows outside a transaction (each write is atomic on \
                     its shard) or in a saga"
                };
                Err(Error::Unsupported {
                    model: M::META.name,
                    reason: format!(
                        "a transaction on model `{}`, which {what} (placement epoch {})",
                        M::META.name,
                        state.epoch
                    ),
                })
            }
        }
    }

    /// The shard a transaction puts model `M`'s row with shard-key parts `parts` on: the
    /// run-time resolver's answer when the model has one, else `static_shard`.
    pub(crate) fn txn_route<M: Model>(
        &self,
        parts: &[grant_core::KeyPart<'_>],
        static_shard: impl FnOnce() -> Result<ShardId>,
    ) -> Result<ShardId> {
        match self.txn_placement::<M>()? {
            Some(state) => routed::<M>(&state.placement, parts, static_shard),
            None => static_shard(),
        }
    }

    /// [`Cluster::txn_route`] for a row.
    pub(crate) fn txn_shard_of_row<M: Model>(&self, row: &M) -> Result<ShardId> {
        let values = crate::placement::row_key_values::<M>(row);
        self.txn_route_values::<M>(&values, || row.try_shard_of())
    }

    /// [`Cluster::txn_route`] for a primary key.
    pub(crate) fn txn_shard_of_key<M: Model>(&self, key: &M::PrimaryKey) -> Result<ShardId> {
        let values = crate::placement::pk_key_values::<M>(key);
        self.txn_route_values::<M>(&values, || M::try_shard_of_key(key))
    }

    fn txn_route_values<M: Model>(
        &self,
        values: &[sea_query::Value],
        static_shard: impl FnOnce() -> Result<ShardId>,
    ) -> Result<ShardId> {
        match self.txn_placement::<M>()? {
            Some(state) => crate::resolve::key_parts::<M, _>(values, |parts| {
                routed::<M>(&state.placement, parts, static_shard)
            })?,
            None => static_shard(),
        }
    }
}

/// Whether a transaction can route by `placement` without I/O: a resolver, the model's own
/// placement, or pinned keys over one of those.
fn txn_routable(placement: &crate::Placement) -> bool {
    match placement {
        crate::Placement::Static | crate::Placement::Resolver(_) => true,
        crate::Placement::Pinned { base, .. } => txn_routable(base),
        _ => false,
    }
}

/// The shard of shard-key `parts` under a [`txn_routable`] placement (`static_shard`: the
/// model's own placement's answer).
fn routed<M: Model>(
    placement: &crate::Placement,
    parts: &[grant_core::KeyPart<'_>],
    static_shard: impl FnOnce() -> Result<ShardId>,
) -> Result<ShardId> {
    match placement {
        crate::Placement::Resolver(r) => r.shard_for_key(M::META, parts),
        crate::Placement::Pinned { base, pins } => match pins.get(parts) {
            Some(shard) => Ok(shard),
            None => routed::<M>(base, parts, static_shard),
        },
        _ => static_shard(),
    }
}

/// One shard's open database transaction: a pooled connection inside `BEGIN`.
///
/// Dropped while the transaction is open, the connection is closed rather than returned to the
/// pool, so the server rolls the transaction back.
pub(crate) struct Open<DB: Backend> {
    /// The shard's position in the cluster.
    pub(crate) index: usize,
    /// The cluster's id of the shard (named like it).
    pub(crate) shard: ShardId,
    conn: PoolConnection<DB>,
    /// A transaction is open on the connection (or its state is unknown).
    in_tx: bool,
    /// The transaction wrote (or locked) something.
    pub(crate) wrote: bool,
}

impl<DB: Backend> Drop for Open<DB> {
    fn drop(&mut self) {
        if self.in_tx {
            self.conn.close_on_drop();
        }
    }
}

impl<DB: Backend> Open<DB> {
    /// Acquires a connection to the shard at `index` and opens a transaction.
    pub(crate) async fn begin(
        cluster: &Cluster<DB>,
        model: &'static str,
        index: usize,
    ) -> Result<Self> {
        let shard = cluster.txn_shard_id(index);
        let conn = cluster.acquire_primary(model, shard).await?;
        let mut open = Open {
            index,
            shard,
            conn,
            in_tx: true,
            wrote: false,
        };
        open.raw(cluster, model, DB::BEGIN.to_owned()).await?;
        Ok(open)
    }

    /// A connection to the shard at `index` with no transaction (for phase two and recovery).
    pub(crate) async fn idle(cluster: &Cluster<DB>, index: usize) -> Result<Self> {
        let shard = cluster.txn_shard_id(index);
        let conn = cluster.acquire_primary("-", shard).await?;
        Ok(Open {
            index,
            shard,
            conn,
            in_tx: false,
            wrote: false,
        })
    }

    pub(crate) async fn raw(
        &mut self,
        cluster: &Cluster<DB>,
        model: &'static str,
        sql: String,
    ) -> Result<()> {
        cluster.log().record(
            self.shard,
            "primary",
            &sql,
            &SqlxValues(sea_query::Values(Vec::new())),
        );
        let shard = self.shard;
        cluster
            .on_held(model, shard, DB::raw_on(&mut self.conn, sql), |_| 0)
            .await
    }

    /// The schema check of model `M`'s table on this shard (see
    /// [`Cluster::check_schema`]), run on the transaction's own connection (a pool of one
    /// connection has no other to give) and cached like every other check.
    pub(crate) async fn ensure_schema<M: Model>(&mut self, cluster: &Cluster<DB>) -> Result<()> {
        if cluster.schema_verified::<M>(self.shard) {
            return Ok(());
        }
        let (sql, values) = crate::schema::columns_query::<DB>(M::META.table);
        let shard = self.shard;
        let rows = cluster
            .on_held(
                M::META.name,
                shard,
                DB::fetch_all_on(&mut self.conn, sql, values),
                |rows| rows.len() as u64,
            )
            .await?;
        cluster.compare_columns::<M>(shard, &rows)
    }

    pub(crate) async fn execute(
        &mut self,
        cluster: &Cluster<DB>,
        model: &'static str,
        (sql, values): (String, SqlxValues),
    ) -> Result<u64> {
        cluster.log().record(self.shard, "primary", &sql, &values);
        self.wrote = true;
        let shard = self.shard;
        cluster
            .on_held(
                model,
                shard,
                DB::execute_on(&mut self.conn, sql, values),
                |n| *n,
            )
            .await
    }

    pub(crate) async fn fetch(
        &mut self,
        cluster: &Cluster<DB>,
        model: &'static str,
        (sql, values): (String, SqlxValues),
    ) -> Result<Vec<DB::Row>> {
        cluster.log().record(self.shard, "primary", &sql, &values);
        let shard = self.shard;
        cluster
            .on_held(
                model,
                shard,
                DB::fetch_all_on(&mut self.conn, sql, values),
                |rows| rows.len() as u64,
            )
            .await
    }

    /// `COMMIT`. A connection failure during it leaves the outcome unknown: [`Error::InDoubt`].
    pub(crate) async fn commit(mut self, cluster: &Cluster<DB>, model: &'static str) -> Result<()> {
        match self.raw(cluster, model, "COMMIT".into()).await {
            Ok(()) => {
                self.in_tx = false;
                Ok(())
            }
            Err(e @ (Error::ShardUnavailable { .. } | Error::Timeout { .. })) => {
                Err(Error::InDoubt {
                    gid: format!("single-shard transaction on shard `{}`", self.shard),
                    detail: format!(
                        "the connection failed during COMMIT ({e}); the transaction may or may \
                         not have committed: read the rows back before retrying"
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `ROLLBACK` (a failed connection rolls back by itself when it closes).
    pub(crate) async fn rollback(
        mut self,
        cluster: &Cluster<DB>,
        model: &'static str,
    ) -> Result<()> {
        self.raw(cluster, model, "ROLLBACK".into()).await?;
        self.in_tx = false;
        Ok(())
    }

    /// Whether a transaction is (or may be) open on the connection.
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// Marks the connection as outside any transaction (after `PREPARE TRANSACTION`).
    pub(crate) fn left_transaction(&mut self) {
        self.in_tx = false;
    }
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(error: &Error) -> Option<String> {
    let source = match error {
        Error::Shard { source, .. } | Error::ShardUnavailable { source, .. } => source,
        Error::Database(source) => source,
        _ => return None,
    };
    match source {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// SQL text literal: single quotes doubled.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// Statements on one open transaction, shared by `ShardTx` and `Transaction`.

/// Writes `rows` as `kind` says (inserts or upserts) on the open transaction's shard; returns
/// the rows affected.
pub(crate) async fn put_rows<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    rows: &[&M],
    kind: stmt::Put,
) -> Result<u64> {
    open.ensure_schema::<M>(cluster).await?;
    let mut n = 0;
    for statement in kind.statements::<M, DB>(rows) {
        n += open.execute(cluster, M::META.name, statement).await?;
    }
    Ok(n)
}

/// Inserts a row given as column values (the shard-key move builds the moved row this way).
pub(crate) async fn insert_values<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    values: Vec<sea_query::Value>,
) -> Result<u64> {
    open.ensure_schema::<M>(cluster).await?;
    let statement = stmt::insert_rows::<M, DB>([values]);
    open.execute(cluster, M::META.name, statement).await
}

pub(crate) async fn update_row<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    row: &M,
) -> Result<()> {
    open.ensure_schema::<M>(cluster).await?;
    let key = row.primary_key();
    let n = match stmt::update::<M, DB>(row) {
        Some(update) => open.execute(cluster, M::META.name, update).await?,
        None => {
            let exists = stmt::exists::<M, DB>(&key);
            open.fetch(cluster, M::META.name, exists).await?.len() as u64
        }
    };
    if n == 0 {
        return Err(crud::not_found::<M>(open.shard, &key));
    }
    Ok(())
}

pub(crate) async fn delete_key<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    key: &M::PrimaryKey,
) -> Result<bool> {
    open.ensure_schema::<M>(cluster).await?;
    let n = open
        .execute(cluster, M::META.name, stmt::delete::<M, DB>(key))
        .await?;
    Ok(n > 0)
}

pub(crate) async fn find_key<M, DB>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    key: &M::PrimaryKey,
    lock: bool,
) -> Result<Option<M>>
where
    M: Model + FromShardRow<DB>,
    DB: Backend,
{
    open.ensure_schema::<M>(cluster).await?;
    let mut select = stmt::find_select::<M>(key);
    if lock {
        // `FOR UPDATE` on PostgreSQL; SQLite has no row locks (and needs none: `BEGIN
        // IMMEDIATE` already holds the database's write lock).
        select.lock(LockType::Update);
        open.wrote = true;
    }
    let rows = open
        .fetch(cluster, M::META.name, select.build_sqlx(DB::builder()))
        .await?;
    decode::<M, DB>(open.shard, rows.first()).map(|mut v| v.pop())
}

fn decode<M, DB>(shard: ShardId, rows: Option<&DB::Row>) -> Result<Vec<M>>
where
    M: Model + FromShardRow<DB>,
    DB: Backend,
{
    rows.map(|row| {
        M::from_row(row).map_err(|source| Error::Shard {
            model: M::META.name,
            shard,
            source,
        })
    })
    .into_iter()
    .collect()
}

/// The rows of `query` whose (narrowed) filter for this shard is `filter`, whole answer from
/// this one shard: order, keyset cursor and page in SQL.
pub(crate) async fn query_rows<M, DB>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    query: &Query<M>,
    filter: Option<&Node>,
    page: bool,
) -> Result<Vec<M>>
where
    M: Model + FromShardRow<DB>,
    DB: Backend,
{
    open.ensure_schema::<M>(cluster).await?;
    let mut select = Query::<M>::base_select::<DB>(filter);
    select.columns(M::META.column_names());
    Query::<M>::order_sql_of::<DB>(&mut select, &query.full_order());
    if page {
        page_sql(&mut select, query.limit, query.offset.unwrap_or(0));
    }
    let rows = open
        .fetch(cluster, M::META.name, select.build_sqlx(DB::builder()))
        .await?;
    rows.iter()
        .map(|row| {
            M::from_row(row).map_err(|source| Error::Shard {
                model: M::META.name,
                shard: open.shard,
                source,
            })
        })
        .collect()
}

/// `COUNT(*)` of the rows matching `filter` on this shard.
pub(crate) async fn query_count<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    filter: Option<&Node>,
) -> Result<u64> {
    open.ensure_schema::<M>(cluster).await?;
    let mut select = Query::<M>::base_select::<DB>(filter);
    select.expr(Expr::cust("COUNT(*)"));
    let rows = open
        .fetch(cluster, M::META.name, select.build_sqlx(DB::builder()))
        .await?;
    let n = match rows.first() {
        Some(row) => DB::get_i64(row, 0).map_err(|source| Error::Shard {
            model: M::META.name,
            shard: open.shard,
            source,
        })?,
        None => Some(0),
    };
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// A future borrowing a single-shard transaction, as [`Cluster::transaction_for`]'s closure
/// returns it: `|tx| Box::pin(async move { ...; Ok(value) })`.
pub type TxFuture<'t, T> = BoxFuture<'t, Result<T>>;

/// Refusal of a multi-shard write on a backend without two-phase commit.
pub(crate) fn no_two_phase<DB: Backend>(model: &'static str, shards: &[ShardId]) -> Error {
    let names: Vec<String> = shards.iter().map(ShardId::name).collect();
    Error::Unsupported {
        model,
        reason: format!(
            "a transaction over shards {} cannot be atomic on {}, which has no two-phase commit; \
             keep the transaction on one shard (`cluster.begin_for`) or use a saga for steps on \
             several shards",
            names.join(", "),
            <DB as Backend>::NAME
        ),
    }
}

/// The condition a statement of a transaction on `transaction_shard` fails for rows of `shard`.
pub(crate) fn wrong_shard<M: Model>(
    key: String,
    shard: ShardId,
    transaction_shard: ShardId,
) -> Error {
    Error::WrongShard {
        model: M::META.name,
        key,
        shard,
        transaction_shard,
    }
}

/// The key of a row, rendered for messages.
pub(crate) fn describe_key<M: Model>(key: &M::PrimaryKey) -> String {
    grant_core::key::describe_values(&M::primary_key_values(key))
}

/// A `Node` rendered for messages (the query's filter).
pub(crate) fn describe_filter(filter: Option<&Node>) -> String {
    match filter {
        Some(node) => format!("in the query filter {node:?}"),
        None => "(no filter: every shard)".to_owned(),
    }
}
