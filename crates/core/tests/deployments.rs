//! The deployment engine, on SQLite and on PostgreSQL, with the sandbox and
//! the clock set: all-or-none admission (a quota or a budget too small for
//! the whole deployment records nothing and names the node), held VMs
//! released once their dependencies are ready, a failing node with
//! on_failure terminate or keep, a node's timeout and the deadline, abort,
//! scale up and down (removed VMs' outputs withdrawn), terminate, two
//! operations at once (409), two brokers on one database driving each
//! deployment once, and a broker "crash" resumed by another without orphan
//! or duplicate.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::deployments::{AppName, DeployRequest, Deployment, DeploymentId, DeploymentState, OnFailure, Placement};
use cloudbroker_core::domain::{ProjectName, ProjectRole, VmAction, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::testing::{image, instance, user};
use cloudbroker_core::{Actor, Broker, Config, ServiceError};
use cloudbroker_store::budgets::BudgetScope;
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use cloudbroker_store::vms::VmFilter;
use std::collections::BTreeMap;
use std::path::Path;

/// The application: `db` (ready when running) and two `web` that wait for it.
const APP: &str = r#"
description: A database and two web servers
nodes:
  db:
    image: linux
    ready_when: running
    outputs:
      - {name: port}
  web:
    image: linux
    multiplicity: 2
    depends_on: [db]
    timeout: 5m
    inputs:
      - {name: db_host}
mappings:
  web.db_host: db.hostname
"#;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// `sb` and `sb2` boot at once; `sbf` refuses every launch (`failure.rate`).
fn write_files(dir: &Path) {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(conn.join("prices")).unwrap();
    std::fs::write(
        conn.join("sb.conf"),
        "cloud.connector.class = sb:sandbox, sb2:sandbox, sbf:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\nsbf.boot.delay.ms = 0\nsbf.failure.rate = 1\n",
    )
    .unwrap();
    std::fs::write(conn.join("prices").join("sb.conf"), "sb.price.instance.t2.small = 3.6\n").unwrap();
}

async fn start_at(dir: &Path, db: Option<String>) -> Broker {
    start_with_grace(dir, db, 600).await
}

/// As [`start_at`], a launch not seen in the cloud failed after `grace_secs`.
async fn start_with_grace(dir: &Path, db: Option<String>, grace_secs: u64) -> Broker {
    let mut config = Config::for_tests(dir, db);
    config.launch_grace_secs = grace_secs;
    config.admin_password = Some(SecretString::new("super-password-1"));
    let b = Broker::start(config, common::connectors()).await.unwrap();
    b.clock.set(t0());
    b
}

/// A broker on a fresh database (`None`: SQLite in `dir`), set up: the
/// `linux` image, user `alice`, the application `app`.
async fn start(dir: &Path, db: Option<String>) -> Broker {
    write_files(dir);
    let b = start_at(dir, db).await;
    let mut mappings = BTreeMap::new();
    for i in ["sb", "sb2", "sbf"] {
        mappings.insert(
            instance(i),
            ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
        );
    }
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&Actor::system(), spec, true).await.unwrap();
    b.identity.create_user(&Actor::system(), &user("alice"), &SecretString::new("alice-password"), false).await.unwrap();
    b.applications.save(&alice(), &AppName::parse("app").unwrap(), APP).await.unwrap();
    b
}

fn alice() -> Actor {
    Actor::new(user("alice"), false)
}

fn request(db: &str, web: &str, on_failure: OnFailure) -> DeployRequest {
    let mut placement = BTreeMap::new();
    placement.insert("db".to_string(), Placement { instance: instance(db), multiplicity: None, instance_type: None });
    placement.insert("web".to_string(), Placement { instance: instance(web), multiplicity: None, instance_type: None });
    DeployRequest {
        application: AppName::parse("app").unwrap(),
        version: None,
        name: None,
        inputs: BTreeMap::new(),
        placement,
        on_failure,
        timeout: None,
    }
}

/// Driver passes with the transition watch between them, until the
/// deployment stops changing (at most `n` rounds).
async fn settle(b: &Broker, id: &DeploymentId, n: usize) -> Deployment {
    let mut last = None;
    for _ in 0..n {
        b.deployments.drive_pass().await.unwrap();
        b.provisioning.watch_transitional("test").await.unwrap();
        let now = b.deployments.get(&alice(), id).await.unwrap();
        if last.as_ref() == Some(&now) {
            return now;
        }
        last = Some(now);
    }
    last.unwrap()
}

/// Marks every current `web` member ready (what a VM's `ready` call does).
async fn web_ready(b: &Broker, d: &Deployment) {
    for n in d.nodes.iter().filter(|n| n.name == "web") {
        for m in &n.members {
            assert!(b.store().mark_member_ready(d.id.as_str(), "web", m.idx, m.attempt).await.unwrap());
        }
    }
}

