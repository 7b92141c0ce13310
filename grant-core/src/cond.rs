//! Typed conditions and their rendering to sea-query.

use std::fmt;
use std::marker::PhantomData;

use sea_query::extension::postgres::PgExpr;
use sea_query::extension::sqlite::SqliteExpr;
use sea_query::{ColumnType, Condition, Expr, ExprTrait, LikeExpr, Value};

use crate::backend::{Backend, LikeSyntax};
use crate::column::ColumnRef;
use crate::like;
use crate::model::ColumnMeta;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// The untyped tree behind a [`Cond`]; the router reads it to find shard keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Node {
    /// `col op value`.
    Cmp {
        /// The column.
        col: ColumnRef,
        /// The operator.
        op: CmpOp,
        /// The bound value.
        value: Value,
    },
    /// `col IN (values)`.
    In {
        /// The column.
        col: ColumnRef,
        /// The bound values.
        values: Vec<Value>,
    },
    /// `col BETWEEN low AND high`.
    Between {
        /// The column.
        col: ColumnRef,
        /// Lower bound, included.
        low: Value,
        /// Upper bound, included.
        high: Value,
    },
    /// `col LIKE pattern`: case-sensitive on every backend (see [`crate::like`]).
    Like {
        /// The column.
        col: ColumnRef,
        /// The pattern (`%`, `_`, backslash escapes).
        pattern: String,
    },
    /// `col ILIKE pattern`: ASCII letters case-insensitive on every backend (see
    /// [`crate::like`]).
    ILike {
        /// The column.
        col: ColumnRef,
        /// The pattern (`%`, `_`, backslash escapes).
        pattern: String,
    },
    /// `col IS [NOT] NULL`.
    Null {
        /// The column.
        col: ColumnRef,
        /// `true` for `IS NULL`.
        is_null: bool,
    },
    /// All of these.
    And(Vec<Node>),
    /// Any of these.
    Or(Vec<Node>),
    /// Not this.
    Not(Box<Node>),
    /// A constant: `TRUE` or `FALSE`.
    Const(bool),
    /// A raw sea-query condition (escape hatch: the router cannot see shard keys inside it).
    Raw(Condition),
}

/// A condition on rows of model `M`, built from typed columns and combined with
/// [`and`](Cond::and), [`or`](Cond::or) and [`not`](Cond::not).
pub struct Cond<M> {
    node: Node,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Cond<M> {
    fn clone(&self) -> Self {
        Cond::from_node(self.node.clone())
    }
}

impl<M> fmt::Debug for Cond<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.node.fmt(f)
    }
}

impl<M> Cond<M> {
    /// Wraps an untyped node.
    pub fn from_node(node: Node) -> Self {
        Cond {
            node,
            _model: PhantomData,
        }
    }

    /// A raw sea-query condition — the escape hatch for what typed columns can't say.
    ///
    /// The router cannot see shard keys inside it: a query filtered only by a raw condition goes
    /// to all shards (or the context's shard).
    pub fn raw(condition: Condition) -> Self {
        Cond::from_node(Node::Raw(condition))
    }

    /// The untyped tree.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Takes the untyped tree.
    pub fn into_node(self) -> Node {
        self.node
    }

    /// Both conditions.
    pub fn and(self, other: Cond<M>) -> Cond<M> {
        Cond::from_node(match (self.node, other.node) {
            (Node::And(mut a), Node::And(b)) => {
                a.extend(b);
                Node::And(a)
            }
            (Node::And(mut a), b) => {
                a.push(b);
                Node::And(a)
            }
            (a, b) => Node::And(vec![a, b]),
        })
    }

    /// Either condition.
    pub fn or(self, other: Cond<M>) -> Cond<M> {
        Cond::from_node(match (self.node, other.node) {
            (Node::Or(mut a), Node::Or(b)) => {
                a.extend(b);
                Node::Or(a)
            }
            (Node::Or(mut a), b) => {
                a.push(b);
                Node::Or(a)
            }
            (a, b) => Node::Or(vec![a, b]),
        })
    }

    /// The negation (SQL three-valued logic: `NOT NULL` is `NULL`, which matches nothing).
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Cond<M> {
        Cond::from_node(Node::Not(Box::new(self.node)))
    }
}

/// Whether a column of this SQL type holds text (and so has a collation).
pub fn is_text_type(column_type: &ColumnType) -> bool {
    matches!(
        column_type,
        ColumnType::Text | ColumnType::String(_) | ColumnType::Char(_)
    )
}

