//! VM leases (issue 26), on SQLite and PostgreSQL, with the broker's clock
//! set by hand: a lease ends at the second expected (nothing a second
//! before), its warning is recorded once at expiry - `lease.warn`, the
//! action is `lease.action`'s; a launch gets the lease it asks for, the
//! instance's default, or is refused over `lease.max`; an extension is
//! capped for members, not for admins, and one click; `lease.max.actions`
//! defers the rest of a pass and reports it; leases of VMs that ended are
//! closed without a cloud call; a VM whose cloud state cannot be read is
//! skipped and reported, never acted on; two passes racing on the same
//! VMs act on each once; a dead replica's claim is taken over after its
//! lifetime without acting twice; a lease missed while the broker was
//! down is acted on saying how late; adopted VMs get no lease.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, Utc};
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{Connector, Credentials, DescribeFilter, RunRequest, SecretString, VmState};
use cloudbroker_core::audit::{AuditEntry, AuditQuery};
use cloudbroker_core::domain::{LeaseAction, LeaseAsk, PageRequest, VmAction, VmId, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{CountRange, LaunchRequest, LeasePassReport, Vm, VmQuery, LEASE_CLAIM_TTL};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, ServiceError};
use cloudbroker_store::vms::VmUpdate;
use std::collections::BTreeMap;
use std::sync::Arc;

fn admin() -> Actor {
    Actor::system()
}

/// The time the tests start at (a whole second, after the machine's clock).
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-07T10:00:00Z").unwrap().with_timezone(&Utc)
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&admin(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

/// A broker at t0 with the public image `linux` on `sb` and `sb2`, the
/// instance parameters `params` set, and the member `ann`.
async fn setup(b: &Broker, params: &[(&str, &str)]) -> Actor {
    b.clock.set(t0());
    let mut mappings = BTreeMap::new();
    for on in ["sb", "sb2"] {
        mappings.insert(instance(on), ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: None, security_group: None });
    }
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin(), spec, true).await.unwrap();
    if !params.is_empty() {
        let set: Vec<(String, Option<String>)> = params.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
        b.system.set(&admin(), &set).await.unwrap();
    }
    add_user(b, "ann").await
}

/// `n` VMs on `on` launched by `who`, asking for `lease` (else the default).
async fn launch(b: &Broker, who: &Actor, on: &str, n: u32, lease: Option<&str>) -> Vec<Vm> {
    let mut r = LaunchRequest::new(instance(on), image_ref("linux"));
    r.count = CountRange::exactly(n);
    r.lease = lease.map(|l| LeaseAsk::parse(l).unwrap());
    b.provisioning.launch(who, r).await.unwrap().vms
}

async fn vm(b: &Broker, id: &VmId) -> Vm {
    b.provisioning.get(&admin(), id).await.unwrap()
}

async fn audit(b: &Broker, action: &str) -> Vec<AuditEntry> {
    let q = AuditQuery { action: Some(action.to_string()), ..AuditQuery::default() };
    b.audit.list(&admin(), q, PageRequest::first(500)).await.unwrap().items
}

/// A pass at `at` as replica `holder`.
async fn pass_at(b: &Broker, at: DateTime<Utc>, holder: &str) -> LeasePassReport {
    b.clock.set(at);
    b.provisioning.lease_pass(holder).await.unwrap()
}

fn sb(b: &Broker, on: &str) -> Arc<dyn Connector> {
    b.registry.snapshot().instance(on).unwrap().connector.clone().unwrap()
}

/// The sandbox account the anonymous credential of `name` acts in.
fn account(name: &str) -> Credentials {
    Credentials::new(format!("sandbox-{name}"), "sandbox")
}

async fn cloud_state(b: &Broker, on: &str, who: &str, cloud_id: &str) -> VmState {
    let found = sb(b, on).describe_instances(&account(who), &DescribeFilter::ids(&[cloud_id.to_string()])).await.unwrap();
    found[0].state
}

fn ended(s: VmStatus) -> bool {
    matches!(s, VmStatus::ShuttingDown | VmStatus::Terminated)
}

