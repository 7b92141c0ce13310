//! Transactions on SQLite shard files: single-shard transactions routed by key (commit,
//! rollback, drop, refusal of other shards' rows and queries), multi-shard transactions refused
//! (no two-phase commit), reference tables, shard-key moves.

mod common;

use common::{User, sqlite_cluster, tempdir, user};
use grant::prelude::*;
use grant::{ShardTx, Transaction};

/// A reference table: the same rows on every shard.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "countries", reference)]
pub struct Country {
    /// ISO code.
    #[primary_key]
    pub code: String,
    /// English name.
    pub name: String,
}

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

/// Two ids whose users live on different shards.
fn on_two_shards() -> (i64, i64) {
    let a = 1;
    let b = (2..)
        .find(|id| User::shard_for(id) != User::shard_for(&a))
        .unwrap();
    (a, b)
}

/// How many copies of user `id` exist on the cluster's shards, read shard by shard.
async fn copies(cluster: &Cluster<Sqlite>, id: i64) -> usize {
    let mut n = 0;
    for i in 0..8 {
        let shard = ShardId::new(i);
        n += User::on_shard(shard)
            .filter(User::ID.eq(id))
            .count(cluster)
            .await
            .unwrap() as usize;
    }
    n
}

#[tokio::test]
async fn handles_and_futures_are_send() {
    assert_send_sync::<ShardTx<Sqlite>>();
    assert_send_sync::<Transaction<Sqlite>>();
    assert_send_sync::<ShardTx<Postgres>>();
    assert_send_sync::<Transaction<Postgres>>();
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    assert_send(&cluster.begin_for::<User>(&1));
    assert_send(&cluster.begin());
    assert_send(&cluster.recover());
    let mut tx = cluster.begin_for::<User>(&1).await.unwrap();
    assert_send(&tx.find::<User>(1));
    assert_send(&tx.insert(&user(1)));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn single_shard_commit_rollback_and_drop() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    User::create_table(&cluster).await.unwrap();

    // Commit: visible afterwards, and inside the transaction before.
    let mut tx = cluster.begin_for::<User>(&7).await.unwrap();
    assert_eq!(tx.shard(), User::shard_for(&7));
    tx.insert(&user(7)).await.unwrap();
    assert_eq!(tx.find::<User>(7).await.unwrap(), Some(user(7)));
    let mut changed = user(7);
    changed.balance = 1234;
    tx.update(&changed).await.unwrap();
    assert_eq!(
        tx.one(User::query().filter(User::ID.eq(7)))
            .await
            .unwrap()
            .map(|u| u.balance),
        Some(1234)
    );
    assert_eq!(
        tx.count(User::query().filter(User::ID.eq(7)))
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(User::find(&cluster, 7).await.unwrap(), Some(changed));

    // Rollback: nothing stays.
    let mut tx = cluster.begin_for::<User>(&8).await.unwrap();
    tx.insert(&user(8)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(User::find(&cluster, 8).await.unwrap(), None);
    assert!(User::find(&cluster, 7).await.unwrap().is_some());

    // Dropped without commit: rolled back, and the shard is usable right away.
    {
        let mut tx = cluster.begin_for::<User>(&9).await.unwrap();
        tx.insert(&user(9)).await.unwrap();
    }
    assert_eq!(User::find(&cluster, 9).await.unwrap(), None);
    user(9).insert(&cluster).await.unwrap();
    assert_eq!(User::find(&cluster, 9).await.unwrap(), Some(user(9)));
}

#[tokio::test]
async fn a_failed_statement_rolls_back_the_whole_transaction() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    User::create_table(&cluster).await.unwrap();
    user(7).insert(&cluster).await.unwrap();
    let same: i64 = (8..)
        .find(|id| User::shard_for(id) == User::shard_for(&7))
        .unwrap();
    let outcome = cluster
        .transaction_for::<User, _, _>(&7, move |tx| {
            Box::pin(async move {
                tx.insert(&user(same)).await?;
                tx.insert(&user(7)).await?; // duplicate key: fails
                Ok(())
            })
        })
        .await;
    assert!(matches!(outcome, Err(Error::Shard { .. })), "{outcome:?}");
    assert_eq!(User::find(&cluster, same).await.unwrap(), None);

    let balance = cluster
        .transaction_for::<User, _, _>(&7, |tx| {
            Box::pin(async move {
                let mut u = tx.find_for_update::<User>(7).await?.expect("user 7");
                u.balance += 100;
                tx.update(&u).await?;
                Ok(u.balance)
            })
        })
        .await
        .unwrap();
    assert_eq!(
        User::find(&cluster, 7).await.unwrap().unwrap().balance,
        balance
    );
}

#[tokio::test]
async fn statements_for_another_shard_are_refused_and_never_run() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    User::create_table(&cluster).await.unwrap();
    let (a, b) = on_two_shards();
    user(b).insert(&cluster).await.unwrap();

    let mut tx = cluster.begin_for::<User>(&a).await.unwrap();
    tx.insert(&user(a)).await.unwrap();
    let check = |err: Error| match &err {
        Error::WrongShard {
            model,
            key,
            shard,
            transaction_shard,
        } => {
            assert_eq!(*model, "User");
            assert!(key.contains(&b.to_string()), "{err}");
            assert_eq!(*shard, User::shard_for(&b));
            assert_eq!(*transaction_shard, User::shard_for(&a));
            let text = err.to_string();
            assert!(text.contains(&User::shard_for(&b).to_string()), "{text}");
            assert!(text.contains(&User::shard_for(&a).to_string()), "{text}");
        }
        other => panic!("expected WrongShard, got {other}"),
    };
    let mut other = user(b);
    other.balance = -1;
    let fresh: i64 = (b + 1..)
        .find(|id| User::shard_for(id) == User::shard_for(&b))
        .unwrap();
    check_fresh(tx.insert(&user(fresh)).await.unwrap_err(), fresh);
    check(tx.update(&other).await.unwrap_err());
    check(tx.delete(&other).await.map(|_| ()).unwrap_err());
    check(tx.find::<User>(b).await.map(|_| ()).unwrap_err());
    check(
        tx.all(User::query().filter(User::ID.eq(b)))
            .await
            .map(|_| ())
            .unwrap_err(),
    );
    // A query with no shard key would visit every shard: refused, naming them.
    let err = tx
        .count(User::query().filter(User::BALANCE.gt(0)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { model: "User", reason } if reason.contains("on_shard")),
        "{err}"
    );
    // The explicit form for this shard works.
    assert_eq!(tx.count(User::on_shard(tx.shard())).await.unwrap(), 1);
    // The transaction is still usable after refusals: nothing ran.
    tx.commit().await.unwrap();
    assert_eq!(User::find(&cluster, a).await.unwrap(), Some(user(a)));
    assert_eq!(User::find(&cluster, b).await.unwrap(), Some(user(b)));
    assert_eq!(copies(&cluster, b).await, 1);
    assert_eq!(copies(&cluster, fresh).await, 0);
}

