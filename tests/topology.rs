//! Topology at run time: shards added to and removed from a live cluster, run-time placements
//! (a consistent-hash ring that gains a shard, a mapping that gains an entry, a custom
//! resolver), and the resharding hook — dual writes while migrating, an atomic cutover.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use grant::prelude::*;
use grant::resolve::{ConsistentHashResolver, MappingResolver};
use grant::{FromShardRow, KeyPart, ModelMeta, Placement, Resolver};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "sessions")]
#[shard(strategy = "consistent_hash", on = "id", count = 4)]
struct Session {
    #[primary_key]
    id: i64,
    owner: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "residents")]
#[shard(
    strategy = "mapping",
    on = "region",
    map(eu = "shard_0", us = "shard_1")
)]
struct Resident {
    #[primary_key]
    region: String,
    #[primary_key]
    id: i64,
}

/// Even keys on `shard_0`, odd keys on `shard_1`: a user resolver.
#[derive(Debug, Default)]
struct Parity;

impl Resolver for Parity {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        const SHARDS: [ShardId; 2] = [ShardId::new(0), ShardId::new(1)];
        Cow::Borrowed(&SHARDS)
    }

    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        match key {
            [KeyPart::Int(v)] => Ok(ShardId::new(v.rem_euclid(2) as u32)),
            _ => Err(Error::MissingShardKey {
                model: model.name,
                key: model.shard_key_name(),
                detail: "Parity places one integer".into(),
            }),
        }
    }
}

/// The last shard for every key: installed at run time over `Parity`.
#[derive(Debug)]
struct AllOn(ShardId);

impl Resolver for AllOn {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Owned(vec![self.0])
    }

    fn shard_for_key(&self, _model: &'static ModelMeta, _key: &[KeyPart<'_>]) -> Result<ShardId> {
        Ok(self.0)
    }
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "counters")]
#[shard(strategy = "custom", on = "id", resolver = "Parity")]
struct Counter {
    #[primary_key]
    id: i64,
    value: i64,
}

fn session(id: i64) -> Session {
    Session {
        id,
        owner: format!("owner {id}"),
    }
}

async fn shard_ids<M: Model + FromShardRow<Sqlite>>(
    cluster: &Cluster<Sqlite>,
    shard: ShardId,
) -> Vec<M::PrimaryKey>
where
    M::PrimaryKey: Ord,
{
    let mut keys: Vec<M::PrimaryKey> = Query::<M>::on_shard(shard)
        .all(cluster)
        .await
        .unwrap()
        .iter()
        .map(Model::primary_key)
        .collect();
    keys.sort();
    keys
}

