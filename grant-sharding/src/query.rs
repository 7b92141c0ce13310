//! `Query<M>`: typed, routed queries and their terminals.

use std::fmt;
use std::marker::PhantomData;

use futures_util::future::try_join_all;
use grant_core::{
    Backend, Column, Cond, Error, FromShardRow, Model, Node, Order, Result, Scalar, ShardId,
    SumValue, Summable,
};
use sea_query::{Expr, ExprTrait, SelectStatement};
use sea_query_sqlx::SqlxBinder;

use crate::cluster::Cluster;
use crate::merge::{self, RowOrder, compare_values};
use crate::router::{self, Leg, Target};

/// A query over the rows of model `M`: where it goes, its filter, order and page.
///
/// Built with `M::query()` (routed by the shard key in the filter; else the task-local
/// [`with_shard`](crate::with_shard) context; else all shards), `M::on_shard(id)` or
/// `M::on_all_shards()`; run with a terminal (`all`, `one`, `count`, `sum`, `min`, `max`, `avg`).
///
/// Across shards the answer equals what one database holding every row would give: rows are
/// merged in order (ties broken by the primary key), `OFFSET` is applied once after the merge
/// (each shard is asked for `LIMIT limit + offset`), counts and sums are added, `AVG` is
/// `SUM / COUNT` of the parts. Deep offsets cost `offset` rows per shard: prefer filtering on
/// the order column (`gt(last_seen)`) for deep pages.
///
/// # Cancel safety
///
/// The terminals fan out to shards; dropping their future cancels every in-flight shard
/// statement. Reads only: nothing is left half-done.
pub struct Query<M> {
    target: Target,
    filter: Option<Node>,
    order: Vec<(usize, Order)>,
    limit: Option<u64>,
    offset: Option<u64>,
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
        let node = cond.into_node();
        self.filter = Some(match self.filter.take() {
            None => node,
            Some(Node::And(mut nodes)) => {
                nodes.push(node);
                Node::And(nodes)
            }
            Some(prev) => Node::And(vec![prev, node]),
        });
        self
    }

    /// Orders by `column` (after the orderings already given). Ties are finally broken by the
    /// primary key, so pages are deterministic.
    pub fn order_by<T>(mut self, column: Column<M, T>, order: Order) -> Self {
        self.order.push((column.index(), order));
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

    /// The shards this query will visit, in index order, without running it.
    ///
    /// # Errors
    ///
    /// As the terminals' routing: [`Error::MissingShardKey`], [`Error::UnknownShard`].
    pub fn shards(&self) -> Result<Vec<ShardId>> {
        Ok(self.legs()?.into_iter().map(|(s, _)| s).collect())
    }

    fn legs(&self) -> Result<Vec<Leg>> {
        router::plan::<M>(self.target, self.filter.as_ref())
    }

    /// The full ordering: the requested one, then the primary key columns not yet named.
    fn full_order(&self) -> Vec<(usize, Order)> {
        if self.order.is_empty() {
            return Vec::new();
        }
        let mut order = self.order.clone();
        for &pk in M::META.primary_key {
            if !order.iter().any(|&(c, _)| c == pk) {
                order.push((pk, Order::Asc));
            }
        }
        order
    }

    fn base_select(filter: Option<&Node>) -> SelectStatement {
        let mut select = sea_query::Query::select();
        select.from(M::META.table);
        if let Some(node) = filter {
            select.cond_where(node.to_condition());
        }
        select
    }

    /// All matching rows.
    ///
    /// # Errors
    ///
    /// Routing errors, [`Error::UnknownShard`], [`Error::ShardUnavailable`] / [`Error::Timeout`]
    /// naming the failing shard (a failing shard fails the whole query), decode errors.
    pub async fn all<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<Vec<M>>
    where
        M: FromShardRow<DB>,
    {
        let legs = self.legs()?;
        let order = self.full_order();
        let offset = self.offset.unwrap_or(0);
        let single = legs.len() == 1;
        let statements = legs.into_iter().map(|(shard, filter)| {
            let mut select = Self::base_select(filter.as_ref());
            select.columns(M::META.column_names());
            for &(column, dir) in &order {
                select.order_by(M::META.columns[column].name, sea_order(dir));
            }
            if single {
                if let Some(limit) = self.limit {
                    select.limit(limit);
                }
                if offset > 0 {
                    if self.limit.is_none() {
                        // Both dialects need a LIMIT before OFFSET; -1 / ALL mean "no limit".
                        select.limit(i64::MAX as u64);
                    }
                    select.offset(offset);
                }
            } else if let Some(limit) = self.limit {
                select.limit(limit.saturating_add(offset));
            }
            (shard, select.build_sqlx(DB::builder()))
        });
        let parts = try_join_all(statements.map(|(shard, statement)| async move {
            let rows = cluster.fetch(M::META.name, shard, statement).await?;
            rows.iter()
                .map(|row| {
                    M::from_row(row).map_err(|source| Error::Shard {
                        model: M::META.name,
                        shard,
                        source,
                    })
                })
                .collect::<Result<Vec<M>>>()
        }))
        .await?;
        if single {
            return Ok(parts.into_iter().next().unwrap_or_default());
        }
        Ok(if order.is_empty() {
            merge::concat(parts, offset, self.limit)
        } else {
            let order = RowOrder {
                keys: order,
                nulls_first: DB::NULLS_FIRST_IN_ASC,
            };
            merge::merge_sorted(parts, &order, offset, self.limit)
        })
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

    /// The number of rows [`Query::all`] would return.
    ///
    /// # Errors
    ///
    /// As [`Query::all`].
    pub async fn count<DB: Backend>(self, cluster: &Cluster<DB>) -> Result<u64>
    where
        i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        let parts = self
            .aggregate(cluster, true, Expr::col(sea_query::Asterisk).count(), None)
            .await?;
        let mut total: u64 = 0;
        for (shard, row) in &parts {
            let n: i64 = self.decode(row, 0, *shard)?;
            total += u64::try_from(n).unwrap_or(0);
        }
        let total = total.saturating_sub(self.offset.unwrap_or(0));
        Ok(self.limit.map_or(total, |l| std::cmp::min(total, l)))
    }

    /// `SUM(column)` over the matching rows; `None` when no non-NULL value matched (as in SQL).
    ///
    /// # Errors
    ///
    /// As [`Query::all`]; [`Error::Unsupported`] with `limit` / `offset` (sum the rows of
    /// `all()` instead); an integer overflow is the database's error.
    pub async fn sum<T, DB: Backend>(
        self,
        column: Column<M, T>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Sum>>
    where
        T: Summable,
        Option<T::Sum>: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        let sum = Expr::col(column.name()).sum().cast_as(T::SUM_SQL_TYPE);
        let parts = self.aggregate(cluster, false, sum, None).await?;
        let mut total: Option<T::Sum> = None;
        for (shard, row) in &parts {
            let part: Option<T::Sum> = self.decode(row, 0, *shard)?;
            total = match (total, part) {
                (Some(a), Some(b)) => Some(a.checked_sum(b).ok_or_else(|| Error::Unsupported {
                    model: M::META.name,
                    reason: format!(
                        "sum({}) overflows its type across shards; sum a float column instead",
                        column.name()
                    ),
                })?),
                (a, b) => a.or(b),
            };
        }
        Ok(total)
    }

    /// `MIN(column)` over the matching rows; `None` when no non-NULL value matched.
    ///
    /// # Errors
    ///
    /// As [`Query::sum`].
    pub async fn min<T, DB: Backend>(
        self,
        column: Column<M, T>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Inner>>
    where
        T: Scalar,
        T::Inner: Into<sea_query::Value> + Clone,
        Option<T::Inner>: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        self.extreme::<T, DB>(column, cluster, false).await
    }

    /// `MAX(column)` over the matching rows; `None` when no non-NULL value matched.
    ///
    /// # Errors
    ///
    /// As [`Query::sum`].
    pub async fn max<T, DB: Backend>(
        self,
        column: Column<M, T>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<T::Inner>>
    where
        T: Scalar,
        T::Inner: Into<sea_query::Value> + Clone,
        Option<T::Inner>: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        self.extreme::<T, DB>(column, cluster, true).await
    }

    async fn extreme<T, DB: Backend>(
        self,
        column: Column<M, T>,
        cluster: &Cluster<DB>,
        max: bool,
    ) -> Result<Option<T::Inner>>
    where
        T: Scalar,
        T::Inner: Into<sea_query::Value> + Clone,
        Option<T::Inner>: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        let expr = if max {
            Expr::col(column.name()).max()
        } else {
            Expr::col(column.name()).min()
        };
        let parts = self.aggregate(cluster, false, expr, None).await?;
        let mut best: Option<T::Inner> = None;
        for (shard, row) in &parts {
            let part: Option<T::Inner> = self.decode(row, 0, *shard)?;
            best = match (best, part) {
                (Some(a), Some(b)) => {
                    let o = compare_values(&a.clone().into(), &b.clone().into(), true);
                    let keep_a = if max { o.is_ge() } else { o.is_le() };
                    Some(if keep_a { a } else { b })
                }
                (a, b) => a.or(b),
            };
        }
        Ok(best)
    }

    /// `AVG(column)` over the matching rows, computed as the sum of the shards' sums over the sum
    /// of their counts — never an average of averages; `None` when no non-NULL value matched.
    ///
    /// # Errors
    ///
    /// As [`Query::sum`].
    pub async fn avg<T, DB: Backend>(
        self,
        column: Column<M, T>,
        cluster: &Cluster<DB>,
    ) -> Result<Option<f64>>
    where
        T: Summable,
        Option<f64>: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        let sum = Expr::col(column.name()).sum().cast_as("float8");
        let count = Expr::col(column.name()).count();
        let parts = self.aggregate(cluster, false, sum, Some(count)).await?;
        let (mut total, mut n) = (0.0_f64, 0_i64);
        for (shard, row) in &parts {
            let part: Option<f64> = self.decode(row, 0, *shard)?;
            let c: i64 = self.decode(row, 1, *shard)?;
            total += part.unwrap_or(0.0);
            n += c;
        }
        Ok((n > 0).then(|| total / n as f64))
    }

    /// Runs one aggregate row per shard. `page_ok`: whether limit/offset can be applied
    /// afterwards by the caller (counts); otherwise they are refused.
    async fn aggregate<DB: Backend>(
        &self,
        cluster: &Cluster<DB>,
        page_ok: bool,
        expr: Expr,
        second: Option<Expr>,
    ) -> Result<Vec<(ShardId, DB::Row)>> {
        if !page_ok && (self.limit.is_some() || self.offset.is_some()) {
            return Err(Error::Unsupported {
                model: M::META.name,
                reason: "aggregates over a limited or offset query are ambiguous; remove \
                         limit/offset, or aggregate the rows returned by `all()`"
                    .into(),
            });
        }
        let legs = self.legs()?;
        let rows = try_join_all(legs.into_iter().map(|(shard, filter)| {
            let mut select = Self::base_select(filter.as_ref());
            select.expr(expr.clone());
            if let Some(second) = &second {
                select.expr(second.clone());
            }
            let statement = select.build_sqlx(DB::builder());
            async move {
                let mut rows = cluster.fetch(M::META.name, shard, statement).await?;
                Ok::<_, Error>(rows.pop().map(|row| (shard, row)))
            }
        }))
        .await?;
        Ok(rows.into_iter().flatten().collect())
    }

    fn decode<T, DB: Backend>(&self, row: &DB::Row, index: usize, shard: ShardId) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    {
        DB::get::<T>(row, index).map_err(|source| Error::Shard {
            model: M::META.name,
            shard,
            source,
        })
    }
}

fn sea_order(order: Order) -> sea_query::Order {
    match order {
        Order::Asc => sea_query::Order::Asc,
        Order::Desc => sea_query::Order::Desc,
    }
}
