//! The process's metrics: one Prometheus recorder for the whole process
//! (installed on first use), the names of the broker's own metrics, and small
//! helpers the services call. Label values are only ever fixed words, route
//! templates, connector instance names and VM states (all chosen by the
//! operator or the code): never user names, ids or anything a client typed,
//! so a scrape reveals nothing about who uses the broker and the number of
//! series stays bounded.
//!
//! Metrics recorded elsewhere: `cloudbroker_http_*` (crates/web, per route
//! template) and `cloudbroker_cloud_*` (the connector call gate,
//! crates/connector-api/src/retry.rs).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Buckets (seconds) of every `*_duration_seconds` histogram: from a fast
/// local request to a slow cloud launch.
pub const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same
/// handle). `None` if another recorder was installed first (then the
/// broker's metrics go there and `/metrics` has nothing to show).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS);
            let handle = match builder.map(|b| b.install_recorder()) {
                Ok(Ok(h)) => h,
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    return None;
                }
            };
            describe();
            metrics::gauge!("cloudbroker_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            metrics::gauge!("cloudbroker_start_time_seconds").set(unix_now());
            Some(handle)
        })
        .as_ref()
}

/// The current metrics in the Prometheus text format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("cloudbroker_build_info", "Version of the running binary (value 1).");
    describe_gauge!("cloudbroker_start_time_seconds", Unit::Seconds, "When the process started (Unix time).");
    describe_counter!("cloudbroker_http_requests_total", "HTTP requests by method, route template and status.");
    describe_histogram!("cloudbroker_http_request_duration_seconds", Unit::Seconds, "HTTP request latency by method and route template.");
    describe_gauge!("cloudbroker_http_requests_in_flight", "HTTP requests being served.");
    describe_counter!("cloudbroker_cloud_calls_total", "Cloud API calls by connector instance, action and outcome (ok or error kind).");
    describe_histogram!(
        "cloudbroker_cloud_call_duration_seconds",
        Unit::Seconds,
        "Cloud API call latency, retries included, by connector instance and action."
    );
    describe_gauge!("cloudbroker_cloud_calls_in_flight", "Cloud API calls in progress by connector instance.");
    describe_counter!("cloudbroker_cloud_retries_total", "Cloud API attempts retried, by connector instance and action.");
    describe_counter!("cloudbroker_cloud_throttles_total", "Cloud API attempts the cloud throttled, by connector instance and action.");
    describe_counter!("cloudbroker_quota_rejections_total", "Launches refused because they would exceed a quota, by connector instance.");
    describe_counter!(
        "cloudbroker_spend_micros_total",
        "What VMs spent (metered, with markups), in millionths of the broker's currency, by connector instance and user; grown by the budget-watch worker each minute (per process: use increase() or rate())."
    );
    describe_counter!(
        "cloudbroker_budget_alerts_total",
        "Budget thresholds crossed (each recorded once a month), by scope (user, project), connector instance and threshold (percent)."
    );
    describe_counter!("cloudbroker_launches_total", "Launches admitted, by connector instance and outcome.");
    describe_gauge!("cloudbroker_launches_in_flight", "Launches waiting for the cloud's answer.");
    describe_histogram!("cloudbroker_reconcile_duration_seconds", Unit::Seconds, "Duration of a reconciliation pass.");
    describe_counter!("cloudbroker_reconcile_passes_total", "Reconciliation passes by outcome.");
    describe_gauge!(
        "cloudbroker_reconcile_last_success_seconds",
        Unit::Seconds,
        "When the last reconciliation pass succeeded (Unix time); lag = time() - this."
    );
    describe_gauge!(
        "cloudbroker_vms",
        "VMs the broker tracks by connector instance and state (live states; set by each reconciliation pass)."
    );
    describe_counter!("cloudbroker_vault_operations_total", "Credential vault operations by operation and outcome.");
    describe_counter!(
        "cloudbroker_vault_unknown_key_total",
        "Stored secrets refused because they are sealed with a master key this process's key file lacks."
    );
    describe_gauge!(
        "cloudbroker_vault_missing_keys",
        "Master key ids stored data is sealed with that this process's key file lacks (set by each /readyz check; 0 when healthy)."
    );
}

/// Counts a launch refused by a quota.
pub fn quota_rejected(instance: &str) {
    metrics::counter!("cloudbroker_quota_rejections_total", "instance" => instance.to_string()).increment(1);
}

