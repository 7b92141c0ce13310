//! Multi-shard transactions: lazily opened per-shard transactions, two-phase commit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use grant_core::{Backend, Error, FromShardRow, Model, Result, ShardId};
use sea_query::Value;
use sea_query_sqlx::SqlxValues;

use super::{LOG_TABLE, Open, describe_key, literal, no_two_phase, sqlstate};
use crate::cluster::Cluster;
use crate::query::Query;
use crate::stmt::Put;

/// Where a test stops the coordinator, to simulate a crash (feature `testing`).
///
/// The commit then returns [`Error::InDoubt`] without doing the rest, as if the process had
/// died there: the prepared transactions stay prepared until [`Cluster::recover`].
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Every participant prepared; no commit decision written.
    AfterPrepare,
    /// The commit decision written; no `COMMIT PREPARED` sent.
    AfterDecision,
    /// `COMMIT PREPARED` sent to the first participant only.
    AfterFirstCommit,
    /// `COMMIT PREPARED` of the first participant fails (not sent) while the others succeed:
    /// the commit returns [`Error::InDoubt`] and the background retry finishes it.
    FirstCommitFails,
}

/// An atomic transaction over any shards of the cluster: all of its writes apply, or none.
///
/// Opened by [`Cluster::begin`]; each shard's database transaction opens on the first statement
/// that needs that shard. Rows are routed by their keys as outside a transaction; reference
/// tables are written on every shard.
///
/// [`commit`](Transaction::commit) on one shard is a plain `COMMIT`; on several it is
/// two-phase commit (PostgreSQL), see [the module docs](crate::txn). Shards the transaction only
/// read (no write, no [`find_for_update`](Transaction::find_for_update)) take no part in it:
/// they commit plainly, so reading several shards and writing one costs no two-phase commit. On SQLite, the statement
/// that would reach a second shard is refused with [`Error::Unsupported`] (use a saga).
///
/// # Examples
///
/// ```ignore
/// let mut tx = cluster.begin().await?;
/// let mut from = tx.find_for_update::<Account>(1).await?.expect("account 1");
/// let mut to = tx.find_for_update::<Account>(2).await?.expect("account 2");
/// from.balance -= 10;
/// to.balance += 10;
/// tx.update(&from).await?;
/// tx.update(&to).await?;
/// tx.commit().await?; // PREPARE on both shards, decision, COMMIT PREPARED on both
/// ```
///
/// # Cancel safety
///
/// Dropped (or its `commit` future dropped) before the prepare, every shard rolls back. Dropped
/// during `commit` after the prepare, the prepared transactions stay until recovery resolves
/// them: committed if the decision was written, else rolled back after
/// [`TwoPhase::abandon_after`](super::TwoPhase::abandon_after).
pub struct Transaction<DB: Backend> {
    cluster: Cluster<DB>,
    txid: String,
    parts: Vec<Open<DB>>,
    /// The first model written, for messages.
    model: &'static str,
    /// Where a test stops the commit (settable with the `testing` feature only).
    failpoint: Option<Failpoint>,
}

impl<DB: Backend> fmt::Debug for Transaction<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("txid", &self.txid)
            .field(
                "shards",
                &self.parts.iter().map(|p| p.shard).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A transaction id unique across processes and time: microseconds since the epoch, process id,
/// per-process counter (hex; no `:`, which separates the gid's parts).
fn new_txid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{micros:x}-{:x}-{n:x}", std::process::id())
}

/// The gid of `txid`'s prepared transaction on `shard`: `grant:<txid>:<shard>`.
pub(crate) fn gid(txid: &str, shard: &str) -> String {
    format!("grant:{txid}:{shard}")
}

/// `(txid, shard)` of a Grant gid.
pub(crate) fn parse_gid(gid: &str) -> Option<(&str, &str)> {
    let rest = gid.strip_prefix("grant:")?;
    rest.split_once(':')
}

/// PostgreSQL's limit on a gid's length (GIDSIZE - 1).
const MAX_GID: usize = 199;

