//! The statements of a resharding job, and the text encoding of primary keys in its cursors.

use grant_core::{Backend, Error, Model, Result, ValueKind};
use sea_query::{Condition, Expr, ExprTrait, OnConflict, Order, Value};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

/// A built statement.
pub(crate) type Statement = (String, SqlxValues);

fn pk_names<M: Model>() -> Vec<&'static str> {
    M::META
        .primary_key
        .iter()
        .map(|&i| M::META.columns[i].name)
        .collect()
}

/// How the primary-key columns decode.
fn pk_kinds<M: Model>() -> Vec<ValueKind> {
    M::META
        .primary_key
        .iter()
        .map(|&i| ValueKind::of(&(M::META.columns[i].column_type)()))
        .collect()
}

/// Every column, primary key first in order, of the next `limit` rows after `after`
/// (primary-key order), with `lock` appended (`FOR SHARE` or nothing).
pub(crate) fn scan<M: Model, DB: Backend>(
    after: Option<&[Value]>,
    limit: usize,
    lock: &str,
) -> Statement {
    let names = pk_names::<M>();
    let mut select = sea_query::Query::select();
    select.columns(M::META.column_names()).from(M::META.table);
    if let Some(after) = after {
        select.and_where(after_condition(&names, after));
    }
    for name in &names {
        select.order_by(*name, Order::Asc);
    }
    select.limit(limit as u64);
    let (mut sql, values) = select.build_sqlx(DB::builder());
    sql.push_str(lock);
    (sql, values)
}

