//! Native images, VMs and quotas through the real server, on sandbox and on
//! ec2 against moto.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::testing::{image, instance, user};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn setup_images(app: &TestApp, admin: &str) {
    let (s, b) = app
        .call(Method::POST, "/api/v1/images", admin, Some(json!({"name": "linux", "description": "any Linux", "os": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12", "instance_type": "t2.small"}}})))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app
        .call(Method::POST, "/api/v1/images", admin, Some(json!({"name": "ubuntu-22.04", "description": "Ubuntu 22.04", "os": "linux", "parent": "linux", "mappings": {"sb2": {"image_id": "ami-sandbox-ubuntu-2204"}}})))
        .await;
    assert_eq!(s, 201, "{b}");
}

app_test!(image_resolution_inheritance_and_errors, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    setup_images(&app, &admin).await;
    let r = app.broker.images.resolve(&image("ubuntu-22.04"), &instance("sb2")).await.unwrap();
    assert_eq!((r.image_id.as_str(), r.from_image.as_str()), ("ami-sandbox-ubuntu-2204", "ubuntu-22.04"));
    let r = app.broker.images.resolve(&image("ubuntu-22.04"), &instance("sb")).await.unwrap();
    assert_eq!(
        (r.image_id.as_str(), r.from_image.as_str(), r.instance_type.as_deref()),
        ("ami-sandbox-debian-12", "linux", Some("t2.small"))
    );
    let e = app.broker.images.resolve(&image("linux"), &instance("sb2")).await.unwrap_err().to_string();
    assert_eq!(e, "image 'linux' has no cloud image id for connector instance 'sb2'");
    app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "ubuntu-min", "parent": "ubuntu-22.04"}))).await;
    let e = app.broker.images.resolve(&image("ubuntu-min"), &instance("nowhere")).await.unwrap_err().to_string();
    assert!(e.contains("(nor do its parents ubuntu-22.04, linux)"), "{e}");

    // Cycles, missing parents, unknown instances and duplicates are refused; nothing changes.
    let (s, b) = app
        .call(Method::PUT, "/api/v1/images/linux", &admin, Some(json!({"parent": "ubuntu-min", "mappings": {"sb": {"image_id": "ami-x"}}})))
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("cycle: linux -> ubuntu-min -> ubuntu-22.04 -> linux"), "{b}");
    let (s, _) = app.call(Method::PUT, "/api/v1/images/linux", &admin, Some(json!({"parent": "linux"}))).await;
    assert_eq!(s, 409);
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "x", "parent": "ghost"}))).await;
    assert!(s == 409 && b["error"]["message"].as_str().unwrap().contains("parent image 'ghost' does not exist"), "{b}");
    let (s, b) =
        app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "y", "mappings": {"mars": {"image_id": "ami-1"}}}))).await;
    assert!(s == 409 && b["error"]["message"].as_str().unwrap().contains("no connector instance 'mars'"), "{b}");
    let (s, _) = app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "linux"}))).await;
    assert_eq!(s, 409);
    let (s, _) = app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "Bad Name"}))).await;
    assert_eq!(s, 400);
    let (_, linux) = app.call(Method::GET, "/api/v1/images/linux", &admin, None).await;
    assert_eq!(linux["mappings"]["sb"]["image_id"], "ami-sandbox-debian-12");
    assert_eq!(linux["parent"], Value::Null);
    let (s, b) = app.call(Method::DELETE, "/api/v1/images/linux", &admin, None).await;
    assert!(s == 409 && b["error"]["message"].as_str().unwrap().contains("parent of ubuntu-22.04"), "{b}");
    // Users read images but do not write them.
    let alice = app.user(&admin, "alice").await;
    let (s, l) = app.call(Method::GET, "/api/v1/images", &alice, None).await;
    assert_eq!((s, l["images"].as_array().unwrap().len()), (200, 3));
    let (s, _) = app.call(Method::DELETE, "/api/v1/images/ubuntu-min", &alice, None).await;
    assert_eq!(s, 403);
});

