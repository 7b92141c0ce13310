//! A multi-tenant issue tracker: tenants, their users, projects, issues and comments, all
//! sharded by the tenant's uuid (`pg_hash`: where PostgreSQL's `PARTITION BY HASH (tenant_id)`
//! would put them), so everything of one tenant lives on one shard and every page of the
//! application is one routed statement. Real column types (uuid, timestamps, decimals, JSON, an
//! enum), indexes, co-located relations (a comment belongs to its issue and to its author),
//! upserts, updates by filter and cluster-wide ids.
//!
//! Run with `cargo run --example multi_tenant`. Rerunnable: it starts from empty SQLite shard
//! files each time (in `target/grant-multi-tenant`, or the directory in `GRANT_DATA_DIR`).

use chrono::{DateTime, Duration, TimeZone, Utc};
use grant::Json;
use grant::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

/// A tenant's settings, stored as JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Settings {
    theme: String,
    weekly_digest: bool,
}

/// A customer of the tracker.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "tenants")]
#[shard(strategy = "pg_hash", on = "id", count = 4)]
struct Tenant {
    #[primary_key]
    id: Uuid,
    name: String,
    settings: Json<Settings>,
    created_at: DateTime<Utc>,
}

/// A user of a tenant; emails are unique within the tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users", unique(tenant_id, email))]
#[grant(belongs_to(Tenant, key(tenant_id)))]
#[shard(strategy = "pg_hash", on = "tenant_id", count = 4)]
struct User {
    #[primary_key]
    tenant_id: Uuid,
    #[primary_key]
    id: i64,
    email: String,
    name: String,
}

/// A project of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "projects")]
#[grant(belongs_to(Tenant, key(tenant_id)))]
#[shard(strategy = "pg_hash", on = "tenant_id", count = 4)]
struct Project {
    #[primary_key]
    tenant_id: Uuid,
    #[primary_key]
    id: i64,
    name: String,
}

/// Where an issue stands: stored as text.
#[derive(SqlEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Open,
    #[grant(rename = "in_progress")]
    InProgress,
    Closed,
}

/// An issue of a project.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "issues", index(tenant_id, project_id, status))]
#[grant(belongs_to(Project, key("tenant_id", "project_id")))]
#[shard(strategy = "pg_hash", on = "tenant_id", count = 4)]
struct Issue {
    #[primary_key]
    tenant_id: Uuid,
    #[primary_key]
    id: i64,
    project_id: i64,
    title: String,
    status: Status,
    /// Days of work, to the hundredth.
    estimate: Option<Decimal>,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

/// A comment on an issue, by a user: placed with both.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "comments", index(tenant_id, issue_id))]
#[grant(
    belongs_to(Issue, key("tenant_id", "issue_id")),
    belongs_to(User, key("tenant_id", "author_id"))
)]
#[shard(strategy = "pg_hash", on = "tenant_id", count = 4)]
struct Comment {
    #[primary_key]
    tenant_id: Uuid,
    #[primary_key]
    id: i64,
    issue_id: i64,
    author_id: i64,
    body: String,
    posted_at: DateTime<Utc>,
}

