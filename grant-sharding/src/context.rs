//! Task-local shard context: `with_shard(id, future)` / `current_shard()`.

use std::future::Future;

use grant_core::ShardId;

tokio::task_local! {
    static CURRENT_SHARD: ShardId;
}

/// Runs `future` with `shard` as the task-local shard context.
///
/// Auto-routed queries (`M::query()`) whose filter does not name the shard key go to this shard
/// instead of all shards. Contexts nest — the inner one wins until it ends, then the outer one is
/// back — and never leak to other tasks, even spawned ones.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use grant_sharding::{current_shard, with_shard};
/// use grant_core::ShardId;
/// assert_eq!(current_shard(), None);
/// with_shard(ShardId::new(2), async {
///     assert_eq!(current_shard(), Some(ShardId::new(2)));
/// }).await;
/// # }
/// ```
pub async fn with_shard<F: Future>(shard: ShardId, future: F) -> F::Output {
    CURRENT_SHARD.scope(shard, future).await
}

/// The shard of the innermost enclosing [`with_shard`], if any.
pub fn current_shard() -> Option<ShardId> {
    CURRENT_SHARD.try_with(|shard| *shard).ok()
}
