//! EC2 access keys follow the token rules (issue 20, item 1), and tokens
//! minted from a token die with it (item 15), as clients see them:
//! - a key created with a 60-second bearer token expires with the token
//!   (checked with an injected `now`, the cache included) and an expired key
//!   is refused like a disabled one (`AuthFailure`, boto3 and SigV4);
//! - a key may be given a lifetime of its own, bounded;
//! - a self-service password change leaves the keys unless asked to disable
//!   them; an admin's reset disables them; the audit record says which;
//! - admins list, disable, enable and delete another user's keys (JSON API
//!   and the admin user page, CSRF-checked); other users get 404 / 403;
//! - revoking a token revokes the tokens minted from it, even one minted
//!   while the revocation ran.
//!
//! On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{TestApp, SUPER_PW};
use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

type Key = (String, String);

/// A token minted with HTTP Basic, with a lifetime: (token, answer).
async fn token_for(app: &TestApp, user: &str, pw: &str, secs: u64) -> (String, Value) {
    let r =
        app.http.post(app.url("/api/v1/tokens")).basic_auth(user, Some(pw)).json(&json!({"expires_in_secs": secs})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    (b["token"].as_str().unwrap().to_string(), b)
}

async fn new_key(app: &TestApp, token: &str, user: &str, body: Option<Value>) -> (Key, Value) {
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{user}/access-keys"), token, body).await;
    assert_eq!(s, 201, "{k}");
    ((k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()), k)
}

/// A SigV4 `DescribeRegions` on region `sb`.
async fn describe(app: &TestApp, key: &Key) -> (u16, String) {
    app.ec2_call(key, "sb", "Action=DescribeRegions&Version=2016-11-15").await
}

fn works(r: &(u16, String)) -> bool {
    r.0 == 200 && r.1.contains("DescribeRegionsResponse")
}

fn refused(r: &(u16, String)) -> bool {
    r.0 == 401 && r.1.contains("<Code>AuthFailure</Code>")
}

/// `DescribeRegions` with boto3 (a client nobody here wrote): the region
/// names, or the error code.
async fn boto3_regions(app: &TestApp, key: &Key) -> String {
    let script = "import boto3, os, botocore\n\
        ec2 = boto3.client('ec2', endpoint_url=os.environ['EP'], region_name='sb', aws_access_key_id=os.environ['AK'], \
        aws_secret_access_key=os.environ['SK'], config=botocore.config.Config(retries={'max_attempts': 1}))\n\
        try:\n    print(','.join(sorted(r['RegionName'] for r in ec2.describe_regions()['Regions'])))\n\
        except botocore.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])\n";
    let env = [("EP", app.url("/ec2")), ("AK", key.0.clone()), ("SK", key.1.clone()), ("AWS_EC2_METADATA_DISABLED", "true".into())];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).args(["-c", script]).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().with_timezone(&Utc)
}

/// The newest audit entry of `action` on `target`.
async fn last_audit(app: &TestApp, admin: &str, action: &str, target: &str) -> Value {
    let (s, b) = app.call(Method::GET, &format!("/api/v1/audit?action={action}&limit=1000"), admin, None).await;
    assert_eq!(s, 200, "{b}");
    b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == target)
        .cloned()
        .unwrap_or_else(|| panic!("no {action} on {target}: {b}"))
}

async fn key_state(app: &TestApp, token: &str, user: &str, id: &str) -> String {
    let (s, b) = app.call(Method::GET, &format!("/api/v1/users/{user}/access-keys"), token, None).await;
    assert_eq!(s, 200, "{b}");
    let k = b["access_keys"].as_array().unwrap().iter().find(|k| k["access_key_id"] == id).unwrap_or_else(|| panic!("{id} in {b}"));
    k["state"].as_str().unwrap().to_string()
}

