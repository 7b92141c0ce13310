//! Typed column constants and the SQL types of fields.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{ColumnType, Value};

use crate::cond::{CmpOp, Cond, Node};
use crate::value::{FromValue, ValueKind};

/// A typed column of model `M` holding values of type `T`, e.g. `User::BALANCE`.
///
/// The derive generates one constant per field. Conditions built from it can only be used in
/// queries of `M`, and only take values convertible to `T`.
///
/// # Examples
///
/// ```ignore
/// let rich = User::BALANCE.gte(1_000).and(User::ACTIVE.eq(true));
/// ```
///
/// The third parameter says whether an update by filter (`Query::set`) may assign the column:
/// [`Data`] (the default) for an ordinary column, [`Key`] for a primary-key or shard-key column,
/// which never changes in place.
pub struct Column<M, T, R = Data> {
    name: &'static str,
    index: usize,
    _marker: PhantomData<Marker<M, T, R>>,
}

/// `Column`'s phantom: covariant, `Send + Sync` whatever its parameters.
type Marker<M, T, R> = fn() -> (M, T, R);

/// The role of an ordinary column: it may be assigned by an update (see [`Column`]).
#[derive(Debug, Clone, Copy)]
pub enum Data {}

/// The role of a primary-key or shard-key column: it identifies or places the row, so an update
/// by filter cannot assign it (see [`Column`]).
#[derive(Debug, Clone, Copy)]
pub enum Key {}

/// Implemented by the roles of columns an update by filter may assign: [`Data`] only.
///
/// A primary-key or shard-key column in `set` is a compile error: changing the primary key would
/// change the row's identity, changing the shard key would leave the row on a shard that no
/// longer holds its key. Move such a row explicitly (delete it and insert it with the new key).
#[diagnostic::on_unimplemented(
    message = "a primary-key or shard-key column cannot be assigned by `set`",
    label = "this column is part of the primary key or the shard key",
    note = "a row's key never changes in place (it would change the row's identity or leave it on \
            the wrong shard): delete the row and insert it with the new key instead"
)]
pub trait Assignable {}
impl Assignable for Data {}

impl<M, T, R> Column<M, T, R> {
    /// A column named `name` at position `index` of the model's column list (used by the derive).
    pub const fn new(name: &'static str, index: usize) -> Self {
        Column {
            name,
            index,
            _marker: PhantomData,
        }
    }

    /// The column's SQL name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The column's position in the model's column list.
    pub const fn index(&self) -> usize {
        self.index
    }

    /// This column as an untyped reference.
    pub const fn as_ref(&self) -> ColumnRef {
        ColumnRef {
            name: self.name,
            index: self.index,
        }
    }
}

impl<M, T, R> Clone for Column<M, T, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, T, R> Copy for Column<M, T, R> {}

impl<M, T, R> fmt::Debug for Column<M, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Column({})", self.name)
    }
}

/// An untyped column: its SQL name and position in the model's column list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnRef {
    /// The column's SQL name.
    pub name: &'static str,
    /// Its position in the model's column list.
    pub index: usize,
}

