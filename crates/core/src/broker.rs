//! The assembled broker: configuration, store and services, plus the named
//! background workers they need. The HTTP edges reach the broker only
//! through these services; the store itself is private to `cloudbroker-core`.

use crate::access_keys::AccessKeys;
use crate::audit::Audit;
use crate::cache::CacheEpoch;
use crate::config::Config;
use crate::identity::{Identity, SessionLimits};
use crate::images::Images;
use crate::key_pairs::KeyPairs;
use crate::projects::Projects;
use crate::provisioning::Provisioning;
use crate::registry::{Registry, RegistryError, Status};
use crate::system::System;
use crate::vault::Vault;
use crate::workers::{Worker, WorkerStatus, WorkerStatusHandle, Workers};
use async_trait::async_trait;
use cloudbroker_connector_api::Connectors;
use cloudbroker_store::{Store, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Errors starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Other(String),
}

/// Everything the HTTP edges need (cheap to clone).
#[derive(Clone)]
pub struct Broker {
    pub config: Arc<Config>,
    store: Store,
    pub registry: Arc<Registry>,
    pub identity: Arc<Identity>,
    pub vault: Arc<Vault>,
    /// EC2 API access keys (their secrets sealed by the vault's master keys).
    pub access_keys: Arc<AccessKeys>,
    /// Named SSH key pairs per project.
    pub key_pairs: Arc<KeyPairs>,
    pub images: Arc<Images>,
    /// Projects (teams), their members, and entering one.
    pub projects: Arc<Projects>,
    pub provisioning: Arc<Provisioning>,
    pub audit: Arc<Audit>,
    pub system: Arc<System>,
    /// Prices and what VMs cost.
    pub costs: Arc<crate::costs::Costs>,
    /// Applications: named, versioned documents that deployments launch.
    pub applications: Arc<crate::deployments::Applications>,
    /// Parameter exchange: the deployments' VMs' credentials, parameters and waits.
    pub exchange: Arc<crate::deployments::exchange::Exchange>,
    /// Deployments: admitted together, driven by the `deployments` worker.
    pub deployments: Arc<crate::deployments::Deployments>,
    /// This process's id among replicas (for leases and logs).
    pub replica_id: String,
    /// The clock time-driven rules read (VM leases): the system's; a test
    /// sets it (every service holding a clone moves with it).
    pub clock: crate::clock::Clock,
    workers: WorkerStatusHandle,
}

/// What `/readyz` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    /// Whether the database answers and the key file opens every stored
    /// secret (the broker cannot serve without either).
    pub ready: bool,
    /// Why the key file does not open every stored secret (which key ids it
    /// lacks; never a key), when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_keys: Option<String>,
    pub database: &'static str,
    pub declared: usize,
    pub ready_connectors: usize,
    pub workers: Vec<WorkerStatus>,
    /// Why the database check failed, for the log (never sent to clients).
    #[serde(skip)]
    pub error: Option<String>,
}

/// Where the generated password of `super` is written on first start.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";

/// Writes `text` to a new file of mode 0600 (replacing any older one).
fn write_secret_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

