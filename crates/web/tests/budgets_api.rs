//! Budgets through the JSON API and the EC2 front (issue 25), on SQLite
//! and PostgreSQL, a real server on port 0 with a price file in its
//! `connectors.d/prices` and the broker's clock set by the test, so every
//! figure is exact: `sb`'s `budget.user.monthly` (0.10) fits one t2.micro
//! start (60 s at 3.6/h = 0.06); a second launch is refused with 409
//! `budget_exceeded` carrying the figures; an admin's override (PUT) lifts
//! it and its removal (DELETE) restores the instance's default; only
//! admins set budgets; a bad amount or scope is a 400 naming the field;
//! unknown owners and instances are 404s; `GET /budgets` shows the amount,
//! its source, what was spent and this month's alerts. On the EC2 front
//! (boto3, tests/ec2/boto3_budgets.py) RunInstances and StartInstances of
//! a stopped VM over the budget get `InstanceLimitExceeded` naming it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Datelike, Duration, DurationRound, TimeZone, Utc};
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// `sb`: t2.micro at 3.6/h (the 60 s minimum costs 0.06), no markup.
const PRICES: &str = "currency = USD\nsb.price.instance.t2.micro = 3.6\n";

async fn start(db: Option<String>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d/prices")).unwrap();
    std::fs::write(dir.path().join("connectors.d/prices/50-test.conf"), PRICES).unwrap();
    TestApp::start(db, dir).await.unwrap()
}

/// A time this month, a couple of hours before now where the month allows.
fn start_time() -> DateTime<Utc> {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let month = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    (now - Duration::hours(2)).max(month)
}

fn micro() -> Value {
    json!({"instance": "sb", "image": "linux", "instance_type": "t2.micro"})
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let (s, b) = app.call(Method::GET, path, token, None).await;
    assert_eq!(s, 200, "{path}: {b}");
    b
}

/// The budget of `scope` on `sb` in a `GET /budgets` answer.
fn on_sb(b: &Value, scope: &str) -> Value {
    b["budgets"].as_array().unwrap().iter().find(|x| x["instance"] == "sb" && x["scope"] == scope).unwrap_or_else(|| panic!("{b}")).clone()
}

async fn reconcile(app: &TestApp, admin: &str) {
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", admin, None).await;
    assert_eq!(s, 200, "{r}");
}

