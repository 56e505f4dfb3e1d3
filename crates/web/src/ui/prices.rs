//! Prices (admin page, issue 25): every price of the price book (from the
//! price files and set here; files win) with its list price, the
//! instance's markup, the price users see, its effective time and where it
//! came from; the markups; a form to set a price from an effective time
//! (now or later: usage already billed keeps its price) and one to set or
//! remove an instance's markup (errors per field, typed values kept); a
//! button to delete a price set here that is not in effect yet; and, in
//! amber, what is used or offered with no price (unpriced, never free).

use super::context::{CsrfForm, Ctx};
use super::errors::UiResult;
use super::form::{friendly, FormErrors};
use super::{html, page, Chrome};
use actix_web::web;
use askama::Template;
use chrono::{DateTime, NaiveDateTime, Utc};
use cloudbroker_core::costs::money::{Markup, Micros};
use cloudbroker_core::costs::prices::PriceItem;
use cloudbroker_core::costs::PriceView;
use cloudbroker_core::domain::time::{rfc3339_string, Fraction};
use cloudbroker_core::domain::InstanceName;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/prices", web::get().to(show))
        .route("/prices", web::post().to(set_price))
        .route("/prices/markup", web::post().to(set_markup))
        .route("/prices/delete", web::post().to(delete_price));
}

/// One price as the page shows it.
struct PriceRow {
    instance: String,
    kind: String,
    /// The type (empty for an address).
    name: String,
    /// `instance t3.micro (per hour)`.
    item: String,
    list_price: String,
    markup: String,
    price: String,
    effective: String,
    /// The effective time exactly (for the delete button).
    effective_exact: String,
    origin: String,
    /// Whether it may be deleted here (set here, not in effect yet).
    deletable: bool,
}

struct MarkupRow {
    instance: String,
    markup: String,
    origin: String,
}

struct UnpricedRow {
    instance: String,
    item: String,
    reasons: String,
}

/// The price form as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct PriceForm {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    effective: String,
}

/// The markup form as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct MarkupForm {
    #[serde(default)]
    markup_instance: String,
    #[serde(default)]
    markup: String,
    /// `set` or `remove`.
    #[serde(default)]
    op: String,
}

/// The delete button's form.
#[derive(Deserialize, Default, Clone)]
pub(super) struct DeleteForm {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    effective: String,
}

#[derive(Template)]
#[template(path = "admin_prices.html")]
struct PricesPage {
    c: Chrome,
    currency: String,
    prices: Vec<PriceRow>,
    overridden: Vec<PriceRow>,
    markups: Vec<MarkupRow>,
    unpriced: Vec<UnpricedRow>,
    problems: Vec<String>,
    load_error: Option<String>,
    instance_names: Vec<String>,
    form: PriceForm,
    markup_form: MarkupForm,
    errors: FormErrors,
}

