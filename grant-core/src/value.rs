//! Dynamic values: the kinds Grant decodes rows into when it must look inside them (merging,
//! grouping, projections), and the conversion back to typed results.

use sea_query::{ColumnType, Value};

use crate::error::{Error, Result};

/// The decoded kind of a column or an aggregate's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl ValueKind {
    /// The kind Grant decodes a column of `column_type` as.
    pub fn of(column_type: &ColumnType) -> ValueKind {
        match column_type {
            ColumnType::Boolean => ValueKind::Bool,
            ColumnType::TinyInteger | ColumnType::SmallInteger => ValueKind::I16,
            ColumnType::Integer => ValueKind::I32,
            ColumnType::BigInteger => ValueKind::I64,
            ColumnType::Float => ValueKind::F32,
            ColumnType::Double => ValueKind::F64,
            ColumnType::Blob | ColumnType::Binary(_) | ColumnType::VarBinary(_) => ValueKind::Bytes,
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

/// Whether a value is SQL NULL.
pub fn is_null(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(None)
            | Value::TinyInt(None)
            | Value::SmallInt(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::TinyUnsigned(None)
            | Value::SmallUnsigned(None)
            | Value::Unsigned(None)
            | Value::BigUnsigned(None)
            | Value::Float(None)
            | Value::Double(None)
            | Value::String(None)
            | Value::Char(None)
            | Value::Bytes(None)
    )
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