impl<DB: Backend> Cluster<DB> {
    /// Opens a transaction over any shards (see [`Transaction`]). Nothing is sent until the
    /// first statement — except, once per cluster on PostgreSQL, creating the coordinator log
    /// table `grant_2pc_log` if it is missing.
    ///
    /// # Errors
    ///
    /// The coordinator shard's error when the log table cannot be created.
    pub async fn begin(&self) -> Result<Transaction<DB>> {
        if DB::TWO_PHASE {
            // Before any shard's connection is held: a pool of one connection must not wait on
            // itself at commit.
            recover_ensure_log(self).await?;
        }
        Ok(Transaction {
            cluster: self.clone(),
            txid: new_txid(),
            parts: Vec::new(),
            model: "-",
            failpoint: None,
        })
    }

    /// Moves `row` to primary key `new_key` (possibly on another shard): deletes it under its
    /// key and inserts it, every other column unchanged, under `new_key` — in one transaction,
    /// two-phase across shards. Afterwards the row is on exactly one shard.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the row does not exist (nothing written); the new key's shard
    /// error (e.g. a duplicate key; nothing written); on SQLite across shards
    /// [`Error::Unsupported`]; as [`Transaction::commit`].
    pub async fn move_key<M: Model>(&self, row: &M, new_key: M::PrimaryKey) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.move_key(row, new_key).await?;
        tx.commit().await
    }
}

impl<DB: Backend> Transaction<DB> {
    /// The transaction id, part of every gid (`grant:<txid>:<shard>`).
    pub fn id(&self) -> &str {
        &self.txid
    }

    /// The shards opened so far, in the order they were opened.
    pub fn shards(&self) -> Vec<ShardId> {
        self.parts.iter().map(|p| p.shard).collect()
    }

    /// Stops the commit at `failpoint`, as if the process crashed there (tests only).
    #[cfg(feature = "testing")]
    pub fn fail_at(&mut self, failpoint: Failpoint) {
        self.failpoint = Some(failpoint);
    }

    fn stop_at(&self, point: Failpoint) -> bool {
        self.failpoint == Some(point)
    }

    /// The open transaction on the cluster shard at `index`, opened now if needed.
    async fn part(&mut self, model: &'static str, index: usize) -> Result<&mut Open<DB>> {
        if self.model == "-" {
            self.model = model;
        }
        if let Some(i) = self.parts.iter().position(|p| p.index == index) {
            return Ok(&mut self.parts[i]);
        }
        if !DB::TWO_PHASE && !self.parts.is_empty() {
            let mut shards = self.shards();
            shards.push(self.cluster.txn_shard_id(index));
            return Err(no_two_phase::<DB>(model, &shards));
        }
        let open = Open::begin(&self.cluster, model, index).await?;
        self.parts.push(open);
        Ok(self.parts.last_mut().expect("just pushed"))
    }

    async fn part_for<M: Model>(&mut self, shard: ShardId) -> Result<&mut Open<DB>> {
        let index = self.cluster.index_of::<M>(shard)?;
        self.part(M::META.name, index).await
    }

    /// Every cluster shard's position, for a reference-table write; refused up front on a
    /// backend without two-phase commit when there are several.
    fn everywhere<M: Model>(&self) -> Result<Vec<usize>> {
        let n = self.cluster.shard_names().count();
        if !DB::TWO_PHASE && n > 1 {
            let shards: Vec<ShardId> = (0..n).map(|i| self.cluster.txn_shard_id(i)).collect();
            return Err(Error::Unsupported {
                model: M::META.name,
                reason: format!(
                    "`{}` is a reference table: a write goes to every shard ({}), which cannot be \
                     atomic on {} (no two-phase commit). Use a single-shard SQLite cluster for \
                     reference data, PostgreSQL shards, or a saga",
                    M::META.name,
                    shards
                        .iter()
                        .map(ShardId::name)
                        .collect::<Vec<_>>()
                        .join(", "),
                    <DB as Backend>::NAME
                ),
            });
        }
        Ok((0..n).collect())
    }

