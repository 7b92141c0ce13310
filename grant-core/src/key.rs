//! Shard keys and their canonical encoding.
//!
//! Every resolver sees a key as a sequence of typed [`KeyPart`]s. The stable byte encoding used by
//! the `hash` strategy is defined here, once:
//!
//! * each part is written as a 4-byte little-endian length followed by its bytes, so composite keys
//!   are unambiguous (`("ab", "c")` and `("a", "bc")` differ);
//! * integers of every width (`i8` .. `i64`, `u8` .. `u32`) are the 8 little-endian bytes of the
//!   value widened to `i64`, so `5_i32` and `5_i64` route alike; `u64` is its 8 little-endian bytes;
//! * strings are their UTF-8 bytes; byte strings are themselves; UUIDs (`[u8; 16]`, e.g.
//!   `*uuid.as_bytes()`) their 16 bytes.
//!
//! Changing this encoding moves rows between shards: it is pinned by test vectors.
//!
//! Some strategies take only some key types; marker traits say which, so that a key type a
//! strategy cannot place is a compile error at the field: [`PgHashKey`] (`pg_hash`: the types
//! PostgreSQL hash-partitions identically), [`IntKey`] (`range`, and `mapping` over integers) and
//! [`TextKey`] (`mapping` over strings).

use sea_query::Value;

/// One part of a shard key, as resolvers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart<'a> {
    /// Any integer, widened to `i64`.
    Int(i64),
    /// A UTF-8 string.
    Text(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A UUID's 16 bytes.
    Uuid([u8; 16]),
}

/// An owned [`KeyPart`]: a key held beyond the borrow it was read from (a directory's cache
/// entry, a key kept across an `await`). The one owned key type of Grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnedKeyPart {
    /// An integer.
    Int(i64),
    /// Text.
    Text(Box<str>),
    /// Bytes.
    Bytes(Box<[u8]>),
    /// A UUID's 16 bytes.
    Uuid([u8; 16]),
}

impl OwnedKeyPart {
    /// The part borrowed back.
    pub fn as_part(&self) -> KeyPart<'_> {
        match self {
            OwnedKeyPart::Int(v) => KeyPart::Int(*v),
            OwnedKeyPart::Text(s) => KeyPart::Text(s),
            OwnedKeyPart::Bytes(b) => KeyPart::Bytes(b),
            OwnedKeyPart::Uuid(u) => KeyPart::Uuid(*u),
        }
    }
}

impl From<KeyPart<'_>> for OwnedKeyPart {
    fn from(part: KeyPart<'_>) -> Self {
        match part {
            KeyPart::Int(v) => OwnedKeyPart::Int(v),
            KeyPart::Text(s) => OwnedKeyPart::Text(s.into()),
            KeyPart::Bytes(b) => OwnedKeyPart::Bytes(b.into()),
            KeyPart::Uuid(u) => OwnedKeyPart::Uuid(u),
        }
    }
}

impl KeyPart<'_> {
    /// Calls `f` with the canonical bytes of this part (without the length prefix).
    #[inline]
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            KeyPart::Int(v) => f(&v.to_le_bytes()),
            KeyPart::Text(s) => f(s.as_bytes()),
            KeyPart::Bytes(b) => f(b),
            KeyPart::Uuid(u) => f(u),
        }
    }

    /// The part of a bound value, or `None` when the value is NULL or of a type that is not a
    /// shard key.
    pub fn from_value(value: &Value) -> Option<KeyPart<'_>> {
        Some(match value {
            Value::TinyInt(Some(v)) => KeyPart::Int(i64::from(*v)),
            Value::SmallInt(Some(v)) => KeyPart::Int(i64::from(*v)),
            Value::Int(Some(v)) => KeyPart::Int(i64::from(*v)),
            Value::BigInt(Some(v)) => KeyPart::Int(*v),
            Value::TinyUnsigned(Some(v)) => KeyPart::Int(i64::from(*v)),
            Value::SmallUnsigned(Some(v)) => KeyPart::Int(i64::from(*v)),
            Value::Unsigned(Some(v)) => KeyPart::Int(i64::from(*v)),
            Value::BigUnsigned(Some(v)) => KeyPart::Int(*v as i64),
            Value::String(Some(s)) => KeyPart::Text(s.as_str()),
            Value::Bytes(Some(b)) => KeyPart::Bytes(b.as_slice()),
            other => return feature_part(other),
        })
    }
}

