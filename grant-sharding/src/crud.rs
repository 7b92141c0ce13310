//! Schema and row writes: `create_table`, `insert`, `insert_many`, `upsert`, `upsert_many`,
//! `update`, `delete`, `find`, and [`Tracked`] records that refuse shard-key changes.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use futures_util::future::try_join_all;
use grant_core::key::describe_values;
use grant_core::{Backend, Error, FromShardRow, Model, Result, ShardId};
use sea_query_sqlx::SqlxValues;

use crate::cluster::{Cluster, ReadPolicy};
use crate::placement::{self, Placement, fence};
use crate::stmt::{self, Put, copy};
pub use crate::stmt::{build_find_statement, find_statement};

/// Creates the model's table (with its primary key, composite or not) on every shard the model
/// uses, in parallel. Idempotent (`IF NOT EXISTS`).
///
/// # Errors
///
/// [`Error::UnknownShard`] when the cluster lacks one of the model's shards (checked before
/// anything is created); [`Error::SchemaMismatch`] when a table of that name already existed
/// without some of the model's columns (made by an older version of the model: migrate it);
/// the shard's error otherwise.
pub async fn create_table<M: Model, DB: Backend>(cluster: &Cluster<DB>) -> Result<()> {
    cluster.check::<M>()?;
    let state = cluster.placement::<M>();
    let shards: Vec<ShardId> = match &state {
        Some(state) => {
            for side in state.placement.writes() {
                if let Placement::Directory(d) = side {
                    d.ensure_table::<M, DB>(cluster).await?;
                }
            }
            state.placement.all_shards::<M>()
        }
        None => M::shards().to_vec(),
    };
    create_table_on::<M, DB>(cluster, &shards).await
}

/// [`create_table`] on each of `shards` (the resharding job: on the new shards before any
/// process writes there).
pub(crate) async fn create_table_on<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    shards: &[ShardId],
) -> Result<()> {
    let sql = stmt::create_table::<M, DB>();
    try_join_all(shards.iter().map(|&shard| {
        let sql = sql.clone();
        async move {
            cluster
                .execute(
                    M::META.name,
                    shard,
                    (sql, SqlxValues(sea_query::Values(Vec::new()))),
                )
                .await
        }
    }))
    .await?;
    // The table may have existed before, made by an older version of the model.
    cluster.verify_tables::<M>(shards).await?;
    create_indexes::<M, DB>(cluster, shards).await
}

/// Creates model `M`'s secondary indexes (those missing) on each of `shards`, shards in
/// parallel; after the table's columns were verified, so a table lacking an indexed column
/// fails with the schema error naming it, not the database's.
pub(crate) async fn create_indexes<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    shards: &[ShardId],
) -> Result<()> {
    let statements = stmt::create_indexes::<M, DB>();
    if statements.is_empty() {
        return Ok(());
    }
    try_join_all(shards.iter().map(|&shard| {
        let statements = &statements;
        async move {
            for sql in statements {
                let statement = (sql.clone(), SqlxValues(sea_query::Values(Vec::new())));
                cluster.execute(M::META.name, shard, statement).await?;
            }
            Ok::<_, Error>(())
        }
    }))
    .await?;
    Ok(())
}

/// The statement path for model `M`: the schema check of its table on `shard` (once per shard
/// until the next migration, then a cached answer), then the write.
async fn exec<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    shard: ShardId,
    statement: (String, SqlxValues),
) -> Result<u64> {
    cluster.ensure_schema::<M>(shard).await?;
    cluster.execute(M::META.name, shard, statement).await
}

/// [`exec`] of a read returning rows.
async fn fetch<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    shard: ShardId,
    policy: Option<ReadPolicy>,
    statement: (String, SqlxValues),
) -> Result<Vec<DB::Row>> {
    cluster.ensure_schema::<M>(shard).await?;
    cluster.fetch(M::META.name, shard, policy, statement).await
}

/// [`exec`] of a read returning at most one row.
async fn fetch_optional<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    shard: ShardId,
    policy: Option<ReadPolicy>,
    statement: (String, SqlxValues),
) -> Result<Option<DB::Row>> {
    cluster.ensure_schema::<M>(shard).await?;
    cluster
        .fetch_optional(M::META.name, shard, policy, statement)
        .await
}