/// The VM records of the deployment (every attempt).
async fn vms_of(b: &Broker, id: &DeploymentId) -> Vec<cloudbroker_store::vms::VmRow> {
    let all = b.store().list_vms(&VmFilter::default()).await.unwrap();
    all.into_iter().filter(|v| v.tags.get("cloudbroker:deployment") == Some(id.as_str())).collect()
}

fn live(vms: &[cloudbroker_store::vms::VmRow]) -> usize {
    vms.iter().filter(|v| v.state.is_live()).count()
}

/// Runs a scenario on SQLite and, when configured, on PostgreSQL.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let b = start(dir.path(), None).await;
                ($body)(b, dir.path().to_path_buf(), None::<String>).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Ok(base) = std::env::var(POSTGRES_ENV) else {
                    eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
                    return;
                };
                let url = TestDb::create_postgres_database(&base).await.unwrap();
                let dir = tempfile::tempdir().unwrap();
                let b = start(dir.path(), Some(url.clone())).await;
                ($body)(b, dir.path().to_path_buf(), Some(url)).await;
            }
        }
    };
}

both!(a_quota_that_fits_two_of_three_records_nothing, |b: Broker, _dir, _db| async move {
    b.system.set(&Actor::system(), &[("quota.enable".into(), Some("true".into()))]).await.unwrap();
    b.provisioning.set_quota(&Actor::system(), &user("alice"), &instance("sb"), Some(2)).await.unwrap();
    let e = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap_err();
    match &e {
        ServiceError::InNode { node, instance, error } => {
            assert_eq!((node.as_str(), instance.as_str()), ("web", "sb"));
            assert!(matches!(**error, ServiceError::QuotaExceeded { quota: 2, current: 2, requested: 1, .. }), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("node 'web' on 'sb': "), "{e}");
    assert!(b.deployments.list(&alice()).await.unwrap().is_empty());
    assert!(b.store().list_vms(&VmFilter::default()).await.unwrap().is_empty(), "nothing recorded");
    // With room for all three, the same request is admitted: every VM held.
    b.provisioning.set_quota(&Actor::system(), &user("alice"), &instance("sb"), Some(3)).await.unwrap();
    let d = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    let vms = vms_of(&b, &d.id).await;
    assert_eq!(vms.len(), 3);
    assert!(vms.iter().all(|v| v.state == VmStatus::Held), "{vms:?}");
    assert_eq!(b.provisioning.usage(&user("alice"), &instance("sb")).await.unwrap(), 3, "held VMs count");
});

both!(a_budget_too_small_records_nothing, |b: Broker, _dir, _db| async move {
    // Two first periods of 0.06 fit; three do not.
    b.costs.set_budget(&Actor::system(), BudgetScope::User, "alice", &instance("sb"), Some(Micros(120_000))).await.unwrap();
    let e = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap_err();
    match &e {
        ServiceError::InNode { node, error, .. } => {
            assert_eq!(node, "web");
            assert!(matches!(**error, ServiceError::BudgetExceeded(_)), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(b.deployments.list(&alice()).await.unwrap().is_empty());
    assert!(b.store().list_vms(&VmFilter::default()).await.unwrap().is_empty(), "nothing recorded");
});

both!(held_vms_are_released_once_their_dependency_is_ready, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sb2", OnFailure::Terminate)).await.unwrap();
    assert_eq!(d.state, DeploymentState::Provisioning);
    assert_eq!(d.nodes.iter().map(|n| (n.name.as_str(), n.multiplicity)).collect::<Vec<_>>(), vec![("db", 1), ("web", 2)]);
    // One pass: db launched, the web VMs still held (db is not ready yet).
    b.deployments.drive_pass().await.unwrap();
    let vms = vms_of(&b, &d.id).await;
    let web_held = vms.iter().filter(|v| v.instance == instance("sb2") && v.state == VmStatus::Held).count();
    assert_eq!(web_held, 2, "{vms:?}");
    assert!(vms.iter().any(|v| v.instance == instance("sb") && v.cloud_id.is_some()));
    // db runs (ready_when: running): web released and launched.
    let now = settle(&b, &d.id, 10).await;
    assert_eq!(now.state, DeploymentState::Executing, "{now:#?}");
    let web = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert!(web.members.iter().all(|m| m.state == "running"), "{web:?}");
    assert_eq!(now.nodes[0].state, "ready");
    // The broker published db's hostname and instance id.
    let params = b.deployments.params(&alice(), &d.id).await.unwrap();
    assert!(params.iter().any(|p| p.name == "db.1.hostname" && p.value.is_some() && p.set_by == "broker"), "{params:?}");
    assert!(params.iter().any(|p| p.name == "db.1.instanceid"));
    // Both web VMs say ready: the deployment is ready.
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    let vms = vms_of(&b, &d.id).await;
    assert_eq!(vms.len(), 3, "one VM per slot");
    let events = b.deployments.events(&alice(), &d.id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"created"));
    assert!(kinds.contains(&"executing") && kinds.contains(&"ready"), "{kinds:?}");
});

both!(a_failing_node_with_terminate_leaves_nothing_running_and_keep_leaves_it, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sbf", OnFailure::Terminate)).await.unwrap();
    let now = settle(&b, &d.id, 12).await;
    assert_eq!(now.state, DeploymentState::Failed, "{now:#?}");
    assert!(now.message.as_deref().unwrap_or("").contains("node 'web'"), "{:?}", now.message);
    assert_eq!(live(&vms_of(&b, &d.id).await), 0, "nothing left running");
    assert_eq!(now.op, None, "clean-up done");

    let k = b.deployments.deploy(&alice(), request("sb", "sbf", OnFailure::Keep)).await.unwrap();
    let now = settle(&b, &k.id, 12).await;
    assert_eq!(now.state, DeploymentState::Failed, "{now:#?}");
    let vms = vms_of(&b, &k.id).await;
    assert!(vms.iter().any(|v| v.instance == instance("sb") && v.state == VmStatus::Running), "db kept: {vms:?}");
});

both!(a_node_timeout_and_the_deadline_fail_it, |b: Broker, _dir, _db| async move {
    // web never says ready: its 5m timeout fails the deployment.
    let d = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Keep)).await.unwrap();
    let now = settle(&b, &d.id, 10).await;
    assert_eq!(now.state, DeploymentState::Executing);
    b.clock.set(t0() + chrono::Duration::minutes(6));
    let now = settle(&b, &d.id, 3).await;
    assert_eq!(now.state, DeploymentState::Failed);
    assert_eq!(now.message.as_deref(), Some("node 'web': VM 1 was not ready within its timeout (5m)"));

    // The deployment's own timeout, before anything is ready.
    let mut r = request("sb", "sb", OnFailure::Keep);
    r.timeout = Some(std::time::Duration::from_secs(60));
    let d = b.deployments.deploy(&alice(), r).await.unwrap();
    b.clock.set(t0() + chrono::Duration::minutes(8));
    let now = settle(&b, &d.id, 3).await;
    assert_eq!(now.state, DeploymentState::Failed);
    assert!(now.message.as_deref().unwrap().starts_with("the deployment's timeout passed (1m)"), "{:?}", now.message);
});

