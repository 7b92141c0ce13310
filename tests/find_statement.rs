//! `find`'s statement comes from a per-model cache after the first call: it must be exactly what
//! sea-query builds for every key — same SQL text, same bound values in the same order — on
//! every backend, for single and composite primary keys.

mod common;

use common::{OrderItem, User};
use grant::__private::crud::{build_find_statement, find_statement};
use grant::prelude::*;

fn check<M: Model, DB: grant::Backend>(keys: impl IntoIterator<Item = M::PrimaryKey>) {
    let mut n = 0;
    for key in keys {
        let (shard, (sql, values)) = find_statement::<M, DB>(&key);
        let (built_sql, built_values) = build_find_statement::<M, DB>(&key);
        assert_eq!(sql, built_sql, "{key:?}");
        assert_eq!(values.0.0, built_values.0.0, "{key:?}");
        assert_eq!(shard, M::shard_of_key(&key));
        n += 1;
    }
    assert!(n > 1);
}

#[test]
fn cached_find_statements_equal_built_ones() {
    check::<User, Sqlite>([7, -1, 0, i64::MAX, i64::MIN, 123_456]);
    check::<User, Postgres>([7, -1, 0, i64::MAX, i64::MIN, 123_456]);
    check::<OrderItem, Sqlite>([(1, 2), (-5, 9), (i64::MAX, 0)]);
    check::<OrderItem, Postgres>([(1, 2), (-5, 9), (i64::MAX, 0)]);
    // Backends don't share text: PostgreSQL numbers its placeholders.
    assert_ne!(
        find_statement::<User, Sqlite>(&1).1.0,
        find_statement::<User, Postgres>(&1).1.0
    );
}
