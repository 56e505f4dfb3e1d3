//! Budgets (issue 25): `GET /budgets` lists the caller's monthly budgets
//! per connector instance (their own, and their team project's when acting
//! in one) with what was spent this month and this month's alerts; admins
//! read anyone's (`?user=`, `?for_project=`). `PUT`/`DELETE
//! /budgets/{scope}/{owner}/{instance}` set or remove an override (admins).
//! Amounts are decimal strings in the broker's currency (as in
//! [`super::costs`]) next to the same amount in millionths.

use super::actor::ApiActor;
use super::body::Body;
use super::costs::amount;
use super::doc::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::{web, HttpResponse};
use cloudbroker_core::costs::budgets::BudgetScope;
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::costs::BudgetView;
use cloudbroker_core::domain::{InstanceName, ProjectName, UserName};
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One budget: a scope's monthly limit on a connector instance.
#[derive(Serialize, ToSchema)]
pub(super) struct BudgetOut {
    /// `user` or `project`.
    #[schema(pattern = "^(user|project)$")]
    scope: String,
    /// The user or project.
    owner: String,
    /// The connector instance.
    instance: String,
    /// The broker's currency (ISO 4217).
    currency: String,
    /// The monthly amount (decimal string); null: no budget.
    #[schema(required = true, nullable = true, example = "25.00")]
    amount: Option<String>,
    /// The same in millionths; null: no budget.
    #[schema(required = true, nullable = true)]
    amount_micros: Option<i64>,
    /// `override` (set for this user or project) or `instance` (the instance's parameter).
    #[schema(pattern = "^(override|instance)$")]
    source: String,
    /// Spent and committed this month so far (decimal string).
    #[schema(example = "3.50")]
    spent: String,
    /// The same in millionths.
    spent_micros: i64,
    /// Spent as a whole percentage of the amount (rounded down); null: no budget.
    #[schema(required = true, nullable = true)]
    used_percent: Option<i64>,
}

impl BudgetOut {
    pub(super) fn of(v: BudgetView) -> Self {
        Self {
            scope: v.scope.to_string(),
            owner: v.owner,
            instance: v.instance,
            currency: v.currency,
            amount: v.amount.map(amount),
            amount_micros: v.amount.map(|a| a.0),
            source: v.source.to_string(),
            spent: amount(v.spent),
            spent_micros: v.spent.0,
            used_percent: v.amount.map(|a| used_percent(v.spent, a)),
        }
    }
}

/// `spent` as a whole percentage of `budget` (a zero budget: 100% once anything is spent).
pub fn used_percent(spent: Micros, budget: Micros) -> i64 {
    if budget.0 <= 0 {
        return if spent.0 > 0 { 100 } else { 0 };
    }
    i64::try_from(i128::from(spent.0) * 100 / i128::from(budget.0)).unwrap_or(i64::MAX)
}

/// Budgets and this month's alerts.
#[derive(Serialize, ToSchema)]
pub(super) struct BudgetsOut {
    /// One per connector instance and scope.
    budgets: Vec<BudgetOut>,
    /// This month's highest threshold crossed per instance, in words.
    alerts: Vec<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct BudgetParams {
    /// Admins: this user's budgets instead of the caller's.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    user: Option<String>,
    /// Admins: this project's budgets instead of the caller's.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    for_project: Option<String>,
    /// The project to act in (you must be a member; admins enter any).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    #[allow(dead_code)] // Read and entered by the `ApiActor` extractor.
    project: Option<String>,
}

/// Every (scope, owner) budget on every connector instance.
async fn budgets_of(broker: &Broker, owners: &[(BudgetScope, String)]) -> Result<Vec<BudgetOut>, ApiError> {
    let snap = broker.registry.snapshot();
    let mut out = Vec::new();
    for (scope, owner) in owners {
        for i in &snap.instances {
            out.push(BudgetOut::of(broker.costs.budget(*scope, owner, &i.name).await?));
        }
    }
    Ok(out)
}

/// A user who must exist (admins only reach this).
async fn existing_user(broker: &Broker, admin: &Actor, s: &str) -> Result<UserName, ApiError> {
    let name = super::users::user_in_path(s)?;
    broker.identity.get_user(admin, &name).await?;
    Ok(name)
}

/// A project that must exist (admins only reach this).
async fn existing_project(broker: &Broker, admin: &Actor, s: &str) -> Result<ProjectName, ApiError> {
    let name = ProjectName::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("project '{}'", s.chars().take(64).collect::<String>())))))?;
    broker.projects.get(admin, &name).await?;
    Ok(name)
}

