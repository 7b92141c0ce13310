//! # Grant
//!
//! Horizontal database sharding at the ORM level, with shard keys checked by the compiler.
//!
//! Annotate a model struct with `#[derive(Sharded)]`, connect a [`Cluster`] of shards (SQLite
//! files or PostgreSQL databases), and write typed queries: Grant routes each one to the shard(s)
//! that hold its rows and merges cross-shard answers so they equal what one database holding all
//! rows would answer — or refuses the query with [`Error::Unsupported`] saying why.
//!
//! ```no_run
//! use grant::prelude::*;
//!
//! #[derive(Sharded, Debug, Clone, PartialEq)]
//! #[grant(table = "users")]
//! #[shard(strategy = "hash", on = "id", count = 4)]
//! pub struct User {
//!     #[primary_key]
//!     pub id: i64,
//!     pub name: String,
//!     pub balance: i64,
//! }
//!
//! # async fn run() -> grant::Result<()> {
//! let cluster = Cluster::<Sqlite>::memory(4).await?;
//! User::create_table(&cluster).await?;
//! User { id: 7, name: "Ada".into(), balance: 10 }.insert(&cluster).await?;
//! let ada = User::find(&cluster, 7).await?;              // one shard: User::shard_for(&7)
//! let rich = User::query().filter(User::BALANCE.gt(5)).count(&cluster).await?; // all shards
//! # Ok(()) }
//! ```
//!
//! See the README for the tour and the guarantees.

pub use grant_core::__private::sea_query::Value;
#[allow(unused_imports, unreachable_pub)] // empty without the `json` feature
pub use grant_core::feature_types::*;
pub use grant_core::key::{IntKey, PgHashKey, RangeUnit, TextKey};
pub use grant_core::like;
pub use grant_core::types;
/// Typed column constants and their roles ([`column::Data`], [`column::Key`]).
pub mod column {
    pub use grant_core::column::{Assignable, Column, ColumnRef, Data, Key};
}
pub use grant_core::{
    Agg, Backend, BelongsTo, Column, ColumnRef, Cond, Error, FromShardRow, FromValue, Having,
    IndexMeta, KeyPart, Model, ModelMeta, Nulls, Order, Result, ShardId, ShardKey, Sharded,
    SqlType, count,
};
pub use grant_core::{Orderable, ValueKind};
pub use grant_derive::{Model, Sharded, SqlEnum};
pub use grant_sharding::distribution::{Distribution, ShardRows};
pub use grant_sharding::placement::directory::{Directory, NewKeys};
pub use grant_sharding::placement::{Placement, PlacementState, Resolver};
pub use grant_sharding::{
    Balance, Circuit, Cluster, ClusterBuilder, EndpointStatus, Executed, HealthConfig, IdGenerator,
    Migration, Partial, PartialQuery, Query, QueryLog, ReadPolicy, RecoveryReport, SchemaReport,
    Select, ShardStatus, ShardTx, Tracked, Transaction, TwoPhase, Update, current_shard,
    with_shard,
};

pub use grant_sharding::relations::{self, Joined};
pub use grant_sharding::saga;

/// Transactions: single-shard ([`ShardTx`]), multi-shard with two-phase commit
/// ([`Transaction`]), recovery ([`RecoveryReport`]), reference tables.
pub mod txn {
    pub use grant_sharding::txn::*;
}

/// Online resharding: plan, dual writes, locked backfill, verification, cutover, resume,
/// rollback (see [`grant_sharding::reshard`]).
pub mod reshard {
    pub use grant_sharding::reshard::*;
}

/// Run-time placement: per-model overrides of the static strategy, dual writes for resharding.
pub mod placement {
    pub use grant_sharding::placement::*;
}

/// Tracing spans and metrics emitted per shard statement.
pub mod observe {
    pub use grant_sharding::observe::*;
}

/// Strategies (resolvers) usable without the derive.
pub mod resolve {
    pub use grant_sharding::placement::directory::{self, Directory, NewKeys};
    pub use grant_sharding::resolve::*;
}

/// The sqlx database types Grant shards over.
pub mod backends {
    #[cfg(feature = "postgres")]
    pub use sqlx::Postgres;
    #[cfg(feature = "sqlite")]
    pub use sqlx::Sqlite;
}

/// Everything an application needs: `use grant::prelude::*;`.
pub mod prelude {
    pub use crate::backends::*;
    pub use crate::saga::{Saga, SagaRegistry, SagaStatus};
    pub use crate::{
        Agg, Cluster, Column, Cond, Error, Model, Nulls, Order, Partial, Query, ReadPolicy, Result,
        Select, ShardId, ShardTx, Sharded, SqlEnum, Tracked, Transaction, count, current_shard,
        with_shard,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use grant_core::__private::{sea_query, sea_query_sqlx, sqlx};
    pub use grant_core::column::{Data as DataColumn, Key as KeyColumn};
    pub use grant_core::key::{IntKey, PgHashKey, TextKey, time_bound};
    pub use grant_core::{
        Backend, Column, ColumnMeta, DirectorySpec, Error, FromShardRow, FromValue, IndexMeta,
        Model, ModelMeta, Orderable, Result, ShardId, ShardKey, Sharded, SqlType, ValueKind,
    };
    pub use grant_core::{BelongsTo, Colocation, colocation};
    pub use grant_sharding::placement::directory;
    pub use grant_sharding::relations;
    pub use grant_sharding::resolve;
    pub use grant_sharding::resolve::custom;
    pub use grant_sharding::resolve::hash;
    pub use grant_sharding::{Cluster, Query, Tracked, crud, txn};
}
