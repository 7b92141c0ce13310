//! Typed conditions and their rendering to sea-query.

use std::fmt;
use std::marker::PhantomData;

use sea_query::{Condition, Expr, ExprTrait, Value};

use crate::column::ColumnRef;

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
    /// `col LIKE pattern`.
    Like {
        /// The column.
        col: ColumnRef,
        /// The pattern.
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

impl Node {
    /// Renders the node as a sea-query expression.
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

    /// Renders the node as a sea-query condition.
    pub fn to_condition(&self) -> Condition {
        Condition::all().add(self.to_expr())
    }
}
