//! A launch's plan: the first of its three steps (plan, admit, cloud). The
//! request's own fields are checked, then everything the launch goes by is
//! looked up once, from one configuration snapshot taken after a freshness
//! check: the key pair it names, the connector, the image (resolved for the
//! instance, as [`crate::images::Images::launchable_by`] shows it), the
//! instance type and security group, the caller's credentials, the limits
//! and the launch policies, the instance's and the project's own (checked
//! by the admission). Planning
//! writes nothing and reserves nothing, so a dry run is a plan and an
//! admission preview.

use super::leases::LeaseTerms;
use super::policy::LaunchPolicy;
use super::request::{InstanceType, LaunchRequest, MAX_BLOCK_DEVICES, MAX_CLIENT_TAGS, MAX_COUNT};
use super::Provisioning;
use crate::domain::{CredentialId, ImageRef, InstanceName, NewLease};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::images::ResolvedImage;
use crate::registry::Snapshot;
use crate::Actor;
use cloudbroker_connector_api::{Connector, Credentials};
use std::sync::Arc;

/// Most bytes of user data (EC2's own limit is 16 KiB before base64).
const MAX_USER_DATA: usize = 16 * 1024;

/// The instance type when neither the request, the image nor the connector names one.
const FALLBACK_INSTANCE_TYPE: &str = "t2.micro";

/// What a launch's admission may let through (see [`super::admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    /// The user's VM quota on the instance, when `quota.enable` is on.
    pub quota: Option<i64>,
    /// The project's VM quota on the instance, when `quota.enable` is on
    /// and the project has one (an override, or the instance's `quota.project.vm`).
    pub project_quota: Option<i64>,
}

/// Everything a launch goes by, looked up once.
pub(super) struct LaunchPlan {
    pub request: LaunchRequest,
    pub connector: Arc<dyn Connector>,
    pub image: ResolvedImage,
    pub instance_type: String,
    pub security_group: Option<String>,
    /// The groups the request names (names, ids), checked; `None`: it
    /// names none and `security_group` applies.
    pub groups: Option<(Vec<String>, Vec<String>)>,
    /// The subnet the VMs go into (`None`: the cloud's default).
    pub subnet_id: Option<String>,
    pub creds: Credentials,
    pub credential_id: CredentialId,
    /// The key pair's public key, else the request's; `None`: the user's
    /// profile key, read for the cloud step.
    pub ssh_public_key: Option<String>,
    /// The key pair's name, recorded on the VMs.
    pub key_name: Option<String>,
    pub limits: Limits,
    /// The instance's launch policies, when they apply to the actor (an
    /// admin under `policy.exempt.admins` skips them) and any is set.
    pub policy: Option<LaunchPolicy>,
    /// The project's own launch policies on the instance, when it has any
    /// and they apply to the actor (`project_policy.rs`): checked after the
    /// instance's, so a project only tightens.
    pub project_policy: Option<LaunchPolicy>,
    /// The lease the VMs get (asked for, or the instance's default), and
    /// how long it is from the time of planning (what `lease.max` caps).
    pub lease: Option<NewLease>,
    pub lease_span: Option<chrono::Duration>,
    /// The budgets the launch must fit in (`budget.rs`), if any.
    pub budget: Option<super::budget::BudgetPlan>,
}

/// The instance type a launch uses: the one asked for, else the image's
/// default on the instance, else the connector's, else [`FALLBACK_INSTANCE_TYPE`].
/// The one place that decides it: launches plan with it, and the launch
/// form's hint shows its answer ([`Provisioning::default_instance_type`]).
fn instance_type_for(
    asked: Option<&InstanceType>,
    image: &ResolvedImage,
    kind: cloudbroker_connector_api::ConnectorKind,
    values: &cloudbroker_connector_api::params::ParamValues,
) -> String {
    asked
        .map(InstanceType::to_string)
        .or(image.instance_type.clone())
        .or_else(|| kind.default_instance_type(values))
        .unwrap_or_else(|| FALLBACK_INSTANCE_TYPE.into())
}

