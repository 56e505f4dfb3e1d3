//! A launch's admission: the second of its three steps (plan, admit,
//! cloud). An [`Admission`] is the list of checks a planned launch must
//! pass: the instance's launch policies first, then the project's own
//! (`policy.rs`, `project_policy.rs`: read from the plan, nothing counted), then the quotas (the user's, then the
//! project's); budget checks plug in here, as further [`Check`]s. A launch
//! and its dry run refuse alike, whichever front asked.
//!
//! Admitting records the launch's VMs (status `requested`, in the actor's
//! project) in the same transaction that checks both quotas, so concurrent
//! launches on any replica sharing the database never push a user or a
//! project past its quota, and a member removed (or made a viewer) on
//! another replica, whose membership this one still caches, records
//! nothing; a count range (`min..=max`) is admitted there
//! once, with as many VMs as both leave room for, so a launch is never
//! tried twice. A dry run previews the same checks by reading, and
//! reserves nothing. A client token is the user's: a replay answers with
//! the first launch's VMs, unless that launch was in another project
//! (refused: a conflict).

use super::plan::LaunchPlan;
use super::policy::{Asked, LaunchPolicy};
use super::{Provisioning, Vm};
use crate::audit::{self, AuditAction, AuditEvent, AuditOutcome, AuditTarget};
use crate::domain::{ClientToken, LaunchId, VmId, VmStatus};
use crate::error::{QuotaScope, ServiceError, ServiceResult};
use crate::Actor;
use cloudbroker_store::quota::{self, AdmitError, NewVm, QuotaKind};
use cloudbroker_store::vms::VmFilter;

/// One check a launch must pass to be admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// The instance's launch policies, or its project's own on the
    /// instance (unless the actor is exempt): the planned instance type,
    /// the image asked for, the request's tags, its count range's most and
    /// its lease.
    Policy(LaunchPolicy),
    /// Under `quota.enable`: the user's VMs on the instance in
    /// [`VmStatus::COUNTED`] statuses, plus at least the launch's
    /// least count, stay within `limit`. Enforced in the admission's
    /// transaction (exact across replicas).
    Quota { limit: i64 },
    /// Under `quota.enable`, when the project has a quota on the instance:
    /// the same, counting the project's VMs (every member's).
    ProjectQuota { limit: i64 },
    /// The user's (and a team project's) monthly budget on the instance:
    /// spent and committed this month, plus the launch's least count's
    /// first billing periods, stay within it. Enforced in the admission's
    /// transaction, after the quotas, under the same locks (`budget.rs`).
    Budget(super::budget::BudgetPlan),
}

/// The checks of one planned launch, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Admission {
    checks: Vec<Check>,
}

impl Admission {
    /// The checks `plan` must pass.
    pub(super) fn of(plan: &LaunchPlan) -> Self {
        let mut checks = Vec::new();
        // The instance's policies, then the project's own (only tighter: both must pass).
        for policy in plan.policy.iter().chain(&plan.project_policy) {
            checks.push(Check::Policy(policy.clone()));
        }
        if let Some(limit) = plan.limits.quota {
            checks.push(Check::Quota { limit });
        }
        if let Some(limit) = plan.limits.project_quota {
            checks.push(Check::ProjectQuota { limit });
        }
        if let Some(b) = &plan.budget {
            checks.push(Check::Budget(b.clone()));
        }
        Self { checks }
    }

    /// The user quota enforced in the admission's transaction, if any.
    pub(super) fn quota(&self) -> Option<i64> {
        self.checks.iter().find_map(|c| match c {
            Check::Quota { limit } => Some(*limit),
            _ => None,
        })
    }