fn when(t: DateTime<Utc>) -> String {
    if t == DateTime::<Utc>::UNIX_EPOCH {
        return "always (no effective time)".to_string();
    }
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn item_text(item: &PriceItem) -> String {
    match item {
        PriceItem::Instance(t) => format!("instance type {t} (per hour)"),
        PriceItem::Volume(t) => format!("volume type {t} (per GiB-month)"),
        PriceItem::Address => "Elastic IP (per hour)".to_string(),
    }
}

fn row(p: &PriceView, now: DateTime<Utc>) -> PriceRow {
    let origin = p.origin.clone().unwrap_or_default();
    let from_file = !origin.starts_with("set by admin");
    PriceRow {
        instance: p.instance.clone(),
        kind: p.item.kind().to_string(),
        name: p.item.name().to_string(),
        item: item_text(&p.item),
        list_price: p.list_price.map_or_else(String::new, |m| m.to_decimal(6)),
        markup: p.markup.map_or_else(String::new, |m| m.to_percent()),
        price: p.price.to_decimal(6),
        effective: when(p.effective),
        effective_exact: rfc3339_string(&p.effective, Fraction::Auto),
        origin: if from_file { format!("{origin} (read-only here: edit that file, then reload)") } else { origin },
        deletable: !from_file && p.effective > now,
    }
}

async fn show(ui: Ctx) -> UiResult {
    let form = PriceForm { kind: "instance".into(), ..PriceForm::default() };
    Ok(page(&build(&ui, form, MarkupForm { op: "set".into(), ..MarkupForm::default() }, FormErrors::none()).await))
}

async fn build(ui: &Ctx, form: PriceForm, markup_form: MarkupForm, errors: FormErrors) -> PricesPage {
    let broker = &ui.broker;
    let now = broker.clock.now();
    let snapshot = broker.registry.snapshot();
    let mut page = PricesPage {
        c: ui.chrome("admin/prices", "Prices"),
        currency: broker.costs.currency(),
        prices: Vec::new(),
        overridden: Vec::new(),
        markups: Vec::new(),
        unpriced: Vec::new(),
        problems: Vec::new(),
        load_error: None,
        instance_names: snapshot.instances.iter().map(|i| i.name.to_string()).collect(),
        form,
        markup_form,
        errors,
    };
    match broker.costs.price_admin(ui.actor()).await {
        Ok(a) => {
            page.prices = a.prices.iter().map(|p| row(p, now)).collect();
            page.overridden = a.overridden.iter().map(|p| row(p, now)).collect();
            page.markups = a
                .markups
                .into_iter()
                .map(|m| MarkupRow {
                    instance: m.instance,
                    markup: m.markup.to_percent(),
                    origin: if m.managed_by_file {
                        format!("{} (read-only here: edit that file, then reload)", m.origin)
                    } else {
                        m.origin
                    },
                })
                .collect();
            page.unpriced = a
                .unpriced
                .into_iter()
                .map(|u| UnpricedRow {
                    instance: u.instance,
                    item: item_text(&u.item),
                    reasons: {
                        let mut r: Vec<String> = u.reasons.iter().map(|r| r.text().to_string()).collect();
                        if let Some(t) = u.priced_from {
                            r.push(format!("priced only from {}", when(t)));
                        }
                        r.join("; ")
                    },
                })
                .collect();
            page.problems = a.errors;
        }
        Err(e) => page.load_error = Some(format!("The prices could not be listed: {}", friendly(&e))),
    }
    page
}

/// An effective time as typed: empty (now), RFC 3339, or the browser's
/// `YYYY-MM-DDTHH:MM[:SS]` read as UTC.
fn effective_time(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err("Give the time as 2027-01-01T00:00:00Z (UTC), or leave it empty for now.".to_string())
}

/// A checked price form: the instance, the item, its price and when it takes effect.
type PriceToSet = (InstanceName, PriceItem, Micros, Option<DateTime<Utc>>);

/// Checks the price form: each field's error, or what to set.
fn checked(ui: &Ctx, f: &PriceForm) -> Result<PriceToSet, FormErrors> {
    let mut errors = FormErrors::none();
    let instance = InstanceName::parse(f.instance.trim()).ok().filter(|i| ui.broker.registry.snapshot().instance(i.as_str()).is_some());
    if instance.is_none() {
        errors.add("instance", "Choose a connector instance.");
    }
    let item = match f.kind.as_str() {
        "instance" | "volume" | "address" => {
            let name = if f.kind == "address" { "" } else { f.name.trim() };
            match PriceItem::from_parts(&f.kind, name) {
                Ok(i) => Some(i),
                Err(e) => {
                    errors.add("name", format!("Name the {} type: {e}.", f.kind));
                    None
                }
            }
        }
        _ => {
            errors.add("kind", "Choose instance type, volume type or Elastic IP.");
            None
        }
    };
    let price = match Micros::parse(f.price.trim()) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.add("price", format!("Give the list price as a decimal number, e.g. 0.0104 ({e})."));
            None
        }
    };
    let effective = match effective_time(&f.effective) {
        Ok(t) => t,
        Err(e) => {
            errors.add("effective", e);
            None
        }
    };
    match (instance, item, price) {
        (Some(i), Some(it), Some(p)) if !errors.any() => Ok((i, it, p, effective)),
        _ => Err(errors),
    }
}

