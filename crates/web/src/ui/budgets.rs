//! Budgets (admin page, issue 25): per connector instance the default
//! monthly budgets (`budget.user.monthly`, `budget.project.monthly`, each
//! with its origin) and the budgets of users and team projects that have an
//! override or spent something this month, with spent and % used; a form
//! sets or removes an override (errors per field, typed values kept).
//!
//! The banner: [`alerts`] reads this month's budget alerts of the signed-in
//! user (and of the team project they act in) for every page: two small
//! indexed queries (`broker.costs.budget_alerts_for`, reused 30 s per
//! owner), never a computation of spend; [`banner`] shows them amber below
//! 100% and red at 100% and above, by each alert's threshold.

use super::context::{CsrfForm, Ctx};
use super::errors::UiResult;
use super::form::{friendly, FormErrors};
use super::system::origin_text;
use super::{html, page, Chrome};
use crate::api::budgets::used_percent;
use actix_web::web;
use askama::Template;
use cloudbroker_core::costs::budgets::BudgetScope;
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::costs::watch::AlertView;
use cloudbroker_core::domain::{InstanceName, ProjectName, UserName};
use cloudbroker_core::registry::Origin;
use cloudbroker_core::{Actor, Broker, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/budgets", web::get().to(show)).route("/budgets", web::post().to(set));
}

/// This month's budget alerts of `actor` (nothing when they cannot be read:
/// a page is never refused for its banner).
pub async fn alerts(broker: &Broker, actor: &Actor) -> Vec<AlertView> {
    match broker.costs.budget_alerts_for(actor).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "budget alerts could not be read for the banner");
            Vec::new()
        }
    }
}

/// One line of the budget banner.
pub struct Banner {
    pub text: String,
    /// The threshold crossed (50, 80, 100).
    pub threshold: i64,
    /// Whether the budget is reached (red) rather than approached (amber).
    pub reached: bool,
}

/// The banner lines of alerts: the colour from each one's threshold.
pub fn banner(alerts: &[AlertView]) -> Vec<Banner> {
    alerts.iter().map(|a| Banner { text: a.text.clone(), threshold: a.threshold, reached: a.reached() }).collect()
}

/// A default (an instance parameter).
struct DefaultRow {
    name: String,
    field: String,
    value: String,
    origin: String,
}

/// A user's or a project's budget on an instance.
struct BudgetRow {
    scope: String,
    owner: String,
    /// Rounded to cents, the exact figure in the cell's `title`.
    amount: super::costs::Money,
    source: String,
    spent: super::costs::Money,
    /// `None`: no budget.
    used: Option<i64>,
}

struct InstanceBudgets {
    name: String,
    defaults: Vec<DefaultRow>,
    rows: Vec<BudgetRow>,
    error: Option<String>,
}

/// The form as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct BudgetForm {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    instance: String,
    #[serde(default)]
    amount: String,
    /// `set` or `remove`.
    #[serde(default)]
    op: String,
}

#[derive(Template)]
#[template(path = "admin_budgets.html")]
struct BudgetsPage {
    c: Chrome,
    currency: String,
    instances: Vec<InstanceBudgets>,
    instance_names: Vec<String>,
    form: BudgetForm,
    errors: FormErrors,
}

async fn show(ui: Ctx) -> UiResult {
    Ok(page(&build(&ui, BudgetForm { scope: "user".into(), op: "set".into(), ..BudgetForm::default() }, FormErrors::none()).await))
}

/// The owners whose budgets the page considers: every user, every team project.
async fn owners(ui: &Ctx) -> Result<Vec<(BudgetScope, String)>, ServiceError> {
    let actor = ui.actor();
    let mut out: Vec<(BudgetScope, String)> =
        ui.broker.identity.list_users(actor).await?.into_iter().map(|u| (BudgetScope::User, u.name.to_string())).collect();
    out.extend(
        ui.broker.projects.list(actor).await?.into_iter().filter(|p| !p.personal).map(|p| (BudgetScope::Project, p.name.to_string())),
    );
    Ok(out)
}

async fn build(ui: &Ctx, form: BudgetForm, errors: FormErrors) -> BudgetsPage {
    let broker = &ui.broker;
    let owners = owners(ui).await;
    let mut instances = Vec::new();
    let snapshot = broker.registry.snapshot();
    for i in &snapshot.instances {
        let defaults = i
            .params
            .iter()
            .filter(|p| p.spec.name.starts_with("budget."))
            .map(|p| DefaultRow {
                name: p.spec.name.to_string(),
                field: format!("p.{}", p.key),
                value: match &p.value {
                    Some(v) if !v.is_empty() => format!("{v} {}", broker.costs.currency()),
                    _ => "unset: no budget".to_string(),
                },
                origin: if matches!(p.origin, Origin::Default) { "default".to_string() } else { origin_text(&p.origin) },
            })
            .collect();
        let (rows, error) = match &owners {
            Ok(owners) => rows(broker, owners, &i.name).await,
            Err(e) => (Vec::new(), Some(format!("The budgets could not be listed: {}", friendly(e)))),
        };
        instances.push(InstanceBudgets { name: i.name.to_string(), defaults, rows, error });
    }
    BudgetsPage {
        c: ui.chrome("admin/budgets", "Budgets"),
        currency: broker.costs.currency(),
        instance_names: snapshot.instances.iter().map(|i| i.name.to_string()).collect(),
        instances,
        form,
        errors,
    }
}