impl<M, T, R> Column<M, T, R>
where
    T: Into<Value>,
{
    fn cmp(self, op: CmpOp, value: T) -> Cond<M> {
        Cond::from_node(Node::Cmp {
            col: self.as_ref(),
            op,
            value: value.into(),
        })
    }

    /// `column = value`.
    pub fn eq(self, value: impl Into<T>) -> Cond<M> {
        self.cmp(CmpOp::Eq, value.into())
    }

    /// `column <> value`.
    pub fn ne(self, value: impl Into<T>) -> Cond<M> {
        self.cmp(CmpOp::Ne, value.into())
    }

    /// `column < value`.
    pub fn lt(self, value: impl Into<T>) -> Cond<M> {
        self.cmp(CmpOp::Lt, value.into())
    }

    /// `column <= value`.
    pub fn lte(self, value: impl Into<T>) -> Cond<M> {
        self.cmp(CmpOp::Lte, value.into())
    }

    /// `column > value`.
    pub fn gt(self, value: impl Into<T>) -> Cond<M> {
        self.cmp(CmpOp::Gt, value.into())
    }

    /// `column >= value`.
    pub fn gte(self, value: impl Into<T>) -> Cond<M> {
        self.cmp(CmpOp::Gte, value.into())
    }

    /// `column BETWEEN low AND high` (both ends included).
    pub fn between(self, low: impl Into<T>, high: impl Into<T>) -> Cond<M> {
        Cond::from_node(Node::Between {
            col: self.as_ref(),
            low: low.into().into(),
            high: high.into().into(),
        })
    }

    /// `column IN (values...)`. An empty list matches nothing.
    pub fn is_in<V: Into<T>>(self, values: impl IntoIterator<Item = V>) -> Cond<M> {
        Cond::from_node(Node::In {
            col: self.as_ref(),
            values: values.into_iter().map(|v| v.into().into()).collect(),
        })
    }

    /// `column LIKE pattern`, **case-sensitive on every backend**: `%` matches any run of
    /// characters, `_` one character, a backslash makes the next character literal (`\\%`,
    /// `\\_`, `\\\\`); [`crate::like::escape`] escapes any text. SQLite's own `LIKE` ignores
    /// ASCII case; Grant writes `GLOB` there so both backends agree (see [`crate::like`]).
    ///
    /// # Examples
    ///
    /// ```ignore
    /// User::NAME.like("a%")            // starts with "a", not "A"
    /// User::NAME.like("100\\%")        // exactly "100%"
    /// ```
    pub fn like(self, pattern: impl Into<String>) -> Cond<M> {
        Cond::from_node(Node::Like {
            col: self.as_ref(),
            pattern: pattern.into(),
        })
    }

    /// `column ILIKE pattern`: [`like`](Column::like) with the ASCII letters `A`–`Z` matching
    /// either case, on every backend. Other letters match only themselves (`é` is not `É`):
    /// SQLite's `LIKE` folds ASCII only, and Grant makes PostgreSQL's `ILIKE` do the same
    /// (`COLLATE "C"`), so the backends give the same answer (see [`crate::like`]).
    pub fn ilike(self, pattern: impl Into<String>) -> Cond<M> {
        Cond::from_node(Node::ILike {
            col: self.as_ref(),
            pattern: pattern.into(),
        })
    }

    /// The text contains `text` literally (case-sensitive; `%`, `_` and `\\` in it are not
    /// wildcards): `like("%<escaped text>%")`.
    pub fn contains(self, text: &str) -> Cond<M> {
        self.like(format!("%{}%", crate::like::escape(text)))
    }

    /// The text starts with `text` literally (case-sensitive): `like("<escaped text>%")`.
    pub fn starts_with(self, text: &str) -> Cond<M> {
        self.like(format!("{}%", crate::like::escape(text)))
    }

    /// The text ends with `text` literally (case-sensitive): `like("%<escaped text>")`.
    pub fn ends_with(self, text: &str) -> Cond<M> {
        self.like(format!("%{}", crate::like::escape(text)))
    }

    /// `column IS NULL`.
    pub fn is_null(self) -> Cond<M> {
        Cond::from_node(Node::Null {
            col: self.as_ref(),
            is_null: true,
        })
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Cond<M> {
        Cond::from_node(Node::Null {
            col: self.as_ref(),
            is_null: false,
        })
    }
}

/// A Rust type stored in one column: its SQL type for `create_table`, the kind a backend reads
/// it as, and (through the supertraits) how it is bound (`Into<Value>`) and read back
/// ([`FromValue`]).
///
/// Implemented for `bool`, `i16`, `i32`, `i64`, `f32`, `f64`, `String`, `Vec<u8>`, with cargo
/// features for `chrono::{DateTime<Utc>, NaiveDate, NaiveDateTime}`, `time::{OffsetDateTime,
/// Date}`, `uuid::Uuid`, `rust_decimal::Decimal`, `serde_json::Value` and [`crate::Json<T>`]
/// (see [`crate::types`]), for `#[derive(SqlEnum)]` enums, and for `Option<T>` of each
/// (nullable).
///
/// # A type of your own
///
/// A newtype is stored as the type it wraps: implement `SqlType` and [`FromValue`] by
/// delegating to it, `From<YourType> for Value` for binding, `sea_query::Nullable` if the
/// column may be `Option<YourType>`, and [`Orderable`] if it may be sorted and grouped.
///
/// ```
/// use grant_core::{FromValue, Orderable, Result, SqlType, ValueKind};
/// use sea_query::{ColumnType, Nullable, Value};
///
/// /// An email address, stored as text.
/// #[derive(Clone, Debug, PartialEq)]
/// pub struct Email(String);
///
/// impl SqlType for Email {
///     const KIND: ValueKind = <String as SqlType>::KIND;
///     fn column_type() -> ColumnType {
///         <String as SqlType>::column_type()
///     }
/// }
/// impl FromValue for Email {
///     fn from_value(value: Value) -> Result<Self> {
///         String::from_value(value).map(Email)
///     }
/// }
/// impl From<Email> for Value {
///     fn from(email: Email) -> Value {
///         Value::from(email.0)
///     }
/// }
/// impl Nullable for Email {
///     fn null() -> Value {
///         Value::String(None)
///     }
/// }
/// impl Orderable for Email {}
///
/// assert_eq!(Email::from_value(Email("a@b.c".into()).into()).unwrap().0, "a@b.c");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no SQL column type known to Grant",
    label = "field type not supported as a column",
    note = "use bool, i16, i32, i64, f32, f64, String, Vec<u8>, the types of Grant's `chrono`, \
            `time`, `uuid`, `rust_decimal` and `json` features, a `#[derive(SqlEnum)]` enum, \
            Option<_> of those, or implement `grant::SqlType` for your type"
)]
pub trait SqlType: FromValue + Into<Value> + Clone {
    /// Whether the column accepts NULL.
    const NULLABLE: bool = false;
    /// How a backend reads the column ([`crate::Backend::get_value`]).
    const KIND: ValueKind;
    /// The column type.
    fn column_type() -> ColumnType;
}

