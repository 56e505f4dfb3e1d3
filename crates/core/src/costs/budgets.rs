//! Budgets: a monthly spend limit per user and per project on a connector
//! instance (`budget.user.monthly`, `budget.project.monthly`, overridable
//! per user or project by admins, like quotas), enforced in the admission
//! of launches (and of starts of stopped VMs), in the quota's transaction:
//! a launch is refused when what the budget's VMs spent this month, plus
//! what admitted VMs that have not run yet committed, plus the launch's
//! first billing period at its price would pass the budget. Across
//! replicas it holds as exactly as quotas do (the same locks). Running VMs
//! are never stopped by a budget.

use super::metering::{self, Period};
use super::money::{cost_of, Markup, Micros};
use super::prices::{PriceBook, PriceItem};
use crate::domain::VmStatus;
use chrono::{DateTime, Utc};
pub use cloudbroker_store::budgets::BudgetScope;
use cloudbroker_store::metering::StateChange;
use cloudbroker_store::vms::VmRow;

/// `budget.user.monthly`.
pub const USER_MONTHLY: &str = "budget.user.monthly";
/// `budget.project.monthly`.
pub const PROJECT_MONTHLY: &str = "budget.project.monthly";

pub use crate::error::BudgetRefusal;

/// What a scope's VMs spent and committed in `month` (up to `now`): each
/// VM's metered cost, a span still running counted at least its minimum
/// (it is owed as soon as the VM runs), plus, for one admitted to run that
/// is not running yet (requested, or pending after a launch or a start),
/// its next first billing period.
pub fn spent(vms: &[(VmRow, Vec<StateChange>)], book: &PriceBook, month: Period, now: DateTime<Utc>, minimum_seconds: i64) -> Micros {
    vms.iter()
        .map(|(vm, history)| {
            let schedule = book.schedule(vm.instance.as_str(), &PriceItem::Instance(vm.instance_type.clone()));
            let (markup, _) = book.markup(vm.instance.as_str());
            let mut spans = metering::running_spans(history, now);
            for s in &mut spans {
                s.open = false;
            }
            let usage = metering::bill(&spans, minimum_seconds, schedule, markup, month);
            let still_open = history.last().is_some_and(|c| c.state == VmStatus::Running);
            if matches!(vm.state, VmStatus::Requested | VmStatus::Pending) && !still_open {
                usage.cost + first_period(book, vm.instance.as_str(), &vm.instance_type, now, minimum_seconds)
            } else {
                usage.cost
            }
        })
        .sum()
}

/// The first billing period of one VM of `instance_type` at the price in
/// effect `at` (with the markup): what admitting it commits. Unpriced: 0.
pub fn first_period(book: &PriceBook, instance: &str, instance_type: &str, at: DateTime<Utc>, minimum_seconds: i64) -> Micros {
    let schedule = book.schedule(instance, &PriceItem::Instance(instance_type.to_string()));
    let (markup, _): (Markup, _) = book.markup(instance);
    schedule.iter().rev().find(|e| e.effective <= at).map_or(Micros(0), |e| cost_of(minimum_seconds, e.price).with_markup(markup))
}

/// The store's scope for a refusal's text.
pub fn scope_name(s: BudgetScope) -> &'static str {
    s.as_str()
}