fn check_fresh(err: Error, id: i64) {
    assert!(
        matches!(&err, Error::WrongShard { model: "User", key, .. } if *key == id.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_refuses_a_transaction_over_two_shards() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    User::create_table(&cluster).await.unwrap();
    let (a, b) = on_two_shards();

    let mut tx = cluster.begin().await.unwrap();
    tx.insert(&user(a)).await.unwrap();
    let err = tx.insert(&user(b)).await.unwrap_err();
    match &err {
        Error::Unsupported { model, reason } => {
            assert_eq!(*model, "User");
            assert!(reason.contains("saga"), "{err}");
            assert!(reason.contains("SQLite"), "{err}");
        }
        other => panic!("expected Unsupported, got {other}"),
    }
    assert_eq!(
        tx.shards(),
        vec![
            cluster
                .shard_id(User::shard_for(&a).index() as usize)
                .unwrap()
        ]
    );
    // One shard: a plain commit.
    tx.commit().await.unwrap();
    assert_eq!(User::find(&cluster, a).await.unwrap(), Some(user(a)));
    assert_eq!(User::find(&cluster, b).await.unwrap(), None);

    // Moving a row across shards is a two-shard transaction: refused, the row stays.
    let moved = cluster.move_key(&user(a), b).await.unwrap_err();
    assert!(matches!(moved, Error::Unsupported { .. }), "{moved}");
    assert_eq!(copies(&cluster, a).await, 1);
    assert_eq!(copies(&cluster, b).await, 0);
    // Within one shard it works.
    let same: i64 = (a + 1..)
        .find(|id| User::shard_for(id) == User::shard_for(&a))
        .unwrap();
    cluster.move_key(&user(a), same).await.unwrap();
    assert_eq!(User::find(&cluster, a).await.unwrap(), None);
    let mut expected = user(a);
    expected.id = same;
    assert_eq!(User::find(&cluster, same).await.unwrap(), Some(expected));
}

#[tokio::test]
async fn reference_tables_on_sqlite() {
    // One shard: reference writes are one plain transaction.
    let dir = tempdir();
    let single = sqlite_cluster(dir.path(), 1).await;
    Country::create_table(&single).await.unwrap();
    let fr = Country {
        code: "FR".into(),
        name: "France".into(),
    };
    fr.insert(&single).await.unwrap();
    assert_eq!(
        Country::find(&single, "FR".to_string()).await.unwrap(),
        Some(fr.clone())
    );

    // Several SQLite shards: no atomic fan-out, refused, nothing written anywhere.
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    Country::create_table(&cluster).await.unwrap(); // on every shard
    User::create_table(&cluster).await.unwrap();
    let err = fr.insert(&cluster).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { model: "Country", reason } if reason.contains("reference")),
        "{err}"
    );
    for i in 0..8 {
        // The model reads shard_0 only; check every shard's table with a shard transaction.
        let mut tx = cluster
            .begin_on(cluster.shard_id(i).unwrap())
            .await
            .unwrap();
        assert_eq!(
            tx.count(Country::query()).await.unwrap(),
            0,
            "shard_{i} got a reference row"
        );
        tx.rollback().await.unwrap();
    }

    // Reads inside a single-shard transaction come from that shard; writes are refused there.
    let mut tx = cluster.begin_for::<User>(&5).await.unwrap();
    tx.execute_raw("INSERT INTO countries (code, name) VALUES ('DE', 'Germany')")
        .await
        .unwrap();
    assert_eq!(
        tx.find::<Country>("DE".into())
            .await
            .unwrap()
            .map(|c| c.name),
        Some("Germany".into())
    );
    let err = tx.insert(&fr).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                model: "Country",
                ..
            }
        ),
        "{err}"
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn an_unknown_coordinator_shard_fails_the_connect() {
    let dir = tempdir();
    let err = Cluster::<Sqlite>::builder()
        .shard("shard_0", dir.path().join("a.db").display().to_string())
        .two_phase(grant::TwoPhase::default().coordinator("nowhere"))
        .connect()
        .await
        .unwrap_err();
    match &err {
        Error::Config(message) => {
            assert!(message.contains("`nowhere`"), "{err}");
            assert!(message.contains("shard_0"), "{err}");
        }
        other => panic!("expected Config, got {other}"),
    }
}