/// The budgets on `instance` worth showing: overrides, and budgets with
/// something spent this month.
async fn rows(broker: &Broker, owners: &[(BudgetScope, String)], instance: &InstanceName) -> (Vec<BudgetRow>, Option<String>) {
    let mut out = Vec::new();
    for (scope, owner) in owners {
        match broker.costs.budget(*scope, owner, instance).await {
            Ok(v) if v.source == "override" || v.spent.0 > 0 => out.push(BudgetRow {
                scope: v.scope.to_string(),
                owner: v.owner,
                amount: v
                    .amount
                    .map_or_else(|| super::costs::Money { cents: "none".into(), exact: "no budget".into() }, super::costs::Money::of),
                source: v.source.to_string(),
                spent: super::costs::Money::of(v.spent),
                used: v.amount.map(|a| used_percent(v.spent, a)),
            }),
            Ok(_) => {}
            Err(e) => return (out, Some(format!("The budgets could not be listed: {}", friendly(&e)))),
        }
    }
    (out, None)
}

/// Checks the form: each field's error, or what to do.
async fn checked(ui: &Ctx, f: &BudgetForm) -> Result<(BudgetScope, String, InstanceName, Option<Micros>), FormErrors> {
    let mut errors = FormErrors::none();
    let scope = match f.scope.as_str() {
        "user" => Some(BudgetScope::User),
        "project" => Some(BudgetScope::Project),
        _ => {
            errors.add("scope", "Choose user or project.");
            None
        }
    };
    let owner = f.owner.trim();
    let owner_ok = match scope {
        Some(BudgetScope::User) => match UserName::parse(owner) {
            Ok(n) => ui.broker.identity.get_user(ui.actor(), &n).await.is_ok(),
            Err(_) => false,
        },
        Some(BudgetScope::Project) => match ProjectName::parse(owner) {
            Ok(n) => ui.broker.projects.get(ui.actor(), &n).await.is_ok(),
            Err(_) => false,
        },
        None => true,
    };
    if owner.is_empty() {
        errors.add("owner", "Name the user or project.");
    } else if !owner_ok {
        let what = if matches!(scope, Some(BudgetScope::Project)) { "project" } else { "user" };
        errors.add("owner", format!("There is no {what} '{}'.", owner.chars().take(64).collect::<String>()));
    }
    let instance = InstanceName::parse(f.instance.trim()).ok().filter(|i| ui.broker.registry.snapshot().instance(i.as_str()).is_some());
    if instance.is_none() {
        errors.add("instance", "Choose a connector instance.");
    }
    let amount = match f.op.as_str() {
        "remove" => None,
        _ => match Micros::parse(f.amount.trim()) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.add("amount", format!("Give the monthly amount as a decimal number, e.g. 25.00 ({e})."));
                None
            }
        },
    };
    match (scope, instance) {
        (Some(s), Some(i)) if !errors.any() => Ok((s, owner.to_string(), i, amount)),
        _ => Err(errors),
    }
}

async fn set(ui: Ctx, form: CsrfForm<BudgetForm>) -> UiResult {
    let f = form.into_inner();
    let (scope, owner, instance, amount) = match checked(&ui, &f).await {
        Ok(v) => v,
        Err(errors) => {
            let status = errors.status();
            return Ok(html(status, &build(&ui, f, errors).await));
        }
    };
    match ui.broker.costs.set_budget(ui.actor(), scope, &owner, &instance, amount).await {
        Ok(v) => {
            let message = match v.amount {
                Some(a) if v.source == "override" => {
                    format!("The monthly budget of {} '{}' on {} is now {} {}.", v.scope, v.owner, v.instance, a.to_decimal(2), v.currency)
                }
                _ => format!("The override of {} '{}' on {} is removed: the instance's default applies.", v.scope, v.owner, v.instance),
            };
            Ok(ui.redirect_with("/admin/budgets", &message))
        }
        Err(e) => {
            let errors = FormErrors::from_service(&e, &["scope", "owner", "instance", "amount"]);
            let status = errors.status();
            Ok(html(status, &build(&ui, f, errors).await))
        }
    }
}