app_test!(a_key_made_with_a_60_second_token_expires_with_it, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    // The reproduction: a 60-second token creates a key.
    let (short, t) = token_for(&app, "alice", "alice-password", 60).await;
    let (key, k) = new_key(&app, &short, "alice", None).await;
    assert_eq!(k["expires_at"], t["expires_at"], "the key outlives the token that made it: {k} {t}");
    let expiry = time(&k["expires_at"]);
    assert!(works(&describe(&app, &key).await));
    assert_eq!(boto3_regions(&app, &key).await, "sb,sb2");
    // Now is read from the caller: a second before the token's end the key
    // is good (and cached), a second after it is refused, cache or not.
    let keys = &app.broker.access_keys;
    let before = keys.holder_at(&key.0, expiry - TimeDelta::seconds(1)).await.unwrap().expect("usable before its expiry");
    assert_eq!(before.actor.expires_at, Some(expiry), "the key's actor carries its expiry");
    // Cached now (unless another test of this process emptied the cache meanwhile).
    assert!(keys.holder_at(&key.0, expiry - TimeDelta::seconds(1)).await.unwrap().is_some());
    assert!(keys.holder_at(&key.0, expiry + TimeDelta::seconds(1)).await.unwrap().is_none(), "the cache served an expired key");
    assert!(keys.holder_at(&key.0, expiry).await.unwrap().is_none(), "expired at its expiry time");
    assert!(keys.holder_at(&key.0, expiry + TimeDelta::hours(1)).await.unwrap().is_none(), "the database answer too");
    assert!(keys.holder_at(&key.0, expiry - TimeDelta::seconds(1)).await.unwrap().is_some());
    // A longer lifetime asked with the token is cut to the token's; a shorter one is kept.
    let (_, k) = new_key(&app, &short, "alice", Some(json!({"expires_in_secs": 86_400}))).await;
    assert_eq!(k["expires_at"], t["expires_at"], "{k}");
    let (_, k) = new_key(&app, &short, "alice", Some(json!({"expires_in_secs": 10}))).await;
    assert!(time(&k["expires_at"]) < expiry, "{k}");
    // Keys made with a password-minted token (no expiry) do not expire unless asked.
    let alice = app.token("alice", "alice-password").await;
    let (_, k) = new_key(&app, &alice, "alice", None).await;
    assert!(k["expires_at"].is_null(), "{k}");
    // Bad lifetimes are refused, naming the field; nothing is stored.
    let (s, b) = app.call(Method::GET, "/api/v1/users/alice/access-keys", &alice, None).await;
    let count = b["access_keys"].as_array().unwrap().len();
    assert_eq!((s, count), (200, 4), "{b}");
    for bad in [json!({"expires_in_secs": 0}), json!({"expires_in_secs": 316_224_001u64})] {
        let (s, e) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, Some(bad.clone())).await;
        assert_eq!((s, e["error"]["field"].as_str()), (400, Some("expires_in_secs")), "{bad}: {e}");
    }
    for bad in [json!({"expires_in": 5}), json!({"expires_in_secs": -1}), json!({"expires_in_secs": "5"}), json!([1])] {
        let (s, e) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, Some(bad.clone())).await;
        assert_eq!((s, e["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}: {e}");
    }
    let (_, b) = app.call(Method::GET, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(b["access_keys"].as_array().unwrap().len(), count, "{b}");
});