both!(abort_stops_it_with_the_message, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    settle(&b, &d.id, 3).await;
    b.deployments.abort(&alice(), &d.id, "wrong version").await.unwrap();
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Failed);
    assert_eq!(now.message.as_deref(), Some("aborted by alice: wrong version"));
    assert_eq!(live(&vms_of(&b, &d.id).await), 0);
    assert!(matches!(b.deployments.abort(&alice(), &d.id, "again").await, Err(ServiceError::Conflict(_))));
});

both!(scale_up_and_down_then_terminate, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    let now = settle(&b, &d.id, 10).await;
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready);

    let plan = b.deployments.plan_scale(&alice(), &d.id, "web", 3).await.unwrap();
    assert_eq!((plan.from, plan.to, plan.launch.clone(), plan.terminate.len()), (2, 3, vec![3], 0));
    b.deployments.scale(&alice(), &d.id, "web", 3).await.unwrap();
    let now = settle(&b, &d.id, 10).await;
    let web = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert_eq!(web.multiplicity, 3);
    assert_eq!(web.members.iter().find(|m| m.idx == 3).unwrap().state, "running");
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    let params = b.deployments.params(&alice(), &d.id).await.unwrap();
    assert!(params.iter().any(|p| p.name == "web.3.hostname"));

    // Down to 1: VMs 3 and 2 go, and their outputs with them.
    let plan = b.deployments.plan_scale(&alice(), &d.id, "web", 1).await.unwrap();
    assert_eq!(plan.terminate.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![3, 2]);
    b.deployments.scale(&alice(), &d.id, "web", 1).await.unwrap();
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.nodes.iter().find(|n| n.name == "web").unwrap().multiplicity, 1);
    let params = b.deployments.params(&alice(), &d.id).await.unwrap();
    assert!(!params.iter().any(|p| p.name.starts_with("web.2.") || p.name.starts_with("web.3.")), "{params:?}");
    assert!(params.iter().any(|p| p.name == "web.1.hostname"));
    for (_, vm) in &plan.terminate {
        let v = b.store().get_vm(vm).await.unwrap().unwrap();
        assert!(!v.state.counts_for_quota(), "{:?}", v.state);
    }

    // Terminate: every VM ends; twice is once.
    let t = b.deployments.terminate(&alice(), &d.id).await.unwrap();
    assert_eq!(t.state, DeploymentState::Terminating);
    let now = settle(&b, &d.id, 8).await;
    assert_eq!(now.state, DeploymentState::Terminated, "{now:#?}");
    assert_eq!(live(&vms_of(&b, &d.id).await), 0);
    assert_eq!(b.deployments.terminate(&alice(), &d.id).await.unwrap().state, DeploymentState::Terminated);
});

