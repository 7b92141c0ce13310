//! `#[grant(crate = "...")]`: a model derived through a re-export of Grant works like one derived
//! through `::grant` (its generated code names the path given).

/// An application's own facade over its dependencies, as a crate that re-exports Grant has.
mod db {
    pub(crate) use ::grant as sharding;
}

use db::sharding::prelude::*;

#[derive(db::sharding::Sharded, Debug, Clone, PartialEq)]
#[grant(crate = "crate::db::sharding", table = "notes")]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
/// A tenant's note.
pub struct Note {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The note within the tenant.
    #[primary_key]
    pub id: i64,
    /// Its text.
    pub body: String,
}

#[derive(db::sharding::Model, Debug, Clone, PartialEq)]
#[grant(crate = "crate::db::sharding", table = "plans", reference)]
/// A price plan (a reference table).
pub struct Plan {
    /// The plan's code.
    #[primary_key]
    pub code: String,
    /// Seats included.
    pub seats: i64,
}

#[tokio::test]
async fn models_derived_through_a_reexport_work() {
    let cluster = Cluster::<Sqlite>::memory(4).await.unwrap();
    Note::create_table(&cluster).await.unwrap();
    Plan::create_table(&cluster).await.unwrap();
    let note = Note {
        tenant_id: 7,
        id: 1,
        body: "hello".into(),
    };
    note.insert(&cluster).await.unwrap();
    assert_eq!(Note::find(&cluster, (7, 1)).await.unwrap(), Some(note));
    assert_eq!(
        Note::query()
            .filter(Note::TENANT_ID.eq(7))
            .count(&cluster)
            .await
            .unwrap(),
        1
    );
    let err = Plan {
        code: "pro".into(),
        seats: 5,
    }
    .insert(&cluster)
    .await
    .unwrap_err();
    // A reference table on several SQLite shards is refused, whatever path derived it.
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}
