//! The `directory` strategy: key → shard entries kept in a directory table, like a Vitess
//! lookup vindex.
//!
//! The table [`TABLE`] lives on one designated shard of the cluster (the directory's *home*)
//! and holds one row per key: `(model, shard_key, shard)`. Grant keeps an in-process cache of
//! the entries it has seen, so routing a known key costs a hash-map lookup.
//!
//! - **Insert of a new key**: the directory picks a shard by its [`NewKeys`] policy and records
//!   the entry durably (`INSERT .. ON CONFLICT DO NOTHING` on the home shard; when another
//!   process recorded the key first, its choice wins) **before** the row is written.
//! - **Find of an unknown key**: one indexed lookup on the home shard, then `None` — no shard
//!   is scanned.
//! - **Queries** with the key in the filter look the keys up first (one statement for all of
//!   them) and visit only their shards; unknown keys visit none.
//! - **Topology at run time**: [`Directory::add_shard`] makes a new shard eligible for new keys
//!   at once; [`Directory::close_shard`] stops placing new keys on one (its keys stay where they
//!   are). Moving a key that has rows is resharding (the `Migrating` placement).
//!
//! A key is encoded in the table as text: `i:<integer>`, `t:<string>`, `b:<hex bytes>` or
//! `u:<hex uuid>`. Directory keys have one column.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

// A directory key is Grant's one owned key type.
use grant_core::key::OwnedKeyPart as DirKey;
use grant_core::{
    Backend, DirectorySpec, Error, KeyPart, KeyVisitor, Model, Result, ShardId, ShardKey,
};
use sea_query::{ColumnDef, Expr, ExprTrait, Index, OnConflict, Table, Value};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cluster::intern;
use crate::cluster::{Cluster, ReadPolicy};
use crate::resolve::{describe, hex, names};

/// The directory table's name (one table for every directory model of a cluster).
pub const TABLE: &str = "grant_directory";

/// Cache entries kept per directory before the cache is cleared and refilled on demand.
pub const DEFAULT_CACHE_CAPACITY: usize = 1 << 20;

/// Where a directory places a key it has not seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewKeys {
    /// The open shard with the fewest rows of the model: counted once per process when the
    /// first new key arrives (one `COUNT(*)` per shard), then kept current by the rows this
    /// process inserts and deletes through Grant (new keys placed concurrently, before their
    /// rows land, may go to the same shard).
    #[default]
    LeastRows,
    /// Open shards in turn.
    RoundRobin,
    /// Never chosen by Grant: each key is assigned with [`Directory::assign`] before its first
    /// insert; an insert of an unassigned key is refused.
    Explicit,
}

impl NewKeys {
    /// The policy written `least_rows`, `round_robin` or `explicit`.
    pub fn from_name(name: &str) -> Option<NewKeys> {
        match name {
            "least_rows" => Some(NewKeys::LeastRows),
            "round_robin" => Some(NewKeys::RoundRobin),
            "explicit" => Some(NewKeys::Explicit),
            _ => None,
        }
    }
}

/// How directory keys are stored and shown.
trait Stored {
    /// The text stored in the table's `shard_key` column.
    fn encode(&self) -> String;
    /// The key for messages.
    fn describe(&self) -> String;
}

impl Stored for DirKey {
    fn encode(&self) -> String {
        match self {
            DirKey::Int(v) => format!("i:{v}"),
            DirKey::Text(s) => format!("t:{s}"),
            DirKey::Bytes(b) => format!("b:{}", hex(b)),
            DirKey::Uuid(u) => format!("u:{}", hex(u)),
        }
    }

    fn describe(&self) -> String {
        describe(&self.as_part())
    }
}

/// A cache map: foldhash with a random seed per map (keys may come from users, so a fixed-seed
/// hash would invite collisions; foldhash hashes a 39-byte key several times faster than the
/// standard library's SipHash-1-3).
type CacheMap<K> = HashMap<K, ShardId, foldhash::fast::RandomState>;

/// The in-process cache: lookups by borrowed key parts, without allocating.
#[derive(Debug, Default)]
struct Cache {
    ints: CacheMap<i64>,
    texts: CacheMap<Box<str>>,
    bytes: CacheMap<Box<[u8]>>,
    uuids: CacheMap<[u8; 16]>,
}

impl Cache {
    #[inline]
    fn get(&self, part: &KeyPart<'_>) -> Option<ShardId> {
        match part {
            KeyPart::Int(v) => self.ints.get(v),
            KeyPart::Text(s) => self.texts.get(*s),
            KeyPart::Bytes(b) => self.bytes.get(*b),
            KeyPart::Uuid(u) => self.uuids.get(u),
        }
        .copied()
    }

