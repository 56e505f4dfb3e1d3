//! Issue 29: a cloud observation older than an action never overwrites the
//! action's write. Each test holds a sandbox listing (the connector's
//! `ListingHold`) after it has read the cloud and before it answers, acts on
//! the VM meanwhile, then lets the listing answer with what it read before
//! the action: the race is certain, not probable. On SQLite, and on
//! PostgreSQL when `CLOUDBROKER_TEST_POSTGRES_URL` is set; the replica tests
//! run two brokers on one database (one acts, the other observes).

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_connector_sandbox::ListingHold;
use cloudbroker_core::domain::{VmAction, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{LaunchRequest, Vm};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Config};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use std::collections::BTreeMap;
use std::time::Duration;

/// The sandbox's boot (and stop, and shut-down) delay.
const DELAY_MS: u64 = 300;

/// `replicas` brokers on one fresh database (SQLite, or PostgreSQL when
/// `pg`), one sandbox instance `name` they share (its world is kept in the
/// database). `None`: PostgreSQL asked for and not configured.
async fn brokers(pg: bool, name: &str, replicas: usize) -> Option<(Vec<Broker>, tempfile::TempDir)> {
    let db = if pg {
        let Ok(base) = std::env::var(POSTGRES_ENV) else {
            eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
            return None;
        };
        Some(TestDb::create_postgres_database(&base).await.unwrap())
    } else {
        None
    };
    let dir = tempfile::tempdir().unwrap();
    let conn = dir.path().join("connectors.d");
    std::fs::create_dir_all(&conn).unwrap();
    std::fs::write(
        conn.join("sb.conf"),
        format!("cloud.connector.class = {name}:sandbox\n{name}.boot.delay.ms = {DELAY_MS}\n{name}.public.ips = true\n"),
    )
    .unwrap();
    let mut out = Vec::new();
    for _ in 0..replicas {
        let mut config = Config::for_tests(dir.path(), db.clone());
        config.admin_password = Some(SecretString::new("super-password-1"));
        out.push(Broker::start(config, common::connectors()).await.unwrap());
    }
    Some((out, dir))
}

/// A user `alice` with an image `linux` on `name`.
async fn alice(b: &Broker, name: &str) -> Actor {
    let admin = Actor::system();
    let mut mappings = BTreeMap::new();
    mappings.insert(
        instance(name),
        ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
    );
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&admin, spec, true).await.unwrap();
    let u = b.identity.create_user(&admin, &user("alice"), &SecretString::new("alice-password"), false).await.unwrap();
    Actor::new(u.name, false)
}

async fn launch_one(b: &Broker, who: &Actor, name: &str) -> Vm {
    let spec = LaunchRequest::new(instance(name), image_ref("linux"));
    b.provisioning.launch(who, spec).await.unwrap().vms.remove(0)
}

async fn status(b: &Broker, who: &Actor, vm: &Vm) -> VmStatus {
    b.provisioning.get(who, &vm.id).await.unwrap().status
}

/// The holder of every pass here: a group's lease is held by whoever
/// passed over it last (for a few intervals), so the passes of one test
/// share one holder (and, with replicas, run on one replica).
const HOLDER: &str = "observer";

/// Runs full passes until the record reads `want`.
async fn settle(b: &Broker, who: &Actor, vm: &Vm, want: VmStatus) {
    for _ in 0..100 {
        if status(b, who, vm).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.provisioning.reconcile(HOLDER).await.unwrap();
    }
    panic!("VM {} never became {want}: {}", vm.id, status(b, who, vm).await);
}

/// Which background pass observes the cloud.
#[derive(Clone, Copy)]
enum Pass {
    Watch,
    Full,
}

/// `observer` starts `pass`; once its listing has read the cloud (and is
/// held), `actor_broker` does `action`; then the listing answers with what
/// it read. Returns the record's status after the pass and the action's.
async fn race(
    observer: &Broker,
    actor_broker: &Broker,
    name: &str,
    who: &Actor,
    vm: &Vm,
    pass: Pass,
    action: VmAction,
) -> (VmStatus, VmStatus) {
    let hold = ListingHold::install(name);
    let p = observer.provisioning.clone();
    let run = tokio::spawn(async move {
        match pass {
            Pass::Watch => p.watch_transitional(HOLDER).await,
            Pass::Full => p.reconcile(HOLDER).await,
        }
    });
    tokio::time::timeout(Duration::from_secs(20), hold.held()).await.expect("the pass never listed the cloud");
    let acted = actor_broker.provisioning.action(who, &vm.id, action).await.unwrap().status;
    hold.release();
    let report = tokio::time::timeout(Duration::from_secs(20), run).await.expect("the pass never ended").unwrap().unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    (status(actor_broker, who, vm).await, acted)
}

