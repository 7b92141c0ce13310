//! Attribute parsing: `#[shard(..)]`, `#[grant(..)]` and `#[primary_key]`.
//!
//! Each value is checked on its own here (its literal kind, a known strategy, `count >= 1`);
//! checks between values and fields are in `valid.rs`. Errors are collected, never returned
//! early, so that every mistake in an attribute is reported at once.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Lit, LitInt, LitStr, Token};

use crate::Derive;
use crate::names::{backticked_list, closest};

/// The largest `#[shard(count = N)]`: the derive builds a static table of `count` shard ids.
pub(crate) const MAX_SHARD_COUNT: u32 = 1 << 16;

/// The default stem of shard names (`shard_0`, `shard_1`, ...).
pub(crate) const DEFAULT_PREFIX: &str = "shard_";

/// The default shard of a `#[derive(Model)]` table.
pub(crate) const DEFAULT_SHARD: &str = "shard_0";

/// Every error found so far, combined with [`syn::Error::combine`].
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error spanning `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// `Err` with every error recorded, if any.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// A sharding strategy: how a shard key maps to a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// `strategy = "hash"`: SipHash-2-4 of the key's canonical bytes, remainder `count`.
    Hash,
    /// `strategy = "pg_hash"`: PostgreSQL's `PARTITION BY HASH` placement, modulus `count`.
    PgHash,
    /// `strategy = "consistent_hash"`: a hash ring with `vnodes` points per shard.
    ConsistentHash,
    /// `strategy = "range"`: integer ranges on named shards.
    Range,
    /// `strategy = "mapping"` (or `geographic`, `lookup`): listed values on named shards.
    Mapping,
    /// `strategy = "directory"`: key → shard entries in a directory table of the cluster.
    Directory,
    /// `strategy = "custom"`: a user type implementing the resolver trait.
    Custom,
}

impl Strategy {
    /// Every strategy with its name as written in `#[shard(strategy = "...")]`.
    pub(crate) const ALL: &'static [(&'static str, Strategy)] = &[
        ("hash", Strategy::Hash),
        ("pg_hash", Strategy::PgHash),
        ("consistent_hash", Strategy::ConsistentHash),
        ("range", Strategy::Range),
        ("mapping", Strategy::Mapping),
        ("geographic", Strategy::Mapping),
        ("lookup", Strategy::Mapping),
        ("directory", Strategy::Directory),
        ("custom", Strategy::Custom),
    ];

    /// The strategy named `name`.
    pub(crate) fn from_name(name: &str) -> Option<Strategy> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, strategy)| strategy)
    }

    /// "`hash`, `...`" for messages.
    pub(crate) fn expected() -> String {
        backticked_list(Self::ALL.iter().map(|(n, _)| *n))
    }

    /// The `#[shard(..)]` keys this strategy takes besides `strategy` and `on`.
    pub(crate) fn options(self) -> &'static [&'static str] {
        match self {
            Strategy::Hash | Strategy::PgHash => &["count", "prefix"],
            Strategy::ConsistentHash => &["count", "prefix", "vnodes", "weights"],
            Strategy::Range => &["ranges"],
            Strategy::Mapping => &["map", "default"],
            Strategy::Directory => &["count", "prefix", "home", "policy"],
            Strategy::Custom => &["resolver"],
        }
    }

    /// Whether the strategy names its shards itself (rather than `count` shards `{prefix}{i}`).
    pub(crate) fn names_shards(self) -> bool {
        matches!(self, Strategy::Range | Strategy::Mapping | Strategy::Custom)
    }

    /// Whether a composite (several-column) shard key is allowed.
    pub(crate) fn takes_composite_keys(self) -> bool {
        matches!(
            self,
            Strategy::Hash | Strategy::PgHash | Strategy::ConsistentHash | Strategy::Custom
        )
    }
}

/// `strategy = "..."`: the strategy and the literal as written (e.g. `"geographic"`).
#[derive(Clone)]
pub(crate) struct StrategyAttr {
    pub(crate) strategy: Strategy,
    pub(crate) lit: LitStr,
}

/// `on = "field"` or `on = ["a", "b"]`.
#[derive(Clone)]
pub(crate) struct OnAttr {
    /// The field names, in key order.
    pub(crate) fields: Vec<LitStr>,
    /// The whole value, for errors about the key as a whole.
    pub(crate) span: Span,
}

/// One `name = 2` of `weights(..)`.
#[derive(Clone)]
pub(crate) struct Weight {
    pub(crate) shard: String,
    pub(crate) span: Span,
    pub(crate) weight: f64,
}

/// One `name = start..end` of `ranges(..)`, as half-open `i64` bounds.
#[derive(Clone)]
pub(crate) struct RangeEntry {
    pub(crate) shard: String,
    /// The range as written.
    pub(crate) span: Span,
    pub(crate) text: String,
    /// Included start, `None` when open.
    pub(crate) start: Option<i64>,
    /// Excluded end, `None` when open.
    pub(crate) end: Option<i64>,
    /// Whether the bounds were written as dates or timestamps (then `start` and `end` are
    /// microseconds since 2000-01-01 00:00 UTC).
    pub(crate) time: bool,
}

/// A listed value of `map(..)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MapKey {
    Int(i64),
    Text(String),
}

impl MapKey {
    /// The order `grant::resolve::MappingKey` looks values up in: integers before strings,
    /// integers by value, strings by length and then by bytes.
    pub(crate) fn lookup_order(&self) -> (u8, i64, usize, &[u8]) {
        match self {
            MapKey::Int(v) => (0, *v, 0, &[]),
            MapKey::Text(s) => (1, 0, s.len(), s.as_bytes()),
        }
    }
}

/// One `value = "shard"` of `map(..)`.
#[derive(Clone)]
pub(crate) struct MapEntry {
    pub(crate) key: MapKey,
    pub(crate) key_span: Span,
    pub(crate) shard: LitStr,
}

