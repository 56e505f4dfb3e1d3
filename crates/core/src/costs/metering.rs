//! Metering: what a VM costs over a period, from its recorded state history
//! alone. A VM is billed from each change to `running` until the first
//! later change to another state (stopping, stopped, shutting-down,
//! terminated, failed); one still running is billed until the period's end
//! or now, whichever is first. Each start is billed at least the minimum
//! (`billing.minimum.seconds`, as AWS bills Linux per second with a
//! 60-second minimum): what a shorter span lacks is charged when it ends,
//! at the price of its start (a span still open owes no minimum yet). Seconds are priced by the
//! price effective at each second (a price change splits a span), with
//! the instance's markup; seconds with no price are counted and reported
//! as unpriced, never as free. Every line says where its figure came from.
//! Each span is priced as the instance type the VM ran as then (a type
//! changes only while the VM is stopped, so a span has one type): a type
//! change never reprices earlier running time.

use super::money::{cost_of, Markup, Micros};
use super::prices::PriceEntry;
use crate::domain::VmStatus;
use chrono::{DateTime, Duration, Utc};
use cloudbroker_store::metering::{StateChange, TypeChange};
use serde::Serialize;

/// The default of `billing.minimum.seconds` (kept with the price book: the
/// configuration snapshot reads it too).
pub use crate::prices::DEFAULT_MINIMUM_SECONDS;

/// A half-open time range `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub to: DateTime<Utc>,
}

/// One priced (or unpriced) stretch of a VM's running time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageLine {
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub to: DateTime<Utc>,
    pub seconds: i64,
    /// The list price per hour (`None`: unpriced).
    pub rate: Option<Micros>,
    /// Where the price was given (`file:line`).
    pub price_origin: Option<String>,
    pub markup: Markup,
    /// The cost with the markup (`None`: unpriced).
    pub cost: Option<Micros>,
    /// Whether this line is the minimum billed beyond the VM's actual
    /// running time (`from` = `to`: when the span that lacked it ended).
    pub minimum: bool,
}

/// What a VM cost over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Seconds billed (running time, plus what minimums add).
    pub seconds: i64,
    /// How many times it started running.
    pub starts: u32,
    /// The cost of the priced seconds, with markup.
    pub cost: Micros,
    /// The same at list prices (what admins compare with the cloud's bill).
    pub list_cost: Micros,
    /// Seconds with no price (the cost leaves them out: never free, unknown).
    pub unpriced_seconds: i64,
    pub lines: Vec<UsageLine>,
}

impl Usage {
    /// Adds `other` (of later spans of the same VM: lines stay in time order).
    pub fn absorb(&mut self, other: Usage) {
        self.seconds += other.seconds;
        self.starts += other.starts;
        self.cost = self.cost + other.cost;
        self.list_cost = self.list_cost + other.list_cost;
        self.unpriced_seconds += other.unpriced_seconds;
        self.lines.extend(other.lines);
    }
}

/// What one instance type bills at on one instance: its price schedule
/// (oldest first), the instance's markup and its minimum seconds per start.
pub type Rate<'a> = (&'a [PriceEntry], Markup, i64);

/// The instance type a VM ran as at `t`, from the changes of its type
/// (oldest first) and its `current` type: the type before the first change
/// after `t`, or the current one when none followed.
pub fn type_at<'a>(types: &'a [TypeChange], current: &'a str, t: DateTime<Utc>) -> &'a str {
    types.iter().find(|c| c.at > t).map_or(current, |c| c.from.as_str())
}

/// `spans` (oldest first) cut into runs of one instance type each, in
/// order: each span is of the type the VM ran as at its start.
pub fn runs_by_type<'a, 's>(spans: &'s [Span], types: &'a [TypeChange], current: &'a str) -> Vec<(&'a str, &'s [Span])> {
    let mut runs: Vec<(&'a str, &'s [Span])> = Vec::new();
    let mut start = 0;
    for i in 1..=spans.len() {
        let kind = type_at(types, current, spans[start].from);
        if i == spans.len() || type_at(types, current, spans[i].from) != kind {
            runs.push((kind, &spans[start..i]));
            start = i;
        }
    }
    runs
}

