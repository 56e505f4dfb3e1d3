//! `/exchange`: the API a deployment's VMs call (through the served client,
//! `GET /client/cloudbroker-client.sh`) with their own credential, `Bearer
//! cbvm_...`, which opens nothing else (every other route refuses it with a
//! 401, and these routes refuse a user's token with a 401). Every name
//! resolves within the VM's own deployment. `get` long-polls: it answers as
//! soon as the value is set (on this replica at once, on another within the
//! exchange's poll interval) or with 404 `not_set` once `wait` has passed.

use super::error::{ApiError, ApiResult};
use super::no_content;
use crate::common::auth::bearer_token;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use cloudbroker_core::deployments::exchange::{SelfInfo, VmCaller, MAX_WAIT};
use cloudbroker_core::{Broker, ServiceError};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The client script, served as it is.
pub const CLIENT_SCRIPT: &str = include_str!("../client/cloudbroker-client.sh");

/// The VM a request comes from: a live deployment VM credential.
pub struct VmAuth(pub VmCaller);

impl FromRequest for VmAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let broker = req.app_data::<web::Data<Broker>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let broker = broker.ok_or_else(|| ApiError(ServiceError::Internal("no broker".into())))?;
            let token = token.ok_or_else(|| {
                ApiError(ServiceError::Unauthenticated("send Authorization: Bearer <the VM's token> (CLOUDBROKER_TOKEN)".into()))
            })?;
            Ok(VmAuth(broker.exchange.authenticate(&token).await?))
        })
    }
}

/// `?wait=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct WaitParams {
    /// Seconds to wait for the value to be set (0-60, default 0: answer at once).
    #[param(minimum = 0, maximum = 60, value_type = Option<u32>)]
    wait: Option<String>,
}

/// A parameter's value.
#[derive(Serialize, ToSchema)]
pub(super) struct ParamValue {
    /// The name as asked.
    name: String,
    value: String,
}

/// `PUT /exchange/params/{name}` as JSON.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetValue {
    /// At most 32 KiB.
    #[schema(max_length = 32768)]
    value: String,
}

/// `POST /exchange/abort` as JSON.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AbortBody {
    /// Why: 1-1000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    message: String,
}

/// Whether the caller asked for the bare value (`Accept: text/plain`).
fn wants_text(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))))
}

/// Whether the body is bare text (`Content-Type: text/plain`).
fn sends_text(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// A body as text (UTF-8), or its JSON object's field read by `json`.
fn body_text<T: for<'de> Deserialize<'de>>(req: &HttpRequest, body: &[u8], json: impl FnOnce(T) -> String) -> Result<String, ApiError> {
    if sends_text(req) {
        return String::from_utf8(body.to_vec()).map_err(|_| ApiError::field("value", "the body is not UTF-8"));
    }
    match serde_json::from_slice::<T>(body) {
        Ok(v) => Ok(json(v)),
        Err(e) => Err(ApiError::invalid(format!("body: {e} (send JSON, or text with Content-Type: text/plain)"))),
    }
}

fn name_ok(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field("name", "a parameter name is NAME, NODE.OUTPUT or NODE.INDEX.OUTPUT (lowercase letters, digits, '_')"))
    }
}

/// The calling VM: its deployment, node, index, and its node's parameters.
#[utoipa::path(get, path = "/api/v1/exchange/self", tag = "exchange",
    responses((status = 200, body = SelfInfo), (status = 401, description = "`unauthenticated`: not a live deployment VM's token", body = super::doc::ErrorBody)))]
pub(super) async fn exchange_self(vm: VmAuth, broker: web::Data<Broker>) -> ApiResult {
    let info = broker.exchange.self_info(&vm.0).await?;
    super::ok(info)
}

