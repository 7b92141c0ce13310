//! Tenant moves on SQLite shard files and PostgreSQL shard databases: one tenant of an issue
//! tracker — its members, issues and comments, co-located by `tenant_id` — moves to a shard of
//! its own while a writer inserts, updates and deletes its rows (and another tenant's). The
//! rows are then read with plain sqlx on every shard and compared with the acknowledged writes
//! (the oracle): each row exactly once, on the shard the final topology names. Interrupted at a
//! random step of any phase, the move is finished (or rolled back) from a new cluster.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/sides.rs"]
#[macro_use]
mod sides;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use grant::prelude::*;
use grant::reshard::{CrashPoint, Phase, ReshardOptions, TenantMove};
use grant::{Backend, FromShardRow, Placement};
use sides::Side;
use sqlx::sqlite::SqlitePoolOptions;

/// A user of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tm_members")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Member {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The member, within the tenant.
    #[primary_key]
    pub id: i64,
    /// Their name.
    pub name: String,
}

/// An issue of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tm_tickets")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Ticket {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The issue, within the tenant.
    #[primary_key]
    pub id: i64,
    /// Its title.
    pub title: String,
}

/// A comment on an issue.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tm_remarks", belongs_to(Ticket, key(tenant_id, ticket_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Remark {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The comment, within the tenant.
    #[primary_key]
    pub id: i64,
    /// The issue commented on.
    pub ticket_id: i64,
    /// What it says.
    pub body: String,
}

/// A model whose table was never created on the shards (a deploy that lags behind the code).
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tm_absent")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Absent {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The row, within the tenant.
    #[primary_key]
    pub id: i64,
}

/// The tenant that moves, and the shard it moves to (not one of the models' own four).
const HOT: i64 = 5;
const TARGET: &str = "shard_4";
const TENANTS: i64 = 12;

/// A row as stored: `(tenant_id, id, text)`.
type Stored = (i64, i64, String);

/// The states an unacknowledged write may have left a row in (`None`: absent).
type Outcomes = Vec<Option<String>>;

/// Where the topology places a tenant's rows of one model.
type Home<DB> = fn(&Cluster<DB>, i64) -> String;

/// What the oracle holds per table: every row that must exist, with its text, and the keys
/// whose fate a lost acknowledgement left open (an interrupted write: present at most once,
/// with one of the texts listed).
#[derive(Debug, Default, Clone)]
struct Oracle {
    rows: BTreeMap<&'static str, BTreeMap<(i64, i64), String>>,
    open: BTreeMap<&'static str, BTreeMap<(i64, i64), Outcomes>>,
}

impl Oracle {
    fn put(&mut self, table: &'static str, key: (i64, i64), text: String) {
        self.rows.entry(table).or_default().insert(key, text);
    }

    /// A write whose outcome is unknown: the row may be `before` or `after`.
    fn unknown(&mut self, table: &'static str, key: (i64, i64), after: Option<String>) {
        let before = self.rows.entry(table).or_default().remove(&key);
        let open = self.open.entry(table).or_default().entry(key).or_default();
        open.push(before);
        open.push(after);
    }
}

fn data() -> (Vec<Member>, Vec<Ticket>, Vec<Remark>) {
    let mut rng = rng::Rng(0x7e4a47);
    let (mut members, mut tickets, mut remarks) = (Vec::new(), Vec::new(), Vec::new());
    for tenant_id in 1..=TENANTS {
        // The hot tenant is the big one.
        let scale = if tenant_id == HOT { 8 } else { 1 };
        let m = scale * (2 + rng.below(6) as i64);
        let t = scale * (2 + rng.below(10) as i64);
        for id in 1..=m {
            members.push(Member {
                tenant_id,
                id,
                name: format!("member {tenant_id}/{id}"),
            });
        }
        for id in 1..=t {
            tickets.push(Ticket {
                tenant_id,
                id,
                title: format!("issue {tenant_id}/{id} — ünïcode"),
            });
        }
        for id in 1..=(scale * (5 + rng.below(40) as i64)) {
            remarks.push(Remark {
                tenant_id,
                id,
                ticket_id: 1 + rng.below(t as u64) as i64,
                body: format!("remark {id}"),
            });
        }
    }
    (members, tickets, remarks)
}

