//! The models of DESIGN.md, used the way the README uses them.
#![deny(missing_docs, warnings)]

use grant::prelude::*;

/// A user, sharded by id.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    /// Primary and shard key.
    #[primary_key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Active.
    pub active: bool,
    /// Balance.
    pub balance: i64,
    /// A nullable ordinary column is fine.
    pub email: Option<String>,
}

/// An order line, sharded by order with a composite primary key.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "hash", on = "order_id", count = 4)]
pub struct OrderItem {
    /// Shard key, first part of the key.
    #[primary_key]
    pub order_id: i64,
    /// Second part of the key.
    #[primary_key]
    pub product_id: i64,
    /// Quantity.
    pub quantity: i32,
}

fn assert_send<T: Send>(_: &T) {}

#[allow(dead_code)]
async fn usage(cluster: &Cluster<Sqlite>) -> grant::Result<()> {
    User::create_table(cluster).await?;
    let user = User {
        id: 7,
        name: "Ada".into(),
        region: "eu".into(),
        active: true,
        balance: 10,
        email: None,
    };
    user.insert(cluster).await?;
    let _: Option<User> = User::find(cluster, 7).await?;
    let _: u64 = User::insert_many(cluster, &[user.clone()]).await?;
    user.update(cluster).await?;
    let _: bool = user.delete(cluster).await?;
    let _: Option<OrderItem> = OrderItem::find(cluster, (123, 456)).await?;
    let _ = OrderItem::find_tracked(cluster, (123, 456)).await?;
    let _ = User::query().filter(User::BALANCE.gt(5).and(User::ACTIVE.eq(true)));
    let _ = User::on_shard(User::shard_for(&7));
    let _ = User::on_all_shards().order_by(User::BALANCE, Order::Desc);
    assert_send(&user.insert(cluster));
    assert_send(&User::find(cluster, 7));
    assert_send(&OrderItem::create_table(cluster));
    Ok(())
}

fn main() {
    // Routing is pure and stable.
    assert_eq!(User::shard_for(&7), <User as Sharded>::shard_for(&7));
    assert_eq!(
        User::shard_for(&7).index(),
        User {
            id: 7,
            name: String::new(),
            region: String::new(),
            active: false,
            balance: 0,
            email: None
        }
        .shard_of()
        .index()
    );
    assert!(User::shard_for(&7).index() < 8);
    assert_eq!(<User as Model>::shards().len(), 8);
    assert_eq!(<User as Model>::shards()[3].to_string(), "shard_3");
    assert_eq!(<OrderItem as Model>::shards().len(), 4);
    assert_eq!(
        <OrderItem as Model>::shard_of_key(&(123, 456)),
        OrderItem::shard_for(&123)
    );

    let meta = <User as Model>::META;
    assert_eq!(meta.name, "User");
    assert_eq!(meta.table, "users");
    assert_eq!(meta.columns.len(), 6);
    assert_eq!(meta.primary_key, &[0]);
    assert_eq!(meta.shard_key, Some(0));
    assert!(meta.columns[5].nullable);
    assert!(!meta.columns[0].nullable);

    let meta = <OrderItem as Model>::META;
    assert_eq!(meta.table, "order_item");
    assert_eq!(meta.primary_key, &[0, 1]);
    assert_eq!(User::BALANCE.name(), "balance");
    assert_eq!(User::BALANCE.index(), 4);
    assert_eq!(OrderItem::QUANTITY.index(), 2);
}
