//! Resolvers: from a shard key to a shard.
//!
//! Each strategy is usable without the derive; `#[shard(strategy = ...)]` selects one.

pub mod hash;

pub use hash::HashResolver;
