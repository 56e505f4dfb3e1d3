//! The JSON API, `/api/v1`. Handlers parse input, call a service, and render
//! JSON; errors go through [`crate::error::ApiError`].

use crate::auth::{basic_credentials, client_ip, ApiActor};
use crate::error::{ApiError, ApiResult};
use actix_web::{web, HttpRequest, HttpResponse};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::credentials::Scope;
use cloudbroker_core::{Broker, ServiceError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Routes under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/tokens", web::post().to(create_token))
            .route("/tokens", web::get().to(list_tokens))
            .route("/tokens/{id}", web::delete().to(revoke_token))
            .route("/users", web::post().to(create_user))
            .route("/users", web::get().to(list_users))
            .route("/users/{user}", web::get().to(get_user))
            .route("/users/{user}/password", web::put().to(set_password))
            .route("/users/{user}/role", web::put().to(set_role))
            .route("/users/{user}/ssh-key", web::put().to(set_ssh_key))
            .route("/users/{user}/credentials", web::get().to(list_credentials))
            .route("/users/{user}/credentials/{instance}", web::put().to(put_credentials))
            .route("/users/{user}/credentials/{instance}", web::get().to(get_credentials))
            .route("/users/{user}/credentials/{instance}", web::delete().to(delete_credentials))
            .route("/system/config", web::get().to(get_config))
            .route("/system/config", web::put().to(put_config))
            .route("/system/credentials", web::get().to(list_shared))
            .route("/system/credentials/{instance}/{name}", web::put().to(put_shared))
            .route("/system/credentials/{instance}/{name}", web::get().to(get_shared))
            .route("/system/credentials/{instance}/{name}", web::delete().to(delete_shared))
            .route("/system/credentials/{instance}/{name}/grants", web::put().to(grant_shared))
            .route("/system/keys/rotate", web::post().to(rotate_keys))
            .route("/audit", web::get().to(audit))
            .route("/connectors", web::get().to(list_connectors))
            .route("/connectors/reload", web::post().to(reload_connectors))
            .route("/images", web::get().to(list_images))
            .route("/images", web::post().to(create_image))
            .route("/images/{name}", web::get().to(get_image))
            .route("/images/{name}", web::put().to(put_image))
            .route("/images/{name}", web::delete().to(delete_image))
            .route("/users/{user}/quotas", web::get().to(get_quotas))
            .route("/users/{user}/quotas/{instance}", web::put().to(put_quota))
            .route("/vms", web::post().to(launch))
            .route("/vms", web::get().to(list_vms))
            .route("/vms/{id}", web::get().to(get_vm))
            .route("/vms/{id}", web::delete().to(terminate_vm))
            .route("/vms/{id}/{action}", web::post().to(vm_action))
            .route("/reconcile", web::post().to(reconcile))
            .route("/openapi.json", web::get().to(openapi)),
    );
}

fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: Option<String>,
    expires_in_secs: Option<u64>,
}

/// `POST /api/v1/tokens` with HTTP Basic auth (or a bearer token) → `{"token": ...}`.
async fn create_token(req: HttpRequest, broker: web::Data<Broker>, body: web::Bytes) -> ApiResult {
    let actor = match basic_credentials(&req) {
        Some((u, p)) => broker.identity.authenticate(&u, &p, client_ip(&req)).await?,
        None => ApiActor::from_request_ref(&req).await?.0,
    };
    let r: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("body: {e}")))?
    };
    let (token, row) = broker
        .identity
        .create_token(&actor, &actor.name, r.name.as_deref().unwrap_or("api"), r.expires_in_secs.map(Duration::from_secs))
        .await?;
    Ok(HttpResponse::Created().json(json!({"token": token, "id": row.id, "user": row.user_name, "expires_at": row.expires_at})))
}

impl ApiActor {
    async fn from_request_ref(req: &HttpRequest) -> Result<Self, ApiError> {
        use actix_web::FromRequest;
        ApiActor::from_request(req, &mut actix_web::dev::Payload::None).await
    }
}

async fn list_tokens(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.identity.list_tokens(&a.0, &a.0.name).await?)
}

