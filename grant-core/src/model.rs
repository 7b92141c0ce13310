//! The traits the derives implement.

use std::fmt::Debug;
use std::ops::Bound;

use sea_query::{ColumnType, Value};

use crate::backend::Backend;
use crate::error::{Error, Result};
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
    /// The kind its values are read as (from the field's Rust type, [`crate::SqlType::KIND`]).
    pub kind: crate::value::ValueKind,
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
    /// Position of the (first) shard-key column, or `None` for an unsharded model.
    pub shard_key: Option<usize>,
    /// Positions of every shard-key column in `columns`, in key order: one for a single-column
    /// shard key, several for a composite one (`#[shard(on = ["tenant_id", "user_id"])]`), none
    /// for an unsharded model.
    pub shard_key_columns: &'static [usize],
}

impl ModelMeta {
    /// The SQL names of all columns, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|c| c.name)
    }

    /// The SQL name of the (first) shard-key column (or `"-"` for an unsharded model).
    pub fn shard_key_name(&self) -> &'static str {
        self.shard_key.map_or("-", |i| self.columns[i].name)
    }

    /// The SQL names of every shard-key column, comma separated (`"tenant_id, user_id"`), for
    /// messages; `"-"` for an unsharded model.
    pub fn shard_key_names(&self) -> String {
        if self.shard_key_columns.is_empty() {
            return self.shard_key_name().to_owned();
        }
        self.shard_key_columns
            .iter()
            .map(|&i| self.columns[i].name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the shard key has several columns.
    pub fn has_composite_shard_key(&self) -> bool {
        self.shard_key_columns.len() > 1
    }
}

/// A secondary index of a model's table (`#[grant(index)]`, `#[grant(unique(a, b))]`, ...),
/// created by `create_table` on every shard the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexMeta {
    /// The SQL index name, `{table}_{columns}_idx` (`_key` when unique).
    pub name: &'static str,
    /// Positions of its columns in [`ModelMeta::columns`], in index order.
    pub columns: &'static [usize],
    /// A unique index: for a sharded model it contains every shard-key column (the derive
    /// refuses one that does not), so each shard enforcing it enforces it cluster-wide.
    pub unique: bool,
}

/// What `#[shard(strategy = "directory", ..)]` says about a model whose key → shard entries
/// live in a directory table of the cluster (see `grant_sharding::placement::directory`).
///
/// Routing such a model needs the cluster (a directory lookup), so its pure placement functions
/// (`shard_of_key`, `shard_for`) cannot answer; the cluster's operations consult the directory.
#[derive(Debug, Clone, Copy)]
pub struct DirectorySpec {
    /// The shards new keys may be placed on, in index order.
    pub shards: &'static [ShardId],
    /// The cluster shard holding the directory table.
    pub home: &'static str,
    /// The placement policy for new keys as written: `"least_rows"`, `"round_robin"` or
    /// `"explicit"`.
    pub policy: &'static str,
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

    /// The directory settings of a `#[shard(strategy = "directory", ..)]` model; `None` for
    /// every other strategy (placement is then pure and static).
    const DIRECTORY: Option<DirectorySpec> = None;

    /// Whether this is a reference (broadcast) table, `#[derive(Model)] #[grant(reference)]`:
    /// identical rows on every shard of the cluster, written everywhere at once, read from any
    /// one shard. Default `false`.
    const REFERENCE: bool = false;

    /// The table's secondary indexes, which `create_table` creates. Default none.
    const INDEXES: &'static [IndexMeta] = &[];

    /// The model's static placement as a signature: two models with equal, non-empty
    /// signatures place equal shard keys on the same shard (same strategy, shards and
    /// parameters). The derive writes it (`"hash/8/shard_"`); `belongs_to` compares them.
    /// Default `""`: placed like no other model.
    const PLACEMENT: &'static str = "";

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
    /// [`Error::MissingShardKey`] when the value is NULL or not of a key type, or the shard key
    /// has several columns (use [`Model::shard_for_values`]). Never a default shard.
    /// [`Error::UnknownShard`] naming the value when no shard holds it (a mapping value without a
    /// `default`, an integer outside every range).
    fn shard_for_value(value: &Value) -> Result<ShardId>;

    /// The shard for dynamically supplied values of every shard-key column, in key order
    /// ([`ModelMeta::shard_key_columns`]).
    ///
    /// # Errors
    ///
    /// As [`Model::shard_for_value`]; [`Error::MissingShardKey`] also when the number of values
    /// is not the number of key columns.
    fn shard_for_values(values: &[Value]) -> Result<ShardId> {
        match values {
            [value] if Self::META.shard_key_columns.len() <= 1 => Self::shard_for_value(value),
            _ => Err(Error::MissingShardKey {
                model: Self::META.name,
                key: Self::META.shard_key_name(),
                detail: format!(
                    "the shard key ({}) has {} column(s), got {} value(s)",
                    Self::META.shard_key_names(),
                    Self::META.shard_key_columns.len(),
                    values.len()
                ),
            }),
        }
    }

    /// The shards that may hold rows whose (single-column) shard key lies between `low` and
    /// `high`, or `None` when the strategy cannot tell (hash strategies: any shard may).
    ///
    /// The router uses it to prune `lt`, `lte`, `gt`, `gte` and `between` conditions on the key
    /// for the `range` strategy. The answer may include shards with no such row, never omit one.
    ///
    /// # Errors
    ///
    /// None for the strategies Grant generates; an implementation may refuse a bound.
    fn shards_for_range(low: Bound<&Value>, high: Bound<&Value>) -> Result<Option<Vec<ShardId>>> {
        let _ = (low, high);
        Ok(None)
    }

