//! Prices and markups set by admins through the UI and the JSON API, and
//! what is unpriced. Every change is refused unless the actor is an admin,
//! is audited (`price.change`), bumps the configuration version in its
//! transaction (so every replica rebuilds its price book on its next
//! configuration check) and reloads this replica's at once.
//!
//! A price never changes the past: a new price is effective from now (by
//! the broker's clock) or a later time, never an earlier one, so usage
//! already billed keeps its price; only prices not yet effective may be
//! deleted. Files win: an item (or a markup) a price file gives is managed
//! by that file, and changing it here is refused naming the file and line.
//! An item used or offered without a price is listed as unpriced, never
//! counted as free.

use super::money::{Markup, Micros};
use super::prices::{PriceEntry, PriceItem};
use super::{month_to, Costs, PriceView};
use crate::audit::{AuditAction, AuditEvent, AuditTarget};
use crate::domain::InstanceName;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::Actor;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// A markup as the admin pages show it.
#[derive(Clone, Debug, Serialize)]
pub struct MarkupView {
    pub instance: String,
    pub markup: Markup,
    /// `file:line`, or `set by admin NAME at TIME`.
    pub origin: String,
    /// Whether a price file gives it (the UI/API cannot change it).
    pub managed_by_file: bool,
}

/// Why an item needs a price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnpricedReason {
    /// VMs of this type ran (or exist) this month.
    UsedByVms,
    /// The connector instance lists it as offered (its `instance.types` parameter).
    Offered,
    /// Volumes of this type existed this month.
    UsedByVolumes,
    /// Elastic IPs were allocated on the instance this month.
    AddressesAllocated,
}

impl UnpricedReason {
    /// As the admin page says it.
    pub fn text(self) -> &'static str {
        match self {
            Self::UsedByVms => "used by VMs this month",
            Self::Offered => "offered by the instance (instance.types)",
            Self::UsedByVolumes => "used by volumes this month",
            Self::AddressesAllocated => "addresses allocated this month",
        }
    }
}

/// An item with no price in effect now: reported as unpriced, never as free.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unpriced {
    pub instance: String,
    pub item: PriceItem,
    pub reasons: Vec<UnpricedReason>,
    /// When a price is set but only from a later time: that time.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::domain::time::rfc3339_opt")]
    pub priced_from: Option<DateTime<Utc>>,
}

/// Everything the admin prices page shows.
#[derive(Clone, Debug, Serialize)]
pub struct PriceAdmin {
    pub currency: String,
    /// Every price in effect or to come, with list price, markup and origin.
    pub prices: Vec<PriceView>,
    /// Prices set through the UI/API that a price file hides (files win).
    pub overridden: Vec<PriceView>,
    pub markups: Vec<MarkupView>,
    pub unpriced: Vec<Unpriced>,
    /// Lines of the price files not loaded, and stored values not used.
    pub errors: Vec<String>,
}

fn time_text(t: DateTime<Utc>) -> String {
    crate::domain::time::rfc3339_string(&t, crate::domain::time::Fraction::Auto)
}

impl Costs {
    fn admin_view(&self, e: &PriceEntry, markup: Markup) -> PriceView {
        PriceView {
            instance: e.instance.clone(),
            item: e.item.clone(),
            price: e.price.with_markup(markup),
            effective: e.effective,
            list_price: Some(e.price),
            markup: Some(markup),
            origin: Some(e.origin.clone()),
        }
    }

    async fn refresh(&self) -> ServiceResult<()> {
        self.registry.reload().await.map_err(|e| match e {
            crate::registry::RegistryError::Store(s) => ServiceError::from(s),
            other => ServiceError::Internal(format!("configuration: {other}")),
        })?;
        Ok(())
    }

    fn known_instance(&self, instance: &InstanceName) -> ServiceResult<()> {
        match self.registry.snapshot().instance(instance.as_str()) {
            Some(_) => Ok(()),
            None => Err(ServiceError::NotFound(Resource::Instance(instance.clone()))),
        }
    }

