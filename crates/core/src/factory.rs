//! Builds connector objects by kind.

use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, ConnectorError, ConnectorKind, InstanceName};
use std::sync::Arc;

/// The factory for every kind this broker knows.
pub fn build_connector(kind: ConnectorKind, name: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    match kind {
        ConnectorKind::Sandbox => cloudbroker_connector_sandbox::build(name, params),
        ConnectorKind::Ec2 => cloudbroker_connector_ec2::build(name, params),
        ConnectorKind::Ec2query => cloudbroker_connector_ec2query::build(name, params),
    }
}
