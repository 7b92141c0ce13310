//! `Query<M>`: typed, routed queries over whole rows and their terminals.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use grant_core::cond::byte_order_expr;
use grant_core::value::{ValueKind, is_null};
use grant_core::{
    Backend, CmpOp, Column, ColumnRef, Cond, Error, FromShardRow, Item, Model, ModelMeta, Node,
    Nulls, Order, Orderable, Result, Scalar, Selectable, ShardId, Summable,
};
use sea_query::{Expr, NullOrdering, SelectStatement, Value};
use sea_query_sqlx::SqlxBinder;
use tokio::time::Instant;

use crate::cluster::{Cluster, ReadPolicy};
use crate::exec::Policy;
use crate::merge::{self, KeyOrder, Page, Source};
use crate::placement::Placement;
use crate::router::{self, Leg, Target};
use crate::select::Select;

/// One ordering key of a query over whole rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderKey {
    pub(crate) column: usize,
    pub(crate) order: Order,
    pub(crate) nulls: Option<Nulls>,
}

/// What the caller gets when it opts into partial results: the answer of the shards that
/// answered, and each shard that did not with its error.
#[derive(Debug)]
pub struct Partial<T> {
    /// The answer over the shards that answered.
    pub value: T,
    /// The shards that failed or timed out, with why.
    pub failed: Vec<(ShardId, Error)>,
}

