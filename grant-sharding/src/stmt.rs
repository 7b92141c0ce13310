//! Every SQL statement Grant builds for a model's rows, in one place (L3): the table's DDL,
//! insert, upsert, update, delete and find by primary key (used by crud, the transactions and
//! resharding), the resharding job's scans and key-list statements, and the text encoding of
//! primary keys in its cursors. Pure: no I/O, nothing but sea-query and the model's metadata.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use grant_core::cond::quoted;
use grant_core::value::is_null;
use grant_core::{Backend, Error, Model, Result, ShardId, ValueKind};
use sea_query::{ColumnDef, Condition, Expr, ExprTrait, Index, OnConflict, Order, Table, Value};
use sea_query_sqlx::{SqlxBinder, SqlxValues};

/// A built statement: SQL text and bound values.
pub(crate) type Statement = (String, SqlxValues);

/// A statement built once, sent to several shards (dual writes).
pub(crate) fn copy(statement: &Statement) -> Statement {
    (
        statement.0.clone(),
        SqlxValues(sea_query::Values(statement.1.0.0.clone())),
    )
}

/// `CREATE TABLE IF NOT EXISTS` for the model's table, in `DB`'s dialect.
pub(crate) fn create_table<M: Model, DB: Backend>() -> String {
    let mut table = Table::create();
    table.table(M::META.table).if_not_exists();
    for column in M::META.columns {
        let column_type = (column.column_type)();
        let collation = DB::sort_collation(&column_type);
        let mut def = ColumnDef::new_with_type(column.name, DB::ddl_column_type(column_type));
        if !column.nullable {
            def.not_null();
        }
        // Text in byte order (`COLLATE "C"`), SQLite's decimals by number, so indexes on them
        // serve the per-shard sorts.
        if let Some(collation) = collation {
            def.extra(format!("COLLATE \"{collation}\""));
        }
        table.col(def);
    }
    let mut pk = Index::create();
    for &i in M::META.primary_key {
        pk.col(M::META.columns[i].name);
    }
    table.primary_key(&mut pk);
    table.build(DB::builder())
}

/// `CREATE [UNIQUE] INDEX IF NOT EXISTS` for each of the model's secondary indexes
/// ([`Model::INDEXES`]), in `DB`'s dialect. Text columns carry their collation from the table's
/// DDL, so the index serves Grant's byte-order sorts.
pub(crate) fn create_indexes<M: Model, DB: Backend>() -> Vec<String> {
    M::INDEXES
        .iter()
        .map(|index| {
            let mut create = Index::create();
            create.if_not_exists().name(index.name).table(M::META.table);
            for &i in index.columns {
                create.col(M::META.columns[i].name);
            }
            if index.unique {
                create.unique();
            }
            create.build(DB::builder())
        })
        .collect()
}

/// `pk1 = ? AND pk2 = ? ..` for the primary key `key`.
pub(crate) fn pk_condition<M: Model>(key: &M::PrimaryKey) -> Condition {
    let mut cond = Condition::all();
    for (&i, value) in M::META.primary_key.iter().zip(M::primary_key_values(key)) {
        cond = cond.add(Expr::col(M::META.columns[i].name).eq(value));
    }
    cond
}

/// A multi-row `INSERT` of `rows` (callers chunk by [`rows_per_insert`]).
pub(crate) fn insert<M: Model, DB: Backend>(rows: &[&M]) -> Statement {
    insert_rows::<M, DB>(rows.iter().map(|row| row.values()))
}

/// An `INSERT` of rows given as column values, in the model's column order.
pub(crate) fn insert_rows<M: Model, DB: Backend>(
    rows: impl IntoIterator<Item = Vec<Value>>,
) -> Statement {
    let mut insert = sea_query::Query::insert();
    insert
        .into_table(M::META.table)
        .columns(M::META.column_names());
    for values in rows {
        // The column list and the values come from the same model: the lengths always agree.
        let _ = insert.values(values.into_iter().map(Expr::val));
    }
    insert.build_sqlx(DB::builder())
}

