//! The schema check on real databases (SQLite files and PostgreSQL): a table made by an older
//! version of a model (a migration not yet applied) is an error naming the table, the shard and
//! the missing column — at `cluster.check_schema::<M>()`, at `create_table` and before the
//! model's first statement on each shard — never a wrong answer (SQLite would read the unknown
//! `"due_at"` as the string literal `'due_at'`: 40 of 40 rows "not null"). After
//! `cluster.migrate(..)` adds the column everything works; a migration that drops it again is
//! noticed (the check's cache is cleared by migrations).

mod common;
#[path = "common/pg.rs"]
mod pg;

use grant::prelude::*;
use grant::{Backend, FromShardRow, Migration};

/// Version 1 of the model: no `due_at`.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tasks")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct TaskV1 {
    #[primary_key]
    id: i64,
    title: String,
}

/// Version 2: `due_at` added — the table needs a migration first.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tasks")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Task {
    #[primary_key]
    id: i64,
    title: String,
    due_at: Option<String>,
}

/// A reference table, version 1.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "currencies", reference)]
struct CurrencyV1 {
    #[primary_key]
    code: String,
}

/// Version 2 of the reference table: `digits` added, not migrated.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "currencies", reference)]
struct Currency {
    #[primary_key]
    code: String,
    digits: i32,
}

/// A model whose table was never created.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "ghosts")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct Ghost {
    #[primary_key]
    id: i64,
}

const ADD_DUE_AT: &[Migration] = &[Migration {
    name: "0002_tasks_due_at",
    sql: "ALTER TABLE tasks ADD COLUMN due_at TEXT",
}];

const DROP_DUE_AT: &[Migration] = &[Migration {
    name: "0003_tasks_drop_due_at",
    sql: "ALTER TABLE tasks DROP COLUMN due_at",
}];

const ADD_DUE_AT_AGAIN: &[Migration] = &[Migration {
    name: "0004_tasks_due_at_again",
    sql: "ALTER TABLE tasks ADD COLUMN due_at TEXT",
}];

const DROP_DUE_AT_AGAIN: &[Migration] = &[Migration {
    name: "0005_tasks_drop_due_at_again",
    sql: "ALTER TABLE tasks DROP COLUMN due_at",
}];

fn assert_missing_due_at(err: &Error) {
    match err {
        Error::SchemaMismatch {
            model,
            table,
            shard,
            missing,
            ..
        } => {
            assert_eq!(*model, "Task");
            assert_eq!(*table, "tasks");
            assert!(shard.name().starts_with("shard_"), "{err}");
            assert_eq!(missing, &["due_at"]);
        }
        other => panic!("expected SchemaMismatch, got {other:?}: {other}"),
    }
    let text = err.to_string();
    for needle in ["`tasks`", "shard_", "`due_at`", "migrate"] {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }
}

/// Every operation of `Task` fails on the un-migrated table, naming it.
async fn every_operation_refuses<DB: Backend>(cluster: &Cluster<DB>)
where
    Task: FromShardRow<DB>,
{
    assert_missing_due_at(&cluster.check_schema::<Task>().await.unwrap_err());
    assert_missing_due_at(
        &Task::on_all_shards()
            .filter(Task::DUE_AT.is_not_null())
            .count(cluster)
            .await
            .unwrap_err(),
    );
    assert_missing_due_at(
        &Task::on_all_shards()
            .filter(Task::DUE_AT.is_not_null())
            .all(cluster)
            .await
            .unwrap_err(),
    );
    assert_missing_due_at(&Task::find(cluster, 7).await.unwrap_err());
    let row = Task {
        id: 1_000,
        title: "new".into(),
        due_at: Some("2026-12-24".into()),
    };
    assert_missing_due_at(&row.insert(cluster).await.unwrap_err());
    assert_missing_due_at(&Task::create_table(cluster).await.unwrap_err());

    // Inside a transaction too, checked on the transaction's own connection.
    let mut tx = cluster.begin_for::<Task>(&7).await.unwrap();
    assert_missing_due_at(&tx.find::<Task>(7).await.unwrap_err());
    let row = Task {
        id: 7,
        title: "seven".into(),
        due_at: None,
    };
    assert_missing_due_at(&tx.update(&row).await.unwrap_err());
    assert_missing_due_at(&tx.count(Task::on_shard(tx.shard())).await.unwrap_err());
    tx.rollback().await.unwrap();
}

