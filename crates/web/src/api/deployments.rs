//! `/deployments` (issue 27): deploy an application version (all its VMs
//! admitted in one transaction, or none: `dry_run` says what would be
//! launched where), list and read deployments with their nodes and VMs
//! (`?include=params,events`), their parameters (secrets never shown:
//! `value` null) and event timeline, scale a node (`apply: false` gives the
//! plan, `true` applies it), abort, and terminate (`DELETE`). Every
//! handler is one call of `broker.deployments`, in the project the caller
//! acts in (the query's `project`, entered by [`ApiActor`]); a deployment
//! of another project is not found (404), a viewer is refused (403), a
//! second operation on one deployment is a 409 `conflict` naming the one in
//! progress, and a refused admission is the launch's own 409
//! (`quota_exceeded`, `budget_exceeded`, `policy_violation`).

use super::actor::ApiActor;
use super::body::Body;
use super::doc::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::ok;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use cloudbroker_core::deployments::{
    AppName, DeployRequest, Deployment, Event, MemberView, NodeView, OnFailure, ParamView, Placement, ScalePlan,
};
use cloudbroker_core::domain::time::{rfc3339, rfc3339_opt};
use cloudbroker_core::domain::{DeploymentId, InstanceName};
use cloudbroker_core::{Broker, Resource, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// One VM of a node.
#[derive(Serialize, ToSchema)]
pub(crate) struct MemberOut {
    /// Its index in the node, from 1.
    index: i64,
    /// Its attempt (a VM whose launch failed is replaced by the next attempt, at most 3).
    attempt: i64,
    /// Its VM (null: not admitted yet).
    #[schema(required = true, nullable = true, value_type = Option<String>)]
    vm_id: Option<String>,
    /// Its VM's state (`held`: admitted, waiting for the nodes its node depends on).
    #[schema(required = true, nullable = true)]
    vm_state: Option<String>,
    /// `waiting`, `launching`, `running`, `ready`, `failed` or `terminated`.
    state: String,
    /// The parameters it waits on just now (`get` calls in progress).
    waiting_on: Vec<String>,
}

impl MemberOut {
    pub(crate) fn of(m: &MemberView) -> Self {
        Self {
            index: m.idx,
            attempt: m.attempt,
            vm_id: m.vm_id.as_ref().map(ToString::to_string),
            vm_state: m.vm_state.map(|s| s.as_str().to_string()),
            state: m.state.clone(),
            waiting_on: m.waiting_on.clone(),
        }
    }
}

/// One node of a deployment.
#[derive(Serialize, ToSchema)]
pub(crate) struct NodeOut {
    name: String,
    /// The connector instance it runs on.
    instance: String,
    instance_type: String,
    /// How many VMs it has.
    multiplicity: u32,
    /// The nodes it is launched after.
    depends_on: Vec<String>,
    /// `waiting`, `launching`, `running`, `ready` or `failed`.
    state: String,
    vms: Vec<MemberOut>,
}

impl NodeOut {
    pub(crate) fn of(n: &NodeView) -> Self {
        Self {
            name: n.name.clone(),
            instance: n.instance.clone(),
            instance_type: n.instance_type.clone(),
            multiplicity: n.multiplicity,
            depends_on: n.depends_on.clone(),
            state: n.state.clone(),
            vms: n.members.iter().map(MemberOut::of).collect(),
        }
    }
}

/// A parameter of a deployment: an input given at deploy time (`input.<name>`,
/// `<node>.input.<name>`) or an output a VM published (`<node>.<index>.<output>`).
#[derive(Serialize, ToSchema)]
pub(crate) struct ParamOut {
    name: String,
    /// Null for a secret: never shown back.
    #[schema(required = true, nullable = true)]
    value: Option<String>,
    secret: bool,
    /// Who set it: a user, `broker`, or the VM (`<node>.<index>`).
    set_by: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    set_at: DateTime<Utc>,
}

impl ParamOut {
    pub(crate) fn of(p: &ParamView) -> Self {
        // A secret's value is never shown, whatever the service gave.
        let value = if p.secret { None } else { p.value.clone() };
        Self { name: p.name.clone(), value, secret: p.secret, set_by: p.set_by.clone(), set_at: p.set_at }
    }
}

/// One event of a deployment's timeline.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventOut {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: DateTime<Utc>,
    kind: String,
    message: String,
}

