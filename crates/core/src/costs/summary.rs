//! What the pages show at a glance, each from one query of the VMs with
//! their histories (never one query per VM): every VM's cost this month
//! in the project the caller acts in (the VMs page), and the month so far,
//! the hourly burn rate of the running VMs (the price effective now, with
//! the instance's markup, of each one's type) and the month-end forecast
//! (month so far plus the burn rate until the month ends) for the
//! dashboard: a user's project, or everything for admins. Figures come from
//! the same metering as reports, so they agree with them.

use super::metering::{self, Period};
use super::money::{cost_of, Micros};
use super::{month_to, Costs};
use crate::error::ServiceResult;
use crate::Actor;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use cloudbroker_store::metering::PeriodFilter;
use std::collections::BTreeMap;

/// A VM's cost this month so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthCost {
    /// With the markup, of its priced seconds.
    pub cost: Micros,
    /// Whether some of its running time has no price (not in `cost`).
    pub unpriced: bool,
}

/// The dashboard's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Burn {
    pub currency: String,
    /// This month up to now.
    pub period: Period,
    /// What the month cost so far (with markups).
    pub month_to_date: Micros,
    /// What the running VMs cost per hour now (with markups).
    pub per_hour: Micros,
    /// How many VMs are running now, and how many of them have no price.
    pub running: u32,
    pub unpriced_running: u32,
    /// The month so far plus `per_hour` until the month ends.
    pub forecast: Micros,
    /// When the month ends.
    pub month_end: DateTime<Utc>,
}

/// The first instant of the month after `t`'s.
fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t)
}

impl Costs {
    /// Each VM's cost this month so far (by VM id), of the project `actor`
    /// acts in: those it may list. VMs that did not run this month are absent.
    pub async fn month_costs(&self, actor: &Actor) -> ServiceResult<BTreeMap<String, MonthCost>> {
        let period = month_to(self.clock.now());
        let filter = PeriodFilter {
            project: Some(actor.project.to_string()),
            from: period.from.timestamp_millis(),
            to: period.to.timestamp_millis(),
            ..PeriodFilter::default()
        };
        let snap = self.registry.snapshot();
        let book = &snap.prices;
        let mut out = BTreeMap::new();
        for h in self.store.vms_with_history(&filter).await? {
            let (vm, spans) = (&h.vm, metering::running_spans(&h.states, period.to));
            if spans.is_empty() {
                continue;
            }
            let (instance, minimum) = (vm.instance.as_str(), snap.billing_minimum_seconds(vm.instance.as_str()));
            let u = metering::bill_typed(&spans, &h.types, &vm.instance_type, period, |t| metering::vm_rate(book, instance, t, minimum));
            out.insert(vm.id.to_string(), MonthCost { cost: u.cost, unpriced: u.unpriced_seconds > 0 });
        }
        Ok(out)
    }

    /// The month so far, the burn rate and the forecast: of the project the
    /// actor acts in, or of every VM for admins.
    pub async fn burn(&self, actor: &Actor) -> ServiceResult<Burn> {
        let now = self.clock.now();
        let period = month_to(now);
        let filter = PeriodFilter {
            project: (!actor.is_admin).then(|| actor.project.to_string()),
            from: period.from.timestamp_millis(),
            to: period.to.timestamp_millis(),
            ..PeriodFilter::default()
        };
        let snap = self.registry.snapshot();
        let book = &snap.prices;
        let (mut month_to_date, mut per_hour, mut running, mut unpriced_running) = (Micros(0), Micros(0), 0, 0);
        for h in self.store.vms_with_history(&filter).await? {
            let (vm, spans) = (&h.vm, metering::running_spans(&h.states, period.to));
            let instance = vm.instance.as_str();
            let minimum = snap.billing_minimum_seconds(instance);
            if !spans.is_empty() {
                let rate = |t: &str| metering::vm_rate(book, instance, t, minimum);
                month_to_date = month_to_date + metering::bill_typed(&spans, &h.types, &vm.instance_type, period, rate).cost;
            }
            // Running now: as its current type (a type changes only while stopped).
            let (schedule, markup, _) = metering::vm_rate(book, instance, &vm.instance_type, minimum);
            if spans.last().is_some_and(|s| s.open) {
                running += 1;
                match schedule.iter().rev().find(|e| e.effective <= now) {
                    Some(e) => per_hour = per_hour + e.price.with_markup(markup),
                    None => unpriced_running += 1,
                }
            }
        }
        let month_end = next_month(now);
        let forecast = month_to_date + cost_of((month_end - now).num_seconds().max(0), per_hour);
        Ok(Burn { currency: book.currency().to_string(), period, month_to_date, per_hour, running, unpriced_running, forecast, month_end })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn months_end_where_they_should() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(next_month(t("2026-12-07T04:00:00Z")), t("2027-01-01T00:00:00Z"));
        assert_eq!(next_month(t("2026-02-28T23:59:59Z")), t("2026-03-01T00:00:00Z"));
    }
}
