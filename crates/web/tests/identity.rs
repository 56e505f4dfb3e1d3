//! Identity and the credential vault through the real server.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::testing::{instance, user};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

const AKID: &str = "AKIAALICEEXAMPLE7777";
const SECRET: &str = "alice-Secret/Key+0123456789abcdefXYZ";

async fn pg_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

app_test!(secrets_are_sealed_masked_and_never_stored_in_clear, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let (s, b) = app
        .call(Method::PUT, "/api/v1/users/alice/credentials/sb", &alice, Some(json!({"access_key_id": AKID, "secret_access_key": SECRET})))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["access_key_id"], "****7777");
    assert_eq!(b["status"], "verified");
    let (s, b) = app.call(Method::GET, "/api/v1/users/alice/credentials/sb", &alice, None).await;
    assert_eq!(s, 200);
    let text = b.to_string();
    assert!(!text.contains(SECRET) && !text.contains(AKID), "{text}");

    // The broker can still use them.
    let (creds, _) = app.broker.vault.credentials_for(&user("alice"), &instance("sb")).await.unwrap();
    assert_eq!((creds.access_key_id.as_str(), creds.secret_access_key.expose()), (AKID, SECRET));

    let raw = app.database_text().await;
    assert!(!raw.is_empty());
    assert!(raw.contains("****7777"), "the masked hint is stored, so the search reads real rows");
    assert!(!raw.contains(SECRET), "secret found in clear in the database");
    assert!(!raw.contains(AKID), "access key id found in clear in the database");
    assert!(!raw.contains("alice-password"), "password found in clear");
    let (_, audit) = app.call(Method::GET, "/api/v1/audit", &admin, None).await;
    assert!(audit["entries"].as_array().unwrap().iter().any(|r| r["action"] == "credential.save" && r["target"] == "user/alice/sb"));
    assert!(!audit.to_string().contains(SECRET));
});

app_test!(ciphertext_moved_to_another_row_fails, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    app.call(Method::PUT, "/api/v1/users/alice/credentials/sb", &alice, Some(json!({"access_key_id": AKID, "secret_access_key": SECRET})))
        .await;
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/users/bob/credentials/sb",
            &bob,
            Some(json!({"access_key_id": "AKIABOB", "secret_access_key": "bob-secret"})),
        )
        .await;
    assert_eq!(s, 200);
    let pool = pg_pool(&app.db_url).await;
    let (blob,): (Vec<u8>,) = sqlx::query_as("SELECT secret_sealed FROM credentials WHERE owner = 'alice'").fetch_one(&pool).await.unwrap();
    sqlx::query("UPDATE credentials SET secret_sealed = $1 WHERE owner = 'bob'").bind(&blob).execute(&pool).await.unwrap();
    let e = app.broker.vault.credentials_for(&user("bob"), &instance("sb")).await.unwrap_err().to_string();
    assert!(e.contains("does not open"), "{e}");
    // Same row, other instance: also refused.
    sqlx::query("UPDATE credentials SET instance = 'sb2' WHERE owner = 'alice'").execute(&pool).await.unwrap();
    assert!(app.broker.vault.credentials_for(&user("alice"), &instance("sb2")).await.is_err());
});

