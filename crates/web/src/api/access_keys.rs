//! `/users/{user}/access-keys`: the keys EC2 clients sign with against the
//! broker's EC2 front-end (`/ec2`). The secret is in the creation answer
//! only; listing shows id, state, creation, last use and expiry. Every
//! operation is for the key's owner or an admin (another user's keys are
//! "not found" to non-admins). A key may be given a lifetime; one created
//! with an expiring bearer token expires with it. A key acts in one project
//! (`project` at creation; the user's personal project by default), of
//! which the user must be a member: EC2 requests signed with it act there,
//! with the user's current role.

use super::actor::ApiActor;
use super::body::{object, opt_integer};
use super::error::{ApiError, ApiResult};
use super::users::user_in_path;
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_core::access_keys::AccessKey;
use cloudbroker_core::domain::ProjectName;
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `POST /users/{user}/access-keys` (the body is optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessKeyRequest {
    /// Lifetime in seconds (at most about 10 years; default: none); never
    /// longer than the bearer token used to create it.
    #[schema(minimum = 1, maximum = 316_224_000)]
    #[serde(default, deserialize_with = "opt_integer")]
    expires_in_secs: Option<u64>,
    /// The project EC2 requests signed with the key act in (the user must be
    /// a member; default: the one of `?project=`, else the user's personal
    /// project).
    #[schema(value_type = Option<super::doc::UserNameRef>)]
    #[serde(default)]
    project: Option<String>,
}

/// A project named in a body: a name breaking the rules is a 400 on
/// `project`; a well-formed but reserved one (`system`) names no project (404).
pub(super) fn project_in_body(raw: &str) -> Result<ProjectName, ApiError> {
    ProjectName::parse(raw).map_err(|e| {
        let b = raw.as_bytes();
        let well_formed = (1..=64).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c));
        if well_formed {
            ApiError(ServiceError::NotFound(Resource::Record(format!("project '{raw}'"))))
        } else {
            ApiError::field("project", e.message)
        }
    })
}

/// A new access key, with its secret (shown this once).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct NewAccessKey {
    access_key_id: String,
    secret_access_key: String,
    user: String,
    /// The project the key acts in.
    project: String,
    /// `active`
    state: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// When the key stops working; `null`: never.
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A user's access keys (at most a few; not paginated).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct AccessKeyList {
    access_keys: Vec<AccessKey>,
}

/// Creates an EC2 API access key (self or admin); the secret is in this
/// answer only. It expires after `expires_in_secs` if given, and never after
/// the bearer token used here. It acts in `project` (the body's, else
/// `?project=`, else the user's personal project), of which the user must
/// be a member.
#[utoipa::path(post, path = "/api/v1/users/{user}/access-keys", tag = "access-keys", params(("user" = String, Path, description = "user name")),
    request_body(content = Option<AccessKeyRequest>, description = "optional"),
    responses((status = 201, body = NewAccessKey), (status = 404, description = "`not_found`: no such user, or the project is not one of theirs", body = super::doc::ErrorBody), (status = 409, description = "Too many active keys")))]
pub(super) async fn create_access_key(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: web::Bytes) -> ApiResult {
    let user = user_in_path(&user)?;
    // No body, or `null`, takes the defaults.
    let r: AccessKeyRequest = match serde_json::from_slice(&body) {
        _ if body.is_empty() => AccessKeyRequest::default(),
        Ok(serde_json::Value::Null) => AccessKeyRequest::default(),
        Ok(v) => object(v)?,
        Err(e) => return Err(ApiError::invalid(format!("body: {e}"))),
    };
    let in_body = match r.project.as_deref() {
        None => None,
        Some(p) => Some(project_in_body(p)?),
    };
    // `?project=` (entered by the extractor) names it too; both must agree.
    let in_query = (!a.0.in_personal_project()).then(|| a.0.project.clone());
    let project = match (in_body, in_query) {
        (Some(b), Some(q)) if b != q => {
            return Err(ApiError::field("project", format!("the body names project '{b}' but ?project= names '{q}'")));
        }
        (b, q) => b.or(q),
    };
    let expires_in = r.expires_in_secs.map(Duration::from_secs);
    let (key, secret) = broker.access_keys.create_in(&a.0, &user, project.as_ref(), expires_in).await?;
    Ok(HttpResponse::Created().json(NewAccessKey {
        access_key_id: key.access_key_id,
        secret_access_key: secret.expose().to_string(),
        user: key.user.to_string(),
        project: key.project.to_string(),
        state: key.state,
        created_at: key.created_at,
        expires_at: key.expires_at,
    }))
}

/// A user's EC2 API access keys (self or admin), never their secrets.
#[utoipa::path(get, path = "/api/v1/users/{user}/access-keys", tag = "access-keys", params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = AccessKeyList)))]
pub(super) async fn list_access_keys(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(AccessKeyList { access_keys: broker.access_keys.list(&a.0, &user_in_path(&user)?).await? })
}

/// Deletes an access key (self or admin).
#[utoipa::path(delete, path = "/api/v1/users/{user}/access-keys/{id}", tag = "access-keys",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "access key id")),
    responses((status = 204, description = "Deleted")))]
pub(super) async fn delete_access_key(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    broker.access_keys.delete(&a.0, &user_in_path(&user)?, &id).await?;
    no_content()
}

/// Disables an access key (self or admin): EC2 requests signed with it are refused.
#[utoipa::path(post, path = "/api/v1/users/{user}/access-keys/{id}/disable", tag = "access-keys",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "access key id")),
    responses((status = 200, body = AccessKey)))]
pub(super) async fn disable_access_key(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    ok(broker.access_keys.set_active(&a.0, &user_in_path(&user)?, &id, false).await?)
}

/// Enables an access key again (self or admin).
#[utoipa::path(post, path = "/api/v1/users/{user}/access-keys/{id}/enable", tag = "access-keys",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "access key id")),
    responses((status = 200, body = AccessKey)))]
pub(super) async fn enable_access_key(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    ok(broker.access_keys.set_active(&a.0, &user_in_path(&user)?, &id, true).await?)
}
