//! Run-time placement: per model, an optional [`Placement`] kept by the [`Cluster`] that
//! overrides the model's static (derive-generated) resolver.
//!
//! A model's placement is static by default: `#[shard(..)]` generates pure functions and every
//! routing path calls them. `cluster.set_placement::<M>(placement)` replaces them, for this
//! cluster, with a placement chosen at run time:
//!
//! - [`Placement::Resolver`]: any [`Resolver`] — a built-in strategy built at run time (a
//!   [`ConsistentHashResolver`](crate::resolve::ConsistentHashResolver) that gained a shard, a
//!   [`MappingResolver`](crate::resolve::MappingResolver) with a new entry) or a user type
//!   (the `custom` strategy);
//! - [`Placement::Directory`]: key → shard entries in a directory table
//!   ([`Directory`]);
//! - [`Placement::Migrating`]: the hook for online resharding — reads use `old`, writes go to
//!   `old` **and** `new` (dual write) until [`Cluster::cutover`] switches the model to `new`
//!   atomically;
//! - [`Placement::Static`]: the model's own placement (useful as the `old` side of a migration);
//! - [`Placement::Pinned`]: a few shard-key values (hot tenants) pinned to named shards over a
//!   base placement — what a tenant move ([`crate::reshard::TenantMove`]) switches to.
//!
//! Every routing path consults the placement: `find`, `insert`, `insert_many`, `update`,
//! `delete`, query routing and pruning, `create_table` and `distribution`. Each placement
//! change bumps the model's [`PlacementState::epoch`].
//!
//! Cost for models without a run-time placement: one atomic load per operation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use grant_core::key::OwnedKeyPart;
use grant_core::{Backend, Error, KeyPart, Model, Result, ShardId};
use sea_query::Value;

use crate::cluster::Cluster;
pub use crate::cluster::intern;
pub use crate::resolve::Resolver;
use crate::resolve::key_columns;

pub mod directory;
pub(crate) mod fence;
mod pins;
mod spec;

use directory::Directory;
pub use pins::Pins;

/// Where a model's rows live, chosen at run time (see the [module docs](self)).
#[derive(Clone)]
#[non_exhaustive]
pub enum Placement {
    /// The model's own, derive-generated placement.
    Static,
    /// A resolver: a built-in strategy built at run time or a user type (`custom`).
    Resolver(Arc<dyn Resolver>),
    /// Key → shard entries kept in a directory table on one shard, cached in process.
    Directory(Arc<Directory>),
    /// Online resharding in progress (the hook for the resharding job): reads use `old`;
    /// inserts, updates and deletes go to the shard `old` names **and** the shard `new` names
    /// (once when they agree). [`Cluster::cutover`] makes `new` the placement atomically;
    /// [`Cluster::abort_migration`] returns to `old`.
    ///
    /// On the `new` side an update or delete that finds no row is not an error (the backfill may
    /// not have copied it yet); [`Error::NotFound`] is judged on `old` only.
    Migrating {
        /// Where rows are now: reads go here.
        old: Box<Placement>,
        /// Where rows are going: writes go here too.
        new: Box<Placement>,
    },
    /// Shard-key values pinned to named shards ([`Pins`]); every other key is placed by
    /// `base` (the model's static placement or a resolver). What a tenant move switches a
    /// model to: [`crate::reshard::TenantMove`].
    Pinned {
        /// Where keys without a pin go.
        base: Box<Placement>,
        /// The pinned keys.
        pins: Arc<Pins>,
    },
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Static => f.write_str("Static"),
            Placement::Resolver(r) => f.debug_tuple("Resolver").field(r).finish(),
            Placement::Directory(d) => f.debug_tuple("Directory").field(d).finish(),
            Placement::Migrating { old, new } => f
                .debug_struct("Migrating")
                .field("old", old)
                .field("new", new)
                .finish(),
            Placement::Pinned { base, pins } => f
                .debug_struct("Pinned")
                .field("base", base)
                .field("pins", pins)
                .finish(),
        }
    }
}