    fn insert(&mut self, key: DirKey, shard: ShardId) {
        match key {
            DirKey::Int(v) => self.ints.insert(v, shard),
            DirKey::Text(s) => self.texts.insert(s, shard),
            DirKey::Bytes(b) => self.bytes.insert(b, shard),
            DirKey::Uuid(u) => self.uuids.insert(u, shard),
        };
    }

    fn remove(&mut self, key: &DirKey) {
        match key {
            DirKey::Int(v) => self.ints.remove(v),
            DirKey::Text(s) => self.texts.remove(s),
            DirKey::Bytes(b) => self.bytes.remove(b),
            DirKey::Uuid(u) => self.uuids.remove(u),
        };
    }

    fn len(&self) -> usize {
        self.ints.len() + self.texts.len() + self.bytes.len() + self.uuids.len()
    }
}

/// One directory shard: its id and whether new keys may go there.
#[derive(Debug, Clone, Copy)]
struct Member {
    id: ShardId,
    open: bool,
}

/// Key → shard entries of one model in a directory table, cached in process.
///
/// Built by `#[shard(strategy = "directory", ..)]` (the cluster creates it on the model's first
/// use) or by hand and installed with
/// [`cluster.set_placement::<M>(Placement::Directory(Arc::new(directory)))`](Cluster::set_placement).
///
/// # Examples
///
/// ```
/// use grant_core::ShardId;
/// use grant_sharding::placement::directory::{Directory, NewKeys};
///
/// let directory = Directory::new("shard_0", ["shard_0", "shard_1"], NewKeys::RoundRobin).unwrap();
/// assert_eq!(directory.shards(), [ShardId::new(0), ShardId::new(1)]);
/// assert_eq!(directory.cached_key(&42_i64), None);   // not looked up yet
/// ```
pub struct Directory {
    home: ShardId,
    members: RwLock<Vec<Member>>,
    policy: NewKeys,
    cache: RwLock<Cache>,
    capacity: usize,
    /// Rows per shard name, for [`NewKeys::LeastRows`] (loaded on the first new key).
    rows: tokio::sync::Mutex<Option<HashMap<&'static str, i64>>>,
    /// Changes to `rows` from writes, applied whether or not the counts are loaded yet.
    pending_rows: Mutex<HashMap<&'static str, i64>>,
    turn: AtomicUsize,
    table_ready: tokio::sync::OnceCell<()>,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("home", &self.home)
            .field("shards", &self.shards())
            .field("policy", &self.policy)
            .field("cached", &self.read_cache().len())
            .finish()
    }
}

impl Directory {
    /// A directory whose table lives on the shard called `home` and whose keys go to `shards`
    /// (named, in index order) by `policy`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no shards or a shard named twice.
    pub fn new<S: AsRef<str>>(
        home: &str,
        shards: impl IntoIterator<Item = S>,
        policy: NewKeys,
    ) -> Result<Self> {
        let mut members: Vec<Member> = Vec::new();
        for name in shards {
            let name = name.as_ref();
            if members.iter().any(|m| m.id.is_named(name)) {
                return Err(Error::Config(format!(
                    "directory: shard `{name}` is listed twice"
                )));
            }
            members.push(Member {
                id: ShardId::named(members.len() as u32, intern(name)),
                open: true,
            });
        }
        Self::with_members(ShardId::named(0, intern(home)), members, policy)
    }

    /// The directory `#[shard(strategy = "directory", ..)]` describes for model `M`.
    pub(crate) fn from_spec(spec: &DirectorySpec) -> Self {
        let members = spec
            .shards
            .iter()
            .map(|&id| Member { id, open: true })
            .collect();
        let policy = NewKeys::from_name(spec.policy).unwrap_or_default();
        // The derive checks the spec at compile time: its member list is never empty.
        Self::unchecked(ShardId::named(0, spec.home), members, policy)
    }

    fn with_members(home: ShardId, members: Vec<Member>, policy: NewKeys) -> Result<Self> {
        if members.is_empty() {
            return Err(Error::Config(
                "directory: no shards given; list the shards new keys may go to".into(),
            ));
        }
        Ok(Self::unchecked(home, members, policy))
    }

