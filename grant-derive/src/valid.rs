//! Checks across attributes and fields, producing the model `expand.rs` generates code for.
//!
//! The shard key must name a field, must not be an `Option` and must be part of the primary key;
//! there must be a primary key; column names and column constants must not clash.

use std::collections::HashMap;

use syn::{Ident, LitStr, Type, Visibility};

use crate::Derive;
use crate::ast::{Field, Input, is_option};
use crate::attr::{
    DEFAULT_PREFIX, DEFAULT_SHARD, Errors, MapKey, OnAttr, RangeEntry, ShardAttr, Slot, Strategy,
};
use crate::names::{backticked_list, closest, screaming_snake_case, snake_case};

/// A model that passed every check.
pub(crate) struct Model<'a> {
    /// The struct's name.
    pub(crate) ident: &'a Ident,
    /// The struct's visibility, given to the generated inherent items.
    pub(crate) vis: &'a Visibility,
    /// The struct name as a string (without `r#`).
    pub(crate) name: String,
    /// The SQL table name.
    pub(crate) table: String,
    /// Every field, in order.
    pub(crate) columns: Vec<Column<'a>>,
    /// Indices (into `columns`) of the primary-key fields, in field order.
    pub(crate) primary_key: Vec<usize>,
    /// Where the rows live.
    pub(crate) placement: Placement,
    /// Generated methods renamed with `#[grant(methods(..))]`.
    pub(crate) methods: Vec<(String, Ident)>,
    /// The secondary indexes, field ones first (in field order), then the struct's.
    pub(crate) indexes: Vec<Index>,
    /// `#[grant(belongs_to(..))]`: the parents this model's rows are placed with.
    pub(crate) belongs_to: Vec<Relation>,
}

/// A parent of the model (`#[grant(belongs_to(Parent, key(a, b)))]`).
pub(crate) struct Relation {
    /// The parent model's type, as written.
    pub(crate) parent: syn::Path,
    /// Indices (into `columns`) of the fields holding the parent's primary key, in the
    /// parent's primary-key order.
    pub(crate) key: Vec<usize>,
    /// The span of `belongs_to`, given to the co-location checks.
    pub(crate) span: proc_macro2::Span,
    /// The span of each field of `key(..)`, given to the code reading it (a type that is
    /// not the parent's is reported there).
    pub(crate) key_spans: Vec<proc_macro2::Span>,
}

impl Plan {
    /// The placement's signature: equal for two models exactly when equal shard keys land on
    /// the same shard (same strategy, shards and parameters); what `belongs_to` compares.
    pub(crate) fn signature(&self, table: &str) -> String {
        match self {
            Plan::Hash { count, prefix } => format!("hash/{count}/{prefix}"),
            Plan::PgHash { count, prefix } => format!("pg_hash/{count}/{prefix}"),
            Plan::Consistent { prefix, vnodes } => format!("consistent_hash/{prefix}/{vnodes:?}"),
            Plan::Range {
                shards,
                ranges,
                time,
            } => format!("range/{shards:?}/{ranges:?}/{time}"),
            Plan::Mapping {
                shards,
                entries,
                default,
                text,
            } => format!("mapping/{shards:?}/{entries:?}/{default:?}/{text}"),
            // Each directory model has its own key -> shard table: never placed like another.
            Plan::Directory { .. } => format!("directory/{table}"),
            Plan::Custom { resolver } => {
                format!("custom/{}", quote::ToTokens::to_token_stream(resolver))
            }
        }
    }
}

/// A secondary index `create_table` creates.
pub(crate) struct Index {
    /// The SQL index name (unique per database: derived from the table and the columns).
    pub(crate) name: String,
    /// Indices (into `columns`), in index order.
    pub(crate) columns: Vec<usize>,
    /// A unique index.
    pub(crate) unique: bool,
}

/// One field as a column.
pub(crate) struct Column<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// The Rust field name (without `r#`).
    pub(crate) field: String,
    /// The SQL column name.
    pub(crate) name: String,
    /// The typed column constant, e.g. `BALANCE`.
    pub(crate) constant: Ident,
    pub(crate) primary_key: bool,
}