impl Broker {
    /// Opens the store (applying migrations) and loads the connector
    /// instances, of the kinds in `connectors` (the binary registers them).
    pub async fn start(config: Config, connectors: Connectors) -> Result<Self, StartError> {
        // Private (0700) when created here, whatever the umask.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&config.data_dir)
            .map_err(|e| StartError::Other(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
        let store = Store::open(&config.database_url).await?;
        let registry = Registry::load(store.clone(), &config.connectors_dir, crate::factory::persistent(connectors, store.clone())).await?;
        let vault = Arc::new(
            Vault::open(store.clone(), registry.clone(), &config.master_key_file).await.map_err(|e| StartError::Other(e.to_string()))?,
        );
        // One invalidation epoch for this broker's credential caches (API
        // tokens and access keys): a change either service makes empties both.
        let epoch = CacheEpoch::default();
        let access_keys = Arc::new(AccessKeys::new(store.clone(), vault.clone(), epoch.clone()));
        let key_pairs = Arc::new(KeyPairs::new(store.clone()));
        let projects = Arc::new(Projects::new(store.clone(), epoch.clone()));
        let mut identity = Identity::new(store.clone(), epoch);
        identity.session_limits = SessionLimits {
            idle: Duration::from_secs(config.session_idle_secs),
            absolute: Duration::from_secs(config.session_absolute_secs),
        };
        let identity = Arc::new(identity);
        if let Some(pw) = identity.bootstrap_super(config.admin_password.as_ref()).await.map_err(|e| StartError::Other(e.to_string()))? {
            // Never in the log (logs are shipped and kept): in a file only its owner reads.
            let path = config.data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
            write_secret_file(&path, pw.expose())
                .map_err(|e| StartError::Other(format!("cannot write the generated admin password to {}: {e}", path.display())))?;
            tracing::warn!(
                file = %path.display(),
                "created the admin account 'super' with a generated password, written to that file (mode 0600); sign in, change it (`cloudbroker user passwd super`) and delete the file"
            );
        }
        let images = Arc::new(Images::new(store.clone(), registry.clone()));
        let mut provisioning = Provisioning::new(store.clone(), registry.clone(), vault.clone(), images.clone(), store.broker_id().await?);
        provisioning.launch_grace = Duration::from_secs(config.launch_grace_secs);
        provisioning.reconcile_interval = Duration::from_secs(config.reconcile_interval_secs);
        provisioning.lease_claim_ttl = Duration::from_secs(config.lease_claim_ttl_secs);
        // One clock for the store's stamps (VM state history) and the services' rules.
        let clock = store.clock().clone();
        provisioning.clock = clock.clone();
        // Budget overrides: a belief re-read at the configuration poll's pace (see `Overrides`).
        provisioning.budget_overrides = Arc::new(crate::costs::budgets::Overrides::new(Duration::from_secs(config.config_poll_secs)));
        let provisioning = Arc::new(provisioning);
        // Where deployments' VMs reach this broker (their boot script's CLOUDBROKER_URL).
        let broker_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
        let exchange = Arc::new(crate::deployments::exchange::Exchange::new(store.clone(), vault.clone(), broker_url));
        let replica_id = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("0"));
        let applications = Arc::new(crate::deployments::Applications::new(store.clone(), registry.clone()));
        let mut deployments = crate::deployments::Deployments::new(
            store.clone(),
            provisioning.clone(),
            applications.clone(),
            exchange.clone(),
            replica_id.clone(),
        );
        deployments.claim_ttl = Duration::from_secs(config.deploy_claim_ttl_secs);
        let deployments = Arc::new(deployments);
        Ok(Self {
            config: Arc::new(config),
            audit: Arc::new(Audit::new(store.clone())),
            system: Arc::new(System::new(store.clone(), registry.clone())),
            costs: Arc::new(
                crate::costs::Costs::new(store.clone(), registry.clone())
                    .with_overrides(provisioning.budget_overrides.clone())
                    .with_holder(replica_id.clone()),
            ),
            applications,
            exchange,
            deployments,
            store,
            registry,
            identity,
            vault,
            access_keys,
            key_pairs,
            images,
            projects,
            provisioning,
            replica_id,
            clock,
            workers: WorkerStatusHandle::default(),
        })
    }

    /// Sets or clears a user's default EC2 region (self or admin): the
    /// connector instance SigV2 requests to plain `/ec2` act on. A name that
    /// is not a connector instance of this broker is refused, naming it.
    pub async fn set_default_ec2_region(
        &self,
        actor: &crate::Actor,
        user: &crate::domain::UserName,
        region: Option<&str>,
    ) -> crate::ServiceResult<()> {
        let region = match region.filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => {
                let what = || format!("'{}' is not a connector instance of this broker", r.chars().take(64).collect::<String>());
                // Not an instance name at all: bad input (400). A well-formed
                // name that no instance has: a configuration conflict (409),
                // like an image with no id on an instance.
                let name =
                    crate::domain::InstanceName::parse(r).map_err(|_| crate::ServiceError::invalid_field("default_ec2_region", what()))?;
                if self.registry.snapshot().instance(name.as_str()).is_none() {
                    return Err(crate::ServiceError::unresolved("default_ec2_region", what()));
                }
                Some(name)
            }
        };
        self.identity.set_default_ec2_region(actor, user, region.as_ref()).await
    }