/// One shard's statements of an operation under a run-time placement, in one transaction
/// (one statement alone runs as it is); under a migrating placement the transaction also
/// names the migration's fence (`placement::fence`), so nothing of it is written once the
/// migration was decided. Returns each statement's count.
async fn side<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    shard: ShardId,
    migrating: bool,
    mut statements: Vec<(String, SqlxValues)>,
) -> Result<Vec<u64>> {
    cluster.ensure_schema::<M>(shard).await?;
    if !migrating {
        if statements.len() == 1 {
            let statement = statements.remove(0);
            return Ok(vec![cluster.execute(M::META.name, shard, statement).await?]);
        }
        return cluster
            .execute_atomic_each(M::META.name, shard, statements)
            .await;
    }
    // The probe last: the writes take their locks first (SQLite: a transaction that read
    // first could not take the write lock once another writer committed), and a fence taken
    // down before the probe rolls them back.
    statements.push((
        fence::probe::<M>(),
        SqlxValues(sea_query::Values(Vec::new())),
    ));
    let mut each = cluster
        .execute_atomic_each(M::META.name, shard, statements)
        .await?;
    each.pop();
    Ok(each)
}

/// The other side of a dual write: when it met the fence, the operation is complete anyway —
/// its own shard's write committed before the fence, in the source's change capture, which
/// the cutover copies to the target.
fn other_side<M: Model>(result: Result<Vec<u64>>) -> Result<()> {
    match result {
        Err(e) if fence::is_fenced::<M>(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Inserts one row on the shard its key names.
///
/// # Errors
///
/// [`Error::UnknownShard`]; the shard's error (e.g. a duplicate primary key).
pub async fn insert<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    put(cluster, row, Put::Insert).await
}

/// Inserts one row on the shard its key names, or — when a row with its primary key exists —
/// updates every other column of that row to this row's values. One statement on the row's
/// shard (`INSERT .. ON CONFLICT (primary key) DO UPDATE`), so concurrent upserts of one key
/// never fail with a duplicate key: each applies whole, the last one wins.
///
/// # Errors
///
/// [`Error::UnknownShard`]; the shard's error (e.g. another unique constraint).
pub async fn upsert<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    put(cluster, row, Put::Upsert).await
}

async fn put<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M, kind: Put) -> Result<()> {
    if !cluster.placements().any() {
        return put_once(cluster, row, kind).await;
    }
    cluster
        .through_fence::<M, _, _, _>(|| put_once(cluster, row, kind))
        .await
}

async fn put_once<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M, kind: Put) -> Result<()> {
    let statement = kind.statements::<M, DB>(&[row]).remove(0);
    // resharding: the placement is read under the model's gate, held for the whole operation
    // (a cutover waits for it).
    if let Some(state) = cluster.gated_placement::<M>().await {
        let migrating = fence::guards::<M, DB>(cluster, &state);
        let values = placement::row_key_values::<M>(row);
        let targets =
            placement::write_targets::<M, DB>(cluster, &state.placement, &values, true).await?;
        // resharding: journal the key; the `new` side of a dual write is an upsert.
        placement::note_write::<M, DB>(cluster, &state.placement, || {
            M::primary_key_values(&row.primary_key())
        });
        if let Some(shard) = targets.main {
            side::<M, DB>(cluster, shard, migrating, vec![copy(&statement)]).await?;
        }
        for shard in &targets.also {
            // The copy is recorded in the shard's copies registry: reads of the old
            // placement leave it out until the cutover.
            let mut statements = stmt::upserts::<M, DB>(&[row]);
            if migrating {
                statements.extend(stmt::register_copies::<M, DB>(&[row]));
            }
            other_side::<M>(side::<M, DB>(cluster, *shard, migrating, statements).await)?;
        }
        if let Some(main) = targets.main
            && kind == Put::Insert
        {
            placement::note_rows(&state.placement, main, 1);
        }
        return Ok(());
    }
    exec::<M, DB>(cluster, row.try_shard_of()?, statement).await?;
    Ok(())
}