/// Where a model's rows live.
pub(crate) enum Placement {
    /// `#[derive(Sharded)]`: spread over shards by a shard key.
    Sharded(Sharding),
    /// `#[derive(Model)]`: every row on the shard named `shard`; with `#[grant(reference)]`
    /// (`reference`), every row on every shard, read from `shard`.
    Single { shard: String, reference: bool },
}

/// A sharded model's placement.
pub(crate) struct Sharding {
    pub(crate) plan: Plan,
    /// Indices (into `columns`) of the shard-key fields, in key order.
    pub(crate) key: Vec<usize>,
    /// Positions of the shard-key fields within the primary key, in key order.
    pub(crate) key_in_primary_key: Vec<usize>,
}

/// How a strategy places keys, with everything the expansion needs.
pub(crate) enum Plan {
    /// `hash`: `count` shards `{prefix}{i}`.
    Hash { count: u32, prefix: String },
    /// `pg_hash`: `count` shards `{prefix}{i}`, PostgreSQL's modulus.
    PgHash { count: u32, prefix: String },
    /// `consistent_hash`: `vnodes[i]` ring points for shard `{prefix}{i}`.
    Consistent { prefix: String, vnodes: Vec<u32> },
    /// `range`: shards named in `ranges(..)`; the ranges sorted, disjoint, without gaps.
    Range {
        shards: Vec<String>,
        /// (start, end, shard position).
        ranges: Vec<(Option<i64>, Option<i64>, u32)>,
        /// Whether the bounds were written as dates: microseconds since 2000-01-01 UTC, in
        /// the key's unit through `grant::key::time_bound`.
        time: bool,
    },
    /// `mapping`: shards named in `map(..)` and `default`.
    Mapping {
        shards: Vec<String>,
        /// Sorted by key.
        entries: Vec<(MapKey, u32)>,
        default: Option<u32>,
        /// Whether the listed values are strings (else integers).
        text: bool,
    },
    /// `directory`: `count` shards `{prefix}{i}`, the directory table on `home`.
    Directory {
        count: u32,
        prefix: String,
        home: String,
        policy: String,
    },
    /// `custom`: the user's resolver type.
    Custom { resolver: syn::Path },
}

impl Plan {
    /// Whether some keys may have no shard (so the `try_` routes can fail).
    pub(crate) fn may_leave_keys_unplaced(&self) -> bool {
        match self {
            Plan::Range { ranges, .. } => {
                ranges.first().is_some_and(|r| r.0.is_some())
                    || ranges.last().is_some_and(|r| r.1.is_some())
            }
            Plan::Mapping { default, .. } => default.is_none(),
            Plan::Directory { .. } | Plan::Custom { .. } => true,
            _ => false,
        }
    }
}

/// Checks `input`; `None` when an error was recorded that leaves no model to generate.
pub(crate) fn check<'a>(input: &Input<'a>, kind: Derive, errors: &mut Errors) -> Option<Model<'a>> {
    let name = crate::ast::unraw(input.ident);
    let table = input
        .attrs
        .table
        .get()
        .map_or_else(|| snake_case(&name), LitStr::value);

    let columns = columns(&input.fields, errors);
    let primary_key: Vec<usize> = input
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.attrs.primary_key.is_some())
        .map(|(i, _)| i)
        .collect();
    if primary_key.is_empty() {
        errors.spanned(
            input.ident,
            format!(
                "`{name}` has no primary key; mark the field(s) that identify a row with \
                 `#[primary_key]`"
            ),
        );
    }

    let placement = match kind {
        Derive::Sharded => sharded(input, &name, &primary_key, errors),
        Derive::Model => Some(Placement::Single {
            shard: input
                .attrs
                .shard_name
                .get()
                .map_or_else(|| DEFAULT_SHARD.to_owned(), LitStr::value),
            reference: input.attrs.reference.is_some(),
        }),
    };

    // A nullable primary-key column (the shard key has its own, more specific error).
    let shard_key: &[usize] = match &placement {
        Some(Placement::Sharded(sharding)) => &sharding.key,
        _ => &[],
    };
    for &i in &primary_key {
        let Some(field) = input.fields.get(i) else {
            continue;
        };
        if is_option(field.ty) && !shard_key.contains(&i) && !is_shard_key_named(input, field) {
            errors.spanned(
                field.ty,
                format!(
                    "primary-key field `{}` cannot be an `Option`: primary-key columns are never \
                     NULL; use the inner type",
                    field.name()
                ),
            );
        }
    }

    let placement = placement?;
    if primary_key.is_empty() || columns.len() != input.fields.len() {
        return None;
    }
    let indexes = indexes(input, &name, &table, &columns, &placement, errors);
    let belongs_to = relations(input, &name, errors);
    Some(Model {
        ident: input.ident,
        vis: input.vis,
        name,
        table,
        columns,
        primary_key,
        placement,
        methods: input.attrs.methods.clone(),
        indexes,
        belongs_to,
    })
}