/// A ring gains `shard_4` on a live cluster: finds keep answering throughout; the resharding
/// hook (dual writes, a backfill, an atomic cutover) moves about 1/5 of the keys, all onto the
/// new shard; afterwards keys route there and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_ring_gains_a_shard_while_the_cluster_serves() {
    const ROWS: i64 = 2000;
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 4).await;
    Session::create_table(&cluster).await.unwrap();
    let rows: Vec<Session> = (0..ROWS).map(session).collect();
    Session::insert_many(&cluster, &rows).await.unwrap();

    // Readers run during the whole change; every find must answer with the row.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let reader = {
        let (cluster, stop, served) = (cluster.clone(), stop.clone(), served.clone());
        tokio::spawn(async move {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k = (k + 7919) % ROWS;
                let found = Session::find(&cluster, k).await.unwrap();
                assert_eq!(found, Some(session(k)), "key {k}");
                served.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };

    let url = dir.path().join("shard_4.db").display().to_string();
    let new_shard = cluster.add_shard("shard_4", &url).await.unwrap();
    assert_eq!(
        cluster.shard_names().collect::<Vec<_>>(),
        ["shard_0", "shard_1", "shard_2", "shard_3", "shard_4"]
    );
    let old_ring = ConsistentHashResolver::new(4);
    let new_ring = ConsistentHashResolver::new(5);

    // Dual writes from here on: inserts go to the old and the new shard of their key.
    let epoch = cluster
        .begin_migration::<Session>(Placement::resolver(new_ring.clone()))
        .unwrap();
    Session::create_table(&cluster).await.unwrap(); // creates it on shard_4 too
    let during: Vec<Session> = (ROWS..ROWS + 200).map(session).collect();
    Session::insert_many(&cluster, &during).await.unwrap();

    // The backfill (what the resharding job does): copy rows whose shard changes.
    let mut moved = 0;
    for s in &rows {
        let (from, to) = (old_ring.shard_for(&s.id), new_ring.shard_for(&s.id));
        if from.name() != to.name() {
            assert_eq!(
                to.name(),
                "shard_4",
                "key {} moved between old shards",
                s.id
            );
            sqlx::query("INSERT OR IGNORE INTO sessions (id, owner) VALUES (?, ?)")
                .bind(s.id)
                .bind(&s.owner)
                .execute(cluster.pool("shard_4").unwrap())
                .await
                .unwrap();
            moved += 1;
        }
    }
    let share = moved as f64 / ROWS as f64;
    assert!(
        (0.2 * 0.8..=0.2 * 1.2).contains(&share),
        "{moved} of {ROWS} keys moved ({share:.3}), expected 1/5 ± 20%"
    );

    // Atomic cutover: a stale epoch is refused, the right one switches reads to the new ring.
    assert!(cluster.cutover::<Session>(epoch + 7).is_err());
    let after = cluster.cutover::<Session>(epoch).unwrap();
    assert!(after > epoch);

    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(served.load(Ordering::Relaxed) > 0);

    // Every row, old and written during the migration, is found through the new ring.
    for s in rows.iter().chain(&during) {
        assert_eq!(
            Session::find(&cluster, s.id).await.unwrap().as_ref(),
            Some(s)
        );
    }
    // New keys route to the new shard when the ring says so.
    let fresh = (ROWS + 1000..ROWS + 2000)
        .find(|k| new_ring.shard_for(k).name() == "shard_4")
        .unwrap();
    session(fresh).insert(&cluster).await.unwrap();
    let on_new = shard_ids::<Session>(&cluster, new_shard).await;
    assert!(on_new.contains(&fresh));
    assert!(on_new.len() >= moved);
}

/// The dual-write hook on its own: while migrating, inserts, updates and deletes reach the old
/// and the new shard of a key; reads use the old; aborting returns to the old placement.
#[tokio::test]
async fn migrating_placement_writes_both_sides_and_reads_the_old() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 4).await;
    Counter::create_table(&cluster).await.unwrap();
    assert_eq!(Counter::shard_for(&3), ShardId::new(1));

    // New placement: everything on shard_3 (static Parity uses shard_0 and shard_1).
    let last = ShardId::named(3, "shard_3");
    let epoch = cluster
        .begin_migration::<Counter>(Placement::resolver(AllOn(last)))
        .unwrap();
    Counter::create_table(&cluster).await.unwrap();
    assert!(
        cluster
            .begin_migration::<Counter>(Placement::Static)
            .is_err(),
        "one migration at a time"
    );

    let c = Counter { id: 3, value: 1 };
    c.insert(&cluster).await.unwrap();
    assert_eq!(shard_ids::<Counter>(&cluster, ShardId::new(1)).await, [3]);
    assert_eq!(shard_ids::<Counter>(&cluster, last).await, [3]);

    // Reads use the old side: the query log shows shard_1.
    cluster.log().start();
    assert_eq!(Counter::find(&cluster, 3).await.unwrap(), Some(c.clone()));
    let log = cluster.log().stop();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].shard, "shard_1");

    Counter { id: 3, value: 9 }.update(&cluster).await.unwrap();
    for shard in [ShardId::new(1), last] {
        let rows = Counter::on_shard(shard).all(&cluster).await.unwrap();
        assert_eq!(rows, vec![Counter { id: 3, value: 9 }], "{shard}");
    }
    // A row the backfill has not copied yet: the update still succeeds on the old side.
    sqlx::query("INSERT INTO counters (id, value) VALUES (5, 0)")
        .execute(cluster.pool("shard_1").unwrap())
        .await
        .unwrap();
    Counter { id: 5, value: 2 }.update(&cluster).await.unwrap();

    assert!(Counter { id: 3, value: 9 }.delete(&cluster).await.unwrap());
    for shard in [ShardId::new(1), last] {
        assert!(
            !shard_ids::<Counter>(&cluster, shard).await.contains(&3),
            "{shard}"
        );
    }

    // Abort: back to the static placement (epochs keep increasing).
    let aborted = cluster.abort_migration::<Counter>(epoch).unwrap();
    assert!(aborted > epoch);
    assert!(cluster.placement::<Counter>().is_none());
    assert!(cluster.abort_migration::<Counter>(aborted).is_err());
    // Epochs never repeat, also across a return to the static placement.
    let again = cluster
        .set_placement::<Counter>(Placement::resolver(AllOn(last)))
        .unwrap();
    assert!(again > aborted);
    assert!(cluster.clear_placement::<Counter>().unwrap() > again);
}