macro_rules! sql_type {
    ($($t:ty => $kind:ident, $ct:expr),* $(,)?) => {$(
        impl SqlType for $t {
            const KIND: ValueKind = ValueKind::$kind;
            fn column_type() -> ColumnType {
                $ct
            }
        }
        impl Orderable for $t {}
    )*};
}
sql_type! {
    bool => Bool, ColumnType::Boolean,
    i16 => I16, ColumnType::SmallInteger,
    i32 => I32, ColumnType::Integer,
    i64 => I64, ColumnType::BigInteger,
    f32 => F32, ColumnType::Float,
    f64 => F64, ColumnType::Double,
    String => String, ColumnType::Text,
    Vec<u8> => Bytes, ColumnType::Blob,
}
#[cfg(feature = "chrono")]
sql_type! {
    chrono::NaiveDate => ChronoDate, ColumnType::Date,
    chrono::NaiveDateTime => ChronoDateTime, ColumnType::DateTime,
    chrono::DateTime<chrono::Utc> => ChronoDateTimeUtc, ColumnType::TimestampWithTimeZone,
}
#[cfg(feature = "time")]
sql_type! {
    time::Date => TimeDate, ColumnType::Date,
    time::OffsetDateTime => TimeOffsetDateTime, ColumnType::TimestampWithTimeZone,
}
#[cfg(feature = "uuid")]
sql_type! { uuid::Uuid => Uuid, ColumnType::Uuid }
#[cfg(feature = "rust_decimal")]
sql_type! { rust_decimal::Decimal => Decimal, ColumnType::Decimal(None) }

#[cfg(feature = "json")]
impl SqlType for serde_json::Value {
    const KIND: ValueKind = ValueKind::Json;
    fn column_type() -> ColumnType {
        ColumnType::JsonBinary
    }
}

#[cfg(feature = "json")]
impl<T> SqlType for crate::types::Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    const KIND: ValueKind = ValueKind::Json;
    fn column_type() -> ColumnType {
        ColumnType::JsonBinary
    }
}

impl<T> SqlType for Option<T>
where
    T: SqlType + sea_query::Nullable,
{
    const NULLABLE: bool = true;
    const KIND: ValueKind = T::KIND;
    fn column_type() -> ColumnType {
        T::column_type()
    }
}

