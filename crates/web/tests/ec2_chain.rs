//! Two brokers chained: broker A's `ec2query` connector instances point at
//! broker B's EC2 front (`/ec2`), one signing with SigV4 (region = B's
//! instance), one with SigV2 (instance in the path). A user of A launches,
//! lists, stops and terminates VMs through A's JSON API; they run on B's
//! sandbox. This tests the `ec2query` connector and the EC2 front end to end.
//! The awscli session of ec2_awscli.rs (tests/ec2/awscli_session.sh) runs
//! through the chain too: against A's `/ec2`, region = A's `ec2query`
//! instance in front of B's `/ec2`.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;
#[path = "ec2/session.rs"]
mod session;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

async fn state(app: &TestApp, token: &str, id: &str) -> String {
    let (s, v) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), token, None).await;
    assert_eq!(s, 200, "{v}");
    v["state"].as_str().unwrap().to_string()
}

/// Reconciles A until the VM is in one of `want` (A's records follow B's).
async fn until(a: &TestApp, token: &str, id: &str, want: &[&str]) -> String {
    let mut s = String::new();
    for _ in 0..60 {
        a.broker.provisioning.reconcile("chain").await.unwrap();
        s = state(a, token, id).await;
        if want.contains(&s.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_drives_another_through_its_ec2_front_in_sigv4_and_sigv2() {
    // Broker B: a sandbox, an image, a user with an access key.
    let b = TestApp::sqlite().await;
    let b_admin = b.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(b.call(Method::POST, "/api/v1/images", &b_admin, Some(image)).await.0, 201);
    let b_alice = b.user(&b_admin, "alice").await;
    let (s, key) = b.call(Method::POST, "/api/v1/users/alice/access-keys", &b_alice, None).await;
    assert_eq!(s, 201, "{key}");
    let (ak, sk) = (key["access_key_id"].as_str().unwrap(), key["secret_access_key"].as_str().unwrap());
    // B's stable ami- id for its native image, as its DescribeImages shows it.
    let ami = cloudbroker_ec2_api::ids::image_id("ubuntu");

    // Broker A: two ec2query instances in front of B.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/chain.conf"),
        format!(
            "cloud.connector.class = via-v4:ec2query, via-v2:ec2query\n\
             via-v4.endpoint = {ep}\nvia-v4.region = sb\nvia-v4.timeout.seconds = 10\n\
             via-v2.endpoint = {ep}/sb\nvia-v2.signature.version = 2\nvia-v2.timeout.seconds = 10\n",
            ep = b.url("/ec2")
        ),
    )
    .unwrap();
    let a = TestApp::start(None, dir).await.unwrap();
    let a_admin = a.token("super", SUPER_PW).await;
    let img = json!({"name": "linux", "mappings": {"via-v4": {"image_id": ami, "instance_type": "t2.micro"}, "via-v2": {"image_id": ami}}});
    let (s, body) = a.call(Method::POST, "/api/v1/images", &a_admin, Some(img)).await;
    assert_eq!(s, 201, "{body}");
    let a_alice = a.user(&a_admin, "alice").await;

    for via in ["via-v4", "via-v2"] {
        let creds = json!({"access_key_id": ak, "secret_access_key": sk});
        let (s, c) = a.call(Method::PUT, &format!("/api/v1/users/alice/credentials/{via}"), &a_alice, Some(creds)).await;
        assert_eq!((s, c["status"].as_str()), (200, Some("verified")), "{via}: {c}");
        let (s, l) =
            a.call(Method::POST, "/api/v1/vms", &a_alice, Some(json!({"instance": via, "image": "linux", "count": 2, "name": via}))).await;
        assert_eq!(s, 201, "{via}: {l}");
        let ids: Vec<String> = l["vms"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
        assert!(l["vms"].as_array().unwrap().iter().all(|v| v["cloud_id"].as_str().is_some_and(|c| c.starts_with("i-"))), "{l}");
        // B's records follow its sandbox; A's follow B.
        let b_broker = b.broker.clone();
        let pump = tokio::spawn(async move {
            loop {
                let _ = b_broker.provisioning.reconcile("b").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        assert_eq!(until(&a, &a_alice, &ids[0], &["running"]).await, "running", "{via}");
        let (s, v) = a.call(Method::POST, &format!("/api/v1/vms/{}/stop", ids[0]), &a_alice, None).await;
        assert_eq!(s, 200, "{via}: {v}");
        assert_eq!(until(&a, &a_alice, &ids[0], &["stopped"]).await, "stopped", "{via}");
        for id in &ids {
            let (s, v) = a.call(Method::POST, &format!("/api/v1/vms/{id}/terminate"), &a_alice, None).await;
            assert_eq!(s, 200, "{via}: {v}");
        }
        assert_eq!(until(&a, &a_alice, &ids[1], &["terminated"]).await, "terminated", "{via}");
        pump.abort();
        // A's reconcile pass met no error and ended nothing by mistake.
        let r = a.broker.provisioning.reconcile("chain").await.unwrap();
        assert!(r.errors.is_empty(), "{via}: {r:?}");
    }
    // On B, alice's VMs carry A's tags on the records (so A finds them) and B's own on its cloud.
    let (_, list) = b.call(Method::GET, "/api/v1/vms?limit=10", &b_alice, None).await;
    let vms = list["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 4, "{list}");
    assert!(vms.iter().all(|v| v["tags"]["cloudbroker:broker"] == json!(a.broker.provisioning.broker_id())), "{list}");
    // ...which is how A's reconciler found them: by its tag, not only by id.
    let conn = a.broker.registry.snapshot().instance("via-v4").unwrap().connector.clone().unwrap();
    let (creds, _) = a
        .broker
        .vault
        .credentials_for(&cloudbroker_core::testing::user("alice"), &cloudbroker_core::testing::instance("via-v4"))
        .await
        .unwrap();
    let tagged = conn
        .describe_instances(
            &creds,
            &cloudbroker_connector_api::DescribeFilter::tag("cloudbroker:broker", a.broker.provisioning.broker_id()),
        )
        .await
        .unwrap();
    assert_eq!(tagged.len(), 4, "{tagged:?}");
}

/// The awscli session through the chain: awscli → A's `/ec2` (region
/// `via`, an `ec2query` instance) → B's `/ec2` (region `sb`, a sandbox).
/// The zone is the sandbox's (`sba`): A passes zones to its cloud as given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_awscli_session_runs_through_the_chain() {
    let b = TestApp::sqlite().await;
    let b_admin = b.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(b.call(Method::POST, "/api/v1/images", &b_admin, Some(image)).await.0, 201);
    let b_alice = b.user(&b_admin, "alice").await;
    let (s, key) = b.call(Method::POST, "/api/v1/users/alice/access-keys", &b_alice, None).await;
    assert_eq!(s, 201, "{key}");
    let ami = cloudbroker_ec2_api::ids::image_id("ubuntu");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/chain.conf"),
        format!("cloud.connector.class = via:ec2query\nvia.endpoint = {}\nvia.region = sb\nvia.timeout.seconds = 10\n", b.url("/ec2")),
    )
    .unwrap();
    let a = TestApp::start(None, dir).await.unwrap();
    let a_admin = a.token("super", SUPER_PW).await;
    let img = json!({"name": "linux", "mappings": {"via": {"image_id": ami, "instance_type": "t2.micro"}}});
    assert_eq!(a.call(Method::POST, "/api/v1/images", &a_admin, Some(img)).await.0, 201);
    let a_alice = a.user(&a_admin, "alice").await;
    let creds = json!({"access_key_id": key["access_key_id"], "secret_access_key": key["secret_access_key"]});
    let (s, c) = a.call(Method::PUT, "/api/v1/users/alice/credentials/via", &a_alice, Some(creds)).await;
    assert_eq!((s, c["status"].as_str()), (200, Some("verified")), "{c}");
    let (s, a_key) = a.call(Method::POST, "/api/v1/users/alice/access-keys", &a_alice, None).await;
    assert_eq!(s, 201, "{a_key}");
    let a_key = (a_key["access_key_id"].as_str().unwrap().to_string(), a_key["secret_access_key"].as_str().unwrap().to_string());
    // Both brokers' records follow their clouds meanwhile.
    let pumps: Vec<_> = [a.broker.clone(), b.broker.clone()]
        .into_iter()
        .map(|broker| {
            tokio::spawn(async move {
                loop {
                    let _ = broker.provisioning.reconcile("chain-session").await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    let out = session::session_steps(a.url("/ec2"), "via", "sba", "linux", &a_key).await;
    for p in pumps {
        p.abort();
    }
    for step in ["OK: RunInstances ", "OK: AttachVolume ", "OK: TerminateInstances ", "OK: DeleteVolume "] {
        assert!(out.contains(step), "{step}: {out}");
    }
    // What A launched ran on B's sandbox, as alice's, and ended there.
    let (_, list) = b.call(Method::GET, "/api/v1/vms?limit=10", &b_alice, None).await;
    let vms = list["vms"].as_array().unwrap();
    assert!(!vms.is_empty() && vms.iter().all(|v| v["state"] == "terminated" || v["state"] == "shutting-down"), "{list}");
}
