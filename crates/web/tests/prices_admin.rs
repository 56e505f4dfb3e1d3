//! Prices set by admins (issue 25), through the JSON API and the admin
//! page, on SQLite and PostgreSQL, a real server on port 0 with a price
//! file and the broker's clock set by the test, so every figure is exact:
//! a price set from now and another from a later time bill a VM at the old
//! price before and the new one after (to the micro); an effective time in
//! the past, an unknown instance, a bad field, a non-admin and an item a
//! price file manages are refused; only prices not in effect yet can be
//! deleted; a markup set through the API changes what users see while
//! admins see both; an instance's `billing.minimum.seconds` is the minimum
//! billed per start; what VMs use with no price is listed as unpriced; every
//! change is audited; a second broker on the same PostgreSQL sees a price
//! set on the first once it checks its configuration; the admin page lists
//! prices with their origins, markups and what is unpriced (amber), sets a
//! price, and a failed form comes back with its errors and values kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Datelike, Duration, DurationRound, SecondsFormat, TimeZone, Utc};
use common::{TestApp, SUPER_PW};
use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::{json, Value};

/// `sb`'s t2.micro is priced by the file (so managed by it); t2.small and
/// t2.medium are not.
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

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let (s, b) = app.call(Method::GET, path, token, None).await;
    assert_eq!(s, 200, "{path}: {b}");
    b
}

async fn setup(app: &TestApp) -> (String, String) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice = app.user(&admin, "alice").await;
    (admin, alice)
}

async fn launch(app: &TestApp, token: &str, instance_type: &str) -> String {
    let body = json!({"instance": "sb", "image": "linux", "instance_type": instance_type});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", token, Some(body)).await;
    assert_eq!(s, 201, "{b}");
    b["vms"][0]["id"].as_str().unwrap().to_string()
}

fn price_of<'a>(list: &'a Value, name: &str) -> Vec<&'a Value> {
    list["prices"].as_array().unwrap().iter().filter(|p| p["name"] == name).collect()
}