async fn revoke_token(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    broker.identity.revoke_token(&a.0, &a.0.name, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn create_user(a: ApiActor, broker: web::Data<Broker>, body: web::Json<NewUser>) -> ApiResult {
    let u = broker.identity.create_user(&a.0, &body.name, &SecretString::new(body.password.clone()), body.admin).await?;
    Ok(HttpResponse::Created().json(u))
}

async fn list_users(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.identity.list_users(&a.0).await?)
}

async fn get_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.get_user(&a.0, &user).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Password {
    password: String,
}

async fn set_password(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Json<Password>) -> ApiResult {
    broker.identity.set_password(&a.0, &user, &SecretString::new(body.password.clone())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Role {
    admin: bool,
}

async fn set_role(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Json<Role>) -> ApiResult {
    broker.identity.set_admin(&a.0, &user, body.admin).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SshKey {
    ssh_public_key: Option<String>,
}

async fn set_ssh_key(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Json<SshKey>) -> ApiResult {
    broker.identity.set_ssh_key(&a.0, &user, body.ssh_public_key.as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    force: bool,
}

async fn list_credentials(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.vault.list_user(&a.0, &user).await?)
}

async fn put_credentials(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: web::Json<CredentialBody>,
) -> ApiResult {
    let (user, instance) = path.into_inner();
    ok(broker.vault.put(&a.0, Scope::User(&user), &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

async fn get_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, instance) = path.into_inner();
    ok(broker.vault.get(&a.0, Scope::User(&user), &instance).await?)
}

async fn delete_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, instance) = path.into_inner();
    broker.vault.delete(&a.0, Scope::User(&user), &instance).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_shared(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.vault.list_shared(&a.0).await?)
}

async fn put_shared(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: web::Json<CredentialBody>,
) -> ApiResult {
    let (instance, name) = path.into_inner();
    ok(broker.vault.put(&a.0, Scope::System(&name), &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

async fn get_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (instance, name) = path.into_inner();
    ok(broker.vault.get(&a.0, Scope::System(&name), &instance).await?)
}

async fn delete_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (instance, name) = path.into_inner();
    broker.vault.delete(&a.0, Scope::System(&name), &instance).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grants {
    users: Vec<String>,
}

async fn grant_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>, body: web::Json<Grants>) -> ApiResult {
    let (instance, name) = path.into_inner();
    ok(broker.vault.grant(&a.0, &name, &instance, &body.users).await?)
}

async fn rotate_keys(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    let (id, dropped) = broker.vault.rotate(&a.0).await?;
    ok(json!({"current_key": id, "dropped_keys": dropped}))
}

async fn audit(a: ApiActor, broker: web::Data<Broker>, q: web::Query<BTreeMap<String, String>>) -> ApiResult {
    a.0.require_admin()?;
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100).clamp(1, 10_000);
    ok(broker.store.audit_log(limit).await?)
}

/// `GET /api/v1/system/config` (admin): every parameter with value and origin.
async fn get_config(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    a.0.require_admin()?;
    let snap = broker.registry.snapshot();
    let params: Vec<&cloudbroker_core::registry::EffectiveParam> =
        snap.system.iter().chain(snap.instances.iter().flat_map(|i| i.params.iter())).collect();
    ok(json!({
        "params": params,
        "file_errors": snap.file_errors,
        "errors": snap.errors,
        "files": snap.files,
        "version": snap.config_version,
    }))
}

/// `PUT /api/v1/system/config` (admin): `{"key": "value" | null, ...}`, all or nothing.
async fn put_config(a: ApiActor, broker: web::Data<Broker>, body: web::Json<BTreeMap<String, Value>>) -> ApiResult {
    a.0.require_admin()?;
    let mut changes = Vec::new();
    for (k, v) in body.into_inner() {
        let v = match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => return Err(ApiError::invalid(format!("value of '{k}' must be a string, number, boolean or null, not {other}"))),
        };
        changes.push((k, v));
    }
    let snap = broker.registry.set_params(&changes, &a.0.name).await.map_err(|e| {
        use cloudbroker_core::registry::ConfigChangeError as E;
        ApiError(match e {
            E::ManagedByFile { .. } => ServiceError::Conflict(e.to_string()),
            E::UnknownKey(_) | E::BadValue { .. } => ServiceError::Invalid(e.to_string()),
            E::Store(s) => s.into(),
        })
    })?;
    let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
    broker.store.audit(&a.0.name, "config.change", &keys.join(","), "ok", "").await?;
    ok(json!({"version": snap.config_version, "errors": snap.errors}))
}

/// `GET /api/v1/connectors`: instances with kind, parameters and status.
async fn list_connectors(_a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    let snap = broker.registry.snapshot();
    ok(json!({"connectors": snap.instances}))
}

async fn reload_connectors(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    a.0.require_admin()?;
    let snap = broker.registry.reload().await?;
    broker.store.audit(&a.0.name, "config.reload", "connectors.d", "ok", "").await?;
    ok(json!({"connectors": snap.instances.len(), "file_errors": snap.file_errors, "errors": snap.errors}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageBody {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    os: String,
    parent: Option<String>,
    #[serde(default)]
    mappings: BTreeMap<String, cloudbroker_store::images::ImageMapping>,
}

impl ImageBody {
    fn into_row(self, name: String) -> cloudbroker_store::images::ImageRow {
        cloudbroker_store::images::ImageRow {
            name,
            description: self.description,
            os: self.os,
            parent: self.parent.filter(|p| !p.is_empty()),
            mappings: self.mappings,
        }
    }
}

async fn list_images(_a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.images.list().await?)
}

async fn get_image(_a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    ok(broker.images.get(&name).await?)
}

async fn create_image(a: ApiActor, broker: web::Data<Broker>, body: web::Json<ImageBody>) -> ApiResult {
    let body = body.into_inner();
    let name = body.name.clone().ok_or_else(|| ApiError::invalid("name is required"))?;
    let v = broker.images.put(&a.0, body.into_row(name), true).await?;
    Ok(HttpResponse::Created().json(v))
}

async fn put_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>, body: web::Json<ImageBody>) -> ApiResult {
    let body = body.into_inner();
    if body.name.as_deref().is_some_and(|n| n != name.as_str()) {
        return Err(ApiError::invalid("name in the body differs from the path"));
    }
    ok(broker.images.put(&a.0, body.into_row(name.into_inner()), false).await?)
}

async fn delete_image(a: ApiActor, broker: web::Data<Broker>, name: web::Path<String>) -> ApiResult {
    broker.images.delete(&a.0, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_quotas(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.quotas(&a.0, &user).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    vm: Option<i64>,
}

async fn put_quota(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>, body: web::Json<QuotaBody>) -> ApiResult {
    let (user, instance) = path.into_inner();
    broker.provisioning.set_quota(&a.0, &user, &instance, body.vm).await?;
    ok(broker.provisioning.quotas(&a.0, &user).await?.into_iter().find(|q| q.instance == instance))
}

async fn launch(a: ApiActor, broker: web::Data<Broker>, body: web::Json<cloudbroker_core::provisioning::LaunchRequest>) -> ApiResult {
    let (created, vms) = broker.provisioning.launch(&a.0, body.into_inner()).await?;
    let status = if created { actix_web::http::StatusCode::CREATED } else { actix_web::http::StatusCode::OK };
    Ok(HttpResponse::build(status).json(json!({"vms": vms})))
}

async fn list_vms(a: ApiActor, broker: web::Data<Broker>, q: web::Query<BTreeMap<String, String>>) -> ApiResult {
    let mut f = cloudbroker_store::vms::VmFilter::default();
    for (k, v) in q.into_inner() {
        match k.as_str() {
            "instance" => f.instance = Some(v),
            "state" => f.state = Some(v),
            "name" => f.name = Some(v),
            "user" => f.user = Some(v),
            "launch" => f.launch_id = Some(v),
            "tag" => {
                let (k, val) = v.split_once('=').ok_or_else(|| ApiError::invalid("tag filter must be tag=KEY=VALUE"))?;
                f.tag = Some((k.to_string(), val.to_string()));
            }
            other => return Err(ApiError::invalid(format!("unknown filter '{other}' (instance, state, name, tag, user, launch)"))),
        }
    }
    ok(json!({"vms": broker.provisioning.list(&a.0, f).await?}))
}

async fn get_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.get(&a.0, &id).await?)
}

async fn terminate_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.action(&a.0, &id, "terminate").await?)
}

async fn vm_action(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (id, action) = path.into_inner();
    if !["start", "stop", "reboot"].contains(&action.as_str()) {
        return Err(ApiError(ServiceError::NotFound(format!("action '{action}' (start, stop, reboot)"))));
    }
    ok(broker.provisioning.action(&a.0, &id, &action).await?)
}

/// `POST /api/v1/reconcile` (admin): one reconciliation pass now.
async fn reconcile(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    a.0.require_admin()?;
    let ttl = Duration::from_secs(broker.config.reconcile_interval_secs.max(10) * 3);
    ok(broker.provisioning.reconcile(&broker.replica_id, ttl).await?)
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(include_str!("openapi.json"))
}