/// A key that may be absent, given with a bad value (already reported), or given.
#[derive(Debug, Clone)]
pub(crate) enum Slot<T> {
    /// Not written.
    Missing,
    /// Written, but its value was rejected (the error is already recorded).
    Invalid,
    /// Written with a valid value.
    Given(T),
}

impl<T> Slot<T> {
    fn is_missing(&self) -> bool {
        matches!(self, Slot::Missing)
    }

    /// The value, when given and valid.
    pub(crate) fn get(&self) -> Option<&T> {
        match self {
            Slot::Given(value) => Some(value),
            Slot::Missing | Slot::Invalid => None,
        }
    }
}

/// `#[shard(strategy = "...", on = "...", count = N, prefix = "...")]`.
pub(crate) struct ShardAttr<'a> {
    /// The first `#[shard(..)]` attribute, for errors about the whole attribute.
    pub(crate) attr: &'a Attribute,
    /// Whether every `#[shard(..)]` attribute parsed (no syntax error): only then is a missing key
    /// worth reporting.
    pub(crate) well_formed: bool,
    pub(crate) strategy: Slot<StrategyAttr>,
    pub(crate) on: Slot<OnAttr>,
    pub(crate) count: Slot<u32>,
    pub(crate) prefix: Slot<LitStr>,
    pub(crate) vnodes: Slot<u32>,
    pub(crate) weights: Slot<Vec<Weight>>,
    pub(crate) ranges: Slot<Vec<RangeEntry>>,
    pub(crate) map: Slot<Vec<MapEntry>>,
    pub(crate) default: Slot<LitStr>,
    /// `home = "shard_0"` (directory): the shard holding the directory table.
    pub(crate) home: Slot<LitStr>,
    /// `policy = "least_rows"` (directory): where new keys go.
    pub(crate) policy: Slot<LitStr>,
    /// `resolver = "path::Type"` (custom): the resolver type.
    pub(crate) resolver: Slot<syn::Path>,
    /// Every key written, with the span of its name, in order.
    pub(crate) written: Vec<(String, Span)>,
}

/// The struct's attributes.
pub(crate) struct Container<'a> {
    /// `#[shard(..)]`, if written.
    pub(crate) shard: Option<ShardAttr<'a>>,
    /// `#[grant(table = "...")]`.
    pub(crate) table: Slot<LitStr>,
    /// `#[grant(shard = "...")]` (`#[derive(Model)]` only).
    pub(crate) shard_name: Slot<LitStr>,
    /// `#[grant(reference)]` (`#[derive(Model)]` only), with its span.
    pub(crate) reference: Option<Span>,
    /// `#[grant(crate = "path::to::grant")]`: where generated code finds the `grant` crate.
    pub(crate) krate: Slot<syn::Path>,
    /// `#[grant(methods(find = "find_one", ..))]`: generated inherent methods renamed (the
    /// generated name, the name to give it), so they leave room for the model's own items.
    pub(crate) methods: Vec<(String, Ident)>,
    /// `#[grant(index(a, b))]` and `#[grant(unique(a, b))]`, in order written.
    pub(crate) indexes: Vec<IndexAttr>,
    /// `#[grant(belongs_to(Parent, key(a, b)))]`, in order written.
    pub(crate) belongs_to: Vec<BelongsToAttr>,
}

/// One `#[grant(belongs_to(Parent, key(a, b)))]`: the parent model and the child's fields
/// holding the parent's primary key, in the order of the parent's primary-key fields.
pub(crate) struct BelongsToAttr {
    /// The parent model's type.
    pub(crate) parent: syn::Path,
    /// The child's fields, in the parent's primary-key order.
    pub(crate) key: Vec<Ident>,
    /// The span of the whole `belongs_to(..)`, for errors about it.
    pub(crate) span: Span,
}

/// One `#[grant(index(..))]` or `#[grant(unique(..))]` on the struct: the fields, by name.
pub(crate) struct IndexAttr {
    /// `unique(..)` rather than `index(..)`.
    pub(crate) unique: bool,
    /// The fields listed, in order.
    pub(crate) fields: Vec<Ident>,
    /// The span of `index` / `unique`, for errors about the whole list.
    pub(crate) span: Span,
}

/// A field's attributes.
pub(crate) struct FieldAttrs {
    /// `#[primary_key]`, with its span.
    pub(crate) primary_key: Option<Span>,
    /// `#[grant(column = "...")]`.
    pub(crate) column: Slot<LitStr>,
    /// `#[grant(constant = "...")]`: the name of the field's column constant.
    pub(crate) constant: Slot<LitStr>,
    /// `#[grant(index)]`: a one-column index, with its span.
    pub(crate) index: Option<Span>,
    /// `#[grant(unique)]`: a one-column unique index, with its span.
    pub(crate) unique: Option<Span>,
}

const SHARD_KEYS: &[&str] = &[
    "strategy", "on", "count", "prefix", "vnodes", "weights", "ranges", "map", "default", "home",
    "policy", "resolver",
];

/// The placement policies of `#[shard(strategy = "directory", policy = "...")]`.
pub(crate) const DIRECTORY_POLICIES: &[&str] = &["least_rows", "round_robin", "explicit"];

/// The largest `#[shard(vnodes = N)]`.
pub(crate) const MAX_VNODES: u32 = 1 << 16;
const GRANT_KEYS_SHARDED: &[&str] = &["table", "crate", "methods", "index", "unique", "belongs_to"];
const GRANT_KEYS_MODEL: &[&str] = &[
    "table",
    "shard",
    "reference",
    "crate",
    "methods",
    "index",
    "unique",
];
const GRANT_FIELD_KEYS: &[&str] = &["column", "constant", "index", "unique"];

/// The inherent methods the derive generates, which `#[grant(methods(..))]` can rename.
pub(crate) const METHODS: [&str; 16] = [
    "create_table",
    "insert",
    "insert_many",
    "upsert",
    "upsert_many",
    "update",
    "delete",
    "find",
    "find_tracked",
    "query",
    "on_shard",
    "on_all_shards",
    "shard_for",
    "try_shard_for",
    "belonging_to",
    "belonging_to_each",
];