/// Column types whose values have an order every backend and the merger agree on: they can be
/// sorted (`order_by`), grouped (`group_by`) and have a `MIN` / `MAX`. Every column type but
/// JSON.
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` cannot be ordered or grouped",
    label = "not orderable",
    note = "JSON values have no order Grant can merge across shards; order or group by another \
            column (a `#[derive(SqlEnum)]` enum or a newtype implementing `grant::Orderable` can \
            be ordered)"
)]
pub trait Orderable {}

impl<T: Orderable> Orderable for Option<T> {}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Column types that can be summed, and the type of their sum.
///
/// Integer sums are `i64` (as in SQL, computed exactly; an overflow is the database's error),
/// float sums `f64`, decimal sums `Decimal` (exact).
#[diagnostic::on_unimplemented(
    message = "a column of `{Self}` cannot be summed",
    note = "sum() and avg() take integer, float or decimal columns"
)]
pub trait Summable {
    /// The sum's type.
    type Sum: SumValue;
    /// The average's type: `f64`, or `Decimal` for decimals (exact to PostgreSQL's
    /// `avg(numeric)` scale, see [`crate::types::avg_exact`]).
    type Avg;
    /// The SQL type the per-shard sum is cast to, so every backend returns the same type.
    const SUM_SQL_TYPE: &'static str;
}

macro_rules! summable {
    ($($t:ty => $sum:ty, $sql:literal);* $(;)?) => {$(
        impl Summable for $t {
            type Sum = $sum;
            type Avg = f64;
            const SUM_SQL_TYPE: &'static str = $sql;
        }
    )*};
}
summable! {
    i16 => i64, "bigint";
    i32 => i64, "bigint";
    i64 => i64, "bigint";
    f32 => f64, "float8";
    f64 => f64, "float8";
}

#[cfg(feature = "rust_decimal")]
impl Summable for rust_decimal::Decimal {
    type Sum = rust_decimal::Decimal;
    type Avg = rust_decimal::Decimal;
    const SUM_SQL_TYPE: &'static str = "numeric";
}

impl<T: Summable> Summable for Option<T> {
    type Sum = T::Sum;
    type Avg = T::Avg;
    const SUM_SQL_TYPE: &'static str = T::SUM_SQL_TYPE;
}

/// The non-null value type of a column: `T` for `T` and for `Option<T>` (what `min` / `max`
/// return inside their `Option`).
pub trait Scalar {
    /// The value type without nullability.
    type Inner;
}

macro_rules! scalar {
    ($($t:ty),*) => {$( impl Scalar for $t { type Inner = $t; } )*};
}
scalar!(bool, i16, i32, i64, f32, f64, String, Vec<u8>);
#[cfg(feature = "chrono")]
scalar!(
    chrono::NaiveDate,
    chrono::NaiveDateTime,
    chrono::DateTime<chrono::Utc>
);
#[cfg(feature = "time")]
scalar!(time::Date, time::OffsetDateTime);
// Not `uuid::Uuid`: PostgreSQL 15 has no `min(uuid)` / `max(uuid)` (uuids sort, but have no
// MIN / MAX there).
#[cfg(feature = "rust_decimal")]
scalar!(rust_decimal::Decimal);

impl<T: Scalar> Scalar for Option<T> {
    type Inner = T::Inner;
}

/// A sum's value type: `i64` (overflow is an error, as in SQL), `f64` or `Decimal`.
pub trait SumValue: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// `self + other`, or `None` on overflow.
    fn checked_sum(self, other: Self) -> Option<Self>;
}

impl SumValue for i64 {
    fn checked_sum(self, other: Self) -> Option<Self> {
        self.checked_add(other)
    }
}

impl SumValue for f64 {
    fn checked_sum(self, other: Self) -> Option<Self> {
        Some(self + other)
    }
}

/// Where NULLs go in an ordering (default: the backend's — first in ascending order on SQLite,
/// last on PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nulls {
    /// Before every value.
    First,
    /// After every value.
    Last,
}

#[cfg(feature = "rust_decimal")]
impl SumValue for rust_decimal::Decimal {
    fn checked_sum(self, other: Self) -> Option<Self> {
        self.checked_add(other)
    }
}