    fn unchecked(home: ShardId, members: Vec<Member>, policy: NewKeys) -> Self {
        Directory {
            home,
            members: RwLock::new(members),
            policy,
            cache: RwLock::default(),
            capacity: DEFAULT_CACHE_CAPACITY,
            rows: tokio::sync::Mutex::new(None),
            pending_rows: Mutex::default(),
            turn: AtomicUsize::new(0),
            table_ready: tokio::sync::OnceCell::new(),
        }
    }

    /// Keep at most `capacity` cached entries (default [`DEFAULT_CACHE_CAPACITY`]); past it
    /// the cache is cleared and refills from the table on demand.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_members(&self) -> std::sync::RwLockReadGuard<'_, Vec<Member>> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard holding the directory table.
    pub fn home(&self) -> ShardId {
        self.home
    }

    /// The policy for new keys.
    pub fn policy(&self) -> NewKeys {
        self.policy
    }

    /// Every shard keys may be on (open or closed to new keys), in index order.
    pub fn shards(&self) -> Vec<ShardId> {
        self.read_members().iter().map(|m| m.id).collect()
    }

    /// The shards new keys may go to.
    pub fn open_shards(&self) -> Vec<ShardId> {
        self.read_members()
            .iter()
            .filter(|m| m.open)
            .map(|m| m.id)
            .collect()
    }

    /// Makes the cluster shard called `name` eligible for new keys (at once, for every
    /// process using this value); reopens it if it was closed. Returns its id.
    pub fn add_shard(&self, name: &str) -> ShardId {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = members.iter_mut().find(|m| m.id.is_named(name)) {
            m.open = true;
            return m.id;
        }
        let id = ShardId::named(members.len() as u32, intern(name));
        members.push(Member { id, open: true });
        id
    }

    /// Stops placing new keys on the shard called `name`; keys already there stay.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the directory has no such shard or it is the last open one.
    pub fn close_shard(&self, name: &str) -> Result<()> {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        let open = members.iter().filter(|m| m.open).count();
        let known: Vec<ShardId> = members.iter().map(|m| m.id).collect();
        let Some(m) = members.iter_mut().find(|m| m.id.is_named(name)) else {
            return Err(Error::Config(format!(
                "directory: no shard `{name}` to close (it has {})",
                names(&known)
            )));
        };
        if m.open && open <= 1 {
            return Err(Error::Config(format!(
                "directory: `{name}` is the last shard open to new keys; add another first"
            )));
        }
        m.open = false;
        Ok(())
    }

