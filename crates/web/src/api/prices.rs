//! Prices set by admins (issue 25): `PUT /prices/{instance}/{kind}/{name}`
//! sets a list price from an effective time (default now; never in the
//! past), `DELETE` the same path with `?effective=` removes one not yet in
//! effect, `PUT /prices/{instance}/markup` sets or removes an instance's
//! markup, `GET /prices/unpriced` lists what is used or offered with no
//! price. All admins only; a price file's items and markups are managed by
//! the file (409 naming it). Amounts are decimal strings in the broker's
//! currency, as in [`super::costs`].

use super::actor::ApiActor;
use super::body::Body;
use super::costs::PriceOut;
use super::doc::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use cloudbroker_core::costs::money::{Markup, Micros};
use cloudbroker_core::costs::price_admin::{MarkupView, Unpriced};
use cloudbroker_core::costs::prices::PriceItem;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `PUT /prices/{instance}/{kind}/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PriceBody {
    /// The list price in the broker's currency, per hour (instance types,
    /// addresses) or per GiB-month (volume types): a decimal string, at
    /// most six decimals.
    #[schema(value_type = String, pattern = "^[0-9]{1,9}(\\.[0-9]{1,6})?$", example = "0.0104")]
    price: serde_json::Value,
    /// From when it applies (RFC 3339, now or later; default: now). Usage
    /// before it keeps the earlier price.
    #[serde(default)]
    #[schema(value_type = Option<DateTime<Utc>>, required = false)]
    effective: Option<serde_json::Value>,
}

/// `PUT /prices/{instance}/markup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MarkupBody {
    /// The markup in percent (`"10"`, `"-5"` for a discount, `"12.5"`;
    /// -100 to 1000, at most two decimals); null removes it.
    #[schema(
        value_type = Option<String>,
        required = true,
        nullable = true,
        pattern = "^(-(100(\\.0{1,2})?|[0-9]{1,2}(\\.[0-9]{1,2})?)|\\+?(1000(\\.0{1,2})?|[0-9]{1,3}(\\.[0-9]{1,2})?))$",
        example = "10"
    )]
    markup: serde_json::Value,
}

/// An instance's markup.
#[derive(Serialize, ToSchema)]
pub(super) struct MarkupOut {
    instance: String,
    /// As a percentage (`10%`, `-5%`); null: none.
    #[schema(required = true, nullable = true, example = "10%")]
    markup: Option<String>,
    /// The same in hundredths of a percent; null: none.
    #[schema(required = true, nullable = true)]
    markup_hundredths: Option<i64>,
    /// Where it was given (`file:line`, or `set by admin NAME at TIME`); null: none.
    #[schema(required = true, nullable = true)]
    origin: Option<String>,
}

impl MarkupOut {
    fn of(instance: &InstanceName, m: Option<MarkupView>) -> Self {
        Self {
            instance: instance.to_string(),
            markup: m.as_ref().map(|m| m.markup.to_percent()),
            markup_hundredths: m.as_ref().map(|m| m.markup.0),
            origin: m.map(|m| m.origin),
        }
    }
}

/// An item used or offered with no price in effect: unpriced, never free.
#[derive(Serialize, ToSchema)]
pub(super) struct UnpricedItemOut {
    instance: String,
    /// `instance`, `volume` or `address`.
    #[schema(pattern = "^(instance|volume|address)$")]
    kind: String,
    /// The instance or volume type (absent for `address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    name: Option<String>,
    /// Why it needs a price: `used_by_vms`, `offered`, `used_by_volumes`, `addresses_allocated`.
    reasons: Vec<String>,
    /// When a price is set only from a later time: that time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    priced_from: Option<DateTime<Utc>>,
}

impl UnpricedItemOut {
    fn of(u: Unpriced) -> Self {
        let name = match &u.item {
            PriceItem::Address => None,
            other => Some(other.name().to_string()),
        };
        Self {
            instance: u.instance,
            kind: u.item.kind().to_string(),
            name,
            reasons: u
                .reasons
                .iter()
                .map(|r| serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
                .collect(),
            priced_from: u.priced_from,
        }
    }
}

/// What is unpriced.
#[derive(Serialize, ToSchema)]
pub(super) struct UnpricedListOut {
    unpriced: Vec<UnpricedItemOut>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeletePriceParams {
    /// The effective time of the price to delete (RFC 3339): one not in effect yet.
    #[param(value_type = DateTime<Utc>, required = true)]
    effective: Option<String>,
}

/// An instance named in a path: an invalid name cannot exist.
fn instance_in_path(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", s.chars().take(64).collect::<String>()))))
    })
}

/// The item named by `{kind}/{name}` (`-` names an address).
fn item_in_path(kind: &str, name: &str) -> Result<PriceItem, ApiError> {
    if !matches!(kind, "instance" | "volume" | "address") {
        return Err(ApiError::field("kind", "kind must be instance, volume or address"));
    }
    PriceItem::from_parts(kind, name).map_err(|e| ApiError::field("name", e))
}

fn time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::field(field, format!("{field} must be an RFC 3339 time, e.g. 2027-01-01T00:00:00Z")))
}

fn price_in_body(v: &serde_json::Value) -> Result<Micros, ApiError> {
    let bad =
        || ApiError::field("price", "price must be a decimal string with at most 9 digits before the point and 6 after, e.g. \"0.0104\"");
    let serde_json::Value::String(text) = v else { return Err(bad()) };
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int, 9) || !frac.is_none_or(|f| digits(f, 6)) {
        return Err(bad());
    }
    Micros::parse(text).map_err(|e| ApiError::field("price", format!("price: {e}")))
}

