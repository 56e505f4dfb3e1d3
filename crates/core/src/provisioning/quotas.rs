//! Quotas: a user's limit on an instance is their override, else the
//! instance's `quota.vm`, else [`DEFAULT_QUOTA`]; usage counts the VMs in
//! [`VmStatus::QUOTA_COUNTED`] statuses. Enforcement (under `quota.enable`)
//! happens in the launch's admission transaction, never here.

use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{InstanceName, UserName, VmStatus};
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
        Ok(self.store.quota_usage(user, instance, &VmStatus::QUOTA_COUNTED).await?)
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
        audit::record(&self.store, actor.name.as_str(), &event).await?;
        let (limit, source) = self.limit_for(user, instance).await?;
        let enforced = self.registry.snapshot().system_bool("quota.enable");
        Ok(Quota { instance: instance.clone(), limit, source, usage: self.usage(user, instance).await?, enforced })
    }
}