broker_test!(a_lease_ends_at_the_second_expected_after_one_warning, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h"), ("sb.lease.warn", "10m")]).await;
    let v = launch(&b, &ann, "sb", 1, None).await.remove(0);
    let lease = v.lease.clone().expect("the instance's default lease");
    assert_eq!(lease.expires_at, t0() + Duration::hours(1), "stored as an absolute time");
    assert_eq!(lease.action, LeaseAction::Terminate, "the default action");
    let end = lease.expires_at;

    // The warning: nothing a second before expiry - lease.warn, then once.
    let r = pass_at(&b, end - Duration::minutes(10) - Duration::seconds(1), "r1").await;
    assert_eq!(r, LeasePassReport::default());
    assert_eq!(r.summary(), "");
    let r = pass_at(&b, end - Duration::minutes(10), "r1").await;
    assert_eq!((r.warned, r.acted()), (1, 0));
    assert_eq!(r.summary(), "warned 1");
    let l = vm(&b, &v.id).await.lease.unwrap();
    assert_eq!(l.warned_at, Some(end - Duration::minutes(10)));
    let note = "lease ends at 2030-01-07T11:00:00Z (in 10m): the VM will be terminated";
    assert_eq!(l.note.as_deref(), Some(note));
    assert_eq!(pass_at(&b, end - Duration::minutes(5), "r2").await.warned, 0, "once, whichever replica");
    let warns = audit(&b, "vm.lease.warn").await;
    assert_eq!(warns.len(), 1);
    assert_eq!((warns[0].actor.as_str(), warns[0].target.as_str(), warns[0].project.as_str()), ("system", v.id.as_str(), "ann"));
    assert_eq!(warns[0].detail, note);

    // The expiry: nothing a second before, terminated at the second.
    let r = pass_at(&b, end - Duration::seconds(1), "r1").await;
    assert_eq!(r.acted(), 0);
    assert!(vm(&b, &v.id).await.status.is_live());
    let r = pass_at(&b, end, "r1").await;
    assert_eq!((r.terminated, r.stopped, r.skipped, r.late), (1, 0, 0, 0), "{r:?}");
    assert_eq!(r.summary(), "terminated 1");
    let after = vm(&b, &v.id).await;
    assert!(ended(after.status), "{:?}", after.status);
    let l = after.lease.unwrap();
    assert_eq!(l.ended_at, Some(end));
    assert_eq!(l.note.as_deref(), Some("terminated by its lease at 2030-01-07T11:00:00Z (due 2030-01-07T11:00:00Z)"));
    assert!(matches!(cloud_state(&b, "sb", "ann", v.cloud_id.as_deref().unwrap()).await, VmState::ShuttingDown | VmState::Terminated));
    let expiries = audit(&b, "vm.lease.expire").await;
    assert_eq!(expiries.len(), 1);
    assert_eq!((expiries[0].actor.as_str(), expiries[0].target.as_str(), expiries[0].project.as_str()), ("system", v.id.as_str(), "ann"));
    // Dealt with: later passes do nothing.
    assert_eq!(pass_at(&b, end + Duration::hours(5), "r2").await, LeasePassReport::default());
    assert_eq!(audit(&b, "vm.lease.expire").await.len(), 1);
});

broker_test!(the_lease_action_is_stop_or_terminate, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "2h"), ("sb.lease.action", "stop"), ("sb2.lease.default", "2h")]).await;
    let stopped = launch(&b, &ann, "sb", 1, None).await.remove(0);
    let terminated = launch(&b, &ann, "sb2", 1, None).await.remove(0);
    assert_eq!(stopped.lease.as_ref().unwrap().action, LeaseAction::Stop);
    assert_eq!(terminated.lease.as_ref().unwrap().action, LeaseAction::Terminate);
    let r = pass_at(&b, t0() + Duration::hours(2), "r1").await;
    assert_eq!((r.stopped, r.terminated), (1, 1), "{r:?}");
    assert_eq!(r.summary(), "stopped 1, terminated 1");
    let s = vm(&b, &stopped.id).await;
    assert!(matches!(s.status, VmStatus::Stopping | VmStatus::Stopped), "{:?}", s.status);
    assert!(s.lease.unwrap().note.unwrap().starts_with("stopped by its lease at 2030-01-07T12:00:00Z"));
    assert!(matches!(cloud_state(&b, "sb", "ann", stopped.cloud_id.as_deref().unwrap()).await, VmState::Stopping | VmState::Stopped));
    assert!(ended(vm(&b, &terminated.id).await.status));
    // A stopped VM whose lease ended is not stopped again; a new lease (an extension) starts over.
    assert_eq!(pass_at(&b, t0() + Duration::hours(3), "r1").await.acted(), 0);
});

