//! `Select<M, T>`: projections, `DISTINCT`, aggregates and `GROUP BY` across shards.

use std::collections::{HashMap, HashSet};
use std::fmt;

use futures_util::StreamExt;
use grant_core::select::{Having, Item, OrderItem, Selectable};
use grant_core::types::{add_exact, avg_exact, is_decimal};
use grant_core::value::{ValueKind, encode_key, is_null};
use grant_core::{Backend, CmpOp, ColumnRef, Error, Model, Node, Nulls, Order, Result, ShardId};
use sea_query::{Expr, ExprTrait, Value};
use sea_query_sqlx::SqlxBinder;

use crate::cluster::Cluster;
use crate::exec;
use crate::merge::{self, DistinctKey, KeyOrder, Page, compare_keys, compare_values, values_key};
use crate::query::{OrderKey, Query, order_sql, page_sql, sort_expr};

/// The most distinct values `count_distinct` gathers across shards before refusing the query
/// (each distinct value must travel to the merger: per-shard counts can't be added).
pub const DISTINCT_LIMIT: usize = 1_000_000;

type Decoder<T> = fn(&mut dyn Iterator<Item = Value>) -> Result<T>;

/// A projection or aggregate query over model `M` whose rows are `T` (a value or a tuple).
///
/// Built with [`Query::select`]. Across shards:
///
/// * projections stream and merge like [`Query::all`]; with [`distinct`](Select::distinct)
///   duplicates across shards are dropped;
/// * aggregates are computed per shard and group, then combined: counts and sums added,
///   minima / maxima compared, `avg` as total sum over total count, `count_distinct` as the size
///   of the union of the shards' distinct values (at most [`DISTINCT_LIMIT`] values);
/// * [`having`](Select::having), `order_by`, `limit` and `offset` apply to the merged groups.
///
/// # Cancel safety
///
/// Dropping the future cancels every in-flight shard statement. Reads only.
pub struct Select<M: Model, T> {
    query: Query<M>,
    items: Vec<Item>,
    visible: usize,
    group_by: Vec<ColumnRef>,
    distinct: bool,
    having: Option<Having>,
    order: Vec<(Item, Order, Option<Nulls>)>,
    decode: Decoder<T>,
}

impl<M: Model, T> fmt::Debug for Select<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("query", &self.query)
            .field("items", &self.items)
            .field("group_by", &self.group_by)
            .field("distinct", &self.distinct)
            .field("having", &self.having)
            .field("order", &self.order)
            .finish()
    }
}

impl<M: Model, T> Clone for Select<M, T> {
    fn clone(&self) -> Self {
        Select {
            query: self.query.clone(),
            items: self.items.clone(),
            visible: self.visible,
            group_by: self.group_by.clone(),
            distinct: self.distinct,
            having: self.having.clone(),
            order: self.order.clone(),
            decode: self.decode,
        }
    }
}

impl<M: Model, T> Select<M, T> {
    pub(crate) fn new<S: Selectable<M, Output = T>>(query: Query<M>, items: S) -> Self {
        let mut list = Vec::new();
        items.push_items(&mut list);
        Self::from_items(query, list, S::decode)
    }

    pub(crate) fn from_items(mut query: Query<M>, items: Vec<Item>, decode: Decoder<T>) -> Self {
        let order = std::mem::take(&mut query.order)
            .into_iter()
            .map(|k| {
                let col = ColumnRef {
                    name: M::META.columns[k.column].name,
                    index: k.column,
                };
                (Item::Column(col), k.order, k.nulls)
            })
            .collect();
        Select {
            query,
            visible: items.len(),
            items,
            group_by: Vec::new(),
            distinct: false,
            having: None,
            order,
            decode,
        }
    }

    /// Groups by `column` (after the columns already given).
    pub fn group_by<C: grant_core::Orderable, R>(
        mut self,
        column: grant_core::Column<M, C, R>,
    ) -> Self {
        self.group_by.push(column.as_ref());
        self
    }

    /// Only distinct result rows (`SELECT DISTINCT`).
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// Keeps only the groups that satisfy `cond` (applied after the merge).
    pub fn having(mut self, cond: Having) -> Self {
        self.having = Some(match self.having.take() {
            None => cond,
            Some(prev) => prev.and(cond),
        });
        self
    }

