//! VMs: launch within quotas, actions, and reconciliation with the clouds.
//! Every VM belongs to one project (the one its launcher acted in) and
//! records who launched it: the project's members see and act on it, its
//! viewers only see it, nobody else sees it (admins see all).
//!
//! A launch is recorded **before** the cloud call: its VMs are inserted in
//! status `requested` in the same transaction that checks the quotas (the
//! user's and the project's). The cloud call carries tags naming the broker,
//! the user, the launch and (a team project's) the project, and a
//! ClientToken derived from the launch. Whatever happens next (success, an
//! error, a crash of the broker), the VMs in the cloud are matched back to
//! their records by the launch tag, so none is orphaned or counted twice:
//! the launch itself does it on success, the reconciler does it otherwise.
//!
//! A launch takes three steps, each in a file of its own: `plan.rs` (one
//! configuration snapshot, the connector, the image, the credentials, the
//! limits, the launch policies), `admit.rs` (the admission's checks: the
//! launch policies of `policy.rs`, the instance's and the project's own
//! (`project_policy.rs`), the quotas, and later budget) and
//! `cloud.rs` (the crash-safe cloud call); `launch.rs` runs them for a [`LaunchRequest`] (`request.rs`), the one type every front
//! builds. `actions.rs` starts, stops, reboots and terminates, `quotas.rs`
//! computes limits and usage, `reconcile.rs` brings records and clouds back
//! in line; `addresses.rs` and `volumes.rs` keep users' Elastic IPs and
//! volumes; `dry_run.rs` runs an action's checks without acting (EC2's
//! `DryRun`).

mod accounts;
mod actions;
mod addresses;
mod admit;
mod attributes;
mod batch;
mod budget;
mod cloud;
mod console;
mod dry_run;
mod launch;
mod launch_details;
mod lease_worker;
mod leases;
mod network_records;
mod object_tags;
mod objects;
mod overview;
mod plan;
mod policy;
mod project_policy;
mod quotas;
mod reconcile;
mod reconcile_resources;
mod request;
mod security_groups;
mod snapshots;
mod table;
mod volume_tokens;
mod volumes;
mod vpcs;

pub use addresses::Address;
pub use attributes::{VmAttribute, VmAttributeValue};
pub use console::{AdminOverview, FailedLaunch, InstanceCount, NearQuota, UserResource, NEAR_QUOTA_PERCENT};
pub use launch::LaunchOutcome;
pub use lease_worker::{LeasePassReport, LEASE_CLAIM_TTL};
pub use leases::LeaseTerms;
pub use objects::NewObject;
pub use overview::VmCount;
pub use policy::{LaunchPolicy, RequiredTag};
pub use project_policy::{validate as validate_project_policy, ProjectPolicy, SPECS as PROJECT_POLICY_SPECS};
pub use quotas::{ProjectQuota, ProjectQuotaSource, Quota, QuotaSource, DEFAULT_QUOTA};
pub use reconcile::ReconcileReport;
pub use request::{CountRange, InstanceType, LaunchRequest, LaunchTags, MAX_BLOCK_DEVICES, MAX_CLIENT_TAGS, MAX_COUNT};
pub use security_groups::SecurityGroup;
pub use snapshots::Snapshot;
pub use table::{CredentialUsed, VmHistoryLine, VmSort, VmTablePage, VmTableQuery};
pub use volume_tokens::VolumeToken;
pub use volumes::{Attachment, Volume, VolumeOptions, VolumeSpec};
pub use vpcs::{valid_block, Subnet, Vpc};

use crate::auth::Actor;
use crate::domain::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, Tags, UserName, VmId, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::images::Images;
use crate::registry::{Registry, Status};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Connector, ConnectorKind};
use cloudbroker_store::vms::{VmFilter, VmRow};
use cloudbroker_store::Store;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// A VM as the broker knows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vm {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: VmId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub launch_id: LaunchId,
    pub launch_index: i64,
    /// Who launched it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user: UserName,
    /// The project it belongs to: its members see it and act on it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub project: ProjectName,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub instance: InstanceName,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub client_token: ClientToken,
    pub name: String,
    /// The image asked for (a native image name or a raw cloud id).
    pub image: String,
    /// The cloud image id launched.
    pub image_id: String,
    pub instance_type: String,
    #[serde(rename = "state")]
    pub status: VmStatus,
    pub cloud_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// The address to reach the VM by, following the instance's `connection.policy`.
    pub address: Option<String>,
    /// Why it failed or vanished, for people.
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub tags: Tags,
    /// The user's key pair it was launched with (EC2's `KeyName`).
    pub key_name: Option<String>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Its lease (`null`: none): when it ends, what the broker does then,
    /// and what has happened so far.
    pub lease: Option<crate::domain::Lease>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub credential_id: CredentialId,
    /// The subnet and VPC the cloud placed it in, where known (filled by
    /// [`Provisioning::fill_networks`] or [`Provisioning::fill_page_details`]; `None` otherwise).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub network: Option<(String, String)>,
    /// Its security groups and the volumes its launch made, as the cloud
    /// answered the launch (filled by [`Provisioning::fill_page_details`];
    /// empty otherwise, and for VMs launched before they were recorded).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub launch_details: cloudbroker_store::vm_launch_details::LaunchDetails,
}