/// Parses the struct's `#[shard(..)]`, `#[grant(..)]` and misplaced `#[primary_key]`.
pub(crate) fn container<'a>(
    attrs: &'a [Attribute],
    kind: Derive,
    errors: &mut Errors,
) -> Container<'a> {
    let mut out = Container {
        shard: None,
        table: Slot::Missing,
        shard_name: Slot::Missing,
        reference: None,
        krate: Slot::Missing,
        methods: Vec::new(),
        indexes: Vec::new(),
        belongs_to: Vec::new(),
    };
    for attr in attrs {
        if attr.path().is_ident("shard") {
            if kind == Derive::Model {
                errors.spanned(
                    attr,
                    "`#[shard(..)]` cannot be used with `#[derive(Model)]`, which is for a table on \
                     one shard; derive `Sharded` to spread the table over shards, or place it with \
                     `#[grant(shard = \"...\")]`",
                );
                continue;
            }
            let shard = out.shard.get_or_insert(ShardAttr {
                attr,
                well_formed: true,
                strategy: Slot::Missing,
                on: Slot::Missing,
                count: Slot::Missing,
                prefix: Slot::Missing,
                vnodes: Slot::Missing,
                weights: Slot::Missing,
                ranges: Slot::Missing,
                map: Slot::Missing,
                default: Slot::Missing,
                home: Slot::Missing,
                policy: Slot::Missing,
                resolver: Slot::Missing,
                written: Vec::new(),
            });
            parse_shard(attr, shard, errors);
        } else if attr.path().is_ident("grant") {
            parse_container_grant(attr, kind, &mut out, errors);
        } else if attr.path().is_ident("primary_key") {
            errors.spanned(attr, "`#[primary_key]` goes on a field, not on the struct");
        }
    }
    out
}

