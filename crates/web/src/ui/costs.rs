//! The Costs page: what a month cost (default: this month so far), per
//! day, stacked by a group (instance, instance type, image or a tag's
//! value; admins also user and project), drawn on the server as an inline
//! SVG (no script), with the same numbers in a table below it (per group
//! totals and the grand total), labelled as estimates, and the instance
//! types that ran unpriced. Users see the project they work in; admins see
//! everyone's and filter by user and instance. The figures are the core's
//! cost report (the same as `GET /api/v1/costs`), amounts written exactly
//! as the API writes them.

use super::context::Ctx;
use super::errors::UiResult;
use super::form::FormErrors;
use super::{html, Chrome};
use crate::api::costs::amount;
use actix_web::web;
use askama::Template;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::costs::report::{CostReport, Granularity, GroupBy, ReportQuery};
use cloudbroker_core::domain::{InstanceName, UserName};
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/costs", web::get().to(costs));
}

/// Groups the chart draws apart; the rest are summed as "(others)".
const MAX_SERIES: usize = 8;

/// Colours of the series (distinguishable, and readable on white).
const PALETTE: [&str; 9] = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#64748b"];

#[derive(Deserialize, Default)]
pub(super) struct CostsQuery {
    /// `YYYY-MM` (default: this month).
    month: Option<String>,
    /// `instance`, `instance_type`, `image`, `tag` (with `tag`), admins also `user`, `project`.
    group_by: Option<String>,
    /// The tag key when grouping by tag.
    tag: Option<String>,
    /// Admins: one user's VMs.
    user: Option<String>,
    /// Admins: one instance's VMs.
    instance: Option<String>,
}

/// An amount as the UI shows it: rounded to cents (`cents`, what
/// `{{ m }}` writes), with the exact figure for a `title` attribute
/// (`exact`, as the JSON API writes it). The JSON API keeps exact figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Money {
    pub cents: String,
    pub exact: String,
}

impl Money {
    pub(crate) fn of(m: Micros) -> Self {
        Self { cents: m.to_decimal(2), exact: amount(m) }
    }

    /// No figure: unpriced.
    fn unpriced() -> Self {
        Self { cents: "—".into(), exact: "unpriced".into() }
    }

    /// For text with no attribute (a chart's tooltip): cents, then the exact figure when it differs.
    fn text(&self) -> String {
        if Micros::parse(&self.cents).ok() == Micros::parse(&self.exact).ok() {
            self.cents.clone()
        } else {
            format!("{} ({})", self.cents, self.exact)
        }
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cents)
    }
}

/// One group's line of the table (and series of the chart).
struct GroupRow {
    name: String,
    colour: &'static str,
    seconds: i64,
    unpriced_seconds: i64,
    cost: Money,
    cost_micros: i64,
}

impl GroupRow {
    fn hours(&self) -> String {
        format!("{:.2}", self.seconds as f64 / 3600.0)
    }

    fn unpriced_hours(&self) -> String {
        format!("{:.2}", self.unpriced_seconds as f64 / 3600.0)
    }
}

#[derive(Template)]
#[template(path = "costs.html")]
struct CostsPage {
    c: Chrome,
    month: String,
    months: Vec<(String, String)>,
    group_by: String,
    group_choices: Vec<(&'static str, &'static str)>,
    tag: String,
    user: String,
    instance: String,
    instances: Vec<String>,
    currency: String,
    /// The chart (inline SVG, escaped by construction).
    svg: String,
    rows: Vec<GroupRow>,
    total: Money,
    /// Up to when the month is counted (`2026-12-07 04:35 UTC`).
    counted_to: String,
    unpriced: Vec<(String, String)>,
    errors: FormErrors,
}

impl CostsPage {
    /// Whether `v` is the grouping shown.
    fn is_group(&self, v: &str) -> bool {
        self.group_by == v
    }

    /// The grouping shown, for people (a tag's key for a tag).
    fn group_label(&self) -> String {
        if self.group_by == "tag" {
            return format!("tag {}", self.tag);
        }
        self.group_choices.iter().find(|(v, _)| *v == self.group_by).map_or_else(|| self.group_by.clone(), |(_, l)| l.to_string())
    }
}

/// A VM's cost this month on its own page, each line saying where its
/// figure came from (seconds, rate with the markup; admins: list rate,
/// markup and the price's origin).
pub(super) struct VmCostView {
    pub currency: String,
    pub cost: Money,
    pub seconds: i64,
    pub unpriced_seconds: i64,
    pub lines: Vec<CostLine>,
}

