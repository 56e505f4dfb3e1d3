//! Costs through the JSON API (issue 25), on SQLite and PostgreSQL, a real
//! server on port 0 with a price file in its `connectors.d/prices` and the
//! broker's clock set by the test, so every figure is exact: the price
//! list (users see prices with the markup; admins also list prices,
//! markups, origins and the lines not loaded), a VM's cost (running time
//! to the second, the 60 s minimum per start, lines saying their rate),
//! reports grouped by instance, user, tag and instance type, per day and
//! per month, in JSON and CSV, unpriced types reported (never free), bad
//! parameters refused naming the field, and another user's VM a 404.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Datelike, Duration, DurationRound, TimeZone, Utc};
use cloudbroker_core::costs::money::Micros;
use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// `sb`: t2.micro at 3.6/h (1000 micros a second, so any second count is
/// exact), t2.small at 0.0116/h, a 10% markup; t2.medium has no price; the
/// last line is bad (reported, skipped).
const PRICES: &str = "currency = USD\nsb.markup = 10\nsb.price.instance.t2.micro = 3.6\nsb.price.instance.t2.small = 0.0116\nsb.price.instance.t2.nano = cheap\n";

async fn start(db: Option<String>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d/prices")).unwrap();
    std::fs::write(dir.path().join("connectors.d/prices/50-test.conf"), PRICES).unwrap();
    TestApp::start(db, dir).await.unwrap()
}

/// A time this month, a couple of hours before now where the month allows
/// (the broker's clock is set there, so that the VMs' times are known).
fn start_time() -> DateTime<Utc> {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let month = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    (now - Duration::hours(2)).max(month)
}

async fn launch(app: &TestApp, token: &str, body: Value) -> String {
    let (s, b) = app.call(Method::POST, "/api/v1/vms", token, Some(body)).await;
    assert_eq!(s, 201, "{b}");
    b["vms"][0]["id"].as_str().unwrap().to_string()
}

async fn act(app: &TestApp, token: &str, id: &str, action: &str) {
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{id}/{action}"), token, None).await;
    assert_eq!(s, 200, "{action} {id}: {b}");
}

async fn reconcile(app: &TestApp, admin: &str) {
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", admin, None).await;
    assert_eq!(s, 200, "{r}");
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let (s, b) = app.call(Method::GET, path, token, None).await;
    assert_eq!(s, 200, "{path}: {b}");
    b
}

/// A report's lines as (group, cost_micros, unpriced_seconds), summed over buckets.
fn by_group(r: &Value) -> Vec<(String, i64, i64)> {
    let mut out: Vec<(String, i64, i64)> = Vec::new();
    for l in r["lines"].as_array().unwrap() {
        let g = l["group"].as_str().unwrap().to_string();
        let (c, u) = (l["cost_micros"].as_i64().unwrap(), l["unpriced_seconds"].as_i64().unwrap());
        match out.iter_mut().find(|(n, _, _)| *n == g) {
            Some(e) => {
                e.1 += c;
                e.2 += u;
            }
            None => out.push((g, c, u)),
        }
    }
    out.sort();
    out
}