/// The key part of a non-NULL value of a feature type (uuid, date, timestamp), as its
/// [`ShardKey`] impl gives it.
fn feature_part(value: &Value) -> Option<KeyPart<'static>> {
    struct One(Option<KeyPart<'static>>);
    impl KeyVisitor for One {
        fn part(&mut self, part: KeyPart<'_>) {
            self.0 = match part {
                KeyPart::Int(v) => Some(KeyPart::Int(v)),
                KeyPart::Uuid(u) => Some(KeyPart::Uuid(u)),
                _ => None,
            };
        }
    }
    #[allow(unused_mut)]
    let mut one = One(None);
    #[allow(clippy::match_single_binding, unreachable_patterns)]
    match value {
        #[cfg(feature = "uuid")]
        Value::Uuid(Some(u)) => u.visit(&mut one),
        #[cfg(feature = "chrono")]
        Value::ChronoDate(Some(d)) => d.visit(&mut one),
        #[cfg(feature = "chrono")]
        Value::ChronoDateTime(Some(t)) => t.visit(&mut one),
        #[cfg(feature = "chrono")]
        Value::ChronoDateTimeUtc(Some(t)) => t.visit(&mut one),
        #[cfg(feature = "time")]
        Value::TimeDate(Some(d)) => d.visit(&mut one),
        #[cfg(feature = "time")]
        Value::TimeDateTimeWithTimeZone(Some(t)) => t.visit(&mut one),
        _ => {}
    }
    one.0
}

/// Receives the parts of a key, in order.
pub trait KeyVisitor {
    /// Visits the next part.
    fn part(&mut self, part: KeyPart<'_>);
}

/// A type that can be a shard key: never nullable, with a canonical encoding.
///
/// Implemented for the integer types, `String`, `str`, `Vec<u8>`, references to them and tuples of
/// them (composite keys). Deliberately **not** implemented for `Option<T>`: shard keys are never
/// NULL.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a shard key",
    label = "not a shard key type",
    note = "shard keys are never nullable; use an integer, `String` or a tuple of them"
)]
pub trait ShardKey {
    /// Calls the visitor with each part of the key, in order.
    fn visit<V: KeyVisitor>(&self, visitor: &mut V);

    /// The key rendered for error messages.
    fn describe(&self) -> String;
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl ShardKey for $t {
            #[inline]
            fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
                visitor.part(KeyPart::Int(*self as i64));
            }
            fn describe(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
int_key!(i8, i16, i32, i64, u8, u16, u32, u64);

impl ShardKey for str {
    #[inline]
    fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
        visitor.part(KeyPart::Text(self));
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl ShardKey for String {
    #[inline]
    fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
        visitor.part(KeyPart::Text(self));
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl ShardKey for Vec<u8> {
    #[inline]
    fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
        visitor.part(KeyPart::Bytes(self));
    }
    fn describe(&self) -> String {
        describe_part(&KeyPart::Bytes(self))
    }
}

impl ShardKey for [u8; 16] {
    #[inline]
    fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
        visitor.part(KeyPart::Uuid(*self));
    }
    fn describe(&self) -> String {
        describe_uuid(self)
    }
}

/// A UUID's 16 bytes in the canonical `8-4-4-4-12` hex form.
pub fn describe_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl<T: ShardKey + ?Sized> ShardKey for &T {
    #[inline]
    fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
        (**self).visit(visitor);
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

macro_rules! tuple_key {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: PgHashKey),+> PgHashKey for ($($name,)+) {}

        impl<$($name: ShardKey),+> ShardKey for ($($name,)+) {
            #[inline]
            fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
                $(self.$idx.visit(visitor);)+
            }
            fn describe(&self) -> String {
                let parts: Vec<String> = vec![$(self.$idx.describe()),+];
                format!("({})", parts.join(", "))
            }
        }
    };
}
tuple_key!(A 0, B 1);
tuple_key!(A 0, B 1, C 2);
tuple_key!(A 0, B 1, C 2, D 3);

/// A shard key type the `pg_hash` strategy places exactly as PostgreSQL's `PARTITION BY HASH`
/// does: integers that fit PostgreSQL's `int2` / `int4` / `int8`, strings (`text`, `varchar`),
/// byte strings (`bytea`), UUIDs (`[u8; 16]`, for `uuid` columns), references to them and tuples
/// of them (multi-column partition keys).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `pg_hash` shard key",
    label = "PostgreSQL has no hash partitioning for this type that Grant reproduces",
    note = "`pg_hash` takes integers up to `i64` (int2/int4/int8), `String` (text), `Vec<u8>` \
            (bytea), `[u8; 16]` (uuid) or a tuple of them; use `strategy = \"hash\"` for other keys"
)]
pub trait PgHashKey: ShardKey {}

