//! Cost reports: what VMs, volumes and Elastic IPs cost over `[from, to)`, per day or month,
//! grouped by user, project, connector instance, instance type, image or
//! a tag's value. Built from three queries (the VMs of the period, their
//! state histories and their type changes) and the metering of
//! `metering.rs` (each span priced as the type the VM ran as then, and
//! grouped by it under `instance_type`), so a report and a
//! VM's own cost always agree. Users see the project they act in; admins
//! anyone's (all, or one user, project or instance).

use super::metering::{self, Period, Rate, Usage};
use super::money::Micros;
use super::prices::PriceItem;
use super::Costs;
use crate::domain::{InstanceName, ProjectName, UserName};
use crate::error::{ServiceError, ServiceResult};
use crate::Actor;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use cloudbroker_store::metering::PeriodFilter;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The longest report, in days.
pub const MAX_REPORT_DAYS: i64 = 400;

/// What report lines are grouped by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    User,
    Project,
    Instance,
    InstanceType,
    Image,
    /// A tag's value (`(untagged)` for VMs without it).
    Tag(String),
}

impl GroupBy {
    /// Parses `user`, `project`, `instance`, `instance_type`, `image` or `tag:KEY`.
    pub fn parse(s: &str) -> ServiceResult<Self> {
        Ok(match s {
            "user" => Self::User,
            "project" => Self::Project,
            "instance" => Self::Instance,
            "instance_type" => Self::InstanceType,
            "image" => Self::Image,
            t => match t.strip_prefix("tag:") {
                Some(k) if !k.is_empty() && k.len() <= 128 && !k.chars().any(char::is_control) => Self::Tag(k.to_string()),
                _ => {
                    return Err(ServiceError::invalid_field(
                        "group_by",
                        format!(
                            "'{}' is not user, project, instance, instance_type, image or tag:KEY",
                            s.chars().take(64).collect::<String>()
                        ),
                    ))
                }
            },
        })
    }

    pub fn as_text(&self) -> String {
        match self {
            Self::User => "user".into(),
            Self::Project => "project".into(),
            Self::Instance => "instance".into(),
            Self::InstanceType => "instance_type".into(),
            Self::Image => "image".into(),
            Self::Tag(k) => format!("tag:{k}"),
        }
    }
}

/// How long each report bucket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Day,
    Month,
}

impl Granularity {
    pub fn parse(s: &str) -> ServiceResult<Self> {
        match s {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            other => Err(ServiceError::invalid_field(
                "granularity",
                format!("'{}' is not day or month", other.chars().take(64).collect::<String>()),
            )),
        }
    }

    /// The start of the bucket after the one `t` starts.
    fn next(self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Day => Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0).single().unwrap_or(t) + Duration::days(1),
            Self::Month => {
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t + Duration::days(31))
            }
        }
    }
}

/// What a report covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
    pub granularity: Granularity,
    /// Admins only: one user's VMs.
    pub user: Option<UserName>,
    /// Admins only: one project's VMs (others: the project they act in).
    pub project: Option<ProjectName>,
    pub instance: Option<InstanceName>,
}

/// One line: a group's cost in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportLine {
    /// The bucket's start.
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub bucket: DateTime<Utc>,
    pub group: String,
    pub vms: u32,
    pub seconds: i64,
    pub starts: u32,
    /// With markups.
    pub cost: Micros,
    /// Admins only: at list prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_cost: Option<Micros>,
    pub unpriced_seconds: i64,
    /// Volumes and Elastic IPs billed in this line (their seconds and cost are in the figures above).
    pub volumes: u32,
    pub addresses: u32,
}

impl ReportLine {
    fn add(&mut self, u: &metering::Usage) {
        self.seconds += u.seconds;
        self.cost = self.cost + u.cost;
        self.list_cost = self.list_cost.map(|c| c + u.list_cost);
        self.unpriced_seconds += u.unpriced_seconds;
    }
}

