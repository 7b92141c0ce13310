//! A reference table: `#[derive(Model)]` with `#[grant(reference)]`.
use grant::prelude::*;

#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "currencies", reference)]
pub struct Currency {
    #[primary_key]
    pub code: String,
    pub digits: i32,
}

#[allow(dead_code)]
async fn writes_everywhere<DB: grant::Backend>(cluster: &Cluster<DB>) -> Result<()>
where
    Currency: grant::FromShardRow<DB>,
{
    Currency::create_table(cluster).await?;
    let eur = Currency { code: "EUR".into(), digits: 2 };
    eur.insert(cluster).await?;
    eur.update(cluster).await?;
    let _found: Option<Currency> = Currency::find(cluster, "EUR".to_string()).await?;
    eur.delete(cluster).await?;
    Ok(())
}

fn main() {
    const { assert!(<Currency as grant::Model>::REFERENCE) };
}
