//! Budgets after their review (issue 25), on SQLite and on PostgreSQL: a
//! launch looks budget overrides up with one statement at most, and none
//! while none exists (an override set on this replica binds at once, one
//! set on another replica within the configuration poll interval); a
//! project budget on a personal project is refused; an instance's
//! `budget.thresholds` are the thresholds recorded, each once; the banner's
//! alerts carry their threshold (its colour); the budget watch is done by
//! one replica at a time (a lease), each alert recorded once.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_core::costs::money::Micros;
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

/// `sb` (thresholds 25% and 75%) and `sd` (the default thresholds), both
/// with t2.small at 3.6/h: a 60-second first period costs 0.06.
fn write_files(dir: &Path) {
    let conn = dir.join("connectors.d");
    std::fs::create_dir_all(conn.join("prices")).unwrap();
    std::fs::write(
        conn.join("sb.conf"),
        "cloud.connector.class = sb:sandbox, sd:sandbox\nsb.boot.delay.ms = 0\nsb.budget.thresholds = 75, 25\nsd.boot.delay.ms = 0\n",
    )
    .unwrap();
    std::fs::write(conn.join("prices").join("sb.conf"), "sb.price.instance.t2.small = 3.6\nsd.price.instance.t2.small = 3.6\n").unwrap();
}

async fn start(dir: &Path, db: Option<String>, poll_secs: u64) -> Broker {
    let mut config = Config::for_tests(dir, db);
    config.admin_password = Some(SecretString::new("super-password-1"));
    config.config_poll_secs = poll_secs;
    let b = Broker::start(config, common::connectors()).await.unwrap();
    b.clock.set(t0());
    b
}

async fn setup(b: &Broker) {
    let mut mappings = BTreeMap::new();
    for i in ["sb", "sd"] {
        mappings.insert(instance(i), ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: None, security_group: None });
    }
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    b.images.put(&Actor::system(), spec, true).await.unwrap();
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&Actor::system(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

fn small(on: &str) -> LaunchRequest {
    let mut r = LaunchRequest::new(instance(on), image_ref("linux"));
    r.instance_type = Some(InstanceType::parse("t2.small").unwrap());
    r
}

async fn budget(b: &Broker, who: &str, on: &str, amount: i64) {
    b.costs.set_budget(&Actor::system(), BudgetScope::User, who, &instance(on), Some(Micros(amount))).await.unwrap();
}

async fn scenario(dir: &Path, db: Option<String>) {
    write_files(dir);
    let b = start(dir, db, 5).await;
    setup(&b).await;
    let alice = add_user(&b, "alice").await;

    // No override anywhere: launches look none up (the count, read once).
    let reads = || b.provisioning.budget_overrides.reads();
    for _ in 0..5 {
        b.provisioning.launch(&alice, small("sd")).await.unwrap();
    }
    assert!(reads() <= 1, "{} statements for five launches with no override", reads());
    // An override set here binds the next launch; each launch then runs one statement.
    let before = reads();
    budget(&b, "alice", "sb", 240_000).await;
    assert_eq!(reads(), before + 2, "setting it re-reads the count, then reads the budget back");
    for i in 1..=2 {
        b.provisioning.launch(&alice, small("sb")).await.unwrap();
        assert_eq!(reads(), before + 2 + i, "one statement per launch for the user's and the project's");
    }

    // A project budget on a personal project: refused, naming the user budget.
    let e =
        b.costs.set_budget(&Actor::system(), BudgetScope::Project, "alice", &instance("sb"), Some(Micros(1_000_000))).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("owner"), .. }), "{e:?}");
    assert!(e.to_string().contains("'alice' is a personal project") && e.to_string().contains("user budget"), "{e}");
    assert!(b.store().budget_overrides(BudgetScope::Project, "alice").await.unwrap().is_empty(), "nothing stored");

    // sb's thresholds are 25% and 75% of 0.24: two launches (0.12, 50%) cross 25%.
    let first = b.costs.watch_budgets().await.unwrap();
    assert!(first.ran);
    assert_eq!(first.alerts.len(), 1, "{:#?}", first.alerts);
    assert!(first.alerts[0].contains("on 'sb' (25% reached"), "{:#?}", first.alerts);
    b.provisioning.launch(&alice, small("sb")).await.unwrap();
    let second = b.costs.watch_budgets().await.unwrap();
    assert_eq!(second.alerts.len(), 1, "{:#?}", second.alerts);
    assert!(second.alerts[0].contains("(75% reached"), "{:#?}", second.alerts);
    // At 100% (not a threshold of sb) nothing more; each threshold once.
    b.provisioning.launch(&alice, small("sb")).await.unwrap();
    assert!(b.costs.watch_budgets().await.unwrap().alerts.is_empty());
    let recorded: Vec<i64> =
        b.store().budget_alerts(BudgetScope::User, "alice", "2026-12").await.unwrap().iter().map(|a| a.threshold).collect();
    assert_eq!(recorded, vec![75, 25]);

    // The banner: the highest threshold per instance, with its level.
    let banner = b.costs.budget_alerts_for(&alice).await.unwrap();
    assert_eq!(banner.len(), 1, "{banner:#?}");
    assert_eq!((banner[0].threshold, banner[0].reached(), banner[0].instance.as_str()), (75, false, "sb"));
    assert_eq!((banner[0].spent, banner[0].budget), (Micros(180_000), Micros(240_000)));
    // bob reaches his budget on sd (default thresholds): red.
    let bob = add_user(&b, "bob").await;
    budget(&b, "bob", "sd", 60_000).await;
    b.provisioning.launch(&bob, small("sd")).await.unwrap();
    let pass = b.costs.watch_budgets().await.unwrap();
    assert_eq!(pass.alerts.iter().filter(|a| a.contains("'bob'")).count(), 3, "50, 80 and 100: {:#?}", pass.alerts);
    let banner = b.costs.budget_alerts_for(&bob).await.unwrap();
    assert_eq!(banner.len(), 1, "{banner:#?}");
    assert_eq!((banner[0].threshold, banner[0].reached()), (100, true));
    assert_eq!(b.costs.alerts_for(&bob).await.unwrap(), vec![banner[0].text.clone()], "the words of the same alerts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_after_review_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_after_review_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), Some(TestDb::create_postgres_database(&base).await.unwrap())).await;
}

