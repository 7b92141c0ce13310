//! Single-shard transactions routed by key.

use std::fmt;

use grant_core::{Backend, Error, FromShardRow, Model, Result, ShardId, ShardKey, Sharded};

use super::{Open, TxFuture, describe_filter, describe_key, wrong_shard};
use crate::cluster::Cluster;
use crate::query::Query;
use crate::stmt::Put;

/// A database transaction on one shard: every statement runs there, or is refused.
///
/// Opened by [`Cluster::begin_for`] (the shard of a key), [`Cluster::begin_on`] (a shard by id)
/// or [`Cluster::transaction_for`] (with a closure). End it with [`commit`](ShardTx::commit) or
/// [`rollback`](ShardTx::rollback); dropped without either, it rolls back.
///
/// A statement addressing rows of another shard — a row whose key lives elsewhere, a query
/// whose filter routes elsewhere or to several shards — is refused with [`Error::WrongShard`]
/// (or [`Error::Unsupported`] for a query visiting several shards) and never runs anywhere.
/// Reference tables (`#[grant(reference)]`) are read from this shard; writing them needs every
/// shard, so it is refused here (use [`Cluster::begin`]).
///
/// # Examples
///
/// ```ignore
/// let mut tx = cluster.begin_for::<User>(&7).await?;
/// let mut ada = tx.find_for_update::<User>(7).await?.expect("user 7");
/// ada.balance += 10;
/// tx.update(&ada).await?;
/// tx.commit().await?;
/// ```
///
/// # Cancel safety
///
/// Dropping a statement's future leaves the transaction in an unknown state; dropping the
/// `ShardTx` then closes its connection and the shard rolls the transaction back.
pub struct ShardTx<DB: Backend> {
    cluster: Cluster<DB>,
    open: Open<DB>,
    /// The model and key the transaction was opened for (messages).
    model: &'static str,
    key: String,
}

impl<DB: Backend> fmt::Debug for ShardTx<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardTx")
            .field("shard", &self.open.shard)
            .field("model", &self.model)
            .field("key", &self.key)
            .finish()
    }
}

impl<DB: Backend> Cluster<DB> {
    /// Opens a transaction on the shard holding shard key `key` of model `M`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] (a key no shard holds, a shard the cluster lacks); the shard's
    /// error or [`Error::Timeout`] when no connection can be had.
    pub async fn begin_for<M: Sharded>(&self, key: &M::ShardKey) -> Result<ShardTx<DB>> {
        let shard = {
            struct Parts(Vec<grant_core::key::OwnedKeyPart>);
            impl grant_core::KeyVisitor for Parts {
                fn part(&mut self, part: grant_core::KeyPart<'_>) {
                    self.0.push(part.into());
                }
            }
            let mut parts = Parts(Vec::new());
            key.visit(&mut parts);
            let parts: Vec<grant_core::KeyPart<'_>> = parts
                .0
                .iter()
                .map(grant_core::key::OwnedKeyPart::as_part)
                .collect();
            self.txn_route::<M>(&parts, || M::try_shard_for(key))?
        };
        let index = self.index_of::<M>(shard)?;
        Ok(ShardTx {
            cluster: self.clone(),
            open: Open::begin(self, M::META.name, index).await?,
            model: M::META.name,
            key: key.describe(),
        })
    }

    /// Opens a transaction on the cluster shard `shard` (a model's [`ShardId`], matched by
    /// name, or one from [`Cluster::shard_id`]).
    ///
    /// # Errors
    ///
    /// As [`Cluster::begin_for`].
    pub async fn begin_on(&self, shard: ShardId) -> Result<ShardTx<DB>> {
        let index = self.shard_index("-", shard)?;
        Ok(ShardTx {
            cluster: self.clone(),
            open: Open::begin(self, "-", index).await?,
            model: "-",
            key: format!("(shard {shard})"),
        })
    }

