//! Deploying and scaling: a deployment's request is checked against its
//! application version (placement, multiplicities, inputs), one launch
//! request of one VM is built per VM slot (each VM gets its own user data
//! and credential), and every VM is admitted in ONE transaction with the
//! deployment's rows ([`crate::provisioning::Provisioning::admit_many`]: the
//! quotas, budgets and launch policies of a launch; all or none). Every VM
//! is recorded `held`: the driver releases and launches it once its node's
//! dependencies are ready. A refusal names the node and the instance.
//!
//! A VM's credential is registered right before its cloud step (the
//! driver's release), not in the admission's transaction: a credential only
//! works for a member whose VM lives, so one registered for a VM that never
//! launches opens nothing.

use super::engine::{busy, current_members, Deployment, DeploymentId, Deployments, PlacementMap, ScalePlan};
use super::exchange::{boot_user_data, BootInfo};
use super::{AppDoc, DeployRequest, NodeSpec};
use crate::auth::Actor;
use crate::domain::{ImageRef, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use crate::provisioning::{InstanceType, LaunchRequest};
use cloudbroker_store::deployments::{self as store_dep, NewDeployment, NewMember};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most VMs in one deployment.
pub const MAX_VMS: u32 = 100;
/// Longest name of a deployment.
const MAX_NAME: usize = 64;

/// The key of a node's reserved tag on its VMs' records.
pub const NODE_TAG: &str = "cloudbroker:node";
/// The key of a deployment's reserved tag on its VMs' records.
pub const DEPLOYMENT_TAG: &str = crate::provisioning::DEPLOYMENT_TAG;

impl Deployments {
    /// The launch request of VM `idx` (attempt `attempt`) of `node`.
    pub(super) fn request(
        &self,
        dep: &DeploymentId,
        dep_name: &str,
        (node, spec): (&str, &NodeSpec),
        placement: &super::Placement,
        idx: i64,
        user_data: Option<String>,
    ) -> ServiceResult<LaunchRequest> {
        let image =
            ImageRef::parse(&spec.image).map_err(|e| ServiceError::invalid_field("placement", format!("nodes.{node}.image: {e}")))?;
        let mut r = LaunchRequest::new(placement.instance.clone(), image);
        r.instance_type = match placement.instance_type.as_ref().or(spec.instance_type.as_ref()) {
            Some(t) => Some(
                InstanceType::parse(t).map_err(|e| ServiceError::invalid_field("placement", format!("nodes.{node}.instance_type: {e}")))?,
            ),
            None => None,
        };
        r.name = format!("{dep_name}-{node}-{idx}").chars().take(128).collect();
        r.user_data = user_data;
        r.tags.reserved.insert(DEPLOYMENT_TAG.into(), dep.to_string());
        r.tags.reserved.insert(NODE_TAG.into(), format!("{node}.{idx}"));
        Ok(r)
    }

    /// A VM's boot user data with its credential (not registered: see the module's comment).
    pub(super) fn boot_data(&self, dep: &DeploymentId, node: &str, spec: &NodeSpec, idx: i64, attempt: i64) -> ServiceResult<String> {
        let token = self.exchange.vm_token(dep, node, idx, attempt)?;
        boot_user_data(&BootInfo {
            broker_url: self.exchange.broker_url.clone(),
            token,
            deployment: dep.clone(),
            node: node.to_string(),
            idx,
            user_data: spec.user_data.clone(),
        })
        .map_err(|e| in_node(node, "", e))
    }

    /// Deploys an application version: checks the request, admits every
    /// VM (held) with the deployment's rows in one transaction, and wakes
    /// the driver. All or none: a refusal (naming the node and instance)
    /// records nothing.
    pub async fn deploy(self: &Arc<Self>, actor: &Actor, req: DeployRequest) -> ServiceResult<Deployment> {
        actor.require_act()?;
        let app = self.applications.get(actor, &req.application, req.version).await?;
        let doc = &app.doc;
        let placement = layout(doc, &req)?;
        let inputs = inputs(doc, &req.inputs)?;
        let name = match &req.name {
            Some(n) => deployment_name(n)?,
            None => {
                format!("{}-{}", app.name.as_str(), self.store.count_deployments_of(actor.project.as_str(), app.name.as_str()).await? + 1)
            }
        };
        let id = DeploymentId::generate();
        let timeout = req.timeout.unwrap_or_else(|| doc.effective_timeout());
        let deadline = self.provisioning.clock.now_ms() + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2);
        let mut requests = Vec::new();
        let mut slots = Vec::new();
        for node in doc.launch_order() {
            let Some(spec) = doc.nodes.get(node) else { continue };
            let p = &placement[node];
            for idx in 1..=i64::from(p.multiplicity.unwrap_or(0)) {
                let data = self.boot_data(&id, node, spec, idx, 1)?;
                requests.push(self.request(&id, &name, (node, spec), p, idx, Some(data))?);
                slots.push((node.to_string(), idx, p.instance.to_string()));
            }
        }
        let mut params = Vec::with_capacity(inputs.len());
        for (key, value, secret) in inputs {
            let stored = if secret { self.exchange.seal_value(&id, &key, &value)? } else { value };
            params.push((key, stored, secret));
        }
        let new = NewDeployment {
            id: id.clone(),
            name: name.clone(),
            app_name: app.name.as_str().to_string(),
            app_version: app.version,
            user: actor.name.to_string(),
            project: actor.project.to_string(),
            state: "provisioning".into(),
            on_failure: req.on_failure.as_str().into(),
            placement: serde_json::to_string(&placement).map_err(|e| ServiceError::Internal(e.to_string()))?,
            deadline_at: Some(deadline),
        };
        let vms_total = slots.len();
        let created = format!(
            "deployed {} version {} by {}: {} VM(s) admitted (on_failure: {})",
            app.name.as_str(),
            app.version,
            actor.name,
            vms_total,
            req.on_failure.as_str()
        );
        let set_by = format!("user {}", actor.name);
        let slots_for_rows = slots.clone();
        let admitted = self
            .provisioning
            .admit_many(actor, requests, VmStatus::Held, move |vms| {
                let members: Vec<NewMember> = slots_for_rows
                    .iter()
                    .zip(vms)
                    .map(|((node, idx, _), vm)| NewMember {
                        node: node.clone(),
                        idx: *idx,
                        attempt: 1,
                        vm_id: vm.vm_id.clone(),
                        state: "held".into(),
                    })
                    .collect();
                Some(store_dep::new_deployment_rows(new, members, params, set_by, created))
            })
            .await;
        if let Err((i, e)) = admitted {
            return Err(match slots.get(i) {
                Some((node, _, instance)) => in_node(node, instance, e),
                None => e,
            });
        }
        let detail = format!("deployed {} version {}: {vms_total} VM(s)", app.name.as_str(), app.version);
        self.audit(actor, (id.as_str(), actor.project.as_str()), detail).await?;
        self.kick.notify_one();
        self.get(actor, &id).await
    }

    /// A dry run of [`Self::deploy`]: the request checked, and every VM
    /// put through the deployment's own admission (the same plans, the same
    /// transaction and checks: quotas, budgets, policies, with the nodes
    /// that share an instance counted together), rolled back; nothing
    /// recorded, no refusal audited. A refusal where other nodes on the
    /// same instance took room first names them all ("node 'db' and 'web'
    /// on 'sb': ..."). Returns (node, instance, VMs).
    pub async fn preview(&self, actor: &Actor, req: &DeployRequest) -> ServiceResult<Vec<(String, String, u32)>> {
        actor.require_act()?;
        let app = self.applications.get(actor, &req.application, req.version).await?;
        let doc = &app.doc;
        let placement = layout(doc, req)?;
        inputs(doc, &req.inputs)?;
        let id = DeploymentId::generate();
        let mut out = Vec::new();
        let mut requests = Vec::new();
        let mut slots: Vec<(String, String)> = Vec::new();
        for node in doc.launch_order() {
            let Some(spec) = doc.nodes.get(node) else { continue };
            let p = &placement[node];
            let n = p.multiplicity.unwrap_or(0);
            for idx in 1..=i64::from(n) {
                let data = self.boot_data(&id, node, spec, idx, 1)?;
                requests.push(self.request(&id, "preview", (node, spec), p, idx, Some(data))?);
                slots.push((node.to_string(), p.instance.to_string()));
            }
            out.push((node.to_string(), p.instance.to_string(), n));
        }
        if let Err((i, e)) = self.provisioning.check_many(actor, requests).await {
            let Some((node, instance)) = slots.get(i) else { return Err(e) };
            // The nodes on this instance admitted before it, and it.
            let mut names: Vec<&str> = Vec::new();
            for (n, inst) in &slots[..=i] {
                if inst == instance && !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
            let shared = matches!(e, ServiceError::QuotaExceeded { .. } | ServiceError::BudgetExceeded(_));
            let who = if shared { names.join("' and '") } else { node.clone() };
            return Err(in_node(&who, instance, e));
        }
        Ok(out)
    }

    /// What scaling `node` to `to` VMs would do: the indexes to launch, or
    /// the highest-index VMs to terminate.
    pub async fn plan_scale(&self, actor: &Actor, id: &DeploymentId, node: &str, to: u32) -> ServiceResult<ScalePlan> {
        let d = self.visible(actor, id).await?;
        let doc = self.doc(&d.app_name, d.app_version).await?;
        if !doc.nodes.contains_key(node) {
            return Err(ServiceError::invalid_field(
                "node",
                format!("the application has no node '{}'", node.chars().take(40).collect::<String>()),
            ));
        }
        let members = self.store.deployment_members(id).await?;
        let cur = current_members(&members);
        let total = cur.len() as u32;
        let mine: Vec<_> = cur.iter().filter(|((n, _), _)| n == node).map(|(_, m)| *m).collect();
        let from = mine.len() as u32;
        if to > crate::deployments::app::MAX_MULTIPLICITY || total - from + to > MAX_VMS {
            return Err(ServiceError::invalid_field(
                "multiplicity",
                format!("a node has at most {} VMs and a deployment at most {MAX_VMS}", crate::deployments::app::MAX_MULTIPLICITY),
            ));
        }
        let top = mine.iter().map(|m| m.idx).max().unwrap_or(0);
        let mut plan = ScalePlan { node: node.to_string(), from, to, launch: Vec::new(), terminate: Vec::new() };
        if to > from {
            plan.launch = (top + 1..=top + i64::from(to - from)).collect();
        } else {
            let mut by_idx = mine.clone();
            by_idx.sort_by_key(|m| std::cmp::Reverse(m.idx));
            for m in by_idx.into_iter().take((from - to) as usize) {
                if let Some(vm) = &m.vm_id {
                    plan.terminate.push((m.idx, vm.clone()));
                }
            }
        }
        Ok(plan)
    }

    /// Scales `node` to `to` VMs (the plan of [`Self::plan_scale`]): new VMs
    /// admitted together (held, launched by the driver once the node's
    /// dependencies are ready; they get the parameters like the first ones),
    /// or the highest-index VMs terminated and their outputs withdrawn and
    /// credentials revoked. Refused (409) while another operation is in progress.
    /// A scale up makes a deployment `executing` or `ready` `provisioning`
    /// again in the admission's transaction (its new VMs wait for their launch).
    pub async fn scale(self: &Arc<Self>, actor: &Actor, id: &DeploymentId, node: &str, to: u32) -> ServiceResult<ScalePlan> {
        let d = self.visible(actor, id).await?;
        actor.require_act()?;
        let plan = self.plan_scale(actor, id, node, to).await?;
        if !self.store.begin_deployment_op(id, "scale", &["provisioning", "executing", "ready"]).await? {
            let now = self.visible(actor, id).await?;
            return Err(busy(&now));
        }
        let done = self.apply_scale(actor, &d, &plan).await;
        self.store.finish_deployment_op(id, "scale").await?;
        if done.is_ok() {
            self.audit(actor, (d.id.as_str(), &d.project), format!("scale of {} from {} to {}", plan.node, plan.from, plan.to)).await?;
        }
        self.kick.notify_one();
        done.map(|()| plan)
    }

    async fn apply_scale(
        self: &Arc<Self>,
        actor: &Actor,
        d: &cloudbroker_store::deployments::DeploymentRow,
        plan: &ScalePlan,
    ) -> ServiceResult<()> {
        let id = &d.id;
        let node = plan.node.as_str();
        let doc = self.doc(&d.app_name, d.app_version).await?;
        let spec = doc.nodes.get(node).ok_or_else(|| ServiceError::Internal(format!("node '{node}' vanished")))?;
        let placement: PlacementMap =
            serde_json::from_str(&d.placement).map_err(|e| ServiceError::Internal(format!("stored placement: {e}")))?;
        let p = placement.get(node).ok_or_else(|| ServiceError::Internal(format!("no placement for node '{node}'")))?;
        if !plan.launch.is_empty() {
            let mut requests = Vec::new();
            for idx in &plan.launch {
                let data = self.boot_data(id, node, spec, *idx, 1)?;
                requests.push(self.request(id, &d.name, (node, spec), p, *idx, Some(data))?);
            }
            let event =
                format!("scale of {node} from {} to {} by {}: {} VM(s) admitted", plan.from, plan.to, actor.name, plan.launch.len());
            let (dep, node_s, idxs) = (id.clone(), node.to_string(), plan.launch.clone());
            let admitted = self
                .provisioning
                .admit_many(actor, requests, VmStatus::Held, move |vms| {
                    let members: Vec<NewMember> = idxs
                        .iter()
                        .zip(vms)
                        .map(|(idx, vm)| NewMember {
                            node: node_s.clone(),
                            idx: *idx,
                            attempt: 1,
                            vm_id: vm.vm_id.clone(),
                            state: "held".into(),
                        })
                        .collect();
                    Some(store_dep::more_members_rows(dep, members, None, "scale", event))
                })
                .await;
            admitted.map_err(|(_, e)| in_node(node, p.instance.as_str(), e))?;
            return Ok(());
        }
        // Down: a VM whose launch is in flight cannot be terminated yet.
        let members = self.store.deployment_members(id).await?;
        let cur = current_members(&members);
        let victims: Vec<_> =
            cur.iter().filter(|((n, idx), _)| n == node && plan.terminate.iter().any(|(i, _)| i == idx)).map(|(_, m)| *m).collect();
        if let Some(m) = victims.iter().find(|m| m.vm_state == Some(VmStatus::Requested) && m.cloud_id.is_none()) {
            return Err(ServiceError::Conflict(format!("VM {} of node '{node}' is being launched: scale down once it is up", m.idx)));
        }
        for m in &victims {
            self.end_member_vm(actor, m).await?;
            self.store.set_member_state(id, node, m.idx, m.attempt, "removed").await?;
            self.store.withdraw_member_outputs(id.as_str(), node, m.idx).await?;
            self.store.revoke_deployment_tokens(id.as_str(), Some(node), Some(m.idx)).await?;
        }
        let event = format!("scale of {node} from {} to {} by {}: {} VM(s) terminated", plan.from, plan.to, actor.name, victims.len());
        self.store.add_deployment_event(id, "scale", &event).await?;
        Ok(())
    }
}

/// `e`, said of node `node` on `instance`.
pub(super) fn in_node(node: &str, instance: &str, e: ServiceError) -> ServiceError {
    match e {
        // Internal causes stay what they are (logged, not shown).
        e if e.is_internal() => e,
        e @ ServiceError::DatabaseUnavailable(_) => e,
        e => ServiceError::InNode { node: node.to_string(), instance: instance.to_string(), error: Box::new(e) },
    }
}

/// A deployment's name: 1-64 printable characters.
fn deployment_name(n: &str) -> ServiceResult<String> {
    let n = n.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(ServiceError::invalid_field("name", format!("a deployment's name is 1-{MAX_NAME} characters, no control characters")));
    }
    Ok(n.to_string())
}

