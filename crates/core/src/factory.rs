//! Builds connector objects by kind. The broker's factory keeps sandbox
//! worlds in its database ([`with_store`]); [`build_connector`] keeps them in
//! this process's memory (for tools and tests that have no database).

use async_trait::async_trait;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, ConnectorError, ConnectorKind, InstanceName};
use cloudbroker_connector_sandbox::{WorldChange, WorldStore, WorldStoreError};
use cloudbroker_store::Store;
use std::sync::Arc;

/// The factory for every kind this broker knows, sandbox worlds in memory.
pub fn build_connector(kind: ConnectorKind, name: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    match kind {
        ConnectorKind::Sandbox => cloudbroker_connector_sandbox::build(name, params),
        ConnectorKind::Ec2 => cloudbroker_connector_ec2::build(name, params),
        ConnectorKind::Ec2query => cloudbroker_connector_ec2query::build(name, params),
    }
}

/// Sandbox worlds in the broker's database.
struct DbWorlds(Store);

#[async_trait]
impl WorldStore for DbWorlds {
    async fn update<'a>(&'a self, instance: &'a str, f: WorldChange<'a>) -> Result<(), WorldStoreError> {
        self.0.update_sandbox_world(instance, f).await.map_err(|e| {
            // The broker's own database going away is not the cloud's refusal.
            if e.is_unavailable() {
                WorldStoreError::Unavailable(e.to_string())
            } else {
                WorldStoreError::Failed(e.to_string())
            }
        })
    }
}

/// The broker's factory: like [`build_connector`], with sandbox worlds kept
/// in `store` so they survive restarts and are shared by replicas.
pub fn with_store(
    store: Store,
) -> impl Fn(ConnectorKind, InstanceName, &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> + Send + Sync {
    let worlds: Arc<dyn WorldStore> = Arc::new(DbWorlds(store));
    move |kind, name, params| match kind {
        ConnectorKind::Sandbox => cloudbroker_connector_sandbox::build_persistent(name, params, worlds.clone()),
        other => build_connector(other, name, params),
    }
}