    /// Orders the results by a column or an aggregate.
    pub fn order_by(mut self, item: impl OrderItem<M>, order: Order) -> Self {
        self.order.push((item.order_item(), order, None));
        self
    }

    /// Orders the results with NULLs explicitly first or last.
    pub fn order_by_nulls(mut self, item: impl OrderItem<M>, order: Order, nulls: Nulls) -> Self {
        self.order.push((item.order_item(), order, Some(nulls)));
        self
    }

    /// At most `n` results.
    pub fn limit(mut self, n: u64) -> Self {
        self.query.limit = Some(n);
        self
    }

    /// Skips the first `n` results.
    pub fn offset(mut self, n: u64) -> Self {
        self.query.offset = Some(n);
        self
    }

    /// All results.
    ///
    /// # Errors
    ///
    /// As [`Query::all`]; [`Error::Unsupported`] for a plain column that is neither grouped nor
    /// aggregated, for `DISTINCT` ordered by a column it does not select, and for more than
    /// [`DISTINCT_LIMIT`] distinct values.
    pub async fn all<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Vec<T>> {
        Ok(self.run(cluster, false).await?.0)
    }

    /// The first result, if any.
    ///
    /// # Errors
    ///
    /// As [`Select::all`].
    pub async fn one<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Option<T>> {
        Ok(self.limit(1).all(cluster).await?.into_iter().next())
    }

