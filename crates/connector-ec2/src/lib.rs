//! The `ec2` connector: Amazon EC2 (and AWS-compatible endpoints) through the
//! official AWS SDK for Rust.
//!
//! One [`Ec2Connector`] per connector *instance* (e.g. `ec2-eu-central-1`),
//! built by [`build`] from the instance's parameters (see
//! [`KIND`]'s parameters, declared in `kind.rs`):
//!
//! | parameter | use |
//! | --- | --- |
//! | `region` (required) | region of every call and of the SigV4 signature |
//! | `endpoint` | endpoint URL override (AWS-compatible clouds, tests); default: AWS's endpoint of the region |
//! | `timeout.seconds` (30) | timeout of one attempt of one API call |
//! | `max.iaas.workers` (20) | concurrent API calls to this instance, all users together |
//!
//! # Files
//!
//! By job: `kind` (the declared parameters and the builder), `client`
//! (settings, the per-key SDK clients, the call gate), `describe`
//! (instances, states, images and types; paging), `instances` (launches,
//! state changes, tags, key pairs, security groups), `resources` (Elastic
//! IPs and volumes) and `errors` (mapping what the cloud answered). This
//! file holds the connector and its trait implementation, which hands each
//! call to the file of its job.
//!
//! # Credentials
//!
//! Every call uses the credentials passed to it (the user's), as static
//! credentials. The SDK's default credential chain (environment, profile,
//! instance metadata) is **never** used: a broker running on EC2 must not
//! launch VMs with its own instance role on a user's behalf. One SDK client is
//! cached per access key id (rebuilt when the secret changes).
//!
//! # Calls, retries, timeouts
//!
//! The SDK's own retries are disabled. Every API call goes through the
//! instance's [`CallGate`]: at most `max.iaas.workers` attempts in flight,
//! `timeout.seconds` per attempt, jittered exponential backoff on retryable
//! errors (throttling, transport, timeouts, transient server errors; never on
//! capacity, limit, auth or invalid-request errors). Paginated calls go
//! through the gate page by page. `RunInstances` carries the request's
//! `ClientToken`, so a retried launch never starts VMs twice.
//!
//! # Errors
//!
//! Errors the cloud reports are classified by their EC2 code with
//! [`ConnectorError::from_ec2_code`], keeping the cloud's message verbatim
//! (an `UnauthorizedOperation` message names the missing action, e.g.
//! `ec2:RunInstances`). An HTTP 503 without a code is `Throttled`; other
//! answers without a code are `Transport` (5xx), `Auth` (401/403) or `Cloud`;
//! connection failures are `Transport`; timeouts are `Timeout`.
//!
//! # Listing images
//!
//! [`Connector::list_images`] lists the images **owned by the account**
//! (`DescribeImages Owners=self`, all pages) plus the instance's
//! `orchestrator.imageid` if set. Public catalogue images (AWS has hundreds of
//! thousands) are not listed: the broker's image catalogue refers to them by id.
//!
//! # Security groups
//!
//! VMs are launched with security group *names* (`SecurityGroups`), which
//! works in EC2-Classic and in the default VPC. [`Connector::ensure_security_group`]
//! looks the name up with the `group-name` filter and creates the group
//! (in the default VPC) when missing; `InvalidGroup.Duplicate` from a
//! concurrent creation counts as success.
//!
//! # Minimal IAM policy
//!
//! Exactly the EC2 actions this connector calls (also in
//! `docs/ec2-iam-policy.json`, explained in `docs/connectors-ec2.md`):
//!
//! | action | used by |
//! | --- | --- |
//! | `ec2:DescribeRegions` | `validate_credentials` |
//! | `ec2:RunInstances` | `run_instances` |
//! | `ec2:CreateTags` (only with `ec2:CreateAction = RunInstances`) | tags given at launch (`TagSpecifications`) |
//! | `ec2:DescribeInstances` | `describe_instances` |
//! | `ec2:StartInstances`, `ec2:StopInstances`, `ec2:RebootInstances`, `ec2:TerminateInstances` | VM actions |
//! | `ec2:ImportKeyPair`, `ec2:DeleteKeyPair`, `ec2:DescribeKeyPairs` | key pairs |
//! | `ec2:DescribeImages` | `list_images` |
//! | `ec2:DescribeInstanceTypes` | `list_instance_types` |
//! | `ec2:DescribeSecurityGroups`, `ec2:CreateSecurityGroup` | `ensure_security_group` |
//! | `ec2:AllocateAddress`, `ec2:AssociateAddress`, `ec2:DisassociateAddress`, `ec2:ReleaseAddress`, `ec2:DescribeAddresses` | Elastic IPs |
//! | `ec2:CreateVolume`, `ec2:AttachVolume`, `ec2:DetachVolume`, `ec2:DeleteVolume`, `ec2:DescribeVolumes` | volumes |
//!
//! ```json
#![doc = include_str!("../../../docs/ec2-iam-policy.json")]
//! ```

