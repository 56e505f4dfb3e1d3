//! A tour of every page of the UI in a real headless Chromium (chromedriver's
//! WebDriver protocol, as in `ui_browser.rs`), as an admin and as a user, at
//! 1400 and 800 pixels wide. The pages are the GET routes the UI registers,
//! read from `crates/web/src/ui/mod.rs` and the modules it configures (so a
//! page added later is toured too): those without a path parameter are
//! visited directly; one of each with parameters is visited through a link
//! found on the pages already seen (fixtures make one of everything: a VM,
//! an image, a deployment, a key pair, a volume, an Elastic IP, a project).
//! Each page: 200, an `<h1>`, and at 800 px no sideways scrolling of the
//! page itself (`scrollWidth <= innerWidth`; wide tables scroll in their own
//! box). A full-page screenshot of each goes to
//! `$CARGO_TARGET_DIR/ui-screenshots/tour/{admin,user}-{1400,800}-<page>.png`.
//! Without `chromium` and `chromium-driver` the test says it was SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    for n in names {
        for dir in path.split(':').chain(["/usr/bin", "/usr/lib/chromium"]) {
            let p = Path::new(dir).join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session, ended on drop (also on a failed assertion).
struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    closed: bool,
    driver: Driver,
}

impl Drop for Browser {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.closed {
            return;
        }
        let addr = self.driver.url.trim_start_matches("http://").to_string();
        if let Ok(mut c) = std::net::TcpStream::connect(&addr) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(20)));
            let req =
                format!("DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.session);
            let _ = c.write_all(req.as_bytes());
            let _ = c.read_to_end(&mut Vec::new());
        }
    }
}

impl Browser {
    async fn start(base: &str) -> Option<Self> {
        let (Some(driver), Some(chromium)) = (find_binary(&["chromedriver"]), find_binary(&["chromium", "chromium-browser"])) else {
            eprintln!("NOTICE: chromium / chromedriver not installed (Debian: chromium chromium-driver): the UI tour was SKIPPED");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
                if r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true) {
                    up = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "chromedriver did not come up");
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,900"]
        }}}});
        let r: Value = http.post(format!("{}/session", driver.url)).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_string();
        Some(Self { http, session, base: base.to_string(), closed: false, driver })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let v: Value = self
            .http
            .request(method, url)
            .json(&body.unwrap_or_else(|| json!({})))
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn script(&self, js: &str) -> Value {
        self.post("/execute/sync", json!({"script": js, "args": []})).await
    }

    async fn goto(&self, path: &str) {
        self.post("/url", json!({"url": format!("{}{path}", self.base)})).await;
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.post("/element", json!({"using": "css selector", "value": css})).await;
        let id = e.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_string();
        self.post(&format!("/element/{id}/value"), json!({"text": text})).await;
    }

    async fn click(&self, css: &str) {
        let e = self.post("/element", json!({"using": "css selector", "value": css})).await;
        let id = e.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_string();
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn sign_in(&self, user: &str, pw: &str) {
        self.goto("/login").await;
        self.fill("#username", user).await;
        self.fill("#password", pw).await;
        self.click("#signin").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Sets the window `width` wide and saves a full-page screenshot to `file`.
    async fn shot(&self, width: i64, file: &Path) {
        let measure = "return [document.documentElement.scrollHeight, window.innerHeight]";
        let mut height = 900;
        for _ in 0..3 {
            let m = self.script(measure).await;
            let (doc, view) = (m[0].as_i64().unwrap_or(0), m[1].as_i64().unwrap_or(0));
            if doc <= view || height >= 12_000 {
                break;
            }
            height = (height + doc - view).min(12_000);
            self.post("/window/rect", json!({"width": width, "height": height})).await;
        }
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        self.post("/window/rect", json!({"width": width, "height": 900})).await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap_or_default();
        std::fs::write(file, bytes).unwrap();
    }

    async fn quit(&mut self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

/// A signed-in cookie jar for status codes and fixtures.
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
    async fn sign_in(app: &common::TestApp, user: &str, pw: &str) -> Self {
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        Self { http, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    async fn status(&self, path: &str) -> u16 {
        self.http.get(format!("{}{path}", self.base)).send().await.unwrap().status().as_u16()
    }

    /// Posts a form (fixtures): the status.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> u16 {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap().status().as_u16()
    }
}

/// The GET routes of the UI, as `(template, admin only)`: read from
/// `ui/mod.rs` (which modules it configures, inside `/admin` or not) and
/// from each module's `routes` function.
fn ui_routes() -> Vec<(String, bool)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui");
    let main = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
    let scope = main.find("fn signed_in_routes").expect("signed_in_routes in ui/mod.rs");
    let body = &main[scope..];
    let admin_at = body.find("web::scope(\"/admin\")").expect("the /admin scope");
    let admin_end = admin_at + body[admin_at..].find(".default_service").unwrap();
    let mut out = vec![("/".to_string(), false)];
    for (at, _) in body.match_indices(".configure(") {
        let call = &body[at + ".configure(".len()..];
        let call = &call[..call.find(')').unwrap()];
        let Some((module, func)) = call.split_once("::") else { continue };
        let admin = at > admin_at && at < admin_end;
        let src = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap_or_default();
        let Some(start) = src.find(&format!("fn {func}(")) else { continue };
        let f = &src[start..];
        let f = &f[..f.find("\n}\n").unwrap_or(f.len())];
        for (r, _) in f.match_indices(".route(") {
            let rest = f[r + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else { continue };
            let path = &rest[..rest.find('"').unwrap()];
            let after = &rest[path.len() + 1..];
            let args = &after[..after.find(".to(").unwrap_or(after.len())];
            if args.contains("web::get()") {
                out.push((if admin { format!("/admin{path}") } else { path.to_string() }, admin));
            }
        }
    }
    out.push(("/api/docs".to_string(), false));
    out.sort();
    out.dedup();
    out
}

/// The last segments of confirmation pages: without their query (or id)
/// they have nothing to confirm.
const CONFIRMATIONS: &[&str] = &["/delete", "/revoke", "/remove", "/release", "/terminate", "/abort", "/disabled", "/admin"];

/// Pages a link leads to that answer otherwise, known and reported to
/// their owners: the tour says them and goes on. (None now: a personal
/// project's page no longer links the log its owner may not read.)
const KNOWN: &[(&str, &str)] = &[];

/// Whether a concrete path fills a route template (`/vms/{id}`).
fn fills(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| if a.starts_with('{') { !b.is_empty() } else { a == b })
}

/// A file name for a template: `/admin/users/{name}` → `admin-users-name`.
fn slug(template: &str) -> String {
    let s: String = template
        .trim_matches('/')
        .chars()
        .filter(|c| *c != '{' && *c != '}')
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    if s.is_empty() {
        "dashboard".into()
    } else {
        s
    }
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir)
    });
    target.join("ui-screenshots/tour")
}

