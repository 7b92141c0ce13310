//! Secondary indexes: `#[grant(index)]`, `#[grant(unique)]` and their multi-column forms on the
//! struct are created by `create_table` on every shard, on SQLite shard files and PostgreSQL
//! shard databases, read back from outside Grant with each database's own catalog; a unique set
//! holding the shard key is enforced cluster-wide; a table made before the index gets it.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/sides.rs"]
#[macro_use]
mod sides;

use grant::prelude::*;
use grant::{FromShardRow, Model};
use sides::Side;

/// A user of a multi-tenant application: emails unique per tenant, searchable by name.
#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "accounts")]
#[grant(unique(tenant_id, email), index(tenant_id, created_day))]
#[shard(strategy = "hash", on = "tenant_id", count = 4)]
pub struct Account {
    /// The tenant (the shard key).
    #[primary_key]
    pub tenant_id: i64,
    /// The account, within its tenant.
    #[primary_key]
    pub id: i64,
    /// Unique within the tenant.
    pub email: String,
    /// Searched by.
    #[grant(index)]
    pub name: String,
    /// Days since 1970, listed per tenant.
    pub created_day: i32,
}

/// A plan of the billing table on one shard: a unique code needs no shard key there.
#[derive(Model, Debug, Clone, PartialEq)]
#[grant(table = "plans", shard = "shard_0")]
pub struct Plan {
    /// The plan.
    #[primary_key]
    pub id: i64,
    /// Unique on the shard.
    #[grant(unique)]
    pub code: String,
}

/// An index as a database's catalog describes it: (name, unique, columns in order).
type Described = (String, bool, Vec<String>);

/// Reading a shard's catalog and running SQL on it, bypassing Grant.
trait Catalog: Side {
    /// The secondary indexes of `accounts` on shard `i`, sorted by name (plain sqlx).
    async fn indexes_on(&self, i: usize) -> Vec<Described>;
    /// Runs `sql` on shard `i` with plain sqlx.
    async fn run_on(&self, i: usize, sql: &str);
}

