//! Cloud credentials: a user's own per connector instance
//! (`/users/{user}/credentials/{instance}`), a project's
//! (`/projects/{project}/credentials/{instance}`: its owners store and
//! delete them, its members see them masked), and shared ones
//! (`/system/credentials/{instance}/{name}`, admin) with their grants to
//! projects. Secrets go in and never come back out.

use super::actor::ApiActor;
use super::body::Body;
use super::doc::{ErrorBody, PageParams};
use super::error::{ApiError, ApiResult};
use super::users::user_in_path;
use super::{no_content, ok};
use actix_web::web;
use cloudbroker_core::domain::{CredentialName, InstanceName, ProjectName, UserName};
use cloudbroker_core::vault::{MaskedCredential, Rotation, Scope};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of credentials, masked.
#[derive(Serialize, ToSchema)]
pub(super) struct CredentialPage {
    credentials: Vec<MaskedCredential>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    next_cursor: Option<String>,
}

/// Cloud keys to store (sealed); checked with the connector first.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CredentialBody {
    /// 1-256 characters, no control characters, not only spaces (spaces around are trimmed).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    access_key_id: String,
    /// 1-4096 characters; never shown again.
    #[schema(min_length = 1, max_length = 4096)]
    secret_access_key: String,
    /// Store the keys even when the cloud refuses them (`unverified`).
    #[serde(default)]
    force: bool,
}

/// An instance named in a path: an invalid name cannot exist.
fn instance_in_path(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", s.chars().take(64).collect::<String>()))))
    })
}

fn user_and_instance(p: &(String, String)) -> Result<(UserName, InstanceName), ApiError> {
    Ok((user_in_path(&p.0)?, instance_in_path(&p.1)?))
}

/// A project named in a path: an invalid name cannot exist.
fn project_in_path(s: &str) -> Result<ProjectName, ApiError> {
    ProjectName::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("project '{}'", s.chars().take(64).collect::<String>())))))
}

fn instance_and_name(p: &(String, String)) -> Result<(InstanceName, CredentialName), ApiError> {
    let name = CredentialName::parse(&p.1).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("shared credential '{}'", p.1.chars().take(128).collect::<String>()))))
    })?;
    Ok((instance_in_path(&p.0)?, name))
}

/// A user's cloud credentials, masked, by instance (self or admin), paginated.
#[utoipa::path(get, path = "/api/v1/users/{user}/credentials", tag = "credentials", params(("user" = String, Path, description = "user name"), PageParams),
    responses((status = 200, body = CredentialPage)))]
pub(super) async fn list_credentials(
    a: ApiActor,
    broker: web::Data<Broker>,
    user: web::Path<String>,
    q: web::Query<PageParams>,
) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.vault.page_user(&a.0, &user_in_path(&user)?, &page).await?;
    ok(CredentialPage { credentials: p.items, next_cursor: p.next_cursor })
}

/// Stores a user's cloud keys for an instance, checked with the cloud first (self or admin).
#[utoipa::path(put, path = "/api/v1/users/{user}/credentials/{instance}", tag = "credentials", params(("user" = String, Path, description = "user name"), ("instance" = String, Path, description = "connector instance")), request_body = CredentialBody,
    responses((status = 200, body = MaskedCredential), (status = 409, description = "`conflict`: live VMs, Elastic IPs or volumes would be lost to the new keys", body = ErrorBody), (status = 502, description = "the cloud could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn put_credentials(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<CredentialBody>,
) -> ApiResult {
    let (user, instance) = user_and_instance(&path)?;
    ok(broker.vault.put(&a.0, Scope::User(&user), &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

/// A user's credentials for an instance, masked (self or admin).
#[utoipa::path(get, path = "/api/v1/users/{user}/credentials/{instance}", tag = "credentials", params(("user" = String, Path, description = "user name"), ("instance" = String, Path, description = "connector instance")),
    responses((status = 200, body = MaskedCredential)))]
pub(super) async fn get_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, instance) = user_and_instance(&path)?;
    ok(broker.vault.get(&a.0, Scope::User(&user), &instance).await?)
}

