//! Broker processes SIGKILLed mid-deployment (the sandbox, its simulated
//! cloud kept in the database, so every launch it ever took is counted).
//!
//! - One broker (SQLite, and PostgreSQL when configured): a chain of three
//!   nodes (2, 3 and 3 VMs, each node launched once the one before is
//!   running) is deployed through the JSON API; the broker is killed while
//!   VMs are being launched, then started again on the same database (a
//!   new replica id: the dead one's claim must expire first).
//! - Two brokers on one PostgreSQL database (3 nodes x 3 VMs, a chain):
//!   both drive it; one is killed mid-way, the other carries on alone.
//!
//! Either way the deployment completes: every slot has exactly one live VM
//! (no duplicate), the cloud took exactly one launch per slot, and every VM
//! in the cloud has its record (no orphan: the reconciler adopts nothing).

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PW: &str = "super-password-1";

const CHAIN: &str = "description: three nodes, each after the one before
nodes:
  a:
    image: img
    multiplicity: 2
    ready_when: running
  b:
    image: img
    multiplicity: 3
    ready_when: running
    depends_on: [a]
  c:
    image: img
    multiplicity: 3
    ready_when: running
    depends_on: [b]
";

/// Nodes of 3 VMs each, in a chain (for the two-broker test).
const CHAIN3: &str = "description: three nodes of three VMs, each after the one before
nodes:
  a:
    image: img
    multiplicity: 3
    ready_when: running
  b:
    image: img
    multiplicity: 3
    ready_when: running
    depends_on: [a]
  c:
    image: img
    multiplicity: 3
    ready_when: running
    depends_on: [b]
";

fn start(dir: &std::path::Path, db: &str) -> (common::Broker, String) {
    common::serve(
        dir,
        &["--database-url", db],
        &[
            ("CLOUDBROKER_ADMIN_PASSWORD", PW),
            ("CLOUDBROKER_DEPLOY_INTERVAL_SECS", "1"),
            ("CLOUDBROKER_DEPLOY_CLAIM_TTL_SECS", "3"),
            ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1"),
            ("CLOUDBROKER_LAUNCH_GRACE_SECS", "3"),
        ],
    )
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let r = http.post(format!("{base}/api/v1/tokens")).basic_auth("super", Some(PW)).send().await.unwrap();
    let status = r.status();
    let r: Value = r.json().await.unwrap_or_default();
    r["token"].as_str().unwrap_or_else(|| panic!("{status} {r}")).to_string()
}

