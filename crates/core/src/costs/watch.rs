//! The budget watch: a pass (the `budget-watch` worker) weighs, per
//! connector instance, what each user and team project with a budget there
//! spent and committed this month, and records each warning threshold
//! (50%, 80%, 100% of the budget) it crossed once per month: the store's
//! insert-once row decides which replica records it, and only that one
//! writes the audit record and counts the metric. The UI's banner reads
//! the rows. Budgets never stop running VMs. The same pass grows the
//! spend counters per instance and user (`cloudbroker_spend_micros_total`).

use super::budgets;
use super::metering::DEFAULT_MINIMUM_SECONDS;
use super::money::Micros;
use super::Costs;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::error::ServiceResult;
use crate::Actor;
use chrono::Datelike;
use cloudbroker_store::budgets::{BudgetAlert, BudgetScope};
use cloudbroker_store::metering::PeriodFilter;
use std::collections::BTreeMap;

/// The thresholds recorded, in percent of the budget.
pub const THRESHOLDS: [i64; 3] = [50, 80, 100];

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Budgets weighed.
    pub budgets: usize,
    /// Thresholds newly recorded by this replica.
    pub alerts: Vec<String>,
}

impl Costs {
    /// One pass of the budget watch (see the module's comment).
    pub async fn watch_budgets(&self) -> ServiceResult<WatchReport> {
        let now = self.clock.now();
        let month = super::month_to(now);
        let month_key = format!("{:04}-{:02}", now.year(), now.month());
        let snap = self.registry.snapshot();
        let mut report = WatchReport::default();
        for entry in &snap.instances {
            let instance = entry.name.as_str();
            let f = PeriodFilter {
                instance: Some(instance.to_string()),
                from: month.from.timestamp_millis(),
                to: month.to.timestamp_millis(),
                ..Default::default()
            };
            let vms = self.store.vms_with_history(&f).await?;
            self.count_spend(instance, &vms, &snap.prices, month, &month_key);
            // Owners with VMs this month, per scope.
            let mut owners: BTreeMap<(BudgetScope, String), Vec<_>> = BTreeMap::new();
            for v in vms {
                if v.0.project.as_str() != v.0.user.as_str() {
                    owners.entry((BudgetScope::Project, v.0.project.to_string())).or_default().push(v.clone());
                }
                owners.entry((BudgetScope::User, v.0.user.to_string())).or_default().push(v);
            }
            for ((scope, owner), vms) in owners {
                let param = match scope {
                    BudgetScope::User => budgets::USER_MONTHLY,
                    BudgetScope::Project => budgets::PROJECT_MONTHLY,
                };
                let amount = match self.store.budget_override(scope, &owner, instance).await? {
                    Some(a) => Micros(a),
                    None => match entry.values.get_set(param).and_then(|v| Micros::parse(v).ok()) {
                        Some(a) => a,
                        None => continue,
                    },
                };
                report.budgets += 1;
                if amount.0 <= 0 {
                    continue;
                }
                let spent = budgets::spent(&vms, &snap.prices, month, now, DEFAULT_MINIMUM_SECONDS);
                for threshold in THRESHOLDS {
                    if i128::from(spent.0) * 100 < i128::from(amount.0) * i128::from(threshold) {
                        break;
                    }
                    let alert = BudgetAlert {
                        scope: scope.as_str().into(),
                        owner: owner.clone(),
                        instance: instance.to_string(),
                        month: month_key.clone(),
                        threshold,
                        spent: spent.0,
                        budget: amount.0,
                        at: now.timestamp_millis(),
                    };
                    if !self.store.record_budget_alert(&alert).await? {
                        continue;
                    }
                    crate::metrics::budget_alert(scope.as_str(), instance, threshold);
                    let text = alert_text(&alert, snap.prices.currency());
                    let target = match scope {
                        BudgetScope::User => AuditTarget::Quota { user: &owner, instance },
                        BudgetScope::Project => AuditTarget::Project(&owner),
                    };
                    let mut event = AuditEvent::ok(AuditAction::BudgetAlert, target).detail(text.clone());
                    if scope == BudgetScope::Project {
                        event = event.in_project(&owner);
                    }
                    audit::record_by(&self.store, &Actor::system(), &event).await?;
                    tracing::warn!(scope = scope.as_str(), %owner, instance, threshold, "{text}");
                    report.alerts.push(text);
                }
            }
        }
        Ok(report)
    }

    /// The thresholds the budgets of `actor` (and of the team project it
    /// acts in) crossed this month, newest first: what the UI's banner shows.
    pub async fn alerts_for(&self, actor: &Actor) -> ServiceResult<Vec<String>> {
        let now = self.clock.now();
        let month = format!("{:04}-{:02}", now.year(), now.month());
        let currency = self.currency();
        let mut out: Vec<String> = Vec::new();
        let mut scopes = vec![(BudgetScope::User, actor.name.to_string())];
        if actor.project.as_str() != actor.name.as_str() {
            scopes.push((BudgetScope::Project, actor.project.to_string()));
        }
        for (scope, owner) in scopes {
            // The highest threshold per instance only.
            let mut seen = std::collections::BTreeSet::new();
            for a in self.store.budget_alerts(scope, &owner, &month).await? {
                if seen.insert(a.instance.clone()) {
                    out.push(alert_text(&a, &currency));
                }
            }
        }
        Ok(out)
    }
}

impl Costs {
    /// Grows the spend counters (per instance and user) by what each user's
    /// VMs on `instance` spent since the last pass (metered, with markups).
    fn count_spend(
        &self,
        instance: &str,
        vms: &[(cloudbroker_store::vms::VmRow, Vec<cloudbroker_store::metering::StateChange>)],
        book: &crate::prices::PriceBook,
        month: super::metering::Period,
        month_key: &str,
    ) {
        let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
        for (vm, history) in vms {
            let schedule = book.schedule(instance, &crate::prices::PriceItem::Instance(vm.instance_type.clone()));
            let (markup, _) = book.markup(instance);
            let spans = super::metering::running_spans(history, month.to);
            let u = super::metering::bill(&spans, DEFAULT_MINIMUM_SECONDS, schedule, markup, month);
            *per_user.entry(vm.user.to_string()).or_default() += u.cost.0;
        }
        let Ok(mut counted) = self.counted.lock() else { return };
        for (user, spent) in per_user {
            let key = (instance.to_string(), user.clone());
            let before = match counted.get(&key) {
                Some((m, v)) if m == month_key => *v,
                _ => 0,
            };
            if spent > before {
                crate::metrics::spend(instance, &user, spent - before);
            }
            counted.insert(key, (month_key.to_string(), spent.max(before)));
        }
    }
}

/// An alert in words.
fn alert_text(a: &BudgetAlert, currency: &str) -> String {
    format!(
        "the {} '{}' spent or committed {} {currency} of its {} {currency} monthly budget on '{}' ({}% reached in {})",
        a.scope,
        a.owner,
        Micros(a.spent).to_decimal(2),
        Micros(a.budget).to_decimal(2),
        a.instance,
        a.threshold,
        a.month
    )
}