/// Inserts many rows: grouped per shard, sent as multi-row `INSERT`s in batches under the
/// backend's bind-parameter limit, each shard's batches in one transaction (a shard gets all of
/// its rows or none), shards in parallel. Returns the number of rows inserted.
///
/// # Errors
///
/// [`Error::UnknownShard`] before anything is written; a shard's error (that shard wrote
/// nothing; other shards may have committed).
///
/// # Cancel safety
///
/// Dropping the future rolls back the transactions of shards that had not committed yet.
pub async fn insert_many<M: Model, DB: Backend>(cluster: &Cluster<DB>, rows: &[M]) -> Result<u64> {
    put_many(cluster, &Put::Insert.rows(rows)?, Put::Insert).await
}

/// [`upsert`] of many rows, grouped per shard as [`insert_many`] groups them (each shard's
/// rows in one transaction, shards in parallel). When `rows` holds one primary key more than
/// once, the last of them is written. Returns the number of distinct rows written (inserted
/// or updated; for a model whose every column is in its primary key, only the inserted ones).
///
/// # Errors
///
/// As [`insert_many`].
pub async fn upsert_many<M: Model, DB: Backend>(cluster: &Cluster<DB>, rows: &[M]) -> Result<u64> {
    put_many(cluster, &Put::Upsert.rows(rows)?, Put::Upsert).await
}

async fn put_many<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    rows: &[&M],
    kind: Put,
) -> Result<u64> {
    // resharding: the rows written so far, when a migration's fence stopped the writes half
    // way (their shards committed; the rest is written again on the new placement).
    let done = std::sync::Mutex::new(vec![false; rows.len()]);
    let written = std::sync::atomic::AtomicU64::new(0);
    cluster
        .through_fence::<M, _, _, _>(|| async {
            let left: Vec<(usize, &M)> = {
                let done = done.lock().unwrap_or_else(|e| e.into_inner());
                rows.iter()
                    .enumerate()
                    .filter(|(i, _)| !done[*i])
                    .map(|(i, r)| (i, *r))
                    .collect()
            };
            let n = put_many_once(cluster, &left, kind, &done).await?;
            Ok(written.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n)
        })
        .await
}

/// Inserts (or upserts) `rows` (each with its index in the caller's slice), marking in `done`
/// the rows a shard committed when a migration's fence stops the rest.
async fn put_many_once<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    indexed: &[(usize, &M)],
    kind: Put,
    done: &std::sync::Mutex<Vec<bool>>,
) -> Result<u64> {
    let rows: Vec<&M> = indexed.iter().map(|(_, r)| *r).collect();
    let rows = &rows[..];
    // resharding: `also` holds the rows a shard gets as the `new` side of a dual write.
    let mut groups: BTreeMap<ShardId, (ShardId, Vec<&M>)> = BTreeMap::new();
    let mut also: BTreeMap<ShardId, Vec<&M>> = BTreeMap::new();
    // resharding: the placement is read under the model's gate, held for the whole operation.
    let state = cluster.gated_placement::<M>().await;
    match &state {
        Some(state) => {
            for &row in rows {
                let values = placement::row_key_values::<M>(row);
                let targets =
                    placement::write_targets::<M, DB>(cluster, &state.placement, &values, true)
                        .await?;
                // resharding: journal the key; the `new` side is upserted (below).
                placement::note_write::<M, DB>(cluster, &state.placement, || {
                    M::primary_key_values(&row.primary_key())
                });
                if let Some(shard) = targets.main {
                    groups
                        .entry(shard)
                        .or_insert_with(|| (shard, Vec::new()))
                        .1
                        .push(row);
                }
                for &shard in &targets.also {
                    groups.entry(shard).or_insert_with(|| (shard, Vec::new()));
                    also.entry(shard).or_default().push(row);
                }
                if let Some(main) = targets.main
                    && kind == Put::Insert
                {
                    placement::note_rows(&state.placement, main, 1);
                }
            }
        }
        None => {
            for &row in rows {
                let shard = row.try_shard_of()?;
                groups
                    .entry(shard)
                    .or_insert_with(|| (shard, Vec::new()))
                    .1
                    .push(row);
            }
        }
    }
    for (shard, _) in groups.values() {
        cluster.shard_pool(M::META.name, *shard)?;
    }
    if let Some(state) = &state
        && fence::guards::<M, DB>(cluster, state)
    {
        return put_migrating::<M, DB>(cluster, indexed, kind, groups, also, done).await;
    }
    let written = try_join_all(groups.into_values().map(|(shard, rows)| {
        let mut statements = kind.statements::<M, DB>(&rows);
        let main = statements.len();
        // resharding: the dual-write rows of this shard, as upserts (not counted: each row is
        // counted once, on its main shard).
        // (A migration begun by hand: no job guards it, no copies registry.)
        if let Some(rows) = also.get(&shard) {
            statements.extend(stmt::upserts::<M, DB>(rows));
        }
        async move {
            cluster.ensure_schema::<M>(shard).await?;
            let each = cluster
                .execute_atomic_each(M::META.name, shard, statements)
                .await?;
            Ok::<u64, Error>(each[..main].iter().sum())
        }
    }))
    .await?;
    Ok(written.into_iter().sum())
}

