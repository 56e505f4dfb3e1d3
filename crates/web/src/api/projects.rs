//! `/projects`: projects (teams), their members and roles, and their own
//! launch policies per connector instance (which only tighten the
//! instance's). Handlers parse names and call the projects (or
//! provisioning) service, which decides who sees what: a project the
//! caller is no member of is a 404 (admins see every project).

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

/// A project's own launch policies, one entry per connector instance.
#[derive(Serialize, ToSchema)]
pub(super) struct ProjectPolicyList {
    policies: Vec<cloudbroker_core::provisioning::ProjectPolicy>,
}

/// `PUT /projects/{project}/policies/{instance}`: the project's own launch
/// policies on the instance, each as the instance's parameter of that name
/// takes it (a number may be given as one); absent, null or empty: unset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectPolicyBody {
    /// Instance types or patterns with `*`, comma-separated (e.g. `t3.*, m5.large`).
    #[serde(rename = "policy.instance.types", default, deserialize_with = "opt_text")]
    #[schema(rename = "policy.instance.types")]
    instance_types: Option<String>,
    /// Native image names, comma-separated.
    #[serde(rename = "policy.images", default, deserialize_with = "opt_text")]
    #[schema(rename = "policy.images")]
    images: Option<String>,
    /// Tag keys every launch must carry, each with its allowed values where
    /// given (e.g. `cost-center=(rd|ops), owner`).
    #[serde(rename = "policy.tags.required", default, deserialize_with = "opt_text")]
    #[schema(rename = "policy.tags.required")]
    tags_required: Option<String>,
    /// Most VMs per launch (1-1000), a number or its text.
    #[serde(rename = "policy.count.max", default, deserialize_with = "opt_count")]
    #[schema(rename = "policy.count.max", value_type = Option<CountMax>)]
    count_max: Option<String>,
    /// Longest lease from now (e.g. `8h`, `1d12h`).
    #[serde(rename = "lease.max", default, deserialize_with = "opt_text")]
    #[schema(rename = "lease.max")]
    lease_max: Option<String>,
}

/// `policy.count.max` as the document shows it: a whole number, or its text.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum CountMax {
    Number(i64),
    Text(String),
}

/// An optional parameter value: a string (null: unset).
fn opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// An optional count: a whole number, or its text (null: unset).
fn opt_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        // A whole number, written `5` or `5.0`.
        Some(serde_json::Value::Number(n)) if n.as_i64().is_some() => Ok(Some(n.to_string())),
        Some(serde_json::Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) => {
            Ok(n.as_f64().map(|f| (f as i64).to_string()))
        }
        Some(other) => Err(D::Error::custom(format!("policy.count.max: {other} is not a whole number"))),
    }
}

impl ProjectPolicyBody {
    /// Parameter name -> value, as the service takes them.
    fn values(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("policy.instance.types", &self.instance_types),
            ("policy.images", &self.images),
            ("policy.tags.required", &self.tags_required),
            ("policy.count.max", &self.count_max),
            ("lease.max", &self.lease_max),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .collect()
    }
}

/// A connector instance named in a path: an invalid name cannot exist (404).
fn instance_in_path(s: &str) -> Result<cloudbroker_core::domain::InstanceName, ApiError> {
    cloudbroker_core::domain::InstanceName::parse(s).map_err(|_| {
        ApiError(ServiceError::NotFound(Resource::Record(format!("connector instance '{}'", s.chars().take(64).collect::<String>()))))
    })
}

/// A project's own launch policies on every connector instance, with the
/// instance's values they tighten (members, any role, and admins). A
/// launch in the project must pass both the instance's and the project's.
#[utoipa::path(get, path = "/api/v1/projects/{project}/policies", tag = "projects", params(("project" = String, Path, description = "project name")),
    responses((status = 200, body = ProjectPolicyList),
    (status = 404, description = "`not_found`: no such project, or the caller is no member of it", body = super::doc::ErrorBody)))]
pub(super) async fn list_project_policies(a: ApiActor, broker: web::Data<Broker>, project: web::Path<String>) -> ApiResult {
    ok(ProjectPolicyList { policies: broker.provisioning.project_policies(&a.0, &project_in_path(&project)?).await? })
}

/// Replaces a project's own launch policies on an instance (owners and
/// admins): they can only tighten the instance's, never loosen them.
/// Applies to launches from now on.
#[utoipa::path(put, path = "/api/v1/projects/{project}/policies/{instance}", tag = "projects",
    params(("project" = String, Path, description = "project name"), ("instance" = String, Path, description = "connector instance")),
    request_body = ProjectPolicyBody, responses((status = 200, body = cloudbroker_core::provisioning::ProjectPolicy),
    (status = 400, description = "`invalid_request`: a bad value; `field` names the parameter", body = super::doc::ErrorBody),
    (status = 403, description = "`forbidden`: only the project's owners and admins set its policies", body = super::doc::ErrorBody),
    (status = 404, description = "`not_found`: no such project (or the caller is no member of it) or connector instance", body = super::doc::ErrorBody)))]
pub(super) async fn put_project_policy(
    a: ApiActor,
    broker: web::Data<Broker>,
    path: web::Path<(String, String)>,
    body: Body<ProjectPolicyBody>,
) -> ApiResult {
    let (project, instance) = path.into_inner();
    let (project, instance) = (project_in_path(&project)?, instance_in_path(&instance)?);
    ok(broker.provisioning.set_project_policy(&a.0, &project, &instance, &body.values()).await?)
}

/// Removes a project's own launch policies on an instance (owners and admins).
#[utoipa::path(delete, path = "/api/v1/projects/{project}/policies/{instance}", tag = "projects",
    params(("project" = String, Path, description = "project name"), ("instance" = String, Path, description = "connector instance")),
    responses((status = 204, description = "Removed (or there were none)"),
    (status = 403, description = "`forbidden`: only the project's owners and admins set its policies", body = super::doc::ErrorBody),
    (status = 404, description = "`not_found`: no such project (or the caller is no member of it) or connector instance", body = super::doc::ErrorBody)))]
pub(super) async fn delete_project_policy(a: ApiActor, broker: web::Data<Broker>, path: web::Path<(String, String)>) -> ApiResult {
    let (project, instance) = path.into_inner();
    let (project, instance) = (project_in_path(&project)?, instance_in_path(&instance)?);
    broker.provisioning.delete_project_policy(&a.0, &project, &instance).await?;
    no_content()
}
