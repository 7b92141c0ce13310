//! Column types behind cargo features (named as sqlx names them): `chrono`, `time`, `uuid`,
//! `rust_decimal`, `json`; and the pieces of Grant that must know them — how their values
//! compare across shards, group, sum, and how SQLite stores them.
//!
//! | Rust type | PostgreSQL | SQLite (stored as) |
//! |---|---|---|
//! | `chrono::DateTime<Utc>`, `time::OffsetDateTime` | `timestamptz` | text, UTC: `2025-03-01T12:34:56.5+00:00` |
//! | `chrono::NaiveDateTime` | `timestamp` | text: `2025-03-01 12:34:56.5` |
//! | `chrono::NaiveDate`, `time::Date` | `date` | text: `2025-03-01` |
//! | `uuid::Uuid` | `uuid` | a 16-byte blob |
//! | `rust_decimal::Decimal` | `numeric` | text without trailing zeros, compared as numbers |
//! | `serde_json::Value`, [`Json<T>`] | `jsonb` | text |
//!
//! On SQLite the text forms sort as the values do (instants as instants, for years 0–9999),
//! so per-shard `ORDER BY`, `MIN`/`MAX` and range filters agree with the merger; decimals
//! compare as numbers through the collation [`DECIMAL_COLLATION`] and sum exactly through the
//! aggregate `grant_decimal_sum`, both registered on every connection Grant opens. A decimal
//! read back from SQLite has no trailing zeros (`1.10` is stored and read as `1.1`, which it
//! equals).
//!
//! JSON columns can be filtered on (`is_null`, `eq`) but not ordered, grouped or aggregated:
//! they do not implement [`crate::Orderable`], so `order_by` on one is a compile error.

#[cfg(feature = "rust_decimal")]
use std::cmp::Ordering;

use sea_query::Value;

use crate::value::ValueKind;

/// The SQLite collation Grant declares decimal columns with and sorts them by: numeric order of
/// their text (registered on every connection Grant opens).
pub const DECIMAL_COLLATION: &str = "grant_decimal";

/// The SQLite aggregate that sums decimal text exactly (registered on every connection Grant
/// opens); `NULL` when no non-NULL value, an error when the sum overflows a `Decimal`.
pub const DECIMAL_SUM: &str = "grant_decimal_sum";

/// Whether `kind` is an exact decimal (its sums and averages are decimals, not floats).
pub fn is_decimal(kind: ValueKind) -> bool {
    #[cfg(feature = "rust_decimal")]
    if kind == ValueKind::Decimal {
        return true;
    }
    let _ = kind;
    false
}

/// A column holding any serde type as JSON (`jsonb` on PostgreSQL, text on SQLite).
///
/// ```ignore
/// #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Settings { theme: String, notify: bool }
///
/// #[derive(Sharded, Clone, Debug)]
/// #[shard(strategy = "hash", on = "tenant_id", count = 4)]
/// struct Tenant {
///     #[primary_key]
///     tenant_id: i64,
///     settings: grant::Json<Settings>,
/// }
/// ```
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Json<T>(pub T);

#[cfg(feature = "json")]
impl<T: serde::Serialize> From<Json<T>> for Value {
    /// # Panics
    ///
    /// When serde cannot represent the value as JSON (a map with non-string keys): a row is
    /// never written with something else in its place.
    fn from(json: Json<T>) -> Value {
        match serde_json::to_value(&json.0) {
            Ok(v) => Value::Json(Some(Box::new(v))),
            Err(e) => panic!(
                "grant::Json<{}>: the value has no JSON form ({e}); a JSON column needs a \
                 value serde_json can write (maps with string keys)",
                std::any::type_name::<T>()
            ),
        }
    }
}

#[cfg(feature = "json")]
impl<T> sea_query::Nullable for Json<T> {
    fn null() -> Value {
        Value::Json(None)
    }
}

