//! An idle broker asks the cloud nothing per VM (issue 28): with every VM
//! running and none on the move, the transition watch and the lease worker
//! make no cloud call at all, and a full reconcile pass is one
//! `DescribeInstances` page per (instance, credential), filtered by the
//! broker's tag, never a call per VM. Counted at moto's fault wrapper, the
//! background workers running meanwhile; on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_testkit::{MotoOptions, MotoServer};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// VMs the idle account runs (one launch).
const VMS: usize = 40;

async fn an_idle_account_costs_a_page_per_pass(db_url: Option<String>) {
    let moto = MotoServer::start(MotoOptions { ec2_only: true, ..MotoOptions::default() });
    let app = TestApp::on_moto(db_url, &moto, "").await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let image = json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let creds = json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"});
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &alice, Some(creds)).await.0, 200);
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu", "count": VMS}))).await;
    assert_eq!(s, 201, "{b}");

    // Settle: the watch brings every VM to running, a full pass after it.
    for _ in 0..20 {
        if app.broker.provisioning.watch_transitional("t").await.unwrap().groups == 0 {
            break;
        }
    }
    app.broker.provisioning.reconcile("t").await.unwrap();
    let (_, list) = app.call(Method::GET, "/api/v1/vms?limit=100", &alice, None).await;
    let vms = list["vms"].as_array().unwrap();
    assert_eq!(vms.len(), VMS, "{list}");
    assert!(vms.iter().all(|vm| vm["state"] == "running"), "{list}");

    // Idle: the watch and a lease pass by hand, the background workers for
    // a few seconds (the watch runs every 3 s, the lease worker every 5 s):
    // not one call.
    moto.reset().await;
    let r = app.broker.provisioning.watch_transitional("t").await.unwrap();
    assert_eq!(r.groups, 0, "{r:?}");
    app.broker.provisioning.lease_pass("t").await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = moto.stats().await;
    assert_eq!(stats["requests"], 0, "an idle broker asked the cloud: {stats}");

    // Two full passes: one page each, by the broker's tag, nothing per VM.
    for _ in 0..2 {
        let r = app.broker.provisioning.reconcile("t").await.unwrap();
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!((r.groups, r.updated, r.vanished, r.adopted), (1, 0, 0, 0), "{r:?}");
    }
    let stats = moto.stats().await;
    let log = stats["log"].as_array().unwrap();
    assert_eq!(stats["requests"], 2, "{stats}");
    assert!(
        log.iter().all(|e: &Value| e["action"] == "DescribeInstances"
            && e["instance_ids"].as_u64().unwrap_or(0) == 0
            && e["filters"].as_u64().unwrap_or(0) >= 1),
        "a pass is one tag-filtered listing, no call by id: {stats}"
    );
    app.stop().await;
}

db_url_test!(idle, super::an_idle_account_costs_a_page_per_pass);