    /// The cached shard of a one-part key, without I/O (`None`: not cached).
    #[inline]
    pub fn cached(&self, key: &[KeyPart<'_>]) -> Option<ShardId> {
        match key {
            [part] => self.read_cache().get(part),
            _ => None,
        }
    }

    /// The cached shard of `key`, without I/O (`None`: not cached).
    #[inline]
    pub fn cached_key<K: ShardKey + ?Sized>(&self, key: &K) -> Option<ShardId> {
        let cache = self.read_cache();
        let mut lookup = Lookup {
            cache: &cache,
            found: None,
        };
        key.visit(&mut lookup);
        lookup.found.flatten()
    }

    /// Forgets every cached entry (they are read again from the table on demand).
    pub fn clear_cache(&self) {
        *self.write_cache() = Cache::default();
    }

    fn remember(&self, key: DirKey, shard: ShardId) {
        let mut cache = self.write_cache();
        if cache.len() >= self.capacity {
            *cache = Cache::default();
        }
        cache.insert(key, shard);
    }

    /// The member id of the shard called `name`, adding it (closed) when this process did not
    /// know it — another process added it.
    fn member(&self, name: &str) -> ShardId {
        if let Some(m) = self.read_members().iter().find(|m| m.id.is_named(name)) {
            return m.id;
        }
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = members.iter().find(|m| m.id.is_named(name)) {
            return m.id;
        }
        let id = ShardId::named(members.len() as u32, intern(name));
        members.push(Member { id, open: false });
        id
    }

    /// Creates the directory table on the home shard (once per process; idempotent).
    ///
    /// # Errors
    ///
    /// The home shard's error, or [`Error::UnknownShard`] when the cluster lacks it.
    pub async fn ensure_table<M: Model, DB: Backend>(&self, cluster: &Cluster<DB>) -> Result<()> {
        self.table_ready
            .get_or_try_init(|| async {
                let mut table = Table::create();
                table
                    .table(TABLE)
                    .if_not_exists()
                    .col(ColumnDef::new("model").string_len(255).not_null())
                    .col(ColumnDef::new("shard_key").string_len(1024).not_null())
                    .col(ColumnDef::new("shard").string_len(255).not_null())
                    .primary_key(Index::create().col("model").col("shard_key"));
                let sql = table.build(DB::builder());
                cluster
                    .execute(
                        M::META.name,
                        self.home,
                        (sql, SqlxValues(sea_query::Values(Vec::new()))),
                    )
                    .await
                    .map(|_| ())
            })
            .await
            .copied()
    }

    /// The shard of `key` (one part) for model `M`: the cache, else the table. `None` when the
    /// directory has no entry — no row of `M` has this key.
    ///
    /// # Errors
    ///
    /// The home shard's error.
    pub async fn lookup<M: Model, DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        key: &[KeyPart<'_>],
    ) -> Result<Option<ShardId>> {
        let key = one_part::<M>(key)?;
        if let Some(shard) = self.read_cache().get(&key.as_part()) {
            return Ok(Some(shard));
        }
        self.load::<M, DB>(cluster, std::slice::from_ref(&key))
            .await?;
        Ok(self.read_cache().get(&key.as_part()))
    }

    /// Loads the entries of `keys` not cached yet into the cache (one statement).
    async fn load<M: Model, DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        keys: &[DirKey],
    ) -> Result<()> {
        let missing: Vec<&DirKey> = {
            let cache = self.read_cache();
            keys.iter()
                .filter(|k| cache.get(&k.as_part()).is_none())
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        self.ensure_table::<M, DB>(cluster).await?;
        for chunk in missing.chunks(500) {
            let mut select = sea_query::Query::select();
            select
                .columns(["shard_key", "shard"])
                .from(TABLE)
                .and_where(Expr::col("model").eq(M::META.name))
                .and_where(Expr::col("shard_key").is_in(chunk.iter().map(|k| k.encode())));
            let rows = cluster
                .fetch(
                    M::META.name,
                    self.home,
                    Some(ReadPolicy::Primary),
                    select.build_sqlx(DB::builder()),
                )
                .await?;
            for row in &rows {
                let decode = |i| {
                    DB::get_string(row, i).map_err(|source| Error::Shard {
                        model: M::META.name,
                        shard: self.home,
                        source,
                    })
                };
                let (Some(encoded), Some(shard)) = (decode(0)?, decode(1)?) else {
                    continue;
                };
                if let Some(key) = chunk.iter().find(|k| k.encode() == encoded) {
                    let id = self.member(&shard);
                    self.remember((*key).clone(), id);
                }
            }
        }
        Ok(())
    }

    /// Looks up every key the dynamic `values` (one per key) name, so that routing them
    /// afterwards ([`Directory::cached`]) needs no I/O.
    ///
    /// # Errors
    ///
    /// [`Error::MissingShardKey`] for a NULL or non-key value; the home shard's error.
    pub async fn prefetch<M: Model, DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        values: &[&Value],
    ) -> Result<()> {
        let mut keys = Vec::with_capacity(values.len());
        for value in values {
            let key = crate::resolve::key_parts::<M, _>(std::slice::from_ref(*value), |parts| {
                one_part::<M>(parts)
            })??;
            keys.push(key);
        }
        self.load::<M, DB>(cluster, &keys).await
    }

    /// The shard of `key` for an insert of model `M`: its entry, else a shard chosen by the
    /// policy and recorded durably in the table before this returns.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] naming the key under [`NewKeys::Explicit`] when it was never
    /// assigned; the home shard's error.
    pub async fn place<M: Model, DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        key: &[KeyPart<'_>],
    ) -> Result<ShardId> {
        if let Some(shard) = self.lookup::<M, DB>(cluster, key).await? {
            return Ok(shard);
        }
        let key = one_part::<M>(key)?;
        let shard = match self.policy {
            NewKeys::Explicit => {
                return Err(Error::UnknownShard {
                    model: M::META.name,
                    shard: format!(
                        "<none for {} = {}>",
                        M::META.shard_key_names(),
                        key.describe()
                    ),
                    known: format!(
                        "{}; the directory's policy is `explicit`: assign the key to a shard \
                         with `Directory::assign` before inserting it",
                        names(&self.shards())
                    ),
                });
            }
            NewKeys::RoundRobin => {
                let open = self.open_shards();
                open[self.turn.fetch_add(1, Ordering::Relaxed) % open.len().max(1)]
            }
            NewKeys::LeastRows => self.least_rows::<M, DB>(cluster).await?,
        };
        self.record::<M, DB>(cluster, key, shard).await
    }

