//! The budget watch: a pass (the `budget-watch` worker) weighs, per
//! connector instance, what each user and team project with a budget there
//! spent and committed this month, and records each warning threshold
//! (`budget.thresholds`, default 50%, 80%, 100% of the budget) it crossed
//! once per month: the store's insert-once row decides which replica
//! records it, and only that one writes the audit record and counts the
//! metric. One replica at a time does the pass: the one holding the named
//! lease [`WATCH_LEASE`] (renewed each pass, taken over by another replica
//! when it expires); the others skip it. The UI's banner reads the rows
//! ([`Costs::budget_alerts_for`], reused for [`ALERTS_TTL`] per owner and
//! month). Budgets never stop running VMs.
//!
//! The same pass grows the spend counters per instance and user
//! (`cloudbroker_spend_micros_total`), so only the lease holder counts:
//! each replica's counter is the spend this process counted while it held
//! the lease (a replica that takes the lease over first counts the month
//! so far it had not counted). Across replicas, read it with
//! `max by (instance, user)`, not `sum`.

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

/// The thresholds recorded when an instance sets no `budget.thresholds`,
/// in percent of the budget.
pub const THRESHOLDS: [i64; 3] = budgets::DEFAULT_THRESHOLDS;

/// The lease one replica holds while it does the watch's passes.
pub const WATCH_LEASE: &str = "budget-watch";

/// How long the lease lives without renewal: three passes, so a replica
/// that died hands the watch over within three minutes.
pub const WATCH_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(180);

/// How long a banner's alerts are reused per owner and month.
pub const ALERTS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A threshold one budget crossed this month, as the banner and the API show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AlertView {
    /// `user` or `project`.
    pub scope: String,
    pub owner: String,
    pub instance: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The threshold crossed, in percent of the budget.
    pub threshold: i64,
    /// Spent and committed when it was crossed.
    pub spent: Micros,
    pub budget: Micros,
    pub currency: String,
    /// The alert in words.
    pub text: String,
}

impl AlertView {
    /// Whether the budget is reached (100% or more) rather than approached.
    pub fn reached(&self) -> bool {
        self.threshold >= 100
    }
}

/// This month's alerts per (scope, owner, month), with when they were read.
pub(super) type AlertCache =
    std::sync::Mutex<std::collections::HashMap<(BudgetScope, String, String), (std::time::Instant, Vec<BudgetAlert>)>>;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Budgets weighed.
    pub budgets: usize,
    /// Thresholds newly recorded by this replica.
    pub alerts: Vec<String>,
    /// Whether this replica did the pass (false: another holds the lease).
    pub ran: bool,
}

