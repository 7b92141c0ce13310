use grant::prelude::*;

#[derive(Sharded)]
#[shard(strategy = "range", on = "id", ranges(old = .."2025-01-01", new = "2025-01-01"..))]
pub struct Order {
    #[primary_key]
    pub id: i64,
}

#[derive(Sharded)]
#[shard(strategy = "range", on = "day", ranges(a = .."2025-02-30", b = "2025-03-01"..20250401))]
pub struct Reading {
    #[primary_key]
    pub day: chrono::NaiveDate,
}

fn main() {}
