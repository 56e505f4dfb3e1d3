//! The EC2 front's access-key cache (crates/core/src/access_keys.rs) never
//! lets a key outlive its revocation: a key disabled or deleted, or whose
//! owner is disabled, through this broker is refused on the very next
//! request even though it was cached; a change made behind this broker's
//! back (another replica writing to the shared database, simulated here by
//! the store itself) is seen within `KEY_CACHE_TTL`; a master-key rotation
//! does not break cached or re-read keys. Signatures stay verified on every
//! request: a wrong secret is refused while the right key is cached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_core::access_keys::KEY_CACHE_TTL;
use common::{TestApp, SUPER_PW};
use reqwest::Method;

/// A SigV4-signed DescribeRegions (GET, parameters in the query string).
async fn describe(app: &TestApp, key: &(String, String)) -> (u16, String) {
    let host = app.base.trim_start_matches("http://").to_string();
    let query = vec![("Action".to_string(), "DescribeRegions".to_string()), ("Version".to_string(), "2016-11-15".to_string())];
    let headers = vec![("host".to_string(), host)];
    let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, "sb", "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("GET", "/ec2", &query, &headers, b"", &params).unwrap();
    let mut r = app.http.get(app.url("/ec2?Action=DescribeRegions&Version=2016-11-15"));
    for (k, v) in &added {
        r = r.header(k.as_str(), v.as_str());
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn new_key(app: &TestApp, token: &str, user: &str) -> (String, String) {
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{user}/access-keys"), token, None).await;
    assert_eq!(s, 201, "{k}");
    (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
}

fn refused(r: &(u16, String)) -> bool {
    r.0 == 401 && r.1.contains("<Code>AuthFailure</Code>")
}

app_test!(revoked_keys_are_refused_at_once_though_cached, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice_token = app.user(&admin, "alice").await;
    let k1 = new_key(&app, &alice_token, "alice").await;
    let k2 = new_key(&app, &alice_token, "alice").await;
    // Warm: both keys cached after one use each.
    assert_eq!(describe(&app, &k1).await.0, 200);
    assert_eq!(describe(&app, &k2).await.0, 200);
    assert!(app.broker.access_keys.key_cache().len() >= 2, "the keys were not cached");
    // A cached key with the wrong secret is still refused: every request is verified.
    assert!(refused(&describe(&app, &(k1.0.clone(), "wrong-secret".into())).await));
    assert_eq!(describe(&app, &k1).await.0, 200);

    // Disable: refused on the next request; enable: works again.
    let path1 = format!("/api/v1/users/alice/access-keys/{}", k1.0);
    assert_eq!(app.call(Method::POST, &format!("{path1}/disable"), &alice_token, None).await.0, 200);
    assert!(refused(&describe(&app, &k1).await), "a disabled key was served from the cache");
    assert_eq!(app.call(Method::POST, &format!("{path1}/enable"), &alice_token, None).await.0, 200);
    assert_eq!(describe(&app, &k1).await.0, 200);

    // Delete: refused on the next request.
    assert_eq!(describe(&app, &k2).await.0, 200);
    assert_eq!(app.call(Method::DELETE, &format!("/api/v1/users/alice/access-keys/{}", k2.0), &alice_token, None).await.0, 204);
    assert!(refused(&describe(&app, &k2).await), "a deleted key was served from the cache");

    // The owner disabled: refused at once; enabled again: works.
    assert_eq!(describe(&app, &k1).await.0, 200);
    assert_eq!(app.call(Method::POST, "/api/v1/users/alice/disable", &admin, None).await.0, 200);
    assert!(refused(&describe(&app, &k1).await), "a disabled user's cached key still works");
    assert_eq!(app.call(Method::POST, "/api/v1/users/alice/enable", &admin, None).await.0, 200);
    assert_eq!(describe(&app, &k1).await.0, 200);
});

app_test!(master_key_rotation_keeps_cached_and_reread_keys_working, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let bob_token = app.user(&admin, "bob").await;
    let k = new_key(&app, &bob_token, "bob").await;
    assert_eq!(describe(&app, &k).await.0, 200);
    let (s, r) = app.call(Method::POST, "/api/v1/system/keys/rotate", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["resealed"].as_u64().unwrap() >= 1, "{r}");
    // Cached: still the same secret.
    assert_eq!(describe(&app, &k).await.0, 200, "a cached key broke with the rotation");
    // Forget the cache: the key is read back, re-sealed under the new master key.
    app.broker.access_keys.forget_cached();
    assert!(app.broker.access_keys.key_cache().is_empty());
    assert_eq!(describe(&app, &k).await.0, 200, "a re-read key broke with the rotation");
    assert!(!app.broker.access_keys.key_cache().is_empty());
});

app_test!(another_replicas_change_is_seen_within_the_cache_ttl, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let carol_token = app.user(&admin, "carol").await;
    let k = new_key(&app, &carol_token, "carol").await;
    assert_eq!(describe(&app, &k).await.0, 200);
    // Another replica disables the key: it writes the shared database, and
    // nothing in this process hears of it.
    let other = cloudbroker_store::Store::connect(&app.db_url).await.unwrap();
    assert!(other.set_access_key_state("carol", &k.0, "disabled").await.unwrap());
    tokio::time::sleep(KEY_CACHE_TTL + std::time::Duration::from_millis(300)).await;
    assert!(refused(&describe(&app, &k).await), "another replica's disable was not seen within {KEY_CACHE_TTL:?}");
    other.close().await;
});
