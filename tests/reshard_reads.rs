//! Reads while a model migrates answer as one database holding its rows would, also when the
//! reshard copies rows onto shards the old placement reads (8 → 4 hash: every target is an
//! old shard): count, sum, every row, a deep page — at each phase, with writes in between,
//! through cutover or rollback, on SQLite files and PostgreSQL. The oracle is the test's own
//! record of what it wrote.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/reshard.rs"]
mod scenario;
#[path = "common/sides.rs"]
#[macro_use]
mod sides;

use std::collections::BTreeMap;

use grant::prelude::*;
use grant::reshard::{Phase, ReshardBackend, ReshardJob, ReshardOptions, ReshardPlan};
use grant::resolve::HashResolver;
use grant::{FromShardRow, Placement};
use scenario::{Account, account, eight, preload};
use sides::Side;

fn four() -> Placement {
    Placement::resolver(HashResolver::new(4))
}

/// Inserts `n` new accounts from `next`, updates and deletes a few old ones; records it all.
async fn write<DB: ReshardBackend>(
    c: &Cluster<DB>,
    expected: &mut BTreeMap<i64, Account>,
    next: &mut i64,
    n: i64,
) where
    Account: FromShardRow<DB>,
{
    for _ in 0..n {
        let a = account(*next);
        a.insert(c).await.unwrap();
        expected.insert(a.id, a);
        *next += 1;
    }
    let ids: Vec<i64> = expected
        .keys()
        .copied()
        .step_by(97)
        .take(n as usize)
        .collect();
    for (i, id) in ids.into_iter().enumerate() {
        if i % 3 == 0 {
            assert!(expected[&id].delete(c).await.unwrap());
            expected.remove(&id);
        } else {
            let mut a = expected[&id].clone();
            a.balance += 1;
            a.version += 1;
            a.update(c).await.unwrap();
            expected.insert(id, a);
        }
    }
}

async fn reads_match<DB: ReshardBackend>(
    c: &Cluster<DB>,
    expected: &BTreeMap<i64, Account>,
    when: &str,
) where
    Account: FromShardRow<DB>,
{
    assert_eq!(
        Account::query().count(c).await.unwrap(),
        expected.len() as u64,
        "count {when}"
    );
    assert_eq!(
        Account::query().sum(Account::BALANCE, c).await.unwrap(),
        Some(expected.values().map(|a| a.balance).sum::<i64>()),
        "sum {when}"
    );
    let mut all = Account::query().all(c).await.unwrap();
    all.sort_by_key(|a| a.id);
    let want: Vec<&Account> = expected.values().collect();
    assert_eq!(all.len(), want.len(), "rows {when}");
    assert!(all.iter().zip(&want).all(|(a, b)| a == *b), "rows {when}");
    let page = Account::query()
        .order_by(Account::ID, Order::Asc)
        .offset(1_000)
        .limit(25)
        .all(c)
        .await
        .unwrap();
    let want: Vec<Account> = expected.values().skip(1_000).take(25).cloned().collect();
    assert_eq!(page, want, "deep page {when}");
    let low = Account::query()
        .filter(Account::ID.lt(500))
        .count(c)
        .await
        .unwrap();
    assert_eq!(
        low,
        expected.range(..500).count() as u64,
        "filtered count {when}"
    );
}

async fn shrink<S: Side>(side: &S, roll_back: bool)
where
    S::DB: ReshardBackend,
    Account: FromShardRow<S::DB>,
{
    let c = side.cluster(8).await;
    c.set_placement::<Account>(eight()).unwrap();
    let mut expected = preload(&c, 3_000).await;
    let mut next = 3_001;
    reads_match(&c, &expected, "before").await;
    let plan = ReshardPlan::new::<Account, S::DB>(&c, four())
        .await
        .unwrap();
    assert!(plan.moves().iter().all(|m| m.to.index() < 4));
    let job = ReshardJob::<Account, S::DB>::start(&c, plan, ReshardOptions::default())
        .await
        .unwrap();
    write(&c, &mut expected, &mut next, 40).await;
    reads_match(&c, &expected, "with dual writes").await;
    job.copy().await.unwrap();
    reads_match(&c, &expected, "after the copy").await;
    write(&c, &mut expected, &mut next, 40).await;
    reads_match(&c, &expected, "after the copy and writes").await;
    job.verify().await.unwrap();
    reads_match(&c, &expected, "after verifying").await;
    if roll_back {
        job.rollback().await.unwrap();
        assert_eq!(job.status().phase, Phase::RolledBack);
    } else {
        job.cutover().await.unwrap();
        assert_eq!(job.status().phase, Phase::Done);
    }
    reads_match(&c, &expected, "at the end").await;
    write(&c, &mut expected, &mut next, 40).await;
    reads_match(&c, &expected, "after writes at the end").await;
    // A new process reads the same.
    let mut builder = Cluster::<S::DB>::builder();
    for i in 0..8 {
        builder = builder.shard(format!("shard_{i}"), side.shard_url(i));
    }
    let fresh = builder.connect().await.unwrap();
    reads_match(&fresh, &expected, "in a new process").await;
}

async fn shrink_and_cut_over<S: Side>(side: &S)
where
    S::DB: ReshardBackend,
    Account: FromShardRow<S::DB>,
{
    shrink(side, false).await;
}

async fn shrink_and_roll_back<S: Side>(side: &S)
where
    S::DB: ReshardBackend,
    Account: FromShardRow<S::DB>,
{
    shrink(side, true).await;
}

on_both!("reshard_reads_", shrink_and_cut_over);
on_both!("reshard_reads_", shrink_and_roll_back);