both!(two_operations_never_interleave, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    settle(&b, &d.id, 10).await;
    // A scale in progress (taken as the API's conditional update takes it).
    assert!(b.store().begin_deployment_op(&d.id, "scale", &["provisioning", "executing", "ready"]).await.unwrap());
    match b.deployments.terminate(&alice(), &d.id).await {
        Err(ServiceError::Conflict(m)) => assert!(m.contains("(scale)"), "{m}"),
        other => panic!("{other:?}"),
    }
    match b.deployments.scale(&alice(), &d.id, "web", 3).await {
        Err(ServiceError::Conflict(m)) => assert!(m.contains("(scale)"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(b.store().finish_deployment_op(&d.id, "scale").await.unwrap());
    b.deployments.terminate(&alice(), &d.id).await.unwrap();
    assert!(matches!(b.deployments.scale(&alice(), &d.id, "web", 3).await, Err(ServiceError::Conflict(_))));
    // A viewer or another project's user sees nothing / changes nothing.
    b.identity.create_user(&Actor::system(), &user("bob"), &SecretString::new("bob-password"), false).await.unwrap();
    let bob = Actor::new(user("bob"), false);
    assert!(matches!(b.deployments.get(&bob, &d.id).await, Err(ServiceError::NotFound(_))));
    assert!(b.deployments.list(&bob).await.unwrap().is_empty());
});

both!(two_brokers_on_one_database_drive_each_deployment_once, |a: Broker, dir: std::path::PathBuf, db: Option<String>| async move {
    let url = db.unwrap_or_else(|| a.config.database_url.clone());
    let other = tempfile::tempdir().unwrap();
    write_files(other.path());
    let b = start_at(other.path(), Some(url)).await;
    let _ = dir;
    let d = a.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    for _ in 0..10 {
        let (ra, rb) = tokio::join!(a.deployments.drive_pass(), b.deployments.drive_pass());
        ra.unwrap();
        rb.unwrap();
        a.provisioning.watch_transitional("test").await.unwrap();
    }
    let now = a.deployments.get(&alice(), &d.id).await.unwrap();
    assert_eq!(now.state, DeploymentState::Executing, "{now:#?}");
    let vms = vms_of(&a, &d.id).await;
    assert_eq!(vms.len(), 3, "no duplicate: {vms:?}");
    let mut clouds: Vec<_> = vms.iter().filter_map(|v| v.cloud_id.clone()).collect();
    clouds.sort();
    clouds.dedup();
    assert_eq!(clouds.len(), 3, "each VM launched once: {vms:?}");
    // No orphan: a full reconcile adopts nothing.
    let r = a.provisioning.reconcile("test").await.unwrap();
    assert_eq!(r.adopted, 0, "{r:?}");
    b.close().await;
});

both!(a_crashed_broker_is_resumed_by_another, |a: Broker, _dir, db: Option<String>| async move {
    let url = db.unwrap_or_else(|| a.config.database_url.clone());
    let d = a.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    // Broker A launches db, then "dies" mid-step: it holds the claim, and
    // it released web 1 (requested) but never made its cloud call.
    settle(&a, &d.id, 10).await;
    let vms = vms_of(&a, &d.id).await;
    let web1 = vms.iter().find(|v| v.name.ends_with("-web-1")).unwrap().clone();
    assert_eq!(web1.state, VmStatus::Running, "{web1:?}");
    // Roll back to the crash point: a fresh deployment whose web VM was released, no cloud call.
    let d2 = a.deployments.deploy(&alice(), request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    a.deployments.drive_pass().await.unwrap();
    a.provisioning.watch_transitional("test").await.unwrap();
    let held: Vec<_> = vms_of(&a, &d2.id).await.into_iter().filter(|v| v.state == VmStatus::Held).collect();
    assert_eq!(held.len(), 2);
    assert!(a.store().release_held_vm(&held[0].id).await.unwrap());
    let until = a.clock.now_ms() + 60_000;
    assert_eq!(a.store().claim_deployments("dead-replica", until, 10).await.unwrap().len(), 2);
    a.close().await;
    drop(a);

    let other = tempfile::tempdir().unwrap();
    write_files(other.path());
    let b = start_with_grace(other.path(), Some(url), 0).await;
    // The dead replica's claims hold until they expire.
    b.deployments.drive_pass().await.unwrap();
    assert_eq!(b.deployments.get(&alice(), &d2.id).await.unwrap().state, DeploymentState::Provisioning);
    b.clock.set(t0() + chrono::Duration::seconds(61));
    // The reconciler fails the interrupted launch after its grace; the driver replaces it.
    b.provisioning.reconcile("test").await.unwrap();
    let now = settle(&b, &d2.id, 12).await;
    web_ready(&b, &now).await;
    let now = settle(&b, &d2.id, 12).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    let web = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert!(web.members.iter().all(|m| m.vm_id.as_ref() != Some(&held[0].id)), "the interrupted VM was replaced: {web:?}");
    let vms = vms_of(&b, &d2.id).await;
    // Exactly one live VM per slot: 3 live, the interrupted one failed.
    assert_eq!(live(&vms), 3, "{vms:?}");
    assert!(vms.iter().any(|v| v.id == held[0].id && v.state == VmStatus::Failed), "{vms:?}");
    let r = b.provisioning.reconcile("test").await.unwrap();
    assert_eq!(r.adopted, 0, "no orphan: {r:?}");
    // The first deployment was resumed too.
    let first = settle(&b, &d.id, 5).await;
    assert_eq!(first.state, DeploymentState::Executing);
});

both!(a_scale_up_of_a_ready_deployment_is_provisioning_until_its_new_vms_launch, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sb2", OnFailure::Terminate)).await.unwrap();
    let now = settle(&b, &d.id, 10).await;
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready);

    // Scaled as the UI does it, then looked at before any driver pass (as
    // its page is: a page showing a deployment `ready` with no operation
    // in progress no longer refreshes itself).
    let plan = b.deployments.scale(&alice(), &d.id, "web", 4).await.unwrap();
    assert_eq!(plan.launch, vec![3, 4]);
    let now = b.deployments.get(&alice(), &d.id).await.unwrap();
    let web = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert_eq!(web.members.iter().filter(|m| m.state == "held").count(), 2, "{web:?}");
    assert_eq!(now.op, None);
    assert_eq!(now.state, DeploymentState::Provisioning, "VMs wait for their launch: {now:#?}");
    let kinds: Vec<String> = b.deployments.events(&alice(), &d.id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().rev().take(2).map(String::as_str).collect::<Vec<_>>(), vec!["provisioning", "scale"], "{kinds:?}");

    // The driver launches them; ready again once they are.
    let now = settle(&b, &d.id, 10).await;
    let web = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert_eq!(web.multiplicity, 4);
    assert!(web.members.iter().all(|m| m.state == "running" || m.state == "ready"), "{web:?}");
    assert_eq!(now.state, DeploymentState::Executing, "{now:#?}");
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    assert_eq!(live(&vms_of(&b, &d.id).await), 5);
    // The deployment and its scale are audited, by alice, in her project.
    let log = b.audit.list(&cloudbroker_core::Actor::system(), Default::default(), Default::default()).await.unwrap();
    let mine: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.action == "deployment.change" && e.target == d.id.as_str())
        .map(|e| (e.actor.clone(), e.detail.clone()))
        .collect();
    assert!(mine.iter().any(|(a, t)| a == "alice" && t.starts_with("deployed ")), "{mine:?}");
    assert!(mine.iter().any(|(a, t)| a == "alice" && t == "scale of web from 2 to 4"), "{mine:?}");
});

