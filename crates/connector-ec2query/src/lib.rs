//! The `ec2query` connector: any cloud speaking the EC2 Query API
//! (OpenNebula econe, Eucalyptus, AWS itself, moto) through a small HTTP
//! client of its own.
//!
//! Every call is an HTTP `POST` of a form-encoded `Action=...&Version=...`
//! body to the configured `endpoint` (its path kept), signed with SigV4
//! (service `ec2`, the configured `region`) or SigV2 (`HmacSHA256`), as
//! `signature.version` says. Answers are XML, read namespace-agnostically;
//! EC2 error documents become typed [`ConnectorError`]s. Every call goes
//! through the instance's [`CallGate`]: at most `max.iaas.workers` calls in
//! flight, `timeout.seconds` per attempt, jittered backoff on throttling and
//! transport errors.
//!
//! See `docs/connectors-ec2query.md` for the parameters and what econe lacks.

pub mod accounts;
pub mod client;
pub mod instance_attrs;
mod kind;
pub mod launch_options;
pub mod parse;
pub mod request;
pub mod security_groups;
pub mod snapshots;
pub mod vpcs;
pub mod xml;

use async_trait::async_trait;
use client::{ClientConfig, QueryClient};
pub use client::{Endpoint, SignatureVersion};
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::retry::{CallGate, CallPolicy};
use cloudbroker_connector_api::{
    AddressInfo, Connector, ConnectorError, ConnectorKind, CreateVolumeRequest, CredentialCheck, Credentials, DescribeFilter, ImageInfo,
    InstanceName, InstanceTypeInfo, KeyPairInfo, RunRequest, StateChange, Vm, VolumeAttachment, VolumeInfo,
};
use request::Params;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use xml::Element;

pub use kind::{Ec2QueryBuilder, KIND};

/// Default `MaxResults` of paged `Describe*` calls.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Most instance ids sent in one call (EC2 accepts more, proxies may not).
const IDS_PER_CALL: usize = 100;

/// Safety stop for clouds that keep answering a `nextToken`.
const MAX_PAGES: usize = 10_000;

/// The settings of one `ec2query` instance, from its parameters.
#[derive(Clone, Debug)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub region: String,
    pub signature: SignatureVersion,
    pub api_version: String,
    /// `instance.types`, if set.
    pub instance_types: Option<Vec<String>>,
    pub security_group: String,
    pub workers: usize,
    pub timeout: Duration,
    pub tls_verify: bool,
    /// `MaxResults` of paged calls (5..=1000).
    pub page_size: u32,
    /// Retry policy (its `timeout` is `timeout.seconds`).
    pub call_policy: CallPolicy,
}

fn config_error(message: String) -> ConnectorError {
    ConnectorError::InvalidRequest { code: "InvalidConfiguration".into(), message }
}

impl Settings {
    /// Reads and checks the parameters of an `ec2query` instance.
    pub fn from_params(params: &ParamValues) -> Result<Self, ConnectorError> {
        let raw_endpoint =
            params.get(KIND, "endpoint").ok_or_else(|| config_error("ec2query: the endpoint parameter is required".into()))?;
        let endpoint = Endpoint::parse(&raw_endpoint).map_err(|e| config_error(format!("ec2query: {e}")))?;
        let sig_raw = params.get(KIND, "signature.version").unwrap_or_else(|| "4".into());
        let signature = SignatureVersion::parse(&sig_raw)
            .ok_or_else(|| config_error(format!("ec2query: signature.version '{sig_raw}' is not 2 or 4")))?;
        let region = params.get(KIND, "region").filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "opennebula".into());
        let api_version = params.get(KIND, "api.version").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "2016-11-15".into());
        let instance_types = params
            .get_set("instance.types")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
            .filter(|v| !v.is_empty());
        let security_group = params.get(KIND, "security.group").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "default".into());
        let workers = params.get_int(KIND, "max.iaas.workers").unwrap_or(20).clamp(1, 1000) as usize;
        let timeout_secs = params.get_int(KIND, "timeout.seconds").unwrap_or(30).clamp(1, 3600) as u64;
        let timeout = Duration::from_secs(timeout_secs);
        let tls_verify = params.get_bool(KIND, "tls.verify").unwrap_or(true);
        Ok(Self {
            endpoint,
            region,
            signature,
            api_version,
            instance_types,
            security_group,
            workers,
            timeout,
            tls_verify,
            page_size: DEFAULT_PAGE_SIZE,
            call_policy: CallPolicy { timeout, ..CallPolicy::default() },
        })
    }
}