/// One line of a VM's cost.
pub(super) struct CostLine {
    pub from: String,
    pub to: String,
    pub seconds: i64,
    /// Per hour with the markup, or `unpriced`.
    pub rate: String,
    /// Or `—` (unpriced).
    pub cost: Money,
    /// The minimum billed per start beyond the running time.
    pub minimum: bool,
    /// Admins: the list rate, markup and the price's origin.
    pub detail: String,
}

impl VmCostView {
    pub(super) fn of(c: cloudbroker_core::costs::VmCost, admin: bool) -> Self {
        let lines = c
            .usage
            .lines
            .iter()
            .map(|l| {
                let rate = l.rate.map_or_else(|| "unpriced".to_string(), |r| format!("{}/h", amount(r.with_markup(l.markup))));
                let detail = match (&l.rate, &l.price_origin) {
                    (Some(r), Some(o)) if admin => format!("list {}/h, markup {}, {o}", amount(*r), l.markup.to_percent()),
                    _ => String::new(),
                };
                CostLine {
                    from: super::form::when(&l.from),
                    to: super::form::when(&l.to),
                    seconds: l.seconds,
                    rate,
                    cost: l.cost.map_or_else(Money::unpriced, Money::of),
                    minimum: l.minimum,
                    detail,
                }
            })
            .collect();
        Self {
            currency: c.currency,
            cost: Money::of(c.usage.cost),
            seconds: c.usage.seconds,
            unpriced_seconds: c.usage.unpriced_seconds,
            lines,
        }
    }
}

/// The first instant of `YYYY-MM`.
fn parse_month(s: &str) -> Option<DateTime<Utc>> {
    let (y, m) = s.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(2000..=2999).contains(&y) || y.to_string().len() != 4 || m.to_string().len() > 2 || s.len() != 7 {
        return None;
    }
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()
}

fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t + Duration::days(31))
}

fn prev_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 1 { (t.year() - 1, 12) } else { (t.year(), t.month() - 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t - Duration::days(28))
}

/// Escapes text for SVG (XML).
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A round step for `ticks` axis steps covering `max` micros (1, 2, 2.5 or 5 × 10^k).
fn nice_step(max: i64, ticks: i64) -> i64 {
    let raw = (max + ticks - 1) / ticks;
    let mut unit = 1i64;
    while unit * 10 <= raw {
        unit *= 10;
    }
    for m in [1, 2, 5, 10] {
        if unit * m >= raw {
            return (unit * m).max(1);
        }
    }
    unit * 10
}

/// An axis label: as few decimals as the step needs.
fn axis_label(v: i64, step: i64) -> String {
    let decimals = match step {
        s if s >= 1_000_000 => 0,
        s if s >= 10_000 => 2,
        s if s >= 100 => 4,
        _ => 6,
    };
    Micros(v).to_decimal(decimals)
}