async fn set_price(ui: Ctx, form: CsrfForm<PriceForm>) -> UiResult {
    let f = form.into_inner();
    let markup_form = MarkupForm { op: "set".into(), ..MarkupForm::default() };
    let (instance, item, price, effective) = match checked(&ui, &f) {
        Ok(v) => v,
        Err(errors) => {
            let status = errors.status();
            return Ok(html(status, &build(&ui, f, markup_form, errors).await));
        }
    };
    match ui.broker.costs.set_price(ui.actor(), &instance, item.clone(), price, effective).await {
        Ok(v) => {
            let message = format!(
                "The list price of {} on {} is {} {} from {}.",
                item_text(&item),
                instance,
                v.list_price.unwrap_or(v.price).to_decimal(6),
                ui.broker.costs.currency(),
                when(v.effective)
            );
            Ok(ui.redirect_with("/admin/prices", &message))
        }
        Err(e) => {
            let errors = FormErrors::from_service(&e, &["instance", "kind", "name", "price", "effective"]);
            let status = errors.status();
            Ok(html(status, &build(&ui, f, markup_form, errors).await))
        }
    }
}

async fn set_markup(ui: Ctx, form: CsrfForm<MarkupForm>) -> UiResult {
    let f = form.into_inner();
    let price_form = PriceForm { kind: "instance".into(), ..PriceForm::default() };
    let mut errors = FormErrors::none();
    let instance =
        InstanceName::parse(f.markup_instance.trim()).ok().filter(|i| ui.broker.registry.snapshot().instance(i.as_str()).is_some());
    if instance.is_none() {
        errors.add("markup_instance", "Choose a connector instance.");
    }
    let markup = match f.op.as_str() {
        "remove" => None,
        _ => match Markup::parse(f.markup.trim()) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.add("markup", format!("Give the markup in percent, e.g. 10, -5 or 12.5 ({e})."));
                None
            }
        },
    };
    let Some(instance) = instance.filter(|_| !errors.any()) else {
        let status = errors.status();
        return Ok(html(status, &build(&ui, price_form, f, errors).await));
    };
    match ui.broker.costs.set_markup(ui.actor(), &instance, markup).await {
        Ok(_) => {
            let message = match markup {
                Some(m) => format!("The markup of {instance} is now {}.", m.to_percent()),
                None => format!("The markup of {instance} is removed."),
            };
            Ok(ui.redirect_with("/admin/prices", &message))
        }
        Err(e) => {
            let errors = FormErrors::from_service(&e, &["markup"]);
            let status = errors.status();
            Ok(html(status, &build(&ui, price_form, f, errors).await))
        }
    }
}

async fn delete_price(ui: Ctx, form: CsrfForm<DeleteForm>) -> UiResult {
    let f = form.into_inner();
    let parsed = (
        InstanceName::parse(f.instance.trim()).ok(),
        PriceItem::from_parts(&f.kind, &f.name).ok(),
        DateTime::parse_from_rfc3339(f.effective.trim()).ok().map(|t| t.with_timezone(&Utc)),
    );
    let (Some(instance), Some(item), Some(effective)) = parsed else {
        return Ok(ui.redirect_with("/admin/prices", "Nothing was deleted: the price was not recognised."));
    };
    match ui.broker.costs.delete_price(ui.actor(), &instance, item.clone(), effective).await {
        Ok(()) => Ok(ui.redirect_with(
            "/admin/prices",
            &format!("The price of {} on {instance} from {} is deleted.", item_text(&item), when(effective)),
        )),
        Err(e) => {
            let errors = FormErrors::general(friendly(&e));
            let status = errors.status();
            let price_form = PriceForm { kind: "instance".into(), ..PriceForm::default() };
            Ok(html(status, &build(&ui, price_form, MarkupForm { op: "set".into(), ..MarkupForm::default() }, errors).await))
        }
    }
}
