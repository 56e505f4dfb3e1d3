//! `/users/{user}/quotas` and `/projects/{project}/quotas`: limits and
//! usage per connector instance (a user's: self or admin; a project's: its
//! members, any role, and admins); overrides set by admins.

use super::actor::ApiActor;
use super::body::Body;
use super::doc::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::ok;
use super::users::user_in_path;
use actix_web::web;
use cloudbroker_core::domain::{InstanceName, ProjectName};
use cloudbroker_core::provisioning::{ProjectQuota, Quota};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::Deserialize;
use utoipa::ToSchema;

/// A user's quota on every instance (self or admin).
#[utoipa::path(get, path = "/api/v1/users/{user}/quotas", tag = "quotas", params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = Vec<Quota>)))]
pub(super) async fn get_quotas(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.quotas(&a.0, &user_in_path(&user)?).await?)
}

/// `PUT /users/{user}/quotas/{instance}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaBody {
    /// The user's limit of live VMs on the instance; null removes the override.
    #[schema(minimum = 0, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "super::body::opt_integer")]
    vm: Option<i64>,
}

/// Sets or removes a user's quota override on an instance (admin).
#[utoipa::path(put, path = "/api/v1/users/{user}/quotas/{instance}", tag = "quotas",
    params(("user" = String, Path, description = "user name"), ("instance" = String, Path, description = "connector instance")),
    request_body = QuotaBody, responses((status = 200, body = Quota)))]
pub(super) async fn put_quota(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<QuotaBody>,
) -> ApiResult {
    let (user, instance) = path.into_inner();
    let user = user_in_path(&user)?;
    let instance = instance_in_path(&instance)?;
    ok(broker.provisioning.set_quota(&a.0, &user, &instance, body.vm).await?)
}

/// An instance named in a path: an invalid name cannot exist.
fn instance_in_path(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", s.chars().take(64).collect::<String>()))))
    })
}

/// A project named in a path: an invalid name cannot exist.
fn project_in_path(s: &str) -> Result<ProjectName, ApiError> {
    ProjectName::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("project '{}'", s.chars().take(64).collect::<String>())))))
}

/// A project's quota on every instance: its limit (an override, else the
/// instance's `quota.project.vm`, else none) and usage (its members, any
/// role; admins).
#[utoipa::path(get, path = "/api/v1/projects/{project}/quotas", tag = "quotas", params(("project" = String, Path, description = "project name")),
    responses((status = 200, body = Vec<ProjectQuota>), (status = 404, description = "`not_found`: no such project, or the caller is no member of it", body = ErrorBody)))]
pub(super) async fn get_project_quotas(a: ApiActor, broker: web::Data<Broker>, project: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.project_quotas(&a.0, &project_in_path(&project)?).await?)
}

/// `PUT /projects/{project}/quotas/{instance}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectQuotaBody {
    /// The most live VMs the project's members may have on the instance
    /// together; null removes the override (the instance's
    /// `quota.project.vm` applies again, or no limit).
    #[schema(required = true, nullable = true, minimum = 0, maximum = 1_000_000)]
    #[serde(deserialize_with = "super::body::opt_integer")]
    limit: Option<i64>,
}

/// Sets or removes a project's quota override on an instance (admins only:
/// a project's owners and members read its quotas).
#[utoipa::path(put, path = "/api/v1/projects/{project}/quotas/{instance}", tag = "quotas",
    params(("project" = String, Path, description = "project name"), ("instance" = String, Path, description = "connector instance")),
    request_body = ProjectQuotaBody, responses((status = 200, body = ProjectQuota),
        (status = 403, description = "`forbidden`: only admins set quotas", body = ErrorBody),
        (status = 404, description = "`not_found`: no such project (or the caller is no member of it) or connector instance", body = ErrorBody)))]
pub(super) async fn put_project_quota(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<ProjectQuotaBody>,
) -> ApiResult {
    let (project, instance) = path.into_inner();
    let (project, instance) = (project_in_path(&project)?, instance_in_path(&instance)?);
    ok(broker.provisioning.set_project_quota(&a.0, &project, &instance, body.limit).await?)
}
