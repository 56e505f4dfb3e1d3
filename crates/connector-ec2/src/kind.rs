//! The `ec2` kind as it declares itself: its parameters (with their help and
//! defaults), that users need their own AWS credentials, and its builder.
//! The only place the `ec2` parameters are written down.

use cloudbroker_connector_api::params::{
    ConnectorKind, KindSpec, ParamSpec, ParamType, ParamValues, BILLING_MINIMUM_SECONDS, BUDGET_PROJECT_MONTHLY, BUDGET_THRESHOLDS,
    BUDGET_USER_MONTHLY, CONNECTION_POLICY, LEASE_ACTION, LEASE_DEFAULT, LEASE_MAX, LEASE_MAX_ACTIONS, LEASE_WARN, MAX_WORKERS,
    POLICY_COUNT_MAX, POLICY_EXEMPT_ADMINS, POLICY_IMAGES, POLICY_INSTANCE_TYPES, POLICY_TAGS_REQUIRED, QUOTA_PROJECT_VM, QUOTA_VM,
};
use cloudbroker_connector_api::{BuildContext, Connector, ConnectorBuilder, ConnectorError, InstanceName};
use std::sync::Arc;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::required("region", ParamType::String, "AWS region of this instance, e.g. eu-central-1."),
    ParamSpec::optional("endpoint", ParamType::Url, None, "Override of the EC2 endpoint URL (AWS-compatible clouds, tests)."),
    ParamSpec::optional("security.group", ParamType::String, Some("default"), "Security group VMs are launched into."),
    ParamSpec::optional("orchestrator.imageid", ParamType::String, None, "Image id of the orchestrator VM."),
    ParamSpec::optional("orchestrator.instance.type", ParamType::String, Some("t2.micro"), "Instance type of the orchestrator VM."),
    ParamSpec::optional("update.clienturl", ParamType::Url, None, "URL of the cloud client bundle given to orchestrators."),
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
    ParamSpec::optional("timeout.seconds", ParamType::Int { min: 1, max: 3600 }, Some("30"), "Timeout of one cloud API call, in seconds."),
];

/// The `ec2` kind.
pub const KIND: ConnectorKind = ConnectorKind::new(&KindSpec {
    name: "ec2",
    summary: "Amazon EC2, through the AWS SDK.",
    params: PARAMS,
    needs_credentials: true,
    default_instance_type: |values| values.get(KIND, "orchestrator.instance.type"),
});

/// Builds `ec2` connector instances.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ec2Builder;

impl ConnectorBuilder for Ec2Builder {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn build(&self, instance: InstanceName, params: &ParamValues, _ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        crate::build(instance, params)
    }
}