    /// The store (tests only: the edges go through the services).
    #[cfg(feature = "testing")]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts the background workers: reconciliation (first pass at once: it
    /// also finishes launches a crash interrupted), a quicker watch on VMs
    /// in transition, the lease worker (first pass at once: expiries missed
    /// while down), configuration polling
    /// (changes made on other replicas) and the purge of expired sessions.
    /// Stop them with [`Workers::shutdown`].
    pub fn spawn_background(&self) -> Workers {
        let mut w = Workers::with_status(self.workers.clone());
        w.spawn(ReconcileWorker { provisioning: self.provisioning.clone(), holder: self.replica_id.clone() });
        w.spawn(TransitionWatchWorker { provisioning: self.provisioning.clone(), holder: self.replica_id.clone() });
        w.spawn(LeaseWorker {
            provisioning: self.provisioning.clone(),
            holder: self.replica_id.clone(),
            every: Duration::from_secs(self.config.lease_interval_secs),
        });
        w.spawn(ConfigPollWorker { registry: self.registry.clone(), every: Duration::from_secs(self.config.config_poll_secs) });
        w.spawn(SessionPurgeWorker { identity: self.identity.clone() });
        w.spawn(BudgetWatchWorker { costs: self.costs.clone() });
        w.spawn(DeploymentsWorker { deployments: self.deployments.clone(), every: Duration::from_secs(self.config.deploy_interval_secs) });
        w
    }

    /// Readiness: the database answers and the master key file holds every
    /// key stored data is sealed with; connectors and workers are reported.
    pub async fn readiness(&self) -> Readiness {
        let snap = self.registry.snapshot();
        let ping = self.store.ping().await;
        let master_keys = match (&ping, self.vault.check_keys().await) {
            (Ok(()), Err(e)) if !matches!(e, crate::ServiceError::DatabaseUnavailable(_)) => Some(e.to_string()),
            _ => None,
        };
        Readiness {
            ready: ping.is_ok() && master_keys.is_none(),
            master_keys,
            database: self.store.backend().as_str(),
            declared: snap.instances.len(),
            ready_connectors: snap.instances.iter().filter(|i| i.status == Status::Ready).count(),
            workers: self.workers.get(),
            error: ping.err().map(|e| e.to_string()),
        }
    }

    /// The database backend's name (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.store.backend().as_str()
    }

    /// The leases held now, by name: which replica does each piece of
    /// work done by one replica at a time (see [`crate::workers::WorkLease`]).
    pub async fn work_leases(&self) -> crate::ServiceResult<Vec<crate::workers::WorkLease>> {
        let rows = self.store.held_leases().await?;
        Ok(rows
            .into_iter()
            .map(|(name, holder, until)| crate::workers::WorkLease {
                this_replica: holder == self.replica_id,
                name,
                holder,
                until: cloudbroker_store::ms_to_time(until),
            })
            .collect())
    }

    /// Releases the leases this replica holds (at shutdown, once its
    /// workers have stopped), so another replica takes over at once.
    pub async fn release_leases(&self) -> crate::ServiceResult<u64> {
        Ok(self.store.release_leases_of(&self.replica_id).await?)
    }

    /// Closes the database pool (at shutdown).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

struct ReconcileWorker {
    provisioning: Arc<Provisioning>,
    holder: String,
}

#[async_trait]
impl Worker for ReconcileWorker {
    fn name(&self) -> &'static str {
        "reconcile"
    }
    fn interval(&self) -> Duration {
        self.provisioning.reconcile_interval
    }
    async fn work(&mut self) -> Result<String, String> {
        let r = self.provisioning.reconcile(&self.holder).await.map_err(|e| e.to_string())?;
        if !r.errors.is_empty() {
            return Err(format!("{} group(s) failed: {}", r.errors.len(), r.errors.join("; ")));
        }
        Ok(if r.is_eventful() {
            format!("updated {}, adopted {}, vanished {}, failed launches {}", r.updated, r.adopted, r.vanished, r.failed_launches)
        } else {
            String::new()
        })
    }
}

/// The deployments driver (`drive_pass`): one replica drives a deployment
/// at a time (claims in the database), any replica resumes one whose
/// driver died.
struct DeploymentsWorker {
    deployments: Arc<crate::deployments::Deployments>,
    every: Duration,
}