/// Two brokers on one PostgreSQL database: an override set on one binds
/// launches on the other within the configuration poll interval (1 s
/// here); the budget watch is done by the lease holder only, and each
/// alert is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_brokers_share_overrides_and_one_watch() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let url = TestDb::create_postgres_database(&base).await.unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_files(d1.path());
    write_files(d2.path());
    let b1 = start(d1.path(), Some(url.clone()), 1).await;
    let b2 = start(d2.path(), Some(url), 1).await;
    setup(&b1).await;
    let carl = add_user(&b1, "carl").await;
    // b2 believes there is no override.
    b2.provisioning.launch(&carl, small("sd")).await.unwrap();
    // b1 sets one below a first period: within the poll interval, b2 refuses.
    budget(&b1, "carl", "sd", 10_000).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let e = b2.provisioning.launch(&carl, small("sd")).await.unwrap_err();
    assert!(matches!(e, ServiceError::BudgetExceeded(_)), "{e:?}");

    // The watch: the first replica to ask holds the lease; the other skips its passes.
    let one = b1.costs.watch_budgets().await.unwrap();
    assert!(one.ran && !one.alerts.is_empty(), "{one:?}");
    let other = b2.costs.watch_budgets().await.unwrap();
    assert!(!other.ran && other.alerts.is_empty(), "{other:?}");
    assert!(b1.costs.watch_budgets().await.unwrap().ran, "the holder renews");
    let recorded = b1.store().budget_alerts(BudgetScope::User, "carl", "2026-12").await.unwrap();
    assert_eq!(recorded.len(), one.alerts.len(), "each once: {recorded:?}");
    // The holder stops (its leases released): the other takes the watch over, recording nothing twice.
    b1.release_leases().await.unwrap();
    let taken = b2.costs.watch_budgets().await.unwrap();
    assert!(taken.ran && taken.alerts.is_empty(), "{taken:?}");
    assert_eq!(b2.store().budget_alerts(BudgetScope::User, "carl", "2026-12").await.unwrap().len(), recorded.len());
}
