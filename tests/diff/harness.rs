// The differential harness, included by `mod.rs` (and by tests with their own `Item` model):
// it expects `Item` and `grant::prelude::*` in scope.

pub type Tuple = (
    i64,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<f64>,
    bool,
);

fn tuple(i: &Item) -> Tuple {
    (i.id, i.grp.clone(), i.cat.clone(), i.a, i.b, i.f, i.flag)
}

/// SplitMix64: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const GRPS: &[&str] = &[
    "a", "b", "B", "é", "o'q", "\"x\"", "", "日本", "a b", "A%b", "a_b", "x\\y", "É", "Ab",
];
const CATS: &[&str] = &["x", "y", "z", "X", "x'", "x%", "X_"];
/// `like` / `ilike` patterns: wildcards, escaped `%` `_` `\`, case, accents.
const LIKES: &[&str] = &[
    "a%", "%x%", "_", "%'%", "B%", "%", "A%", "%b", "a\\%%", "%\\_%", "%\\\\%", "x\\\\y", "_b",
    "é%", "É%", "X\\_", "%\\%",
];

pub fn rows(rng: &mut Rng, n: usize) -> Vec<Item> {
    let mut ids: Vec<i64> = (-60..(n as i64 - 60)).collect();
    // Shuffle so ids and values are unrelated.
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    ids.into_iter()
        .map(|id| Item {
            id,
            grp: rng.pick(GRPS).to_string(),
            cat: rng.chance(75).then(|| rng.pick(CATS).to_string()),
            a: rng.range(-100, 100),
            b: rng.chance(70).then(|| rng.range(-5, 5)),
            f: rng.chance(80).then(|| rng.range(-40, 40) as f64 * 0.25),
            flag: rng.chance(50),
        })
        .collect()
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A random condition, as Grant's typed condition and as `side`'s SQL text.
pub fn cond<B: Backend>(side: &B, rng: &mut Rng, depth: u32) -> (Cond<Item>, String) {
    if depth > 0 && rng.chance(40) {
        let (a, sa) = cond(side, rng, depth - 1);
        let (b, sb) = cond(side, rng, depth - 1);
        return match rng.below(3) {
            0 => (a.and(b), format!("({sa} AND {sb})")),
            1 => (a.or(b), format!("({sa} OR {sb})")),
            _ => (a.not(), format!("(NOT {sa})")),
        };
    }
    match rng.below(7) {
        0 => {
            let v = rng.range(-70, 420);
            match rng.below(4) {
                0 => (Item::ID.eq(v), format!("id = {v}")),
                1 => {
                    let vs: Vec<i64> = (0..rng.range(1, 5)).map(|_| rng.range(-70, 420)).collect();
                    let list = vs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
                    (Item::ID.is_in(vs), format!("id IN ({list})"))
                }
                2 => {
                    let w = v + rng.range(0, 80);
                    (Item::ID.between(v, w), format!("id BETWEEN {v} AND {w}"))
                }
                _ => (Item::ID.lt(v), format!("id < {v}")),
            }
        }
        1 => {
            let g = rng.pick(GRPS).to_string();
            match rng.below(5) {
                0 => (Item::GRP.eq(g.clone()), format!("grp = {}", lit(&g))),
                1 => (Item::GRP.ne(g.clone()), format!("grp <> {}", lit(&g))),
                2 => (Item::GRP.lt(g.clone()), format!("grp < {}", lit(&g))),
                3 => {
                    let h = rng.pick(GRPS).to_string();
                    (
                        Item::GRP.is_in([g.clone(), h.clone()]),
                        format!("grp IN ({}, {})", lit(&g), lit(&h)),
                    )
                }
                _ => {
                    let p = rng.pick(LIKES).to_string();
                    if rng.chance(50) {
                        (Item::GRP.like(p.clone()), side.like_sql("grp", &p, false))
                    } else {
                        (Item::GRP.ilike(p.clone()), side.like_sql("grp", &p, true))
                    }
                }
            }
        }
        2 => match rng.below(4) {
            0 => (Item::CAT.is_null(), "cat IS NULL".into()),
            1 => (Item::CAT.is_not_null(), "cat IS NOT NULL".into()),
            2 => {
                let c = rng.pick(CATS).to_string();
                (Item::CAT.eq(Some(c.clone())), format!("cat = {}", lit(&c)))
            }
            _ => {
                let p = rng.pick(LIKES).to_string();
                if rng.chance(50) {
                    (Item::CAT.like(p.clone()), side.like_sql("cat", &p, false))
                } else {
                    (Item::CAT.ilike(p.clone()), side.like_sql("cat", &p, true))
                }
            }
        },
        3 => {
            let v = rng.range(-110, 110);
            match rng.below(4) {
                0 => (Item::A.gt(v), format!("a > {v}")),
                1 => (Item::A.lte(v), format!("a <= {v}")),
                2 => (Item::A.ne(v), format!("a <> {v}")),
                _ => {
                    let w = v + rng.range(0, 60);
                    (Item::A.between(v, w), format!("a BETWEEN {v} AND {w}"))
                }
            }
        }
        4 => {
            let v = rng.range(-6, 6);
            match rng.below(3) {
                0 => (Item::B.is_null(), "b IS NULL".into()),
                1 => (Item::B.gte(Some(v)), format!("b >= {v}")),
                _ => (Item::B.eq(Some(v)), format!("b = {v}")),
            }
        }
        5 => {
            let v = rng.range(-40, 40) as f64 * 0.25;
            match rng.below(3) {
                0 => (Item::F.is_not_null(), "f IS NOT NULL".into()),
                1 => (Item::F.gt(Some(v)), format!("f > {v:?}")),
                _ => (Item::F.lt(Some(v)), format!("f < {v:?}")),
            }
        }
        _ => {
            let b = rng.chance(50);
            (
                Item::FLAG.eq(b),
                format!("flag = {}", if b { "TRUE" } else { "FALSE" }),
            )
        }
    }
}

/// The database holding all rows, queried with plain SQL.
pub trait Backend {
    type Db: grant::Backend;
    fn sharded(&self) -> &Cluster<Self::Db>;
    /// Rows as tuples, in the SQL's order.
    fn rows(&self, sql: &str) -> impl Future<Output = Vec<Tuple>> + Send;
    /// One i64 column.
    fn ints(&self, sql: &str) -> impl Future<Output = Vec<i64>> + Send;
    fn aggregates(&self, sql: &str) -> impl Future<Output = Aggregates> + Send;
    fn groups(&self, sql: &str) -> impl Future<Output = Vec<GroupRow>> + Send;
    fn pairs(&self, sql: &str) -> impl Future<Output = Vec<(String, Option<String>)>> + Send;
    /// How the reference spells the (NULL-ordered) ORDER BY item.
    fn order_item(&self, col: &str, desc: bool, nulls: Option<bool>) -> String {
        let mut s = format!("{col} {}", if desc { "DESC" } else { "ASC" });
        match nulls {
            Some(true) => s += " NULLS FIRST",
            Some(false) => s += " NULLS LAST",
            None => {}
        }
        s
    }
    /// The reference's spelling of Grant's `like` (case-sensitive) or `ilike` (ASCII letters
    /// case-insensitive) of `col` with `pattern` (backslash escapes).
    fn like_sql(&self, col: &str, pattern: &str, ilike: bool) -> String;
    /// `LIMIT ALL` spelling for an offset without a limit.
    fn no_limit(&self) -> &'static str;
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;
    /// Loads the same rows on both sides.
    fn load(&self, data: &[Item]) -> impl Future<Output = ()> + Send;
}

/// count, count(b), sum(a), min(grp), max(b), avg(a), count(distinct cat), sum(f)
pub type Aggregates = (
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<f64>,
    i64,
    Option<f64>,
);

/// grp, count, sum(a), min(cat), max(b), avg(a), count(b), count(distinct cat)
pub type GroupRow = (
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<f64>,
    i64,
    i64,
);

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
        (x, y) => x == y,
    }
}

