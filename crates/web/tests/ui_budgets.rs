//! Budgets in the UI, through the real server without a browser, on SQLite
//! and PostgreSQL, the broker's clock set by the test and a price file in
//! `connectors.d/prices` (t2.micro at 3.6/h: a start commits 0.06): the
//! admin page Budgets lists each instance's defaults with their origins and
//! the overrides and spending per user, sets and removes an override (a bad
//! form comes back with an error next to each field and everything typed
//! kept), and is refused to non-admins; a launch over the budget comes back
//! with the form's "Over budget" message; once the budget watch has run,
//! a user past 80% sees an amber banner on every page, past 100% a red one,
//! and another user sees none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Datelike, Duration, DurationRound, TimeZone, Utc};
use common::TestApp;
use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::json;

const PRICES: &str = "currency = USD\nsb.price.instance.t2.micro = 3.6\n";

/// A signed-in user's cookie jar.
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

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The text of the field error with id `id`.
fn field_error<'a>(body: &'a str, id: &str) -> Option<&'a str> {
    let at = body.find(&format!("class=\"field-error\" id=\"{id}\">"))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    Some(rest[start..].split("</span>").next().unwrap())
}

/// The element that starts at the first `<tag id="id"` up to its closing tag.
fn element<'a>(body: &'a str, tag: &str, id: &str) -> &'a str {
    let at = body.find(&format!("<{tag} id=\"{id}\"")).unwrap_or_else(|| panic!("no <{tag} id=\"{id}\"> in {body}"));
    let end = body[at..].find(&format!("</{tag}>")).map_or(body.len(), |e| at + e);
    &body[at..end]
}

/// The budget banner lines of a page.
fn banners(body: &str) -> Vec<&str> {
    body.match_indices("budget-alert\"").map(|(at, _)| body[at..].split("</p>").next().unwrap()).collect()
}

