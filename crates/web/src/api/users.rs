//! `/users`: accounts, roles, passwords and SSH keys.

use super::actor::ApiActor;
use super::body::Body;
use super::doc::PageParams;
use super::error::{parse, ApiResult};
use super::{no_content, ok};
use crate::common::auth::client_ip;
use actix_web::{web, HttpRequest, HttpResponse};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::domain::{TokenId, UserName};
use cloudbroker_core::identity::{Token, User};
use cloudbroker_core::{Broker, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user named in a path: an invalid name cannot exist.
pub(super) fn user_in_path(s: &str) -> Result<UserName, super::error::ApiError> {
    UserName::parse(s).map_err(|_| {
        super::error::ApiError(cloudbroker_core::ServiceError::NotFound(cloudbroker_core::Resource::Record(format!(
            "user '{}'",
            s.chars().take(64).collect::<String>()
        ))))
    })
}

/// `POST /users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    /// 1-64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    name: String,
    /// 8-1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    #[serde(default)]
    admin: bool,
}

/// One page of users.
#[derive(Serialize, ToSchema)]
pub(super) struct UserPage {
    users: Vec<User>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    next_cursor: Option<String>,
}

/// One page of API tokens, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenPage {
    pub(super) tokens: Vec<Token>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    pub(super) next_cursor: Option<String>,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, description = "`conflict`: the name is taken", body = super::doc::ErrorBody)))]
pub(super) async fn create_user(a: ApiActor, broker: web::Data<Broker>, body: Body<NewUser>) -> ApiResult {
    a.0.require_admin()?;
    let name = parse(UserName::parse(&body.name))?;
    let u = broker.identity.create_user(&a.0, &name, &SecretString::new(body.password.clone()), body.admin).await?;
    Ok(HttpResponse::Created().json(u))
}

/// Users by name (admin), paginated.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageParams), responses((status = 200, body = UserPage)))]
pub(super) async fn list_users(a: ApiActor, broker: web::Data<Broker>, q: web::Query<PageParams>) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.identity.page_users(&a.0, &page).await?;
    ok(UserPage { users: p.items, next_cursor: p.next_cursor })
}

/// A user (self or admin).
#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = User)))]
pub(super) async fn get_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.get_user(&a.0, &user_in_path(&user)?).await?)
}

/// `PUT /users/{user}/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Password {
    /// 8-1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// Required to change one's own password.
    current_password: Option<String>,
    /// Also disable every EC2 access key of the user (default false). An
    /// admin's reset of another user's password always disables them.
    #[serde(default)]
    disable_access_keys: bool,
}

/// Sets a password; every session and token of the user ends (self with the
/// current password, or admin). An admin's reset of another user's password
/// also disables their EC2 access keys (the recovery path after a
/// compromise); changing one's own does when `disable_access_keys` is true.
#[utoipa::path(put, path = "/api/v1/users/{user}/password", tag = "users", params(("user" = String, Path, description = "user name")),
    request_body = Password, responses((status = 204, description = "Set; the user's sessions and tokens ended (and access keys disabled, on an admin's reset or when asked)")))]
pub(super) async fn set_password(
    req: HttpRequest,
    a: ApiActor,
    broker: web::Data<Broker>,
    user: web::Path<String>,
    body: Body<Password>,
) -> ApiResult {
    let current = body.current_password.clone().map(SecretString::new);
    broker
        .identity
        .change_password(
            &a.0,
            &user_in_path(&user)?,
            current.as_ref(),
            &SecretString::new(body.password.clone()),
            client_ip(&req),
            body.disable_access_keys,
        )
        .await?;
    no_content()
}

/// Disables a user (admin): their sessions and tokens stop working.
#[utoipa::path(post, path = "/api/v1/users/{user}/disable", tag = "users", params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = User)))]
pub(super) async fn disable_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.set_disabled(&a.0, &user_in_path(&user)?, true).await?)
}

/// Enables a user again (admin).
#[utoipa::path(post, path = "/api/v1/users/{user}/enable", tag = "users", params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = User)))]
pub(super) async fn enable_user(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>) -> ApiResult {
    ok(broker.identity.set_disabled(&a.0, &user_in_path(&user)?, false).await?)
}

