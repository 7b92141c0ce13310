//! Run-time placement: per model, an optional [`Placement`] kept by the [`Cluster`] that
//! overrides the model's static (derive-generated) resolver.
//!
//! A model's placement is static by default: `#[shard(..)]` generates pure functions and every
//! routing path calls them. `cluster.set_placement::<M>(placement)` replaces them, for this
//! cluster, with a placement chosen at run time:
//!
//! - [`Placement::Resolver`]: any [`Resolver`] — a built-in strategy built at run time (a
//!   [`ConsistentHashResolver`] that gained a shard, a
//!   [`MappingResolver`] with a new entry) or a user type
//!   (the `custom` strategy);
//! - [`Placement::Directory`]: key → shard entries in a directory table
//!   ([`Directory`]);
//! - [`Placement::Migrating`]: the hook for online resharding — reads use `old`, writes go to
//!   `old` **and** `new` (dual write) until [`Cluster::cutover`] switches the model to `new`
//!   atomically;
//! - [`Placement::Static`]: the model's own placement (useful as the `old` side of a migration).
//!
//! Every routing path consults the placement: `find`, `insert`, `insert_many`, `update`,
//! `delete`, query routing and pruning, `create_table` and `distribution`. Each placement
//! change bumps the model's [`PlacementState::epoch`].
//!
//! Cost for models without a run-time placement: one atomic load per operation.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use grant_core::{Backend, Error, KeyPart, Model, ModelMeta, Result, ShardId};
use sea_query::Value;

use crate::cluster::Cluster;
use crate::resolve::directory::Directory;
use crate::resolve::{ConsistentHashResolver, HashResolver, MappingResolver, PgHashResolver};

/// A key → shard function chosen at run time: the `custom` strategy's trait, also implemented
/// by the built-in resolvers that can change at run time.
///
/// Implement it for your own type and either name the type in the derive
/// (`#[shard(strategy = "custom", resolver = "path::Type")]`, the type then also needs
/// `Default`) or install a value on a cluster with
/// [`cluster.set_placement::<M>(Placement::resolver(value))`](Cluster::set_placement).
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use grant_core::{Error, KeyPart, ModelMeta, Result, ShardId};
/// use grant_sharding::placement::Resolver;
///
/// /// Even keys on `even`, odd keys on `odd`.
/// #[derive(Debug, Default)]
/// struct Parity;
///
/// impl Resolver for Parity {
///     fn shards(&self) -> Cow<'_, [ShardId]> {
///         const SHARDS: [ShardId; 2] = [ShardId::named(0, "even"), ShardId::named(1, "odd")];
///         Cow::Borrowed(&SHARDS)
///     }
///     fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
///         match key {
///             [KeyPart::Int(v)] => Ok(self.shards()[v.rem_euclid(2) as usize]),
///             _ => Err(Error::MissingShardKey {
///                 model: model.name,
///                 key: model.shard_key_name(),
///                 detail: "Parity places one integer key".into(),
///             }),
///         }
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + fmt::Debug + 'static {
    /// Every shard this resolver may place a key on, in index order
    /// ([`ShardId::index`] is the position). Queries without a usable key visit all of them.
    fn shards(&self) -> Cow<'_, [ShardId]>;

    /// The shard of the key whose parts (one per shard-key column, in key order) are `key`.
    ///
    /// # Errors
    ///
    /// Whatever the resolver refuses; name the model (`model.name`), the key and what to do —
    /// e.g. [`Error::UnknownShard`] for a key no shard holds.
    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId>;

    /// The shards that may hold keys between `low` and `high` (single-column keys), or `None`
    /// when the resolver cannot tell (then a range condition visits every shard). May include
    /// shards without such keys, never omit one.
    ///
    /// # Errors
    ///
    /// None by default.
    fn shards_for_range(
        &self,
        model: &'static ModelMeta,
        low: Bound<&Value>,
        high: Bound<&Value>,
    ) -> Result<Option<Vec<ShardId>>> {
        let _ = (model, low, high);
        Ok(None)
    }
}

impl Resolver for HashResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Owned(
            (0..self.count())
                .map(|i| ShardId::prefixed(self.prefix(), i))
                .collect(),
        )
    }

    fn shard_for_key(&self, _model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let hash = crate::resolve::hash::parts_hash(key.iter().copied());
        Ok(ShardId::prefixed(
            self.prefix(),
            (hash % u64::from(self.count().max(1))) as u32,
        ))
    }
}

impl Resolver for PgHashResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Owned(
            (0..self.modulus())
                .map(|i| ShardId::prefixed(self.prefix(), i))
                .collect(),
        )
    }

    fn shard_for_key(&self, _model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let hash = crate::resolve::pg_hash::parts_row_hash(key.iter().copied());
        Ok(ShardId::prefixed(
            self.prefix(),
            (hash % u64::from(self.modulus().max(1))) as u32,
        ))
    }
}

