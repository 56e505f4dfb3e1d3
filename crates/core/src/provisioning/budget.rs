//! A launch's budgets (issue 25), looked up by its plan and checked by its
//! admission in the quota's transaction (see `crate::costs::budgets` for
//! the rules): the user's budget on the instance and, for a launch in a
//! team project, the project's; each an override set by an admin, else the
//! instance's parameter (`costs::budgets::resolve`: one statement at most,
//! none while no override exists anywhere).

use super::Provisioning;
use crate::costs::budgets::{self, BudgetRefusal};
use crate::costs::metering::{Period, DEFAULT_MINIMUM_SECONDS};
use crate::costs::money::Micros;
use crate::costs::prices::PriceBook;
use crate::domain::{InstanceName, ProjectName, UserName, VmId};
use crate::error::{ServiceError, ServiceResult};
use crate::registry::Snapshot;
use crate::Actor;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_store::budgets::{BudgetCheck, BudgetScope, SpendFn};
use cloudbroker_store::metering::PeriodFilter;
use std::sync::Arc;

/// The budgets one planned launch must fit in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BudgetPlan {
    /// The user's and/or the team project's monthly budget on the instance.
    pub limits: Vec<(BudgetScope, Micros)>,
    /// What each VM of the launch commits: its first billing period.
    pub per_vm: Micros,
    /// This month, up to when the launch was planned.
    pub month: Period,
    pub book: Arc<PriceBook>,
}

impl Provisioning {
    /// The budgets a VM of `instance_type` on `instance`, by `user` in
    /// `project`, must fit in (`None`: no budget applies).
    pub(super) async fn budget_plan(
        &self,
        snap: &Snapshot,
        values: &ParamValues,
        (user, project): (&UserName, &ProjectName),
        instance: &InstanceName,
        instance_type: &str,
        now: DateTime<Utc>,
    ) -> ServiceResult<Option<BudgetPlan>> {
        let mut owners = vec![(BudgetScope::User, user.as_str())];
        if project.as_str() != user.as_str() {
            owners.push((BudgetScope::Project, project.as_str()));
        }
        let found = budgets::resolve(&self.store, &self.budget_overrides, instance.as_str(), Some(values), &owners).await?;
        let limits: Vec<(BudgetScope, Micros)> =
            owners.iter().zip(found).filter_map(|((scope, _), b)| b.map(|(amount, _)| (*scope, amount))).collect();
        if limits.is_empty() {
            return Ok(None);
        }
        let book = snap.prices.clone();
        let per_vm = budgets::first_period(&book, instance.as_str(), instance_type, now, DEFAULT_MINIMUM_SECONDS);
        Ok(Some(BudgetPlan { limits, per_vm, month: crate::costs::month_to(now), book }))
    }
}

impl BudgetPlan {
    /// What the admission's transaction runs: the limits and how to weigh spend.
    pub(super) fn check<'a>(&self, spend: &'a SpendFn<'a>) -> BudgetCheck<'a> {
        BudgetCheck {
            limits: self.limits.iter().map(|(s, m)| (*s, m.0)).collect(),
            from: self.month.from.timestamp_millis(),
            now: self.month.to.timestamp_millis(),
            per_vm: self.per_vm.0,
            spend,
        }
    }

    /// The spend of a scope's VMs this month, as the admission weighs it.
    pub(super) fn spend_fn(&self) -> impl Fn(&[cloudbroker_store::metering::VmHistory]) -> i64 + Send + Sync {
        let (book, month) = (self.book.clone(), self.month);
        move |vms| budgets::spent(vms, &book, month, month.to, DEFAULT_MINIMUM_SECONDS).0
    }

    /// The refusal of a launch of at least `min` VMs by `scope`'s budget.
    pub(super) fn refusal(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        scope: BudgetScope,
        budget: i64,
        spent: i64,
        min: u32,
    ) -> ServiceError {
        self.refusal_of((&actor.name, &actor.project), instance, scope, budget, spent, min)
    }

    /// [`Self::refusal`] for `user` in `project`.
    fn refusal_of(
        &self,
        (user, project): (&UserName, &ProjectName),
        instance: &InstanceName,
        scope: BudgetScope,
        budget: i64,
        spent: i64,
        min: u32,
    ) -> ServiceError {
        let owner = match scope {
            BudgetScope::User => user.to_string(),
            BudgetScope::Project => project.to_string(),
        };
        ServiceError::BudgetExceeded(Box::new(BudgetRefusal {
            scope: budgets::scope_name(scope),
            owner,
            instance: instance.to_string(),
            currency: self.book.currency().to_string(),
            budget: Micros(budget),
            spent: Micros(spent),
            requested: Micros(self.per_vm.0.saturating_mul(i64::from(min))),
            action: "launch",
        }))
    }

    /// A dry run's preview: the same weighing, read outside any transaction.
    pub(super) async fn preview(&self, p: &Provisioning, actor: &Actor, instance: &InstanceName, min: u32) -> ServiceResult<()> {
        let spend = self.spend_fn();
        for &(scope, budget) in &self.limits {
            let (user, project) = match scope {
                BudgetScope::User => (Some(actor.name.to_string()), None),
                BudgetScope::Project => (None, Some(actor.project.to_string())),
            };
            let f = PeriodFilter {
                user,
                project,
                instance: Some(instance.to_string()),
                from: self.month.from.timestamp_millis(),
                to: self.month.to.timestamp_millis(),
            };
            let spent = spend(&p.store.vms_with_history(&f).await?);
            if spent.saturating_add(self.per_vm.0.saturating_mul(i64::from(min))) > budget.0 {
                return Err(self.refusal(actor, instance, scope, budget.0, spent, min));
            }
        }
        Ok(())
    }
}

impl Provisioning {
    /// Admits the start of stopped VM `vm` (of `user` in `project`, with
    /// `instance_type` on `instance`) under its budgets, as a launch is
    /// admitted: `Ok(true)` when no budget applies or it fits (then the VM
    /// is marked pending), `Ok(false)` when the VM is no longer stopped.
    pub(super) async fn admit_start(
        &self,
        vm: &VmId,
        (user, project): (&UserName, &ProjectName),
        instance: &InstanceName,
        instance_type: &str,
    ) -> ServiceResult<bool> {
        let snap = self.registry.snapshot();
        let Some(entry) = snap.instance(instance.as_str()) else { return Ok(true) };
        let Some(plan) = self.budget_plan(&snap, &entry.values, (user, project), instance, instance_type, self.clock.now()).await? else {
            return Ok(true);
        };
        let spend = plan.spend_fn();
        match self.store.admit_start(vm, user.as_str(), project.as_str(), instance.as_str(), &plan.check(&spend)).await {
            Ok(started) => Ok(started),
            Err(cloudbroker_store::quota::AdmitError::Budget { scope, budget, spent }) => {
                let e = plan.refusal_of((user, project), instance, scope, budget, spent, 1);
                // A start, not a launch: say so.
                Err(match e {
                    ServiceError::BudgetExceeded(mut r) => {
                        r.action = "start";
                        ServiceError::BudgetExceeded(r)
                    }
                    other => other,
                })
            }
            Err(cloudbroker_store::quota::AdmitError::Store(e)) => Err(e.into()),
            Err(other) => Err(ServiceError::Internal(format!("admitting a start: {other:?}"))),
        }
    }
}