    pub(crate) async fn run<DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        partial: bool,
    ) -> Result<(Vec<T>, Vec<(grant_core::ShardId, Error)>)> {
        // Boxed, like the fenced path: the query's future stays out of its caller's.
        if !cluster.placements().any() {
            return Box::pin(self.run_once(cluster, partial)).await;
        }
        // resharding: a read that met a migration's fence runs again on the new placement.
        cluster
            .through_fence::<M, _, _, _>(|| self.clone().run_once(cluster, partial))
            .await
    }

    async fn run_once<DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        partial: bool,
    ) -> Result<(Vec<T>, Vec<(grant_core::ShardId, Error)>)> {
        // resharding: hold the model's gate for the whole query (a cutover waits for it).
        let _gate = cluster.gated_placement::<M>().await;
        let grouped = !self.group_by.is_empty() || self.items.iter().any(Item::is_aggregate);
        let (rows, failed) = if grouped {
            self.grouped(cluster, partial).await?
        } else {
            self.projected(cluster, partial).await?
        };
        let decode = self.decode;
        let rows = rows
            .into_iter()
            .map(|values| decode(&mut values.into_iter().take(self.visible)))
            .collect::<Result<Vec<T>>>()?;
        Ok((rows, failed))
    }

    fn unsupported(&self, reason: String) -> Error {
        Error::Unsupported {
            model: M::META.name,
            reason,
        }
    }

    fn kind(col: &ColumnRef) -> ValueKind {
        M::META.columns[col.index].kind
    }

    /// Plain columns: stream, merge in order, drop duplicates when `DISTINCT`.
    async fn projected<DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        partial: bool,
    ) -> Result<(Vec<Vec<Value>>, Vec<(grant_core::ShardId, Error)>)> {
        let visible: Vec<ColumnRef> = self
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Column(c) => Some(*c),
                _ => None,
            })
            .collect();
        // The total order: requested keys, then (DISTINCT) every selected column or the
        // primary key, so pages are deterministic and the per-shard LIMIT is sound.
        let mut keys: Vec<(ColumnRef, Order, Option<Nulls>)> = Vec::new();
        for (item, order, nulls) in &self.order {
            let Item::Column(col) = item else {
                return Err(
                    self.unsupported("ordering a query without aggregates by an aggregate".into())
                );
            };
            if self.distinct && !visible.contains(col) {
                return Err(self.unsupported(format!(
                    "DISTINCT ordered by `{}`, which it does not select (PostgreSQL refuses \
                     this too); select the column as well",
                    col.name
                )));
            }
            keys.push((*col, *order, *nulls));
        }
        let ordered = !keys.is_empty() || self.query.limit.is_some() || self.query.offset.is_some();
        if ordered {
            let tie: Vec<ColumnRef> = if self.distinct {
                visible.clone()
            } else {
                M::META
                    .primary_key
                    .iter()
                    .map(|&i| ColumnRef {
                        name: M::META.columns[i].name,
                        index: i,
                    })
                    .collect()
            };
            for col in tie {
                if !keys.iter().any(|(c, _, _)| *c == col) {
                    keys.push((col, Order::Asc, None));
                }
            }
        }
        let key_orders: Vec<KeyOrder> = keys
            .iter()
            .map(|(_, o, n)| KeyOrder::new(*o, *n, DB::NULLS_FIRST_IN_ASC))
            .collect();
        let layout: Vec<ColumnRef> = visible
            .iter()
            .copied()
            .chain(keys.iter().map(|(c, _, _)| *c))
            .collect();
        let kinds: Vec<ValueKind> = layout.iter().map(Self::kind).collect();

        let legs = self.query.legs(cluster, DB::NULLS_FIRST_IN_ASC).await?;
        let policy = self.query.policy(cluster, partial);
        let offset = self.query.offset.unwrap_or(0);
        let single = legs.len() == 1;
        // Deep pages are asked for in chunks continued by keyset, as in `Query::all`.
        let budget = self.query.limit.map(|limit| limit.saturating_add(offset));
        let open = |shard: ShardId, filter: Option<&Node>, limit: Option<u64>| {
            let mut select = Query::<M>::base_select::<DB>(filter);
            // Text in byte order throughout: DISTINCT compares, and ORDER BY sorts, what the
            // merger compares (PostgreSQL wants DISTINCT's ORDER BY expressions selected).
            for col in &layout {
                select.expr(sort_expr::<DB>(col.index, M::META));
            }
            if self.distinct {
                select.distinct();
            }
            order_sql(
                &mut select,
                keys.iter()
                    .map(|(c, o, n)| (sort_expr::<DB>(c.index, M::META), *o, *n)),
            );
            if single {
                page_sql(&mut select, self.query.limit, offset);
            } else if let Some(limit) = limit {
                select.limit(limit);
            }
            let rows = cluster.stream(
                M::META.name,
                shard,
                self.query.read_policy,
                select.build_sqlx(DB::builder()),
            )?;
            let kinds = &kinds;
            let n_visible = visible.len();
            Ok::<_, Error>(
                rows.map(move |row| {
                    let row = row?;
                    let mut values = decode_values::<DB>(&row, kinds, M::META.name, shard)?;
                    let key = values.split_off(n_visible);
                    Ok((key, values))
                })
                .boxed(),
            )
        };
        let order: Vec<OrderKey> = keys
            .iter()
            .map(|(c, o, n)| OrderKey {
                column: c.index,
                order: *o,
                nulls: *n,
            })
            .collect();
        let (sources, mut failed) =
            self.query
                .open_legs(legs, &order, budget, partial, DB::NULLS_FIRST_IN_ASC, &open)?;
        let page = if single {
            Page {
                offset: 0,
                limit: None,
            }
        } else {
            Page {
                offset,
                limit: self.query.limit,
            }
        };
        let distinct: Option<DistinctKey<Vec<Value>>> =
            (self.distinct && !single).then_some(row_key);
        let (rows, more) =
            merge::merge_streams(sources, &key_orders, page, distinct, &policy).await?;
        failed.extend(more);
        Ok((rows, failed))
    }

    /// Aggregates, grouped or not: partial aggregates per shard, combined per group.
    async fn grouped<DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        partial: bool,
    ) -> Result<(Vec<Vec<Value>>, Vec<(grant_core::ShardId, Error)>)> {
        for item in &self.items[..self.visible] {
            if let Item::Column(col) = item
                && !self.group_by.contains(col)
            {
                return Err(self.unsupported(format!(
                    "column `{}` is selected but neither grouped nor aggregated; add \
                     `.group_by({})` or aggregate it",
                    col.name,
                    col.name.to_uppercase()
                )));
            }
        }
        // Every item the merge must compute: the visible ones, then those only ordering and
        // HAVING use.
        let mut items = self.items.clone();
        let mut extra = Vec::new();
        for (item, _, _) in &self.order {
            extra.push(item.clone());
        }
        if let Some(h) = &self.having {
            having_items(h, &mut extra);
        }
        for item in extra {
            if let Item::Column(col) = &item
                && !self.group_by.contains(col)
            {
                return Err(self.unsupported(format!(
                    "ordering or filtering grouped results by `{}`, which is not grouped",
                    col.name
                )));
            }
            if !items.contains(&item) {
                items.push(item);
            }
        }

        // Per-shard statement: group keys, then the partial aggregates.
        let mut layout: Vec<ValueKind> = self.group_by.iter().map(Self::kind).collect();
        let mut partials: Vec<(Item, usize)> = Vec::new(); // item -> first partial column
        let mut exprs: Vec<Expr> = Vec::new();
        let mut distinct_cols: Vec<ColumnRef> = Vec::new();
        for item in &items {
            let at = self.group_by.len() + exprs.len();
            match item {
                Item::Column(_) => continue,
                Item::Count => {
                    exprs.push(Expr::col(sea_query::Asterisk).count());
                    layout.push(ValueKind::I64);
                }
                Item::CountColumn(c) => {
                    exprs.push(Expr::col(c.name).count());
                    layout.push(ValueKind::I64);
                }
                Item::Sum { col, .. } if is_decimal(Self::kind(col)) => {
                    exprs.push(decimal_sum::<DB>(col.name));
                    layout.push(Self::kind(col));
                }
                Item::Avg(c) if is_decimal(Self::kind(c)) => {
                    exprs.push(decimal_sum::<DB>(c.name));
                    exprs.push(Expr::col(c.name).count());
                    layout.push(Self::kind(c));
                    layout.push(ValueKind::I64);
                }
                Item::Sum { col, float } => {
                    let ty = if *float { "float8" } else { "bigint" };
                    exprs.push(Expr::col(col.name).sum().cast_as(ty));
                    layout.push(if *float {
                        ValueKind::F64
                    } else {
                        ValueKind::I64
                    });
                }
                Item::Min(c) => {
                    exprs.push(sort_expr::<DB>(c.index, M::META).min());
                    layout.push(Self::kind(c));
                }
                Item::Max(c) => {
                    exprs.push(sort_expr::<DB>(c.index, M::META).max());
                    layout.push(Self::kind(c));
                }
                Item::Avg(c) => {
                    exprs.push(Expr::col(c.name).sum().cast_as("float8"));
                    exprs.push(Expr::col(c.name).count());
                    layout.push(ValueKind::F64);
                    layout.push(ValueKind::I64);
                }
                Item::CountDistinct(c) => {
                    if !distinct_cols.contains(c) {
                        distinct_cols.push(*c);
                    }
                    continue;
                }
                other => {
                    return Err(self.unsupported(format!("select item {other:?}")));
                }
            }
            partials.push((item.clone(), at));
        }
        // Each group's accumulators start from these (a decimal column's sums are exact).
        let fresh: Vec<Acc> = partials
            .iter()
            .map(|(item, _)| {
                let exact = match item {
                    Item::Sum { col, .. } | Item::Avg(col) => is_decimal(Self::kind(col)),
                    _ => false,
                };
                Acc::new(item, exact)
            })
            .collect();

        let legs = self.query.legs(cluster, DB::NULLS_FIRST_IN_ASC).await?;
        let policy = self.query.policy(cluster, partial);
        let group_by = &self.group_by;
        let layout = &layout;
        let exprs = &exprs;
        let distinct_cols = &distinct_cols;
        let read_policy = self.query.read_policy;
        // A leg's statements run as a task of their own only when its rows are many (one row
        // per group): then decoding them on every worker thread at once pays. An aggregate
        // without groups brings one row per shard; its legs are polled in place, all in flight
        // together: a task per leg costs two wake-ups across threads, which on 2 cores made a
        // count over 4 PostgreSQL shards 1.43x the four statements at once on dedicated
        // connections, against 1.19-1.24x in place (`--bench find -- count`).
        let spread = legs.len() > 1 && !self.group_by.is_empty();
        let gathered = exec::scatter(legs.iter().map(|(s, _)| *s).collect(), policy, |shard| {
            let filter = legs
                .iter()
                .find(|(s, _)| *s == shard)
                .and_then(|(_, f)| f.clone());
            async move {
                // Groups of text by bytes, as the merger keys them.
                let mut main = Query::<M>::base_select::<DB>(filter.as_ref());
                for col in group_by {
                    main.expr(sort_expr::<DB>(col.index, M::META));
                }
                for e in exprs {
                    main.expr(e.clone());
                }
                main.add_group_by(
                    group_by
                        .iter()
                        .map(|col| sort_expr::<DB>(col.index, M::META)),
                );
                let rows = cluster
                    .fetch_leg(
                        spread,
                        M::META.name,
                        shard,
                        read_policy,
                        main.build_sqlx(DB::builder()),
                    )
                    .await?;
                let main_rows = rows
                    .iter()
                    .map(|row| decode_values::<DB>(row, layout, M::META.name, shard))
                    .collect::<Result<Vec<_>>>()?;
                let mut distinct_rows = Vec::with_capacity(distinct_cols.len());
                for col in distinct_cols {
                    let mut select = Query::<M>::base_select::<DB>(Some(&crate::query::and(
                        filter.clone(),
                        Node::Null {
                            col: *col,
                            is_null: false,
                        },
                    )));
                    select.distinct();
                    for g in group_by {
                        select.expr(sort_expr::<DB>(g.index, M::META));
                    }
                    select.expr(sort_expr::<DB>(col.index, M::META));
                    let kinds: Vec<ValueKind> = group_by
                        .iter()
                        .chain(std::iter::once(col))
                        .map(Self::kind)
                        .collect();
                    let rows = cluster
                        .fetch_leg(
                            spread,
                            M::META.name,
                            shard,
                            read_policy,
                            select.build_sqlx(DB::builder()),
                        )
                        .await?;
                    distinct_rows.push(
                        rows.iter()
                            .map(|row| decode_values::<DB>(row, &kinds, M::META.name, shard))
                            .collect::<Result<Vec<_>>>()?,
                    );
                }
                Ok((main_rows, distinct_rows))
            }
        })
        .await?;

        // Combine per group.
        let k = self.group_by.len();
        let mut groups: HashMap<Vec<u8>, Group> = HashMap::new();
        let mut distinct_total = 0usize;
        for (_, (main_rows, distinct_rows)) in gathered.ok {
            for mut row in main_rows {
                let parts = row.split_off(k);
                let group = groups
                    .entry(values_key(&row))
                    .or_insert_with(|| Group::new(row, &fresh, distinct_cols.len()));
                for (slot, (item, at)) in partials.iter().enumerate() {
                    let at = at - k;
                    group.accs[slot].add(item, &parts[at..], M::META.name)?;
                }
            }
            for (d, rows) in distinct_rows.into_iter().enumerate() {
                for mut row in rows {
                    let value = row.split_off(k);
                    let group = groups
                        .entry(values_key(&row))
                        .or_insert_with(|| Group::new(row, &fresh, distinct_cols.len()));
                    let mut key = Vec::new();
                    encode_key(&value[0], &mut key);
                    if group.distinct[d].insert(key) {
                        distinct_total += 1;
                        if distinct_total > DISTINCT_LIMIT {
                            return Err(self.unsupported(format!(
                                "count_distinct gathers more than {DISTINCT_LIMIT} distinct \
                                 values across shards; narrow the filter or group more finely"
                            )));
                        }
                    }
                }
            }
        }
        if k == 0 && groups.is_empty() {
            // An aggregate without GROUP BY has one row even over no rows.
            groups.insert(
                Vec::new(),
                Group::new(Vec::new(), &fresh, distinct_cols.len()),
            );
        }

        // Final values of every item, per group.
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(groups.len());
        for group in groups.into_values() {
            let mut values = Vec::with_capacity(items.len());
            for item in &items {
                values.push(match item {
                    Item::Column(col) => {
                        let at = self.group_by.iter().position(|g| g == col).unwrap_or(0);
                        group.keys[at].clone()
                    }
                    Item::CountDistinct(col) => {
                        let d = distinct_cols.iter().position(|c| c == col).unwrap_or(0);
                        Value::BigInt(Some(group.distinct[d].len() as i64))
                    }
                    other => {
                        let slot = partials.iter().position(|(i, _)| i == other).unwrap_or(0);
                        group.accs[slot].finish()
                    }
                });
            }
            if let Some(h) = &self.having
                && !eval_having(h, &items, &values)
            {
                continue;
            }
            rows.push(values);
        }

        // ORDER BY (default: the group keys ascending, for a stable answer), then the page.
        let mut order: Vec<(usize, KeyOrder)> = self
            .order
            .iter()
            .map(|(item, o, n)| {
                let at = items.iter().position(|i| i == item).unwrap_or(0);
                (at, KeyOrder::new(*o, *n, DB::NULLS_FIRST_IN_ASC))
            })
            .collect();
        for g in &self.group_by {
            let at = items
                .iter()
                .position(|i| *i == Item::Column(*g))
                .unwrap_or(usize::MAX);
            if at != usize::MAX && !order.iter().any(|(i, _)| *i == at) {
                order.push((at, KeyOrder::new(Order::Asc, None, DB::NULLS_FIRST_IN_ASC)));
            }
        }
        let key_of = |values: &Vec<Value>| -> Vec<Value> {
            order.iter().map(|(at, _)| values[*at].clone()).collect()
        };
        let orders: Vec<KeyOrder> = order.iter().map(|(_, o)| *o).collect();
        rows.sort_by(|a, b| compare_keys(&key_of(a), &key_of(b), &orders));
        let offset = self.query.offset.unwrap_or(0) as usize;
        let rows: Vec<Vec<Value>> = rows
            .into_iter()
            .skip(offset)
            .take(self.query.limit.map_or(usize::MAX, |l| l as usize))
            .collect();
        Ok((rows, gathered.failed))
    }
}

