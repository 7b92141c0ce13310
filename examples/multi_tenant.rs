//! Multi-tenant SaaS with a composite shard key: documents are placed by (tenant, user), so one
//! user's documents are on one shard — a user's queries touch one database — while a large
//! tenant's users spread over every shard instead of overloading one. The `pg_hash` strategy
//! places rows exactly where PostgreSQL's `PARTITION BY HASH (tenant_id, user_id)` would, so the
//! same data can move between native partitions and Grant shards without moving a row.
//!
//! Run with `cargo run --example multi_tenant`. Rerunnable: it starts from empty SQLite shard
//! files each time (in `target/grant-multi-tenant`, or the directory in `GRANT_DATA_DIR`).

use grant::prelude::*;

/// A document of a user of a tenant.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "documents")]
#[shard(strategy = "pg_hash", on = ["tenant_id", "user_id"], count = 4)]
struct Document {
    #[primary_key]
    tenant_id: i64,
    #[primary_key]
    user_id: i64,
    #[primary_key]
    doc_id: i64,
    title: String,
    bytes: i64,
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
    Document::create_table(&cluster).await?;

    // Tenant 1 is big (200 users), tenants 2..=20 are small (5 users); 10 documents per user.
    let mut docs = Vec::new();
    for tenant_id in 1..=20_i64 {
        let users = if tenant_id == 1 { 200 } else { 5 };
        for user_id in 1..=users {
            for doc_id in 1..=10 {
                docs.push(Document {
                    tenant_id,
                    user_id,
                    doc_id,
                    title: format!("t{tenant_id}/u{user_id}/doc {doc_id}"),
                    bytes: (tenant_id * 7_919 + user_id * 104_729 + doc_id * 1_299_709) % 100_000,
                });
            }
        }
    }
    Document::insert_many(&cluster, &docs).await?;
    println!("{}", cluster.distribution::<Document>().await?);

    // The big tenant is spread over every shard.
    for i in 0..4 {
        let n = Document::on_shard(ShardId::new(i))
            .filter(Document::TENANT_ID.eq(1))
            .count(&cluster)
            .await?;
        println!("tenant 1 on shard_{i}: {n} documents");
        assert!(n > 0);
    }

    // One user's documents: one shard.
    let key = (1_i64, 42_i64);
    cluster.log().start();
    let mine = Document::query()
        .filter(
            Document::TENANT_ID
                .eq(key.0)
                .and(Document::USER_ID.eq(key.1)),
        )
        .order_by(Document::BYTES, Order::Desc)
        .limit(3)
        .all(&cluster)
        .await?;
    let touched: Vec<String> = cluster.log().stop().into_iter().map(|e| e.shard).collect();
    println!(
        "tenant 1, user 42: largest documents {:?}, read from {touched:?} (= Document::shard_for(&(1, 42)) = {})",
        mine.iter().map(|d| d.bytes).collect::<Vec<_>>(),
        Document::shard_for(&key)
    );
    assert_eq!(touched, [Document::shard_for(&key).name()]);

    // A document by its primary key: one shard.
    cluster.log().start();
    let doc = Document::find(&cluster, (1, 42, 7)).await?;
    assert_eq!(cluster.log().stop().len(), 1);
    println!("find((1, 42, 7)): {:?}", doc.map(|d| d.title));

    // Several users of one tenant: each shard is asked only for its own users.
    cluster.log().start();
    let n = Document::query()
        .filter(
            Document::TENANT_ID
                .eq(3)
                .and(Document::USER_ID.is_in([1, 2, 3, 4, 5])),
        )
        .count(&cluster)
        .await?;
    let log = cluster.log().stop();
    println!(
        "tenant 3, users 1..=5: {n} documents from {} shard statements",
        log.len()
    );
    for e in &log {
        println!("  {}: {}", e.shard, e.sql);
    }
    assert_eq!(n, 50);

    // A tenant-wide report needs every shard (the user is part of the key): say so explicitly.
    let total = Document::on_all_shards()
        .filter(Document::TENANT_ID.eq(1))
        .sum(Document::BYTES, &cluster)
        .await?;
    let expected: i64 = docs
        .iter()
        .filter(|d| d.tenant_id == 1)
        .map(|d| d.bytes)
        .sum();
    println!("tenant 1 stores {total:?} bytes");
    assert_eq!(total, Some(expected));
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