/// The fields of each `belongs_to(Parent, key(..))` as column positions. Whether the parent is
/// placed like this model is checked where the parent's placement is known: by the compiler, in
/// constants the expansion generates.
fn relations(input: &Input<'_>, name: &str, errors: &mut Errors) -> Vec<Relation> {
    let mut out = Vec::new();
    for attr in &input.attrs.belongs_to {
        let listed = field_list(
            input,
            &attr.key,
            "`key(..)`",
            "`key(..)` lists this model's fields holding the parent's primary key, in the \
             parent's primary-key order",
            name,
            errors,
        );
        if let Some(key) = listed {
            out.push(Relation {
                parent: attr.parent.clone(),
                key,
                span: attr.span,
                key_spans: attr.key.iter().map(Ident::span).collect(),
            });
        }
    }
    out
}

/// The indexes of `#[grant(index)]` / `#[grant(unique)]` on fields and `#[grant(index(..))]` /
/// `#[grant(unique(..))]` on the struct. A unique index of a sharded model must contain every
/// shard-key column: each shard enforces uniqueness among its own rows only, so a unique set
/// without the shard key could hold the same values twice, on two shards.
fn indexes(
    input: &Input<'_>,
    name: &str,
    table: &str,
    columns: &[Column<'_>],
    placement: &Placement,
    errors: &mut Errors,
) -> Vec<Index> {
    // (columns, unique, span of what declared it)
    let mut declared: Vec<(Vec<usize>, bool, proc_macro2::Span)> = Vec::new();
    for (i, field) in input.fields.iter().enumerate() {
        if let Some(span) = field.attrs.index {
            declared.push((vec![i], false, span));
        }
        if let Some(span) = field.attrs.unique {
            declared.push((vec![i], true, span));
        }
    }
    for attr in &input.attrs.indexes {
        let listed = field_list(
            input,
            &attr.fields,
            "this index",
            "an index lists fields by their Rust names",
            name,
            errors,
        );
        if let Some(list) = listed {
            declared.push((list, attr.unique, attr.span));
        }
    }
    let shard_key: &[usize] = match placement {
        Placement::Sharded(sharding) => &sharding.key,
        Placement::Single { .. } => &[],
    };
    let mut out: Vec<Index> = Vec::new();
    for (list, unique, span) in declared {
        let names: Vec<&str> = list.iter().map(|&i| columns[i].name.as_str()).collect();
        if unique && !shard_key.iter().all(|k| list.contains(k)) {
            let key: Vec<&str> = shard_key
                .iter()
                .map(|&k| columns[k].field.as_str())
                .collect();
            let fields: Vec<&str> = list.iter().map(|&i| columns[i].field.as_str()).collect();
            errors.at(
                span,
                format!(
                    "a unique index on ({}) of `{name}` must contain the shard key ({}): each \
                     shard enforces uniqueness only among its own rows, so two rows with equal \
                     values on different shards would both be accepted; write \
                     `#[grant(unique({}, {}))]` on the struct, or use a non-unique `index`",
                    fields.join(", "),
                    key.join(", "),
                    key.join(", "),
                    fields
                        .iter()
                        .filter(|f| !key.contains(f))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            );
            continue;
        }
        if out.iter().any(|o| o.columns == list && o.unique == unique) {
            errors.at(
                span,
                format!("this index on ({}) is declared twice", names.join(", ")),
            );
            continue;
        }
        let suffix = if unique { "key" } else { "idx" };
        out.push(Index {
            name: index_name(table, &names, suffix),
            columns: list,
            unique,
        });
    }
    out
}

/// The positions of the fields `idents` names (each once), or `None` with an error recorded at
/// each unknown or repeated one: `within` names the list ("this index"), `what` says what it
/// lists, for the message.
fn field_list(
    input: &Input<'_>,
    idents: &[Ident],
    within: &str,
    what: &str,
    name: &str,
    errors: &mut Errors,
) -> Option<Vec<usize>> {
    let mut list = Vec::new();
    let mut ok = true;
    for ident in idents {
        let wanted = crate::ast::unraw(ident);
        match input.fields.iter().position(|f| f.name() == wanted) {
            Some(i) if list.contains(&i) => {
                errors.spanned(
                    ident,
                    format!("field `{wanted}` is listed twice in {within}"),
                );
                ok = false;
            }
            Some(i) => list.push(i),
            None => {
                let names: Vec<String> = input.fields.iter().map(Field::name).collect();
                let hint = closest(&wanted, names.iter().map(String::as_str))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                errors.spanned(
                    ident,
                    format!("`{name}` has no field `{wanted}`; {what}{hint}"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(list)
}

/// `{table}_{col}_.._{suffix}`, PostgreSQL's own naming; a name longer than PostgreSQL's 63
/// bytes is cut and ends in 8 hex digits of a stable hash (FNV-1a) of the whole name.
fn index_name(table: &str, columns: &[&str], suffix: &str) -> String {
    let full = format!("{table}_{}_{suffix}", columns.join("_"));
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a, 32 bits (offset basis 2166136261, prime 16777619).
    let hash = full.bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    let mut cut = 54;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash:08x}", &full[..cut])
}

/// The columns; clashing column names or constants are recorded as errors and dropped.
fn columns<'a>(fields: &[Field<'a>], errors: &mut Errors) -> Vec<Column<'a>> {
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut by_constant: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let field_name = field.name();
        let name = field
            .attrs
            .column
            .get()
            .map_or_else(|| field_name.clone(), LitStr::value);
        let constant = field
            .attrs
            .constant
            .get()
            .map_or_else(|| screaming_snake_case(&field_name), LitStr::value);
        let mut ok = true;
        if let Some(other) = by_name.get(&name) {
            let at = field
                .attrs
                .column
                .get()
                .map_or_else(|| field.ident.span(), LitStr::span);
            errors.at(
                at,
                format!(
                    "column `{name}` of field `{field_name}` is already the column of field \
                     `{other}`; rename one with `#[grant(column = \"...\")]`"
                ),
            );
            ok = false;
        }
        if let Some(other) = by_constant.get(&constant) {
            errors.spanned(
                field.ident,
                format!(
                    "field `{field_name}` and field `{other}` would both get the column constant \
                     `{constant}`; name one with `#[grant(constant = \"...\")]`"
                ),
            );
            ok = false;
        }
        by_name
            .entry(name.clone())
            .or_insert_with(|| field_name.clone());
        by_constant
            .entry(constant.clone())
            .or_insert_with(|| field_name.clone());
        if ok {
            out.push(Column {
                ident: field.ident,
                ty: field.ty,
                field: field_name,
                name,
                constant: Ident::new(&constant, field.ident.span()),
                primary_key: field.attrs.primary_key.is_some(),
            });
        }
    }
    out
}

/// Whether `field` is the one `#[shard(on = ...)]` names (even if the placement failed).
fn is_shard_key_named(input: &Input<'_>, field: &Field<'_>) -> bool {
    input
        .attrs
        .shard
        .as_ref()
        .and_then(|shard| shard.on.get())
        .is_some_and(|on| {
            on.fields
                .iter()
                .any(|f| f.value().strip_prefix("r#").unwrap_or(&f.value()) == field.name())
        })
}

/// Checks `#[shard(..)]` against the fields.
fn sharded(
    input: &Input<'_>,
    name: &str,
    primary_key: &[usize],
    errors: &mut Errors,
) -> Option<Placement> {
    let Some(shard) = &input.attrs.shard else {
        errors.spanned(
            input.ident,
            format!(
                "`#[derive(Sharded)]` needs a `#[shard(strategy = \"hash\", on = \"<field>\", \
                 count = <shards>)]` attribute on `{name}`; for a table on one shard, derive \
                 `Model` instead"
            ),
        );
        return None;
    };
    let strategy = shard.strategy.get().map(|s| s.strategy);
    if shard.well_formed {
        missing_keys(shard, strategy, errors);
    }
    if let Some(strategy) = strategy {
        foreign_keys(shard, strategy, errors);
    }

    let on = shard.on.get();
    let key = on.and_then(|on| key_fields(input, name, on, strategy, primary_key, errors));

    let plan = match strategy? {
        Strategy::Hash => Plan::Hash {
            count: *shard.count.get()?,
            prefix: prefix(shard),
        },
        Strategy::PgHash => Plan::PgHash {
            count: *shard.count.get()?,
            prefix: prefix(shard),
        },
        Strategy::ConsistentHash => consistent(shard, errors)?,
        Strategy::Range => range(shard.ranges.get()?, errors)?,
        Strategy::Mapping => mapping(shard)?,
        Strategy::Directory => directory(shard, errors)?,
        Strategy::Custom => Plan::Custom {
            resolver: shard.resolver.get()?.clone(),
        },
    };
    let (key, key_in_primary_key) = key?;
    Some(Placement::Sharded(Sharding {
        plan,
        key,
        key_in_primary_key,
    }))
}

fn prefix(shard: &ShardAttr<'_>) -> String {
    shard
        .prefix
        .get()
        .map_or_else(|| DEFAULT_PREFIX.to_owned(), LitStr::value)
}

/// Reports the keys the strategy needs but the attribute lacks.
fn missing_keys(shard: &ShardAttr<'_>, strategy: Option<Strategy>, errors: &mut Errors) {
    let mut missing = Vec::new();
    if matches!(shard.strategy, Slot::Missing) {
        missing.push(format!(
            "`strategy = \"...\"`, one of {}",
            Strategy::expected()
        ));
    }
    if matches!(shard.on, Slot::Missing) {
        missing.push("`on = \"<field>\"`, the field whose value picks the shard".to_owned());
    }
    let needs_count = strategy.is_none_or(|s| !s.names_shards());
    if needs_count && matches!(shard.count, Slot::Missing) {
        missing.push("`count = <shards>`, the number of shards".to_owned());
    }
    if strategy == Some(Strategy::Range) && matches!(shard.ranges, Slot::Missing) {
        missing.push(
            "`ranges(<shard> = <start>..<end>, ...)`, the key range of each shard, e.g. \
             `ranges(shard_old = ..1000, shard_new = 1000..)`"
                .to_owned(),
        );
    }
    if strategy == Some(Strategy::Custom) && matches!(shard.resolver, Slot::Missing) {
        missing.push(
            "`resolver = \"<type path>\"`, the type implementing \
             `grant::resolve::Resolver` (and `Default`), e.g. `resolver = \"crate::MyResolver\"`"
                .to_owned(),
        );
    }
    if strategy == Some(Strategy::Mapping) && matches!(shard.map, Slot::Missing) {
        missing.push(
            "`map(<value> = \"<shard>\", ...)`, the shard of each key value, e.g. \
             `map(eu = \"shard_eu\", us = \"shard_us\")`"
                .to_owned(),
        );
    }
    for what in missing {
        errors.spanned(shard.attr, format!("`#[shard(..)]` is missing {what}"));
    }
}

/// Reports keys that do not belong to the chosen strategy, at the key.
fn foreign_keys(shard: &ShardAttr<'_>, strategy: Strategy, errors: &mut Errors) {
    let written = shard
        .strategy
        .get()
        .map_or_else(String::new, |s| s.lit.value());
    let options = strategy.options();
    for (key, span) in &shard.written {
        if matches!(key.as_str(), "strategy" | "on") || options.contains(&key.as_str()) {
            continue;
        }
        let message = match key.as_str() {
            "count" | "prefix" if strategy.names_shards() => {
                let named_in = match strategy {
                    Strategy::Range => "`ranges(..)`",
                    Strategy::Custom => "its resolver type",
                    _ => "`map(..)` and `default`",
                };
                format!(
                    "`{key}` does not apply to `strategy = \"{written}\"`, which names its shards \
                     in {named_in}; remove `{key}`"
                )
            }
            "vnodes" | "weights" => format!(
                "`{key}` only applies to `strategy = \"consistent_hash\"`, not \
                 `strategy = \"{written}\"`; remove it"
            ),
            "ranges" => format!(
                "`ranges(..)` only applies to `strategy = \"range\"`, not \
                 `strategy = \"{written}\"`; remove it"
            ),
            "home" | "policy" => format!(
                "`{key}` only applies to `strategy = \"directory\"`, not \
                 `strategy = \"{written}\"`; remove it"
            ),
            "resolver" => format!(
                "`resolver` only applies to `strategy = \"custom\"`, not \
                 `strategy = \"{written}\"`; remove it"
            ),
            "map" | "default" => format!(
                "`{key}` only applies to `strategy = \"mapping\"`, not `strategy = \"{written}\"`; \
                 remove it"
            ),
            _ => continue,
        };
        errors.at(*span, message);
    }
}

/// The shard-key fields and their positions in the primary key, after checking each names a
/// field, is not an `Option` and is part of the primary key.
fn key_fields(
    input: &Input<'_>,
    name: &str,
    on: &OnAttr,
    strategy: Option<Strategy>,
    primary_key: &[usize],
    errors: &mut Errors,
) -> Option<(Vec<usize>, Vec<usize>)> {
    if let Some(strategy) = strategy
        && on.fields.len() > 1
        && !strategy.takes_composite_keys()
    {
        errors.at(
            on.span,
            format!(
                "`strategy = \"{}\"` places rows by one key column, but `on` names {}; composite \
                 shard keys work with `hash`, `pg_hash`, `consistent_hash` and `custom`",
                shard_strategy_name(input),
                on.fields.len()
            ),
        );
        return None;
    }
    let mut keys = Vec::new();
    let mut positions = Vec::new();
    let mut ok = true;
    for lit in &on.fields {
        let Some(key) = key_field(input, name, lit, errors) else {
            ok = false;
            continue;
        };
        let Some(field) = input.fields.get(key) else {
            ok = false;
            continue;
        };
        if is_option(field.ty) {
            errors.spanned(
                field.ty,
                format!(
                    "shard key `{}` cannot be an `Option`: shard keys are never NULL; use the \
                     inner type",
                    field.name()
                ),
            );
            ok = false;
            continue;
        }
        match primary_key.iter().position(|&i| i == key) {
            Some(position) => {
                keys.push(key);
                positions.push(position);
            }
            None => {
                if !primary_key.is_empty() {
                    errors.spanned(
                        field.ident,
                        format!(
                            "shard key `{}` is not part of the primary key of `{name}`; mark it \
                             `#[primary_key]` too (a composite key is fine) so that a primary key \
                             always names one shard",
                            field.name()
                        ),
                    );
                }
                ok = false;
            }
        }
    }
    ok.then_some((keys, positions))
}

fn shard_strategy_name(input: &Input<'_>) -> String {
    input
        .attrs
        .shard
        .as_ref()
        .and_then(|s| s.strategy.get())
        .map_or_else(String::new, |s| s.lit.value())
}

/// `consistent_hash`: the ring's vnodes per shard, weights applied.
fn consistent(shard: &ShardAttr<'_>, errors: &mut Errors) -> Option<Plan> {
    let count = *shard.count.get()?;
    let prefix = prefix(shard);
    let vnodes = shard.vnodes.get().copied().unwrap_or(DEFAULT_VNODES);
    let mut per_shard = vec![vnodes; count as usize];
    let mut ok = true;
    if let Some(weights) = shard.weights.get() {
        let mut seen: Vec<&str> = Vec::new();
        for w in weights {
            let index = w
                .shard
                .strip_prefix(prefix.as_str())
                .filter(|rest| !rest.starts_with('0') || *rest == "0")
                .and_then(|rest| rest.parse::<u32>().ok())
                .filter(|&i| i < count);
            let Some(index) = index else {
                errors.at(
                    w.span,
                    format!(
                        "`weights(..)` names shard `{}`, which is not one of this model's shards \
                         `{prefix}0` .. `{prefix}{}`",
                        w.shard,
                        count - 1
                    ),
                );
                ok = false;
                continue;
            };
            if seen.contains(&w.shard.as_str()) {
                errors.at(
                    w.span,
                    format!("shard `{}` is weighted twice in `weights(..)`", w.shard),
                );
                ok = false;
                continue;
            }
            seen.push(&w.shard);
            let points = (f64::from(vnodes) * w.weight).round();
            if !(1.0..=f64::from(MAX_POINTS_PER_SHARD)).contains(&points) {
                errors.at(
                    w.span,
                    format!(
                        "weight {} gives shard `{}` {points} ring points ({vnodes} vnodes × \
                         weight); it needs between 1 and {MAX_POINTS_PER_SHARD}",
                        w.weight, w.shard
                    ),
                );
                ok = false;
                continue;
            }
            per_shard[index as usize] = points as u32;
        }
    }
    let total: u64 = per_shard.iter().map(|&n| u64::from(n)).sum();
    if total > MAX_RING_POINTS {
        errors.spanned(
            shard.attr,
            format!(
                "the ring would have {total} points ({count} shards × {vnodes} vnodes); at most \
                 {MAX_RING_POINTS}: lower `vnodes`"
            ),
        );
        ok = false;
    }
    ok.then_some(Plan::Consistent {
        prefix,
        vnodes: per_shard,
    })
}

/// The default `vnodes` of `consistent_hash` (`grant::resolve::consistent::DEFAULT_VNODES`).
const DEFAULT_VNODES: u32 = 150;
/// The most ring points one shard may have.
const MAX_POINTS_PER_SHARD: u32 = 1 << 20;
/// The most ring points a model may have (`grant::resolve::consistent::MAX_POINTS`).
const MAX_RING_POINTS: u64 = 1 << 24;

/// `range`: the ranges sorted, checked for overlaps and gaps, and their shards listed in order of
/// first appearance.
fn range(entries: &[RangeEntry], errors: &mut Errors) -> Option<Plan> {
    // Dates and integers are different units: checked before any overlap.
    let time = entries.iter().any(|e| e.time);
    if let Some(int) = entries
        .iter()
        .find(|e| time && !e.time && (e.start.is_some() || e.end.is_some()))
    {
        errors.at(
            int.span,
            format!(
                "range `{}` of shard `{}` has integer bounds while others are dates; write every \
                 bound as a date (\"2025-01-01\") for a date or timestamp key",
                int.text, int.shard
            ),
        );
        return None;
    }
    let mut shards: Vec<String> = Vec::new();
    for e in entries {
        if !shards.contains(&e.shard) {
            shards.push(e.shard.clone());
        }
    }
    let mut sorted: Vec<&RangeEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.start.map_or(i128::MIN, i128::from));
    let mut ok = true;
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        match (a.end, b.start) {
            (Some(end), Some(start)) if end == start => {}
            (Some(end), Some(start)) if end < start => {
                errors.at(
                    b.span,
                    format!(
                        "no shard holds keys `{end}..{start}`: range `{}` of shard `{}` ends at \
                         {end} and range `{}` of shard `{}` starts at {start}; make one of them \
                         reach the other",
                        a.text, a.shard, b.text, b.shard
                    ),
                );
                ok = false;
            }
            _ => {
                errors.at(
                    b.span,
                    format!(
                        "range `{}` of shard `{}` overlaps range `{}` of shard `{}`; each key \
                         belongs to one range",
                        b.text, b.shard, a.text, a.shard
                    ),
                );
                ok = false;
            }
        }
    }
    let ranges = sorted
        .iter()
        .map(|e| {
            let index = shards.iter().position(|s| *s == e.shard).unwrap_or(0) as u32;
            (e.start, e.end, index)
        })
        .collect();
    ok.then_some(Plan::Range {
        shards,
        ranges,
        time,
    })
}