#[tokio::main]
async fn main() -> grant::Result<()> {
    let dir = data_dir("grant-multi-tenant")?;
    let mut builder = Cluster::<Sqlite>::builder();
    for i in 0..4 {
        builder = builder.shard(
            format!("shard_{i}"),
            dir.join(format!("shard_{i}.db")).display().to_string(),
        );
    }
    let cluster = builder.connect().await?;
    Tenant::create_table(&cluster).await?;
    User::create_table(&cluster).await?;
    Project::create_table(&cluster).await?;
    Issue::create_table(&cluster).await?;
    Comment::create_table(&cluster).await?;
    // Ids unique across every process of the application, without a round trip each.
    let ids = cluster.id_generator().await?;

    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let tenants: Vec<Tenant> = (0..12_u128)
        .map(|i| Tenant {
            id: Uuid::from_u128(0x6a1e_0000_0000_4000_8000_0000_0000_0000 + i),
            name: format!("tenant {i}"),
            settings: Json(Settings {
                theme: if i % 2 == 0 { "dark" } else { "light" }.into(),
                weekly_digest: i % 3 == 0,
            }),
            created_at: t0 + Duration::days(i as i64),
        })
        .collect();
    Tenant::insert_many(&cluster, &tenants).await?;
    let mut users = Vec::new();
    let mut projects = Vec::new();
    let mut issues = Vec::new();
    let mut comments = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        let members: Vec<User> = (0..4)
            .map(|u| {
                let id = ids.next();
                User {
                    tenant_id: tenant.id,
                    id,
                    email: format!("user{u}@tenant{t}.example"),
                    name: format!("User {u} of tenant {t}"),
                }
            })
            .collect();
        for p in 0..2 {
            let project = Project {
                tenant_id: tenant.id,
                id: ids.next(),
                name: format!("project {p}"),
            };
            for k in 0..5_i64 {
                let issue = Issue {
                    tenant_id: tenant.id,
                    id: ids.next(),
                    project_id: project.id,
                    title: format!("issue {k} of {}", project.name),
                    status: [Status::Open, Status::InProgress, Status::Closed][k as usize % 3],
                    estimate: (k % 4 != 0).then(|| Decimal::new(k * 125, 2)),
                    opened_at: t0 + Duration::hours(k * 7 + t as i64),
                    closed_at: None,
                };
                for c in 0..(k + 1) {
                    comments.push(Comment {
                        tenant_id: tenant.id,
                        id: ids.next(),
                        issue_id: issue.id,
                        author_id: members[(c % 4) as usize].id,
                        body: format!("comment {c} on {}", issue.title),
                        posted_at: issue.opened_at + Duration::minutes(c * 13),
                    });
                }
                issues.push(issue);
            }
            projects.push(project);
        }
        users.extend(members);
    }
    User::insert_many(&cluster, &users).await?;
    Project::insert_many(&cluster, &projects).await?;
    Issue::insert_many(&cluster, &issues).await?;
    Comment::insert_many(&cluster, &comments).await?;
    println!("{}", cluster.distribution::<Comment>().await?);

    // An issue page: the issue, its comments oldest first, each with its author's name, in two
    // statements on the tenant's shard (the join runs there).
    let issue = issues[4].clone();
    cluster.log().start();
    let found = Issue::find(&cluster, (issue.tenant_id, issue.id)).await?;
    let thread: Vec<(Comment, Option<User>)> = Comment::belonging_to(&issue)
        .order_by(Comment::POSTED_AT, Order::Asc)
        .join_parent::<User>()
        .all(&cluster)
        .await?;
    let sent = cluster.log().stop();
    println!("issue page of {:?}:", found.as_ref().map(|i| &i.title));
    for (comment, author) in &thread {
        let who = author
            .as_ref()
            .map_or("(deleted user)", |u| u.name.as_str());
        println!("  {} {who}: {}", comment.posted_at, comment.body);
    }
    let shard = Issue::shard_for(&issue.tenant_id);
    println!("  {} statements, all on {shard}", sent.len());
    assert_eq!(found.as_ref(), Some(&issue));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.shard == shard.name()));
    assert_eq!(thread.len(), 5);
    assert!(thread.iter().all(|(_, author)| author.is_some()));

    // A project board: its issues, and the comments of all of them in one statement.
    let project = &projects[0];
    let board = Issue::belonging_to(project)
        .order_by(Issue::OPENED_AT, Order::Asc)
        .all(&cluster)
        .await?;
    let threads = Comment::belonging_to_each(&cluster, &board).await?;
    for (issue, thread) in board.iter().zip(&threads) {
        println!(
            "  [{:?}] {} ({} comments, estimate {:?})",
            issue.status,
            issue.title,
            thread.len(),
            issue.estimate
        );
    }
    assert_eq!(threads.iter().map(Vec::len).sum::<usize>(), 15);

    // Work left per tenant: the sum of decimal estimates is exact.
    let open_work = Issue::query()
        .filter(
            Issue::TENANT_ID
                .eq(issue.tenant_id)
                .and(Issue::STATUS.ne(Status::Closed)),
        )
        .sum(Issue::ESTIMATE, &cluster)
        .await?;
    println!("open estimate of {}: {open_work:?} days", tenants[0].name);
    let expected: Decimal = issues
        .iter()
        .filter(|i| i.tenant_id == issue.tenant_id && i.status != Status::Closed)
        .filter_map(|i| i.estimate)
        .sum();
    assert_eq!(open_work, Some(expected));

    // Close every in-progress issue of one project: one routed UPDATE.
    let closed_at = t0 + Duration::days(30);
    let n = Issue::query()
        .filter(
            Issue::TENANT_ID
                .eq(project.tenant_id)
                .and(Issue::PROJECT_ID.eq(project.id))
                .and(Issue::STATUS.eq(Status::InProgress)),
        )
        .set(Issue::STATUS, Status::Closed)
        .set(Issue::CLOSED_AT, Some(closed_at))
        .update(&cluster)
        .await?;
    println!("closed {n} issues of {}", project.name);
    assert_eq!(n, 2);

    // A user signs up twice at once: an upsert is one atomic statement, never a duplicate.
    let again = User {
        name: "User 0, renamed".into(),
        ..users[0].clone()
    };
    again.upsert(&cluster).await?;
    let stored = User::find(&cluster, (again.tenant_id, again.id)).await?;
    assert_eq!(stored.map(|u| u.name), Some(again.name.clone()));
    // Another user of the tenant with a taken email: refused by the unique index.
    let clash = User {
        id: ids.next(),
        ..users[0].clone()
    };
    let refused = clash.insert(&cluster).await.unwrap_err();
    println!("a second user0@tenant0.example: refused ({refused})");

    // Tenant settings are JSON, read back typed.
    let tenant = Tenant::find(&cluster, tenants[3].id).await?;
    println!(
        "{}: {:?}",
        tenants[3].name,
        tenant.as_ref().map(|t| &t.settings.0)
    );
    assert_eq!(
        tenant.map(|t| t.settings.0),
        Some(tenants[3].settings.0.clone())
    );
    println!("multi_tenant: ok");
    Ok(())
}

/// An empty directory for the example's shard files.
fn data_dir(name: &str) -> grant::Result<std::path::PathBuf> {
    let dir = std::env::var("GRANT_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join(name)
        });
    let fail = |e: std::io::Error| Error::Config(format!("{}: {e}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(fail)?;
    }
    std::fs::create_dir_all(&dir).map_err(fail)?;
    Ok(dir)
}
