//! Costs in the UI, through the real server without a browser, the
//! broker's clock set by the test so every figure is exact: the Costs page
//! draws the month as an inline SVG (a bar per day stacked by group, axis
//! labels, a legend) with the same numbers in a table (per group totals and
//! the grand total, labelled estimates, unpriced types listed), a user
//! seeing the project's VMs and an admin everyone's (filtered by user);
//! the dashboard shows the month to date, the burn rate of the running VMs
//! and the month-end forecast; each VM row its cost this month. Amounts
//! are shown rounded to cents, each with its exact figure as the element's
//! title. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Datelike, Duration, DurationRound, TimeZone, Utc};
use common::{TestApp, SUPER_PW};
use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::json;

const PRICES: &str = "currency = USD\nsb.markup = 10\nsb.price.instance.t2.micro = 3.6\nsb.price.instance.t2.small = 0.0116\n";

struct Ui {
    http: reqwest::Client,
    base: String,
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    async fn sign_in(app: &TestApp, user: &str, pw: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar).redirect(Policy::limited(5)).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        Self { http, base: app.base.clone() }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start).nth(1).and_then(|r| r.split(end).next()).unwrap_or_else(|| panic!("no {start} in {body}"))
}

/// The table row of group `g`: its cost cell, as shown (rounded to cents)
/// and in its title (exact).
fn row_cost<'a>(body: &'a str, g: &str) -> (&'a str, &'a str) {
    let row = between(body, &format!("<tr data-group=\"{g}\">"), "</tr>");
    let (exact, shown) = between(row, "<td class=\"num cost\" title=\"", "</td>").split_once("\">").unwrap();
    (shown, exact)
}

fn start_time() -> DateTime<Utc> {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let month = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    (now - Duration::hours(2)).max(month)
}

