//! Costs (issue 25): the price list (`GET /prices`), a VM's cost
//! (`GET /vms/{id}/cost`, only of a VM the caller may see: else 404) and
//! cost reports (`GET /costs`, JSON or, with `Accept: text/csv`, CSV).
//! Every amount is written the same way: a decimal string in the broker's
//! currency, exact (at most six decimals, trailing zeros past the second
//! dropped: `"0.0116"`, `"1.50"`), next to the same amount as an integer
//! in millionths (`*_micros`). Users see prices and costs with markups;
//! admins also list prices, markups and where each price was given.

use super::actor::ApiActor;
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use cloudbroker_core::costs::metering::{Period, Usage};
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::costs::prices::PriceItem;
use cloudbroker_core::costs::report::{CostReport, Granularity, GroupBy, ReportQuery};
use cloudbroker_core::costs::{month_to, PriceList};
use cloudbroker_core::domain::{InstanceName, ProjectName, UserName, VmId};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An amount as the API writes it: exact, at most six decimals, trailing
/// zeros past the second dropped (`0.0116`, `1.50`, `0.00`).
pub(crate) fn amount(m: Micros) -> String {
    let mut s = m.to_decimal(6);
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(s.len()) > 3 {
        s.pop();
    }
    s
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One price as the caller sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct PriceOut {
    /// The connector instance.
    instance: String,
    /// `instance` (an instance type, per hour), `volume` (a volume type, per GiB-month) or `address` (an Elastic IP, per hour).
    #[schema(pattern = "^(instance|volume|address)$")]
    kind: String,
    /// The instance or volume type (absent for `address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    name: Option<String>,
    /// `hour` or `GiB-month`.
    unit: String,
    /// The price with the instance's markup: a decimal string in the currency.
    #[schema(example = "0.0116")]
    price: String,
    /// The same in millionths of the currency.
    price_micros: i64,
    /// From when it applies (usage before keeps the earlier price).
    effective: DateTime<Utc>,
    /// Admins only: the list price (decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    list_price: Option<String>,
    /// Admins only: the markup, as a percentage (`10%`, `-5%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    markup: Option<String>,
    /// Admins only: where it was given (`file:line`, or `set by admin NAME at TIME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    origin: Option<String>,
}

/// The price list.
#[derive(Serialize, ToSchema)]
pub(super) struct PricesOut {
    /// The broker's currency (ISO 4217).
    currency: String,
    prices: Vec<PriceOut>,
    /// Admins only: lines of the price files that were not loaded (`file:line: why`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    errors: Vec<String>,
}

impl PricesOut {
    fn of(l: PriceList) -> Self {
        let prices = l.prices.into_iter().map(PriceOut::of).collect();
        Self { currency: l.currency, prices, errors: l.errors }
    }
}

impl PriceOut {
    /// One price as the API writes it.
    pub(super) fn of(p: cloudbroker_core::costs::PriceView) -> Self {
        let (kind, name, unit) = match p.item {
            PriceItem::Instance(t) => ("instance", Some(t), "hour"),
            PriceItem::Volume(t) => ("volume", Some(t), "GiB-month"),
            PriceItem::Address => ("address", None, "hour"),
        };
        PriceOut {
            instance: p.instance,
            kind: kind.into(),
            name,
            unit: unit.into(),
            price: amount(p.price),
            price_micros: p.price.0,
            effective: p.effective,
            list_price: p.list_price.map(amount),
            markup: p.markup.map(|m| m.to_percent()),
            origin: p.origin,
        }
    }
}

/// The price list: prices with markups; admins also see list prices,
/// markups, where each was given and the lines of price files not loaded.
#[utoipa::path(get, path = "/api/v1/prices", tag = "costs", responses((status = 200, body = PricesOut)))]
pub(super) async fn list_prices(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(PricesOut::of(broker.costs.price_list(&a.0)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PeriodParams {
    /// Start (RFC 3339; default: the first instant of this month, UTC).
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// End, excluded (RFC 3339; default and at most: now).
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
    /// The project to act in (you must be a member; admins enter any).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    #[allow(dead_code)] // Read and entered by the `ApiActor` extractor.
    project: Option<String>,
}

fn time(field: &'static str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::field(field, format!("{field} must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")))
    })
    .transpose()
}

/// `from` and `to` as given, defaults filled in: from the first instant of
/// `to`'s month (or this month's), to now.
fn period(broker: &Broker, from: Option<&str>, to: Option<&str>) -> Result<Period, ApiError> {
    let now = broker.clock.now();
    let (from, to_given) = (time("from", from)?, time("to", to)?);
    let to = to_given.unwrap_or(now);
    // The month `to` falls in (a given `to` is excluded: its month is that of the instant before).
    let last = if to_given.is_some() { to - Duration::milliseconds(1) } else { to };
    let from = from.unwrap_or_else(|| month_to(last.min(now)).from);
    if from >= to {
        // The month's first instant: nothing to count yet.
        if from == to {
            return Ok(Period { from, to });
        }
        return Err(ApiError::field("to", "to must be after from"));
    }
    Ok(Period { from, to })
}

/// One stretch of a VM's billed time and where its figure came from.
#[derive(Serialize, ToSchema)]
pub(super) struct UsageLineOut {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    seconds: i64,
    /// The price per hour with the markup (absent: unpriced).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    rate: Option<String>,
    /// The cost with the markup (absent: unpriced, not free).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    cost: Option<String>,
    /// Whether this line is the minimum billed per start beyond the running time.
    minimum: bool,
    /// Admins only: the list price per hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    list_rate: Option<String>,
    /// Admins only: the markup applied (`10%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    markup: Option<String>,
    /// Admins only: where the price was given (`file:line`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    price_origin: Option<String>,
}

/// A VM's cost over a period.
#[derive(Serialize, ToSchema)]
pub(super) struct VmCostOut {
    vm: String,
    instance: String,
    instance_type: String,
    currency: String,
    from: DateTime<Utc>,
    /// The period's end (never past now).
    to: DateTime<Utc>,
    /// Always true for now: figures come from the broker's price lists, not the cloud's invoice.
    estimate: bool,
    /// Seconds billed (running time, plus the minimum per start).
    seconds: i64,
    /// How many times it started running within the period.
    starts: u32,
    /// The cost with the markup, of the priced seconds (decimal string).
    cost: String,
    cost_micros: i64,
    /// Admins only: the same at list prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    list_cost: Option<String>,
    /// Running seconds with no price: not in `cost` (unknown, never free).
    unpriced_seconds: i64,
    lines: Vec<UsageLineOut>,
}

fn usage_lines(u: &Usage, admin: bool) -> Vec<UsageLineOut> {
    u.lines
        .iter()
        .map(|l| UsageLineOut {
            from: l.from,
            to: l.to,
            seconds: l.seconds,
            rate: l.rate.map(|r| amount(r.with_markup(l.markup))),
            cost: l.cost.map(amount),
            minimum: l.minimum,
            list_rate: l.rate.filter(|_| admin).map(amount),
            markup: admin.then(|| l.markup.to_percent()),
            price_origin: l.price_origin.clone().filter(|_| admin),
        })
        .collect()
}

/// What a VM cost over a period (default: this month so far), per second
/// with the minimum per start, each line saying the rate and seconds it
/// came from. 404 for a VM the caller may not see.
#[utoipa::path(get, path = "/api/v1/vms/{id}/cost", tag = "costs",
    params(("id" = String, Path, description = "VM id (vm-...)"), PeriodParams),
    responses((status = 200, body = VmCostOut)))]
