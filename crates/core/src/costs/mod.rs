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

pub mod metering;
pub mod money;
pub mod prices;
pub mod report;

use crate::clock::Clock;
use crate::error::ServiceResult;
use crate::provisioning::Vm;
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

/// The month `t` falls in, up to `t`.
pub fn month_to(t: DateTime<Utc>) -> Period {
    let from = Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().unwrap_or(t);
    Period { from, to: t }
}

impl Costs {
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        let clock = store.clock().clone();
        Self { store, registry, clock }
    }

    /// The broker's currency.
    pub fn currency(&self) -> String {
        self.registry.snapshot().prices.currency().to_string()
    }

    /// What `vm` (already checked visible to the caller) cost within
    /// `period` (default: this month so far), never counting past now.
    pub async fn vm_cost(&self, vm: &Vm, period: Option<Period>) -> ServiceResult<VmCost> {
        let now = self.clock.now();
        let mut period = period.unwrap_or_else(|| month_to(now));
        period.to = period.to.min(now);
        let snap = self.registry.snapshot();
        let history = self.store.vm_state_history(&vm.id).await?;
        let spans = metering::running_spans(&history, period.to);
        let schedule = snap.prices.schedule(vm.instance.as_str(), &PriceItem::Instance(vm.instance_type.clone()));
        let (markup, _) = snap.prices.markup(vm.instance.as_str());
        let usage = metering::bill(&spans, metering::DEFAULT_MINIMUM_SECONDS, schedule, markup, period);
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
        let errors = if actor.is_admin {
            snap.file_errors.iter().filter(|e| e.contains("prices")).cloned().collect()
        } else {
            Vec::new()
        };
        PriceList { currency: book.currency().to_string(), prices: book.entries().map(view).collect(), errors }
    }
}
