//! `/vms`: launch, list (paginated, newest first), read, act, terminate,
//! in the project the caller acts in: the query's `project` (entered by
//! [`ApiActor`]), or a launch body's `project` (entered here; both given
//! and different: 400 on `project`), else the caller's personal project.
//! A VM's lease is asked for at launch (`lease`) and set or extended later
//! (`POST /vms/{id}/lease`; `DELETE` removes it, admins only); the core
//! decides its caps.

use super::actor::ApiActor;
use super::body::Body;
use super::doc::ErrorBody;
use super::error::{parse, ApiError, ApiResult};
use super::ok;
use actix_web::{web, HttpRequest, HttpResponse};
use cloudbroker_core::domain::{
    ClientToken, ImageRef, InstanceName, LaunchId, LeaseAsk, ProjectName, Tags, UserName, VmAction, VmId, VmStatus,
};
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, Vm, VmQuery};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Bytes a VM's JSON takes, about (to size a page's answer once).
const VM_JSON_BYTES: usize = 640;

// A lease's pattern in the document (`LaunchBody` and `LeaseBody` alike): a
// duration in canonical form (days, hours, minutes, seconds, each at most
// once and in that order, none zero; at most 999d 9999h 9999m 9999s, well
// under the longest lease), every one of which is accepted. RFC 3339 times
// after now are accepted too but left out of the pattern: whether one is in
// the future depends on when it is sent, which a schema cannot say.

/// VMs of one launch, or one page of VMs (newest first).
#[derive(Serialize, ToSchema)]
pub(super) struct VmPage {
    vms: Vec<Vm>,
    /// The cursor of the next page; absent on the last (and on a launch's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    next_cursor: Option<String>,
}

/// `POST /api/v1/vms`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LaunchBody {
    /// The connector instance.
    #[schema(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 63)]
    instance: String,
    /// A native image, or a cloud image id where `images.allow.raw` is on.
    #[schema(pattern = "^[!-~]{1,255}$")]
    image: String,
    /// Default: the image's, else the connector's.
    #[schema(pattern = "^[!-~]{1,64}$")]
    instance_type: Option<String>,
    /// How many VMs (default 1).
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "super::body::opt_integer")]
    count: Option<u32>,
    #[schema(max_length = 128, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: Option<String>,
    /// At most 16384 bytes (UTF-8).
    #[schema(max_length = 16384)]
    user_data: Option<String>,
    /// Makes the launch idempotent: the same token gives back the same VMs.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    client_token: Option<String>,
    #[schema(value_type = Option<super::doc::TagMap>)]
    tags: Option<BTreeMap<String, String>>,
    /// The project to launch in (you must be a member who may act in it), as
    /// the query's `project` does; when both are given they must agree.
    /// Absent: the query's, else your personal project.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    project: Option<String>,
    /// The VMs' lease: a duration from now (`8h`, `90m`, `1d12h`; the
    /// pattern) or an RFC 3339 time after now (`2026-12-24T18:00:00Z`,
    /// also taken). Absent: the instance's `lease.default`, else
    /// `lease.max`, else none. At most `lease.max` from now (else 409
    /// `policy_violation`, `field` `lease`); malformed: 400 on `lease`.
    #[schema(
        max_length = 64,
        example = "8h",
        pattern = r"^([1-9][0-9]{0,2}d([1-9][0-9]{0,3}h)?([1-9][0-9]{0,3}m)?([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}h([1-9][0-9]{0,3}m)?([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}m([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}s)$"
    )]
    lease: Option<String>,
    /// The subnet to launch into (EC2's `SubnetId`): one of the project's
    /// or the cloud account's own. Absent: the instance's `subnet.id`, else
    /// a subnet of its `vpc.id`, else the cloud's default VPC. Unknown or
    /// another project's: 404.
    #[schema(pattern = "^subnet-[a-z0-9]{1,64}$")]
    subnet_id: Option<String>,
    /// Termination protection (EC2's `DisableApiTermination`) on every VM
    /// of the launch, from the moment it is recorded: terminating one is
    /// 409 `not_permitted` until it is turned off. Default false.
    disable_api_termination: Option<bool>,
}

/// The query's `project`, the only query parameter a launch reads.
#[derive(Deserialize)]
struct ProjectQuery {
    project: Option<String>,
}

/// The project a request's query names (`?project=`), as sent (the
/// [`ApiActor`] extractor has checked and entered it).
fn query_project(req: &HttpRequest) -> Option<String> {
    web::Query::<ProjectQuery>::from_query(req.query_string()).ok().and_then(|q| q.into_inner().project)
}

