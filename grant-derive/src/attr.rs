//! Attribute parsing: `#[shard(..)]`, `#[grant(..)]` and `#[primary_key]`.
//!
//! Each value is checked on its own here (its literal kind, a known strategy, `count >= 1`);
//! checks between values and fields are in `valid.rs`. Errors are collected, never returned
//! early, so that every mistake in an attribute is reported at once.

use proc_macro2::{Span, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Lit, LitInt, LitStr, Token};

use crate::Derive;
use crate::names::backticked_list;

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
///
/// Only `hash` exists today; `pg_hash`, `consistent_hash`, `range` and `mapping` will join it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// `strategy = "hash"`: SipHash-2-4 of the key's canonical bytes, remainder `count`.
    Hash,
}

impl Strategy {
    /// Every strategy with its name as written in `#[shard(strategy = "...")]`.
    pub(crate) const ALL: &'static [(&'static str, Strategy)] = &[("hash", Strategy::Hash)];

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
    pub(crate) strategy: Slot<Strategy>,
    pub(crate) on: Slot<LitStr>,
    pub(crate) count: Slot<u32>,
    pub(crate) prefix: Slot<LitStr>,
}

/// The struct's attributes.
pub(crate) struct Container<'a> {
    /// `#[shard(..)]`, if written.
    pub(crate) shard: Option<ShardAttr<'a>>,
    /// `#[grant(table = "...")]`.
    pub(crate) table: Slot<LitStr>,
    /// `#[grant(shard = "...")]` (`#[derive(Model)]` only).
    pub(crate) shard_name: Slot<LitStr>,
}

/// A field's attributes.
pub(crate) struct FieldAttrs {
    /// `#[primary_key]`, with its span.
    pub(crate) primary_key: Option<Span>,
    /// `#[grant(column = "...")]`.
    pub(crate) column: Slot<LitStr>,
}

const SHARD_KEYS: &[&str] = &["strategy", "on", "count", "prefix"];
const GRANT_KEYS_SHARDED: &[&str] = &["table"];
const GRANT_KEYS_MODEL: &[&str] = &["table", "shard"];
const GRANT_FIELD_KEYS: &[&str] = &["column"];

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
        match key.as_str() {
            "strategy" => {
                let value = string_value(&meta, "shard", "strategy", "\"hash\"", errors)?;
                let slot = value.map(|lit| match Strategy::from_name(&lit.value()) {
                    Some(strategy) => Some(strategy),
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
                let value = string_value(&meta, "shard", "on", "\"id\"", errors)?;
                let value = value.and_then(|lit| {
                    non_empty(
                        lit,
                        "#[shard(on = ...)]",
                        "the name of the shard-key field",
                        errors,
                    )
                });
                store(&mut shard.on, &meta, "shard", value, errors);
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

/// Parses a field's `#[primary_key]` and `#[grant(..)]`, and rejects a misplaced `#[shard(..)]`.
pub(crate) fn field(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs {
        primary_key: None,
        column: Slot::Missing,
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
    meta.value()?.parse()
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
