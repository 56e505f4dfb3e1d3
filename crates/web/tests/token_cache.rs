//! The API-token cache (crates/core/src/identity/tokens.rs) never lets a token
//! outlive its revocation: a token revoked, or whose owner changed password,
//! was disabled or changed role, through this broker is judged afresh on
//! the very next request even though it was cached; a revocation made
//! behind this broker's back (another replica writing the shared database,
//! simulated by the store itself) is seen within `TOKEN_CACHE_TTL`; an
//! expired token is refused though cached; a token's last use is written at
//! most once a minute, however many requests it makes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::identity::TOKEN_CACHE_TTL;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

/// A request only a live token gets an answer to.
async fn vms(app: &TestApp, token: &str) -> u16 {
    app.call(Method::GET, "/api/v1/vms", token, None).await.0
}

/// The id of the token the caller holds (the newest of theirs).
async fn token_id(app: &TestApp, token: &str) -> String {
    let (s, page) = app.call(Method::GET, "/api/v1/tokens", token, None).await;
    assert_eq!(s, 200, "{page}");
    let items = page["tokens"].as_array().unwrap();
    items.iter().max_by_key(|t| t["created_at"].as_str().unwrap().to_string()).unwrap()["id"].as_str().unwrap().to_string()
}

app_test!(revoked_tokens_are_refused_at_once_though_cached, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    // Warm: cached after one use.
    assert_eq!(vms(&app, &alice).await, 200);
    assert!(!app.broker.identity.token_cache().is_empty(), "the token was not cached");

    // Revoked by its owner: refused on the next request.
    let id = token_id(&app, &alice).await;
    let spare = app.token("alice", "alice-password").await;
    assert_eq!(vms(&app, &spare).await, 200);
    assert_eq!(app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), &alice, None).await.0, 204);
    assert_eq!(vms(&app, &alice).await, 401, "a revoked token was served from the cache");
    assert_eq!(vms(&app, &spare).await, 200, "revoking one token ended another");

    // The owner's password changed (by an admin): every token ends at once.
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/password", &admin, Some(json!({"password": "alice-password-2"}))).await.0, 204);
    assert_eq!(vms(&app, &spare).await, 401, "a token outlived its owner's password change");

    // The owner disabled: refused at once; their new token after enabling works.
    let t = app.token("alice", "alice-password-2").await;
    assert_eq!(vms(&app, &t).await, 200);
    assert_eq!(app.call(Method::POST, "/api/v1/users/alice/disable", &admin, None).await.0, 200);
    assert_eq!(vms(&app, &t).await, 401, "a disabled user's cached token still works");
    assert_eq!(app.call(Method::POST, "/api/v1/users/alice/enable", &admin, None).await.0, 200);
    let t = app.token("alice", "alice-password-2").await;
    assert_eq!(vms(&app, &t).await, 200);

    // A role change is seen on the next request, both ways.
    assert_eq!(app.call(Method::GET, "/api/v1/users", &t, None).await.0, 403);
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/role", &admin, Some(json!({"admin": true}))).await.0, 204);
    assert_eq!(app.call(Method::GET, "/api/v1/users", &t, None).await.0, 200, "a cached token kept its old role");
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/role", &admin, Some(json!({"admin": false}))).await.0, 204);
    assert_eq!(app.call(Method::GET, "/api/v1/users", &t, None).await.0, 403, "a cached token kept the admin role");
});

app_test!(another_replicas_revocation_is_seen_within_the_ttl, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let carol = app.user(&admin, "carol").await;
    assert_eq!(vms(&app, &carol).await, 200);
    let id = token_id(&app, &carol).await;
    // Another replica revokes it: it writes the shared database, and nothing
    // in this process hears of it.
    let other = cloudbroker_store::Store::connect(&app.db_url).await.unwrap();
    assert!(other.revoke_token("carol", &id).await.unwrap());
    tokio::time::sleep(TOKEN_CACHE_TTL + Duration::from_millis(300)).await;
    assert_eq!(vms(&app, &carol).await, 401, "another replica's revocation was not seen within {TOKEN_CACHE_TTL:?}");
    // Refusals are not cached: a token minted by the other side works at once.
    other.close().await;
    let fresh = app.token("carol", "carol-password").await;
    assert_eq!(vms(&app, &fresh).await, 200);
});

app_test!(expired_tokens_are_refused_though_cached, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "dave").await;
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .basic_auth("dave", Some("dave-password"))
        .json(&json!({"expires_in_secs": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let short = r.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(vms(&app, &short).await, 200);
    // Keep it warm until it expires: the cache must not answer past the expiry.
    let until = std::time::Instant::now() + Duration::from_millis(2500);
    let mut refused = false;
    while std::time::Instant::now() < until {
        if vms(&app, &short).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a token with a 1 s lifetime still worked 2.5 s later");
});

app_test!(a_tokens_use_is_written_at_most_once_a_minute, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let erin = app.user(&admin, "erin").await;
    let id = token_id(&app, &erin).await;
    let store = cloudbroker_store::Store::connect(&app.db_url).await.unwrap();
    let first = store.get_token(&id).await.unwrap().unwrap().last_used_at.expect("the token's use was not recorded");
    for _ in 0..20 {
        assert_eq!(vms(&app, &erin).await, 200);
    }
    // Past the cache's lifetime too: a re-read token does not write again.
    tokio::time::sleep(TOKEN_CACHE_TTL + Duration::from_millis(200)).await;
    assert_eq!(vms(&app, &erin).await, 200);
    let later = store.get_token(&id).await.unwrap().unwrap().last_used_at.unwrap();
    assert_eq!(first, later, "the use was written again within a minute");
    store.close().await;
});