fn parse_shard(attr: &Attribute, shard: &mut ShardAttr<'_>, errors: &mut Errors) {
    let result = attr.parse_nested_meta(|meta| {
        let Some(key) = key_of(&meta) else {
            errors.spanned(
                &meta.path,
                format!(
                    "unknown key `{}` in `#[shard(..)]`, expected one of {}",
                    meta.path.to_token_stream(),
                    backticked_list(SHARD_KEYS.iter().copied())
                ),
            );
            return skip_value(&meta);
        };
        shard.written.push((key.clone(), meta.path.span()));
        match key.as_str() {
            "strategy" => {
                let value = string_value(&meta, "shard", "strategy", "\"hash\"", errors)?;
                let slot = value.map(|lit| match Strategy::from_name(&lit.value()) {
                    Some(strategy) => Some(StrategyAttr { strategy, lit }),
                    None => {
                        errors.spanned(
                            &lit,
                            format!(
                                "unknown strategy `{}`, expected one of {}",
                                lit.value(),
                                Strategy::expected()
                            ),
                        );
                        None
                    }
                });
                store(&mut shard.strategy, &meta, "shard", slot.flatten(), errors);
            }
            "on" => {
                let value = on_value(&meta, errors)?;
                store(&mut shard.on, &meta, "shard", value, errors);
            }
            "vnodes" => {
                let value = int_value(&meta, "shard", "vnodes", "150", errors)?;
                let value = value.and_then(|lit| match lit.base10_parse::<u64>() {
                    Ok(n) if (1..=u64::from(MAX_VNODES)).contains(&n) => u32::try_from(n).ok(),
                    _ => {
                        errors.spanned(
                            &lit,
                            format!(
                                "`#[shard(vnodes = ...)]` must be between 1 and {MAX_VNODES}, got {}",
                                lit.base10_digits()
                            ),
                        );
                        None
                    }
                });
                store(&mut shard.vnodes, &meta, "shard", value, errors);
            }
            "weights" => {
                let value = list(&meta, "weights", "shard_0 = 2", errors, weight_entry)?;
                store(&mut shard.weights, &meta, "shard", value, errors);
            }
            "ranges" => {
                let value = list(&meta, "ranges", "shard_a = ..1000", errors, range_entry)?;
                let value = value.and_then(|entries| {
                    if entries.is_empty() {
                        errors.spanned(
                            &meta.path,
                            "`#[shard(ranges(..))]` is empty; list each shard with its range, \
                             e.g. `ranges(shard_old = ..1000, shard_new = 1000..)`",
                        );
                        None
                    } else {
                        Some(entries)
                    }
                });
                store(&mut shard.ranges, &meta, "shard", value, errors);
            }
            "map" => {
                let value = list(&meta, "map", "eu = \"shard_eu\"", errors, map_entry)?;
                let value = value.and_then(|entries| check_map(&meta, entries, errors));
                store(&mut shard.map, &meta, "shard", value, errors);
            }
            "default" => {
                let value = string_value(&meta, "shard", "default", "\"shard_other\"", errors)?;
                let value = value.and_then(|lit| {
                    non_empty(
                        lit,
                        "#[shard(default = ...)]",
                        "the name of the shard for unlisted values",
                        errors,
                    )
                });
                store(&mut shard.default, &meta, "shard", value, errors);
            }
            "count" => {
                let value = int_value(&meta, "shard", "count", "8", errors)?;
                let value = value.and_then(|lit| match lit.base10_parse::<u64>() {
                    Ok(0) => {
                        errors.spanned(&lit, "`#[shard(count = ...)]` must be at least 1, got 0");
                        None
                    }
                    Ok(n) if n <= u64::from(MAX_SHARD_COUNT) => u32::try_from(n).ok(),
                    _ => {
                        errors.spanned(
                            &lit,
                            format!(
                                "`#[shard(count = ...)]` must be at most {MAX_SHARD_COUNT}, got {}",
                                lit.base10_digits()
                            ),
                        );
                        None
                    }
                });
                store(&mut shard.count, &meta, "shard", value, errors);
            }
            "prefix" => {
                let value = string_value(&meta, "shard", "prefix", "\"shard_\"", errors)?;
                store(&mut shard.prefix, &meta, "shard", value, errors);
            }
            "home" => {
                let value = string_value(&meta, "shard", "home", "\"shard_0\"", errors)?;
                let value = value.and_then(|lit| {
                    non_empty(
                        lit,
                        "#[shard(home = ...)]",
                        "the name of the shard holding the directory table",
                        errors,
                    )
                });
                store(&mut shard.home, &meta, "shard", value, errors);
            }
            "policy" => {
                let value = string_value(&meta, "shard", "policy", "\"least_rows\"", errors)?;
                let value = value.and_then(|lit| {
                    if DIRECTORY_POLICIES.contains(&lit.value().as_str()) {
                        Some(lit)
                    } else {
                        errors.spanned(
                            &lit,
                            format!(
                                "unknown directory policy `{}`, expected one of {}",
                                lit.value(),
                                backticked_list(DIRECTORY_POLICIES.iter().copied())
                            ),
                        );
                        None
                    }
                });
                store(&mut shard.policy, &meta, "shard", value, errors);
            }
            "resolver" => {
                let value =
                    string_value(&meta, "shard", "resolver", "\"crate::MyResolver\"", errors)?;
                let value = value.and_then(|lit| match lit.parse::<syn::Path>() {
                    Ok(path) => Some(path),
                    Err(_) => {
                        errors.spanned(
                            &lit,
                            format!(
                                "`#[shard(resolver = ...)]` expects the path of a type, e.g. \
                                 `resolver = \"crate::MyResolver\"`, got `{}`",
                                lit.value()
                            ),
                        );
                        None
                    }
                });
                store(&mut shard.resolver, &meta, "shard", value, errors);
            }
            other => {
                errors.spanned(
                    &meta.path,
                    format!(
                        "unknown key `{other}` in `#[shard(..)]`, expected one of {}",
                        backticked_list(SHARD_KEYS.iter().copied())
                    ),
                );
                skip_value(&meta)?;
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        shard.well_formed = false;
        errors.push(error);
    }
}

fn parse_container_grant(
    attr: &Attribute,
    kind: Derive,
    out: &mut Container<'_>,
    errors: &mut Errors,
) {
    let keys = match kind {
        Derive::Sharded => GRANT_KEYS_SHARDED,
        Derive::Model => GRANT_KEYS_MODEL,
    };
    let result = attr.parse_nested_meta(|meta| {
        let key = key_of(&meta);
        match (key.as_deref(), kind) {
            (Some("table"), _) => {
                let value = string_value(&meta, "grant", "table", "\"users\"", errors)?;
                let value = value.and_then(|lit| {
                    non_empty(lit, "#[grant(table = ...)]", "the SQL table name", errors)
                });
                store(&mut out.table, &meta, "grant", value, errors);
            }
            (Some("crate"), _) => {
                let value = string_value(&meta, "grant", "crate", "\"::my_app::grant\"", errors)?;
                let value = value.and_then(|lit| match lit.parse::<syn::Path>() {
                    Ok(path) => Some(path),
                    Err(_) => {
                        errors.spanned(
                            &lit,
                            format!(
                                "`#[grant(crate = ...)]` expects the path of the `grant` crate as \
                                 a string, e.g. `crate = \"::my_app::grant\"`; `{}` is not a path",
                                lit.value()
                            ),
                        );
                        None
                    }
                });
                store(&mut out.krate, &meta, "grant", value, errors);
            }
            (Some("methods"), _) => parse_methods(&meta, &mut out.methods, errors)?,
            (Some("belongs_to"), Derive::Sharded) => {
                if let Some(relation) = parse_belongs_to(&meta, errors)? {
                    out.belongs_to.push(relation);
                }
            }
            (Some("belongs_to"), Derive::Model) => {
                errors.spanned(
                    &meta.path,
                    "`#[grant(belongs_to(..))]` is for `#[derive(Sharded)]` models: a child row \
                     lives on its parent's shard; a `#[derive(Model)]` table is not spread by a key",
                );
                skip_value(&meta)?;
            }
            (Some(which @ ("index" | "unique")), _) => {
                if let Some(index) = parse_index(&meta, which == "unique", errors)? {
                    out.indexes.push(index);
                }
            }
            (Some("shard"), Derive::Model) => {
                let value = string_value(&meta, "grant", "shard", "\"shard_0\"", errors)?;
                let value = value.and_then(|lit| {
                    non_empty(
                        lit,
                        "#[grant(shard = ...)]",
                        "the name of the cluster shard holding the table",
                        errors,
                    )
                });
                store(&mut out.shard_name, &meta, "grant", value, errors);
            }
            (Some("reference"), Derive::Model) => {
                if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                    errors.spanned(
                        &meta.path,
                        "`#[grant(reference)]` takes no value: write `#[grant(reference)]`",
                    );
                    skip_value(&meta)?;
                } else if out.reference.is_some() {
                    errors.spanned(&meta.path, "duplicate `reference` in `#[grant(..)]`");
                } else {
                    out.reference = Some(meta.path.span());
                }
            }
            (Some("reference"), Derive::Sharded) => {
                errors.spanned(
                    &meta.path,
                    "`#[grant(reference)]` is only for `#[derive(Model)]`: a reference table has \
                     the same rows on every shard, a `#[derive(Sharded)]` table spreads its rows \
                     over shards",
                );
                skip_value(&meta)?;
            }
            (Some("shard"), Derive::Sharded) => {
                errors.spanned(
                    &meta.path,
                    "`#[grant(shard = ...)]` is only for `#[derive(Model)]`; the shards of a \
                     `#[derive(Sharded)]` model come from `#[shard(..)]`",
                );
                skip_value(&meta)?;
            }
            _ => {
                let hint = if key.as_deref() == Some("column") {
                    "; `column` goes on a field"
                } else {
                    ""
                };
                errors.spanned(
                    &meta.path,
                    format!(
                        "unknown key `{}` in `#[grant(..)]` on a struct, expected {}{hint}",
                        meta.path.to_token_stream(),
                        one_of(keys)
                    ),
                );
                skip_value(&meta)?;
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        errors.push(error);
    }
}

/// A comma-separated list of field names, each an identifier or a string literal
/// (`key(tenant_id, issue_id)` or `key("tenant_id", "issue_id")`: the string form keeps
/// clippy's `duplicated_attributes` quiet when two relations of a struct share a field).
fn field_names(input: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            out.push(lit.parse_with(Ident::parse_any)?);
        } else {
            out.push(Ident::parse_any(input)?);
        }
        if input.is_empty() {
            break;
        }
        let _: Token![,] = input.parse()?;
    }
    Ok(out)
}

/// `belongs_to(Parent, key(a, b))`.
fn parse_belongs_to(
    meta: &ParseNestedMeta<'_>,
    errors: &mut Errors,
) -> syn::Result<Option<BelongsToAttr>> {
    const EXAMPLE: &str = "`#[grant(belongs_to(Issue, key(tenant_id, issue_id)))]`";
    if !meta.input.peek(syn::token::Paren) {
        errors.spanned(
            &meta.path,
            format!(
                "`belongs_to` names the parent model and the fields holding its primary key, \
                 e.g. {EXAMPLE}"
            ),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let span = meta.path.span();
    let content;
    syn::parenthesized!(content in meta.input);
    let parent: syn::Path = content.parse()?;
    let mut key = Vec::new();
    if content.peek(Token![,]) {
        let _: Token![,] = content.parse()?;
        let word: Ident = content.parse()?;
        if word != "key" || !content.peek(syn::token::Paren) {
            errors.spanned(
                &word,
                format!("expected `key(..)` after the parent model, e.g. {EXAMPLE}"),
            );
            let _: TokenStream = content.parse()?;
            return Ok(None);
        }
        let fields;
        syn::parenthesized!(fields in content);
        key = field_names(&fields)?;
        if content.peek(Token![,]) {
            let _: Token![,] = content.parse()?;
        }
    }
    if !content.is_empty() {
        let rest: TokenStream = content.parse()?;
        errors.spanned(
            rest,
            format!("unexpected tokens in `belongs_to(..)`, expected {EXAMPLE}"),
        );
        return Ok(None);
    }
    if key.is_empty() {
        errors.spanned(
            &parent,
            format!(
                "`belongs_to` needs the fields holding the parent's primary key, in the order of \
                 its primary-key fields, e.g. {EXAMPLE}"
            ),
        );
        return Ok(None);
    }
    Ok(Some(BelongsToAttr { parent, key, span }))
}

/// `index(a, b)` / `unique(a, b)` on the struct: field names, at least one.
fn parse_index(
    meta: &ParseNestedMeta<'_>,
    unique: bool,
    errors: &mut Errors,
) -> syn::Result<Option<IndexAttr>> {
    let which = if unique { "unique" } else { "index" };
    if !meta.input.peek(syn::token::Paren) {
        errors.spanned(
            &meta.path,
            format!(
                "`#[grant({which}(..))]` on a struct lists the fields of the index, e.g. \
                 `#[grant({which}(tenant_id, email))]`; for one field write `#[grant({which})]` \
                 on the field"
            ),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let fields = match field_names(&content) {
        Ok(fields) => fields,
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                format!(
                    "`#[grant({which}(..))]` lists field names, e.g. \
                     `#[grant({which}(tenant_id, email))]`"
                ),
            ));
            return Ok(None);
        }
    };
    if fields.is_empty() {
        errors.spanned(
            &meta.path,
            format!("`#[grant({which}(..))]` needs at least one field"),
        );
        return Ok(None);
    }
    Ok(Some(IndexAttr {
        unique,
        fields,
        span: meta.path.span(),
    }))
}

/// `methods(find = "find_one", insert = "save")`: each key a generated method, each value the
/// identifier to give it instead; no two methods may end up with one name.
fn parse_methods(
    meta: &ParseNestedMeta<'_>,
    out: &mut Vec<(String, Ident)>,
    errors: &mut Errors,
) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        errors.spanned(
            &meta.path,
            "`#[grant(methods(..))]` renames generated methods, e.g. \
             `#[grant(methods(find = \"find_one\"))]`",
        );
        return skip_value(meta);
    }
    meta.parse_nested_meta(|method| {
        let Some(name) = key_of(&method).filter(|k| METHODS.contains(&k.as_str())) else {
            let key = method.path.to_token_stream().to_string();
            let hint = closest(&key, METHODS.iter().copied())
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            errors.spanned(
                &method.path,
                format!(
                    "`{key}` is not a method the derive generates, expected {}{hint}",
                    one_of(&METHODS)
                ),
            );
            return skip_value(&method);
        };
        let Some(lit) = string_value(&method, "grant(methods", &name, "\"find_one\"", errors)?
        else {
            return Ok(());
        };
        let Some(ident) = identifier(&lit, "a method name", errors) else {
            return Ok(());
        };
        if out.iter().any(|(m, _)| *m == name) {
            errors.spanned(&method.path, format!("`{name}` is renamed twice"));
            return Ok(());
        }
        if let Some((other, _)) = out.iter().find(|(_, i)| *i == ident) {
            errors.spanned(
                &lit,
                format!("`{name}` and `{other}` would both be named `{ident}`; pick another name"),
            );
            return Ok(());
        }
        out.push((name, ident));
        Ok(())
    })?;
    // A new name may be a generated method's default only when that method is renamed too.
    // A clashing rename is reported and dropped, so no second error follows from it.
    let clashes: Vec<(String, &str)> = out
        .iter()
        .filter_map(|(name, ident)| {
            METHODS
                .iter()
                .find(|m| ident == *m && **m != name && !out.iter().any(|(r, _)| r == *m))
                .map(|other| (name.clone(), *other))
        })
        .collect();
    for (name, other) in clashes {
        if let Some(at) = out.iter().position(|(m, _)| *m == name) {
            let (_, ident) = out.remove(at);
            errors.spanned(
                &ident,
                format!("`{name}` and `{other}` would both be named `{ident}`; pick another name"),
            );
        }
    }
    Ok(())
}

/// The string's value as an identifier (`r#` allowed), or an error naming `what` it is for.
fn identifier(lit: &LitStr, what: &str, errors: &mut Errors) -> Option<Ident> {
    match syn::parse_str::<Ident>(&lit.value()) {
        Ok(mut ident) if !lit.value().starts_with("r#") => {
            ident.set_span(lit.span());
            Some(ident)
        }
        _ => {
            errors.spanned(
                lit,
                format!(
                    "`{}` is not a plain Rust identifier (no keyword, no `r#`), which {what} \
                     must be",
                    lit.value()
                ),
            );
            None
        }
    }
}

/// Parses a field's `#[primary_key]` and `#[grant(..)]`, and rejects a misplaced `#[shard(..)]`.
pub(crate) fn field(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs {
        primary_key: None,
        column: Slot::Missing,
        constant: Slot::Missing,
        index: None,
        unique: None,
    };
    for attr in attrs {
        if attr.path().is_ident("primary_key") {
            if out.primary_key.is_some() {
                errors.spanned(attr, "duplicate `#[primary_key]` on this field");
                continue;
            }
            if let Err(error) = attr.meta.require_path_only() {
                errors.push(syn::Error::new(
                    error.span(),
                    "`#[primary_key]` takes no arguments",
                ));
            }
            // Even with arguments, the intent is clear: no follow-on "no primary key" error.
            out.primary_key = Some(attr.path().span());
        } else if attr.path().is_ident("grant") {
            let result = attr.parse_nested_meta(|meta| {
                if key_of(&meta).as_deref() == Some("column") {
                    let value = string_value(&meta, "grant", "column", "\"user_id\"", errors)?;
                    let value = value.and_then(|lit| non_empty(lit, "#[grant(column = ...)]", "the SQL column name", errors));
                    store(&mut out.column, &meta, "grant", value, errors);
                } else if let Some(which @ ("index" | "unique")) = key_of(&meta).as_deref() {
                    let slot = if which == "index" { &mut out.index } else { &mut out.unique };
                    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                        errors.spanned(
                            &meta.path,
                            format!(
                                "`#[grant({which})]` on a field takes no value; for an index \
                                 over several fields write `#[grant({which}(a, b))]` on the struct"
                            ),
                        );
                        skip_value(&meta)?;
                    } else if slot.is_some() {
                        errors.spanned(&meta.path, format!("duplicate `{which}` in `#[grant(..)]`"));
                    } else {
                        *slot = Some(meta.path.span());
                    }
                } else if key_of(&meta).as_deref() == Some("constant") {
                    let value = string_value(&meta, "grant", "constant", "\"EMAIL_COLUMN\"", errors)?;
                    let value = value.filter(|lit| identifier(lit, "a column constant's name", errors).is_some());
                    store(&mut out.constant, &meta, "grant", value, errors);
                } else {
                    let key = meta.path.to_token_stream().to_string();
                    let hint = match key.as_str() {
                        "table" => "; `table` goes on the struct",
                        "primary_key" => "; write `#[primary_key]` on its own",
                        _ => "",
                    };
                    errors.spanned(
                        &meta.path,
                        format!(
                            "unknown key `{key}` in field attribute `#[grant(..)]`, expected {}{hint}",
                            one_of(GRANT_FIELD_KEYS)
                        ),
                    );
                    skip_value(&meta)?;
                }
                Ok(())
            });
            if let Err(error) = result {
                errors.push(error);
            }
        } else if attr.path().is_ident("shard") {
            errors.spanned(
                attr,
                "`#[shard(..)]` goes on the struct, not on a field; name the shard-key field with \
                 `#[shard(on = \"...\")]`",
            );
        }
    }
    out
}

/// The key of a nested meta as a plain identifier (`on`, `count`, ...), if it is one.
fn key_of(meta: &ParseNestedMeta<'_>) -> Option<String> {
    meta.path.get_ident().map(|ident| {
        let name = ident.to_string();
        name.strip_prefix("r#").map_or(name.clone(), str::to_owned)
    })
}

/// "`a`" or "one of `a`, `b`".
fn one_of(keys: &[&str]) -> String {
    match keys {
        [only] => format!("`{only}`"),
        _ => format!("one of {}", backticked_list(keys.iter().copied())),
    }
}

/// Consumes the value of an unknown key (`= expr` or `(...)`), so parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: TokenTree = meta.input.parse()?;
    }
    Ok(())
}

