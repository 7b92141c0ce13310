//! Typed select lists: columns and aggregates, and how their results come back.

use std::fmt;
use std::marker::PhantomData;

use sea_query::Value;

use crate::column::{Column, ColumnRef, Scalar, Summable};
use crate::cond::CmpOp;
use crate::error::Result;
use crate::value::FromValue;

/// One expression of a select list, untyped.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Item {
    /// A plain column (a group key when grouping).
    Column(ColumnRef),
    /// `COUNT(*)`.
    Count,
    /// `COUNT(column)`: the non-NULL values.
    CountColumn(ColumnRef),
    /// `COUNT(DISTINCT column)`.
    CountDistinct(ColumnRef),
    /// `SUM(column)`; `float` when the sum is an `f64`.
    Sum {
        /// The column.
        col: ColumnRef,
        /// Whether the sum is a float (else an `i64`).
        float: bool,
    },
    /// `MIN(column)`.
    Min(ColumnRef),
    /// `MAX(column)`.
    Max(ColumnRef),
    /// `AVG(column)` (as `f64`).
    Avg(ColumnRef),
}

impl Item {
    /// Whether this is an aggregate.
    pub fn is_aggregate(&self) -> bool {
        !matches!(self, Item::Column(_))
    }
}

/// A typed aggregate of model `M` whose result is a `T`, e.g. `User::BALANCE.sum()`.
///
/// Use it in [`select`](crate::Selectable) lists and in `having` conditions.
pub struct Agg<M, T> {
    item: Item,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Agg<M, T> {
    fn clone(&self) -> Self {
        Agg::new(self.item.clone())
    }
}

impl<M, T> fmt::Debug for Agg<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.item.fmt(f)
    }
}

impl<M, T> Agg<M, T> {
    fn new(item: Item) -> Self {
        Agg {
            item,
            _marker: PhantomData,
        }
    }

    /// The untyped item.
    pub fn item(&self) -> &Item {
        &self.item
    }
}

/// `COUNT(*)`: the number of rows (per group when grouping).
pub fn count<M>() -> Agg<M, i64> {
    Agg::new(Item::Count)
}

impl<M, T, R> Column<M, T, R> {
    /// `COUNT(column)`: the number of non-NULL values.
    pub fn count(self) -> Agg<M, i64> {
        Agg::new(Item::CountColumn(self.as_ref()))
    }

    /// `COUNT(DISTINCT column)`: the number of distinct non-NULL values.
    pub fn count_distinct(self) -> Agg<M, i64> {
        Agg::new(Item::CountDistinct(self.as_ref()))
    }

    /// `MIN(column)`; `None` when no non-NULL value.
    pub fn min(self) -> Agg<M, Option<T::Inner>>
    where
        T: Scalar,
    {
        Agg::new(Item::Min(self.as_ref()))
    }

    /// `MAX(column)`; `None` when no non-NULL value.
    pub fn max(self) -> Agg<M, Option<T::Inner>>
    where
        T: Scalar,
    {
        Agg::new(Item::Max(self.as_ref()))
    }
}

impl<M, T: Summable, R> Column<M, T, R> {
    /// `SUM(column)`; `None` when no non-NULL value (as in SQL).
    pub fn sum(self) -> Agg<M, Option<T::Sum>> {
        let float = T::SUM_SQL_TYPE == "float8";
        Agg::new(Item::Sum {
            col: self.as_ref(),
            float,
        })
    }

    /// `AVG(column)`: an `f64`, or for a decimal column a `Decimal` (with PostgreSQL's
    /// `avg(numeric)` scale); `None` when no non-NULL value.
    pub fn avg(self) -> Agg<M, Option<T::Avg>> {
        Agg::new(Item::Avg(self.as_ref()))
    }
}

/// A condition on grouped results, applied after the merge (SQL's `HAVING`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Having {
    /// `item op value`.
    Cmp {
        /// The aggregate (or group column).
        item: Item,
        /// The operator.
        op: CmpOp,
        /// The value compared with.
        value: Value,
    },
    /// All of these.
    And(Vec<Having>),
    /// Any of these.
    Or(Vec<Having>),
    /// Not this.
    Not(Box<Having>),
}

