//! Ids (L5): `cluster.id_generator()` hands out `i64` ids unique across every process of the
//! cluster, increasing in each process, without a round trip per id.
//!
//! An id is `ms << 22 | node << 12 | sequence`: 41 bits of milliseconds since 2025-01-01 UTC
//! (until 2094), a 10-bit node id (1,024 at once) and a 12-bit sequence (4,096 ids per
//! millisecond and node; the next millisecond is borrowed when one runs out).
//!
//! * **Node ids are leased** in the table `grant_id_nodes` on the cluster's first shard: a
//!   process takes a node id that is free or whose lease expired, with a compare-and-set, so
//!   two live processes never hold one; a task renews the lease every third of its length
//!   (default 30 s) and gives it back when the generator is dropped.
//! * **A high-water mark** travels with each lease: the holder never issues an id with a
//!   millisecond beyond the mark it last wrote (now + the lease, at each renewal), and a new
//!   holder starts above the mark it took over. So even a process that lost its lease without
//!   knowing (paused, partitioned, its clock wrong) cannot collide with the next holder.
//! * **Clocks stepping back** change nothing: the millisecond used is never below the last
//!   one used, so ids keep increasing.
//!
//! When renewals fail for longer than the lease (the shard unreachable), the generator runs out
//! of milliseconds it may use: [`IdGenerator::try_next`] says so, [`IdGenerator::next`]
//! panics — it never issues an id that could be a duplicate.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grant_core::{Backend, Error, Result, ShardId, ValueKind};
use sea_query::{Expr, OnConflict, Query, UpdateStatement};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

use crate::cluster::Cluster;

const TABLE: &str = "grant_id_nodes";
const CREATE: &str = "CREATE TABLE IF NOT EXISTS grant_id_nodes (\
    node BIGINT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL, \
    high_water BIGINT NOT NULL)";

/// 2025-01-01T00:00:00Z in Unix milliseconds: the ids' epoch.
pub const EPOCH_MS: i64 = 1_735_689_600_000;
/// How many node ids exist (10 bits).
pub const NODES: i64 = 1 << 10;
const SEQUENCE: i64 = 1 << 12;
/// The default lease of a node id.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        - EPOCH_MS
}

/// Where a generator is in its node's id space (milliseconds since [`EPOCH_MS`]).
#[derive(Debug, Clone, Copy)]
struct Clock {
    node: i64,
    last_ms: i64,
    seq: i64,
    /// The greatest millisecond this process may use: its lease's high-water mark.
    high_water: i64,
}

impl Clock {
    /// The next id at wall-clock millisecond `now`, or the millisecond it would need.
    fn next(&mut self, now: i64) -> std::result::Result<i64, i64> {
        let (mut ms, mut seq) = if now > self.last_ms {
            (now, 0)
        } else {
            // The clock stood still or stepped back: continue from the last millisecond.
            (self.last_ms, self.seq + 1)
        };
        if seq >= SEQUENCE {
            ms += 1;
            seq = 0;
        }
        if ms > self.high_water {
            return Err(ms);
        }
        self.last_ms = ms;
        self.seq = seq;
        Ok(ms << 22 | self.node << 12 | seq)
    }
}

#[derive(Debug)]
struct Shared<DB: Backend> {
    cluster: Cluster<DB>,
    shard: (String, ShardId),
    holder: String,
    lease: Duration,
    clock: Mutex<Clock>,
}

/// Hands out ids unique across every process of a cluster (see the [module docs](self)).
/// Cheap to clone: clones share one node id and sequence.
#[derive(Debug, Clone)]
pub struct IdGenerator<DB: Backend> {
    shared: Arc<Shared<DB>>,
}

impl<DB: Backend> IdGenerator<DB> {
    /// The next id: greater than every id this generator (and its clones) gave before.
    ///
    /// # Panics
    ///
    /// When the lease could not be renewed for longer than its length (see
    /// [`try_next`](Self::try_next)), rather than risk a duplicate.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&self) -> i64 {
        self.try_next().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next id, or an error when the generator may not issue one now: its lease on the
    /// node id has not been renewed for longer than the lease (the control shard unreachable),
    /// so every millisecond it may use is spent.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] saying so; the generator recovers by itself once a renewal succeeds.
    pub fn try_next(&self) -> Result<i64> {
        let mut clock = self.shared.clock.lock().unwrap_or_else(|p| p.into_inner());
        clock.next(now_ms()).map_err(|ms| {
            Error::Config(format!(
                "id generator (node {} of `{TABLE}` on shard `{}`): no id may be issued at \
                 millisecond {ms} past its lease's high-water mark {}: the lease has not been \
                 renewed for over {:?}; check that the shard is reachable",
                clock.node, self.shared.shard.0, clock.high_water, self.shared.lease
            ))
        })
    }

    /// The node id this generator holds now (it changes only if the lease was lost and a new
    /// node id taken).
    pub fn node(&self) -> i64 {
        self.shared
            .clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .node
    }
}

