//! Checks across attributes and fields, producing the model `expand.rs` generates code for.
//!
//! The shard key must name a field, must not be an `Option` and must be part of the primary key;
//! there must be a primary key; column names and column constants must not clash.

use std::collections::HashMap;

use syn::{Ident, LitStr, Type, Visibility};

use crate::Derive;
use crate::ast::{Field, Input, is_option};
use crate::attr::{DEFAULT_PREFIX, DEFAULT_SHARD, Errors, Slot, Strategy};
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
    /// `#[derive(Sharded)]`: spread over `count` shards named `{prefix}{index}`.
    Sharded {
        strategy: Strategy,
        count: u32,
        prefix: String,
        /// Index (into `columns`) of the shard-key field.
        key: usize,
        /// Position of the shard key within the primary key.
        key_in_primary_key: usize,
    },
    /// `#[derive(Model)]`: every row on the shard named `shard`.
    Single { shard: String },
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
        }),
    };

    // A nullable primary-key column (the shard key has its own, more specific error).
    let shard_key = match &placement {
        Some(Placement::Sharded { key, .. }) => Some(*key),
        _ => None,
    };
    for &i in &primary_key {
        let Some(field) = input.fields.get(i) else {
            continue;
        };
        if is_option(field.ty) && shard_key != Some(i) && !is_shard_key_named(input, field) {
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
    Some(Model {
        ident: input.ident,
        vis: input.vis,
        name,
        table,
        columns,
        primary_key,
        placement,
    })
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
        let constant = screaming_snake_case(&field_name);
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
                     `{constant}`; rename one of them"
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
        .is_some_and(|on| on.value().strip_prefix("r#").unwrap_or(&on.value()) == field.name())
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
    if shard.well_formed {
        let missing = [
            (
                matches!(shard.strategy, Slot::Missing),
                format!("`strategy = \"...\"`, one of {}", Strategy::expected()),
            ),
            (
                matches!(shard.on, Slot::Missing),
                "`on = \"<field>\"`, the field whose value picks the shard".to_owned(),
            ),
            (
                matches!(shard.count, Slot::Missing),
                "`count = <shards>`, the number of shards".to_owned(),
            ),
        ];
        for (is_missing, what) in missing {
            if is_missing {
                errors.spanned(shard.attr, format!("`#[shard(..)]` is missing {what}"));
            }
        }
    }

    let key = shard
        .on
        .get()
        .and_then(|on| key_field(input, name, on, errors));
    let key_in_primary_key = key.and_then(|key| {
        let field = input.fields.get(key)?;
        if is_option(field.ty) {
            errors.spanned(
                field.ty,
                format!(
                    "shard key `{}` cannot be an `Option`: shard keys are never NULL; use the \
                     inner type",
                    field.name()
                ),
            );
            return None;
        }
        let position = primary_key.iter().position(|&i| i == key);
        if position.is_none() && !primary_key.is_empty() {
            errors.spanned(
                field.ident,
                format!(
                    "shard key `{}` is not part of the primary key of `{name}`; mark it \
                     `#[primary_key]` too (a composite key is fine) so that a primary key always \
                     names one shard",
                    field.name()
                ),
            );
        }
        position
    });

    Some(Placement::Sharded {
        strategy: *shard.strategy.get()?,
        count: *shard.count.get()?,
        prefix: shard
            .prefix
            .get()
            .map_or_else(|| DEFAULT_PREFIX.to_owned(), LitStr::value),
        key: key?,
        key_in_primary_key: key_in_primary_key?,
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