/// [`put_many_once`] under a migrating placement: each shard's own rows, one shard after the
/// other (each in one transaction naming the fence, marked in `done` once committed), then
/// the other sides of the dual writes in parallel (a side that met the fence is complete:
/// see [`other_side`]). A fence met on a row's own shard stops here with that error, the rows
/// before it committed.
async fn put_migrating<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    indexed: &[(usize, &M)],
    kind: Put,
    groups: BTreeMap<ShardId, (ShardId, Vec<&M>)>,
    also: BTreeMap<ShardId, Vec<&M>>,
    done: &std::sync::Mutex<Vec<bool>>,
) -> Result<u64> {
    // By address: `rows` are the caller's references.
    let index: std::collections::HashMap<usize, usize> = indexed
        .iter()
        .map(|(i, r)| (std::ptr::from_ref::<M>(*r).addr(), *i))
        .collect();
    let mut written = 0;
    for (shard, rows) in groups.into_values() {
        if rows.is_empty() {
            continue;
        }
        let each = side::<M, DB>(cluster, shard, true, kind.statements::<M, DB>(&rows)).await?;
        written += each.iter().sum::<u64>();
        let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            if let Some(&i) = index.get(&std::ptr::from_ref::<M>(row).addr()) {
                done[i] = true;
            }
        }
    }
    try_join_all(also.into_iter().map(|(shard, rows)| async move {
        let mut statements = stmt::upserts::<M, DB>(&rows);
        statements.extend(stmt::register_copies::<M, DB>(&rows));
        other_side::<M>(side::<M, DB>(cluster, shard, true, statements).await)
    }))
    .await?;
    Ok(written)
}

/// Updates every non-key column of the row with this row's primary key.
///
/// # Errors
///
/// [`Error::NotFound`] when no such row exists (nothing written) — which is also what happens
/// when a shard key was changed on a plain struct; use [`Tracked`] to have such changes refused
/// as [`Error::ShardKeyMutation`].
pub async fn update<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    if !cluster.placements().any() {
        return update_once(cluster, row).await;
    }
    cluster
        .through_fence::<M, _, _, _>(|| update_once(cluster, row))
        .await
}