/// Consumes any wake-up the driver has pending (deploy and launches leave one).
async fn drain_kick(b: &Broker) {
    while tokio::time::timeout(std::time::Duration::from_millis(20), b.deployments.kick.notified()).await.is_ok() {}
}

both!(settled_deployments_are_not_driven_until_a_vm_of_theirs_changes, |b: Broker, _dir, _db| async move {
    let plan = b.store().explain_claim_deployments().await.unwrap();
    assert!(plan.contains("deployments_driven"), "the pass's query reads the partial index: {plan}");
    let d = b.deployments.deploy(&alice(), request("sb", "sb2", OnFailure::Terminate)).await.unwrap();
    // The transition watch recording db running wakes the driver at once.
    b.deployments.drive_pass().await.unwrap();
    drain_kick(&b).await;
    b.provisioning.watch_transitional("test").await.unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), b.deployments.kick.notified()).await.is_ok(),
        "the watch saw a deployment's VM run and did not wake the driver"
    );
    let now = settle(&b, &d.id, 10).await;
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready);
    // Ready and untouched: a pass reads nothing.
    let r = b.deployments.drive_pass().await.unwrap();
    assert_eq!(r.driven, 0, "{r:?}");
    // A VM of it changes (whoever changes it): the next pass visits it once.
    let web1 = now.nodes[1].members[0].vm_id.clone().unwrap();
    b.provisioning.action(&alice(), &web1, VmAction::Stop).await.unwrap();
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 1);
    b.provisioning.watch_transitional("test").await.unwrap();
    b.deployments.drive_pass().await.unwrap();
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 0, "settled again");
    // An abort asked of a ready deployment is acted on.
    b.deployments.abort(&alice(), &d.id, "done with it").await.unwrap();
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Failed);
    assert_eq!(live(&vms_of(&b, &d.id).await), 0);
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 0, "failed and cleaned up: settled");
});