#[tokio::test]
async fn image_files_win_and_report_file_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d/images")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/images/10-base.conf"),
        "# ids per instance\nubuntu-22.04.sb = ami-sandbox-ubuntu-2204\nubuntu-22.04.mars = ami-1\nBad Image.sb = ami-2\nubuntu-22.04.sb = ami-dup\ndebian.sb2 =\n",
    )
    .unwrap();
    let app = TestApp::start(None, dir).await.unwrap();
    let snap = app.broker.registry.snapshot();
    let errs = snap.file_errors.join("\n");
    assert!(errs.contains("10-base.conf:3: key 'ubuntu-22.04.mars': no connector instance 'mars' is declared"), "{errs}");
    assert!(errs.contains("10-base.conf:4: image name 'Bad Image' is invalid"), "{errs}");
    assert!(errs.contains("10-base.conf:5: duplicate image id for 'ubuntu-22.04.sb'"), "{errs}");
    let r = app.broker.images.resolve(&image("ubuntu-22.04"), &instance("sb")).await.unwrap();
    assert_eq!(r.image_id, "ami-sandbox-ubuntu-2204");
    // An API value for the same mapping is overridden by the file, and shown so.
    let admin = app.token("super", SUPER_PW).await;
    let (s, b) = app.call(Method::PUT, "/api/v1/images/ubuntu-22.04", &admin, Some(json!({"description": "LTS", "mappings": {"sb": {"image_id": "ami-from-api"}, "sb2": {"image_id": "ami-sandbox-debian-12"}}}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["mappings"]["sb"]["image_id"], "ami-sandbox-ubuntu-2204");
    assert!(b["file_mappings"]["sb"].as_str().unwrap().ends_with("10-base.conf:2"), "{b}");
    assert_eq!(b["mappings"]["sb2"]["image_id"], "ami-sandbox-debian-12");
}

async fn vm_state(app: &TestApp, token: &str, id: &str) -> Value {
    let (s, v) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), token, None).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn reconcile(app: &TestApp, admin: &str) -> Value {
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", admin, None).await;
    assert_eq!(s, 200, "{r}");
    r
}

