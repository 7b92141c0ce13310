//! Scatter-gather execution: one statement per shard, in flight together (bounded), under one
//! deadline, failing fast — or, when the caller opts in, gathering what the healthy shards
//! answered together with the failures.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use grant_core::{Error, Result, ShardId};
use tokio::time::Instant;

/// How one query fans out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// The model, for messages.
    pub(crate) model: &'static str,
    /// When the whole query must be done.
    pub(crate) deadline: Instant,
    /// The timeout the deadline came from, for messages.
    pub(crate) timeout: Duration,
    /// How many shard statements may be in flight at once.
    pub(crate) concurrency: usize,
    /// Whether failed shards are reported instead of failing the query.
    pub(crate) partial: bool,
}

impl Policy {
    /// The error for shards that missed the deadline.
    pub(crate) fn timeout_error(&self, shards: impl IntoIterator<Item = ShardId>) -> Error {
        Error::Timeout {
            model: self.model,
            shards: shards
                .into_iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
            millis: self.timeout.as_millis(),
        }
    }
}

/// What a scatter gathered: answers in shard order, and (only with `partial`) the failures.
#[derive(Debug)]
pub(crate) struct Gathered<T> {
    pub(crate) ok: Vec<(ShardId, T)>,
    pub(crate) failed: Vec<(ShardId, Error)>,
}

/// Runs `work(shard)` for every shard, at most `policy.concurrency` at a time, all before
/// `policy.deadline`. Without `partial`, the first failure (or the deadline) fails the whole
/// scatter and drops — cancels — the statements still running.
pub(crate) async fn scatter<T, F, Fut>(
    shards: Vec<ShardId>,
    policy: Policy,
    work: F,
) -> Result<Gathered<T>>
where
    F: Fn(ShardId) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    if !policy.partial && shards.len() <= policy.concurrency.max(1) {
        return all_at_once(shards, policy, work).await;
    }
    let mut pending: BTreeMap<usize, ShardId> = shards.iter().copied().enumerate().collect();
    let mut queue = shards.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let launch = |(i, shard): (usize, ShardId)| {
        let fut = work(shard);
        async move { (i, shard, fut.await) }
    };
    for next in queue.by_ref().take(policy.concurrency.max(1)) {
        running.push(launch(next));
    }
    // One timer for the whole scatter, not one per answer.
    let deadline = tokio::time::sleep_until(policy.deadline);
    tokio::pin!(deadline);
    loop {
        let next = tokio::select! {
            biased;
            next = running.next() => Ok(next),
            () = &mut deadline => Err(()),
        };
        match next {
            Ok(None) => break,
            Ok(Some((i, shard, result))) => {
                pending.remove(&i);
                match result {
                    Ok(value) => ok.push((i, shard, value)),
                    Err(error) if policy.partial => failed.push((shard, error)),
                    Err(error) => return Err(error),
                }
                if let Some(next) = queue.next() {
                    running.push(launch(next));
                }
            }
            Err(_) => {
                if policy.partial {
                    for (_, shard) in std::mem::take(&mut pending) {
                        failed.push((shard, policy.timeout_error([shard])));
                    }
                    break;
                }
                return Err(policy.timeout_error(pending.into_values()));
            }
        }
    }
    ok.sort_by_key(|(i, _, _)| *i);
    Ok(Gathered {
        ok: ok.into_iter().map(|(_, s, v)| (s, v)).collect(),
        failed,
    })
}

/// [`scatter`] of a query that fails as a whole and whose statements all fit in flight at
/// once (the common case): every statement starts now, under one timer for the deadline, and
/// the first failure drops the others. The statements are polled in place (`try_join_all`)
/// rather than queued through a `FuturesUnordered`, which a bounded, partial scatter needs
/// and this one does not.
async fn all_at_once<T, F, Fut>(
    shards: Vec<ShardId>,
    policy: Policy,
    work: F,
) -> Result<Gathered<T>>
where
    F: Fn(ShardId) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    use std::sync::atomic::{AtomicBool, Ordering};
    let done: Vec<AtomicBool> = shards.iter().map(|_| AtomicBool::new(false)).collect();
    let legs = shards.iter().zip(&done).map(|(&shard, done)| {
        let fut = work(shard);
        async move {
            let value = fut.await?;
            done.store(true, Ordering::Relaxed);
            Ok::<_, Error>((shard, value))
        }
    });
    match tokio::time::timeout_at(policy.deadline, futures_util::future::try_join_all(legs)).await {
        Ok(Ok(ok)) => Ok(Gathered {
            ok,
            failed: Vec::new(),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(policy.timeout_error(
            shards
                .iter()
                .zip(&done)
                .filter(|(_, done)| !done.load(Ordering::Relaxed))
                .map(|(&shard, _)| shard),
        )),
    }
}