impl Having {
    /// Both conditions.
    pub fn and(self, other: Having) -> Having {
        Having::And(vec![self, other])
    }
    /// Either condition.
    pub fn or(self, other: Having) -> Having {
        Having::Or(vec![self, other])
    }
    /// The negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Having {
        Having::Not(Box::new(self))
    }
}

impl<M, T> Agg<M, T>
where
    T: Scalar,
    T::Inner: Into<Value>,
{
    fn having(&self, op: CmpOp, value: impl Into<T::Inner>) -> Having {
        Having::Cmp {
            item: self.item.clone(),
            op,
            value: value.into().into(),
        }
    }
    /// `aggregate = value` (after the merge).
    pub fn eq(&self, value: impl Into<T::Inner>) -> Having {
        self.having(CmpOp::Eq, value)
    }
    /// `aggregate <> value` (after the merge).
    pub fn ne(&self, value: impl Into<T::Inner>) -> Having {
        self.having(CmpOp::Ne, value)
    }
    /// `aggregate < value` (after the merge).
    pub fn lt(&self, value: impl Into<T::Inner>) -> Having {
        self.having(CmpOp::Lt, value)
    }
    /// `aggregate <= value` (after the merge).
    pub fn lte(&self, value: impl Into<T::Inner>) -> Having {
        self.having(CmpOp::Lte, value)
    }
    /// `aggregate > value` (after the merge).
    pub fn gt(&self, value: impl Into<T::Inner>) -> Having {
        self.having(CmpOp::Gt, value)
    }
    /// `aggregate >= value` (after the merge).
    pub fn gte(&self, value: impl Into<T::Inner>) -> Having {
        self.having(CmpOp::Gte, value)
    }
}

/// Something that can be selected from model `M`: a column, an aggregate, or a tuple of them.
pub trait Selectable<M> {
    /// The Rust type of one result row.
    type Output;
    /// Appends the untyped items, in order.
    fn push_items(&self, items: &mut Vec<Item>);
    /// Builds one result from the values of the items, in order.
    ///
    /// # Errors
    ///
    /// When a value does not convert to the output type.
    fn decode(values: &mut dyn Iterator<Item = Value>) -> Result<Self::Output>;
}

fn next_value(values: &mut dyn Iterator<Item = Value>) -> Value {
    values.next().unwrap_or(Value::Bool(None))
}

impl<M, T: FromValue, R> Selectable<M> for Column<M, T, R> {
    type Output = T;
    fn push_items(&self, items: &mut Vec<Item>) {
        items.push(Item::Column(self.as_ref()));
    }
    fn decode(values: &mut dyn Iterator<Item = Value>) -> Result<T> {
        T::from_value(next_value(values))
    }
}

impl<M, T: FromValue> Selectable<M> for Agg<M, T> {
    type Output = T;
    fn push_items(&self, items: &mut Vec<Item>) {
        items.push(self.item.clone());
    }
    fn decode(values: &mut dyn Iterator<Item = Value>) -> Result<T> {
        T::from_value(next_value(values))
    }
}

macro_rules! selectable_tuple {
    ($($name:ident $idx:tt),+) => {
        impl<M, $($name: Selectable<M>),+> Selectable<M> for ($($name,)+) {
            type Output = ($($name::Output,)+);
            fn push_items(&self, items: &mut Vec<Item>) {
                $(self.$idx.push_items(items);)+
            }
            fn decode(values: &mut dyn Iterator<Item = Value>) -> Result<Self::Output> {
                Ok(($($name::decode(values)?,)+))
            }
        }
    };
}
selectable_tuple!(A 0);
selectable_tuple!(A 0, B 1);
selectable_tuple!(A 0, B 1, C 2);
selectable_tuple!(A 0, B 1, C 2, D 3);
selectable_tuple!(A 0, B 1, C 2, D 3, E 4);
selectable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
selectable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
selectable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Something a grouped or projected query can be ordered by: a column or an aggregate.
pub trait OrderItem<M> {
    /// The untyped item.
    fn order_item(&self) -> Item;
}

impl<M, T: crate::Orderable, R> OrderItem<M> for Column<M, T, R> {
    fn order_item(&self) -> Item {
        Item::Column(self.as_ref())
    }
}

impl<M, T> OrderItem<M> for Agg<M, T> {
    fn order_item(&self) -> Item {
        self.item.clone()
    }
}