/// Sets the list price of an instance type, a volume type or an
/// instance's Elastic IPs from an effective time (admins). Usage before it
/// keeps the earlier price; a time in the past is refused.
#[utoipa::path(put, path = "/api/v1/prices/{instance}/{kind}/{name}", tag = "costs",
    params(("instance" = String, Path, description = "connector instance"),
        ("kind" = String, Path, description = "`instance`, `volume` or `address`", pattern = "^(instance|volume|address)$"),
        ("name" = String, Path, description = "the instance or volume type (1-64 printable characters, no `=` or `@`); `-` for `address`", pattern = "^[!-<>-?A-~]{1,64}$")),
    request_body = PriceBody,
    responses((status = 200, body = PriceOut),
        (status = 400, description = "`invalid_request`: a bad `price`, `effective` (or one in the past), `kind` or `name` (named in `field`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: only admins set prices", body = ErrorBody),
        (status = 404, description = "`not_found`: no such connector instance", body = ErrorBody),
        (status = 409, description = "`conflict`: a price file manages this item (named in the message)", body = ErrorBody)))]
pub(super) async fn put_price(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String, String)>,
    body: Body<PriceBody>,
) -> ApiResult {
    a.0.require_admin()?;
    let (instance, kind, name) = path.into_inner();
    let instance = instance_in_path(&instance)?;
    let item = item_in_path(&kind, &name)?;
    let price = price_in_body(&body.price)?;
    let effective = match &body.effective {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(time("effective", s)?),
        Some(_) => return Err(ApiError::field("effective", "effective must be an RFC 3339 time, e.g. 2027-01-01T00:00:00Z")),
    };
    ok(PriceOut::of(broker.costs.set_price(&a.0, &instance, item, price, effective).await?))
}

/// Deletes a price set through the UI/API that is not in effect yet (admins).
#[utoipa::path(delete, path = "/api/v1/prices/{instance}/{kind}/{name}", tag = "costs",
    params(("instance" = String, Path, description = "connector instance"),
        ("kind" = String, Path, description = "`instance`, `volume` or `address`", pattern = "^(instance|volume|address)$"),
        ("name" = String, Path, description = "the instance or volume type (1-64 printable characters, no `=` or `@`); `-` for `address`", pattern = "^[!-<>-?A-~]{1,64}$"),
        DeletePriceParams),
    responses((status = 204, description = "deleted"),
        (status = 400, description = "`invalid_request`: a bad or missing `effective`, `kind` or `name` (named in `field`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: only admins delete prices", body = ErrorBody),
        (status = 404, description = "`not_found`: no such connector instance or price", body = ErrorBody),
        (status = 409, description = "`conflict`: the price is already in effect, or a price file manages the item", body = ErrorBody)))]
pub(super) async fn delete_price(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String, String)>,
    q: web::Query<DeletePriceParams>,
) -> ApiResult {
    a.0.require_admin()?;
    let (instance, kind, name) = path.into_inner();
    let instance = instance_in_path(&instance)?;
    let item = item_in_path(&kind, &name)?;
    let Some(effective) = q.effective.as_deref() else {
        return Err(ApiError::field("effective", "effective is required: the effective time of the price to delete"));
    };
    let effective = time("effective", effective)?;
    broker.costs.delete_price(&a.0, &instance, item, effective).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sets (or, with null, removes) a connector instance's markup (admins):
/// users see prices and costs with it, admins see both.
#[utoipa::path(put, path = "/api/v1/prices/{instance}/markup", tag = "costs",
    params(("instance" = String, Path, description = "connector instance")),
    request_body = MarkupBody,
    responses((status = 200, body = MarkupOut),
        (status = 400, description = "`invalid_request`: a bad `markup` (named in `field`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: only admins set markups", body = ErrorBody),
        (status = 404, description = "`not_found`: no such connector instance", body = ErrorBody),
        (status = 409, description = "`conflict`: a price file gives this instance's markup", body = ErrorBody)))]
pub(super) async fn put_markup(a: ApiActor, broker: web::Data<Broker>, path: web::Path<String>, body: Body<MarkupBody>) -> ApiResult {
    a.0.require_admin()?;
    let instance = instance_in_path(&path.into_inner())?;
    let markup = match &body.markup {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(Markup::parse(s).map_err(|e| ApiError::field("markup", format!("markup: {e}")))?),
        _ => return Err(ApiError::field("markup", "markup must be a percentage as a string (\"10\", \"-5\") or null")),
    };
    let view = broker.costs.set_markup(&a.0, &instance, markup).await?;
    ok(MarkupOut::of(&instance, view))
}

/// What is unpriced (admins): instance types VMs used this month or their
/// instance offers, volume types volumes used, instances with Elastic IPs,
/// with no price in effect now. Their usage is reported as unpriced, never
/// as free.
#[utoipa::path(get, path = "/api/v1/prices/unpriced", tag = "costs",
    responses((status = 200, body = UnpricedListOut),
        (status = 403, description = "`forbidden`: only admins list what is unpriced", body = ErrorBody)))]
pub(super) async fn list_unpriced(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    let unpriced = broker.costs.unpriced(&a.0).await?;
    ok(UnpricedListOut { unpriced: unpriced.into_iter().map(UnpricedItemOut::of).collect() })
}