fn after_condition(names: &[&'static str], after: &[Value]) -> Expr {
    match (names, after) {
        ([name], [value]) => Expr::col(*name).gt(value.clone()),
        _ => Expr::tuple(names.iter().map(|n| Expr::col(*n)))
            .gt(Expr::tuple(after.iter().map(|v| Expr::val(v.clone())))),
    }
}

/// `primary key IN (keys)`, for key sets of any size and width: one column is a plain `IN`
/// list; several columns are one row-value `IN` — `(a, b) IN (VALUES (?, ?), ...)` on SQLite
/// (whose `IN` takes rows only from a subquery), `(a, b) IN (($1, $2), ...)` elsewhere — never
/// an `OR` chain, whose expression tree SQLite caps at depth 1,000 and whose rendering
/// recurses once per key.
fn keys_condition<DB: Backend>(names: &[&'static str], keys: &[Vec<Value>]) -> Condition {
    match names {
        [name] => Condition::all()
            .add(Expr::col(*name).is_in(keys.iter().filter_map(|k| k.first().cloned()))),
        _ if keys.is_empty() => Condition::all().add(Expr::cust("1 = 0")),
        _ => {
            let columns = names
                .iter()
                .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", ");
            let numbered = <DB as Backend>::NAME == "PostgreSQL";
            let mut next = 0;
            let rows = keys
                .iter()
                .map(|_| {
                    let row = (0..names.len())
                        .map(|_| {
                            next += 1;
                            if numbered {
                                format!("${next}")
                            } else {
                                "?".to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("({row})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            let rows = if <DB as Backend>::NAME == "SQLite" {
                format!("VALUES {rows}")
            } else {
                rows
            };
            let values: Vec<Value> = keys.iter().flatten().cloned().collect();
            Condition::all().add(Expr::cust_with_values(
                format!("({columns}) IN ({rows})"),
                values,
            ))
        }
    }
}

/// Rows per statement that binds one value per key column for `keys` keys.
pub(crate) fn keys_per_statement<M: Model, DB: Backend>() -> usize {
    (DB::MAX_BIND_PARAMS / M::META.primary_key.len().max(1)).clamp(1, 1000)
}

/// Every column of the rows with these primary keys.
pub(crate) fn fetch_keys<M: Model, DB: Backend>(keys: &[Vec<Value>]) -> Statement {
    let mut select = sea_query::Query::select();
    select
        .columns(M::META.column_names())
        .from(M::META.table)
        .cond_where(keys_condition::<DB>(&pk_names::<M>(), keys));
    select.build_sqlx(DB::builder())
}

/// The primary-key columns of the rows with these primary keys.
pub(crate) fn fetch_pks<M: Model, DB: Backend>(keys: &[Vec<Value>]) -> Statement {
    let names = pk_names::<M>();
    let mut select = sea_query::Query::select();
    select
        .columns(names.iter().copied())
        .from(M::META.table)
        .cond_where(keys_condition::<DB>(&names, keys));
    select.build_sqlx(DB::builder())
}

/// The primary key of a row [`fetch_pks`] read.
pub(crate) fn decode_pk<M: Model, DB: Backend>(row: &DB::Row) -> Result<Vec<Value>, sqlx::Error> {
    pk_kinds::<M>()
        .into_iter()
        .enumerate()
        .map(|(i, kind)| DB::get_value(row, i, kind))
        .collect()
}

/// Deletes the rows with these primary keys.
pub(crate) fn delete_keys<M: Model, DB: Backend>(keys: &[Vec<Value>]) -> Statement {
    let mut delete = sea_query::Query::delete();
    delete
        .from_table(M::META.table)
        .cond_where(keys_condition::<DB>(&pk_names::<M>(), keys));
    delete.build_sqlx(DB::builder())
}

/// `INSERT ... ON CONFLICT (primary key) DO UPDATE SET` every other column (`DO NOTHING` when
/// every column is in the key).
pub(crate) fn upsert<M: Model>(rows: &[&M]) -> sea_query::InsertStatement {
    let mut insert = sea_query::Query::insert();
    insert
        .into_table(M::META.table)
        .columns(M::META.column_names());
    for row in rows {
        // Column list and values come from the same derive: the lengths always agree.
        let _ = insert.values(row.values().into_iter().map(Expr::val));
    }
    let mut on_conflict = OnConflict::columns(pk_names::<M>());
    let others: Vec<&'static str> = M::META
        .columns
        .iter()
        .filter(|c| !c.primary_key)
        .map(|c| c.name)
        .collect();
    if others.is_empty() {
        on_conflict.do_nothing();
    } else {
        on_conflict.update_columns(others);
    }
    insert.on_conflict(on_conflict);
    insert
}

/// Upserts of `rows`, in statements under the backend's bind-parameter limit.
pub(crate) fn upserts<M: Model, DB: Backend>(rows: &[&M]) -> Vec<Statement> {
    let per = crate::crud::rows_per_insert::<M, DB>();
    rows.chunks(per)
        .map(|chunk| upsert::<M>(chunk).build_sqlx(DB::builder()))
        .collect()
}

/// A primary key as text: `i:42`, `s:<hex utf-8>`, `b:<hex>`, `t`/`f`, `n` (NULL), joined by
/// `,`.
pub(crate) fn encode_key(key: &[Value]) -> Result<String> {
    let parts = key
        .iter()
        .map(|v| {
            Ok(match v {
                Value::Bool(Some(b)) => if *b { "t" } else { "f" }.to_owned(),
                Value::TinyInt(Some(i)) => format!("i:{i}"),
                Value::SmallInt(Some(i)) => format!("i:{i}"),
                Value::Int(Some(i)) => format!("i:{i}"),
                Value::BigInt(Some(i)) => format!("i:{i}"),
                Value::String(Some(s)) => format!("s:{}", crate::placement::hex(s.as_bytes())),
                Value::Bytes(Some(b)) => format!("b:{}", crate::placement::hex(b)),
                other if is_null(other) => "n".to_owned(),
                other => {
                    return Err(Error::Unsupported {
                        model: "-",
                        reason: format!(
                            "resharding cursors encode integer, text, bytes and bool keys, \
                             not {other:?}"
                        ),
                    });
                }
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.join(","))
}

fn is_null(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(None)
            | Value::TinyInt(None)
            | Value::SmallInt(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::String(None)
            | Value::Bytes(None)
    )
}

/// The inverse of [`encode_key`] for model `M`'s primary key.
pub(crate) fn decode_key<M: Model>(text: &str) -> Result<Vec<Value>> {
    let bad = |what: &str| {
        Error::Config(format!(
            "model `{}`: resharding cursor `{text}` is not a key of this model ({what}); the job \
             row in `grant_reshard_jobs` was changed by hand or belongs to another table",
            M::META.name
        ))
    };
    let kinds = pk_kinds::<M>();
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() != kinds.len() {
        return Err(bad("wrong number of columns"));
    }
    parts
        .iter()
        .zip(kinds)
        .map(|(part, kind)| {
            let (tag, body) = part.split_once(':').unwrap_or((part, ""));
            Ok(match (tag, kind) {
                ("n", ValueKind::I64) => Value::BigInt(None),
                ("i", ValueKind::I64) => Value::BigInt(Some(body.parse().map_err(|_| bad(body))?)),
                ("i", ValueKind::I32) => Value::Int(Some(body.parse().map_err(|_| bad(body))?)),
                ("i", ValueKind::I16) => {
                    Value::SmallInt(Some(body.parse().map_err(|_| bad(body))?))
                }
                ("t", ValueKind::Bool) => Value::Bool(Some(true)),
                ("f", ValueKind::Bool) => Value::Bool(Some(false)),
                ("s", ValueKind::String) => Value::String(Some(
                    String::from_utf8(unhex(body).ok_or_else(|| bad(body))?)
                        .map_err(|_| bad(body))?,
                )),
                ("b", ValueKind::Bytes) => {
                    Value::Bytes(Some(unhex(body).ok_or_else(|| bad(body))?))
                }
                _ => return Err(bad(part)),
            })
        })
        .collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn encodes_keys() {
        let key = [
            Value::BigInt(Some(-5)),
            Value::String(Some("a,b".into())),
            Value::Bytes(Some(vec![1, 2])),
        ];
        assert_eq!(encode_key(&key).unwrap(), "i:-5,s:612c62,b:0102");
    }
}
