//! Governance (admin): per connector instance the launch policies in force
//! (`policy.*`, each value with its origin, as the System page shows them,
//! with a link to the instance's section there to change them) and the live
//! VMs that break them now. A new or tightened policy applies to launches
//! from then on: the VMs that break it are listed here, never stopped.
//!
//! Leases: each instance's lease terms (`lease.*`, with origins), the live
//! VMs of every project whose lease ends within [`DUE_WITHIN_HOURS`] hours
//! (one indexed query), the lease worker's status in this process (name
//! `lease`), and the recent lease actions of the audit log (warnings,
//! expiries, extensions).

use super::context::Ctx;
use super::errors::UiResult;
use super::form::{friendly, when};
use super::page;
use super::system::origin_text;
use super::vms::LeaseCell;
use super::Chrome;
use actix_web::web;
use askama::Template;
use cloudbroker_core::audit::{AuditAction, AuditQuery};
use cloudbroker_core::domain::PageRequest;
use cloudbroker_core::registry::{InstanceEntry, Origin};

/// How far ahead "Leases due soon" looks.
pub const DUE_WITHIN_HOURS: i64 = 24;

/// How many recent lease actions the page shows.
const RECENT_ACTIONS: usize = 15;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/governance", web::get().to(show));
}

/// One policy parameter of an instance.
struct PolicyRow {
    /// The parameter's name without the instance (`policy.images`).
    name: String,
    /// Its field on the System page (`p.<instance>.policy.images`).
    field: String,
    /// The value, or what an unset one means.
    value: String,
    set: bool,
    origin: String,
    help: String,
}

/// A live VM that breaks a policy in force.
struct ViolationRow {
    id: String,
    name: String,
    user: String,
    project: String,
    state: String,
    /// Which policy and how (`policy.instance.types: t2.xlarge is not allowed`).
    reason: String,
}

struct InstanceGovernance {
    name: String,
    policies: Vec<PolicyRow>,
    /// The `lease.*` parameters, as the policies.
    lease_terms: Vec<PolicyRow>,
    /// Whether any policy is set (not all defaults).
    any_set: bool,
    violations: Vec<ViolationRow>,
    /// Why the violations could not be listed, if they could not.
    violations_error: Option<String>,
}

/// A live VM whose lease ends soon.
struct DueRow {
    id: String,
    name: String,
    user: String,
    project: String,
    instance: String,
    state: String,
    /// Always set (a VM without a lease is never due).
    lease: Option<LeaseCell>,
}

/// The lease worker's status in this process.
struct WorkerRow {
    state: String,
    runs: u64,
    last_success: String,
    last_duration: String,
    summary: String,
    error: String,
    failures: u64,
}

/// One recent lease action of the audit log.
struct LeaseActionRow {
    at: String,
    action: String,
    actor: String,
    target: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_governance.html")]
struct GovernancePage {
    c: Chrome,
    instances: Vec<InstanceGovernance>,
    due_hours: i64,
    due: Vec<DueRow>,
    /// Why the leases due could not be listed, if they could not.
    due_error: Option<String>,
    /// `None`: the worker has not reported in this process.
    worker: Option<WorkerRow>,
    actions: Vec<LeaseActionRow>,
    actions_error: Option<String>,
}

/// The `policy.*` parameters of an instance, with their origins.
fn policies(i: &InstanceEntry) -> Vec<PolicyRow> {
    params(i, "policy.")
}

/// The parameters of an instance whose names start with `prefix`, with their origins.
fn params(i: &InstanceEntry, prefix: &str) -> Vec<PolicyRow> {
    i.params
        .iter()
        .filter(|p| p.spec.name.starts_with(prefix))
        .map(|p| {
            let set = !matches!(p.origin, Origin::Default) && p.value.as_deref().is_some_and(|v| !v.is_empty());
            let value = match (&p.value, p.spec.default) {
                (Some(v), _) if !v.is_empty() => v.clone(),
                (_, Some(d)) => format!("{d} (default)"),
                _ if p.spec.name == "lease.default" => "unset: no lease unless asked".to_string(),
                _ => "unset: no limit".to_string(),
            };
            PolicyRow {
                name: p.spec.name.to_string(),
                field: format!("p.{}", p.key),
                value,
                set,
                origin: origin_text(&p.origin),
                help: p.spec.description.to_string(),
            }
        })
        .collect()
}

async fn show(ui: Ctx) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let mut instances = Vec::new();
    for i in broker.system.connectors(actor).iter() {
        let policies = policies(i);
        let (violations, violations_error) = violations(&ui, i).await;
        instances.push(InstanceGovernance {
            name: i.name.to_string(),
            any_set: policies.iter().any(|p| p.set),
            policies,
            lease_terms: params(i, "lease."),
            violations,
            violations_error,
        });
    }
    let (due, due_error) = due(&ui).await;
    let (actions, actions_error) = lease_actions(&ui).await;
    let worker = broker.readiness().await.workers.into_iter().find(|w| w.name == "lease").map(|w| WorkerRow {
        state: format!("{:?}", w.state).to_lowercase(),
        runs: w.runs,
        last_success: w.last_success_at.as_ref().map_or_else(|| "never".to_string(), when),
        last_duration: w.last_duration_ms.map_or_else(String::new, |ms| format!("{ms} ms")),
        summary: w.last_summary.unwrap_or_default(),
        error: w.last_error.unwrap_or_default(),
        failures: w.consecutive_failures,
    });
    Ok(page(&GovernancePage {
        c: ui.chrome("admin/governance", "Governance"),
        instances,
        due_hours: DUE_WITHIN_HOURS,
        due,
        due_error,
        worker,
        actions,
        actions_error,
    }))
}

