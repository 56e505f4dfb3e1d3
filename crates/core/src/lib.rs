//! The broker's services: configuration, the connector registry, identity,
//! the credential vault, images, quotas and VMs, the audit log and the
//! system configuration. The HTTP edges (JSON API, web UI, EC2 front-end)
//! parse their input into [`domain`] types, call these services, and map
//! [`ServiceError`] back; none of them reaches the store.

pub mod access_keys;
pub mod app_doc;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod cache;
/// The one clock time-driven rules read (in the ground crate: the store
/// stamps VM state changes with it too).
pub use cloudbroker_model::clock;
pub mod config;
pub mod costs;
pub mod deployments;
/// The domain types live in the ground crate `cloudbroker-model` (below the
/// store too); every `crate::domain::...` path stays as it was.
pub use cloudbroker_model as domain;
pub mod error;
pub mod factory;
pub mod identity;
pub mod image_checks;
pub mod image_files;
pub mod images;
pub mod key_pairs;
pub mod limits;
pub mod master_keys;
pub mod metrics;
pub mod prices;
pub mod projects;
pub mod provisioning;
pub mod registry;
pub mod request_id;
pub mod scrubbed;
pub mod system;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;
pub mod workers;

pub use auth::Actor;
pub use broker::Broker;
pub use cloudbroker_store::cloud_objects::{Attrs as ObjectAttrs, CloudObjectRow, ObjectKind};
pub use config::{Config, ConfigError, LogFormat, RawConfig};
pub use error::{QuotaScope, Resource, ServiceError, ServiceResult};
pub use request_id::RequestId;
