//! Quotas: a user's limit on an instance is their override, else the
//! instance's `quota.vm`, else [`DEFAULT_QUOTA`]; a project's limit on an
//! instance is its override, else the instance's `quota.project.vm`, else
//! none. Usage counts the VMs in [`VmStatus::COUNTED`] statuses (the
//! user's in every project; the project's of every member). Enforcement
//! (under `quota.enable`, both quotas) happens in the launch's admission
//! transaction, never here. Admins set overrides; a project's members (any
//! role) read its quotas.

use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{InstanceName, ProjectName, UserName, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use serde::Serialize;

/// The broker default quota when neither an override nor `quota.vm` is set.
pub const DEFAULT_QUOTA: i64 = 20;

/// Where a limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QuotaSource {
    /// The user's own override.
    Override,
    /// The instance's `quota.vm`.
    Instance,
    /// The broker default.
    Default,
}

/// A user's quota on one instance.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quota {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub instance: InstanceName,
    pub limit: i64,
    pub source: QuotaSource,
    pub usage: i64,
    pub enforced: bool,
}

/// Where a project's limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProjectQuotaSource {
    /// The project's own override.
    Override,
    /// The instance's `quota.project.vm`.
    Instance,
    /// Neither: the project has no limit on the instance (its members'
    /// own quotas still apply).
    None,
}

/// A project's quota on one instance.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectQuota {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub instance: InstanceName,
    /// The most live VMs the project's members may have there together
    /// (null: no project limit).
    pub limit: Option<i64>,
    pub source: ProjectQuotaSource,
    /// The project's VMs there that count against it.
    pub usage: i64,
    /// Whether quotas are enforced (`quota.enable`).
    pub enforced: bool,
}

/// Largest quota an override may set.
const MAX_LIMIT: i64 = 1_000_000;

impl Provisioning {
    /// The quota limit of a user on an instance, and where it comes from.
    pub async fn limit_for(&self, user: &UserName, instance: &InstanceName) -> ServiceResult<(i64, QuotaSource)> {
        self.limit_in(&self.registry.snapshot(), user, instance).await
    }

    /// As [`Self::limit_for`], in a given configuration snapshot.
    pub(super) async fn limit_in(
        &self,
        snap: &crate::registry::Snapshot,
        user: &UserName,
        instance: &InstanceName,
    ) -> ServiceResult<(i64, QuotaSource)> {
        if let Some(l) = self.store.quota_override(user, instance).await? {
            return Ok((l, QuotaSource::Override));
        }
        if let Some(l) = snap.instance(instance.as_str()).and_then(|i| i.values.get_set("quota.vm")).and_then(|v| v.parse().ok()) {
            return Ok((l, QuotaSource::Instance));
        }
        Ok((DEFAULT_QUOTA, QuotaSource::Default))
    }

    /// VMs of a user on an instance that count against the quota.
    pub async fn usage(&self, user: &UserName, instance: &InstanceName) -> ServiceResult<i64> {
        Ok(self.store.quota_usage(user, instance, &VmStatus::COUNTED).await?)
    }

    async fn require_user(&self, user: &UserName) -> ServiceResult<()> {
        match self.store.get_user(user.as_str()).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::NotFound(Resource::User(user.clone()))),
        }
    }

    /// A user's quotas and usage on every instance (self or admin).
    pub async fn quotas(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<Quota>> {
        actor.require_self_or_admin(user)?;
        self.require_user(user).await?;
        let snap = self.registry.snapshot();
        let enforced = snap.system_bool("quota.enable");
        let mut out = Vec::new();
        for i in &snap.instances {
            let (limit, source) = self.limit_for(user, &i.name).await?;
            out.push(Quota { instance: i.name.clone(), limit, source, usage: self.usage(user, &i.name).await?, enforced });
        }
        Ok(out)
    }

    /// Sets (or with `None` removes) a user's override (admin); returns the quota now.
    pub async fn set_quota(&self, actor: &Actor, user: &UserName, instance: &InstanceName, limit: Option<i64>) -> ServiceResult<Quota> {
        actor.require_admin()?;
        self.require_user(user).await?;
        if self.registry.snapshot().instance(instance.as_str()).is_none() {
            return Err(ServiceError::NotFound(Resource::Instance(instance.clone())));
        }
        if let Some(l) = limit {
            if !(0..=1_000_000).contains(&l) {
                return Err(ServiceError::invalid_field("vm", "vm must be between 0 and 1000000"));
            }
        }
        self.store.set_quota_override(user, instance, limit).await?;
        let target = AuditTarget::Quota { user: user.as_str(), instance: instance.as_str() };
        let event = AuditEvent::ok(AuditAction::QuotaChange, target).detail(limit.map(|l| l.to_string()).unwrap_or_else(|| "unset".into()));
        audit::record_by(&self.store, actor, &event).await?;
        let (limit, source) = self.limit_for(user, instance).await?;
        let enforced = self.registry.snapshot().system_bool("quota.enable");
        Ok(Quota { instance: instance.clone(), limit, source, usage: self.usage(user, instance).await?, enforced })
    }
}