/// The chart: one bar per day of the month, stacked by series (the groups
/// of `rows`, in their order), with a y axis in the currency, day numbers
/// on the x axis and a legend. `days[d][s]` is day `d`'s cost of series `s`.
fn chart(month: DateTime<Utc>, days: &[Vec<i64>], rows: &[GroupRow], currency: &str) -> String {
    use std::fmt::Write as _;
    let n = days.len().max(1) as i64;
    let (left, top, plot_w, plot_h) = (70i64, 20i64, 780i64, 220i64);
    let legend_rows = (rows.len() as i64 + 3) / 4;
    let height = top + plot_h + 40 + legend_rows * 20 + 10;
    let width = left + plot_w + 20;
    let max = days.iter().map(|d| d.iter().sum::<i64>()).max().unwrap_or(0);
    let step = nice_step(max.max(1), 4);
    let top_value = step * 4;
    let title = format!("Spend per day, {}, stacked by group ({currency})", month.format("%B %Y"));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="cost-chart" role="img" aria-labelledby="cost-chart-title" viewBox="0 0 {width} {height}" width="100%" font-family="system-ui, sans-serif" font-size="12"><title id="cost-chart-title">{}</title>"#,
        xml(&title)
    );
    // Grid lines and y labels.
    for i in 0..=4 {
        let v = step * i;
        let y = top + plot_h - plot_h * i / 4;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="1"/><text x="{}" y="{}" text-anchor="end" fill="#5b6578" class="y-label">{}</text>"##,
            left + plot_w,
            if i == 0 { "#5b6578" } else { "#e5e8ee" },
            left - 6,
            y + 4,
            axis_label(v, step)
        );
    }
    let _ = write!(
        s,
        r##"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle" fill="#5b6578">{}</text>"##,
        top + plot_h / 2,
        top + plot_h / 2,
        xml(currency)
    );
    // Bars.
    let slot = plot_w / n;
    let bar = (slot * 7 / 10).max(2);
    for (d, values) in days.iter().enumerate() {
        let x = left + slot * d as i64 + (slot - bar) / 2;
        let mut acc = 0i64;
        let day = month + Duration::days(d as i64);
        for (si, v) in values.iter().enumerate() {
            if *v <= 0 {
                continue;
            }
            let y0 = top + plot_h - (acc * plot_h + top_value / 2) / top_value;
            acc += v;
            let y1 = top + plot_h - (acc * plot_h + top_value / 2) / top_value;
            let h = (y0 - y1).max(1);
            let (name, colour) = rows.get(si).map_or(("", "#64748b"), |r| (r.name.as_str(), r.colour));
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{}" width="{bar}" height="{h}" fill="{colour}" data-day="{}" data-group="{}"><title>{} {}: {} {}</title></rect>"#,
                y0 - h,
                day.format("%Y-%m-%d"),
                xml(name),
                day.format("%b %-d"),
                xml(name),
                currency,
                Money::of(Micros(*v)).text()
            );
        }
        // Day numbers: every day when they fit, else every other.
        if n <= 16 || d % 2 == 0 {
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#5b6578" class="x-label">{}</text>"##,
                left + slot * d as i64 + slot / 2,
                top + plot_h + 16,
                d + 1
            );
        }
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#5b6578">Day of {}</text>"##,
        left + plot_w / 2,
        top + plot_h + 32,
        month.format("%B %Y")
    );
    // Legend.
    for (i, r) in rows.iter().enumerate() {
        let (col, row) = (i as i64 % 4, i as i64 / 4);
        let (x, y) = (left + col * (plot_w / 4), top + plot_h + 48 + row * 20);
        let mut name: String = r.name.chars().take(28).collect();
        if r.cost_micros == 0 && r.unpriced_seconds > 0 {
            name.push_str(" (no price)");
        }
        let _ = write!(
            s,
            r##"<g class="legend-item"><rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" fill="#1f2937">{}</text></g>"##,
            y - 10,
            r.colour,
            x + 18,
            y,
            xml(&name)
        );
    }
    if max == 0 {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#5b6578" font-size="14">Nothing was spent this month so far.</text>"##,
            left + plot_w / 2,
            top + plot_h / 2
        );
    }
    s.push_str("</svg>");
    s
}

/// The series of a report: its groups by total (largest first; past
/// [`MAX_SERIES`] summed as "(others)"), and each day's cost per series.
fn series(report: &CostReport, month: DateTime<Utc>, days: usize) -> (Vec<GroupRow>, Vec<Vec<i64>>) {
    let mut totals: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for l in &report.lines {
        let t = totals.entry(l.group.as_str()).or_default();
        t.0 += l.cost.0;
        t.1 += l.seconds;
        t.2 += l.unpriced_seconds;
    }
    let mut order: Vec<(&str, (i64, i64, i64))> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rows: Vec<GroupRow> = Vec::new();
    for (i, (name, (_, seconds, unpriced))) in order.iter().enumerate() {
        let si = i.min(MAX_SERIES);
        index.insert(name, si);
        if si < rows.len() {
            let r = &mut rows[si];
            r.seconds += seconds;
            r.unpriced_seconds += unpriced;
        } else {
            rows.push(GroupRow {
                name: if si == MAX_SERIES { "(others)".into() } else { name.to_string() },
                colour: PALETTE[si.min(PALETTE.len() - 1)],
                seconds: *seconds,
                unpriced_seconds: *unpriced,
                cost: Money::default(),
                cost_micros: 0,
            });
        }
    }
    let mut per_series = vec![0i64; rows.len()];
    let mut grid = vec![vec![0i64; rows.len()]; days];
    for l in &report.lines {
        let si = index[l.group.as_str()];
        per_series[si] += l.cost.0;
        let d = (l.bucket - month).num_days();
        if let Some(day) = usize::try_from(d).ok().and_then(|d| grid.get_mut(d)) {
            day[si] += l.cost.0;
        }
    }
    for (r, c) in rows.iter_mut().zip(per_series) {
        r.cost = Money::of(Micros(c));
        r.cost_micros = c;
    }
    (rows, grid)
}

