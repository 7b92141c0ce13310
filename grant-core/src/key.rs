//! Shard keys and their canonical encoding.
//!
//! Every resolver sees a key as a sequence of typed [`KeyPart`]s. The stable byte encoding used by
//! the `hash` strategy is defined here, once:
//!
//! * each part is written as a 4-byte little-endian length followed by its bytes, so composite keys
//!   are unambiguous (`("ab", "c")` and `("a", "bc")` differ);
//! * integers of every width (`i8` .. `i64`, `u8` .. `u32`) are the 8 little-endian bytes of the
//!   value widened to `i64`, so `5_i32` and `5_i64` route alike; `u64` is its 8 little-endian bytes;
//! * strings are their UTF-8 bytes; byte strings are themselves; UUIDs their 16 bytes.
//!
//! Changing this encoding moves rows between shards: it is pinned by test vectors.

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
            _ => return None,
        })
    }
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
        format!("{self:?}")
    }
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

/// Renders a primary key value (scalar or tuple) for messages.
pub fn describe_values(values: &[Value]) -> String {
    let parts: Vec<String> = values.iter().map(describe_value).collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// Renders one value for messages.
pub fn describe_value(value: &Value) -> String {
    match KeyPart::from_value(value) {
        Some(KeyPart::Int(v)) => v.to_string(),
        Some(KeyPart::Text(s)) => format!("{s:?}"),
        _ => format!("{value:?}"),
    }
}
