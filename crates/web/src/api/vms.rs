//! `/vms`: launch, list (paginated, newest first), read, act, terminate.

use super::actor::ApiActor;
use super::error::{parse, ApiError, ApiResult};
use super::ok;
use actix_web::{web, HttpResponse};
use cloudbroker_core::domain::{ClientToken, ImageRef, InstanceName, LaunchId, PageRequest, Tags, UserName, VmAction, VmId, VmStatus};
use cloudbroker_core::provisioning::{LaunchSpec, VmQuery};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/vms", web::post().to(launch))
        .route("/vms", web::get().to(list_vms))
        .route("/vms/{id}", web::get().to(get_vm))
        .route("/vms/{id}", web::delete().to(terminate_vm))
        .route("/vms/{id}/{action}", web::post().to(vm_action));
}

/// `POST /api/v1/vms`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LaunchBody {
    instance: String,
    image: String,
    instance_type: Option<String>,
    count: Option<u32>,
    name: Option<String>,
    user_data: Option<String>,
    client_token: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

impl LaunchBody {
    fn into_spec(self) -> Result<LaunchSpec, ApiError> {
        let instance = InstanceName::parse(&self.instance).map_err(|e| ApiError::field("instance", e.to_string()))?;
        Ok(LaunchSpec {
            instance,
            image: parse(ImageRef::parse(&self.image))?,
            instance_type: self.instance_type,
            count: self.count.unwrap_or(1),
            name: self.name.unwrap_or_default(),
            user_data: self.user_data,
            client_token: self.client_token.as_deref().map(ClientToken::parse).transpose().map_err(|e| ApiError(e.into()))?,
            tags: parse(Tags::parse(self.tags.unwrap_or_default()))?,
            ssh_public_key: None,
            client_tags: Default::default(),
        })
    }
}

async fn launch(a: ApiActor, broker: web::Data<Broker>, body: web::Json<LaunchBody>) -> ApiResult {
    let spec = body.into_inner().into_spec()?;
    let out = broker.provisioning.launch(&a.0, spec).await?;
    let status = if out.created { actix_web::http::StatusCode::CREATED } else { actix_web::http::StatusCode::OK };
    Ok(HttpResponse::build(status).json(json!({"vms": out.vms})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    instance: Option<String>,
    state: Option<String>,
    name: Option<String>,
    user: Option<String>,
    launch: Option<String>,
    tag: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list_vms(a: ApiActor, broker: web::Data<Broker>, q: web::Query<ListParams>) -> ApiResult {
    let q = q.into_inner();
    let page = parse(PageRequest::parse(q.limit.as_deref(), q.cursor.as_deref()))?;
    let query = VmQuery {
        user: q.user.as_deref().map(|u| UserName::parse(u).map_err(|e| ApiError::field("user", e.message))).transpose()?,
        instance: q
            .instance
            .as_deref()
            .map(|i| InstanceName::parse(i).map_err(|e| ApiError::field("instance", e.to_string())))
            .transpose()?,
        status: q.state.as_deref().map(|s| parse(VmStatus::parse(s))).transpose()?,
        name: q.name,
        launch: q.launch.as_deref().map(|l| parse(LaunchId::parse(l))).transpose()?,
        tag: match q.tag {
            Some(t) => {
                let (k, v) = t.split_once('=').ok_or_else(|| ApiError::field("tag", "tag filter must be tag=KEY=VALUE"))?;
                Some((k.to_string(), v.to_string()))
            }
            None => None,
        },
    };
    let p = broker.provisioning.list(&a.0, query, page).await?;
    ok(json!({"vms": p.items, "next_cursor": p.next_cursor}))
}

/// A VM named in a path: an invalid id cannot exist.
fn vm_in_path(s: &str) -> Result<VmId, ApiError> {
    VmId::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("VM '{}'", s.chars().take(64).collect::<String>())))))
}

async fn get_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.get(&a.0, &vm_in_path(&id)?).await?)
}

async fn terminate_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.action(&a.0, &vm_in_path(&id)?, VmAction::Terminate).await?)
}

async fn vm_action(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (id, action) = path.into_inner();
    let action = match VmAction::parse(&action) {
        Ok(a @ (VmAction::Start | VmAction::Stop | VmAction::Reboot)) => a,
        _ => return Err(ApiError(ServiceError::NotFound(Resource::Record(format!("action '{action}' (start, stop, reboot)"))))),
    };
    ok(broker.provisioning.action(&a.0, &vm_in_path(&id)?, action).await?)
}