/// How many rows of `M` one multi-row `INSERT` carries: under the backend's bind-parameter
/// limit, at most 1,000.
pub(crate) fn rows_per_insert<M: Model, DB: Backend>() -> usize {
    (DB::MAX_BIND_PARAMS / M::META.columns.len().max(1)).clamp(1, 1000)
}

/// The `UPDATE` of every non-key column of `row`, by its primary key; `None` when the model has
/// only key columns (nothing can change: check the row exists with [`exists`]).
pub(crate) fn update<M: Model, DB: Backend>(row: &M) -> Option<Statement> {
    let mut update = sea_query::Query::update();
    update.table(M::META.table);
    let mut any = false;
    for (column, value) in M::META.columns.iter().zip(row.values()) {
        if !column.primary_key {
            update.value(column.name, value);
            any = true;
        }
    }
    if !any {
        return None;
    }
    update.cond_where(pk_condition::<M>(&row.primary_key()));
    Some(update.build_sqlx(DB::builder()))
}

/// `SELECT 1 .. LIMIT 1` for the row with primary key `key`.
pub(crate) fn exists<M: Model, DB: Backend>(key: &M::PrimaryKey) -> Statement {
    let mut select = sea_query::Query::select();
    select
        .expr(Expr::val(1))
        .from(M::META.table)
        .cond_where(pk_condition::<M>(key))
        .limit(1);
    select.build_sqlx(DB::builder())
}

/// The `DELETE` of the row with primary key `key`.
pub(crate) fn delete<M: Model, DB: Backend>(key: &M::PrimaryKey) -> Statement {
    let mut delete = sea_query::Query::delete();
    delete
        .from_table(M::META.table)
        .cond_where(pk_condition::<M>(key));
    delete.build_sqlx(DB::builder())
}

/// The `SELECT` of every column of the row with primary key `key`, `LIMIT 1` (uncached; add a
/// lock clause before building).
pub(crate) fn find_select<M: Model>(key: &M::PrimaryKey) -> sea_query::SelectStatement {
    let mut select = sea_query::Query::select();
    select
        .columns(M::META.column_names())
        .from(M::META.table)
        .cond_where(pk_condition::<M>(key))
        .limit(1);
    select
}

/// `find`'s statement under a migrating placement: it names the migration's fence
/// (`placement::fence`).
pub(crate) fn find_fenced<M: Model, DB: Backend>(key: &M::PrimaryKey) -> Statement {
    let mut select = find_select::<M>(key);
    select.cond_where(crate::placement::fence::standing::<M>());
    select.build_sqlx(DB::builder())
}

/// The shard and the statement (SQL and bound values) `find` sends for `key`: pure, no I/O.
///
/// The SQL text depends only on the model and the backend (the key travels as bound values), so
/// it is built by sea-query once per (model, backend) and kept; later calls only gather the
/// values: the key's, then the `LIMIT`.
pub fn find_statement<M: Model, DB: Backend>(key: &M::PrimaryKey) -> (ShardId, Statement) {
    let shard = M::shard_of_key(key);
    let cache_key = (TypeId::of::<M>(), TypeId::of::<DB>());
    let cached = FIND_SQL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
        .copied();
    if let Some(sql) = cached {
        let mut values = M::primary_key_values(key);
        values.push(sea_query::Value::BigUnsigned(Some(1)));
        return (
            shard,
            (sql.to_owned(), SqlxValues(sea_query::Values(values))),
        );
    }
    let built = build_find_statement::<M, DB>(key);
    // Leaked once per (model, backend) pair: a few hundred bytes per model for the process.
    let sql: &'static str = Box::leak(built.0.clone().into_boxed_str());
    FIND_SQL
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(cache_key)
        .or_insert(sql);
    (shard, built)
}

/// `find`'s SQL text per (model, backend), see [`find_statement`].
static FIND_SQL: LazyLock<RwLock<HashMap<(TypeId, TypeId), &'static str>>> =
    LazyLock::new(Default::default);