pub struct SqliteSide {
    pub cluster: Cluster<Sqlite>,
    pub single: sqlx::SqlitePool,
}

impl SqliteSide {
    pub async fn new() -> Self {
        let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
        // The reference spells a case-sensitive LIKE its own way: the (deprecated, but
        // independent of Grant's GLOB) pragma.
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(
            "sqlite::memory:",
        )
        .unwrap()
        .pragma("case_sensitive_like", "ON");
        let single = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        SqliteSide { cluster, single }
    }
}

impl Backend for SqliteSide {
    type Db = Sqlite;
    fn sharded(&self) -> &Cluster<Sqlite> {
        &self.cluster
    }
    async fn rows(&self, sql: &str) -> Vec<Tuple> {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn ints(&self, sql: &str) -> Vec<i64> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn aggregates(&self, sql: &str) -> Aggregates {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn groups(&self, sql: &str) -> Vec<GroupRow> {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn pairs(&self, sql: &str) -> Vec<(String, Option<String>)> {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    fn like_sql(&self, col: &str, pattern: &str, ilike: bool) -> String {
        // `case_sensitive_like` is on: LIKE compares exactly, lower() folds ASCII only.
        if ilike {
            format!("lower({col}) LIKE lower({}) ESCAPE '\\'", lit(pattern))
        } else {
            format!("{col} LIKE {} ESCAPE '\\'", lit(pattern))
        }
    }
    fn no_limit(&self) -> &'static str {
        "LIMIT -1"
    }
    fn name(&self) -> &'static str {
        "sqlite"
    }
    async fn load(&self, data: &[Item]) {
        Item::create_table(&self.cluster).await.unwrap();
        Item::insert_many(&self.cluster, data).await.unwrap();
        sqlx::query(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, grp TEXT NOT NULL, cat TEXT, \
             a BIGINT NOT NULL, b BIGINT, f DOUBLE, flag BOOLEAN NOT NULL)",
        )
        .execute(&self.single)
        .await
        .unwrap();
        for sql in insert_sql(data) {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&self.single)
                .await
                .unwrap();
        }
    }
}