impl EventOut {
    pub(crate) fn of(e: &Event) -> Self {
        Self { at: e.at, kind: e.kind.clone(), message: e.message.clone() }
    }
}

/// A deployment.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeploymentOut {
    /// `dep-` and 16 hex digits.
    #[schema(pattern = "^dep-[0-9a-f]{16}$")]
    id: String,
    name: String,
    /// The application and its version.
    application: String,
    version: i64,
    /// Who deployed it, in which project.
    user: String,
    project: String,
    /// `provisioning`, `executing`, `ready`, `failed`, `terminating` or `terminated`.
    #[schema(pattern = "^(provisioning|executing|ready|failed|terminating|terminated)$")]
    state: String,
    /// `keep` or `terminate`: what a failure does with the VMs launched.
    #[schema(pattern = "^(keep|terminate)$")]
    on_failure: String,
    /// Why it failed, or the abort's message.
    #[schema(required = true, nullable = true)]
    message: Option<String>,
    /// The operation in progress (`scale`, `terminate`), if any.
    #[schema(required = true, nullable = true)]
    operation: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
    /// When it fails if not ready by then (its timeout).
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(required = true, nullable = true, value_type = Option<String>, format = DateTime)]
    deadline_at: Option<DateTime<Utc>>,
    /// Its nodes in launch order.
    nodes: Vec<NodeOut>,
    /// With `?include=params`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    params: Option<Vec<ParamOut>>,
    /// With `?include=events`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    events: Option<Vec<EventOut>>,
}

impl DeploymentOut {
    pub(crate) fn of(d: &Deployment) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.clone(),
            application: d.application.clone(),
            version: d.version,
            user: d.user.clone(),
            project: d.project.clone(),
            state: d.state.as_str().to_string(),
            on_failure: d.on_failure.as_str().to_string(),
            message: d.message.clone(),
            operation: d.op.clone(),
            created_at: d.created_at,
            updated_at: d.updated_at,
            deadline_at: d.deadline_at,
            nodes: d.nodes.iter().map(NodeOut::of).collect(),
            params: None,
            events: None,
        }
    }
}

/// Deployments, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DeploymentList {
    deployments: Vec<DeploymentOut>,
}

/// Where one node runs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlacementBody {
    /// The connector instance (one of the node's `instances`, when it names any).
    #[schema(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 63)]
    instance: String,
    /// Overrides the node's multiplicity (0-100).
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "super::body::opt_integer")]
    multiplicity: Option<u32>,
    /// Overrides the node's instance type.
    #[schema(pattern = "^[!-~]{1,64}$")]
    instance_type: Option<String>,
}

/// `POST /api/v1/deployments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployBody {
    /// The application's name.
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    application: String,
    /// Its version (default: the latest).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "super::body::opt_integer")]
    version: Option<i64>,
    /// The deployment's name (default `<application>-<n>`).
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: Option<String>,
    /// Input values: `name` (a deployment input) or `node.name` (a node's input).
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    /// Node -> where it runs. A node left out runs on its only allowed instance (else 400 naming it).
    #[serde(default)]
    placement: BTreeMap<String, PlacementBody>,
    /// `terminate` (default: a failed deployment leaves nothing running) or
    /// `keep` (its VMs stay, to be looked at): what a failure does with the VMs launched.
    #[schema(pattern = "^(keep|terminate)$")]
    on_failure: Option<String>,
    /// Overrides the application's timeout (`30m`, `1h`: from deploy to ready),
    /// a duration as leases take them (the same pattern as `LaunchBody.lease`'s).
    #[schema(
        max_length = 32,
        example = "30m",
        pattern = r"^([1-9][0-9]{0,2}d([1-9][0-9]{0,3}h)?([1-9][0-9]{0,3}m)?([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}h([1-9][0-9]{0,3}m)?([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}m([1-9][0-9]{0,3}s)?|[1-9][0-9]{0,3}s)$"
    )]
    timeout: Option<String>,
    /// Only check and say what would be launched where; admits nothing.
    #[serde(default)]
    dry_run: bool,
}