struct Group {
    keys: Vec<Value>,
    accs: Vec<Acc>,
    distinct: Vec<HashSet<Vec<u8>>>,
}

impl Group {
    fn new(keys: Vec<Value>, fresh: &[Acc], distinct: usize) -> Self {
        Group {
            keys,
            accs: fresh.to_vec(),
            distinct: vec![HashSet::new(); distinct],
        }
    }
}

/// The exact per-shard sum of a decimal column.
fn decimal_sum<DB: Backend>(column: &'static str) -> Expr {
    Expr::cust(DB::DECIMAL_SUM_SQL.replace("{}", &grant_core::cond::quoted(column)))
}

/// A partial aggregate being combined.
#[derive(Clone)]
enum Acc {
    Count(i64),
    /// A decimal sum (exact), and with the count an average.
    SumExact(Option<Value>),
    AvgExact(Option<Value>, i64),
    SumInt(Option<i64>),
    SumFloat(Option<f64>),
    Min(Value),
    Max(Value),
    Avg(f64, i64),
}

impl Acc {
    /// The accumulator of `item`; `exact` for a decimal column's sum or average.
    fn new(item: &Item, exact: bool) -> Acc {
        match item {
            Item::Sum { .. } if exact => Acc::SumExact(None),
            Item::Avg(_) if exact => Acc::AvgExact(None, 0),
            Item::Sum { float: true, .. } => Acc::SumFloat(None),
            Item::Sum { .. } => Acc::SumInt(None),
            Item::Min(_) => Acc::Min(Value::BigInt(None)),
            Item::Max(_) => Acc::Max(Value::BigInt(None)),
            Item::Avg(_) => Acc::Avg(0.0, 0),
            _ => Acc::Count(0),
        }
    }