    /// Admins only: sets the list price of `item` on `instance` from
    /// `effective` (default: now by the broker's clock; a time in the past
    /// is refused, since usage already billed keeps its price). Refused for
    /// an unknown instance (not found) and for an item a price file
    /// manages. Audited; every replica picks it up on its next
    /// configuration check, this one at once.
    pub async fn set_price(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        item: PriceItem,
        price: Micros,
        effective: Option<DateTime<Utc>>,
    ) -> ServiceResult<PriceView> {
        actor.require_admin()?;
        self.known_instance(instance)?;
        if price.0 < 0 {
            return Err(ServiceError::invalid_field("price", "a price cannot be negative (a markup may be)"));
        }
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let effective_ms = match effective {
            None => now_ms,
            Some(t) if t.timestamp_millis() < now_ms => {
                return Err(ServiceError::invalid_field(
                    "effective",
                    format!(
                        "the effective time {} is in the past (it is now {}): usage already billed keeps its price; \
                         give a time from now on, or none for now",
                        time_text(t),
                        time_text(now)
                    ),
                ));
            }
            Some(t) => t.timestamp_millis(),
        };
        let snap = self.registry.snapshot();
        if let Some(origin) = snap.prices.price_file(instance.as_str(), &item) {
            return Err(ServiceError::Conflict(format!(
                "the price of {item} on '{instance}' is managed by {origin}; edit the file and reload"
            )));
        }
        self.store.set_price(instance.as_str(), item.kind(), item.name(), effective_ms, price.0, actor.name.as_str()).await?;
        let effective = DateTime::from_timestamp_millis(effective_ms).unwrap_or(now);
        let detail = format!(
            "price of {item} from {}: {} {} ({})",
            time_text(effective),
            price.to_decimal(6),
            snap.prices.currency(),
            if matches!(item, PriceItem::Volume(_)) { "per GiB-month" } else { "per hour" }
        );
        let event = AuditEvent::ok(AuditAction::PriceChange, AuditTarget::Instance(instance.as_str())).detail(detail);
        crate::audit::record_by(&self.store, actor, &event).await?;
        self.refresh().await?;
        let snap = self.registry.snapshot();
        let (markup, _) = snap.prices.markup(instance.as_str());
        let entry = snap
            .prices
            .schedule(instance.as_str(), &item)
            .iter()
            .find(|e| e.effective.timestamp_millis() == effective_ms)
            .cloned()
            .ok_or_else(|| ServiceError::Internal(format!("the price of {item} on '{instance}' was stored but not loaded")))?;
        Ok(self.admin_view(&entry, markup))
    }

    /// Admins only: deletes the price of `item` on `instance` set (through
    /// the UI/API) from `effective`, if it is not in effect yet; one in
    /// effect is kept (usage was billed at it: set a new price instead).
    pub async fn delete_price(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        item: PriceItem,
        effective: DateTime<Utc>,
    ) -> ServiceResult<()> {
        actor.require_admin()?;
        self.known_instance(instance)?;
        let snap = self.registry.snapshot();
        if let Some(origin) = snap.prices.price_file(instance.as_str(), &item) {
            return Err(ServiceError::Conflict(format!(
                "the price of {item} on '{instance}' is managed by {origin}; edit the file and reload"
            )));
        }
        let now = self.clock.now();
        if effective.timestamp_millis() <= now.timestamp_millis() {
            return Err(ServiceError::Conflict(format!(
                "the price of {item} on '{instance}' from {} is already in effect (it is now {}): usage was billed at it, \
                 so it is kept; set a new price from now on instead",
                time_text(effective),
                time_text(now)
            )));
        }
        let deleted = self.store.delete_price(instance.as_str(), item.kind(), item.name(), effective.timestamp_millis()).await?;
        if !deleted {
            return Err(ServiceError::NotFound(Resource::Record(format!("price of {item} on '{instance}' from {}", time_text(effective)))));
        }
        let detail = format!("price of {item} from {} deleted", time_text(effective));
        let event = AuditEvent::ok(AuditAction::PriceChange, AuditTarget::Instance(instance.as_str())).detail(detail);
        crate::audit::record_by(&self.store, actor, &event).await?;
        self.refresh().await
    }