/// The live VMs of every project whose lease ends within
/// [`DUE_WITHIN_HOURS`] (overdue first), or why they could not be listed.
async fn due(ui: &Ctx) -> (Vec<DueRow>, Option<String>) {
    let now = ui.broker.clock.now();
    match ui.broker.provisioning.leases_due(ui.actor(), chrono::Duration::hours(DUE_WITHIN_HOURS)).await {
        Ok(vms) => (
            vms.into_iter()
                .filter_map(|vm| {
                    let lease = Some(LeaseCell::of(vm.lease.as_ref()?, now));
                    Some(DueRow {
                        id: vm.id.to_string(),
                        name: vm.name,
                        user: vm.user.to_string(),
                        project: vm.project.to_string(),
                        instance: vm.instance.to_string(),
                        state: vm.status.as_str().to_string(),
                        lease,
                    })
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(format!("The leases due could not be listed: {}", friendly(&e)))),
    }
}

/// The most recent lease actions of the audit log (warnings, expiries,
/// extensions), newest first, or why they could not be read.
async fn lease_actions(ui: &Ctx) -> (Vec<LeaseActionRow>, Option<String>) {
    let mut all = Vec::new();
    for action in [AuditAction::VmLeaseExpire, AuditAction::VmLeaseWarn, AuditAction::VmLeaseSet] {
        let q = AuditQuery { action: Some(action.as_str().to_string()), ..AuditQuery::default() };
        let page = PageRequest { limit: RECENT_ACTIONS as u32, after: None };
        match ui.broker.audit.list(ui.actor(), q, page).await {
            Ok(p) => all.extend(p.items),
            Err(e) => return (Vec::new(), Some(format!("The lease actions could not be read: {}", friendly(&e)))),
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(RECENT_ACTIONS);
    let rows = all
        .into_iter()
        .map(|e| LeaseActionRow {
            at: when(&e.at),
            action: e.action,
            actor: e.actor,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
        })
        .collect();
    (rows, None)
}

/// The live VMs on `i` that break its policies now (listed, not stopped),
/// or why they could not be listed.
async fn violations(ui: &Ctx, i: &InstanceEntry) -> (Vec<ViolationRow>, Option<String>) {
    match ui.broker.provisioning.policy_violations(ui.actor(), &i.name).await {
        Ok(found) => (
            found
                .into_iter()
                .map(|(vm, reason)| ViolationRow {
                    id: vm.id.to_string(),
                    name: vm.name,
                    user: vm.user.to_string(),
                    project: vm.project.to_string(),
                    state: vm.status.as_str().to_string(),
                    reason,
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(format!("The VMs that break these policies could not be listed: {}", friendly(&e)))),
    }
}