app_test!(keys_past_their_own_or_their_tokens_expiry_are_refused_like_disabled_ones, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    // By the wall clock, end to end: a key of its own 2-second lifetime, and
    // a key made with a 2-second token.
    let (own, k1) = new_key(&app, &alice, "alice", Some(json!({"expires_in_secs": 2}))).await;
    let (short, _) = token_for(&app, "alice", "alice-password", 2).await;
    let (inherited, k2) = new_key(&app, &short, "alice", None).await;
    let forever = new_key(&app, &alice, "alice", None).await.0;
    for k in [&own, &inherited, &forever] {
        assert!(works(&describe(&app, k).await), "{}", k.0);
    }
    let end = time(&k1["expires_at"]).max(time(&k2["expires_at"]));
    let wait = (end - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300);
    tokio::time::sleep(wait).await;
    for k in [&own, &inherited] {
        let r = describe(&app, k).await;
        assert!(refused(&r), "an expired key signed a request: {} {r:?}", k.0);
        assert_eq!(boto3_regions(&app, k).await, "AuthFailure");
        assert_eq!(key_state(&app, &alice, "alice", &k.0).await, "expired");
    }
    // The same answer as a disabled key's.
    let path = format!("/api/v1/users/alice/access-keys/{}/disable", forever.0);
    assert_eq!(app.call(Method::POST, &path, &alice, None).await.0, 200);
    let disabled = describe(&app, &forever).await;
    let expired = describe(&app, &own).await;
    assert!(refused(&disabled) && refused(&expired));
    assert_eq!(disabled.1.split("<RequestID>").next(), expired.1.split("<RequestID>").next());
    // Expired keys do not count against the limit of active keys.
    let enable = format!("/api/v1/users/alice/access-keys/{}/enable", forever.0);
    assert_eq!(app.call(Method::POST, &enable, &alice, None).await.0, 200);
    for _ in 0..cloudbroker_core::access_keys::MAX_KEYS_PER_USER - 1 {
        new_key(&app, &alice, "alice", None).await;
    }
    let (s, e) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 409, "{e}");
});

app_test!(a_password_change_disables_the_keys_only_when_asked, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let (key, _) = new_key(&app, &alice, "alice", None).await;
    assert!(works(&describe(&app, &key).await));
    // Without the flag: the tokens end, the key keeps working, and the audit says so.
    let body = json!({"password": "alice-new-pw-1", "current_password": "alice-password"});
    let (s, e) = app.call(Method::PUT, "/api/v1/users/alice/password", &alice, Some(body)).await;
    assert_eq!(s, 204, "{e}");
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &alice, None).await.0, 401);
    assert!(works(&describe(&app, &key).await), "the key was disabled without being asked");
    let a = last_audit(&app, &admin, "user.password", "alice").await;
    assert!(a["detail"].as_str().unwrap().contains("access keys left active"), "{a}");
    // With it: the key is refused at once (though cached), disabled, and the audit counts it.
    let alice = app.token("alice", "alice-new-pw-1").await;
    let (other, _) = new_key(&app, &alice, "alice", None).await;
    assert!(works(&describe(&app, &other).await));
    let body = json!({"password": "alice-new-pw-2", "current_password": "alice-new-pw-1", "disable_access_keys": true});
    let (s, e) = app.call(Method::PUT, "/api/v1/users/alice/password", &alice, Some(body)).await;
    assert_eq!(s, 204, "{e}");
    assert!(refused(&describe(&app, &key).await), "the key outlived the password change");
    assert!(refused(&describe(&app, &other).await));
    let alice = app.token("alice", "alice-new-pw-2").await;
    assert_eq!(key_state(&app, &alice, "alice", &key.0).await, "disabled");
    assert_eq!(key_state(&app, &alice, "alice", &other.0).await, "disabled");
    let a = last_audit(&app, &admin, "user.password", "alice").await;
    assert!(a["detail"].as_str().unwrap().contains("2 access key(s) disabled"), "{a}");
    // A wrong flag type is refused and changes nothing.
    let body = json!({"password": "alice-new-pw-3", "current_password": "alice-new-pw-2", "disable_access_keys": "yes"});
    assert_eq!(app.call(Method::PUT, "/api/v1/users/alice/password", &alice, Some(body)).await.0, 400);
    app.token("alice", "alice-new-pw-2").await;
});

