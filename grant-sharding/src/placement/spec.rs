//! Placements as text, for the topology store: every process of a cluster rebuilds a placement
//! another one set from the text it persisted.
//!
//! A spec is space-separated tokens (escaped by `resolve::spec_escape`, so a nested spec is one
//! token): `static`; `resolver <resolver spec>` for a resolver that can be rebuilt
//! ([`Resolver::spec`]); `opaque <description> <shards>..` for one that cannot (a user type
//! without a spec, a directory): followed as [`Opaque`]; `migrating <old> <new>`;
//! `pinned <base> <count>` followed by each pin: its part count, the parts (`i 42`, `t <text>`,
//! `b <hex>`, `u <hex>`) and the shard (index, name).

use std::borrow::Cow;
use std::sync::Arc;

use grant_core::key::OwnedKeyPart;
use grant_core::{Error, KeyPart, ModelMeta, Result, ShardId};

use super::{Pins, Placement, intern};
use crate::resolve::{
    ConsistentHashResolver, HashResolver, MappingKey, MappingResolver, PgHashResolver, Resolver,
    spec_escape, spec_unescape,
};

impl Placement {
    /// This placement as a spec (see the [module docs](self)).
    pub(crate) fn spec(&self) -> String {
        match self {
            Placement::Static => "static".to_owned(),
            // Only a spec Grant can rebuild (a built-in resolver's) is kept as such.
            Placement::Resolver(r) => match r.spec().filter(|s| resolver_from_spec(s).is_ok()) {
                Some(spec) => format!("resolver {}", spec_escape(&spec)),
                None => opaque(&format!("{r:?}"), &r.shards()),
            },
            Placement::Directory(d) => opaque(&format!("{d:?}"), &d.shards()),
            Placement::Migrating { old, new } => format!(
                "migrating {} {}",
                spec_escape(&old.spec()),
                spec_escape(&new.spec())
            ),
            Placement::Pinned { base, pins } => {
                let mut out = format!("pinned {} {}", spec_escape(&base.spec()), pins.len());
                for (key, shard) in pins.iter() {
                    out.push_str(&format!(" {}", key.len()));
                    for part in key {
                        out.push(' ');
                        out.push_str(&part_spec(part));
                    }
                    out.push_str(&format!(
                        " {} {}",
                        shard.index(),
                        spec_escape(&shard.name())
                    ));
                }
                out
            }
        }
    }

    /// Whether two models whose static placements co-locate them (`belongs_to`) keep every
    /// shard-key value on the same shard under these run-time placements (`None`: the
    /// static one): both the same placement Grant can describe exactly — static, a built-in
    /// resolver, pins over those (a tenant moved with all its models) — and neither migrating.
    pub(crate) fn co_locates(a: Option<&Placement>, b: Option<&Placement>) -> bool {
        fn exact(p: &Placement) -> bool {
            match p {
                Placement::Static => true,
                Placement::Resolver(r) => r.spec().is_some_and(|s| resolver_from_spec(&s).is_ok()),
                Placement::Pinned { base, .. } => exact(base),
                Placement::Directory(_) | Placement::Migrating { .. } => false,
            }
        }
        match (a, b) {
            // Neither has a run-time placement: the common case, no spec to write.
            (None, None) => true,
            (a, b) => {
                let (a, b) = (
                    a.unwrap_or(&Placement::Static),
                    b.unwrap_or(&Placement::Static),
                );
                exact(a) && exact(b) && a.spec() == b.spec()
            }
        }
    }

