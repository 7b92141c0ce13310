//! The topology store (L5): every model's run-time placement, persisted on the cluster's
//! control shard so that every process connected to the same shards follows it.
//!
//! - Table `grant_topology` on the control shard ([`ClusterBuilder::control_shard`], default the
//!   first): one row per model (by table) with its epoch and its placement as a spec (see
//!   `placement::spec`).
//! - At connect the rows are loaded and applied before the cluster is handed out; then a
//!   background task reads them every [`ClusterBuilder::topology_poll`] (default 1 s) — on
//!   PostgreSQL also at once on each `NOTIFY grant_topology` that a persisted change sends
//!   (it `LISTEN`s on a connection of its own) — and applies what is newer than this process
//!   knows, draining the model's operations first.
//! - Every placement change of this process — `set_placement`, `clear_placement`, a
//!   migration's start, cutover or abort — is persisted (with an epoch above every epoch
//!   stored for the model) before it takes effect here: a change no other process could
//!   follow is not made. The write is synchronous (the placement API is), on a connection of
//!   its own made by a helper thread, so it works on any runtime.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use grant_core::{Backend, Error, Result, ShardId};
use sea_query::{ColumnDef, Expr, OnConflict, Query, Table};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cluster::{Cluster, ClusterBuilder, WeakCluster, intern};
use crate::placement::{Placement, PlacementStore};

/// The table of the topology store.
pub const TOPOLOGY_TABLE: &str = "grant_topology";

/// The table of live instances: each connected cluster's heartbeat and the epoch it applied of
/// every model, so that a change can wait until every live instance follows it.
pub const INSTANCES_TABLE: &str = "grant_instances";

/// How often a cluster reads the topology store by default.
pub const DEFAULT_TOPOLOGY_POLL: Duration = Duration::from_secs(1);

/// The name the store's statements carry in spans, metrics and errors.
const WHAT: &str = "grant_topology";

/// The topology settings of a cluster (an extension slot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopologySettings {
    poll: Duration,
    follow: bool,
}

/// This cluster's identity in the instances table, set at connect (an extension slot); its row
/// is removed when the cluster is dropped (a killed process's row ages out instead).
pub(crate) struct Instance<DB: Backend> {
    id: std::sync::OnceLock<String>,
    options: std::sync::OnceLock<<DB::Connection as sqlx::Connection>::Options>,
    /// Tells the follower task that the cluster is gone (it lets its listener go at once).
    stop: Arc<tokio::sync::Notify>,
}

impl<DB: Backend> Default for Instance<DB> {
    fn default() -> Self {
        Instance {
            id: std::sync::OnceLock::new(),
            options: std::sync::OnceLock::new(),
            stop: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

impl<DB: Backend> std::fmt::Debug for Instance<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id.get())
            .finish()
    }
}

impl<DB: Backend> Drop for Instance<DB> {
    fn drop(&mut self) {
        self.stop.notify_one();
        let (Some(id), Some(options)) = (self.id.get(), self.options.take()) else {
            return;
        };
        let delete = Query::delete()
            .from_table(INSTANCES_TABLE)
            .and_where(sea_query::ExprTrait::eq(Expr::col("instance"), id.clone()))
            .build_sqlx(DB::builder());
        if let Err(e) = run_alone::<DB>(options, delete, None) {
            tracing::debug!(error = %e, "cannot remove this instance's row; it ages out");
        }
    }
}

impl Default for TopologySettings {
    fn default() -> Self {
        TopologySettings {
            poll: DEFAULT_TOPOLOGY_POLL,
            follow: true,
        }
    }
}

impl<DB: Backend> ClusterBuilder<DB> {
    /// How often the cluster reads the topology store to follow placement changes made by other
    /// processes (default 1 s). A change made by this process applies here at once.
    pub fn topology_poll(mut self, every: Duration) -> Self {
        let settings = self.topology_settings();
        self.extensions.set(TopologySettings {
            poll: every.max(Duration::from_millis(10)),
            ..settings
        });
        self
    }