/// `mapping`: the listed values sorted, and their shards (then the default's) listed in order of
/// first appearance.
fn directory(shard: &ShardAttr<'_>, errors: &mut Errors) -> Option<Plan> {
    let count = *shard.count.get()?;
    let prefix = prefix(shard);
    if matches!(shard.home, Slot::Invalid) || matches!(shard.policy, Slot::Invalid) {
        return None;
    }
    let home = match shard.home.get() {
        Some(lit) => {
            let name = lit.value();
            let index = name
                .strip_prefix(prefix.as_str())
                .filter(|rest| !rest.starts_with('0') || *rest == "0")
                .and_then(|rest| rest.parse::<u32>().ok())
                .filter(|&i| i < count);
            if index.is_none() {
                errors.spanned(
                    lit,
                    format!(
                        "`#[shard(home = \"{name}\")]` is not one of this model's shards \
                         `{prefix}0` .. `{prefix}{}`; the directory table lives on one of them",
                        count - 1
                    ),
                );
                return None;
            }
            name
        }
        None => format!("{prefix}0"),
    };
    let policy = shard
        .policy
        .get()
        .map_or_else(|| "least_rows".to_owned(), LitStr::value);
    Some(Plan::Directory {
        count,
        prefix,
        home,
        policy,
    })
}