    /// The placement a spec describes.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the spec when it is malformed.
    pub(crate) fn from_spec(spec: &str) -> Result<Placement> {
        let bad = |why: &str| {
            Error::Config(format!(
                "the topology store holds a placement this version cannot read ({why}): `{spec}`"
            ))
        };
        let mut tokens = Tokens::new(spec, &bad);
        let placement = match tokens.word()? {
            "static" => Placement::Static,
            "resolver" => {
                let inner = tokens.text()?;
                Placement::Resolver(resolver_from_spec(&inner).map_err(|e| bad(&e))?)
            }
            "opaque" => {
                let what = tokens.text()?;
                let mut shards = Vec::new();
                while !tokens.done() {
                    shards.push(tokens.shard()?);
                }
                Placement::Resolver(Arc::new(Opaque { what, shards }))
            }
            "migrating" => {
                let old = Placement::from_spec(&tokens.text()?)?;
                let new = Placement::from_spec(&tokens.text()?)?;
                Placement::Migrating {
                    old: Box::new(old),
                    new: Box::new(new),
                }
            }
            "pinned" => {
                let base = Placement::from_spec(&tokens.text()?)?;
                let mut pins = Pins::new();
                for _ in 0..tokens.number()? {
                    let mut key = Vec::new();
                    for _ in 0..tokens.number()? {
                        key.push(tokens.part()?);
                    }
                    let parts: Vec<KeyPart<'_>> = key.iter().map(OwnedKeyPart::as_part).collect();
                    pins = pins.with(&parts, tokens.shard()?);
                }
                Placement::Pinned {
                    base: Box::new(base),
                    pins: Arc::new(pins),
                }
            }
            other => return Err(bad(&format!("unknown kind `{other}`"))),
        };
        if !tokens.done() {
            return Err(bad("trailing tokens"));
        }
        Ok(placement)
    }
}

/// One key part as spec tokens: `i 42`, `t <text>`, `b <hex>`, `u <hex>`.
fn part_spec(part: &OwnedKeyPart) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match part {
        OwnedKeyPart::Int(v) => format!("i {v}"),
        OwnedKeyPart::Text(t) => format!("t {}", spec_escape(t)),
        OwnedKeyPart::Bytes(b) => format!("b {}", hex(b)),
        OwnedKeyPart::Uuid(u) => format!("u {}", hex(u)),
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn opaque(what: &str, shards: &[ShardId]) -> String {
    let mut out = format!("opaque {}", spec_escape(what));
    for s in shards {
        out.push_str(&format!(" {} {}", s.index(), spec_escape(&s.name())));
    }
    out
}

/// A resolver from its [`Resolver::spec`] (the built-in ones).
fn resolver_from_spec(spec: &str) -> std::result::Result<Arc<dyn Resolver>, String> {
    let fail = |why: &str| format!("resolver `{spec}`: {why}");
    let err = |why: &str| Error::Config(fail(why));
    let mut tokens = Tokens::new(spec, &err);
    let kind = tokens.word().map_err(|e| e.to_string())?;
    let resolver: Arc<dyn Resolver> = (|| -> Result<Arc<dyn Resolver>> {
        Ok(match kind {
            "hash" => {
                let count = tokens.number()?;
                Arc::new(HashResolver::with_prefix(count, intern(&tokens.text()?)))
            }
            "pg_hash" => {
                let modulus = tokens.number()?;
                Arc::new(PgHashResolver::with_prefix(
                    modulus,
                    intern(&tokens.text()?),
                ))
            }
            "consistent" => {
                let n = tokens.number()?;
                let mut shards = Vec::new();
                let mut vnodes = Vec::new();
                for _ in 0..n {
                    shards.push(tokens.shard()?);
                    vnodes.push(tokens.number()?);
                }
                Arc::new(ConsistentHashResolver::with_vnode_counts(&shards, &vnodes))
            }
            "mapping" => {
                let n = tokens.number()?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    let key = match tokens.word()? {
                        "i" => MappingKey::Int(
                            tokens
                                .word()?
                                .parse()
                                .map_err(|_| err("an integer key expected"))?,
                        ),
                        "t" => MappingKey::Text(Cow::Owned(tokens.text()?)),
                        _ => return Err(err("a key kind `i` or `t` expected")),
                    };
                    entries.push((key, tokens.shard()?));
                }
                if tokens.word()? != "default" {
                    return Err(err("`default` expected"));
                }
                let default = if tokens.peek() == Some("-") {
                    tokens.word()?;
                    None
                } else {
                    Some(tokens.shard()?)
                };
                Arc::new(MappingResolver::new(entries, default)?)
            }
            other => return Err(err(&format!("unknown resolver `{other}`"))),
        })
    })()
    .map_err(|e| e.to_string())?;
    if !tokens.done() {
        return Err(fail("trailing tokens"));
    }
    Ok(resolver)
}