    /// Whether this cluster shares the cluster's topology (default `true`). With `false` it
    /// neither loads, persists nor follows placements, nor counts as an instance: its
    /// placements are its own — for a tool that inspects shards under a placement of its
    /// choosing without changing what the application's processes do.
    pub fn follow_topology(mut self, follow: bool) -> Self {
        let settings = self.topology_settings();
        self.extensions.set(TopologySettings { follow, ..settings });
        self
    }

    fn topology_settings(&self) -> TopologySettings {
        self.extensions
            .get::<TopologySettings>()
            .copied()
            .unwrap_or_default()
    }
}

/// The connect hook: creates the store's table, applies what it holds, installs the store
/// and starts following it.
pub(crate) fn connect_hook<DB: Backend>(cluster: &Cluster<DB>) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let follow = cluster
            .extensions()
            .get::<TopologySettings>()
            .is_none_or(|s| s.follow);
        if !follow {
            return Ok(());
        }
        let (name, shard) = cluster.first_shard("the topology")?;
        let created = cluster
            .execute(WHAT, shard, (create_table::<DB>(), empty()))
            .await;
        if let Err(e) = follow_once(cluster, shard).await {
            if matches!(e, Error::Config(_)) {
                return Err(e); // it holds what this version cannot read: never guess
            }
            // The table is neither there nor creatable by this role (e.g. no CREATE on the
            // schema): the cluster works, its placement changes stay in this process.
            let cause = created.err().unwrap_or(e);
            tracing::warn!(
                shard = %name,
                error = %cause,
                "the topology store `grant_topology` cannot be created or read on the control \
                 shard: placement changes stay in this process and other processes will not \
                 follow them; create the table once with a role that may (its DDL is in the \
                 README) or grant this one CREATE"
            );
            return Ok(());
        }
        let pool = cluster
            .pool(&name)
            .ok_or_else(|| Error::Config(format!("the control shard `{name}` has no pool")))?;
        let options = (*pool.connect_options()).clone();
        // PostgreSQL: told of every change at once, on a connection of its own.
        let listener = DB::listen(options.clone(), CHANNEL).await;
        // A connection of its own must see the same database (not so for an in-memory SQLite
        // shard: then no other process can share the topology, and changes stay local).
        let count = Query::select()
            .expr(sea_query::Func::count(Expr::col("model")))
            .from(TOPOLOGY_TABLE)
            .build_sqlx(DB::builder());
        // (A server database always is: the probe is for SQLite only.)
        let probe = if <DB as Backend>::NAME == "SQLite" {
            run_alone::<DB>(options.clone(), count, None).map(|_| ())
        } else {
            Ok(())
        };
        let options_for_drop = match probe {
            Ok(_) => {
                cluster.placements().set_store(Arc::new(Store::<DB> {
                    shard: name,
                    options: options.clone(),
                }));
                Some(options)
            }
            Err(e) => {
                tracing::warn!(
                    shard = %name,
                    error = %e,
                    "the control shard cannot be reached from a connection of its own (an \
                     in-memory database?): placement changes stay in this process"
                );
                None
            }
        };
        let every = poll_of(cluster);
        static CLUSTERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "pid {} cluster {} at {}",
            std::process::id(),
            CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            now_millis()
        );
        let instance = cluster.extensions().get_or_default::<Instance<DB>>();
        let _ = instance.id.set(id);
        match cluster
            .execute(WHAT, shard, (instances_table::<DB>(), empty()))
            .await
        {
            Ok(_) => {
                heartbeat(cluster, shard).await?;
                if let Some(options) = options_for_drop {
                    let _ = instance.options.set(options);
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the instances table cannot be created: this process is not counted when a \
                 placement change waits for every process to follow it"
            ),
        }
        cluster.placements().set_follower(Arc::new(OnDemand {
            cluster: cluster.downgrade(),
            shard,
        }));
        spawn_follower(
            cluster.downgrade(),
            shard,
            every,
            listener,
            Arc::clone(&instance.stop),
        );
        Ok(())
    })
}