broker_test!(a_launch_gets_the_lease_asked_or_the_default_within_the_max, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "8h"), ("sb.lease.max", "1d")]).await;
    let asked = launch(&b, &ann, "sb", 1, Some("2h")).await.remove(0);
    assert_eq!(asked.lease.unwrap().expires_at, t0() + Duration::hours(2));
    let until = launch(&b, &ann, "sb", 1, Some("2030-01-08T09:00:00Z")).await.remove(0);
    assert_eq!(until.lease.unwrap().expires_at, t0() + Duration::hours(23));
    let default = launch(&b, &ann, "sb", 1, None).await.remove(0);
    assert_eq!(default.lease.unwrap().expires_at, t0() + Duration::hours(8));
    // No lease terms on sb2: no lease.
    assert_eq!(launch(&b, &ann, "sb2", 1, None).await.remove(0).lease, None);
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.lease = Some(LeaseAsk::parse("1d12h").unwrap());
    match b.provisioning.launch(&ann, r).await.unwrap_err() {
        ServiceError::PolicyViolation { policy, field, message } => {
            assert_eq!((policy, field), ("lease.max", "lease"));
            assert_eq!(message, "a lease of 1d 12h is not allowed on 'sb': at most 1d from now (lease.max: 1d)");
        }
        e => panic!("not a policy refusal: {e:?}"),
    }
});

broker_test!(an_extension_is_capped_for_members_and_one_click, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "8h"), ("sb.lease.max", "1d")]).await;
    let v = launch(&b, &ann, "sb", 1, None).await.remove(0);
    b.clock.set(t0() + Duration::hours(7));
    match b.provisioning.set_lease(&ann, &v.id, Some(LeaseAsk::parse("2d").unwrap())).await.unwrap_err() {
        ServiceError::PolicyViolation { policy, field, .. } => assert_eq!((policy, field), ("lease.max", "lease")),
        e => panic!("not a policy refusal: {e:?}"),
    }
    let v2 = b.provisioning.set_lease(&ann, &v.id, Some(LeaseAsk::parse("20h").unwrap())).await.unwrap();
    assert_eq!(v2.lease.unwrap().expires_at, t0() + Duration::hours(27));
    // One click: the default lease from now.
    let v3 = b.provisioning.set_lease(&ann, &v.id, None).await.unwrap();
    assert_eq!(v3.lease.unwrap().expires_at, t0() + Duration::hours(15));
    // The lease did not end at its first expiry: the extension won.
    assert_eq!(pass_at(&b, t0() + Duration::hours(8), "r1").await.acted(), 0);
    assert!(vm(&b, &v.id).await.status.is_live());
    // Admins are not capped.
    let v4 = b.provisioning.set_lease(&admin(), &v.id, Some(LeaseAsk::parse("3d").unwrap())).await.unwrap();
    assert_eq!(v4.lease.unwrap().expires_at, t0() + Duration::hours(8) + Duration::days(3));
    assert_eq!(audit(&b, "vm.lease.set").await.len(), 3);
    assert_eq!(pass_at(&b, t0() + Duration::days(3) + Duration::hours(8), "r1").await.terminated, 1);
});

broker_test!(a_pass_acts_on_at_most_lease_max_actions_per_instance, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h"), ("sb.lease.max.actions", "2"), ("sb2.lease.default", "1h")]).await;
    let vms = launch(&b, &ann, "sb", 5, None).await;
    launch(&b, &ann, "sb2", 3, None).await;
    let end = t0() + Duration::hours(1);
    let r = pass_at(&b, end, "r1").await;
    assert_eq!((r.terminated, r.deferred), (5, 3), "2 on sb, 3 on sb2; 3 of sb wait: {r:?}");
    assert!(r.summary().ends_with("deferred 3 over lease.max.actions"), "{}", r.summary());
    let r = pass_at(&b, end + Duration::seconds(5), "r1").await;
    assert_eq!((r.terminated, r.deferred), (2, 1));
    let r = pass_at(&b, end + Duration::seconds(10), "r1").await;
    assert_eq!((r.terminated, r.deferred), (1, 0));
    // The earliest expiry first: all of sb's ended, in order.
    for v in &vms {
        assert!(ended(vm(&b, &v.id).await.status));
    }
    assert_eq!(audit(&b, "vm.lease.expire").await.len(), 8);
});