impl Provisioning {
    /// The instance type a launch of `image` (as resolved on `instance`,
    /// e.g. from [`crate::images::Launchable::on`]) that names none uses, by
    /// the current configuration (`None`: no such instance is declared).
    pub fn default_instance_type(&self, instance: &InstanceName, image: &ResolvedImage) -> Option<String> {
        let snap = self.registry.snapshot();
        let e = snap.instance(instance.as_str())?;
        Some(instance_type_for(None, image, e.kind, &e.values))
    }

    /// Another replica may have changed the configuration (`quota.enable`,
    /// an instance's quota) since this one last polled: a launch never goes
    /// by a stale switch. One small query; a reload only on change.
    pub(super) async fn fresh_config(&self) -> ServiceResult<()> {
        self.registry.reload_if_changed().await.map_err(|e| match e {
            crate::registry::RegistryError::Store(s) => ServiceError::from(s),
            other => ServiceError::Internal(format!("configuration: {other}")),
        })?;
        Ok(())
    }

    /// Plans a launch in the project the actor acts in (a viewer may not
    /// launch): checks its fields, then looks up what it goes by.
    pub(super) async fn plan(&self, actor: &Actor, request: LaunchRequest) -> ServiceResult<LaunchPlan> {
        actor.require_act()?;
        Self::check(&request)?;
        let (ssh_public_key, key_name) = match &request.key_name {
            Some(name) => {
                let pair = self
                    .store
                    .key_pair(&actor.project, name)
                    .await?
                    .ok_or_else(|| ServiceError::NotFound(Resource::KeyPair(name.chars().take(255).collect())))?;
                (Some(pair.public_key), Some(pair.name))
            }
            None => (request.ssh_public_key.clone(), None),
        };
        self.fresh_config().await?;
        let snap = self.registry.snapshot();
        let (connector, kind, values) = Self::connector_in(&snap, &request.instance)?;
        let image = self.resolve_image(actor, &snap, &request.image, &request.instance).await?;
        let instance_type = instance_type_for(request.instance_type.as_ref(), &image, kind, &values);
        let security_group = image.security_group.clone().or_else(|| values.get(kind, "security.group"));
        let groups = self
            .launch_groups(actor, &request.instance, &request.security_groups, &request.security_group_ids, security_group.as_deref())
            .await?;
        let policy = Some(LaunchPolicy::of(&values)).filter(|p| !p.is_empty() && p.applies_to(actor));
        let project_policy = self.project_policy_of(&actor.project, &request.instance, &values).await?.filter(|p| p.applies_to(actor));
        let now = self.clock.now();
        let terms = super::project_policy::tightened(LeaseTerms::of(&values), project_policy.as_ref());
        let lease = terms.for_launch(request.lease.as_ref(), now)?;
        let lease_span = lease.map(|l| chrono::Duration::milliseconds(l.expires_at - now.timestamp_millis()));
        let budget = self.budget_plan(&snap, &values, (&actor.name, &actor.project), &request.instance, &instance_type, now).await?;
        let launcher = self.vault.credentials_for_launch(actor, &request.instance).await?;
        // A teammate's subnet or groups in another cloud account take the launch there (`accounts.rs`).
        let named_subnet = request.subnet_id.clone().or_else(|| values.get(kind, "subnet.id"));
        let group_ids = groups.as_ref().map(|(_, ids)| ids.as_slice()).unwrap_or_default();
        let (creds, credential_id) =
            self.network_credential(actor, &request.instance, connector.as_ref(), launcher, named_subnet.as_deref(), group_ids).await?;
        let subnet_id = self
            .launch_subnet(
                actor,
                &request.instance,
                connector.as_ref(),
                &creds,
                request.subnet_id.as_deref(),
                (values.get(kind, "subnet.id"), values.get(kind, "vpc.id")),
            )
            .await?;
        let (quota, project_quota) = if snap.system_bool("quota.enable") {
            let user = self.limit_in(&snap, &actor.name, &request.instance).await?.0;
            let project = self.project_limit_in(&snap, &actor.project, &request.instance).await?.0;
            (Some(user), project)
        } else {
            (None, None)
        };
        Ok(LaunchPlan {
            request,
            connector,
            image,
            instance_type,
            security_group,
            groups,
            subnet_id,
            creds,
            credential_id,
            ssh_public_key,
            key_name,
            limits: Limits { quota, project_quota },
            policy,
            project_policy,
            lease,
            lease_span,
            budget,
        })
    }

