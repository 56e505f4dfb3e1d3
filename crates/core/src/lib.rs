//! The broker's services: configuration, the connector registry, and (built
//! on them) identity, the credential vault, images, quotas and VMs. The HTTP
//! edges (JSON API, web UI, EC2 front-end) call these services and nothing
//! below them.

pub mod broker;
pub mod config;
pub mod factory;
pub mod registry;

pub use broker::Broker;
pub use config::{Config, ConfigError, LogFormat, RawConfig};