/// One of everything, so every page with a parameter has a link to follow.
async fn fixtures(app: &common::TestApp, sup: &Ui, alice: &Ui, alice_token: &str) {
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "ubuntu-22.04", "description": "Ubuntu 22.04 LTS",
        "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}, "sb2": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    assert_eq!(app.call(reqwest::Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    // More instances, one in error, for the System page.
    sup.post("/admin/system", &[("p.cloud.connector.class", "sbx-a:sandbox, sbx-b:sandbox, q:ec2query")]).await;
    for name in ["tour-web-1", "tour-db-with-a-long-name-1"] {
        let body = json!({"instance": "sb", "image": "ubuntu-22.04", "name": name, "tags": {"team": "tour", "cost-center": "rd"}});
        let (s, b) = app.call(reqwest::Method::POST, "/api/v1/vms", alice_token, Some(body)).await;
        assert_eq!(s, 201, "{b}");
    }
    let deployment = json!({"application": "lamp", "inputs": {"site_title": "Tour", "db.db_password": "tour-secret-0b1d"},
        "placement": {"db": {"instance": "sb"}, "web": {"instance": "sb2"}}, "on_failure": "keep"});
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/deployments", alice_token, Some(deployment)).await;
    assert_eq!(s, 201, "{b}");
    for _ in 0..20 {
        app.broker.provisioning.reconcile("tour").await.unwrap();
        app.broker.deployments.drive_pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A private image made from one of alice's VMs: the Images page's Deregister confirmation is toured too.
    let (_, vms) = app.call(reqwest::Method::GET, "/api/v1/vms", alice_token, None).await;
    let running = vms["vms"].as_array().into_iter().flatten().find(|v| v["state"] == "running" && v["name"] == "tour-web-1");
    if let Some(id) = running.and_then(|v| v["id"].as_str()) {
        let (s, b) =
            app.call(reqwest::Method::POST, &format!("/api/v1/vms/{id}/image"), alice_token, Some(json!({"name": "tour-image"}))).await;
        assert_eq!(s, 201, "{b}");
    }
    // What the resource pages manage (their forms may change: not asserted here).
    alice.post("/keypairs", &[("name", "tour-key")]).await;
    alice.post("/volumes", &[("instance", "sb"), ("size", "8"), ("zone", ""), ("volume_type", "")]).await;
    alice.post("/addresses", &[("instance", "sb")]).await;
    alice.post("/projects", &[("name", "tour-team")]).await;
    sup.post("/admin/users", &[("name", "bob"), ("password", "bob-password-1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_for_an_admin_and_a_user_at_1400_and_800_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("connectors.d/applications");
    std::fs::create_dir_all(&apps).unwrap();
    let lamp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors.d/applications/lamp.yaml");
    std::fs::write(apps.join("lamp.yaml"), std::fs::read_to_string(lamp).unwrap()).unwrap();
    let app = common::TestApp::start(None, dir).await.unwrap();
    let Some(mut b) = Browser::start(&app.base).await else { return };
    let admin_token = app.token("super", common::SUPER_PW).await;
    let alice_token = app.user(&admin_token, "alice").await;
    let sup = Ui::sign_in(&app, "super", common::SUPER_PW).await;
    let alice = Ui::sign_in(&app, "alice", "alice-password").await;
    fixtures(&app, &sup, &alice, &alice_token).await;

    let routes = ui_routes();
    assert!(routes.len() > 30, "{routes:?}");
    let shots = shots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for e in std::fs::read_dir(&shots).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    println!("UI tour screenshots: {}", shots.display());
    eprintln!("UI tour screenshots: {}", shots.display());

    let mut problems = Vec::new();
    let mut unvisited = BTreeMap::new();
    for (who, ui, pw) in [("admin", &sup, common::SUPER_PW), ("user", &alice, "alice-password")] {
        let user = if who == "admin" { "super" } else { "alice" };
        b.sign_in(user, pw).await;
        let mine: Vec<&String> = routes.iter().filter(|(_, admin)| who == "admin" || !admin).map(|(t, _)| t).collect();
        // The pages to visit: the fixed ones first, then one link per template with parameters.
        let mut queue: Vec<(String, String)> = mine.iter().filter(|t| !t.contains('{')).map(|t| (t.to_string(), t.to_string())).collect();
        let mut found: BTreeSet<String> = queue.iter().map(|(t, _)| t.clone()).collect();
        let mut i = 0;
        while i < queue.len() {
            let (template, path) = queue[i].clone();
            i += 1;
            let status = ui.status(&path).await;
            if status != 200 {
                let confirmation = CONFIRMATIONS.iter().any(|v| template.ends_with(v));
                if KNOWN.contains(&(who, template.as_str())) || (confirmation && !template.contains('{') && !path.contains('?')) {
                    // A confirmation needs its query (reached through a link, if any).
                    println!("NOTICE: {who} {path}: status {status}");
                    found.remove(&template);
                } else {
                    problems.push(format!("{who} {path}: status {status}"));
                }
                continue;
            }
            for width in [1400, 800] {
                b.post("/window/rect", json!({"width": width, "height": 900})).await;
                b.goto(&path).await;
                let facts = b
                    .script(
                        "return [document.documentElement.scrollWidth, window.innerWidth, document.querySelectorAll('h1').length, \
                         Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')), \
                         Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 \
                            && !e.closest('table, .table-scroll, nav, pre, .diagram')).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)]",
                    )
                    .await;
                let file = shots.join(format!("{who}-{width}-{}.png", slug(&template)));
                b.shot(width, &file).await;
                if facts[2].as_i64().unwrap_or(0) < 1 {
                    problems.push(format!("{who} {width} {path}: no h1"));
                }
                let (sw, iw) = (facts[0].as_i64().unwrap_or(0), facts[1].as_i64().unwrap_or(0));
                if width == 800 && sw > iw {
                    problems.push(format!("{who} 800 {path}: the page scrolls sideways ({sw} > {iw}; wide: {})", facts[4]));
                }
                if width == 1400 {
                    for href in facts[3].as_array().into_iter().flatten().filter_map(Value::as_str) {
                        let href = href.split('#').next().unwrap_or_default();
                        let (bare, query) = href.split_once('?').unwrap_or((href, ""));
                        if !bare.starts_with('/') || (query.is_empty() && mine.iter().any(|t| t.as_str() == bare)) {
                            continue;
                        }
                        if let Some(t) = mine.iter().find(|t| !found.contains(t.as_str()) && fills(t, bare)) {
                            found.insert(t.to_string());
                            queue.push((t.to_string(), href.to_string()));
                        }
                    }
                }
            }
        }
        for t in mine.iter().filter(|t| !found.contains(t.as_str())) {
            unvisited.entry(t.to_string()).or_insert_with(Vec::new).push(who);
        }
        println!("{who}: {} pages toured", queue.len());
        b.goto("/").await;
        b.click("header .signout button").await;
    }
    if !unvisited.is_empty() {
        println!("NOTICE: no link led to these pages (no screenshot): {unvisited:?}");
    }
    // The pages every tour must reach through a link.
    for must in
        ["/vms/{id}", "/admin/images/{name}", "/admin/users/{name}", "/applications/{name}", "/deployments/{id}", "/projects/{name}"]
    {
        if routes.iter().any(|(t, _)| t == must) {
            // Reached by at least one of the two tours (an admin's project may hold none of alice's things).
            let tours = if must.starts_with("/admin") { 1 } else { 2 };
            assert!(unvisited.get(must).map_or(0, Vec::len) < tours, "{must} not reached: {unvisited:?}");
        }
    }
    b.quit().await;
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