fn oracle_of(members: &[Member], tickets: &[Ticket], remarks: &[Remark]) -> Oracle {
    let mut o = Oracle::default();
    for m in members {
        o.put("tm_members", (m.tenant_id, m.id), m.name.clone());
    }
    for t in tickets {
        o.put("tm_tickets", (t.tenant_id, t.id), t.title.clone());
    }
    for r in remarks {
        o.put("tm_remarks", (r.tenant_id, r.id), r.body.clone());
    }
    o
}

/// Reading a shard's tables bypassing Grant.
trait Raw: Side {
    /// Every `(tenant_id, id, text)` row of `table` on shard `i` (none when the table is
    /// missing there), read with plain sqlx.
    async fn rows_on(&self, i: usize, table: &str, text: &str) -> Vec<Stored>;
}

fn select(table: &str, text: &str) -> String {
    format!("SELECT tenant_id, id, {text} FROM {table} ORDER BY tenant_id, id")
}

impl Raw for sides::Files {
    async fn rows_on(&self, i: usize, table: &str, text: &str) -> Vec<Stored> {
        let pool = SqlitePoolOptions::new()
            .connect(&self.shard_url(i))
            .await
            .unwrap();
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&pool)
                .await
                .unwrap();
        let rows = match exists {
            Some(_) => sqlx::query_as(sqlx::AssertSqlSafe(select(table, text)))
                .fetch_all(&pool)
                .await
                .unwrap(),
            None => Vec::new(),
        };
        pool.close().await;
        rows
    }
}

impl Raw for sides::Databases {
    async fn rows_on(&self, i: usize, table: &str, text: &str) -> Vec<Stored> {
        let pool = pg::pool(&self.shard_url(i)).await;
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT tablename::text FROM pg_tables WHERE tablename = $1")
                .bind(table)
                .fetch_optional(&pool)
                .await
                .unwrap();
        let rows = match exists {
            Some(_) => sqlx::query_as(sqlx::AssertSqlSafe(select(table, text)))
                .fetch_all(&pool)
                .await
                .unwrap(),
            None => Vec::new(),
        };
        pool.close().await;
        rows
    }
}

/// The shard the cluster's topology names for tenant `t`'s rows of `M`.
fn home<M: Model, DB: Backend>(c: &Cluster<DB>, t: i64) -> String {
    match c.placement::<M>() {
        Some(state) => state
            .placement
            .shard_for_values::<M>(&[t.into()])
            .unwrap()
            .expect("a shard")
            .name()
            .to_string(),
        None => M::shard_for_values(&[t.into()]).unwrap().name().to_string(),
    }
}

/// Every row of every table on every shard: exactly once, on its home shard, as the oracle
/// says.
async fn check<S: Raw>(side: &S, c: &Cluster<S::DB>, oracle: &Oracle) {
    let tables: [(&'static str, &str, Home<S::DB>); 3] = [
        ("tm_members", "name", home::<Member, S::DB>),
        ("tm_tickets", "title", home::<Ticket, S::DB>),
        ("tm_remarks", "body", home::<Remark, S::DB>),
    ];
    for (table, text, home) in tables {
        let mut seen: BTreeMap<(i64, i64), (String, String)> = BTreeMap::new();
        for i in 0..5 {
            let shard = format!("shard_{i}");
            for (t, id, value) in side.rows_on(i, table, text).await {
                let want = home(c, t);
                assert_eq!(
                    shard, want,
                    "{table} row ({t}, {id}) is on {shard}, but the topology places tenant {t} \
                     on {want}"
                );
                if let Some((first, _)) = seen.insert((t, id), (shard.clone(), value)) {
                    panic!("{table} row ({t}, {id}) exists twice: on {first} and on {shard}");
                }
            }
        }
        let empty = BTreeMap::new();
        let rows = oracle.rows.get(table).unwrap_or(&empty);
        for (key, text) in rows {
            match seen.remove(key) {
                Some((_, got)) => assert_eq!(&got, text, "{table} row {key:?}"),
                None => panic!("{table} row {key:?} was acknowledged but is missing"),
            }
        }
        let open = oracle.open.get(table);
        for (key, (shard, got)) in seen {
            let allowed = open.and_then(|o| o.get(&key));
            assert!(
                allowed.is_some_and(|a| a.contains(&Some(got.clone()))),
                "{table} row {key:?} on {shard} ({got:?}) was never acknowledged (allowed: \
                 {allowed:?})"
            );
        }
    }
}

/// A writer on `c`: inserts comments of the hot tenant and of a cold one, deletes some of
/// them, renames the hot tenant's members. Acknowledged writes go into the oracle; a write
/// that fails (only after the move was interrupted) leaves its key open.
struct Writer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(Oracle, u64)>,
}

