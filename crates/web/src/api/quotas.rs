//! `/users/{user}/quotas`: limits and usage per connector instance;
//! overrides set by admins.

use super::actor::ApiActor;
use super::body::Body;
use super::error::ApiResult;
use super::ok;
use super::users::user_in_path;
use actix_web::web;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::provisioning::Quota;
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
    let instance = InstanceName::parse(&instance).map_err(|_| {
        ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", instance.chars().take(64).collect::<String>())))
    })?;
    ok(broker.provisioning.set_quota(&a.0, &user, &instance, body.vm).await?)
}
