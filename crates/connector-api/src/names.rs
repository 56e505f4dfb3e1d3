//! Newtypes parsed once at the boundary. A connector kind is parsed against
//! the registered builders ([`crate::builder::Connectors::kind`]); its type
//! is re-exported here, as is the instance name, which lives in the ground
//! crate `cloudbroker-model` (the store keeps it too).

pub use crate::params::ConnectorKind;
pub use cloudbroker_model::{InstanceName, NameError};
