//! Launches into a cloud that misbehaves: moto behind the project's fault
//! wrapper (scripts/moto_fault_server.py) throttles 20% of all requests,
//! answers `InsufficientInstanceCapacity` to 5% of launches and adds latency
//! spikes. Every launch either succeeds or fails with the cloud's own error
//! code; none is lost (the cloud holds exactly the broker's running VMs, each
//! known once); retries are bounded (at most 5 attempts a call) and every
//! retry shows in `/metrics`. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const LAUNCHES: usize = 40;
const MAX_ATTEMPTS: u64 = 5;

/// The sum of a counter's samples whose labels contain all of `labels`.
fn counter(metrics: &str, name: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

async fn all_vms(app: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/vms?limit=100&cursor={c}"),
            None => "/api/v1/vms?limit=100".to_string(),
        };
        let (s, b) = app.call(Method::GET, &path, token, None).await;
        assert_eq!(s, 200, "{b}");
        out.extend(b["vms"].as_array().unwrap().iter().cloned());
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn launches_into_a_faulty_cloud(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(db_url, &moto, "aws.max.iaas.workers = 8\naws.quota.vm = 1000\n").await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let image = json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let creds = json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"});
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &alice, Some(creds)).await;
    assert_eq!(s, 200, "{b}");

    let metrics_before = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    moto.reset().await;
    moto.set_faults(json!({"throttle_rate": 0.2, "capacity_error_rate": 0.05, "spike_rate": 0.05, "spike_ms": 700, "seed": 11})).await;

    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..LAUNCHES {
        let (http, url, token, sem) = (app.http.clone(), app.url("/api/v1/vms"), alice.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            let body = json!({"instance": "aws", "image": "ubuntu", "name": format!("f{i}")});
            let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 201 {
            ok += 1;
        } else {
            // Refused with the cloud's own code, never an internal error.
            let code = body["error"]["code"].as_str().unwrap_or_default().to_string();
            assert!(
                ["cloud.InsufficientInstanceCapacity", "cloud.RequestLimitExceeded"].contains(&code.as_str()) && status == 503,
                "{status} {body}"
            );
            refused.push(code);
        }
    }
    let stats = moto.stats().await;
    moto.set_faults(json!({})).await;
    let injected = &stats["injected"];
    assert!(injected["throttle"].as_u64().unwrap() > 0 && injected["spike"].as_u64().unwrap() > 0, "no fault was injected: {stats}");
    eprintln!("faults: {ok} launched, {} refused {refused:?}; injected {injected}", refused.len());
    assert!(ok > 0, "nothing launched through 20% throttling: {stats}");

    // Settle: one reconcile pass with the faults off.
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    let vms = all_vms(&app, &alice).await;
    assert_eq!(vms.len(), LAUNCHES, "every launch is recorded once");
    let running: Vec<&Value> = vms.iter().filter(|v| v["state"] == "running").collect();
    let failed: Vec<&Value> = vms.iter().filter(|v| v["state"] == "failed").collect();
    assert_eq!((running.len(), failed.len()), (ok, refused.len()), "{vms:?}");
    for v in &failed {
        let why = v["error"].as_str().unwrap_or_default();
        assert!(
            why.contains("InsufficientInstanceCapacity") || why.contains("RequestLimitExceeded"),
            "failed without the cloud's reason: {v}"
        );
    }
    // The cloud holds exactly the running ones: no orphan, no duplicate.
    let snap = app.broker.registry.snapshot();
    let conn = snap.instance("aws").unwrap().connector.clone().unwrap();
    let (c, _) = app
        .broker
        .vault
        .credentials_for(&cloudbroker_core::testing::user("alice"), &cloudbroker_core::testing::instance("aws"))
        .await
        .unwrap();
    let filter = cloudbroker_connector_api::DescribeFilter::tag("cloudbroker:broker", app.broker.provisioning.broker_id());
    let cloud: BTreeSet<String> = conn.describe_instances(&c, &filter).await.unwrap().into_iter().map(|v| v.id).collect();
    let known: BTreeSet<String> = running.iter().map(|v| v["cloud_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(known.len(), running.len(), "a cloud id is known twice");
    assert_eq!(cloud, known);

    // Bounded retries, each one visible in the metrics.
    let attempts = stats["actions"]["RunInstances"].as_u64().unwrap();
    assert!(attempts <= LAUNCHES as u64 * MAX_ATTEMPTS, "{attempts} RunInstances attempts for {LAUNCHES} launches");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let label = ["instance=\"aws\"", "action=\"RunInstances\""];
    let retries =
        counter(&metrics, "cloudbroker_cloud_retries_total", &label) - counter(&metrics_before, "cloudbroker_cloud_retries_total", &label);
    assert_eq!(retries, attempts - LAUNCHES as u64, "every RunInstances attempt after a launch's first is a counted retry");
    assert!(counter(&metrics, "cloudbroker_cloud_throttles_total", &["instance=\"aws\""]) > 0, "{metrics}");
    app.stop().await;
}

/// A reconcile pass works on several (instance, credential) groups at once:
/// with the cloud's listings slowed down, more than one is in the cloud at
/// the same moment, and the pass still reports every group.
async fn reconcile_groups_run_at_once(db_url: Option<String>) {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(db_url, &moto, "aws.max.iaas.workers = 8\n").await;
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    for i in 0..4 {
        let name = format!("user{i}");
        let t = app.user(&admin, &name).await;
        let creds = json!({"access_key_id": format!("AKIAGROUP{i:011}"), "secret_access_key": format!("group-secret-{i}")});
        assert_eq!(app.call(Method::PUT, &format!("/api/v1/users/{name}/credentials/aws"), &t, Some(creds)).await.0, 200);
        let (s, b) = app.call(Method::POST, "/api/v1/vms", &t, Some(json!({"instance": "aws", "image": "ubuntu"}))).await;
        assert_eq!(s, 201, "{b}");
    }
    moto.reset().await;
    moto.set_faults(json!({"delay_ms": 400, "delay_actions": ["DescribeInstances"]})).await;
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((r["groups"].as_u64(), r["errors"].as_array().map(Vec::len)), (Some(4), Some(0)), "{r}");
    let stats = moto.stats().await;
    moto.set_faults(json!({})).await;
    assert!(stats["actions"]["DescribeInstances"].as_u64().unwrap() >= 4, "{stats}");
    assert!(stats["peak_in_flight"].as_u64().unwrap() >= 2, "the groups were listed one after another: {stats}");
    app.stop().await;
}

db_url_test!(reconcile_groups_at_once, super::reconcile_groups_run_at_once);

db_url_test!(faulty_cloud, super::launches_into_a_faulty_cloud);