pub const COLUMNS: &str = "id, grp, cat, a, b, f, flag";

/// `INSERT` statements for the reference database, 100 rows each.
pub fn insert_sql(data: &[Item]) -> Vec<String> {
    data.chunks(100)
        .map(|chunk| {
            let values: Vec<String> = chunk
                .iter()
                .map(|i| {
                    format!(
                        "({}, {}, {}, {}, {}, {}, {})",
                        i.id,
                        lit(&i.grp),
                        i.cat.as_deref().map_or("NULL".to_string(), lit),
                        i.a,
                        i.b.map_or("NULL".to_string(), |v| v.to_string()),
                        i.f.map_or("NULL".to_string(), |v| format!("{v:?}")),
                        if i.flag { "TRUE" } else { "FALSE" }
                    )
                })
                .collect();
            format!("INSERT INTO items ({COLUMNS}) VALUES {}", values.join(", "))
        })
        .collect()
}

pub async fn run<B: Backend>(side: &B)
where
    Item: grant::FromShardRow<B::Db>,
{
    run_n(side, 1200).await
}

/// [`run`] with `default_queries` random queries unless `GRANT_DIFF_QUERIES` says otherwise.
pub async fn run_n<B: Backend>(side: &B, default_queries: usize)
where
    Item: grant::FromShardRow<B::Db>,
{
    let seed: u64 = std::env::var("GRANT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0067_7261_6e74);
    let queries: usize = std::env::var("GRANT_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_queries);
    let mut rng = Rng::new(seed);
    let data = rows(&mut rng, 500);
    side.load(&data).await;
    let cluster = side.sharded();
    let mut counts = [0usize; 6];
    for q in 0..queries {
        let (filter, where_sql) = if rng.chance(85) {
            let (c, s) = cond(side, &mut rng, 2);
            (Some(c), format!(" WHERE {s}"))
        } else {
            (None, String::new())
        };
        let base = match &filter {
            Some(c) => Item::query().filter(c.clone()),
            None => Item::query(),
        };
        let ctx = format!("seed {seed} query {q}");
        let kind = rng.below(6) as usize;
        counts[kind] += 1;
        match kind {
            // Rows, ordered by random columns, paged.
            0 | 1 => {
                let mut query = base.clone();
                let mut order_sql = Vec::new();
                let cols: [(&str, u8); 7] = [
                    ("grp", 0),
                    ("cat", 1),
                    ("a", 2),
                    ("b", 3),
                    ("f", 4),
                    ("flag", 5),
                    ("id", 6),
                ];
                for _ in 0..rng.below(4) {
                    let (name, c) = *rng.pick(&cols);
                    let desc = rng.chance(50);
                    let nulls = match rng.below(3) {
                        0 => Some(true),
                        1 => Some(false),
                        _ => None,
                    };
                    let dir = if desc { Order::Desc } else { Order::Asc };
                    query = match (c, nulls) {
                        (0, None) => query.order_by(Item::GRP, dir),
                        (1, None) => query.order_by(Item::CAT, dir),
                        (2, None) => query.order_by(Item::A, dir),
                        (3, None) => query.order_by(Item::B, dir),
                        (4, None) => query.order_by(Item::F, dir),
                        (5, None) => query.order_by(Item::FLAG, dir),
                        (_, None) => query.order_by(Item::ID, dir),
                        (0, Some(n)) => query.order_by_nulls(Item::GRP, dir, nulls_of(n)),
                        (1, Some(n)) => query.order_by_nulls(Item::CAT, dir, nulls_of(n)),
                        (2, Some(n)) => query.order_by_nulls(Item::A, dir, nulls_of(n)),
                        (3, Some(n)) => query.order_by_nulls(Item::B, dir, nulls_of(n)),
                        (4, Some(n)) => query.order_by_nulls(Item::F, dir, nulls_of(n)),
                        (5, Some(n)) => query.order_by_nulls(Item::FLAG, dir, nulls_of(n)),
                        (_, Some(n)) => query.order_by_nulls(Item::ID, dir, nulls_of(n)),
                    };
                    order_sql.push(side.order_item(name, desc, nulls));
                }
                let ordered = !order_sql.is_empty();
                let unpaged = query.clone();
                order_sql.push("id ASC".into());
                let mut sql = format!(
                    "SELECT {COLUMNS} FROM items{where_sql} ORDER BY {}",
                    order_sql.join(", ")
                );
                let limit = rng.chance(60).then(|| rng.below(60));
                let offset = if rng.chance(50) { rng.below(520) } else { 0 };
                if let Some(l) = limit {
                    query = query.limit(l);
                    sql += &format!(" LIMIT {l}");
                } else if offset > 0 {
                    sql += &format!(" {}", side.no_limit());
                }
                if offset > 0 {
                    query = query.offset(offset);
                    sql += &format!(" OFFSET {offset}");
                }
                let want = side.rows(&sql).await;
                if kind == 1 && ordered {
                    // Keyset pages through the same order must give the same rows.
                    let size = rng.range(8, 60) as u64;
                    let mut pages = Vec::new();
                    let mut last: Option<Item> = None;
                    let keyset = unpaged.clone();
                    let unpaged_sql = format!(
                        "SELECT {COLUMNS} FROM items{where_sql} ORDER BY {}",
                        order_sql.join(", ")
                    );
                    let all = side.rows(&unpaged_sql).await;
                    loop {
                        let mut page = keyset.clone().limit(size);
                        if let Some(l) = &last {
                            page = page.after(l);
                        }
                        let got = page
                            .all(cluster)
                            .await
                            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        if got.is_empty() {
                            break;
                        }
                        last = got.last().cloned();
                        pages.extend(got.iter().map(tuple));
                        assert!(pages.len() <= all.len(), "{ctx}: keyset pages overrun");
                    }
                    assert_eq!(pages, all, "{ctx}: keyset pages ({size}) vs {unpaged_sql}");
                }
                let got: Vec<Tuple> = query
                    .clone()
                    .all(cluster)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                    .iter()
                    .map(tuple)
                    .collect();
                if ordered {
                    assert_eq!(got, want, "{ctx}: {sql}");
                } else {
                    // Without ORDER BY any order (and, with a page, any rows) is right: compare
                    // the counts and that every row matches the filter.
                    assert_eq!(got.len(), want.len(), "{ctx}: {sql}");
                    if limit.is_none() && offset == 0 {
                        let mut g = got.clone();
                        let mut w = want.clone();
                        g.sort_by_key(|t| t.0);
                        w.sort_by_key(|t| t.0);
                        assert_eq!(g, w, "{ctx}: {sql}");
                    }
                }
                let n = query
                    .count(cluster)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(n, want.len() as u64, "{ctx}: count of {sql}");
            }
            // Every aggregate, no grouping.
            2 => {
                let sql = format!(
                    "SELECT COUNT(*), COUNT(b), SUM(a), MIN(grp), MAX(b), AVG(a), \
                     COUNT(DISTINCT cat), SUM(f) FROM items{where_sql}"
                );
                let want = side.aggregates(&sql).await;
                let got = base
                    .clone()
                    .select((
                        count(),
                        Item::B.count(),
                        Item::A.sum(),
                        Item::GRP.min(),
                        Item::B.max(),
                        Item::A.avg(),
                        Item::CAT.count_distinct(),
                        Item::F.sum(),
                    ))
                    .one(cluster)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                    .unwrap();
                assert_eq!(
                    (got.0, got.1, got.2, &got.3, got.4, got.6),
                    (want.0, want.1, want.2, &want.3, want.4, want.6),
                    "{ctx}: {sql}"
                );
                assert!(
                    close(got.5, want.5),
                    "{ctx}: avg {:?} vs {:?}: {sql}",
                    got.5,
                    want.5
                );
                assert!(
                    close(got.7, want.7),
                    "{ctx}: sum(f) {:?} vs {:?}: {sql}",
                    got.7,
                    want.7
                );
                // The typed shortcuts agree.
                assert_eq!(
                    base.clone().count(cluster).await.unwrap(),
                    want.0 as u64,
                    "{ctx}"
                );
                assert_eq!(
                    base.clone().sum(Item::A, cluster).await.unwrap(),
                    want.2,
                    "{ctx}"
                );
                assert_eq!(
                    base.clone().max(Item::B, cluster).await.unwrap(),
                    want.4,
                    "{ctx}"
                );
                assert_eq!(
                    base.clone().min(Item::GRP, cluster).await.unwrap(),
                    want.3,
                    "{ctx}"
                );
                assert!(
                    close(base.clone().avg(Item::A, cluster).await.unwrap(), want.5),
                    "{ctx}"
                );
            }
            // GROUP BY with HAVING, ORDER BY an aggregate or the key, LIMIT/OFFSET.
            3 | 4 => {
                let mut select = base
                    .clone()
                    .select((
                        Item::GRP,
                        count(),
                        Item::A.sum(),
                        Item::CAT.min(),
                        Item::B.max(),
                        Item::A.avg(),
                        Item::B.count(),
                        Item::CAT.count_distinct(),
                    ))
                    .group_by(Item::GRP);
                let mut sql = format!(
                    "SELECT grp, COUNT(*), SUM(a), MIN(cat), MAX(b), AVG(a), COUNT(b), \
                     COUNT(DISTINCT cat) FROM items{where_sql} GROUP BY grp"
                );
                if rng.chance(50) {
                    let v = rng.range(0, 60);
                    let s = rng.range(-300, 300);
                    match rng.below(3) {
                        0 => {
                            select = select.having(count::<Item>().gt(v));
                            sql += &format!(" HAVING COUNT(*) > {v}");
                        }
                        1 => {
                            select = select.having(Item::A.sum().lt(s).or(Item::B.max().eq(5)));
                            sql += &format!(" HAVING (SUM(a) < {s} OR MAX(b) = 5)");
                        }
                        _ => {
                            select = select.having(Item::A.avg().gte(0.0).not());
                            sql += " HAVING NOT (AVG(a) >= 0.0)";
                        }
                    }
                }
                let mut order_sql = Vec::new();
                match rng.below(4) {
                    0 => {
                        select = select.order_by(count::<Item>(), Order::Desc);
                        order_sql.push("COUNT(*) DESC".to_string());
                    }
                    1 => {
                        select = select.order_by(Item::A.sum(), Order::Asc);
                        order_sql.push(side.order_item("SUM(a)", false, None));
                    }
                    2 => {
                        select = select.order_by(Item::GRP, Order::Desc);
                        order_sql.push("grp DESC".to_string());
                    }
                    _ => {}
                }
                order_sql.push("grp ASC".into());
                sql += &format!(" ORDER BY {}", order_sql.join(", "));
                let limit = rng.chance(50).then(|| rng.below(6));
                let offset = if rng.chance(30) { rng.below(8) } else { 0 };
                if let Some(l) = limit {
                    select = select.limit(l);
                    sql += &format!(" LIMIT {l}");
                } else if offset > 0 {
                    sql += &format!(" {}", side.no_limit());
                }
                if offset > 0 {
                    select = select.offset(offset);
                    sql += &format!(" OFFSET {offset}");
                }
                let want = side.groups(&sql).await;
                let got = select
                    .all(cluster)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(
                    got.len(),
                    want.len(),
                    "{ctx}: {sql}\n got {got:?}\nwant {want:?}"
                );
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(
                        (&g.0, g.1, g.2, &g.3, g.4, g.6, g.7),
                        (&w.0, w.1, w.2, &w.3, w.4, w.6, w.7),
                        "{ctx}: {sql}"
                    );
                    assert!(close(g.5, w.5), "{ctx}: avg {:?} vs {:?}: {sql}", g.5, w.5);
                }
            }
            // DISTINCT projections, ordered and paged.
            _ => {
                let desc = rng.chance(50);
                let dir = if desc { Order::Desc } else { Order::Asc };
                let mut select = base
                    .clone()
                    .select((Item::GRP, Item::CAT))
                    .distinct()
                    .order_by(Item::CAT, dir);
                let mut sql = format!(
                    "SELECT DISTINCT grp, cat FROM items{where_sql} ORDER BY {}, grp ASC",
                    side.order_item("cat", desc, None)
                );
                let limit = rng.chance(60).then(|| rng.below(12));
                let offset = if rng.chance(40) { rng.below(30) } else { 0 };
                if let Some(l) = limit {
                    select = select.limit(l);
                    sql += &format!(" LIMIT {l}");
                } else if offset > 0 {
                    sql += &format!(" {}", side.no_limit());
                }
                if offset > 0 {
                    select = select.offset(offset);
                    sql += &format!(" OFFSET {offset}");
                }
                let want = side.pairs(&sql).await;
                let got = select
                    .all(cluster)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(got, want, "{ctx}: {sql}");
            }
        }
    }
    eprintln!(
        "{}: {queries} differential queries (seed {seed}): rows {}, keyset {}, aggregates {}, \
         groups {}, distinct {}",
        side.name(),
        counts[0],
        counts[1],
        counts[2],
        counts[3] + counts[4],
        counts[5]
    );
}

fn nulls_of(first: bool) -> Nulls {
    if first { Nulls::First } else { Nulls::Last }
}

/// The same harness on PostgreSQL: an 8-shard `Cluster<Postgres>` of fresh databases and one more
/// database holding all rows, on the shared test server (`grant_sharding::testing::postgres`).
/// The databases sort by ICU `en-US` (the harness's default); the reference table's text
/// columns are `COLLATE "C"`: it is one byte-order database, the answer Grant must give.
pub struct PgSide {
    pub cluster: Cluster<Postgres>,
    pub single: sqlx::PgPool,
    /// Whether the shard tables are made by hand in the databases' locale (as a migration tool
    /// would) instead of by `create_table` (text `COLLATE "C"`).
    pub locale_tables: bool,
}

impl PgSide {
    /// `None` (the test skips, after a line on stderr) when there is no PostgreSQL outside CI.
    pub async fn new(test: &str) -> Option<Self> {
        let env = grant_sharding::testing::postgres::available().await?;
        let cluster = env.cluster(test, 8).await;
        let url = env.database(test).await;
        let single = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Some(PgSide {
            cluster,
            single,
            locale_tables: false,
        })
    }

    /// The harness's SQL, with PostgreSQL's result types brought to the harness's: `SUM(bigint)`
    /// and `AVG` are NUMERIC there, decoded here as `i64` and `f64`.
    fn typed(sql: &str) -> String {
        sql.replace("SUM(a)", "CAST(SUM(a) AS BIGINT)")
            .replace("AVG(a)", "CAST(AVG(a) AS DOUBLE PRECISION)")
    }
}

impl Backend for PgSide {
    type Db = Postgres;
    fn sharded(&self) -> &Cluster<Postgres> {
        &self.cluster
    }
    async fn rows(&self, sql: &str) -> Vec<Tuple> {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn ints(&self, sql: &str) -> Vec<i64> {
        let sql = Self::typed(sql);
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn aggregates(&self, sql: &str) -> Aggregates {
        let sql = Self::typed(sql);
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn groups(&self, sql: &str) -> Vec<GroupRow> {
        let sql = Self::typed(sql);
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn pairs(&self, sql: &str) -> Vec<(String, Option<String>)> {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&self.single)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    fn like_sql(&self, col: &str, pattern: &str, ilike: bool) -> String {
        // The reference's text columns are `COLLATE "C"`: LIKE compares exactly, ILIKE folds
        // ASCII only; the backslash is the default escape.
        let op = if ilike { "ILIKE" } else { "LIKE" };
        format!("{col} {op} {}", lit(pattern))
    }
    fn no_limit(&self) -> &'static str {
        "LIMIT ALL"
    }
    fn name(&self) -> &'static str {
        "postgres"
    }
    async fn load(&self, data: &[Item]) {
        if self.locale_tables {
            let ddl = "CREATE TABLE items (id BIGINT PRIMARY KEY, grp TEXT NOT NULL, cat TEXT, \
                       a BIGINT NOT NULL, b BIGINT, f DOUBLE PRECISION, flag BOOLEAN NOT NULL)";
            for (shard, outcome) in self.cluster.execute_on_all_shards(ddl).await {
                outcome.unwrap_or_else(|e| panic!("{shard}: {e}"));
            }
        } else {
            Item::create_table(&self.cluster).await.unwrap();
        }
        Item::insert_many(&self.cluster, data).await.unwrap();
        sqlx::query(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, grp TEXT COLLATE \"C\" NOT NULL, \
             cat TEXT COLLATE \"C\", a BIGINT NOT NULL, b BIGINT, f DOUBLE PRECISION, \
             flag BOOLEAN NOT NULL)",
        )
        .execute(&self.single)
        .await
        .unwrap();
        for sql in insert_sql(data) {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&self.single)
                .await
                .unwrap();
        }
    }
}
