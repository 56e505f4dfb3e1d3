//! Cost (issue 25), first part: price lists with markups read from
//! `connectors.d/prices/*.conf` (reloaded with the rest of the
//! configuration), and metering of VMs from their recorded state history
//! (migration 0024), to the second, by the broker's one clock. A VM's cost
//! is computed from the history alone: exact across restarts, crashes and
//! replicas, since every state change any of them records is appended in
//! the same transaction.
//!
//! `money.rs` holds the integer amounts, `prices.rs` the price book,
//! `metering.rs` the billing of a history. Users see costs with the markup;
//! admins see list prices and markups too.

pub mod budgets;
pub mod metering;
pub mod price_admin;
/// Price lists (a module of their own: the configuration snapshot holds them).
pub use crate::prices;
/// Amounts and markups (in the ground crate: errors carry them).
pub use cloudbroker_model::money;
pub mod report;
pub mod summary;
pub mod watch;

use crate::clock::Clock;
use crate::error::ServiceResult;
use crate::registry::Registry;
use crate::Actor;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use cloudbroker_store::Store;
use metering::{Period, Usage};
use money::Markup;
use prices::{PriceEntry, PriceItem};
use serde::Serialize;
use std::sync::Arc;

/// The costs service.
pub struct Costs {
    store: Store,
    registry: Arc<Registry>,
    clock: Clock,
    /// Per (instance, user): the month and the month-to-date spend last
    /// counted into the spend metric (this process's counters grow by the
    /// difference).
    counted: std::sync::Mutex<std::collections::HashMap<(String, String), (String, i64)>>,
    /// Whether budget overrides exist (shared with provisioning's launch plan).
    overrides: Arc<budgets::Overrides>,
    /// Who this replica is, for the budget watch's lease (`watch.rs`).
    holder: String,
    /// This month's alerts per owner, briefly reused (`watch.rs`: the banner).
    alerts: watch::AlertCache,
}

/// A VM's cost over a period, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct VmCost {
    pub currency: String,
    pub period: Period,
    /// Whether the figure comes from list prices in the broker's price files
    /// (an estimate of what the cloud bills, not its invoice).
    pub estimate: bool,
    #[serde(flatten)]
    pub usage: Usage,
}

/// A price as one actor sees it.
#[derive(Clone, Debug, Serialize)]
pub struct PriceView {
    pub instance: String,
    pub item: PriceItem,
    /// With the instance's markup.
    pub price: money::Micros,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub effective: DateTime<Utc>,
    /// Admins only: the list price, the markup and where they were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_price: Option<money::Micros>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markup: Option<Markup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// The price list as one actor sees it.
#[derive(Clone, Debug, Serialize)]
pub struct PriceList {
    pub currency: String,
    pub prices: Vec<PriceView>,
    /// Admins only: lines of the price files that were not loaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// What metering needs of a VM (implemented by `provisioning::Vm`, so
/// this module does not depend on provisioning, which checks budgets with it).
pub trait Metered {
    fn metered_id(&self) -> &crate::domain::VmId;
    fn metered_instance(&self) -> &crate::domain::InstanceName;
    fn metered_type(&self) -> &str;
}

/// The month `t` falls in, up to `t`.
pub fn month_to(t: DateTime<Utc>) -> Period {
    let from = Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().unwrap_or(t);
    Period { from, to: t }
}

impl Costs {
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        let clock = store.clock().clone();
        let holder = format!("costs-{}", uuid::Uuid::new_v4().simple());
        Self { store, registry, clock, counted: Default::default(), overrides: Default::default(), holder, alerts: Default::default() }
    }

    /// Shares `overrides` with the launch plan (the broker's one cache).
    pub fn with_overrides(mut self, overrides: Arc<budgets::Overrides>) -> Self {
        self.overrides = overrides;
        self
    }

    /// Names this replica in the budget watch's lease (the broker's replica id).
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// The broker's currency.
    pub fn currency(&self) -> String {
        self.registry.snapshot().prices.currency().to_string()
    }

    /// What `vm` (already checked visible to the caller) cost within
    /// `period` (default: this month so far), never counting past now.
    pub async fn vm_cost(&self, vm: &impl Metered, period: Option<Period>) -> ServiceResult<VmCost> {
        let now = self.clock.now();
        let mut period = period.unwrap_or_else(|| month_to(now));
        period.to = period.to.min(now);
        let snap = self.registry.snapshot();
        let history = self.store.vm_state_history(vm.metered_id()).await?;
        let types = self.store.vm_type_changes(vm.metered_id()).await?;
        let spans = metering::running_spans(&history, period.to);
        let instance = vm.metered_instance().as_str();
        let minimum = snap.billing_minimum_seconds(instance);
        let usage =
            metering::bill_typed(&spans, &types, vm.metered_type(), period, |t| metering::vm_rate(&snap.prices, instance, t, minimum));
        Ok(VmCost { currency: snap.prices.currency().to_string(), period, estimate: true, usage })
    }