/// A spec's tokens, with the error to give for a malformed one.
struct Tokens<'a, F: Fn(&str) -> Error> {
    parts: std::iter::Peekable<std::str::Split<'a, char>>,
    bad: &'a F,
}

impl<'a, F: Fn(&str) -> Error> Tokens<'a, F> {
    fn new(spec: &'a str, bad: &'a F) -> Self {
        Tokens {
            parts: spec.split(' ').peekable(),
            bad,
        }
    }

    fn done(&mut self) -> bool {
        self.parts.peek().is_none()
    }

    fn peek(&mut self) -> Option<&'a str> {
        self.parts.peek().copied()
    }

    fn word(&mut self) -> Result<&'a str> {
        self.parts
            .next()
            .ok_or_else(|| (self.bad)("too few tokens"))
    }

    fn text(&mut self) -> Result<String> {
        let token = self.word()?;
        spec_unescape(token).ok_or_else(|| (self.bad)(&format!("bad escape in `{token}`")))
    }

    fn number(&mut self) -> Result<u32> {
        let token = self.word()?;
        token
            .parse()
            .map_err(|_| (self.bad)(&format!("`{token}` is not a count")))
    }

    fn part(&mut self) -> Result<OwnedKeyPart> {
        let kind = self.word()?;
        let value = self.word()?;
        let bad = || (self.bad)(&format!("bad key part `{kind} {value}`"));
        Ok(match kind {
            "i" => OwnedKeyPart::Int(value.parse().map_err(|_| bad())?),
            "t" => OwnedKeyPart::Text(spec_unescape(value).ok_or_else(bad)?.into()),
            "b" => OwnedKeyPart::Bytes(unhex(value).ok_or_else(bad)?.into()),
            "u" => OwnedKeyPart::Uuid(
                unhex(value)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .ok_or_else(bad)?,
            ),
            _ => return Err(bad()),
        })
    }

    fn shard(&mut self) -> Result<ShardId> {
        let index = self.number()?;
        Ok(ShardId::named(index, intern(&self.text()?)))
    }
}

/// A placement another process set that this one cannot rebuild (a user resolver without a
/// [`Resolver::spec`], a directory): reads visit every shard it names (so they see every row),
/// keyed operations are refused, saying what to do.
pub(crate) struct Opaque {
    what: String,
    shards: Vec<ShardId>,
}