/// [`find_statement`] without the cache: sea-query builds the statement.
pub fn build_find_statement<M: Model, DB: Backend>(key: &M::PrimaryKey) -> Statement {
    find_select::<M>(key).build_sqlx(DB::builder())
}

/// The SQL names of the primary-key columns, in primary-key order.
pub(crate) fn pk_names<M: Model>() -> Vec<&'static str> {
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
        .map(|&i| M::META.columns[i].kind)
        .collect()
}

/// Every column, primary key first in order, of the next `limit` rows after `after`
/// (primary-key order) among those meeting `scope` (all when `None`), with `lock` appended
/// (`FOR SHARE` or nothing).
pub(crate) fn scan<M: Model, DB: Backend>(
    after: Option<&[Value]>,
    limit: usize,
    lock: &str,
    scope: Option<&Condition>,
) -> Statement {
    scan_columns::<M, DB>(M::META.column_names(), after, limit, lock, scope)
}

/// [`scan`] of the primary-key columns only (a bulk copy's batch: the rows themselves pass
/// from source to target undecoded).
pub(crate) fn scan_keys<M: Model, DB: Backend>(
    schema: Option<&'static str>,
    after: Option<&[Value]>,
    limit: usize,
    lock: &str,
    scope: Option<&Condition>,
) -> Statement {
    scan_columns_in::<M, DB>(schema, pk_names::<M>(), after, limit, lock, scope)
}

/// `columns` of the next `limit` rows after `after` meeting `scope`, in primary-key order,
/// `lock` appended.
fn scan_columns<M: Model, DB: Backend>(
    columns: impl IntoIterator<Item = &'static str>,
    after: Option<&[Value]>,
    limit: usize,
    lock: &str,
    scope: Option<&Condition>,
) -> Statement {
    scan_columns_in::<M, DB>(None, columns, after, limit, lock, scope)
}

/// [`scan_columns`] of the table in `schema` (an attached database) when given.
fn scan_columns_in<M: Model, DB: Backend>(
    schema: Option<&'static str>,
    columns: impl IntoIterator<Item = &'static str>,
    after: Option<&[Value]>,
    limit: usize,
    lock: &str,
    scope: Option<&Condition>,
) -> Statement {
    let names = pk_names::<M>();
    let mut select = sea_query::Query::select();
    select.columns(columns);
    match schema {
        Some(schema) => select.from((schema, M::META.table)),
        None => select.from(M::META.table),
    };
    if let Some(after) = after {
        select.and_where(after_condition(&names, after));
    }
    if let Some(scope) = scope {
        select.cond_where(scope.clone());
    }
    for name in &names {
        select.order_by(*name, Order::Asc);
    }
    select.limit(limit as u64);
    let (mut sql, values) = select.build_sqlx(DB::builder());
    sql.push_str(lock);
    (sql, values)
}

