//! The `sandbox` connector: a simulated EC2-like cloud held in memory, for
//! demos, dry runs and load tests with no cloud account.
//!
//! Behaves like EC2 where it matters to the broker: VMs go `pending ->
//! running` after `boot.delay.ms` (likewise `stopping -> stopped`,
//! `shutting-down -> terminated`), get a private address (from their subnet; see `vpcs`) and,
//! with `public.ips`, a public one (TEST-NET-3, 203.0.113.0/24 and up); a
//! `ClientToken` makes launches idempotent; each access key id is its own
//! account; `failure.rate` makes launches fail with
//! `InsufficientInstanceCapacity`; `capacity` bounds the live VMs.
//!
//! Elastic IPs (TEST-NET-2, 198.51.100.0/24) and volumes are simulated too,
//! with EC2's rules and error codes: at most [`MAX_ADDRESSES`] addresses per
//! account; an address is associated with one VM at a time (a VM gets one
//! address: associating another moves it); a volume attaches only to a
//! running or stopped VM of the same account, in the instance's one zone
//! (`<instance>a`), as a free device `/dev/sd[b-z]` or `/dev/xvd[b-z]`;
//! volumes go `creating -> available` and attachments `attaching ->
//! attached`, `detaching -> detached` after `boot.delay.ms`; a terminated VM
//! loses its address and its volumes are detached.
//!
//! Where the simulated cloud lives: built by the broker ([`build_persistent`])
//! it lives in the broker's database through a [`WorldStore`], so it
//! survives restarts and two replicas on one database see one sandbox (each
//! call runs in one transaction that excludes every other caller of the
//! instance, on any replica). Built alone ([`build`], [`SandboxConnector::new`])
//! it lives in this process's memory. Timed transitions are computed from
//! wall-clock times kept with each VM, so they need no timer task.
//!
//! Files by job: `kind` (parameters and builder), `world` (the model and
//! its timed transitions), `persist` (where a world lives; entering it),
//! `instances`, `addresses`, `volumes`, `vpcs` (VPCs and subnets), `catalog` (credentials check, key
//! pairs, images, instance types) and `hold` (the listings test hook). This
//! file holds the settings, the connector and its trait implementation,
//! which hands each call to the file of its job.

mod accounts;
mod addresses;
mod catalog;
mod hold;
mod instance_attrs;
mod instances;
mod kind;
mod launch_details;
mod launch_options;
mod object_tags;
mod persist;
mod security_groups;
mod snapshots;
#[cfg(test)]
mod tests;
mod volumes;
mod vpcs;
mod world;

pub use cloudbroker_connector_api::state::{WorldChange, WorldStore, WorldStoreError, DATABASE_UNAVAILABLE_CODE};
pub use hold::ListingHold;
pub use kind::{SandboxBuilder, KIND};
pub use vpcs::DEFAULT_VPC_CIDR;

use persist::shared_world;
use snapshots::{SimImage, SimSnapshot};
use world::*;

use async_trait::async_trait;
use chrono::Utc;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::retry::{CallGate, CallPolicy};
use cloudbroker_connector_api::{
    AddressInfo, Connector, ConnectorError, ConnectorKind, CreateVolumeRequest, CredentialCheck, Credentials, DescribeFilter, ImageInfo,
    InstanceName, InstanceTypeInfo, KeyPairInfo, RunRequest, StateChange, Vm, VmState, VolumeAttachment, VolumeInfo, VolumeState,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Images every sandbox account can launch.
pub const IMAGES: &[(&str, &str)] = &[
    ("ami-sandbox-ubuntu-2204", "Ubuntu 22.04 LTS"),
    ("ami-sandbox-ubuntu-2404", "Ubuntu 24.04 LTS"),
    ("ami-sandbox-debian-12", "Debian 12"),
    ("ami-sandbox-rocky-9", "Rocky Linux 9"),
    ("ami-sandbox-alpine-3", "Alpine Linux 3"),
];

/// Instance types offered: (name, vCPUs, MiB).
pub const INSTANCE_TYPES: &[(&str, u32, u64)] = &[
    ("t2.nano", 1, 512),
    ("t2.micro", 1, 1024),
    ("t2.small", 1, 2048),
    ("t2.medium", 2, 4096),
    ("m5.large", 2, 8192),
    ("m5.xlarge", 4, 16384),
    ("c5.2xlarge", 8, 16384),
];

/// Settings of one sandbox instance.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    pub boot_delay: Duration,
    pub failure_rate: f64,
    pub capacity: Option<usize>,
    pub public_ips: bool,
    /// Whether launch tags are kept (false: a cloud that drops them).
    pub keep_tags: bool,
    pub api_latency: Duration,
    pub workers: usize,
}

impl SandboxSettings {
    /// Reads the declared `sandbox` parameters.
    pub fn from_params(p: &ParamValues) -> Self {
        let k = KIND;
        Self {
            boot_delay: Duration::from_millis(p.get_int(k, "boot.delay.ms").unwrap_or(2000).max(0) as u64),
            failure_rate: p.get_f64(k, "failure.rate").unwrap_or(0.0),
            capacity: p.get_int(k, "capacity").map(|c| c.max(0) as usize),
            public_ips: p.get_bool(k, "public.ips").unwrap_or(true),
            keep_tags: p.get_bool(k, "keep.tags").unwrap_or(true),
            api_latency: Duration::from_millis(p.get_int(k, "api.latency.ms").unwrap_or(0).max(0) as u64),
            workers: p.get_int(k, "max.iaas.workers").unwrap_or(20).max(1) as usize,
        }
    }
}

/// Elastic IPs an account may hold at once (EC2's default limit).
pub const MAX_ADDRESSES: usize = 5;

/// The largest volume, in GiB.
pub const MAX_VOLUME_GIB: u32 = 16_384;

/// The simulated cloud of one connector instance.
pub struct SandboxConnector {
    instance: InstanceName,
    settings: SandboxSettings,
    gate: CallGate,
    world: Arc<Mutex<World>>,
    persist: Option<Arc<dyn WorldStore>>,
}

/// Builds a sandbox connector instance.
pub fn build(instance: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    let world = shared_world(&instance);
    let mut c = SandboxConnector::new(instance, SandboxSettings::from_params(params));
    c.world = world;
    Ok(Arc::new(c))
}

/// Builds a sandbox connector instance whose world lives in `store`.
pub fn build_persistent(
    instance: InstanceName,
    params: &ParamValues,
    store: Arc<dyn WorldStore>,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let mut c = SandboxConnector::new(instance, SandboxSettings::from_params(params));
    c.persist = Some(store);
    Ok(Arc::new(c))
}

impl SandboxConnector {
    /// A new, empty simulated cloud.
    pub fn new(instance: InstanceName, settings: SandboxSettings) -> Self {
        let gate = CallGate::new(settings.workers, CallPolicy { max_attempts: 1, ..CallPolicy::default() }).for_instance(&instance);
        Self { instance, settings, gate, world: Arc::new(Mutex::new(World::default())), persist: None }
    }
}

#[async_trait]
impl Connector for SandboxConnector {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn instance(&self) -> &InstanceName {
        &self.instance
    }

    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        self.do_validate_credentials(creds).await
    }

    async fn run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        self.do_run_instances(creds, req).await
    }

    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        self.do_describe_instances(creds, filter).await
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

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        self.do_create_tags(creds, ids, tags).await
    }

    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        self.do_delete_tags(creds, ids, keys).await
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
}