/// A time this month, a couple of hours before now where the month allows.
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
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    let alice_token = app.user(&admin, "alice").await;
    app.user(&admin, "bob").await;
    app.broker.clock.set(start_time());
    // 0.07: one start (0.06) fits and passes 80%.
    let (s, b) = app.call(Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb.budget.user.monthly": "0.07"}))).await;
    assert_eq!(s, 200, "{b}");

    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    let bob = Ui::sign_in(&app, "bob", "bob-password").await;
    let (s, body) =
        alice.post("/credentials/sb", &[("access_key_id", "AKIAALICE0000001234"), ("secret_access_key", "alice-cloud-secret")]).await;
    assert_eq!(s, 200, "{body}");

    // The page: defaults with their origins, linked in the admin navigation; admins only.
    let (s, body) = sup.get("/admin/budgets").await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("<a href=\"/admin/budgets\" aria-current=\"page\">Budgets</a>"), "{body}");
    let defaults = element(&body, "table", "budget-defaults-sb");
    let user_row = defaults.split("<tr data-param=\"budget.user.monthly\">").nth(1).unwrap_or_else(|| panic!("{defaults}"));
    assert!(user_row.contains("0.07 USD") && user_row.contains("set here by super"), "{user_row}");
    let project_row = defaults.split("<tr data-param=\"budget.project.monthly\">").nth(1).unwrap_or_else(|| panic!("{defaults}"));
    assert!(project_row.contains("unset: no budget") && project_row.contains("default"), "{project_row}");
    assert!(body.contains("id=\"budget-rows-sb\">No override, and nothing spent this month."), "{body}");
    let (s, _) = alice.get("/admin/budgets").await;
    assert_ne!(s, 200);
    let (_, body) = alice.get("/vms").await;
    assert!(!body.contains("/admin/budgets"), "no admin link for alice");

    // A bad form: an error next to each field, everything typed kept.
    let (s, body) =
        sup.post("/admin/budgets", &[("scope", "user"), ("owner", "nobody"), ("instance", "sb"), ("amount", "1.2.3"), ("op", "set")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(field_error(&body, "owner-error").unwrap().contains("There is no user"), "{body}");
    assert!(field_error(&body, "amount-error").unwrap().contains("decimal number"), "{body}");
    assert!(body.contains("name=\"owner\" value=\"nobody\"") && body.contains("name=\"amount\" value=\"1.2.3\""), "{body}");
    let (s, body) =
        sup.post("/admin/budgets", &[("scope", "team"), ("owner", "alice"), ("instance", "nowhere"), ("amount", "1"), ("op", "set")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(field_error(&body, "scope-error").is_some() && field_error(&body, "instance-error").is_some(), "{body}");
    assert!(field_error(&body, "amount-error").is_none(), "{body}");
    let (s, body) =
        sup.post("/admin/budgets", &[("scope", "project"), ("owner", "nothing"), ("instance", "sb"), ("amount", "1"), ("op", "set")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(field_error(&body, "owner-error").unwrap().contains("There is no project"), "{body}");

    // Set, listed as an override; removed, gone.
    let (s, body) =
        sup.post("/admin/budgets", &[("scope", "user"), ("owner", "alice"), ("instance", "sb"), ("amount", "5"), ("op", "set")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("The monthly budget of user &#x27;alice&#x27; on sb is now 5.00 USD."), "{body}");
    let rows = element(&body, "table", "budget-rows-sb");
    assert!(
        rows.contains("data-owner=\"alice\" data-source=\"override\"") && rows.contains("<td class=\"amount\" title=\"5.00\">5.00</td>"),
        "{rows}"
    );
    let (s, body) =
        sup.post("/admin/budgets", &[("scope", "user"), ("owner", "alice"), ("instance", "sb"), ("amount", ""), ("op", "remove")]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("is removed: the instance&#x27;s default applies."), "{body}");
    assert!(body.contains("id=\"budget-rows-sb\">No override"), "{body}");

    // One start fits; the second launch comes back with the form's message.
    let micro = json!({"instance": "sb", "image": "linux", "instance_type": "t2.micro"});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice_token, Some(micro)).await;
    assert_eq!(s, 201, "{b}");
    let (s, body) =
        alice.post("/vms", &[("instance", "sb"), ("image", "linux"), ("instance_type", "t2.micro"), ("count", "1"), ("name", "web")]).await;
    assert!(s == 400 || s == 409, "{s}: {body}");
    assert!(
        body.contains("id=\"form-error\">Over budget: The monthly budget of user &#x27;alice&#x27; on &#x27;sb&#x27; is 0.07 USD"),
        "{body}"
    );
    assert!(body.contains("value=\"web\""), "the name kept");

    // No banner before the watch; after it, amber for alice (85%), on every page; none for bob.
    let (_, body) = alice.get("/vms").await;
    assert!(banners(&body).is_empty(), "{body}");
    app.broker.costs.watch_budgets().await.unwrap();
    for path in ["/", "/vms", "/profile"] {
        let (_, body) = alice.get(path).await;
        let b = banners(&body);
        assert_eq!(b.len(), 1, "{path}: {body}");
        assert!(body.contains("class=\"notice warn budget-alert\" role=\"status\" data-threshold=\"80\""), "{path}: {body}");
        assert!(b[0].contains("0.06 USD of its 0.07 USD monthly budget on &#x27;sb&#x27; (80% reached"), "{path}: {}", b[0]);
    }
    let (_, body) = bob.get("/vms").await;
    assert!(banners(&body).is_empty(), "{body}");
    // The admin page: alice's spending and % used.
    let (_, body) = sup.get("/admin/budgets").await;
    let rows = element(&body, "table", "budget-rows-sb");
    let alice_row = rows.split("data-owner=\"alice\"").nth(1).unwrap_or_else(|| panic!("{rows}"));
    assert!(rows.contains("data-owner=\"alice\" data-source=\"instance\""), "{rows}");
    assert!(alice_row.contains("<td class=\"spent\" title=\"0.06\">0.06</td><td class=\"used\">85%</td>"), "{alice_row}");

    // Past 100% (an override lowered to 0.05): red.
    let (s, body) =
        sup.post("/admin/budgets", &[("scope", "user"), ("owner", "alice"), ("instance", "sb"), ("amount", "0.05"), ("op", "set")]).await;
    assert_eq!(s, 200, "{body}");
    app.broker.costs.watch_budgets().await.unwrap();
    let (_, body) = alice.get("/").await;
    assert_eq!(banners(&body).len(), 1, "{body}");
    assert!(body.contains("class=\"notice refused budget-alert\" role=\"status\" data-threshold=\"100\""), "{body}");
}

db_url_test!(budgets_page_and_banner, super::scenario);