/// Each node's placement, checked against the document, with its multiplicity.
fn layout(doc: &AppDoc, req: &DeployRequest) -> ServiceResult<PlacementMap> {
    let mut errors = Vec::new();
    for k in req.placement.keys() {
        if !doc.nodes.contains_key(k) {
            errors.push(format!(
                "placement.{}: the application has no node '{}'",
                k.chars().take(40).collect::<String>(),
                k.chars().take(40).collect::<String>()
            ));
        }
    }
    let mut out = BTreeMap::new();
    let mut total = 0u32;
    for (name, spec) in &doc.nodes {
        let p = match req.placement.get(name) {
            Some(p) => p.clone(),
            None => match spec.instances.as_slice() {
                [only] => match crate::domain::InstanceName::parse(only) {
                    Ok(i) => super::Placement { instance: i, multiplicity: None, instance_type: None },
                    Err(e) => {
                        errors.push(format!("nodes.{name}.instances[0]: {e}"));
                        continue;
                    }
                },
                _ => {
                    errors.push(format!("placement.{name}: say which connector instance node '{name}' runs on"));
                    continue;
                }
            },
        };
        if !spec.instances.is_empty() && !spec.instances.iter().any(|i| i == p.instance.as_str()) {
            errors.push(format!("placement.{name}.instance: node '{name}' runs only on {}", spec.instances.join(", ")));
        }
        let n = p.multiplicity.unwrap_or(spec.multiplicity);
        if n > crate::deployments::app::MAX_MULTIPLICITY {
            errors.push(format!("placement.{name}.multiplicity: at most {}", crate::deployments::app::MAX_MULTIPLICITY));
        }
        total = total.saturating_add(n);
        if let Some(t) = &p.instance_type {
            if let Err(e) = InstanceType::parse(t) {
                errors.push(format!("placement.{name}.instance_type: {e}"));
            }
        }
        out.insert(name.clone(), super::Placement { multiplicity: Some(n), ..p });
    }
    if total > MAX_VMS {
        errors.push(format!("placement: {total} VMs in all, at most {MAX_VMS}"));
    }
    if !errors.is_empty() {
        return Err(ServiceError::invalid_field("placement", errors.join("; ")));
    }
    Ok(out)
}