/// [`scan_keys`] as one row on SQLite, when every primary-key column is an integer: the keys
/// packed into one text (`1,7;1,9;2,3`, in key order) that [`unpack_pks`] reads back — one
/// row through the driver instead of one per key. `None` for other keys and backends.
pub(crate) fn scan_keys_packed<M: Model, DB: Backend>(
    schema: Option<&'static str>,
    after: Option<&[Value]>,
    limit: usize,
    scope: Option<&Condition>,
) -> Option<Statement> {
    let integers = pk_kinds::<M>()
        .iter()
        .all(|k| matches!(k, ValueKind::I16 | ValueKind::I32 | ValueKind::I64));
    if <DB as Backend>::NAME != "SQLite" || !integers {
        return None;
    }
    let names = pk_names::<M>();
    let (inner, values) = scan_columns_in::<M, DB>(schema, names.clone(), after, limit, "", scope);
    let joined = names
        .iter()
        .map(|n| quoted(n))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    let order = names
        .iter()
        .map(|n| quoted(n))
        .collect::<Vec<_>>()
        .join(", ");
    // Only integers are packed: `typeof` keeps a stray text or real value (SQLite's flexible
    // typing) from passing as a number; such a batch is read row by row instead.
    let check = names
        .iter()
        .map(|n| format!("typeof({}) = 'integer'", quoted(n)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT group_concat({joined}, ';' ORDER BY {order}), count(*), \
         coalesce(sum(CASE WHEN {check} THEN 0 ELSE 1 END), 0) FROM ({inner})"
    );
    Some((sql, values))
}

/// The keys a [`scan_keys_packed`] text holds, typed as model `M`'s primary-key columns;
/// `None` when the text does not read back as `count` integer keys.
pub(crate) fn unpack_pks<M: Model>(packed: Option<&str>, count: usize) -> Option<Vec<Vec<Value>>> {
    unpack(&pk_kinds::<M>(), packed, count)
}

fn unpack(kinds: &[ValueKind], packed: Option<&str>, count: usize) -> Option<Vec<Vec<Value>>> {
    let mut out = Vec::with_capacity(count);
    let Some(packed) = packed else {
        return (count == 0).then_some(out);
    };
    for key in packed.split(';') {
        let mut parts = key.split(',');
        let mut values = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let v: i64 = parts.next()?.parse().ok()?;
            values.push(match kind {
                ValueKind::I16 => Value::SmallInt(Some(i16::try_from(v).ok()?)),
                ValueKind::I32 => Value::Int(Some(i32::try_from(v).ok()?)),
                _ => Value::BigInt(Some(v)),
            });
        }
        if parts.next().is_some() {
            return None;
        }
        out.push(values);
    }
    (out.len() == count).then_some(out)
}

/// Decodes the primary-key values of rows [`scan_keys`] read.
pub(crate) fn decode_pks<M: Model, DB: Backend>(
    shard: ShardId,
    rows: &[DB::Row],
) -> Result<Vec<Vec<Value>>> {
    let kinds = pk_kinds::<M>();
    rows.iter()
        .map(|row| {
            kinds
                .iter()
                .enumerate()
                .map(|(j, &kind)| {
                    DB::get_value(row, j, kind).map_err(|e| Error::on_shard(M::META.name, shard, e))
                })
                .collect()
        })
        .collect()
}

/// One key as a literal row: `(1, 'x')`, each value written by `DB`'s builder.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn literal_row<DB: Backend>(key: &[Value]) -> String {
    let builder = DB::builder();
    let parts: Vec<String> = key
        .iter()
        .map(|v| sea_query::QueryBuilder::value_to_string(&builder, v))
        .collect();
    format!("({})", parts.join(", "))
}

/// `primary key IN (keys)` with the values written as literals (for statements that take no
/// parameters: PostgreSQL's `COPY`, SQLite's statements across attached databases), each
/// column prefixed with `qualifier.` when one is given: `"id" IN (1, 2)`; several columns one
/// row-value `IN` as [`keys_condition`] writes it — `("a", "b") IN (VALUES (1, 'x'), ..)` on
/// SQLite, `("a", "b") IN ((1, 'x'), ..)` elsewhere.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn keys_literal<DB: Backend>(
    qualifier: Option<&str>,
    names: &[&str],
    keys: &[Vec<Value>],
) -> String {
    if keys.is_empty() {
        return "1 = 0".to_owned();
    }
    let columns = names
        .iter()
        .map(|n| match qualifier {
            Some(q) => format!("{q}.{}", quoted(n)),
            None => quoted(n),
        })
        .collect::<Vec<_>>()
        .join(", ");
    if let [_] = names {
        let builder = DB::builder();
        let list: Vec<String> = keys
            .iter()
            .filter_map(|k| k.first())
            .map(|v| sea_query::QueryBuilder::value_to_string(&builder, v))
            .collect();
        return format!("{columns} IN ({})", list.join(", "));
    }
    let rows = keys
        .iter()
        .map(|k| literal_row::<DB>(k))
        .collect::<Vec<_>>()
        .join(", ");
    if <DB as Backend>::NAME == "SQLite" {
        format!("({columns}) IN (VALUES {rows})")
    } else {
        format!("({columns}) IN ({rows})")
    }
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

/// How rows are written: plain inserts (a duplicate key is the database's error) or upserts
/// (`ON CONFLICT (primary key) DO UPDATE`, atomic on the row's shard). One choice for crud and
/// transactions alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    Insert,
    Upsert,
}