/// A dry run: what would be launched where.
#[derive(Serialize, ToSchema)]
pub(super) struct PreviewOut {
    /// Always true.
    dry_run: bool,
    nodes: Vec<PreviewNode>,
}

/// One node of a dry run.
#[derive(Serialize, ToSchema)]
pub(super) struct PreviewNode {
    node: String,
    instance: String,
    vms: u32,
}

/// On failure as sent.
pub(crate) fn on_failure_of(s: Option<&str>) -> Result<OnFailure, ApiError> {
    match s.map(str::trim) {
        None | Some("") | Some("terminate") => Ok(OnFailure::Terminate),
        Some("keep") => Ok(OnFailure::Keep),
        Some(other) => Err(ApiError::field(
            "on_failure",
            format!("on_failure must be keep or terminate, not '{}'", other.chars().take(32).collect::<String>()),
        )),
    }
}

/// A timeout as sent (lease duration syntax).
pub(crate) fn timeout_of(s: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => {
            let d = cloudbroker_core::domain::lease::parse_duration(t).map_err(|e| ApiError::field("timeout", format!("timeout: {e}")))?;
            let d = d.to_std().map_err(|_| ApiError::field("timeout", "timeout must be positive"))?;
            if d.is_zero() {
                return Err(ApiError::field("timeout", "timeout must be positive"));
            }
            Ok(Some(d))
        }
    }
}

impl DeployBody {
    fn into_request(self) -> Result<(DeployRequest, bool), ApiError> {
        let application = AppName::parse(self.application.trim()).map_err(|e| ApiError::field("application", e))?;
        if let Some(v) = self.version {
            if v < 1 {
                return Err(ApiError::field("version", "version must be 1 or more"));
            }
        }
        let mut placement = BTreeMap::new();
        for (node, p) in self.placement {
            let instance = InstanceName::parse(p.instance.trim())
                .map_err(|e| ApiError::field("placement", format!("placement.{node}.instance: {e}")))?;
            if p.multiplicity.is_some_and(|m| m > 100) {
                return Err(ApiError::field("placement", format!("placement.{node}.multiplicity: at most 100")));
            }
            let instance_type = p.instance_type.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
            placement.insert(node, Placement { instance, multiplicity: p.multiplicity, instance_type });
        }
        let name = self.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        Ok((
            DeployRequest {
                application,
                version: self.version,
                name,
                inputs: self.inputs,
                placement,
                on_failure: on_failure_of(self.on_failure.as_deref())?,
                timeout: timeout_of(self.timeout.as_deref())?,
            },
            self.dry_run,
        ))
    }
}

/// Deploys an application: every VM of every node admitted in one
/// transaction against quotas, budgets and policies (all or none), then
/// launched by the broker in dependency order. `dry_run`: only the checks
/// and what would be launched where.
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", request_body = DeployBody,
    responses((status = 201, description = "Deployed: admitted, being launched", body = DeploymentOut),
        (status = 200, description = "A dry run: what would be launched where", body = PreviewOut),
        (status = 403, description = "`forbidden`: a viewer of the project", body = ErrorBody),
        (status = 404, description = "`not_found`: no such application or version", body = ErrorBody),
        (status = 409, description = "`quota_exceeded`, `budget_exceeded` or `policy_violation` (the node and instance named): nothing was launched", body = ErrorBody)))]
