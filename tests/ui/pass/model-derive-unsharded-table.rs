//! `#[derive(Model)]`: an unsharded table living on one named shard.
#![deny(missing_docs, warnings)]

use grant::__private::sea_query::Value;
use grant::prelude::*;

/// Reference data on one shard.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "countries", shard = "reference")]
pub struct Country {
    /// ISO code.
    #[primary_key]
    pub code: String,
    /// Name.
    pub name: String,
    /// Population, when known.
    pub population: Option<i64>,
}

/// Default table and shard.
#[derive(Model, Debug, Clone)]
pub struct FeatureFlag {
    /// Key.
    #[primary_key]
    pub key: String,
    /// Value.
    pub enabled: bool,
}

#[allow(dead_code)]
async fn usage(cluster: &Cluster<Postgres>) -> grant::Result<()> {
    Country::create_table(cluster).await?;
    let _: Option<Country> = Country::find(cluster, "fr".to_owned()).await?;
    let _ = Country::query().filter(Country::POPULATION.is_null());
    Ok(())
}

fn main() {
    assert_eq!(<Country as Model>::shards().len(), 1);
    assert_eq!(<Country as Model>::shards()[0].to_string(), "reference");
    assert_eq!(<Country as Model>::META.shard_key, None);
    assert_eq!(
        <Country as Model>::shard_for_value(&Value::Int(None)).ok(),
        Some(<Country as Model>::shards()[0])
    );
    assert_eq!(<FeatureFlag as Model>::META.table, "feature_flag");
    assert_eq!(<FeatureFlag as Model>::shards()[0].to_string(), "shard_0");
    let flag = FeatureFlag {
        key: "beta".into(),
        enabled: true,
    };
    assert_eq!(<FeatureFlag as Model>::shard_of(&flag).index(), 0);
    assert_eq!(<FeatureFlag as Model>::values(&flag).len(), 2);
}