/// A connector instance for one EC2 Query endpoint. Holds no credentials:
/// each call is signed with the caller's.
#[derive(Debug)]
pub struct Ec2QueryConnector {
    instance: InstanceName,
    settings: Settings,
    client: QueryClient,
    gate: CallGate,
}

/// Builds an `ec2query` connector from its instance parameters.
pub fn build(instance: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(Ec2QueryConnector::from_params(instance, params)?))
}

impl Ec2QueryConnector {
    /// A connector from checked settings.
    pub fn new(instance: InstanceName, mut settings: Settings) -> Result<Self, ConnectorError> {
        settings.page_size = settings.page_size.clamp(5, 1000);
        settings.call_policy.timeout = settings.timeout;
        let client = QueryClient::new(ClientConfig {
            endpoint: settings.endpoint.clone(),
            region: settings.region.clone(),
            signature: settings.signature,
            api_version: settings.api_version.clone(),
            timeout: settings.timeout,
            tls_verify: settings.tls_verify,
        })?;
        let gate = CallGate::new(settings.workers, settings.call_policy.clone()).for_instance(&instance);
        Ok(Self { instance, settings, client, gate })
    }

    /// A connector from instance parameters.
    pub fn from_params(instance: InstanceName, params: &ParamValues) -> Result<Self, ConnectorError> {
        Self::new(instance, Settings::from_params(params)?)
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The call gate (concurrency bound, timeout, retries).
    pub fn gate(&self) -> &CallGate {
        &self.gate
    }

    /// One call of `action` under the gate (retried as the policy says).
    pub async fn call(&self, creds: &Credentials, action: &'static str, params: Params) -> Result<Element, ConnectorError> {
        self.gate.call(action, || self.client.call(creds, action, &params)).await
    }

    async fn describe_pages(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        let chunks: Vec<&[String]> = if filter.ids.is_empty() { vec![&[][..]] } else { filter.ids.chunks(IDS_PER_CALL).collect() };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for ids in chunks {
            // EC2 refuses MaxResults together with InstanceId.N.
            let max = if ids.is_empty() { Some(self.settings.page_size) } else { None };
            let mut token: Option<String> = None;
            for page_no in 1.. {
                let params = request::describe_instances(filter, ids, max, token.as_deref());
                let root = self.call(creds, "DescribeInstances", params).await?;
                let page = parse::describe_instances(&root)?;
                out.extend(page.items.into_iter().filter(|vm| seen.insert(vm.id.clone())));
                match page.next_token.filter(|t| !t.is_empty()) {
                    Some(next) if token.as_deref() == Some(next.as_str()) => {
                        return Err(ConnectorError::Cloud {
                            code: "PaginationLoop".into(),
                            message: "DescribeInstances answered the same nextToken twice".into(),
                        });
                    }
                    Some(_) if page_no >= MAX_PAGES => {
                        return Err(ConnectorError::Cloud {
                            code: "PaginationLoop".into(),
                            message: format!("DescribeInstances did not end after {MAX_PAGES} pages"),
                        });
                    }
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        // Some clouds (econe) ignore filters they do not know: filter again here.
        out.retain(|vm| filter.matches(vm));
        Ok(out)
    }

    async fn transition(&self, creds: &Credentials, action: &'static str, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let root = self.call(creds, action, request::instance_ids(chunk)).await?;
            out.extend(parse::state_changes(&root, action)?);
        }
        Ok(out)
    }

    /// Tags VMs the cloud launched without the requested tags (clouds that
    /// ignore `TagSpecification`). Best effort: the VMs exist either way.
    async fn ensure_tags(&self, creds: &Credentials, vms: &mut [Vm], tags: &[(String, String)]) {
        let untagged: Vec<String> =
            vms.iter().filter(|vm| tags.iter().any(|(k, v)| vm.tag(k) != Some(v.as_str()))).map(|vm| vm.id.clone()).collect();
        if untagged.is_empty() || tags.is_empty() {
            return;
        }
        match self.call(creds, "CreateTags", request::create_tags(&untagged, tags)).await {
            Ok(_) => {
                for vm in vms.iter_mut().filter(|vm| untagged.contains(&vm.id)) {
                    for (k, v) in tags {
                        vm.tags.retain(|(tk, _)| tk != k);
                        vm.tags.push((k.clone(), v.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(instance = %self.instance, error = %e, vms = untagged.len(), "the cloud did not tag the launched VMs and CreateTags failed")
            }
        }
    }
}

fn is_code(e: &ConnectorError, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

#[async_trait]
impl Connector for Ec2QueryConnector {
    fn kind(&self) -> ConnectorKind {
        KIND
    }

    fn instance(&self) -> &InstanceName {
        &self.instance
    }

    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        let endpoint = &self.settings.endpoint;
        match self.call(creds, "DescribeRegions", Params::new()).await {
            Ok(root) => {
                let regions = parse::regions(&root);
                Ok(CredentialCheck {
                    account: None,
                    message: format!(
                        "credentials {} accepted by {endpoint} (DescribeRegions: {} region(s))",
                        creds.masked_access_key(),
                        regions.len()
                    ),
                })
            }
            Err(ConnectorError::Unsupported { .. }) => {
                let params = request::paged(Some(5), None);
                let root = self.call(creds, "DescribeInstances", params).await?;
                let page = parse::describe_instances(&root)?;
                Ok(CredentialCheck {
                    account: page.owner.clone(),
                    message: format!(
                        "credentials {} accepted by {endpoint} (DescribeInstances; the cloud has no DescribeRegions)",
                        creds.masked_access_key()
                    ),
                })
            }
            Err(e) => Err(e),
        }
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
        if req.count == 0 {
            return Err(ConnectorError::InvalidRequest {
                code: "InvalidParameterValue".into(),
                message: "count must be at least 1".into(),
            });
        }
        let params = request::run_instances(req, std::slice::from_ref(&self.settings.security_group));
        let root = self.call(creds, "RunInstances", params).await?;
        let mut vms = parse::run_instances(&root)?;
        if vms.len() != req.count as usize {
            tracing::warn!(instance = %self.instance, asked = req.count, got = vms.len(), "RunInstances launched another number of VMs than asked");
        }
        self.ensure_tags(creds, &mut vms, &req.tags).await;
        Ok(vms)
    }

    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        self.describe_pages(creds, filter).await
    }

    async fn start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, "StartInstances", ids).await
    }

    async fn stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, "StopInstances", ids).await
    }

    async fn reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        for chunk in ids.chunks(IDS_PER_CALL) {
            let root = self.call(creds, "RebootInstances", request::instance_ids(chunk)).await?;
            parse::check_return(&root, "RebootInstances")?;
        }
        Ok(())
    }

    async fn terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, "TerminateInstances", ids).await
    }

    async fn allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        let root = self.call(creds, "AllocateAddress", request::allocate_address()).await?;
        parse::allocated_address(&root)
    }

    async fn associate_address(
        &self,
        creds: &Credentials,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
    ) -> Result<String, ConnectorError> {
        let mut p = request::associate_address(allocation_id, instance_id);
        if allow_reassociation {
            p.push(("AllowReassociation".into(), "true".into()));
        }
        let root = self.call(creds, "AssociateAddress", p).await?;
        parse::association_id(&root)
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
        let root = self.call(creds, "DisassociateAddress", request::one("AssociationId", association_id)).await?;
        parse::check_return(&root, "DisassociateAddress")
    }

    async fn release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "ReleaseAddress", request::one("AllocationId", allocation_id)).await?;
        parse::check_return(&root, "ReleaseAddress")
    }

    async fn describe_addresses(&self, creds: &Credentials, allocation_ids: &[String]) -> Result<Vec<AddressInfo>, ConnectorError> {
        let mut p = Params::new();
        request::indexed(&mut p, "AllocationId", allocation_ids);
        let root = self.call(creds, "DescribeAddresses", p).await?;
        parse::addresses(&root)
    }

    async fn create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        let root = self.call(creds, "CreateVolume", request::create_volume(req)).await?;
        parse::volume_of(&root, "CreateVolume")
    }

    async fn attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let root = self.call(creds, "AttachVolume", request::attach_volume(volume_id, instance_id, device)).await?;
        parse::attachment_of(&root, "AttachVolume")
    }

    async fn detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let root = self.call(creds, "DetachVolume", request::detach_volume(volume_id, instance_id, force)).await?;
        parse::attachment_of(&root, "DetachVolume")
    }

    async fn delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "DeleteVolume", request::one("VolumeId", volume_id)).await?;
        parse::check_return(&root, "DeleteVolume")
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

    async fn describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut p = Params::new();
            request::indexed(&mut p, "VolumeId", volume_ids);
            if volume_ids.is_empty() {
                p.extend(request::paged(Some(self.settings.page_size), token.as_deref()));
            }
            let root = self.call(creds, "DescribeVolumes", p).await?;
            let page = parse::volumes(&root)?;
            out.extend(page.items);
            match page.next_token.filter(|t| !t.is_empty() && volume_ids.is_empty()) {
                Some(t) if seen.insert(t.clone()) => token = Some(t),
                Some(_) => {
                    return Err(ConnectorError::Cloud {
                        code: "PaginationLoop".into(),
                        message: "DescribeVolumes answered the same nextToken twice".into(),
                    })
                }
                None => return Ok(out),
            }
        }
        Err(ConnectorError::Cloud {
            code: "PaginationLoop".into(),
            message: format!("DescribeVolumes did not end after {MAX_PAGES} pages"),
        })
    }

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        let t: Vec<(String, Option<String>)> = tags.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let root = self.call(creds, "CreateTags", request::tags(ids, &t)).await?;
        parse::check_return(&root, "CreateTags")
    }

    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        let t: Vec<(String, Option<String>)> = keys.iter().map(|k| (k.clone(), None)).collect();
        let root = self.call(creds, "DeleteTags", request::tags(ids, &t)).await?;
        parse::check_return(&root, "DeleteTags")
    }

    async fn import_key_pair(&self, creds: &Credentials, name: &str, public_key: &str) -> Result<KeyPairInfo, ConnectorError> {
        let root = self.call(creds, "ImportKeyPair", request::import_key_pair(name, public_key)).await?;
        Ok(parse::imported_key(&root, name))
    }

    async fn delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        match self.call(creds, "DeleteKeyPair", request::key_name(name)).await {
            Ok(root) => parse::check_return(&root, "DeleteKeyPair"),
            Err(e) if is_code(&e, &["InvalidKeyPair.NotFound"]) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        let root = self.call(creds, "DescribeKeyPairs", Params::new()).await?;
        Ok(parse::key_pairs(&root))
    }

    async fn list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        let root = self.call(creds, "DescribeImages", request::describe_own_images()).await?;
        Ok(parse::images(&root))
    }

    async fn describe_image(&self, creds: &Credentials, id: &str) -> Result<Option<ImageInfo>, ConnectorError> {
        match self.call(creds, "DescribeImages", vec![("ImageId.1".into(), id.to_string())]).await {
            Ok(root) => Ok(parse::images(&root).into_iter().find(|i| i.id == id)),
            // An unknown or malformed id: the cloud has no such image.
            Err(ConnectorError::NotFound { .. }) => Ok(None),
            Err(ConnectorError::InvalidRequest { code, .. }) if code.starts_with("InvalidAMIID") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        if let Some(types) = &self.settings.instance_types {
            return Ok(types.iter().map(|name| InstanceTypeInfo { name: name.clone(), vcpus: None, memory_mib: None }).collect());
        }
        let mut out: Vec<InstanceTypeInfo> = Vec::new();
        let mut token: Option<String> = None;
        for page_no in 1.. {
            // DescribeInstanceTypes allows at most 100 per page.
            let params = request::paged(Some(self.settings.page_size.min(100)), token.as_deref());
            let root = match self.call(creds, "DescribeInstanceTypes", params).await {
                Ok(r) => r,
                Err(ConnectorError::Unsupported { operation }) => {
                    return Err(ConnectorError::Unsupported {
                        operation: format!("{operation}; set the instance.types parameter of connector instance '{}'", self.instance),
                    });
                }
                Err(e) => return Err(e),
            };
            let page = parse::instance_types(&root);
            out.extend(page.items);
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(next) if token.as_deref() != Some(next.as_str()) && page_no < MAX_PAGES => token = Some(next),
                _ => break,
            }
        }
        Ok(out)
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
        match self.call(creds, "DescribeSecurityGroups", request::describe_security_group(name)).await {
            Ok(root) if root.items("securityGroupInfo").any(|g| g.child_text("groupName") == Some(name)) => return Ok(()),
            Ok(_) => {}
            Err(e) if is_code(&e, &["InvalidGroup.NotFound"]) => {}
            Err(ConnectorError::Unsupported { operation }) => {
                // The trait's contract: clouds without security groups accept any name.
                tracing::info!(instance = %self.instance, group = name, %operation, "the cloud has no security groups; nothing to ensure");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        match self.call(creds, "CreateSecurityGroup", request::create_security_group(name)).await {
            Ok(_) => Ok(()),
            // `default` is reserved because every VPC has it: it exists.
            Err(e) if is_code(&e, &["InvalidGroup.Duplicate", "InvalidGroup.Reserved"]) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn params(pairs: &[(&str, &str)]) -> ParamValues {
        ParamValues::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
    }

    #[test]
    fn settings_from_params_and_defaults() {
        let s = Settings::from_params(&params(&[("endpoint", "https://one.example.org:8443/econe/")])).unwrap();
        assert_eq!(s.endpoint.path, "/econe/");
        assert_eq!(s.region, "opennebula");
        assert_eq!(s.signature, SignatureVersion::V4);
        assert_eq!(s.api_version, "2016-11-15");
        assert_eq!(s.instance_types, None);
        assert_eq!(s.security_group, "default");
        assert_eq!((s.workers, s.timeout, s.tls_verify), (20, Duration::from_secs(30), true));

        let s = Settings::from_params(&params(&[
            ("endpoint", "http://127.0.0.1:4567"),
            ("signature.version", "2"),
            ("instance.types", "m1.small, m1.large ,c1.medium"),
            ("timeout.seconds", "1"),
            ("tls.verify", "false"),
            ("max.iaas.workers", "3"),
        ]))
        .unwrap();
        assert_eq!(s.signature, SignatureVersion::V2);
        assert_eq!(s.instance_types, Some(vec!["m1.small".to_string(), "m1.large".into(), "c1.medium".into()]));
        assert_eq!((s.workers, s.timeout, s.tls_verify), (3, Duration::from_secs(1), false));
        assert_eq!(s.call_policy.timeout, Duration::from_secs(1));

        assert!(matches!(Settings::from_params(&params(&[])), Err(ConnectorError::InvalidRequest { .. })));
        assert!(Settings::from_params(&params(&[("endpoint", "http://x"), ("signature.version", "3")])).is_err());
        assert!(Settings::from_params(&params(&[("endpoint", "http://u:pw@x/")])).is_err());
    }

    #[tokio::test]
    async fn build_and_static_instance_types() {
        let c = build(
            InstanceName::parse("one-lab").unwrap(),
            &params(&[("endpoint", "http://127.0.0.1:9/"), ("instance.types", "m1.small,m1.large")]),
        )
        .unwrap();
        assert_eq!(c.kind(), KIND);
        assert_eq!(c.instance().as_str(), "one-lab");
        // No cloud call is made (port 9 would refuse it).
        let types = c.list_instance_types(&Credentials::new("a", "b")).await.unwrap();
        assert_eq!(types.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["m1.small", "m1.large"]);
        // Empty id lists make no call either.
        assert_eq!(c.stop_instances(&Credentials::new("a", "b"), &[]).await, Ok(vec![]));
    }

    #[tokio::test]
    async fn connection_refused_is_transport_and_debug_hides_nothing_secret() {
        let mut s = Settings::from_params(&params(&[("endpoint", "http://127.0.0.1:9/"), ("timeout.seconds", "2")])).unwrap();
        s.call_policy =
            CallPolicy { max_attempts: 2, base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2), timeout: s.timeout };
        let c = Ec2QueryConnector::new(InstanceName::parse("one").unwrap(), s).unwrap();
        let creds = Credentials::new("AKIAEXAMPLEKEY12", "very-secret-value");
        let e = c.validate_credentials(&creds).await.unwrap_err();
        assert!(matches!(&e, ConnectorError::Transport { message } if message.contains("127.0.0.1:9")), "{e:?}");
        assert!(!format!("{c:?} {e}").contains("very-secret-value"));
    }
}