impl<T> Partial<T> {
    /// Whether every shard answered.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// A query over the rows of model `M`: where it goes, its filter, order and page.
///
/// Built with `M::query()` (routed by the shard key in the filter; else the task-local
/// [`with_shard`](crate::with_shard) context; else all shards), `M::on_shard(id)` or
/// `M::on_all_shards()`; run with a terminal (`all`, `one`, `count`, `sum`, `min`, `max`, `avg`)
/// or turned into a projection / grouped query with [`select`](Query::select).
///
/// Across shards the answer equals what one database holding every row would give:
///
/// * rows are merged by a streaming k-way merge in the requested order (the backend's NULL
///   order unless [`order_by_nulls`](Query::order_by_nulls) says otherwise), ties broken by the
///   primary key, so memory stays O(shards × stream buffer);
/// * no shard gets an `OFFSET`; each may give at most `limit + offset` rows and is asked for them
///   in chunks — first about 1.5 × its even share, more (the rows after the chunk's last one)
///   only when a chunk comes back full — and the offset is applied once after the merge. Deep
///   offsets still cost every shard a sort of its share: for deep pages use keyset pagination,
///   [`after`](Query::after) the last row of the previous page;
/// * counts and sums are added, `min`/`max` compared, `avg` is the total sum over the total count
///   — never an average of averages;
/// * text is ordered and compared by bytes (Rust's `str` order) whatever the databases' locale:
///   on PostgreSQL each shard's ORDER BY, keyset condition and MIN/MAX of text says
///   `COLLATE "C"`; floats by number, `-0.0` equal to `0.0`, NaN after every number.
///
/// A shard that fails fails the query with [`Error::ShardUnavailable`] (or [`Error::Shard`])
/// naming it; shards that miss the [`timeout`](Query::timeout) give [`Error::Timeout`] naming
/// them. [`allow_partial`](Query::allow_partial) returns what the healthy shards answered instead.
///
/// # Cancel safety
///
/// The terminals fan out to shards; dropping their future cancels every in-flight shard
/// statement. Reads only: nothing is left half-done.
pub struct Query<M> {
    pub(crate) target: Target,
    pub(crate) filter: Option<Node>,
    pub(crate) order: Vec<OrderKey>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
    pub(crate) after: Option<Vec<Value>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) read_policy: Option<ReadPolicy>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Query<M> {
    fn clone(&self) -> Self {
        Query {
            target: self.target,
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            after: self.after.clone(),
            timeout: self.timeout,
            read_policy: self.read_policy,
            _model: PhantomData,
        }
    }
}

impl<M: Model> fmt::Debug for Query<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("model", &M::META.name)
            .field("target", &self.target)
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("after", &self.after)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<M: Model> Query<M> {
    fn new(target: Target) -> Self {
        Query {
            target,
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
            after: None,
            timeout: None,
            read_policy: None,
            _model: PhantomData,
        }
    }

    /// A query routed by the shard key in its filter, else the task-local context, else all
    /// shards.
    pub fn auto() -> Self {
        Self::new(Target::Auto)
    }

    /// A query on exactly `shard`.
    pub fn on_shard(shard: ShardId) -> Self {
        Self::new(Target::Shard(shard))
    }

    /// A query on every shard of the model.
    pub fn on_all_shards() -> Self {
        Self::new(Target::All)
    }

    /// Adds a condition (`AND` with the conditions already given).
    pub fn filter(mut self, cond: Cond<M>) -> Self {
        self.filter = Some(and(self.filter.take(), cond.into_node()));
        self
    }

    /// Orders by `column` (after the orderings already given), NULLs where the backend puts
    /// them. Ties are finally broken by the primary key, so pages are deterministic.
    pub fn order_by<T: Orderable, R>(self, column: Column<M, T, R>, order: Order) -> Self {
        self.push_order(column.index(), order, None)
    }

    /// Orders by `column` with NULLs explicitly first or last.
    pub fn order_by_nulls<T: Orderable, R>(
        self,
        column: Column<M, T, R>,
        order: Order,
        nulls: Nulls,
    ) -> Self {
        self.push_order(column.index(), order, Some(nulls))
    }

    pub(crate) fn push_order(mut self, column: usize, order: Order, nulls: Option<Nulls>) -> Self {
        self.order.push(OrderKey {
            column,
            order,
            nulls,
        });
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows (of the whole answer, not of each shard).
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// Keyset pagination: only rows that come after `row` in this query's order (its
    /// `order_by` columns, then the primary key). Cheap at any depth, unlike `offset`: pass the
    /// last row of the previous page.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let page1 = User::query().order_by(User::BALANCE, Order::Desc).limit(100).all(&c).await?;
    /// let page2 = User::query().order_by(User::BALANCE, Order::Desc).after(page1.last().unwrap())
    ///     .limit(100).all(&c).await?;
    /// ```
    pub fn after(mut self, row: &M) -> Self {
        self.after = Some(row.values());
        self
    }

    /// How long the whole query may take (default: the cluster's timeout); shards still
    /// running then are named in [`Error::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Where this query's reads go (default: the cluster's [`ReadPolicy`]).
    pub fn read_policy(mut self, policy: ReadPolicy) -> Self {
        self.read_policy = Some(policy);
        self
    }

    /// Opts into partial results: shards that fail or time out are reported beside the
    /// answer of the others instead of failing the query.
    pub fn allow_partial(self) -> PartialQuery<M> {
        PartialQuery { query: self }
    }

    /// A projection or aggregate query: `select((User::REGION, User::BALANCE.sum()))`.
    /// Keeps the filter, target, page and timeout; the row order becomes the select's order.
    pub fn select<S: Selectable<M>>(self, items: S) -> Select<M, S::Output> {
        Select::new(self, items)
    }

    /// The shards this query will visit under the model's static placement, in index order,
    /// without running it. A cluster with a run-time placement for the model may route
    /// differently: [`Query::shards_on`] asks the cluster.
    ///
    /// # Errors
    ///
    /// As the terminals' routing: [`Error::MissingShardKey`], [`Error::UnknownShard`].
    pub fn shards(&self) -> Result<Vec<ShardId>> {
        Ok(router::plan::<M>(None, self.target, self.filter.as_ref())?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// The shards this query will visit on `cluster` (which may hold a run-time placement of
    /// the model; a directory is asked about the keys in the filter), without running it.
    ///
    /// # Errors
    ///
    /// As the terminals' routing; a directory lookup's error.
    pub async fn shards_on<DB: Backend>(&self, cluster: &Cluster<DB>) -> Result<Vec<ShardId>> {
        Ok(self
            .legs(cluster, DB::NULLS_FIRST_IN_ASC)
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// The routed legs, with the keyset condition (if any) added to the filter.
    pub(crate) async fn legs<DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        backend_nulls_first: bool,
    ) -> Result<Vec<Leg>> {
        let legs = self.planned_legs(cluster, backend_nulls_first).await?;
        // The model's table on every shard the query visits has every column the statements
        // name (a cached answer after the first time): never a wrong answer from a table that
        // a migration has not reached yet.
        cluster
            .ensure_schemas::<M>(legs.iter().map(|(shard, _)| *shard))
            .await?;
        Ok(legs)
    }

    /// [`Query::legs`] without the schema check: for statements inside a transaction, whose
    /// shard connection is taken (the check would wait for another from the same pool).
    pub(crate) async fn planned_legs<DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        backend_nulls_first: bool,
    ) -> Result<Vec<Leg>> {
        let filter = match &self.after {
            Some(cursor) => Some(and(
                self.filter.clone(),
                self.keyset(cursor, backend_nulls_first),
            )),
            None => self.filter.clone(),
        };
        let legs = match cluster.placement::<M>() {
            None => router::plan::<M>(None, self.target, filter.as_ref())?,
            Some(state) => {
                let placement = state.placement.reads();
                if let (Placement::Directory(directory), Some(node)) = (placement, filter.as_ref())
                {
                    let keys = router::key_values_in::<M>(node);
                    if !keys.is_empty() {
                        directory.prefetch::<M, DB>(cluster, &keys).await?;
                    }
                }
                let legs = router::plan::<M>(Some(&state.placement), self.target, filter.as_ref())?;
                match (&state.placement, self.target) {
                    // resharding: every statement names the migration's fence, and a shard
                    // the new placement uses leaves out the copies it holds of rows the old
                    // one places elsewhere (8 → 4, a tenant joining a shard), so each row is
                    // read once, where the old placement has it (`placement::fence`). A query
                    // on an explicit shard reads the shard as it is.
                    (Placement::Migrating { new, .. }, Target::Auto | Target::All)
                        if crate::placement::fence::guards::<M, DB>(cluster, &state) =>
                    {
                        let copies_on = new.all_shards::<M>();
                        legs.into_iter()
                            .map(|(shard, filter)| {
                                let mut filter = and(
                                    filter,
                                    Node::Raw(crate::placement::fence::standing::<M>()),
                                );
                                if copies_on.iter().any(|s| s.name() == shard.name()) {
                                    let copies = Node::Raw(crate::stmt::not_a_copy::<M>());
                                    filter = and(Some(filter), copies);
                                }
                                (shard, Some(filter))
                            })
                            .collect()
                    }
                    _ => legs,
                }
            }
        };
        Ok(legs)
    }

    pub(crate) fn policy<DB: Backend>(&self, cluster: &Cluster<DB>, partial: bool) -> Policy {
        let timeout = self.timeout.unwrap_or_else(|| cluster.timeout());
        Policy {
            model: M::META.name,
            deadline: Instant::now() + timeout,
            timeout,
            concurrency: cluster.max_concurrency(),
            partial,
        }
    }

    /// The full ordering: the requested one, then the primary key columns not yet named.
    /// Empty when no order was requested (and no cursor needs one).
    pub(crate) fn full_order(&self) -> Vec<OrderKey> {
        if self.order.is_empty() && self.after.is_none() {
            return Vec::new();
        }
        let mut order = self.order.clone();
        for &pk in M::META.primary_key {
            if !order.iter().any(|k| k.column == pk) {
                order.push(OrderKey {
                    column: pk,
                    order: Order::Asc,
                    nulls: None,
                });
            }
        }
        order
    }

    /// Opens one merge source per leg with `open(shard, filter, limit)`. Across several legs
    /// with a row `budget` (limit + offset) and an order, each shard is first asked for
    /// [`chunk_rows`] rows and [`continued`] by keyset after the last row of a full chunk. A leg
    /// that cannot be opened fails the query, or is listed when `partial`.
    pub(crate) fn open_legs<'a, T, F>(
        &'a self,
        legs: Vec<Leg>,
        order: &'a [OrderKey],
        budget: Option<u64>,
        partial: bool,
        backend_nulls_first: bool,
        open: &'a F,
    ) -> Result<(Vec<Source<'a, T>>, Failed)>
    where
        T: Send + 'a,
        F: Fn(ShardId, Option<&Node>, Option<u64>) -> Result<KeyedStream<'a, T>> + Sync,
    {
        let single = legs.len() == 1;
        let chunk = match budget {
            Some(budget) if !single && !order.is_empty() => {
                Some(chunk_rows(budget, legs.len())).filter(|&chunk| chunk < budget)
            }
            _ => None,
        };
        let mut sources = Vec::with_capacity(legs.len());
        let mut failed = Vec::new();
        for (shard, filter) in legs {
            let limit = if single { None } else { chunk.or(budget) };
            let rows = match open(shard, filter.as_ref(), limit) {
                Ok(rows) => rows,
                Err(e) if partial => {
                    failed.push((shard, e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let rows = match (budget, chunk) {
                (Some(budget), Some(first)) => {
                    let resume = move |last: &[Value]| {
                        and(
                            filter.clone(),
                            self.keyset_at(order, |i, _| &last[i], backend_nulls_first),
                        )
                    };
                    continued(rows, first, budget, move |after: Vec<Value>, limit| {
                        open(shard, Some(&resume(&after)), Some(limit))
                    })
                }
                _ => rows,
            };
            sources.push(Source { shard, rows });
        }
        Ok((sources, failed))
    }

    /// `(k1, k2, ...) > (v1, v2, ...)` in the query's order, NULL placement included.
    fn keyset(&self, cursor: &[Value], backend_nulls_first: bool) -> Node {
        let order = self.full_order();
        self.keyset_at(&order, |_, key| &cursor[key.column], backend_nulls_first)
    }

    /// `(k1, k2, ...) > (v1, v2, ...)` for `order`, where `value(i, key)` is the value of the
    /// `i`-th ordering key.
    pub(crate) fn keyset_at<'v>(
        &self,
        order: &[OrderKey],
        value: impl Fn(usize, &OrderKey) -> &'v Value,
        backend_nulls_first: bool,
    ) -> Node {
        let col = |k: &OrderKey| ColumnRef {
            name: M::META.columns[k.column].name,
            index: k.column,
        };
        let mut branches = Vec::new();
        for (i, key) in order.iter().enumerate() {
            let v = value(i, key);
            let placement = KeyOrder::new(key.order, key.nulls, backend_nulls_first);
            let after = if is_null(v) {
                if !placement.nulls_first {
                    continue; // nothing comes after the NULLs at the end
                }
                Node::Null {
                    col: col(key),
                    is_null: false,
                }
            } else {
                let op = match key.order {
                    Order::Asc => CmpOp::Gt,
                    Order::Desc => CmpOp::Lt,
                };
                let beyond = Node::Cmp {
                    col: col(key),
                    op,
                    value: v.clone(),
                };
                if placement.nulls_first {
                    beyond
                } else {
                    Node::Or(vec![
                        beyond,
                        Node::Null {
                            col: col(key),
                            is_null: true,
                        },
                    ])
                }
            };
            let mut all = Vec::with_capacity(i + 1);
            for (j, prev) in order[..i].iter().enumerate() {
                let v = value(j, prev);
                all.push(if is_null(v) {
                    Node::Null {
                        col: col(prev),
                        is_null: true,
                    }
                } else {
                    Node::Cmp {
                        col: col(prev),
                        op: CmpOp::Eq,
                        value: v.clone(),
                    }
                });
            }
            all.push(after);
            branches.push(Node::And(all));
        }
        if branches.is_empty() {
            Node::Const(false)
        } else {
            Node::Or(branches)
        }
    }

    /// `SELECT ... FROM table WHERE filter`, the filter rendered for `DB` (text compared in
    /// byte order, `like` / `ilike` as Grant defines them).
    pub(crate) fn base_select<DB: Backend>(filter: Option<&Node>) -> SelectStatement {
        let mut select = sea_query::Query::select();
        select.from(M::META.table);
        if let Some(node) = filter {
            select.cond_where(node.to_condition_for::<DB>(M::META.columns));
        }
        select
    }

    /// The per-shard ORDER BY of `order`: text columns in byte order (see [`sort_expr`]).
    pub(crate) fn order_sql_of<DB: Backend>(select: &mut SelectStatement, order: &[OrderKey]) {
        order_sql(
            select,
            order
                .iter()
                .map(|k| (sort_expr::<DB>(k.column, M::META), k.order, k.nulls)),
        );
    }

    /// All matching rows.
    ///
    /// # Errors
    ///
    /// Routing errors, [`Error::UnknownShard`], [`Error::ShardUnavailable`] / [`Error::Shard`]
    /// naming the failing shard, [`Error::Timeout`] naming the shards that did not answer.
    pub async fn all<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Vec<M>>
    where
        M: FromShardRow<DB>,
    {
        Ok(self.rows(cluster, false).await?.value)
    }

    pub(crate) async fn rows<DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        partial: bool,
    ) -> Result<Partial<Vec<M>>>
    where
        M: FromShardRow<DB>,
    {
        let columns: Vec<&'static str> = M::META.column_names().collect();
        self.fetch_rows(cluster, partial, &columns, None, M::from_row)
            .await
    }

    /// Projects onto `columns` (a column or a tuple of columns) and decodes each row with `T`'s
    /// [`sqlx::FromRow`] — for user structs that derive it (columns are matched by name) or
    /// tuples (by position).
    ///
    /// # Examples
    ///
    /// ```ignore
    /// #[derive(sqlx::FromRow)]
    /// struct NameBalance { name: String, balance: i64 }
    /// let top: Vec<NameBalance> = User::query().order_by(User::BALANCE, Order::Desc).limit(10)
    ///     .select_as((User::NAME, User::BALANCE), &cluster).await?;
    /// ```
    ///
    /// Ordering, paging and routing work as in [`Query::all`].
    ///
    /// # Errors
    ///
    /// As [`Query::all`].
    pub async fn select_as<T, S, DB: Backend>(
        self,
        columns: S,
        cluster: &Cluster<DB>,
    ) -> Result<Vec<T>>
    where
        S: Selectable<M>,
        T: for<'r> sqlx::FromRow<'r, DB::Row> + Send,
    {
        let mut items = Vec::new();
        columns.push_items(&mut items);
        let mut names = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item::Column(c) => names.push(c.name),
                other => {
                    return Err(Error::Unsupported {
                        model: M::META.name,
                        reason: format!(
                            "select_as() takes columns, not {other:?}; use select() for aggregates"
                        ),
                    });
                }
            }
        }
        Ok(self
            .fetch_rows(cluster, false, &names, None, |row| T::from_row(row))
            .await?
            .value)
    }

    /// Streams `columns` (followed by the sort key) from every leg, merges by the key, and
    /// decodes only the rows of the page.
    /// The rows of the query, `columns` of each (then, with `join`, the parent's columns),
    /// decoded by `decode`: routed, run per shard, merged in the query's order and paged.
    pub(crate) async fn fetch_rows<T, DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        partial: bool,
        columns: &[&'static str],
        join: Option<&JoinSpec>,
        decode: impl Fn(&DB::Row) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<Partial<Vec<T>>> {
        // Boxed, like the fenced path: the query's future stays out of its caller's (debug
        // builds' deep futures overflow a thread's stack otherwise).
        if !cluster.placements().any() {
            return Box::pin(self.fetch_rows_once(cluster, partial, columns, join, &decode)).await;
        }
        // resharding: a read that met a migration's fence runs again on the new placement.
        cluster
            .through_fence::<M, _, _, _>(|| {
                self.clone()
                    .fetch_rows_once(cluster, partial, columns, join, &decode)
            })
            .await
    }

    async fn fetch_rows_once<T, DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        partial: bool,
        columns: &[&'static str],
        join: Option<&JoinSpec>,
        decode: &impl Fn(&DB::Row) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<Partial<Vec<T>>> {
        // resharding: hold the model's gate for the whole query (a cutover waits for it).
        let _gate = cluster.gated_placement::<M>().await;
        let legs = self.legs(cluster, DB::NULLS_FIRST_IN_ASC).await?;
        let policy = self.policy(cluster, partial);
        let order = self.full_order();
        let keys: Vec<KeyOrder> = order
            .iter()
            .map(|k| KeyOrder::new(k.order, k.nulls, DB::NULLS_FIRST_IN_ASC))
            .collect();
        let key_columns: Vec<(usize, ValueKind)> = order
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let kind = M::META.columns[k.column].kind;
                let joined = join.map_or(0, |j| j.columns.len());
                (columns.len() + joined + i, kind)
            })
            .collect();
        let offset = self.offset.unwrap_or(0);
        let single = legs.len() == 1;
        // What one shard may have to give: the whole page plus the offset. Deep pages are asked
        // for in chunks (see `chunk_rows`), continuing after the last row of a chunk that came
        // back full, so a shard sorts for its share of the page, not for all of it.
        let budget = self.limit.map(|limit| limit.saturating_add(offset));
        let open = |shard: ShardId, filter: Option<&Node>, limit: Option<u64>| {
            let mut select = Self::base_select::<DB>(filter);
            select.columns(columns.iter().copied());
            if join.is_none() {
                for key in &order {
                    select.column(M::META.columns[key.column].name);
                }
            }
            Self::order_sql_of::<DB>(&mut select, &order);
            if single {
                page_sql(&mut select, self.limit, offset);
            } else if let Some(limit) = limit {
                select.limit(limit);
            }
            if let Some(join) = join {
                select = join.wrap::<M, DB>(select, columns, &order);
            }
            let rows = cluster.stream(
                M::META.name,
                shard,
                self.read_policy,
                select.build_sqlx(DB::builder()),
            )?;
            // Only the sort key is decoded while merging; rows are decoded into `M` once they
            // make the page, so skipped rows (a deep OFFSET) cost no model decoding.
            let key_columns = &key_columns;
            Ok::<_, Error>(
                rows.map(move |row| {
                    let row = row?;
                    let mut key = Vec::with_capacity(key_columns.len());
                    for &(index, kind) in key_columns {
                        key.push(DB::get_value(&row, index, kind).map_err(|source| {
                            Error::Shard {
                                model: M::META.name,
                                shard,
                                source,
                            }
                        })?);
                    }
                    Ok((key, (shard, row)))
                })
                .boxed(),
            )
        };
        let (sources, mut failed) =
            self.open_legs(legs, &order, budget, partial, DB::NULLS_FIRST_IN_ASC, &open)?;
        let page = if single {
            Page {
                offset: 0,
                limit: None,
            }
        } else {
            Page {
                offset,
                limit: self.limit,
            }
        };
        let (rows, more) = merge::merge_streams(sources, &keys, page, None, &policy).await?;
        failed.extend(more);
        let value = rows
            .iter()
            .map(|(shard, row)| {
                decode(row).map_err(|source| Error::Shard {
                    model: M::META.name,
                    shard: *shard,
                    source,
                })
            })
            .collect::<Result<Vec<T>>>()?;
        Ok(Partial { value, failed })
    }

    /// The first matching row (in the query's order), if any.
    ///
    /// # Errors
    ///
    /// As [`Query::all`].
    pub async fn one<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Option<M>>
    where
        M: FromShardRow<DB>,
    {
        Ok(self.limit(1).all(cluster).await?.into_iter().next())
    }

    /// Deletes the matching rows, routed like any query (the shards the filter's shard key
    /// allows, else every shard), each shard's `DELETE` run on its primary, shards in
    /// parallel; returns how many rows were deleted.
    ///
    /// Each shard's delete is one statement (all of its matching rows or none); shards are
    /// not atomic together: on an error, shards that answered first may have deleted theirs
    /// (run it again: a delete by filter is idempotent).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] with `limit`, `offset` or `after` (each shard would delete an
    /// arbitrary subset), on a reference table (delete its rows by key: every shard in one
    /// transaction) and while the model is being resharded (delete by key meanwhile, which the
    /// job journals); otherwise as [`Query::all`].
    pub async fn delete<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<u64> {
        let (gated, by_shard) = self
            .write_by_filter(cluster, "delete", |filter| {
                let mut delete = sea_query::Query::delete();
                delete.from_table(M::META.table);
                if let Some(node) = filter {
                    delete.cond_where(node.to_condition_for::<DB>(M::META.columns));
                }
                delete.build_sqlx(DB::builder())
            })
            .await?;
        let mut total = 0;
        for (shard, n) in by_shard {
            if let Some(state) = &gated {
                crate::placement::note_rows(&state.placement, shard, -(n as i64));
            }
            total += n;
        }
        Ok(total)
    }

    /// Starts an update by filter: the matching rows get `value` in `column` (more columns with
    /// [`Update::set`]), run by [`Update::update`].
    ///
    /// Only ordinary columns can be assigned: a primary-key or shard-key column (typed
    /// `Column<M, T, Key>` by the derive) is a compile error, since a row's key never changes
    /// in place.
    ///
    /// # Examples
    ///
    /// ```ignore
    /// let closed = Issue::query()
    ///     .filter(Issue::TENANT_ID.eq(tenant).and(Issue::STATUS.eq(Status::Open)))
    ///     .set(Issue::STATUS, Status::Closed)
    ///     .set(Issue::CLOSED_AT, Some(now))
    ///     .update(&cluster)
    ///     .await?;
    /// ```
    pub fn set<T, R>(self, column: Column<M, T, R>, value: impl Into<T>) -> Update<M>
    where
        T: Into<Value>,
        R: grant_core::Assignable,
    {
        Update {
            query: self,
            assignments: Vec::new(),
        }
        .set(column, value)
    }

    /// Runs one statement per shard the query visits (built from the shard's filter), on its
    /// primary, shards in parallel: the part `delete` and `update` share. Refuses what a write
    /// by filter cannot do; returns the placement state it held and each shard's affected rows.
    async fn write_by_filter<DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        what: &str,
        build: impl Fn(Option<&Node>) -> crate::stmt::Statement,
    ) -> Result<(Option<crate::placement::Gated>, Vec<(ShardId, u64)>)> {
        let refuse = |reason: String| {
            Err(Error::Unsupported {
                model: M::META.name,
                reason,
            })
        };
        if self.limit.is_some() || self.offset.is_some() || self.after.is_some() {
            return refuse(format!(
                "{what}() of a query with limit, offset or after would {what} an arbitrary \
                 subset on each shard; remove them (filter on the rows to {what})"
            ));
        }
        if M::REFERENCE {
            return refuse(format!(
                "{what}() by filter on a reference table; {what} its rows by key \
                 (`row.{what}(&cluster)`), which writes every shard in one transaction"
            ));
        }
        // resharding: the placement is read under the model's gate, held for the whole write.
        let gated = cluster.gated_placement::<M>().await;
        if let Some(state) = &gated
            && matches!(state.placement, Placement::Migrating { .. })
        {
            return refuse(format!(
                "{what}() by filter while the model is being resharded (its journal needs the \
                 keys of the rows written); {what} by key meanwhile, or after the job finishes"
            ));
        }
        let legs = self.legs(cluster, DB::NULLS_FIRST_IN_ASC).await?;
        let policy = self.policy(cluster, false);
        let gathered =
            crate::exec::scatter(legs.iter().map(|(s, _)| *s).collect(), policy, |shard| {
                let filter = legs
                    .iter()
                    .find(|(s, _)| *s == shard)
                    .and_then(|(_, f)| f.clone());
                let statement = build(filter.as_ref());
                async move { cluster.execute(M::META.name, shard, statement).await }
            })
            .await?;
        Ok((gated, gathered.ok))
    }

    /// The number of rows [`Query::all`] would return (the page's limit and offset included).
    ///
    /// # Errors
    ///
    /// As [`Query::all`].
    pub async fn count<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<u64> {
        Ok(self.count_inner(cluster, false).await?.value)
    }

    async fn count_inner<DB: Backend>(
        self,
        cluster: &Cluster<DB>,
        partial: bool,
    ) -> Result<Partial<u64>> {
        let (limit, offset) = (self.limit, self.offset.unwrap_or(0));
        let mut unpaged = self;
        unpaged.limit = None;
        unpaged.offset = None;
        unpaged.order.clear();
        let (rows, failed) = Select::<M, i64>::from_items(unpaged, vec![Item::Count], |values| {
            grant_core::FromValue::from_value(values.next().unwrap_or(Value::BigInt(None)))
        })
        .run(cluster, partial)
        .await?;
        let total = rows.into_iter().next().unwrap_or(0).max(0) as u64;
        let total = total.saturating_sub(offset);
        Ok(Partial {
            value: limit.map_or(total, |l| std::cmp::min(total, l)),
            failed,
        })
    }

    fn no_page(&self, what: &str) -> Result<()> {
        if self.limit.is_some() || self.offset.is_some() {
            return Err(Error::Unsupported {
                model: M::META.name,
                reason: format!(
                    "{what}() over a limited or offset query is ambiguous; remove limit/offset, \
                     or aggregate the rows returned by `all()`"
                ),
            });
        }
        Ok(())
    }

    /// `SUM(column)` over the matching rows; `None` when no non-NULL value matched (as in SQL).
    ///
    /// # Errors
    ///
    /// As [`Query::all`]; [`Error::Unsupported`] with `limit` / `offset`; an integer overflow
    /// is [`Error::Unsupported`] (across shards) or the database's error.
    pub async fn sum<T, R, DB: Backend>(
        self,
        column: Column<M, T, R>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Sum>>
    where
        T: Summable,
        Option<T::Sum>: grant_core::FromValue,
    {
        self.no_page("sum")?;
        self.single(column.sum(), cluster).await
    }

    /// `MIN(column)` over the matching rows; `None` when no non-NULL value matched.
    ///
    /// # Errors
    ///
    /// As [`Query::sum`].
    pub async fn min<T, R, DB: Backend>(
        self,
        column: Column<M, T, R>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Inner>>
    where
        T: Scalar,
        Option<T::Inner>: grant_core::FromValue,
    {
        self.no_page("min")?;
        self.single(column.min(), cluster).await
    }

    /// `MAX(column)` over the matching rows; `None` when no non-NULL value matched.
    ///
    /// # Errors
    ///
    /// As [`Query::sum`].
    pub async fn max<T, R, DB: Backend>(
        self,
        column: Column<M, T, R>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Inner>>
    where
        T: Scalar,
        Option<T::Inner>: grant_core::FromValue,
    {
        self.no_page("max")?;
        self.single(column.max(), cluster).await
    }

    /// `AVG(column)` over the matching rows: the sum of the shards' sums over the sum of their
    /// counts — never an average of averages; `None` when no non-NULL value matched.
    ///
    /// # Errors
    ///
    /// As [`Query::sum`].
    pub async fn avg<T, R, DB: Backend>(
        self,
        column: Column<M, T, R>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Avg>>
    where
        T: Summable,
        Option<T::Avg>: grant_core::FromValue,
    {
        self.no_page("avg")?;
        self.single(column.avg(), cluster).await
    }

    async fn single<S, DB: Backend>(mut self, item: S, cluster: &Cluster<DB>) -> Result<S::Output>
    where
        S: Selectable<M>,
        S::Output: Default,
    {
        self.order.clear();
        Ok(self
            .select(item)
            .all(cluster)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default())
    }
}

/// An update by filter: a query's matching rows get new values in some columns
/// ([`Query::set`]).
#[derive(Debug, Clone)]
pub struct Update<M: Model> {
    query: Query<M>,
    assignments: Vec<(usize, Value)>,
}

impl<M: Model> Update<M> {
    /// Also assigns `value` to `column` (a later `set` of the same column wins).
    pub fn set<T, R>(mut self, column: Column<M, T, R>, value: impl Into<T>) -> Self
    where
        T: Into<Value>,
        R: grant_core::Assignable,
    {
        let value: Value = value.into().into();
        match self
            .assignments
            .iter_mut()
            .find(|(i, _)| *i == column.index())
        {
            Some(slot) => slot.1 = value,
            None => self.assignments.push((column.index(), value)),
        }
        self
    }

    /// Updates the matching rows, routed like any query (the shards the filter's shard key
    /// allows, else every shard), each shard's `UPDATE` run on its primary, shards in
    /// parallel; returns how many rows matched.
    ///
    /// Each shard's update is one statement (all of its matching rows or none); shards are not
    /// atomic together: on an error, shards that answered first may have updated theirs (run
    /// it again: assigning constants is idempotent).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] with `limit`, `offset` or `after` (each shard would update an
    /// arbitrary subset), on a reference table (update its rows by key) and while the model is
    /// being resharded (update by key meanwhile, which the job journals); otherwise as
    /// [`Query::all`]. A value the column cannot hold (a NULL in a `NOT NULL` column) is the
    /// database's error.
    pub async fn update<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<u64> {
        let assignments = self.assignments;
        let (_, by_shard) = self
            .query
            .write_by_filter(cluster, "update", |filter| {
                let mut update = sea_query::Query::update();
                update.table(M::META.table);
                for (i, value) in &assignments {
                    update.value(M::META.columns[*i].name, value.clone());
                }
                if let Some(node) = filter {
                    update.cond_where(node.to_condition_for::<DB>(M::META.columns));
                }
                update.build_sqlx(DB::builder())
            })
            .await?;
        Ok(by_shard.into_iter().map(|(_, n)| n).sum())
    }
}

/// The parent side of a co-located join ([`crate::relations::Joined`]): the parent's table and
/// columns, and which child column holds each of the parent's primary-key columns.
pub(crate) struct JoinSpec {
    pub(crate) table: &'static str,
    pub(crate) columns: Vec<&'static str>,
    /// (position in `columns` of a parent primary-key column, the child column holding it).
    pub(crate) on: Vec<(usize, &'static str)>,
}

impl JoinSpec {
    /// `SELECT <child columns>, <parent columns>, <sort keys> FROM (<child>) LEFT JOIN
    /// (<parent, columns renamed __grant_p0..>) ON .. ORDER BY <sort keys>`: the child's rows
    /// (filtered, ordered and paged as ever, in the inner statement), each with its parent's
    /// columns or NULLs. The parent's columns are renamed so that no child column name becomes
    /// ambiguous in the outer statement.
    fn wrap<M: Model, DB: Backend>(
        &self,
        inner: SelectStatement,
        columns: &[&'static str],
        order: &[OrderKey],
    ) -> SelectStatement {
        let alias = |i: usize| format!("__grant_p{i}");
        let mut parent = sea_query::Query::select();
        parent.from(self.table);
        for (i, c) in self.columns.iter().enumerate() {
            parent.expr_as(Expr::col(*c), alias(i));
        }
        let mut on = sea_query::Condition::all();
        for &(i, child) in &self.on {
            on = on.add(sea_query::ExprTrait::equals(Expr::col(alias(i)), child));
        }
        let mut outer = sea_query::Query::select();
        outer.from_subquery(inner, "__grant_c");
        outer.join_subquery(sea_query::JoinType::LeftJoin, parent, "__grant_p", on);
        outer.columns(columns.iter().copied());
        for i in 0..self.columns.len() {
            outer.column(alias(i));
        }
        for key in order {
            outer.column(M::META.columns[key.column].name);
        }
        Query::<M>::order_sql_of::<DB>(&mut outer, order);
        outer
    }
}

/// A query that reports failed shards beside the answer of the others
/// ([`Query::allow_partial`]).
#[derive(Debug, Clone)]
pub struct PartialQuery<M: Model> {
    query: Query<M>,
}

impl<M: Model> PartialQuery<M> {
    /// The rows of the shards that answered, and the shards that did not.
    ///
    /// # Errors
    ///
    /// Routing errors only: shard failures are reported in [`Partial::failed`].
    pub async fn all<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Partial<Vec<M>>>
    where
        M: FromShardRow<DB>,
    {
        self.query.rows(cluster, true).await
    }

    /// The count over the shards that answered, and the shards that did not.
    ///
    /// # Errors
    ///
    /// Routing errors only: shard failures are reported in [`Partial::failed`].
    pub async fn count<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Partial<u64>> {
        self.query.count_inner(cluster, true).await
    }
}

/// `a AND b`, flattening.
pub(crate) fn and(a: Option<Node>, b: Node) -> Node {
    match a {
        None => b,
        Some(Node::And(mut nodes)) => {
            nodes.push(b);
            Node::And(nodes)
        }
        Some(prev) => Node::And(vec![prev, b]),
    }
}

/// LIMIT / OFFSET for a statement that is the whole answer (one shard).
/// Rows a shard is first asked for when it may have to give up to `budget` rows of a merge
/// over `shards` legs: the whole budget when it is small, else about 1.5 × its even share. A
/// shard whose chunk comes back full is asked for more (see [`continued`]), so a skewed
/// distribution costs extra round trips, never a wrong answer; an even one (what hash placement
/// gives) lets each shard sort for `budget / shards` rows instead of `budget` — a deep `OFFSET`
/// costs every shard only its share.
pub(crate) fn chunk_rows(budget: u64, shards: usize) -> u64 {
    const SMALL: u64 = 1_000;
    let shards = shards.max(1) as u64;
    if budget <= SMALL || shards == 1 {
        return budget;
    }
    let share = budget.div_ceil(shards);
    budget.min((share + share / 2).max(SMALL))
}

/// The shards that failed, with why.
pub(crate) type Failed = Vec<(ShardId, Error)>;

/// One shard's rows, each with its sort key.
pub(crate) type KeyedStream<'a, T> = BoxStream<'a, Result<(Vec<Value>, T)>>;

/// One shard's rows as a single stream though they come from several statements: `first`
/// yields up to `chunk` rows; while a chunk comes back full and fewer than `budget` rows have
/// been given, `next(last key, limit)` opens the statement for the rows after the last one
/// (keyset continuation: the order ends with the primary key, so "after" is exact), asking for
/// twice the previous chunk, at most what is left of the budget.
pub(crate) fn continued<'a, T: Send + 'a>(
    first: KeyedStream<'a, T>,
    chunk: u64,
    budget: u64,
    next: impl Fn(Vec<Value>, u64) -> Result<KeyedStream<'a, T>> + Send + 'a,
) -> KeyedStream<'a, T> {
    struct State<'a, T> {
        rows: Option<KeyedStream<'a, T>>,
        chunk: u64,
        in_chunk: u64,
        given: u64,
        last: Option<Vec<Value>>,
    }
    let state = State {
        rows: Some(first),
        chunk,
        in_chunk: 0,
        given: 0,
        last: None,
    };
    futures_util::stream::unfold((state, next), move |(mut state, next)| async move {
        loop {
            let rows = state.rows.as_mut()?;
            match rows.next().await {
                Some(Ok((key, item))) => {
                    state.in_chunk += 1;
                    state.given += 1;
                    if state.in_chunk == state.chunk && state.given < budget {
                        state.last = Some(key.clone());
                    }
                    return Some((Ok((key, item)), (state, next)));
                }
                Some(Err(e)) => {
                    state.rows = None;
                    return Some((Err(e), (state, next)));
                }
                None => {
                    let full = state.in_chunk == state.chunk && state.given < budget;
                    let last = state.last.take();
                    state.rows = None;
                    let (true, Some(last)) = (full, last) else {
                        return None;
                    };
                    let chunk = (state.chunk * 2).min(budget - state.given);
                    match next(last, chunk) {
                        Ok(rows) => {
                            state.rows = Some(rows);
                            state.chunk = chunk;
                            state.in_chunk = 0;
                        }
                        Err(e) => return Some((Err(e), (state, next))),
                    }
                }
            }
        }
    })
    .boxed()
}

pub(crate) fn page_sql(select: &mut SelectStatement, limit: Option<u64>, offset: u64) {
    if let Some(limit) = limit {
        select.limit(limit);
    }
    if offset > 0 {
        if limit.is_none() {
            // Both dialects want a LIMIT before OFFSET.
            select.limit(i64::MAX as u64);
        }
        select.offset(offset);
    }
}

/// The expression column `column` of a model is sorted, grouped, made DISTINCT and compared in
/// `MIN`/`MAX` by on backend `DB`: text in byte order (`COLLATE "C"` on PostgreSQL, whatever
/// the database's or the column's collation), as the merger compares it.
pub(crate) fn sort_expr<DB: Backend>(column: usize, meta: &ModelMeta) -> Expr {
    let column = &meta.columns[column];
    byte_order_expr::<DB>(column.name, &(column.column_type)())
}

/// ORDER BY clauses with optional explicit NULL placement.
pub(crate) fn order_sql(
    select: &mut SelectStatement,
    keys: impl Iterator<Item = (Expr, Order, Option<Nulls>)>,
) {
    for (expr, order, nulls) in keys {
        let dir = sea_order(order);
        match nulls {
            None => select.order_by_expr(expr, dir),
            Some(Nulls::First) => select.order_by_expr_with_nulls(expr, dir, NullOrdering::First),
            Some(Nulls::Last) => select.order_by_expr_with_nulls(expr, dir, NullOrdering::Last),
        };
    }
}

pub(crate) fn sea_order(order: Order) -> sea_query::Order {
    match order {
        Order::Asc => sea_query::Order::Asc,
        Order::Desc => sea_query::Order::Desc,
    }
}
