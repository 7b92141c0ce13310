//! A saga across shards: place an order (on the customer's shard) and reserve stock (on the
//! product's shard) — two SQLite shard files, no two-phase commit. The first order succeeds;
//! the second asks for more stock than there is, so its reservation fails and the order is
//! compensated (cancelled). The saga log on `shard_0` records both.
//!
//! Run with `cargo run --example saga`. Rerunnable: it starts from empty shard files each time
//! (in `target/grant-saga`, or the directory in `GRANT_DATA_DIR`).

use std::path::PathBuf;

use grant::prelude::*;
use grant::saga::StepContext;
use sqlx::SqlitePool;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "customer_id", count = 2)]
struct Customer {
    #[primary_key]
    customer_id: i64,
    name: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "product_id", count = 2)]
struct Product {
    #[primary_key]
    product_id: i64,
    stock: i64,
}

/// The saga's input: `customer,product,quantity`.
fn parse(step: &StepContext) -> (i64, i64, i64) {
    let v: Vec<i64> = step
        .input()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    (v[0], v[1], v[2])
}

fn pool(cluster: &Cluster<Sqlite>, shard: ShardId) -> &SqlitePool {
    cluster
        .pool(&shard.name())
        .expect("the model's shards are in the cluster")
}

/// An "insufficient stock" failure of the application's own.
#[derive(Debug)]
struct OutOfStock(i64);

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "product {} has too little stock", self.0)
    }
}

impl std::error::Error for OutOfStock {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var_os("GRANT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/grant-saga"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cluster = Cluster::<Sqlite>::builder()
        .shard("shard_0", dir.join("shard_0.db").display().to_string())
        .shard("shard_1", dir.join("shard_1.db").display().to_string())
        .connect()
        .await?;
    Customer::create_table(&cluster).await?;
    Product::create_table(&cluster).await?;
    // Orders live with their customer; the order id is the saga's step id, which makes placing
    // it idempotent. Reservations live with their product, keyed the same way.
    cluster
        .execute_on_all_shards(
            "CREATE TABLE IF NOT EXISTS orders (step_id TEXT PRIMARY KEY, customer_id BIGINT, \
             product_id BIGINT, quantity BIGINT, cancelled BOOLEAN NOT NULL DEFAULT FALSE)",
        )
        .await;
    cluster
        .execute_on_all_shards(
            "CREATE TABLE IF NOT EXISTS reservations (step_id TEXT PRIMARY KEY, \
             product_id BIGINT, quantity BIGINT)",
        )
        .await;
    // A customer and a product on different shards.
    let customer = (1..)
        .find(|id| Customer::shard_for(id).index() == 0)
        .unwrap_or(1);
    let product = (1..)
        .find(|id| Product::shard_for(id).index() == 1)
        .unwrap_or(1);
    Customer {
        customer_id: customer,
        name: "Ada".into(),
    }
    .insert(&cluster)
    .await?;
    Product {
        product_id: product,
        stock: 5,
    }
    .insert(&cluster)
    .await?;

    let order = Saga::<Sqlite>::new("place order")
        .step(
            "create order",
            |cluster, step| {
                Box::pin(async move {
                    let (customer, product, quantity) = parse(step);
                    sqlx::query(
                        "INSERT INTO orders (step_id, customer_id, product_id, quantity) \
                         VALUES (?, ?, ?, ?) ON CONFLICT (step_id) DO NOTHING",
                    )
                    .bind(step.step_id())
                    .bind(customer)
                    .bind(product)
                    .bind(quantity)
                    .execute(pool(cluster, Customer::shard_for(&customer)))
                    .await?;
                    Ok(())
                })
            },
            |cluster, step| {
                Box::pin(async move {
                    let (customer, ..) = parse(step);
                    sqlx::query("UPDATE orders SET cancelled = TRUE WHERE step_id = ?")
                        .bind(step.step_id())
                        .execute(pool(cluster, Customer::shard_for(&customer)))
                        .await?;
                    Ok(())
                })
            },
        )
        .step(
            "reserve stock",
            |cluster, step| {
                Box::pin(async move {
                    let (_, product, quantity) = parse(step);
                    // One transaction on the product's shard: the reservation row (once per
                    // step id) and the stock it takes.
                    let mut tx = pool(cluster, Product::shard_for(&product)).begin().await?;
                    let new = sqlx::query(
                        "INSERT INTO reservations (step_id, product_id, quantity) \
                         VALUES (?, ?, ?) ON CONFLICT (step_id) DO NOTHING",
                    )
                    .bind(step.step_id())
                    .bind(product)
                    .bind(quantity)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if new == 1 {
                        let taken = sqlx::query(
                            "UPDATE product SET stock = stock - ? \
                             WHERE product_id = ? AND stock >= ?",
                        )
                        .bind(quantity)
                        .bind(product)
                        .bind(quantity)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if taken == 0 {
                            return Err(OutOfStock(product).into()); // rolls the row back
                        }
                    }
                    tx.commit().await?;
                    Ok(())
                })
            },
            |cluster, step| {
                Box::pin(async move {
                    let (_, product, _) = parse(step);
                    let mut tx = pool(cluster, Product::shard_for(&product)).begin().await?;
                    sqlx::query(
                        "UPDATE product SET stock = stock + COALESCE((SELECT quantity \
                         FROM reservations WHERE step_id = ?), 0) WHERE product_id = ?",
                    )
                    .bind(step.step_id())
                    .bind(product)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM reservations WHERE step_id = ?")
                        .bind(step.step_id())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                })
            },
        );

    for quantity in [3, 4] {
        let report = order
            .run(&cluster, format!("{customer},{product},{quantity}"))
            .await?;
        let why = report
            .error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        println!("order of {quantity}: {}{why}", report.status);
        let record = order.record(&cluster, &report.id).await?.expect("logged");
        for step in &record.steps {
            println!("  step {} `{}`: {}", step.index, step.name, step.status);
        }
    }
    let stock = Product::find(&cluster, product).await?.map(|p| p.stock);
    println!("stock left: {stock:?} (5 - 3; the second order was compensated)");
    assert_eq!(stock, Some(2));

    // At startup, finish whatever a crashed process left unfinished.
    let resumed = cluster
        .resume_sagas(&SagaRegistry::new().register(order))
        .await?;
    println!("unfinished sagas resumed: {}", resumed.resumed.len());
    Ok(())
}