both!(a_vm_stopped_or_terminated_by_its_owner_degrades_its_node_without_failing_it, |b: Broker, _dir, _db| async move {
    let d = b.deployments.deploy(&alice(), request("sb", "sb2", OnFailure::Terminate)).await.unwrap();
    let now = settle(&b, &d.id, 10).await;
    web_ready(&b, &now).await;
    let now = settle(&b, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready);
    let web = now.nodes.iter().find(|n| n.name == "web").unwrap().clone();
    let (web1, web2) = (web.members[0].vm_id.clone().unwrap(), web.members[1].vm_id.clone().unwrap());

    b.provisioning.action(&alice(), &web1, VmAction::Stop).await.unwrap();
    let now = settle(&b, &d.id, 6).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    let node = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert_eq!(node.state, "degraded", "{node:?}");
    assert_eq!(node.members[0].state, "stopped");
    let events: Vec<String> = b.deployments.events(&alice(), &d.id).await.unwrap().into_iter().map(|e| e.message).collect();
    assert!(events.iter().any(|e| e.starts_with("web#1 stopped by alice")), "{events:?}");

    // Started again: ready again (the node still degraded while web#2 is gone).
    b.provisioning.action(&alice(), &web2, VmAction::Terminate).await.unwrap();
    b.provisioning.action(&alice(), &web1, VmAction::Start).await.unwrap();
    let now = settle(&b, &d.id, 6).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    let node = now.nodes.iter().find(|n| n.name == "web").unwrap();
    assert_eq!((node.members[0].state.as_str(), node.members[1].state.as_str()), ("ready", "ended"), "{node:?}");
    assert_eq!(node.state, "degraded");
    let events: Vec<String> = b.deployments.events(&alice(), &d.id).await.unwrap().into_iter().map(|e| e.message).collect();
    assert!(events.iter().any(|e| e.starts_with("web#2 terminated by alice")), "{events:?}");
    assert!(events.iter().any(|e| e == "web#1 is running again"), "{events:?}");

    // Terminating the deployment ends what is left.
    b.deployments.terminate(&alice(), &d.id).await.unwrap();
    let now = settle(&b, &d.id, 8).await;
    assert_eq!(now.state, DeploymentState::Terminated, "{now:#?}");
    assert_eq!(live(&vms_of(&b, &d.id).await), 0);
});

both!(preview_counts_the_nodes_that_share_an_instance_together, |b: Broker, _dir, _db| async move {
    b.system.set(&Actor::system(), &[("quota.enable".into(), Some("true".into()))]).await.unwrap();
    // db (1) fits alone and web (2) fits alone, both (3) do not.
    b.provisioning.set_quota(&Actor::system(), &user("alice"), &instance("sb"), Some(2)).await.unwrap();
    let audit_before = b.audit.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items.len();
    let e = b.deployments.preview(&alice(), &request("sb", "sb", OnFailure::Terminate)).await.unwrap_err();
    assert!(e.to_string().starts_with("node 'db' and 'web' on 'sb': "), "{e}");
    match &e {
        ServiceError::InNode { error, .. } => {
            assert!(matches!(**error, ServiceError::QuotaExceeded { quota: 2, current: 2, .. }), "{error:?}")
        }
        other => panic!("{other:?}"),
    }
    // A dry run: nothing recorded, no refusal audited.
    assert!(b.store().list_vms(&VmFilter::default()).await.unwrap().is_empty());
    assert!(b.deployments.list(&alice()).await.unwrap().is_empty());
    let audit_after = b.audit.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items.len();
    assert_eq!(audit_before, audit_after);
    // On two instances each fits; with room for three, one instance too.
    let ok = b.deployments.preview(&alice(), &request("sb", "sb2", OnFailure::Terminate)).await.unwrap();
    assert_eq!(ok, vec![("db".to_string(), "sb".to_string(), 1), ("web".to_string(), "sb2".to_string(), 2)]);
    b.provisioning.set_quota(&Actor::system(), &user("alice"), &instance("sb"), Some(3)).await.unwrap();
    b.deployments.preview(&alice(), &request("sb", "sb", OnFailure::Terminate)).await.unwrap();
    assert!(b.store().list_vms(&VmFilter::default()).await.unwrap().is_empty());
});

