//! A broker process SIGKILLed mid-deployment (SQLite, the sandbox): a
//! chain of three nodes (2, 3 and 3 VMs, each node launched once the one
//! before is running) is deployed through the JSON API; the broker is
//! killed while VMs are being launched, then started again on the same
//! database (a new replica id: the dead one's claim must expire first).
//! The deployment completes: every slot has exactly one live VM (no
//! duplicate), and every VM in the cloud has its record (no orphan: the
//! reconciler adopts nothing).

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command};
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

fn start(dir: &std::path::Path) -> (Child, String) {
    common::serve(
        dir,
        &[],
        &[
            ("CLOUDBROKER_ADMIN_PASSWORD", PW),
            ("CLOUDBROKER_DEPLOY_INTERVAL_SECS", "1"),
            ("CLOUDBROKER_DEPLOY_CLAIM_TTL_SECS", "3"),
            ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1"),
            ("CLOUDBROKER_LAUNCH_GRACE_SECS", "3"),
        ],
    )
}

fn kill(child: &mut Child) {
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_deployment_is_resumed_without_orphan_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d/applications")).unwrap();
    std::fs::write(dir.path().join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 700\n").unwrap();
    std::fs::write(dir.path().join("connectors.d/applications/chain.yaml"), CHAIN).unwrap();
    let (mut broker, base) = start(dir.path());
    let http = reqwest::Client::new();
    let t = token(&http, &base).await;
    let r = http
        .post(format!("{base}/api/v1/images"))
        .bearer_auth(&t)
        .json(&json!({"name": "img", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let placement = json!({"a": {"instance": "sb"}, "b": {"instance": "sb"}, "c": {"instance": "sb"}});
    let r = http
        .post(format!("{base}/api/v1/deployments"))
        .bearer_auth(&t)
        .json(&json!({"application": "chain", "placement": placement, "on_failure": "terminate"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let d: Value = r.json().await.unwrap();
    let id = d["id"].as_str().unwrap().to_string();

    // Kill it while node b's VMs are being launched (a is up, c still held).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = get(&http, format!("{base}/api/v1/deployments/{id}"), &t).await;
        let m = members(&d);
        if m.iter().any(|s| s.starts_with("b.") && !s.ends_with("=held")) {
            break;
        }
        assert!(Instant::now() < deadline, "b never started: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(&mut broker);

    let (mut broker, base) = start(dir.path());
    let t = token(&http, &base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let d = loop {
        let d = get(&http, format!("{base}/api/v1/deployments/{id}"), &t).await;
        if d["state"] == "ready" {
            break d;
        }
        assert!(d["state"] == "provisioning" || d["state"] == "executing", "{d:#}");
        assert!(Instant::now() < deadline, "not ready after the restart: {d:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(members(&d).len(), 8, "{d:#}");

    // Exactly one live VM per slot, and nothing else live.
    let vms = get(&http, format!("{base}/api/v1/vms?limit=200"), &t).await;
    let items = vms["vms"].as_array().unwrap().clone();
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    for v in &items {
        let state = v["state"].as_str().unwrap();
        if !matches!(state, "terminated" | "failed") {
            *live.entry(v["name"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert_eq!(live.len(), 8, "{live:?}");
    assert!(live.values().all(|n| *n == 1), "a slot with two live VMs: {live:?}");

    // No orphan: a reconciliation adopts nothing.
    let r: Value = http.post(format!("{base}/api/v1/reconcile")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["adopted"], 0, "{r}");
    common::stop(&mut broker);
}
