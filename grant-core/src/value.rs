//! Dynamic values: the kinds Grant decodes rows into when it must look inside them (merging,
//! grouping, projections), and the conversion back to typed results.

use sea_query::{ColumnType, Value};

use crate::error::{Error, Result};

/// The decoded kind of a column or an aggregate's result: how a backend reads the column
/// ([`crate::Backend::get_value`]) and which [`Value`] variant holds it.
///
/// The kinds after `Bytes` exist with the cargo feature of the same name (`chrono`, `time`,
/// `uuid`, `rust_decimal`, `json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueKind {
    /// `bool`.
    Bool,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `String`.
    String,
    /// `Vec<u8>`.
    Bytes,
    /// `chrono::NaiveDate` (SQL `date`).
    #[cfg(feature = "chrono")]
    ChronoDate,
    /// `chrono::NaiveDateTime` (SQL `timestamp`, without time zone).
    #[cfg(feature = "chrono")]
    ChronoDateTime,
    /// `chrono::DateTime<Utc>` (SQL `timestamptz`: an instant).
    #[cfg(feature = "chrono")]
    ChronoDateTimeUtc,
    /// `time::Date` (SQL `date`).
    #[cfg(feature = "time")]
    TimeDate,
    /// `time::OffsetDateTime` (SQL `timestamptz`: an instant; read back in UTC).
    #[cfg(feature = "time")]
    TimeOffsetDateTime,
    /// `uuid::Uuid`.
    #[cfg(feature = "uuid")]
    Uuid,
    /// `rust_decimal::Decimal` (SQL `numeric`).
    #[cfg(feature = "rust_decimal")]
    Decimal,
    /// `serde_json::Value` or [`crate::Json`] (SQL `jsonb`).
    #[cfg(feature = "json")]
    Json,
}

impl ValueKind {
    /// The kind Grant decodes a column of `column_type` as, when nothing else is known (a
    /// `date` column is a `chrono` date when that feature is on). A model's columns carry their
    /// own kind ([`crate::ColumnMeta::kind`]), from the field's Rust type.
    pub fn of(column_type: &ColumnType) -> ValueKind {
        match column_type {
            ColumnType::Boolean => ValueKind::Bool,
            ColumnType::TinyInteger | ColumnType::SmallInteger => ValueKind::I16,
            ColumnType::Integer => ValueKind::I32,
            ColumnType::BigInteger => ValueKind::I64,
            ColumnType::Float => ValueKind::F32,
            ColumnType::Double => ValueKind::F64,
            ColumnType::Blob | ColumnType::Binary(_) | ColumnType::VarBinary(_) => ValueKind::Bytes,
            #[cfg(feature = "chrono")]
            ColumnType::Date => ValueKind::ChronoDate,
            #[cfg(all(feature = "time", not(feature = "chrono")))]
            ColumnType::Date => ValueKind::TimeDate,
            #[cfg(feature = "chrono")]
            ColumnType::DateTime | ColumnType::Timestamp => ValueKind::ChronoDateTime,
            #[cfg(feature = "chrono")]
            ColumnType::TimestampWithTimeZone => ValueKind::ChronoDateTimeUtc,
            #[cfg(all(feature = "time", not(feature = "chrono")))]
            ColumnType::TimestampWithTimeZone => ValueKind::TimeOffsetDateTime,
            #[cfg(feature = "uuid")]
            ColumnType::Uuid => ValueKind::Uuid,
            #[cfg(feature = "rust_decimal")]
            ColumnType::Decimal(_) => ValueKind::Decimal,
            #[cfg(feature = "json")]
            ColumnType::Json | ColumnType::JsonBinary => ValueKind::Json,
            _ => ValueKind::String,
        }
    }

    /// The NULL of this kind.
    pub fn null(self) -> Value {
        match self {
            ValueKind::Bool => Value::Bool(None),
            ValueKind::I16 => Value::SmallInt(None),
            ValueKind::I32 => Value::Int(None),
            ValueKind::I64 => Value::BigInt(None),
            ValueKind::F32 => Value::Float(None),
            ValueKind::F64 => Value::Double(None),
            ValueKind::String => Value::String(None),
            ValueKind::Bytes => Value::Bytes(None),
            #[cfg(feature = "chrono")]
            ValueKind::ChronoDate => Value::ChronoDate(None),
            #[cfg(feature = "chrono")]
            ValueKind::ChronoDateTime => Value::ChronoDateTime(None),
            #[cfg(feature = "chrono")]
            ValueKind::ChronoDateTimeUtc => Value::ChronoDateTimeUtc(None),
            #[cfg(feature = "time")]
            ValueKind::TimeDate => Value::TimeDate(None),
            #[cfg(feature = "time")]
            ValueKind::TimeOffsetDateTime => Value::TimeDateTimeWithTimeZone(None),
            #[cfg(feature = "uuid")]
            ValueKind::Uuid => Value::Uuid(None),
            #[cfg(feature = "rust_decimal")]
            ValueKind::Decimal => Value::Decimal(None),
            #[cfg(feature = "json")]
            ValueKind::Json => Value::Json(None),
        }
    }
}

/// A typed result decoded from a dynamic [`Value`].
pub trait FromValue: Sized {
    /// Converts the value.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming the value when it has another type (or is NULL for a
    /// non-`Option` target).
    fn from_value(value: Value) -> Result<Self>;
}

