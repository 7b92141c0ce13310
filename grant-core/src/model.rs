//! The traits the derives implement.

use std::fmt::Debug;

use sea_query::{ColumnType, Value};

use crate::backend::Backend;
use crate::error::Result;
use crate::key::ShardKey;
use crate::shard::ShardId;

/// What Grant knows about one column of a model.
#[derive(Debug, Clone, Copy)]
pub struct ColumnMeta {
    /// The SQL column name.
    pub name: &'static str,
    /// The Rust field name.
    pub field: &'static str,
    /// Whether the column is part of the primary key.
    pub primary_key: bool,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// The column's SQL type.
    pub column_type: fn() -> ColumnType,
}

/// What Grant knows about a model: names, columns, keys.
#[derive(Debug, Clone, Copy)]
pub struct ModelMeta {
    /// The Rust struct name, used in error messages.
    pub name: &'static str,
    /// The SQL table name.
    pub table: &'static str,
    /// Every column, in field order.
    pub columns: &'static [ColumnMeta],
    /// Positions of the primary-key columns in `columns`, in field order.
    pub primary_key: &'static [usize],
    /// Position of the shard-key column, or `None` for an unsharded model.
    pub shard_key: Option<usize>,
}

impl ModelMeta {
    /// The SQL names of all columns, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|c| c.name)
    }

    /// The SQL name of the shard-key column (or `"-"` for an unsharded model).
    pub fn shard_key_name(&self) -> &'static str {
        self.shard_key.map_or("-", |i| self.columns[i].name)
    }
}

/// A table row type: implemented by `#[derive(Sharded)]` and `#[derive(Model)]`.
///
/// The placement functions (`shards`, `shard_of_key`, ...) tell the router where rows live; an
/// unsharded model lives on exactly one shard.
pub trait Model: Sized + Send + Sync + Unpin + 'static {
    /// The primary key: the field's type, or a tuple in field order when composite.
    type PrimaryKey: Clone + Debug + Send + Sync + 'static;

    /// Names, columns and keys.
    const META: &'static ModelMeta;

    /// This row's primary key.
    fn primary_key(&self) -> Self::PrimaryKey;

    /// The primary key's column values, in primary-key order.
    fn primary_key_values(key: &Self::PrimaryKey) -> Vec<Value>;

    /// Every column's value, in column order.
    fn values(&self) -> Vec<Value>;

    /// One column's value.
    fn value(&self, column: usize) -> Value;

    /// Every shard the model's rows may live on, in index order.
    fn shards() -> &'static [ShardId];

    /// The shard holding the row with primary key `key`.
    fn shard_of_key(key: &Self::PrimaryKey) -> ShardId;

    /// The shard holding this row.
    fn shard_of(&self) -> ShardId;

    /// The shard for a dynamically supplied value of the shard-key column.
    ///
    /// # Errors
    ///
    /// [`Error::MissingShardKey`](crate::Error::MissingShardKey) when the value is NULL or not of
    /// a key type. Never a default shard.
    fn shard_for_value(value: &Value) -> Result<ShardId>;
}

/// A model whose rows are spread over shards by a shard key.
pub trait Sharded: Model {
    /// The shard key's type (never `Option`).
    type ShardKey: ShardKey;

    /// This row's shard key.
    fn shard_key(&self) -> &Self::ShardKey;

    /// The shard for `key`. Pure: no I/O, the same answer in every process and release.
    fn shard_for(key: &Self::ShardKey) -> ShardId;
}

/// Decodes a model from a row of backend `DB` whose columns are the model's columns in order.
pub trait FromShardRow<DB: Backend>: Sized {
    /// Decodes one row.
    ///
    /// # Errors
    ///
    /// The database's decode error when a column has an unexpected type or NULL.
    fn from_row(row: &DB::Row) -> std::result::Result<Self, sqlx::Error>;
}