async fn scenario(db: Option<String>) {
    let app = start(db).await;
    let (admin, alice) = setup(&app).await;
    let t0 = start_time();
    app.broker.clock.set(t0);

    // t2.small: 3.6/h from now (no effective time given), 7.2/h from half an hour later.
    let (s, p) = app.call(Method::PUT, "/api/v1/prices/sb/instance/t2.small", &admin, Some(json!({"price": "3.6"}))).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!((&p["list_price"], &p["price_micros"], &p["effective"]), (&json!("3.60"), &json!(3_600_000), &json!(rfc(t0))), "{p}");
    assert_eq!(p["origin"], json!(format!("set by admin super at {}", rfc(t0))), "{p}");
    let later = t0 + Duration::minutes(30);
    let body = json!({"price": "7.2", "effective": rfc(later)});
    let (s, p) = app.call(Method::PUT, "/api/v1/prices/sb/instance/t2.small", &admin, Some(body)).await;
    assert_eq!((s, &p["effective"]), (200, &json!(rfc(later))), "{p}");

    // Refusals: a past effective time, bad fields, an unknown instance, a user, a file's item.
    let past = json!({"price": "1", "effective": rfc(t0 - Duration::minutes(1))});
    let (s, e) = app.call(Method::PUT, "/api/v1/prices/sb/instance/t2.small", &admin, Some(past)).await;
    assert_eq!((s, &e["error"]["code"], &e["error"]["field"]), (400, &json!("invalid_request"), &json!("effective")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("in the past"), "{e}");
    for (path, body, field) in [
        ("/api/v1/prices/sb/instance/t2.small", json!({"price": "cheap"}), "price"),
        ("/api/v1/prices/sb/instance/t2.small", json!({"price": 3.6}), "price"),
        ("/api/v1/prices/sb/instance/t2.small", json!({"price": "1", "effective": "tomorrow"}), "effective"),
        ("/api/v1/prices/sb/gpu/big", json!({"price": "1"}), "kind"),
        ("/api/v1/prices/sb/address/x", json!({"price": "1"}), "name"),
    ] {
        let (s, e) = app.call(Method::PUT, path, &admin, Some(body.clone())).await;
        assert_eq!((s, &e["error"]["field"]), (400, &json!(field)), "{path} {body}: {e}");
    }
    let (s, e) = app.call(Method::PUT, "/api/v1/prices/nowhere/instance/t2.small", &admin, Some(json!({"price": "1"}))).await;
    assert_eq!((s, &e["error"]["code"]), (404, &json!("not_found")), "{e}");
    let (s, e) = app.call(Method::PUT, "/api/v1/prices/sb/instance/t2.small", &alice, Some(json!({"price": "0"}))).await;
    assert_eq!((s, &e["error"]["code"]), (403, &json!("forbidden")), "{e}");
    let (s, e) = app.call(Method::PUT, "/api/v1/prices/sb/markup", &alice, Some(json!({"markup": "50"}))).await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = app.call(Method::GET, "/api/v1/prices/unpriced", &alice, None).await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = app.call(Method::PUT, "/api/v1/prices/sb/instance/t2.micro", &admin, Some(json!({"price": "1"}))).await;
    assert_eq!(s, 409, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("50-test.conf:2"), "{e}");

    // Deleting: a price not in effect yet, yes; one in effect, no; one that is not there, 404.
    let in_2h = rfc(t0 + Duration::hours(2));
    let (s, p) = app.call(Method::PUT, "/api/v1/prices/sb/address/-", &admin, Some(json!({"price": "0.005", "effective": in_2h}))).await;
    assert_eq!((s, &p["kind"], &p["unit"]), (200, &json!("address"), &json!("hour")), "{p}");
    let (s, e) = app.call(Method::DELETE, &format!("/api/v1/prices/sb/address/-?effective={in_2h}"), &admin, None).await;
    assert_eq!(s, 204, "{e}");
    let (s, e) = app.call(Method::DELETE, &format!("/api/v1/prices/sb/address/-?effective={in_2h}"), &admin, None).await;
    assert_eq!((s, &e["error"]["code"]), (404, &json!("not_found")), "{e}");
    let (s, e) = app.call(Method::DELETE, &format!("/api/v1/prices/sb/instance/t2.small?effective={}", rfc(t0)), &admin, None).await;
    assert_eq!(s, 409, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("already in effect"), "{e}");
    let (s, e) = app.call(Method::DELETE, "/api/v1/prices/sb/instance/t2.small", &admin, None).await;
    assert_eq!((s, &e["error"]["field"]), (400, &json!("effective")), "{e}");

    // A VM of t2.small from t0: the old price for its first half hour, the new one after.
    let vm = launch(&app, &alice, "t2.small").await;
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(get(&app, &alice, &format!("/api/v1/vms/{vm}")).await["state"], "running");
    app.broker.clock.advance(Duration::minutes(20));
    let v = get(&app, &alice, &format!("/api/v1/vms/{vm}/cost")).await;
    assert_eq!((&v["seconds"], &v["cost_micros"]), (&json!(1200), &json!(1_200_000)), "{v}");
    app.broker.clock.advance(Duration::minutes(40));
    let v = get(&app, &alice, &format!("/api/v1/vms/{vm}/cost")).await;
    // 1800 s at 1000 micros/s, then 1800 s at 2000.
    assert_eq!((&v["seconds"], &v["cost_micros"], &v["unpriced_seconds"]), (&json!(3600), &json!(5_400_000), &json!(0)), "{v}");

    // A markup through the API: users see prices and costs with it, admins both.
    let (s, m) = app.call(Method::PUT, "/api/v1/prices/sb/markup", &admin, Some(json!({"markup": "10"}))).await;
    assert_eq!((s, &m["markup"], &m["markup_hundredths"]), (200, &json!("10%"), &json!(1000)), "{m}");
    assert!(m["origin"].as_str().unwrap().starts_with("set by admin super at "), "{m}");
    let v = get(&app, &alice, &format!("/api/v1/vms/{vm}/cost")).await;
    assert_eq!(v["cost_micros"], json!(5_940_000), "{v}");
    assert!(v.get("list_cost").is_none(), "{v}");
    let v = get(&app, &admin, &format!("/api/v1/vms/{vm}/cost")).await;
    assert_eq!((&v["cost_micros"], &v["list_cost"]), (&json!(5_940_000), &json!("5.40")), "{v}");
    let l = get(&app, &alice, "/api/v1/prices").await;
    let small = price_of(&l, "t2.small");
    assert_eq!(small.iter().map(|p| p["price_micros"].as_i64().unwrap()).collect::<Vec<_>>(), [3_960_000, 7_920_000], "{l}");
    assert!(small.iter().all(|p| p.get("list_price").is_none() && p.get("origin").is_none()), "{l}");
    let l = get(&app, &admin, "/api/v1/prices").await;
    let small = price_of(&l, "t2.small");
    assert_eq!((&small[0]["list_price"], &small[0]["price"], &small[0]["markup"]), (&json!("3.60"), &json!("3.96"), &json!("10%")), "{l}");
    assert!(price_of(&l, "t2.micro")[0]["origin"].as_str().unwrap().ends_with("50-test.conf:2"), "{l}");
    for (body, field) in [(json!({"markup": "lots"}), "markup"), (json!({"markup": 10}), "markup"), (json!({"markup": "2000"}), "markup")] {
        let (s, e) = app.call(Method::PUT, "/api/v1/prices/sb/markup", &admin, Some(body.clone())).await;
        assert_eq!((s, &e["error"]["field"]), (400, &json!(field)), "{body}: {e}");
    }
    let (s, m) = app.call(Method::PUT, "/api/v1/prices/sb/markup", &admin, Some(json!({"markup": null}))).await;
    assert_eq!((s, &m["markup"]), (200, &Value::Null), "{m}");
    assert_eq!(get(&app, &alice, &format!("/api/v1/vms/{vm}/cost")).await["cost_micros"], json!(5_400_000));

    // Unpriced: a type a VM used with no price; the priced ones are not listed.
    launch(&app, &alice, "t2.medium").await;
    let u = get(&app, &admin, "/api/v1/prices/unpriced").await;
    let list = u["unpriced"].as_array().unwrap();
    assert!(
        list.iter().any(|e| e["instance"] == "sb"
            && e["kind"] == "instance"
            && e["name"] == "t2.medium"
            && e["reasons"] == json!(["used_by_vms"])),
        "{u}"
    );
    assert!(!list.iter().any(|e| e["name"] == "t2.small" || e["name"] == "t2.micro"), "{u}");

    // The instance's billing.minimum.seconds: a start that stops at once is billed 120 s (at 7.2/h).
    let (s, r) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb.billing.minimum.seconds": "120"}))).await;
    assert_eq!(s, 200, "{r}");
    let short = launch(&app, &alice, "t2.small").await;
    let (s, r) = app.call(Method::POST, "/api/v1/reconcile", &admin, None).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = app.call(Method::POST, &format!("/api/v1/vms/{short}/stop"), &alice, None).await;
    assert_eq!(s, 200, "{r}");
    app.broker.clock.advance(Duration::minutes(5));
    let v = get(&app, &alice, &format!("/api/v1/vms/{short}/cost")).await;
    assert_eq!((&v["seconds"], &v["cost_micros"]), (&json!(120), &json!(240_000)), "{v}");

    // Every change is audited.
    let a = get(&app, &admin, "/api/v1/audit?action=price.change&limit=100").await;
    let details: Vec<&str> = a["entries"].as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap_or("")).collect();
    assert!(details.iter().any(|d| d.contains("instance.t2.small") && d.contains("7.2")), "{a}");
    assert!(details.iter().any(|d| d.contains("markup: 10%")) && details.iter().any(|d| d.contains("markup removed")), "{a}");
    assert!(details.iter().any(|d| d.contains("address") && d.contains("deleted")), "{a}");
    app.stop().await;
}

