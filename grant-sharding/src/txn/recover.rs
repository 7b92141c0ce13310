//! Recovery of prepared transactions: finish what has a decision, roll back what was abandoned.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use grant_core::{Backend, Error, Result};
use sea_query::Value;
use sea_query_sqlx::SqlxValues;

use super::twopc::{Decision, decide, is_missing, parse_gid, read_decision, recover_ensure_log};
use super::{LOG_TABLE, Open, literal};
use crate::cluster::Cluster;

/// What [`Cluster::recover`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Gids committed now (their transaction has a commit decision).
    pub committed: Vec<String>,
    /// Gids rolled back now (an abort decision, or none and older than the abandon timeout).
    pub rolled_back: Vec<String>,
    /// Gids left prepared: no decision yet and younger than the abandon timeout (their
    /// coordinator may still be deciding).
    pub pending: Vec<String>,
    /// Transaction ids marked done in the coordinator log.
    pub finished: Vec<String>,
    /// What could not be done now: `(shard or gid, error)`.
    pub failed: Vec<(String, String)>,
}

impl RecoveryReport {
    /// Whether nothing is left: no pending and no failed gid.
    pub fn is_clean(&self) -> bool {
        self.pending.is_empty() && self.failed.is_empty()
    }

    /// Whether recovery did nothing and found nothing to do.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
            && self.rolled_back.is_empty()
            && self.pending.is_empty()
            && self.finished.is_empty()
            && self.failed.is_empty()
    }
}

/// One Grant prepared transaction found on a shard.
struct Found {
    index: usize,
    gid: String,
    txid: String,
    age: Duration,
}

impl<DB: Backend> Cluster<DB> {
    /// Resolves Grant's prepared transactions on every shard (PostgreSQL; a no-op elsewhere):
    /// scans `pg_prepared_xacts` of each shard's database for gids `grant:<txid>:<shard>`,
    /// commits those whose transaction has a commit decision in `grant_2pc_log`, rolls back
    /// those with an abort decision, and those with no decision once older than
    /// [`TwoPhase::abandon_after`](super::TwoPhase::abandon_after) (recording the abort first,
    /// so a late coordinator cannot commit them). Younger undecided ones are left (`pending`).
    ///
    /// Idempotent, safe to run from several processes at once and beside running transactions.
    /// Runs at `connect()` unless [`TwoPhase::recover_on_connect`](super::TwoPhase) is off.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unknown coordinator shard. Failures on single shards or gids do
    /// not fail the call: they are listed in [`RecoveryReport::failed`].
    pub async fn recover(&self) -> Result<RecoveryReport> {
        recover(self, None).await
    }
}

/// Recovery of every Grant gid, or only those of `only` — the coordinator finishing its own
/// transaction, which rolls an undecided one back at once (it never acknowledged it).
pub(crate) async fn recover<DB: Backend>(
    cluster: &Cluster<DB>,
    only: Option<&str>,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    if !DB::TWO_PHASE {
        return Ok(report);
    }
    let coordinator = cluster.coordinator()?;
    let abandon_after = cluster.txn().config.abandon_after;

    // 1. Every shard's Grant gids (of its own database: pg_prepared_xacts lists the server's).
    let n = cluster.shard_names().count();
    let scans = join_all((0..n).map(|index| scan(cluster, index))).await;
    let mut found = Vec::new();
    let mut scanned_all = true;
    for (index, scan) in scans.into_iter().enumerate() {
        match scan {
            Ok(list) => found.extend(list),
            Err(e) => {
                scanned_all = false;
                report
                    .failed
                    .push((cluster.txn_shard_id(index).name(), e.to_string()));
            }
        }
    }
    if let Some(txid) = only {
        found.retain(|f| f.txid == txid);
    }

    // 2. The decisions. (One coordinator connection at a time: pools may have just one.)
    let coordinator_down = |report: &mut RecoveryReport, found: Vec<Found>, e: Error| {
        report
            .failed
            .push((cluster.txn_shard_id(coordinator).name(), e.to_string()));
        report.pending.extend(found.into_iter().map(|f| f.gid));
    };
    if found.is_empty() {
        let exists = match Open::idle(cluster, coordinator).await {
            Ok(mut conn) => log_exists(cluster, &mut conn).await?,
            Err(e) => {
                coordinator_down(&mut report, found, e);
                return Ok(report);
            }
        };
        if !exists {
            return Ok(report);
        }
    }
    recover_ensure_log(cluster).await?;
    let mut conn = match Open::idle(cluster, coordinator).await {
        Ok(conn) => conn,
        Err(e) => {
            coordinator_down(&mut report, found, e);
            return Ok(report);
        }
    };
    let mut open_rows: HashMap<String, Decision> = HashMap::new();
    {
        let select = format!("SELECT txid, decision FROM {LOG_TABLE} WHERE NOT done");
        let rows = conn
            .fetch(
                cluster,
                "-",
                (select, SqlxValues(sea_query::Values(Vec::new()))),
            )
            .await?;
        for row in &rows {
            let txid = DB::get_string(row, 0).map_err(|e| Error::on_shard("-", conn.shard, e))?;
            let decision =
                DB::get_string(row, 1).map_err(|e| Error::on_shard("-", conn.shard, e))?;
            if let (Some(txid), Some(decision)) = (txid, decision) {
                let decision = if decision == "commit" {
                    Decision::Commit
                } else {
                    Decision::Abort
                };
                open_rows.insert(txid, decision);
            }
        }
    }
    if let Some(txid) = only {
        open_rows.retain(|t, _| t == txid);
    }
    let mut decisions = open_rows.clone();
    for f in &found {
        if !decisions.contains_key(&f.txid)
            && let Some(d) = read_decision(cluster, &mut conn, &f.txid).await?
        {
            decisions.insert(f.txid.clone(), d);
        }
    }
    drop(conn);

    // 3. Act on every gid.
    let mut unfinished: Vec<String> = Vec::new();
    for f in found {
        let decision = match decisions.get(&f.txid) {
            Some(&d) => Some(d),
            None if only.is_some() || f.age >= abandon_after => {
                match decide(cluster, &f.txid, "abort", "(recovery)").await {
                    Ok(d) => {
                        decisions.insert(f.txid.clone(), d);
                        open_rows.insert(f.txid.clone(), d);
                        Some(d)
                    }
                    Err(e) => {
                        report.failed.push((f.gid.clone(), e.to_string()));
                        unfinished.push(f.txid.clone());
                        continue;
                    }
                }
            }
            None => None,
        };
        let Some(decision) = decision else {
            report.pending.push(f.gid);
            unfinished.push(f.txid);
            continue;
        };
        let verb = match decision {
            Decision::Commit => "COMMIT",
            Decision::Abort => "ROLLBACK",
        };
        match finish(
            cluster,
            f.index,
            &format!("{verb} PREPARED {}", literal(&f.gid)),
        )
        .await
        {
            Ok(()) => match decision {
                Decision::Commit => report.committed.push(f.gid),
                Decision::Abort => report.rolled_back.push(f.gid),
            },
            Err(e) => {
                report.failed.push((f.gid, e.to_string()));
                unfinished.push(f.txid);
            }
        }
    }

    // 4. Decided transactions with nothing left prepared anywhere are done.
    if scanned_all && !open_rows.is_empty() {
        let mut conn = Open::idle(cluster, coordinator).await?;
        let mut done: Vec<String> = open_rows
            .into_keys()
            .filter(|txid| !unfinished.contains(txid))
            .collect();
        done.sort();
        for txid in done {
            let update = format!("UPDATE {LOG_TABLE} SET done = TRUE WHERE txid = $1");
            let values = SqlxValues(sea_query::Values(vec![Value::from(txid.as_str())]));
            match conn.execute(cluster, "-", (update, values)).await {
                Ok(_) => report.finished.push(txid),
                Err(e) => report.failed.push((txid, e.to_string())),
            }
        }
    }
    if !report.is_empty() {
        tracing::info!(?report, "two-phase recovery");
    }
    Ok(report)
}