pub(super) async fn deploy(a: ApiActor, broker: web::Data<Broker>, body: Body<DeployBody>) -> ApiResult {
    let (request, dry_run) = body.into_inner().into_request()?;
    if dry_run {
        let plan = broker.deployments.preview(&a.0, &request).await?;
        let nodes = plan.into_iter().map(|(node, instance, vms)| PreviewNode { node, instance, vms }).collect();
        return ok(PreviewOut { dry_run: true, nodes });
    }
    let d = broker.deployments.deploy(&a.0, request).await?;
    Ok(HttpResponse::Created().json(DeploymentOut::of(&d)))
}

/// The deployments of the project the caller acts in (admins: everyone's, unless they name a project).
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(ProjectParam),
    responses((status = 200, body = DeploymentList)))]
pub(super) async fn list_deployments(a: ApiActor, broker: web::Data<Broker>, q: web::Query<ProjectParam>) -> ApiResult {
    let mut all = broker.deployments.list(&a.0).await?;
    if q.project.is_some() {
        all.retain(|d| d.project == a.0.project.as_str());
    }
    all.sort_by(|x, y| y.created_at.cmp(&x.created_at).then_with(|| y.id.as_str().cmp(x.id.as_str())));
    ok(DeploymentList { deployments: all.iter().map(DeploymentOut::of).collect() })
}

/// `?project=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ProjectParam {
    /// The project to act in (you must be a member; admins enter any).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    project: Option<String>,
}

/// `GET /deployments/{id}`'s query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct GetParams {
    /// Comma-separated: `params`, `events`.
    #[param(pattern = "^((params|events)(,(params|events))*)?$")]
    include: Option<String>,
    /// The project to act in (you must be a member; admins enter any).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    #[allow(dead_code)] // Read and entered by the `ApiActor` extractor.
    project: Option<String>,
}

/// A deployment named in a path: an invalid id cannot exist.
pub(crate) fn deployment_in_path(s: &str) -> Result<DeploymentId, ApiError> {
    DeploymentId::parse(s)
        .map_err(|_| ApiError(ServiceError::NotFound(Resource::Record(format!("deployment '{}'", s.chars().take(64).collect::<String>())))))
}

/// One deployment with its nodes and VMs (`?include=params,events` adds them).
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "deployment id (dep-...)", pattern = "^dep-[0-9a-f]{16}$"), GetParams),
    responses((status = 200, body = DeploymentOut), (status = 404, description = "`not_found`", body = ErrorBody)))]
pub(super) async fn get_deployment(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>, q: web::Query<GetParams>) -> ApiResult {
    let id = deployment_in_path(&id)?;
    let (mut params, mut events) = (false, false);
    for part in q.include.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "params" => params = true,
            "events" => events = true,
            other => {
                return Err(ApiError::field(
                    "include",
                    format!("include takes params and events, not '{}'", other.chars().take(32).collect::<String>()),
                ))
            }
        }
    }
    let d = broker.deployments.get(&a.0, &id).await?;
    let mut out = DeploymentOut::of(&d);
    if params {
        out.params = Some(broker.deployments.params(&a.0, &id).await?.iter().map(ParamOut::of).collect());
    }
    if events {
        out.events = Some(broker.deployments.events(&a.0, &id).await?.iter().map(EventOut::of).collect());
    }
    ok(out)
}

/// A deployment's parameters.
#[derive(Serialize, ToSchema)]
pub(super) struct ParamList {
    params: Vec<ParamOut>,
}

/// A deployment's parameters: the inputs given and the outputs published
/// (a secret's value is null: never shown back).
#[utoipa::path(get, path = "/api/v1/deployments/{id}/params", tag = "deployments",
    params(("id" = String, Path, description = "deployment id (dep-...)", pattern = "^dep-[0-9a-f]{16}$"), ProjectParam),
    responses((status = 200, body = ParamList), (status = 404, description = "`not_found`", body = ErrorBody)))]