async fn scenario(db: Option<String>) {
    let app = start(db).await;
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    app.broker.clock.set(start_time());

    // No budget yet: null amount, from the instance.
    let b = on_sb(&get(&app, &alice, "/api/v1/budgets").await, "user");
    assert_eq!(
        (&b["amount"], &b["source"], &b["spent"], &b["owner"]),
        (&Value::Null, &json!("instance"), &json!("0.00"), &json!("alice")),
        "{b}"
    );
    let (s, r) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb.budget.user.monthly": "0.10"}))).await;
    assert_eq!(s, 200, "{r}");
    let b = on_sb(&get(&app, &alice, "/api/v1/budgets").await, "user");
    assert_eq!(
        (&b["amount"], &b["amount_micros"], &b["source"], &b["currency"]),
        (&json!("0.10"), &json!(100_000), &json!("instance"), &json!("USD")),
        "{b}"
    );

    // One start fits (0.06 of 0.10), the second does not: 409 with the figures.
    let (s, r) = app.call(Method::POST, "/api/v1/vms", &alice, Some(micro())).await;
    assert_eq!(s, 201, "{r}");
    let first = r["vms"][0]["id"].as_str().unwrap().to_string();
    let (s, r) = app.call(Method::POST, "/api/v1/vms", &alice, Some(micro())).await;
    assert_eq!((s, r["error"]["code"].as_str()), (409, Some("budget_exceeded")), "{r}");
    let fig = &r["error"]["budget"];
    assert_eq!(
        (&fig["scope"], &fig["owner"], &fig["instance"], &fig["currency"]),
        (&json!("user"), &json!("alice"), &json!("sb"), &json!("USD")),
        "{r}"
    );
    assert_eq!((&fig["budget"], &fig["spent"], &fig["requested"]), (&json!("0.100000"), &json!("0.060000"), &json!("0.060000")), "{r}");
    // Bob's budget is his own.
    let (s, r) = app.call(Method::POST, "/api/v1/vms", &bob, Some(micro())).await;
    assert_eq!(s, 201, "{r}");

    // GET shows what was spent, and the watch's alerts (60% passes 50%).
    let b = on_sb(&get(&app, &alice, "/api/v1/budgets").await, "user");
    assert_eq!((&b["spent"], &b["spent_micros"], &b["used_percent"]), (&json!("0.06"), &json!(60_000), &json!(60)), "{b}");
    app.broker.costs.watch_budgets().await.unwrap();
    let all = get(&app, &alice, "/api/v1/budgets").await;
    let alerts = all["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{all}");
    assert!(alerts[0].as_str().unwrap().contains("(50% reached"), "{all}");

    // Only admins set budgets, and read others'.
    let path = "/api/v1/budgets/user/alice/sb";
    let (s, r) = app.call(Method::PUT, path, &alice, Some(json!({"amount": "5"}))).await;
    assert_eq!((s, r["error"]["code"].as_str()), (403, Some("forbidden")), "{r}");
    let (s, r) = app.call(Method::DELETE, path, &alice, None).await;
    assert_eq!(s, 403, "{r}");
    let (s, r) = app.call(Method::GET, "/api/v1/budgets?user=bob", &alice, None).await;
    assert_eq!(s, 403, "{r}");
    // Bad values name their field; unknown things are 404s.
    for bad in [json!("abc"), json!("-1"), json!("1.1234567"), json!(" 5"), json!("1234567890"), json!(5), json!(true)] {
        let (s, r) = app.call(Method::PUT, path, &admin, Some(json!({"amount": bad}))).await;
        assert_eq!((s, r["error"]["field"].as_str()), (400, Some("amount")), "{bad}: {r}");
    }
    let (s, r) = app.call(Method::PUT, "/api/v1/budgets/team/alice/sb", &admin, Some(json!({"amount": "5"}))).await;
    assert_eq!((s, r["error"]["field"].as_str()), (400, Some("scope")), "{r}");
    for p in ["/api/v1/budgets/user/nobody/sb", "/api/v1/budgets/user/alice/nowhere", "/api/v1/budgets/project/nothing/sb"] {
        let (s, r) = app.call(Method::PUT, p, &admin, Some(json!({"amount": "5"}))).await;
        assert_eq!((s, r["error"]["code"].as_str()), (404, Some("not_found")), "{p}: {r}");
    }

    // An override lifts the refusal.
    let (s, r) = app.call(Method::PUT, path, &admin, Some(json!({"amount": "1.00"}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!((&r["amount"], &r["source"], &r["spent"]), (&json!("1.00"), &json!("override"), &json!("0.06")), "{r}");
    let b = on_sb(&get(&app, &admin, "/api/v1/budgets?user=alice").await, "user");
    assert_eq!((&b["amount"], &b["source"], &b["used_percent"]), (&json!("1.00"), &json!("override"), &json!(6)), "{b}");
    let (s, r) = app.call(Method::POST, "/api/v1/vms", &alice, Some(micro())).await;
    assert_eq!(s, 201, "{r}");
    // The first VM runs, then stops (a stopped VM to start later).
    reconcile(&app, &admin).await;
    let (s, r) = app.call(Method::POST, &format!("/api/v1/vms/{first}/stop"), &alice, None).await;
    assert_eq!(s, 200, "{r}");
    for _ in 0..5 {
        if get(&app, &alice, &format!("/api/v1/vms/{first}")).await["state"] == "stopped" {
            break;
        }
        reconcile(&app, &admin).await;
    }
    assert_eq!(get(&app, &alice, &format!("/api/v1/vms/{first}")).await["state"], "stopped");

    // Removing it restores the instance's 0.10: 0.12 is spent, nothing more starts.
    let (s, r) = app.call(Method::DELETE, path, &admin, None).await;
    assert_eq!(s, 204, "{r}");
    let b = on_sb(&get(&app, &alice, "/api/v1/budgets").await, "user");
    assert_eq!((&b["amount"], &b["source"], &b["spent"]), (&json!("0.10"), &json!("instance"), &json!("0.12")), "{b}");
    let (s, r) = app.call(Method::POST, "/api/v1/vms", &alice, Some(micro())).await;
    assert_eq!((s, r["error"]["code"].as_str()), (409, Some("budget_exceeded")), "{r}");
    let (s, r) = app.call(Method::POST, &format!("/api/v1/vms/{first}/start"), &alice, None).await;
    assert_eq!((s, r["error"]["code"].as_str()), (409, Some("budget_exceeded")), "{r}");
    assert_eq!(r["error"]["budget"]["spent"], "0.120000", "{r}");

    // The EC2 front: RunInstances and StartInstances refused naming the budget.
    let env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("ALICE_AK".into(), key.0.clone()),
        ("ALICE_SK".into(), key.1.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
    ];
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/boto3_budgets.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let named = "Budget exceeded: the monthly budget of user 'alice' on 'sb' is 0.10 USD: 0.12 USD is spent or committed this month";
    for (what, action) in [("run", "launch"), ("start", "start")] {
        assert_eq!(out[what][0], "InstanceLimitExceeded", "{out}");
        let m = out[what][1].as_str().unwrap();
        assert!(m.starts_with(named) && m.contains(&format!("this {action} needs at least 0.0600 USD")), "{what}: {m}");
    }
    assert_eq!(out["stopped"], 1, "{out}");
}

db_url_test!(budgets_refuse_and_overrides_lift, super::scenario);