/// The Grant gids prepared in the database of the shard at `index`.
async fn scan<DB: Backend>(cluster: &Cluster<DB>, index: usize) -> Result<Vec<Found>> {
    let mut conn = Open::idle(cluster, index).await?;
    let select = "SELECT gid, EXTRACT(EPOCH FROM (now() - prepared))::float8 \
                  FROM pg_prepared_xacts \
                  WHERE database = current_database() AND gid LIKE 'grant:%'"
        .to_owned();
    let rows = conn
        .fetch(
            cluster,
            "-",
            (select, SqlxValues(sea_query::Values(Vec::new()))),
        )
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let gid = DB::get_string(row, 0).map_err(|e| Error::on_shard("-", conn.shard, e))?;
        let age = DB::get_f64(row, 1).map_err(|e| Error::on_shard("-", conn.shard, e))?;
        let Some(gid) = gid else { continue };
        let Some((txid, _)) = parse_gid(&gid) else {
            continue;
        };
        found.push(Found {
            index,
            txid: txid.to_owned(),
            age: Duration::from_secs_f64(age.unwrap_or(0.0).max(0.0)),
            gid,
        });
    }
    Ok(found)
}

/// Whether the coordinator log table exists (recovery creates it only when it has work).
async fn log_exists<DB: Backend>(cluster: &Cluster<DB>, conn: &mut Open<DB>) -> Result<bool> {
    let select = format!("SELECT to_regclass('{LOG_TABLE}')::text");
    let rows = conn
        .fetch(
            cluster,
            "-",
            (select, SqlxValues(sea_query::Values(Vec::new()))),
        )
        .await?;
    Ok(match rows.first() {
        Some(row) => DB::get_string(row, 0)
            .map_err(|e| Error::on_shard("-", conn.shard, e))?
            .is_some(),
        None => false,
    })
}

/// `COMMIT PREPARED` / `ROLLBACK PREPARED` on a fresh connection; a gid that no longer exists
/// was finished by someone else: success.
async fn finish<DB: Backend>(cluster: &Cluster<DB>, index: usize, sql: &str) -> Result<()> {
    let mut conn = Open::idle(cluster, index).await?;
    match conn.raw(cluster, "-", sql.to_owned()).await {
        Err(e) if !is_missing(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Retries recovery (of `only`, or of everything) in the background every
/// [`TwoPhase::retry_every`](super::TwoPhase::retry_every) until nothing is left, for at most
/// ten minutes. One task per transaction id at a time.
pub(crate) fn spawn_retry<DB: Backend>(cluster: Cluster<DB>, only: Option<String>) {
    let tag = only.clone().unwrap_or_else(|| "*".to_owned());
    {
        let mut retrying = cluster
            .txn()
            .retrying
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !retrying.insert(tag.clone()) {
            return;
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let config = cluster.txn().config.clone();
        let started = Instant::now();
        loop {
            tokio::time::sleep(config.retry_every).await;
            match recover(&cluster, only.as_deref()).await {
                Ok(report) if report.is_clean() => break,
                Ok(report) => tracing::debug!(?report, "two-phase retry left work"),
                Err(error) => tracing::debug!(%error, "two-phase retry failed"),
            }
            if started.elapsed() > config.retry_for {
                tracing::warn!(
                    txid = %tag,
                    "two-phase retry gave up; `cluster.recover()` finishes what remains"
                );
                break;
            }
        }
        cluster
            .txn()
            .retrying
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tag);
    });
}
