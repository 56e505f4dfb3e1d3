//! The driver: the `deployments` worker's pass. Each pass claims the
//! deployments being worked on (a conditional update: one replica drives a
//! deployment at a time; a crashed replica's claim expires and any replica
//! resumes; a live one renews its claim while a step lasts, so a step
//! longer than the TTL is never taken over), and steps each once. Settled
//! deployments (ready, failed, terminated) are not read by a pass, unless
//! woken: one of their VMs changed (the store's trigger sets `wake`,
//! whoever changed it) or an abort was asked for. The pass runs every
//! interval, and at once when kicked: after deploy, scale, terminate,
//! abort, a VM's `ready`, and when this replica's reconciler or transition
//! watch records a change of a deployment's VM (so a node whose VMs just
//! run is ready, and its dependents released, in the same pass):
//!
//! - a deployment terminating (or failed with `on_failure: terminate`)
//!   ends its VMs (held ones without a cloud call), revokes its
//!   credentials, and is `terminated` (or its clean-up done) once none lives;
//! - a VM that was ready and is then stopped or ended outside the
//!   deployment (its owner through the VM API, or at the cloud) does not
//!   fail it: its member is `stopped` or `ended`, its node `degraded`, and
//!   an event says who did it ("web#1 stopped by alice"); a stopped VM
//!   started again is ready again;
//! - an abort asked for, the deadline passed, a node's timeout passed, a
//!   VM that ended before it was ready, a slot whose launch failed [`MAX_ATTEMPTS`] times, a
//!   replacement refused, or the user no longer acting in the project fail
//!   it, with the message kept;
//! - members follow their VMs (launching, running, ready: the VM's `ready`
//!   call, or running for a node `ready_when: running`); the broker
//!   publishes `hostname` and `instanceid` of running VMs;
//! - held VMs whose node's dependencies are all ready are released
//!   (`held` -> `requested`, one conditional update: whoever wins makes the
//!   cloud call, once) and launched, a few at a time;
//! - a VM whose launch was interrupted or failed at the cloud (failed with
//!   no cloud instance) is replaced by a new attempt, admitted alone by the
//!   same checks;
//! - the state follows: `provisioning` while a VM waits for its launch,
//!   `executing` once all are launched, `ready` once every node is.
//!
//! The driver acts as the deployment's user in its project (the role read
//! fresh from the database), as the API would.

