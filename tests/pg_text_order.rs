//! Text order across PostgreSQL shards whose databases sort by a real-world collation (ICU
//! `en-US`, the harness's default): every cross-shard and routed answer orders text by bytes —
//! ORDER BY both ways, pages, keyset pages, range filters, DISTINCT, GROUP BY, MIN/MAX — as
//! one byte-order database (here: Rust's `str` order) would, whether the shard tables were
//! made by `create_table` (text columns `COLLATE "C"`) or by hand in the database's locale.
//! And `create_table`'s collation lets an index on a text column serve Grant's sorts (EXPLAIN).

#![allow(missing_docs)]

#[path = "common/pg.rs"]
mod pg;

use grant::prelude::*;
use sea_query::Value;

#[derive(Sharded, Debug, Clone, PartialEq)]
#[grant(table = "words")]
#[shard(strategy = "hash", on = "id", count = 4)]
pub struct Word {
    #[primary_key]
    pub id: i64,
    pub text: String,
    pub note: Option<String>,
}

/// Mixed case, accents, punctuation, digits, spaces, non-Latin: where byte order and the
/// en-US collation disagree.
const TEXTS: &[&str] = &[
    "apple", "Apple", "APPLE", "banana", "Banana", "éclair", "Eclair", "eclair", "zebra", "Zebra",
    "_under", "-dash", "a-b", "ab", "a b", "a_b", "10", "9", "1.5", "Ölfarbe", "oyster", "résumé",
    "resume", "Resume", "日本", "", "~tilde", "co-op", "coop", "Co-op", "ß", "ss", "SS", "b",
];

fn words() -> Vec<Word> {
    let mut out = Vec::new();
    let mut id = 0i64;
    for round in 0..6 {
        for (i, t) in TEXTS.iter().enumerate() {
            // Ids unrelated to the text order; some copies of a text tie and fall to the id.
            id += 1;
            let note = (i + round) % 3 != 0;
            out.push(Word {
                id: (id * 7919) % 1000,
                text: (*t).to_string(),
                note: note.then(|| TEXTS[(i * 5 + round) % TEXTS.len()].to_string()),
            });
        }
    }
    out
}

/// Byte order, ties by id: the oracle.
fn sorted(rows: &[Word], desc: bool) -> Vec<Word> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| {
        let by_text = a.text.as_bytes().cmp(b.text.as_bytes());
        (if desc { by_text.reverse() } else { by_text }).then(a.id.cmp(&b.id))
    });
    rows
}

fn ids(rows: &[Word]) -> Vec<(i64, String)> {
    rows.iter().map(|w| (w.id, w.text.clone())).collect()
}

async fn all_ok(cluster: &Cluster<Postgres>, sql: &str) {
    for (shard, outcome) in cluster.execute_on_all_shards(sql).await {
        outcome.unwrap_or_else(|e| panic!("{shard}: {sql}: {e}"));
    }
}