app_test!(rotation_reseals_everything_and_old_data_opens, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    for u in ["alice", "bob", "carol"] {
        let t = app.user(&admin, u).await;
        let (s, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/users/{u}/credentials/sb"),
                &t,
                Some(json!({"access_key_id": format!("AK-{u}-1234"), "secret_access_key": format!("{u}-secret")})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let before = app.broker.store().key_ids_in_use().await.unwrap();
    assert_eq!(before.len(), 1);
    let (s, b) = app.call(Method::POST, "/api/v1/system/keys/rotate", &admin, None).await;
    assert_eq!(s, 200, "{b}");
    let new_id = b["current_key"].as_str().unwrap().to_string();
    assert_ne!(new_id, before[0]);
    // The old key is retired, not dropped: another process may still seal with it.
    assert_eq!((&b["retired_keys"], &b["dropped_keys"], &b["resealed"]), (&json!([before[0]]), &json!([]), &json!(3)), "{b}");
    assert_eq!(app.broker.store().key_ids_in_use().await.unwrap(), vec![new_id.clone()]);
    assert_eq!(app.broker.vault.key_ids(), vec![before[0].clone(), new_id.clone()]);
    for u in ["alice", "bob", "carol"] {
        let (c, _) = app.broker.vault.credentials_for(&user(u), &instance("sb")).await.unwrap();
        assert_eq!(c.secret_access_key.expose(), format!("{u}-secret"));
    }
    // Non-admins cannot rotate.
    let alice = app.token("alice", "alice-password").await;
    let (s, _) = app.call(Method::POST, "/api/v1/system/keys/rotate", &alice, None).await;
    assert_eq!(s, 403);
});

app_test!(users_cannot_reach_each_other, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    app.call(Method::PUT, "/api/v1/users/alice/credentials/sb", &alice, Some(json!({"access_key_id": AKID, "secret_access_key": SECRET})))
        .await;
    for (m, path, body) in [
        (Method::GET, "/api/v1/users/alice/credentials/sb", None),
        (Method::GET, "/api/v1/users/alice/credentials", None),
        (Method::PUT, "/api/v1/users/alice/credentials/sb", Some(json!({"access_key_id": "x", "secret_access_key": "y"}))),
        (Method::DELETE, "/api/v1/users/alice/credentials/sb", None),
        (Method::GET, "/api/v1/users/alice", None),
        (Method::PUT, "/api/v1/users/alice/password", Some(json!({"password": "hijacked-pass"}))),
    ] {
        let (s, b) = app.call(m.clone(), path, &bob, body).await;
        assert_eq!(s, 404, "{m} {path}: {b}");
        assert!(!b.to_string().contains("7777"));
    }
    for (m, path, body) in [
        (Method::GET, "/api/v1/users", None),
        (Method::POST, "/api/v1/users", Some(json!({"name": "mallory", "password": "12345678", "admin": true}))),
        (Method::PUT, "/api/v1/system/config", Some(json!({"quota.enable": true}))),
        (Method::GET, "/api/v1/system/config", None),
        (Method::GET, "/api/v1/audit", None),
        (Method::PUT, "/api/v1/users/bob/role", Some(json!({"admin": true}))),
    ] {
        let (s, b) = app.call(m.clone(), path, &bob, body).await;
        assert_eq!(s, 403, "{m} {path}: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
    }
    // Alice's token cannot be revoked by bob; her credentials are intact.
    let (_, tokens) = app.call(Method::GET, "/api/v1/tokens", &alice, None).await;
    let id = tokens["tokens"][0]["id"].as_str().unwrap();
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), &bob, None).await;
    assert_eq!(s, 404);
    let (s, _) = app.call(Method::GET, "/api/v1/users/alice/credentials/sb", &alice, None).await;
    assert_eq!(s, 200);
    // No token, bad token.
    let r = app.http.get(app.url("/api/v1/connectors")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (s, b) = app.call(Method::GET, "/api/v1/connectors", "cbt_forged", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthenticated")));
});

app_test!(tokens_revoke_and_expire, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let (s, _) = app.call(Method::GET, "/api/v1/connectors", &admin, None).await;
    assert_eq!(s, 200);
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .basic_auth("super", Some(SUPER_PW))
        .json(&json!({"name": "short", "expires_in_secs": 1}))
        .send()
        .await
        .unwrap();
    let short = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let (s, _) = app.call(Method::GET, "/api/v1/connectors", &short, None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, _) = app.call(Method::GET, "/api/v1/connectors", &short, None).await;
    assert_eq!(s, 401, "expired");
    let (_, tokens) = app.call(Method::GET, "/api/v1/tokens", &admin, None).await;
    let id = tokens["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "api").unwrap()["id"].as_str().unwrap().to_string();
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), &admin, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.call(Method::GET, "/api/v1/connectors", &admin, None).await;
    assert_eq!(s, 401, "revoked");
    let raw = app.database_text().await;
    assert!(!raw.contains(&short), "tokens are stored hashed");
});

app_test!(login_throttling, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    for _ in 0..5 {
        let r = app.http.post(app.url("/api/v1/tokens")).basic_auth("alice", Some("wrong")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app.http.post(app.url("/api/v1/tokens")).basic_auth("alice", Some("alice-password")).send().await.unwrap();
    assert_eq!(r.status(), 429, "account locked after 5 failures, even with the right password");
    assert!(r.headers().get("retry-after").is_some());
    // Other accounts are not locked by alice's failures.
    app.token("super", SUPER_PW).await;
    // Unknown users take the same path (and are throttled too).
    let r = app.http.post(app.url("/api/v1/tokens")).basic_auth("nobody", Some("x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, audit) = app.call(Method::GET, "/api/v1/audit?limit=50", &admin, None).await;
    assert!(audit["entries"].as_array().unwrap().iter().filter(|r| r["action"] == "login" && r["outcome"] == "failure").count() >= 6);
});

app_test!(credential_validation_and_force, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    // An ec2 instance whose endpoint is unreachable: validation fails with the reason.
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/system/config",
            &admin,
            Some(json!({"cloud.connector.class": "dead:sandbox", "dead.api.latency.ms": 0})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .call(Method::PUT, "/api/v1/users/alice/credentials/nope", &alice, Some(json!({"access_key_id": "a", "secret_access_key": "b"})))
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = app
        .call(Method::PUT, "/api/v1/users/alice/credentials/sb", &alice, Some(json!({"access_key_id": "", "secret_access_key": "b"})))
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/sb", &alice, Some(json!({"access_key_id": "a"}))).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("secret_access_key"), "{b}");
});

app_test!(shared_credentials_are_usable_not_readable, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let _bob = app.user(&admin, "bob").await;
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/system/credentials/sb/team",
            &admin,
            Some(json!({"access_key_id": "AKIATEAMSHARED99", "secret_access_key": "team-secret"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.call(Method::PUT, "/api/v1/system/credentials/sb/team/grants", &admin, Some(json!({"users": ["alice"]}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["granted_to"], json!(["alice"]));
    let (c, _) = app.broker.vault.credentials_for(&user("alice"), &instance("sb")).await.unwrap();
    assert_eq!(c.secret_access_key.expose(), "team-secret");
    // Bob was not granted: he gets the sandbox's per-user identity, not the team's keys.
    let (c, _) = app.broker.vault.credentials_for(&user("bob"), &instance("sb")).await.unwrap();
    assert_ne!(c.secret_access_key.expose(), "team-secret");
    let (s, _) = app.call(Method::GET, "/api/v1/system/credentials/sb/team", &alice, None).await;
    assert_eq!(s, 403, "alice can use but not read");
    let (s, _) = app.call(Method::GET, "/api/v1/system/credentials", &alice, None).await;
    assert_eq!(s, 403);
});

#[tokio::test]
async fn password_hash_is_upgraded_on_login() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let app = TestApp::sqlite().await;
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "old").await;
    // A hash made with weaker, older parameters.
    let weak = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon2::Params::new(1024, 1, 1, None).unwrap())
        .hash_password(b"old-password", &SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap())
        .unwrap()
        .to_string();
    app.broker.store().set_password_hash("old", &weak).await.unwrap();
    app.token("old", "old-password").await;
    let now = app.broker.store().get_user("old").await.unwrap().unwrap().password_hash;
    assert_ne!(now, weak);
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now}");
    // And the upgraded hash still verifies.
    app.token("old", "old-password").await;
}

#[tokio::test]
async fn failed_validation_says_why_and_force_stores_unverified() {
    let app = TestApp::sqlite().await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let (s, b) = app
        .call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"cloud.connector.class": "aws-dead:ec2", "aws-dead.region": "eu-west-1", "aws-dead.endpoint": "http://127.0.0.1:1", "aws-dead.timeout.seconds": 2})))
        .await;
    assert_eq!(s, 200, "{b}");
    let body = json!({"access_key_id": "AKIADEADENDPOINT01", "secret_access_key": "dead-secret"});
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/aws-dead", &alice, Some(body.clone())).await;
    assert_eq!(s, 400, "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("credentials failed validation") && msg.contains("unreachable"), "{msg}");
    assert!(!msg.contains("dead-secret") && !msg.contains("AKIADEADENDPOINT01"), "{msg}");
    let (s, _) = app.call(Method::GET, "/api/v1/users/alice/credentials/aws-dead", &alice, None).await;
    assert_eq!(s, 404, "nothing stored");
    let mut forced = body.clone();
    forced["force"] = json!(true);
    let (s, b) = app.call(Method::PUT, "/api/v1/users/alice/credentials/aws-dead", &alice, Some(forced)).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("unverified")), "{b}");
    assert!(b["status_message"].as_str().unwrap().contains("unreachable"), "{b}");
}
