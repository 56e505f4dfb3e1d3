//! Stops the broker learns late (issue 25), on SQLite and on PostgreSQL: a
//! VM stopped in the cloud behind the broker's back, which the reconciler
//! finds an hour later, is billed until the time the cloud gives for the
//! stop (the sandbox's, as EC2's StateTransitionReason), not until the
//! reconciler saw it; a cloud time earlier than the VM's start is clamped
//! to the start (never a stop before its start), and one later than the
//! broker's clock to the broker's clock. The broker's clock is set around
//! the sandbox's (wall) clock, so every figure is exact.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use cloudbroker_connector_api::{DescribeFilter, SecretString};
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::domain::VmStatus;
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{InstanceType, LaunchRequest, Vm};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Config};
use cloudbroker_store::metering::StateChange;
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use std::collections::BTreeMap;
use std::path::Path;

async fn start(dir: &Path, db: Option<String>) -> Broker {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(conn.join("prices")).unwrap();
    std::fs::write(conn.join("sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n").unwrap();
    // 3.6/h: 0.001 a second.
    std::fs::write(conn.join("prices").join("sb.conf"), "sb.price.instance.t2.small = 3.6\n").unwrap();
    let mut config = Config::for_tests(dir, db);
    config.admin_password = Some(SecretString::new("super-password-1"));
    Broker::start(config, common::connectors()).await.unwrap()
}

async fn setup(b: &Broker) -> Actor {
    let admin = Actor::system();
    let mut mappings = BTreeMap::new();
    mappings.insert(instance("sb"), ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: None, security_group: None });
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin, spec, true).await.unwrap();
    let u = b.identity.create_user(&admin, &user("alice"), &SecretString::new("alice-password"), false).await.unwrap();
    Actor::new(u.name, false)
}

/// A running t2.small of `who`, recorded running at the clock's time.
async fn running(b: &Broker, who: &Actor) -> Vm {
    let mut req = LaunchRequest::new(instance("sb"), image_ref("linux"));
    req.instance_type = Some(InstanceType::parse("t2.small").unwrap());
    let vm = b.provisioning.launch(who, req).await.unwrap().vms.remove(0);
    b.provisioning.watch_transitional("test").await.unwrap();
    let vm = b.provisioning.get(who, &vm.id).await.unwrap();
    assert_eq!(vm.status, VmStatus::Running);
    vm
}

/// Stops `vm` in the sandbox behind the broker's back; returns the time
/// the cloud gives for the stop.
async fn stop_in_cloud(b: &Broker, who: &Actor, vm: &Vm) -> DateTime<Utc> {
    let (creds, _) = b.vault.credentials_for(&who.name, &instance("sb")).await.unwrap();
    let conn = b.registry.snapshot().instance("sb").unwrap().connector.clone().unwrap();
    let cloud_id = vm.cloud_id.clone().unwrap();
    conn.stop_instances(&creds, std::slice::from_ref(&cloud_id)).await.unwrap();
    let seen = conn.describe_instances(&creds, &DescribeFilter::ids(std::slice::from_ref(&cloud_id))).await.unwrap();
    assert_eq!(seen[0].state, cloudbroker_connector_api::VmState::Stopped);
    seen[0].state_since.expect("the sandbox gives the time of a stop")
}

async fn scenario(dir: &Path, db: Option<String>) {
    let b = start(dir, db).await;
    // The broker's clock an hour behind the sandbox's (the wall clock), in whole seconds.
    let wall = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let t0 = wall - Duration::hours(1);
    b.clock.set(t0);
    let alice = setup(&b).await;
    let vm = running(&b, &alice).await;

    // Stopped in the cloud at t1; the reconciler learns it an hour later.
    let t1 = stop_in_cloud(&b, &alice, &vm).await;
    assert!(t1 > t0 && t1 < t0 + Duration::hours(2), "{t1} against {t0}");
    b.clock.set(t1 + Duration::hours(1));
    let report = b.provisioning.reconcile("test").await.unwrap();
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(b.provisioning.get(&alice, &vm.id).await.unwrap().status, VmStatus::Stopped);
    let history = b.store().vm_state_history(&vm.id).await.unwrap();
    assert_eq!(history.last(), Some(&StateChange { state: VmStatus::Stopped, at: t1 }), "{history:?}");
    // Billed t0..t1 exactly, not until the reconciler saw it.
    let cost = b.costs.vm_cost(&vm, None).await.unwrap();
    let seconds = (t1 - t0).num_seconds();
    assert!((3590..=3700).contains(&seconds), "{seconds}");
    assert_eq!((cost.usage.seconds, cost.usage.starts), (seconds, 1), "{:#?}", cost.usage.lines);
    assert_eq!(cost.usage.cost, Micros(seconds * 1000));
    assert_eq!(cost.usage.lines[0].to, t1);

    // Started again by the broker: recorded at the broker's time, the old
    // cloud time is not reused.
    let t3 = b.clock.now() + Duration::minutes(10);
    b.clock.set(t3);
    b.provisioning.action(&alice, &vm.id, cloudbroker_core::domain::VmAction::Start).await.unwrap();
    b.provisioning.watch_transitional("test").await.unwrap();
    let history = b.store().vm_state_history(&vm.id).await.unwrap();
    let states: Vec<(VmStatus, DateTime<Utc>)> = history.iter().map(|c| (c.state, c.at)).collect();
    assert_eq!(&states[states.len() - 2..], &[(VmStatus::Pending, t3), (VmStatus::Running, t3)], "{states:?}");

    // A cloud time before the VM's start: clamped to the start (never a stop
    // before its start). The broker's clock is now hours ahead of the sandbox's.
    let t4 = t3 + Duration::hours(1);
    b.clock.set(t4);
    let t5 = stop_in_cloud(&b, &alice, &vm).await;
    assert!(t5 < t3, "the sandbox's time {t5} is before the start at {t3}");
    b.clock.set(t4 + Duration::hours(1));
    b.provisioning.reconcile("test").await.unwrap();
    let history = b.store().vm_state_history(&vm.id).await.unwrap();
    assert_eq!(history.last(), Some(&StateChange { state: VmStatus::Stopped, at: t3 }), "{history:?}");
    // Its ordering holds: every entry at or after the one before it.
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at), "{history:?}");
    // The second start is billed its minimum (60 s) only.
    let cost = b.costs.vm_cost(&vm, None).await.unwrap();
    assert_eq!((cost.usage.seconds, cost.usage.starts), (seconds + 60, 2), "{:#?}", cost.usage.lines);
    assert_eq!(cost.usage.cost, Micros((seconds + 60) * 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_learned_stop_is_billed_to_the_clouds_time_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_learned_stop_is_billed_to_the_clouds_time_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), Some(TestDb::create_postgres_database(&base).await.unwrap())).await;
}