/// Every text-ordered answer, against the byte-order oracle.
async fn text_answers_are_byte_order(cluster: &Cluster<Postgres>, data: &[Word], how: &str) {
    for desc in [false, true] {
        let dir = if desc { Order::Desc } else { Order::Asc };
        let want = sorted(data, desc);
        let q = || Word::query().order_by(Word::TEXT, dir);
        let got = q().all(cluster).await.unwrap();
        assert_eq!(ids(&got), ids(&want), "{how}: ORDER BY text {dir:?}");
        let page = q().limit(7).offset(11).all(cluster).await.unwrap();
        assert_eq!(ids(&page), ids(&want[11..18]), "{how}: page {dir:?}");
        // Keyset pages through the same order.
        let mut pages = Vec::new();
        let mut last: Option<Word> = None;
        loop {
            let mut page = q().limit(9);
            if let Some(l) = &last {
                page = page.after(l);
            }
            let got = page.all(cluster).await.unwrap();
            if got.is_empty() {
                break;
            }
            last = got.last().cloned();
            pages.extend(got);
            assert!(pages.len() <= want.len(), "{how}: keyset pages overrun");
        }
        assert_eq!(ids(&pages), ids(&want), "{how}: keyset pages {dir:?}");
        // Routed to one shard: the shard's own sort, no merge.
        for shard in Word::shards() {
            let got = Word::on_shard(*shard)
                .order_by(Word::TEXT, dir)
                .all(cluster)
                .await
                .unwrap();
            let mine: Vec<Word> = want
                .iter()
                .filter(|w| Word::shard_for(&w.id) == *shard)
                .cloned()
                .collect();
            assert_eq!(
                ids(&got),
                ids(&mine),
                "{how}: {shard} ORDER BY text {dir:?}"
            );
        }
    }
    // Range filters compare bytes.
    let got = Word::query()
        .filter(Word::TEXT.gt("b").and(Word::TEXT.lte("eclair")))
        .order_by(Word::TEXT, Order::Asc)
        .all(cluster)
        .await
        .unwrap();
    let want: Vec<Word> = sorted(data, false)
        .into_iter()
        .filter(|w| w.text.as_str() > "b" && w.text.as_str() <= "eclair")
        .collect();
    assert_eq!(
        ids(&got),
        ids(&want),
        "{how}: text > 'b' AND text <= 'eclair'"
    );
    let got = Word::query()
        .filter(Word::TEXT.between("A", "a"))
        .count(cluster)
        .await
        .unwrap();
    let want = data
        .iter()
        .filter(|w| ("A"..="a").contains(&w.text.as_str()))
        .count();
    assert_eq!(got, want as u64, "{how}: text BETWEEN 'A' AND 'a'");
    // MIN / MAX.
    let min = data.iter().map(|w| w.text.clone()).min();
    let max = data.iter().map(|w| w.text.clone()).max();
    let notes = || data.iter().filter_map(|w| w.note.clone());
    assert_eq!(
        Word::query().min(Word::TEXT, cluster).await.unwrap(),
        min,
        "{how}"
    );
    assert_eq!(
        Word::query().max(Word::TEXT, cluster).await.unwrap(),
        max,
        "{how}"
    );
    assert_eq!(
        Word::query().min(Word::NOTE, cluster).await.unwrap(),
        notes().min(),
        "{how}"
    );
    assert_eq!(
        Word::query().max(Word::NOTE, cluster).await.unwrap(),
        notes().max(),
        "{how}"
    );
    // DISTINCT, ordered and paged.
    let mut distinct: Vec<String> = TEXTS.iter().map(|t| t.to_string()).collect();
    distinct.sort();
    let got: Vec<String> = Word::query()
        .select(Word::TEXT)
        .distinct()
        .order_by(Word::TEXT, Order::Asc)
        .limit(20)
        .all(cluster)
        .await
        .unwrap();
    assert_eq!(got, distinct[..20], "{how}: DISTINCT text");
    // GROUP BY.
    let got: Vec<(String, i64)> = Word::query()
        .select((Word::TEXT, count()))
        .group_by(Word::TEXT)
        .order_by(Word::TEXT, Order::Desc)
        .all(cluster)
        .await
        .unwrap();
    let want: Vec<(String, i64)> = distinct.iter().rev().map(|t| (t.clone(), 6)).collect();
    assert_eq!(got, want, "{how}: GROUP BY text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_orders_by_bytes_across_icu_en_us_shards() {
    const TEST: &str = "pg_text_order_icu";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 4).await;
    let data = words();

    // Tables made outside Grant, in the database's collation (ICU en-US).
    all_ok(
        &cluster,
        "CREATE TABLE words (id BIGINT PRIMARY KEY, text TEXT NOT NULL, note TEXT)",
    )
    .await;
    Word::insert_many(&cluster, &data).await.unwrap();
    // The shards do sort by the locale: this is not a byte-order database.
    let pool = pg::pool(&pg::shard_url(env, TEST, 0)).await;
    let local: Vec<String> =
        sqlx::query_scalar("SELECT text FROM (VALUES ('b'), ('B'), ('a')) v(text) ORDER BY text")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(local, ["a", "b", "B"]);
    pool.close().await;
    text_answers_are_byte_order(&cluster, &data, "tables in the en-US collation").await;

    // Tables made by create_table (fresh databases: the pools' prepared statements know the
    // old tables).
    let cluster = env.cluster(&format!("{TEST}_created"), 4).await;
    Word::create_table(&cluster).await.unwrap();
    Word::insert_many(&cluster, &data).await.unwrap();
    text_answers_are_byte_order(&cluster, &data, "tables made by create_table").await;
}