    /// Assigns `key` to the shard called `shard` (the [`NewKeys::Explicit`] policy's way to
    /// place keys; works under every policy). Idempotent for the same shard.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the key is already assigned to another shard (moving a key with
    /// rows is resharding) or the directory has no such shard; the home shard's error.
    pub async fn assign<M: Model, DB: Backend, K: ShardKey + ?Sized>(
        &self,
        cluster: &Cluster<DB>,
        key: &K,
        shard: &str,
    ) -> Result<ShardId> {
        let mut first = First(None);
        key.visit(&mut first);
        let key = first.0.ok_or_else(|| Error::MissingShardKey {
            model: M::META.name,
            key: M::META.shard_key_name(),
            detail: "the key has no parts".into(),
        })?;
        let found = self
            .read_members()
            .iter()
            .find(|m| m.id.is_named(shard))
            .map(|m| m.id);
        let Some(id) = found else {
            return Err(Error::Config(format!(
                "model `{}`: cannot assign {} = {} to shard `{shard}`: the directory has {}; \
                 add the shard with `Directory::add_shard` first",
                M::META.name,
                M::META.shard_key_names(),
                key.describe(),
                names(&self.shards())
            )));
        };
        let placed = self.record::<M, DB>(cluster, key.clone(), id).await?;
        if placed != id {
            return Err(Error::Config(format!(
                "model `{}`: {} = {} is already on shard `{placed}`, not `{shard}`; moving a \
                 key that has rows is resharding",
                M::META.name,
                M::META.shard_key_names(),
                key.describe()
            )));
        }
        Ok(id)
    }

    /// Records `key` → `shard` unless the key already has an entry; returns the entry's shard.
    async fn record<M: Model, DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        key: DirKey,
        shard: ShardId,
    ) -> Result<ShardId> {
        self.ensure_table::<M, DB>(cluster).await?;
        let mut insert = sea_query::Query::insert();
        insert
            .into_table(TABLE)
            .columns(["model", "shard_key", "shard"])
            .values_panic([
                M::META.name.into(),
                key.encode().into(),
                shard.name().into(),
            ])
            .on_conflict(
                OnConflict::columns(["model", "shard_key"])
                    .do_nothing()
                    .to_owned(),
            );
        let n = cluster
            .execute(M::META.name, self.home, insert.build_sqlx(DB::builder()))
            .await?;
        if n == 1 {
            self.remember(key, shard);
            return Ok(shard);
        }
        // Another writer recorded the key first: its entry wins.
        self.write_cache().remove(&key);
        self.load::<M, DB>(cluster, std::slice::from_ref(&key))
            .await?;
        self.read_cache().get(&key.as_part()).ok_or_else(|| {
            Error::Config(format!(
                "model `{}`: directory entry for {} vanished while it was being recorded; retry",
                M::META.name,
                key.describe()
            ))
        })
    }

    /// The open shard with the fewest rows (loading the counts on first use).
    async fn least_rows<M: Model, DB: Backend>(&self, cluster: &Cluster<DB>) -> Result<ShardId> {
        let mut rows = self.rows.lock().await;
        if rows.is_none() {
            // Rows noted so far are in the counts about to be taken.
            self.pending_rows
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            // One plain `COUNT(*)` statement per shard, never a `Query`: the caller (an insert)
            // holds the model's gate in read mode, and a `Query` would take it again — behind
            // a queued writer (a resharding cutover) that second read waits forever.
            let mut counts = HashMap::new();
            for shard in self.shards() {
                let n = cluster.count_rows::<M>(shard, None).await? as i64;
                counts.insert(intern(&shard.name()), n);
            }
            *rows = Some(counts);
        }
        let counts = rows.get_or_insert_with(HashMap::new);
        for (shard, delta) in self
            .pending_rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            *counts.entry(shard).or_insert(0) += delta;
        }
        let open = self.open_shards();
        let best = open
            .iter()
            .copied()
            .min_by_key(|s| counts.get(s.name().as_str()).copied().unwrap_or(0))
            .ok_or_else(|| {
                Error::Config(format!(
                    "model `{}`: the directory has no shard open to new keys",
                    M::META.name
                ))
            })?;
        Ok(best)
    }

    /// Notes `delta` rows written to (or deleted from) `shard`, for [`NewKeys::LeastRows`].
    pub(crate) fn note_rows(&self, shard: ShardId, delta: i64) {
        if self.policy == NewKeys::LeastRows {
            *self
                .pending_rows
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(intern(&shard.name()))
                .or_insert(0) += delta;
        }
    }
}