fn poll_of<DB: Backend>(cluster: &Cluster<DB>) -> Duration {
    cluster
        .extensions()
        .get::<TopologySettings>()
        .copied()
        .unwrap_or_default()
        .poll
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn instances_table<DB: Backend>() -> String {
    Table::create()
        .table(INSTANCES_TABLE)
        .if_not_exists()
        .col(ColumnDef::new("instance").text().not_null().primary_key())
        .col(ColumnDef::new("heartbeat_at").big_integer().not_null())
        .col(ColumnDef::new("poll_ms").big_integer().not_null())
        .col(ColumnDef::new("applied").text().not_null())
        .build(DB::builder())
}

/// Records this instance as alive, with the epoch it applied of every model it knows of.
async fn heartbeat<DB: Backend>(cluster: &Cluster<DB>, shard: ShardId) -> Result<()> {
    let Some(id) = cluster
        .extensions()
        .get_or_default::<Instance<DB>>()
        .id
        .get()
    else {
        return Ok(());
    };
    let applied = cluster
        .placements()
        .epochs()
        .into_iter()
        .map(|(t, e)| format!("{} {e}", crate::resolve::spec_escape(t)))
        .collect::<Vec<_>>()
        .join(" ");
    let poll = i64::try_from(poll_of(cluster).as_millis()).unwrap_or(i64::MAX);
    let upsert = Query::insert()
        .into_table(INSTANCES_TABLE)
        .columns(["instance", "heartbeat_at", "poll_ms", "applied"])
        .values_panic([
            id.clone().into(),
            now_millis().into(),
            poll.into(),
            applied.into(),
        ])
        .on_conflict(
            OnConflict::column("instance")
                .update_columns(["heartbeat_at", "poll_ms", "applied"])
                .to_owned(),
        )
        .build_sqlx(DB::builder());
    cluster.execute(WHAT, shard, upsert).await?;
    Ok(())
}

impl<DB: Backend> Cluster<DB> {
    /// Waits until every live instance of the cluster — each `Cluster` connected to these
    /// shards, in any process, whose heartbeat is younger than three of its polls plus 2 s —
    /// has applied epoch `epoch` (or a later one) of model `M`'s placement, or `timeout`
    /// passes. A placement change that must not race processes still routing by the previous
    /// placement (a reshard's start) waits for it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming the instances that have not followed (their process ids and
    /// the epoch they are at): stop them or wait for them, then retry; the control shard's
    /// error.
    pub async fn await_followed<M: grant_core::Model>(
        &self,
        epoch: u64,
        timeout: Duration,
    ) -> Result<()> {
        let (_, shard) = self.first_shard("the instances")?;
        let me = self
            .extensions()
            .get_or_default::<Instance<DB>>()
            .id
            .get()
            .cloned();
        let started = std::time::Instant::now();
        loop {
            let select = Query::select()
                .columns(["instance", "heartbeat_at", "poll_ms", "applied"])
                .from(INSTANCES_TABLE)
                .build_sqlx(DB::builder());
            let rows = match self.fetch_unlogged(WHAT, shard, select).await {
                Ok(rows) => rows,
                // No instances table: no other instance is known.
                Err(_) if me.is_none() => return Ok(()),
                Err(e) => return Err(e),
            };
            let now = now_millis();
            let mut lagging = Vec::new();
            for row in &rows {
                let read = |e: sqlx::Error| Error::on_shard(WHAT, shard, e);
                let id = DB::get_string(row, 0).map_err(read)?.unwrap_or_default();
                let beat = DB::get_i64(row, 1).map_err(read)?.unwrap_or(0);
                let poll = DB::get_i64(row, 2).map_err(read)?.unwrap_or(0);
                let applied = DB::get_string(row, 3).map_err(read)?.unwrap_or_default();
                if Some(&id) == me.as_ref() || now - beat > 3 * poll + 2_000 {
                    continue; // this instance, or one that stopped beating
                }
                let at = applied_epoch(&applied, M::META.table);
                if at < epoch {
                    lagging.push(format!("{id} (at epoch {at})"));
                }
            }
            if lagging.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    model: M::META.name,
                    shards: format!(
                        "instances that have not followed placement epoch {epoch}: {}",
                        lagging.join(", ")
                    ),
                    millis: timeout.as_millis(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The epoch of `table` in an instance's `applied` text (0: none).
fn applied_epoch(applied: &str, table: &str) -> u64 {
    let mut tokens = applied.split(' ');
    while let (Some(t), Some(e)) = (tokens.next(), tokens.next()) {
        if crate::resolve::spec_unescape(t).as_deref() == Some(table) {
            return e.parse().unwrap_or(0);
        }
    }
    0
}

fn empty() -> SqlxValues {
    SqlxValues(sea_query::Values(Vec::new()))
}

fn create_table<DB: Backend>() -> String {
    Table::create()
        .table(TOPOLOGY_TABLE)
        .if_not_exists()
        .col(ColumnDef::new("model").text().not_null().primary_key())
        .col(ColumnDef::new("epoch").big_integer().not_null())
        .col(ColumnDef::new("placement").text().not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .build(DB::builder())
}

/// Reads the store and applies every placement newer than this process knows.
async fn follow_once<DB: Backend>(cluster: &Cluster<DB>, shard: ShardId) -> Result<()> {
    let select = Query::select()
        .columns(["model", "epoch", "placement"])
        .from(TOPOLOGY_TABLE)
        .build_sqlx(DB::builder());
    let rows = cluster.fetch_unlogged(WHAT, shard, select).await?;
    for row in &rows {
        let read = |e: sqlx::Error| Error::on_shard(WHAT, shard, e);
        let (Some(model), Some(epoch), Some(spec)) = (
            DB::get_string(row, 0).map_err(read)?,
            DB::get_i64(row, 1).map_err(read)?,
            DB::get_string(row, 2).map_err(read)?,
        ) else {
            continue;
        };
        let epoch = u64::try_from(epoch).unwrap_or(0);
        let placements = cluster.placements();
        if epoch <= placements.epoch_of(&model) {
            continue;
        }
        let table = intern(&model);
        let (guarded, spec) = match spec.strip_prefix(GUARDED) {
            Some(rest) => (true, rest.to_owned()),
            None => (false, spec),
        };
        let placement = match Placement::from_spec(&spec)? {
            Placement::Static => None,
            other => Some(other),
        };
        // Drain the model's operations (those that hold its gate) before switching.
        let gate = placements.gate(table);
        let _drained = gate.write().await;
        if placements.apply_persisted(table, epoch, placement, guarded) {
            tracing::info!(
                table,
                epoch,
                placement = %spec,
                "followed a placement change from the topology store"
            );
        }
    }
    Ok(())
}

/// The prefix of a stored migrating placement that a resharding job guards with its fence.
const GUARDED: &str = "guarded ";

/// The notification channel of placement changes (PostgreSQL `LISTEN grant_topology`).
const CHANNEL: &str = "grant_topology";

/// Reads the store every `every` — and at once when `listener` yields (a change was
/// persisted) — until the cluster is dropped (`stop`), recording the instance's heartbeat
/// (and the epochs it applied) after each read.
fn spawn_follower<DB: Backend>(
    cluster: WeakCluster<DB>,
    shard: ShardId,
    every: Duration,
    mut listener: Option<futures_util::stream::BoxStream<'static, ()>>,
    stop: Arc<tokio::sync::Notify>,
) {
    use futures_util::StreamExt;
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let woke = match listener.as_mut() {
                Some(stream) => tokio::select! {
                    () = stop.notified() => return,
                    _ = ticker.tick() => true,
                    heard = stream.next() => heard.is_some(),
                },
                None => tokio::select! {
                    () = stop.notified() => return,
                    _ = ticker.tick() => true,
                },
            };
            if !woke {
                tracing::warn!("the topology listener ended; following by polling only");
                listener = None;
                continue;
            }
            let Some(cluster) = cluster.upgrade() else {
                return;
            };
            // The heartbeat also after a notification: the epochs it records are what a
            // change that waits for every process reads.
            if let Err(e) = follow_once(&cluster, shard).await {
                tracing::warn!(error = %e, "cannot read the topology store; retrying");
            } else if let Err(e) = heartbeat(&cluster, shard).await {
                tracing::debug!(error = %e, "cannot record this instance's heartbeat");
            }
        }
    });
}

/// Reads the store when an operation met a migration's fence (see `placement::fence`).
struct OnDemand<DB: Backend> {
    cluster: WeakCluster<DB>,
    shard: ShardId,
}

impl<DB: Backend> std::fmt::Debug for OnDemand<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("shard", &self.shard)
            .finish()
    }
}

impl<DB: Backend> crate::placement::fence::Follower for OnDemand<DB> {
    fn follow(&self) -> BoxFuture<'static, Result<()>> {
        let (cluster, shard) = (self.cluster.clone(), self.shard);
        Box::pin(async move {
            match cluster.upgrade() {
                Some(cluster) => follow_once(&cluster, shard).await,
                None => Ok(()),
            }
        })
    }
}

