//! The deployment engine's public face ([`Deployments`], `broker.deployments`):
//! deploy, read, scale, terminate and abort. A deployment's VMs are all
//! admitted in one transaction with its rows (`admit.rs`), every one `held`;
//! the driver (`driver.rs`, the `deployments` worker) releases and launches
//! them as their node's dependencies become ready, follows their states,
//! and carries out failures, scale-downs and termination. Every change of
//! state is an event of the deployment's timeline.
//!
//! Who may: a deployment belongs to the project it was made in; its members
//! see it (admins see all), members who act (not viewers) change it, as for
//! VMs. Two operations (scale, terminate) never interleave: `op` is taken
//! by a conditional update, and a second one is refused with 409 naming the
//! one in progress.

use crate::auth::Actor;
use crate::deployments::exchange::Exchange;
use crate::deployments::{AppDoc, AppName, Applications, ReadyWhen};
use crate::domain::{InstanceName, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::provisioning::Provisioning;
use chrono::{DateTime, Utc};
use cloudbroker_store::deployments::{DeploymentRow, MemberRow};
use cloudbroker_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::domain::DeploymentId;

/// How long a replica's claim on a deployment lasts without renewal.
pub const DEPLOY_CLAIM_TTL: Duration = Duration::from_secs(60);
/// How often the driver passes (unless kicked), by default.
pub const DEPLOY_INTERVAL: Duration = Duration::from_secs(2);
/// Attempts per VM slot (a launch interrupted or failed at the cloud is replaced).
pub const MAX_ATTEMPTS: i64 = 3;

/// A deployment's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeploymentState {
    Provisioning,
    Executing,
    Ready,
    Failed,
    Terminating,
    Terminated,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 6] = [
        DeploymentState::Provisioning,
        DeploymentState::Executing,
        DeploymentState::Ready,
        DeploymentState::Failed,
        DeploymentState::Terminating,
        DeploymentState::Terminated,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Provisioning => "provisioning",
            DeploymentState::Executing => "executing",
            DeploymentState::Ready => "ready",
            DeploymentState::Failed => "failed",
            DeploymentState::Terminating => "terminating",
            DeploymentState::Terminated => "terminated",
        }
    }

    /// Parses a state name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown deployment state '{s}'"))
    }

    /// Whether the deployment is on its way up or up (not failed nor ending).
    pub fn is_active(self) -> bool {
        matches!(self, DeploymentState::Provisioning | DeploymentState::Executing | DeploymentState::Ready)
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failure does to the VMs launched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OnFailure {
    /// Leave them (to look at what went wrong).
    Keep,
    /// Terminate every VM of the deployment.
    #[default]
    Terminate,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Keep => "keep",
            OnFailure::Terminate => "terminate",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(OnFailure::Keep),
            "terminate" => Ok(OnFailure::Terminate),
            other => Err(format!("on_failure is keep or terminate, not '{}'", other.chars().take(40).collect::<String>())),
        }
    }
}

/// Where a node runs: its connector instance, and overrides of the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placement {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub instance: InstanceName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplicity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// What to deploy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployRequest {
    pub application: AppName,
    /// `None`: the latest version.
    pub version: Option<i64>,
    /// `None`: `<application>-<n>`.
    pub name: Option<String>,
    /// "name" (a deployment input) or "node.name" (a node's input).
    pub inputs: BTreeMap<String, String>,
    pub placement: BTreeMap<String, Placement>,
    pub on_failure: OnFailure,
    /// `None`: the document's (else 30 minutes).
    pub timeout: Option<Duration>,
}

/// A deployment as shown.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deployment {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: DeploymentId,
    pub name: String,
    pub application: String,
    pub version: i64,
    pub user: String,
    pub project: String,
    pub state: DeploymentState,
    pub on_failure: OnFailure,
    /// Why it failed (or the abort's message).
    pub message: Option<String>,
    /// The operation in progress (scale, terminate), if any.
    pub op: Option<String>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub nodes: Vec<NodeView>,
}

/// A node of a deployment.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeView {
    pub name: String,
    pub instance: String,
    pub instance_type: String,
    pub multiplicity: u32,
    pub depends_on: Vec<String>,
    /// waiting | launching | running | ready | degraded (ready once, some of
    /// its VMs stopped or ended outside the deployment since) | failed
    pub state: String,
    pub members: Vec<MemberView>,
}

