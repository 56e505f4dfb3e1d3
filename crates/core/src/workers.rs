//! Background work as named workers (after garage's `background/worker.rs`):
//! each worker has a name, an interval and a `work` step; the [`Workers`]
//! runner keeps a status per worker (what `/readyz`, the admin UI and the
//! metrics show) and stops them all through one shutdown signal, letting a
//! step in progress finish (with a deadline) instead of aborting it.

use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One background job.
#[async_trait]
pub trait Worker: Send + 'static {
    /// A stable name (`reconcile`, `config-poll`, `session-purge`).
    fn name(&self) -> &'static str;
    /// How long to wait between steps.
    fn interval(&self) -> Duration;
    /// Whether the first step runs at once (or after one interval).
    fn run_at_start(&self) -> bool {
        true
    }
    /// One step. `Ok` carries a short summary of what it did (empty: nothing).
    async fn work(&mut self) -> Result<String, String>;
    /// A notification that starts the next step at once instead of after
    /// the interval (`None`: only the interval).
    fn kick(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// What a worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Waiting for its next step.
    Idle,
    /// In a step.
    Busy,
    /// Stopped by the shutdown signal.
    Stopped,
}

/// A worker's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    pub name: &'static str,
    pub state: WorkerState,
    /// Steps run so far.
    pub runs: u64,
    /// Consecutive failed steps (0 after a success).
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    pub last_summary: Option<String>,
    /// How long the last step took.
    pub last_duration_ms: Option<u64>,
    /// When the last successful step ended.
    pub last_success_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl WorkerStatus {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            state: WorkerState::Idle,
            runs: 0,
            consecutive_failures: 0,
            last_error: None,
            last_summary: None,
            last_duration_ms: None,
            last_success_at: None,
        }
    }
}

type StatusMap = Arc<RwLock<BTreeMap<&'static str, WorkerStatus>>>;

/// The running workers.
pub struct Workers {
    status: StatusMap,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

impl Workers {
    /// No workers yet.
    pub fn new() -> Self {
        Self::with_status(WorkerStatusHandle::default())
    }

    /// No workers yet; their status goes to `status` (shared with readers made earlier).
    pub fn with_status(status: WorkerStatusHandle) -> Self {
        Self { status: status.0, stop: watch::channel(false).0, handles: Vec::new() }
    }

    /// Starts a worker.
    pub fn spawn(&mut self, mut worker: impl Worker) {
        let name = worker.name();
        let status = self.status.clone();
        set(&status, name, |_| {});
        let mut stop = self.stop.subscribe();
        self.handles.push(tokio::spawn(async move {
            let mut first = worker.run_at_start();
            let kick = worker.kick();
            loop {
                if !first {
                    let kicked = async {
                        match &kick {
                            Some(k) => k.notified().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(worker.interval()) => {}
                        _ = kicked => {}
                        _ = stop.changed() => break,
                    }
                }
                first = false;
                if *stop.borrow() {
                    break;
                }
                set(&status, name, |s| s.state = WorkerState::Busy);
                let started = Instant::now();
                let outcome = worker.work().await;
                let took = started.elapsed().as_millis() as u64;
                set(&status, name, |s| {
                    s.state = WorkerState::Idle;
                    s.runs += 1;
                    s.last_duration_ms = Some(took);
                    match &outcome {
                        Ok(summary) => {
                            s.consecutive_failures = 0;
                            s.last_error = None;
                            s.last_success_at = Some(chrono::Utc::now());
                            if !summary.is_empty() {
                                s.last_summary = Some(summary.clone());
                            }
                        }
                        Err(e) => {
                            s.consecutive_failures += 1;
                            s.last_error = Some(e.clone());
                        }
                    }
                });
                match outcome {
                    Ok(summary) if !summary.is_empty() => tracing::info!(worker = name, %summary, "background work"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(worker = name, error = %e, "background work failed"),
                }
            }
            set(&status, name, |s| s.state = WorkerState::Stopped);
        }));
    }

    /// The status of every worker, by name.
    pub fn status(&self) -> Vec<WorkerStatus> {
        self.status.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// A handle that reads the status (for the HTTP edges).
    pub fn status_handle(&self) -> WorkerStatusHandle {
        WorkerStatusHandle(self.status.clone())
    }

    /// Signals every worker to stop and waits for steps in progress to end,
    /// at most `deadline`; returns the names of workers still busy then.
    pub async fn shutdown(self, deadline: Duration) -> Vec<&'static str> {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.handles);
        let _ = tokio::time::timeout(deadline, all).await;
        self.status.read().map(|m| m.values().filter(|s| s.state != WorkerState::Stopped).map(|s| s.name).collect()).unwrap_or_default()
    }
}

/// Reads worker statuses.
#[derive(Clone, Default)]
pub struct WorkerStatusHandle(StatusMap);

impl WorkerStatusHandle {
    /// The status of every worker, by name.
    pub fn get(&self) -> Vec<WorkerStatus> {
        self.0.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}

fn set(status: &StatusMap, name: &'static str, f: impl FnOnce(&mut WorkerStatus)) {
    let mut m = status.write().unwrap_or_else(|e| e.into_inner());
    f(m.entry(name).or_insert_with(|| WorkerStatus::new(name)));
}

/// Work done by one replica at a time (reconcile, the lease, budget and
/// deployment workers): the replica holding its lease now. The store keeps
/// no replica's worker status, only these leases, so they are all another
/// replica's work that the admin overview can show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkLease {
    /// The lease's name (`reconcile:sb`, `budget-watch`, …).
    pub name: String,
    /// The replica holding it.
    pub holder: String,
    /// Whether that is this replica.
    pub this_replica: bool,
    /// When it runs out unless renewed.
    pub until: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(Arc<AtomicU64>, bool);

    #[async_trait]
    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(10)
        }
        async fn work(&mut self) -> Result<String, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if self.1 && n.is_multiple_of(2) {
                Err(format!("step {n} failed"))
            } else {
                Ok(format!("step {n}"))
            }
        }
    }

    #[tokio::test]
    async fn runs_reports_and_stops() {
        let n = Arc::new(AtomicU64::new(0));
        let mut w = Workers::new();
        w.spawn(Counter(n.clone(), true));
        let h = w.status_handle();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = h.get().into_iter().next().unwrap();
        assert!(s.runs >= 3, "{s:?}");
        assert!(s.last_summary.as_deref().unwrap_or("").starts_with("step"));
        assert_eq!(w.shutdown(Duration::from_secs(1)).await, Vec::<&str>::new());
        let after = n.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(n.load(Ordering::SeqCst), after, "no step after shutdown");
        assert_eq!(h.get()[0].state, WorkerState::Stopped);
    }

    struct Slow;

    #[async_trait]
    impl Worker for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(60)
        }
        async fn work(&mut self) -> Result<String, String> {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(String::new())
        }
    }

    #[tokio::test]
    async fn shutdown_deadline_names_busy_workers() {
        let mut w = Workers::new();
        w.spawn(Slow);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(w.status()[0].state, WorkerState::Busy);
        assert_eq!(w.shutdown(Duration::from_millis(100)).await, vec!["slow"]);
    }
}
