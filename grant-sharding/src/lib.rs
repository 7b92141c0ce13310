//! Grant's sharding engine: resolvers, the cluster of shards, the router, scatter-gather
//! execution and the merger, and the features built on them (transactions, sagas,
//! resharding).
//!
//! # Map
//!
//! The modules form layers; each imports only the layers below it. Features reach lower layers
//! through hooks those expose: typed extension slots (`extensions`: the cluster keeps
//! placements and two-phase state without naming them), connect hooks (two-phase recovery at
//! start-up, installed by `Cluster::builder` in `features`), write observers (resharding's
//! dirty-key journal, [`placement`]).
//!
//! | layer | modules | what they decide |
//! |---|---|---|
//! | L5 features | [`txn`], [`saga`], [`reshard`], [`ids`], `features` | transactions and 2PC, sagas, online resharding, cluster-wide ids; the standard cluster's hooks |
//! | L4 operations | [`crud`], [`query`], [`select`], [`schema`], [`distribution`], [`relations`] | writes and finds by key, routed queries and aggregates, DDL and migrations, row counts, co-located children |
//! | L3 execution | `exec`, [`merge`], `stmt` | running one statement per shard in parallel under one deadline; merging ordered rows; every SQL builder |
//! | L2 placement | `router`, [`placement`] (with [`placement::directory`]), [`context`] | which shards a query visits; where a write goes (main and dual-write shards); operation gates |
//! | L1 topology | [`cluster`], [`health`], [`observe`], `extensions`, `parking` | shards, endpoints, pools (connections parked between statements), replicas, breakers, **the statement path** |
//! | L0 resolve | [`resolve`] | pure key → shard: the [`Resolver`] trait, the strategies |
//!
//! Where to look:
//!
//! - **which shard a key lives on**: `resolve` (the strategies) and [`placement::Placement`]
//!   (a run-time override); **which shards a query visits**: `router`;
//! - **where a write goes**: `placement::write_targets` (the main shard and, while a model
//!   migrates, the new one), called by [`crud`]; while a resharding job guards the migration,
//!   every statement also names its fence and reads leave the copies out (`placement::fence`,
//!   which also runs an operation that met the fence again once the topology moved on);
//! - **how results merge**: [`merge`] for rows, [`select`] for aggregates;
//! - **where a statement runs**: `Cluster::fetch` / `Cluster::execute` / `Cluster::on_held` in
//!   [`cluster`] — every statement of every layer (queries, writes, transactions, two-phase
//!   commit, recovery, migrations, schema checks, the resharding backfill) goes through them:
//!   one `grant.statement` span, the metrics, the circuit breaker's outcome, the timeout
//!   classification and the query log; the connection comes from `parking` (the one the
//!   endpoint's last statement used) or its pool;
//! - **what SQL is sent**: `stmt` (rows by key, DDL, resharding's scans), `query` (filters,
//!   order, pages), [`select`] (projections, aggregates).
//!
//! One query: `User::query().filter(..)` ([`query`]) → `router` → `exec::scatter` runs one
//! statement per shard through the statement path → [`merge`] → `Vec<User>`.
//! One write: [`crud::insert`] → write targets ([`placement`]) → the statement path.

pub mod cluster;
pub mod context;
pub mod crud;
pub mod distribution;
mod exec;
mod extensions;
mod features;
pub mod health;
pub mod ids;
pub mod merge;
pub mod observe;
mod parking;
pub mod placement;
pub mod query;
pub mod relations;
pub mod resolve;
// resharding: online moves between placements.
pub mod reshard;
mod router;
pub mod saga;
pub mod schema;
pub mod select;
mod stmt;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;
pub mod txn;

pub use cluster::{Balance, Cluster, ClusterBuilder, Executed, QueryLog, ReadPolicy};
pub use context::{current_shard, with_shard};
pub use crud::Tracked;
pub use health::{Circuit, EndpointStatus, HealthConfig, ShardStatus};
pub use ids::IdGenerator;
pub use placement::{Placement, PlacementState, Resolver};
pub use query::{Partial, PartialQuery, Query, Update};
pub use saga::{Saga, SagaRegistry, SagaReport, SagaStatus, StepContext, StepResult};
pub use schema::{Migration, SchemaReport};
pub use select::Select;
pub use txn::{RecoveryReport, ShardTx, Transaction, TwoPhase};
