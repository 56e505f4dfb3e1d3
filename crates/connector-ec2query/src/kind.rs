//! The `ec2query` kind as it declares itself: its parameters (with their
//! help and defaults), that users need their own cloud credentials, and its
//! builder. The only place the `ec2query` parameters are written down.

use cloudbroker_connector_api::params::{
    ConnectorKind, KindSpec, ParamSpec, ParamType, ParamValues, BILLING_MINIMUM_SECONDS, BUDGET_PROJECT_MONTHLY, BUDGET_THRESHOLDS,
    BUDGET_USER_MONTHLY, CONNECTION_POLICY, LEASE_ACTION, LEASE_DEFAULT, LEASE_MAX, LEASE_MAX_ACTIONS, LEASE_WARN, MAX_WORKERS,
    POLICY_COUNT_MAX, POLICY_EXEMPT_ADMINS, POLICY_IMAGES, POLICY_INSTANCE_TYPES, POLICY_TAGS_REQUIRED, QUOTA_PROJECT_VM, QUOTA_VM,
};
use cloudbroker_connector_api::{BuildContext, Connector, ConnectorBuilder, ConnectorError, InstanceName};
use std::sync::Arc;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::required(
        "endpoint",
        ParamType::Url,
        "EC2 Query API endpoint, may contain a path (econe's ssl_server), e.g. https://one.example.org:4567/.",
    ),
    ParamSpec::optional("region", ParamType::String, Some("opennebula"), "Region name used in SigV4 signatures."),
    ParamSpec::optional(
        "signature.version",
        ParamType::Enum { values: &["2", "4"] },
        Some("4"),
        "Request signing: 2 (HmacSHA256) or 4 (AWS SigV4).",
    ),
    ParamSpec::optional("api.version", ParamType::String, Some("2016-11-15"), "EC2 API version sent as Version=."),
    ParamSpec::optional(
        "instance.types",
        ParamType::List,
        None,
        "Instance types offered by this cloud, comma-separated (the EC2 Query API has no call to list them).",
    ),
    ParamSpec::optional("security.group", ParamType::String, Some("default"), "Security group VMs are launched into."),
    QUOTA_VM,
    cloudbroker_connector_api::params::VPC_ID,
    cloudbroker_connector_api::params::SUBNET_ID,
    QUOTA_PROJECT_VM,
    MAX_WORKERS,
    CONNECTION_POLICY,
    POLICY_INSTANCE_TYPES,
    POLICY_IMAGES,
    POLICY_TAGS_REQUIRED,
    POLICY_COUNT_MAX,
    POLICY_EXEMPT_ADMINS,
    LEASE_DEFAULT,
    LEASE_MAX,
    LEASE_ACTION,
    LEASE_WARN,
    LEASE_MAX_ACTIONS,
    BUDGET_USER_MONTHLY,
    BUDGET_PROJECT_MONTHLY,
    BUDGET_THRESHOLDS,
    BILLING_MINIMUM_SECONDS,
    ParamSpec::optional("tls.verify", ParamType::Bool, Some("true"), "Verify the endpoint's TLS certificate."),
    ParamSpec::optional("timeout.seconds", ParamType::Int { min: 1, max: 3600 }, Some("30"), "Timeout of one cloud API call, in seconds."),
];

/// The `ec2query` kind.
pub const KIND: ConnectorKind = ConnectorKind::new(&KindSpec {
    name: "ec2query",
    summary: "Any cloud speaking the EC2 Query API (OpenNebula econe, Eucalyptus, ...).",
    params: PARAMS,
    needs_credentials: true,
    // The first of the offered types (the API cannot list them).
    default_instance_type: |values| values.get(KIND, "instance.types").and_then(|l| l.split(',').next().map(|s| s.trim().to_string())),
});

/// Builds `ec2query` connector instances.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ec2QueryBuilder;

impl ConnectorBuilder for Ec2QueryBuilder {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn build(&self, instance: InstanceName, params: &ParamValues, _ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        crate::build(instance, params)
    }
}