/// A user's API tokens, newest first (self or admin), paginated.
#[utoipa::path(get, path = "/api/v1/users/{user}/tokens", tag = "tokens", params(("user" = String, Path, description = "user name"), PageParams),
    responses((status = 200, body = TokenPage)))]
pub(super) async fn list_user_tokens(
    a: ApiActor,
    broker: web::Data<Broker>,
    user: web::Path<String>,
    q: web::Query<PageParams>,
) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.identity.page_tokens(&a.0, &user_in_path(&user)?, &page).await?;
    ok(TokenPage { tokens: p.items, next_cursor: p.next_cursor })
}

/// Revokes a user's token (self or admin).
#[utoipa::path(delete, path = "/api/v1/users/{user}/tokens/{id}", tag = "tokens",
    params(("user" = String, Path, description = "user name"), ("id" = String, Path, description = "token id")),
    responses((status = 204, description = "Revoked")))]
pub(super) async fn revoke_user_token(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, id) = path.into_inner();
    let id = TokenId::parse(&id).map_err(|_| {
        ServiceError::NotFound(cloudbroker_core::Resource::Record(format!("token '{}'", id.chars().take(64).collect::<String>())))
    })?;
    broker.identity.revoke_token(&a.0, &user_in_path(&user)?, &id).await?;
    no_content()
}

/// `PUT /users/{user}/role`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Role {
    admin: bool,
}

/// Grants or removes the admin role (admin; `super` is always an admin).
#[utoipa::path(put, path = "/api/v1/users/{user}/role", tag = "users", params(("user" = String, Path, description = "user name")),
    request_body = Role, responses((status = 204, description = "Set"), (status = 409, description = "`conflict`: `super` is always an admin", body = super::doc::ErrorBody)))]
pub(super) async fn set_role(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: Body<Role>) -> ApiResult {
    broker.identity.set_admin(&a.0, &user_in_path(&user)?, body.admin).await?;
    no_content()
}

/// `PUT /users/{user}/ssh-key`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SshKey {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`); null removes the key.
    #[schema(pattern = r"^[ \t\r\n]*(ssh-|ecdsa-)[!-~]*[ \t]+[!-~]{16,}([ \t][^\x00-\x08\x0a-\x1f\x7f-\x9f]*)?[ \t\r\n]*$")]
    ssh_public_key: Option<String>,
}

/// Sets or removes the user's SSH public key (self or admin).
#[utoipa::path(put, path = "/api/v1/users/{user}/ssh-key", tag = "users", params(("user" = String, Path, description = "user name")),
    request_body = SshKey, responses((status = 204, description = "Set")))]
pub(super) async fn set_ssh_key(a: ApiActor, broker: web::Data<Broker>, user: web::Path<String>, body: Body<SshKey>) -> ApiResult {
    broker.identity.set_ssh_key(&a.0, &user_in_path(&user)?, body.ssh_public_key.as_deref()).await?;
    no_content()
}

/// `PUT /users/{user}/default-ec2-region`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultEc2Region {
    /// A connector instance of this broker (a region listed by the EC2 front's `DescribeRegions`); null or empty clears it.
    #[schema(pattern = "^([a-z0-9]+(-[a-z0-9]+)*)?$", max_length = 63)]
    default_ec2_region: Option<String>,
}

/// Sets or clears the user's default EC2 region (self or admin): the connector
/// instance that SigV2 requests sent to plain `/ec2` act on.
#[utoipa::path(put, path = "/api/v1/users/{user}/default-ec2-region", tag = "users", params(("user" = String, Path, description = "user name")),
    request_body = DefaultEc2Region, responses((status = 204, description = "Set"),
    (status = 400, description = "`invalid`: not a well-formed instance name", body = super::doc::ErrorBody),
    (status = 409, description = "`unresolved` (with `field`): a well-formed name that no connector instance of this broker has", body = super::doc::ErrorBody)))]
pub(super) async fn set_default_ec2_region(
    a: ApiActor,
    broker: web::Data<Broker>,
    user: web::Path<String>,
    body: Body<DefaultEc2Region>,
) -> ApiResult {
    broker.set_default_ec2_region(&a.0, &user_in_path(&user)?, body.default_ec2_region.as_deref()).await?;
    no_content()
}