pub(super) async fn vm_cost(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>, q: web::Query<PeriodParams>) -> ApiResult {
    let id = VmId::parse(&id)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("VM '{}'", id.chars().take(64).collect::<String>())))))?;
    // Whether the VM exists for the caller first: a 404 says nothing of the period.
    let vm = broker.provisioning.get(&a.0, &id).await?;
    let period = period(&broker, q.from.as_deref(), q.to.as_deref())?;
    let c = broker.costs.vm_cost(&vm, Some(period)).await?;
    let admin = a.0.is_admin;
    ok(VmCostOut {
        vm: vm.id.to_string(),
        instance: vm.instance.to_string(),
        instance_type: vm.instance_type.clone(),
        currency: c.currency,
        from: c.period.from,
        to: c.period.to.max(c.period.from),
        estimate: c.estimate,
        seconds: c.usage.seconds,
        starts: c.usage.starts,
        cost: amount(c.usage.cost),
        cost_micros: c.usage.cost.0,
        list_cost: admin.then(|| amount(c.usage.list_cost)),
        unpriced_seconds: c.usage.unpriced_seconds,
        lines: usage_lines(&c.usage, admin),
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportParams {
    /// Start (RFC 3339; default: the first instant of this month, UTC). At most 400 days before `to`.
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<String>,
    /// End, excluded (RFC 3339; default: now; counted up to now at most). After `from`.
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<String>,
    /// `user`, `project`, `instance`, `instance_type`, `image` or `tag:KEY`
    /// (a tag's value; `(untagged)` for VMs without it). Default: `user`
    /// for admins, `instance` for others.
    #[param(pattern = r"^(user|project|instance|instance_type|image|tag:[^\x00-\x1f\x7f-\x9f]{1,32})$")]
    group_by: Option<String>,
    /// `day` (default) or `month`: the length of each line's bucket.
    #[param(pattern = "^(day|month)$")]
    granularity: Option<String>,
    /// Admins only: one user's VMs (others get 403).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    user: Option<String>,
    /// The project to act in (you must be a member; admins enter any): its
    /// VMs. Absent: your personal project's, or for admins everyone's.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    project: Option<String>,
    /// Only the VMs of this connector instance.
    #[param(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 63)]
    instance: Option<String>,
}

/// One report line: a group's cost in one bucket.
#[derive(Serialize, ToSchema)]
pub(super) struct ReportLineOut {
    /// The bucket's start (a day's or a month's first instant, or the period's start).
    bucket: DateTime<Utc>,
    /// The group's value (a user, an instance type, a tag's value...).
    group: String,
    /// VMs that ran in the bucket.
    vms: u32,
    /// Seconds billed.
    seconds: i64,
    starts: u32,
    /// With markups (decimal string).
    cost: String,
    cost_micros: i64,
    /// Admins only: at list prices (decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    list_cost: Option<String>,
    /// Running seconds with no price (not in `cost`).
    unpriced_seconds: i64,
}

/// An instance type that ran with no price.
#[derive(Serialize, ToSchema)]
pub(super) struct UnpricedOut {
    instance: String,
    instance_type: String,
}

/// A cost report.
#[derive(Serialize, ToSchema)]
pub(super) struct ReportOut {
    currency: String,
    from: DateTime<Utc>,
    /// The end counted (never past now).
    to: DateTime<Utc>,
    group_by: String,
    #[schema(pattern = "^(day|month)$")]
    granularity: String,
    /// Always true for now: figures come from the broker's price lists, not the cloud's invoice.
    estimate: bool,
    /// Buckets in time order, groups by name within each.
    lines: Vec<ReportLineOut>,
    /// The sum of the lines' costs (decimal string).
    total: String,
    total_micros: i64,
    /// Types that ran with no price: their seconds are not in the totals.
    unpriced: Vec<UnpricedOut>,
}

impl ReportOut {
    fn of(r: CostReport) -> Self {
        Self {
            currency: r.currency,
            from: r.period.from,
            to: r.period.to.max(r.period.from),
            group_by: r.group_by,
            granularity: match r.granularity {
                Granularity::Day => "day".into(),
                Granularity::Month => "month".into(),
            },
            estimate: r.estimate,
            lines: r
                .lines
                .into_iter()
                .map(|l| ReportLineOut {
                    bucket: l.bucket,
                    group: l.group,
                    vms: l.vms,
                    seconds: l.seconds,
                    starts: l.starts,
                    cost: amount(l.cost),
                    cost_micros: l.cost.0,
                    list_cost: l.list_cost.map(amount),
                    unpriced_seconds: l.unpriced_seconds,
                })
                .collect(),
            total: amount(r.total),
            total_micros: r.total.0,
            unpriced: r.unpriced.into_iter().map(|(instance, instance_type)| UnpricedOut { instance, instance_type }).collect(),
        }
    }

    /// As CSV (RFC 4180): a header line, then one line per report line.
    fn csv(&self, admin: bool) -> String {
        let mut out = String::from("bucket,group,vms,seconds,starts,unpriced_seconds,cost,currency");
        if admin {
            out.push_str(",list_cost");
        }
        out.push_str("\r\n");
        for l in &self.lines {
            let mut row = vec![
                rfc3339(l.bucket),
                csv_field(&l.group),
                l.vms.to_string(),
                l.seconds.to_string(),
                l.starts.to_string(),
                l.unpriced_seconds.to_string(),
                l.cost.clone(),
                self.currency.clone(),
            ];
            if admin {
                row.push(l.list_cost.clone().unwrap_or_default());
            }
            out.push_str(&row.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Whether the caller asked for CSV.
fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))))
}

/// A cost report over a period (default: this month so far), per day or
/// month, grouped: users get the project they act in, admins everyone's
/// (or one user's, project's or instance's). With `Accept: text/csv`, the
/// same lines as CSV (a header line, then `bucket,group,vms,seconds,starts,unpriced_seconds,cost,currency`
/// and admins' `list_cost`; amounts as decimal strings).
#[utoipa::path(get, path = "/api/v1/costs", tag = "costs", params(ReportParams),
    responses((status = 200, description = "The report (JSON), or as CSV with `Accept: text/csv`",
        content((ReportOut = "application/json"), (String = "text/csv")))))]