macro_rules! marker {
    ($tr:ident: $($t:ty),*) => {$( impl $tr for $t {} )*};
}
marker!(PgHashKey: i8, i16, i32, i64, u8, u16, u32, str, String, Vec<u8>, [u8; 16]);
impl<T: PgHashKey + ?Sized> PgHashKey for &T {}

/// An integer shard key, as the `range` strategy (and `mapping` over integers) needs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the key of this strategy: it needs an integer key",
    label = "not an integer",
    note = "`range` (and a `mapping` with integer values) takes `i8`..`i64`, `u8`..`u32` or, with \
            the `chrono` / `time` features, dates and timestamps (bounds written as dates, \
            `\"2025-01-01\"..\"2025-02-01\"`)"
)]
pub trait IntKey: ShardKey {
    /// What the key's integer counts: itself, or for date and time keys days or microseconds
    /// since 2000-01-01 (see the feature keys' encoding above), which `range` bounds written
    /// as dates (`"2025-01-01".."2025-02-01"`) are converted to.
    const RANGE_UNIT: RangeUnit = RangeUnit::Integer;

    /// The key as an `i64`.
    fn to_i64(&self) -> i64;
}

/// What an [`IntKey`]'s integer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeUnit {
    /// The integer is the key.
    Integer,
    /// Days since 2000-01-01 (date keys).
    Days,
    /// Microseconds since 2000-01-01 00:00 UTC (timestamp keys).
    Micros,
}

/// A `range` bound written as a date or timestamp (`micros` since 2000-01-01 00:00 UTC, as the
/// derive computes it) in the unit of key type `K`; evaluated in the model's static range
/// table, so a misuse is a compile error.
///
/// # Panics
///
/// (At compile time.) When `K` is not a date or time key, or `K` is a date and the bound has
/// a time of day.
pub const fn time_bound<K: IntKey + ?Sized>(micros: i64) -> i64 {
    const DAY: i64 = 86_400_000_000;
    match K::RANGE_UNIT {
        RangeUnit::Micros => micros,
        RangeUnit::Days => {
            if micros.rem_euclid(DAY) != 0 {
                panic!("a range bound of a date key must be a date, without a time of day");
            }
            micros.div_euclid(DAY)
        }
        RangeUnit::Integer => panic!(
            "range bounds written as dates (\"2025-01-01\") need a date or timestamp key \
             (chrono/time dates and timestamps); write integers for an integer key"
        ),
    }
}

macro_rules! int_key_marker {
    ($($t:ty),*) => {$(
        impl IntKey for $t {
            #[inline]
            fn to_i64(&self) -> i64 {
                i64::from(*self)
            }
        }
    )*};
}
int_key_marker!(i8, i16, i32, i64, u8, u16, u32);

impl<T: IntKey + ?Sized> IntKey for &T {
    const RANGE_UNIT: RangeUnit = T::RANGE_UNIT;
    #[inline]
    fn to_i64(&self) -> i64 {
        (**self).to_i64()
    }
}

/// A string shard key, as a `mapping` with string values needs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the key of this strategy: it needs a string key",
    label = "not a string",
    note = "a `mapping` whose values are strings (`map(eu = \"shard_eu\")`) takes a `String` key; \
            map integer keys with integer values (`map(1 = \"shard_a\")`)"
)]
pub trait TextKey: ShardKey {
    /// The key as a string.
    fn as_text(&self) -> &str;
}

impl TextKey for str {
    #[inline]
    fn as_text(&self) -> &str {
        self
    }
}

impl TextKey for String {
    #[inline]
    fn as_text(&self) -> &str {
        self
    }
}

impl<T: TextKey + ?Sized> TextKey for &T {
    #[inline]
    fn as_text(&self) -> &str {
        (**self).as_text()
    }
}