/// One VM slot of a node (its current attempt).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    pub idx: i64,
    pub attempt: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub vm_id: Option<crate::domain::VmId>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub vm_state: Option<VmStatus>,
    /// held | launching | running | ready | failed | removed; stopped or
    /// ended: ready once, then stopped or ended outside the deployment
    pub state: String,
    /// The parameters it waits on now.
    pub waiting_on: Vec<String>,
}

/// A parameter of a deployment (a secret's value is never shown).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamView {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
    pub set_by: String,
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub set_at: DateTime<Utc>,
}

/// An event of a deployment's timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    #[serde(serialize_with = "crate::domain::time::rfc3339")]
    pub at: DateTime<Utc>,
    pub kind: String,
    pub message: String,
}

/// What a scale would do (or did).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScalePlan {
    pub node: String,
    pub from: u32,
    pub to: u32,
    /// The indexes of the VMs to launch.
    pub launch: Vec<i64>,
    /// The VMs to terminate: (index, VM id).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<(i64, String)>))]
    pub terminate: Vec<(i64, crate::domain::VmId)>,
}

/// What a driver pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct DrivePassReport {
    /// Deployments claimed and stepped.
    pub driven: usize,
    /// VMs released (their cloud step made).
    pub released: usize,
    /// Deployment state changes.
    pub transitions: usize,
    pub errors: Vec<String>,
}

impl DrivePassReport {
    /// A line for the worker's status ("" when nothing happened).
    pub fn summary(&self) -> String {
        if self.released + self.transitions == 0 && self.errors.is_empty() {
            return String::new();
        }
        format!("driven {}, released {}, transitions {}", self.driven, self.released, self.transitions)
    }
}

/// The deployments service.
pub struct Deployments {
    pub(super) store: Store,
    pub(super) provisioning: Arc<Provisioning>,
    pub(super) applications: Arc<Applications>,
    pub(super) exchange: Arc<Exchange>,
    /// Wakes the driver (after deploy, scale, terminate, abort, a VM's ready).
    pub kick: Arc<tokio::sync::Notify>,
    /// This replica's id (its claims carry it).
    pub replica_id: String,
    /// How long a claim lasts (a test shortens it to play a crash).
    pub claim_ttl: Duration,
    /// Parsed documents by (application, version): a version never changes.
    docs: Mutex<HashMap<(String, i64), Arc<AppDoc>>>,
}

/// A stored time (ms) as a time.
pub(super) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// The placement JSON stored with a deployment.
pub(super) type PlacementMap = BTreeMap<String, Placement>;

/// The current attempt of each slot that is not removed, by (node, idx).
pub(super) fn current_members(members: &[MemberRow]) -> BTreeMap<(String, i64), &MemberRow> {
    let mut cur: BTreeMap<(String, i64), &MemberRow> = BTreeMap::new();
    for m in members {
        let key = (m.node.clone(), m.idx);
        match cur.get(&key) {
            Some(c) if c.attempt >= m.attempt => {}
            _ => {
                cur.insert(key, m);
            }
        }
    }
    cur.retain(|_, m| m.state != "removed");
    cur
}

impl Deployments {
    /// A new service; the driver's kick is the exchange's (a VM's `ready` wakes it).
    pub fn new(
        store: Store,
        provisioning: Arc<Provisioning>,
        applications: Arc<Applications>,
        exchange: Arc<Exchange>,
        replica_id: String,
    ) -> Self {
        // The reconciler and the transition watch wake the driver too.
        let _ = provisioning.deployment_kick.set(exchange.kick.clone());
        Self {
            store,
            provisioning,
            applications,
            kick: exchange.kick.clone(),
            exchange,
            replica_id,
            claim_ttl: DEPLOY_CLAIM_TTL,
            docs: Mutex::new(HashMap::new()),
        }
    }