    /// A launch's own fields, checked before anything is looked up.
    fn check(r: &LaunchRequest) -> ServiceResult<()> {
        let count = r.count;
        if count.min == 0 || count.max > MAX_COUNT {
            return Err(ServiceError::invalid_field("count", format!("count must be between 1 and {MAX_COUNT}")));
        }
        if count.min > count.max {
            return Err(ServiceError::invalid_field(
                "count",
                format!("the least count ({}) is more than the most ({})", count.min, count.max),
            ));
        }
        if r.name.chars().count() > 128 || r.name.chars().any(char::is_control) {
            return Err(ServiceError::invalid_field("name", "name is at most 128 characters, no control characters"));
        }
        if r.user_data.as_ref().is_some_and(|u| u.len() > MAX_USER_DATA) {
            return Err(ServiceError::invalid_field("user_data", format!("user_data is at most {MAX_USER_DATA} bytes")));
        }
        if r.tags.name_tag.as_ref().is_some_and(|n| n.chars().count() > 256 || n.chars().any(char::is_control)) {
            return Err(ServiceError::invalid_field("tags", "the Name tag is at most 256 characters, no control characters"));
        }
        if r.zone.as_ref().is_some_and(|z| z.is_empty() || z.len() > 64 || z.chars().any(char::is_control)) {
            return Err(ServiceError::invalid_field("zone", "an availability zone is 1-64 characters"));
        }
        if r.block_devices.len() > MAX_BLOCK_DEVICES {
            return Err(ServiceError::invalid_field("block_devices", format!("at most {MAX_BLOCK_DEVICES} block devices")));
        }
        let reserved = &r.tags.reserved;
        if reserved.len() > MAX_CLIENT_TAGS
            || reserved
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256 || k.chars().chain(v.chars()).any(char::is_control))
        {
            return Err(ServiceError::invalid_field(
                "tags",
                format!("at most {MAX_CLIENT_TAGS} reserved client tags, keys 1-128 and values up to 256 characters"),
            ));
        }
        Ok(())
    }

    /// The image a launch uses: a native image the actor may launch,
    /// resolved for the instance, or a raw cloud id where
    /// `images.allow.raw` allows it.
    async fn resolve_image(
        &self,
        actor: &Actor,
        snap: &Arc<Snapshot>,
        image: &ImageRef,
        instance: &InstanceName,
    ) -> ServiceResult<ResolvedImage> {
        let allow_raw = snap.system_bool("images.allow.raw");
        let native = match image.as_native() {
            Some(n) => match self.images.catalogue_at(snap.clone()).await?.resolve_for(actor, &n, instance) {
                Err(ServiceError::NotFound(_)) => None,
                other => Some(other),
            },
            None => None,
        };
        match native {
            Some(r) => r,
            None if allow_raw => {
                Ok(ResolvedImage { image_id: image.to_string(), instance_type: None, security_group: None, from_image: String::new() })
            }
            // Well-formed, but the configuration has no such image.
            None => Err(ServiceError::unresolved(
                "image",
                format!("image '{image}' is not a native image (and raw cloud image ids are not allowed: images.allow.raw)"),
            )),
        }
    }
}
