//! Connections kept checked out between statements (L1, topology): no ping per statement.
//!
//! sqlx tests every connection that goes back into its pool with a ping — one more round trip
//! for each statement, run by a task of its own beside the next statement. Grant parks the
//! connection of a statement that finished cleanly instead, still checked out of its pool, and
//! the endpoint's next statement takes it from here before asking the pool.
//!
//! What keeps this safe:
//! - only a statement that succeeded parks its connection; a failed, cancelled or timed-out
//!   one drops it, and sqlx's release ping then flushes whatever it left (a queued rollback,
//!   unread rows) or closes it when broken;
//! - a connection parked longer than [`PARK_FOR`] goes back to the pool (on the next park, or
//!   by a task that runs while connections are parked), so the pool's own idle timeout, `status()`'s idle count and
//!   code using the pool directly (`cluster.pool(..)`) see it again;
//! - at most `max_connections - 1` connections are parked: the pool can always hand out one
//!   more to someone using it directly;
//! - a parked connection is checked like one from the pool (see `Broken::check` in
//!   `cluster.rs`): pinged first when it idled long or a connection of its endpoint broke while
//!   it waited.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;

/// How long a connection stays parked before it goes back to its pool.
pub(crate) const PARK_FOR: Duration = Duration::from_millis(200);

/// An endpoint's parked connections, the most recent last.
pub(crate) struct Parking<DB: sqlx::Database> {
    slots: Mutex<Vec<(PoolConnection<DB>, Instant)>>,
    cap: usize,
    /// Whether the task giving stale connections back is running.
    trimming: AtomicBool,
}

impl<DB: sqlx::Database> Parking<DB> {
    /// Room for `max_connections - 1` connections of a pool of `max_connections`.
    pub(crate) fn new(max_connections: u32) -> Self {
        Parking {
            slots: Mutex::new(Vec::new()),
            cap: max_connections.saturating_sub(1) as usize,
            trimming: AtomicBool::new(false),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<(PoolConnection<DB>, Instant)>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection parked last, with how long it waited.
    pub(crate) fn take(&self) -> Option<(PoolConnection<DB>, Duration)> {
        let (conn, at) = self.slots().pop()?;
        Some((conn, at.elapsed()))
    }

    /// Parks the connection of a statement that finished cleanly; connections parked too long
    /// go back to the pool (so does this one when there is no room).
    pub(crate) fn park(self: &Arc<Self>, conn: PoolConnection<DB>) {
        if self.cap == 0 {
            // A pool of one connection: it goes back, for whoever uses the pool directly.
            drop(conn);
            return;
        }
        let now = Instant::now();
        let mut released = {
            let mut slots = self.slots();
            let mut released = stale(&mut slots, now);
            if slots.len() < self.cap {
                slots.push((conn, now));
            } else {
                released.push(conn);
            }
            released
        };
        // Outside the lock: going back to the pool spawns sqlx's release ping.
        released.clear();
        if !self.trimming.swap(true, Ordering::AcqRel) {
            tokio::spawn(trim_while_parked(Arc::downgrade(self)));
        }
    }

    /// Gives the connections parked longer than [`PARK_FOR`] back to the pool.
    pub(crate) fn trim(&self) {
        let released = stale(&mut self.slots(), Instant::now());
        drop(released);
    }

    /// Gives every parked connection back to the pool (before the pool closes).
    pub(crate) fn clear(&self) {
        let released: Vec<_> = self.slots().drain(..).collect();
        drop(released);
    }

    /// How many connections are parked.
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }
}

/// Gives stale connections back every [`PARK_FOR`] while any are parked; ends with none
/// parked (the next park starts it again) or with the endpoint gone.
async fn trim_while_parked<DB: sqlx::Database>(parking: std::sync::Weak<Parking<DB>>) {
    loop {
        tokio::time::sleep(PARK_FOR).await;
        let Some(parking) = parking.upgrade() else {
            return;
        };
        parking.trim();
        if parking.len() == 0 {
            parking.trimming.store(false, Ordering::Release);
            // A park between the check and the store found the task running: go on for it.
            if parking.len() == 0 || parking.trimming.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// The connections parked at least [`PARK_FOR`] before `now` (the oldest are first).
fn stale<DB: sqlx::Database>(
    slots: &mut Vec<(PoolConnection<DB>, Instant)>,
    now: Instant,
) -> Vec<PoolConnection<DB>> {
    let n = slots
        .iter()
        .take_while(|(_, at)| now.saturating_duration_since(*at) >= PARK_FOR)
        .count();
    slots.drain(..n).map(|(conn, _)| conn).collect()
}

impl<DB: sqlx::Database> Drop for Parking<DB> {
    fn drop(&mut self) {
        let slots = std::mem::take(self.slots.get_mut().unwrap_or_else(|e| e.into_inner()));
        if tokio::runtime::Handle::try_current().is_ok() {
            // Back to the pool, as any connection sqlx hands out.
            drop(slots);
        } else {
            // No runtime to run sqlx's release task on (a cluster dropped after its runtime):
            // the connections leave the pool and close.
            for (conn, _) in slots {
                drop(conn.detach());
            }
        }
    }
}
