//! The review fixes as clients see them over HTTP: token lifetimes, password
//! changes, disabled accounts, throttled logins, Secure cookies behind TLS,
//! the generated admin password, and (against moto) a VM whose broker tag was
//! removed in the cloud.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

app_test!(a_token_minted_with_a_token_expires_with_it, |app: TestApp| async move {
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .basic_auth("super", Some(SUPER_PW))
        .json(&json!({"expires_in_secs": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let parent: Value = r.json().await.unwrap();
    let short = parent["token"].as_str().unwrap();
    let (s, child) = app.call(Method::POST, "/api/v1/tokens", short, Some(json!({"name": "child"}))).await;
    assert_eq!(s, 201, "{child}");
    assert_eq!(child["expires_at"], parent["expires_at"], "{child}");
    assert!(child["expires_at"].is_string());
    // A lifetime that would overflow is a field error, not a crash.
    let (s, e) = app.call(Method::POST, "/api/v1/tokens", short, Some(json!({"expires_in_secs": 9_223_372_036_854_775u64}))).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["field"], "expires_in_secs", "{e}");
    let (s, _) = app.call(Method::GET, "/healthz", short, None).await;
    assert_eq!(s, 200, "the server is still up");
});

app_test!(a_password_change_needs_the_current_one_and_revokes_tokens, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let (s, e) = app.call(Method::PUT, "/api/v1/users/alice/password", &alice, Some(json!({"password": "brand-new-pw"}))).await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("current_password")), "{e}");
    let body = json!({"password": "brand-new-pw", "current_password": "alice-password"});
    let (s, e) = app.call(Method::PUT, "/api/v1/users/alice/password", &alice, Some(body)).await;
    assert_eq!(s, 204, "{e}");
    let (s, _) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(s, 401, "the token outlived the password change");
    app.token("alice", "brand-new-pw").await;
});

app_test!(admins_disable_users_and_revoke_their_tokens, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    // Admins list and revoke another user's tokens.
    let (s, list) = app.call(Method::GET, "/api/v1/users/bob/tokens", &admin, None).await;
    assert_eq!(s, 200, "{list}");
    let id = list["tokens"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/users/bob/tokens/{id}"), &admin, None).await;
    assert_eq!(s, 204);
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &bob, None).await.0, 401);
    // Users cannot do either to others.
    assert_eq!(app.call(Method::POST, "/api/v1/users/bob/disable", &alice, None).await.0, 403);
    let (s, u) = app.call(Method::POST, "/api/v1/users/alice/disable", &admin, None).await;
    assert!(s == 200 && u["disabled_at"].is_string(), "{s} {u}");
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &alice, None).await.0, 401);
    let r = app.http.post(app.url("/api/v1/tokens")).basic_auth("alice", Some("alice-password")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (s, _) = app.call(Method::POST, "/api/v1/users/alice/enable", &admin, None).await;
    assert_eq!(s, 200);
    app.token("alice", "alice-password").await;
});