async fn update_once<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<()> {
    let key = row.primary_key();
    // resharding: the placement is read under the model's gate, held for the whole operation.
    let placed = cluster.gated_placement::<M>().await;
    let migrating = placed
        .as_ref()
        .is_some_and(|s| fence::guards::<M, DB>(cluster, s));
    let (shard, also) = match &placed {
        Some(state) => {
            // resharding: journal the key.
            placement::note_write::<M, DB>(cluster, &state.placement, || {
                M::primary_key_values(&key)
            });
            let values = placement::row_key_values::<M>(row);
            let targets =
                placement::write_targets::<M, DB>(cluster, &state.placement, &values, false)
                    .await?;
            match targets.main {
                Some(main) => (main, targets.also),
                None => return Err(not_found::<M>(ShardId::UNPLACED, &key)),
            }
        }
        None => (row.try_shard_of()?, Vec::new()),
    };
    let Some(statement) = stmt::update::<M, DB>(row) else {
        // Only key columns: nothing can change; still report whether the row exists.
        let exists = find_row_exists::<M, DB>(cluster, &key, shard).await?;
        return if exists {
            Ok(())
        } else {
            Err(not_found::<M>(shard, &key))
        };
    };
    let n = side::<M, DB>(cluster, shard, migrating, vec![copy(&statement)]).await?[0];
    if n == 0 {
        return Err(not_found::<M>(shard, &key));
    }
    // Dual write: the new side may not have the row yet (the backfill copies it).
    for other in also {
        let mut statements = vec![copy(&statement)];
        if migrating {
            statements.extend(stmt::register_keys::<M, DB>(&[M::primary_key_values(&key)]));
        }
        other_side::<M>(side::<M, DB>(cluster, other, migrating, statements).await)?;
    }
    Ok(())
}

async fn find_row_exists<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    key: &M::PrimaryKey,
    shard: ShardId,
) -> Result<bool> {
    let rows = fetch::<M, DB>(
        cluster,
        shard,
        Some(ReadPolicy::Primary),
        stmt::exists::<M, DB>(key),
    )
    .await?;
    Ok(!rows.is_empty())
}

pub(crate) fn not_found<M: Model>(shard: ShardId, key: &M::PrimaryKey) -> Error {
    Error::NotFound {
        model: M::META.name,
        shard,
        key: describe_values(&M::primary_key_values(key)),
    }
}

/// Deletes the row with this row's primary key. Returns whether a row was deleted.
///
/// # Errors
///
/// [`Error::UnknownShard`]; the shard's error.
pub async fn delete<M: Model, DB: Backend>(cluster: &Cluster<DB>, row: &M) -> Result<bool> {
    delete_key::<M, DB>(cluster, &row.primary_key()).await
}

/// Deletes the row with primary key `key`. Returns whether a row was deleted.
///
/// # Errors
///
/// [`Error::UnknownShard`]; the shard's error.
pub async fn delete_key<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    key: &M::PrimaryKey,
) -> Result<bool> {
    if !cluster.placements().any() {
        return delete_once::<M, DB>(cluster, key).await;
    }
    cluster
        .through_fence::<M, _, _, _>(|| delete_once::<M, DB>(cluster, key))
        .await
}

async fn delete_once<M: Model, DB: Backend>(
    cluster: &Cluster<DB>,
    key: &M::PrimaryKey,
) -> Result<bool> {
    let statement = stmt::delete::<M, DB>(key);
    // resharding: the placement is read under the model's gate, held for the whole operation
    // (a cutover waits for it).
    if let Some(state) = cluster.gated_placement::<M>().await {
        let migrating = fence::guards::<M, DB>(cluster, &state);
        // resharding: journal the key.
        placement::note_write::<M, DB>(cluster, &state.placement, || M::primary_key_values(key));
        let values = placement::pk_key_values::<M>(key);
        let targets =
            placement::write_targets::<M, DB>(cluster, &state.placement, &values, false).await?;
        let mut deleted = false;
        for (i, shard) in targets.all().enumerate() {
            let outcome = side::<M, DB>(cluster, shard, migrating, vec![copy(&statement)]).await;
            if i > 0 || targets.main.is_none() {
                other_side::<M>(outcome)?;
                continue;
            }
            let n = outcome?[0];
            if n > 0 {
                deleted = true;
                placement::note_rows(&state.placement, shard, -(n as i64));
            }
        }
        return Ok(deleted);
    }
    let n = exec::<M, DB>(cluster, M::try_shard_of_key(key)?, statement).await?;
    Ok(n > 0)
}

/// Finds the row with primary key `key` (a tuple in field order when composite), asking exactly
/// one shard.
///
/// # Errors
///
/// [`Error::UnknownShard`]; the shard's error; a decode error.
pub async fn find<M, DB>(cluster: &Cluster<DB>, key: M::PrimaryKey) -> Result<Option<M>>
where
    M: Model + FromShardRow<DB>,
    DB: Backend,
{
    if !cluster.placements().any() && M::DIRECTORY.is_none() {
        return find_once::<M, DB>(cluster, key).await;
    }
    cluster
        .through_fence::<M, _, _, _>(|| find_once::<M, DB>(cluster, key.clone()))
        .await
}