db_url_test!(prices_through_the_api, super::scenario);

/// Two brokers on one PostgreSQL: a price set on the first is billed by
/// the second once it checks its configuration (as every launch does).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_broker_sees_a_price_set_on_the_first() {
    let Some(url) = common::postgres_db().await else { return };
    let a = start(Some(url)).await;
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::copy(a.dir.path().join("master.key"), dir_b.path().join("master.key")).unwrap();
    std::fs::create_dir_all(dir_b.path().join("connectors.d/prices")).unwrap();
    std::fs::write(dir_b.path().join("connectors.d/prices/50-test.conf"), PRICES).unwrap();
    let b = TestApp::start(Some(a.db_url.clone()), dir_b).await.unwrap();
    let admin_a = a.token("super", SUPER_PW).await;
    let admin_b = b.token("super", SUPER_PW).await;
    assert!(price_of(&get(&b, &admin_b, "/api/v1/prices").await, "t2.large").is_empty());
    let (s, p) = a.call(Method::PUT, "/api/v1/prices/sb/instance/t2.large", &admin_a, Some(json!({"price": "0.0928"}))).await;
    assert_eq!(s, 200, "{p}");
    let (s, m) = a.call(Method::PUT, "/api/v1/prices/sb/markup", &admin_a, Some(json!({"markup": "-5"}))).await;
    assert_eq!(s, 200, "{m}");
    assert!(b.broker.registry.reload_if_changed().await.unwrap());
    let l = get(&b, &admin_b, "/api/v1/prices").await;
    let large = price_of(&l, "t2.large");
    assert_eq!(large.len(), 1, "{l}");
    assert_eq!(
        (&large[0]["list_price"], &large[0]["markup"], &large[0]["price_micros"]),
        (&json!("0.0928"), &json!("-5%"), &json!(88_160)),
        "{l}"
    );
    assert!(large[0]["origin"].as_str().unwrap().starts_with("set by admin super at "), "{l}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn the_document_describes_the_price_routes() {
    let app = TestApp::sqlite().await;
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = &doc["paths"];
    for (p, m) in [
        ("/api/v1/prices/{instance}/{kind}/{name}", "put"),
        ("/api/v1/prices/{instance}/{kind}/{name}", "delete"),
        ("/api/v1/prices/{instance}/markup", "put"),
        ("/api/v1/prices/unpriced", "get"),
    ] {
        assert!(paths[p][m].is_object(), "{m} {p}");
    }
    app.stop().await;
}