/// Parses `= <expr>`, reporting a missing `=` as "expected `key = example`".
fn value_expr(
    meta: &ParseNestedMeta<'_>,
    attr: &str,
    key: &str,
    example: &str,
) -> syn::Result<Expr> {
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!("expected `{key} = {example}` in `#[{attr}(..)]`")));
    }
    meta.value()?.parse().map(ungroup)
}

/// The expression inside invisible groups (a `$count:literal` passed through `macro_rules!`
/// arrives as one).
fn ungroup(expr: Expr) -> Expr {
    match expr {
        Expr::Group(group) => ungroup(*group.expr),
        other => other,
    }
}

/// `key = "string"`; `None` (and an error recorded) for another kind of value.
fn string_value(
    meta: &ParseNestedMeta<'_>,
    attr: &str,
    key: &str,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<Option<LitStr>> {
    let expr = value_expr(meta, attr, key, example)?;
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(Some(lit)),
        other => {
            errors.spanned(
                other,
                format!(
                    "`#[{attr}({key} = ...)]` expects a string literal, e.g. `{key} = {example}`"
                ),
            );
            Ok(None)
        }
    }
}

/// `key = 123`; `None` (and an error recorded) for another kind of value.
fn int_value(
    meta: &ParseNestedMeta<'_>,
    attr: &str,
    key: &str,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<Option<LitInt>> {
    let expr = value_expr(meta, attr, key, example)?;
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => Ok(Some(lit)),
        other => {
            errors.spanned(
                other,
                format!(
                    "`#[{attr}({key} = ...)]` expects an integer literal, e.g. `{key} = {example}`"
                ),
            );
            Ok(None)
        }
    }
}