    fn add(&mut self, item: &Item, parts: &[Value], model: &'static str) -> Result<()> {
        let first = parts.first().cloned().unwrap_or(Value::BigInt(None));
        match self {
            Acc::SumExact(total) | Acc::AvgExact(total, _) if !is_null(&first) => {
                *total = Some(match total.take() {
                    None => first,
                    Some(t) => match add_exact(&t, &first) {
                        Some(Ok(sum)) => sum,
                        _ => {
                            return Err(Error::Unsupported {
                                model,
                                reason: format!(
                                    "{item:?} overflows a decimal (28 digits) across shards"
                                ),
                            });
                        }
                    },
                });
                if let Acc::AvgExact(_, n) = self {
                    *n += parts.get(1).and_then(as_i64).unwrap_or(0);
                }
            }
            Acc::SumExact(_) => {}
            Acc::AvgExact(_, n) => *n += parts.get(1).and_then(as_i64).unwrap_or(0),
            Acc::Count(n) => *n += as_i64(&first).unwrap_or(0),
            Acc::SumInt(total) => {
                if let Some(v) = as_i64(&first) {
                    *total = Some(match *total {
                        None => v,
                        Some(t) => t.checked_add(v).ok_or_else(|| Error::Unsupported {
                            model,
                            reason: format!(
                                "{item:?} overflows i64 across shards; sum a float column instead"
                            ),
                        })?,
                    });
                }
            }
            Acc::SumFloat(total) => {
                if let Value::Double(Some(v)) = first {
                    *total = Some(total.unwrap_or(0.0) + v);
                }
            }
            Acc::Min(best) => {
                if !is_null(&first) && (is_null(best) || compare_values(&first, best, true).is_lt())
                {
                    *best = first;
                }
            }
            Acc::Max(best) => {
                if !is_null(&first) && (is_null(best) || compare_values(&first, best, true).is_gt())
                {
                    *best = first;
                }
            }
            Acc::Avg(sum, n) => {
                if let Value::Double(Some(v)) = first {
                    *sum += v;
                }
                *n += parts.get(1).and_then(as_i64).unwrap_or(0);
            }
        }
        Ok(())
    }