pub(super) async fn deployment_params(
    a: ApiActor,
    broker: web::Data<Broker>,
    id: web::Path<String>,
    _q: web::Query<ProjectParam>,
) -> ApiResult {
    let id = deployment_in_path(&id)?;
    ok(ParamList { params: broker.deployments.params(&a.0, &id).await?.iter().map(ParamOut::of).collect() })
}

/// A deployment's events.
#[derive(Serialize, ToSchema)]
pub(super) struct EventList {
    events: Vec<EventOut>,
}

/// A deployment's timeline, oldest first.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/events", tag = "deployments",
    params(("id" = String, Path, description = "deployment id (dep-...)", pattern = "^dep-[0-9a-f]{16}$"), ProjectParam),
    responses((status = 200, body = EventList), (status = 404, description = "`not_found`", body = ErrorBody)))]
pub(super) async fn deployment_events(
    a: ApiActor,
    broker: web::Data<Broker>,
    id: web::Path<String>,
    _q: web::Query<ProjectParam>,
) -> ApiResult {
    let id = deployment_in_path(&id)?;
    ok(EventList { events: broker.deployments.events(&a.0, &id).await?.iter().map(EventOut::of).collect() })
}

/// `POST /deployments/{id}/scale`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleBody {
    /// The node to scale.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,31}$")]
    node: String,
    /// Its new number of VMs (0-100).
    #[schema(minimum = 0, maximum = 100)]
    #[serde(deserialize_with = "integer")]
    multiplicity: u32,
    /// False (default): only the plan. True: apply it.
    #[serde(default)]
    apply: bool,
}

fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::de::Error as _;
    super::body::opt_integer(d)?.ok_or_else(|| D::Error::custom("multiplicity is required"))
}

/// A VM a scale would terminate.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScaleVictim {
    index: i64,
    vm_id: String,
}

/// What a scale does (or would do).
#[derive(Serialize, ToSchema)]
pub(crate) struct ScaleOut {
    node: String,
    from: u32,
    to: u32,
    /// Indexes of the VMs launched.
    launch: Vec<i64>,
    /// The VMs terminated (their outputs withdrawn).
    terminate: Vec<ScaleVictim>,
    /// Whether it was applied (false: only the plan).
    applied: bool,
}

impl ScaleOut {
    pub(crate) fn of(p: &ScalePlan, applied: bool) -> Self {
        Self {
            node: p.node.clone(),
            from: p.from,
            to: p.to,
            launch: p.launch.clone(),
            terminate: p.terminate.iter().map(|(i, v)| ScaleVictim { index: *i, vm_id: v.to_string() }).collect(),
            applied,
        }
    }
}

/// Scales a node up or down: `apply: false` gives the plan (what would be
/// launched and terminated), `apply: true` applies it (new VMs admitted in
/// one transaction; removed ones terminated, their outputs withdrawn).
#[utoipa::path(post, path = "/api/v1/deployments/{id}/scale", tag = "deployments",
    params(("id" = String, Path, description = "deployment id (dep-...)", pattern = "^dep-[0-9a-f]{16}$")), request_body = ScaleBody,
    responses((status = 200, body = ScaleOut), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 403, description = "`forbidden`: a viewer of the project", body = ErrorBody),
        (status = 409, description = "`conflict`: another operation is in progress, or the deployment has ended; `quota_exceeded`, `budget_exceeded`, `policy_violation`", body = ErrorBody)))]
pub(super) async fn scale_deployment(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>, body: Body<ScaleBody>) -> ApiResult {
    let id = deployment_in_path(&id)?;
    let body = body.into_inner();
    if body.multiplicity > 100 {
        return Err(ApiError::field("multiplicity", "multiplicity must be 0 to 100"));
    }
    let plan = if body.apply {
        broker.deployments.scale(&a.0, &id, &body.node, body.multiplicity).await?
    } else {
        broker.deployments.plan_scale(&a.0, &id, &body.node, body.multiplicity).await?
    };
    ok(ScaleOut::of(&plan, body.apply))
}

