//! Every shard statement runs in a `grant.statement` span with model, shard, endpoint, rows,
//! duration and outcome.

mod common;

use std::sync::{Arc, Mutex};

use common::{User, user};
use grant::prelude::*;

/// A minimal tracing subscriber that keeps every span's name and recorded fields.
#[derive(Default, Clone)]
struct Spans(Arc<Mutex<Vec<SpanRecord>>>);

/// A span's name and its recorded `(field, value)` pairs.
type SpanRecord = (String, Vec<(String, String)>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
}

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        spans.push((span.metadata().name().to_string(), fields));
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.0.lock().unwrap();
        let entry = &mut spans[id.into_u64() as usize - 1];
        values.record(&mut Fields(&mut entry.1));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn every_statement_has_a_span() {
    let spans = Spans::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The only test in this binary: a global subscriber sees every callsite (a scoped one can
    // miss callsites whose interest another thread cached first).
    tracing::subscriber::set_global_default(spans.clone()).unwrap();
    {
        rt.block_on(async {
            let cluster = Cluster::<Sqlite>::memory(8).await.unwrap();
            User::create_table(&cluster).await.unwrap();
            user(7).insert(&cluster).await.unwrap();
            User::find(&cluster, 7).await.unwrap();
        })
    }
    let spans = spans.0.lock().unwrap();
    let statements: Vec<_> = spans
        .iter()
        .filter(|(name, _)| name == "grant.statement")
        .collect();
    // 8 CREATE TABLE + 8 schema checks of the new tables + insert + find.
    assert_eq!(statements.len(), 18);
    let find = statements.last().unwrap();
    let field = |k: &str| {
        find.1
            .iter()
            .rev()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("model").as_deref(), Some("\"User\""));
    assert_eq!(field("shard"), Some(User::shard_for(&7).name()));
    assert_eq!(field("endpoint").as_deref(), Some("\"primary\""));
    assert_eq!(field("rows").as_deref(), Some("1"));
    assert_eq!(field("ok").as_deref(), Some("true"));
    assert!(field("duration_us").is_some());
}
