//! Two broker processes on one PostgreSQL: 100 concurrent launches against a
//! quota of 10 admit exactly 10 in total, at once after the quota switch is
//! turned on through the other replica (no wait for the configuration poll,
//! which is set to an hour here).

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use serde_json::{json, Value};
mod common;

const PW: &str = "super-password-1";

fn start(dir: &std::path::Path, db: &str) -> (common::Broker, String) {
    common::serve(dir, &["--database-url", db], &[("CLOUDBROKER_ADMIN_PASSWORD", PW), ("CLOUDBROKER_CONFIG_POLL_SECS", "3600")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_broker_processes_share_one_quota() {
    let Ok(base_url) = std::env::var("CLOUDBROKER_TEST_POSTGRES_URL") else {
        eprintln!("NOTICE: CLOUDBROKER_TEST_POSTGRES_URL is not set: the two-replica PostgreSQL test was SKIPPED");
        return;
    };
    let db = cloudbroker_store::testing::TestDb::create_postgres_database(&base_url).await.unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&a_dir, &b_dir] {
        std::fs::create_dir_all(d.path().join("connectors.d")).unwrap();
        std::fs::write(d.path().join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n").unwrap();
    }
    let (mut a, a_url) = start(a_dir.path(), &db);
    // The replicas share the master key, as they share the database.
    std::fs::create_dir_all(b_dir.path().join("data")).unwrap();
    std::fs::copy(a_dir.path().join("data/master.key"), b_dir.path().join("data/master.key")).unwrap();
    let (mut b, b_url) = start(b_dir.path(), &db);

    let http = reqwest::Client::new();
    let tok = |base: String| {
        let http = http.clone();
        async move {
            let r: Value =
                http.post(format!("{base}/api/v1/tokens")).basic_auth("super", Some(PW)).send().await.unwrap().json().await.unwrap();
            r["token"].as_str().unwrap().to_string()
        }
    };
    let ta = tok(a_url.clone()).await;
    let send = |m: reqwest::Method, url: String, t: &str, body: Value| http.request(m, url).bearer_auth(t.to_string()).json(&body).send();
    assert!(send(
        reqwest::Method::PUT,
        format!("{a_url}/api/v1/system/config"),
        &ta,
        json!({"quota.enable": true, "images.allow.raw": true})
    )
    .await
    .unwrap()
    .status()
    .is_success());
    assert!(send(reqwest::Method::POST, format!("{a_url}/api/v1/users"), &ta, json!({"name": "alice", "password": "alice-password"}))
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(send(reqwest::Method::PUT, format!("{a_url}/api/v1/users/alice/quotas/sb"), &ta, json!({"vm": 10}))
        .await
        .unwrap()
        .status()
        .is_success());
    let alice_token = |base: String| {
        let http = http.clone();
        async move {
            let r: Value = http
                .post(format!("{base}/api/v1/tokens"))
                .basic_auth("alice", Some("alice-password"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["token"].as_str().unwrap().to_string()
        }
    };
    let alice_a = alice_token(a_url.clone()).await;
    let alice_b = alice_token(b_url.clone()).await;
    // No wait: replica b must not launch by its stale configuration.

    let mut tasks = Vec::new();
    for i in 0..100 {
        let (url, t) =
            if i % 2 == 0 { (format!("{a_url}/api/v1/vms"), alice_a.clone()) } else { (format!("{b_url}/api/v1/vms"), alice_b.clone()) };
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(t).json(&json!({"instance": "sb", "image": "ami-sandbox-debian-12"})).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            // Every refusal is the quota's (a stale replica would refuse the raw image instead, or admit too many).
            if status != 201 {
                assert_eq!(body["error"]["code"], "quota_exceeded", "{status} {body}");
            }
            status
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    for c in [&mut a, &mut b] {
        common::stop(c);
    }
    let ok = codes.iter().filter(|c| **c == 201).count();
    let over = codes.iter().filter(|c| **c == 409).count();
    assert_eq!((ok, over), (10, 90), "{codes:?}");
    let store = cloudbroker_store::Store::open(&db).await.unwrap();
    assert_eq!(
        store
            .quota_usage(&"alice".parse().unwrap(), &"sb".parse().unwrap(), &cloudbroker_core::domain::VmStatus::QUOTA_COUNTED)
            .await
            .unwrap(),
        10
    );
}