broker_test!(leases_of_vms_that_ended_are_closed_without_a_cloud_call, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h")]).await;
    let vms = launch(&b, &ann, "sb", 2, None).await;
    b.provisioning.action(&ann, &vms[0].id, VmAction::Terminate).await.unwrap();
    let r = pass_at(&b, t0() + Duration::hours(1), "r1").await;
    assert_eq!((r.ended_before, r.terminated), (1, 1), "{r:?}");
    let l = vm(&b, &vms[0].id).await.lease.unwrap();
    assert_eq!(l.ended_at, Some(t0() + Duration::hours(1)));
    assert!(l.note.unwrap().starts_with("ended before its lease ("));
    // One lease action audited: the other VM's.
    let expiries = audit(&b, "vm.lease.expire").await;
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0].target, vms[1].id.as_str());
});

broker_test!(a_vm_whose_cloud_state_cannot_be_read_is_skipped_and_reported, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h")]).await;
    let vms = launch(&b, &ann, "sb", 2, None).await;
    // The cloud lost the instance the record names.
    let lost = &vms[0];
    b.store().update_vm(&VmUpdate { cloud_id: Some("i-0000000000lost"), ..VmUpdate::state(&lost.id, VmStatus::Running) }).await.unwrap();
    let r = pass_at(&b, t0() + Duration::hours(1), "r1").await;
    assert_eq!((r.terminated, r.skipped), (1, 1), "{r:?}");
    assert!(r.has_failures());
    assert_eq!(r.skip_reasons, [format!("{}: the cloud does not report it", lost.id)]);
    assert_eq!(r.summary(), format!("terminated 1, skipped 1 ({}: the cloud does not report it)", lost.id));
    let after = vm(&b, &lost.id).await;
    assert_eq!(after.status, VmStatus::Running, "never acted on");
    let l = after.lease.unwrap();
    assert_eq!(l.ended_at, None);
    assert!(l.note.unwrap().contains("not acted on yet"), "the VM's record says why");
    // Its real instance was never touched; the next pass skips it again.
    assert_eq!(cloud_state(&b, "sb", "ann", vms[0].cloud_id.as_deref().unwrap()).await, VmState::Running);
    let r = pass_at(&b, t0() + Duration::hours(1) + Duration::seconds(5), "r2").await;
    assert_eq!((r.acted(), r.skipped, r.busy), (0, 1, 0), "its claim was released: {r:?}");
    assert_eq!(audit(&b, "vm.lease.expire").await.len(), 1);
});

broker_test!(two_racing_passes_act_on_each_vm_once, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h"), ("sb2.lease.default", "1h")]).await;
    let mut vms = launch(&b, &ann, "sb", 15, None).await;
    vms.extend(launch(&b, &ann, "sb2", 15, None).await);
    b.clock.set(t0() + Duration::hours(1));
    let (r1, r2) = tokio::join!(b.provisioning.lease_pass("replica-1"), b.provisioning.lease_pass("replica-2"));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert!(r1.errors.is_empty() && r2.errors.is_empty(), "{r1:?} {r2:?}");
    assert_eq!(r1.terminated + r2.terminated + r1.already_done + r2.already_done, 30, "{r1:?} {r2:?}");
    let expiries = audit(&b, "vm.lease.expire").await;
    for v in &vms {
        assert_eq!(expiries.iter().filter(|e| e.target == v.id.as_str()).count(), 1, "VM {} acted on once", v.id);
        assert!(ended(vm(&b, &v.id).await.status));
    }
    assert_eq!(expiries.len(), 30);
    assert_eq!(pass_at(&b, t0() + Duration::hours(2), "replica-1").await.acted(), 0);
});