async fn scenario(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d/prices")).unwrap();
    std::fs::write(dir.path().join("connectors.d/prices/50-test.conf"), PRICES).unwrap();
    let app = TestApp::start(db, dir).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;

    // a (t2.micro, 3.96/h with the markup) runs on; b (t2.small) an hour; c (t2.medium, unpriced) an hour.
    let t0 = start_time();
    app.broker.clock.set(t0);
    let mut ids = Vec::new();
    for t in ["t2.micro", "t2.small", "t2.medium"] {
        let (s, b) = app
            .call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "linux", "instance_type": t, "name": t})))
            .await;
        assert_eq!(s, 201, "{b}");
        ids.push(b["vms"][0]["id"].as_str().unwrap().to_string());
    }
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    app.broker.clock.advance(Duration::hours(1));
    for id in &ids[1..] {
        let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{id}/stop"), &alice, None).await;
        assert_eq!(s, 200, "{b}");
    }
    // a: 3.96; b: 0.01276; total 3.97276.
    let ui = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, page) = ui.get("/costs?group_by=instance_type").await;
    assert_eq!(s, 200, "{page}");
    let svg = between(&page, "<svg", "</svg>");
    assert!(svg.contains("id=\"cost-chart\"") && svg.contains("<title id=\"cost-chart-title\">Spend per day"), "{svg}");
    let day = t0.format("%Y-%m-%d").to_string();
    assert!(svg.contains(&format!("data-day=\"{day}\" data-group=\"t2.micro\"")), "a bar for t2.micro on {day}: {svg}");
    assert!(svg.contains("class=\"y-label\"") && svg.contains("class=\"x-label\""), "axis labels: {svg}");
    assert!(svg.contains("class=\"legend-item\"") && svg.contains(">t2.small</text>"), "legend: {svg}");
    assert!(!page.contains("<script>"), "no script on the page");
    assert_eq!(row_cost(&page, "t2.micro"), ("3.96", "3.96"));
    assert_eq!(row_cost(&page, "t2.small"), ("0.01", "0.01276"), "cents shown, the exact figure in the title");
    assert_eq!(between(&page, "id=\"cost-total\">", "</td>"), "3.97");
    assert!(page.contains("title=\"3.97276\" id=\"cost-total\""), "{page}");
    assert!(page.contains("id=\"estimate\""), "labelled an estimate");
    let unpriced = between(&page, "id=\"unpriced\"", "</section>");
    assert!(unpriced.contains("t2.medium"), "{unpriced}");
    // The month selector offers this month, chosen; the user has no user filter.
    let this_month = t0.format("%Y-%m").to_string();
    assert!(page.contains(&format!("<option value=\"{this_month}\" selected>")), "{page}");
    assert!(!page.contains("id=\"c-user\""), "a user filters no users");
    // A bad month is said next to the field.
    let (s, page) = ui.get("/costs?month=2026-13").await;
    assert_eq!(s, 400);
    assert!(page.contains("Choose a month"), "{page}");

    // The dashboard: month to date, burn rate (a still runs), forecast.
    let (_, home) = ui.get("/").await;
    assert_eq!(between(&home, "id=\"spend-mtd\">", "</span>"), "USD 3.97");
    assert!(home.contains("title=\"USD 3.97276\" id=\"spend-mtd\""), "{home}");
    assert_eq!(between(&home, "id=\"spend-rate\">", "</span>"), "USD 3.96/h");
    let now = t0 + Duration::hours(1);
    let month_end = if now.month() == 12 {
        Utc.with_ymd_and_hms(now.year() + 1, 1, 1, 0, 0, 0).unwrap()
    } else {
        Utc.with_ymd_and_hms(now.year(), now.month() + 1, 1, 0, 0, 0).unwrap()
    };
    let forecast = 3_972_760 + (month_end - now).num_seconds() * 1100;
    let forecast = cloudbroker_core::costs::money::Micros(forecast);
    let shown = between(&home, "id=\"spend-forecast\">", "</span>").trim_start_matches("USD ").to_string();
    assert_eq!(shown, forecast.to_decimal(2), "{home}");
    let exact = home.split("\" id=\"spend-forecast\"").next().unwrap().rsplit("title=\"USD ").next().unwrap();
    assert_eq!(cloudbroker_core::costs::money::Micros::parse(exact).unwrap().to_decimal(6), forecast.to_decimal(6), "{home}");

    // The VMs page: each row's cost this month.
    let (_, vms) = ui.get("/vms").await;
    for (id, cost, exact) in [(&ids[0], "USD 3.96", "USD 3.96"), (&ids[1], "USD 0.01", "USD 0.01276"), (&ids[2], "unpriced", "unpriced")] {
        let row = between(&vms, &format!("<code>{id}</code>"), "</tr>");
        assert_eq!(between(row, "<td class=\"cost-month\"", "</td>"), format!(" title=\"{exact}\">{cost}"), "{row}");
    }

    // The VM's own page explains its figure: seconds, rate, cost.
    let (_, vm) = ui.get(&format!("/vms/{}", ids[0])).await;
    assert_eq!(between(&vm, "id=\"vm-cost-total\">", "</span>"), "USD 3.96", "{vm}");
    let lines = between(&vm, "id=\"vm-cost-lines\"", "</table>");
    assert!(lines.contains("<td class=\"num\">3600</td><td>3.96/h</td><td class=\"num\" title=\"3.96\">3.96</td>"), "{lines}");
    assert!(!lines.contains("50-test.conf"), "a user sees no price origin: {lines}");

    // An admin: everyone's by user, filtered by user.
    let sup = Ui::sign_in(&app, "super", SUPER_PW).await;
    let (s, page) = sup.get("/costs").await;
    assert_eq!(s, 200);
    assert_eq!(row_cost(&page, "alice"), ("3.97", "3.97276"));
    let (_, page) = sup.get("/costs?user=bob&group_by=user").await;
    assert_eq!(between(&page, "id=\"cost-total\">", "</td>"), "0.00");
    assert!(page.contains("Nothing was spent this month so far."), "{page}");
    // Admins see where the price came from.
    let (_, vm) = sup.get(&format!("/vms/{}", ids[0])).await;
    let lines = between(&vm, "id=\"vm-cost-lines\"", "</table>");
    assert!(lines.contains("list 3.60/h, markup 10%") && lines.contains("50-test.conf:3"), "{lines}");
    let (_, home) = sup.get("/").await;
    assert!(between(&home, "id=\"spend-mtd\">", "</span>") == "USD 3.97", "{home}");
    assert!(home.contains("title=\"USD 3.97276\" id=\"spend-mtd\""), "{home}");
    app.stop().await;
}

db_url_test!(costs_page_dashboard_and_vm_rows, super::scenario);