async fn scenario(db: Option<String>) {
    let app = start(db).await;
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;

    // The price list: users see the price with the markup only.
    let p = get(&app, &alice, "/api/v1/prices").await;
    assert_eq!(p["currency"], "USD");
    let micro = p["prices"].as_array().unwrap().iter().find(|e| e["name"] == "t2.micro").unwrap().clone();
    assert_eq!((&micro["instance"], &micro["kind"], &micro["unit"]), (&json!("sb"), &json!("instance"), &json!("hour")));
    assert_eq!((&micro["price"], &micro["price_micros"]), (&json!("3.96"), &json!(3_960_000)), "{micro}");
    for hidden in ["list_price", "markup", "origin"] {
        assert!(micro.get(hidden).is_none(), "{hidden} shown to a user: {micro}");
    }
    assert!(p.get("errors").is_none(), "{p}");
    // Admins: the list price, the markup, where it was given, the lines not loaded.
    let p = get(&app, &admin, "/api/v1/prices").await;
    let micro = p["prices"].as_array().unwrap().iter().find(|e| e["name"] == "t2.micro").unwrap().clone();
    assert_eq!((&micro["price"], &micro["list_price"], &micro["markup"]), (&json!("3.96"), &json!("3.60"), &json!("10%")), "{micro}");
    assert!(micro["origin"].as_str().unwrap().ends_with("50-test.conf:3"), "{micro}");
    let errors = p["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("50-test.conf:5")), "{p}");

    // VMs with known running times, by the broker's clock.
    let t0 = start_time();
    app.broker.clock.set(t0);
    let a = launch(&app, &alice, json!({"instance": "sb", "image": "linux", "instance_type": "t2.micro", "tags": {"team": "blue"}})).await;
    let b = launch(&app, &alice, json!({"instance": "sb", "image": "linux", "instance_type": "t2.micro"})).await;
    let c = launch(&app, &alice, json!({"instance": "sb", "image": "linux", "instance_type": "t2.medium"})).await;
    let d = launch(&app, &bob, json!({"instance": "sb", "image": "linux", "instance_type": "t2.small"})).await;
    reconcile(&app, &admin).await;
    for (t, id) in [(&alice, &a), (&alice, &b), (&alice, &c), (&bob, &d)] {
        assert_eq!(get(&app, t, &format!("/api/v1/vms/{id}")).await["state"], "running");
    }
    // b stops at once: billed the 60 s minimum. The others run an hour.
    act(&app, &alice, &b, "stop").await;
    app.broker.clock.advance(Duration::hours(1));
    act(&app, &alice, &a, "stop").await;
    act(&app, &alice, &c, "stop").await;
    act(&app, &bob, &d, "stop").await;
    app.broker.clock.advance(Duration::minutes(10));

    // A VM's cost: an hour at 3.96.
    let v = get(&app, &alice, &format!("/api/v1/vms/{a}/cost")).await;
    assert_eq!(
        (&v["seconds"], &v["starts"], &v["cost"], &v["cost_micros"]),
        (&json!(3600), &json!(1), &json!("3.96"), &json!(3_960_000)),
        "{v}"
    );
    assert_eq!((&v["currency"], &v["estimate"], &v["unpriced_seconds"]), (&json!("USD"), &json!(true), &json!(0)), "{v}");
    assert!(v.get("list_cost").is_none(), "{v}");
    assert!(v["lines"].as_array().unwrap().iter().all(|l| l["rate"] == "3.96" && l.get("price_origin").is_none()), "{v}");
    // The minimum: 60 s for a start that ran less, said on its own line.
    let v = get(&app, &alice, &format!("/api/v1/vms/{b}/cost")).await;
    assert_eq!((&v["seconds"], &v["cost"], &v["cost_micros"]), (&json!(60), &json!("0.066"), &json!(66_000)), "{v}");
    assert!(v["lines"].as_array().unwrap().iter().any(|l| l["minimum"] == true && l["seconds"] == 60), "{v}");
    // Unpriced: counted as such, never free.
    let v = get(&app, &alice, &format!("/api/v1/vms/{c}/cost")).await;
    assert_eq!((&v["cost_micros"], &v["unpriced_seconds"]), (&json!(0), &json!(3600)), "{v}");
    assert!(v["lines"].as_array().unwrap().iter().all(|l| l.get("rate").is_none() && l.get("cost").is_none()), "{v}");
    // Admins see the list figures and where the price came from.
    let v = get(&app, &admin, &format!("/api/v1/vms/{a}/cost")).await;
    assert_eq!(v["list_cost"], "3.60", "{v}");
    let line = &v["lines"][0];
    assert_eq!((&line["list_rate"], &line["markup"]), (&json!("3.60"), &json!("10%")), "{v}");
    assert!(line["price_origin"].as_str().unwrap().ends_with("50-test.conf:3"), "{v}");
    // A period: the first half hour only.
    let from = (t0 - Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (t0 + Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let v = get(&app, &alice, &format!("/api/v1/vms/{a}/cost?from={from}&to={to}")).await;
    assert_eq!((&v["seconds"], &v["cost_micros"]), (&json!(1800), &json!(1_980_000)), "{v}");
    // Another user's VM does not exist for bob; nor does a malformed id.
    for path in [format!("/api/v1/vms/{a}/cost"), "/api/v1/vms/vm-nothing/cost".to_string(), "/api/v1/vms/%20/cost".to_string()] {
        let (s, e) = app.call(Method::GET, &path, &bob, None).await;
        assert_eq!((s, &e["error"]["code"]), (404, &json!("not_found")), "{path}: {e}");
    }

    // Reports. alice: her project's, by instance by default, this month.
    let r = get(&app, &alice, "/api/v1/costs").await;
    assert_eq!(
        (&r["group_by"], &r["granularity"], &r["estimate"], &r["currency"]),
        (&json!("instance"), &json!("day"), &json!(true), &json!("USD")),
        "{r}"
    );
    assert_eq!(by_group(&r), [("sb".to_string(), 4_026_000, 3600)], "{r}");
    assert_eq!((&r["total"], &r["total_micros"]), (&json!("4.026"), &json!(4_026_000)), "{r}");
    assert_eq!(r["unpriced"], json!([{"instance": "sb", "instance_type": "t2.medium"}]), "{r}");
    assert!(r["lines"].as_array().unwrap().iter().all(|l| l.get("list_cost").is_none()), "{r}");
    // bob sees only his.
    let r = get(&app, &bob, "/api/v1/costs?group_by=instance_type").await;
    assert_eq!(by_group(&r), [("t2.small".to_string(), 12_760, 0)], "{r}");
    // Admins: everyone's, by user by default; by tag; one user's; per month.
    let r = get(&app, &admin, "/api/v1/costs").await;
    assert_eq!(r["group_by"], "user");
    assert_eq!(by_group(&r), [("alice".to_string(), 4_026_000, 3600), ("bob".to_string(), 12_760, 0)], "{r}");
    assert_eq!(r["total"], "4.03876", "{r}");
    let r = get(&app, &admin, "/api/v1/costs?group_by=tag:team").await;
    assert_eq!(by_group(&r), [("(untagged)".to_string(), 78_760, 3600), ("blue".to_string(), 3_960_000, 0)], "{r}");
    let r = get(&app, &admin, "/api/v1/costs?user=bob").await;
    assert_eq!(r["total_micros"], 12_760, "{r}");
    let r = get(&app, &admin, "/api/v1/costs?granularity=month&group_by=instance_type").await;
    let month = Utc.with_ymd_and_hms(t0.year(), t0.month(), 1, 0, 0, 0).unwrap();
    assert!(r["lines"].as_array().unwrap().iter().all(|l| l["bucket"] == month.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)), "{r}");
    assert_eq!(
        by_group(&r),
        [("t2.medium".to_string(), 0, 3600), ("t2.micro".to_string(), 4_026_000, 0), ("t2.small".to_string(), 12_760, 0)],
        "{r}"
    );
    assert!(r["lines"].as_array().unwrap().iter().any(|l| l["group"] == "t2.micro" && l["list_cost"] == "3.66"), "{r}");
    // alice in a project she does not belong to: 404, as every route.
    let (s, e) = app.call(Method::GET, "/api/v1/costs?project=elsewhere", &alice, None).await;
    assert_eq!(s, 404, "{e}");

    // CSV: a header, then one line per report line.
    let resp = app.http.get(app.url("/api/v1/costs?group_by=user")).bearer_auth(&admin).header("Accept", "text/csv").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"), "{:?}", resp.headers());
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "bucket,group,vms,seconds,starts,unpriced_seconds,cost,currency,list_cost", "{csv}");
    let json_lines = get(&app, &admin, "/api/v1/costs?group_by=user").await["lines"].as_array().unwrap().len();
    assert_eq!(lines.len(), 1 + json_lines, "{csv}");
    let total: i64 = lines[1..]
        .iter()
        .map(|l| {
            let cost = l.split(',').nth(6).unwrap();
            Micros::parse(cost).unwrap().0
        })
        .sum();
    assert_eq!(total, 4_038_760, "{csv}");
    assert!(lines[1..].iter().all(|l| l.split(',').nth(7) == Some("USD")), "{csv}");
    // A user's CSV: no list prices.
    let resp = app.http.get(app.url("/api/v1/costs")).bearer_auth(&alice).header("Accept", "text/csv").send().await.unwrap();
    let csv = resp.text().await.unwrap();
    assert_eq!(csv.lines().next(), Some("bucket,group,vms,seconds,starts,unpriced_seconds,cost,currency"), "{csv}");
    assert_eq!(csv.lines().skip(1).map(|l| Micros::parse(l.split(',').nth(6).unwrap()).unwrap().0).sum::<i64>(), 4_026_000, "{csv}");

    // Bad parameters: 400 naming the field.
    let day = t0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let earlier = (t0 - Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let long_ago = (t0 - Duration::days(500)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (q, field) in [
        ("from=yesterday".to_string(), "from"),
        ("to=2026-13-01".to_string(), "to"),
        ("group_by=colour".to_string(), "group_by"),
        ("group_by=tag:".to_string(), "group_by"),
        ("granularity=week".to_string(), "granularity"),
        ("user=Not%20A%20Name".to_string(), "user"),
        ("instance=Not_an_instance".to_string(), "instance"),
        (format!("from={day}&to={earlier}"), "to"),
        (format!("from={long_ago}&to={day}"), "to"),
    ] {
        let (s, e) = app.call(Method::GET, &format!("/api/v1/costs?{}", q.replace('+', "%2B")), &admin, None).await;
        assert_eq!((s, &e["error"]["field"]), (400, &json!(field)), "{q}: {e}");
    }
    let (s, e) = app.call(Method::GET, &format!("/api/v1/vms/{a}/cost?from=soon"), &alice, None).await;
    assert_eq!((s, &e["error"]["field"]), (400, &json!("from")), "{e}");
    let (s, e) = app.call(Method::GET, "/api/v1/costs?colour=red", &alice, None).await;
    assert_eq!(s, 400, "{e}");
    // Filtering by user is for admins.
    let (s, e) = app.call(Method::GET, "/api/v1/costs?user=alice", &alice, None).await;
    assert_eq!((s, &e["error"]["code"]), (403, &json!("forbidden")), "{e}");
    app.stop().await;
}

db_url_test!(costs_through_the_api, super::scenario);

#[tokio::test]
async fn the_document_describes_the_cost_routes() {
    let app = TestApp::sqlite().await;
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = &doc["paths"];
    for (p, m) in [("/api/v1/prices", "get"), ("/api/v1/vms/{id}/cost", "get"), ("/api/v1/costs", "get")] {
        assert!(paths[p][m].is_object(), "{p}");
        assert!(paths[p][m]["responses"].get("400").is_some() || p == "/api/v1/prices", "{p}");
    }
    let report = &paths["/api/v1/costs"]["get"];
    assert!(report["responses"]["200"]["content"].get("text/csv").is_some(), "{report}");
    let names: Vec<&str> = report["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in ["from", "to", "group_by", "granularity", "user", "project", "instance"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let cost = &doc["components"]["schemas"]["ReportOut"]["properties"]["total"];
    assert_eq!(cost["type"], "string", "{cost}");
    app.stop().await;
}