mod accounts;
mod client;
mod describe;
mod errors;
mod instance_attrs;
mod instances;
mod kind;
mod launch_options;
mod resources;
mod security_groups;
mod snapshots;
#[cfg(test)]
mod tests;
mod vpcs;

pub use errors::map_sdk_error;
pub use kind::{Ec2Builder, KIND};

use client::*;
use describe::*;
use errors::*;

use async_trait::async_trait;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Region, StalledStreamProtectionConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    DomainType, Filter, Instance, InstanceStateChange, InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::Blob;
use base64::Engine as _;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::retry::{CallGate, CallPolicy};
use cloudbroker_connector_api::{
    AddressInfo, Connector, ConnectorError, ConnectorKind, CreateVolumeRequest, CredentialCheck, Credentials, DescribeFilter, ImageInfo,
    InstanceName, InstanceTypeInfo, KeyPairInfo, RunRequest, SecretString, StateChange, Vm, VmState, VolumeAttachment, VolumeInfo,
    VolumeState,
};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The EC2 actions this connector calls: the minimal IAM policy
/// (`ec2:CreateTags` is needed for tags given at launch).
pub const IAM_ACTIONS: &[&str] = &[
    "ec2:DescribeRegions",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:RebootInstances",
    "ec2:TerminateInstances",
    "ec2:ImportKeyPair",
    "ec2:DeleteKeyPair",
    "ec2:DescribeKeyPairs",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:DeleteSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:DescribeSecurityGroupRules",
    "ec2:AllocateAddress",
    "ec2:AssociateAddress",
    "ec2:DisassociateAddress",
    "ec2:ReleaseAddress",
    "ec2:DescribeAddresses",
    "ec2:CreateVolume",
    "ec2:AttachVolume",
    "ec2:DetachVolume",
    "ec2:DeleteVolume",
    "ec2:DescribeVolumes",
    "ec2:CreateSnapshot",
    "ec2:DeleteSnapshot",
    "ec2:DescribeSnapshots",
    "ec2:CreateImage",
    "ec2:DeregisterImage",
    "ec2:CreateVpc",
    "ec2:DeleteVpc",
    "ec2:DescribeVpcs",
    "ec2:CreateSubnet",
    "ec2:DeleteSubnet",
    "ec2:DescribeSubnets",
    "ec2:ModifySubnetAttribute",
];

/// Tuning that is not a declared parameter.
#[derive(Clone, Debug)]
pub struct Ec2Options {
    /// `MaxResults` of one `DescribeInstances` page when no ids are given
    /// (EC2 accepts 5 to 1000).
    pub describe_page_size: i32,
    /// `MaxResults` of one `DescribeInstanceTypes` page (5 to 100).
    pub instance_types_page_size: i32,
    /// `MaxResults` of one `DescribeImages` page (5 to 1000).
    pub images_page_size: i32,
    /// Attempts per API call (1 = no retry).
    pub max_attempts: u32,
    /// First backoff between attempts (doubled each retry, jittered).
    pub base_delay: Duration,
}

impl Default for Ec2Options {
    fn default() -> Self {
        let p = CallPolicy::default();
        Self {
            describe_page_size: 1000,
            instance_types_page_size: 100,
            images_page_size: 1000,
            max_attempts: p.max_attempts,
            base_delay: p.base_delay,
        }
    }
}

/// Builds the `ec2` connector of one instance (see the crate docs).
pub fn build(instance: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(Ec2Connector::new(instance, params, Ec2Options::default())?))
}