/// The caller's budgets on every connector instance: their own, and their
/// team project's when acting in one (`?project=`), with what was spent
/// this month and this month's alerts. Admins read a user's
/// (`?user=`), a project's (`?for_project=`) or both.
#[utoipa::path(get, path = "/api/v1/budgets", tag = "costs", params(BudgetParams),
    responses((status = 200, body = BudgetsOut),
        (status = 403, description = "`forbidden`: only admins read others' budgets", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user or project", body = ErrorBody)))]
pub(super) async fn list_budgets(a: ApiActor, broker: web::Data<Broker>, q: web::Query<BudgetParams>) -> ApiResult {
    let actor = &a.0;
    let (owners, alerts) = match (&q.user, &q.for_project) {
        (Some(u), Some(p)) => {
            actor.require_admin()?;
            let user = existing_user(&broker, actor, u).await?;
            let project = existing_project(&broker, actor, p).await?;
            let as_member = Actor::new(user.clone(), false).in_project(project.clone(), actor.role);
            let alerts = broker.costs.alerts_for(&as_member).await?;
            (vec![(BudgetScope::User, user.to_string()), (BudgetScope::Project, project.to_string())], alerts)
        }
        (Some(u), None) => {
            actor.require_admin()?;
            let user = existing_user(&broker, actor, u).await?;
            let alerts = broker.costs.alerts_for(&Actor::new(user.clone(), false)).await?;
            (vec![(BudgetScope::User, user.to_string())], alerts)
        }
        (None, Some(p)) => {
            actor.require_admin()?;
            let project = existing_project(&broker, actor, p).await?;
            // Alerts of the project only (not of the admin reading them).
            let as_member = actor.clone().in_project(project.clone(), actor.role);
            let prefix = format!("the project '{project}'");
            let alerts = broker.costs.alerts_for(&as_member).await?.into_iter().filter(|t| t.starts_with(&prefix)).collect();
            (vec![(BudgetScope::Project, project.to_string())], alerts)
        }
        (None, None) => {
            let mut owners = vec![(BudgetScope::User, actor.name.to_string())];
            if actor.project.as_str() != actor.name.as_str() {
                owners.push((BudgetScope::Project, actor.project.to_string()));
            }
            (owners, broker.costs.alerts_for(actor).await?)
        }
    };
    ok(BudgetsOut { budgets: budgets_of(&broker, &owners).await?, alerts })
}

/// `PUT /budgets/{scope}/{owner}/{instance}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BudgetBody {
    /// The monthly amount in the broker's currency: a decimal string, at
    /// most six decimals (`"25.00"`).
    #[schema(value_type = String, pattern = "^[0-9]{1,9}(\\.[0-9]{1,6})?$", example = "25.00")]
    amount: serde_json::Value,
}

/// A scope named in a path.
fn scope_in_path(s: &str) -> Result<BudgetScope, ApiError> {
    match s {
        "user" => Ok(BudgetScope::User),
        "project" => Ok(BudgetScope::Project),
        _ => Err(ApiError::field("scope", "scope must be user or project")),
    }
}

/// An amount as sent: a decimal string as the document's pattern says
/// (1-9 digits, optionally a point and 1-6 decimals).
fn amount_in_body(v: &serde_json::Value) -> Result<Micros, ApiError> {
    let bad =
        || ApiError::field("amount", "amount must be a decimal string with at most 9 digits before the point and 6 after, e.g. \"25.00\"");
    let serde_json::Value::String(text) = v else { return Err(bad()) };
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int, 9) || !frac.is_none_or(|f| digits(f, 6)) {
        return Err(bad());
    }
    Micros::parse(text).map_err(|e| ApiError::field("amount", format!("amount: {e}")))
}

/// The owner named in a path, checked to exist (admins only reach this).
async fn owner_in_path(broker: &Broker, admin: &Actor, scope: BudgetScope, owner: &str) -> Result<String, ApiError> {
    Ok(match scope {
        BudgetScope::User => existing_user(broker, admin, owner).await?.to_string(),
        BudgetScope::Project => existing_project(broker, admin, owner).await?.to_string(),
    })
}

/// An instance named in a path: an invalid name cannot exist.
fn instance_in_path(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", s.chars().take(64).collect::<String>()))))
    })
}

/// Checks a budget path: admin, scope, owner, instance.
async fn budget_path(
    broker: &Broker,
    actor: &Actor,
    path: (String, String, String),
) -> Result<(BudgetScope, String, InstanceName), ApiError> {
    let (scope, owner, instance) = path;
    actor.require_admin()?;
    let scope = scope_in_path(&scope)?;
    let owner = owner_in_path(broker, actor, scope, &owner).await?;
    let instance = instance_in_path(&instance)?;
    if broker.registry.snapshot().instance(instance.as_str()).is_none() {
        return Err(ApiError(ServiceError::NotFound(Resource::Instance(instance))));
    }
    Ok((scope, owner, instance))
}

/// Sets a user's or a project's monthly budget on an instance, overriding
/// the instance's `budget.user.monthly` / `budget.project.monthly` (admins).
#[utoipa::path(put, path = "/api/v1/budgets/{scope}/{owner}/{instance}", tag = "costs",
    params(("scope" = String, Path, description = "`user` or `project`", pattern = "^(user|project)$"),
        ("owner" = String, Path, description = "the user or project"),
        ("instance" = String, Path, description = "connector instance")),
    request_body = BudgetBody,
    responses((status = 200, body = BudgetOut),
        (status = 400, description = "`invalid`: a bad `amount` or `scope` (named in `field`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: only admins set budgets", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, project or connector instance", body = ErrorBody)))]
pub(super) async fn put_budget(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String, String)>,
    body: Body<BudgetBody>,
) -> ApiResult {
    let (scope, owner, instance) = budget_path(&broker, &a.0, path.into_inner()).await?;
    let amount = amount_in_body(&body.amount)?;
    ok(BudgetOut::of(broker.costs.set_budget(&a.0, scope, &owner, &instance, Some(amount)).await?))
}

/// Removes a budget override: the instance's parameter applies again (admins).
#[utoipa::path(delete, path = "/api/v1/budgets/{scope}/{owner}/{instance}", tag = "costs",
    params(("scope" = String, Path, description = "`user` or `project`", pattern = "^(user|project)$"),
        ("owner" = String, Path, description = "the user or project"),
        ("instance" = String, Path, description = "connector instance")),
    responses((status = 204, description = "removed (or there was none)"),
        (status = 400, description = "`invalid`: a bad `scope` (named in `field`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: only admins remove budgets", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, project or connector instance", body = ErrorBody)))]
pub(super) async fn delete_budget(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String, String)>) -> ApiResult {
    let (scope, owner, instance) = budget_path(&broker, &a.0, path.into_inner()).await?;
    broker.costs.set_budget(&a.0, scope, &owner, &instance, None).await?;
    Ok(HttpResponse::NoContent().finish())
}