impl<DB: Backend> Cluster<DB> {
    /// An id generator with a node id leased for [`DEFAULT_LEASE`] (see [`crate::ids`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the cluster has no shard, the lease table cannot be created or
    /// read, or all 1,024 node ids are leased by live processes.
    pub async fn id_generator(&self) -> Result<IdGenerator<DB>> {
        self.id_generator_with_lease(DEFAULT_LEASE).await
    }

    /// [`Cluster::id_generator`] with a lease of `lease` (at least 1 s): a process that dies
    /// without giving its node id back holds it that long.
    ///
    /// # Errors
    ///
    /// As [`Cluster::id_generator`].
    pub async fn id_generator_with_lease(&self, lease: Duration) -> Result<IdGenerator<DB>> {
        let lease = lease.max(Duration::from_secs(1));
        let shard = self.first_shard("id leases")?;
        let create = (CREATE.to_owned(), SqlxValues(sea_query::Values(Vec::new())));
        execute(self, &shard, "create the lease table", create).await?;
        let holder = format!(
            "{}-{:016x}",
            std::process::id(),
            std::hash::BuildHasher::hash_one(
                &foldhash::fast::RandomState::default(),
                SystemTime::now()
            )
        );
        let clock = acquire(self, &shard, &holder, lease, -1).await?;
        let shared = Arc::new(Shared {
            cluster: self.clone(),
            shard,
            holder,
            lease,
            clock: Mutex::new(clock),
        });
        tokio::spawn(renew(Arc::downgrade(&shared)));
        Ok(IdGenerator { shared })
    }
}

impl<DB: Backend> Drop for Shared<DB> {
    fn drop(&mut self) {
        // Give the node id back (its high-water mark stays) so the next process need not wait
        // for the lease to run out.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cluster, shard, holder) = (
            self.cluster.clone(),
            self.shard.clone(),
            self.holder.clone(),
        );
        let node = self.clock.lock().unwrap_or_else(|p| p.into_inner()).node;
        runtime.spawn(async move {
            let mut release = update_held(node, &holder);
            release.value("expires_at", 0_i64);
            let statement = release.build_sqlx(DB::builder());
            let _ = execute(&cluster, &shard, "release the node id", statement).await;
        });
    }
}

/// Renews the lease every third of its length while the generator lives; takes a new node id
/// when the lease was lost.
async fn renew<DB: Backend>(shared: Weak<Shared<DB>>) {
    loop {
        let Some(lease) = shared.upgrade().map(|s| s.lease) else {
            return;
        };
        tokio::time::sleep(lease / 3).await;
        let Some(s) = shared.upgrade() else {
            return;
        };
        let node = s.clock.lock().unwrap_or_else(|p| p.into_inner()).node;
        let now = now_ms();
        let lease_ms = s.lease.as_millis() as i64;
        let high_water = {
            let clock = s.clock.lock().unwrap_or_else(|p| p.into_inner());
            clock.high_water.max(now + lease_ms)
        };
        let mut renewal = update_held(node, &s.holder);
        renewal
            .value("expires_at", now + lease_ms)
            .value("high_water", high_water);
        let statement = renewal.build_sqlx(DB::builder());
        let renewed = execute(&s.cluster, &s.shard, "renew the lease", statement).await;
        match renewed {
            Ok(1) => {
                let mut clock = s.clock.lock().unwrap_or_else(|p| p.into_inner());
                clock.high_water = clock.high_water.max(high_water);
            }
            // Taken by another process (this one was paused past its lease): take another
            // node id, above everything this one issued.
            Ok(_) => {
                let last = s.clock.lock().unwrap_or_else(|p| p.into_inner()).last_ms;
                if let Ok(fresh) = acquire(&s.cluster, &s.shard, &s.holder, s.lease, last).await {
                    *s.clock.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                }
            }
            // Unreachable: try again at the next tick; ids go on within the high-water mark.
            Err(_) => {}
        }
    }
}