    /// The document of an application version (parsed once).
    pub(super) async fn doc(&self, app: &str, version: i64) -> ServiceResult<Arc<AppDoc>> {
        let key = (app.to_string(), version);
        if let Some(d) = self.docs.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(d.clone());
        }
        let name = AppName::parse(app).map_err(|e| ServiceError::Internal(format!("stored application name: {e}")))?;
        let a = self.applications.get(&Actor::system(), &name, Some(version)).await?;
        let doc = Arc::new(a.doc);
        self.docs.lock().unwrap_or_else(|e| e.into_inner()).insert(key, doc.clone());
        Ok(doc)
    }

    /// A deployment row the actor may see (its project's, or any for admins); else 404.
    pub(super) async fn visible(&self, actor: &Actor, id: &DeploymentId) -> ServiceResult<DeploymentRow> {
        match self.store.get_deployment(id).await? {
            Some(d) if actor.sees(&d.project) => Ok(d),
            _ => Err(ServiceError::NotFound(Resource::Record(format!("deployment '{id}'")))),
        }
    }

    /// The view of a stored deployment.
    pub(super) async fn view(&self, d: DeploymentRow) -> ServiceResult<Deployment> {
        let members = self.store.deployment_members(&d.id).await?;
        let waits = self.store.deployment_waits(d.id.as_str()).await?;
        let placement: PlacementMap = serde_json::from_str(&d.placement).unwrap_or_default();
        let doc = self.doc(&d.app_name, d.app_version).await.ok();
        let current = current_members(&members);
        let mut nodes = Vec::new();
        let names: Vec<String> = match &doc {
            Some(doc) => doc.launch_order().into_iter().map(str::to_string).collect(),
            None => placement.keys().cloned().collect(),
        };
        for name in names {
            let spec = doc.as_ref().and_then(|doc| doc.nodes.get(&name));
            let p = placement.get(&name);
            let mine: Vec<&&MemberRow> = current.iter().filter(|((n, _), _)| *n == name).map(|(_, m)| m).collect();
            let views: Vec<MemberView> = mine
                .iter()
                .map(|m| MemberView {
                    idx: m.idx,
                    attempt: m.attempt,
                    vm_id: m.vm_id.clone(),
                    vm_state: m.vm_state,
                    state: m.state.clone(),
                    waiting_on: waits.iter().filter(|w| w.node == name && w.idx == m.idx).map(|w| w.param.clone()).collect(),
                })
                .collect();
            let ready_when_running = spec.is_some_and(|s| s.ready_when == ReadyWhen::Running);
            let state = node_state(&views, ready_when_running);
            nodes.push(NodeView {
                instance: p.map(|p| p.instance.to_string()).unwrap_or_default(),
                instance_type: p
                    .and_then(|p| p.instance_type.clone())
                    .or_else(|| spec.and_then(|s| s.instance_type.clone()))
                    .unwrap_or_default(),
                multiplicity: views.len() as u32,
                depends_on: spec.map(|s| s.depends_on.clone()).unwrap_or_default(),
                state,
                members: views,
                name,
            });
        }
        Ok(Deployment {
            state: DeploymentState::parse(&d.state).map_err(ServiceError::Internal)?,
            on_failure: OnFailure::parse(&d.on_failure).map_err(ServiceError::Internal)?,
            id: d.id,
            name: d.name,
            application: d.app_name,
            version: d.app_version,
            user: d.user_name,
            project: d.project,
            message: d.message,
            op: d.op,
            created_at: at(d.created_at),
            updated_at: at(d.updated_at),
            deadline_at: d.deadline_at.map(at),
            nodes,
        })
    }

    /// The deployments the actor sees, newest first: its project's (admins: all).
    pub async fn list(&self, actor: &Actor) -> ServiceResult<Vec<Deployment>> {
        let rows = self.store.list_deployments(if actor.is_admin { None } else { Some(actor.project.as_str()) }).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.view(r).await?);
        }
        Ok(out)
    }

    /// One deployment.
    pub async fn get(&self, actor: &Actor, id: &DeploymentId) -> ServiceResult<Deployment> {
        let d = self.visible(actor, id).await?;
        self.view(d).await
    }

    /// Its parameters (secrets' values never shown).
    pub async fn params(&self, actor: &Actor, id: &DeploymentId) -> ServiceResult<Vec<ParamView>> {
        let d = self.visible(actor, id).await?;
        Ok(self
            .store
            .deployment_params(d.id.as_str())
            .await?
            .into_iter()
            .map(|p| ParamView {
                value: if p.secret { None } else { Some(p.value) },
                name: p.name,
                secret: p.secret,
                set_by: p.set_by,
                set_at: at(p.set_at),
            })
            .collect())
    }

    /// Its timeline, in order.
    pub async fn events(&self, actor: &Actor, id: &DeploymentId) -> ServiceResult<Vec<Event>> {
        let d = self.visible(actor, id).await?;
        Ok(self
            .store
            .deployment_events(&d.id)
            .await?
            .into_iter()
            .map(|e| Event { at: at(e.at), kind: e.kind, message: e.message })
            .collect())
    }

    /// Terminates the deployment: its VMs, then its credentials; `terminated`
    /// once none is live (the driver does it). Terminating twice is the same
    /// as once; refused (409) while another operation is in progress.
    pub async fn terminate(&self, actor: &Actor, id: &DeploymentId) -> ServiceResult<Deployment> {
        let d = self.visible(actor, id).await?;
        actor.require_act()?;
        if d.state == "terminated" || d.state == "terminating" {
            return self.view(d).await;
        }
        if d.op.as_deref() != Some("terminate")
            && !self.store.begin_deployment_op(id, "terminate", &["provisioning", "executing", "ready", "failed"]).await?
        {
            let now = self.visible(actor, id).await?;
            return Err(busy(&now));
        }
        self.store
            .transition_deployment(
                id,
                &["provisioning", "executing", "ready", "failed"],
                "terminating",
                None,
                "terminate",
                &format!("terminate asked by {}", actor.name),
            )
            .await?;
        self.audit(actor, (d.id.as_str(), &d.project), "terminate".to_string()).await?;
        self.kick.notify_one();
        self.get(actor, id).await
    }

    /// Stops the deployment with `message` (as a VM's `abort` does): the
    /// driver fails it with that message, then keeps or terminates its VMs
    /// as it says.
    pub async fn abort(&self, actor: &Actor, id: &DeploymentId, message: &str) -> ServiceResult<Deployment> {
        let d = self.visible(actor, id).await?;
        actor.require_act()?;
        let message = message.trim();
        if message.is_empty() {
            return Err(ServiceError::invalid_field("message", "say why the deployment is aborted"));
        }
        if message.chars().count() > 1000 {
            return Err(ServiceError::invalid_field("message", "a message is at most 1000 characters"));
        }
        if !DeploymentState::parse(&d.state).map_err(ServiceError::Internal)?.is_active() {
            return Err(ServiceError::Conflict(format!("deployment '{id}' is {}: there is nothing to abort", d.state)));
        }
        self.store.request_deployment_abort(id.as_str(), &format!("aborted by {}: {message}", actor.name)).await?;
        self.audit(actor, (d.id.as_str(), &d.project), format!("abort: {message}")).await?;
        self.kick.notify_one();
        self.get(actor, id).await
    }

    /// Records what `actor` did to deployment `id` of `project` (in that project's audit).
    pub(super) async fn audit(&self, actor: &Actor, (id, project): (&str, &str), detail: String) -> ServiceResult<()> {
        use crate::audit::{AuditAction, AuditEvent, AuditTarget};
        let event = AuditEvent::ok(AuditAction::DeploymentChange, AuditTarget::Deployment(id)).detail(detail).in_project(project);
        Ok(crate::audit::record_by(&self.store, actor, &event).await?)
    }
}

