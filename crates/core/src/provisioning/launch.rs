//! Launching VMs, in three steps: [`super::plan`] (the request's fields,
//! then everything the launch goes by, looked up once), [`super::admit`]
//! (the admission's checks: the instance's launch policies, then the
//! quotas, with the VMs recorded in the same transaction) and
//! [`super::cloud`] (the crash-safe cloud call). A dry run
//! ([`Provisioning::check_launch`]) plans and previews the admission,
//! without the cloud step.

use super::admit::{Admission, AdmitOutcome};
use super::request::LaunchRequest;
use super::{Provisioning, Vm};
use crate::error::ServiceResult;
use crate::Actor;
use std::sync::Arc;

/// What a launch did.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchOutcome {
    /// False when the client token was seen before: `vms` are the first launch's.
    pub created: bool,
    pub vms: Vec<Vm>,
}

impl Provisioning {
    /// Launches VMs: as many as the request's count range and the
    /// admission allow, admitted once.
    pub async fn launch(self: &Arc<Self>, actor: &Actor, request: LaunchRequest) -> ServiceResult<LaunchOutcome> {
        let plan = self.plan(actor, request).await?;
        let admission = Admission::of(&plan);
        let admitted = match self.admit(actor, &plan, &admission).await? {
            AdmitOutcome::Admitted(a) => a,
            AdmitOutcome::Replayed(vms) => return Ok(LaunchOutcome { created: false, vms }),
        };
        let launch_id = admitted.launch_id.clone();
        self.cloud(actor, plan, admitted).await?;
        Ok(LaunchOutcome { created: true, vms: self.launch_vms(&launch_id).await? })
    }

    /// Whether `request` would be admitted now (EC2's `DryRun`): the same
    /// plan and admission checks as [`Self::launch`], read without
    /// reserving anything; no cloud step.
    pub async fn check_launch(&self, actor: &Actor, request: LaunchRequest) -> ServiceResult<()> {
        let plan = self.plan(actor, request).await?;
        self.preview(actor, &plan, &Admission::of(&plan)).await
    }
}
