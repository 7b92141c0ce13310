//! What `#[derive(Sharded)]` and `#[derive(Model)]` generate, used from outside: metadata, typed
//! columns, pure routing, and a round trip through in-memory SQLite shards (decoding relies on the
//! generated column order).
//!
//! The workspace lints (`missing_docs`, `unreachable_pub`, clippy) apply to this file, so they
//! also check the generated items.

use grant::__private::sea_query::Value;
use grant::prelude::*;

/// The user of DESIGN.md.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "users")]
#[shard(strategy = "hash", on = "id", count = 8)]
pub struct User {
    /// Primary and shard key.
    #[primary_key]
    pub id: i64,
    /// Display name, stored as `display_name`.
    #[grant(column = "display_name")]
    pub name: String,
    /// Region.
    pub region: String,
    /// Active.
    pub active: bool,
    /// Balance.
    pub balance: i64,
    /// A nullable ordinary column.
    pub email: Option<String>,
}

/// An order line with a composite primary key, sharded by the order.
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

/// Reference data on one shard.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "countries", shard = "shard_1")]
pub struct Country {
    /// ISO code.
    #[primary_key]
    pub code: String,
    /// Name.
    pub name: String,
}

fn ada() -> User {
    User {
        id: 7,
        name: "Ada".into(),
        region: "eu".into(),
        active: true,
        balance: 10,
        email: None,
    }
}

#[test]
fn metadata_follows_the_struct() {
    let meta = <User as Model>::META;
    assert_eq!(meta.name, "User");
    assert_eq!(meta.table, "users");
    assert_eq!(
        meta.column_names().collect::<Vec<_>>(),
        ["id", "display_name", "region", "active", "balance", "email"]
    );
    assert_eq!(meta.columns[1].field, "name");
    assert_eq!(meta.primary_key, &[0]);
    assert_eq!(meta.shard_key, Some(0));
    assert_eq!(meta.shard_key_name(), "id");
    assert!(meta.columns[0].primary_key && !meta.columns[1].primary_key);
    assert!(meta.columns[5].nullable && !meta.columns[4].nullable);
    assert_eq!(
        (meta.columns[0].column_type)(),
        <i64 as grant::SqlType>::column_type()
    );

    let meta = <OrderItem as Model>::META;
    assert_eq!(meta.table, "order_item");
    assert_eq!(meta.primary_key, &[0, 1]);
    assert_eq!(meta.shard_key, Some(0));

    let meta = <Country as Model>::META;
    assert_eq!(meta.shard_key, None);
    assert_eq!(meta.primary_key, &[0]);
}

#[test]
fn typed_columns() {
    assert_eq!(User::ID.name(), "id");
    assert_eq!(User::NAME.name(), "display_name");
    assert_eq!(User::NAME.index(), 1);
    assert_eq!(User::EMAIL.index(), 5);
    assert_eq!(OrderItem::PRODUCT_ID.index(), 1);
    assert_eq!(Country::NAME.as_ref().name, "name");
}

#[test]
fn values_in_column_order() {
    let user = ada();
    let values = user.values();
    assert_eq!(values.len(), 6);
    assert_eq!(values[0], Value::BigInt(Some(7)));
    assert_eq!(values[1], Value::String(Some("Ada".into())));
    assert_eq!(values[3], Value::Bool(Some(true)));
    assert_eq!(values[5], Value::String(None));
    for (i, value) in values.iter().enumerate() {
        assert_eq!(&user.value(i), value);
    }
    assert_eq!(user.value(6), Value::Bool(None));

    assert_eq!(user.primary_key(), 7);
    assert_eq!(User::primary_key_values(&7), [Value::BigInt(Some(7))]);
    let item = OrderItem {
        order_id: 123,
        product_id: 456,
        quantity: 2,
    };
    assert_eq!(item.primary_key(), (123, 456));
    assert_eq!(
        OrderItem::primary_key_values(&(123, 456)),
        [Value::BigInt(Some(123)), Value::BigInt(Some(456))]
    );
}