#[tokio::test]
async fn transactions_follow_a_run_time_placement_and_refuse_a_migration() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 8).await;
    User::create_table(&cluster).await.unwrap();
    // A run-time placement that differs from the static one (4 shards instead of 8).
    let four = grant::resolve::HashResolver::new(4);
    cluster
        .set_placement::<User>(grant::Placement::resolver(four))
        .unwrap_or_else(|e| panic!("{e}"));
    // A key whose shards differ under the two placements.
    let id = (1..)
        .find(|&id: &i64| User::shard_for(&id).index() != four.shard_for(&id).index())
        .unwrap();
    let mut tx = cluster.begin_for::<User>(&id).await.unwrap();
    tx.insert(&user(id)).await.unwrap();
    tx.commit().await.unwrap();
    // On the run-time placement's shard, found by every path.
    let here = cluster
        .shard_id(four.shard_for(&id).index() as usize)
        .unwrap();
    assert_eq!(
        User::on_shard(here)
            .filter(User::ID.eq(id))
            .count(&cluster)
            .await
            .unwrap(),
        1
    );
    assert_eq!(User::find(&cluster, id).await.unwrap(), Some(user(id)));
    // A transaction opened on another shard refuses the row, naming where it lives.
    let elsewhere = cluster
        .shard_id(User::shard_for(&id).index() as usize)
        .unwrap();
    let mut tx = cluster.begin_on(elsewhere).await.unwrap();
    let err = tx.find::<User>(id).await.unwrap_err();
    assert!(matches!(err, Error::WrongShard { .. }), "{err}");
    tx.rollback().await.unwrap();
    // A cluster-wide transaction routes each row by the placement too (one shard here).
    let mut tx = cluster.begin().await.unwrap();
    let mut changed = user(id);
    changed.balance += 5;
    tx.update(&changed).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(User::find(&cluster, id).await.unwrap(), Some(changed));

    // While the model migrates, a transaction would bypass the dual writes: refused.
    let epoch = cluster
        .begin_migration::<User>(grant::Placement::resolver(
            grant::resolve::HashResolver::new(8),
        ))
        .unwrap();
    let err = cluster.begin_for::<User>(&id).await.unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. }) && err.to_string().contains("being resharded"),
        "{err}"
    );
    cluster.abort_migration::<User>(epoch).unwrap();
    assert!(cluster.begin_for::<User>(&id).await.is_ok());
}