app_test!(sandbox_vm_lifecycle, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    setup_images(&app, &admin).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ubuntu-22.04", "count": 2, "name": "web", "client_token": "req-1", "tags": {"team": "blue"}}))).await;
    assert_eq!(s, 201, "{b}");
    let vms = b["vms"].as_array().unwrap().clone();
    assert_eq!(vms.len(), 2);
    for v in &vms {
        assert_eq!(v["image_id"], "ami-sandbox-debian-12", "inherited from linux");
        assert_eq!(v["instance_type"], "t2.small", "default size of the image");
        assert_eq!(v["state"], "pending");
        assert!(v["cloud_id"].as_str().unwrap().starts_with("i-"));
        assert!(v["address"].as_str().unwrap().starts_with("203.0."), "auto policy prefers the public address: {v}");
    }
    assert_eq!(vms[0]["name"], "web-0");
    // The same client token: the same VMs, no new launch.
    let (s, again) = app
        .call(
            Method::POST,
            "/api/v1/vms",
            &alice,
            Some(json!({"instance": "sb", "image": "ubuntu-22.04", "count": 2, "client_token": "req-1"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(again["vms"].as_array().unwrap().len(), 2);
    assert_eq!(again["vms"][0]["id"], vms[0]["id"]);

    let id = vms[0]["id"].as_str().unwrap().to_string();
    let r = reconcile(&app, &admin).await;
    assert_eq!(r["updated"], 2, "{r}");
    assert_eq!(vm_state(&app, &alice, &id).await["state"], "running");

    // Bob sees nothing of alice's.
    let (s, _) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), &bob, None).await;
    assert_eq!(s, 404);
    let (s, _) = app.call(Method::POST, &format!("/api/v1/vms/{id}/terminate"), &bob, None).await;
    assert_eq!(s, 404);
    let (_, l) = app.call(Method::GET, "/api/v1/vms", &bob, None).await;
    assert!(l["vms"].as_array().unwrap().is_empty());
    let (_, l) = app.call(Method::GET, "/api/v1/vms?state=running", &alice, None).await;
    assert_eq!(l["vms"].as_array().unwrap().len(), 2);
    let (s, _) = app.call(Method::GET, "/api/v1/vms?colour=red", &alice, None).await;
    assert_eq!(s, 400);
    let (_, l) = app.call(Method::GET, "/api/v1/vms?tag=team=blue", &alice, None).await;
    assert_eq!(l["vms"].as_array().unwrap().len(), 2);
    let (_, l) = app.call(Method::GET, "/api/v1/vms?tag=team=red", &alice, None).await;
    assert!(l["vms"].as_array().unwrap().is_empty());
    let (s, b) = app
        .call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "linux", "tags": {"cloudbroker:user": "bob"}})))
        .await;
    assert!(s == 400 && b["error"]["message"].as_str().unwrap().contains("reserved"), "{b}");
    // The tags reach the cloud.
    let snap = app.broker.registry.snapshot();
    let conn = snap.instance("sb").unwrap().connector.clone().unwrap();
    let (creds, _) = app.broker.vault.credentials_for(&user("alice"), &instance("sb")).await.unwrap();
    assert_eq!(conn.describe_instances(&creds, &cloudbroker_connector_api::DescribeFilter::tag("team", "blue")).await.unwrap().len(), 2);

    let (s, v) = app.call(Method::POST, &format!("/api/v1/vms/{id}/stop"), &alice, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopping")));
    reconcile(&app, &admin).await;
    assert_eq!(vm_state(&app, &alice, &id).await["state"], "stopped");
    let (s, v) = app.call(Method::POST, &format!("/api/v1/vms/{id}/reboot"), &alice, None).await;
    assert_eq!(s, 409, "cannot reboot a stopped VM: {v}");
    let (_, v) = app.call(Method::POST, &format!("/api/v1/vms/{id}/start"), &alice, None).await;
    assert_eq!(v["state"], "pending");
    reconcile(&app, &admin).await;
    let (s, _) = app.call(Method::POST, &format!("/api/v1/vms/{id}/reboot"), &alice, None).await;
    assert_eq!(s, 200);
    let (s, v) = app.call(Method::POST, &format!("/api/v1/vms/{id}/terminate"), &alice, None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("shutting-down")));
    reconcile(&app, &admin).await;
    let v = vm_state(&app, &alice, &id).await;
    assert_eq!(v["state"], "terminated");
    assert_eq!(v["address"], Value::Null);

    // Errors: unknown image, raw ids not allowed, bad count, unknown instance.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ami-sandbox-rocky-9"}))).await;
    assert!(s == 409 && b["error"]["message"].as_str().unwrap().contains("images.allow.raw"), "{b}");
    let (s, _) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "linux", "count": 0}))).await;
    assert_eq!(s, 400);
    let (s, _) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "nope", "image": "linux"}))).await;
    assert_eq!(s, 404);
    app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"images.allow.raw": true}))).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ami-sandbox-rocky-9"}))).await;
    assert_eq!(s, 201, "{b}");
    // A cloud error reaches the user with the cloud's code, and frees the slot.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ami-nope"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("cloud.InvalidAMIID.NotFound")), "{b}");
    let (_, l) = app.call(Method::GET, "/api/v1/vms?state=failed", &alice, None).await;
    assert_eq!(l["vms"].as_array().unwrap().len(), 1);
    // The audit log has the launches and the termination.
    let (_, audit) = app.call(Method::GET, "/api/v1/audit?limit=200", &admin, None).await;
    let actions: BTreeSet<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}:{}", r["action"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    for a in ["vm.launch:requested", "vm.launch:ok", "vm.launch:failed", "vm.terminate:ok"] {
        assert!(actions.contains(a), "{a} in {actions:?}");
    }
});