app_test!(an_admin_reset_disables_the_users_keys, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let bob = app.user(&admin, "bob").await;
    let (k1, _) = new_key(&app, &bob, "bob", None).await;
    let (k2, _) = new_key(&app, &bob, "bob", None).await;
    let carol = app.user(&admin, "carol").await;
    let (theirs, _) = new_key(&app, &carol, "carol", None).await;
    assert!(works(&describe(&app, &k1).await) && works(&describe(&app, &k2).await));
    // The reset asks nothing about keys: they go anyway.
    let (s, e) = app.call(Method::PUT, "/api/v1/users/bob/password", &admin, Some(json!({"password": "reset-by-admin"}))).await;
    assert_eq!(s, 204, "{e}");
    assert!(refused(&describe(&app, &k1).await) && refused(&describe(&app, &k2).await), "a key outlived the admin's reset");
    assert_eq!(key_state(&app, &admin, "bob", &k1.0).await, "disabled");
    assert!(works(&describe(&app, &theirs).await), "another user's key was touched");
    let a = last_audit(&app, &admin, "user.password", "bob").await;
    let detail = a["detail"].as_str().unwrap();
    assert!(a["actor"] == "super" && detail.contains("admin reset") && detail.contains("2 access key(s) disabled"), "{a}");
    // Bob signs in with the new password and enables a key again if he wants.
    let bob = app.token("bob", "reset-by-admin").await;
    let enable = format!("/api/v1/users/bob/access-keys/{}/enable", k1.0);
    assert_eq!(app.call(Method::POST, &enable, &bob, None).await.0, 200);
    assert!(works(&describe(&app, &k1).await));
});

app_test!(admins_manage_another_users_keys_and_users_cannot, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (key, _) = new_key(&app, &bob, "bob", None).await;
    let base = format!("/api/v1/users/bob/access-keys/{}", key.0);
    // Another user: every operation on bob's keys is "not found", and nothing changes.
    for (m, p) in [
        (Method::GET, "/api/v1/users/bob/access-keys".to_string()),
        (Method::POST, "/api/v1/users/bob/access-keys".to_string()),
        (Method::POST, format!("{base}/disable")),
        (Method::POST, format!("{base}/enable")),
        (Method::DELETE, base.clone()),
    ] {
        let (s, b) = app.call(m.clone(), &p, &alice, None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{m} {p}: {b}");
    }
    // Nor through her own path with bob's key id.
    let (s, _) = app.call(Method::POST, &format!("/api/v1/users/alice/access-keys/{}/disable", key.0), &alice, None).await;
    assert_eq!(s, 404);
    assert!(works(&describe(&app, &key).await));
    let (_, b) = app.call(Method::GET, "/api/v1/users/bob/access-keys", &admin, None).await;
    assert_eq!(b["access_keys"].as_array().unwrap().len(), 1, "alice created a key for bob: {b}");
    // The admin: list (no secrets), disable, enable, delete.
    let (s, b) = app.call(Method::GET, "/api/v1/users/bob/access-keys", &admin, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["access_keys"][0]["access_key_id"], key.0.as_str());
    assert_eq!(b["access_keys"][0]["user"], "bob");
    assert!(!b.to_string().contains(&key.1), "a secret was listed");
    let (s, k) = app.call(Method::POST, &format!("{base}/disable"), &admin, None).await;
    assert_eq!((s, k["state"].as_str()), (200, Some("disabled")), "{k}");
    assert!(refused(&describe(&app, &key).await));
    let (s, k) = app.call(Method::POST, &format!("{base}/enable"), &admin, None).await;
    assert_eq!((s, k["state"].as_str()), (200, Some("active")), "{k}");
    assert!(works(&describe(&app, &key).await));
    assert_eq!(app.call(Method::DELETE, &base, &admin, None).await.0, 204);
    assert!(refused(&describe(&app, &key).await));
    let (_, b) = app.call(Method::GET, "/api/v1/users/bob/access-keys", &bob, None).await;
    assert!(b["access_keys"].as_array().unwrap().is_empty(), "{b}");
    assert_eq!(app.call(Method::DELETE, &base, &admin, None).await.0, 404);
    // Each change is in the audit log under the admin's name.
    for action in ["access_key.state", "access_key.delete"] {
        let a = last_audit(&app, &admin, action, &format!("bob/{}", key.0)).await;
        assert_eq!(a["actor"], "super", "{a}");
    }
});