/// The line of `group` in `bucket`, made empty when new (admins' lines carry list costs).
fn line_of<'a>(
    acc: &'a mut BTreeMap<(DateTime<Utc>, String), ReportLine>,
    bucket: DateTime<Utc>,
    group: &str,
    admin: bool,
) -> &'a mut ReportLine {
    acc.entry((bucket, group.to_string())).or_insert_with(|| ReportLine {
        bucket,
        group: group.to_string(),
        vms: 0,
        seconds: 0,
        starts: 0,
        cost: Micros(0),
        list_cost: admin.then_some(Micros(0)),
        unpriced_seconds: 0,
        volumes: 0,
        addresses: 0,
    })
}

/// A cost report.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub currency: String,
    pub period: Period,
    pub group_by: String,
    pub granularity: Granularity,
    /// Figures come from the broker's price lists: estimates, not the cloud's invoice.
    pub estimate: bool,
    /// Buckets in time order, groups by name within each.
    pub lines: Vec<ReportLine>,
    pub total: Micros,
    /// (instance, instance type, or `volume.<type>`, `address`) pairs used with no price: their seconds are not in the totals.
    pub unpriced: Vec<(String, String)>,
}

impl Costs {
    /// A cost report (see the module's comment for who sees what).
    pub async fn report(&self, actor: &Actor, q: &ReportQuery) -> ServiceResult<CostReport> {
        let now = self.clock.now();
        let to = q.to.min(now);
        if q.from >= q.to {
            return Err(ServiceError::invalid_field("from", "from must be before to"));
        }
        if q.to - q.from > Duration::days(MAX_REPORT_DAYS) {
            return Err(ServiceError::invalid_field("to", format!("a report covers at most {MAX_REPORT_DAYS} days")));
        }
        let (user, project) = if actor.is_admin {
            (q.user.as_ref().map(ToString::to_string), q.project.as_ref().map(ToString::to_string))
        } else {
            (None, Some(actor.project.to_string()))
        };
        let filter = PeriodFilter {
            user,
            project,
            instance: q.instance.as_ref().map(ToString::to_string),
            from: q.from.timestamp_millis(),
            to: to.timestamp_millis().max(q.from.timestamp_millis()),
        };
        let snap = self.registry.snapshot();
        let book = &snap.prices;
        let mut buckets = Vec::new();
        let mut b = q.from;
        while b < to {
            let end = q.granularity.next(b).min(to);
            buckets.push(Period { from: b, to: end });
            b = end;
        }
        let mut acc: BTreeMap<(DateTime<Utc>, String), ReportLine> = BTreeMap::new();
        let mut unpriced = BTreeSet::new();
        // Each VM billed as the store hands over its history. Prices, markups
        // and minimums looked up once per (instance, type); each VM billed
        // only in the buckets its running spans can touch (a span's
        // minimum is charged in a bucket that holds its end, inclusive).
        let mut rates: HashMap<String, HashMap<String, Rate<'_>>> = HashMap::new();
        let with_tags = matches!(q.group_by, GroupBy::Tag(_));
        self.store
            .each_vm_history(&filter, with_tags, |vm, history, types| {
                let spans = metering::running_spans(history, to);
                let (Some(first), Some(last)) = (spans.first(), spans.last()) else { return };
                let (lo, hi) = (first.from, spans.iter().map(|s| s.to).max().unwrap_or(last.to));
                // Runs of spans of one type each (one run unless its type changed).
                let runs = metering::runs_by_type(&spans, types, &vm.instance_type);
                let by_type = rates.entry(vm.instance.clone()).or_default();
                for &(kind, _) in &runs {
                    if !by_type.contains_key(kind) {
                        by_type.insert(
                            kind.to_string(),
                            metering::vm_rate(book, &vm.instance, kind, snap.billing_minimum_seconds(&vm.instance)),
                        );
                    }
                }
                let group: &str = match &q.group_by {
                    GroupBy::User => &vm.user,
                    GroupBy::Project => &vm.project,
                    GroupBy::Instance => &vm.instance,
                    GroupBy::InstanceType => &vm.instance_type,
                    GroupBy::Image => &vm.image,
                    GroupBy::Tag(k) => vm.tags.get(k).map_or("(untagged)", String::as_str),
                };
                for bucket in buckets.iter().filter(|b| b.to >= lo && b.from <= hi) {
                    // The VM's usage in the bucket per group: one, or one per type it ran as.
                    let mut usages: Vec<(&str, Usage)> = Vec::with_capacity(1);
                    for &(kind, run) in &runs {
                        let Some(&(schedule, markup, minimum)) = by_type.get(kind) else { continue };
                        let u = metering::bill(run, minimum, schedule, markup, *bucket);
                        if u.unpriced_seconds > 0 {
                            unpriced.insert((vm.instance.clone(), kind.to_string()));
                        }
                        let group = if q.group_by == GroupBy::InstanceType { kind } else { group };
                        match usages.iter_mut().find(|(g, _)| *g == group) {
                            Some((_, sum)) => sum.absorb(u),
                            None => usages.push((group, u)),
                        }
                    }
                    for (group, u) in usages {
                        if u.seconds == 0 {
                            continue;
                        }
                        let line = line_of(&mut acc, bucket.from, group, actor.is_admin);
                        line.vms += 1;
                        line.starts += u.starts;
                        line.add(&u);
                    }
                }
            })
            .await?;
        // Volumes cost per GiB-month while they exist, Elastic IPs per hour while allocated.
        let (volumes, addresses) = self.store.resources_in_period(&filter).await?;
        for (kind, spans) in [("volume", volumes), ("address", addresses)] {
            for r in spans {
                let (item, size) = if kind == "volume" {
                    let t = if r.volume_type.is_empty() { "standard".to_string() } else { r.volume_type.clone() };
                    (PriceItem::Volume(t), Some(r.size_gib))
                } else {
                    (PriceItem::Address, None)
                };
                let schedule = book.schedule(&r.instance, &item);
                let (markup, _) = book.markup(&r.instance);
                let group = match &q.group_by {
                    GroupBy::User => r.user.clone(),
                    GroupBy::Project => r.project.clone(),
                    GroupBy::Instance => r.instance.clone(),
                    GroupBy::InstanceType => item.to_string(),
                    GroupBy::Image => format!("({kind})"),
                    GroupBy::Tag(k) => r.tags.get(k).cloned().unwrap_or_else(|| "(untagged)".to_string()),
                };
                for bucket in &buckets {
                    let u = metering::bill_resource(r.from, r.to, to, size, schedule, markup, *bucket);
                    if u.seconds == 0 {
                        continue;
                    }
                    if u.unpriced_seconds > 0 {
                        unpriced.insert((r.instance.clone(), item.to_string()));
                    }
                    let line = line_of(&mut acc, bucket.from, &group, actor.is_admin);
                    if kind == "volume" {
                        line.volumes += 1;
                    } else {
                        line.addresses += 1;
                    }
                    line.add(&u);
                }
            }
        }
        let lines: Vec<ReportLine> = acc.into_values().collect();
        Ok(CostReport {
            currency: book.currency().to_string(),
            period: Period { from: q.from, to },
            group_by: q.group_by.as_text(),
            granularity: q.granularity,
            estimate: true,
            total: lines.iter().map(|l| l.cost).sum(),
            lines,
            unpriced: unpriced.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parameters_parse_with_clear_refusals() {
        assert_eq!(GroupBy::parse("tag:team").unwrap(), GroupBy::Tag("team".into()));
        assert_eq!(GroupBy::parse("instance_type").unwrap().as_text(), "instance_type");
        assert!(GroupBy::parse("colour").unwrap_err().to_string().contains("'colour' is not user"));
        assert!(GroupBy::parse("tag:").is_err());
        assert_eq!(Granularity::parse("day").unwrap(), Granularity::Day);
        assert!(Granularity::parse("week").unwrap_err().to_string().contains("'week'"));
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(Granularity::Day.next(t("2026-12-31T13:00:00Z")), t("2027-01-01T00:00:00Z"));
        assert_eq!(Granularity::Month.next(t("2026-12-15T00:00:00Z")), t("2027-01-01T00:00:00Z"));
        assert_eq!(Granularity::Month.next(t("2026-02-01T00:00:00Z")), t("2026-03-01T00:00:00Z"));
    }
}