impl Catalog for sides::Files {
    async fn indexes_on(&self, i: usize) -> Vec<Described> {
        let pool = sqlx::SqlitePool::connect(&self.shard_url(i)).await.unwrap();
        // `origin = 'c'`: made by CREATE INDEX (not the primary key's own).
        let list: Vec<(String, bool)> = sqlx::query_as(
            "SELECT name, \"unique\" FROM pragma_index_list('accounts') WHERE origin = 'c' \
             ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut out = Vec::new();
        for (name, unique) in list {
            let columns: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            out.push((name, unique, columns.into_iter().map(|c| c.0).collect()));
        }
        pool.close().await;
        out
    }

    async fn run_on(&self, i: usize, sql: &str) {
        let pool = sqlx::SqlitePool::connect(&self.shard_url(i)).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

impl Catalog for sides::Databases {
    async fn indexes_on(&self, i: usize) -> Vec<Described> {
        let pool = pg::pool(&self.shard_url(i)).await;
        let rows: Vec<(String, bool, Vec<String>)> = sqlx::query_as(
            "SELECT CAST(ic.relname AS TEXT), ix.indisunique, \
                    ARRAY(SELECT CAST(a.attname AS TEXT) \
                          FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, pos) \
                          JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                          ORDER BY k.pos) \
             FROM pg_index ix \
             JOIN pg_class ic ON ic.oid = ix.indexrelid \
             JOIN pg_class t ON t.oid = ix.indrelid \
             WHERE t.relname = 'accounts' AND NOT ix.indisprimary \
             ORDER BY ic.relname",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }

    async fn run_on(&self, i: usize, sql: &str) {
        let pool = pg::pool(&self.shard_url(i)).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

fn account(tenant_id: i64, id: i64, email: &str) -> Account {
    Account {
        tenant_id,
        id,
        email: email.to_owned(),
        name: format!("account {id}"),
        created_day: 20_000 + (id % 7) as i32,
    }
}

fn expected() -> Vec<Described> {
    let cols = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        ("accounts_name_idx".into(), false, cols(&["name"])),
        (
            "accounts_tenant_id_created_day_idx".into(),
            false,
            cols(&["tenant_id", "created_day"]),
        ),
        (
            "accounts_tenant_id_email_key".into(),
            true,
            cols(&["tenant_id", "email"]),
        ),
    ]
}

on_both!("indexes_", create_table_creates_every_index_on_every_shard);
async fn create_table_creates_every_index_on_every_shard<S: Catalog>(side: &S)
where
    Account: FromShardRow<S::DB>,
{
    let cluster = side.cluster(4).await;
    assert_eq!(Account::INDEXES.len(), 3);
    Account::create_table(&cluster).await.unwrap();
    // Idempotent, like the table itself.
    Account::create_table(&cluster).await.unwrap();
    for i in 0..4 {
        assert_eq!(side.indexes_on(i).await, expected(), "shard_{i}");
    }

    // The unique set holds the shard key: every shard enforces it for the whole cluster, and a
    // duplicate is the database's refusal, naming the shard, with nothing written.
    account(1, 1, "ada@example.com")
        .insert(&cluster)
        .await
        .unwrap();
    account(2, 1, "ada@example.com")
        .insert(&cluster)
        .await
        .unwrap(); // another tenant: allowed
    let err = account(1, 2, "ada@example.com")
        .insert(&cluster)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Account") && msg.contains(&Account::shard_for(&1).name()),
        "{msg}"
    );
    assert!(
        msg.to_lowercase().contains("unique"),
        "the database's unique violation: {msg}"
    );
    assert_eq!(
        Account::query()
            .filter(Account::TENANT_ID.eq(1))
            .count(&cluster)
            .await
            .unwrap(),
        1
    );
    // One shard's table: a unique code is enforced there.
    Plan::create_table(&cluster).await.unwrap();
    Plan {
        id: 1,
        code: "pro".into(),
    }
    .insert(&cluster)
    .await
    .unwrap();
    assert!(
        Plan {
            id: 2,
            code: "pro".into()
        }
        .insert(&cluster)
        .await
        .is_err()
    );
    assert_eq!(Plan::INDEXES[0].name, "plans_code_key");
    // An upsert of the same primary key updates; a new key with a taken email is refused.
    let mut renamed = account(1, 1, "ada@example.com");
    renamed.name = "Ada".into();
    renamed.upsert(&cluster).await.unwrap();
    assert_eq!(
        Account::find(&cluster, (1, 1)).await.unwrap().unwrap().name,
        "Ada"
    );
    assert!(
        account(1, 3, "ada@example.com")
            .upsert(&cluster)
            .await
            .is_err()
    );
}

on_both!("indexes_", a_table_made_before_its_indexes_gets_them);
async fn a_table_made_before_its_indexes_gets_them<S: Catalog>(side: &S)
where
    Account: FromShardRow<S::DB>,
{
    let cluster = side.cluster(4).await;
    // An older release made the table (every column, no secondary index).
    for i in 0..4 {
        side.run_on(
            i,
            "CREATE TABLE accounts (tenant_id BIGINT NOT NULL, id BIGINT NOT NULL, \
             email TEXT NOT NULL, name TEXT NOT NULL, \
             created_day INTEGER NOT NULL, PRIMARY KEY (tenant_id, id))",
        )
        .await;
        assert!(side.indexes_on(i).await.is_empty());
    }
    let rows: Vec<Account> = (0..200)
        .map(|i| account(i % 5, i, &format!("u{i}@example.com")))
        .collect();
    Account::insert_many(&cluster, &rows).await.unwrap();
    // ... and, with no unique index to stop it, two accounts of tenant 3 share an email.
    let dup = account(3, 1_000, "u3@example.com");
    dup.insert(&cluster).await.unwrap();
    // The unique index cannot be built over that: refused by the database, naming the shard.
    let err = Account::create_table(&cluster).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&Account::shard_for(&3).name()), "{msg}");
    // Fixed, the indexes are made, every row kept.
    assert!(dup.delete(&cluster).await.unwrap());
    Account::create_table(&cluster).await.unwrap();
    for i in 0..4 {
        assert_eq!(side.indexes_on(i).await, expected(), "shard_{i}");
    }
    let mut all = Account::on_all_shards().all(&cluster).await.unwrap();
    all.sort_by_key(|a| a.id);
    assert_eq!(all, rows);
}
