//! Isolating a hot tenant: one customer of a project tracker outgrew its shard, so it moves —
//! its projects, issues and comments together — to a shard of its own, online, while it keeps
//! writing. One `TenantMove`; afterwards the tenant's queries and transactions go to its new
//! shard alone, every other tenant stays where it was, and a process started later finds the
//! tenant there (the topology store).
//!
//! Run with `cargo run --example hot_tenant` (SQLite shard files in a temporary directory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use grant::prelude::*;
use grant::reshard::TenantMove;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A project of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "projects")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
struct Project {
    #[primary_key]
    tenant_id: i64,
    #[primary_key]
    id: i64,
    name: String,
}

/// An issue of a project.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "issues", belongs_to(Project, key(tenant_id, project_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
struct Issue {
    #[primary_key]
    tenant_id: i64,
    #[primary_key]
    id: i64,
    project_id: i64,
    title: String,
    open: bool,
}

/// A comment on an issue.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "comments", belongs_to(Issue, key(tenant_id, issue_id)))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
struct Comment {
    #[primary_key]
    tenant_id: i64,
    #[primary_key]
    id: i64,
    issue_id: i64,
    body: String,
}

/// The customer that outgrew its shard.
const HOT: i64 = 7;

fn shard_url(dir: &std::path::Path, name: &str) -> String {
    dir.join(format!("{name}.db")).display().to_string()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let mut builder = Cluster::<Sqlite>::builder();
    for i in 0..4 {
        let name = format!("shard_{i}");
        builder = builder.shard(name.clone(), shard_url(dir.path(), &name));
    }
    let cluster = builder.connect().await?;
    Project::create_table(&cluster).await?;
    Issue::create_table(&cluster).await?;
    Comment::create_table(&cluster).await?;

    // 20 tenants; tenant 7 has 30 times the others' data.
    for tenant_id in 1..=20 {
        let scale = if tenant_id == HOT { 30 } else { 1 };
        let projects: Vec<Project> = (1..=3 * scale)
            .map(|id| Project {
                tenant_id,
                id,
                name: format!("project {id}"),
            })
            .collect();
        let issues: Vec<Issue> = (1..=40 * scale)
            .map(|id| Issue {
                tenant_id,
                id,
                project_id: 1 + id % (3 * scale),
                title: format!("issue {id}"),
                open: id % 3 != 0,
            })
            .collect();
        let comments: Vec<Comment> = (1..=100 * scale)
            .map(|id| Comment {
                tenant_id,
                id,
                issue_id: 1 + id % (40 * scale),
                body: format!("comment {id}"),
            })
            .collect();
        Project::insert_many(&cluster, &projects).await?;
        Issue::insert_many(&cluster, &issues).await?;
        Comment::insert_many(&cluster, &comments).await?;
    }
    let home = Issue::shard_for(&HOT);
    println!("before: tenant {HOT} lives on {home}");
    println!("{}", cluster.distribution::<Comment>().await?);

    // The tenant keeps working while it moves: a writer adds comments and closes issues.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (cluster, stop, written) = (cluster.clone(), Arc::clone(&stop), Arc::clone(&written));
        tokio::spawn(async move {
            let mut id = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let comment = Comment {
                    tenant_id: HOT,
                    id,
                    issue_id: 1 + id % 1_200,
                    body: "still here".into(),
                };
                comment.insert(&cluster).await?;
                if let Some(mut issue) = Issue::find(&cluster, (HOT, 1 + id % 1_200)).await? {
                    issue.open = false;
                    issue.update(&cluster).await?;
                }
                written.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, grant::Error>(())
        })
    };

    // A shard of its own, and the move: every co-located model of the tenant, parents first.
    cluster
        .add_shard("big_customer", &shard_url(dir.path(), "big_customer"))
        .await?;
    let started = Instant::now();
    let moved = TenantMove::new(&cluster, HOT, "big_customer")
        .model::<Project>()
        .model::<Issue>()
        .model::<Comment>()
        .run()
        .await?;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.await??;
    for m in &moved {
        let status = m.status.as_ref().expect("the tenant moved");
        println!(
            "moved {:>7}: {:>5} rows, cutover pause {:?}",
            m.model,
            status.rows_copied,
            status.pause.unwrap_or_default()
        );
    }
    println!(
        "the move took {took:?}; the tenant wrote {} times meanwhile, none refused",
        written.load(Ordering::Relaxed)
    );
    println!("{}", cluster.distribution::<Comment>().await?);

    // The tenant's pages are one statement on its shard; its transactions follow it.
    cluster.log().start();
    let project = Project::find(&cluster, (HOT, 2)).await?.expect("project 2");
    let open = Issue::belonging_to(&project)
        .filter(Issue::OPEN.eq(true))
        .count(&cluster)
        .await?;
    let sent = cluster.log().stop();
    println!(
        "project 2 of tenant {HOT}: {open} open issues, read on {:?}",
        sent.iter().map(|s| s.shard.to_string()).collect::<Vec<_>>()
    );
    assert!(sent.iter().all(|s| &*s.shard == "big_customer"));
    cluster
        .transaction_for::<Issue, _, _>(&HOT, |tx| {
            Box::pin(async move {
                let mut issue = tx
                    .find_for_update::<Issue>((HOT, 2))
                    .await?
                    .expect("issue 2");
                issue.title = "renamed in a transaction".into();
                tx.update(&issue).await?;
                Ok(())
            })
        })
        .await?;

    // Every other tenant stayed; the hot one's rows are all on the new shard, once.
    let other = (1..=20)
        .find(|t| *t != HOT && Issue::shard_for(t) == home)
        .unwrap();
    let stayed = Issue::on_shard(home)
        .filter(Issue::TENANT_ID.eq(other))
        .count(&cluster)
        .await?;
    let big = cluster.shard_id(4).expect("the new shard");
    let on_big = Comment::on_shard(big).count(&cluster).await?;
    let total = Comment::query()
        .filter(Comment::TENANT_ID.eq(HOT))
        .count(&cluster)
        .await?;
    println!(
        "tenant {other} still has {stayed} issues on {home}; tenant {HOT}: {on_big} of {total} comments on {big}"
    );
    assert_eq!(on_big, total);
    assert_eq!(total, 3_000 + written.load(Ordering::Relaxed));

    // A process started later reads the placement from the topology store.
    let mut later = Cluster::<Sqlite>::builder();
    for i in 0..4 {
        let name = format!("shard_{i}");
        later = later.shard(name.clone(), shard_url(dir.path(), &name));
    }
    let later = later
        .shard("big_customer", shard_url(dir.path(), "big_customer"))
        .connect()
        .await?;
    let renamed = Issue::find(&later, (HOT, 2)).await?.expect("issue 2");
    println!(
        "a new process finds issue 2 of tenant {HOT}: {:?}",
        renamed.title
    );
    assert_eq!(renamed.title, "renamed in a transaction");
    Ok(())
}