/// The store: persists placement changes on the control shard.
struct Store<DB: Backend> {
    shard: String,
    options: <DB::Connection as sqlx::Connection>::Options,
}

impl<DB: Backend> std::fmt::Debug for Store<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("shard", &self.shard).finish()
    }
}

impl<DB: Backend> PlacementStore for Store<DB> {
    fn persist(
        &self,
        table: &'static str,
        placement: Option<&Placement>,
        at_least: u64,
        guarded: bool,
    ) -> Result<u64> {
        let spec = placement.map_or_else(|| "static".to_owned(), Placement::spec);
        // A migration a resharding job guards with its fence (`placement::fence`).
        let spec = if guarded {
            format!("{GUARDED}{spec}")
        } else {
            spec
        };
        let statement = upsert::<DB>(table, &spec, at_least);
        // PostgreSQL: the other processes hear of it at once (`LISTEN`), not at their poll.
        let notify = DB::notify_sql(CHANNEL);
        let outcome = run_alone::<DB>(self.options.clone(), statement, notify)
            .and_then(|epoch| epoch.ok_or_else(|| "the upsert returned no epoch".to_owned()));
        match outcome {
            Ok(epoch) => Ok(u64::try_from(epoch).unwrap_or(at_least)),
            Err(e) => Err(Error::Config(format!(
                "cannot persist the placement of table `{table}` in the topology store on \
                 control shard `{shard}`: {e}; the placement was not changed (other processes \
                 could not follow it) — retry when the control shard answers",
                shard = self.shard
            ))),
        }
    }
}