/// As the placement it stands for was described (so it is persisted again unchanged).
impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl Resolver for Opaque {
    fn shards(&self) -> Cow<'_, [ShardId]> {
        Cow::Borrowed(&self.shards)
    }

    fn shard_for_key(&self, model: &'static ModelMeta, key: &[KeyPart<'_>]) -> Result<ShardId> {
        let _ = key;
        Err(Error::Config(format!(
            "model `{}` was placed by another process of the cluster with `{}`, which this \
             process cannot rebuild (only the built-in resolvers are rebuilt from the topology \
             store); operations by key are refused here — set the placement in this process \
             too, or place the model with a built-in resolver",
            model.name, self.what
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(p: Placement) -> String {
        let spec = p.spec();
        let back = Placement::from_spec(&spec).unwrap();
        assert_eq!(back.spec(), spec, "round trip of {p:?}");
        spec
    }

    #[test]
    fn built_in_placements_round_trip() {
        assert_eq!(round_trip(Placement::Static), "static");
        assert_eq!(
            round_trip(Placement::resolver(HashResolver::new(8))),
            "resolver hash%208%20shard_"
        );
        round_trip(Placement::resolver(PgHashResolver::with_prefix(4, "db ")));
        round_trip(Placement::resolver(ConsistentHashResolver::with_vnodes(
            3, 10,
        )));
        round_trip(Placement::resolver(
            MappingResolver::new(
                [
                    (MappingKey::text("eu west"), ShardId::named(0, "eu")),
                    (MappingKey::Int(7), ShardId::named(1, "us%1")),
                    (MappingKey::text(""), ShardId::named(0, "eu")),
                ],
                Some(ShardId::named(1, "us%1")),
            )
            .unwrap(),
        ));
        round_trip(Placement::Migrating {
            old: Box::new(Placement::Static),
            new: Box::new(Placement::resolver(HashResolver::new(16))),
        });
    }

    #[test]
    fn pinned_placements_round_trip_with_every_key_kind() {
        let pins = Pins::new()
            .with(&[KeyPart::Int(-7)], ShardId::named(4, "hot tenant"))
            .with(&[KeyPart::Text("a b%c")], ShardId::named(5, "t"))
            .with(&[KeyPart::Text("")], ShardId::named(5, "t"))
            .with(&[KeyPart::Bytes(&[0, 255])], ShardId::named(5, "t"))
            .with(
                &[KeyPart::Uuid([9; 16]), KeyPart::Int(1)],
                ShardId::named(6, "u"),
            );
        let pinned = Placement::Pinned {
            base: Box::new(Placement::resolver(HashResolver::new(4))),
            pins: Arc::new(pins.clone()),
        };
        let spec = round_trip(pinned.clone());
        let Placement::Pinned { pins: back, .. } = Placement::from_spec(&spec).unwrap() else {
            panic!("not pinned: {spec}");
        };
        assert_eq!(*back, pins);
        assert_eq!(
            back.get(&[KeyPart::Text("a b%c")]).map(|s| s.name()),
            Some("t".to_owned())
        );
        assert_eq!(back.get(&[KeyPart::Int(7)]), None);
        round_trip(Placement::Migrating {
            old: Box::new(Placement::Static),
            new: Box::new(Placement::Pinned {
                base: Box::new(Placement::Static),
                pins: Arc::new(pins),
            }),
        });
        assert!(Placement::from_spec("pinned static 1 1 i x 0 a").is_err());
    }

    #[test]
    fn only_equal_exact_placements_co_locate() {
        let pinned = |to: u32| Placement::Pinned {
            base: Box::new(Placement::Static),
            pins: Arc::new(Pins::new().with(&[KeyPart::Int(5)], ShardId::named(to, "s"))),
        };
        let hash = |n| Placement::resolver(HashResolver::new(n));
        let yes = [
            (None, None),
            (Some(Placement::Static), None),
            (Some(hash(8)), Some(hash(8))),
            (Some(pinned(4)), Some(pinned(4))),
        ];
        for (a, b) in &yes {
            assert!(Placement::co_locates(a.as_ref(), b.as_ref()), "{a:?} {b:?}");
        }
        let migrating = Placement::Migrating {
            old: Box::new(Placement::Static),
            new: Box::new(pinned(4)),
        };
        let no = [
            (Some(pinned(4)), None),
            (Some(pinned(4)), Some(pinned(5))),
            (Some(hash(8)), Some(hash(4))),
            (Some(migrating.clone()), Some(migrating)),
        ];
        for (a, b) in &no {
            assert!(
                !Placement::co_locates(a.as_ref(), b.as_ref()),
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn a_rebuilt_resolver_places_keys_as_the_original() {
        let ring = ConsistentHashResolver::with_vnodes(5, 50);
        let Placement::Resolver(back) =
            Placement::from_spec(&Placement::resolver(ring.clone()).spec()).unwrap()
        else {
            panic!("not a resolver");
        };
        static META: ModelMeta = ModelMeta {
            name: "T",
            table: "t",
            columns: &[],
            primary_key: &[],
            shard_key: None,
            shard_key_columns: &[],
        };
        for k in 0..10_000_i64 {
            let parts = [KeyPart::Int(k)];
            assert_eq!(
                back.shard_for_key(&META, &parts).unwrap(),
                Resolver::shard_for_key(&ring, &META, &parts).unwrap()
            );
        }
    }

    #[test]
    fn malformed_specs_are_errors_naming_them() {
        for spec in [
            "",
            "hash",
            "resolver nope%201",
            "migrating static",
            "static extra",
        ] {
            let err = Placement::from_spec(spec).unwrap_err().to_string();
            assert!(err.contains("topology store"), "{spec}: {err}");
        }
    }
}