#[test]
fn routing_is_pure_and_consistent() {
    let shards = <User as Model>::shards();
    assert_eq!(shards.len(), 8);
    for (i, shard) in shards.iter().enumerate() {
        assert_eq!(shard.index() as usize, i);
        assert_eq!(shard.to_string(), format!("shard_{i}"));
    }
    for id in [-1_i64, 0, 1, 7, 42, i64::MAX, i64::MIN] {
        let shard = User::shard_for(&id);
        assert_eq!(shard, <User as Sharded>::shard_for(&id));
        assert_eq!(shard, User::shard_of_key(&id));
        assert_eq!(shard, User { id, ..ada() }.shard_of());
        assert_eq!(
            User::shard_for_value(&Value::BigInt(Some(id))).ok(),
            Some(shard)
        );
        assert!(shards.contains(&shard));
    }
    assert!(User::shard_for_value(&Value::BigInt(None)).is_err());

    let item = OrderItem {
        order_id: 123,
        product_id: 456,
        quantity: 2,
    };
    assert_eq!(item.shard_of(), OrderItem::shard_for(&123));
    assert_eq!(
        OrderItem::shard_of_key(&(123, 999)),
        OrderItem::shard_for(&123)
    );
    assert_eq!(*item.shard_key(), 123);

    assert_eq!(Country::shards().len(), 1);
    assert_eq!(Country::shards()[0].to_string(), "shard_1");
    let fr = Country {
        code: "fr".into(),
        name: "France".into(),
    };
    assert_eq!(fr.shard_of(), Country::shards()[0]);
    assert_eq!(Country::shard_of_key(&"de".into()), Country::shards()[0]);
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn generated_futures_are_send() -> grant::Result<()> {
    // Built, never polled: only their types matter.
    let cluster = Cluster::<Sqlite>::memory(1).await?;
    let user = ada();
    assert_send(&User::create_table(&cluster));
    assert_send(&user.insert(&cluster));
    assert_send(&User::insert_many(&cluster, std::slice::from_ref(&user)));
    assert_send(&user.update(&cluster));
    assert_send(&user.delete(&cluster));
    assert_send(&User::find(&cluster, 7));
    assert_send(&User::find_tracked(&cluster, 7));
    assert_send(&Country::find(&cluster, "fr".into()));
    Ok(())
}

#[tokio::test]
async fn round_trip_through_sqlite_shards() -> grant::Result<()> {
    let cluster = Cluster::<Sqlite>::memory(8).await?;
    User::create_table(&cluster).await?;
    OrderItem::create_table(&cluster).await?;
    Country::create_table(&cluster).await?;

    let mut user = ada();
    user.insert(&cluster).await?;
    assert_eq!(User::find(&cluster, 7).await?, Some(user.clone()));
    assert_eq!(User::find(&cluster, 8).await?, None);

    user.balance = 20;
    user.email = Some("ada@example.com".into());
    user.update(&cluster).await?;
    assert_eq!(User::find(&cluster, 7).await?, Some(user.clone()));

    let others: Vec<User> = (100..110)
        .map(|id| User {
            id,
            balance: id,
            ..ada()
        })
        .collect();
    assert_eq!(User::insert_many(&cluster, &others).await?, 10);
    assert_eq!(User::on_all_shards().count(&cluster).await?, 11);
    let found = User::query().filter(User::ID.eq(105)).all(&cluster).await?;
    assert_eq!(found, [others[5].clone()]);

    assert!(user.delete(&cluster).await?);
    assert_eq!(User::find(&cluster, 7).await?, None);

    let item = OrderItem {
        order_id: 123,
        product_id: 456,
        quantity: 3,
    };
    item.insert(&cluster).await?;
    assert_eq!(OrderItem::find(&cluster, (123, 456)).await?, Some(item));
    assert_eq!(OrderItem::find(&cluster, (123, 457)).await?, None);

    let fr = Country {
        code: "fr".into(),
        name: "France".into(),
    };
    fr.insert(&cluster).await?;
    assert_eq!(Country::find(&cluster, "fr".into()).await?, Some(fr));
    Ok(())
}