/// Compares two non-NULL values of the feature types as the backends order them, or `None`
/// when they are not both of one such type.
#[allow(unreachable_code)]
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    #[allow(unreachable_patterns)]
    Some(match (a, b) {
        #[cfg(feature = "chrono")]
        (Value::ChronoDate(Some(x)), Value::ChronoDate(Some(y))) => x.cmp(y),
        #[cfg(feature = "chrono")]
        (Value::ChronoDateTime(Some(x)), Value::ChronoDateTime(Some(y))) => x.cmp(y),
        #[cfg(feature = "chrono")]
        (Value::ChronoDateTimeUtc(Some(x)), Value::ChronoDateTimeUtc(Some(y))) => x.cmp(y),
        #[cfg(feature = "time")]
        (Value::TimeDate(Some(x)), Value::TimeDate(Some(y))) => x.cmp(y),
        // `OffsetDateTime`'s order is the instant's, whatever the offsets.
        #[cfg(feature = "time")]
        (Value::TimeDateTimeWithTimeZone(Some(x)), Value::TimeDateTimeWithTimeZone(Some(y))) => {
            x.cmp(y)
        }
        // PostgreSQL orders uuids by their bytes (memcmp), as SQLite orders blobs.
        #[cfg(feature = "uuid")]
        (Value::Uuid(Some(x)), Value::Uuid(Some(y))) => x.as_bytes().cmp(y.as_bytes()),
        // Exactly, by number: 1.10 equals 1.1.
        #[cfg(feature = "rust_decimal")]
        (Value::Decimal(Some(x)), Value::Decimal(Some(y))) => x.cmp(y),
        _ => return None,
    })
}

/// Appends the canonical group-key encoding of a non-NULL value of a feature type (see
/// [`crate::value::encode_key`]); `false` when `value` is of no such type.
#[allow(unused_variables, unreachable_code, clippy::ptr_arg)]
pub fn encode_key(value: &Value, out: &mut Vec<u8>) -> bool {
    #[allow(unreachable_patterns)]
    match value {
        #[cfg(feature = "chrono")]
        Value::ChronoDate(Some(d)) => {
            out.push(10);
            out.extend_from_slice(d.to_string().as_bytes());
        }
        #[cfg(feature = "chrono")]
        Value::ChronoDateTime(Some(d)) => {
            out.push(11);
            out.extend_from_slice(&d.and_utc().timestamp().to_le_bytes());
            out.extend_from_slice(&d.and_utc().timestamp_subsec_nanos().to_le_bytes());
        }
        #[cfg(feature = "chrono")]
        Value::ChronoDateTimeUtc(Some(d)) => {
            out.push(12);
            out.extend_from_slice(&d.timestamp().to_le_bytes());
            out.extend_from_slice(&d.timestamp_subsec_nanos().to_le_bytes());
        }
        #[cfg(feature = "time")]
        Value::TimeDate(Some(d)) => {
            out.push(13);
            out.extend_from_slice(&d.to_julian_day().to_le_bytes());
        }
        // One group per instant, whatever the offset.
        #[cfg(feature = "time")]
        Value::TimeDateTimeWithTimeZone(Some(d)) => {
            out.push(14);
            out.extend_from_slice(&d.unix_timestamp_nanos().to_le_bytes());
        }
        #[cfg(feature = "uuid")]
        Value::Uuid(Some(u)) => {
            out.push(15);
            out.extend_from_slice(u.as_bytes());
        }
        // One group per number: 1.10 and 1.1 are one value.
        #[cfg(feature = "rust_decimal")]
        Value::Decimal(Some(d)) => {
            out.push(16);
            out.extend_from_slice(d.normalize().to_string().as_bytes());
            out.push(0xff);
        }
        #[cfg(feature = "json")]
        Value::Json(Some(j)) => {
            out.push(17);
            out.extend_from_slice(j.to_string().as_bytes());
            out.push(0xff);
        }
        _ => return false,
    }
    true
}

/// `a + b` for exact sums (decimals): `None` when either is not a decimal, `Some(Err(()))` on
/// overflow.
#[allow(clippy::result_unit_err)]
pub fn add_exact(a: &Value, b: &Value) -> Option<Result<Value, ()>> {
    #[cfg(feature = "rust_decimal")]
    if let (Value::Decimal(Some(x)), Value::Decimal(Some(y))) = (a, b) {
        return Some(x.checked_add(*y).map(|s| Value::Decimal(Some(s))).ok_or(()));
    }
    let _ = (a, b);
    None
}

