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
use cloudbroker_connector_api::params::ParamValues;
pub use cloudbroker_store::budgets::BudgetScope;
use cloudbroker_store::metering::VmHistory;
use cloudbroker_store::{Store, StoreError};

/// `budget.user.monthly`.
pub const USER_MONTHLY: &str = "budget.user.monthly";
/// `budget.project.monthly`.
pub const PROJECT_MONTHLY: &str = "budget.project.monthly";
/// `budget.thresholds`: the warning thresholds, in percent of the budget.
pub const THRESHOLDS: &str = "budget.thresholds";
/// The thresholds when `budget.thresholds` is unset (or unreadable).
pub const DEFAULT_THRESHOLDS: [i64; 3] = [50, 80, 100];

/// The thresholds of an instance (`budget.thresholds`: comma-separated
/// whole percents, each 1..=1000), ascending, each once; the default
/// (50, 80, 100) when unset. The configuration checked the value when it
/// was loaded; an unreadable item is skipped here.
pub fn thresholds(values: &ParamValues) -> Vec<i64> {
    let Some(raw) = values.get_set(THRESHOLDS) else { return DEFAULT_THRESHOLDS.to_vec() };
    let mut out: Vec<i64> =
        raw.split(',').filter_map(|p| p.trim().trim_end_matches('%').parse::<i64>().ok()).filter(|p| (1..=1000).contains(p)).collect();
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        DEFAULT_THRESHOLDS.to_vec()
    } else {
        out
    }
}

/// The parameter holding a scope's default budget.
pub fn param(scope: BudgetScope) -> &'static str {
    match scope {
        BudgetScope::User => USER_MONTHLY,
        BudgetScope::Project => PROJECT_MONTHLY,
    }
}

/// Where a budget comes from: an override an admin set for its owner.
pub const FROM_OVERRIDE: &str = "override";
/// Where a budget comes from: the instance's parameter.
pub const FROM_INSTANCE: &str = "instance";

/// Whether any budget override exists, as this replica last read it: so a
/// launch looks none up while there are none (most brokers). Shared by the
/// services of one broker (the launch plan, the budget pages, the watch).
///
/// Correctness across replicas: a replica that knows of overrides looks
/// them up on every launch (one statement for the user's and the project's),
/// so their amounts bind at once everywhere. Only the first override set
/// while a replica believes there are none is seen late there: this
/// replica forgets its belief when it sets or removes one itself
/// ([`Overrides::changed`]), every other replica re-reads the count when
/// its belief is older than `ttl`, the configuration poll interval
/// (`CONFIG_POLL_SECS`, 5 s by default): an override set on replica A
/// binds launches on replica B within that interval at most, as a
/// parameter changed on A does.
#[derive(Debug)]
pub struct Overrides {
    known: std::sync::Mutex<Option<(bool, std::time::Instant)>>,
    ttl: std::time::Duration,
    /// Statements run against `budget_overrides` (count and lookups).
    reads: std::sync::atomic::AtomicU64,
}

impl Default for Overrides {
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(5))
    }
}

impl Overrides {
    /// A cache whose belief lives `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self { known: std::sync::Mutex::new(None), ttl, reads: Default::default() }
    }

    /// This replica set or removed an override: the next lookup re-reads.
    pub fn changed(&self) {
        if let Ok(mut k) = self.known.lock() {
            *k = None;
        }
    }

    /// How many statements this cache ran against the overrides (tests).
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn read(&self) {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether any override may exist (re-read when the belief is stale).
    async fn any(&self, store: &Store) -> Result<bool, StoreError> {
        if let Some((any, at)) = self.known.lock().ok().and_then(|k| *k) {
            if at.elapsed() < self.ttl {
                return Ok(any);
            }
        }
        self.read();
        let any = store.budget_override_count().await? > 0;
        if let Ok(mut k) = self.known.lock() {
            *k = Some((any, std::time::Instant::now()));
        }
        Ok(any)
    }
}

/// The budgets of `owners` on `instance`, in their order: each owner's
/// override (set by an admin), else the instance's parameter (`values`;
/// `None`: an instance no longer declared, no default), with where it came
/// from ([`FROM_OVERRIDE`], [`FROM_INSTANCE`]); `None`: no budget. The one
/// rule for the launch plan, the budget pages and the watch: at most one
/// statement, none while no override exists ([`Overrides`]).
pub async fn resolve(
    store: &Store,
    overrides: &Overrides,
    instance: &str,
    values: Option<&ParamValues>,
    owners: &[(BudgetScope, &str)],
) -> Result<Vec<Option<(Micros, &'static str)>>, StoreError> {
    let found = if !owners.is_empty() && overrides.any(store).await? {
        overrides.read();
        store.budget_overrides_on(instance, owners).await?
    } else {
        Vec::new()
    };
    Ok(owners
        .iter()
        .map(|(scope, owner)| {
            let over = found.iter().find(|(s, o, _)| s == scope && o == owner).map(|(_, _, a)| (Micros(*a), FROM_OVERRIDE));
            over.or_else(|| values.and_then(|v| v.get_set(param(*scope))).and_then(|v| Micros::parse(v).ok()).map(|a| (a, FROM_INSTANCE)))
        })
        .collect())
}

pub use crate::error::BudgetRefusal;

/// What a scope's VMs spent and committed in `month` (up to `now`): each
/// VM's metered cost (each span priced as the type the VM ran as then), a
/// span still running counted at least its minimum (it is owed as soon as
/// the VM runs), plus, for one admitted to run that is not running yet
/// (requested or held, or pending after a launch or a start), its next
/// first billing period at its current type.
pub fn spent(vms: &[VmHistory], book: &PriceBook, month: Period, now: DateTime<Utc>, minimum_seconds: i64) -> Micros {
    vms.iter()
        .map(|VmHistory { vm, states, types }| {
            let mut spans = metering::running_spans(states, now);
            for s in &mut spans {
                s.open = false;
            }
            let instance = vm.instance.as_str();
            let usage =
                metering::bill_typed(&spans, types, &vm.instance_type, month, |t| metering::vm_rate(book, instance, t, minimum_seconds));
            let still_open = states.last().is_some_and(|c| c.state == VmStatus::Running);
            if matches!(vm.state, VmStatus::Requested | VmStatus::Held | VmStatus::Pending) && !still_open {
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