/// Renders a primary key value (scalar or tuple) for messages.
pub fn describe_values(values: &[Value]) -> String {
    let parts: Vec<String> = values.iter().map(describe_value).collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Renders one value for messages: a key part as [`describe_part`] does, anything else (NULL,
/// floats, ..) as its `Debug` form.
pub fn describe_value(value: &Value) -> String {
    match KeyPart::from_value(value) {
        Some(part) => describe_part(&part),
        None => format!("{value:?}"),
    }
}

/// The one rendering of a key part in messages (every error that names a key uses it): an
/// integer as itself, text quoted (`"acme"`), bytes as `0x` and hex digits, a UUID in its
/// canonical `8-4-4-4-12` form.
pub fn describe_part(part: &KeyPart<'_>) -> String {
    match part {
        KeyPart::Int(v) => v.to_string(),
        KeyPart::Text(s) => format!("{s:?}"),
        KeyPart::Bytes(b) => {
            let mut out = String::with_capacity(2 + 2 * b.len());
            out.push_str("0x");
            for byte in *b {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        KeyPart::Uuid(u) => describe_uuid(u),
    }
}

/// Shard keys of the column-type features. Their canonical parts are PostgreSQL's own
/// representations, so `pg_hash` places them as PostgreSQL's hash partitioning does:
///
/// * a `uuid::Uuid`: its 16 bytes ([`KeyPart::Uuid`]);
/// * a date (`chrono::NaiveDate`, `time::Date`): days since 2000-01-01 ([`KeyPart::Int`]; a
///   PostgreSQL `date` is that `int4`);
/// * a timestamp (`chrono::NaiveDateTime`; an instant — `chrono::DateTime<Utc>`,
///   `time::OffsetDateTime` — in UTC): microseconds since 2000-01-01 00:00, truncated toward
///   that epoch as sqlx truncates what it sends PostgreSQL ([`KeyPart::Int`]; a `timestamp` /
///   `timestamptz` is that `int8`).
mod feature_keys {
    #[allow(unused_imports)]
    use super::{IntKey, KeyPart, KeyVisitor, PgHashKey, RangeUnit, ShardKey};

    /// Reads an integer key part.
    #[allow(dead_code)]
    struct Int(i64);
    impl KeyVisitor for Int {
        fn part(&mut self, part: KeyPart<'_>) {
            if let KeyPart::Int(v) = part {
                self.0 = v;
            }
        }
    }

    /// `range` over a date or time key: its integer is its key part's.
    #[allow(unused_macros)]
    macro_rules! time_range_key {
        ($t:ty, $unit:ident) => {
            impl IntKey for $t {
                const RANGE_UNIT: RangeUnit = RangeUnit::$unit;
                fn to_i64(&self) -> i64 {
                    let mut int = Int(0);
                    self.visit(&mut int);
                    int.0
                }
            }
        };
    }

    #[allow(unused_macros)]
    macro_rules! feature_key {
        ($t:ty, |$v:ident| $part:expr) => {
            impl ShardKey for $t {
                #[inline]
                fn visit<V: KeyVisitor>(&self, visitor: &mut V) {
                    let $v = self;
                    visitor.part($part);
                }
                fn describe(&self) -> String {
                    self.to_string()
                }
            }
            impl PgHashKey for $t {}
        };
    }

    #[cfg(feature = "uuid")]
    feature_key!(uuid::Uuid, |u| KeyPart::Uuid(*u.as_bytes()));

    #[cfg(feature = "chrono")]
    mod chrono_keys {
        use super::*;
        use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

        fn epoch() -> NaiveDateTime {
            NaiveDate::from_ymd_opt(2000, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("2000-01-01 is a date")
        }

        pub(super) fn micros(t: &NaiveDateTime) -> i64 {
            // Out of i64 microseconds (±292,000 years): saturate.
            (*t - epoch())
                .num_microseconds()
                .unwrap_or(if *t < epoch() { i64::MIN } else { i64::MAX })
        }

        feature_key!(NaiveDate, |d| KeyPart::Int(i64::from(
            (*d - epoch().date()).num_days() as i32
        )));
        feature_key!(NaiveDateTime, |t| KeyPart::Int(micros(t)));
        feature_key!(DateTime<Utc>, |t| KeyPart::Int(micros(&t.naive_utc())));
        time_range_key!(NaiveDate, Days);
        time_range_key!(NaiveDateTime, Micros);
        time_range_key!(DateTime<Utc>, Micros);
    }

    #[cfg(feature = "time")]
    mod time_keys {
        use super::*;
        use time::macros::{date, datetime};
        use time::{Date, OffsetDateTime};

        feature_key!(Date, |d| KeyPart::Int(i64::from(
            d.to_julian_day() - date!(2000 - 01 - 01).to_julian_day()
        )));
        feature_key!(OffsetDateTime, |t| {
            let nanos = (*t - datetime!(2000-01-01 0:00 UTC)).whole_nanoseconds();
            // Truncated toward the epoch, as for chrono.
            KeyPart::Int(i64::try_from(nanos / 1000).unwrap_or(if nanos < 0 {
                i64::MIN
            } else {
                i64::MAX
            }))
        });
        time_range_key!(Date, Days);
        time_range_key!(OffsetDateTime, Micros);
    }
}