app_test!(concurrent_wrong_passwords_are_throttled, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (http, url) = (app.http.clone(), app.url("/api/v1/tokens"));
        tasks.push(tokio::spawn(async move {
            http.post(url).basic_auth("alice", Some("wrong-password")).send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let throttled = codes.iter().filter(|c| **c == 429).count();
    assert!(throttled >= 34 && codes.iter().all(|c| [401, 429].contains(c)), "{codes:?}");
});

app_test!(two_replicas_share_one_login_throttle, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    // A second broker on the same database: another replica.
    let other = TestApp::start(Some(app.db_url.clone()), tempfile::tempdir().unwrap()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, url) =
            if i % 2 == 0 { (app.http.clone(), app.url("/api/v1/tokens")) } else { (other.http.clone(), other.url("/api/v1/tokens")) };
        tasks.push(tokio::spawn(async move {
            http.post(url).basic_auth("alice", Some("wrong-password")).send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let checked = codes.iter().filter(|c| **c == 401).count();
    // Five checked in all (the account's limit), not five per replica.
    assert!((5..=6).contains(&checked) && codes.iter().all(|c| [401, 429].contains(c)), "{codes:?}");
    // The right password still gets in once the wait is over, on either
    // replica, and clears the account's record for both.
    let r = other.http.post(other.url("/api/v1/tokens")).basic_auth("alice", Some("alice-password")).send().await.unwrap();
    assert_eq!(r.status(), 429, "the account is slowed down on the other replica too");
    let wait: u64 = r.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let r = other.http.post(other.url("/api/v1/tokens")).basic_auth("alice", Some("alice-password")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = app.http.post(app.url("/api/v1/tokens")).basic_auth("alice", Some("wrong-password")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the success cleared the account's failures for every replica");
    // The records are in the shared database.
    assert!(app.broker.identity.throttle().tracked().await.unwrap() > 0);
    other.stop().await;
});

#[tokio::test]
async fn cookies_are_secure_when_the_request_came_over_https() {
    let app = TestApp::sqlite().await;
    let plain = app.http.get(app.url("/login")).send().await.unwrap();
    let cookie = plain.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(!cookie.contains("Secure"), "{cookie}");
    let behind_tls = app.http.get(app.url("/login")).header("X-Forwarded-Proto", "https").send().await.unwrap();
    let cookie = behind_tls.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn the_generated_admin_password_is_written_to_a_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(None, dir, |c| c.admin_password = None).await.unwrap();
    let path = app.dir.path().join(cloudbroker_core::broker::INITIAL_ADMIN_PASSWORD_FILE);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let pw = std::fs::read_to_string(&path).unwrap();
    app.token("super", pw.trim()).await;
}

/// Runs Python with boto3 against moto.
fn boto3(moto: &cloudbroker_testkit::MotoServer, script: &str) -> String {
    let out = std::process::Command::new(cloudbroker_testkit::venv_python())
        .args(["-c", script])
        .env("MOTO_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "AKIAALICEMOTO000001")
        .env("AWS_SECRET_ACCESS_KEY", "alice-moto-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_whose_broker_tag_was_removed_in_the_cloud_is_not_ended() {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let app = TestApp::on_moto(None, &moto, "").await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let images = json!({"name": "ubuntu", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t3.micro"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(images)).await.0, 201);
    let keys = json!({"access_key_id": "AKIAALICEMOTO000001", "secret_access_key": "alice-moto-secret"});
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/credentials/aws", &alice, Some(keys)).await.0, 200);
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "aws", "image": "ubuntu", "count": 2}))).await;
    assert_eq!(s, 201, "{b}");
    let id = b["vms"][0]["id"].as_str().unwrap().to_string();
    let cloud_id = b["vms"][0]["cloud_id"].as_str().unwrap().to_string();
    boto3(
        &moto,
        &format!(
            "import boto3, os\nec2 = boto3.client('ec2', endpoint_url=os.environ['MOTO_URL'])\n\
             ec2.delete_tags(Resources=['{cloud_id}'], Tags=[{{'Key': 'cloudbroker:broker'}}])\n\
             t = ec2.describe_tags(Filters=[{{'Name': 'resource-id', 'Values': ['{cloud_id}']}}])['Tags']\n\
             assert all(x['Key'] != 'cloudbroker:broker' for x in t), t\n"
        ),
    );
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["errors"].as_array().unwrap().is_empty() && r["untagged"] == 1 && r["vanished"] == 0, "{r}");
    let (_, v) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), &alice, None).await;
    assert_eq!(v["state"], "running", "{v}");
    // Its credentials cannot be deleted while it runs; stop still works.
    let (s, e) = app.call(Method::DELETE, "/api/v1/users/alice/credentials/aws", &alice, None).await;
    assert!(s == 409 && e["error"]["message"].as_str().unwrap().contains(&id), "{s} {e}");
    let (s, v) = app.call(Method::POST, &format!("/api/v1/vms/{id}/stop"), &alice, None).await;
    assert_eq!(s, 200, "{v}");
    // Terminated in the cloud: the by-id answer ends the record.
    boto3(
        &moto,
        &format!(
            "import boto3, os\nboto3.client('ec2', endpoint_url=os.environ['MOTO_URL']).terminate_instances(InstanceIds=['{cloud_id}'])\n"
        ),
    );
    let (_, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(r["vanished"], 1, "{r}");
    let (_, v) = app.call(Method::GET, &format!("/api/v1/vms/{id}"), &alice, None).await;
    assert_eq!(v["state"], "terminated", "{v}");
}

// 10. Malformed query strings and bodies get the API's JSON error, naming what was wrong.
app_test!(malformed_requests_get_json_errors, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let (s, e) = app.call(Method::GET, "/api/v1/vms?limit=lots", &admin, None).await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("limit"), "{e}");
    let (s, e) = app.call(Method::GET, "/api/v1/vms?limit=100000", &admin, None).await;
    assert_eq!(s, 400, "{e}");
    let r = app
        .http
        .post(app.url("/api/v1/images"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_request", "{e}");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20));
    let r = app
        .http
        .post(app.url("/api/v1/images"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "too_large", "{e}");
    // Nothing was stored by the refused requests.
    let (_, images) = app.call(Method::GET, "/api/v1/images", &admin, None).await;
    assert_eq!(images["images"].as_array().map(Vec::len), Some(0), "{images}");
});

// 10. Expired sessions are purged from the database, not only refused.
#[tokio::test]
async fn expired_sessions_are_purged() {
    let app = TestApp::start_with(None, tempfile::tempdir().unwrap(), |c| c.session_idle_secs = 1).await.unwrap();
    let admin = cloudbroker_core::Actor::new(cloudbroker_core::testing::user("super"), true);
    let (raw, _) = app.broker.identity.create_session(&admin).await.unwrap();
    assert_eq!(app.broker.identity.purge_sessions().await.unwrap(), 0, "a live session was purged");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(app.broker.identity.purge_sessions().await.unwrap(), 1);
    assert!(app.broker.identity.resolve_session(&raw).await.unwrap().is_none());
}