    /// The first launch policy `plan` breaks, as its refusal.
    pub(super) fn policies(&self, plan: &LaunchPlan) -> ServiceResult<()> {
        let req = &plan.request;
        let asked = Asked {
            instance_type: &plan.instance_type,
            image: req.image.as_str(),
            native: !plan.image.from_image.is_empty(),
            tags: &req.tags.user,
            name: &req.name,
            count_max: req.count.max,
            lease: plan.lease_span,
        };
        for check in &self.checks {
            if let Check::Policy(p) = check {
                p.check(&req.instance, &asked)?;
            }
        }
        Ok(())
    }

    /// The budgets enforced in the admission's transaction, if any.
    pub(super) fn budget(&self) -> Option<&super::budget::BudgetPlan> {
        self.checks.iter().find_map(|c| match c {
            Check::Budget(b) => Some(b),
            _ => None,
        })
    }

    /// The project quota enforced in the admission's transaction, if any.
    pub(super) fn project_quota(&self) -> Option<i64> {
        self.checks.iter().find_map(|c| match c {
            Check::ProjectQuota { limit } => Some(*limit),
            _ => None,
        })
    }
}

/// A launch admitted: its VMs are recorded, status `requested`.
pub(super) struct Admitted {
    pub launch_id: LaunchId,
    /// The records' ids, by launch index.
    pub rows: Vec<VmId>,
}

/// What an admission did.
pub(super) enum AdmitOutcome {
    Admitted(Admitted),
    /// The client token was seen before: the first launch's VMs.
    Replayed(Vec<Vm>),
}

/// The scope of a refusal by the store's quota `which`, for a launch in `actor`'s project.
fn scope(which: QuotaKind, actor: &Actor) -> QuotaScope {
    match which {
        QuotaKind::User => QuotaScope::User,
        QuotaKind::Project => QuotaScope::Project(actor.project.clone()),
    }
}

impl Provisioning {
    /// The VMs an earlier launch by the actor with this client token made,
    /// if any. Client tokens are the user's: one first used in another
    /// project is a conflict, never that project's VMs.
    async fn by_client_token(&self, actor: &Actor, token: &ClientToken) -> ServiceResult<Vec<Vm>> {
        let rows = self
            .store
            .list_vms(&VmFilter { user: Some(actor.name.to_string()), client_token: Some(token.to_string()), ..VmFilter::default() })
            .await?;
        if let Some(other) = rows.iter().find(|r| r.project != actor.project) {
            return Err(ServiceError::Conflict(format!(
                "client token '{token}' was already used for a launch in project '{}'; use another token in project '{}'",
                other.project, actor.project
            )));
        }
        self.vms(rows)
    }

    /// Whether `plan` would be admitted now: each check read without
    /// reserving anything (a dry run).
    pub(super) async fn preview(&self, actor: &Actor, plan: &LaunchPlan, admission: &Admission) -> ServiceResult<()> {
        admission.policies(plan)?;
        let requested = i64::from(plan.request.count.min);
        for check in &admission.checks {
            let (scope, limit, current) = match check {
                Check::Policy(_) => continue,
                Check::Budget(b) => {
                    b.preview(self, actor, &plan.request.instance, plan.request.count.min).await?;
                    continue;
                }
                Check::Quota { limit } => (QuotaScope::User, *limit, self.usage(&actor.name, &plan.request.instance).await?),
                Check::ProjectQuota { limit } => {
                    (QuotaScope::Project(actor.project.clone()), *limit, self.project_usage(&actor.project, &plan.request.instance).await?)
                }
            };
            if limit - current < requested {
                return Err(ServiceError::QuotaExceeded { scope, quota: limit, current, requested });
            }
        }
        Ok(())
    }