impl Put {
    /// The statements writing `rows`, under the backend's bind-parameter limit.
    pub(crate) fn statements<M: Model, DB: Backend>(self, rows: &[&M]) -> Vec<Statement> {
        match self {
            Put::Insert => rows
                .chunks(rows_per_insert::<M, DB>())
                .map(insert::<M, DB>)
                .collect(),
            Put::Upsert => upserts::<M, DB>(rows),
        }
    }

    /// `rows` as this kind writes them: an upsert takes each primary key once (the last row).
    pub(crate) fn rows<M: Model>(self, rows: &[M]) -> Result<Vec<&M>> {
        match self {
            Put::Insert => Ok(rows.iter().collect()),
            Put::Upsert => last_per_key(rows),
        }
    }
}

/// `rows` with each primary key once: its last occurrence, in the order of those (one upsert
/// statement may not name a key twice: PostgreSQL refuses "ON CONFLICT DO UPDATE command cannot
/// affect row a second time").
fn last_per_key<M: Model>(rows: &[M]) -> Result<Vec<&M>> {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(encode_key(&M::primary_key_values(&row.primary_key()))?, i);
    }
    if last.len() == rows.len() {
        return Ok(rows.iter().collect());
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    Ok(keep.into_iter().map(|i| &rows[i]).collect())
}

/// Upserts of `rows`, in statements under the backend's bind-parameter limit.
pub(crate) fn upserts<M: Model, DB: Backend>(rows: &[&M]) -> Vec<Statement> {
    let per = rows_per_insert::<M, DB>();
    rows.chunks(per)
        .map(|chunk| upsert::<M>(chunk).build_sqlx(DB::builder()))
        .collect()
}