fn mismatch<T>(value: &Value) -> Error {
    Error::Unsupported {
        model: "-",
        reason: format!(
            "cannot read {value:?} as `{}`; select into a matching Rust type (Option<_> for \
             nullable columns and aggregates)",
            std::any::type_name::<T>()
        ),
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self> {
                let wide: Option<i64> = match &value {
                    Value::TinyInt(Some(v)) => Some(i64::from(*v)),
                    Value::SmallInt(Some(v)) => Some(i64::from(*v)),
                    Value::Int(Some(v)) => Some(i64::from(*v)),
                    Value::BigInt(Some(v)) => Some(*v),
                    _ => None,
                };
                wide.and_then(|v| <$t>::try_from(v).ok()).ok_or_else(|| mismatch::<$t>(&value))
            }
        }
    )*};
}
from_int!(i16, i32, i64);

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Double(Some(v)) => Ok(v),
            Value::Float(Some(v)) => Ok(f64::from(v)),
            other => Err(mismatch::<f64>(&other)),
        }
    }
}

impl FromValue for f32 {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Float(Some(v)) => Ok(v),
            Value::Double(Some(v)) => Ok(v as f32),
            other => Err(mismatch::<f32>(&other)),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Bool(Some(v)) => Ok(v),
            other => Err(mismatch::<bool>(&other)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::String(Some(v)) => Ok(v),
            other => Err(mismatch::<String>(&other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Bytes(Some(v)) => Ok(v),
            other => Err(mismatch::<Vec<u8>>(&other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self> {
        if is_null(&value) {
            Ok(None)
        } else {
            T::from_value(value).map(Some)
        }
    }
}

/// Whether a value is SQL NULL (of any type).
pub fn is_null(v: &Value) -> bool {
    match v {
        Value::Bool(x) => x.is_none(),
        Value::TinyInt(x) => x.is_none(),
        Value::SmallInt(x) => x.is_none(),
        Value::Int(x) => x.is_none(),
        Value::BigInt(x) => x.is_none(),
        Value::Float(x) => x.is_none(),
        Value::Double(x) => x.is_none(),
        Value::String(x) => x.is_none(),
        Value::Bytes(x) => x.is_none(),
        // Every other variant (some exist only with sea-query's features): its NULL is itself.
        other => *other == other.as_null(),
    }
}

/// Appends an encoding of `value` to `out` such that two values get equal encodings exactly
/// when SQL's `DISTINCT` / `GROUP BY` treat them as the same (NULLs are one group; integers of
/// every width compare by number).
pub fn encode_key(value: &Value, out: &mut Vec<u8>) {
    if is_null(value) {
        out.push(0);
        return;
    }
    match value {
        Value::Bool(Some(b)) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        Value::TinyInt(Some(v)) => int_key(i64::from(*v), out),
        Value::SmallInt(Some(v)) => int_key(i64::from(*v), out),
        Value::Int(Some(v)) => int_key(i64::from(*v), out),
        Value::BigInt(Some(v)) => int_key(*v, out),
        Value::Float(Some(v)) => float_key(f64::from(*v), out),
        Value::Double(Some(v)) => float_key(*v, out),
        Value::String(Some(s)) => {
            out.push(4);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(Some(b)) => {
            out.push(5);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        other if crate::types::encode_key(other, out) => {}
        other => {
            out.push(9);
            out.extend_from_slice(format!("{other:?}").as_bytes());
            out.push(0xff);
        }
    }
}

fn int_key(v: i64, out: &mut Vec<u8>) {
    out.push(2);
    out.extend_from_slice(&v.to_le_bytes());
}

fn float_key(v: f64, out: &mut Vec<u8>) {
    out.push(3);
    // -0.0 and 0.0 are the same value in SQL; so are all NaNs (PostgreSQL: one NaN group).
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    };
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

macro_rules! from_variant {
    ($($feature:literal: $t:ty => $variant:ident),* $(,)?) => {$(
        #[cfg(feature = $feature)]
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self> {
                match value {
                    Value::$variant(Some(v)) => Ok(v),
                    other => Err(mismatch::<$t>(&other)),
                }
            }
        }
    )*};
}
from_variant! {
    "chrono": chrono::NaiveDate => ChronoDate,
    "chrono": chrono::NaiveDateTime => ChronoDateTime,
    "chrono": chrono::DateTime<chrono::Utc> => ChronoDateTimeUtc,
    "time": time::Date => TimeDate,
    "time": time::OffsetDateTime => TimeDateTimeWithTimeZone,
    "uuid": uuid::Uuid => Uuid,
    "rust_decimal": rust_decimal::Decimal => Decimal,
}

#[cfg(feature = "json")]
impl FromValue for serde_json::Value {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Json(Some(v)) => Ok(*v),
            other => Err(mismatch::<serde_json::Value>(&other)),
        }
    }
}

#[cfg(feature = "json")]
impl<T: serde::de::DeserializeOwned> FromValue for crate::types::Json<T> {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Json(Some(v)) => {
                serde_json::from_value(*v)
                    .map(crate::types::Json)
                    .map_err(|e| Error::Unsupported {
                        model: "-",
                        reason: format!(
                            "the JSON read does not fit `{}`: {e}; make the type accept what the \
                         column holds (e.g. `#[serde(default)]` for fields older rows lack)",
                            std::any::type_name::<T>()
                        ),
                    })
            }
            other => Err(mismatch::<crate::types::Json<T>>(&other)),
        }
    }
}