/// Deletes a user's credentials for an instance (self or admin); refused while live VMs, Elastic IPs or volumes made with them remain.
#[utoipa::path(delete, path = "/api/v1/users/{user}/credentials/{instance}", tag = "credentials", params(("user" = String, Path, description = "user name"), ("instance" = String, Path, description = "connector instance")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`conflict`: live VMs, Elastic IPs or volumes made with them remain", body = ErrorBody)))]
pub(super) async fn delete_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (user, instance) = user_and_instance(&path)?;
    broker.vault.delete(&a.0, Scope::User(&user), &instance).await?;
    no_content()
}

/// Shared credentials, masked, with their grants (admin), paginated.
#[utoipa::path(get, path = "/api/v1/system/credentials", tag = "credentials", params(PageParams),
    responses((status = 200, body = CredentialPage)))]
pub(super) async fn list_shared(a: ApiActor, broker: web::Data<Broker>, q: web::Query<PageParams>) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.vault.page_shared(&a.0, &page).await?;
    ok(CredentialPage { credentials: p.items, next_cursor: p.next_cursor })
}

/// Stores a shared credential for an instance (admin).
#[utoipa::path(put, path = "/api/v1/system/credentials/{instance}/{name}", tag = "credentials", params(("instance" = String, Path, description = "connector instance"), ("name" = String, Path, description = "shared credential name")), request_body = CredentialBody,
    responses((status = 200, body = MaskedCredential), (status = 409, description = "`conflict`: live VMs, Elastic IPs or volumes would be lost to the new keys", body = ErrorBody), (status = 502, description = "the cloud could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn put_shared(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<CredentialBody>,
) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    ok(broker.vault.put(&a.0, Scope::System(&name), &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

/// A shared credential, masked, with its grants (admin).
#[utoipa::path(get, path = "/api/v1/system/credentials/{instance}/{name}", tag = "credentials", params(("instance" = String, Path, description = "connector instance"), ("name" = String, Path, description = "shared credential name")),
    responses((status = 200, body = MaskedCredential)))]
pub(super) async fn get_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    ok(broker.vault.get(&a.0, Scope::System(&name), &instance).await?)
}

/// Deletes a shared credential (admin); refused while live VMs, Elastic IPs or volumes made with it remain.
#[utoipa::path(delete, path = "/api/v1/system/credentials/{instance}/{name}", tag = "credentials", params(("instance" = String, Path, description = "connector instance"), ("name" = String, Path, description = "shared credential name")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`conflict`: live VMs, Elastic IPs or volumes made with them remain", body = ErrorBody)))]
pub(super) async fn delete_shared(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    broker.vault.delete(&a.0, Scope::System(&name), &instance).await?;
    no_content()
}

/// The projects whose members may launch with a shared credential
/// (replaces the list): those named in `projects`, and the personal projects
/// of the users named in `users` (as grants were before projects). Both
/// empty or absent: granted to nobody.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Grants {
    /// Project names.
    #[serde(default)]
    #[schema(max_items = 10000, value_type = Vec<super::doc::UserNameRef>)]
    projects: Vec<String>,
    /// User names: their personal projects.
    #[serde(default)]
    #[schema(max_items = 10000, value_type = Vec<super::doc::UserNameRef>)]
    users: Vec<String>,
}

/// Sets which projects may launch with a shared credential (admin).
#[utoipa::path(put, path = "/api/v1/system/credentials/{instance}/{name}/grants", tag = "credentials", params(("instance" = String, Path, description = "connector instance"), ("name" = String, Path, description = "shared credential name")), request_body = Grants,
    responses((status = 200, body = MaskedCredential)))]