impl Resolver for ConsistentHashResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Borrowed(ConsistentHashResolver::shards(self))
    }

    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let shard = self.shard_for_hash(crate::resolve::hash::parts_hash(key.iter().copied()));
        if shard.is_unplaced() {
            return Err(Error::UnknownShard {
                model: model.name,
                shard: shard.name(),
                known: "the hash ring has no points; give its shards vnodes".into(),
            });
        }
        Ok(shard)
    }
}

impl Resolver for MappingResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        let mut shards: Vec<ShardId> = Vec::new();
        for shard in self
            .entries()
            .iter()
            .map(|(_, s)| *s)
            .chain(self.default_shard())
        {
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        shards.sort();
        Cow::Owned(shards)
    }

    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        match key {
            [part] => self
                .shard_for_part(*part)
                .ok_or_else(|| Error::UnknownShard {
                    model: model.name,
                    shard: format!(
                        "<none for {} = {}>",
                        model.shard_key_names(),
                        describe(part)
                    ),
                    known: format!(
                        "{}; the value is not in the mapping and there is no default: add an entry \
                     with `MappingResolver::with_entry` and `cluster.set_placement`",
                        names(&Resolver::shards(self))
                    ),
                }),
            _ => Err(Error::MissingShardKey {
                model: model.name,
                key: model.shard_key_name(),
                detail: format!("a mapping places one key column, got {} parts", key.len()),
            }),
        }
    }
}

/// A key part rendered for messages.
pub(crate) fn describe(part: &KeyPart<'_>) -> String {
    match part {
        KeyPart::Int(v) => v.to_string(),
        KeyPart::Text(s) => format!("{s:?}"),
        KeyPart::Bytes(b) => format!("0x{}", hex(b)),
        KeyPart::Uuid(u) => format!("uuid 0x{}", hex(u)),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(crate) fn names(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(ShardId::name)
        .collect::<Vec<_>>()
        .join(", ")
}

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
    // resharding: per-model operation gates and dirty-key journals (see `crate::reshard`).
    pub(crate) reshard: crate::reshard::Hooks,
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
        // A directory model's implicit placement exists before any change.
        let _ = self.get::<M>();
        let mut map = self.write();
        let current = map.get(M::META.table).cloned();
        let next = f(current.as_deref())?;
        let epoch = {
            let mut last = self.last_epoch.lock().unwrap_or_else(|e| e.into_inner());
            let epoch = last
                .get(M::META.table)
                .copied()
                .max(current.as_ref().map(|c| c.epoch))
                .unwrap_or(0)
                + 1;
            last.insert(M::META.table, epoch);
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

    /// Every run-time placement, by table.
    pub(crate) fn all(&self) -> Vec<(&'static str, Arc<PlacementState>)> {
        self.read()
            .iter()
            .map(|(t, s)| (*t, Arc::clone(s)))
            .collect()
    }
}

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
    /// [`Cluster::add_shard`] first).
    pub fn set_placement<M: Model>(&self, placement: Placement) -> Result<u64> {
        self.check_shards::<M>(&placement.all_shards::<M>())?;
        let (_, epoch) = self.placements().update::<M>(|_| Ok(Some(placement)))?;
        Ok(epoch)
    }

    /// Returns model `M` to its static placement (a `directory` model to its default
    /// directory, whose entries persist in the directory table); returns the new epoch (epochs
    /// never repeat, also across clears).
    ///
    /// # Errors
    ///
    /// None today.
    pub fn clear_placement<M: Model>(&self) -> Result<u64> {
        let (_, epoch) = self.placements().update::<M>(|_| Ok(None))?;
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
        self.check_shards::<M>(&new.all_shards::<M>())?;
        let (_, epoch) = self.placements().update::<M>(|current| {
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
    let values = M::primary_key_values(key);
    key_columns::<M>()
        .iter()
        .filter_map(|column| {
            M::META
                .primary_key
                .iter()
                .position(|pk| pk == column)
                .and_then(|at| values.get(at).cloned())
        })
        .collect()
}

fn key_columns<M: Model>() -> &'static [usize] {
    match M::META.shard_key_columns {
        [] => M::META.shard_key.as_slice(),
        columns => columns,
    }
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
                    .map(|p| match *p {
                        KeyPart::Int(v) => OwnedPart::Int(v),
                        KeyPart::Text(s) => OwnedPart::Text(s.to_owned()),
                        KeyPart::Bytes(b) => OwnedPart::Bytes(b.to_vec()),
                        KeyPart::Uuid(u) => OwnedPart::Uuid(u),
                    })
                    .collect::<Vec<_>>()
            })?;
            let parts: Vec<KeyPart<'_>> = parts.iter().map(OwnedPart::as_part).collect();
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

/// An owned key part, to hold a key across a directory lookup.
enum OwnedPart {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
}

impl OwnedPart {
    fn as_part(&self) -> KeyPart<'_> {
        match self {
            OwnedPart::Int(v) => KeyPart::Int(*v),
            OwnedPart::Text(s) => KeyPart::Text(s),
            OwnedPart::Bytes(b) => KeyPart::Bytes(b),
            OwnedPart::Uuid(u) => KeyPart::Uuid(*u),
        }
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