/// The error of pure routing (`shard_for`, `shard_of`, `shard_for_value`) for a `directory`
/// model: its placement is in the cluster, so only the cluster's operations can route it.
pub fn static_route<M: Model>(key: &str) -> Error {
    Error::Unsupported {
        model: M::META.name,
        reason: format!(
            "{} = {key}: `{}` is placed by a directory kept in the cluster, so pure routing \
             (`shard_for`, `shard_of`) cannot know its shard; use the cluster's operations \
             (`find`, `insert`, queries), which look the key up",
            M::META.shard_key_names(),
            M::META.name
        ),
    }
}

/// What pure routing (`shard_for`) answers for any key of a `directory` model:
/// [`ShardId::UNPLACED`] — only the cluster, which holds the directory, knows the shard.
#[inline]
pub fn unplaced_key<K: ShardKey + ?Sized>(_key: &K) -> ShardId {
    ShardId::UNPLACED
}

/// The one part of a directory key.
fn one_part<M: Model>(key: &[KeyPart<'_>]) -> Result<DirKey> {
    match key {
        [part] => Ok(DirKey::from(*part)),
        _ => Err(Error::MissingShardKey {
            model: M::META.name,
            key: M::META.shard_key_name(),
            detail: format!(
                "a directory places keys of one column, got {} parts",
                key.len()
            ),
        }),
    }
}

/// Looks the first part of a key up in the cache, borrowing it (no allocation).
struct Lookup<'c> {
    cache: &'c Cache,
    found: Option<Option<ShardId>>,
}

impl KeyVisitor for Lookup<'_> {
    #[inline]
    fn part(&mut self, part: KeyPart<'_>) {
        if self.found.is_none() {
            self.found = Some(self.cache.get(&part));
        }
    }
}

/// Collects the first part of a key.
struct First(Option<DirKey>);

impl KeyVisitor for First {
    fn part(&mut self, part: KeyPart<'_>) {
        if self.0.is_none() {
            self.0 = Some(DirKey::from(part));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_distinctly() {
        let keys = [
            DirKey::Int(42),
            DirKey::Text("42".into()),
            DirKey::Bytes(vec![0x42].into()),
            DirKey::Uuid([0x42; 16]),
        ];
        let encoded: Vec<String> = keys.iter().map(Stored::encode).collect();
        assert_eq!(encoded[0], "i:42");
        assert_eq!(encoded[1], "t:42");
        assert_eq!(encoded[2], "b:42");
        for (i, a) in encoded.iter().enumerate() {
            for b in &encoded[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn cache_hits_by_borrowed_parts() {
        let d = Directory::new("shard_0", ["shard_0", "shard_1"], NewKeys::RoundRobin).unwrap();
        let s1 = d.shards()[1];
        d.remember(DirKey::Int(7), s1);
        d.remember(DirKey::Text("acme".into()), s1);
        assert_eq!(d.cached(&[KeyPart::Int(7)]), Some(s1));
        assert_eq!(d.cached_key(&7_i32), Some(s1));
        assert_eq!(d.cached_key("acme"), Some(s1));
        assert_eq!(d.cached(&[KeyPart::Int(8)]), None);
        d.clear_cache();
        assert_eq!(d.cached(&[KeyPart::Int(7)]), None);
    }

    #[test]
    fn cache_capacity_bounds_memory() {
        let d = Directory::new("a", ["a"], NewKeys::RoundRobin)
            .unwrap()
            .with_cache_capacity(10);
        let a = d.shards()[0];
        for k in 0..25 {
            d.remember(DirKey::Int(k), a);
        }
        assert!(d.read_cache().len() <= 10);
        assert_eq!(d.cached(&[KeyPart::Int(24)]), Some(a));
    }

    #[test]
    fn shards_open_and_close() {
        let d = Directory::new("a", ["a", "b"], NewKeys::RoundRobin).unwrap();
        let c = d.add_shard("c");
        assert_eq!(c.index(), 2);
        d.close_shard("a").unwrap();
        assert_eq!(d.open_shards().len(), 2);
        assert_eq!(d.shards().len(), 3);
        d.close_shard("b").unwrap();
        assert!(
            d.close_shard("c").is_err(),
            "the last open shard stays open"
        );
        assert!(d.close_shard("zz").is_err());
        assert!(Directory::new("a", ["a", "a"], NewKeys::RoundRobin).is_err());
        assert!(Directory::new("a", Vec::<&str>::new(), NewKeys::RoundRobin).is_err());
    }
}