fn mapping(shard: &ShardAttr<'_>) -> Option<Plan> {
    let entries = shard.map.get()?;
    if matches!(shard.default, Slot::Invalid) {
        return None;
    }
    let mut shards: Vec<String> = Vec::new();
    let mut position = |name: String| -> u32 {
        match shards.iter().position(|s| *s == name) {
            Some(i) => i as u32,
            None => {
                shards.push(name);
                (shards.len() - 1) as u32
            }
        }
    };
    let mut listed: Vec<(MapKey, u32)> = entries
        .iter()
        .map(|e| (e.key.clone(), position(e.shard.value())))
        .collect();
    let default = shard.default.get().map(|lit| position(lit.value()));
    listed.sort_by(|a, b| a.0.lookup_order().cmp(&b.0.lookup_order()));
    let text = matches!(listed.first(), Some((MapKey::Text(_), _)));
    Some(Plan::Mapping {
        shards,
        entries: listed,
        default,
        text,
    })
}

/// The index of the field `#[shard(on = "...")]` names, or an error suggesting the closest one.
fn key_field(input: &Input<'_>, name: &str, on: &LitStr, errors: &mut Errors) -> Option<usize> {
    let written = on.value();
    // `on = "r#type"` and `on = "type"` both name the field `r#type`.
    let wanted = written.strip_prefix("r#").unwrap_or(&written).to_owned();
    if let Some(index) = input.fields.iter().position(|f| f.name() == wanted) {
        return Some(index);
    }
    let names: Vec<String> = input.fields.iter().map(Field::name).collect();
    let by_column = input.fields.iter().find(|f| {
        f.attrs
            .column
            .get()
            .is_some_and(|column| column.value() == wanted)
    });
    let hint = if let Some(field) = by_column {
        format!(
            "; `on` takes the field name, not the column name: did you mean `{}`?",
            field.name()
        )
    } else if let Some(best) = closest(&wanted, names.iter().map(String::as_str)) {
        format!("; did you mean `{best}`?")
    } else if names.is_empty() {
        String::new()
    } else {
        format!(
            "; expected one of {}",
            backticked_list(names.iter().map(String::as_str))
        )
    };
    errors.spanned(
        on,
        format!("`#[shard(on = {written:?})]` names no field of `{name}`{hint}"),
    );
    None
}
