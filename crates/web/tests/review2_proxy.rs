//! The per-address login rule behind a proxy and direct (issue 20, item 5),
//! the security headers on every answer and what non-admins see of the
//! connector instances (item 15).
//!
//! Direct: forwarding headers are the client's to forge and change nothing.
//! Behind a trusted proxy: each client is its own address, so one client's
//! failures do not slow down the others. Either way the per-address rule
//! never refuses the correct password of an account that is not itself
//! slowed down, so 20 bad passwords from anyone cannot lock out everyone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;

/// `POST /api/v1/tokens` with a password, optionally as forwarded for `xff`.
async fn login(app: &TestApp, user: &str, pw: &str, xff: Option<&str>) -> u16 {
    let mut r = app.http.post(app.url("/api/v1/tokens")).basic_auth(user, Some(pw));
    if let Some(x) = xff {
        r = r.header("X-Forwarded-For", x);
    }
    r.send().await.unwrap().status().as_u16()
}

/// 20 wrong passwords on 20 different (unknown) accounts: the address limit,
/// never any account's. `xff` varies per attempt when `forge` is set.
async fn spray(app: &TestApp, xff: Option<&str>, forge: bool) -> Vec<u16> {
    let mut codes = Vec::new();
    for i in 0..20 {
        let forged = format!("198.51.100.{i}");
        let x = if forge { Some(forged.as_str()) } else { xff };
        codes.push(login(app, &format!("nobody{i}"), "guess", x).await);
    }
    codes
}

async fn direct(db: Option<String>) {
    let app = TestApp::start(db, tempfile::tempdir().unwrap()).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    app.user(&admin, "bob").await;
    // Forged X-Forwarded-For values do not spread the attempts over addresses.
    let codes = spray(&app, None, true).await;
    assert!(codes.iter().all(|c| *c == 401), "{codes:?}");
    // The address is now over its limit: a wrong password is throttled ...
    assert_eq!(login(&app, "bob", "wrong", Some("192.0.2.77")).await, 429, "a forged header escaped the address rule");
    // ... but a correct password of an account that is not slowed down passes.
    assert_eq!(login(&app, "alice", "alice-password", None).await, 201, "the address rule locked out a correct password");
    assert_eq!(login(&app, "super", SUPER_PW, None).await, 201, "super was locked out by someone else's guesses");
    // The audit names the peer, not the forged header.
    let (_, audit) = app.call(Method::GET, "/api/v1/audit?limit=100", &admin, None).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(!audit.to_string().contains("198.51.100."), "a forged address reached the audit log");
    assert!(entries.iter().any(|r| r["action"] == "login" && r["detail"].as_str().unwrap_or("").contains("127.0.0.1")), "{audit}");
    app.stop().await;
}

async fn behind_proxy(db: Option<String>) {
    // The test client on loopback plays the proxy.
    let app = TestApp::start_with(db, tempfile::tempdir().unwrap(), |c| {
        c.trusted_proxies = vec![cloudbroker_core::config::ProxyNet::parse("127.0.0.1/32").unwrap()];
    })
    .await
    .unwrap();
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    app.user(&admin, "bob").await;
    let codes = spray(&app, Some("203.0.113.1"), false).await;
    assert!(codes.iter().all(|c| *c == 401), "{codes:?}");
    // That client is over its limit ...
    assert_eq!(login(&app, "bob", "wrong", Some("203.0.113.1")).await, 429);
    // ... and a client prepending a forged hop is still that client.
    assert_eq!(login(&app, "bob", "wrong", Some("192.0.2.9, 203.0.113.1")).await, 429);
    // Another client behind the same proxy is not.
    assert_eq!(login(&app, "bob", "wrong", Some("203.0.113.2")).await, 401, "one client's guesses throttled another behind the proxy");
    // The throttled client's correct password still passes.
    assert_eq!(login(&app, "alice", "alice-password", Some("203.0.113.1")).await, 201);
    // RFC 7239 Forwarded names the client too.
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .basic_auth("bob", Some("wrong"))
        .header("Forwarded", "for=\"203.0.113.1:5555\";proto=https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let (_, audit) = app.call(Method::GET, "/api/v1/audit?limit=100", &admin, None).await;
    assert!(
        audit["entries"].as_array().unwrap().iter().any(|r| r["action"] == "login" && r["detail"].as_str().unwrap_or("") == "203.0.113.2"),
        "the audit names the client behind the proxy: {audit}"
    );
    app.stop().await;
}

db_url_test!(per_address_rule_direct, super::direct);
db_url_test!(per_address_rule_behind_a_trusted_proxy, super::behind_proxy);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_answer_and_connectors_hidden_from_users() {
    let app = TestApp::sqlite().await;
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    for path in ["/login", "/healthz", "/api/v1/connectors", "/static/style.css", "/no-such-page", "/ec2"] {
        let r = app.http.get(app.url(path)).bearer_auth(&alice).send().await.unwrap();
        let h = r.headers();
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{path}: {h:?}");
        assert!(get("content-security-policy").contains("default-src 'self'"), "{path}: {h:?}");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(get("strict-transport-security"), "", "{path}: HSTS over plain HTTP");
    }
    // A user sees names, kinds and states; no parameters, origins or errors.
    let (s, mine) = app.call(Method::GET, "/api/v1/connectors", &alice, None).await;
    assert_eq!(s, 200);
    let list = mine["connectors"].as_array().unwrap();
    assert!(!list.is_empty());
    for c in list {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["kind", "name", "status"], "{c}");
        assert!(c["status"]["state"] == "ready" || c["status"]["state"] == "error", "{c}");
        assert!(c["status"].get("errors").is_none(), "{c}");
    }
    assert!(!mine.to_string().contains("sb.conf") && !mine.to_string().contains("boot.delay"), "{mine}");
    // An admin still sees everything.
    let (_, all) = app.call(Method::GET, "/api/v1/connectors", &admin, None).await;
    assert!(all.to_string().contains("sb.conf") && all["connectors"][0].get("params").is_some(), "{all}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_when_the_public_url_is_https() {
    let app = TestApp::start_with(None, tempfile::tempdir().unwrap(), |c| c.public_url = Some("https://broker.example.org".into()))
        .await
        .unwrap();
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_some_and(|v| v.to_str().unwrap().starts_with("max-age=")));
    app.stop().await;
}
