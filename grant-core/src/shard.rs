//! Shard identities.

use std::fmt;
use std::hash::{Hash, Hasher};

/// The identity of one shard as a model sees it: its position in the model's shard list and the
/// name of the cluster shard that holds it.
///
/// For `#[shard(strategy = "hash", count = N)]` models the shards are `shard_0 .. shard_{N-1}`
/// (the stem can be changed with `prefix = "..."`), and [`ShardId::index`] is the hash remainder.
///
/// Two ids are equal when they name the same cluster shard at the same position.
///
/// # Examples
///
/// ```
/// use grant_core::ShardId;
/// let id = ShardId::new(3);
/// assert_eq!(id.index(), 3);
/// assert_eq!(id.to_string(), "shard_3");
/// assert_eq!(ShardId::named(1, "eu"), ShardId::named(1, "eu"));
/// ```
#[derive(Clone, Copy)]
pub struct ShardId {
    index: u32,
    name: Name,
}

#[derive(Clone, Copy)]
enum Name {
    /// `{stem}{index}`.
    Stem(&'static str),
    /// A name of its own.
    Fixed(&'static str),
}

/// The default stem of shard names: `shard_0`, `shard_1`, ...
pub const DEFAULT_PREFIX: &str = "shard_";

impl ShardId {
    /// The "shard" of a key that no shard holds — a mapping value without a `default`, an integer
    /// outside every range — as infallible routing (`shard_for`, `shard_of`) reports it.
    ///
    /// No cluster has a shard of this name, so an operation routed here fails with
    /// [`Error::UnknownShard`](crate::Error::UnknownShard) instead of touching any shard; the
    /// fallible forms (`try_shard_for`, `shard_for_value`) give the error naming the key.
    ///
    /// ```
    /// use grant_core::ShardId;
    /// assert!(ShardId::UNPLACED.is_unplaced());
    /// assert!(!ShardId::new(0).is_unplaced());
    /// ```
    pub const UNPLACED: ShardId = ShardId::named(u32::MAX, "<no shard holds this key>");

    /// Whether this is [`ShardId::UNPLACED`].
    pub const fn is_unplaced(&self) -> bool {
        self.index == u32::MAX && matches!(self.name, Name::Fixed(_))
    }

    /// The shard at `index` named `shard_{index}`.
    pub const fn new(index: u32) -> Self {
        Self::prefixed(DEFAULT_PREFIX, index)
    }

    /// The shard at `index` named `{prefix}{index}`.
    pub const fn prefixed(prefix: &'static str, index: u32) -> Self {
        ShardId {
            index,
            name: Name::Stem(prefix),
        }
    }

    /// The shard at `index` in a model's shard list, with a name of its own (strategies that name
    /// their shards, e.g. a mapping `eu` → shard `eu`).
    pub const fn named(index: u32, name: &'static str) -> Self {
        ShardId {
            index,
            name: Name::Fixed(name),
        }
    }

    /// The shard's position in the model's shard list (for hash strategies: the remainder).
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// Whether this id names the cluster shard called `name`, without allocating.
    pub fn is_named(&self, name: &str) -> bool {
        match self.name {
            Name::Fixed(n) => n == name,
            Name::Stem(stem) => name.strip_prefix(stem).is_some_and(|rest| {
                rest.len() == decimal_digits(self.index)
                    && rest.bytes().all(|b| b.is_ascii_digit())
                    && rest.parse::<u32>().ok() == Some(self.index)
            }),
        }
    }

    /// The cluster shard's name, e.g. `shard_3`.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Name::Stem(stem) => write!(f, "{stem}{}", self.index),
            Name::Fixed(name) => f.write_str(name),
        }
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardId({}#{})", self, self.index)
    }
}

impl PartialEq for ShardId {
    fn eq(&self, other: &Self) -> bool {
        if self.index != other.index {
            return false;
        }
        match (self.name, other.name) {
            (Name::Stem(a), Name::Stem(b)) | (Name::Fixed(a), Name::Fixed(b)) => a == b,
            _ => self.to_string() == other.to_string(),
        }
    }
}

impl Eq for ShardId {}

impl Hash for ShardId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Hash what equality compares: the index (names agree whenever ids are equal).
        self.index.hash(state);
    }
}

impl PartialOrd for ShardId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ShardId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.index
            .cmp(&other.index)
            .then_with(|| self.to_string().cmp(&other.to_string()))
    }
}

fn decimal_digits(mut n: u32) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}