pub(super) async fn grant_shared(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<Grants>,
) -> ApiResult {
    a.0.require_admin()?;
    let (instance, name) = instance_and_name(&path)?;
    if body.users.len() > 10_000 {
        return Err(ApiError::field("users", "at most 10000 users in one grant"));
    }
    if body.projects.len() > 10_000 {
        return Err(ApiError::field("projects", "at most 10000 projects in one grant"));
    }
    let users = body
        .users
        .iter()
        .map(|u| UserName::parse(u).map_err(|_| ApiError::field("users", format!("user '{u}' is not a valid user name"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut projects = body
        .projects
        .iter()
        .map(|p| match super::access_keys::project_in_body(p) {
            Err(ApiError(ServiceError::Invalid { .. })) => {
                Err(ApiError::field("projects", format!("project '{p}' is not a valid project name")))
            }
            other => other,
        })
        .collect::<Result<Vec<_>, _>>()?;
    projects.extend(broker.vault.personal_projects(&users).await?);
    ok(broker.vault.grant(&a.0, &name, &instance, &projects).await?)
}

/// A project's cloud credentials, masked, by instance (its members; admins).
#[utoipa::path(get, path = "/api/v1/projects/{project}/credentials", tag = "credentials", params(("project" = String, Path, description = "project name")),
    responses((status = 200, body = CredentialPage), (status = 404, description = "`not_found`: no such project, or not a member", body = ErrorBody)))]
pub(super) async fn list_project_credentials(a: ApiActor, broker: web::Data<Broker>, project: web::Path<String>) -> ApiResult {
    let project = project_in_path(&project)?;
    let actor = broker.projects.enter(a.0, &project).await?;
    ok(CredentialPage { credentials: broker.vault.list_project(&actor, &project).await?, next_cursor: None })
}

/// Stores a project's cloud keys for an instance, checked with the cloud first (its owners; admins). Every member's launches may use them; nobody reads the secret back.
#[utoipa::path(put, path = "/api/v1/projects/{project}/credentials/{instance}", tag = "credentials", params(("project" = String, Path, description = "project name"), ("instance" = String, Path, description = "connector instance")), request_body = CredentialBody,
    responses((status = 200, body = MaskedCredential), (status = 403, description = "`forbidden`: only the project's owners store its credentials", body = ErrorBody), (status = 404, description = "`not_found`: no such project or connector instance", body = ErrorBody), (status = 409, description = "`conflict`: live VMs, Elastic IPs or volumes would be lost to the new keys", body = ErrorBody), (status = 502, description = "the cloud could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn put_project_credentials(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<CredentialBody>,
) -> ApiResult {
    let (project, instance) = (project_in_path(&path.0)?, instance_in_path(&path.1)?);
    let actor = broker.projects.enter(a.0, &project).await?;
    let scope = Scope::Project(&project);
    ok(broker.vault.put(&actor, scope, &instance, &body.access_key_id, &body.secret_access_key, body.force).await?)
}

/// Deletes a project's credentials for an instance (its owners; admins); refused while live VMs, Elastic IPs or volumes made with them remain.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/credentials/{instance}", tag = "credentials", params(("project" = String, Path, description = "project name"), ("instance" = String, Path, description = "connector instance")),
    responses((status = 204, description = "Deleted"), (status = 403, description = "`forbidden`: only the project's owners delete its credentials", body = ErrorBody), (status = 404, description = "`not_found`: no such project or credentials", body = ErrorBody), (status = 409, description = "`conflict`: live VMs, Elastic IPs or volumes made with them remain", body = ErrorBody)))]
pub(super) async fn delete_project_credentials(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (project, instance) = (project_in_path(&path.0)?, instance_in_path(&path.1)?);
    let actor = broker.projects.enter(a.0, &project).await?;
    broker.vault.delete(&actor, Scope::Project(&project), &instance).await?;
    no_content()
}

/// Rotates the master key: a new key seals everything, unused keys are retired (admin).
#[utoipa::path(post, path = "/api/v1/system/keys/rotate", tag = "credentials",
    responses((status = 200, body = Rotation), (status = 409, description = "`conflict`: another rotation is running", body = ErrorBody)))]
pub(super) async fn rotate_keys(a: ApiActor, broker: web::Data<Broker>) -> ApiResult {
    ok(broker.vault.rotate(&a.0).await?)
}