async fn costs(ui: Ctx, q: web::Query<CostsQuery>) -> UiResult {
    let q = q.into_inner();
    let (actor, broker) = (ui.actor(), &ui.broker);
    let admin = actor.is_admin;
    let now = broker.clock.now();
    let this_month = cloudbroker_core::costs::month_to(now).from;
    let mut errors = FormErrors::none();
    let month = match q.month.as_deref().filter(|m| !m.is_empty()) {
        None => this_month,
        Some(m) => parse_month(m).unwrap_or_else(|| {
            errors.add("month", "Choose a month (YYYY-MM).");
            this_month
        }),
    };
    let mut group_choices =
        vec![("instance", "Connector instance"), ("instance_type", "Instance type"), ("image", "Image"), ("tag", "Tag")];
    if admin {
        group_choices.splice(0..0, [("user", "User"), ("project", "Project")]);
    }
    let tag = q.tag.clone().unwrap_or_default().trim().to_string();
    let mut group_by_text = q.group_by.clone().filter(|g| !g.is_empty()).unwrap_or_else(|| if admin { "user" } else { "instance" }.into());
    if !group_choices.iter().any(|(v, _)| *v == group_by_text) {
        errors.add("group_by", "Choose one of the groupings offered.");
        group_by_text = "instance".into();
    }
    let group_by = if group_by_text == "tag" {
        match GroupBy::parse(&format!("tag:{tag}")) {
            Ok(g) => g,
            Err(_) => {
                errors.add("tag", "Name the tag to group by (e.g. team).");
                group_by_text = "instance".into();
                GroupBy::Instance
            }
        }
    } else {
        GroupBy::parse(&group_by_text).unwrap_or(GroupBy::Instance)
    };
    let user_text = if admin { q.user.clone().unwrap_or_default().trim().to_string() } else { String::new() };
    let user = match user_text.as_str() {
        "" => None,
        u => match UserName::parse(u) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.add("user", e.message);
                None
            }
        },
    };
    let instance_text = if admin { q.instance.clone().unwrap_or_default() } else { String::new() };
    let instance = match instance_text.as_str() {
        "" => None,
        i => match InstanceName::parse(i) {
            Ok(i) => Some(i),
            Err(e) => {
                errors.add("instance", e.to_string());
                None
            }
        },
    };
    let end = next_month(month);
    let query = ReportQuery { from: month, to: end, group_by, granularity: Granularity::Day, user, project: None, instance };
    let report = if month > now { None } else { Some(broker.costs.report(actor, &query).await?) };
    let days = usize::try_from((end - month).num_days()).unwrap_or(31);
    let currency = broker.costs.currency();
    let (rows, grid, total, unpriced, counted_to) = match &report {
        Some(r) => {
            let (rows, grid) = series(r, month, days);
            (rows, grid, Money::of(r.total), r.unpriced.clone(), super::form::when(&r.period.to))
        }
        None => (Vec::new(), vec![Vec::new(); days], Money::of(Micros(0)), Vec::new(), String::new()),
    };
    let svg = chart(month, &grid, &rows, &currency);
    let mut months = Vec::new();
    let mut m = this_month;
    for _ in 0..12 {
        months.push((m.format("%Y-%m").to_string(), m.format("%B %Y").to_string()));
        m = prev_month(m);
    }
    let month_value = month.format("%Y-%m").to_string();
    if !months.iter().any(|(v, _)| *v == month_value) {
        months.push((month_value.clone(), month.format("%B %Y").to_string()));
    }
    let instances = if admin { broker.system.connectors(actor).iter().map(|i| i.name.to_string()).collect() } else { Vec::new() };
    let status = errors.status();
    Ok(html(
        status,
        &CostsPage {
            c: ui.chrome("costs", "Costs"),
            month: month_value,
            months,
            group_by: group_by_text,
            group_choices,
            tag,
            user: user_text,
            instance: instance_text,
            instances,
            currency,
            svg,
            rows,
            total,
            counted_to,
            unpriced,
            errors,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round_and_months_parse() {
        assert_eq!(nice_step(1, 4), 1);
        assert_eq!(nice_step(10_000, 4), 5_000);
        assert_eq!(nice_step(1_200_000, 4), 500_000);
        assert_eq!(nice_step(2_000_001, 4), 1_000_000);
        assert_eq!(axis_label(500_000, 500_000), "0.50");
        assert_eq!(axis_label(2_000_000, 1_000_000), "2");
        assert!(parse_month("2026-12").is_some());
        for bad in ["2026-13", "2026-1", "26-12", "x", "2026-12-01"] {
            assert!(parse_month(bad).is_none(), "{bad}");
        }
        assert!(xml("<a & 'b'>").contains("&lt;a &amp; &#39;b&#39;&gt;"));
    }
}