pub(super) async fn cost_report(req: HttpRequest, a: ApiActor, broker: web::Data<Broker>, q: web::Query<ReportParams>) -> ApiResult {
    let q = q.into_inner();
    let admin = a.0.is_admin;
    let p = period(&broker, q.from.as_deref(), q.to.as_deref())?;
    let group_by = match q.group_by.as_deref() {
        Some(g) => GroupBy::parse(g)?,
        None if admin => GroupBy::User,
        None => GroupBy::Instance,
    };
    let granularity = q.granularity.as_deref().map(Granularity::parse).transpose()?.unwrap_or(Granularity::Day);
    let user = q.user.as_deref().map(|u| UserName::parse(u).map_err(|e| ApiError::field("user", e.message))).transpose()?;
    if user.is_some() && !admin {
        return Err(ApiError(ServiceError::Forbidden("only admins filter reports by user".into())));
    }
    let instance =
        q.instance.as_deref().map(|i| InstanceName::parse(i).map_err(|e| ApiError::field("instance", e.to_string()))).transpose()?;
    // Entered by the extractor: for users the core takes the project they act in anyway.
    let project: Option<ProjectName> = q.project.is_some().then(|| a.0.project.clone());
    let report = if p.from == p.to {
        // The first instant of the month: an empty report.
        let query = ReportQuery { from: p.from, to: p.from + Duration::seconds(1), group_by, granularity, user, project, instance };
        let mut r = broker.costs.report(&a.0, &query).await?;
        r.period.to = p.from;
        r
    } else {
        let query = ReportQuery { from: p.from, to: p.to, group_by, granularity, user, project, instance };
        broker.costs.report(&a.0, &query).await?
    };
    let out = ReportOut::of(report);
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(out.csv(admin)));
    }
    ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimal_strings() {
        assert_eq!(amount(Micros(11_600)), "0.0116");
        assert_eq!(amount(Micros(1_500_000)), "1.50");
        assert_eq!(amount(Micros(0)), "0.00");
        assert_eq!(amount(Micros(193)), "0.000193");
        assert_eq!(amount(Micros(12_000_000)), "12.00");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