/// A token's id from the caller's token list, by name.
async fn token_id(app: &TestApp, token: &str, name: &str) -> Value {
    let (s, b) = app.call(Method::GET, "/api/v1/tokens", token, None).await;
    assert_eq!(s, 200, "{b}");
    b["tokens"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap_or_else(|| panic!("{name} in {b}"))
}

/// A token of alice's minted with her password, by name.
async fn alices_token(app: &TestApp, name: &str) -> String {
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .basic_auth("alice", Some("alice-password"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

app_test!(tokens_minted_from_a_token_are_revoked_with_it, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    app.user(&admin, "alice").await;
    let parent = alices_token(&app, "parent").await;
    let sibling = alices_token(&app, "sibling").await;
    let mint = |with: String, name: &'static str| {
        let app = &app;
        async move {
            let (s, b) = app.call(Method::POST, "/api/v1/tokens", &with, Some(json!({"name": name}))).await;
            assert_eq!(s, 201, "{b}");
            b["token"].as_str().unwrap().to_string()
        }
    };
    let child = mint(parent.clone(), "child").await;
    let grandchild = mint(child.clone(), "grandchild").await;
    // The lineage is recorded and shown.
    let p = token_id(&app, &parent, "parent").await;
    let c = token_id(&app, &parent, "child").await;
    let g = token_id(&app, &parent, "grandchild").await;
    assert!(p["parent_id"].is_null(), "{p}");
    assert_eq!(c["parent_id"], p["id"], "{c}");
    assert_eq!(g["parent_id"], c["id"], "{g}");
    for t in [&parent, &child, &grandchild, &sibling] {
        assert_eq!(app.call(Method::GET, "/api/v1/vms", t, None).await.0, 200);
    }
    // Revoking the parent (with the child's own credentials, even) ends its descendants, not its sibling.
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/tokens/{}", p["id"].as_str().unwrap()), &child, None).await;
    assert_eq!(s, 204);
    for t in [&parent, &child, &grandchild] {
        assert_eq!(app.call(Method::GET, "/api/v1/vms", t, None).await.0, 401, "a token outlived its parent");
    }
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &sibling, None).await.0, 200);
    let (_, list) = app.call(Method::GET, "/api/v1/tokens", &sibling, None).await;
    for t in list["tokens"].as_array().unwrap() {
        let ended = ["parent", "child", "grandchild"].contains(&t["name"].as_str().unwrap());
        assert_eq!(t["revoked_at"].is_string(), ended, "{t}");
    }
    let a = last_audit(&app, &admin, "token.revoke", &format!("alice/{}", p["id"].as_str().unwrap())).await;
    assert!(a["detail"].as_str().unwrap().contains("2 token(s) minted from it"), "{a}");

    // A child minted while its parent's revocation ran (the revocation missed
    // it): here, the parent revoked in the database behind the broker's back.
    let parent = alices_token(&app, "late-parent").await;
    let child = mint(parent.clone(), "late-child").await;
    let grandchild = mint(child.clone(), "late-grandchild").await;
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &grandchild, None).await.0, 200);
    let late = token_id(&app, &child, "late-child").await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
        .bind(Utc::now().timestamp_millis())
        .bind(late["parent_id"].as_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    tokio::time::sleep(cloudbroker_core::identity::TOKEN_CACHE_TTL + Duration::from_millis(300)).await;
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &child, None).await.0, 401, "a child of a revoked token was served");
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &grandchild, None).await.0, 401, "a grandchild of a revoked token was served");
    assert_eq!(app.call(Method::GET, "/api/v1/vms", &sibling, None).await.0, 200);
});

/// A signed-in browser session without a browser.
struct Ui {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    async fn sign_in(app: &TestApp, user: &str, pw: &str) -> Self {
        let http = reqwest::Client::builder().cookie_store(true).redirect(Policy::limited(5)).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        Self { http, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form, with the session's CSRF token when `csrf`.
    async fn post(&self, path: &str, fields: &[(&str, &str)], csrf: bool) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            f.push(("csrf", &self.csrf));
        }
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The table row of key `id` on a page.
fn row<'a>(body: &'a str, id: &str) -> &'a str {
    body.split(&format!("<tr data-key=\"{id}\">"))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row {id}: {body}"))
}