/// A shard is removed only when nothing would be lost.
#[tokio::test]
async fn removing_a_shard_that_holds_rows_is_refused() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 3).await;
    Counter::create_table(&cluster).await.unwrap();
    Counter { id: 1, value: 1 }.insert(&cluster).await.unwrap(); // on shard_1

    let err = cluster.remove_shard("shard_1").await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("shard_1") && msg.contains("counters"), "{msg}");
    assert!(msg.contains("1 row"), "{msg}");
    // Nothing changed: the row is still served.
    assert_eq!(
        Counter::find(&cluster, 1).await.unwrap(),
        Some(Counter { id: 1, value: 1 })
    );

    // A run-time placement naming a shard keeps it too.
    cluster
        .set_placement::<Counter>(Placement::resolver(AllOn(ShardId::new(2))))
        .unwrap();
    let err = cluster.remove_shard("shard_2").await.unwrap_err();
    assert!(err.to_string().contains("placement"), "{err}");
    cluster.clear_placement::<Counter>().unwrap();

    // An empty shard goes; statements for it then fail naming it.
    cluster.remove_shard("shard_2").await.unwrap();
    assert_eq!(
        cluster.shard_names().collect::<Vec<_>>(),
        ["shard_0", "shard_1"]
    );
    assert!(cluster.pool("shard_2").is_none());
    let err = cluster
        .set_placement::<Counter>(Placement::resolver(AllOn(ShardId::new(2))))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
    assert!(cluster.remove_shard("shard_2").await.is_err());
    assert!(cluster.remove_shard("nope").await.is_err());

    // After moving the row away (here: deleting it), shard_1 can go as well; and the name can
    // come back as a new shard.
    assert!(Counter { id: 1, value: 1 }.delete(&cluster).await.unwrap());
    cluster.remove_shard("shard_1").await.unwrap();
    assert!(cluster.remove_shard("shard_0").await.is_err(), "last shard");
    let url = dir.path().join("shard_1b.db").display().to_string();
    cluster.add_shard("shard_1", &url).await.unwrap();
    assert!(cluster.add_shard("shard_1", &url).await.is_err());
    Counter::create_table(&cluster).await.unwrap();
    Counter { id: 1, value: 2 }.insert(&cluster).await.unwrap();
    assert_eq!(
        Counter::find(&cluster, 1).await.unwrap(),
        Some(Counter { id: 1, value: 2 })
    );
}

/// A mapping gains a value → shard entry at run time; other values keep their shards.
#[tokio::test]
async fn mapping_gains_an_entry_at_run_time() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 3).await;
    Resident::create_table(&cluster).await.unwrap();
    let br = Resident {
        region: "br".into(),
        id: 1,
    };
    let err = br.insert(&cluster).await.unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");

    let mapping = MappingResolver::new(
        [
            ("eu", ShardId::named(0, "shard_0")),
            ("us", ShardId::named(1, "shard_1")),
            ("br", ShardId::named(2, "shard_2")),
        ],
        None,
    )
    .unwrap();
    let epoch = cluster
        .set_placement::<Resident>(Placement::resolver(mapping))
        .unwrap();
    assert_eq!(cluster.placement::<Resident>().unwrap().epoch, epoch);
    Resident::create_table(&cluster).await.unwrap();
    br.insert(&cluster).await.unwrap();
    Resident {
        region: "eu".into(),
        id: 2,
    }
    .insert(&cluster)
    .await
    .unwrap();
    let on_2 = Resident::on_shard(ShardId::named(2, "shard_2"))
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(on_2, vec![br.clone()]);
    let on_0 = Resident::on_shard(ShardId::named(0, "shard_0"))
        .all(&cluster)
        .await
        .unwrap();
    assert_eq!(on_0.len(), 1);
    // Queries prune through the run-time mapping.
    let q = Resident::query().filter(Resident::REGION.eq("br"));
    assert_eq!(q.shards_on(&cluster).await.unwrap().len(), 1);
    assert_eq!(q.all(&cluster).await.unwrap(), vec![br]);
    let err = Resident {
        region: "jp".into(),
        id: 3,
    }
    .insert(&cluster)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("\"jp\""), "{err}");
}

