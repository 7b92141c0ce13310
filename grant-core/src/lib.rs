//! Grant's core: model traits, typed columns and conditions, shard keys, errors and the backend
//! abstraction over sqlx and sea-query.
//!
//! Applications use the `grant` facade crate; this crate holds the pieces every other Grant crate
//! shares.

pub mod backend;
pub mod column;
pub mod cond;
pub mod error;
pub mod key;
pub mod like;
pub mod model;
pub mod select;
pub mod shard;
#[cfg(all(feature = "sqlite", feature = "rust_decimal"))]
mod sqlite_decimal;
pub mod types;
pub mod value;

pub use backend::{Backend, LikeSyntax};
pub use column::{
    Assignable, Column, ColumnRef, Nulls, Order, Orderable, Scalar, SqlType, SumValue, Summable,
};
#[cfg(feature = "json")]
pub use types::Json;

/// The column types of the cargo features that are on (`grant::Json` with `json`), for the
/// facade's glob re-export.
pub mod feature_types {
    #[cfg(feature = "json")]
    pub use crate::types::Json;
}
pub use cond::{CmpOp, Cond, Node};
pub use error::{Error, Result};
pub use key::{KeyPart, KeyVisitor, ShardKey};
pub use model::{
    BelongsTo, Colocation, ColumnMeta, DirectorySpec, FromShardRow, IndexMeta, Model, ModelMeta,
    Sharded, colocation,
};
pub use select::{Agg, Having, Item, OrderItem, Selectable, count};
pub use shard::ShardId;
pub use value::{FromValue, ValueKind};

#[doc(hidden)]
pub mod __private {
    pub use sea_query;
    pub use sea_query_sqlx;
    pub use sqlx;
}