broker_test!(a_dead_replicas_claim_is_taken_over_without_acting_twice, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h")]).await;
    let vms = launch(&b, &ann, "sb", 2, None).await;
    let end = t0() + Duration::hours(1);
    let ttl = LEASE_CLAIM_TTL.as_millis() as i64;
    // A replica claimed both at expiry, terminated the first in the cloud,
    // and died before recording anything.
    for v in &vms {
        assert!(b.store().claim_vm_lease(&v.id, "dead-replica", end.timestamp_millis(), ttl).await.unwrap());
    }
    sb(&b, "sb").terminate_instances(&account("ann"), &[vms[0].cloud_id.clone().unwrap()]).await.unwrap();
    // While a replica holds the expiry, the lease cannot be changed under it.
    b.clock.set(end + Duration::seconds(30));
    let e = b.provisioning.set_lease(&ann, &vms[1].id, None).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e:?}");
    // Its claims hold for their lifetime.
    let r = pass_at(&b, end + Duration::seconds(60), "r2").await;
    assert_eq!((r.busy, r.acted(), r.already_done), (2, 0, 0), "{r:?}");
    assert_eq!(r.summary(), "", "claims held by another replica are its work");
    // Then they are taken over: the terminated one is recorded, not terminated again; the other is terminated.
    let r = pass_at(&b, end + Duration::seconds(121), "r2").await;
    assert_eq!((r.already_done, r.terminated, r.busy), (1, 1, 0), "{r:?}");
    let first = vm(&b, &vms[0].id).await;
    assert!(ended(first.status));
    let note = first.lease.unwrap().note.unwrap();
    assert!(
        note.starts_with("terminated by its lease at 2030-01-07T11:02:01Z (due 2030-01-07T11:00:00Z, 2m late): the cloud already had it"),
        "{note}"
    );
    assert!(ended(vm(&b, &vms[1].id).await.status));
    let expiries = audit(&b, "vm.lease.expire").await;
    assert_eq!(expiries.len(), 2);
    assert_eq!(pass_at(&b, end + Duration::hours(1), "r3").await.acted(), 0);
});

broker_test!(a_lease_missed_while_down_is_acted_on_saying_how_late, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h")]).await;
    let v = launch(&b, &ann, "sb", 1, None).await.remove(0);
    // The broker was down from before the warning until two hours after the expiry.
    let r = pass_at(&b, t0() + Duration::hours(3) + Duration::minutes(5), "r1").await;
    assert_eq!((r.warned, r.terminated, r.late), (0, 1, 1), "no warning once the lease has ended: {r:?}");
    assert_eq!(r.summary(), "terminated 1, 1 late by up to 2h 5m");
    let note = vm(&b, &v.id).await.lease.unwrap().note.unwrap();
    assert_eq!(note, "terminated by its lease at 2030-01-07T13:05:00Z (due 2030-01-07T11:00:00Z, 2h 5m late)");
    assert!(audit(&b, "vm.lease.warn").await.is_empty());
});

broker_test!(adopted_vms_get_no_lease_unless_an_admin_sets_one, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h")]).await;
    let launched = launch(&b, &ann, "sb", 1, None).await.remove(0);
    // A VM of ann's account tagged by this broker, with no record (e.g. a restored database).
    let broker_id = b.store().broker_id().await.unwrap();
    let req = RunRequest {
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.micro".into(),
        count: 1,
        key_name: None,
        user_data: None,
        security_groups: Vec::new(),
        tags: vec![
            (tags::BROKER.to_string(), broker_id),
            (tags::USER.to_string(), "ann".to_string()),
            (tags::LAUNCH.to_string(), "launched-elsewhere".to_string()),
        ],
        client_token: "adopted-by-the-broker".into(),
        ..Default::default()
    };
    let cloud_id = sb(&b, "sb").run_instances(&account("ann"), &req).await.unwrap().remove(0).id;
    let rep = b.provisioning.reconcile("r1").await.unwrap();
    assert_eq!(rep.adopted, 1, "{rep:?}");
    let all = b.provisioning.list(&admin(), VmQuery::default(), PageRequest::default()).await.unwrap().items;
    let adopted = all.iter().find(|v| v.cloud_id.as_deref() == Some(cloud_id.as_str())).unwrap().clone();
    assert_eq!(adopted.lease, None);
    let r = pass_at(&b, t0() + Duration::days(30), "r1").await;
    assert_eq!(r.terminated, 1);
    assert!(ended(vm(&b, &launched.id).await.status));
    assert!(vm(&b, &adopted.id).await.status.is_live(), "no lease: not touched");
    // Only an admin gives it a lease.
    assert!(matches!(b.provisioning.set_lease(&ann, &adopted.id, None).await.unwrap_err(), ServiceError::Forbidden(_)));
    let given = b.provisioning.set_lease(&admin(), &adopted.id, Some(LeaseAsk::parse("1h").unwrap())).await.unwrap();
    assert_eq!(given.lease.unwrap().expires_at, t0() + Duration::days(30) + Duration::hours(1));
});