app_test!(the_admin_user_page_lists_and_revokes_keys_and_the_profile_form_disables_them, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let bob = app.user(&admin, "bob").await;
    app.user(&admin, "alice").await;
    let (k1, _) = new_key(&app, &bob, "bob", Some(json!({"expires_in_secs": 3600}))).await;
    let (k2, _) = new_key(&app, &bob, "bob", None).await;
    let sup = Ui::sign_in(&app, "super", SUPER_PW).await;
    let (s, page) = sup.get("/admin/users/bob").await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"access-keys\""), "{page}");
    let r1 = row(&page, &k1.0);
    assert!(r1.contains("<td class=\"state\">active</td>") && !r1.contains("no expiry"), "{r1}");
    assert!(row(&page, &k2.0).contains("no expiry"));
    assert!(!page.contains(&k1.1) && !page.contains(&k2.1), "a secret on the page");
    // Without the CSRF token: refused, the key stays active.
    let disable = format!("/admin/users/bob/access-keys/{}/disable", k1.0);
    assert_eq!(sup.post(&disable, &[], false).await.0, 403);
    assert!(works(&describe(&app, &k1).await));
    // A non-admin is refused the admin's forms.
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    assert_eq!(alice.post(&disable, &[], true).await.0, 403);
    assert_eq!(alice.post(&format!("/admin/users/bob/access-keys/{}/delete", k2.0), &[], true).await.0, 403);
    assert!(works(&describe(&app, &k1).await) && works(&describe(&app, &k2).await));
    // Disable, enable, delete: each said on the page that follows, and true on /ec2.
    let (s, page) = sup.post(&disable, &[], true).await;
    assert!(s == 200 && page.contains(&format!("Access key {} of bob disabled", k1.0)), "{page}");
    assert!(row(&page, &k1.0).contains("<td class=\"state\">disabled</td>"));
    assert!(refused(&describe(&app, &k1).await));
    let (s, page) = sup.post(&format!("/admin/users/bob/access-keys/{}/enable", k1.0), &[], true).await;
    assert!(s == 200 && row(&page, &k1.0).contains("<td class=\"state\">active</td>"), "{page}");
    assert!(works(&describe(&app, &k1).await));
    let (s, page) = sup.post(&format!("/admin/users/bob/access-keys/{}/delete", k2.0), &[], true).await;
    assert!(s == 200 && !page.contains(&format!("data-key=\"{}\"", k2.0)), "{page}");
    assert!(refused(&describe(&app, &k2).await));
    assert_eq!(sup.post(&format!("/admin/users/bob/access-keys/{}/explode", k1.0), &[], true).await.0, 404);
    assert_eq!(sup.post("/admin/users/bob/access-keys/AKIANOSUCHKEY0000000/disable", &[], true).await.0, 404);

    // The profile's password form: the box disables the user's own keys.
    let bob_ui = Ui::sign_in(&app, "bob", "bob-password").await;
    let (_, profile) = bob_ui.get("/profile").await;
    assert!(profile.contains("name=\"disable_access_keys\""), "{profile}");
    let change = |from: &'static str, to: &'static str| {
        [("current_password", from), ("new_password", to), ("confirm_password", to)].into_iter().collect::<Vec<_>>()
    };
    let (s, _) = bob_ui.post("/profile/password", &change("bob-password", "bob-new-pw-1"), true).await;
    assert_eq!(s, 200);
    assert!(works(&describe(&app, &k1).await), "the key was disabled without the box ticked");
    let bob_ui = Ui::sign_in(&app, "bob", "bob-new-pw-1").await;
    let mut f = change("bob-new-pw-1", "bob-new-pw-2");
    f.push(("disable_access_keys", "true"));
    let (s, _) = bob_ui.post("/profile/password", &f, true).await;
    assert_eq!(s, 200);
    assert!(refused(&describe(&app, &k1).await), "the box did not disable the key");
    // The admin's reset on the page disables them too.
    let bob = app.token("bob", "bob-new-pw-2").await;
    let (k3, _) = new_key(&app, &bob, "bob", None).await;
    let (s, page) = sup.post("/admin/users/bob/password", &[("password", "reset-on-page")], true).await;
    assert!(s == 200 && page.contains("access keys are disabled"), "{page}");
    assert!(refused(&describe(&app, &k3).await));
    assert!(row(&page, &k3.0).contains("<td class=\"state\">disabled</td>"));
});