    fn finish(&self) -> Value {
        match self {
            Acc::Count(n) => Value::BigInt(Some(*n)),
            Acc::SumExact(v) => v.clone().unwrap_or(Value::BigInt(None)),
            Acc::AvgExact(sum, n) => sum
                .as_ref()
                .and_then(|s| avg_exact(s, *n))
                .unwrap_or(Value::Double(None)),
            Acc::SumInt(v) => Value::BigInt(*v),
            Acc::SumFloat(v) => Value::Double(*v),
            Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::Avg(sum, n) => Value::Double((*n > 0).then(|| sum / *n as f64)),
        }
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::BigInt(Some(v)) => Some(*v),
        Value::Int(Some(v)) => Some(i64::from(*v)),
        Value::SmallInt(Some(v)) => Some(i64::from(*v)),
        _ => None,
    }
}

fn having_items(h: &Having, out: &mut Vec<Item>) {
    match h {
        Having::Cmp { item, .. } => out.push(item.clone()),
        Having::And(hs) | Having::Or(hs) => hs.iter().for_each(|h| having_items(h, out)),
        Having::Not(h) => having_items(h, out),
        _ => {}
    }
}

/// Evaluates a HAVING condition with SQL's three-valued logic (NULL never matches).
fn eval_having(h: &Having, items: &[Item], values: &[Value]) -> bool {
    eval3(h, items, values) == Some(true)
}

