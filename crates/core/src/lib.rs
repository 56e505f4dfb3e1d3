//! The broker's services: configuration, the connector registry, identity,
//! the credential vault, and (built on them) images, quotas and VMs. The HTTP
//! edges (JSON API, web UI, EC2 front-end) call these services and nothing
//! below them.

pub mod broker;
pub mod config;
pub mod credentials;
pub mod error;
pub mod factory;
pub mod identity;
pub mod images;
pub mod provisioning;
pub mod registry;
pub mod vault;

pub use broker::Broker;
pub use config::{Config, ConfigError, LogFormat, RawConfig};
pub use error::{ServiceError, ServiceResult};
pub use identity::Actor;
