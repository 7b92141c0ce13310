//! Grant's sharding engine: resolvers, the cluster of shards, the router, scatter-gather
//! execution and the merger.
//!
//! Data moves forward through the modules: [`resolve`] (key → shard) → `router` (query →
//! shards, narrowed filters) → [`cluster`] (one statement per shard, in parallel, with a
//! timeout) → [`merge`] (per-shard answers → one answer). [`query`] and [`crud`] are the entry
//! points the derive's generated methods call.

pub mod cluster;
pub mod context;
pub mod crud;
pub mod distribution;
mod exec;
pub mod health;
pub mod merge;
pub mod observe;
pub mod placement;
pub mod query;
pub mod resolve;
// resharding: online moves between placements.
pub mod reshard;
mod router;
pub mod saga;
pub mod schema;
pub mod select;
#[cfg(feature = "testing")]
pub mod testing;
pub mod txn;

pub use cluster::{Balance, Cluster, ClusterBuilder, Executed, QueryLog, ReadPolicy};
pub use context::{current_shard, with_shard};
pub use crud::Tracked;
pub use health::{Circuit, EndpointStatus, HealthConfig, ShardStatus};
pub use placement::{Placement, PlacementState, Resolver};
pub use query::{Partial, PartialQuery, Query};
pub use saga::{Saga, SagaRegistry, SagaReport, SagaStatus, StepContext, StepResult};
pub use schema::{Migration, SchemaReport};
pub use select::Select;
pub use txn::{RecoveryReport, ShardTx, Transaction, TwoPhase};
