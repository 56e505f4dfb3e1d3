//! Launches admitted together (a deployment's VMs), in the same three steps
//! as one launch: each request is planned ([`super::plan`]), all are
//! admitted in ONE store transaction ([`Provisioning::admit_many`]: the
//! same [`Admission`] checks, the same refusals and audit records as one
//! launch, all or none, with the caller's own rows written in the same
//! transaction), then each admitted row's cloud step runs later
//! ([`Provisioning::launch_admitted`]), once: whoever moved the row to
//! `requested` (a release of a held VM is a conditional update) makes the
//! call; the crash-safe cloud step is the one of [`super::cloud`], so the
//! reconciler adopts what a crash interrupted, or fails it after its grace.

use super::admit::{Admission, Admitted};
use super::request::LaunchRequest;
use super::Provisioning;
use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditTarget};
use crate::domain::{ClientToken, LaunchId, VmId, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use crate::Actor;
use cloudbroker_store::quota::{self, ExtraFn, NewVm};
use cloudbroker_store::vms::VmUpdate;
use std::sync::Arc;

/// One VM of a batch, admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AdmittedVm {
    pub launch_id: LaunchId,
    pub vm_id: VmId,
}

impl Provisioning {
    /// Plans `requests` (each of count 1) and admits them all in one
    /// transaction, recorded in `state` (`held`, or `requested`), with what
    /// `extra` makes of the VMs' ids run in the same transaction (the
    /// caller's own rows); or none, with the refusal of the first request
    /// refused and its index (`requests.len()` for `extra`'s failure).
    /// Nothing is launched here.
    pub(crate) async fn admit_many<'e>(
        &self,
        actor: &Actor,
        requests: Vec<LaunchRequest>,
        state: VmStatus,
        extra: impl FnOnce(&[AdmittedVm]) -> Option<ExtraFn<'e>>,
    ) -> Result<Vec<AdmittedVm>, (usize, ServiceError)> {
        self.admit_batch(actor, requests, state, extra, false).await
    }

    /// A dry run of [`Self::admit_many`]: the same plans and the same
    /// transaction, with every check of the real admission (so requests on
    /// one instance are counted together, as they would be), rolled back
    /// at its end; refusals are answered, neither audited nor counted.
    pub(crate) async fn check_many(&self, actor: &Actor, requests: Vec<LaunchRequest>) -> Result<(), (usize, ServiceError)> {
        let n = requests.len();
        let rollback = |_: &[AdmittedVm]| -> Option<ExtraFn<'static>> {
            Some(Box::new(|_, _| Box::pin(async { Err(cloudbroker_store::StoreError::Conflict("a dry run: rolled back".into())) })))
        };
        match self.admit_batch(actor, requests, VmStatus::Held, rollback, true).await {
            // Every check passed: the rollback is the only failure.
            Err((i, _)) if i == n => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Err((n, ServiceError::Internal("a dry run was committed".into()))),
        }
    }

    async fn admit_batch<'e>(
        &self,
        actor: &Actor,
        requests: Vec<LaunchRequest>,
        state: VmStatus,
        extra: impl FnOnce(&[AdmittedVm]) -> Option<ExtraFn<'e>>,
        dry_run: bool,
    ) -> Result<Vec<AdmittedVm>, (usize, ServiceError)> {
        let mut plans = Vec::with_capacity(requests.len());
        for (i, r) in requests.into_iter().enumerate() {
            if r.count != super::request::CountRange::exactly(1) {
                return Err((i, ServiceError::Internal("a batch admits requests of one VM each".into())));
            }
            plans.push(self.plan(actor, r).await.map_err(|e| (i, e))?);
        }
        let admissions: Vec<Admission> = plans.iter().map(Admission::of).collect();
        for (i, (plan, admission)) in plans.iter().zip(&admissions).enumerate() {
            if let Err(refusal) = admission.policies(plan) {
                return Err((i, if dry_run { refusal } else { self.policy_refused(actor, plan, refusal).await }));
            }
        }
        let launch_ids: Vec<LaunchId> = plans.iter().map(|_| LaunchId::generate()).collect();
        let tokens: Vec<ClientToken> = launch_ids.iter().map(|l| ClientToken::from_stored(l.to_string())).collect();
        let mut vms = Vec::with_capacity(plans.len());
        let mut tags = Vec::with_capacity(plans.len());
        for plan in &plans {
            let req = &plan.request;
            let t = serde_json::to_string(&req.tags.recorded()).map_err(|e| (0, ServiceError::Internal(e.to_string())))?;
            vms.push([NewVm {
                id: VmId::generate(),
                launch_index: 0,
                name: req.name.clone(),
                image: req.image.to_string(),
                image_id: plan.image.image_id.clone(),
                instance_type: plan.instance_type.clone(),
                tags: t.clone(),
                key_name: plan.key_name.clone(),
            }]);
            tags.push(t);
        }
        let spends: Vec<_> = admissions.iter().map(|a| a.budget().map(|b| b.spend_fn())).collect();
        let events: Vec<AuditEvent> = plans
            .iter()
            .zip(&launch_ids)
            .map(|(plan, l)| {
                AuditEvent::new(
                    AuditAction::VmLaunch,
                    AuditTarget::Launch { instance: plan.request.instance.as_str(), launch_id: l.as_str() },
                    AuditOutcome::Requested,
                )
                .in_project(actor.project.as_str())
            })
            .collect();
        let targets: Vec<String> = events.iter().map(|e| e.target.to_string()).collect();
        let details: Vec<String> = plans.iter().map(|p| format!("1 x {} {}", p.instance_type, p.image.image_id)).collect();
        let none: &cloudbroker_store::budgets::SpendFn<'_> = &|_| 0;
        let mut headers = Vec::with_capacity(plans.len());
        for (i, plan) in plans.iter().enumerate() {
            let admission = &admissions[i];
            let spend: &cloudbroker_store::budgets::SpendFn<'_> = match &spends[i] {
                Some(f) => f,
                None => none,
            };
            let mut audit = events[i].row(actor.name.as_str(), &targets[i]);
            audit.detail = &details[i];
            headers.push(quota::Admission {
                launch_id: &launch_ids[i],
                user: &actor.name,
                project: &actor.project,
                instance: &plan.request.instance,
                credential_id: &plan.credential_id,
                client_token: &tokens[i],
                limit: admission.quota(),
                project_limit: admission.project_quota(),
                member_check: !actor.is_admin,
                counted: &VmStatus::COUNTED,
                state,
                lease: plan.lease,
                budget: admission.budget().map(|b| b.check(spend)),
                vms: &vms[i],
                // A deployment's VMs are launched unprotected.
                termination_protection: false,
                audit: Some(audit),
            });
        }
        let admitted: Vec<AdmittedVm> = launch_ids
            .iter()
            .zip(&vms)
            .map(|(launch_id, [vm])| AdmittedVm { launch_id: launch_id.clone(), vm_id: vm.id.clone() })
            .collect();
        match self.store.admit_launches(&headers, extra(&admitted)).await {
            Ok(()) => Ok(admitted),
            Err((i, e)) if i < plans.len() => Err((i, self.refused_as(actor, &plans[i], &admissions[i], e, !dry_run).await)),
            Err((i, quota::AdmitError::Store(e))) => Err((i, e.into())),
            Err((i, e)) => Err((i, ServiceError::Internal(format!("admitting a batch: {e:?}")))),
        }
    }

    /// The cloud step of VM `vm_id`, admitted before (by [`Self::admit_many`])
    /// and moved to `requested` by the caller (who alone calls this for
    /// it): `request` is planned again (its user data, credentials and
    /// image as of now) and the cloud asked, as a launch does. A plan that
    /// fails now (an image or a credential removed since) fails the VM's
    /// record at once, with why.
    pub(crate) async fn launch_admitted(
        self: &Arc<Self>,
        actor: &Actor,
        request: LaunchRequest,
        launch_id: LaunchId,
        vm_id: VmId,
    ) -> ServiceResult<()> {
        let plan = match self.plan(actor, request).await {
            Ok(p) => p,
            Err(e) => {
                let error = e.to_string();
                if let Some(v) = self.store.get_vm(&vm_id).await? {
                    if v.cloud_id.is_none() && v.state == VmStatus::Requested {
                        self.store.update_vm(&VmUpdate { error: Some(&error), ..VmUpdate::state(&vm_id, VmStatus::Failed) }).await?;
                    }
                }
                return Err(e);
            }
        };
        self.cloud(actor, plan, Admitted { launch_id, rows: vec![vm_id] }).await
    }
}
