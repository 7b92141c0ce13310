//! Online resharding: move a model's rows from its current placement to a new one while the
//! application keeps reading and writing — planned, copied in locked batches, verified,
//! switched atomically, cleaned up; resumable after a crash and reversible before cutover.
//!
//! # How it works
//!
//! 1. [`ReshardPlan::new`] counts each source shard's rows and scans their keys (a sample above
//!    [`SAMPLE_LIMIT`] rows per shard) to list the moves `source → target` with
//!    estimated rows.
//! 2. [`ReshardJob::start`] persists the job (table `grant_reshard_jobs` on the cluster's first
//!    shard), creates the table on the new shards and switches the model to
//!    [`Placement::Migrating`](crate::placement::Placement::Migrating): reads stay on the old placement, every insert, update and delete
//!    goes to the old shard **and** the new one (the new side of an insert is an upsert), and
//!    every written primary key is recorded in the job's dirty-key journal.
//! 3. The backfill ([`ReshardJob::copy`]) walks each source shard in primary-key order, one batch
//!    at a time, **holding the moving rows locked** while they are copied. On PostgreSQL with the
//!    bulk path ([`ReshardOptions::bulk`], off there by default for now) a batch reads 10,000 keys, routes them, and each
//!    target takes its rows straight from the source by binary `COPY` (`COPY (SELECT .. FOR
//!    SHARE) TO STDOUT` piped into `COPY .. FROM STDIN`, undecoded; the sources in parallel).
//!    On SQLite the bulk path is the default: the batch's targets are attached to a source
//!    connection whose `BEGIN IMMEDIATE` holds them all, and the rows move by `INSERT ..
//!    SELECT` across the attached databases, compared there in SQL. The row path (PostgreSQL's
//!    default) reads and locks 1,000 rows per batch (`BEGIN IMMEDIATE`; PostgreSQL `FOR
//!    SHARE`), upserts the moving ones into their targets and reads them back to compare
//!    every value. A writer whose source write waits on the lock writes the
//!    target after the copy; a write committed before the batch locked is what the batch copies;
//!    a delete committed before is not seen. After each batch the per-source cursor is
//!    persisted, so a crash resumes from the last batch.
//! 4. The verification pass ([`ReshardJob::verify`], always run before cutover — and the only
//!    safe start after a crash, since writes between the crash and the resume were not dual
//!    written) compares every moving row on its source and target under the source lock and
//!    repairs differences, then deletes target copies whose source row is gone.
//! 5. [`ReshardJob::cutover`] takes the model's gate in write mode: every operation on a model
//!    with a run-time placement holds the gate in read mode for its duration, so this drains
//!    in-flight operations and briefly pauses new ones. Under the gate it takes the
//!    migration's fence down (`placement::fence`): every other process's operations under the
//!    migrating placement now fail in the database, writing nothing, and are run again once
//!    that process follows the switch. Then it re-verifies exactly the keys written since the
//!    verification pass began (its journal and the sources' capture journals), records the decision
//!    (phase `cutover`), and then each source gives up its moved rows in one transaction on
//!    it that holds them locked: every row is read at its target (copied again when missing
//!    or different, then read back) before it is deleted, and the same transaction writes the
//!    source's marker in `grant_reshard_moved` — so a recovery knows exactly which sources
//!    still own their rows. Then the placement switches atomically; operations that waited
//!    re-read it and use the new one. [`ReshardStatus::pause`] reports the pause.
//!
//! While the model migrates, every shard of the new placement keeps a registry of the copies
//! written to it (by the backfill and by every process's dual writes), and reads under the
//! migrating placement leave them out: a scatter counts each row once even when rows move onto
//! shards the old placement reads (8 → 4; `tests/reshard_reads.rs`).
//!
//! [`ReshardJob::rollback`] returns the model to its old placement and deletes the copies from
//! the targets (after a half-done cutover, the sources that gave up their rows first take them
//! back; the copies on shards the old placement reads go under the gate, behind the fence,
//! before it returns): the old topology is intact and nothing written is lost.
//!
//! # Recovery
//!
//! [`ReshardJob::resume`] (in a new process, which reads the migrating placement from the
//! topology store — a cluster that does not follow the store sets the model's placement as it
//! was when the job started; [`ReshardJob::unfinished`] lists the job; `set_placement` refuses
//! to override a migration) continues from the phase
//! the job recorded: before cutover it re-installs dual writes and `run()` copies from the
//! persisted cursors, then verifies everything again; during cutover it finishes the move
//! itself (unmarked sources are the authority for their rows: copied again, target copies they
//! lack deleted); during a rollback it finishes the rollback. A job that is done or rolled back
//! never runs again: every method refuses it, checked against the recorded phase too.
//! `tests/reshard_chaos.rs` interrupts jobs at random steps of every phase and checks that
//! every acknowledged row exists exactly once afterwards.
//!
//! # Tenant moves
//!
//! [`TenantMove`] moves one shard-key value — a tenant, with every co-located model that
//! carries it — to a named shard as one operation: one job per model towards
//! [`Placement::Pinned`](crate::placement::Placement::Pinned), all copied and verified before
//! the first cuts over; running it again continues it after a crash.
//!
//! # Supported placements
//!
//! Old: the model's static placement, a run-time [`Placement::Resolver`](crate::placement::Placement::Resolver)
//! or pins over one of them. New: the same — any
//! [`Placement::Resolver`](crate::placement::Placement::Resolver) — a hash or `pg_hash` count change, a consistent-hash ring with a
//! shard added or removed, a mapping with entries changed, a custom resolver. Directory
//! placements (old or new) are **not supported yet**: reassign directory entries with the
//! directory API.
//!
//! The migration, the cutover and a rollback are persisted in the cluster's topology store
//! ([`crate::topology`]): every process of the cluster follows them, also one started later.
//! Writes of other processes during the job are captured by triggers in the source databases
//! (`capture`) and re-verified at the cutover with the job process's own journal.

use std::collections::HashMap;
use std::sync::Mutex;

use sea_query::Value;

use crate::merge::values_key;
use crate::placement::WriteObserver;

mod backend;
mod capture;
mod job;
mod plan;
mod store;
mod tenant;

pub use backend::ReshardBackend;
#[cfg(feature = "testing")]
pub use job::CrashPoint;
pub use job::{Phase, ReshardJob, ReshardOptions, ReshardStatus};
pub use plan::{Move, ReshardPlan, SAMPLE_LIMIT};
pub use tenant::{TenantMove, TenantMoved};

/// The primary keys written while a model migrates: the job's write observer (installed with
/// [`Placements::observe`](crate::placement::Placements::observe), fed by every insert, update
/// and delete of the migrating model).
#[derive(Debug, Default)]
pub(crate) struct Journal {
    /// Keyed by [`values_key`], the canonical encoding of a key's values.
    keys: Mutex<HashMap<Vec<u8>, Vec<Value>>>,
}

impl Journal {
    fn take(&self) -> Vec<Vec<Value>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *keys).into_values().collect()
    }
}

impl WriteObserver for Journal {
    fn written(&self, key: Vec<Value>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.entry(values_key(&key)).or_insert(key);
    }
}