/// `lit` unless it is the empty string (then an error is recorded).
fn non_empty(lit: LitStr, written: &str, expected: &str, errors: &mut Errors) -> Option<LitStr> {
    if lit.value().is_empty() {
        errors.spanned(
            &lit,
            format!("`{written}` must not be empty; expected {expected}"),
        );
        None
    } else {
        Some(lit)
    }
}

/// Stores a parsed value, reporting a key written twice at its second occurrence.
fn store<T>(
    slot: &mut Slot<T>,
    meta: &ParseNestedMeta<'_>,
    attr: &str,
    value: Option<T>,
    errors: &mut Errors,
) {
    if !slot.is_missing() {
        errors.spanned(
            &meta.path,
            format!(
                "duplicate key `{}` in `#[{attr}(..)]`",
                meta.path.to_token_stream()
            ),
        );
        return;
    }
    *slot = match value {
        Some(value) => Slot::Given(value),
        None => Slot::Invalid,
    };
}

/// The most columns a composite shard key may have (the tuple sizes `ShardKey` covers).
pub(crate) const MAX_KEY_COLUMNS: usize = 4;

/// `on = "field"` or `on = ["a", "b"]`; `None` (and an error recorded) for anything else.
fn on_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<OnAttr>> {
    let expr = value_expr(meta, "shard", "on", "\"id\"")?;
    let span = expr.span();
    let field = |expr: &Expr, errors: &mut Errors| match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => non_empty(
            lit.clone(),
            "#[shard(on = ...)]",
            "the name of the shard-key field",
            errors,
        ),
        other => {
            errors.spanned(
                other,
                "`#[shard(on = ...)]` expects a field name as a string, e.g. `on = \"id\"`, or a \
                 list of them for a composite key, e.g. `on = [\"tenant_id\", \"user_id\"]`",
            );
            None
        }
    };
    match &expr {
        Expr::Array(array) => {
            if array.elems.is_empty() {
                errors.spanned(
                    &expr,
                    "`#[shard(on = [])]` names no field; list the shard-key field(s), e.g. \
                     `on = [\"tenant_id\", \"user_id\"]`",
                );
                return Ok(None);
            }
            let mut fields: Vec<LitStr> = Vec::new();
            let mut ok = true;
            for elem in &array.elems {
                match field(elem, errors) {
                    Some(lit) => {
                        if fields.iter().any(|f| f.value() == lit.value()) {
                            errors.spanned(
                                &lit,
                                format!(
                                    "field `{}` is listed twice in `#[shard(on = [...])]`",
                                    lit.value()
                                ),
                            );
                            ok = false;
                        }
                        fields.push(lit);
                    }
                    None => ok = false,
                }
            }
            if fields.len() > MAX_KEY_COLUMNS {
                errors.spanned(
                    &expr,
                    format!(
                        "`#[shard(on = [...])]` names {} fields; a composite shard key has at \
                         most {MAX_KEY_COLUMNS}",
                        fields.len()
                    ),
                );
                ok = false;
            }
            Ok(ok.then_some(OnAttr { fields, span }))
        }
        single => Ok(field(single, errors).map(|lit| OnAttr {
            fields: vec![lit],
            span,
        })),
    }
}