fn eval3(h: &Having, items: &[Item], values: &[Value]) -> Option<bool> {
    match h {
        Having::Cmp { item, op, value } => {
            let at = items.iter().position(|i| i == item)?;
            let v = &values[at];
            if is_null(v) || is_null(value) {
                return None;
            }
            let o = compare_values(v, value, true);
            Some(match op {
                CmpOp::Eq => o.is_eq(),
                CmpOp::Ne => o.is_ne(),
                CmpOp::Lt => o.is_lt(),
                CmpOp::Lte => o.is_le(),
                CmpOp::Gt => o.is_gt(),
                CmpOp::Gte => o.is_ge(),
            })
        }
        Having::And(hs) => {
            let mut unknown = false;
            for h in hs {
                match eval3(h, items, values) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            (!unknown).then_some(true)
        }
        Having::Or(hs) => {
            let mut unknown = false;
            for h in hs {
                match eval3(h, items, values) {
                    Some(true) => return Some(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            (!unknown).then_some(false)
        }
        Having::Not(h) => eval3(h, items, values).map(|b| !b),
        _ => None,
    }
}

#[allow(clippy::ptr_arg)] // must match `fn(&T) -> Vec<u8>` with `T = Vec<Value>`
fn row_key(values: &Vec<Value>) -> Vec<u8> {
    values_key(values)
}

/// Decodes the columns of a row as dynamic values of the given kinds.
pub(crate) fn decode_values<DB: Backend>(
    row: &DB::Row,
    kinds: &[ValueKind],
    model: &'static str,
    shard: grant_core::ShardId,
) -> Result<Vec<Value>> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            DB::get_value(row, i, *kind).map_err(|source| Error::Shard {
                model,
                shard,
                source,
            })
        })
        .collect()
}