impl LaunchBody {
    fn into_request(self) -> Result<LaunchRequest, ApiError> {
        let instance = InstanceName::parse(&self.instance).map_err(|e| ApiError::field("instance", e.to_string()))?;
        Ok(LaunchRequest {
            instance,
            image: parse(ImageRef::parse(&self.image))?,
            instance_type: self.instance_type.as_deref().map(InstanceType::parse).transpose().map_err(|e| ApiError(e.into()))?,
            count: CountRange::exactly(self.count.unwrap_or(1)),
            name: self.name.unwrap_or_default(),
            user_data: self.user_data,
            client_token: self.client_token.as_deref().map(ClientToken::parse).transpose().map_err(|e| ApiError(e.into()))?,
            tags: LaunchTags::user(parse(Tags::parse(self.tags.unwrap_or_default()))?),
            ssh_public_key: None,
            key_name: None,
            lease: self.lease.as_deref().map(|l| parse(LeaseAsk::parse(l))).transpose()?,
            zone: None,
            block_devices: Vec::new(),
            shutdown_behavior: None,
            security_groups: Vec::new(),
            security_group_ids: Vec::new(),
            termination_protection: self.disable_api_termination.unwrap_or(false),
            subnet_id: match self.subnet_id {
                Some(s) if cloudbroker_connector_api::params::is_cloud_id(&s, "subnet") => Some(s),
                Some(_) => return Err(ApiError::field("subnet_id", "a subnet id is subnet- then lowercase letters and digits")),
                None => None,
            },
        })
    }
}

/// Launches VMs: recorded (state `requested`) in the quota's transaction, then asked of the cloud.
#[utoipa::path(post, path = "/api/v1/vms", tag = "vms", request_body = LaunchBody,
    responses((status = 201, description = "Launched", body = VmPage), (status = 200, description = "The VMs of an earlier launch with this client token", body = VmPage),
        (status = 400, description = "a malformed field, or `cloud.CODE`: the cloud refused a value it checks (an instance type it does not offer, a subnet...)", body = ErrorBody),
        (status = 409, description = "`quota_exceeded`, or `policy_violation` (a launch policy of the instance; `field` names the input)", body = ErrorBody), (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody),
        (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn launch(req: HttpRequest, a: ApiActor, broker: web::Data<Broker>, body: Body<LaunchBody>) -> ApiResult {
    let mut body = body.into_inner();
    let actor = match body.project.take() {
        Some(named) => {
            let project = ProjectName::parse(&named).map_err(|e| ApiError::field("project", e.message))?;
            match query_project(&req) {
                Some(q) if q != project.as_str() => {
                    return Err(ApiError::field(
                        "project",
                        format!(
                            "the body's project '{project}' differs from the query's '{}': name one project",
                            q.chars().take(64).collect::<String>()
                        ),
                    ));
                }
                // The extractor entered it already.
                Some(_) => a.0,
                None => broker.projects.enter(a.0, &project).await?,
            }
        }
        None => a.0,
    };
    let request = body.into_request()?;
    let out = broker.provisioning.launch(&actor, request).await?;
    let status = if out.created { actix_web::http::StatusCode::CREATED } else { actix_web::http::StatusCode::OK };
    Ok(HttpResponse::build(status).json(VmPage { vms: out.vms, next_cursor: None }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Only VMs on this connector instance.
    #[param(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 63)]
    instance: Option<String>,
    /// Only VMs in this state.
    #[param(value_type = Option<VmStatus>)]
    state: Option<String>,
    /// Only VMs with this name.
    name: Option<String>,
    /// Admins: only the VMs this user launched.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    user: Option<String>,
    /// The project to act in (you must be a member; admins enter any):
    /// only its VMs are listed. Absent: your personal project's, or for
    /// admins everyone's.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    project: Option<String>,
    /// Only the VMs of this launch (32 hex digits).
    #[param(pattern = "^[0-9a-f]{32}$")]
    launch: Option<String>,
    /// `KEY=VALUE`: only VMs with this tag.
    #[param(pattern = r"^[^=]*=[\s\S]*$")]
    tag: Option<String>,
    /// Items per page (default 100).
    #[param(minimum = 1, maximum = 1000, value_type = Option<u32>)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^(-?[0-9]{1,18}\.([0-9a-f]{2}){0,240})?$")]
    cursor: Option<String>,
}

/// VMs of the project the caller acts in, newest first, paginated and
/// filtered (admins see everyone's, unless they name a project).
#[utoipa::path(get, path = "/api/v1/vms", tag = "vms", params(ListParams), responses((status = 200, body = VmPage)))]
pub(super) async fn list_vms(a: ApiActor, broker: web::Data<Broker>, q: web::Query<ListParams>) -> ApiResult {
    let q = q.into_inner();
    let page = super::body::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let query = VmQuery {
        user: q.user.as_deref().map(|u| UserName::parse(u).map_err(|e| ApiError::field("user", e.message))).transpose()?,
        // Entered by the extractor (a non-admin sees only that project's VMs anyway).
        project: q.project.is_some().then(|| a.0.project.clone()),
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
    let size = 256 + p.items.len() * VM_JSON_BYTES;
    super::ok_sized(&VmPage { vms: p.items, next_cursor: p.next_cursor }, size)
}

/// A VM named in a path: an invalid id cannot exist.
fn vm_in_path(s: &str) -> Result<VmId, ApiError> {
    VmId::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("VM '{}'", s.chars().take(64).collect::<String>())))))
}

/// One VM.
#[utoipa::path(get, path = "/api/v1/vms/{id}", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")), responses((status = 200, body = Vm)))]
pub(super) async fn get_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.get(&a.0, &vm_in_path(&id)?).await?)
}

