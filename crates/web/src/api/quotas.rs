//! `/users/{user}/quotas`: limits and usage per connector instance;
//! overrides set by admins.

use super::actor::ApiActor;
use super::error::ApiResult;
use super::ok;
use super::users::user_in_path;
use actix_web::web;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{user}/quotas", web::get().to(get_quotas)).route("/users/{user}/quotas/{instance}", web::put().to(put_quota));
}

async fn get_quotas(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.quotas(&a.0, &user_in_path(&user)?).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    vm: Option<i64>,
}

async fn put_quota(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>, body: web::Json<QuotaBody>) -> ApiResult {
    let (user, instance) = path.into_inner();
    let user = user_in_path(&user)?;
    let instance = InstanceName::parse(&instance).map_err(|_| {
        ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", instance.chars().take(64).collect::<String>())))
    })?;
    ok(broker.provisioning.set_quota(&a.0, &user, &instance, body.vm).await?)
}