/// `name` as a double-quoted SQL identifier (both dialects quote so), quotes in it doubled.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The column as it is sorted and compared on backend `DB`: a text column in byte order
/// (`"name" COLLATE "C"` on PostgreSQL, whatever the database's or the column's collation), any
/// other column as itself. Every per-shard ORDER BY, keyset condition, range comparison,
/// DISTINCT, GROUP BY and MIN/MAX of text goes through it, so each shard orders text the way
/// the merger compares it (by bytes).
pub fn byte_order_expr<DB: Backend>(name: &'static str, column_type: &ColumnType) -> Expr {
    match DB::sort_collation(column_type) {
        // Written out: a custom expression's placeholders are the dialect's (`$1`, `?`).
        Some(collation) => Expr::cust(format!("{} COLLATE \"{collation}\"", quoted(name))),
        _ => Expr::col(name),
    }
}

impl Node {
    /// Renders the node for backend `DB`; `columns` are the model's ([`crate::ModelMeta`]'s
    /// `columns`), which say which columns hold text.
    ///
    /// Text follows Grant's rules whatever the database's locale: range comparisons (`lt`,
    /// `lte`, `gt`, `gte`, `between`) compare bytes (`COLLATE "C"` on PostgreSQL; equality
    /// needs no collation), `like` is case-sensitive and `ilike` folds ASCII letters only
    /// (see [`crate::like`]).
    pub fn to_expr_for<DB: Backend>(&self, columns: &[ColumnMeta]) -> Expr {
        let text = |col: &ColumnRef| {
            columns
                .get(col.index)
                .is_some_and(|c| is_text_type(&(c.column_type)()))
        };
        let ordered = |col: &ColumnRef| match columns.get(col.index) {
            Some(c) => byte_order_expr::<DB>(col.name, &(c.column_type)()),
            None => Expr::col(col.name),
        };
        match self {
            Node::Cmp { col, op, value } => {
                let v = value.clone();
                match op {
                    CmpOp::Eq => Expr::col(col.name).eq(v),
                    CmpOp::Ne => Expr::col(col.name).ne(v),
                    CmpOp::Lt => ordered(col).lt(v),
                    CmpOp::Lte => ordered(col).lte(v),
                    CmpOp::Gt => ordered(col).gt(v),
                    CmpOp::Gte => ordered(col).gte(v),
                }
            }
            Node::Between { col, low, high } => ordered(col).between(low.clone(), high.clone()),
            Node::Like { col, pattern } => like_expr::<DB>(col.name, text(col), pattern, false),
            Node::ILike { col, pattern } => like_expr::<DB>(col.name, text(col), pattern, true),
            Node::And(nodes) => nodes
                .iter()
                .map(|n| n.to_expr_for::<DB>(columns))
                .reduce(|a, b| a.and(b))
                .unwrap_or_else(|| Expr::val(true)),
            Node::Or(nodes) => nodes
                .iter()
                .map(|n| n.to_expr_for::<DB>(columns))
                .reduce(|a, b| a.or(b))
                .unwrap_or_else(|| Expr::val(false)),
            Node::Not(node) => node.to_expr_for::<DB>(columns).not(),
            other => other.to_expr(),
        }
    }

    /// Renders the node as a condition for backend `DB` (see [`Node::to_expr_for`]).
    pub fn to_condition_for<DB: Backend>(&self, columns: &[ColumnMeta]) -> Condition {
        Condition::all().add(self.to_expr_for::<DB>(columns))
    }

    /// Renders the node as a sea-query expression in no backend's terms: text comparisons
    /// without a collation, `like` as plain `LIKE` (case-insensitive for ASCII on SQLite),
    /// `ilike` as `LOWER(col) LIKE LOWER(pattern)`. Grant renders with
    /// [`Node::to_expr_for`], which keeps text semantics equal on every backend.
    pub fn to_expr(&self) -> Expr {
        match self {
            Node::Cmp { col, op, value } => {
                let c = Expr::col(col.name);
                let v = value.clone();
                match op {
                    CmpOp::Eq => c.eq(v),
                    CmpOp::Ne => c.ne(v),
                    CmpOp::Lt => c.lt(v),
                    CmpOp::Lte => c.lte(v),
                    CmpOp::Gt => c.gt(v),
                    CmpOp::Gte => c.gte(v),
                }
            }
            Node::In { col, values } => {
                if values.is_empty() {
                    Expr::val(false)
                } else {
                    Expr::col(col.name).is_in(values.iter().cloned())
                }
            }
            Node::Between { col, low, high } => {
                Expr::col(col.name).between(low.clone(), high.clone())
            }
            Node::Like { col, pattern } => Expr::col(col.name).like(pattern.as_str()),
            Node::ILike { col, pattern } => Expr::from(sea_query::Func::lower(Expr::col(col.name)))
                .like(pattern.to_ascii_lowercase().as_str()),
            Node::Null { col, is_null } => {
                if *is_null {
                    Expr::col(col.name).is_null()
                } else {
                    Expr::col(col.name).is_not_null()
                }
            }
            Node::And(nodes) => nodes
                .iter()
                .map(Node::to_expr)
                .reduce(|a, b| a.and(b))
                .unwrap_or_else(|| Expr::val(true)),
            Node::Or(nodes) => nodes
                .iter()
                .map(Node::to_expr)
                .reduce(|a, b| a.or(b))
                .unwrap_or_else(|| Expr::val(false)),
            Node::Not(node) => node.to_expr().not(),
            Node::Const(b) => Expr::val(*b),
            Node::Raw(cond) => Expr::from(cond.clone()),
        }
    }

