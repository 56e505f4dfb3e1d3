//! `/projects`: projects (teams), their members and roles. Handlers parse
//! names and call the projects service, which decides who sees what: a
//! project the caller is no member of is a 404 (admins see every project).

use super::actor::ApiActor;
use super::body::Body;
use super::doc::PageParams;
use super::error::{parse, ApiError, ApiResult};
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_core::domain::{ProjectName, ProjectRole, UserName};
use cloudbroker_core::projects::{Member, Project, ProjectDetail};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A project named in a path: an invalid name cannot exist (404).
fn project_in_path(s: &str) -> Result<ProjectName, ApiError> {
    ProjectName::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("project '{}'", s.chars().take(64).collect::<String>())))))
}

/// `POST /projects`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewProject {
    /// 1-64 lowercase letters, digits, `.`, `_` or `-`, starting with a
    /// letter or digit; shared with user names (a user's personal project
    /// bears their name).
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    name: String,
    /// At most 500 characters.
    #[schema(max_length = 500, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    description: Option<String>,
    /// Admins: the first owner (default: the caller). Others may name only themselves.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    owner: Option<String>,
}

/// `PUT /projects/{project}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectUpdate {
    /// At most 500 characters.
    #[schema(max_length = 500, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    description: String,
}

/// `PUT /projects/{project}/members/{user}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberRole {
    role: ProjectRole,
}

/// One page of projects.
#[derive(Serialize, ToSchema)]
pub(super) struct ProjectPage {
    projects: Vec<Project>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    next_cursor: Option<String>,
}

/// A project's members.
#[derive(Serialize, ToSchema)]
pub(super) struct MemberList {
    members: Vec<Member>,
}

/// Creates a team project: the caller becomes its owner (an admin may name
/// the first owner).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project),
    (status = 409, description = "`conflict`: the name is taken (by a project or a user), or the named owner is disabled", body = super::doc::ErrorBody)))]
pub(super) async fn create_project(a: ApiActor, broker: web::Data<Broker>, body: Body<NewProject>) -> ApiResult {
    let name = parse(ProjectName::parse(&body.name).map_err(|mut e| {
        e.field = "name";
        e
    }))?;
    let owner = body.owner.as_deref().map(|o| UserName::parse(o).map_err(|e| ApiError::field("owner", e.message))).transpose()?;
    let p = broker.projects.create(&a.0, &name, body.description.as_deref().unwrap_or(""), owner.as_ref()).await?;
    Ok(HttpResponse::Created().json(p))
}

/// The caller's projects with its role there (admins: every project), by name, paginated.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(PageParams), responses((status = 200, body = ProjectPage)))]
pub(super) async fn list_projects(a: ApiActor, broker: web::Data<Broker>, q: web::Query<PageParams>) -> ApiResult {
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let p = broker.projects.page(&a.0, &page).await?;
    ok(ProjectPage { projects: p.items, next_cursor: p.next_cursor })
}

/// A project with its members and their roles (members and admins).
#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects", params(("project" = String, Path, description = "project name")),
    responses((status = 200, body = ProjectDetail)))]
pub(super) async fn get_project(a: ApiActor, broker: web::Data<Broker>, project: web::Path<String>) -> ApiResult {
    ok(broker.projects.get(&a.0, &project_in_path(&project)?).await?)
}

/// Sets a project's description (owners and admins).
#[utoipa::path(put, path = "/api/v1/projects/{project}", tag = "projects", params(("project" = String, Path, description = "project name")),
    request_body = ProjectUpdate, responses((status = 200, body = Project)))]
pub(super) async fn update_project(
    a: ApiActor,
    broker: web::Data<Broker>,
    project: web::Path<String>,
    body: Body<ProjectUpdate>,
) -> ApiResult {
    ok(broker.projects.update(&a.0, &project_in_path(&project)?, &body.description).await?)
}

/// Deletes a team project (owners and admins): refused for a personal
/// project and while the project holds live VMs, addresses or volumes.
#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "projects", params(("project" = String, Path, description = "project name")),
    responses((status = 204, description = "Deleted"),
    (status = 409, description = "`conflict`: a personal project, or one still holding live VMs, addresses or volumes (counted in the message)", body = super::doc::ErrorBody)))]
pub(super) async fn delete_project(a: ApiActor, broker: web::Data<Broker>, project: web::Path<String>) -> ApiResult {
    broker.projects.delete(&a.0, &project_in_path(&project)?).await?;
    no_content()
}

/// A project's members and their roles (members and admins).
#[utoipa::path(get, path = "/api/v1/projects/{project}/members", tag = "projects", params(("project" = String, Path, description = "project name")),
    responses((status = 200, body = MemberList)))]
pub(super) async fn list_members(a: ApiActor, broker: web::Data<Broker>, project: web::Path<String>) -> ApiResult {
    ok(MemberList { members: broker.projects.members(&a.0, &project_in_path(&project)?).await? })
}

/// Adds a user to a team project with a role, or changes their role
/// (owners and admins). The project keeps at least one owner.
#[utoipa::path(put, path = "/api/v1/projects/{project}/members/{user}", tag = "projects",
    params(("project" = String, Path, description = "project name"), ("user" = String, Path, description = "user name")),
    request_body = MemberRole, responses((status = 200, body = Member),
    (status = 409, description = "`conflict`: a personal project, a disabled user, or the change would leave no owner", body = super::doc::ErrorBody)))]
pub(super) async fn put_member(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<MemberRole>,
) -> ApiResult {
    let (project, user) = path.into_inner();
    let project = project_in_path(&project)?;
    let user = super::users::user_in_path(&user)?;
    ok(broker.projects.set_member(&a.0, &project, &user, body.role).await?)
}

/// Removes a member from a team project (owners and admins; a member may
/// leave). The project keeps at least one owner.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/members/{user}", tag = "projects",
    params(("project" = String, Path, description = "project name"), ("user" = String, Path, description = "user name")),
    responses((status = 204, description = "Removed"),
    (status = 409, description = "`conflict`: a personal project, or the removal would leave no owner", body = super::doc::ErrorBody)))]
pub(super) async fn remove_member(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (project, user) = path.into_inner();
    let project = project_in_path(&project)?;
    let user = super::users::user_in_path(&user)?;
    broker.projects.remove_member(&a.0, &project, &user).await?;
    no_content()
}
