use grant::prelude::*;

#[derive(Sharded, Clone, Debug)]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Tenant {
    #[primary_key]
    pub id: i64,
    pub settings: serde_json::Value,
    pub labels: grant::Json<Vec<String>>,
}

fn main() {
    let _ = Tenant::query().order_by(Tenant::SETTINGS, Order::Asc);
    let _ = Tenant::query().select((Tenant::LABELS, count())).group_by(Tenant::LABELS);
}
