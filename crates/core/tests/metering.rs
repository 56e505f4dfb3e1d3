//! Metering to the second (issue 25), on SQLite and on PostgreSQL: a VM
//! started, stopped, started again, restarted across a broker restart and
//! finally terminated behind the broker's back (the reconciler corrects its
//! record) costs exactly its running seconds at the prices effective then,
//! with the instance's markup; every time is set on the broker's clock, so
//! nothing sleeps. A type with no price is reported unpriced, never free.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::costs::metering::Period;
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::costs::report::{Granularity, GroupBy, ReportQuery};
use cloudbroker_core::domain::VolumeSize;
use cloudbroker_core::domain::{VmAction, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{InstanceType, LaunchRequest, Vm, VolumeSpec};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Config};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use std::collections::BTreeMap;
use std::path::Path;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(secs)
}

async fn start(dir: &Path, db: Option<String>) -> Broker {
    let mut config = Config::for_tests(dir, db);
    config.admin_password = Some(SecretString::new("super-password-1"));
    Broker::start(config, common::connectors()).await.unwrap()
}

fn write_files(dir: &Path) {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(conn.join("prices")).unwrap();
    std::fs::write(conn.join("sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n").unwrap();
    // 3.6/h is 0.001 a second; from 2h 30m on, 7.2/h. A 10% markup.
    std::fs::write(
        conn.join("prices").join("sb.conf"),
        "currency = EUR\nsb.markup = 10\nsb.price.instance.t2.small = 3.6\nsb.price.instance.t2.small @ 2026-12-01T02:30:00Z = 7.2\n\
         sb.price.instance.bogus = not-a-price\nsb.price.volume.gp3 = 7.3\nsb.price.address = 3.6\n",
    )
    .unwrap();
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

async fn launch(b: &Broker, who: &Actor, instance_type: &str) -> Vm {
    let mut req = LaunchRequest::new(instance("sb"), image_ref("linux"));
    req.instance_type = Some(InstanceType::parse(instance_type).unwrap());
    b.provisioning.launch(who, req).await.unwrap().vms.remove(0)
}

/// Lets the broker see where the VM's transition ended, at the clock's time now.
async fn settle(b: &Broker) {
    b.provisioning.watch_transitional("test").await.unwrap();
}

async fn scenario(dir: &Path, db: Option<String>) {
    write_files(dir);
    let b = start(dir, db.clone()).await;
    b.clock.set(t(0));
    let alice = setup(&b).await;
    // The bad line is reported with its file and line; the good ones load.
    let list = b.costs.price_list(&Actor::system());
    assert_eq!(list.currency, "EUR");
    assert!(list.errors.iter().any(|e| e.ends_with("sb.conf:5: 'not-a-price' is not an amount (write e.g. 0.0104)")), "{:?}", list.errors);
    assert_eq!(list.prices.len(), 4);
    let users = b.costs.price_list(&alice);
    assert!(users.errors.is_empty() && users.prices[0].list_price.is_none());
    assert_eq!(users.prices[0].price, Micros(3_960_000), "users see prices with the markup");

    let vm = launch(&b, &alice, "t2.small").await;
    settle(&b).await;
    assert_eq!(b.provisioning.get(&alice, &vm.id).await.unwrap().status, VmStatus::Running);
    // Running 0..3600.
    b.clock.set(t(3600));
    b.provisioning.action(&alice, &vm.id, VmAction::Stop).await.unwrap();
    settle(&b).await;
    b.clock.set(t(7200));
    b.provisioning.action(&alice, &vm.id, VmAction::Start).await.unwrap();
    settle(&b).await;
    assert_eq!(b.provisioning.get(&alice, &vm.id).await.unwrap().status, VmStatus::Running);

    // The broker restarts; the VM keeps running meanwhile.
    b.close().await;
    drop(b);
    let b = start(dir, db).await;
    b.clock.set(t(10_000));
    // Terminated behind the broker's back at 10 800; the reconciler sees it then.
    let (creds, _) = b.vault.credentials_for(&alice.name, &instance("sb")).await.unwrap();
    let conn = b.registry.snapshot().instance("sb").unwrap().connector.clone().unwrap();
    b.clock.set(t(10_800));
    conn.terminate_instances(&creds, &[vm.cloud_id.clone().unwrap()]).await.unwrap();
    for _ in 0..5 {
        b.provisioning.reconcile("test").await.unwrap();
        settle(&b).await;
    }
    assert_eq!(b.provisioning.get(&alice, &vm.id).await.unwrap().status, VmStatus::Terminated);

    // Running 0..3600 and 7200..10 800: 7200 s; 0..9000 at 0.001/s, 9000..10 800 at 0.002/s.
    b.clock.set(t(20_000));
    let vm = b.provisioning.get(&alice, &vm.id).await.unwrap();
    let cost = b.costs.vm_cost(&vm, None).await.unwrap();
    assert_eq!(cost.currency, "EUR");
    assert_eq!((cost.usage.seconds, cost.usage.starts, cost.usage.unpriced_seconds), (7200, 2, 0));
    assert_eq!(cost.usage.list_cost, Micros(9_000_000), "{:#?}", cost.usage.lines);
    assert_eq!(cost.usage.cost, Micros(9_900_000));
    assert_eq!(cost.period, Period { from: t(0), to: t(20_000) }, "this month so far");
    let origins: Vec<_> = cost.usage.lines.iter().map(|l| l.price_origin.clone().unwrap()).collect();
    assert!(origins[0].ends_with("sb.conf:3") && origins.last().unwrap().ends_with("sb.conf:4"), "{origins:?}");
    // A period holding only the second start.
    let later = b.costs.vm_cost(&vm, Some(Period { from: t(5000), to: t(9000) })).await.unwrap();
    assert_eq!((later.usage.seconds, later.usage.starts, later.usage.cost), (1800, 1, Micros(1_980_000)));

    // A type with no price: counted, unpriced, never free; the minimum applies per start.
    b.clock.set(t(30_000));
    let other = launch(&b, &alice, "m5.large").await;
    settle(&b).await;
    b.clock.set(t(30_030));
    b.provisioning.action(&alice, &other.id, VmAction::Terminate).await.unwrap();
    let other = b.provisioning.get(&alice, &other.id).await.unwrap();
    let cost = b.costs.vm_cost(&other, None).await.unwrap();
    assert_eq!((cost.usage.seconds, cost.usage.unpriced_seconds, cost.usage.cost), (60, 60, Micros(0)));
    assert!(cost.usage.lines.iter().all(|l| l.rate.is_none() && l.cost.is_none()));

    // The report agrees with the VMs' own costs: per instance type, per day.
    let q = ReportQuery {
        from: t(0),
        to: t(86_400 * 2),
        group_by: GroupBy::InstanceType,
        granularity: Granularity::Day,
        user: None,
        project: None,
        instance: None,
    };
    let r = b.costs.report(&alice, &q).await.unwrap();
    assert_eq!(r.period.to, t(30_030), "never past now");
    let lines: Vec<(&str, i64, Micros, i64)> = r.lines.iter().map(|l| (l.group.as_str(), l.seconds, l.cost, l.unpriced_seconds)).collect();
    assert_eq!(lines, vec![("m5.large", 60, Micros(0), 60), ("t2.small", 7200, Micros(9_900_000), 0)]);
    assert_eq!(r.total, Micros(9_900_000));
    assert_eq!(r.unpriced, vec![("sb".to_string(), "m5.large".to_string())]);
    assert!(r.lines.iter().all(|l| l.list_cost.is_none()), "users see no list prices");
    // Another user sees nothing of alice's.
    let bob = b.identity.create_user(&Actor::system(), &user("bob"), &SecretString::new("bob-password"), false).await.unwrap();
    assert!(b.costs.report(&Actor::new(bob.name, false), &q).await.unwrap().lines.is_empty());
    // Admins see list costs, grouped by user; a bad range is refused, naming the field.
    let all = b.costs.report(&Actor::system(), &ReportQuery { group_by: GroupBy::User, ..q.clone() }).await.unwrap();
    assert_eq!(all.lines.len(), 1);
    assert_eq!((all.lines[0].group.as_str(), all.lines[0].list_cost), ("alice", Some(Micros(9_000_000))));
    let bad = b.costs.report(&alice, &ReportQuery { from: t(10), to: t(5), ..q.clone() }).await.unwrap_err();
    assert!(bad.to_string().contains("from must be before to"), "{bad}");

    // A 10 GiB gp3 volume for an hour (10 x 7.3 per GiB-month x 1 h / 730 h = 0.10, +10%),
    // an Elastic IP for half an hour (3.6/h: 1.80, +10%), priced per GiB-month and per hour.
    b.clock.set(t(40_000));
    let spec =
        VolumeSpec { size: VolumeSize::new(10).unwrap(), zone: "sba".into(), volume_type: Some("gp3".into()), tags: Default::default() };
    let vol = b.provisioning.create_volume(&alice, &instance("sb"), spec).await.unwrap();
    let eip = b.provisioning.allocate_address(&alice, &instance("sb")).await.unwrap();
    b.clock.set(t(41_800));
    b.provisioning.release_address(&alice, &instance("sb"), &eip.allocation_id).await.unwrap();
    b.clock.set(t(43_600));
    b.provisioning.delete_volume(&alice, &instance("sb"), &vol.volume_id).await.unwrap();
    b.clock.set(t(50_000));
    let r = b.costs.report(&alice, &q).await.unwrap();
    let lines: Vec<(&str, i64, Micros, u32, u32)> =
        r.lines.iter().map(|l| (l.group.as_str(), l.seconds, l.cost, l.volumes, l.addresses)).collect();
    assert_eq!(
        lines,
        vec![
            ("address", 1800, Micros(1_980_000), 0, 1),
            ("m5.large", 60, Micros(0), 0, 0),
            ("t2.small", 7200, Micros(9_900_000), 0, 0),
            ("volume.gp3", 3600, Micros(110_000), 1, 0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_costs_its_running_seconds_across_a_restart_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_costs_its_running_seconds_across_a_restart_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), Some(TestDb::create_postgres_database(&base).await.unwrap())).await;
}