async fn find_once<M, DB>(cluster: &Cluster<DB>, key: M::PrimaryKey) -> Result<Option<M>>
where
    M: Model + FromShardRow<DB>,
    DB: Backend,
{
    // resharding: the placement is read under the model's gate, held for the whole operation.
    let placed = cluster.gated_placement::<M>().await;
    let (shard, statement) = match &placed {
        Some(state) => {
            let values = placement::pk_key_values::<M>(&key);
            let Some(shard) =
                placement::read_shard::<M, DB>(cluster, &state.placement, &values).await?
            else {
                // A directory knows no such key: no shard holds the row.
                return Ok(None);
            };
            let statement = if fence::guards::<M, DB>(cluster, state) {
                stmt::find_fenced::<M, DB>(&key)
            } else {
                find_statement::<M, DB>(&key).1
            };
            (shard, statement)
        }
        None => {
            M::try_shard_of_key(&key)?;
            find_statement::<M, DB>(&key)
        }
    };
    let row = fetch_optional::<M, DB>(cluster, shard, None, statement).await?;
    row.as_ref()
        .map(|row| {
            M::from_row(row).map_err(|source| Error::Shard {
                model: M::META.name,
                shard,
                source,
            })
        })
        .transpose()
}

/// Like [`find`], returning a [`Tracked`] record that remembers its original key.
///
/// # Errors
///
/// As [`find`].
pub async fn find_tracked<M, DB>(
    cluster: &Cluster<DB>,
    key: M::PrimaryKey,
) -> Result<Option<Tracked<M>>>
where
    M: Model + FromShardRow<DB>,
    DB: Backend,
{
    Ok(find::<M, DB>(cluster, key).await?.map(Tracked::new))
}

/// A loaded row that remembers the primary key it was loaded with.
///
/// Change its fields through `DerefMut`, then [`save`](Tracked::save): a change of the shard key
/// (or any primary-key column) is refused with [`Error::ShardKeyMutation`] and nothing is
/// written. To move a row to another key, delete it and insert it under the new key
/// ([`Tracked::delete`] then `insert`) — on one shard inside one transaction, across shards with
/// the distributed-transaction API.
#[derive(Debug, Clone)]
pub struct Tracked<M: Model> {
    row: M,
    original: M::PrimaryKey,
}

impl<M: Model> Tracked<M> {
    /// Starts tracking `row` as loaded.
    pub fn new(row: M) -> Self {
        let original = row.primary_key();
        Tracked { row, original }
    }

    /// The primary key the row was loaded with.
    pub fn original_key(&self) -> &M::PrimaryKey {
        &self.original
    }

    /// The row, no longer tracked.
    pub fn into_inner(self) -> M {
        self.row
    }

    /// Writes the changed row back.
    ///
    /// # Errors
    ///
    /// [`Error::ShardKeyMutation`] when a primary-key column changed (nothing written);
    /// otherwise as [`update`].
    pub async fn save<DB: Backend>(&mut self, cluster: &Cluster<DB>) -> Result<()> {
        let before = M::primary_key_values(&self.original);
        let now = M::primary_key_values(&self.row.primary_key());
        if before != now {
            let key_column = M::META.shard_key.unwrap_or(M::META.primary_key[0]);
            return Err(Error::ShardKeyMutation {
                model: M::META.name,
                key: M::META.columns[key_column].name,
                shard: M::shard_of_key(&self.original),
                from: describe_values(&before),
                to: describe_values(&now),
            });
        }
        update(cluster, &self.row).await
    }

    /// Deletes the row as it was loaded (by its original key). Returns whether a row was deleted.
    ///
    /// # Errors
    ///
    /// As [`delete_key`].
    pub async fn delete<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<bool> {
        delete_key::<M, DB>(cluster, &self.original).await
    }
}

impl<M: Model> Deref for Tracked<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.row
    }
}

impl<M: Model> DerefMut for Tracked<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.row
    }
}
