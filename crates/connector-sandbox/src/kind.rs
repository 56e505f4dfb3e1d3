//! The `sandbox` kind as it declares itself: its parameters (with their help
//! and defaults), that users need no cloud credentials of their own, and its
//! builder, which keeps worlds where the broker's [`BuildContext`] says (its
//! database) or else in this process's memory. The only place the `sandbox`
//! parameters are written down.

use cloudbroker_connector_api::params::{
    ConnectorKind, KindSpec, ParamSpec, ParamType, ParamValues, BILLING_MINIMUM_SECONDS, BUDGET_PROJECT_MONTHLY, BUDGET_THRESHOLDS,
    BUDGET_USER_MONTHLY, CONNECTION_POLICY, LEASE_ACTION, LEASE_DEFAULT, LEASE_MAX, LEASE_MAX_ACTIONS, LEASE_WARN, MAX_WORKERS,
    POLICY_COUNT_MAX, POLICY_EXEMPT_ADMINS, POLICY_IMAGES, POLICY_INSTANCE_TYPES, POLICY_TAGS_REQUIRED, QUOTA_PROJECT_VM, QUOTA_VM,
};
use cloudbroker_connector_api::{BuildContext, Connector, ConnectorBuilder, ConnectorError, InstanceName};
use std::sync::Arc;

const PARAMS: &[ParamSpec] = &[
    ParamSpec::optional(
        "boot.delay.ms",
        ParamType::Int { min: 0, max: 3_600_000 },
        Some("2000"),
        "Time a VM stays pending before it runs (also stopping -> stopped, shutting-down -> terminated).",
    ),
    ParamSpec::optional(
        "failure.rate",
        ParamType::Float { min: 0.0, max: 1.0 },
        Some("0"),
        "Probability that a launch fails with a capacity error (0 to 1).",
    ),
    ParamSpec::optional(
        "capacity",
        ParamType::Int { min: 0, max: 10_000_000 },
        None,
        "Maximum number of live VMs this simulated cloud holds (empty: unlimited).",
    ),
    ParamSpec::optional("public.ips", ParamType::Bool, Some("true"), "Give VMs a public address as well as a private one."),
    ParamSpec::optional(
        "keep.tags",
        ParamType::Bool,
        Some("true"),
        "Keep the tags given at launch. false simulates a cloud that drops them (econe without CreateTags).",
    ),
    ParamSpec::optional("api.latency.ms", ParamType::Int { min: 0, max: 60_000 }, Some("0"), "Simulated latency of every API call."),
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
];

/// The `sandbox` kind.
pub const KIND: ConnectorKind = ConnectorKind::new(&KindSpec {
    name: "sandbox",
    summary: "A simulated cloud for demos, dry runs and load tests.",
    params: PARAMS,
    needs_credentials: false,
    default_instance_type: |_| None,
});

/// Builds `sandbox` connector instances.
#[derive(Clone, Copy, Debug, Default)]
pub struct SandboxBuilder;

impl ConnectorBuilder for SandboxBuilder {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn build(&self, instance: InstanceName, params: &ParamValues, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        match &ctx.worlds {
            Some(worlds) => crate::build_persistent(instance, params, worlds.clone()),
            None => crate::build(instance, params),
        }
    }
}