/// A signed-in admin's cookie jar.
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
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar).redirect(Policy::limited(5)).build().unwrap();
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

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn field_error<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("class=\"field-error\" id=\"{id}\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    Some(rest[start..].split("</span>").next().unwrap())
}

fn element<'a>(body: &'a str, tag: &str, id: &str) -> &'a str {
    let at = body.find(&format!("<{tag} id=\"{id}\"")).unwrap_or_else(|| panic!("no <{tag} id=\"{id}\"> in {body}"));
    let end = body[at..].find(&format!("</{tag}>")).map_or(body.len(), |e| at + e);
    &body[at..end]
}

async fn ui_scenario(db: Option<String>) {
    let app = start(db).await;
    let (admin, alice_token) = setup(&app).await;
    let t0 = start_time();
    app.broker.clock.set(t0);
    launch(&app, &alice_token, "t2.medium").await;
    let ui = Ui::sign_in(&app, "super", SUPER_PW).await;

    // The page: linked from the admin navigation, the file's price with its origin, the unpriced type in amber.
    let (s, body) = ui.get("/admin/prices").await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("href=\"/admin/prices\" aria-current=\"page\""), "{body}");
    let table = element(&body, "table", "prices-table");
    let micro = table.split("<tr data-instance=\"sb\" data-kind=\"instance\" data-name=\"t2.micro\">").nth(1).unwrap();
    assert!(micro.contains("3.600000") && micro.contains("50-test.conf:2 (read-only here"), "{table}");
    let unpriced = element(&body, "section", "unpriced");
    assert!(unpriced.contains("class=\"card warn\"") && unpriced.contains("instance type t2.medium"), "{unpriced}");
    assert!(unpriced.contains("used by VMs this month"), "{unpriced}");

    // A failed form: an error next to each bad field, everything typed kept.
    let (s, body) = ui
        .post(
            "/admin/prices",
            &[("instance", "sb"), ("kind", "instance"), ("name", "t2.medium"), ("price", "cheap"), ("effective", "someday")],
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(field_error(&body, "price-error").unwrap().contains("decimal number"), "{body}");
    assert!(field_error(&body, "effective-error").unwrap().contains("2027-01-01T00:00:00Z"), "{body}");
    assert!(body.contains("value=\"cheap\"") && body.contains("value=\"someday\"") && body.contains("value=\"t2.medium\""), "{body}");
    // A past effective time: refused by the service, shown next to the field.
    let past = rfc(t0 - Duration::hours(1));
    let (s, body) = ui
        .post("/admin/prices", &[("instance", "sb"), ("kind", "instance"), ("name", "t2.medium"), ("price", "0.05"), ("effective", &past)])
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(field_error(&body, "effective-error").unwrap().contains("in the past"), "{body}");
    assert!(body.contains("value=\"0.05\""), "{body}");
    // A file's item: the message names the file.
    let (s, body) = ui.post("/admin/prices", &[("instance", "sb"), ("kind", "instance"), ("name", "t2.micro"), ("price", "1")]).await;
    assert_eq!(s, 400, "{body}");
    let general = body.split("id=\"form-error\">").nth(1).unwrap_or_else(|| panic!("{body}")).split("</p>").next().unwrap();
    assert!(general.contains("50-test.conf:2"), "{general}");

    // Setting the price: shown with its origin, no longer unpriced.
    let (s, body) = ui.post("/admin/prices", &[("instance", "sb"), ("kind", "instance"), ("name", "t2.medium"), ("price", "0.0464")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("The list price of instance type t2.medium (per hour) on sb is 0.046400 USD"), "{body}");
    let table = element(&body, "table", "prices-table");
    let medium = table.split("data-name=\"t2.medium\">").nth(1).unwrap();
    assert!(medium.contains("set by admin super at "), "{medium}");
    assert!(!body.contains("instance type t2.medium (per hour)</td><td class=\"reasons\">"), "{body}");
    // A markup, and a bad one kept.
    let (s, body) = ui.post("/admin/prices/markup", &[("markup_instance", "sb"), ("markup", "12.5"), ("op", "set")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(element(&body, "table", "markups-table").contains("12.5%"), "{body}");
    let medium = element(&body, "table", "prices-table").split("data-name=\"t2.medium\">").nth(1).unwrap().to_string();
    assert!(medium.contains("0.052200"), "{medium}");
    let (s, body) = ui.post("/admin/prices/markup", &[("markup_instance", "sb"), ("markup", "lots"), ("op", "set")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(field_error(&body, "markup-error").is_some() && body.contains("value=\"lots\""), "{body}");

    // Not for users.
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let (s, _) = alice.get("/admin/prices").await;
    assert_ne!(s, 200);
    let (_, body) = alice.get("/vms").await;
    assert!(!body.contains("/admin/prices"), "no admin link for alice");
    let _ = admin;
    app.stop().await;
}

db_url_test!(the_admin_prices_page, super::ui_scenario);