/// Starts a VM.
#[utoipa::path(post, path = "/api/v1/vms/{id}/start", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    responses((status = 200, body = Vm), (status = 409, description = "`conflict`: not in a state that allows it", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn start_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.action(&a.0, &vm_in_path(&id)?, VmAction::Start).await?)
}

/// Stops a VM.
#[utoipa::path(post, path = "/api/v1/vms/{id}/stop", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    responses((status = 200, body = Vm), (status = 409, description = "`conflict`: not in a state that allows it", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn stop_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.action(&a.0, &vm_in_path(&id)?, VmAction::Stop).await?)
}

/// Reboots a VM.
#[utoipa::path(post, path = "/api/v1/vms/{id}/reboot", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    responses((status = 200, body = Vm), (status = 409, description = "`conflict`: not in a state that allows it", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn reboot_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.action(&a.0, &vm_in_path(&id)?, VmAction::Reboot).await?)
}

/// Terminates a VM (its record stays, in state `shutting-down` then `terminated`).
#[utoipa::path(post, path = "/api/v1/vms/{id}/terminate", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    responses((status = 200, body = Vm), (status = 409, description = "`conflict`: not in a state that allows it; `not_permitted`: its termination protection (EC2's `disableApiTermination`) is on", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody), (status = 504, description = "the cloud did not answer in time", body = ErrorBody)))]
pub(super) async fn terminate_vm(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    ok(broker.provisioning.action(&a.0, &vm_in_path(&id)?, VmAction::Terminate).await?)
}

/// `POST /api/v1/vms/{id}/lease`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LeaseBody {
    /// The new end: a duration from now (`8h`, `90m`, `1d12h`; the
    /// pattern) or an RFC 3339 time after now (also taken). Absent or
    /// null: one click on "Extend", the instance's `lease.default` (else
    /// `lease.max`, else a day) from now.
    #[schema(
        max_length = 64,
        example = "8h",
        pattern = r"^([1-9][0-9]{0,2}d([1-9][0-9]{0,3}h)?([1-9][0-9]{0,3}m)?([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}h([1-9][0-9]{0,3}m)?([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}m([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}s)$"
    )]
    #[serde(default)]
    lease: Option<String>,
}

/// Sets or extends a VM's lease (members of its project; audited). A
/// member's new end is at most `lease.max` from now; an admin's is not
/// capped. A VM the broker adopted gets a lease only from an admin.
#[utoipa::path(post, path = "/api/v1/vms/{id}/lease", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    request_body = LeaseBody,
    responses((status = 200, description = "The VM with its new lease", body = Vm),
        (status = 409, description = "`policy_violation` (`field` `lease`): past `lease.max` from now; `conflict`: the VM has ended, or the broker is acting on its lease just now", body = ErrorBody)))]
pub(super) async fn set_lease(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>, body: Body<LeaseBody>) -> ApiResult {
    let id = vm_in_path(&id)?;
    let ask = body.into_inner().lease.as_deref().map(|l| parse(LeaseAsk::parse(l))).transpose()?;
    ok(broker.provisioning.set_lease(&a.0, &id, ask).await?)
}

/// Removes a VM's lease (admins; audited): it then runs until stopped by hand.
#[utoipa::path(delete, path = "/api/v1/vms/{id}/lease", tag = "vms", params(("id" = String, Path, description = "VM id (vm-...)")),
    responses((status = 204, description = "The lease is removed"),
        (status = 409, description = "`conflict`: the broker is acting on its lease just now", body = ErrorBody)))]
pub(super) async fn clear_lease(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>) -> ApiResult {
    broker.provisioning.clear_lease(&a.0, &vm_in_path(&id)?).await?;
    super::no_content()
}