    /// Admits `plan`: its checks pass and its VMs are recorded in one
    /// transaction, as many as fit in its count range; or it is refused
    /// with nothing recorded. A client token seen before (found when the
    /// insert meets its unique index, or, at a full quota, before
    /// refusing) answers with the first launch's VMs, so the common case
    /// (a new token) costs no lookup.
    pub(super) async fn admit(&self, actor: &Actor, plan: &LaunchPlan, admission: &Admission) -> ServiceResult<AdmitOutcome> {
        let req = &plan.request;
        if let Err(refusal) = admission.policies(plan) {
            // A retry of a launch admitted before the policy was tightened.
            if let Some(t) = &req.client_token {
                let existing = self.by_client_token(actor, t).await?;
                if !existing.is_empty() {
                    return Ok(AdmitOutcome::Replayed(existing));
                }
            }
            return Err(self.policy_refused(actor, plan, refusal).await);
        }
        let tags_json = serde_json::to_string(&req.tags.recorded()).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let launch_id = LaunchId::generate();
        let client_token = req.client_token.clone().unwrap_or_else(|| ClientToken::from_stored(launch_id.to_string()));
        let audit_event = AuditEvent::new(
            AuditAction::VmLaunch,
            AuditTarget::Launch { instance: req.instance.as_str(), launch_id: launch_id.as_str() },
            AuditOutcome::Requested,
        );
        let audit_event = audit_event.in_project(actor.project.as_str());
        let audit_target = audit_event.target.to_string();
        let budget = admission.budget();
        let spend = budget.map(|b| b.spend_fn());
        let spend: &cloudbroker_store::budgets::SpendFn<'_> = match &spend {
            Some(f) => f,
            None => &|_| 0,
        };
        let header = quota::Admission {
            launch_id: &launch_id,
            user: &actor.name,
            project: &actor.project,
            instance: &req.instance,
            credential_id: &plan.credential_id,
            client_token: &client_token,
            limit: admission.quota(),
            project_limit: admission.project_quota(),
            member_check: !actor.is_admin,
            counted: &VmStatus::COUNTED,
            state: VmStatus::Requested,
            lease: plan.lease,
            budget: budget.as_ref().map(|b| b.check(&spend)),
            vms: &[],
            termination_protection: req.termination_protection,
            audit: Some(audit_event.row(actor.name.as_str(), &audit_target)),
        };
        // The records, built for the count the transaction admits (a launch
        // of several VMs numbers their names).
        let mut ids = Vec::new();
        let rows = |n: usize| {
            let vms: Vec<NewVm> = (0..n)
                .map(|i| NewVm {
                    id: VmId::generate(),
                    launch_index: i as i64,
                    name: if n > 1 && !req.name.is_empty() { format!("{}-{i}", req.name) } else { req.name.clone() },
                    image: req.image.to_string(),
                    image_id: plan.image.image_id.clone(),
                    instance_type: plan.instance_type.clone(),
                    tags: tags_json.clone(),
                    key_name: plan.key_name.clone(),
                })
                .collect();
            ids = vms.iter().map(|v| v.id.clone()).collect();
            (vms, format!("{n} x {} {}", plan.instance_type, plan.image.image_id))
        };
        let (min, max) = (req.count.min as usize, req.count.max as usize);
        let admitted = self.store.admit_launch_range(&header, min, max, rows).await;
        match admitted {
            Ok(_) => Ok(AdmitOutcome::Admitted(Admitted { launch_id, rows: ids })),
            Err(AdmitError::Store(e)) if e.is_unique_violation() || matches!(e, cloudbroker_store::StoreError::Conflict(_)) => {
                // The same client token raced with another request: answer with its VMs.
                Ok(AdmitOutcome::Replayed(self.by_client_token(actor, &client_token).await?))
            }
            Err(e) => {
                // A retry of an admitted launch (its VMs count against the quota and budget now).
                if matches!(e, AdmitError::Quota { .. } | AdmitError::Budget { .. }) {
                    if let Some(t) = &req.client_token {
                        let existing = self.by_client_token(actor, t).await?;
                        if !existing.is_empty() {
                            return Ok(AdmitOutcome::Replayed(existing));
                        }
                    }
                }
                Err(self.refused(actor, plan, admission, e).await)
            }
        }
    }

    /// `refusal`, once `event` is recorded (or the store's error recording it).
    async fn audited(&self, actor: &Actor, refusal: ServiceError, event: &AuditEvent<'_>) -> ServiceError {
        match audit::record_by(&self.store, actor, event).await {
            Ok(()) => refusal,
            Err(e) => e.into(),
        }
    }

    /// The refusal of `plan` by its launch policy (`refusal`), audited.
    pub(super) async fn policy_refused(&self, actor: &Actor, plan: &LaunchPlan, refusal: ServiceError) -> ServiceError {
        let event = AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Instance(plan.request.instance.as_str()), AuditOutcome::Rejected)
            .detail(refusal.to_string());
        match audit::record_by(&self.store, actor, &event).await {
            Ok(()) => refusal,
            Err(e) => e.into(),
        }
    }

    /// The refusal of `plan` by the store's admission (`e`), audited where
    /// a refusal is: what every admission (a launch, a deployment's VMs)
    /// answers.
    pub(super) async fn refused(&self, actor: &Actor, plan: &LaunchPlan, admission: &Admission, e: AdmitError) -> ServiceError {
        self.refused_as(actor, plan, admission, e, true).await
    }

    /// As [`Self::refused`]; `audit` false for a dry run (a preview: the
    /// refusal is answered, not recorded nor counted).
    pub(super) async fn refused_as(
        &self,
        actor: &Actor,
        plan: &LaunchPlan,
        admission: &Admission,
        e: AdmitError,
        audit: bool,
    ) -> ServiceError {
        let req = &plan.request;
        match e {
            AdmitError::Quota { which, limit, current, requested } if !audit => {
                ServiceError::QuotaExceeded { scope: scope(which, actor), quota: limit, current, requested }
            }
            AdmitError::Budget { scope, budget: limit, spent } if !audit => match admission.budget() {
                Some(b) => b.refusal(actor, &req.instance, scope, limit, spent, req.count.min),
                None => ServiceError::Internal("a budget refused a launch that had none".into()),
            },
            AdmitError::Quota { which, limit, current, requested } => {
                crate::metrics::quota_rejected(req.instance.as_str());
                let scope = scope(which, actor);
                let detail = match &scope {
                    QuotaScope::User => format!("quota={limit}, current={current}, requested={requested}"),
                    QuotaScope::Project(p) => format!("project {p} quota={limit}, current={current}, requested={requested}"),
                };
                let event = AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Instance(req.instance.as_str()), AuditOutcome::OverQuota)
                    .detail(detail);
                self.audited(actor, ServiceError::QuotaExceeded { scope, quota: limit, current, requested }, &event).await
            }
            AdmitError::Budget { scope, budget: limit, spent } => {
                let refusal = match admission.budget() {
                    Some(b) => b.refusal(actor, &req.instance, scope, limit, spent, req.count.min),
                    None => ServiceError::Internal("a budget refused a launch that had none".into()),
                };
                let event = AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Instance(req.instance.as_str()), AuditOutcome::Rejected)
                    .detail(refusal.to_string());
                self.audited(actor, refusal, &event).await
            }
            // Removed from the project since the actor entered it (on another
            // replica, within its membership cache's lifetime): as for a
            // project one is no member of.
            AdmitError::NotActing(None) => ServiceError::NotFound(crate::error::Resource::Project(actor.project.clone())),
            // Made a viewer since.
            AdmitError::NotActing(Some(role)) => ServiceError::Forbidden(format!(
                "you are a {role} of project '{}': viewers read the project's resources but cannot change them",
                actor.project
            )),
            // The project was deleted since the actor entered it.
            AdmitError::Store(cloudbroker_store::StoreError::NotFound(_)) => {
                ServiceError::NotFound(crate::error::Resource::Project(actor.project.clone()))
            }
            AdmitError::Store(e) => e.into(),
        }
    }
}