    /// Runs `work` in a transaction on the shard holding shard key `key` of `M`: committed when
    /// `work` returns `Ok`, rolled back when it returns `Err` (that error is returned).
    ///
    /// The closure gets the transaction and returns a boxed future borrowing it
    /// ([`TxFuture`]); move what it needs into it (`move |tx| Box::pin(async move { .. })`), or
    /// use [`begin_for`](Cluster::begin_for) when it must borrow from the caller.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let balance = cluster
    ///     .transaction_for::<User, _, _>(&7, |tx| Box::pin(async move {
    ///         let mut u = tx.find_for_update::<User>(7).await?.expect("user 7");
    ///         u.balance -= 5;
    ///         tx.update(&u).await?;
    ///         Ok(u.balance)
    ///     }))
    ///     .await?;
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Cluster::begin_for`]; the closure's error; the commit's error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future rolls the transaction back (its connection is closed).
    pub async fn transaction_for<M, F, T>(&self, key: &M::ShardKey, work: F) -> Result<T>
    where
        M: Sharded,
        F: for<'t> FnOnce(&'t mut ShardTx<DB>) -> TxFuture<'t, T>,
    {
        let mut tx = self.begin_for::<M>(key).await?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(error) => {
                // The work's error is the one to report; a failed rollback closes the connection.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }
}

impl<DB: Backend> ShardTx<DB> {
    /// The shard this transaction runs on (the cluster's id, named like the shard).
    pub fn shard(&self) -> ShardId {
        self.open.shard
    }

    /// The cluster the transaction belongs to.
    pub fn cluster(&self) -> &Cluster<DB> {
        &self.cluster
    }

    /// Refuses rows of `M` on `shard` unless it is this transaction's shard.
    fn check<M: Model>(&self, shard: ShardId, key: impl FnOnce() -> String) -> Result<()> {
        if M::REFERENCE {
            return Err(self.reference_write::<M>());
        }
        if self.cluster.index_of::<M>(shard)? != self.open.index {
            return Err(wrong_shard::<M>(key(), shard, self.open.shard));
        }
        Ok(())
    }

    fn reference_write<M: Model>(&self) -> Error {
        Error::Unsupported {
            model: M::META.name,
            reason: format!(
                "`{}` is a reference table, identical on every shard; a transaction on shard `{}` \
                 cannot write it everywhere. Write it in a multi-shard transaction \
                 (`cluster.begin()`) or with `{}::insert/update/delete`",
                M::META.name,
                self.open.shard,
                M::META.name
            ),
        }
    }

    /// Inserts `row`, which must live on this shard.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`] for a row of another shard (nothing run); the shard's error (e.g. a
    /// duplicate key; the transaction is then aborted on PostgreSQL: roll it back).
    pub async fn insert<M: Model>(&mut self, row: &M) -> Result<()> {
        self.check::<M>(self.cluster.txn_shard_of_row(row)?, || {
            describe_key::<M>(&row.primary_key())
        })?;
        super::put_rows(&self.cluster, &mut self.open, &[row], Put::Insert).await?;
        Ok(())
    }

    /// Inserts `rows`, which must all live on this shard; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`] naming the first row of another shard (nothing run); the shard's
    /// error.
    pub async fn insert_many<M: Model>(&mut self, rows: &[M]) -> Result<u64> {
        for row in rows {
            self.check::<M>(self.cluster.txn_shard_of_row(row)?, || {
                describe_key::<M>(&row.primary_key())
            })?;
        }
        let rows = Put::Insert.rows(rows)?;
        super::put_rows(&self.cluster, &mut self.open, &rows, Put::Insert).await
    }

    /// Inserts `row`, which must live on this shard, or updates every other column of the row
    /// with its primary key where one exists (`ON CONFLICT DO UPDATE`).
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`] (nothing run); the shard's error.
    pub async fn upsert<M: Model>(&mut self, row: &M) -> Result<()> {
        self.upsert_many(std::slice::from_ref(row))
            .await
            .map(|_| ())
    }

    /// [`upsert`](ShardTx::upsert) of many rows, which must all live on this shard (a primary
    /// key given twice: the last row); returns how many distinct rows were written.
    ///
    /// # Errors
    ///
    /// As [`insert_many`](ShardTx::insert_many).
    pub async fn upsert_many<M: Model>(&mut self, rows: &[M]) -> Result<u64> {
        for row in rows {
            self.check::<M>(self.cluster.txn_shard_of_row(row)?, || {
                describe_key::<M>(&row.primary_key())
            })?;
        }
        let rows = Put::Upsert.rows(rows)?;
        super::put_rows(&self.cluster, &mut self.open, &rows, Put::Upsert).await
    }

    /// Updates every non-key column of the row with `row`'s primary key.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`]; [`Error::NotFound`] when no such row exists; the shard's error.
    pub async fn update<M: Model>(&mut self, row: &M) -> Result<()> {
        self.check::<M>(self.cluster.txn_shard_of_row(row)?, || {
            describe_key::<M>(&row.primary_key())
        })?;
        super::update_row(&self.cluster, &mut self.open, row).await
    }

    /// Deletes the row with `row`'s primary key; returns whether one was deleted.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`]; the shard's error.
    pub async fn delete<M: Model>(&mut self, row: &M) -> Result<bool> {
        self.delete_key::<M>(&row.primary_key()).await
    }

    /// Deletes the row with primary key `key`; returns whether one was deleted.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`]; the shard's error.
    pub async fn delete_key<M: Model>(&mut self, key: &M::PrimaryKey) -> Result<bool> {
        self.check::<M>(self.cluster.txn_shard_of_key::<M>(key)?, || {
            describe_key::<M>(key)
        })?;
        super::delete_key::<M, DB>(&self.cluster, &mut self.open, key).await
    }

    /// The row with primary key `key`, as this transaction sees it.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`] for a key of another shard; the shard's error.
    pub async fn find<M: Model + FromShardRow<DB>>(
        &mut self,
        key: M::PrimaryKey,
    ) -> Result<Option<M>> {
        self.read_check::<M>(&key)?;
        super::find_key(&self.cluster, &mut self.open, &key, false).await
    }

    /// Like [`find`](ShardTx::find), locking the row until the transaction ends (`SELECT ...
    /// FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already excludes other writers), so
    /// a read-modify-write loses no concurrent update.
    ///
    /// # Errors
    ///
    /// As [`find`](ShardTx::find).
    pub async fn find_for_update<M: Model + FromShardRow<DB>>(
        &mut self,
        key: M::PrimaryKey,
    ) -> Result<Option<M>> {
        self.read_check::<M>(&key)?;
        super::find_key(&self.cluster, &mut self.open, &key, true).await
    }

    fn read_check<M: Model>(&self, key: &M::PrimaryKey) -> Result<()> {
        if M::REFERENCE {
            return Ok(()); // every shard holds the rows: read them here
        }
        let shard = self.cluster.txn_shard_of_key::<M>(key)?;
        if self.cluster.index_of::<M>(shard)? != self.open.index {
            return Err(wrong_shard::<M>(
                describe_key::<M>(key),
                shard,
                self.open.shard,
            ));
        }
        Ok(())
    }

    /// The filter of `query` for this shard, or the refusal when it routes elsewhere.
    async fn route<M: Model>(&self, query: &Query<M>) -> Result<Option<grant_core::Node>> {
        let legs = query
            .planned_legs(&self.cluster, DB::NULLS_FIRST_IN_ASC)
            .await?;
        if M::REFERENCE {
            return Ok(legs.into_iter().next().and_then(|(_, filter)| filter));
        }
        match legs.as_slice() {
            [] => Ok(Some(grant_core::Node::Const(false))),
            [(shard, filter)] => {
                if self.cluster.index_of::<M>(*shard)? == self.open.index {
                    Ok(filter.clone())
                } else {
                    Err(wrong_shard::<M>(
                        describe_filter(query.filter.as_ref()),
                        *shard,
                        self.open.shard,
                    ))
                }
            }
            many => {
                let names: Vec<String> = many.iter().map(|(s, _)| s.name()).collect();
                Err(Error::Unsupported {
                    model: M::META.name,
                    reason: format!(
                        "the query visits shards {}, but this transaction runs on shard `{}` \
                         only; nothing was run. Filter by the shard key, or query this shard \
                         explicitly with `{}::on_shard(tx.shard())`",
                        names.join(", "),
                        self.open.shard,
                        M::META.name
                    ),
                })
            }
        }
    }

    /// All rows of `query`, which must route to this shard (by its shard-key filter or
    /// `M::on_shard(tx.shard())`); order, keyset cursor and page apply as usual.
    ///
    /// # Errors
    ///
    /// [`Error::WrongShard`] for a query routed to another shard, [`Error::Unsupported`] for one
    /// visiting several (nothing run); the shard's error.
    pub async fn all<M: Model + FromShardRow<DB>>(&mut self, query: Query<M>) -> Result<Vec<M>> {
        let filter = self.route(&query).await?;
        super::query_rows(&self.cluster, &mut self.open, &query, filter.as_ref(), true).await
    }

    /// The first row of `query` (in its order), if any.
    ///
    /// # Errors
    ///
    /// As [`all`](ShardTx::all).
    pub async fn one<M: Model + FromShardRow<DB>>(&mut self, query: Query<M>) -> Result<Option<M>> {
        Ok(self.all(query.limit(1)).await?.pop())
    }

    /// How many rows match `query` (its filter; order and page are ignored).
    ///
    /// # Errors
    ///
    /// As [`all`](ShardTx::all).
    pub async fn count<M: Model>(&mut self, query: Query<M>) -> Result<u64> {
        let filter = self.route(&query).await?;
        super::query_count::<M, DB>(&self.cluster, &mut self.open, filter.as_ref()).await
    }

    /// Runs raw SQL (no parameters) inside the transaction; returns the rows affected. An
    /// escape hatch: Grant cannot check which shard's rows it touches.
    ///
    /// # Errors
    ///
    /// The shard's error.
    pub async fn execute_raw(&mut self, sql: &str) -> Result<u64> {
        let statement = (
            sql.to_owned(),
            sea_query_sqlx::SqlxValues(sea_query::Values(Vec::new())),
        );
        self.open
            .execute(&self.cluster, self.model, statement)
            .await
    }

    /// Commits.
    ///
    /// # Errors
    ///
    /// The shard's error (nothing applied), or [`Error::InDoubt`] when the connection failed
    /// during `COMMIT` and the outcome is unknown.
    pub async fn commit(self) -> Result<()> {
        let ShardTx {
            cluster,
            open,
            model,
            ..
        } = self;
        open.commit(&cluster, model).await
    }

    /// Rolls back.
    ///
    /// # Errors
    ///
    /// The shard's error (the connection is then closed, which rolls back too).
    pub async fn rollback(self) -> Result<()> {
        let ShardTx {
            cluster,
            open,
            model,
            ..
        } = self;
        open.rollback(&cluster, model).await
    }
}