/// Runs one statement on a connection of its own, made by a thread of its own with a runtime of
/// its own, and returns the first column of its first row as an integer. The placement API is
/// synchronous: this neither needs nor blocks the caller's runtime (which may be
/// single-threaded), and holds no pool connection of the cluster.
fn run_alone<DB: Backend>(
    options: <DB::Connection as sqlx::Connection>::Options,
    (sql, values): (String, SqlxValues),
    then: Option<String>,
) -> std::result::Result<Option<i64>, String> {
    std::thread::spawn(move || -> std::result::Result<Option<i64>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let pool = sqlx::pool::PoolOptions::<DB>::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(|c, _| DB::after_connect(c))
                .connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            let mut outcome = DB::fetch_all(&pool, sql, values).await;
            if let (Ok(_), Some(then)) = (&outcome, then)
                && let Err(e) = DB::execute(&pool, then, empty()).await
            {
                outcome = Err(e);
            }
            pool.close().await;
            let rows = outcome.map_err(|e| e.to_string())?;
            match rows.first() {
                Some(row) => DB::get_i64(row, 0).map_err(|e| e.to_string()),
                None => Ok(None),
            }
        })
    })
    .join()
    .map_err(|_| "the topology writer panicked".to_owned())?
}

/// `INSERT .. ON CONFLICT (model) DO UPDATE` with the epoch above the stored one, returning
/// the epoch stored.
fn upsert<DB: Backend>(table: &str, spec: &str, at_least: u64) -> (String, SqlxValues) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let greatest = if <DB as Backend>::NAME == "SQLite" {
        "MAX"
    } else {
        "GREATEST"
    };
    let at_least = i64::try_from(at_least).unwrap_or(i64::MAX);
    Query::insert()
        .into_table(TOPOLOGY_TABLE)
        .columns(["model", "epoch", "placement", "updated_at"])
        .values_panic([table.into(), at_least.into(), spec.into(), now.into()])
        .on_conflict(
            OnConflict::column("model")
                .value(
                    "epoch",
                    Expr::cust(format!(
                        "{greatest}({TOPOLOGY_TABLE}.epoch + 1, excluded.epoch)"
                    )),
                )
                .update_columns(["placement", "updated_at"])
                .to_owned(),
        )
        .returning_col("epoch")
        .build_sqlx(DB::builder())
}
