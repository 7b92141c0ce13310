//! `pg_hash` against a real PostgreSQL: tables `PARTITION BY HASH` with modulus 8 and 5 get at
//! least 10,000 random keys of each type (bigint with its extremes, int, smallint, text with the
//! empty string and non-ASCII, uuid, and a bigint + text composite key); every row's partition,
//! read from `tableoid`, must be the shard Grant places the key on — through the derive's
//! `shard_for`, the dynamic `shard_for_value(s)` the router uses, and `PgHashResolver`.
//!
//! Without PostgreSQL the test is skipped with a loud line on stderr; under CI (`CI=true`) it
//! fails instead (see `grant_sharding::testing::postgres`).

#[path = "common/pg.rs"]
mod pg;

use std::collections::HashSet;

use grant::prelude::*;
use grant::resolve::PgHashResolver;
use grant::resolve::pg_hash::shard_index;
use sea_query::Value;
use sqlx::PgPool;

/// Keys of each type per table.
const KEYS: usize = 10_000;

macro_rules! models {
    ($($name:ident: $ty:ty, $count:literal;)*) => {$(
        #[derive(Sharded, Debug, Clone, PartialEq)]
        #[shard(strategy = "pg_hash", on = "k", count = $count)]
        struct $name {
            #[primary_key]
            k: $ty,
        }
    )*};
}

models! {
    Big8: i64, 8;
    Big5: i64, 5;
    Int8: i32, 8;
    Int5: i32, 5;
    Small8: i16, 8;
    Small5: i16, 5;
    Text8: String, 8;
    Text5: String, 5;
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = ["a", "b"], count = 8)]
struct Pair8 {
    #[primary_key]
    a: i64,
    #[primary_key]
    b: String,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[shard(strategy = "pg_hash", on = ["a", "b"], count = 5)]
struct Pair5 {
    #[primary_key]
    a: i64,
    #[primary_key]
    b: String,
}

/// SplitMix64: a small deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Full-range values, small values around zero, and powers of two and their neighbours.
    fn i64(&mut self) -> i64 {
        match self.below(4) {
            0 => self.next() as i64,
            1 => self.below(2001) as i64 - 1000,
            2 => {
                let p = 1_i64.checked_shl(self.below(63) as u32).unwrap_or(1);
                let v = p + self.below(3) as i64 - 1;
                if self.below(2) == 0 { v } else { -v }
            }
            _ => (self.next() >> self.below(64)) as i64,
        }
    }

    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "b", "z", "A", "0", "9", " ", "'", "\"", "\\", "-", "_", "é", "ü", "ß", "日",
            "本", "😀", "\u{7f}", "\t",
        ];
        let len = match self.below(4) {
            0 => self.below(4),
            1 => self.below(13),
            _ => self.below(40),
        };
        (0..len)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn uuid(&mut self) -> [u8; 16] {
        let mut out = [0_u8; 16];
        out[..8].copy_from_slice(&self.next().to_le_bytes());
        out[8..].copy_from_slice(&self.next().to_le_bytes());
        out
    }
}