/// `sql` with its `$n` placeholders replaced by the literal values, for EXPLAIN.
fn inline(sql: &str, values: &[Value]) -> String {
    let mut sql = sql.to_string();
    for (i, v) in values.iter().enumerate().rev() {
        let literal = match v {
            Value::String(Some(s)) => format!("'{}'", s.replace('\'', "''")),
            Value::BigInt(Some(n)) => n.to_string(),
            Value::BigUnsigned(Some(n)) => n.to_string(),
            Value::Int(Some(n)) => n.to_string(),
            Value::Unsigned(Some(n)) => n.to_string(),
            other => panic!("no literal for {other:?}"),
        };
        sql = sql.replace(&format!("${}", i + 1), &literal);
    }
    sql
}

/// The plan of the statement Grant sent to `shard_0` for `run`.
async fn plan_of(
    cluster: &Cluster<Postgres>,
    pool: &sqlx::PgPool,
    run: impl AsyncFnOnce(),
) -> String {
    cluster.log().start();
    run().await;
    let log = cluster.log().stop();
    let sent = log
        .iter()
        .find(|e| e.shard == "shard_0")
        .expect("a statement on shard_0");
    let explain = format!("EXPLAIN {}", inline(&sent.sql, &sent.values));
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .fetch_all(pool)
        .await
        .unwrap();
    format!("{}\n{}", sent.sql, lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_text_collation_lets_indexes_serve_sorts() {
    const TEST: &str = "pg_text_order_explain";
    let Some(env) = pg::env().await else { return };
    let cluster = env.cluster(TEST, 4).await;
    Word::create_table(&cluster).await.unwrap();
    let pool = pg::pool(&pg::shard_url(env, TEST, 0)).await;
    let collations: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT column_name::text, collation_name::text FROM information_schema.columns \
         WHERE table_name = 'words' ORDER BY column_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        collations,
        [
            ("id".to_string(), None),
            ("note".to_string(), Some("C".to_string())),
            ("text".to_string(), Some("C".to_string())),
        ]
    );
    all_ok(&cluster, "CREATE INDEX words_text ON words (text, id)").await;
    // A copy of the table in the database's collation, for contrast.
    all_ok(
        &cluster,
        "CREATE TABLE words_local (id BIGINT PRIMARY KEY, text TEXT NOT NULL, note TEXT)",
    )
    .await;
    all_ok(
        &cluster,
        "CREATE INDEX words_local_text ON words_local (text, id)",
    )
    .await;
    let rows: Vec<Word> = (0..6000)
        .map(|i| Word {
            id: i,
            text: format!("{}{}", TEXTS[(i as usize * 7) % TEXTS.len()], i),
            note: None,
        })
        .collect();
    Word::insert_many(&cluster, &rows).await.unwrap();
    all_ok(&cluster, "INSERT INTO words_local SELECT * FROM words").await;
    all_ok(&cluster, "ANALYZE").await;

    let top = || Word::query().order_by(Word::TEXT, Order::Asc).limit(5);
    let plan = plan_of(&cluster, &pool, async || {
        top().all(&cluster).await.unwrap();
    })
    .await;
    assert!(plan.contains("COLLATE \"C\""), "{plan}");
    assert!(plan.contains("Index Scan using words_text"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");

    let first = top().all(&cluster).await.unwrap();
    let plan = plan_of(&cluster, &pool, async || {
        top().after(&first[4]).all(&cluster).await.unwrap();
    })
    .await;
    assert!(
        plan.contains("Index Scan using words_text"),
        "keyset: {plan}"
    );
    assert!(!plan.contains("Sort"), "keyset: {plan}");

    // The same statement on the en-US column cannot use its index for byte order.
    let sent = {
        cluster.log().start();
        top().all(&cluster).await.unwrap();
        cluster.log().stop().remove(0)
    };
    let local = inline(&sent.sql, &sent.values).replace("\"words\"", "\"words_local\"");
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {local}")))
        .fetch_all(&pool)
        .await
        .unwrap();
    let plan = lines.join("\n");
    assert!(plan.contains("Sort"), "{local}\n{plan}");
    pool.close().await;
}