/// The average of `count` values summing to the decimal `sum`, with the scale PostgreSQL gives
/// `avg(numeric)` (`numeric.c`'s `select_div_scale`: at least 16 significant digits, at least
/// the sum's scale; rounded half away from zero), capped at `Decimal`'s 28 digits. `None` when
/// `sum` is not a decimal or `count` is 0.
pub fn avg_exact(sum: &Value, count: i64) -> Option<Value> {
    #[cfg(feature = "rust_decimal")]
    if let Value::Decimal(Some(s)) = sum {
        if count <= 0 {
            return None;
        }
        let n = rust_decimal::Decimal::from(count);
        let scale = pg_div_scale(s, count);
        let mut q = s
            .checked_div(n)?
            .round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        // Trailing zeros up to the scale, as PostgreSQL prints them.
        q.rescale(scale);
        return Some(Value::Decimal(Some(q)));
    }
    let _ = (sum, count);
    None
}

/// PostgreSQL's `select_div_scale` for `sum / count` (numbers in base-10000 digits: `weight` is
/// the position of the first non-zero digit, 0 for the units digit group).
#[cfg(feature = "rust_decimal")]
fn pg_div_scale(sum: &rust_decimal::Decimal, count: i64) -> u32 {
    use rust_decimal::Decimal;
    // (weight, first base-10000 digit) of |x|; (0, 0) for zero.
    fn weight_and_first(x: Decimal) -> (i64, Decimal) {
        let x = x.abs();
        if x.is_zero() {
            return (0, Decimal::ZERO);
        }
        let base = Decimal::from(10_000);
        let (mut weight, mut v) = (0_i64, x);
        while v >= base {
            v /= base;
            weight += 1;
        }
        while v < Decimal::ONE {
            v *= base;
            weight -= 1;
        }
        (weight, v.trunc())
    }
    let (w1, d1) = weight_and_first(*sum);
    let (w2, d2) = weight_and_first(Decimal::from(count));
    let mut qweight = w1 - w2;
    if d1 <= d2 {
        qweight -= 1;
    }
    let rscale = (16 - qweight * 4).max(i64::from(sum.scale())).clamp(0, 28);
    rscale as u32
}

/// The text SQLite stores a decimal as: no trailing zeros, no negative zero.
#[cfg(feature = "rust_decimal")]
pub fn decimal_text(d: &rust_decimal::Decimal) -> String {
    let d = d.normalize();
    if d.is_zero() {
        "0".to_owned()
    } else {
        d.to_string()
    }
}