impl Placement {
    /// A placement by `resolver`.
    pub fn resolver(resolver: impl Resolver) -> Self {
        Placement::Resolver(Arc::new(resolver))
    }

    /// The placement reads use: `old` while migrating, else this one.
    pub fn reads(&self) -> &Placement {
        match self {
            Placement::Migrating { old, .. } => old.reads(),
            other => other,
        }
    }

    /// The placements a write goes to: one, or `old` and `new` while migrating.
    pub fn writes(&self) -> Vec<&Placement> {
        match self {
            Placement::Migrating { old, new } => {
                let mut out = old.writes();
                out.extend(new.writes());
                out
            }
            other => vec![other],
        }
    }

    /// The shards model `M`'s rows may be on under this placement, in index order (for reads:
    /// `old`'s while migrating).
    pub fn shards<M: Model>(&self) -> Cow<'_, [ShardId]> {
        match self.reads() {
            Placement::Resolver(r) => r.shards(),
            Placement::Directory(d) => Cow::Owned(d.shards()),
            Placement::Pinned { base, pins } => {
                let mut out = base.shards::<M>().into_owned();
                pins.add_shards(&mut out);
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(M::shards()),
        }
    }

    /// Every shard any side of this placement uses (old and new while migrating).
    pub fn all_shards<M: Model>(&self) -> Vec<ShardId> {
        let mut out: Vec<ShardId> = Vec::new();
        for p in self.writes() {
            for s in p.shards::<M>().iter() {
                if !out.iter().any(|o| o.name() == s.name()) {
                    out.push(*s);
                }
            }
        }
        out
    }

    /// The shards the run-time parts of this placement name (resolvers and directories; a
    /// `Static` part names none here: its shards are the model's own).
    pub fn dynamic_shards(&self) -> Vec<ShardId> {
        let mut out = Vec::new();
        for p in self.writes() {
            match p {
                Placement::Resolver(r) => out.extend(r.shards().iter().copied()),
                Placement::Directory(d) => out.extend(d.shards()),
                Placement::Pinned { base, pins } => {
                    out.extend(base.dynamic_shards());
                    pins.add_shards(&mut out);
                }
                _ => {}
            }
        }
        out
    }

    /// The shard of dynamic shard-key `values` under this (non-migrating) placement, without
    /// I/O: `Ok(None)` when a directory has no entry for the key in its cache (its rows, if
    /// any, are unknown here — the cluster operations look the key up first).
    ///
    /// # Errors
    ///
    /// [`Error::MissingShardKey`] for a NULL or non-key value; the resolver's error.
    pub fn shard_for_values<M: Model>(&self, values: &[Value]) -> Result<Option<ShardId>> {
        match self.reads() {
            Placement::Resolver(r) => {
                crate::resolve::key_parts::<M, _>(values, |parts| r.shard_for_key(M::META, parts))?
                    .map(Some)
            }
            Placement::Directory(d) => {
                crate::resolve::key_parts::<M, _>(values, |parts| d.cached(parts))
            }
            Placement::Pinned { base, pins } => {
                match crate::resolve::key_parts::<M, _>(values, |parts| pins.get(parts))? {
                    Some(shard) => Ok(Some(shard)),
                    None => base.shard_for_values::<M>(values),
                }
            }
            _ => match values {
                [value] => M::shard_for_value(value).map(Some),
                _ => M::shard_for_values(values).map(Some),
            },
        }
    }

    /// The shards that may hold keys between `low` and `high`, or `None` when unknown.
    ///
    /// # Errors
    ///
    /// The resolver's error.
    pub fn shards_for_range<M: Model>(
        &self,
        low: Bound<&Value>,
        high: Bound<&Value>,
    ) -> Result<Option<Vec<ShardId>>> {
        match self.reads() {
            Placement::Resolver(r) => r.shards_for_range(M::META, low, high),
            Placement::Directory(_) => Ok(None),
            // A pinned key may be anywhere in the range: its shard may hold some of it.
            Placement::Pinned { base, pins } => {
                Ok(base.shards_for_range::<M>(low, high)?.map(|mut shards| {
                    pins.add_shards(&mut shards);
                    shards
                }))
            }
            _ => M::shards_for_range(low, high),
        }
    }
}