/// Which VMs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmQuery {
    /// Admins only: the VMs one user launched (others always see their
    /// project's, whoever launched them).
    pub user: Option<UserName>,
    /// Admins only: one project's VMs (others always see the project they act in).
    pub project: Option<ProjectName>,
    pub instance: Option<InstanceName>,
    pub status: Option<VmStatus>,
    pub name: Option<String>,
    pub launch: Option<LaunchId>,
    /// A user tag that must be present with this value.
    pub tag: Option<(String, String)>,
}

/// The provisioning service.
pub struct Provisioning {
    store: Store,
    registry: Arc<Registry>,
    vault: Arc<Vault>,
    images: Arc<Images>,
    broker_id: String,
    /// A `requested` VM not seen in the cloud after this long is a failed launch.
    pub launch_grace: Duration,
    /// How often the reconciler runs (its lease lives a few intervals).
    pub reconcile_interval: Duration,
    /// Instance types per connector instance, as last listed by the cloud.
    type_cache: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Vec<cloudbroker_connector_api::InstanceTypeInfo>)>>,
    /// What a launch made sure of in a cloud account (a security group, a
    /// key pair) and when: see [`cloud::PREPARED_TTL`].
    prepared: cloud::Prepared,
    /// Cloud account ids by (instance, access key): see `accounts.rs`.
    accounts: accounts::Accounts,
    /// The clock leases are given and ended by (a test sets it).
    pub clock: crate::clock::Clock,
    /// A claim on a lease expiry older than this is taken over by another
    /// replica (see `lease_worker.rs`).
    pub lease_claim_ttl: Duration,
    /// Whether budget overrides exist (shared with the costs service: see
    /// `costs::budgets::Overrides`), so a launch looks none up while there are none.
    pub budget_overrides: Arc<crate::costs::budgets::Overrides>,
    /// Wakes this replica's deployments driver when the reconciler or the
    /// transition watch records a change of a deployment's VM (set by
    /// `Deployments::new`; unset, nothing is woken).
    pub deployment_kick: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
}

/// The reserved tag naming the deployment a VM record belongs to.
pub const DEPLOYMENT_TAG: &str = "cloudbroker:deployment";

/// How long a cloud's list of instance types is reused.
pub const INSTANCE_TYPES_TTL: Duration = Duration::from_secs(600);

fn address(policy: &str, private_ip: &Option<String>, public_ip: &Option<String>) -> Option<String> {
    match policy {
        "public" => public_ip.clone(),
        "local" => private_ip.clone(),
        _ => public_ip.clone().or_else(|| private_ip.clone()),
    }
}

impl Provisioning {
    /// A new service.
    pub fn new(store: Store, registry: Arc<Registry>, vault: Arc<Vault>, images: Arc<Images>, broker_id: String) -> Self {
        Self {
            store,
            registry,
            vault,
            images,
            broker_id,
            launch_grace: Duration::from_secs(600),
            reconcile_interval: Duration::from_secs(30),
            type_cache: Default::default(),
            prepared: Default::default(),
            accounts: Default::default(),
            clock: crate::clock::Clock::system(),
            lease_claim_ttl: lease_worker::LEASE_CLAIM_TTL,
            budget_overrides: Default::default(),
            deployment_kick: Default::default(),
        }
    }

    /// The instance types `instance` offers, listed with the caller's
    /// credentials and reused for [`INSTANCE_TYPES_TTL`] (they change rarely;
    /// the cloud's rate limits are better spent on launches).
    pub async fn instance_types(
        &self,
        actor: &Actor,
        instance: &InstanceName,
    ) -> ServiceResult<Vec<cloudbroker_connector_api::InstanceTypeInfo>> {
        let cached = self.type_cache.lock().unwrap_or_else(|e| e.into_inner()).get(instance.as_str()).cloned();
        if let Some((at, types)) = cached.filter(|(at, _)| at.elapsed() < INSTANCE_TYPES_TTL) {
            let _ = at;
            return Ok(types);
        }
        let (connector, _, _) = self.connector(instance)?;
        let (creds, _) = self.vault.credentials_for_launch(actor, instance).await?;
        let types = connector.list_instance_types(&creds).await?;
        self.type_cache.lock().unwrap_or_else(|e| e.into_inner()).insert(instance.to_string(), (std::time::Instant::now(), types.clone()));
        Ok(types)
    }

    /// Registers a cloud image of `instance` as a native image (EC2's
    /// `RegisterImage`): the cloud behind the instance must have it (its own
    /// or a public image), seen with the caller's credentials. Owned by (and private to) the caller;
    /// public when an admin registers it.
    pub async fn register_image(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        cloud_image_id: &str,
        name: &crate::domain::ImageName,
        description: &str,
    ) -> ServiceResult<crate::images::ImageView> {
        actor.require_act()?;
        let id = self.registrable(actor, instance, cloud_image_id).await?;
        self.images.register(actor, name, description, instance, id).await
    }

