//! The connectors this binary ships, registered in one place: the broker
//! (`serve` and every command that starts it) and every test that starts a
//! broker with the shipped kinds take their [`Connectors`] from
//! [`connectors`]. Adding a connector is a crate implementing
//! `ConnectorBuilder` and one line here.

use cloudbroker_connector_api::Connectors;

/// Every connector kind this binary ships: `ec2`, `ec2query` and `sandbox`.
pub fn connectors() -> Connectors {
    Connectors::new()
        .with(cloudbroker_connector_ec2::Ec2Builder)
        .with(cloudbroker_connector_ec2query::Ec2QueryBuilder)
        .with(cloudbroker_connector_sandbox::SandboxBuilder)
}