/// The inputs given, as parameters to store: ("input.x" | "node.input.x", value, secret).
/// Every input without a default and not mapped must be given.
fn inputs(doc: &AppDoc, given: &BTreeMap<String, String>) -> ServiceResult<Vec<(String, String, bool)>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (k, v) in given {
        if v.len() > super::exchange::MAX_VALUE_BYTES {
            errors.push(format!("inputs.{k}: at most {} bytes", super::exchange::MAX_VALUE_BYTES));
            continue;
        }
        match k.split_once('.') {
            Some((node, name)) => match doc.nodes.get(node).and_then(|n| n.inputs.iter().find(|p| p.name == name)) {
                Some(spec) if doc.mapping_of(node, name).is_some() => {
                    let _ = spec;
                    errors.push(format!("inputs.{k}: it is mapped from another node's output, not given"));
                }
                Some(spec) => out.push((format!("{node}.input.{name}"), v.clone(), spec.secret)),
                None => errors.push(format!("inputs.{}: no such input", k.chars().take(80).collect::<String>())),
            },
            None => match doc.inputs.iter().find(|p| &p.name == k) {
                Some(spec) => out.push((format!("input.{k}"), v.clone(), spec.secret)),
                None => errors.push(format!("inputs.{}: no such input", k.chars().take(80).collect::<String>())),
            },
        }
    }
    for p in &doc.inputs {
        if p.default.is_none() && !given.contains_key(&p.name) {
            errors.push(format!("inputs.{}: required (it has no default)", p.name));
        }
    }
    for (node, spec) in &doc.nodes {
        for p in &spec.inputs {
            let key = format!("{node}.{}", p.name);
            if p.default.is_none() && doc.mapping_of(node, &p.name).is_none() && !given.contains_key(&key) {
                errors.push(format!("inputs.{key}: required (it has no default and no mapping)"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::invalid_field("inputs", errors.join("; ")));
    }
    Ok(out)
}