broker_test!(a_vm_whose_connector_is_not_ready_is_skipped_and_reported, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h"), ("sb2.lease.default", "1h")]).await;
    let on_sb = launch(&b, &ann, "sb", 1, None).await.remove(0);
    let on_sb2 = launch(&b, &ann, "sb2", 1, None).await.remove(0);
    // sb2's configuration breaks: no connector to act with.
    let conf = b.registry.connectors_dir().join("sb.conf");
    std::fs::write(&conf, "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = soon\n").unwrap();
    b.registry.reload().await.unwrap();
    assert!(sb2_not_ready(&b));
    let r = pass_at(&b, t0() + Duration::hours(1), "r1").await;
    assert_eq!((r.terminated, r.skipped), (1, 1), "{r:?}");
    // (A bad value drops the instance until fixed: "not found", or "not ready".)
    assert!(r.skip_reasons[0].starts_with(&format!("{}: connector instance 'sb2' ", on_sb2.id)), "{:?}", r.skip_reasons);
    assert!(ended(vm(&b, &on_sb.id).await.status));
    assert!(vm(&b, &on_sb2.id).await.status.is_live(), "never acted on");
    // Fixed: the next pass acts on it.
    std::fs::write(&conf, "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\n").unwrap();
    b.registry.reload().await.unwrap();
    let r = pass_at(&b, t0() + Duration::hours(1) + Duration::seconds(5), "r1").await;
    assert_eq!((r.terminated, r.skipped), (1, 0), "{r:?}");
    assert!(ended(vm(&b, &on_sb2.id).await.status));
});

fn sb2_not_ready(b: &Broker) -> bool {
    b.registry.snapshot().instance("sb2").is_none_or(|e| e.connector.is_none() || e.status != cloudbroker_core::registry::Status::Ready)
}

broker_test!(the_lease_worker_runs_at_start_and_its_status_reports_skips, |b: Broker| async move {
    let ann = setup(&b, &[("sb.lease.default", "1h"), ("sb2.lease.default", "1h")]).await;
    let acted = launch(&b, &ann, "sb", 1, None).await.remove(0);
    let skipped = launch(&b, &ann, "sb2", 1, None).await.remove(0);
    // sb2 has no connector (a bad value in its file): its VM cannot be acted on.
    let conf = b.registry.connectors_dir().join("sb.conf");
    std::fs::write(&conf, "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = soon\n").unwrap();
    b.registry.reload().await.unwrap();
    // The broker was down across the expiry: the worker's first pass, at start, acts.
    b.clock.set(t0() + Duration::hours(2));
    let workers = b.spawn_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let st = b.readiness().await.workers.into_iter().find(|w| w.name == "lease").expect("a worker named lease");
        if st.runs >= 1 {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "the lease worker did not run at start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    workers.shutdown(std::time::Duration::from_secs(10)).await;
    assert!(ended(vm(&b, &acted.id).await.status));
    assert!(vm(&b, &skipped.id).await.status.is_live());
    // A skipped VM makes the step a failure, saying which and why.
    assert!(status.consecutive_failures >= 1, "{status:?}");
    let error = status.last_error.unwrap();
    let expected = format!("terminated 1, 1 late by up to 1h, skipped 1 ({}: connector instance 'sb2' ", skipped.id);
    assert!(error.starts_with(&expected), "{error}");
});