/// A VM the cloud already reports `running` while its record still reads
/// `pending` (no pass ran since the launch): the watch's business.
async fn booted_unrecorded(b: &Broker, who: &Actor, name: &str) -> Vm {
    let vm = launch_one(b, who, name).await;
    assert_eq!(status(b, who, &vm).await, VmStatus::Pending);
    tokio::time::sleep(Duration::from_millis(DELAY_MS + 200)).await;
    vm
}

/// The watch lists a VM `running` (its record `pending`); the user
/// terminates it; the watch's answer must not bring it back to `running`.
async fn terminate_racing_the_watch(pg: bool, name: &str) {
    let Some((bs, _dir)) = brokers(pg, name, 1).await else { return };
    let b = &bs[0];
    let who = alice(b, name).await;
    let vm = booted_unrecorded(b, &who, name).await;
    let (after, acted) = race(b, b, name, &who, &vm, Pass::Watch, VmAction::Terminate).await;
    assert_eq!(acted, VmStatus::ShuttingDown);
    assert_eq!(after, VmStatus::ShuttingDown, "the watch wrote its pre-terminate observation over the terminate");
    settle(b, &who, &vm, VmStatus::Terminated).await;
}

/// The full pass lists a VM `running`; the user terminates, stops it; the
/// pass's answer must not bring it back to `running`.
async fn action_racing_the_full_pass(pg: bool, name: &str, action: VmAction, acted_as: VmStatus, ends: VmStatus) {
    let Some((bs, _dir)) = brokers(pg, name, 1).await else { return };
    let b = &bs[0];
    let who = alice(b, name).await;
    let vm = launch_one(b, &who, name).await;
    settle(b, &who, &vm, VmStatus::Running).await;
    let (after, acted) = race(b, b, name, &who, &vm, Pass::Full, action).await;
    assert_eq!(acted, acted_as);
    assert_eq!(after, acted_as, "the full pass wrote its pre-{action} observation (running) over the {action}");
    settle(b, &who, &vm, ends).await;
}

/// The full pass lists a VM `stopped`; the user starts it; the pass's answer
/// must not put it back to `stopped`.
async fn start_racing_the_full_pass(pg: bool, name: &str) {
    let Some((bs, _dir)) = brokers(pg, name, 1).await else { return };
    let b = &bs[0];
    let who = alice(b, name).await;
    let vm = launch_one(b, &who, name).await;
    settle(b, &who, &vm, VmStatus::Running).await;
    b.provisioning.action(&who, &vm.id, VmAction::Stop).await.unwrap();
    settle(b, &who, &vm, VmStatus::Stopped).await;
    let (after, acted) = race(b, b, name, &who, &vm, Pass::Full, VmAction::Start).await;
    assert_eq!(acted, VmStatus::Pending);
    assert_eq!(after, VmStatus::Pending, "the full pass wrote its pre-start observation (stopped) over the start");
    settle(b, &who, &vm, VmStatus::Running).await;
}

/// Two replicas on one database: replica B's watch and then its full pass
/// observe (B makes every pass), replica A launches and terminates.
async fn terminate_on_one_replica_racing_the_other(pg: bool, name: &str) {
    let Some((bs, _dir)) = brokers(pg, name, 2).await else { return };
    let (a, b) = (&bs[0], &bs[1]);
    let who = alice(a, name).await;
    let vm = booted_unrecorded(a, &who, name).await;
    let (after, _) = race(b, a, name, &who, &vm, Pass::Watch, VmAction::Terminate).await;
    assert_eq!(after, VmStatus::ShuttingDown, "replica B's watch wrote its pre-terminate observation over replica A's terminate");
    let vm2 = launch_one(a, &who, name).await;
    settle(b, &who, &vm2, VmStatus::Running).await;
    let (after, _) = race(b, a, name, &who, &vm2, Pass::Full, VmAction::Terminate).await;
    assert_eq!(after, VmStatus::ShuttingDown, "replica B's full pass wrote its pre-terminate observation over replica A's terminate");
    settle(b, &who, &vm, VmStatus::Terminated).await;
    settle(b, &who, &vm2, VmStatus::Terminated).await;
}

/// A test on SQLite and on PostgreSQL; each half has a sandbox instance of
/// its own (listing holds are per instance and process-wide).
macro_rules! both {
    ($name:ident, $instance:literal, $f:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                ($f)(false, concat!($instance, "-lite")).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                ($f)(true, concat!($instance, "-pg")).await;
            }
        }
    };
}

both!(watch_terminate, "watch-terminate", terminate_racing_the_watch);
both!(pass_terminate, "pass-terminate", |pg, n| action_racing_the_full_pass(
    pg,
    n,
    VmAction::Terminate,
    VmStatus::ShuttingDown,
    VmStatus::Terminated
));
both!(pass_stop, "pass-stop", |pg, n| action_racing_the_full_pass(pg, n, VmAction::Stop, VmStatus::Stopping, VmStatus::Stopped));
both!(pass_start, "pass-start", start_racing_the_full_pass);
both!(replicas_terminate, "replicas-terminate", terminate_on_one_replica_racing_the_other);
