//! Grant's quickstart: four SQLite shard files, 10,000 users and their order items, routed
//! finds, a scatter count and the per-shard distribution.
//!
//! Run with `cargo run --example quickstart`. Rerunnable: it starts from empty shard files each
//! time (in `target/grant-quickstart`, or the directory in `GRANT_DATA_DIR`).

use std::time::Instant;

use grant::prelude::*;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 4)]
struct User {
    #[primary_key]
    id: i64,
    name: String,
    region: String,
    active: bool,
    balance: i64,
    email: Option<String>,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "order_id", count = 4)]
struct OrderItem {
    #[primary_key]
    order_id: i64,
    #[primary_key]
    product_id: i64,
    quantity: i32,
}

#[tokio::main]
async fn main() -> grant::Result<()> {
    let dir = std::env::var("GRANT_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/grant-quickstart")
        });
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;

    // 1. A cluster of four SQLite shard files.
    let mut builder = Cluster::<Sqlite>::builder();
    for i in 0..4 {
        builder = builder.shard(
            format!("shard_{i}"),
            dir.join(format!("shard_{i}.db")).display().to_string(),
        );
    }
    let cluster = builder.connect().await?;
    cluster.check::<User>()?;
    User::create_table(&cluster).await?;
    OrderItem::create_table(&cluster).await?;
    println!("cluster: 4 SQLite shard files in {}", dir.display());

    // 2. Insert 10,000 users and 30,000 order items: grouped per shard, shards in parallel.
    let users: Vec<User> = (1..=10_000)
        .map(|id| User {
            id,
            name: format!("user {id}"),
            region: ["eu", "us", "apac"][(id % 3) as usize].into(),
            active: id % 4 != 0,
            balance: (id * 7919) % 10_000,
            email: (id % 10 != 0).then(|| format!("user{id}@example.com")),
        })
        .collect();
    let started = Instant::now();
    let n = User::insert_many(&cluster, &users).await?;
    println!("inserted {n} users in {:?}", started.elapsed());
    let items: Vec<OrderItem> = (1..=10_000)
        .flat_map(|order_id| {
            (1..=3).map(move |product_id| OrderItem {
                order_id,
                product_id,
                quantity: (order_id % 5 + product_id) as i32,
            })
        })
        .collect();
    let started = Instant::now();
    let n = OrderItem::insert_many(&cluster, &items).await?;
    println!(
        "inserted {n} order items (composite key) in {:?}",
        started.elapsed()
    );

    // 3. Where keys route: pure, no I/O.
    for id in [1_i64, 2, 42, 9_999] {
        println!("  User::shard_for(&{id}) = {}", User::shard_for(&id));
    }

    // 4. A routed find touches exactly one shard.
    cluster.log().start();
    let started = Instant::now();
    let ada = User::find(&cluster, 42).await?;
    let took = started.elapsed();
    let touched = cluster.log().stop();
    println!(
        "find(42) = {:?} in {took:?}, shards touched: {:?}",
        ada.map(|u| u.name),
        touched.iter().map(|e| &e.shard).collect::<Vec<_>>()
    );
    let item = OrderItem::find(&cluster, (42, 2)).await?;
    println!("OrderItem::find((42, 2)) = {item:?}");

    // 5. A scatter count over every shard, and an ordered cross-shard page.
    let started = Instant::now();
    let active = User::query()
        .filter(User::ACTIVE.eq(true))
        .count(&cluster)
        .await?;
    println!(
        "active users (scatter count over 4 shards) = {active} in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let richest = User::query()
        .filter(User::REGION.eq("eu"))
        .order_by(User::BALANCE, Order::Desc)
        .limit(3)
        .all(&cluster)
        .await?;
    println!(
        "3 richest in eu (merged across shards) = {:?} in {:?}",
        richest
            .iter()
            .map(|u| (u.id, u.balance))
            .collect::<Vec<_>>(),
        started.elapsed()
    );

    // 6. The distribution.
    println!("per-shard distribution:");
    for &shard in <User as Model>::shards() {
        let started = Instant::now();
        let users = User::on_shard(shard).count(&cluster).await?;
        let items = OrderItem::on_shard(shard).count(&cluster).await?;
        println!(
            "  {shard}: {users:>5} users ({:>5.2}%), {items:>5} order items  [{:?}]",
            users as f64 / 100.0,
            started.elapsed()
        );
    }
    Ok(())
}