    /// The cloud image id a registration names, trimmed, once the cloud
    /// behind `instance` (asked with the caller's credentials) has it.
    async fn registrable<'a>(&self, actor: &Actor, instance: &InstanceName, cloud_image_id: &'a str) -> ServiceResult<&'a str> {
        let id = cloud_image_id.trim();
        if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid_field("image_id", "the cloud image id must be 1-255 printable characters without spaces"));
        }
        let (connector, _, _) = self.connector(instance)?;
        let (creds, _) = self.vault.credentials_for_launch(actor, instance).await?;
        if connector.describe_image(&creds, id).await?.is_none() {
            return Err(ServiceError::unresolved("image", format!("the cloud behind '{instance}' has no image '{id}'")));
        }
        Ok(id)
    }

    /// The broker id VMs are tagged with.
    pub fn broker_id(&self) -> &str {
        &self.broker_id
    }

    /// The domain VM of a stored row (statuses the store holds were written by
    /// this module; an unknown one is reported, not guessed).
    fn vm(&self, r: VmRow) -> ServiceResult<Vm> {
        let snap = self.registry.snapshot();
        let policy = Self::policy(&snap, r.instance.as_str());
        Self::vm_with(r, &policy)
    }

    /// An instance's `connection.policy` in a configuration snapshot.
    fn policy(snap: &crate::registry::Snapshot, instance: &str) -> String {
        snap.instance(instance).and_then(|i| i.values.get(i.kind, "connection.policy")).unwrap_or_else(|| "auto".into())
    }

    fn vm_with(r: VmRow, policy: &str) -> ServiceResult<Vm> {
        Ok(Vm {
            address: address(policy, &r.private_ip, &r.public_ip),
            id: r.id,
            launch_id: r.launch_id,
            launch_index: r.launch_index,
            user: r.user,
            project: r.project,
            instance: r.instance,
            client_token: r.client_token,
            name: r.name,
            image: r.image,
            image_id: r.image_id,
            instance_type: r.instance_type,
            status: r.state,
            cloud_id: r.cloud_id,
            private_ip: r.private_ip,
            public_ip: r.public_ip,
            error: r.error,
            tags: r.tags,
            key_name: r.key_name,
            network: None,
            launch_details: Default::default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            credential_id: r.credential_id,
            lease: r.lease,
        })
    }

    /// The domain VMs of stored rows: one configuration snapshot for all,
    /// the policy looked up once per connector instance (a page of VMs is
    /// mostly on one or two).
    fn vms(&self, rows: Vec<VmRow>) -> ServiceResult<Vec<Vm>> {
        let snap = self.registry.snapshot();
        let mut policies: Vec<(InstanceName, String)> = Vec::new();
        rows.into_iter()
            .map(|r| {
                let at = match policies.iter().position(|(i, _)| *i == r.instance) {
                    Some(at) => at,
                    None => {
                        policies.push((r.instance.clone(), Self::policy(&snap, r.instance.as_str())));
                        policies.len() - 1
                    }
                };
                Self::vm_with(r, &policies[at].1)
            })
            .collect()
    }

    /// The VMs of one launch.
    async fn launch_vms(&self, launch: &LaunchId) -> ServiceResult<Vec<Vm>> {
        self.vms(self.store.list_vms(&VmFilter { launch_id: Some(launch.to_string()), ..VmFilter::default() }).await?)
    }

    /// The ready connector of an instance, with its kind and parameters.
    fn connector(&self, instance: &InstanceName) -> ServiceResult<(Arc<dyn Connector>, ConnectorKind, ParamValues)> {
        Self::connector_in(&self.registry.snapshot(), instance)
    }

    /// As [`Self::connector`], in a given configuration snapshot.
    fn connector_in(
        snap: &crate::registry::Snapshot,
        instance: &InstanceName,
    ) -> ServiceResult<(Arc<dyn Connector>, ConnectorKind, ParamValues)> {
        let e = snap.instance(instance.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))?;
        match (&e.status, &e.connector) {
            (Status::Ready, Some(c)) => Ok((c.clone(), e.kind, e.values.clone())),
            (Status::Error { errors }, _) => {
                Err(ServiceError::Unavailable(format!("connector instance '{instance}' is not ready: {}", errors.join("; "))))
            }
            _ => Err(ServiceError::Unavailable(format!("connector instance '{instance}' is not ready"))),
        }
    }

    /// A VM the actor may see (its project's, or any for admins); others'
    /// are "not found". Seeing is not acting: see [`Actor::require_act`].
    async fn owned(&self, actor: &Actor, id: &VmId) -> ServiceResult<Vm> {
        match self.store.get_vm(id).await? {
            Some(v) if actor.sees(v.project.as_str()) => self.vm(v),
            _ => Err(ServiceError::NotFound(Resource::Vm(id.clone()))),
        }
    }
}

impl crate::costs::Metered for Vm {
    fn metered_id(&self) -> &VmId {
        &self.id
    }
    fn metered_instance(&self) -> &InstanceName {
        &self.instance
    }
    fn metered_type(&self) -> &str {
        &self.instance_type
    }
}
