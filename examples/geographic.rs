//! Data residency by region: each customer's row lives in the database of its region — EU
//! customers on the EU shard, US customers on the US one — with the `geographic` strategy (a
//! `mapping` from the region to a shard). A region the mapping does not list is refused, never
//! guessed: no row of an unlisted region lands anywhere.
//!
//! Run with `cargo run --example geographic`. Rerunnable: it starts from empty SQLite shard files
//! each time (in `target/grant-geographic`, or the directory in `GRANT_DATA_DIR`).

use grant::prelude::*;

/// A customer, stored in the database of its region.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "customers")]
#[shard(
    strategy = "geographic",
    on = "country",
    map(
        de = "eu",
        fr = "eu",
        ie = "eu",
        nl = "eu",
        us = "us",
        ca = "us",
        jp = "apac",
        sg = "apac"
    )
)]
struct Customer {
    #[primary_key]
    country: String,
    #[primary_key]
    id: i64,
    name: String,
    email: Option<String>,
}

#[tokio::main]
async fn main() -> grant::Result<()> {
    let dir = data_dir("grant-geographic")?;

    // One SQLite file per region; the model names the shards it needs.
    let cluster = Cluster::<Sqlite>::builder()
        .shard("eu", dir.join("eu.db").display().to_string())
        .shard("us", dir.join("us.db").display().to_string())
        .shard("apac", dir.join("apac.db").display().to_string())
        .connect()
        .await?;
    cluster.check::<Customer>()?;
    Customer::create_table(&cluster).await?;

    let countries = ["de", "fr", "ie", "nl", "us", "ca", "jp", "sg"];
    let customers: Vec<Customer> = (1..=8_000)
        .map(|id| Customer {
            country: countries[(id % 8) as usize].to_owned(),
            id,
            name: format!("customer {id}"),
            email: (id % 3 != 0).then(|| format!("c{id}@example.com")),
        })
        .collect();
    Customer::insert_many(&cluster, &customers).await?;
    println!("{}", cluster.distribution::<Customer>().await?);

    // Every row is in its region's database, and only there.
    for region in ["eu", "us", "apac"] {
        let shard = <Customer as Model>::shards()
            .iter()
            .copied()
            .find(|s| s.is_named(region))
            .ok_or_else(|| Error::Config(format!("no shard {region}")))?;
        let rows = Customer::on_shard(shard).all(&cluster).await?;
        let mut here: Vec<&str> = rows.iter().map(|c| c.country.as_str()).collect();
        here.sort_unstable();
        here.dedup();
        println!("{region}: {} customers from {here:?}", rows.len());
        assert!(
            rows.iter()
                .all(|c| Customer::shard_for(&c.country) == shard)
        );
    }

    // A query by country reads only that region's database.
    cluster.log().start();
    let french = Customer::query()
        .filter(Customer::COUNTRY.eq("fr"))
        .count(&cluster)
        .await?;
    let touched: Vec<String> = cluster.log().stop().into_iter().map(|e| e.shard).collect();
    println!("customers in fr: {french}, read from {touched:?}");
    assert_eq!(touched, ["eu"]);

    cluster.log().start();
    let north_america = Customer::query()
        .filter(Customer::COUNTRY.is_in(["us", "ca"]))
        .count(&cluster)
        .await?;
    let touched: Vec<String> = cluster.log().stop().into_iter().map(|e| e.shard).collect();
    println!("customers in us + ca: {north_america}, read from {touched:?}");
    assert_eq!(touched, ["us"]);

    // A country the mapping does not list has no home: refused, nothing written.
    let stray = Customer {
        country: "br".into(),
        id: 9_001,
        name: "stray".into(),
        email: None,
    };
    match Customer::try_shard_for(&stray.country) {
        Err(e) => println!("try_shard_for(\"br\"): {e}"),
        Ok(shard) => panic!("br placed on {shard}"),
    }
    let refused = stray.insert(&cluster).await;
    println!(
        "insert of a customer in br: {}",
        refused
            .as_ref()
            .map_or_else(ToString::to_string, |_| "written?!".into())
    );
    assert!(matches!(refused, Err(Error::UnknownShard { .. })));
    let query = Customer::query()
        .filter(Customer::COUNTRY.eq("br"))
        .count(&cluster)
        .await;
    assert!(matches!(query, Err(Error::UnknownShard { .. })));
    assert_eq!(Customer::on_all_shards().count(&cluster).await?, 8_000);
    println!("geographic: ok");
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