impl Costs {
    /// One pass of the budget watch (see the module's comment), if this
    /// replica holds (or takes) the watch's lease; else nothing.
    pub async fn watch_budgets(&self) -> ServiceResult<WatchReport> {
        let ttl = i64::try_from(WATCH_LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
        if !self.store.try_lease(WATCH_LEASE, &self.holder, ttl).await? {
            return Ok(WatchReport::default());
        }
        let mut report = self.watch_pass().await?;
        report.ran = true;
        Ok(report)
    }

    async fn watch_pass(&self) -> ServiceResult<WatchReport> {
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
                if v.vm.project.as_str() != v.vm.user.as_str() {
                    owners.entry((BudgetScope::Project, v.vm.project.to_string())).or_default().push(v.clone());
                }
                owners.entry((BudgetScope::User, v.vm.user.to_string())).or_default().push(v);
            }
            let keys: Vec<(BudgetScope, &str)> = owners.keys().map(|(s, o)| (*s, o.as_str())).collect();
            let amounts = budgets::resolve(&self.store, &self.overrides, instance, Some(&entry.values), &keys).await?;
            let thresholds = budgets::thresholds(&entry.values);
            for (((scope, owner), vms), amount) in owners.into_iter().zip(amounts) {
                let Some((amount, _)) = amount else { continue };
                report.budgets += 1;
                if amount.0 <= 0 {
                    continue;
                }
                let spent = budgets::spent(&vms, &snap.prices, month, now, DEFAULT_MINIMUM_SECONDS);
                for &threshold in &thresholds {
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
                    self.forget_alerts(scope, &owner, &month_key);
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
    /// acts in) crossed this month, newest first, the highest per instance
    /// only: what the UI's banner shows (its colour from the threshold).
    /// Read on every page: each owner's alerts of the month are reused for
    /// [`ALERTS_TTL`] (an alert this replica records is shown at once;
    /// one recorded by another replica within that time).
    pub async fn budget_alerts_for(&self, actor: &Actor) -> ServiceResult<Vec<AlertView>> {
        let now = self.clock.now();
        let month = format!("{:04}-{:02}", now.year(), now.month());
        let currency = self.currency();
        let mut out = Vec::new();
        let mut scopes = vec![(BudgetScope::User, actor.name.to_string())];
        if actor.project.as_str() != actor.name.as_str() {
            scopes.push((BudgetScope::Project, actor.project.to_string()));
        }
        for (scope, owner) in scopes {
            // The highest threshold per instance only.
            let mut seen = std::collections::BTreeSet::new();
            for a in self.month_alerts(scope, &owner, &month).await? {
                if seen.insert(a.instance.clone()) {
                    out.push(AlertView {
                        text: alert_text(&a, &currency),
                        scope: a.scope,
                        owner: a.owner,
                        instance: a.instance,
                        month: a.month,
                        threshold: a.threshold,
                        spent: Micros(a.spent),
                        budget: Micros(a.budget),
                        currency: currency.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// [`Costs::budget_alerts_for`] in words.
    pub async fn alerts_for(&self, actor: &Actor) -> ServiceResult<Vec<String>> {
        Ok(self.budget_alerts_for(actor).await?.into_iter().map(|a| a.text).collect())
    }

    /// `owner`'s alerts of `month`, newest first, reused for [`ALERTS_TTL`].
    async fn month_alerts(&self, scope: BudgetScope, owner: &str, month: &str) -> ServiceResult<Vec<BudgetAlert>> {
        let key = (scope, owner.to_string(), month.to_string());
        if let Some((at, alerts)) = self.alerts.lock().ok().and_then(|c| c.get(&key).cloned()) {
            if at.elapsed() < ALERTS_TTL {
                return Ok(alerts);
            }
        }
        let alerts = self.store.budget_alerts(scope, owner, month).await?;
        if let Ok(mut c) = self.alerts.lock() {
            // Bounded: stale entries go when the cache grows large.
            if c.len() >= 10_000 {
                c.retain(|_, (at, _)| at.elapsed() < ALERTS_TTL);
            }
            c.insert(key, (std::time::Instant::now(), alerts.clone()));
        }
        Ok(alerts)
    }

    /// Drops `owner`'s cached alerts of `month` (this replica recorded one).
    fn forget_alerts(&self, scope: BudgetScope, owner: &str, month: &str) {
        if let Ok(mut c) = self.alerts.lock() {
            c.remove(&(scope, owner.to_string(), month.to_string()));
        }
    }
}

impl Costs {
    /// Grows the spend counters (per instance and user) by what each user's
    /// VMs on `instance` spent since the last pass (metered, with markups).
    fn count_spend(
        &self,
        instance: &str,
        vms: &[cloudbroker_store::metering::VmHistory],
        book: &crate::prices::PriceBook,
        month: super::metering::Period,
        month_key: &str,
    ) {
        let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
        for h in vms {
            let spans = super::metering::running_spans(&h.states, month.to);
            let rate = |t: &str| super::metering::vm_rate(book, instance, t, DEFAULT_MINIMUM_SECONDS);
            let u = super::metering::bill_typed(&spans, &h.types, &h.vm.instance_type, month, rate);
            *per_user.entry(h.vm.user.to_string()).or_default() += u.cost.0;
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