/// One model's run-time placement and its version.
#[derive(Debug, Clone)]
pub struct PlacementState {
    /// Bumped by every change of the model's placement on this cluster (starts at 1).
    pub epoch: u64,
    /// The placement.
    pub placement: Placement,
}

/// The run-time placements of a cluster, by table name.
#[derive(Debug, Default)]
pub(crate) struct Placements {
    /// Whether any model has a run-time placement: the only cost for models without one.
    any: AtomicBool,
    /// Changes happen under the write lock, so a model's epochs strictly increase.
    by_table: RwLock<HashMap<&'static str, Arc<PlacementState>>>,
    /// The last epoch of every model ever placed, kept when its placement is cleared so that
    /// epochs never repeat.
    last_epoch: Mutex<HashMap<&'static str, u64>>,
    /// Per-model operation gates (created on first use; see [`Cluster::gated_placement`]).
    gates: RwLock<HashMap<&'static str, Arc<tokio::sync::RwLock<()>>>>,
    /// Per-model write observers (resharding's dirty-key journal).
    observers: RwLock<HashMap<&'static str, Arc<dyn WriteObserver>>>,
    /// Where changes are persisted for every process of the cluster (the topology store, a
    /// feature installed at connect); `None`: this process only.
    store: RwLock<Option<Arc<dyn PlacementStore>>>,
    /// Reads the topology store on demand (installed with the store): what an operation that
    /// met a migration's fence follows.
    follower: RwLock<Option<Arc<dyn fence::Follower>>>,
    /// The tables whose current migration a resharding job guards with its fence and copies
    /// registry (`fence`): operations under their migrating placement name them. A migration
    /// begun by hand ([`Cluster::begin_migration`]) is not guarded.
    guarded: Mutex<std::collections::HashSet<&'static str>>,
}

/// Persists placement changes so that every process of the cluster follows them: the hook
/// through which the topology store (a feature) sees `set_placement`, migrations and cutovers
/// without this layer naming it.
pub(crate) trait PlacementStore: Send + Sync + fmt::Debug {
    /// Persists `table`'s placement (`None`: back to static) with an epoch of at least
    /// `at_least` and above any epoch stored for it; returns the epoch stored. Called under
    /// the placements' write lock: synchronous, durable when it returns.
    fn persist(
        &self,
        table: &'static str,
        placement: Option<&Placement>,
        at_least: u64,
        guarded: bool,
    ) -> Result<u64>;
}

/// Sees every write of a model that has a [`Placement::Migrating`] placement: the hook through
/// which resharding keeps its dirty-key journal without crud naming it.
pub(crate) trait WriteObserver: Send + Sync + fmt::Debug {
    /// The row with primary key `key` (its values, in key order) was inserted, updated or
    /// deleted — about to be, under the model's gate, which the observer's reader takes in write
    /// mode before it reads what was observed.
    fn written(&self, key: Vec<Value>);
}

/// A model's run-time placement, read under the model's gate (held until this is dropped).
#[derive(Debug)]
pub(crate) struct Gated {
    _gate: tokio::sync::OwnedRwLockReadGuard<()>,
    state: Arc<PlacementState>,
}

impl std::ops::Deref for Gated {
    type Target = PlacementState;

    fn deref(&self) -> &PlacementState {
        &self.state
    }
}

