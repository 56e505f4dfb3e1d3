//! The admin console's views (admins only, everything else is 403): the
//! overview across every user, in a fixed handful of aggregate queries
//! whatever the number of users and VMs (live VMs per instance and state,
//! quota usage per user and instance with every override, the failed
//! launches of the last day; instances in error from the configuration
//! snapshot), and the volumes and addresses one user made in any project.
//! Limits follow the launch's rule exactly (override, else the instance's
//! `quota.vm`, else [`DEFAULT_QUOTA`]), read from the same snapshot.

use super::quotas::{QuotaSource, DEFAULT_QUOTA};
use super::{Address, Provisioning, Volume};
use crate::auth::Actor;
use crate::domain::{InstanceName, UserName, VmId, VmStatus};
use crate::error::ServiceResult;
use crate::registry::Status;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A user is "near quota" on an instance from this share of their limit (percent).
pub const NEAR_QUOTA_PERCENT: i64 = 80;

/// The most failed launches the overview lists (it counts them all).
const FAILED_SHOWN: i64 = 5;

/// Live VMs on one instance in one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceCount {
    pub instance: String,
    pub state: VmStatus,
    pub count: i64,
}

/// A user at or above [`NEAR_QUOTA_PERCENT`] of their limit on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearQuota {
    pub user: String,
    pub instance: String,
    /// The VMs counted against the quota.
    pub usage: i64,
    pub limit: i64,
    pub source: QuotaSource,
}

impl NearQuota {
    /// Usage as a share of the limit, in whole percent (a zero limit with
    /// any usage: 100 and more).
    pub fn percent(&self) -> i64 {
        if self.limit <= 0 {
            return 100 * self.usage.max(1);
        }
        self.usage * 100 / self.limit
    }
}

/// A launch that failed: its VM, who and where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedLaunch {
    pub id: VmId,
    pub name: String,
    pub user: String,
    pub project: String,
    pub instance: String,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// What the admin overview shows (workers are the broker's: see `Broker::readiness`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminOverview {
    /// Live VMs per instance and state, by instance then state.
    pub counts: Vec<InstanceCount>,
    /// Users near or over quota, fullest first.
    pub near_quota: Vec<NearQuota>,
    /// Whether quotas are enforced (`quota.enable`).
    pub quotas_enforced: bool,
    /// The failed launches counted are those since this time (a day ago).
    pub failed_since: DateTime<Utc>,
    pub failed_count: i64,
    /// The latest few of them, newest first.
    pub failed: Vec<FailedLaunch>,
    /// Connector instances in error, with their errors.
    pub instances_in_error: Vec<(String, Vec<String>)>,
    /// Configuration files with errors (the instances they declare are not loaded).
    pub file_errors: Vec<String>,
}

/// A volume or an address with the project it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserResource<T> {
    pub project: String,
    pub item: T,
}

impl Provisioning {
    /// The admin overview (admin).
    pub async fn admin_overview(&self, actor: &Actor) -> ServiceResult<AdminOverview> {
        actor.require_admin()?;
        let snap = self.registry.snapshot();
        let live: Vec<VmStatus> = VmStatus::ALL.into_iter().filter(|s| s.is_live()).collect();
        let mut counts: Vec<InstanceCount> = self
            .store
            .vm_counts_by_instance(&live)
            .await?
            .into_iter()
            .filter_map(|(instance, state, count)| Some(InstanceCount { state: VmStatus::parse(&state).ok()?, instance, count }))
            .collect();
        counts.sort_by(|a, b| (&a.instance, a.state).cmp(&(&b.instance, b.state)));
        let counted: Vec<&str> = VmStatus::COUNTED.iter().map(|s| s.as_str()).collect();
        let usage = self.store.usage_by_user(&counted).await?;
        let overrides: HashMap<(String, String), i64> =
            self.store.quota_overrides().await?.into_iter().map(|o| ((o.user, o.instance), o.limit)).collect();
        let mut near_quota: Vec<NearQuota> = usage
            .into_iter()
            .filter(|u| u.count > 0)
            .map(|u| {
                let (limit, source) = match overrides.get(&(u.user.clone(), u.instance.clone())) {
                    Some(l) => (*l, QuotaSource::Override),
                    None => match snap.instance(&u.instance).and_then(|i| i.values.get_set("quota.vm")).and_then(|v| v.parse().ok()) {
                        Some(l) => (l, QuotaSource::Instance),
                        None => (DEFAULT_QUOTA, QuotaSource::Default),
                    },
                };
                NearQuota { user: u.user, instance: u.instance, usage: u.count, limit, source }
            })
            .filter(|q| q.usage * 100 >= q.limit * NEAR_QUOTA_PERCENT)
            .collect();
        near_quota.sort_by(|a, b| b.percent().cmp(&a.percent()).then_with(|| (&a.user, &a.instance).cmp(&(&b.user, &b.instance))));
        let failed_since = self.clock.now() - chrono::Duration::days(1);
        let (failed_count, failed) = self.store.failed_since(failed_since, FAILED_SHOWN).await?;
        let failed = failed
            .into_iter()
            .map(|f| FailedLaunch {
                id: VmId::from_stored(f.id),
                name: f.name,
                user: f.user,
                project: f.project,
                instance: f.instance,
                error: f.error,
                at: f.at,
            })
            .collect();
        let instances_in_error = snap
            .instances
            .iter()
            .filter_map(|i| match &i.status {
                Status::Error { errors } => Some((i.name.to_string(), errors.clone())),
                Status::Ready => None,
            })
            .collect();
        Ok(AdminOverview {
            counts,
            near_quota,
            quotas_enforced: snap.system_bool("quota.enable"),
            failed_since,
            failed_count,
            failed,
            instances_in_error,
            file_errors: snap.file_errors.clone(),
        })
    }

    /// The live volumes `user` made, in every project, from the records (admin).
    pub async fn volumes_made_by(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<UserResource<Volume>>> {
        actor.require_admin()?;
        let rows = self.store.volumes_made_by(user.as_str()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let instance = InstanceName::parse(&r.instance).ok()?;
                Some(UserResource { project: r.project.clone(), item: Volume::from_row(r, &instance) })
            })
            .collect())
    }

    /// The live security groups, VPCs, subnets and snapshots `user` made, in
    /// every project, from the records (admin).
    pub async fn objects_made_by(
        &self,
        actor: &Actor,
        user: &UserName,
    ) -> ServiceResult<Vec<cloudbroker_store::cloud_objects::CloudObjectRow>> {
        actor.require_admin()?;
        Ok(self.store.cloud_objects_of_user(user.as_str()).await?)
    }

    /// The live addresses `user` allocated, in every project, from the records (admin).
    pub async fn addresses_made_by(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<UserResource<Address>>> {
        actor.require_admin()?;
        let rows = self.store.addresses_made_by(user.as_str()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let instance = InstanceName::parse(&r.instance).ok()?;
                Some(UserResource { project: r.project.clone(), item: Address::from_row(r, &instance) })
            })
            .collect())
    }
}
