//! Monthly budgets (issue 25), on SQLite and on PostgreSQL: a launch is
//! admitted while what the user's VMs on the instance spent and committed
//! this month plus its first billing period fits the budget, and refused
//! with the figures otherwise (a dry run refuses alike; nothing is
//! recorded); an admin's override wins over the instance's default; a team
//! project's budget binds its members together; concurrent launches, on
//! one broker or two sharing a PostgreSQL database, admit exactly what the
//! budget fits.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::costs::money::Micros;
use cloudbroker_core::domain::{ProjectName, ProjectRole, VmAction, VmStatus};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{InstanceType, LaunchRequest};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Config, ServiceError};
use cloudbroker_store::budgets::BudgetScope;
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use std::collections::BTreeMap;
use std::path::Path;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-10T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// `sb` with t2.small at 3.6/h (a 60-second first period costs 0.06) and a
/// user budget of 0.20 by default.
fn write_files(dir: &Path) {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(conn.join("prices")).unwrap();
    std::fs::write(conn.join("sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\nsb.budget.user.monthly = 0.20\n")
        .unwrap();
    std::fs::write(conn.join("prices").join("sb.conf"), "sb.price.instance.t2.small = 3.6\n").unwrap();
}

async fn start(dir: &Path, db: Option<String>) -> Broker {
    let mut config = Config::for_tests(dir, db);
    config.admin_password = Some(SecretString::new("super-password-1"));
    let b = Broker::start(config, common::connectors()).await.unwrap();
    b.clock.set(t0());
    b
}

async fn setup(b: &Broker) {
    let mut mappings = BTreeMap::new();
    mappings.insert(instance("sb"), ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: None, security_group: None });
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&Actor::system(), spec, true).await.unwrap();
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&Actor::system(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

fn small() -> LaunchRequest {
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.instance_type = Some(InstanceType::parse("t2.small").unwrap());
    r
}

async fn scenario(dir: &Path, db: Option<String>) {
    cloudbroker_core::metrics::install();
    write_files(dir);
    let b = start(dir, db).await;
    setup(&b).await;
    let alice = add_user(&b, "alice").await;
    // 0.20 fits three first periods of 0.06.
    for _ in 0..3 {
        b.provisioning.launch(&alice, small()).await.unwrap();
    }
    let e = b.provisioning.check_launch(&alice, small()).await.unwrap_err();
    assert!(matches!(e, ServiceError::BudgetExceeded(_)), "{e:?}");
    let e = b.provisioning.launch(&alice, small()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the monthly budget of user 'alice' on 'sb' is 0.20 USD: 0.18 USD is spent or committed this month and this launch needs at least 0.0600 USD more (its first billing period)"
    );
    let ServiceError::BudgetExceeded(r) = &e else { panic!("{e:?}") };
    assert_eq!((r.budget, r.spent, r.requested), (Micros(200_000), Micros(180_000), Micros(60_000)));
    assert_eq!(b.provisioning.list(&alice, Default::default(), Default::default()).await.unwrap().items.len(), 3, "nothing recorded");
    // What the budget reads: the override wins over the default.
    let view = b.costs.budget(BudgetScope::User, "alice", &instance("sb")).await.unwrap();
    assert_eq!((view.amount, view.source, view.spent), (Some(Micros(200_000)), "instance", Micros(180_000)));
    assert!(matches!(
        b.costs.set_budget(&alice, BudgetScope::User, "alice", &instance("sb"), Some(Micros(1_000_000))).await,
        Err(ServiceError::Forbidden(_))
    ));
    let view = b.costs.set_budget(&Actor::system(), BudgetScope::User, "alice", &instance("sb"), Some(Micros(250_000))).await.unwrap();
    assert_eq!((view.amount, view.source), (Some(Micros(250_000)), "override"));
    b.provisioning.launch(&alice, small()).await.unwrap();
    assert!(matches!(b.provisioning.launch(&alice, small()).await, Err(ServiceError::BudgetExceeded(_))));
    // Another user has a budget of their own.
    let bob = add_user(&b, "bob").await;
    let first = b.provisioning.launch(&bob, small()).await.unwrap().vms.remove(0);
    // Starting a stopped VM adds cost: admitted under the budget too.
    b.provisioning.watch_transitional("test").await.unwrap();
    b.provisioning.action(&bob, &first.id, VmAction::Stop).await.unwrap();
    b.provisioning.watch_transitional("test").await.unwrap();
    assert_eq!(b.provisioning.get(&bob, &first.id).await.unwrap().status, VmStatus::Stopped);
    b.provisioning.launch(&bob, small()).await.unwrap();
    b.provisioning.launch(&bob, small()).await.unwrap();
    let e = b.provisioning.action(&bob, &first.id, VmAction::Start).await.unwrap_err();
    assert!(e.to_string().contains("0.18 USD is spent or committed this month and this start needs at least 0.0600 USD"), "{e}");
    assert_eq!(b.provisioning.get(&bob, &first.id).await.unwrap().status, VmStatus::Stopped, "not started");
    b.costs.set_budget(&Actor::system(), BudgetScope::User, "bob", &instance("sb"), Some(Micros(240_000))).await.unwrap();
    let started = b.provisioning.action(&bob, &first.id, VmAction::Start).await.unwrap();
    assert_ne!(started.status, VmStatus::Stopped);
    assert_eq!(b.costs.budget(BudgetScope::User, "bob", &instance("sb")).await.unwrap().spent, Micros(240_000));

    // A team project's budget binds its members together.
    let admin = Actor::system();
    let team = ProjectName::parse("team-a").unwrap();
    b.projects.create(&admin, &team, "", Some(&user("alice"))).await.unwrap();
    for who in ["carol", "dave"] {
        add_user(&b, who).await;
        b.projects.set_member(&admin, &team, &user(who), ProjectRole::Member).await.unwrap();
    }
    b.costs.set_budget(&admin, BudgetScope::Project, "team-a", &instance("sb"), Some(Micros(100_000))).await.unwrap();
    let carol = b.projects.enter(Actor::new(user("carol"), false), &team).await.unwrap();
    let dave = b.projects.enter(Actor::new(user("dave"), false), &team).await.unwrap();
    b.provisioning.launch(&carol, small()).await.unwrap();
    let e = b.provisioning.launch(&dave, small()).await.unwrap_err();
    assert!(e.to_string().starts_with("the monthly budget of project 'team-a' on 'sb' is 0.10 USD: 0.06 USD"), "{e}");

    // The budget watch records each threshold crossed once, whichever replica runs it.
    let first = b.costs.watch_budgets().await.unwrap();
    let mut alerts = first.alerts.clone();
    alerts.sort();
    assert!(
        alerts.contains(
            &"the user 'alice' spent or committed 0.24 USD of its 0.25 USD monthly budget on 'sb' (80% reached in 2026-12)".to_string()
        ),
        "{alerts:#?}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a.starts_with("the project 'team-a' spent or committed 0.06 USD of its 0.10 USD") && a.contains("(50% reached")),
        "{alerts:#?}"
    );
    assert!(!alerts.iter().any(|a| a.contains("'alice'") && a.contains("100%")), "{alerts:#?}");
    assert!(b.costs.watch_budgets().await.unwrap().alerts.is_empty(), "recorded once");
    // The same passes grew the spend counters by what was metered, once: bob's
    // stopped VM owes its 60-second minimum, 0.06.
    let metrics = cloudbroker_core::metrics::render();
    assert!(metrics.contains("cloudbroker_spend_micros_total{instance=\"sb\",user=\"bob\"} 60000"), "{metrics}");
    assert!(metrics.contains("cloudbroker_budget_alerts_total{scope=\"project\",instance=\"sb\",threshold=\"50\"} 1"), "{metrics}");
    let banner = b.costs.alerts_for(&alice).await.unwrap();
    assert_eq!(banner.len(), 1, "the highest threshold per instance: {banner:?}");
    assert!(banner[0].contains("80% reached"));
    let log = b.audit.list(&Actor::system(), Default::default(), Default::default()).await.unwrap();
    assert_eq!(log.items.iter().filter(|e| e.action == "budget.alert").count(), first.alerts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_admit_what_fits_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_admit_what_fits_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), Some(TestDb::create_postgres_database(&base).await.unwrap())).await;
}

/// Concurrent launches by one user, on `brokers` sharing a database,
/// against a budget fitting exactly `fits` first periods: exactly `fits`
/// are admitted.
async fn concurrent(brokers: &[Broker], launches: usize, fits: usize) {
    let b = &brokers[0];
    setup(b).await;
    let alice = add_user(b, "alice").await;
    let budget = Micros(60_000 * fits as i64);
    b.costs.set_budget(&Actor::system(), BudgetScope::User, "alice", &instance("sb"), Some(budget)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..launches {
        let (b, alice) = (brokers[i % brokers.len()].clone(), alice.clone());
        tasks.push(tokio::spawn(async move { b.provisioning.launch(&alice, small()).await.map(|_| ()) }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(ServiceError::BudgetExceeded(_)) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((ok, refused), (fits, launches - fits));
    let view = b.costs.budget(BudgetScope::User, "alice", &instance("sb")).await.unwrap();
    assert_eq!(view.spent, budget, "exactly the budget is committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_launches_admit_exactly_the_budget_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let b = start(dir.path(), None).await;
    concurrent(&[b], 40, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_brokers_on_postgres_admit_exactly_the_budget() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let url = TestDb::create_postgres_database(&base).await.unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_files(d1.path());
    write_files(d2.path());
    let b1 = start(d1.path(), Some(url.clone())).await;
    let b2 = start(d2.path(), Some(url)).await;
    concurrent(&[b1, b2], 500, 50).await;
}