/// A primary key as text: `i:42`, `s:<hex utf-8>`, `b:<hex>`, `t`/`f`, `n` (NULL), `x:<hex of
/// the text form>` for uuids, dates, timestamps and decimals, joined by `,`.
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
                Value::String(Some(s)) => format!("s:{}", crate::resolve::hex(s.as_bytes())),
                Value::Bytes(Some(b)) => format!("b:{}", crate::resolve::hex(b)),
                other if is_null(other) => "n".to_owned(),
                other => {
                    if let Some(text) = grant_core::types::key_text(other) {
                        return Ok(format!("x:{}", crate::resolve::hex(text.as_bytes())));
                    }
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
                ("x", kind) => {
                    let text = String::from_utf8(unhex(body).ok_or_else(|| bad(body))?)
                        .map_err(|_| bad(body))?;
                    grant_core::types::key_from_text(kind, &text).ok_or_else(|| bad(part))?
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

/// `CREATE TABLE IF NOT EXISTS name` with the model's primary-key columns (types, `NOT NULL`,
/// the backend's byte-order collation for text) as its primary key: the resharding job's
/// capture journal and copies registry.
pub(crate) fn create_key_table<M: Model, DB: Backend>(name: &str) -> String {
    let mut table = Table::create();
    table.table(sea_query::Alias::new(name)).if_not_exists();
    for &i in M::META.primary_key {
        let column = &M::META.columns[i];
        let column_type = (column.column_type)();
        let collation = DB::sort_collation(&column_type);
        let mut def = ColumnDef::new_with_type(column.name, DB::ddl_column_type(column_type));
        def.not_null();
        if let Some(collation) = collation {
            def.extra(format!("COLLATE \"{collation}\""));
        }
        table.col(def);
    }
    let mut pk = Index::create();
    for name in pk_names::<M>() {
        pk.col(name);
    }
    table.primary_key(&mut pk);
    table.build(DB::builder())
}

use crate::placement::fence::copies_table;

/// `CREATE TABLE IF NOT EXISTS` for the copies registry.
pub(crate) fn create_copies<M: Model, DB: Backend>() -> String {
    create_key_table::<M, DB>(&copies_table::<M>())
}

/// `DROP TABLE IF EXISTS` of the copies registry.
pub(crate) fn drop_copies<M: Model>() -> String {
    format!("DROP TABLE IF EXISTS {}", quoted(&copies_table::<M>()))
}

/// `DELETE FROM` the copies registry (a new job starts from an empty one).
pub(crate) fn clear_copies<M: Model>() -> String {
    format!("DELETE FROM {}", quoted(&copies_table::<M>()))
}

/// Deletes the rows the shard's copies registry names (a rollback's copies).
pub(crate) fn delete_registered<M: Model>() -> String {
    format!(
        "DELETE FROM {} WHERE EXISTS {}",
        quoted(M::META.table),
        registered::<M>()
    )
}

/// `(SELECT 1 FROM <copies registry> WHERE <its key> = <the table row's key>)`.
fn registered<M: Model>() -> String {
    let (registry, table) = (quoted(&copies_table::<M>()), quoted(M::META.table));
    let matches = pk_names::<M>()
        .iter()
        .map(|c| format!("{registry}.{} = {table}.{}", quoted(c), quoted(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("(SELECT 1 FROM {registry} WHERE {matches})")
}

/// Records `rows` in the shard's copies registry (each key once), one statement per chunk under
/// the bind-parameter limit: sent in the same transaction as the rows' upsert.
pub(crate) fn register_copies<M: Model, DB: Backend>(rows: &[&M]) -> Vec<Statement> {
    let keys: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| M::primary_key_values(&r.primary_key()))
        .collect();
    register_keys::<M, DB>(&keys)
}

/// [`register_copies`] by primary key.
pub(crate) fn register_keys<M: Model, DB: Backend>(keys: &[Vec<Value>]) -> Vec<Statement> {
    let names = pk_names::<M>();
    let table = copies_table::<M>();
    keys.chunks(keys_per_statement::<M, DB>())
        .map(|chunk| {
            let mut insert = sea_query::Query::insert();
            insert
                .into_table(sea_query::Alias::new(table.as_str()))
                .columns(names.iter().copied());
            for key in chunk {
                insert.values_panic(key.iter().cloned().map(Expr::val));
            }
            insert.on_conflict(
                OnConflict::columns(names.iter().copied())
                    .do_nothing()
                    .to_owned(),
            );
            insert.build_sqlx(DB::builder())
        })
        .collect()
}

/// `NOT EXISTS (SELECT 1 FROM <copies registry> WHERE <its key> = <the row's key>)`: the
/// condition that leaves a migrating model's copies out of a read of a shard that can hold
/// them (see [`copies_table`]).
pub(crate) fn not_a_copy<M: Model>() -> Condition {
    Condition::all().add(Expr::cust(format!("NOT EXISTS {}", registered::<M>())))
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

    #[test]
    fn unpacks_packed_integer_keys() {
        let kinds = [ValueKind::I32, ValueKind::I64];
        assert_eq!(
            unpack(&kinds, Some("1,-7;2,9000000000"), 2),
            Some(vec![
                vec![Value::Int(Some(1)), Value::BigInt(Some(-7))],
                vec![Value::Int(Some(2)), Value::BigInt(Some(9_000_000_000))],
            ])
        );
        assert_eq!(unpack(&kinds, None, 0), Some(vec![]));
        // Anything that does not read back exactly falls back to the row-by-row scan.
        assert_eq!(unpack(&kinds, None, 1), None);
        assert_eq!(unpack(&kinds, Some("1,2"), 2), None);
        assert_eq!(unpack(&kinds, Some("1,2,3"), 1), None);
        assert_eq!(unpack(&kinds, Some("1"), 1), None);
        assert_eq!(unpack(&kinds, Some("1.5,2"), 1), None);
        assert_eq!(unpack(&kinds, Some("9000000000,2"), 1), None);
    }
}