async fn get(http: &reqwest::Client, url: String, t: &str) -> Value {
    let r = http.get(url).bearer_auth(t).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// The members' states of a deployment, as "node.idx=state".
fn members(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for n in d["nodes"].as_array().unwrap() {
        for m in n["vms"].as_array().unwrap() {
            out.push(format!("{}.{}={}", n["name"].as_str().unwrap(), m["index"], m["state"].as_str().unwrap()));
        }
    }
    out
}

/// Writes the sandbox instance `sb` and the applications into `dir`'s `connectors.d`.
fn write_files(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("connectors.d/applications")).unwrap();
    std::fs::write(dir.join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 700\n").unwrap();
    std::fs::write(dir.join("connectors.d/applications/chain.yaml"), CHAIN).unwrap();
    std::fs::write(dir.join("connectors.d/applications/chain3.yaml"), CHAIN3).unwrap();
}

/// Registers the image `img` and deploys application `app` on `sb`; returns the deployment's id.
async fn deploy(http: &reqwest::Client, base: &str, t: &str, app: &str) -> String {
    let r = http
        .post(format!("{base}/api/v1/images"))
        .bearer_auth(t)
        .json(&json!({"name": "img", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let placement = json!({"a": {"instance": "sb"}, "b": {"instance": "sb"}, "c": {"instance": "sb"}});
    let r = http
        .post(format!("{base}/api/v1/deployments"))
        .bearer_auth(t)
        .json(&json!({"application": app, "placement": placement, "on_failure": "terminate"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let d: Value = r.json().await.unwrap();
    d["id"].as_str().unwrap().to_string()
}

/// Waits until node b's VMs are being launched (a is up, c still held).
async fn until_b_launches(http: &reqwest::Client, base: &str, t: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = get(http, format!("{base}/api/v1/deployments/{id}"), t).await;
        let m = members(&d);
        if m.iter().any(|s| s.starts_with("b.") && !s.ends_with("=held")) {
            return;
        }
        assert!(Instant::now() < deadline, "b never started: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the deployment is ready (never failed meanwhile).
async fn until_ready(http: &reqwest::Client, base: &str, t: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = get(http, format!("{base}/api/v1/deployments/{id}"), t).await;
        if d["state"] == "ready" {
            return d;
        }
        assert!(d["state"] == "provisioning" || d["state"] == "executing", "{d:#}");
        assert!(Instant::now() < deadline, "not ready: {d:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cloud ids of every VM the sandbox instance `sb` ever launched (its
/// world, kept in the database).
async fn cloud_launches(db: &str) -> Vec<String> {
    let store = cloudbroker_store::Store::open(db).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let into = seen.clone();
    store
        .update_sandbox_world(
            "sb",
            Box::new(move |cur| {
                *into.lock().unwrap() = cur.map(|b| String::from_utf8_lossy(b).into_owned());
                None
            }),
        )
        .await
        .unwrap();
    let text = seen.lock().unwrap().clone().unwrap_or_default();
    let world: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the sandbox's world: {e}: {text}"));
    world["vms"].as_object().unwrap_or_else(|| panic!("no vms in the world: {world}")).keys().cloned().collect()
}

/// Exactly one live VM per slot (`slots` of them) and nothing else live;
/// the cloud took one launch per slot, each a live record's; no orphan.
async fn one_vm_per_slot(http: &reqwest::Client, base: &str, t: &str, db: &str, slots: usize) {
    let vms = get(http, format!("{base}/api/v1/vms?limit=200"), t).await;
    let items = vms["vms"].as_array().unwrap().clone();
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    let mut live_clouds = Vec::new();
    for v in &items {
        let state = v["state"].as_str().unwrap();
        if !matches!(state, "terminated" | "failed") {
            *live.entry(v["name"].as_str().unwrap().to_string()).or_default() += 1;
            live_clouds.push(v["cloud_id"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(live.len(), slots, "{live:?}");
    assert!(live.values().all(|n| *n == 1), "a slot with two live VMs: {live:?}");
    let mut launched = cloud_launches(db).await;
    launched.sort();
    live_clouds.sort();
    assert_eq!(launched, live_clouds, "each VM launched exactly once, every launch a live VM's");
    // No orphan: a reconciliation adopts nothing.
    let r: Value = http.post(format!("{base}/api/v1/reconcile")).bearer_auth(t).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["adopted"], 0, "{r}");
}

/// One broker on `db`, killed while node b launches, started again.
async fn killed_and_restarted(dir: &std::path::Path, db: &str) {
    write_files(dir);
    let (mut broker, base) = start(dir, db);
    let http = reqwest::Client::new();
    let t = token(&http, &base).await;
    let id = deploy(&http, &base, &t, "chain").await;
    until_b_launches(&http, &base, &t, &id).await;
    common::kill(&mut broker);

    let (mut broker, base) = start(dir, db);
    let t = token(&http, &base).await;
    let d = until_ready(&http, &base, &t, &id).await;
    assert_eq!(members(&d).len(), 8, "{d:#}");
    one_vm_per_slot(&http, &base, &t, db, 8).await;
    common::stop(&mut broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_deployment_is_resumed_without_orphan_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/deploy.db", dir.path().display());
    killed_and_restarted(dir.path(), &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_deployment_is_resumed_without_orphan_or_duplicate_on_postgresql() {
    let Ok(base) = std::env::var("CLOUDBROKER_TEST_POSTGRES_URL") else {
        eprintln!("NOTICE: CLOUDBROKER_TEST_POSTGRES_URL is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let db = cloudbroker_store::testing::TestDb::create_postgres_database(&base).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    killed_and_restarted(dir.path(), &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_brokers_drive_one_deployment_and_one_is_killed_mid_way() {
    let Ok(base) = std::env::var("CLOUDBROKER_TEST_POSTGRES_URL") else {
        eprintln!("NOTICE: CLOUDBROKER_TEST_POSTGRES_URL is not set: the two-broker PostgreSQL test was SKIPPED");
        return;
    };
    let db = cloudbroker_store::testing::TestDb::create_postgres_database(&base).await.unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_files(a_dir.path());
    write_files(b_dir.path());
    let (mut a, a_url) = start(a_dir.path(), &db);
    // The replicas share the master key, as they share the database.
    std::fs::create_dir_all(b_dir.path().join("data")).unwrap();
    std::fs::copy(a_dir.path().join("data/master.key"), b_dir.path().join("data/master.key")).unwrap();
    let (mut b, b_url) = start(b_dir.path(), &db);
    let http = reqwest::Client::new();
    let ta = token(&http, &a_url).await;
    let tb = token(&http, &b_url).await;
    let id = deploy(&http, &a_url, &ta, "chain3").await;
    until_b_launches(&http, &b_url, &tb, &id).await;
    common::kill(&mut a);

    let d = until_ready(&http, &b_url, &tb, &id).await;
    assert_eq!(members(&d).len(), 9, "{d:#}");
    one_vm_per_slot(&http, &b_url, &tb, &db, 9).await;
    common::stop(&mut b);
}