/// Reads a parameter, waiting up to `wait` seconds for it to be set. NAME
/// is an input of the VM's node (mapped: the output it is mapped from; else
/// the value given at deploy, else its default), one of its own outputs, a
/// deployment input, `NODE.OUTPUT` (the lowest-index live VM's value) or
/// `NODE.INDEX.OUTPUT`. With `Accept: text/plain` the answer is the bare value.
#[utoipa::path(get, path = "/api/v1/exchange/params/{name}", tag = "exchange",
    params(("name" = String, Path, description = "parameter name", pattern = r"^[a-z0-9_.]{1,100}$"), WaitParams),
    responses((status = 200, description = "The value (JSON), or the bare value with `Accept: text/plain`",
            content((ParamValue = "application/json"), (String = "text/plain"))),
        (status = 400, description = "`invalid_request`: no parameter by that name in the VM's deployment (`field`: `name`), or a bad `wait`", body = super::doc::ErrorBody),
        (status = 404, description = "`not_set`: not set within `wait` seconds; ask again", body = super::doc::ErrorBody)))]
pub(super) async fn exchange_get(
    vm: VmAuth,
    req: HttpRequest,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    q: web::Query<WaitParams>,
) -> ApiResult {
    let name = name.into_inner();
    name_ok(&name)?;
    let wait = match q.wait.as_deref() {
        None | Some("") => 0,
        Some(w) => w
            .parse::<u64>()
            .ok()
            .filter(|w| *w <= MAX_WAIT.as_secs())
            .ok_or_else(|| ApiError::field("wait", format!("wait is whole seconds, 0 to {}", MAX_WAIT.as_secs())))?,
    };
    match broker.exchange.get(&vm.0, &name, Duration::from_secs(wait)).await? {
        Some(value) if wants_text(&req) => Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(value)),
        Some(value) => super::ok(ParamValue { name, value }),
        None => Ok(HttpResponse::NotFound().json(serde_json::json!({"error": {
            "code": "not_set",
            "message": format!("'{name}' is not set yet (waited {wait}s); ask again"),
        }}))),
    }
}

/// Publishes one of the VM's node's declared outputs (as
/// `NODE.INDEX.NAME`), as JSON `{"value"}` or as the bare text with
/// `Content-Type: text/plain`. Waiting VMs get it at once.
#[utoipa::path(put, path = "/api/v1/exchange/params/{name}", tag = "exchange",
    params(("name" = String, Path, description = "an output of the VM's node", pattern = r"^[a-z0-9_.]{1,100}$")),
    request_body(content((SetValue = "application/json"), (String = "text/plain")), description = "The value"),
    responses((status = 204, description = "Set"),
        (status = 400, description = "`invalid_request`: not an output the VM's node declares (`field`: `name`), or a value over 32 KiB", body = super::doc::ErrorBody)))]
pub(super) async fn exchange_set(
    vm: VmAuth,
    req: HttpRequest,
    broker: web::Data<Broker>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult {
    let name = name.into_inner();
    name_ok(&name)?;
    let value = body_text(&req, &body, |v: SetValue| v.value)?;
    broker.exchange.set(&vm.0, &name, &value).await?;
    no_content()
}

/// The VM is ready (its node is ready when all its VMs are).
#[utoipa::path(post, path = "/api/v1/exchange/ready", tag = "exchange", responses((status = 204, description = "Recorded")))]
pub(super) async fn exchange_ready(vm: VmAuth, broker: web::Data<Broker>) -> ApiResult {
    broker.exchange.ready(&vm.0).await?;
    no_content()
}

/// Stops the whole deployment with a message (`NODE.INDEX: MESSAGE`): the
/// deployment fails with it (the first abort wins), and its VMs are kept or
/// terminated as it says. JSON `{"message"}` or the bare text.
#[utoipa::path(post, path = "/api/v1/exchange/abort", tag = "exchange",
    request_body(content((AbortBody = "application/json"), (String = "text/plain")), description = "Why"),
    responses((status = 204, description = "Recorded")))]
pub(super) async fn exchange_abort(vm: VmAuth, req: HttpRequest, broker: web::Data<Broker>, body: web::Bytes) -> ApiResult {
    let message = body_text(&req, &body, |v: AbortBody| v.message).map_err(|e| match e.0 {
        ServiceError::Invalid { message, .. } => ApiError::field("message", message),
        other => ApiError(other),
    })?;
    broker.exchange.abort(&vm.0, &message).await?;
    no_content()
}

/// `GET /client/cloudbroker-client.sh`: the client (POSIX sh and curl), no auth.
pub async fn client_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/x-shellscript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(CLIENT_SCRIPT)
}