/// Grows the spend counter of `user` on `instance` by `micros` (millionths of the currency).
pub fn spend(instance: &str, user: &str, micros: i64) {
    metrics::counter!("cloudbroker_spend_micros_total", "instance" => instance.to_string(), "user" => user.to_string())
        .increment(u64::try_from(micros).unwrap_or(0));
}

/// Counts a budget threshold crossed (recorded once per month and budget).
pub fn budget_alert(scope: &'static str, instance: &str, threshold: i64) {
    metrics::counter!("cloudbroker_budget_alerts_total", "scope" => scope, "instance" => instance.to_string(), "threshold" => threshold.to_string())
        .increment(1);
}

/// Counts a vault operation (`seal`, `open`, `save`, `delete`, `rotate`, ...).
pub fn vault_op(op: &'static str, ok: bool) {
    metrics::counter!("cloudbroker_vault_operations_total", "op" => op, "outcome" => if ok { "ok" } else { "error" }).increment(1);
}

/// Counts a stored secret refused for a master key the key file lacks.
pub fn vault_unknown_key() {
    metrics::counter!("cloudbroker_vault_unknown_key_total").increment(1);
}

/// Sets how many master key ids in use the key file lacks.
pub fn vault_missing_keys(n: usize) {
    metrics::gauge!("cloudbroker_vault_missing_keys").set(n as f64);
}

/// A launch waiting for the cloud: counted in `cloudbroker_launches_in_flight`
/// until dropped, when its outcome is counted.
pub struct LaunchInFlight {
    instance: String,
    outcome: &'static str,
}

impl LaunchInFlight {
    /// Starts counting a launch on `instance`.
    pub fn start(instance: &str) -> Self {
        metrics::gauge!("cloudbroker_launches_in_flight").increment(1.0);
        Self { instance: instance.to_string(), outcome: "error" }
    }

    /// Sets the outcome counted when this ends (`ok`, `unknown`, `failed`).
    pub fn outcome(&mut self, outcome: &'static str) {
        self.outcome = outcome;
    }
}

impl Drop for LaunchInFlight {
    fn drop(&mut self) {
        metrics::gauge!("cloudbroker_launches_in_flight").decrement(1.0);
        metrics::counter!("cloudbroker_launches_total", "instance" => self.instance.clone(), "outcome" => self.outcome).increment(1);
    }
}

/// Times a reconciliation pass.
pub struct ReconcilePass(Instant);

impl ReconcilePass {
    /// Starts timing.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Records the pass's duration and outcome.
    pub fn finish(self, ok: bool) {
        metrics::histogram!("cloudbroker_reconcile_duration_seconds").record(self.0.elapsed().as_secs_f64());
        metrics::counter!("cloudbroker_reconcile_passes_total", "outcome" => if ok { "ok" } else { "error" }).increment(1);
        if ok {
            metrics::gauge!("cloudbroker_reconcile_last_success_seconds").set(unix_now());
        }
    }
}

static VM_SERIES: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

/// Sets `cloudbroker_vms` from a count per (instance, state); series set
/// before and absent now go to 0 (so a state that emptied does not keep its
/// old count).
pub fn set_vm_counts(counts: &BTreeMap<(String, String), usize>) {
    let mut seen = VM_SERIES.lock().unwrap_or_else(|e| e.into_inner());
    for key in seen.iter() {
        if !counts.contains_key(key) {
            metrics::gauge!("cloudbroker_vms", "instance" => key.0.clone(), "state" => key.1.clone()).set(0.0);
        }
    }
    for ((instance, state), n) in counts {
        metrics::gauge!("cloudbroker_vms", "instance" => instance.clone(), "state" => state.clone()).set(*n as f64);
        seen.insert((instance.clone(), state.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_zeroes_emptied_vm_series() {
        install();
        let mut counts = BTreeMap::new();
        counts.insert(("sbx-metrics-test".to_string(), "running".to_string()), 3);
        set_vm_counts(&counts);
        let text = render();
        assert!(text.contains(&format!("cloudbroker_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
        assert!(text.contains("cloudbroker_vms{instance=\"sbx-metrics-test\",state=\"running\"} 3"), "{text}");
        set_vm_counts(&BTreeMap::new());
        assert!(render().contains("cloudbroker_vms{instance=\"sbx-metrics-test\",state=\"running\"} 0"));
    }
}