/// The `custom` strategy: a user type named in the derive, and one installed at run time.
#[tokio::test]
async fn custom_resolver_places_rows() {
    let cluster = Cluster::<Sqlite>::memory(3).await.unwrap();
    Counter::create_table(&cluster).await.unwrap();
    assert_eq!(Counter::shards(), [ShardId::new(0), ShardId::new(1)]);
    let rows: Vec<Counter> = (0..10).map(|id| Counter { id, value: id }).collect();
    Counter::insert_many(&cluster, &rows).await.unwrap();
    assert_eq!(
        shard_ids::<Counter>(&cluster, ShardId::new(0)).await,
        [0, 2, 4, 6, 8]
    );
    assert_eq!(
        shard_ids::<Counter>(&cluster, ShardId::new(1)).await,
        [1, 3, 5, 7, 9]
    );
    let q = Counter::query().filter(Counter::ID.is_in([2_i64, 4]));
    assert_eq!(q.shards().unwrap(), [ShardId::new(0)]);

    cluster
        .set_placement::<Counter>(Placement::resolver(AllOn(ShardId::new(2))))
        .unwrap();
    Counter::create_table(&cluster).await.unwrap();
    Counter { id: 11, value: 0 }.insert(&cluster).await.unwrap();
    assert_eq!(shard_ids::<Counter>(&cluster, ShardId::new(2)).await, [11]);
    assert_eq!(
        Counter::query().count(&cluster).await.unwrap(),
        1,
        "queries follow the run-time placement"
    );
    let err = cluster
        .set_placement::<Counter>(Placement::resolver(AllOn(ShardId::new(7))))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownShard { .. }), "{err}");
}

/// The same guarantees on PostgreSQL: a shard added to a live cluster serves at once; a shard
/// whose table holds rows is not removed; an empty one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shards_come_and_go() {
    const TEST: &str = "topology_pg_shards_come_and_go";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 2).await;
    Counter::create_table(&cluster).await.unwrap();
    Counter { id: 1, value: 1 }.insert(&cluster).await.unwrap(); // shard_1

    let url = env
        .create_database(&pg::database_name(TEST, "shard_2"))
        .await
        .unwrap();
    cluster.add_shard("shard_2", &url).await.unwrap();
    cluster
        .set_placement::<Counter>(Placement::resolver(AllOn(ShardId::new(2))))
        .unwrap();
    Counter::create_table(&cluster).await.unwrap();
    Counter { id: 2, value: 2 }.insert(&cluster).await.unwrap();
    assert_eq!(
        Counter::on_shard(ShardId::new(2))
            .count(&cluster)
            .await
            .unwrap(),
        1
    );
    cluster.clear_placement::<Counter>().unwrap();

    let err = cluster.remove_shard("shard_1").await.unwrap_err();
    assert!(err.to_string().contains("counters"), "{err}");
    let err = cluster.remove_shard("shard_2").await.unwrap_err();
    assert!(err.to_string().contains("1 row"), "{err}");
    assert_eq!(
        Counter::find(&cluster, 1).await.unwrap(),
        Some(Counter { id: 1, value: 1 })
    );
    sqlx::query("DELETE FROM counters")
        .execute(cluster.pool("shard_2").unwrap())
        .await
        .unwrap();
    cluster.remove_shard("shard_2").await.unwrap();
    assert_eq!(
        cluster.shard_names().collect::<Vec<_>>(),
        ["shard_0", "shard_1"]
    );
}

#[test]
fn placement_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Placement>();
    send_sync::<grant::PlacementState>();
    send_sync::<grant::Directory>();
    send_sync::<ConsistentHashResolver>();
}