/// `POST /deployments/{id}/abort`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AbortBody {
    /// Why (shown on the deployment).
    #[schema(max_length = 1000)]
    message: String,
}

/// Aborts a deployment: it fails with the message (and terminates its VMs
/// when its `on_failure` says so).
#[utoipa::path(post, path = "/api/v1/deployments/{id}/abort", tag = "deployments",
    params(("id" = String, Path, description = "deployment id (dep-...)", pattern = "^dep-[0-9a-f]{16}$")), request_body = AbortBody,
    responses((status = 200, body = DeploymentOut), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 403, description = "`forbidden`: a viewer of the project", body = ErrorBody),
        (status = 409, description = "`conflict`: it has ended already", body = ErrorBody)))]
pub(super) async fn abort_deployment(a: ApiActor, broker: web::Data<Broker>, id: web::Path<String>, body: Body<AbortBody>) -> ApiResult {
    let id = deployment_in_path(&id)?;
    let message = body.into_inner().message;
    let message = message.trim();
    if message.is_empty() || message.chars().count() > 1000 {
        return Err(ApiError::field("message", "message: say why, in 1 to 1000 characters"));
    }
    ok(DeploymentOut::of(&broker.deployments.abort(&a.0, &id, message).await?))
}

/// Terminates a deployment: every VM, and what they made; `terminating`,
/// then `terminated` (`GET` shows its progress). Terminating twice is the
/// same as once. Answers 204, as every `DELETE` of the API does.
#[utoipa::path(delete, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "deployment id (dep-...)", pattern = "^dep-[0-9a-f]{16}$"), ProjectParam),
    responses((status = 204, description = "Terminating (or terminated already)"), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 403, description = "`forbidden`: a viewer of the project", body = ErrorBody),
        (status = 409, description = "`conflict`: another operation is in progress", body = ErrorBody)))]
pub(super) async fn terminate_deployment(
    a: ApiActor,
    broker: web::Data<Broker>,
    id: web::Path<String>,
    _q: web::Query<ProjectParam>,
) -> ApiResult {
    let id = deployment_in_path(&id)?;
    broker.deployments.terminate(&a.0, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_at_the_boundary() {
        assert!(matches!(on_failure_of(None), Ok(OnFailure::Terminate)));
        assert!(matches!(on_failure_of(Some("keep")), Ok(OnFailure::Keep)));
        let e = on_failure_of(Some("explode")).err().unwrap();
        assert!(matches!(e.0, ServiceError::Invalid { field: Some("on_failure"), .. }), "{e:?}");
        assert_eq!(timeout_of(Some("30m")).unwrap(), Some(std::time::Duration::from_secs(1800)));
        assert_eq!(timeout_of(None).unwrap(), None);
        let e = timeout_of(Some("soon")).err().unwrap();
        assert!(matches!(e.0, ServiceError::Invalid { field: Some("timeout"), .. }), "{e:?}");
        assert!(deployment_in_path("nope").is_err());
        let body: DeployBody = serde_json::from_value(serde_json::json!({
            "application": "lamp", "placement": {"db": {"instance": "Bad Name"}}
        }))
        .unwrap();
        let e = body.into_request().err().unwrap();
        assert!(matches!(&e.0, ServiceError::Invalid { field: Some("placement"), message } if message.contains("placement.db.instance")));
        let body: DeployBody = serde_json::from_value(serde_json::json!({
            "application": "lamp", "inputs": {"site_title": "Hi"}, "placement": {"db": {"instance": "sb", "multiplicity": 2}},
            "on_failure": "terminate", "timeout": "1h", "dry_run": true
        }))
        .unwrap();
        let (r, dry) = body.into_request().unwrap();
        assert!(dry);
        assert_eq!(r.placement["db"].multiplicity, Some(2));
        assert_eq!(r.timeout, Some(std::time::Duration::from_secs(3600)));
        assert!(serde_json::from_value::<DeployBody>(serde_json::json!({"application": "x", "nope": 1})).is_err());
    }
}