both!(a_step_longer_than_the_claim_ttl_keeps_its_claim, |b: Broker, _dir, db: Option<String>| async move {
    let url = db.unwrap_or_else(|| b.config.database_url.clone());
    // Two replicas with a claim of 1 s, and an instance whose every API call takes 1.5 s.
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path());
        std::fs::write(
            dir.path().join("connectors.d/slow.conf"),
            "cloud.connector.class = slow:sandbox\nslow.boot.delay.ms = 0\nslow.api.latency.ms = 1500\n",
        )
        .unwrap();
        let mut config = Config::for_tests(dir.path(), Some(url.clone()));
        config.deploy_claim_ttl_secs = 1;
        let r = Broker::start(config, common::connectors()).await.unwrap();
        r.clock.set(t0());
        replicas.push((r, dir));
    }
    let (a, _da) = replicas.remove(0);
    let (c, _dc) = replicas.remove(0);
    let mut mappings = BTreeMap::new();
    mappings.insert(instance("slow"), ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: None, security_group: None });
    let spec = ImageSpec { name: image("slowimg"), description: String::new(), os: "linux".into(), parent: None, mappings };
    a.images.put(&Actor::system(), spec, true).await.unwrap();
    let app = "nodes:\n  db:\n    image: slowimg\n    ready_when: running\n";
    a.applications.save(&alice(), &AppName::parse("slowapp").unwrap(), app).await.unwrap();
    let mut placement = BTreeMap::new();
    placement.insert("db".to_string(), Placement { instance: instance("slow"), multiplicity: None, instance_type: None });
    let req = DeployRequest {
        application: AppName::parse("slowapp").unwrap(),
        version: None,
        name: None,
        inputs: BTreeMap::new(),
        placement,
        on_failure: OnFailure::Keep,
        timeout: None,
    };
    let d = a.deployments.deploy(&alice(), req).await.unwrap();
    let (clock_a, clock_c) = (a.clock.clone(), c.clock.clone());
    let deployments = a.deployments.clone();
    let step = tokio::spawn(async move { deployments.drive_pass().await });
    // A is in its cloud step; the claim's TTL passes many times over meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    clock_a.set(t0() + chrono::Duration::seconds(30));
    clock_c.set(t0() + chrono::Duration::seconds(30));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!step.is_finished(), "the step was meant to outlast the claim's TTL");
    let r = c.deployments.drive_pass().await.unwrap();
    assert_eq!(r.driven, 0, "another replica took over a live driver: {r:?}");
    let r = step.await.unwrap().unwrap();
    assert_eq!((r.driven, r.released), (1, 1), "{r:?}");
    let vms = vms_of(&a, &d.id).await;
    assert_eq!(vms.len(), 1, "{vms:?}");
    assert!(vms[0].cloud_id.is_some(), "{vms:?}");
    // Step over: the claim is given back, and the other replica may drive it.
    assert_eq!(c.deployments.drive_pass().await.unwrap().driven, 1);
    a.close().await;
    c.close().await;
    drop(b);
});

/// As [`settle`], read as `who`.
async fn settle_as(b: &Broker, who: &Actor, id: &DeploymentId, n: usize) -> Deployment {
    let mut last = None;
    for _ in 0..n {
        b.deployments.drive_pass().await.unwrap();
        b.provisioning.watch_transitional("test").await.unwrap();
        let now = b.deployments.get(who, id).await.unwrap();
        if last.as_ref() == Some(&now) {
            return now;
        }
        last = Some(now);
    }
    last.unwrap()
}

/// A deployment of `app` by `who` (db on sb, web on sb2), driven until
/// ready (its web VMs said ready), as `reader` reads it.
async fn deployed_ready(b: &Broker, who: &Actor, reader: &Actor, on_failure: OnFailure) -> Deployment {
    let d = b.deployments.deploy(who, request("sb", "sb2", on_failure)).await.unwrap();
    let now = settle_as(b, reader, &d.id, 10).await;
    web_ready(b, &now).await;
    let now = settle_as(b, reader, &d.id, 5).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    now
}