/// `cluster` and `other` are two processes' views of the same shard databases.
async fn suite<DB: Backend>(cluster: &Cluster<DB>, other: &Cluster<DB>)
where
    TaskV1: FromShardRow<DB>,
    Task: FromShardRow<DB>,
    Ghost: FromShardRow<DB>,
    CurrencyV1: FromShardRow<DB>,
    Currency: FromShardRow<DB>,
{
    // The old model made the table and wrote 40 rows.
    TaskV1::create_table(cluster).await.unwrap();
    let rows: Vec<TaskV1> = (0..40)
        .map(|id| TaskV1 {
            id,
            title: format!("task {id}"),
        })
        .collect();
    TaskV1::insert_many(cluster, &rows).await.unwrap();
    cluster.check_schema::<TaskV1>().await.unwrap();

    // The new model, before the migration: errors, not answers.
    every_operation_refuses(cluster).await;
    assert_eq!(TaskV1::on_all_shards().count(cluster).await.unwrap(), 40);

    // A reference table made by an older model: `create_table` and reads say so.
    CurrencyV1::create_table(cluster).await.unwrap();
    for err in [
        Currency::create_table(cluster).await.unwrap_err(),
        Currency::find(cluster, "EUR".to_string())
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::SchemaMismatch { model: "Currency", table: "currencies", missing, .. } if missing == &["digits"]),
            "{err:?}"
        );
    }

    // A table missing entirely is named too.
    let err = cluster.check_schema::<Ghost>().await.unwrap_err();
    assert!(
        matches!(&err, Error::SchemaMismatch { table: "ghosts", missing, .. } if missing.is_empty()),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(Ghost::find(cluster, 1).await.is_err());

    // Migrated: everything works.
    cluster.migrate(ADD_DUE_AT).await.into_result().unwrap();
    cluster.check_schema::<Task>().await.unwrap();
    Task::create_table(cluster).await.unwrap();
    assert_eq!(
        Task::on_all_shards()
            .filter(Task::DUE_AT.is_not_null())
            .count(cluster)
            .await
            .unwrap(),
        0
    );
    let seven = Task::find(cluster, 7).await.unwrap().unwrap();
    assert_eq!(seven.due_at, None);
    Task {
        id: 1_000,
        title: "new".into(),
        due_at: Some("2026-12-24".into()),
    }
    .insert(cluster)
    .await
    .unwrap();
    assert_eq!(
        Task::on_all_shards()
            .filter(Task::DUE_AT.is_not_null())
            .count(cluster)
            .await
            .unwrap(),
        1
    );

    // A migration that takes the column away again is noticed: checks are re-run after it.
    cluster.migrate(DROP_DUE_AT).await.into_result().unwrap();
    every_operation_refuses(cluster).await;

    // Another process drops the column after this one checked the table: its migration
    // cannot clear this process's cache, so the first statement meets the missing column —
    // an error, never an answer (SQLite no longer reads `"due_at"` as a string) — and the
    // statements after it are checked again and say what to do.
    cluster
        .migrate(ADD_DUE_AT_AGAIN)
        .await
        .into_result()
        .unwrap();
    assert!(Task::find(cluster, 7).await.unwrap().is_some());
    let filtered = || {
        Task::on_all_shards()
            .filter(Task::DUE_AT.is_not_null())
            .count(cluster)
    };
    assert_eq!(filtered().await.unwrap(), 0);
    other
        .migrate(DROP_DUE_AT_AGAIN)
        .await
        .into_result()
        .unwrap();
    let err = filtered().await.unwrap_err();
    assert!(
        err.to_string().contains("due_at"),
        "the first statement after another process's migration: {err}"
    );
    assert_missing_due_at(&filtered().await.unwrap_err());
    assert_missing_due_at(&Task::find(cluster, 7).await.unwrap_err());

    // A double-quoted name that is no column is an error on every backend.
    for (shard, outcome) in cluster
        .execute_on_all_shards("SELECT \"no_such_column\" FROM tasks")
        .await
    {
        assert!(outcome.is_err(), "{shard}: {outcome:?}");
    }
}

#[tokio::test]
async fn schema_check_on_sqlite_files() {
    let dir = common::tempdir();
    let cluster = common::sqlite_cluster(dir.path(), 2).await;
    let other = common::sqlite_cluster(dir.path(), 2).await;
    suite(&cluster, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_check_on_postgres() {
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster("schema_check", 2).await;
    let mut other = Cluster::<Postgres>::builder();
    for i in 0..2 {
        other = other.shard(format!("shard_{i}"), pg::shard_url(env, "schema_check", i));
    }
    let other = other.connect().await.unwrap();
    suite(&cluster, &other).await;
}
