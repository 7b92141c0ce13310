//! Schema changes on all shards with per-shard reports; metrics per statement.

mod common;

use common::{User, sqlite_cluster, tempdir, user};
use grant::prelude::*;
use grant::{Migration, observe};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_notes",
        sql: "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
    },
    Migration {
        name: "0002_notes_index",
        sql: "CREATE INDEX notes_body ON notes (body)",
    },
];

#[tokio::test]
async fn migrations_report_every_shard_and_resume_after_a_half_applied_run() {
    let dir = tempdir();
    let cluster = sqlite_cluster(dir.path(), 4).await;
    // shard_2 already has a conflicting table: the first migration must fail there only.
    sqlx::query("CREATE TABLE notes (other INTEGER)")
        .execute(cluster.pool("shard_2").unwrap())
        .await
        .unwrap();

    let report = cluster.migrate(MIGRATIONS).await;
    assert!(!report.is_complete());
    for outcome in &report.shards {
        if outcome.shard == "shard_2" {
            let (name, error) = outcome.failed.as_ref().unwrap();
            assert_eq!(*name, "0001_notes");
            assert!(error.to_string().contains("shard_2"), "{error}");
            assert!(outcome.applied.is_empty());
        } else {
            assert_eq!(outcome.applied, ["0001_notes", "0002_notes_index"]);
            assert!(outcome.failed.is_none());
        }
    }
    let err = cluster.migrate(MIGRATIONS).await.into_result().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("half-applied") && msg.contains("shard_2"),
        "{msg}"
    );

    // Fix the cause; a rerun applies only what is missing.
    sqlx::query("DROP TABLE notes")
        .execute(cluster.pool("shard_2").unwrap())
        .await
        .unwrap();
    let report = cluster.migrate(MIGRATIONS).await.into_result().unwrap();
    for outcome in &report.shards {
        if outcome.shard == "shard_2" {
            assert_eq!(outcome.applied, ["0001_notes", "0002_notes_index"]);
        } else {
            assert!(outcome.applied.is_empty());
            assert_eq!(outcome.skipped, ["0001_notes", "0002_notes_index"]);
        }
    }

    let results = cluster
        .execute_on_all_shards("INSERT INTO notes VALUES (1, 'hello')")
        .await;
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|(_, r)| matches!(r, Ok(1))));
    let results = cluster
        .execute_on_all_shards("INSERT INTO notes VALUES (1, 'again')")
        .await;
    for (shard, result) in &results {
        let err = result.as_ref().unwrap_err();
        assert!(err.to_string().contains(shard.as_str()), "{err}");
    }
}

#[test]
fn every_statement_is_counted_per_shard() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
            // 16 statements: 8 CREATE TABLE, then 8 schema checks (each reads the table's 6
            // columns), which the later statements find cached.
            User::create_table(&cluster).await.unwrap();
            user(7).insert(&cluster).await.unwrap(); // 1
            User::find(&cluster, 7).await.unwrap(); // 1
            User::on_all_shards().all(&cluster).await.unwrap(); // 8 (streamed)
            let _ = User::find(&cluster, 7).await; // 1
        })
    });
    let mut per_shard = std::collections::BTreeMap::<String, u64>::new();
    let mut rows_seen = 0.0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        let shard = labels
            .iter()
            .find(|(k, _)| k == "shard")
            .map(|(_, v)| v.clone())
            .unwrap();
        assert!(labels.contains(&("model".into(), "User".into())));
        assert!(labels.contains(&("endpoint".into(), "primary".into())));
        match (key.key().name(), value) {
            (observe::names::STATEMENTS, DebugValue::Counter(n)) => {
                *per_shard.entry(shard).or_default() += n;
            }
            (observe::names::ROWS, DebugValue::Histogram(values)) => {
                rows_seen += values.iter().map(|v| v.into_inner()).sum::<f64>();
            }
            _ => {}
        }
    }
    let home = User::shard_for(&7).name();
    assert_eq!(per_shard.values().sum::<u64>(), 27, "{per_shard:?}");
    assert_eq!(per_shard[&home], 6, "{per_shard:?}");
    // 8 x 6 columns read by the schema checks + 1 inserted + 1 found + 1 streamed + 1 found.
    assert_eq!(rows_seen, 52.0);
}