/// [`build`] with non-default [`Ec2Options`].
pub fn build_with(instance: InstanceName, params: &ParamValues, options: Ec2Options) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(Ec2Connector::new(instance, params, options)?))
}

/// The `ec2` connector of one instance.
pub struct Ec2Connector {
    instance: InstanceName,
    region: String,
    endpoint: Option<String>,
    orchestrator_image: Option<String>,
    timeout: Duration,
    options: Ec2Options,
    gate: CallGate,
    clients: Mutex<HashMap<String, CachedClient>>,
}

impl std::fmt::Debug for Ec2Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Connector")
            .field("instance", &self.instance)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("workers", &self.gate.workers())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for Ec2Connector {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn instance(&self) -> &InstanceName {
        &self.instance
    }

    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        self.do_validate_credentials(creds).await
    }

    async fn create_vpc(&self, creds: &Credentials, cidr: &str) -> Result<cloudbroker_connector_api::VpcInfo, ConnectorError> {
        self.do_create_vpc(creds, cidr).await
    }

    async fn delete_vpc(&self, creds: &Credentials, vpc_id: &str) -> Result<(), ConnectorError> {
        self.do_delete_vpc(creds, vpc_id).await
    }

    async fn describe_vpcs(
        &self,
        creds: &Credentials,
        vpc_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::VpcInfo>, ConnectorError> {
        self.do_describe_vpcs(creds, vpc_ids).await
    }

    async fn create_subnet(
        &self,
        creds: &Credentials,
        req: &cloudbroker_connector_api::CreateSubnetRequest,
    ) -> Result<cloudbroker_connector_api::SubnetInfo, ConnectorError> {
        self.do_create_subnet(creds, req).await
    }

    async fn delete_subnet(&self, creds: &Credentials, subnet_id: &str) -> Result<(), ConnectorError> {
        self.do_delete_subnet(creds, subnet_id).await
    }

    async fn describe_subnets(
        &self,
        creds: &Credentials,
        subnet_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SubnetInfo>, ConnectorError> {
        self.do_describe_subnets(creds, subnet_ids).await
    }

    async fn modify_subnet_map_public_ip(&self, creds: &Credentials, subnet_id: &str, map_public_ip: bool) -> Result<(), ConnectorError> {
        self.do_modify_subnet_map_public_ip(creds, subnet_id, map_public_ip).await
    }

    async fn run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        self.do_run_instances(creds, req).await
    }

    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        self.do_describe_instances(creds, filter).await
    }

    async fn instance_states(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<(String, VmState)>, ConnectorError> {
        self.do_instance_states(creds, ids).await
    }

    async fn start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.do_start_instances(creds, ids).await
    }

    async fn stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.do_stop_instances(creds, ids).await
    }

    async fn reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        self.do_reboot_instances(creds, ids).await
    }

    async fn terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.do_terminate_instances(creds, ids).await
    }

    async fn allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        self.do_allocate_address(creds).await
    }

    async fn associate_address(
        &self,
        creds: &Credentials,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
    ) -> Result<String, ConnectorError> {
        self.do_associate_address(creds, allocation_id, instance_id, allow_reassociation).await
    }

    async fn describe_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        attribute: cloudbroker_connector_api::InstanceAttribute,
    ) -> Result<cloudbroker_connector_api::AttributeValue, ConnectorError> {
        self.do_describe_instance_attribute(creds, instance_id, attribute).await
    }

    async fn modify_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        value: &cloudbroker_connector_api::AttributeValue,
    ) -> Result<(), ConnectorError> {
        self.do_modify_instance_attribute(creds, instance_id, value).await
    }

    async fn get_console_output(
        &self,
        creds: &Credentials,
        instance_id: &str,
    ) -> Result<cloudbroker_connector_api::ConsoleOutput, ConnectorError> {
        self.do_get_console_output(creds, instance_id).await
    }

    async fn disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError> {
        self.do_disassociate_address(creds, association_id).await
    }

    async fn release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        self.do_release_address(creds, allocation_id).await
    }

    async fn describe_addresses(&self, creds: &Credentials, allocation_ids: &[String]) -> Result<Vec<AddressInfo>, ConnectorError> {
        self.do_describe_addresses(creds, allocation_ids).await
    }

    async fn create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        self.do_create_volume(creds, req).await
    }

    async fn create_snapshot(
        &self,
        creds: &Credentials,
        volume_id: &str,
        description: &str,
    ) -> Result<cloudbroker_connector_api::SnapshotInfo, ConnectorError> {
        self.do_create_snapshot(creds, volume_id, description).await
    }

    async fn delete_snapshot(&self, creds: &Credentials, snapshot_id: &str) -> Result<(), ConnectorError> {
        self.do_delete_snapshot(creds, snapshot_id).await
    }

    async fn describe_snapshots(
        &self,
        creds: &Credentials,
        snapshot_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SnapshotInfo>, ConnectorError> {
        self.do_describe_snapshots(creds, snapshot_ids).await
    }

    async fn create_image(
        &self,
        creds: &Credentials,
        req: &cloudbroker_connector_api::CreateImageRequest,
    ) -> Result<String, ConnectorError> {
        self.do_create_image(creds, req).await
    }

    async fn deregister_image(&self, creds: &Credentials, image_id: &str) -> Result<(), ConnectorError> {
        self.do_deregister_image(creds, image_id).await
    }

    async fn account_id(&self, creds: &Credentials) -> Result<String, ConnectorError> {
        self.do_account_id(creds).await
    }

    async fn modify_image_launch_permission(
        &self,
        creds: &Credentials,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ConnectorError> {
        self.do_modify_image_launch_permission(creds, image_id, add, remove).await
    }

    async fn attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        self.do_attach_volume(creds, volume_id, instance_id, device).await
    }

    async fn detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        self.do_detach_volume(creds, volume_id, instance_id, force).await
    }

    async fn delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        self.do_delete_volume(creds, volume_id).await
    }

    async fn describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        self.do_describe_volumes(creds, volume_ids).await
    }

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        self.do_create_tags(creds, ids, tags).await
    }

    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        self.do_delete_tags(creds, ids, keys).await
    }

    async fn import_key_pair(&self, creds: &Credentials, name: &str, public_key: &str) -> Result<KeyPairInfo, ConnectorError> {
        self.do_import_key_pair(creds, name, public_key).await
    }

    async fn delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        self.do_delete_key_pair(creds, name).await
    }

    async fn list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        self.do_list_key_pairs(creds).await
    }

    async fn list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        self.do_list_images(creds).await
    }

    async fn list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        self.do_list_instance_types(creds).await
    }

    async fn create_security_group(
        &self,
        creds: &Credentials,
        req: &cloudbroker_connector_api::CreateSecurityGroupRequest,
    ) -> Result<cloudbroker_connector_api::SecurityGroupInfo, ConnectorError> {
        self.do_create_security_group(creds, req).await
    }

    async fn delete_security_group(&self, creds: &Credentials, group_id: &str) -> Result<(), ConnectorError> {
        self.do_delete_security_group(creds, group_id).await
    }

    async fn describe_security_groups(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SecurityGroupInfo>, ConnectorError> {
        self.do_describe_security_groups(creds, group_ids).await
    }

    async fn authorize_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: cloudbroker_connector_api::RuleDirection,
        permissions: &[cloudbroker_connector_api::IpPermission],
    ) -> Result<Vec<cloudbroker_connector_api::SecurityGroupRule>, ConnectorError> {
        self.do_authorize_security_group(creds, group_id, direction, permissions).await
    }

    async fn revoke_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: cloudbroker_connector_api::RuleDirection,
        permissions: &[cloudbroker_connector_api::IpPermission],
    ) -> Result<(), ConnectorError> {
        self.do_revoke_security_group(creds, group_id, direction, permissions).await
    }

    async fn describe_security_group_rules(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SecurityGroupRule>, ConnectorError> {
        self.do_describe_security_group_rules(creds, group_ids).await
    }

    async fn ensure_security_group(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        self.do_ensure_security_group(creds, name).await
    }

    async fn describe_image(&self, creds: &Credentials, id: &str) -> Result<Option<ImageInfo>, ConnectorError> {
        self.do_describe_image(creds, id).await
    }
}
