//! Governance (admin): per connector instance the launch policies in force
//! (`policy.*`, each value with its origin, as the System page shows them,
//! with a link to the instance's section there to change them) and the live
//! VMs that break them now. A new or tightened policy applies to launches
//! from then on: the VMs that break it are listed here, never stopped.

use super::context::Ctx;
use super::errors::UiResult;
use super::form::friendly;
use super::page;
use super::system::origin_text;
use super::Chrome;
use actix_web::web;
use askama::Template;
use cloudbroker_core::registry::{InstanceEntry, Origin};

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
    /// Whether any policy is set (not all defaults).
    any_set: bool,
    violations: Vec<ViolationRow>,
    /// Why the violations could not be listed, if they could not.
    violations_error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_governance.html")]
struct GovernancePage {
    c: Chrome,
    instances: Vec<InstanceGovernance>,
}

/// The `policy.*` parameters of an instance, with their origins.
fn policies(i: &InstanceEntry) -> Vec<PolicyRow> {
    i.params
        .iter()
        .filter(|p| p.spec.name.starts_with("policy."))
        .map(|p| {
            let set = !matches!(p.origin, Origin::Default) && p.value.as_deref().is_some_and(|v| !v.is_empty());
            let value = match (&p.value, p.spec.default) {
                (Some(v), _) if !v.is_empty() => v.clone(),
                (_, Some(d)) => format!("{d} (default)"),
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
            violations,
            violations_error,
        });
    }
    Ok(page(&GovernancePage { c: ui.chrome("admin/governance", "Governance"), instances }))
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