/// Numeric order of two decimal texts (SQLite's [`DECIMAL_COLLATION`]); text that is not a
/// decimal sorts after every decimal, by bytes.
#[cfg(feature = "rust_decimal")]
pub fn compare_decimal_text(a: &str, b: &str) -> Ordering {
    use std::str::FromStr;
    let parse = |s: &str| {
        rust_decimal::Decimal::from_str(s)
            .or_else(|_| rust_decimal::Decimal::from_scientific(s))
            .ok()
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]+00:00`: the text SQLite stores an instant as
/// (what sqlx writes for a `chrono::DateTime<Utc>`): fixed-width up to the seconds, then as
/// many fraction digits as needed in groups of three, so text order is time order.
#[cfg(feature = "time")]
pub fn instant_text(t: &time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    let fraction = if nanos == 0 {
        String::new()
    } else if nanos.is_multiple_of(1_000_000) {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Rewrites values whose SQLite form is not what sqlx would bind: instants in UTC (see
/// [`instant_text`]), decimals without trailing zeros ([`decimal_text`]).
pub fn sqlite_value(value: &mut Value) {
    #[allow(clippy::single_match, unreachable_patterns)]
    match value {
        #[cfg(feature = "time")]
        Value::TimeDateTimeWithTimeZone(Some(t)) => *value = Value::String(Some(instant_text(t))),
        #[cfg(feature = "time")]
        Value::TimeDateTimeWithTimeZone(None) => *value = Value::String(None),
        #[cfg(feature = "rust_decimal")]
        Value::Decimal(Some(d)) => *value = Value::String(Some(decimal_text(d))),
        _ => {}
    }
}

/// The text of a non-NULL feature-type key value in a resharding cursor (its `Display` /
/// RFC 3339 form), or `None` for other values.
#[allow(unreachable_code)]
pub fn key_text(value: &Value) -> Option<String> {
    #[allow(unreachable_patterns)]
    Some(match value {
        #[cfg(feature = "uuid")]
        Value::Uuid(Some(u)) => u.to_string(),
        #[cfg(feature = "chrono")]
        Value::ChronoDate(Some(d)) => d.to_string(),
        #[cfg(feature = "chrono")]
        Value::ChronoDateTime(Some(t)) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        #[cfg(feature = "chrono")]
        Value::ChronoDateTimeUtc(Some(t)) => t.to_rfc3339(),
        #[cfg(feature = "time")]
        Value::TimeDate(Some(d)) => {
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        #[cfg(feature = "time")]
        Value::TimeDateTimeWithTimeZone(Some(t)) => instant_text(t),
        #[cfg(feature = "rust_decimal")]
        Value::Decimal(Some(d)) => d.to_string(),
        _ => return None,
    })
}

/// The inverse of [`key_text`] for a column of `kind`.
#[allow(unused_variables, unreachable_code)]
pub fn key_from_text(kind: ValueKind, text: &str) -> Option<Value> {
    #[allow(unreachable_patterns)]
    Some(match kind {
        #[cfg(feature = "uuid")]
        ValueKind::Uuid => Value::Uuid(Some(text.parse().ok()?)),
        #[cfg(feature = "chrono")]
        ValueKind::ChronoDate => Value::ChronoDate(Some(text.parse().ok()?)),
        #[cfg(feature = "chrono")]
        ValueKind::ChronoDateTime => Value::ChronoDateTime(Some(text.parse().ok()?)),
        #[cfg(feature = "chrono")]
        ValueKind::ChronoDateTimeUtc => Value::ChronoDateTimeUtc(Some(text.parse().ok()?)),
        #[cfg(feature = "time")]
        ValueKind::TimeDate => Value::TimeDate(Some(
            time::Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()?,
        )),
        #[cfg(feature = "time")]
        ValueKind::TimeOffsetDateTime => Value::TimeDateTimeWithTimeZone(Some(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()?,
        )),
        #[cfg(feature = "rust_decimal")]
        ValueKind::Decimal => Value::Decimal(Some(text.parse().ok()?)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "rust_decimal")]
    #[test]
    fn decimal_text_is_canonical_and_sorts_by_number() {
        use rust_decimal::Decimal;
        use std::str::FromStr;
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(decimal_text(&d("1.10")), "1.1");
        assert_eq!(decimal_text(&d("-0.000")), "0");
        assert_eq!(decimal_text(&d("100")), "100");
        assert_eq!(compare_decimal_text("9", "10.5"), Ordering::Less);
        assert_eq!(compare_decimal_text("-2", "-10"), Ordering::Greater);
        assert_eq!(compare_decimal_text("1.1", "1.10"), Ordering::Equal);
    }

    #[cfg(feature = "rust_decimal")]
    #[test]
    fn average_scale_follows_postgresql() {
        use rust_decimal::Decimal;
        use std::str::FromStr;
        let avg =
            |s: &str, n| match avg_exact(&Value::Decimal(Some(Decimal::from_str(s).unwrap())), n) {
                Some(Value::Decimal(Some(d))) => d.to_string(),
                other => panic!("{other:?}"),
            };
        // Values PostgreSQL 15 answers: SELECT avg(x) FROM (VALUES ..) t(x).
        assert_eq!(avg("10", 3), "3.3333333333333333"); // avg of 1, 2, 7
        assert_eq!(avg("3.00", 2), "1.5000000000000000"); // avg of 1.00, 2.00
        assert_eq!(avg("0", 2), "0.00000000000000000000");
        assert_eq!(avg("20000", 2), "10000.0000000000000000");
        assert_eq!(avg("0.00007", 3), "0.000023333333333333333333");
        assert_eq!(avg("123456790.123", 2), "61728395.061500000000");
    }

    #[cfg(feature = "time")]
    #[test]
    fn instant_text_is_utc_and_sorts_as_time() {
        use time::macros::datetime;
        let a = instant_text(&datetime!(2025-03-01 12:00:00 +02:00));
        assert_eq!(a, "2025-03-01T10:00:00+00:00");
        let b = instant_text(&datetime!(2025-03-01 10:00:00.5 UTC));
        assert_eq!(b, "2025-03-01T10:00:00.500+00:00");
        let c = instant_text(&datetime!(2025-03-01 10:00:00.000001 UTC));
        assert!(a < c && c < b);
    }
}
