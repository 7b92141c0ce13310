//! Endpoint health: a circuit breaker fed by every statement and by background probes, and the
//! statistics `Cluster::status()` reports.
//!
//! An endpoint's circuit opens after `failures_to_open` consecutive connection-level failures
//! (unreachable, timed out, pool exhausted); while open, requests to it fail fast. Background
//! probes (`SELECT 1`, every `interval`) keep testing it — half-open — and the first success
//! closes the circuit again. Statement errors (a constraint violation, bad SQL) say nothing about
//! the endpoint and don't count.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// How the background health checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between probes of each endpoint.
    pub interval: Duration,
    /// How long a probe may take.
    pub timeout: Duration,
    /// Consecutive failures that open the circuit.
    pub failures_to_open: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failures_to_open: 3,
        }
    }
}

/// The state of an endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Healthy: requests flow.
    Closed,
    /// Down: requests fail fast; probes keep testing it.
    Open,
}

/// Latency samples kept per endpoint for the mean and p95.
const SAMPLES: usize = 512;

/// Health state of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Health {
    consecutive_failures: AtomicU32,
    open: std::sync::atomic::AtomicBool,
    total: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<VecDeque<Duration>>,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub(crate) fn circuit(&self) -> Circuit {
        if self.open.load(Ordering::Acquire) {
            Circuit::Open
        } else {
            Circuit::Closed
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.circuit() == Circuit::Open
    }

    /// A request or probe succeeded.
    pub(crate) fn success(&self, latency: Duration) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
        let mut samples = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(latency);
    }

    /// A request or probe failed at the connection level.
    pub(crate) fn failure(&self, error: &str, failures_to_open: u32) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= failures_to_open {
            self.open.store(true, Ordering::Release);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// (mean, p95) of the recent latencies.
    pub(crate) fn latency(&self) -> (Option<Duration>, Option<Duration>) {
        let samples = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        if samples.is_empty() {
            return (None, None);
        }
        let mut sorted: Vec<Duration> = samples.iter().copied().collect();
        sorted.sort();
        let mean = sorted.iter().sum::<Duration>() / sorted.len() as u32;
        let p95 = sorted[((sorted.len() * 95).div_ceil(100)).saturating_sub(1)];
        (Some(mean), Some(p95))
    }

    pub(crate) fn error_rate(&self) -> f64 {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            0.0
        } else {
            self.errors.load(Ordering::Relaxed) as f64 / total as f64
        }
    }
}

/// One endpoint (a shard's primary or one of its replicas) as [`Cluster::status`] reports it.
///
/// [`Cluster::status`]: crate::Cluster::status
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    /// `primary`, `replica_0`, `replica_1`, ...
    pub endpoint: String,
    /// Whether requests flow to it (its circuit is closed).
    pub healthy: bool,
    /// The circuit breaker's state.
    pub circuit: Circuit,
    /// Consecutive connection-level failures so far.
    pub consecutive_failures: u32,
    /// Mean latency of recent statements and probes.
    pub latency_mean: Option<Duration>,
    /// 95th percentile latency of recent statements and probes.
    pub latency_p95: Option<Duration>,
    /// Share of requests and probes that failed at the connection level.
    pub error_rate: f64,
    /// Pooled connections in use.
    pub in_use: u32,
    /// Pooled connections idle.
    pub idle: u32,
    /// The most recent connection-level error.
    pub last_error: Option<String>,
}

/// One shard as [`Cluster::status`](crate::Cluster::status) reports it.
#[derive(Debug, Clone)]
pub struct ShardStatus {
    /// The shard's name.
    pub shard: String,
    /// Its primary first, then its replicas.
    pub endpoints: Vec<EndpointStatus>,
}
