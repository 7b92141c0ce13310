//! Endpoint health: a circuit breaker fed by every statement and by background probes, and the
//! statistics `Cluster::status()` reports.
//!
//! Every statement's outcome feeds its endpoint's health, not only the probes: a statement that
//! fails at the connection level (refused, unknown host, authentication failed, connection lost,
//! timed out) counts as a failure in `error_rate`, sets `last_error` and, after
//! `failures_to_open` consecutive ones, opens the circuit; while open, requests to it fail fast.
//! Background probes (`SELECT 1`, every `interval`) keep testing it — half-open — and the first
//! success closes the circuit again; without health checks, one request every `interval` is let
//! through as the trial. Statement errors (a constraint violation, bad SQL) say nothing about the
//! endpoint and don't count.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since the first health event of the process (never 0).
fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    (EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64).max(1)
}

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
    /// When the last failure happened ([`now_nanos`]; 0: never).
    last_failure: AtomicU64,
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

    /// Whether a request may go to the endpoint: its circuit is closed — or, when `trial_after`
    /// is given (no background probes run to close it), that long has passed since the last
    /// failure, and this request is the half-open trial.
    #[inline]
    pub(crate) fn admits(&self, trial_after: Option<Duration>) -> bool {
        if !self.is_open() {
            return true;
        }
        let Some(after) = trial_after else {
            return false;
        };
        let last = self.last_failure.load(Ordering::Relaxed);
        if now_nanos().saturating_sub(last) < after.as_nanos() as u64 {
            return false;
        }
        // One trial per period: the first request to claim it goes, the others fail fast.
        self.last_failure
            .compare_exchange(last, now_nanos(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
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
        self.last_failure.store(now_nanos(), Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= failures_to_open {
            self.open.store(true, Ordering::Release);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
    }

    /// Whether no request or probe has reached this endpoint yet.
    pub(crate) fn untried(&self) -> bool {
        self.total.load(Ordering::Relaxed) == 0
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