/// Creates `table` `PARTITION BY HASH (columns)` with `modulus` partitions `{table}_p{r}`.
async fn partitioned(pool: &PgPool, table: &str, columns: &str, keys: &str, modulus: u32) {
    let sql = format!("CREATE TABLE {table} ({columns}) PARTITION BY HASH ({keys})");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
    for r in 0..modulus {
        let sql = format!(
            "CREATE TABLE {table}_p{r} PARTITION OF {table} \
             FOR VALUES WITH (MODULUS {modulus}, REMAINDER {r})"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// The remainder of a partition named `{table}_p{r}`.
fn remainder(partition: &str) -> u32 {
    partition
        .rsplit_once("_p")
        .and_then(|(_, r)| r.parse().ok())
        .unwrap_or_else(|| panic!("unexpected partition name {partition}"))
}

/// Asserts `placed(key) == partition` for every row; reports the first disagreements.
fn assert_agrees<K: std::fmt::Debug>(
    table: &str,
    rows: &[(K, String)],
    placed: impl Fn(&K) -> u32,
) -> usize {
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(k, p)| placed(k) != remainder(p))
        .take(10)
        .map(|(k, p)| format!("{k:?} is in {p}, Grant says remainder {}", placed(k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{table}: Grant disagrees with PostgreSQL:\n{}",
        wrong.join("\n")
    );
    let partitions: HashSet<&str> = rows.iter().map(|(_, p)| p.as_str()).collect();
    assert!(partitions.len() > 1, "{table}: every row in one partition");
    rows.len()
}

/// The 16 bytes of a UUID in PostgreSQL's text form.
fn uuid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut out = [0_u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_hash_places_every_key_where_postgres_partitions_it() {
    const TEST: &str = "pg_hash_matches_postgres";
    let Some(env) = pg::env().await else { return };
    let url = env.database(TEST).await;
    let pool = pg::pool(&url).await;
    let mut rng = Rng(0x5eed_0f9a_4a5b);
    let mut checked = 0;

    // bigint, with its extremes.
    let mut bigints: Vec<i64> = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, 42, i64::MAX - 1, i64::MAX];
    bigints.extend((0..KEYS).map(|_| rng.i64()));
    for modulus in [8, 5] {
        let table = format!("t_bigint_{modulus}");
        partitioned(&pool, &table, "k bigint NOT NULL", "k", modulus).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM UNNEST($1::bigint[])"
        )))
        .bind(&bigints)
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT k, tableoid::regclass::text FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), bigints.len());
        checked += assert_agrees(&table, &rows, |k| match modulus {
            8 => {
                let typed = Big8::shard_for(k);
                let dynamic = <Big8 as Model>::shard_for_value(&Value::BigInt(Some(*k))).unwrap();
                assert_eq!(typed, dynamic, "{k}");
                typed.index()
            }
            _ => {
                let typed = Big5::shard_for(k);
                assert_eq!(PgHashResolver::new(5).shard_for(k), typed);
                typed.index()
            }
        });
    }

    // int and smallint: the same placement as bigint for the same value.
    let ints: Vec<i32> = [i32::MIN, -1, 0, 1, i32::MAX]
        .into_iter()
        .chain((0..KEYS).map(|_| rng.i64() as i32))
        .collect();
    let smallints: Vec<i16> = [i16::MIN, -1, 0, 1, i16::MAX]
        .into_iter()
        .chain((0..KEYS).map(|_| rng.i64() as i16))
        .collect();
    for modulus in [8, 5] {
        let table = format!("t_int_{modulus}");
        partitioned(&pool, &table, "k int NOT NULL", "k", modulus).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM UNNEST($1::int[])"
        )))
        .bind(&ints)
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<(i32, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT k, tableoid::regclass::text FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), ints.len());
        checked += assert_agrees(&table, &rows, |k| match modulus {
            8 => {
                let dynamic = <Int8 as Model>::shard_for_value(&Value::Int(Some(*k))).unwrap();
                assert_eq!(Int8::shard_for(k), dynamic);
                Int8::shard_for(k).index()
            }
            _ => Int5::shard_for(k).index(),
        });

        let table = format!("t_smallint_{modulus}");
        partitioned(&pool, &table, "k smallint NOT NULL", "k", modulus).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM UNNEST($1::smallint[])"
        )))
        .bind(&smallints)
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<(i16, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT k, tableoid::regclass::text FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        checked += assert_agrees(&table, &rows, |k| match modulus {
            8 => Small8::shard_for(k).index(),
            _ => Small5::shard_for(k).index(),
        });
    }

    // text, with the empty string and non-ASCII.
    let mut texts: Vec<String> = ["", "hello", "héllo", "日本", "😀", "a'b", " "]
        .into_iter()
        .map(String::from)
        .collect();
    texts.extend((0..KEYS).map(|_| rng.text()));
    for modulus in [8, 5] {
        let table = format!("t_text_{modulus}");
        partitioned(&pool, &table, "k text NOT NULL", "k", modulus).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM UNNEST($1::text[])"
        )))
        .bind(&texts)
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT k, tableoid::regclass::text FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), texts.len());
        checked += assert_agrees(&table, &rows, |k| match modulus {
            8 => {
                let dynamic =
                    <Text8 as Model>::shard_for_value(&Value::String(Some(k.clone()))).unwrap();
                assert_eq!(Text8::shard_for(k), dynamic);
                Text8::shard_for(k).index()
            }
            _ => Text5::shard_for(k).index(),
        });
    }

    // varchar hashes as text.
    let table = "t_varchar_8";
    partitioned(&pool, table, "k varchar(64) NOT NULL", "k", 8).await;
    sqlx::query("INSERT INTO t_varchar_8 SELECT * FROM UNNEST($1::varchar[])")
        .bind(&texts)
        .execute(&pool)
        .await
        .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT k, tableoid::regclass::text FROM t_varchar_8")
            .fetch_all(&pool)
            .await
            .unwrap();
    checked += assert_agrees(table, &rows, |k| Text8::shard_for(k).index());

    // uuid: its 16 bytes, as `[u8; 16]` keys.
    let uuids: Vec<String> = (0..KEYS)
        .map(|_| uuid_text(&rng.uuid()))
        .chain([
            "00000000-0000-0000-0000-000000000000".to_owned(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff".to_owned(),
        ])
        .collect();
    for modulus in [8, 5] {
        let table = format!("t_uuid_{modulus}");
        partitioned(&pool, &table, "k uuid NOT NULL", "k", modulus).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM UNNEST($1::text[]::uuid[])"
        )))
        .bind(&uuids)
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT k::text, tableoid::regclass::text FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), uuids.len());
        let resolver = PgHashResolver::new(modulus);
        checked += assert_agrees(&table, &rows, |k| {
            let bytes = uuid_bytes(k);
            assert_eq!(uuid_text(&bytes), *k);
            resolver.shard_for(&bytes).index()
        });
    }

    // bigint + text composite key, in that column order.
    let pairs: Vec<(i64, String)> = [(42, "hello".to_owned()), (0, String::new())]
        .into_iter()
        .chain((0..KEYS).map(|_| (rng.i64(), rng.text())))
        .collect();
    let (a, b): (Vec<i64>, Vec<String>) = pairs.iter().cloned().unzip();
    for modulus in [8, 5] {
        let table = format!("t_pair_{modulus}");
        partitioned(
            &pool,
            &table,
            "a bigint NOT NULL, b text NOT NULL",
            "a, b",
            modulus,
        )
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM UNNEST($1::bigint[], $2::text[])"
        )))
        .bind(&a)
        .bind(&b)
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<((i64, String), String)> =
            sqlx::query_as::<_, (i64, String, String)>(sqlx::AssertSqlSafe(format!(
                "SELECT a, b, tableoid::regclass::text FROM {table}"
            )))
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(a, b, p)| ((a, b), p))
            .collect();
        assert_eq!(rows.len(), pairs.len());
        checked += assert_agrees(&table, &rows, |key| match modulus {
            8 => {
                let typed = Pair8::shard_for(key);
                let dynamic = <Pair8 as Model>::shard_for_values(&[
                    Value::BigInt(Some(key.0)),
                    Value::String(Some(key.1.clone())),
                ])
                .unwrap();
                assert_eq!(typed, dynamic, "{key:?}");
                assert_eq!(
                    <Pair8 as Model>::shard_of_key(&(key.0, key.1.clone())),
                    typed
                );
                typed.index()
            }
            _ => {
                let typed = Pair5::shard_for(key);
                assert_eq!(shard_index(&(key.0, key.1.as_str()), 5), typed.index());
                typed.index()
            }
        });
    }

    pool.close().await;
    eprintln!("pg_hash: {checked} rows placed exactly as PostgreSQL partitions them");
    assert!(checked >= 12 * KEYS);
}