/// The 409 of an operation refused because another is in progress.
pub(super) fn busy(d: &DeploymentRow) -> ServiceError {
    match &d.op {
        Some(op) => ServiceError::Conflict(format!("deployment '{}' has an operation in progress ({op}): try again when it is done", d.id)),
        None => ServiceError::Conflict(format!("deployment '{}' is {}: it cannot take this operation", d.id, d.state)),
    }
}

/// A node's state from its members'.
fn node_state(members: &[MemberView], ready_when_running: bool) -> String {
    if members.is_empty() {
        return "ready".into();
    }
    let all = |f: &dyn Fn(&MemberView) -> bool| members.iter().all(f);
    let ready = |m: &MemberView| m.state == "ready" || (ready_when_running && m.state == "running");
    let outside = |m: &MemberView| m.state == "stopped" || m.state == "ended";
    if members.iter().any(|m| m.state == "failed") {
        "failed"
    } else if all(&ready) {
        "ready"
    } else if all(&|m| ready(m) || outside(m)) {
        // Ready once; some VMs stopped or ended outside the deployment since.
        "degraded"
    } else if all(&|m| m.state == "held") {
        "waiting"
    } else if all(&|m| m.state == "running" || m.state == "ready") {
        "running"
    } else {
        "launching"
    }
    .into()
}