/// [`bill`] of a VM whose type may have changed: each run of spans of one
/// type ([`runs_by_type`]) at that type's `rate`.
pub fn bill_typed<'r>(
    spans: &[Span],
    types: &[TypeChange],
    current: &str,
    period: Period,
    mut rate: impl FnMut(&str) -> Rate<'r>,
) -> Usage {
    let mut u = Usage::default();
    for (kind, run) in runs_by_type(spans, types, current) {
        let (schedule, markup, minimum) = rate(kind);
        u.absorb(bill(run, minimum, schedule, markup, period));
    }
    u
}

/// The [`Rate`] of VMs of `instance_type` on `instance` in `book`, with
/// `minimum` seconds per start.
pub fn vm_rate<'b>(book: &'b super::prices::PriceBook, instance: &str, instance_type: &str, minimum: i64) -> Rate<'b> {
    (book.schedule(instance, &super::prices::PriceItem::Instance(instance_type.to_string())), book.markup(instance).0, minimum)
}

/// A stretch of time a VM was running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Whether it is still running at `to` (the time it was cut at).
    pub open: bool,
}

/// The spans a VM was running, from its history, up to `until` (a span
/// still open ends there). Any state but `running` ends a span.
pub fn running_spans(history: &[StateChange], until: DateTime<Utc>) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for c in history {
        if c.at > until {
            break;
        }
        match (c.state == VmStatus::Running, open) {
            (true, None) => open = Some(c.at),
            (false, Some(s)) => {
                spans.push(Span { from: s, to: c.at, open: false });
                open = None;
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        spans.push(Span { from: s, to: until.max(s), open: true });
    }
    spans
}

/// The usage of `spans` within `period`: each span billed at least
/// `minimum_seconds` from its start, priced by `schedule` (oldest first)
/// with `markup`.
pub fn bill(spans: &[Span], minimum_seconds: i64, schedule: &[PriceEntry], markup: Markup, period: Period) -> Usage {
    let mut u = Usage::default();
    for span in spans {
        if span.from >= period.from && span.from < period.to {
            u.starts += 1;
        }
        let (from, to) = (span.from.max(period.from), span.to.min(period.to));
        let mut lines = if from < to { priced(from, to, schedule, markup) } else { Vec::new() };
        // What a closed span lacks of the minimum, charged when it ended.
        let lacking = minimum_seconds - (span.to - span.from).num_seconds();
        if !span.open && lacking > 0 && span.to >= period.from && span.to <= period.to {
            let mut line = priced(span.from, span.from + Duration::seconds(1), schedule, markup).remove(0);
            line.from = span.to;
            line.to = span.to;
            line.seconds = lacking;
            line.cost = line.rate.map(|r| cost_of(lacking, r).with_markup(markup));
            line.minimum = true;
            lines.push(line);
        }
        for line in lines {
            u.seconds += line.seconds;
            match (line.cost, line.rate) {
                (Some(c), Some(r)) => {
                    u.cost = u.cost + c;
                    u.list_cost = u.list_cost + cost_of(line.seconds, r);
                }
                _ => u.unpriced_seconds += line.seconds,
            }
            u.lines.push(line);
        }
    }
    u
}

/// Seconds in the month a GiB-month price is for (AWS prorates volumes over 730 hours).
pub const GIB_MONTH_SECONDS: i64 = 730 * 3_600;

/// What a volume of `size_gib` (or, with `size_gib` = `None`, an Elastic
/// IP) that existed from `from` until `to` (or still, at `now`) cost
/// within `period`, at `schedule`'s prices (per GiB-month for volumes, per
/// hour for addresses) with `markup`. No minimum applies.
pub fn bill_resource(
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    size_gib: Option<i64>,
    schedule: &[PriceEntry],
    markup: Markup,
    period: Period,
) -> Usage {
    let end = to.unwrap_or(now).min(now);
    let (from, to) = (from.max(period.from), end.min(period.to));
    let mut u = Usage::default();
    if from >= to {
        return u;
    }
    for mut line in priced(from, to, schedule, markup) {
        if let (Some(gib), Some(rate)) = (size_gib, line.rate) {
            // Per GiB-month: seconds x GiB x price / (730 h), rounded once.
            let list = Micros(super::money::div_round(
                i128::from(line.seconds) * i128::from(gib) * i128::from(rate.0),
                i128::from(GIB_MONTH_SECONDS),
            ));
            line.cost = Some(list.with_markup(markup));
            u.list_cost = u.list_cost + list;
        } else if let Some(rate) = line.rate {
            u.list_cost = u.list_cost + cost_of(line.seconds, rate);
        }
        u.seconds += line.seconds;
        match line.cost {
            Some(c) => u.cost = u.cost + c,
            None => u.unpriced_seconds += line.seconds,
        }
        u.lines.push(line);
    }
    u
}

/// `[from, to)` split where the effective price changes, each piece priced.
fn priced(from: DateTime<Utc>, to: DateTime<Utc>, schedule: &[PriceEntry], markup: Markup) -> Vec<UsageLine> {
    let mut cuts: Vec<DateTime<Utc>> = schedule.iter().map(|e| e.effective).filter(|t| *t > from && *t < to).collect();
    cuts.push(to);
    let mut lines = Vec::new();
    let mut at = from;
    for cut in cuts {
        let entry = schedule.iter().rev().find(|e| e.effective <= at);
        let seconds = (cut - at).num_seconds();
        let rate = entry.map(|e| e.price);
        lines.push(UsageLine {
            from: at,
            to: cut,
            seconds,
            rate,
            price_origin: entry.map(|e| e.origin.clone()),
            markup,
            cost: rate.map(|r| cost_of(seconds, r).with_markup(markup)),
            minimum: false,
        });
        at = cut;
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::prices::PriceItem;
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(s)
    }

    fn h(changes: &[(VmStatus, i64)]) -> Vec<StateChange> {
        changes.iter().map(|(s, at)| StateChange { state: *s, at: t(*at) }).collect()
    }

    fn price(per_hour: &str, from: i64, origin: &str) -> PriceEntry {
        PriceEntry {
            instance: "sb".into(),
            item: PriceItem::Instance("small".into()),
            price: Micros::parse(per_hour).unwrap(),
            effective: if from == 0 { DateTime::<Utc>::UNIX_EPOCH } else { t(from) },
            origin: origin.into(),
        }
    }

    fn all() -> Period {
        Period { from: t(0), to: t(100_000) }
    }

    #[test]
    fn only_running_time_is_billed() {
        use VmStatus::*;
        let history = h(&[
            (Requested, 0),
            (Pending, 5),
            (Running, 10),
            (Stopping, 3610),
            (Stopped, 3620),
            (Running, 7200),
            (ShuttingDown, 10_800),
            (Terminated, 10_810),
        ]);
        let spans = running_spans(&history, t(20_000));
        assert_eq!(spans, vec![Span { from: t(10), to: t(3610), open: false }, Span { from: t(7200), to: t(10_800), open: false }]);
        let u = bill(&spans, 60, &[price("1", 0, "p.conf:1")], Markup(0), all());
        assert_eq!((u.seconds, u.starts, u.cost, u.unpriced_seconds), (7200, 2, Micros(2_000_000), 0));
        // Still running: billed until `until`.
        let open = running_spans(&h(&[(Running, 100)]), t(1000));
        assert_eq!(open, vec![Span { from: t(100), to: t(1000), open: true }]);
        // A span still open owes no minimum yet; once closed it does.
        let young = bill(&running_spans(&h(&[(Running, 0)]), t(10)), 60, &[price("3.6", 0, "p:1")], Markup(0), all());
        assert_eq!((young.seconds, young.cost), (10, Micros(10_000)));
    }

    #[test]
    fn each_start_is_billed_the_minimum() {
        use VmStatus::*;
        let spans = running_spans(&h(&[(Running, 0), (Stopped, 10), (Running, 100), (Terminated, 200)]), t(1000));
        let u = bill(&spans, 60, &[price("3.6", 0, "p:1")], Markup(0), all());
        // 10 s billed as 60, then 100 s: 160 s at 0.001/s.
        assert_eq!((u.seconds, u.cost), (160, Micros(160_000)));
        let minimum: Vec<_> = u.lines.iter().filter(|l| l.minimum).collect();
        assert_eq!((minimum.len(), minimum[0].seconds, minimum[0].from, minimum[0].to), (1, 50, t(10), t(10)));
    }

    #[test]
    fn a_price_change_splits_a_span_and_markups_apply() {
        let spans = vec![Span { from: t(0), to: t(7200), open: false }];
        let schedule = [price("1", 0, "p:1"), price("2", 3600, "p:2")];
        let u = bill(&spans, 60, &schedule, Markup(1000), all());
        assert_eq!(u.list_cost, Micros(3_000_000));
        assert_eq!(u.cost, Micros(3_300_000));
        assert_eq!(u.lines.len(), 2);
        assert_eq!((u.lines[1].rate, u.lines[1].price_origin.as_deref()), (Some(Micros(2_000_000)), Some("p:2")));
    }

    #[test]
    fn volumes_cost_per_gib_month_and_addresses_per_hour() {
        let gp3 = [PriceEntry { item: PriceItem::Volume("gp3".into()), ..price("0.08", 0, "p:3") }];
        // 100 GiB for the 730 hours of a GiB-month: 100 x 0.08 = 8.00; with 10%: 8.80.
        let u = bill_resource(t(0), Some(t(GIB_MONTH_SECONDS)), t(10_000_000), Some(100), &gp3, Markup(1000), all_of(10_000_000));
        assert_eq!((u.list_cost, u.cost, u.seconds), (Micros(8_000_000), Micros(8_800_000), GIB_MONTH_SECONDS));
        // Still there: billed until now; a period after its deletion: nothing.
        let open = bill_resource(t(0), None, t(3600), Some(730), &gp3, Markup(0), all());
        assert_eq!(open.cost, Micros(80_000));
        assert_eq!(bill_resource(t(0), Some(t(10)), t(100), Some(1), &gp3, Markup(0), Period { from: t(20), to: t(30) }), Usage::default());
        let eip = [PriceEntry { item: PriceItem::Address, ..price("0.005", 0, "p:4") }];
        let a = bill_resource(t(0), Some(t(7200)), t(9000), None, &eip, Markup(0), all());
        assert_eq!((a.cost, a.seconds), (Micros(10_000), 7200));
        let unpriced = bill_resource(t(0), Some(t(60)), t(90), None, &[], Markup(0), all());
        assert_eq!((unpriced.unpriced_seconds, unpriced.cost), (60, Micros(0)));
    }

    fn all_of(secs: i64) -> Period {
        Period { from: t(0), to: t(secs) }
    }

    #[test]
    fn unpriced_time_is_never_free_and_periods_clip() {
        let spans = vec![Span { from: t(0), to: t(7200), open: false }];
        // Priced only from 3600 on.
        let u = bill(&spans, 60, &[price("1", 3600, "p:1")], Markup(0), all());
        assert_eq!((u.unpriced_seconds, u.cost, u.seconds), (3600, Micros(1_000_000), 7200));
        assert!(u.lines[0].rate.is_none() && u.lines[0].cost.is_none());
        // A period holding half the span, and a period after it.
        let half = bill(&spans, 60, &[price("1", 0, "p:1")], Markup(0), Period { from: t(3600), to: t(100_000) });
        assert_eq!((half.seconds, half.starts, half.cost), (3600, 0, Micros(1_000_000)));
        let none = bill(&spans, 60, &[price("1", 0, "p:1")], Markup(0), Period { from: t(8000), to: t(9000) });
        assert_eq!(none, Usage::default());
    }
}
