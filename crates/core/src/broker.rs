//! The assembled broker: configuration, store and services, plus the
//! background tasks they need.

use crate::config::Config;
use crate::credentials::Vault;
use crate::identity::{Identity, SessionLimits};
use crate::images::Images;
use crate::provisioning::Provisioning;
use crate::registry::Registry;
use cloudbroker_store::{Store, StoreError};
use std::sync::Arc;

/// Errors starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// Everything the HTTP edges need (cheap to clone).
#[derive(Clone)]
pub struct Broker {
    pub config: Arc<Config>,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub identity: Arc<Identity>,
    pub vault: Arc<Vault>,
    pub images: Arc<Images>,
    pub provisioning: Arc<Provisioning>,
    /// This process's id among replicas (for leases and logs).
    pub replica_id: String,
}

impl Broker {
    /// Opens the store (applying migrations) and loads the connectors.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::Other(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
        let store = Store::open(&config.database_url).await?;
        let registry = Registry::load(store.clone(), &config.connectors_dir, Box::new(crate::factory::build_connector)).await?;
        let vault = Arc::new(
            Vault::open(store.clone(), registry.clone(), &config.master_key_file).await.map_err(|e| StartError::Other(e.to_string()))?,
        );
        let mut identity = Identity::new(store.clone());
        identity.session_limits = SessionLimits {
            idle: std::time::Duration::from_secs(config.session_idle_secs),
            absolute: std::time::Duration::from_secs(config.session_absolute_secs),
        };
        let identity = Arc::new(identity);
        if let Some(pw) = identity.bootstrap_super(config.admin_password.as_ref()).await.map_err(|e| StartError::Other(e.to_string()))? {
            tracing::warn!("created the admin account 'super' with the generated password: {} (shown once; change it with `cloudbroker user passwd super`)", pw.expose());
        }
        let images = Arc::new(Images::new(store.clone(), registry.clone()));
        let mut provisioning = Provisioning::new(store.clone(), registry.clone(), vault.clone(), images.clone(), store.broker_id().await?);
        provisioning.launch_grace = std::time::Duration::from_secs(config.launch_grace_secs);
        let provisioning = Arc::new(provisioning);
        let replica_id = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("0"));
        Ok(Self { config: Arc::new(config), store, registry, identity, vault, images, provisioning, replica_id })
    }

    /// Starts the background tasks: configuration polling (changes made on
    /// other replicas) and reconciliation (first pass at once: it also
    /// finishes launches a crash interrupted). Returns their handles.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let registry = self.registry.clone();
        let every = std::time::Duration::from_secs(self.config.config_poll_secs);
        let prov = self.provisioning.clone();
        let holder = self.replica_id.clone();
        let interval = std::time::Duration::from_secs(self.config.reconcile_interval_secs);
        let reconcile = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match prov.reconcile(&holder, interval * 3).await {
                    Ok(r) if r.updated + r.adopted + r.vanished + r.failed_launches > 0 || !r.errors.is_empty() => {
                        tracing::info!(updated = r.updated, adopted = r.adopted, vanished = r.vanished, failed_launches = r.failed_launches, errors = ?r.errors, "reconciled")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
                }
            }
        });
        vec![
            reconcile,
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = registry.reload_if_changed().await {
                        tracing::warn!(error = %e, "configuration poll failed");
                    }
                }
            }),
        ]
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "broker".into()))
}