    /// The shard holding the row with primary key `key`, or the error naming the key when no
    /// shard can hold it (see [`Model::shard_for_value`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] naming the key when no shard holds it.
    fn try_shard_of_key(key: &Self::PrimaryKey) -> Result<ShardId> {
        Ok(Self::shard_of_key(key))
    }

    /// The shard holding this row, or the error naming its key when no shard can hold it.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] naming the key when no shard holds it.
    fn try_shard_of(&self) -> Result<ShardId> {
        Ok(self.shard_of())
    }
}

/// A model whose rows are spread over shards by a shard key.
pub trait Sharded: Model {
    /// The shard key's type (never `Option`).
    type ShardKey: ShardKey;

    /// A borrowed view of a row's shard key: `&T` for a single-column key, a tuple of
    /// references for a composite one (the shard key of [`ShardKey`]'s encoding is the same).
    type ShardKeyRef<'a>: ShardKey + Copy
    where
        Self: 'a;

    /// This row's shard key.
    fn shard_key(&self) -> Self::ShardKeyRef<'_>;

    /// The shard for `key`. Pure: no I/O, the same answer in every process and release.
    ///
    /// For strategies that can leave a key without a shard (a mapping without `default`, ranges
    /// that do not cover every integer) such a key gets [`ShardId::UNPLACED`], which no cluster
    /// has; [`Sharded::try_shard_for`] says why instead.
    fn shard_for(key: &Self::ShardKey) -> ShardId;

    /// The shard for `key`, or the error naming the key when no shard holds it.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownShard`] naming the key (a mapping value without `default`, an integer
    /// outside every range).
    fn try_shard_for(key: &Self::ShardKey) -> Result<ShardId> {
        Ok(Self::shard_for(key))
    }
}

/// Decodes a model from a row of backend `DB` whose columns are the model's columns in order.
pub trait FromShardRow<DB: Backend>: Sized {
    /// Decodes one row.
    ///
    /// # Errors
    ///
    /// The database's decode error when a column has an unexpected type or NULL.
    fn from_row(row: &DB::Row) -> std::result::Result<Self, sqlx::Error>;

    /// Decodes one model from the row's columns starting at position `offset` (a co-located
    /// join puts the parent's columns after the child's). The derive implements it; the
    /// default reads only at offset 0.
    ///
    /// # Errors
    ///
    /// As [`FromShardRow::from_row`]; for the default, any other offset.
    fn from_row_at(row: &DB::Row, offset: usize) -> std::result::Result<Self, sqlx::Error> {
        if offset == 0 {
            Self::from_row(row)
        } else {
            Err(sqlx::Error::Decode(
                format!(
                    "{} decodes rows only from their first column; implement \
                     FromShardRow::from_row_at to read it after another model's columns",
                    std::any::type_name::<Self>()
                )
                .into(),
            ))
        }
    }
}

/// A child model placed with its parent model `P`: `#[grant(belongs_to(P, key(..)))]` on the
/// child, which the derive accepts only when every child row lives on its parent's shard (the
/// same placement, the parent's shard key mapped onto the child's; see [`colocation`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not placed with `{P}`: it does not declare `belongs_to({P}, key(..))`",
    label = "a co-located relation needs `#[grant(belongs_to({P}, key(..)))]` on `{Self}`",
    note = "a join or a children's query runs on each shard alone, so it is only possible between \
            a child and the parent it is placed with; across models placed apart, load each \
            side with its own query"
)]
pub trait BelongsTo<P: Model>: Model {
    /// Positions (in [`ModelMeta::columns`]) of the child's columns holding the parent's
    /// primary key, in the parent's primary-key order.
    const PARENT_KEY: &'static [usize];

    /// The primary key of this row's parent.
    fn parent_key(&self) -> P::PrimaryKey;
}

/// Why a child model is not placed with its parent, as checked by [`colocation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colocation {
    /// Every child row lives on its parent's shard.
    Colocated,
    /// The placements differ (strategy, shard count, names or parameters), or one of them is
    /// not static (a directory model, a hand-written `Model`).
    Placement,
    /// `key(..)` does not list one field per primary-key field of the parent.
    KeyLength,
    /// The parent's shard key, read through `key(..)`, is not the child's shard key (in order).
    ShardKey,
}

/// Whether a child whose columns `key` hold the parent's primary key is placed with the parent:
/// equal non-empty [`Model::PLACEMENT`] signatures, one key field per parent primary-key field,
/// and for each of the parent's shard-key columns (in key order) the child's field at its
/// primary-key position being the child's shard-key column at the same position. Evaluated by
/// the compiler in constants the derive generates.
pub const fn colocation(
    child_placement: &str,
    child: &ModelMeta,
    parent_placement: &str,
    parent: &ModelMeta,
    key: &[usize],
) -> Colocation {
    let (a, b) = (child_placement.as_bytes(), parent_placement.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return Colocation::Placement;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return Colocation::Placement;
        }
        i += 1;
    }
    if key.len() != parent.primary_key.len() {
        return Colocation::KeyLength;
    }
    if child.shard_key_columns.len() != parent.shard_key_columns.len() {
        return Colocation::ShardKey;
    }
    let mut j = 0;
    while j < parent.shard_key_columns.len() {
        let column = parent.shard_key_columns[j];
        let mut pos = 0;
        while pos < parent.primary_key.len() && parent.primary_key[pos] != column {
            pos += 1;
        }
        if pos == parent.primary_key.len() || key[pos] != child.shard_key_columns[j] {
            return Colocation::ShardKey;
        }
        j += 1;
    }
    Colocation::Colocated
}