use super::engine::{current_members, DeploymentId, DeploymentState, Deployments, DrivePassReport, OnFailure, PlacementMap, MAX_ATTEMPTS};
use super::ReadyWhen;
use crate::auth::Actor;
use crate::domain::{ProjectName, ProjectRole, UserName, VmAction, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use cloudbroker_store::deployments::{DeploymentRow, MemberRow, NewMember};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Deployments one pass claims at most.
const PASS_BATCH: i64 = 50;
/// Cloud steps one deployment runs at once.
const LAUNCHES_AT_ONCE: usize = 16;

impl Deployments {
    /// One pass of the driver (see the module's comment).
    pub async fn drive_pass(self: &Arc<Self>) -> ServiceResult<DrivePassReport> {
        let mut report = DrivePassReport::default();
        let until = self.provisioning.clock.now_ms() + i64::try_from(self.claim_ttl.as_millis()).unwrap_or(60_000);
        let ids = self.store.claim_deployments(&self.replica_id, until, PASS_BATCH).await?;
        for id in ids {
            report.driven += 1;
            // Renewed while the step lasts (its cloud calls may outlast the TTL).
            let _keeper = self.keep_claim(&id);
            if let Err(e) = self.step(&id, &mut report).await {
                tracing::warn!(deployment = %id, error = %e, "deployment step failed");
                report.errors.push(format!("{id}: {e}"));
            }
            self.store.release_deployment_claim(&id, &self.replica_id).await?;
        }
        Ok(report)
    }

    /// Keeps this replica's claim on `id` alive while the returned guard
    /// lives: renewed every third of the TTL (from the clock, so a test that
    /// moves the clock past the TTL sees it renewed), so a step longer than
    /// the TTL (slow cloud calls) is never taken over by another replica
    /// while this one still drives it. A claim found lost is logged (another
    /// replica took over after a stall longer than the TTL; the step's
    /// writes are conditional, so it launches nothing twice).
    fn keep_claim(self: &Arc<Self>, id: &DeploymentId) -> ClaimKeeper {
        let this = self.clone();
        let id = id.clone();
        let ttl = i64::try_from(self.claim_ttl.as_millis()).unwrap_or(60_000);
        let every = (self.claim_ttl / 3).max(std::time::Duration::from_millis(10));
        ClaimKeeper(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let until = this.provisioning.clock.now_ms() + ttl;
                match this.store.renew_deployment_claim(&id, &this.replica_id, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(deployment = %id, "the claim on this deployment was lost during a step");
                        return;
                    }
                    Err(e) => tracing::warn!(deployment = %id, error = %e, "renewing the claim on this deployment failed"),
                }
            }
        }))
    }

    /// The actor the driver acts as: the deployment's user in its project,
    /// with their role read now. `Err(message)` when they may no longer act there.
    async fn act_as(&self, d: &DeploymentRow) -> ServiceResult<Result<Actor, String>> {
        let Some(user) = self.store.get_user(&d.user_name).await? else {
            return Ok(Err(format!("user '{}' no longer exists", d.user_name)));
        };
        if user.disabled_at.is_some() {
            return Ok(Err(format!("user '{}' is disabled", d.user_name)));
        }
        let name = UserName::from_stored(d.user_name.clone());
        let project = ProjectName::from_stored(d.project.clone());
        let actor = Actor::new(name.clone(), user.is_admin);
        if project.as_str() == name.as_str() {
            return Ok(Ok(actor));
        }
        let role = match self.store.project_membership(&project, &name).await? {
            Some(r) => r,
            None if user.is_admin && self.store.get_project(&project).await?.is_some() => ProjectRole::Owner,
            None => return Ok(Err(format!("user '{}' is no longer a member of project '{}'", d.user_name, d.project))),
        };
        if !role.can_act() && !user.is_admin {
            return Ok(Err(format!("user '{}' is now a {role} of project '{}' and cannot act there", d.user_name, d.project)));
        }
        Ok(Ok(actor.in_project(project, role)))
    }

    /// The actor VMs are ended as: the user's, else the system's in the
    /// deployment's project (a deployment whose user left is still cleaned up).
    async fn ending_actor(&self, d: &DeploymentRow) -> ServiceResult<Actor> {
        Ok(match self.act_as(d).await? {
            Ok(a) => a,
            Err(_) => Actor::system().in_project(ProjectName::from_stored(d.project.clone()), ProjectRole::Owner),
        })
    }

    /// Ends a member's VM: a held one without a cloud call; one in the
    /// cloud through provisioning's terminate. Returns whether it is still
    /// live (a launch in flight is ended once it has a cloud instance).
    pub(super) async fn end_member_vm(&self, actor: &Actor, m: &MemberRow) -> ServiceResult<bool> {
        let (Some(vm), Some(state)) = (&m.vm_id, m.vm_state) else { return Ok(false) };
        match state {
            VmStatus::Held => {
                self.store.end_held_vm(vm, "its deployment ended before it was launched").await?;
                Ok(false)
            }
            VmStatus::Terminated | VmStatus::Failed => Ok(false),
            VmStatus::ShuttingDown => Ok(true),
            _ if m.cloud_id.is_none() => Ok(true),
            _ => match self.provisioning.action(actor, vm, VmAction::Terminate).await {
                Ok(v) => Ok(v.status.is_live()),
                Err(ServiceError::NotFound(_)) => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Fails an active deployment with `message` (the first failure wins);
    /// with `on_failure: terminate`, its clean-up starts (the operation
    /// `terminate` while it stays `failed`).
    async fn fail(&self, d: &DeploymentRow, message: &str, report: &mut DrivePassReport) -> ServiceResult<()> {
        let failed = self
            .store
            .transition_deployment(&d.id, &["provisioning", "executing", "ready"], "failed", Some(message), "failed", message)
            .await?;
        if failed {
            report.transitions += 1;
            if d.on_failure == OnFailure::Terminate.as_str() {
                self.store.force_deployment_op(&d.id, Some("terminate")).await?;
                self.store.add_deployment_event(&d.id, "terminate", "on_failure is terminate: terminating every VM").await?;
                self.kick.notify_one();
            } else {
                self.store.add_deployment_event(&d.id, "keep", "on_failure is keep: the VMs are left as they are").await?;
            }
        }
        Ok(())
    }

    /// Ends every VM of a terminating deployment (or one failed with
    /// `on_failure: terminate`), revokes its credentials, and closes it once none lives.
    async fn wind_down(&self, d: &DeploymentRow, members: &[MemberRow], report: &mut DrivePassReport) -> ServiceResult<()> {
        let actor = self.ending_actor(d).await?;
        let mut live = 0;
        let mut errors = Vec::new();
        for m in members {
            match self.end_member_vm(&actor, m).await {
                Ok(true) => live += 1,
                Ok(false) => {}
                Err(e) => {
                    live += 1;
                    errors.push(format!("{}.{}: {e}", m.node, m.idx));
                }
            }
        }
        self.store.revoke_deployment_tokens(d.id.as_str(), None, None).await?;
        if !errors.is_empty() {
            self.store.add_deployment_event(&d.id, "error", &format!("terminating: {}", errors.join("; "))).await?;
        }
        if live > 0 {
            return Ok(());
        }
        if d.state == DeploymentState::Terminating.as_str() {
            if self.store.transition_deployment(&d.id, &["terminating"], "terminated", None, "terminated", "every VM has ended").await? {
                report.transitions += 1;
            }
        } else {
            self.store.add_deployment_event(&d.id, "terminated", "every VM has ended").await?;
        }
        self.store.force_deployment_op(&d.id, None).await?;
        Ok(())
    }

    /// One step of one deployment this replica has claimed.
    async fn step(self: &Arc<Self>, id: &DeploymentId, report: &mut DrivePassReport) -> ServiceResult<()> {
        let Some(d) = self.store.get_deployment(id).await? else { return Ok(()) };
        // A scale down in progress ends VMs itself (they are not stopped
        // outside the deployment): they are left alone, and the deployment
        // stays awake to be looked at again once the scale is done.
        let scaling = d.op.as_deref() == Some("scale");
        if !scaling {
            // Before the members are read: a VM that changes from now on wakes it again.
            self.store.clear_deployment_wake(id).await?;
        }
        let state = DeploymentState::parse(&d.state).map_err(ServiceError::Internal)?;
        let members = self.store.deployment_members(id).await?;
        if state == DeploymentState::Terminating || d.op.as_deref() == Some("terminate") {
            return self.wind_down(&d, &members, report).await;
        }
        if !state.is_active() {
            return Ok(());
        }
        if let Some(msg) = &d.abort_requested {
            return self.fail(&d, msg, report).await;
        }
        let now = self.provisioning.clock.now_ms();
        if state != DeploymentState::Ready && d.deadline_at.is_some_and(|t| now > t) {
            let msg = format!(
                "the deployment's timeout passed ({}) before it was ready",
                crate::domain::lease::format_duration(chrono::Duration::milliseconds(d.deadline_at.unwrap_or(now) - d.created_at))
            );
            return self.fail(&d, &msg, report).await;
        }
        let actor = match self.act_as(&d).await? {
            Ok(a) => a,
            Err(msg) => return self.fail(&d, &msg, report).await,
        };
        let doc = self.doc(&d.app_name, d.app_version).await?;
        let placement: PlacementMap =
            serde_json::from_str(&d.placement).map_err(|e| ServiceError::Internal(format!("stored placement: {e}")))?;
        let params: BTreeSet<String> = self.store.deployment_params(id.as_str()).await?.into_iter().map(|p| p.name).collect();
        let cur = current_members(&members);

        // Members follow their VMs.
        let mut states: BTreeMap<(String, i64), String> = BTreeMap::new();
        let mut replace: Vec<&MemberRow> = Vec::new();
        for ((node, idx), m) in &cur {
            let spec = doc.nodes.get(node);
            let running_is_ready = spec.is_some_and(|s| s.ready_when == ReadyWhen::Running);
            let new = match m.vm_state {
                None => "failed".to_string(),
                Some(VmStatus::Held) => "held".into(),
                // Started again by its owner: degraded until it runs.
                Some(VmStatus::Requested | VmStatus::Pending) if m.state == "stopped" => "stopped".into(),
                Some(VmStatus::Requested | VmStatus::Pending) => "launching".into(),
                Some(VmStatus::Running) => {
                    if m.ready_at.is_some() || running_is_ready {
                        "ready".into()
                    } else {
                        "running".into()
                    }
                }
                Some(VmStatus::Failed | VmStatus::Terminated) if m.cloud_id.is_none() => {
                    replace.push(m);
                    "failed".into()
                }
                // A VM that was ready, then stopped or ended outside the
                // deployment (its owner through the VM API, or the cloud):
                // its node is degraded, the deployment does not fail.
                Some(_) if is_settled(&m.state) && scaling => m.state.clone(),
                Some(s) if is_settled(&m.state) => {
                    let new = if matches!(s, VmStatus::Stopping | VmStatus::Stopped) { "stopped" } else { "ended" };
                    if new != m.state && m.state != "ended" {
                        self.degraded(id, m, s).await?;
                    }
                    if m.state == "ended" {
                        "ended".to_string()
                    } else {
                        new.to_string()
                    }
                }
                Some(s) => {
                    let msg = format!(
                        "VM {idx} of node '{node}' ({}) is {s}: {}",
                        m.vm_id.as_ref().map(|v| v.as_str()).unwrap_or("-"),
                        m.vm_error.as_deref().unwrap_or("ended outside the deployment")
                    );
                    self.set_member(id, m, "failed").await?;
                    return self.fail(&d, &msg, report).await;
                }
            };
            // A VM that said ready before it was seen running stays ready.
            let new = if m.state == "ready" && new == "running" { "ready".to_string() } else { new };
            if m.state == "stopped" && new == "ready" {
                self.store.add_deployment_event(id, "member", &format!("{node}#{idx} is running again")).await?;
            }
            if new != m.state {
                self.set_member(id, m, &new).await?;
            }
            if matches!(new.as_str(), "running" | "ready") {
                self.publish_builtins(id, m, &params).await?;
            }
            if let (Some(t), Some(launched)) = (spec.and_then(|s| s.timeout), m.vm_created_at) {
                if matches!(new.as_str(), "launching" | "running") && now - launched > i64::try_from(t.as_millis()).unwrap_or(i64::MAX) {
                    let msg = format!(
                        "node '{node}': VM {idx} was not ready within its timeout ({})",
                        crate::domain::lease::format_duration(chrono::Duration::milliseconds(i64::try_from(t.as_millis()).unwrap_or(0)))
                    );
                    return self.fail(&d, &msg, report).await;
                }
            }
            states.insert((node.clone(), *idx), new);
        }

        // Launches that failed: a new attempt, or the deployment fails.
        for m in replace {
            if m.attempt >= MAX_ATTEMPTS {
                let msg = format!(
                    "node '{}': VM {} failed to launch {} times: {}",
                    m.node,
                    m.idx,
                    m.attempt,
                    m.vm_error.as_deref().unwrap_or("no reason given")
                );
                return self.fail(&d, &msg, report).await;
            }
            if let Err(e) = self.replace(&actor, &d, &doc, &placement, m).await {
                let msg = format!("node '{}': VM {} could not be replaced: {e}", m.node, m.idx);
                return self.fail(&d, &msg, report).await;
            }
            states.insert((m.node.clone(), m.idx), "held".into());
        }

        // Nodes ready (a degraded node, whose VMs were ready before some
        // stopped or ended outside the deployment, counts), then releases.
        let ready_nodes: BTreeSet<&str> = doc
            .nodes
            .keys()
            .filter(|n| states.iter().filter(|((node, _), _)| node == *n).all(|(_, s)| is_settled(s)))
            .map(String::as_str)
            .collect();
        let mut to_launch = Vec::new();
        for ((node, idx), m) in &cur {
            if states.get(&(node.clone(), *idx)).map(String::as_str) != Some("held") || m.vm_state != Some(VmStatus::Held) {
                continue;
            }
            let Some(spec) = doc.nodes.get(node) else { continue };
            if !spec.depends_on.iter().all(|dep| ready_nodes.contains(dep.as_str())) {
                continue;
            }
            to_launch.push(*m);
        }
        let (launched, fatal) = self.release(&actor, &d, &doc, &placement, &to_launch, report).await?;
        if let Some(msg) = fatal {
            return self.fail(&d, &msg, report).await;
        }
        for (node, idx) in launched {
            states.insert((node, idx), "launching".into());
        }

        // The deployment's state follows.
        let waiting =
            states.values().any(|s| s == "held") || cur.values().any(|m| m.vm_state == Some(VmStatus::Requested) && m.cloud_id.is_none());
        let all_ready = doc.nodes.keys().all(|n| ready_nodes.contains(n.as_str()));
        let target = if all_ready && !waiting {
            DeploymentState::Ready
        } else if waiting {
            DeploymentState::Provisioning
        } else {
            DeploymentState::Executing
        };
        if target != state {
            let why = match target {
                DeploymentState::Ready => "every node is ready".to_string(),
                DeploymentState::Executing => "every VM is launched; waiting for the nodes to be ready".to_string(),
                _ => "VMs wait for their launch".to_string(),
            };
            if self.store.transition_deployment(id, &[state.as_str()], target.as_str(), None, target.as_str(), &why).await? {
                report.transitions += 1;
            }
        }
        Ok(())
    }

    /// Records that a ready member's VM stopped or ended outside the
    /// deployment: who did it (the VM's audit: "web#1 stopped by alice"),
    /// else that it happened at the cloud; its node is degraded.
    async fn degraded(&self, id: &DeploymentId, m: &MemberRow, s: VmStatus) -> ServiceResult<()> {
        let ended = !matches!(s, VmStatus::Stopping | VmStatus::Stopped);
        let by = match &m.vm_id {
            Some(vm) => self.store.vm_stopped_by(vm, m.updated_at).await?,
            None => None,
        };
        let what = if ended { "terminated" } else { "stopped" };
        let who = match by {
            Some((actor, action)) if ended == (action == "vm.terminate") => format!("by {actor}"),
            Some((actor, _)) if ended => format!("(stopped by {actor}, then ended)"),
            _ => "outside the broker".to_string(),
        };
        let msg = format!("{}#{} {what} {who}: node '{}' is degraded (the deployment stays as it is)", m.node, m.idx, m.node);
        Ok(self.store.add_deployment_event(id, "degraded", &msg).await?)
    }

    /// Sets a member's state, with an event.
    async fn set_member(&self, id: &DeploymentId, m: &MemberRow, state: &str) -> ServiceResult<()> {
        if self.store.set_member_state(id, &m.node, m.idx, m.attempt, state).await? {
            self.store
                .add_deployment_event(id, "member", &format!("{}.{} (attempt {}): {} -> {state}", m.node, m.idx, m.attempt, m.state))
                .await?;
        }
        Ok(())
    }

    /// Publishes `hostname` (public address, else private) and `instanceid`
    /// of a running VM, once each.
    async fn publish_builtins(&self, id: &DeploymentId, m: &MemberRow, params: &BTreeSet<String>) -> ServiceResult<()> {
        let host = m.public_ip.clone().or_else(|| m.private_ip.clone());
        let values = [("hostname", host), ("instanceid", m.cloud_id.clone())];
        for (name, value) in values {
            let key = format!("{}.{}.{name}", m.node, m.idx);
            if let Some(v) = value.filter(|_| !params.contains(&key)) {
                self.exchange.put_param(id, &key, &v, false, "broker").await?;
            }
        }
        Ok(())
    }

    /// Replaces a member whose launch failed by a new attempt, admitted
    /// alone (held) by the same checks as the first.
    async fn replace(
        &self,
        actor: &Actor,
        d: &DeploymentRow,
        doc: &super::AppDoc,
        placement: &PlacementMap,
        m: &MemberRow,
    ) -> ServiceResult<()> {
        let spec = doc.nodes.get(&m.node).ok_or_else(|| ServiceError::Internal(format!("node '{}' vanished", m.node)))?;
        let p = placement.get(&m.node).ok_or_else(|| ServiceError::Internal(format!("no placement for '{}'", m.node)))?;
        let attempt = m.attempt + 1;
        let data = self.boot_data(&d.id, &m.node, spec, m.idx, attempt)?;
        let request = self.request(&d.id, &d.name, (&m.node, spec), p, m.idx, Some(data))?;
        let (dep, node, idx) = (d.id.clone(), m.node.clone(), m.idx);
        let node_prev = node.clone();
        let event = format!(
            "{node}.{idx}: attempt {} failed ({}); attempt {attempt} admitted",
            m.attempt,
            m.vm_error.as_deref().unwrap_or("launch failed")
        );
        match self
            .provisioning
            .admit_many(actor, vec![request], VmStatus::Held, move |vms| {
                let members: Vec<NewMember> = vms
                    .iter()
                    .map(|vm| NewMember { node: node.clone(), idx, attempt, vm_id: vm.vm_id.clone(), state: "held".into() })
                    .collect();
                Some(cloudbroker_store::deployments::more_members_rows(
                    dep,
                    members,
                    Some((node_prev, idx, attempt - 1)),
                    "replaced",
                    event,
                ))
            })
            .await
        {
            Ok(_) => Ok(()),
            // Another replica (whose claim outlived its TTL) made this attempt first.
            Err((_, ServiceError::Store(e))) if e.is_unique_violation() => Ok(()),
            Err((_, e)) => Err(super::admit::in_node(&m.node, p.instance.as_str(), e)),
        }
    }

    /// Releases one held member and makes its cloud step: `None` when it
    /// was not this caller's to launch (released by another, or gone).
    async fn release_one(
        &self,
        actor: &Actor,
        d: &DeploymentRow,
        doc: &super::AppDoc,
        placement: &PlacementMap,
        m: &MemberRow,
    ) -> ServiceResult<Option<Released>> {
        let Some(vm_id) = m.vm_id.clone() else { return Ok(None) };
        let (Some(spec), Some(p)) = (doc.nodes.get(&m.node), placement.get(&m.node)) else { return Ok(None) };
        let Some(row) = self.store.get_vm(&vm_id).await? else { return Ok(None) };
        // The credential first: the VM uses it as soon as it boots.
        let data = self.exchange.user_data_for(&d.id, &m.node, m.idx, m.attempt, spec.user_data.as_deref()).await?;
        let request = self.request(&d.id, &d.name, (&m.node, spec), p, m.idx, Some(data))?;
        // Whoever wins this conditional update, and only they, makes the cloud call.
        if !self.store.release_held_vm(&vm_id).await? {
            return Ok(None);
        }
        self.set_member(&d.id, m, "launching").await?;
        let r = self.provisioning.launch_admitted(actor, request, row.launch_id, vm_id).await;
        Ok(Some((m.node.clone(), m.idx, r)))
    }

    /// Releases held members and makes their cloud steps, a few at a time;
    /// returns the slots launched, and why the deployment fails when a
    /// launch was refused for good (not retryable).
    async fn release(
        self: &Arc<Self>,
        actor: &Actor,
        d: &DeploymentRow,
        doc: &super::AppDoc,
        placement: &PlacementMap,
        members: &[&MemberRow],
        report: &mut DrivePassReport,
    ) -> ServiceResult<(Vec<(String, i64)>, Option<String>)> {
        if members.is_empty() {
            return Ok((Vec::new(), None));
        }
        self.store
            .add_deployment_event(
                &d.id,
                "launch",
                &format!("launching {}", members.iter().map(|m| format!("{}.{}", m.node, m.idx)).collect::<Vec<_>>().join(", ")),
            )
            .await?;
        // Each VM's release and cloud step in one pipeline, a few at a time:
        // the first cloud calls start while later VMs are still released.
        let jobs: Vec<_> = members.iter().map(|m| self.release_one(actor, d, doc, placement, m)).collect();
        let results: Vec<ServiceResult<Option<Released>>> = futures::stream::iter(jobs).buffer_unordered(LAUNCHES_AT_ONCE).collect().await;
        let mut done = Vec::new();
        for r in results {
            if let Some(one) = r? {
                report.released += 1;
                done.push(one);
            }
        }
        let mut launched = Vec::new();
        let mut fatal = None;
        for (node, idx, r) in done {
            match r {
                Ok(()) => launched.push((node, idx)),
                // Retryable: the row is failed (or left to the reconciler); the next step replaces it.
                Err(ServiceError::Cloud(e)) if e.is_retryable() => {
                    self.store.add_deployment_event(&d.id, "launch", &format!("{node}.{idx}: the cloud refused for now: {e}")).await?;
                }
                Err(e) => {
                    self.store.add_deployment_event(&d.id, "launch", &format!("{node}.{idx}: {e}")).await?;
                    fatal.get_or_insert(format!("node '{node}': VM {idx} could not be launched: {e}"));
                }
            }
        }
        self.kick.notify_one();
        Ok((launched, fatal))
    }
}

/// A member that no longer holds its node back: ready, or ready once and
/// then stopped or ended outside the deployment (its node degraded).
fn is_settled(state: &str) -> bool {
    matches!(state, "ready" | "stopped" | "ended")
}

/// Ends the claim's renewal when dropped (the step is over).
struct ClaimKeeper(tokio::task::JoinHandle<()>);

impl Drop for ClaimKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One released member's (node, index) and its cloud step's result.
type Released = (String, i64, ServiceResult<()>);
