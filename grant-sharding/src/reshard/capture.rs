//! Change capture inside the source databases: while a model is resharded, triggers on its
//! table on every source shard record the primary key of every row any process inserts,
//! updates or deletes into a journal table on that shard — in the writing transaction, so no
//! acknowledged write escapes it, whichever process (or tool) made it. The cutover re-verifies
//! those keys with the ones the job's own process journaled in memory.
//!
//! SQLite: three `AFTER` triggers (an insert into the journal unless the key is there).
//! PostgreSQL: one PL/pgSQL function and one `AFTER INSERT OR UPDATE OR DELETE` row trigger
//! (`ON CONFLICT DO NOTHING`). The journal's primary key is the model's: each key once.

use grant_core::cond::quoted as quote;
use grant_core::{Backend, Model};

use crate::stmt::pk_names;

/// The journal table of `M` on a source shard.
pub(crate) fn journal_table<M: Model>() -> String {
    format!("grant_journal_{}", M::META.table)
}

fn trigger_name<M: Model>(what: &str) -> String {
    format!("grant_capture_{}{what}", M::META.table)
}

/// The statements that create the journal and the triggers (idempotent), one per element.
pub(crate) fn create<M: Model, DB: Backend>() -> Vec<String> {
    let journal = journal_table::<M>();
    let mut out = vec![crate::stmt::create_key_table::<M, DB>(&journal)];

    let columns = pk_names::<M>()
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let values = |row: &str| {
        pk_names::<M>()
            .iter()
            .map(|c| format!("{row}.{}", quote(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (source, journal) = (quote(M::META.table), quote(&journal));
    if <DB as Backend>::NAME == "SQLite" {
        // Not `INSERT OR IGNORE`: an outer statement's conflict clause overrides a trigger's
        // in SQLite, so an upsert of the row would make a duplicate journal key an error.
        let insert = |row: &str| {
            let matches = pk_names::<M>()
                .iter()
                .map(|c| format!("{} = {row}.{}", quote(c), quote(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "INSERT INTO {journal} ({columns}) SELECT {} WHERE NOT EXISTS \
                 (SELECT 1 FROM {journal} WHERE {matches});",
                values(row)
            )
        };
        for (what, event, body) in [
            ("_ins", "INSERT", insert("NEW")),
            (
                "_upd",
                "UPDATE",
                format!("{} {}", insert("OLD"), insert("NEW")),
            ),
            ("_del", "DELETE", insert("OLD")),
        ] {
            out.push(format!(
                "CREATE TRIGGER IF NOT EXISTS {} AFTER {event} ON {source} FOR EACH ROW \
                 BEGIN {body} END",
                quote(&trigger_name::<M>(what))
            ));
        }
    } else {
        let function = quote(&trigger_name::<M>(""));
        let insert = |row: &str| {
            format!(
                "INSERT INTO {journal} ({columns}) VALUES ({}) ON CONFLICT DO NOTHING;",
                values(row)
            )
        };
        out.push(format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $grant$ \
             BEGIN \
               IF TG_OP <> 'DELETE' THEN {} END IF; \
               IF TG_OP <> 'INSERT' THEN {} END IF; \
               RETURN NULL; \
             END $grant$",
            insert("NEW"),
            insert("OLD")
        ));
        out.push(format!("DROP TRIGGER IF EXISTS {function} ON {source}"));
        out.push(format!(
            "CREATE TRIGGER {function} AFTER INSERT OR UPDATE OR DELETE ON {source} \
             FOR EACH ROW EXECUTE FUNCTION {function}()"
        ));
    }
    out
}

/// The statements that remove the triggers and the journal (idempotent).
pub(crate) fn drop<M: Model, DB: Backend>() -> Vec<String> {
    let journal = quote(&journal_table::<M>());
    let source = quote(M::META.table);
    if <DB as Backend>::NAME == "SQLite" {
        let mut out: Vec<String> = ["_ins", "_upd", "_del"]
            .iter()
            .map(|w| format!("DROP TRIGGER IF EXISTS {}", quote(&trigger_name::<M>(w))))
            .collect();
        out.push(format!("DROP TABLE IF EXISTS {journal}"));
        out
    } else {
        let function = quote(&trigger_name::<M>(""));
        vec![
            format!("DROP TRIGGER IF EXISTS {function} ON {source}"),
            format!("DROP FUNCTION IF EXISTS {function}()"),
            format!("DROP TABLE IF EXISTS {journal}"),
        ]
    }
}

/// `SELECT <primary key> FROM <journal>`.
pub(crate) fn read<M: Model>() -> String {
    format!(
        "SELECT {} FROM {}",
        pk_names::<M>()
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        quote(&journal_table::<M>())
    )
}

/// `DELETE FROM <journal>`: a fresh journal (the verification pass starts after it).
pub(crate) fn clear<M: Model>() -> String {
    format!("DELETE FROM {}", quote(&journal_table::<M>()))
}

/// `statements` as one transaction that gives up rather than queue: on PostgreSQL a trigger's
/// DDL waits for every lock on the table, and while it waits every writer queues behind it, so
/// it runs with `lock_timeout` (2 s) and fails instead of stalling the application (retried by
/// the job's next step). SQLite's locking has no such queue.
pub(crate) fn bounded<DB: Backend>(statements: Vec<String>) -> Vec<String> {
    if <DB as Backend>::NAME == "SQLite" {
        return statements;
    }
    let mut out = vec!["SET LOCAL lock_timeout = '2s'".to_owned()];
    out.extend(statements);
    out
}
