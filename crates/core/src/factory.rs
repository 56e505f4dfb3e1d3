//! What the broker lends the connectors the binary registered: worlds kept
//! in its database ([`persistent`]), so that simulated clouds survive
//! restarts and replicas on one database share them. Core names no
//! connector crate; kinds come from the [`Connectors`] set it is given.

use async_trait::async_trait;
use cloudbroker_connector_api::state::{WorldChange, WorldStore, WorldStoreError};
use cloudbroker_connector_api::Connectors;
use cloudbroker_store::Store;
use std::sync::Arc;

/// Connector worlds in the broker's database.
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

/// The broker's set: `connectors`, with their worlds kept in `store`.
pub fn persistent(connectors: Connectors, store: Store) -> Connectors {
    connectors.with_worlds(Arc::new(DbWorlds(store)))
}