    /// Inserts `row` on its shard (on every shard for a reference table).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`]; [`Error::Unsupported`] on SQLite for a second shard; the
    /// shard's error (the transaction should then be rolled back).
    pub async fn insert<M: Model>(&mut self, row: &M) -> Result<()> {
        self.put_many(&[row], Put::Insert).await.map(|_| ())
    }

    /// Inserts `rows`, each on its shard (every shard for a reference table); returns how many
    /// rows were inserted (counting each reference row once).
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn insert_many<M: Model>(&mut self, rows: &[M]) -> Result<u64> {
        self.put_many(&Put::Insert.rows(rows)?, Put::Insert).await
    }

    /// Inserts `row` on its shard (every shard for a reference table), or updates every other
    /// column of the row with its primary key where one exists (`ON CONFLICT DO UPDATE`).
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn upsert<M: Model>(&mut self, row: &M) -> Result<()> {
        self.put_many(&[row], Put::Upsert).await.map(|_| ())
    }

    /// [`upsert`](Transaction::upsert) of many rows, each on its shard (a primary key given
    /// twice: the last row); returns how many distinct rows were written (counting each
    /// reference row once).
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn upsert_many<M: Model>(&mut self, rows: &[M]) -> Result<u64> {
        self.put_many(&Put::Upsert.rows(rows)?, Put::Upsert).await
    }

