//! Shared call discipline for cloud connectors: a bound on concurrent calls
//! per connector instance (`max.iaas.workers`), a timeout per call, and
//! jittered exponential backoff on retryable errors.
//!
//! Every cloud call passes here, so this is where they are measured
//! (`cloudbroker_cloud_*` metrics, labelled by connector instance, action and
//! outcome kind only) and traced: each call runs in a `cloud_call` span, a
//! child of the span of the HTTP request (request id) or worker that caused it.

use crate::error::ConnectorError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Operations that must not be repeated when their outcome is unknown: a
/// timed-out `RunInstances` may have launched VMs, and clouds that ignore
/// ClientToken would launch them again. They are retried only when the cloud
/// said it did not do them (throttling); other failures go back to the
/// broker, which finds any VMs by their launch tag.
pub const NON_IDEMPOTENT: &[&str] = &["RunInstances"];

/// Whether a failed attempt of `op` may be retried.
pub fn may_retry(op: &str, e: &ConnectorError) -> bool {
    if NON_IDEMPOTENT.contains(&op) {
        matches!(e, ConnectorError::Throttled { .. })
    } else {
        e.is_retryable()
    }
}

/// How calls to one connector instance are made.
#[derive(Clone, Debug)]
pub struct CallPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubled each retry, with full jitter.
    pub base_delay: Duration,
    /// Cap on one backoff.
    pub max_delay: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Gate for the cloud calls of one connector instance, shared by all its users.
#[derive(Clone, Debug)]
pub struct CallGate {
    permits: Arc<Semaphore>,
    workers: usize,
    policy: CallPolicy,
    /// The connector instance, the `instance` label of the metrics.
    instance: Arc<str>,
}

impl CallGate {
    /// A gate allowing `workers` concurrent calls.
    pub fn new(workers: usize, policy: CallPolicy) -> Self {
        let workers = workers.max(1);
        Self { permits: Arc::new(Semaphore::new(workers)), workers, policy, instance: Arc::from("unnamed") }
    }

    /// The same gate, measuring its calls under the connector instance `name`.
    pub fn for_instance(mut self, name: &crate::InstanceName) -> Self {
        self.instance = Arc::from(name.as_str());
        self
    }

    /// The configured bound.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The policy.
    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    /// Calls currently in flight.
    pub fn in_flight(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// Runs `op` under the gate: each attempt holds a permit and has a
    /// timeout; retryable errors are retried with jittered exponential
    /// backoff (the permit is released while waiting).
    pub async fn call<T, F, Fut>(&self, op_name: &str, op: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let span = tracing::debug_span!("cloud_call", instance = %self.instance, action = op_name);
        let labels = [("instance", self.instance.to_string()), ("action", op_name.to_string())];
        let in_flight = metrics::gauge!("cloudbroker_cloud_calls_in_flight", &labels[..1]);
        in_flight.increment(1.0);
        let started = std::time::Instant::now();
        let result = self.attempts(op_name, op, &labels).instrument(span.clone()).await;
        in_flight.decrement(1.0);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        metrics::histogram!("cloudbroker_cloud_call_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
        let mut with_outcome = labels.to_vec();
        with_outcome.push(("outcome", outcome.to_string()));
        metrics::counter!("cloudbroker_cloud_calls_total", &with_outcome).increment(1);
        span.in_scope(|| tracing::debug!(outcome, elapsed_ms = started.elapsed().as_millis() as u64, "cloud call done"));
        result
    }

    async fn attempts<T, F, Fut>(&self, op_name: &str, mut op: F, labels: &[(&'static str, String)]) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = {
                let _permit =
                    self.permits.acquire().await.map_err(|_| ConnectorError::Transport { message: "connector is shutting down".into() })?;
                match tokio::time::timeout(self.policy.timeout, op()).await {
                    Ok(r) => r,
                    Err(_) => Err(ConnectorError::Timeout { seconds: self.policy.timeout.as_secs().max(1) }),
                }
            };
            if let Err(ConnectorError::Throttled { .. }) = &result {
                metrics::counter!("cloudbroker_cloud_throttles_total", labels).increment(1);
            }
            match result {
                Err(e) if may_retry(op_name, &e) && attempt < self.policy.max_attempts => {
                    metrics::counter!("cloudbroker_cloud_retries_total", labels).increment(1);
                    let delay = backoff(&self.policy, attempt);
                    tracing::warn!(op = op_name, attempt, error = %e, delay_ms = delay.as_millis() as u64, "retrying cloud call");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

/// Full-jitter backoff for the given (1-based) attempt that just failed.
pub fn backoff(policy: &CallPolicy, attempt: u32) -> Duration {
    let exp = policy.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(policy.max_delay);
    let nanos = cap.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    // Jitter in [cap/2, cap]: never zero, so a thundering herd still spreads.
    let jitter = jitter_u64() % (nanos / 2 + 1);
    Duration::from_nanos(nanos / 2 + jitter)
}

fn jitter_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fast(max_attempts: u32) -> CallPolicy {
        CallPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            timeout: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn retries_throttling_then_succeeds() {
        let gate = CallGate::new(2, fast(5));
        let calls = AtomicUsize::new(0);
        let r = gate
            .call("t", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 3 {
                        Err(ConnectorError::Throttled { code: "RequestLimitExceeded".into(), message: "slow down".into() })
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(r, Ok(3));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_never_retries_capacity() {
        let gate = CallGate::new(1, fast(3));
        let calls = AtomicUsize::new(0);
        let r: Result<(), _> = gate
            .call("t", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(ConnectorError::Throttled { code: "Throttling".into(), message: "x".into() }) }
            })
            .await;
        assert!(matches!(r, Err(ConnectorError::Throttled { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = gate
            .call("t", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(ConnectorError::Capacity { code: "InsufficientInstanceCapacity".into(), message: "none".into() }) }
            })
            .await;
        assert!(matches!(r, Err(ConnectorError::Capacity { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn times_out() {
        let gate = CallGate::new(1, CallPolicy { max_attempts: 1, ..fast(1) });
        let r: Result<(), _> = gate
            .call("t", || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(ConnectorError::Timeout { .. })));
    }

    #[tokio::test]
    async fn bounds_concurrency() {
        let gate = CallGate::new(3, fast(1));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                gate.call("t", || {
                    let (now, peak) = (now.clone(), peak.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, ConnectorError>(())
                    }
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn run_instances_is_not_repeated_when_its_outcome_is_unknown() {
        let gate = CallGate::new(1, fast(5));
        let calls = AtomicUsize::new(0);
        let r: Result<(), _> = gate
            .call("RunInstances", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(ConnectorError::Transport { message: "connection reset".into() }) }
            })
            .await;
        assert!(matches!(r, Err(ConnectorError::Transport { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a reset after sending may have launched VMs");
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = gate
            .call("RunInstances", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(ConnectorError::Throttled { code: "RequestLimitExceeded".into(), message: "x".into() })
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        assert_eq!(r, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a throttled launch was refused, so it is retried");
        assert!(may_retry("DescribeInstances", &ConnectorError::Timeout { seconds: 1 }));
        assert!(!may_retry("RunInstances", &ConnectorError::Timeout { seconds: 1 }));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = CallPolicy { base_delay: Duration::from_millis(100), max_delay: Duration::from_millis(1000), ..CallPolicy::default() };
        for _ in 0..50 {
            let d1 = backoff(&p, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d10 = backoff(&p, 10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000), "{d10:?}");
        }
    }
}