fn start_writer<DB: Backend>(
    c: &Cluster<DB>,
    mut oracle: Oracle,
    first: i64,
    tolerant: bool,
) -> Writer
where
    Remark: FromShardRow<DB>,
    Member: FromShardRow<DB>,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = c.clone();
    let flag = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut acked = 0_u64;
        let mut mine: Vec<(i64, i64)> = Vec::new();
        let mut id = first;
        let mut rng = rng::Rng(first as u64);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            id += 1;
            let tenant = if id % 3 == 0 { 2 } else { HOT };
            let outcome = match id % 5 {
                0..=2 => {
                    let r = Remark {
                        tenant_id: tenant,
                        id,
                        ticket_id: 1,
                        body: format!("live {id}"),
                    };
                    let key = (tenant, id);
                    match r.insert(&c).await {
                        Ok(()) => {
                            mine.push(key);
                            oracle.put("tm_remarks", key, r.body.clone());
                            Ok(())
                        }
                        Err(e) => {
                            oracle.unknown("tm_remarks", key, Some(r.body.clone()));
                            Err(e)
                        }
                    }
                }
                3 if !mine.is_empty() => {
                    let key = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                    let row = Remark {
                        tenant_id: key.0,
                        id: key.1,
                        ticket_id: 1,
                        body: String::new(),
                    };
                    match row.delete(&c).await {
                        Ok(_) => {
                            oracle.rows.entry("tm_remarks").or_default().remove(&key);
                            Ok(())
                        }
                        Err(e) => {
                            oracle.unknown("tm_remarks", key, None);
                            Err(e)
                        }
                    }
                }
                _ => {
                    let key = (HOT, 1 + rng.below(8) as i64);
                    let m = Member {
                        tenant_id: key.0,
                        id: key.1,
                        name: format!("renamed {id}"),
                    };
                    let known = oracle
                        .rows
                        .get("tm_members")
                        .is_some_and(|r| r.contains_key(&key));
                    if !known {
                        continue;
                    }
                    match m.update(&c).await {
                        Ok(()) => {
                            oracle.put("tm_members", key, m.name.clone());
                            Ok(())
                        }
                        Err(e) => {
                            oracle.unknown("tm_members", key, Some(m.name.clone()));
                            Err(e)
                        }
                    }
                }
            };
            match outcome {
                Ok(()) => acked += 1,
                Err(e) if tolerant => eprintln!("writer: {e}"),
                Err(e) => panic!("a write failed during the tenant move: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (oracle, acked)
    });
    Writer { stop, task }
}