#[async_trait]
impl Worker for DeploymentsWorker {
    fn name(&self) -> &'static str {
        "deployments"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    fn kick(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.deployments.kick.clone())
    }
    async fn work(&mut self) -> Result<String, String> {
        let r = self.deployments.drive_pass().await.map_err(|e| e.to_string())?;
        if !r.errors.is_empty() {
            return Err(format!("{} deployment(s) failed a step: {}", r.errors.len(), r.errors.join("; ")));
        }
        Ok(r.summary())
    }
}

/// How often VMs on their way somewhere are refreshed.
pub const TRANSITION_WATCH_INTERVAL: Duration = Duration::from_secs(3);

struct TransitionWatchWorker {
    provisioning: Arc<Provisioning>,
    holder: String,
}

#[async_trait]
impl Worker for TransitionWatchWorker {
    fn name(&self) -> &'static str {
        "transition-watch"
    }
    fn interval(&self) -> Duration {
        TRANSITION_WATCH_INTERVAL.min(self.provisioning.reconcile_interval)
    }
    async fn work(&mut self) -> Result<String, String> {
        let r = self.provisioning.watch_transitional(&self.holder).await.map_err(|e| e.to_string())?;
        if !r.errors.is_empty() {
            return Err(format!("{} group(s) failed: {}", r.errors.len(), r.errors.join("; ")));
        }
        Ok(if r.updated + r.vanished + r.adopted > 0 {
            format!("updated {}, vanished {}, adopted {}", r.updated, r.vanished, r.adopted)
        } else {
            String::new()
        })
    }
}

/// Ends expired VM leases and records the warnings due
/// ([`Provisioning::lease_pass`]); first pass at start, so expiries missed
/// while the broker was down are acted on at once (saying how late).
struct LeaseWorker {
    provisioning: Arc<Provisioning>,
    holder: String,
    /// `lease_interval_secs` (5 s unless configured).
    every: Duration,
}

#[async_trait]
impl Worker for LeaseWorker {
    fn name(&self) -> &'static str {
        "lease"
    }
    fn interval(&self) -> Duration {
        self.every.min(self.provisioning.reconcile_interval)
    }
    async fn work(&mut self) -> Result<String, String> {
        let r = self.provisioning.lease_pass(&self.holder).await.map_err(|e| e.to_string())?;
        // A skipped VM or a failed group makes the step a failure: the
        // worker's status shows it until a pass goes through.
        if r.has_failures() {
            return Err(r.summary());
        }
        Ok(r.summary())
    }
}

struct ConfigPollWorker {
    registry: Arc<Registry>,
    every: Duration,
}

#[async_trait]
impl Worker for ConfigPollWorker {
    fn name(&self) -> &'static str {
        "config-poll"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    fn run_at_start(&self) -> bool {
        false
    }
    async fn work(&mut self) -> Result<String, String> {
        match self.registry.reload_if_changed().await {
            Ok(true) => Ok("configuration changed elsewhere: reloaded".into()),
            Ok(false) => Ok(String::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

struct SessionPurgeWorker {
    identity: Arc<Identity>,
}

#[async_trait]
impl Worker for SessionPurgeWorker {
    fn name(&self) -> &'static str {
        "session-purge"
    }
    fn interval(&self) -> Duration {
        (self.identity.session_limits.idle / 4).clamp(Duration::from_secs(10), Duration::from_secs(600))
    }
    async fn work(&mut self) -> Result<String, String> {
        match self.identity.purge_sessions().await {
            Ok(0) => Ok(String::new()),
            Ok(n) => Ok(format!("purged {n} expired session(s)")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// How often the budget watch weighs every budget.
pub const BUDGET_WATCH_INTERVAL: Duration = Duration::from_secs(60);

struct BudgetWatchWorker {
    costs: Arc<crate::costs::Costs>,
}

#[async_trait]
impl Worker for BudgetWatchWorker {
    fn name(&self) -> &'static str {
        "budget-watch"
    }
    fn interval(&self) -> Duration {
        BUDGET_WATCH_INTERVAL
    }
    async fn work(&mut self) -> Result<String, String> {
        let r = self.costs.watch_budgets().await.map_err(|e| e.to_string())?;
        Ok(if r.alerts.is_empty() { String::new() } else { format!("{} threshold(s) crossed: {}", r.alerts.len(), r.alerts.join("; ")) })
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "broker".into()))
}