app_test!(concurrent_launches_respect_the_quota, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    setup_images(&app, &admin).await;
    let alice = app.user(&admin, "alice").await;
    let (s, q) = app.call(Method::GET, "/api/v1/users/alice/quotas", &alice, None).await;
    assert_eq!(s, 200);
    assert_eq!(q[0], json!({"instance": "sb", "limit": 20, "source": "default", "usage": 0, "enforced": false}));
    app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"quota.enable": true}))).await;
    let (s, _) = app.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &alice, Some(json!({"vm": 100}))).await;
    assert_eq!(s, 403, "users cannot raise their own quota");
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &admin, Some(json!({"vm": 10}))).await;
    assert_eq!(s, 200, "{b}");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let http = app.http.clone();
        let url = app.url("/api/v1/vms");
        let t = alice.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(t)
                .json(&json!({"instance": "sb", "image": "linux", "name": format!("n{i}")}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let (mut ok, mut over) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (201, _) => ok += 1,
            (409, b) => {
                assert_eq!(b["error"]["code"], "quota_exceeded");
                assert_eq!(b["error"]["message"], "Concurrent VM quota exceeded (quota=10, current=10, requested=1)");
                over += 1;
            }
            (s, b) => panic!("{s}: {b}"),
        }
    }
    assert_eq!((ok, over), (10, 90));
    let (_, q) = app.call(Method::GET, "/api/v1/users/alice/quotas", &alice, None).await;
    assert_eq!(q[0], json!({"instance": "sb", "limit": 10, "source": "override", "usage": 10, "enforced": true}));
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "linux"}))).await;
    assert_eq!(s, 409, "{b}");
    // The instance's quota.vm applies without an override; terminating frees a slot.
    app.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &admin, Some(json!({"vm": null}))).await;
    app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb.quota.vm": 10}))).await;
    let (_, q) = app.call(Method::GET, "/api/v1/users/alice/quotas", &alice, None).await;
    assert_eq!((q[0]["limit"].as_i64(), q[0]["source"].as_str()), (Some(10), Some("instance")));
    let (_, l) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    let id = l["vms"][0]["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/vms/{id}/terminate"), &alice, None).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "linux"}))).await;
    assert_eq!(s, 201, "{b}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_brokers_on_one_postgres_share_the_quota() {
    let Some(a) = TestApp::postgres().await else { return };
    // The second replica: same database, same master key, its own process state.
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::copy(a.dir.path().join("master.key"), dir_b.path().join("master.key")).unwrap();
    let b = TestApp::start(Some(a.db_url.clone()), dir_b).await.unwrap();
    let admin = a.token("super", SUPER_PW).await;
    setup_images(&a, &admin).await;
    let alice_a = a.user(&admin, "alice").await;
    let alice_b = b.token("alice", "alice-password").await;
    a.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"quota.enable": true}))).await;
    a.call(Method::PUT, "/api/v1/users/alice/quotas/sb", &admin, Some(json!({"vm": 10}))).await;
    b.broker.registry.reload_if_changed().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (http, url, t) = if i % 2 == 0 {
            (a.http.clone(), a.url("/api/v1/vms"), alice_a.clone())
        } else {
            (b.http.clone(), b.url("/api/v1/vms"), alice_b.clone())
        };
        tasks.push(tokio::spawn(async move {
            http.post(url).bearer_auth(t).json(&json!({"instance": "sb", "image": "linux"})).send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 10, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ec2_lifecycle_against_moto() {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/aws.conf"),
        format!(
            "cloud.connector.class = aws:ec2, sb:sandbox\naws.region = us-east-1\naws.endpoint = {}\naws.connection.policy = local\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let app = TestApp::start(None, dir).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu"}))).await;
    assert_eq!(s, 409, "no image yet: {b}");
    app.call(
        Method::POST,
        "/api/v1/images",
        &admin,
        Some(json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}})),
    )
    .await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu"}))).await;
    assert!(s == 400 && b["error"]["message"].as_str().unwrap().contains("no credentials for connector instance 'aws'"), "{b}");
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/users/alice/credentials/aws",
            &alice,
            Some(json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"})),
        )
        .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("verified")), "{b}");
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/users/alice/ssh-key",
            &alice,
            Some(
                json!({"ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8n2n0Ud9Xz0n1TjWbP5bqkWv0nZ4cZx7c8G3y8vYvA alice@laptop"}),
            ),
        )
        .await;
    assert_eq!(s, 204, "{b}");

    let (s, b) =
        app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu", "count": 3, "name": "api"}))).await;
    assert_eq!(s, 201, "{b}");
    let vms = b["vms"].as_array().unwrap().clone();
    assert_eq!(vms.len(), 3);
    let ids: Vec<String> = vms.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    for v in &vms {
        assert!(v["cloud_id"].as_str().unwrap().starts_with("i-"), "{v}");
        assert_eq!(v["instance_type"], "t3.micro");
        assert_eq!(v["address"], v["private_ip"], "connection.policy = local");
    }

    // What moto holds carries the broker's tags and the user's key pair.
    let snap = app.broker.registry.snapshot();
    let conn = snap.instance("aws").unwrap().connector.clone().unwrap();
    let (creds, _) = app.broker.vault.credentials_for(&user("alice"), &instance("aws")).await.unwrap();
    let cloud =
        conn.describe_instances(&creds, &cloudbroker_connector_api::DescribeFilter::tag("cloudbroker:user", "alice")).await.unwrap();
    assert_eq!(cloud.len(), 3);
    assert!(cloud.iter().all(|v| v.tag("cloudbroker:broker") == Some(app.broker.provisioning.broker_id())
        && v.key_name.as_deref().is_some_and(|k| k.starts_with("cloudbroker-alice-"))));

    let (_, v) = app.call(Method::POST, &format!("/api/v1/vms/{}/stop", ids[0]), &alice, None).await;
    assert!(["stopping", "stopped"].contains(&v["state"].as_str().unwrap()), "{v}");
    let (_, v) = app.call(Method::POST, &format!("/api/v1/vms/{}/start", ids[0]), &alice, None).await;
    assert!(["pending", "running"].contains(&v["state"].as_str().unwrap()), "{v}");
    let (s, _) = app.call(Method::POST, &format!("/api/v1/vms/{}/reboot", ids[0]), &alice, None).await;
    assert_eq!(s, 200);
    let (_, v) = app.call(Method::POST, &format!("/api/v1/vms/{}/terminate", ids[0]), &alice, None).await;
    assert!(["shutting-down", "terminated"].contains(&v["state"].as_str().unwrap()), "{v}");

    // Terminated directly in the cloud: seen after one reconcile pass.
    let victim = vms[1]["cloud_id"].as_str().unwrap().to_string();
    conn.terminate_instances(&creds, &[victim]).await.unwrap();
    let r = reconcile(&app, &admin).await;
    assert!(r["errors"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(vm_state(&app, &alice, &ids[1]).await["state"], "terminated");
    assert_eq!(vm_state(&app, &alice, &ids[2]).await["state"], "running");
    assert_eq!(vm_state(&app, &alice, &ids[0]).await["state"], "terminated");
}

#[tokio::test]
async fn openapi_document_lists_the_contract() {
    let app = TestApp::sqlite().await;
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for p in [
        "/tokens",
        "/system/config",
        "/connectors",
        "/users/{user}/credentials/{instance}",
        "/users/{user}/quotas/{instance}",
        "/images/{name}",
        "/vms",
        "/vms/{id}/start",
    ] {
        assert!(doc["paths"][format!("/api/v1{p}")].is_object(), "{p}");
    }
}

app_test!(reconcile_runs_on_one_replica_at_a_time, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    setup_images(&app, &admin).await;
    let alice = app.user(&admin, "alice").await;
    let (s, _) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "linux"}))).await;
    assert_eq!(s, 201);
    let p = &app.broker.provisioning;
    let r1 = p.reconcile("replica-a").await.unwrap();
    assert_eq!((r1.groups, r1.skipped_locked), (1, 0));
    let r2 = p.reconcile("replica-b").await.unwrap();
    assert_eq!((r2.groups, r2.skipped_locked), (1, 1), "replica-b waits while replica-a holds the lease");
    // A dead replica's lease expires and another takes over.
    let r3 = p.reconcile("replica-c").await.unwrap();
    assert_eq!(r3.skipped_locked, 1);
    app.broker.store().release_lease("reconcile:sb:anonymous:alice", "replica-a").await.unwrap();
    let r4 = p.reconcile("replica-b").await.unwrap();
    assert_eq!(r4.skipped_locked, 0);
});