/// `key(entry, entry, ...)`: every entry parsed by `entry`; `None` when an entry was invalid (the
/// error is recorded). A syntax error ends parsing of the whole attribute.
fn list<T>(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    example: &str,
    errors: &mut Errors,
    entry: fn(ParseStream<'_>, &mut Errors) -> syn::Result<Option<T>>,
) -> syn::Result<Option<Vec<T>>> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "expected `{key}({example}, ...)` in `#[shard(..)]`"
        )));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let mut out = Vec::new();
    let mut ok = true;
    while !content.is_empty() {
        match entry(&content, errors)? {
            Some(value) => out.push(value),
            None => ok = false,
        }
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(ok.then_some(out))
}

/// A shard name before `=`: an identifier (`shard_eu`) or a string (`"shard-eu"`).
fn shard_name(input: ParseStream<'_>) -> syn::Result<(String, Span)> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        Ok((lit.value(), lit.span()))
    } else {
        let ident = Ident::parse_any(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a shard name, as an identifier (`shard_eu`) or a string (`\"shard-eu\"`)",
            )
        })?;
        Ok((syn::ext::IdentExt::unraw(&ident).to_string(), ident.span()))
    }
}

/// `name = 2` or `name = 0.5` in `weights(..)`.
fn weight_entry(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<Option<Weight>> {
    let (shard, span) = shard_name(input)?;
    input.parse::<Token![=]>()?;
    let lit: Lit = input.parse()?;
    let weight = match &lit {
        Lit::Int(int) => int.base10_parse::<f64>().ok(),
        Lit::Float(float) => float.base10_parse::<f64>().ok(),
        _ => None,
    };
    match weight {
        Some(weight) if weight.is_finite() && weight > 0.0 => Ok(Some(Weight {
            shard,
            span,
            weight,
        })),
        _ => {
            errors.spanned(
                &lit,
                format!(
                    "the weight of shard `{shard}` in `#[shard(weights(..))]` must be a positive \
                     number, e.g. `{shard} = 2` or `{shard} = 0.5`"
                ),
            );
            Ok(None)
        }
    }
}

/// `name = start..end` (either end open; `..=` for an inclusive end) in `ranges(..)`.
fn range_entry(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<Option<RangeEntry>> {
    let (shard, _) = shard_name(input)?;
    input.parse::<Token![=]>()?;
    let expr: Expr = input.parse()?;
    let text = expr.to_token_stream().to_string().replace(' ', "");
    let Expr::Range(range) = &expr else {
        errors.spanned(
            &expr,
            format!(
                "expected a range of keys for shard `{shard}`, like `..1000`, `1000..2000` or \
                 `2000..`, got `{text}`"
            ),
        );
        return Ok(None);
    };
    let start = range.start.as_deref().map(|e| int_bound(e, &shard, errors));
    let end = range.end.as_deref().map(|e| int_bound(e, &shard, errors));
    let (start, end) = match (start, end) {
        (Some(None), _) | (_, Some(None)) => return Ok(None),
        (start, end) => (start.flatten(), end.flatten()),
    };
    let time = match (start, end) {
        (Some((_, a)), Some((_, b))) if a != b => {
            errors.spanned(
                &expr,
                format!(
                    "range `{text}` of shard `{shard}` mixes a date with an integer; write both \
                     bounds as dates (\"2025-01-01\") for a date or timestamp key, or both as \
                     integers"
                ),
            );
            return Ok(None);
        }
        (Some((_, t)), _) | (_, Some((_, t))) => t,
        (None, None) => false,
    };
    let (start, end) = (start.map(|(v, _)| v), end.map(|(v, _)| v));
    let end = match range.limits {
        syn::RangeLimits::HalfOpen(_) => end,
        // `..=i64::MAX` is open above; `..="2025-12-31"` takes that whole day (a date key).
        syn::RangeLimits::Closed(_) if time => end.and_then(|e| e.checked_add(86_400_000_000)),
        syn::RangeLimits::Closed(_) => end.and_then(|e| e.checked_add(1)),
    };
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        errors.spanned(
            &expr,
            format!(
                "range `{text}` of shard `{shard}` holds no key; its start must be below its end"
            ),
        );
        return Ok(None);
    }
    Ok(Some(RangeEntry {
        shard,
        span: expr.span(),
        text,
        start,
        end,
        time,
    }))
}

/// An integer literal (possibly negative) as a range bound, or a date / UTC timestamp string
/// as microseconds since 2000-01-01 (`true`); `None` after recording an error.
fn int_bound(expr: &Expr, shard: &str, errors: &mut Errors) -> Option<(i64, bool)> {
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(lit), ..
    }) = expr
    {
        return match crate::timetext::micros_since_2000(&lit.value()) {
            Ok(micros) => Some((micros, true)),
            Err(why) => {
                errors.spanned(
                    expr,
                    format!(
                        "the range bound {:?} of shard `{shard}` is not a date or UTC timestamp \
                         ({why}); write `\"2025-01-01\"` or `\"2025-01-01T06:00:00Z\"`",
                        lit.value()
                    ),
                );
                None
            }
        };
    }
    let parsed = match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit.base10_parse::<i64>().ok(),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(lit), ..
            }) => format!("-{}", lit.base10_digits()).parse::<i64>().ok(),
            _ => None,
        },
        _ => None,
    };
    if parsed.is_none() {
        errors.spanned(
            expr,
            format!(
                "the bounds of the range of shard `{shard}` must be integer literals that fit an \
                 `i64`, e.g. `20250101..20260101`, or dates for a date or timestamp key \
                 (`\"2025-01-01\"..\"2025-02-01\"`)"
            ),
        );
    }
    parsed.map(|v| (v, false))
}