impl Placements {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<&'static str, Arc<PlacementState>>> {
        self.by_table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<&'static str, Arc<PlacementState>>> {
        self.by_table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The placement of `M`, if it has one (creating a directory model's on first use).
    #[inline]
    pub(crate) fn get<M: Model>(&self) -> Option<Arc<PlacementState>> {
        if M::DIRECTORY.is_none() && !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.get_slow::<M>()
    }

    #[cold]
    fn get_slow<M: Model>(&self) -> Option<Arc<PlacementState>> {
        if let Some(state) = self.read().get(M::META.table) {
            return Some(Arc::clone(state));
        }
        let spec = M::DIRECTORY?;
        let mut map = self.write();
        let state = map.entry(M::META.table).or_insert_with(|| {
            Arc::new(PlacementState {
                epoch: 1,
                placement: Placement::Directory(Arc::new(Directory::from_spec(&spec))),
            })
        });
        self.any.store(true, Ordering::Release);
        Some(Arc::clone(state))
    }

    /// Replaces `M`'s placement with `f(current)`; returns the new state (`None`: static again)
    /// and its epoch.
    pub(crate) fn update<M: Model>(
        &self,
        f: impl FnOnce(Option<&PlacementState>) -> Result<Option<Placement>>,
    ) -> Result<(Option<Arc<PlacementState>>, u64)> {
        self.update_guarded::<M>(false, f)
    }

    /// [`Placements::update`]; a migrating placement it installs is guarded by a resharding
    /// job's fence when `guarded`.
    pub(crate) fn update_guarded<M: Model>(
        &self,
        guarded: bool,
        f: impl FnOnce(Option<&PlacementState>) -> Result<Option<Placement>>,
    ) -> Result<(Option<Arc<PlacementState>>, u64)> {
        // A directory model's implicit placement exists before any change.
        let _ = self.get::<M>();
        let mut map = self.write();
        let current = map.get(M::META.table).cloned();
        let next = f(current.as_deref())?;
        let guarded = guarded && matches!(next, Some(Placement::Migrating { .. }));
        let epoch = {
            let mut last = self.last_epoch.lock().unwrap_or_else(|e| e.into_inner());
            let mut epoch = last
                .get(M::META.table)
                .copied()
                .max(current.as_ref().map(|c| c.epoch))
                .unwrap_or(0)
                + 1;
            // Persisted first: a change no other process could follow is not made.
            if let Some(store) = self.store() {
                epoch = store.persist(M::META.table, next.as_ref(), epoch, guarded)?;
            }
            last.insert(M::META.table, epoch);
            self.set_guarded(M::META.table, guarded);
            epoch
        };
        match next {
            Some(placement) => {
                let state = Arc::new(PlacementState { epoch, placement });
                map.insert(M::META.table, Arc::clone(&state));
                self.any.store(true, Ordering::Release);
                Ok((Some(state), epoch))
            }
            None => {
                map.remove(M::META.table);
                if map.is_empty() {
                    self.any.store(false, Ordering::Release);
                }
                Ok((None, epoch))
            }
        }
    }

    fn store(&self) -> Option<Arc<dyn PlacementStore>> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_guarded(&self, table: &'static str, guarded: bool) {
        let mut set = self.guarded.lock().unwrap_or_else(|e| e.into_inner());
        if guarded {
            set.insert(table);
        } else {
            set.remove(table);
        }
    }

    /// Whether `table`'s migration is guarded by a resharding job's fence (see `fence`).
    pub(crate) fn is_guarded(&self, table: &str) -> bool {
        self.guarded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(table)
    }

    /// Whether any model has a run-time placement (one atomic load).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    pub(crate) fn follower(&self) -> Option<Arc<dyn fence::Follower>> {
        self.follower
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Installs what reads the topology store on demand.
    pub(crate) fn set_follower(&self, follower: Arc<dyn fence::Follower>) {
        *self.follower.write().unwrap_or_else(|e| e.into_inner()) = Some(follower);
    }

    /// Installs the store placement changes are persisted in.
    pub(crate) fn set_store(&self, store: Arc<dyn PlacementStore>) {
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The epoch of `table`'s placement known here (0: never placed).
    pub(crate) fn epoch_of(&self, table: &str) -> u64 {
        let current = self.read().get(table).map(|s| s.epoch);
        let last = self
            .last_epoch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
            .copied();
        current.max(last).unwrap_or(0)
    }

    /// Installs a change another process persisted — `table`'s placement at `epoch` (`None`:
    /// static) — if it is newer than what this process knows; returns whether it was applied.
    /// Callers drain the model's operations first (its gate in write mode).
    pub(crate) fn apply_persisted(
        &self,
        table: &'static str,
        epoch: u64,
        placement: Option<Placement>,
        guarded: bool,
    ) -> bool {
        let mut map = self.write();
        let mut last = self.last_epoch.lock().unwrap_or_else(|e| e.into_inner());
        let known = map
            .get(table)
            .map(|s| s.epoch)
            .max(last.get(table).copied())
            .unwrap_or(0);
        if epoch <= known {
            return false;
        }
        last.insert(table, epoch);
        self.set_guarded(
            table,
            guarded && matches!(placement, Some(Placement::Migrating { .. })),
        );
        match placement {
            Some(placement) => {
                map.insert(table, Arc::new(PlacementState { epoch, placement }));
                self.any.store(true, Ordering::Release);
            }
            None => {
                map.remove(table);
                if map.is_empty() {
                    self.any.store(false, Ordering::Release);
                }
            }
        }
        true
    }

    /// The operation gate of `table` (created on first use): every operation on a model with a
    /// run-time placement holds it in read mode; a placement switch that must drain them (a
    /// resharding cutover) takes it in write mode.
    pub(crate) fn gate(&self, table: &'static str) -> Arc<tokio::sync::RwLock<()>> {
        if let Some(gate) = self
            .gates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
        {
            return Arc::clone(gate);
        }
        let mut gates = self.gates.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(gates.entry(table).or_default())
    }

    /// Installs (`Some`) or removes (`None`) the write observer of `table`.
    pub(crate) fn observe(&self, table: &'static str, observer: Option<Arc<dyn WriteObserver>>) {
        let mut observers = self.observers.write().unwrap_or_else(|e| e.into_inner());
        match observer {
            Some(o) => {
                observers.insert(table, o);
            }
            None => {
                observers.remove(table);
            }
        }
    }

    fn observer(&self, table: &'static str) -> Option<Arc<dyn WriteObserver>> {
        let observers = self.observers.read().unwrap_or_else(|e| e.into_inner());
        observers.get(table).cloned()
    }

    /// The epoch of every table this process knows a placement change of (also those back to
    /// static), by table.
    pub(crate) fn epochs(&self) -> Vec<(&'static str, u64)> {
        let mut out: HashMap<&'static str, u64> = self
            .last_epoch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (table, state) in self.read().iter() {
            let e = out.entry(table).or_insert(0);
            *e = (*e).max(state.epoch);
        }
        let mut out: Vec<_> = out.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// Every run-time placement, by table.
    pub(crate) fn all(&self) -> Vec<(&'static str, Arc<PlacementState>)> {
        self.read()
            .iter()
            .map(|(t, s)| (*t, Arc::clone(s)))
            .collect()
    }
}

impl<DB: Backend> Cluster<DB> {
    /// Model `M`'s run-time placement on this cluster, if it has one (a `directory` model
    /// always has one).
    pub fn placement<M: Model>(&self) -> Option<Arc<PlacementState>> {
        self.placements().get::<M>()
    }

    /// Places model `M`'s rows by `placement` on this cluster from now on, overriding its
    /// static strategy, and returns the new epoch.
    ///
    /// This changes routing only: rows already written stay where they are. Change a
    /// placement whose shards hold rows only when no key moves (a mapping gains a value, a
    /// directory gains a shard) or through resharding ([`Placement::Migrating`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] when the placement uses a shard this cluster lacks (add it with
    /// [`Cluster::add_shard`] first); [`Error::Config`] while the model migrates (a resharding
    /// job's move is half done: finish or roll back the job — a new process resumes it with
    /// the migrating placement it read from the topology store — or end the migration with
    /// [`Cluster::abort_migration`]).
    pub fn set_placement<M: Model>(&self, placement: Placement) -> Result<u64> {
        self.check_shards::<M>(&placement.all_shards::<M>())?;
        let (_, epoch) = self.placements().update::<M>(|current| {
            not_migrating::<M>(current, "set_placement")?;
            Ok(Some(placement))
        })?;
        Ok(epoch)
    }

    /// Returns model `M` to its static placement (a `directory` model to its default
    /// directory, whose entries persist in the directory table); returns the new epoch (epochs
    /// never repeat, also across clears).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] while the model migrates, as [`Cluster::set_placement`].
    pub fn clear_placement<M: Model>(&self) -> Result<u64> {
        let (_, epoch) = self.placements().update::<M>(|current| {
            not_migrating::<M>(current, "clear_placement")?;
            Ok(None)
        })?;
        Ok(epoch)
    }

    /// Starts dual writes for `M` (the resharding hook): the placement becomes
    /// [`Placement::Migrating`] from the current one (static when none) to `new`. Returns the
    /// new epoch.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `M` is already migrating; [`Error::UnknownShard`] when `new` uses
    /// a shard the cluster lacks.
    pub fn begin_migration<M: Model>(&self, new: Placement) -> Result<u64> {
        self.start_migration::<M>(new, false)
    }

    /// [`Cluster::begin_migration`] for a resharding job, which guards the migration with its
    /// fence and copies registry (created first): operations under it name them.
    pub(crate) fn begin_guarded_migration<M: Model>(&self, new: Placement) -> Result<u64> {
        self.start_migration::<M>(new, true)
    }

    fn start_migration<M: Model>(&self, new: Placement, guarded: bool) -> Result<u64> {
        self.check_shards::<M>(&new.all_shards::<M>())?;
        let (_, epoch) = self.placements().update_guarded::<M>(guarded, |current| {
            let old = current.map_or(Placement::Static, |c| c.placement.clone());
            if matches!(old, Placement::Migrating { .. }) {
                return Err(Error::Config(format!(
                    "model `{}` is already migrating (epoch {}); cut over or abort first",
                    M::META.name,
                    current.map_or(0, |c| c.epoch)
                )));
            }
            Ok(Some(Placement::Migrating {
                old: Box::new(old),
                new: Box::new(new),
            }))
        })?;
        Ok(epoch)
    }

    /// Switches a migrating model to its `new` placement atomically — if its epoch is still
    /// `epoch` (what [`Cluster::begin_migration`] returned), so a cutover never applies to a
    /// migration it did not start. Returns the new epoch.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `M` is not migrating or its epoch changed.
    pub fn cutover<M: Model>(&self, epoch: u64) -> Result<u64> {
        self.finish_migration::<M>(epoch, true)
    }

    /// Ends a migration by returning to its `old` placement (rollback before cutover; rows
    /// written to `new` stay there for the caller to clean up). Returns the new epoch.
    ///
    /// # Errors
    ///
    /// As [`Cluster::cutover`].
    pub fn abort_migration<M: Model>(&self, epoch: u64) -> Result<u64> {
        self.finish_migration::<M>(epoch, false)
    }

    fn finish_migration<M: Model>(&self, epoch: u64, to_new: bool) -> Result<u64> {
        let (_, next) = self.placements().update::<M>(|current| match current {
            Some(PlacementState {
                epoch: now,
                placement: Placement::Migrating { old, new },
            }) if *now == epoch => {
                let next = if to_new { new } else { old };
                Ok(match &**next {
                    Placement::Static if M::DIRECTORY.is_none() => None,
                    other => Some(other.clone()),
                })
            }
            other => Err(Error::Config(format!(
                "model `{}`: no migration at epoch {epoch} to finish (placement now: {}); read \
                 `cluster.placement::<M>()` for the current epoch",
                M::META.name,
                other.map_or_else(
                    || "static".to_owned(),
                    |s| format!("{:?} at epoch {}", s.placement, s.epoch)
                )
            ))),
        })?;
        Ok(next)
    }

    fn check_shards<M: Model>(&self, shards: &[ShardId]) -> Result<()> {
        for &shard in shards {
            self.shard_pool(M::META.name, shard)?;
        }
        Ok(())
    }
}

/// The values of a row's shard-key columns, in key order.
pub(crate) fn row_key_values<M: Model>(row: &M) -> Vec<Value> {
    key_columns::<M>().iter().map(|&i| row.value(i)).collect()
}

/// The values of the shard-key columns within a primary key, in key order.
pub(crate) fn pk_key_values<M: Model>(key: &M::PrimaryKey) -> Vec<Value> {
    shard_key_of_pk::<M>(&M::primary_key_values(key))
}

/// The shard-key values inside primary-key values `pk` (in primary-key order).
pub(crate) fn shard_key_of_pk<M: Model>(pk: &[Value]) -> Vec<Value> {
    key_columns::<M>()
        .iter()
        .filter_map(|column| {
            M::META
                .primary_key
                .iter()
                .position(|p| p == column)
                .and_then(|at| pk.get(at).cloned())
        })
        .collect()
}

/// Where one write goes under a run-time placement.
#[derive(Debug)]
pub(crate) struct WriteTargets {
    /// The shard under the placement reads use (`None`: a directory knows no such key and the
    /// write does not place new keys) — the one whose answer counts.
    pub(crate) main: Option<ShardId>,
    /// Further shards a migration's `new` side names (dual write), each once.
    pub(crate) also: Vec<ShardId>,
}

impl WriteTargets {
    /// Every shard, `main` first.
    pub(crate) fn all(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.main.iter().chain(&self.also).copied()
    }
}

/// The shard of `values` under one non-migrating placement, looking a directory up (and, when
/// `assign`, placing a new key).
async fn shard_under<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    placement: &Placement,
    values: &[Value],
    assign: bool,
) -> Result<Option<ShardId>> {
    match placement {
        Placement::Directory(d) => {
            let parts = crate::resolve::key_parts::<M, _>(values, |parts| {
                parts
                    .iter()
                    .map(|p| OwnedKeyPart::from(*p))
                    .collect::<Vec<_>>()
            })?;
            let parts: Vec<KeyPart<'_>> = parts.iter().map(OwnedKeyPart::as_part).collect();
            if assign {
                d.place::<M, DB>(cluster, &parts).await.map(Some)
            } else {
                d.lookup::<M, DB>(cluster, &parts).await
            }
        }
        other => match other.shard_for_values::<M>(values)? {
            Some(shard) if shard.is_unplaced() => Err(Error::UnknownShard {
                model: M::META.name,
                shard: shard.name(),
                known: "the placement holds no shard for this key".into(),
            }),
            found => Ok(found),
        },
    }
}

/// Where a write of the row with shard-key `values` goes under `placement`: the reads side,
/// plus a migration's `new` side. `assign`: a directory places a key it does not know (inserts);
/// otherwise such a key has no shard there (updates, deletes).
pub(crate) async fn write_targets<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    placement: &Placement,
    values: &[Value],
    assign: bool,
) -> Result<WriteTargets> {
    let sides = placement.writes();
    let mut main = None;
    let mut also: Vec<ShardId> = Vec::new();
    for (i, side) in sides.into_iter().enumerate() {
        let shard = shard_under::<M, DB>(cluster, side, values, assign).await?;
        if i == 0 {
            main = shard;
        } else if let Some(shard) = shard
            && main.is_none_or(|m| m.name() != shard.name())
            && !also.iter().any(|a| a.name() == shard.name())
        {
            also.push(shard);
        }
    }
    Ok(WriteTargets { main, also })
}

/// The shard a read of shard-key `values` goes to under `placement` (`None`: a directory knows
/// no such key, so no row has it).
pub(crate) async fn read_shard<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    placement: &Placement,
    values: &[Value],
) -> Result<Option<ShardId>> {
    shard_under::<M, DB>(cluster, placement.reads(), values, false).await
}