    /// The price list: everyone sees prices with markups; admins also the
    /// list prices, markups, origins and the file errors.
    pub fn price_list(&self, actor: &Actor) -> PriceList {
        let snap = self.registry.snapshot();
        let book = &snap.prices;
        let view = |e: &PriceEntry| {
            let (markup, _) = book.markup(&e.instance);
            PriceView {
                instance: e.instance.clone(),
                item: e.item.clone(),
                price: e.price.with_markup(markup),
                effective: e.effective,
                list_price: actor.is_admin.then_some(e.price),
                markup: actor.is_admin.then_some(markup),
                origin: actor.is_admin.then(|| e.origin.clone()),
            }
        };
        let errors = if actor.is_admin { snap.file_errors.iter().filter(|e| e.contains("prices")).cloned().collect() } else { Vec::new() };
        PriceList { currency: book.currency().to_string(), prices: book.entries().map(view).collect(), errors }
    }
}

/// One budget as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetView {
    /// `user` or `project`.
    pub scope: &'static str,
    pub owner: String,
    pub instance: String,
    pub currency: String,
    /// The monthly amount (`None`: no budget).
    pub amount: Option<money::Micros>,
    /// `override` (set for this user or project) or `instance` (the instance's parameter).
    pub source: &'static str,
    /// Spent and committed this month so far.
    pub spent: money::Micros,
}

impl Costs {
    /// Admins only: sets (`Some`) or removes `owner`'s monthly budget on
    /// `instance` (an override of the instance's parameter). Audited.
    pub async fn set_budget(
        &self,
        actor: &Actor,
        scope: cloudbroker_store::budgets::BudgetScope,
        owner: &str,
        instance: &crate::domain::InstanceName,
        amount: Option<money::Micros>,
    ) -> ServiceResult<BudgetView> {
        actor.require_admin()?;
        if self.registry.snapshot().instance(instance.as_str()).is_none() {
            return Err(crate::ServiceError::NotFound(crate::error::Resource::Instance(instance.clone())));
        }
        if scope == cloudbroker_store::budgets::BudgetScope::Project && amount.is_some() && self.is_personal(owner).await? {
            return Err(crate::ServiceError::Invalid {
                field: Some("owner"),
                message: format!(
                    "'{owner}' is a personal project: a project budget applies to team projects; set the user budget of '{owner}' instead"
                ),
            });
        }
        self.store.set_budget_override(scope, owner, instance.as_str(), amount.map(|a| a.0)).await?;
        self.overrides.changed();
        let detail = format!(
            "budget of {} '{owner}' on '{instance}': {}",
            scope.as_str(),
            amount.map_or_else(
                || "unset (the instance's default applies)".to_string(),
                |a| format!("{} {}", a.to_decimal(2), self.currency())
            )
        );
        let target = match scope {
            cloudbroker_store::budgets::BudgetScope::User => crate::audit::AuditTarget::Quota { user: owner, instance: instance.as_str() },
            cloudbroker_store::budgets::BudgetScope::Project => crate::audit::AuditTarget::Project(owner),
        };
        let event = crate::audit::AuditEvent::ok(crate::audit::AuditAction::QuotaChange, target).detail(detail);
        crate::audit::record_by(&self.store, actor, &event).await?;
        self.budget(scope, owner, instance).await
    }

    /// Whether `owner` names a personal project (project and user names
    /// share one namespace: a user's name is their personal project's).
    async fn is_personal(&self, owner: &str) -> ServiceResult<bool> {
        if self.store.get_user(owner).await?.is_some() {
            return Ok(true);
        }
        Ok(match crate::domain::ProjectName::parse(owner) {
            Ok(p) => self.store.get_project(&p).await?.is_some_and(|p| p.is_personal()),
            Err(_) => false,
        })
    }

    /// `owner`'s budget on `instance` and what it spent this month (the
    /// caller checks who may read it).
    pub async fn budget(
        &self,
        scope: cloudbroker_store::budgets::BudgetScope,
        owner: &str,
        instance: &crate::domain::InstanceName,
    ) -> ServiceResult<BudgetView> {
        use cloudbroker_store::budgets::BudgetScope;
        let snap = self.registry.snapshot();
        let values = snap.instance(instance.as_str()).map(|i| &i.values);
        let found = budgets::resolve(&self.store, &self.overrides, instance.as_str(), values, &[(scope, owner)]).await?;
        let (amount, source) = match found.into_iter().next().flatten() {
            Some((a, source)) => (Some(a), source),
            None => (None, budgets::FROM_INSTANCE),
        };
        let now = self.clock.now();
        let month = month_to(now);
        let (user, project) = match scope {
            BudgetScope::User => (Some(owner.to_string()), None),
            BudgetScope::Project => (None, Some(owner.to_string())),
        };
        let f = cloudbroker_store::metering::PeriodFilter {
            user,
            project,
            instance: Some(instance.to_string()),
            from: month.from.timestamp_millis(),
            to: month.to.timestamp_millis(),
        };
        let vms = self.store.vms_with_history(&f).await?;
        let spent = budgets::spent(&vms, &snap.prices, month, now, snap.billing_minimum_seconds(instance.as_str()));
        Ok(BudgetView {
            scope: scope.as_str(),
            owner: owner.to_string(),
            instance: instance.to_string(),
            currency: snap.prices.currency().to_string(),
            amount,
            source,
            spent,
        })
    }
}