    /// Renders the node as a sea-query condition in no backend's terms (see [`Node::to_expr`]).
    pub fn to_condition(&self) -> Condition {
        Condition::all().add(self.to_expr())
    }
}

/// `like` / `ilike` of a column on backend `DB` (see [`crate::like`]).
fn like_expr<DB: Backend>(name: &'static str, text: bool, pattern: &str, ilike: bool) -> Expr {
    let escaped = || LikeExpr::new(like::canonical(pattern)).escape('\\');
    match DB::LIKE {
        LikeSyntax::GlobAndLike => {
            if ilike {
                Expr::col(name).like(escaped())
            } else {
                Expr::col(name).glob(like::to_glob(pattern))
            }
        }
        LikeSyntax::CollatedIlike => {
            let col = if text {
                byte_order_expr::<DB>(name, &ColumnType::Text)
            } else {
                Expr::col(name)
            };
            // The backslash is PostgreSQL's default LIKE escape: no ESCAPE clause needed.
            let pattern = LikeExpr::new(like::canonical(pattern));
            if ilike {
                col.ilike(pattern)
            } else {
                col.like(pattern)
            }
        }
    }
}

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use super::*;
    use sea_query::Query;

    fn text() -> ColumnType {
        ColumnType::Text
    }
    fn int() -> ColumnType {
        ColumnType::BigInteger
    }
    const COLUMNS: &[ColumnMeta] = &[
        ColumnMeta {
            name: "id",
            field: "id",
            primary_key: true,
            nullable: false,
            column_type: int,
            kind: crate::ValueKind::I64,
        },
        ColumnMeta {
            name: "name",
            field: "name",
            primary_key: false,
            nullable: false,
            column_type: text,
            kind: crate::ValueKind::String,
        },
    ];
    const ID: ColumnRef = ColumnRef {
        name: "id",
        index: 0,
    };
    const NAME: ColumnRef = ColumnRef {
        name: "name",
        index: 1,
    };

    fn sql<DB: Backend>(node: &Node) -> String {
        let mut select = Query::select();
        select
            .column("id")
            .from("t")
            .cond_where(node.to_condition_for::<DB>(COLUMNS));
        select.to_string(DB::Builder::default())
    }

    #[test]
    fn text_ranges_compare_bytes_on_postgres() {
        let node = Node::And(vec![
            Node::Cmp {
                col: NAME,
                op: CmpOp::Gt,
                value: "b".into(),
            },
            Node::Cmp {
                col: NAME,
                op: CmpOp::Eq,
                value: "c".into(),
            },
            Node::Cmp {
                col: ID,
                op: CmpOp::Lt,
                value: 3i64.into(),
            },
            Node::Between {
                col: NAME,
                low: "a".into(),
                high: "z".into(),
            },
        ]);
        assert_eq!(
            sql::<sqlx::Postgres>(&node),
            r#"SELECT "id" FROM "t" WHERE ("name" COLLATE "C") > 'b' AND "name" = 'c' AND "id" < 3 AND (("name" COLLATE "C") BETWEEN 'a' AND 'z')"#
        );
        assert_eq!(
            sql::<sqlx::Sqlite>(&node),
            r#"SELECT "id" FROM "t" WHERE "name" > 'b' AND "name" = 'c' AND "id" < 3 AND ("name" BETWEEN 'a' AND 'z')"#
        );
    }

    #[test]
    fn like_and_ilike_per_backend() {
        let like = Node::Like {
            col: NAME,
            pattern: "a*\\%b_".into(),
        };
        let ilike = Node::ILike {
            col: NAME,
            pattern: "a*\\%b_".into(),
        };
        assert_eq!(
            sql::<sqlx::Postgres>(&like),
            r#"SELECT "id" FROM "t" WHERE ("name" COLLATE "C") LIKE E'a*\\%b_'"#
        );
        assert_eq!(
            sql::<sqlx::Postgres>(&ilike),
            r#"SELECT "id" FROM "t" WHERE ("name" COLLATE "C") ILIKE E'a*\\%b_'"#
        );
        assert_eq!(
            sql::<sqlx::Sqlite>(&like),
            r#"SELECT "id" FROM "t" WHERE "name" GLOB 'a[*]%b?'"#
        );
        assert_eq!(
            sql::<sqlx::Sqlite>(&ilike),
            r#"SELECT "id" FROM "t" WHERE "name" LIKE 'a*\%b_' ESCAPE '\'"#
        );
    }
}
