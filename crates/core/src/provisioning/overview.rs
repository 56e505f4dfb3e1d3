//! Counts for dashboards and overview pages: live VMs per user, instance
//! and state. A user sees their own counts, and a project's members (and
//! admins) the project's; all users' need an admin.

use super::Provisioning;
use crate::auth::Actor;
use crate::domain::{ProjectName, UserName, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use serde::Serialize;

/// Live VMs (see [`VmStatus::is_live`]) of one user on one instance in one state.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VmCount {
    pub user: String,
    pub instance: String,
    pub state: String,
    pub count: i64,
}

impl Provisioning {
    /// Live VM counts: `user`'s (self or admin), or everyone's (admin) when `None`.
    pub async fn vm_counts(&self, actor: &Actor, user: Option<&UserName>) -> ServiceResult<Vec<VmCount>> {
        match user {
            Some(u) => actor.require_self_or_admin(u)?,
            None => actor.require_admin()?,
        }
        let live = VmStatus::live_names();
        let rows = self.store.vm_counts(user.map(UserName::as_str), &live).await?;
        Ok(rows.into_iter().map(|r| VmCount { user: r.user, instance: r.instance, state: r.state, count: r.count }).collect())
    }

    /// Live VM counts of `project` (per member who launched them, instance
    /// and state): the project the actor acts in, or any for admins; others
    /// get NotFound.
    pub async fn project_vm_counts(&self, actor: &Actor, project: &ProjectName) -> ServiceResult<Vec<VmCount>> {
        if !actor.sees(project.as_str()) {
            return Err(ServiceError::NotFound(Resource::Project(project.clone())));
        }
        let live = VmStatus::live_names();
        let rows = self.store.project_vm_counts(project.as_str(), &live).await?;
        Ok(rows.into_iter().map(|r| VmCount { user: r.user, instance: r.instance, state: r.state, count: r.count }).collect())
    }
}