/// Notes rows written (`delta > 0`) or deleted on `shard` for a directory's least-rows policy.
pub(crate) fn note_rows(placement: &Placement, shard: ShardId, delta: i64) {
    if let Placement::Directory(d) = placement.reads() {
        d.note_rows(shard, delta);
    }
}

impl<DB: Backend> Cluster<DB> {
    /// The run-time placements, kept in the cluster's extension slots.
    #[inline]
    pub(crate) fn placements(&self) -> &Placements {
        self.extensions().get_or_default()
    }

    /// Model `M`'s run-time placement, read while holding the model's gate in read mode
    /// (`None`, at the cost of one atomic load, when it has none). Keep it for the whole
    /// operation: a resharding cutover waits for it, and the placement it holds is the one the
    /// operation must follow.
    pub(crate) async fn gated_placement<M: Model>(&self) -> Option<Gated> {
        self.placements().get::<M>()?;
        let gate = self.placements().gate(M::META.table).read_owned().await;
        // Read again under the gate: a cutover may have switched the placement meanwhile.
        let state = self.placements().get::<M>()?;
        Some(Gated { _gate: gate, state })
    }
}

/// Refuses `what` on a model that migrates: it would strand the rows of a half-done move.
fn not_migrating<M: Model>(current: Option<&PlacementState>, what: &str) -> Result<()> {
    match current {
        Some(PlacementState {
            epoch,
            placement: Placement::Migrating { new, .. },
        }) => Err(Error::Config(format!(
            "model `{}` is being resharded (epoch {epoch}, towards {new:?}): `{what}` refused —              rows of the half-done move would be where no placement finds them; finish or roll              back its job (`ReshardJob::unfinished`, `ReshardJob::resume`: a new process reads              the migrating placement from the topology store), or end the migration with              `abort_migration({epoch})`",
            M::META.name
        ))),
        _ => Ok(()),
    }
}

