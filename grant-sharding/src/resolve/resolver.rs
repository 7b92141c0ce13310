//! The [`Resolver`] trait (a key → shard function chosen at run time) and its implementations
//! for the built-in strategies that can change at run time; how keys and shard lists are
//! rendered in messages.

use std::borrow::Cow;
use std::fmt;
use std::ops::Bound;

use grant_core::{Error, KeyPart, ModelMeta, Result, ShardId};
use sea_query::Value;

use super::{ConsistentHashResolver, HashResolver, MappingResolver, PgHashResolver};

/// A key → shard function chosen at run time: the `custom` strategy's trait, also implemented
/// by the built-in resolvers that can change at run time.
///
/// Implement it for your own type and either name the type in the derive
/// (`#[shard(strategy = "custom", resolver = "path::Type")]`, the type then also needs
/// `Default`) or install a value on a cluster with
/// [`cluster.set_placement::<M>(Placement::resolver(value))`](crate::Cluster::set_placement).
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use grant_core::{Error, KeyPart, ModelMeta, Result, ShardId};
/// use grant_sharding::placement::Resolver;
///
/// /// Even keys on `even`, odd keys on `odd`.
/// #[derive(Debug, Default)]
/// struct Parity;
///
/// impl Resolver for Parity {
///     fn shards(&self) -> Cow<'_, [ShardId]> {
///         const SHARDS: [ShardId; 2] = [ShardId::named(0, "even"), ShardId::named(1, "odd")];
///         Cow::Borrowed(&SHARDS)
///     }
///     fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
///         match key {
///             [KeyPart::Int(v)] => Ok(self.shards()[v.rem_euclid(2) as usize]),
///             _ => Err(Error::MissingShardKey {
///                 model: model.name,
///                 key: model.shard_key_name(),
///                 detail: "Parity places one integer key".into(),
///             }),
///         }
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + fmt::Debug + 'static {
    /// Every shard this resolver may place a key on, in index order
    /// ([`ShardId::index`] is the position). Queries without a usable key visit all of them.
    fn shards(&self) -> Cow<'_, [ShardId]>;

    /// The shard of the key whose parts (one per shard-key column, in key order) are `key`.
    ///
    /// # Errors
    ///
    /// Whatever the resolver refuses; name the model (`model.name`), the key and what to do —
    /// e.g. [`Error::UnknownShard`] for a key no shard holds.
    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId>;

    /// The shards that may hold keys between `low` and `high` (single-column keys), or `None`
    /// when the resolver cannot tell (then a range condition visits every shard). May include
    /// shards without such keys, never omit one.
    ///
    /// # Errors
    ///
    /// None by default.
    fn shards_for_range(
        &self,
        model: &'static ModelMeta,
        low: Bound<&Value>,
        high: Bound<&Value>,
    ) -> Result<Option<Vec<ShardId>>> {
        let _ = (model, low, high);
        Ok(None)
    }

    /// This resolver as text, kept in the topology store so that a placement set at run time is
    /// followed by every process of the cluster; `None` (the default) for none. Grant rebuilds
    /// the built-in resolvers (`hash`, `pg_hash`, `consistent_hash`, `mapping`) from theirs;
    /// any other resolver is followed by other processes as an opaque placement over its shards
    /// (reads visit them all, operations by key are refused there, saying why).
    fn spec(&self) -> Option<String> {
        None
    }
}

/// A shard as spec tokens: its index and escaped name.
fn shard_spec(shard: ShardId) -> String {
    format!("{} {}", shard.index(), super::spec_escape(&shard.name()))
}

impl Resolver for HashResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Owned(
            (0..self.count())
                .map(|i| ShardId::prefixed(self.prefix(), i))
                .collect(),
        )
    }

    fn spec(&self) -> Option<String> {
        Some(format!(
            "hash {} {}",
            self.count(),
            super::spec_escape(self.prefix())
        ))
    }

    fn shard_for_key(&self, _model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let hash = crate::resolve::hash::parts_hash(key.iter().copied());
        Ok(ShardId::prefixed(
            self.prefix(),
            (hash % u64::from(self.count().max(1))) as u32,
        ))
    }
}

impl Resolver for PgHashResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Owned(
            (0..self.modulus())
                .map(|i| ShardId::prefixed(self.prefix(), i))
                .collect(),
        )
    }

    fn spec(&self) -> Option<String> {
        Some(format!(
            "pg_hash {} {}",
            self.modulus(),
            super::spec_escape(self.prefix())
        ))
    }

    fn shard_for_key(&self, _model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let hash = crate::resolve::pg_hash::parts_row_hash(key.iter().copied());
        Ok(ShardId::prefixed(
            self.prefix(),
            (hash % u64::from(self.modulus().max(1))) as u32,
        ))
    }
}

impl Resolver for ConsistentHashResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Borrowed(ConsistentHashResolver::shards(self))
    }

    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let shard = self.shard_for_hash(crate::resolve::hash::parts_hash(key.iter().copied()));
        if shard.is_unplaced() {
            return Err(Error::UnknownShard {
                model: model.name,
                shard: shard.name(),
                known: "the hash ring has no points; give its shards vnodes".into(),
            });
        }
        Ok(shard)
    }

    fn spec(&self) -> Option<String> {
        let shards = ConsistentHashResolver::shards(self);
        let mut out = format!("consistent {}", shards.len());
        for (i, shard) in shards.iter().enumerate() {
            out.push_str(&format!(" {} {}", shard_spec(*shard), self.vnodes_of(i)));
        }
        Some(out)
    }
}

impl Resolver for MappingResolver {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        let mut shards: Vec<ShardId> = Vec::new();
        for shard in self
            .entries()
            .iter()
            .map(|(_, s)| *s)
            .chain(self.default_shard())
        {
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        shards.sort();
        Cow::Owned(shards)
    }

    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        match key {
            [part] => self
                .shard_for_part(*part)
                .ok_or_else(|| Error::UnknownShard {
                    model: model.name,
                    shard: format!(
                        "<none for {} = {}>",
                        model.shard_key_names(),
                        describe(part)
                    ),
                    known: format!(
                        "{}; the value is not in the mapping and there is no default: add an entry \
                     with `MappingResolver::with_entry` and `cluster.set_placement`",
                        names(&Resolver::shards(self))
                    ),
                }),
            _ => Err(Error::MissingShardKey {
                model: model.name,
                key: model.shard_key_name(),
                detail: format!("a mapping places one key column, got {} parts", key.len()),
            }),
        }
    }

    fn spec(&self) -> Option<String> {
        use super::MappingKey;
        let mut out = format!("mapping {}", self.entries().len());
        for (key, shard) in self.entries() {
            match key {
                MappingKey::Int(v) => out.push_str(&format!(" i {v}")),
                MappingKey::Text(t) => out.push_str(&format!(" t {}", super::spec_escape(t))),
            }
            out.push_str(&format!(" {}", shard_spec(*shard)));
        }
        match self.default_shard() {
            Some(shard) => out.push_str(&format!(" default {}", shard_spec(shard))),
            None => out.push_str(" default -"),
        }
        Some(out)
    }
}

/// A key part rendered for messages (the one renderer, [`grant_core::key::describe_part`]).
pub fn describe(part: &KeyPart<'_>) -> String {
    grant_core::key::describe_part(part)
}

/// Bytes as lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Shard names joined by `, ` (for messages).
pub fn names(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(ShardId::name)
        .collect::<Vec<_>>()
        .join(", ")
}