impl Writer {
    async fn stop(self) -> (Oracle, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

async fn seeded<S: Side>(side: &S) -> (Cluster<S::DB>, Oracle, Vec<Ticket>, Vec<Remark>)
where
    Member: FromShardRow<S::DB>,
    Ticket: FromShardRow<S::DB>,
    Remark: FromShardRow<S::DB>,
{
    let c = side.cluster(5).await;
    Member::create_table(&c).await.unwrap();
    Ticket::create_table(&c).await.unwrap();
    Remark::create_table(&c).await.unwrap();
    let (members, tickets, remarks) = data();
    Member::insert_many(&c, &members).await.unwrap();
    Ticket::insert_many(&c, &tickets).await.unwrap();
    Remark::insert_many(&c, &remarks).await.unwrap();
    let oracle = oracle_of(&members, &tickets, &remarks);
    (c, oracle, tickets, remarks)
}

fn the_move<DB: grant::reshard::ReshardBackend>(c: &Cluster<DB>, to: &str) -> TenantMove<DB>
where
    Member: FromShardRow<DB>,
    Ticket: FromShardRow<DB>,
    Remark: FromShardRow<DB>,
{
    TenantMove::new(c, HOT, to)
        .model::<Member>()
        .model::<Ticket>()
        .model::<Remark>()
        .options(ReshardOptions::default().batch_size(50))
}

on_both!("tenant_", a_hot_tenant_moves_with_every_co_located_model);
async fn a_hot_tenant_moves_with_every_co_located_model<S: Raw>(side: &S)
where
    S::DB: grant::reshard::ReshardBackend,
    Member: FromShardRow<S::DB>,
    Ticket: FromShardRow<S::DB>,
    Remark: FromShardRow<S::DB>,
{
    let (c, oracle, tickets, remarks) = seeded(side).await;
    let before = Member::shard_for(&HOT).name().to_string();
    assert_ne!(before, TARGET);
    let writer = start_writer(&c, oracle, 1_000_000, false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = the_move(&c, TARGET).run().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (oracle, acked) = writer.stop().await;
    assert!(acked > 20, "only {acked} writes ran around the move");
    assert_eq!(report.len(), 3);
    for moved in &report {
        let status = moved.status.as_ref().expect("the tenant's rows moved");
        assert_eq!(status.phase, Phase::Done, "{moved:?}");
        println!(
            "{}: {} rows copied, pause {:?}",
            moved.model, status.rows_copied, status.pause
        );
    }
    assert!(matches!(
        c.placement::<Remark>().map(|s| s.placement.clone()),
        Some(Placement::Pinned { .. })
    ));
    check(side, &c, &oracle).await;

    // The tenant's queries go to its shard alone; the answers are the oracle's.
    let hot_ticket = tickets.iter().find(|t| t.tenant_id == HOT).unwrap();
    c.log().start();
    let mut got = Remark::belonging_to(hot_ticket).all(&c).await.unwrap();
    let sent = c.log().stop();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].shard, TARGET);
    got.sort_by_key(|r| r.id);
    // The writer's comments are on ticket 1 (the hot tenant's first); the seeded ones as
    // generated; those the writer deleted are gone.
    assert_eq!(hot_ticket.id, 1);
    let want: Vec<i64> = oracle.rows["tm_remarks"]
        .keys()
        .filter(|k| k.0 == HOT)
        .map(|k| k.1)
        .filter(|&id| {
            id >= 1_000_000
                || remarks
                    .iter()
                    .any(|r| r.tenant_id == HOT && r.id == id && r.ticket_id == hot_ticket.id)
        })
        .collect();
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), want);
    // Both models moved the tenant alike, so they stay co-located: the join runs, on the
    // tenant's shard alone.
    c.log().start();
    let joined = Remark::belonging_to(hot_ticket)
        .join_parent::<Ticket>()
        .all(&c)
        .await
        .unwrap();
    let sent = c.log().stop();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].shard, TARGET);
    let mut joined_ids: Vec<i64> = joined
        .iter()
        .map(|(r, t)| {
            assert_eq!(t.as_ref().map(|t| t.id), Some(hot_ticket.id), "{r:?}");
            r.id
        })
        .collect();
    joined_ids.sort_unstable();
    assert_eq!(joined_ids, want);
    assert_eq!(
        Remark::query().count(&c).await.unwrap(),
        oracle.rows["tm_remarks"].len() as u64
    );
    assert_eq!(
        Member::query()
            .filter(Member::TENANT_ID.eq(HOT))
            .count(&c)
            .await
            .unwrap(),
        oracle.rows["tm_members"]
            .keys()
            .filter(|k| k.0 == HOT)
            .count() as u64
    );

    // A transaction on the tenant follows the move.
    c.transaction_for::<Remark, _, _>(&HOT, |tx| {
        Box::pin(async move {
            tx.insert(&Remark {
                tenant_id: HOT,
                id: 7_000_000,
                ticket_id: 1,
                body: "in a transaction".into(),
            })
            .await?;
            Ok(())
        })
    })
    .await
    .unwrap();
    let mut oracle = oracle;
    oracle.put("tm_remarks", (HOT, 7_000_000), "in a transaction".into());
    check(side, &c, &oracle).await;

    // A transaction over the tenant and another one: two-phase commit on PostgreSQL, with the
    // tenant's part prepared on its new shard; SQLite refuses the second shard.
    let mut hot = Member::query()
        .filter(Member::TENANT_ID.eq(HOT))
        .all(&c)
        .await
        .unwrap()
        .remove(0);
    let mut other = Member::query()
        .filter(Member::TENANT_ID.eq(HOT + 1))
        .all(&c)
        .await
        .unwrap()
        .remove(0);
    hot.name = "renamed in 2pc".into();
    other.name = "renamed in 2pc too".into();
    c.log().start();
    let mut tx = c.begin().await.unwrap();
    tx.update(&hot).await.unwrap();
    let second = tx.update(&other).await;
    let sqlite = std::any::type_name::<S::DB>().contains("Sqlite");
    match second {
        Err(grant::Error::Unsupported { .. }) if sqlite => {
            drop(tx);
            c.log().stop();
        }
        second => {
            second.unwrap();
            tx.commit().await.unwrap();
            let sent = c.log().stop();
            let prepared: Vec<&str> = sent
                .iter()
                .filter(|e| e.sql.starts_with("PREPARE TRANSACTION"))
                .map(|e| e.shard.as_str())
                .collect();
            assert!(prepared.contains(&TARGET), "{prepared:?}");
            assert!(
                prepared.contains(&home::<Member, S::DB>(&c, HOT + 1).as_str()),
                "{prepared:?}"
            );
            oracle.put("tm_members", (HOT, hot.id), hot.name.clone());
            oracle.put("tm_members", (HOT + 1, other.id), other.name.clone());
        }
    }
    check(side, &c, &oracle).await;

    // A new process follows the topology store: it reads the tenant on its new shard.
    let fresh = side.reopen(5).await;
    assert_eq!(home::<Ticket, S::DB>(&fresh, HOT), TARGET);
    assert_eq!(
        Remark::query().count(&fresh).await.unwrap(),
        oracle.rows["tm_remarks"].len() as u64
    );
    assert!(
        Remark::find(&fresh, (HOT, 7_000_000))
            .await
            .unwrap()
            .is_some()
    );

    // Moving it there again does nothing; moving it back returns to the static placement.
    let again = the_move(&fresh, TARGET).run().await.unwrap();
    assert!(again.iter().all(|m| m.status.is_none()), "{again:?}");
    let back = the_move(&fresh, &before).run().await.unwrap();
    assert!(back.iter().all(|m| m.status.is_some()), "{back:?}");
    assert!(fresh.placement::<Member>().is_none(), "pins are gone");
    check(side, &fresh, &oracle).await;
    // The first cluster counts right at once (a read under the placement it knows meets
    // the fence and follows), and follows the store soon anyway.
    assert_eq!(
        Remark::query().count(&c).await.unwrap(),
        oracle.rows["tm_remarks"].len() as u64
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while home::<Remark, S::DB>(&c, HOT) != before {
        assert!(
            std::time::Instant::now() < deadline,
            "the first cluster did not follow the move back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        Remark::query().count(&c).await.unwrap(),
        oracle.rows["tm_remarks"].len() as u64
    );
}

on_both!(
    "tenant_",
    an_interrupted_tenant_move_finishes_from_a_new_cluster
);
async fn an_interrupted_tenant_move_finishes_from_a_new_cluster<S: Raw>(side: &S)
where
    S::DB: grant::reshard::ReshardBackend,
    Member: FromShardRow<S::DB>,
    Ticket: FromShardRow<S::DB>,
    Remark: FromShardRow<S::DB>,
{
    let (c, mut oracle, _, _) = seeded(side).await;
    // How many steps a whole move takes, to interrupt it anywhere.
    let counter = CrashPoint::after(0);
    let probe = the_move(&c, TARGET);
    let probe = probe.options(
        ReshardOptions::default()
            .batch_size(50)
            .crash(Arc::clone(&counter)),
    );
    probe.run().await.unwrap();
    let phases = [
        Phase::Planned,
        Phase::Copying,
        Phase::Verifying,
        Phase::Cutover,
    ];
    let per_phase: Vec<u64> = phases.iter().map(|p| counter.steps_in(*p)).collect();
    let steps: u64 = per_phase.iter().sum();
    let origin = Member::shard_for(&HOT).name().to_string();
    the_move(&c, &origin).run().await.unwrap();
    check(side, &c, &oracle).await;
    drop(c);
    println!("a tenant move takes {steps} steps: {per_phase:?} in {phases:?}");
    assert!(
        per_phase.iter().all(|&n| n > 0),
        "every phase has steps to stop at"
    );

    let seed = std::env::var("GRANT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x007e_4a47_u64);
    let mut rng = rng::Rng(seed);
    let mut next = 2_000_000;
    let mut stopped = BTreeSet::new();
    for round in 0..8 {
        let c = side.reopen(5).await;
        // Every phase in turn, at a random step of it.
        let phase = round % phases.len();
        let at = 1 + rng.below(per_phase[phase]);
        let point = CrashPoint::in_phase(phases[phase], at);
        let writer = start_writer(&c, oracle.clone(), next, true);
        let mv = the_move(&c, TARGET).options(
            ReshardOptions::default()
                .batch_size(50)
                .crash(Arc::clone(&point)),
        );
        let finished = tokio::select! {
            r = mv.run() => { r.unwrap(); true }
            () = async {
                while point.hit().is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            } => false,
        };
        // The process dies with the move stopped at its step.
        drop(mv);
        let (after_crash, _) = writer.stop().await;
        oracle = after_crash;
        next += 100_000;
        drop(c);
        let hit = point.hit();
        stopped.insert(format!("{hit:?}"));
        println!(
            "round {round}: stopped at step {at} of {:?} ({hit:?}), finished: {finished}",
            phases[phase]
        );

        // A new process finishes it — or, every third round, rolls it back — under writes.
        let b = side.reopen(5).await;
        let writer = start_writer(&b, oracle.clone(), next, false);
        next += 100_000;
        let rollback = round % 5 == 2;
        if rollback {
            let undone = the_move(&b, TARGET).rollback().await.unwrap();
            println!("  rolled back: {undone:?}");
        } else {
            the_move(&b, TARGET).run().await.unwrap();
            assert_eq!(home::<Remark, S::DB>(&b, HOT), TARGET);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (after, _) = writer.stop().await;
        oracle = after;
        check(side, &b, &oracle).await;
        // Back home for the next round (a move of its own, checked too).
        the_move(&b, &origin).run().await.unwrap();
        check(side, &b, &oracle).await;
    }
    println!("phases interrupted: {stopped:?}");
    assert!(stopped.len() >= 4, "{stopped:?}");
}

on_both!(
    "tenant_",
    a_tenant_move_that_fails_to_start_leaves_nothing_behind
);
async fn a_tenant_move_that_fails_to_start_leaves_nothing_behind<S: Raw>(side: &S)
where
    S::DB: grant::reshard::ReshardBackend,
    Member: FromShardRow<S::DB>,
    Ticket: FromShardRow<S::DB>,
    Remark: FromShardRow<S::DB>,
    Absent: FromShardRow<S::DB>,
{
    let (c, mut oracle, _, remarks) = seeded(side).await;
    // Many members of other tenants, so that a scan of whole tables would show.
    let filler: Vec<Member> = (0..5_000)
        .map(|n| Member {
            tenant_id: 100 + n % 20,
            id: n,
            name: format!("filler {n}"),
        })
        .collect();
    Member::insert_many(&c, &filler).await.unwrap();
    for m in &filler {
        oracle.put("tm_members", (m.tenant_id, m.id), m.name.clone());
    }
    let before = home::<Member, S::DB>(&c, HOT);
    // Member and Ticket start; Absent's table is missing, so its start fails and the two
    // started before it are rolled back.
    let err = TenantMove::new(&c, HOT, TARGET)
        .model::<Member>()
        .model::<Ticket>()
        .model::<Absent>()
        .run()
        .await
        .expect_err("a model without its table cannot move");
    println!("refused: {err}");
    assert!(
        matches!(err, grant::Error::SchemaMismatch { .. }) && err.to_string().contains("tm_absent"),
        "{err}"
    );
    for unfinished in [
        grant::reshard::ReshardJob::<Member, S::DB>::unfinished(&c)
            .await
            .unwrap(),
        grant::reshard::ReshardJob::<Ticket, S::DB>::unfinished(&c)
            .await
            .unwrap(),
    ] {
        assert!(
            unfinished.is_empty(),
            "a job was left behind: {unfinished:?}"
        );
    }
    assert!(c.placement::<Member>().is_none(), "Member kept a placement");
    assert!(c.placement::<Ticket>().is_none(), "Ticket kept a placement");
    assert_eq!(home::<Member, S::DB>(&c, HOT), before);
    check(side, &c, &oracle).await;
    // A new process sees the same, and the move without the missing model then works.
    let fresh = side.reopen(5).await;
    assert!(fresh.placement::<Member>().is_none());
    // Moving the comments alone separates them from their issues: the join is refused
    // (saying why) until the issues follow.
    let commented = remarks
        .iter()
        .find(|r| r.tenant_id == HOT)
        .unwrap()
        .ticket_id;
    let ticket = Ticket::find(&fresh, (HOT, commented))
        .await
        .unwrap()
        .unwrap();
    let comments = Remark::belonging_to(&ticket)
        .all(&fresh)
        .await
        .unwrap()
        .len();
    assert!(comments > 0);
    TenantMove::new(&fresh, HOT, TARGET)
        .model::<Remark>()
        .run()
        .await
        .unwrap();
    let refused = Remark::belonging_to(&ticket)
        .join_parent::<Ticket>()
        .all(&fresh)
        .await
        .expect_err("a join of models placed apart");
    assert!(
        matches!(refused, grant::Error::Unsupported { .. })
            && refused.to_string().contains("placements differ"),
        "{refused}"
    );
    let report = the_move(&fresh, TARGET).run().await.unwrap();
    assert_eq!(home::<Member, S::DB>(&fresh, HOT), TARGET);
    // The backfill read the tenant's rows only (copy and verification: twice each), not the
    // 5,000 others.
    let hot_members = oracle.rows["tm_members"]
        .keys()
        .filter(|k| k.0 == HOT)
        .count() as u64;
    let member = report[0].status.as_ref().expect("the members moved");
    println!(
        "members: {} rows scanned, {hot_members} of the tenant",
        member.rows_scanned
    );
    assert!(
        member.rows_scanned >= hot_members && member.rows_scanned <= 2 * hot_members,
        "{member:?}"
    );
    let joined = Remark::belonging_to(&ticket)
        .join_parent::<Ticket>()
        .all(&fresh)
        .await
        .unwrap();
    assert_eq!(joined.len(), comments);
    assert!(joined.iter().all(|(_, t)| t.as_ref() == Some(&ticket)));
    check(side, &fresh, &oracle).await;
}