/// Tells the write observer of `M` (if any) that the row with primary key `key` is written,
/// when the model migrates (nothing otherwise).
pub(crate) fn note_write<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    placement: &Placement,
    key: impl FnOnce() -> Vec<Value>,
) {
    if matches!(placement, Placement::Migrating { .. })
        && let Some(observer) = cluster.placements().observer(M::META.table)
    {
        observer.written(key());
    }
}

impl<DB: Backend> Cluster<DB> {
    /// Removes the shard called `name` from the live cluster and closes its pools — only when
    /// nothing would be lost: no run-time placement of a model still names it and none of its
    /// tables holds a row (Grant's migration ledger aside). Statements already running on it
    /// finish; new ones fail with [`Error::UnknownShard`].
    ///
    /// Move a model's rows off the shard first (change its placement, or reshard), then remove
    /// it. Models with a static placement that names the shard fail with
    /// [`Error::UnknownShard`] once it is gone (`cluster.check::<M>()` tells in advance).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the shard and the model placement or table (with its row
    /// count) that still uses it — then the shard stays in the cluster, untouched — or when
    /// the cluster has no such shard or it is the last one.
    pub async fn remove_shard(&self, name: &str) -> Result<()> {
        if self.shard_names().any(|n| n == name) {
            for (table, state) in self.placements().all() {
                if let Some(shard) = state
                    .placement
                    .dynamic_shards()
                    .into_iter()
                    .find(|s| s.is_named(name))
                {
                    return Err(Error::Config(format!(
                        "cannot remove shard `{name}`: the placement of table `{table}` (epoch {}) \
                         still places keys on `{shard}`; change it with `cluster.set_placement` (or \
                         reshard its rows) first",
                        state.epoch
                    )));
                }
            }
        }
        self.remove_endpoint(name).await
    }
}
