//! The standard cluster (above every layer): the hooks each feature plugs into every cluster
//! that [`Cluster::builder`] builds. The topology layer exposes the hook points; this is the one
//! place that names the features using them.
//!
//! - The topology store (`crate::topology`): at connect, loads every model's persisted
//!   placement, installs the store that persists this process's changes, and starts following
//!   other processes' changes.
//! - Two-phase commit (`crate::txn`): at connect, checks the coordinator setting and, on
//!   PostgreSQL, recovers transactions a crashed process left in doubt.

use grant_core::Backend;

use crate::cluster::{Cluster, ClusterBuilder};

impl<DB: Backend> Cluster<DB> {
    /// A builder for a cluster of named shards.
    pub fn builder() -> ClusterBuilder<DB> {
        Cluster::bare_builder()
            .on_connect(crate::topology::connect_hook::<DB>)
            .on_connect(crate::txn::connect_hook::<DB>)
    }
}
