//! Test helpers (feature `testing`): real databases for integration tests, with no manual setup.
//!
//! - [`postgres`]: a throwaway PostgreSQL server (or the one `GRANT_PG_URL` names), fresh
//!   databases per test, and clusters of them.

pub mod postgres;

/// The operation gate of model `M` in `cluster`: every operation on a model with a run-time
/// placement holds it in read mode for its duration, and a resharding cutover takes it in
/// write mode. Tests use it to queue a writer while an operation runs (tokio's lock is fair:
/// a read asked for after a queued write waits for it).
pub fn model_gate<M: grant_core::Model, DB: grant_core::Backend>(
    cluster: &crate::Cluster<DB>,
) -> std::sync::Arc<tokio::sync::RwLock<()>> {
    cluster.placements().gate(M::META.table)
}
