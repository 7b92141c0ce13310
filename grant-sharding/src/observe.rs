//! Observability: one `tracing` span and a set of `metrics` per shard statement.
//!
//! Span `grant.statement` (level DEBUG) with fields `model`, `shard`, `endpoint`, `rows`,
//! `duration_us`, `ok`. Metrics, through the `metrics` facade (install any recorder, e.g. a
//! Prometheus exporter, to serve them):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `grant_statements_total` | counter | `model`, `shard`, `endpoint` |
//! | `grant_statement_errors_total` | counter | `model`, `shard`, `endpoint` |
//! | `grant_statement_duration_seconds` | histogram | `model`, `shard`, `endpoint` |
//! | `grant_statement_rows` | histogram | `model`, `shard`, `endpoint` |

use std::time::Instant;

use tracing::Span;

/// Metric names, for dashboards and tests.
pub mod names {
    /// Statements sent, per model, shard and endpoint.
    pub const STATEMENTS: &str = "grant_statements_total";
    /// Statements that failed.
    pub const ERRORS: &str = "grant_statement_errors_total";
    /// Statement latency in seconds.
    pub const DURATION: &str = "grant_statement_duration_seconds";
    /// Rows returned or affected per statement.
    pub const ROWS: &str = "grant_statement_rows";
}

/// Measures one statement from creation to drop.
pub(crate) struct Statement {
    model: &'static str,
    shard: &'static str,
    endpoint: &'static str,
    started: Instant,
    rows: u64,
    ok: bool,
    span: Span,
}

impl Statement {
    pub(crate) fn start(model: &'static str, shard: &'static str, endpoint: &'static str) -> Self {
        let span = tracing::debug_span!(
            "grant.statement",
            model,
            shard = %shard,
            endpoint,
            rows = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            ok = tracing::field::Empty,
        );
        Statement {
            model,
            shard,
            endpoint,
            started: Instant::now(),
            rows: 0,
            ok: true,
            span,
        }
    }

    /// The statement's span, to instrument its future with.
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    pub(crate) fn add_rows(&mut self, n: u64) {
        self.rows += n;
    }

    pub(crate) fn fail(&mut self) {
        self.ok = false;
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.span.record("rows", self.rows);
        self.span.record("duration_us", elapsed.as_micros() as u64);
        self.span.record("ok", self.ok);
        // Static labels: recording allocates nothing on the statement path.
        let labels = [
            ("model", self.model),
            ("shard", self.shard),
            ("endpoint", self.endpoint),
        ];
        metrics::counter!(names::STATEMENTS, &labels).increment(1);
        if !self.ok {
            metrics::counter!(names::ERRORS, &labels).increment(1);
        }
        metrics::histogram!(names::DURATION, &labels).record(elapsed.as_secs_f64());
        metrics::histogram!(names::ROWS, &labels).record(self.rows as f64);
    }
}