/// Leases a node id: the lowest whose lease expired (so the table stays small), else the
/// lowest never used. The clock starts
/// above the node's previous high-water mark and above `after` (the caller's last millisecond).
async fn acquire<DB: Backend>(
    cluster: &Cluster<DB>,
    shard: &(String, ShardId),
    holder: &str,
    lease: Duration,
    after: i64,
) -> Result<Clock> {
    let lease_ms = lease.as_millis() as i64;
    for _attempt in 0..16 {
        let mut select = Query::select();
        select
            .columns(["node", "expires_at", "high_water"])
            .from(TABLE)
            .order_by("node", sea_query::Order::Asc);
        let statement = select.build_sqlx(DB::builder());
        let rows = fetch(cluster, shard, "read the leases", statement).await?;
        let mut taken: Vec<(i64, i64, i64)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let int = |i| match DB::get_value(row, i, ValueKind::I64) {
                Ok(sea_query::Value::BigInt(Some(v))) => Ok(v),
                Ok(sea_query::Value::Int(Some(v))) => Ok(i64::from(v)),
                other => Err(db_error(&shard.0, "read the leases", format!("{other:?}"))),
            };
            taken.push((int(0)?, int(1)?, int(2)?));
        }
        let now = now_ms();
        let start = |high_water: i64| now.max(high_water + 1).max(after + 1);
        if let Some(&(node, expires_at, high_water)) =
            taken.iter().find(|(_, expires_at, _)| *expires_at < now)
        {
            let begin = start(high_water);
            // Compare-and-set on what was read: one of two racing processes wins.
            use sea_query::ExprTrait;
            let mut takeover = Query::update();
            takeover
                .table(TABLE)
                .value("holder", holder)
                .value("expires_at", now + lease_ms)
                .value("high_water", begin + lease_ms)
                .and_where(Expr::col("node").eq(node))
                .and_where(Expr::col("expires_at").eq(expires_at))
                .and_where(Expr::col("high_water").eq(high_water));
            let statement = takeover.build_sqlx(DB::builder());
            let claimed =
                execute(cluster, shard, "take over an expired node id", statement).await?;
            if claimed == 1 {
                return Ok(clock(node, begin, begin + lease_ms));
            }
            continue;
        }
        if let Some(node) = (0..NODES).find(|n| !taken.iter().any(|t| t.0 == *n)) {
            let begin = start(-1);
            let mut insert = Query::insert();
            insert
                .into_table(TABLE)
                .columns(["node", "holder", "expires_at", "high_water"])
                .values_panic([
                    node.into(),
                    holder.into(),
                    (now + lease_ms).into(),
                    (begin + lease_ms).into(),
                ])
                .on_conflict(OnConflict::column("node").do_nothing().to_owned());
            let statement = insert.build_sqlx(DB::builder());
            let claimed = execute(cluster, shard, "lease a free node id", statement).await?;
            if claimed == 1 {
                return Ok(clock(node, begin, begin + lease_ms));
            }
            continue; // another process took it first
        }
        return Err(Error::Config(format!(
            "id generator: all {NODES} node ids of `{TABLE}` on shard `{}` are leased by live \
             processes; drop idle generators (each process needs one, shared by clones)",
            shard.0
        )));
    }
    Err(Error::Config(format!(
        "id generator: could not lease a node id of `{TABLE}` on shard `{}`: other processes \
         kept taking the free ones first; try again",
        shard.0
    )))
}

fn clock(node: i64, begin: i64, high_water: i64) -> Clock {
    Clock {
        node,
        // The first id is at `begin`, sequence 0.
        last_ms: begin - 1,
        seq: SEQUENCE - 1,
        high_water,
    }
}

fn db_error(shard: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "id generator: {what} in `{TABLE}` on shard `{shard}` failed: {e}; check that the shard \
         is reachable and writable"
    ))
}

/// A statement on the lease table's shard, through the cluster's statement path.
async fn execute<DB: Backend>(
    cluster: &Cluster<DB>,
    (name, id): &(String, ShardId),
    what: &str,
    statement: (String, SqlxValues),
) -> Result<u64> {
    cluster
        .execute("-", *id, statement)
        .await
        .map_err(|e| db_error(name, what, e))
}

/// A read of the lease table (on its shard's primary).
async fn fetch<DB: Backend>(
    cluster: &Cluster<DB>,
    (name, id): &(String, ShardId),
    what: &str,
    statement: (String, SqlxValues),
) -> Result<Vec<DB::Row>> {
    cluster
        .fetch("-", *id, Some(crate::ReadPolicy::Primary), statement)
        .await
        .map_err(|e| db_error(name, what, e))
}

/// `UPDATE grant_id_nodes SET .. WHERE node = node AND holder = holder`.
fn update_held(node: i64, holder: &str) -> UpdateStatement {
    use sea_query::ExprTrait; // here only: its `max` would shadow `Ord::max` on integers
    let mut update = Query::update();
    update
        .table(TABLE)
        .and_where(Expr::col("node").eq(node))
        .and_where(Expr::col("holder").eq(holder));
    update
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_when_the_clock_stands_still_or_steps_back() {
        let mut clock = clock(5, 1_000, 10_000);
        let mut last = i64::MIN;
        // 10,000 ids at one millisecond, then the clock steps back a second, then forward.
        let times = std::iter::repeat_n(1_000, 10_000)
            .chain(std::iter::repeat_n(0, 5_000))
            .chain(1_010..1_020);
        for now in times {
            let id = clock.next(now).unwrap();
            assert!(id > last, "{id} after {last}");
            assert_eq!((id >> 12) & (NODES - 1), 5);
            last = id;
        }
    }

    #[test]
    fn no_id_beyond_the_high_water_mark() {
        let mut clock = clock(1, 100, 101);
        for _ in 0..(2 * SEQUENCE) {
            clock.next(100).unwrap();
        }
        assert_eq!(clock.next(100), Err(102));
        assert_eq!(clock.next(500), Err(500));
        clock.high_water = 600;
        assert!(clock.next(500).is_ok());
    }
}