/// `value = "shard"` in `map(..)`: the value an identifier, a string or an integer.
fn map_entry(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<Option<MapEntry>> {
    let (key, key_span) = if input.peek(LitInt) || input.peek(Token![-]) {
        let negative = input.parse::<Option<Token![-]>>()?.is_some();
        let lit: LitInt = input.parse()?;
        let digits = format!("{}{}", if negative { "-" } else { "" }, lit.base10_digits());
        match digits.parse::<i64>() {
            Ok(v) => (Some(MapKey::Int(v)), lit.span()),
            Err(_) => {
                errors.spanned(
                    &lit,
                    format!("`{digits}` in `#[shard(map(..))]` does not fit an `i64`"),
                );
                (None, lit.span())
            }
        }
    } else {
        let (name, span) = shard_name(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a key value: an identifier (`eu`), a string (`\"eu-west\"`) or an \
                 integer (`42`)",
            )
        })?;
        (Some(MapKey::Text(name)), span)
    };
    input.parse::<Token![=]>()?;
    let shard = match input.parse::<Lit>()? {
        Lit::Str(lit) if !lit.value().is_empty() => Some(lit),
        other => {
            errors.spanned(
                &other,
                "expected the shard's name as a non-empty string, e.g. `eu = \"shard_eu\"`",
            );
            None
        }
    };
    Ok(match (key, shard) {
        (Some(key), Some(shard)) => Some(MapEntry {
            key,
            key_span,
            shard,
        }),
        _ => None,
    })
}

/// A non-empty `map(..)` with distinct values, all integers or all strings.
fn check_map(
    meta: &ParseNestedMeta<'_>,
    entries: Vec<MapEntry>,
    errors: &mut Errors,
) -> Option<Vec<MapEntry>> {
    let Some(first) = entries.first() else {
        errors.spanned(
            &meta.path,
            "`#[shard(map(..))]` is empty; list each key value with its shard, e.g. \
             `map(eu = \"shard_eu\", us = \"shard_us\")`",
        );
        return None;
    };
    let mut ok = true;
    let is_int = matches!(first.key, MapKey::Int(_));
    for (i, entry) in entries.iter().enumerate() {
        if matches!(entry.key, MapKey::Int(_)) != is_int {
            errors.at(
                entry.key_span,
                "`#[shard(map(..))]` mixes integer and string values; the key column is one or \
                 the other",
            );
            ok = false;
        }
        if let Some(before) = entries[..i].iter().find(|e| e.key == entry.key) {
            let shown = match &entry.key {
                MapKey::Int(v) => v.to_string(),
                MapKey::Text(s) => s.clone(),
            };
            errors.at(
                entry.key_span,
                format!(
                    "value `{shown}` is listed twice in `#[shard(map(..))]` (first to `{}`); \
                     each value has one shard",
                    before.shard.value()
                ),
            );
            ok = false;
        }
    }
    ok.then_some(entries)
}
