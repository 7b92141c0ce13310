use grant::prelude::*;
use grant::Json;

#[derive(SqlEnum, Clone, Copy, Debug, PartialEq)]
pub enum Status {
    Open,
    #[grant(rename = "in_progress")]
    InProgress,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub theme: String,
}

#[derive(Sharded, Clone, Debug)]
#[shard(strategy = "pg_hash", on = "tenant_id", count = 4)]
pub struct Issue {
    #[primary_key]
    pub tenant_id: uuid::Uuid,
    #[primary_key]
    pub id: i64,
    pub status: Status,
    pub closed: Option<Status>,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub due: Option<chrono::NaiveDate>,
    pub at: time::OffsetDateTime,
    pub estimate: Option<rust_decimal::Decimal>,
    pub settings: Json<Settings>,
    pub raw: Option<serde_json::Value>,
}

#[derive(Sharded, Clone, Debug)]
#[shard(strategy = "hash", on = "day", count = 4)]
pub struct Reading {
    #[primary_key]
    pub day: time::Date,
    #[primary_key]
    pub at: chrono::NaiveDateTime,
}

fn main() {
    let _ = Issue::query()
        .filter(Issue::STATUS.eq(Status::Open).and(Issue::ESTIMATE.gt(rust_decimal::Decimal::ONE)))
        .order_by(Issue::OPENED_AT, Order::Desc)
        .order_by(Issue::STATUS, Order::Asc);
    let _ = Issue::query()
        .select((Issue::STATUS, count(), Issue::ESTIMATE.sum(), Issue::ESTIMATE.avg()))
        .group_by(Issue::STATUS);
    let _ = Issue::shard_for(&uuid::Uuid::nil());
}
