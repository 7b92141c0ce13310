//! Generated names that leave room for the application's own: `#[grant(methods(..))]` renames
//! generated inherent methods and `#[grant(constant = "..")]` a column constant, so a model can
//! keep an inherent `find`, `insert` or `NAME` of its own (without them such a model does not
//! compile: two inherent items of one name). Private models with unused generated items
//! compile without `dead_code` warnings (the crate denies warnings here).
#![deny(warnings)]

use grant::prelude::*;

/// An application's user row, with its own `find`, `insert` and `NAME` beside Grant's.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(
    table = "named_users",
    methods(find = "find_by_id", insert = "insert_row", shard_for = "shard_of_id")
)]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct User {
    /// The id (the shard key).
    #[primary_key]
    pub id: i64,
    /// The display name; its column constant is `NAME_COLUMN`.
    #[grant(constant = "NAME_COLUMN")]
    pub name: String,
}

impl User {
    /// The application's own constant of that name.
    pub const NAME: &'static str = "user";

    /// The application's own `find`: by name, through Grant's query builder.
    pub async fn find(cluster: &Cluster<Sqlite>, name: &str) -> grant::Result<Option<User>> {
        User::query()
            .filter(User::NAME_COLUMN.eq(name.to_owned()))
            .one(cluster)
            .await
    }

    /// The application's own `insert`: validates, then Grant's renamed one.
    pub async fn insert(&self, cluster: &Cluster<Sqlite>) -> grant::Result<()> {
        assert!(!self.name.is_empty());
        self.insert_row(cluster).await
    }

    /// The application's own `shard_for`, of a different signature.
    pub fn shard_for(&self) -> ShardId {
        User::shard_of_id(&self.id)
    }
}

/// A private model, most of whose generated items go unused: no warnings.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "private_notes")]
#[shard(strategy = "hash", on = "id", count = 2)]
struct PrivateNote {
    #[primary_key]
    id: i64,
    body: String,
}

#[tokio::test]
async fn renamed_methods_and_constants_sit_beside_the_application_s_own() {
    let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
    User::create_table(&cluster).await.unwrap();
    let ada = User {
        id: 7,
        name: "ada".into(),
    };
    ada.insert(&cluster).await.unwrap();
    assert_eq!(
        User::find_by_id(&cluster, 7).await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        User::find(&cluster, "ada").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(ada.shard_for(), User::shard_of_id(&7));
    assert_eq!(User::NAME, "user");
    assert_eq!(User::NAME_COLUMN.name(), "name");
    // Methods not renamed keep their names.
    assert_eq!(User::on_all_shards().count(&cluster).await.unwrap(), 1);
    assert!(ada.delete(&cluster).await.unwrap());

    PrivateNote::create_table(&cluster).await.unwrap();
    assert_eq!(PrivateNote::find(&cluster, 1).await.unwrap(), None);
}