/// The same placement through Grant itself: rows written to a `pg_hash` model on PostgreSQL
/// shards land on the shard whose index is the partition PostgreSQL picks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_writes_land_on_the_postgres_partition() {
    const TEST: &str = "pg_hash_grant_writes";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 5).await;
    Pair5::create_table(&cluster).await.unwrap();
    let mut rng = Rng(7);
    let rows: Vec<Pair5> = (0..500)
        .map(|i| Pair5 {
            a: rng.i64(),
            b: format!("{}-{i}", rng.text()),
        })
        .collect();
    assert_eq!(Pair5::insert_many(&cluster, &rows).await.unwrap(), 500);

    // PostgreSQL's own answer, from a partitioned table in a separate database.
    let url = env.database(TEST).await;
    let pool = pg::pool(&url).await;
    partitioned(&pool, "p", "a bigint NOT NULL, b text NOT NULL", "a, b", 5).await;
    for i in 0..5_usize {
        let shard = pg::pool(&pg::shard_url(env, TEST, i)).await;
        let keys: Vec<(i64, String)> = sqlx::query_as("SELECT a, b FROM pair5")
            .fetch_all(&shard)
            .await
            .unwrap();
        shard.close().await;
        for (a, b) in keys {
            let partition: String = sqlx::query_scalar(
                "WITH i AS (INSERT INTO p VALUES ($1, $2) RETURNING tableoid) \
                 SELECT tableoid::regclass::text FROM i",
            )
            .bind(a)
            .bind(&b)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(remainder(&partition), i as u32, "({a}, {b:?})");
        }
    }
    pool.close().await;

    // Finds route to one shard.
    cluster.log().start();
    let found = Pair5::find(&cluster, (rows[0].a, rows[0].b.clone()))
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&rows[0]));
    let log = cluster.log().stop();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].shard,
        Pair5::shard_for(&(rows[0].a, rows[0].b.clone())).name()
    );
}