impl Provisioning {
    /// The project limit on an instance (`None`: no limit), and where it
    /// comes from: the project's override, else the instance's `quota.project.vm`.
    pub async fn project_limit_for(
        &self,
        project: &ProjectName,
        instance: &InstanceName,
    ) -> ServiceResult<(Option<i64>, ProjectQuotaSource)> {
        self.project_limit_in(&self.registry.snapshot(), project, instance).await
    }

    /// As [`Self::project_limit_for`], in a given configuration snapshot.
    pub(super) async fn project_limit_in(
        &self,
        snap: &crate::registry::Snapshot,
        project: &ProjectName,
        instance: &InstanceName,
    ) -> ServiceResult<(Option<i64>, ProjectQuotaSource)> {
        if let Some(l) = self.store.project_quota_override(project, instance).await? {
            return Ok((Some(l), ProjectQuotaSource::Override));
        }
        let declared = snap.instance(instance.as_str()).and_then(|i| i.values.get_set("quota.project.vm")).and_then(|v| v.parse().ok());
        Ok(match declared {
            Some(l) => (Some(l), ProjectQuotaSource::Instance),
            None => (None, ProjectQuotaSource::None),
        })
    }

    /// VMs of a project on an instance that count against its quota.
    pub async fn project_usage(&self, project: &ProjectName, instance: &InstanceName) -> ServiceResult<i64> {
        Ok(self.store.project_quota_usage(project, instance, &VmStatus::COUNTED).await?)
    }

    /// The project exists and `actor` may read it (a member, any role, or
    /// an admin); others get NotFound, as if it did not exist.
    async fn readable_project(&self, actor: &Actor, project: &ProjectName) -> ServiceResult<()> {
        let not_found = || ServiceError::NotFound(Resource::Project(project.clone()));
        if self.store.get_project(project).await?.is_none() {
            return Err(not_found());
        }
        if !actor.is_admin && self.store.project_membership(project, &actor.name).await?.is_none() {
            return Err(not_found());
        }
        Ok(())
    }

    async fn project_quota(
        &self,
        snap: &crate::registry::Snapshot,
        project: &ProjectName,
        instance: &InstanceName,
    ) -> ServiceResult<ProjectQuota> {
        let (limit, source) = self.project_limit_in(snap, project, instance).await?;
        let usage = self.project_usage(project, instance).await?;
        Ok(ProjectQuota { instance: instance.clone(), limit, source, usage, enforced: snap.system_bool("quota.enable") })
    }

    /// A project's quotas and usage on every instance (its members, any
    /// role, and admins; others get NotFound).
    pub async fn project_quotas(&self, actor: &Actor, project: &ProjectName) -> ServiceResult<Vec<ProjectQuota>> {
        self.readable_project(actor, project).await?;
        let snap = self.registry.snapshot();
        let mut out = Vec::with_capacity(snap.instances.len());
        for i in &snap.instances {
            out.push(self.project_quota(&snap, project, &i.name).await?);
        }
        Ok(out)
    }

    /// Sets (or with `None` removes) a project's override on an instance
    /// (admins only: a project's owners read its quotas, as its members
    /// do); returns the quota now.
    pub async fn set_project_quota(
        &self,
        actor: &Actor,
        project: &ProjectName,
        instance: &InstanceName,
        limit: Option<i64>,
    ) -> ServiceResult<ProjectQuota> {
        self.readable_project(actor, project).await?;
        actor.require_admin()?;
        if self.registry.snapshot().instance(instance.as_str()).is_none() {
            return Err(ServiceError::NotFound(Resource::Instance(instance.clone())));
        }
        if let Some(l) = limit {
            if !(0..=MAX_LIMIT).contains(&l) {
                return Err(ServiceError::invalid_field("limit", format!("limit must be between 0 and {MAX_LIMIT}")));
            }
        }
        self.store.set_project_quota_override(project, instance, limit).await?;
        let detail = format!("{instance}={}", limit.map(|l| l.to_string()).unwrap_or_else(|| "unset".into()));
        let event =
            AuditEvent::ok(AuditAction::QuotaChange, AuditTarget::Project(project.as_str())).detail(detail).in_project(project.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        self.project_quota(&self.registry.snapshot(), project, instance).await
    }
}