/// The project `team`, owned by bob, alice a member: (team, alice in it, bob in it).
async fn team_of_bob_and_alice(b: &Broker) -> (ProjectName, Actor, Actor) {
    b.identity.create_user(&Actor::system(), &user("bob"), &SecretString::new("bob-password"), false).await.unwrap();
    let team = ProjectName::parse("team").unwrap();
    b.projects.create(&Actor::system(), &team, "", Some(&user("bob"))).await.unwrap();
    b.projects.set_member(&Actor::system(), &team, &user("alice"), ProjectRole::Member).await.unwrap();
    let alice_t = alice().in_project(team.clone(), ProjectRole::Member);
    let bob_t = Actor::new(user("bob"), false).in_project(team.clone(), ProjectRole::Owner);
    (team, alice_t, bob_t)
}

both!(a_ready_deployment_whose_user_leaves_its_project_fails, |b: Broker, _dir, _db| async move {
    let (team, alice_t, bob_t) = team_of_bob_and_alice(&b).await;
    let d = deployed_ready(&b, &alice_t, &bob_t, OnFailure::Keep).await;
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 0, "settled");
    // Another project's membership changes: nothing to look at.
    b.projects.create(&Actor::system(), &ProjectName::parse("other").unwrap(), "", Some(&user("alice"))).await.unwrap();
    b.projects.set_member(&Actor::system(), &ProjectName::parse("other").unwrap(), &user("bob"), ProjectRole::Member).await.unwrap();
    b.projects.remove_member(&Actor::system(), &ProjectName::parse("other").unwrap(), &user("bob")).await.unwrap();
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 0, "not woken by another project");
    // Alice leaves: the next pass fails her deployment (kept: on_failure keep).
    b.projects.remove_member(&alice_t, &team, &user("alice")).await.unwrap();
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 1, "woken by the membership change");
    let now = b.deployments.get(&bob_t, &d.id).await.unwrap();
    assert_eq!(now.state, DeploymentState::Failed, "{now:#?}");
    assert_eq!(now.message.as_deref(), Some("user 'alice' is no longer a member of project 'team'"), "{now:#?}");
    assert_eq!(live(&vms_of(&b, &d.id).await), 3, "on_failure keep: the VMs are left");
    assert_eq!(b.deployments.drive_pass().await.unwrap().driven, 0, "settled again");
});

both!(a_member_demoted_to_viewer_fails_its_ready_deployment, |b: Broker, _dir, _db| async move {
    let (team, alice_t, bob_t) = team_of_bob_and_alice(&b).await;
    let d = deployed_ready(&b, &alice_t, &bob_t, OnFailure::Terminate).await;
    b.projects.set_member(&bob_t, &team, &user("alice"), ProjectRole::Viewer).await.unwrap();
    let now = settle_as(&b, &bob_t, &d.id, 8).await;
    assert_eq!(now.state, DeploymentState::Failed, "{now:#?}");
    assert!(now.message.as_deref().is_some_and(|m| m.contains("is now a viewer of project 'team'")), "{now:#?}");
    assert_eq!(live(&vms_of(&b, &d.id).await), 0, "on_failure terminate: the VMs are ended");
});

both!(who_stopped_a_vm_is_found_when_the_clock_runs_ahead_of_the_system, |b: Broker, _dir, _db| async move {
    // The broker's clock a day ahead of the machine's: the audit record and
    // the member are both stamped by it, so the lookup finds the stop.
    b.clock.set(Utc::now() + chrono::Duration::days(1));
    let d = deployed_ready(&b, &alice(), &alice(), OnFailure::Terminate).await;
    let web = d.nodes.iter().find(|n| n.name == "web").unwrap().clone();
    b.provisioning.action(&alice(), web.members[0].vm_id.as_ref().unwrap(), VmAction::Stop).await.unwrap();
    let now = settle(&b, &d.id, 6).await;
    assert_eq!(now.state, DeploymentState::Ready, "{now:#?}");
    let events: Vec<String> = b.deployments.events(&alice(), &d.id).await.unwrap().into_iter().map(|e| e.message).collect();
    assert!(events.iter().any(|e| e.starts_with("web#1 stopped by alice")), "{events:?}");
    let log = b.audit.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items;
    let stop = log.iter().find(|e| e.action == "vm.stop").unwrap();
    assert!(stop.at > Utc::now() + chrono::Duration::hours(23), "stamped by the store's clock: {stop:?}");
    // Started again: audited as `vm.start`.
    b.provisioning.action(&alice(), web.members[0].vm_id.as_ref().unwrap(), VmAction::Start).await.unwrap();
    let log = b.audit.list(&Actor::system(), Default::default(), Default::default()).await.unwrap().items;
    let start = log.iter().find(|e| e.action == "vm.start").expect("vm.start audited");
    assert_eq!((start.target.as_str(), start.subject.as_str()), (web.members[0].vm_id.as_ref().unwrap().as_str(), "alice"), "{start:?}");
});