    /// Admins only: sets (`Some`) or removes the markup of `instance`
    /// (refused where a price file gives it). Audited.
    pub async fn set_markup(&self, actor: &Actor, instance: &InstanceName, markup: Option<Markup>) -> ServiceResult<Option<MarkupView>> {
        actor.require_admin()?;
        self.known_instance(instance)?;
        if let Some(origin) = self.registry.snapshot().prices.markup_file(instance.as_str()) {
            return Err(ServiceError::Conflict(format!("the markup of '{instance}' is managed by {origin}; edit the file and reload")));
        }
        self.store.set_markup(instance.as_str(), markup.map(|m| m.0), actor.name.as_str()).await?;
        let detail = match markup {
            Some(m) => format!("markup: {}", m.to_percent()),
            None => "markup removed".to_string(),
        };
        let event = AuditEvent::ok(AuditAction::PriceChange, AuditTarget::Instance(instance.as_str())).detail(detail);
        crate::audit::record_by(&self.store, actor, &event).await?;
        self.refresh().await?;
        Ok(self.markup_views().into_iter().find(|m| m.instance == instance.as_str()))
    }

    fn markup_views(&self) -> Vec<MarkupView> {
        let snap = self.registry.snapshot();
        snap.prices
            .markups()
            .map(|(instance, markup, origin)| MarkupView {
                instance: instance.to_string(),
                markup,
                origin: origin.to_string(),
                managed_by_file: snap.prices.markup_file(instance).is_some(),
            })
            .collect()
    }

    /// Admins only: every item with no price in effect now that VMs used
    /// this month or their instance offers (its `instance.types`
    /// parameter), every volume type volumes used, and every instance with
    /// addresses but no address price.
    pub async fn unpriced(&self, actor: &Actor) -> ServiceResult<Vec<Unpriced>> {
        actor.require_admin()?;
        let now = self.clock.now();
        let month = month_to(now);
        let usage = self.store.priced_usage(month.from.timestamp_millis()).await?;
        let snap = self.registry.snapshot();
        let mut wanted: BTreeMap<(String, PriceItem), Vec<UnpricedReason>> = BTreeMap::new();
        let mut want = |instance: &str, item: PriceItem, why: UnpricedReason| {
            let reasons = wanted.entry((instance.to_string(), item)).or_default();
            if !reasons.contains(&why) {
                reasons.push(why);
            }
        };
        for (instance, t) in &usage.instance_types {
            want(instance, PriceItem::Instance(t.clone()), UnpricedReason::UsedByVms);
        }
        for i in &snap.instances {
            if let Some(types) = i.values.get_set("instance.types") {
                for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    want(i.name.as_str(), PriceItem::Instance(t.to_string()), UnpricedReason::Offered);
                }
            }
        }
        for (instance, t) in &usage.volume_types {
            want(instance, PriceItem::Volume(t.clone()), UnpricedReason::UsedByVolumes);
        }
        for instance in &usage.address_instances {
            want(instance, PriceItem::Address, UnpricedReason::AddressesAllocated);
        }
        Ok(wanted
            .into_iter()
            .filter_map(|((instance, item), reasons)| {
                let schedule = snap.prices.schedule(&instance, &item);
                let in_effect = schedule.first().is_some_and(|e| e.effective <= now);
                (!in_effect).then(|| Unpriced { instance, item, reasons, priced_from: schedule.first().map(|e| e.effective) })
            })
            .collect())
    }

    /// Admins only: everything the admin prices page shows.
    pub async fn price_admin(&self, actor: &Actor) -> ServiceResult<PriceAdmin> {
        actor.require_admin()?;
        let snap = self.registry.snapshot();
        let book = &snap.prices;
        let view = |e: &PriceEntry| self.admin_view(e, book.markup(&e.instance).0);
        let mut errors: Vec<String> = snap.file_errors.iter().filter(|e| e.contains("prices")).cloned().collect();
        errors.extend(snap.errors.iter().filter(|e| e.starts_with("stored price")).cloned());
        Ok(PriceAdmin {
            currency: book.currency().to_string(),
            prices: book.entries().map(view).collect(),
            overridden: book.overridden().iter().map(view).collect(),
            markups: self.markup_views(),
            unpriced: self.unpriced(actor).await?,
            errors,
        })
    }
}