app_test!(unknown_broker_tagged_vms_are_adopted, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"images.allow.raw": true}))).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "ami-sandbox-debian-12"}))).await;
    assert_eq!(s, 201, "{b}");
    // A VM launched with the broker's tags but whose record is lost (e.g. a restored backup).
    let snap = app.broker.registry.snapshot();
    let conn = snap.instance("sb").unwrap().connector.clone().unwrap();
    let (creds, _) = app.broker.vault.credentials_for(&user("alice"), &instance("sb")).await.unwrap();
    let run = cloudbroker_connector_api::RunRequest {
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.micro".into(),
        count: 1,
        tags: vec![
            ("cloudbroker:broker".into(), app.broker.provisioning.broker_id().into()),
            ("cloudbroker:user".into(), "alice".into()),
            ("cloudbroker:launch".into(), "lost-launch".into()),
        ],
        client_token: "lost".into(),
        ..Default::default()
    };
    let orphan = conn.run_instances(&creds, &run).await.unwrap().remove(0);
    let r = reconcile(&app, &admin).await;
    assert_eq!(r["adopted"], 1, "{r}");
    let (_, l) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    let ids: Vec<&str> = l["vms"].as_array().unwrap().iter().filter_map(|v| v["cloud_id"].as_str()).collect();
    assert!(ids.contains(&orphan.id.as_str()), "{l}");
    let r = reconcile(&app, &admin).await;
    assert_eq!(r["adopted"], 0, "adopted once: {r}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_launch_that_times_out_is_not_repeated_and_is_adopted() {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(None, &moto, "aws.timeout.seconds = 1\n").await;
    let admin = app.token("super", SUPER_PW).await;
    app.call(
        Method::PUT,
        "/api/v1/users/super/credentials/aws",
        &admin,
        Some(json!({"access_key_id": "AKIATIMEOUT00000001", "secret_access_key": "t-secret"})),
    )
    .await;
    app.call(Method::POST, "/api/v1/images", &admin, Some(json!({"name": "img", "mappings": {"aws": {"image_id": "ami-12c6146b"}}}))).await;
    // moto launches, but answers after the connector gave up.
    moto.set_faults(json!({"delay_ms": 2500, "delay_actions": ["RunInstances"]})).await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &admin, Some(json!({"instance": "aws", "image": "img", "count": 2}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (504, Some("cloud_error")), "{b}");
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    moto.set_faults(json!({})).await;
    assert_eq!(moto.action_count("RunInstances").await, 1, "not repeated");
    let (_, l) = app.call(Method::GET, "/api/v1/vms", &admin, None).await;
    assert!(l["vms"].as_array().unwrap().iter().all(|v| v["state"] == "requested"), "{l}");
    let r = reconcile(&app, &admin).await;
    assert_eq!(r["adopted"], 2, "{r}");
    let (_, l) = app.call(Method::GET, "/api/v1/vms", &admin, None).await;
    let vms = l["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    assert!(vms.iter().all(|v| v["state"] == "running" && v["cloud_id"].is_string()), "{l}");
}