    /// Writes `rows` as `kind` says, each on its shard; a reference table's on every shard,
    /// counted once (the rows one shard reports).
    async fn put_many<M: Model>(&mut self, rows: &[&M], kind: Put) -> Result<u64> {
        let cluster = self.cluster.clone();
        if M::REFERENCE {
            let mut n = 0;
            for index in self.everywhere::<M>()? {
                let open = self.part(M::META.name, index).await?;
                n = super::put_rows(&cluster, open, rows, kind).await?;
            }
            return Ok(n);
        }
        let mut groups: Vec<(ShardId, Vec<&M>)> = Vec::new();
        for &row in rows {
            let shard = cluster.txn_shard_of_row(row)?;
            match groups.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, group)) => group.push(row),
                None => groups.push((shard, vec![row])),
            }
        }
        let mut n = 0;
        for (shard, group) in groups {
            let open = self.part_for::<M>(shard).await?;
            n += super::put_rows(&cluster, open, &group, kind).await?;
        }
        Ok(n)
    }

    /// Updates every non-key column of the row with `row`'s primary key (on every shard for a
    /// reference table).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such row exists; as [`insert`](Transaction::insert).
    pub async fn update<M: Model>(&mut self, row: &M) -> Result<()> {
        let cluster = self.cluster.clone();
        if M::REFERENCE {
            for index in self.everywhere::<M>()? {
                let open = self.part(M::META.name, index).await?;
                super::update_row(&cluster, open, row).await?;
            }
            return Ok(());
        }
        let open = self
            .part_for::<M>(self.cluster.txn_shard_of_row(row)?)
            .await?;
        super::update_row(&cluster, open, row).await
    }

    /// Deletes the row with `row`'s primary key; returns whether one was deleted.
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn delete<M: Model>(&mut self, row: &M) -> Result<bool> {
        self.delete_key::<M>(&row.primary_key()).await
    }

    /// Deletes the row with primary key `key` (on every shard for a reference table); returns
    /// whether one was deleted (on any shard).
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn delete_key<M: Model>(&mut self, key: &M::PrimaryKey) -> Result<bool> {
        let cluster = self.cluster.clone();
        if M::REFERENCE {
            let mut any = false;
            for index in self.everywhere::<M>()? {
                let open = self.part(M::META.name, index).await?;
                any |= super::delete_key::<M, DB>(&cluster, open, key).await?;
            }
            return Ok(any);
        }
        let open = self
            .part_for::<M>(self.cluster.txn_shard_of_key::<M>(key)?)
            .await?;
        super::delete_key::<M, DB>(&cluster, open, key).await
    }

    /// The shard position reads of `M` go to: the key's shard; for a reference table a shard
    /// already open, else its read shard.
    fn read_index<M: Model>(&self, shard: ShardId) -> Result<usize> {
        if M::REFERENCE
            && let Some(open) = self.parts.first()
        {
            return Ok(open.index);
        }
        self.cluster.index_of::<M>(shard)
    }

    /// The row with primary key `key`, as this transaction sees it.
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn find<M: Model + FromShardRow<DB>>(
        &mut self,
        key: M::PrimaryKey,
    ) -> Result<Option<M>> {
        let index = self.read_index::<M>(self.cluster.txn_shard_of_key::<M>(&key)?)?;
        let cluster = self.cluster.clone();
        let open = self.part(M::META.name, index).await?;
        super::find_key(&cluster, open, &key, false).await
    }

    /// Like [`find`](Transaction::find), locking the row until the transaction ends (`SELECT
    /// ... FOR UPDATE` on PostgreSQL).
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn find_for_update<M: Model + FromShardRow<DB>>(
        &mut self,
        key: M::PrimaryKey,
    ) -> Result<Option<M>> {
        let index = self.read_index::<M>(self.cluster.txn_shard_of_key::<M>(&key)?)?;
        let cluster = self.cluster.clone();
        let open = self.part(M::META.name, index).await?;
        super::find_key(&cluster, open, &key, true).await
    }

    /// All rows of `query`. A query visiting several shards runs on each (opening them) and is
    /// concatenated, so it may not order, page or use a cursor.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for an ordered or paged query over several shards (nothing run);
    /// as [`insert`](Transaction::insert).
    pub async fn all<M: Model + FromShardRow<DB>>(&mut self, query: Query<M>) -> Result<Vec<M>> {
        let legs = self.legs(&query).await?;
        let single = legs.len() == 1;
        if !single && (!query.order.is_empty() || query.limit.is_some() || query.offset.is_some()) {
            return Err(Error::Unsupported {
                model: M::META.name,
                reason: "inside a transaction, a query over several shards cannot order or page \
                         (its rows are concatenated); filter by the shard key, or order the \
                         rows after reading them"
                    .into(),
            });
        }
        let cluster = self.cluster.clone();
        let mut rows = Vec::new();
        for (index, filter) in legs {
            let open = self.part(M::META.name, index).await?;
            rows.extend(super::query_rows(&cluster, open, &query, filter.as_ref(), single).await?);
        }
        Ok(rows)
    }

    /// How many rows match `query`, summed over the shards it visits.
    ///
    /// # Errors
    ///
    /// As [`insert`](Transaction::insert).
    pub async fn count<M: Model>(&mut self, query: Query<M>) -> Result<u64> {
        let legs = self.legs(&query).await?;
        let cluster = self.cluster.clone();
        let mut n = 0;
        for (index, filter) in legs {
            let open = self.part(M::META.name, index).await?;
            n += super::query_count::<M, DB>(&cluster, open, filter.as_ref()).await?;
        }
        Ok(n)
    }

    async fn legs<M: Model>(
        &self,
        query: &Query<M>,
    ) -> Result<Vec<(usize, Option<grant_core::Node>)>> {
        query
            .planned_legs(&self.cluster, DB::NULLS_FIRST_IN_ASC)
            .await?
            .into_iter()
            .map(|(shard, filter)| Ok((self.read_index::<M>(shard)?, filter)))
            .collect()
    }

    /// Moves `row` to primary key `new_key`: delete under the old key, insert under the new one
    /// (see [`Cluster::move_key`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the row does not exist; as [`insert`](Transaction::insert).
    pub async fn move_key<M: Model>(&mut self, row: &M, new_key: M::PrimaryKey) -> Result<()> {
        if M::REFERENCE {
            return Err(Error::Unsupported {
                model: M::META.name,
                reason: "a reference table lives on every shard; change its key by delete + \
                         insert"
                    .into(),
            });
        }
        let old_key = row.primary_key();
        let from = self.cluster.txn_shard_of_key::<M>(&old_key)?;
        let to = self.cluster.txn_shard_of_key::<M>(&new_key)?;
        let mut values = row.values();
        for (&column, value) in M::META
            .primary_key
            .iter()
            .zip(M::primary_key_values(&new_key))
        {
            values[column] = value;
        }
        let cluster = self.cluster.clone();
        let open = self.part_for::<M>(from).await?;
        if !super::delete_key::<M, DB>(&cluster, open, &old_key).await? {
            return Err(crate::crud::not_found::<M>(from, &old_key));
        }
        let open = self.part_for::<M>(to).await?;
        super::insert_values::<M, DB>(&cluster, open, values).await?;
        tracing::debug!(
            model = M::META.name,
            from = %from,
            to = %to,
            key = %describe_key::<M>(&new_key),
            "row moved"
        );
        Ok(())
    }

    /// Rolls back every shard's transaction.
    ///
    /// # Errors
    ///
    /// The first shard's error (every shard is still rolled back: a failed connection is closed,
    /// which rolls back too).
    pub async fn rollback(self) -> Result<()> {
        let mut first = Ok(());
        let model = self.model;
        let cluster = self.cluster.clone();
        for open in self.into_parts() {
            let outcome = open.rollback(&cluster, model).await;
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }

    fn into_parts(self) -> Vec<Open<DB>> {
        self.parts
    }

    /// Commits: a plain `COMMIT` on one shard; two-phase commit over several (see the module
    /// docs of [`crate::txn`]).
    ///
    /// # Errors
    ///
    /// * A shard's error from `PREPARE` (or a statement): every shard rolled back, nothing
    ///   applied.
    /// * [`Error::Timeout`] when recovery had already rolled the prepared transaction back
    ///   (older than `abandon_after`): nothing applied.
    /// * [`Error::InDoubt`] naming the gid when phase two could not finish now. If the detail
    ///   says the decision is durable, the transaction **is** committed and a background task
    ///   (and [`Cluster::recover`]) applies it everywhere; if the decision could not be written
    ///   or read back, the background task settles it (committed if the decision landed, else
    ///   rolled back).
    ///
    /// # Cancel safety
    ///
    /// See [`Transaction`].
    pub async fn commit(mut self) -> Result<()> {
        // Shards that only read (no write, no row lock) need no atomic commit: end them plainly
        // and leave two-phase commit to the writers, if there are still several.
        if self.parts.len() > 1 && self.parts.iter().any(|p| !p.wrote) {
            let (writers, readers): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parts)
                .into_iter()
                .partition(|p| p.wrote);
            for reader in readers {
                // A failed COMMIT of a read-only transaction loses nothing (its connection is
                // closed, which ends it).
                let _ = reader.commit(&self.cluster, self.model).await;
            }
            self.parts = writers;
        }
        match self.parts.len() {
            0 => Ok(()),
            1 => {
                let model = self.model;
                let cluster = self.cluster.clone();
                let open = self.parts.pop().expect("one part");
                open.commit(&cluster, model).await
            }
            _ => self.two_phase().await,
        }
    }

    async fn two_phase(mut self) -> Result<()> {
        let cluster = self.cluster.clone();
        let model = self.model;
        let txid = self.txid.clone();
        let participants: Vec<String> = self.parts.iter().map(|p| p.shard.name()).collect();
        let participants = participants.join(",");
        // The log table must exist before anything is prepared: a failure here rolls back.
        let coordinator = match recover_ensure_log(&cluster)
            .await
            .and(cluster.coordinator())
        {
            Ok(index) => index,
            Err(e) => {
                let _ = self.rollback().await;
                return Err(e);
            }
        };
        // When the coordinator shard takes part, its own transaction carries the decision row
        // and its plain COMMIT is the decision (no PREPARE there, one write less); the other
        // shards prepare.
        let mut local = self
            .parts
            .iter()
            .position(|p| p.index == coordinator)
            .map(|i| self.parts.remove(i));
        let was_local = local.is_some();
        let gids: Vec<String> = self
            .parts
            .iter()
            .map(|p| gid(&txid, &p.shard.name()))
            .collect();
        if let Some(long) = gids.iter().find(|g| g.len() > MAX_GID) {
            let error = Error::Config(format!(
                "two-phase gid `{long}` is longer than PostgreSQL's {MAX_GID} bytes; use shorter \
                 shard names; the transaction was rolled back"
            ));
            if let Some(open) = local.take() {
                let _ = open.rollback(&cluster, model).await;
            }
            let _ = self.rollback().await;
            return Err(error);
        }

        // Phase one: PREPARE on the other shards, in parallel, while the coordinator shard's
        // transaction records the decision.
        let record = async {
            match local.as_mut() {
                Some(open) => Some(
                    open.execute(
                        &cluster,
                        model,
                        decision_statement(&txid, "commit", &participants),
                    )
                    .await,
                ),
                None => None,
            }
        };
        let prepares = join_all(self.parts.iter_mut().zip(&gids).map(|(open, gid)| {
            let cluster = &cluster;
            async move {
                let sql = format!("PREPARE TRANSACTION {}", literal(gid));
                let outcome = open.raw(cluster, model, sql).await;
                if outcome.is_ok() {
                    open.left_transaction();
                }
                outcome
            }
        }));
        let (recorded, prepared) = tokio::join!(record, prepares);
        let failure = prepared
            .into_iter()
            .find_map(Result::err)
            .or(match recorded {
                Some(Err(e)) => Some(e),
                Some(Ok(0)) => Some(abandoned(&cluster, model, &participants)),
                _ => None,
            });
        if let Some(error) = failure {
            // The local transaction (and its decision row) goes first, so the abort can be
            // recorded.
            if let Some(open) = local.take() {
                let _ = open.rollback(&cluster, model).await;
            }
            self.abort_prepared(&gids).await;
            return Err(error);
        }
        if self.stop_at(Failpoint::AfterPrepare) {
            return Err(failpoint_error(&gids[0], "after prepare"));
        }

        // The decision, durable before any COMMIT PREPARED. The log's primary key settles a race
        // with recovery: whoever records first decides.
        match local.take() {
            Some(open) => match open.commit(&cluster, model).await {
                Ok(()) => {}
                Err(Error::InDoubt { detail, .. }) => {
                    super::recover::spawn_retry(cluster.clone(), Some(txid.clone()));
                    return Err(Error::InDoubt {
                        gid: gids[0].clone(),
                        detail: format!(
                            "every shard prepared, but the coordinator shard's COMMIT, which \
                             records the decision, failed: {detail}; a background task settles \
                             it (committed if the decision landed, else rolled back), as does \
                             `cluster.recover()`"
                        ),
                    });
                }
                Err(e) => {
                    self.abort_prepared(&gids).await;
                    return Err(e);
                }
            },
            None => match decide(&cluster, &txid, "commit", &participants).await {
                Ok(Decision::Commit) => {}
                Ok(Decision::Abort) => {
                    self.abort_prepared(&gids).await;
                    return Err(abandoned(&cluster, model, &participants));
                }
                Err(e) => {
                    super::recover::spawn_retry(cluster.clone(), Some(txid.clone()));
                    return Err(Error::InDoubt {
                        gid: gids[0].clone(),
                        detail: format!(
                            "every shard prepared, but the commit decision could not be written \
                             to `{LOG_TABLE}` ({e}); a background task settles it (committed if \
                             the decision landed, else rolled back), as does `cluster.recover()`"
                        ),
                    });
                }
            },
        }
        // With a local coordinator its COMMIT was the first commit.
        if self.stop_at(Failpoint::AfterDecision)
            || (was_local && self.stop_at(Failpoint::AfterFirstCommit))
        {
            return Err(failpoint_error(&gids[0], "after the commit decision"));
        }

        // Phase two.
        let only_first = self.stop_at(Failpoint::AfterFirstCommit);
        let take = if only_first { 1 } else { self.parts.len() };
        let skip_first = self.stop_at(Failpoint::FirstCommitFails);
        let committed = join_all(self.parts.iter_mut().zip(&gids).take(take).enumerate().map(
            |(i, (open, gid))| {
                let cluster = &cluster;
                async move {
                    if skip_first && i == 0 {
                        return Err(Error::ShardUnavailable {
                            model,
                            shard: open.shard,
                            source: sqlx::Error::Protocol("test failpoint: COMMIT PREPARED".into()),
                        });
                    }
                    commit_prepared(cluster, open, gid).await
                }
            },
        ))
        .await;
        if only_first {
            return Err(failpoint_error(&gids[1], "after the first COMMIT PREPARED"));
        }
        let failed: Vec<(usize, Error)> = committed
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.err().map(|e| (i, e)))
            .collect();
        if let Some((i, error)) = failed.into_iter().next() {
            super::recover::spawn_retry(cluster.clone(), Some(txid.clone()));
            return Err(Error::InDoubt {
                gid: gids[i].clone(),
                detail: format!(
                    "the transaction is committed (the decision is durable in `{LOG_TABLE}`), \
                     but COMMIT PREPARED failed on shard `{}`: {error}; a background task \
                     retries it, as does `cluster.recover()`",
                    self.parts[i].shard
                ),
            });
        }
        // Mark done off the critical path; recovery marks what this misses.
        let done_cluster = cluster.clone();
        tokio::spawn(async move {
            let _ = mark_done(&done_cluster, &txid).await;
        });
        Ok(())
    }

    /// After a failed prepare: write the abort decision (so recovery rolls back whatever this
    /// misses) and roll back every prepared transaction, or close the connection of a shard
    /// whose prepare failed.
    async fn abort_prepared(&mut self, gids: &[String]) {
        let cluster = self.cluster.clone();
        let participants: Vec<String> = self.parts.iter().map(|p| p.shard.name()).collect();
        let _ = decide(&cluster, &self.txid, "abort", &participants.join(",")).await;
        let model = self.model;
        join_all(self.parts.iter_mut().zip(gids).map(|(open, gid)| {
            let cluster = &cluster;
            async move {
                if open.in_transaction() {
                    // Its PREPARE failed: PostgreSQL rolled it back, or the connection is gone.
                    // A prepare whose answer was lost may have prepared: roll that back too.
                    let _ = rollback_prepared_fresh(cluster, open.index, gid).await;
                    return;
                }
                let sql = format!("ROLLBACK PREPARED {}", literal(gid));
                if open.raw(cluster, model, sql).await.is_err() {
                    let _ = rollback_prepared_fresh(cluster, open.index, gid).await;
                }
            }
        }))
        .await;
    }
}

fn failpoint_error(gid: &str, at: &str) -> Error {
    Error::InDoubt {
        gid: gid.to_owned(),
        detail: format!(
            "the coordinator stopped {at} (test failpoint); `cluster.recover()` resolves it"
        ),
    }
}

/// `COMMIT PREPARED` on a participant's connection, or a fresh one if that fails; a gid that no
/// longer exists was committed by someone else (recovery) — success.
async fn commit_prepared<DB: Backend>(
    cluster: &Cluster<DB>,
    open: &mut Open<DB>,
    gid: &str,
) -> Result<()> {
    let sql = format!("COMMIT PREPARED {}", literal(gid));
    match open.raw(cluster, "-", sql.clone()).await {
        Ok(()) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(_) => {
            let mut fresh = Open::idle(cluster, open.index).await?;
            match fresh.raw(cluster, "-", sql).await {
                Err(e) if !is_missing(&e) => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// `ROLLBACK PREPARED` on a fresh connection; a missing gid is success.
pub(crate) async fn rollback_prepared_fresh<DB: Backend>(
    cluster: &Cluster<DB>,
    index: usize,
    gid: &str,
) -> Result<()> {
    let mut fresh = Open::idle(cluster, index).await?;
    match fresh
        .raw(cluster, "-", format!("ROLLBACK PREPARED {}", literal(gid)))
        .await
    {
        Err(e) if !is_missing(&e) => Err(e),
        _ => Ok(()),
    }
}

/// "prepared transaction with identifier ... does not exist" (SQLSTATE 42704).
pub(crate) fn is_missing(error: &Error) -> bool {
    sqlstate(error).as_deref() == Some("42704")
}

/// A commit decision as recorded in the coordinator log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Commit,
    Abort,
}

/// The error of a transaction recovery rolled back before its coordinator could decide.
fn abandoned<DB: Backend>(cluster: &Cluster<DB>, model: &'static str, participants: &str) -> Error {
    let after = cluster.txn().config.abandon_after;
    Error::Timeout {
        model,
        shards: format!(
            "{participants} (prepared longer than the abandon timeout, {after:?}; recovery rolled \
             the transaction back, nothing was applied)"
        ),
        millis: after.as_millis(),
    }
}

/// The statement recording `decision` for `txid`, unless one is recorded already.
fn decision_statement(txid: &str, decision: &str, participants: &str) -> (String, SqlxValues) {
    let insert = format!(
        "INSERT INTO {LOG_TABLE} (txid, decision, participants) VALUES ($1, $2, $3) \
         ON CONFLICT (txid) DO NOTHING"
    );
    let values = SqlxValues(sea_query::Values(vec![
        Value::from(txid),
        Value::from(decision),
        Value::from(participants),
    ]));
    (insert, values)
}

/// Records `decision` for `txid` unless one is recorded already; returns the recorded one.
pub(crate) async fn decide<DB: Backend>(
    cluster: &Cluster<DB>,
    txid: &str,
    decision: &str,
    participants: &str,
) -> Result<Decision> {
    let index = cluster.coordinator()?;
    let mut conn = Open::idle(cluster, index).await?;
    let n = conn
        .execute(
            cluster,
            "-",
            decision_statement(txid, decision, participants),
        )
        .await?;
    if n == 1 {
        return Ok(if decision == "commit" {
            Decision::Commit
        } else {
            Decision::Abort
        });
    }
    read_decision(cluster, &mut conn, txid)
        .await?
        .ok_or_else(|| Error::InDoubt {
            gid: gid(txid, "*"),
            detail: format!("no decision in `{LOG_TABLE}` after inserting one"),
        })
}

/// The decision recorded for `txid`, if any.
pub(crate) async fn read_decision<DB: Backend>(
    cluster: &Cluster<DB>,
    conn: &mut Open<DB>,
    txid: &str,
) -> Result<Option<Decision>> {
    let select = format!("SELECT decision FROM {LOG_TABLE} WHERE txid = $1");
    let values = SqlxValues(sea_query::Values(vec![Value::from(txid)]));
    let rows = conn.fetch(cluster, "-", (select, values)).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let decision = DB::get_string(row, 0).map_err(|e| Error::on_shard("-", conn.shard, e))?;
    Ok(Some(if decision.as_deref() == Some("commit") {
        Decision::Commit
    } else {
        Decision::Abort
    }))
}

/// Marks `txid` finished in the coordinator log.
pub(crate) async fn mark_done<DB: Backend>(cluster: &Cluster<DB>, txid: &str) -> Result<()> {
    let index = cluster.coordinator()?;
    let mut conn = Open::idle(cluster, index).await?;
    let update = format!("UPDATE {LOG_TABLE} SET done = TRUE WHERE txid = $1");
    let values = SqlxValues(sea_query::Values(vec![Value::from(txid)]));
    conn.execute(cluster, "-", (update, values)).await?;
    Ok(())
}

/// Creates the coordinator log table once per cluster (idempotent).
pub(crate) async fn recover_ensure_log<DB: Backend>(cluster: &Cluster<DB>) -> Result<()> {
    cluster
        .txn()
        .log_ready
        .get_or_try_init(|| async {
            let index = cluster.coordinator()?;
            let mut conn = Open::idle(cluster, index).await?;
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {LOG_TABLE} (\
                 txid TEXT PRIMARY KEY, \
                 decision TEXT NOT NULL CHECK (decision IN ('commit', 'abort')), \
                 participants TEXT NOT NULL, \
                 decided_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
                 done BOOLEAN NOT NULL DEFAULT FALSE)"
            );
            match conn.raw(cluster, "-", create).await {
                Ok(()) => Ok(()),
                // Two processes creating it at once: one loses on the catalog's unique index.
                Err(e) if sqlstate(&e).as_deref() == Some("23505") => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
        .map(|_| ())
}
