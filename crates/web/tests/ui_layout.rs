//! The header, the VM table and the launch form's Subnet field in a real
//! headless Chromium (chromedriver's WebDriver protocol, as `ui_tour.rs`).
//! The header's navigation is grouped in menus (`<details>`): at 1400 px the
//! user's header is one row and the admin's at most two, with seven VMs of
//! long names in a team project the VM table fits its box (the Actions
//! column inside it); at 800 px the page does not scroll sideways, every
//! header entry is on screen, and a menu opens from the keyboard and leads
//! to its page. A VM launched from the form into a subnet made through the
//! core shows that subnet and its VPC on its page; an unknown subnet is the
//! form's message with what was typed kept. Screenshots at 1400 and 800 px
//! go to `$CARGO_TARGET_DIR/ui-screenshots/layout/`. Without `chromium` and
//! `chromium-driver` the tests say they were SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::CreateSubnetRequest;
use cloudbroker_core::domain::{InstanceName, Tags, UserName};
use cloudbroker_core::Actor;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|n| path.split(':').chain(["/usr/bin", "/usr/lib/chromium"]).map(|d| Path::new(d).join(n)).find(|p| p.is_file()))
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
    shots: PathBuf,
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
            eprintln!("NOTICE: chromium / chromedriver not installed (Debian: chromium chromium-driver): this UI test was SKIPPED");
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
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir)
        });
        let shots = target.join("ui-screenshots/layout");
        std::fs::create_dir_all(&shots).unwrap();
        println!("UI layout screenshots: {}", shots.display());
        Some(Self { http, session, base: base.to_string(), shots, closed: false, driver })
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

    async fn width(&self, width: i64) {
        self.post("/window/rect", json!({"width": width, "height": 900})).await;
    }

    /// The element `css` selects, waiting (up to 15 s) for a page still loading.
    async fn find(&self, css: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let url = format!("{}/session/{}/element", self.driver.url, self.session);
            let v: Value =
                self.http.post(&url).json(&json!({"using": "css selector", "value": css})).send().await.unwrap().json().await.unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(std::time::Instant::now() < deadline, "WebDriver /element {css}: {}", v["value"]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text})).await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None).await.as_str().unwrap_or_default().to_string()
    }

    async fn value(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/property/value"), None).await.as_str().unwrap_or_default().to_string()
    }

    async fn sign_in(&self, user: &str, pw: &str) {
        self.goto("/login").await;
        self.fill("#username", user).await;
        self.fill("#password", pw).await;
        self.click("#signin").await;
        assert_eq!(self.text("#whoami").await.split(' ').next(), Some(user), "signed in as {user}");
    }

    /// A full-page screenshot `name.png` at the window's width.
    async fn shot(&self, width: i64, name: &str) {
        let mut height = 900;
        for _ in 0..3 {
            let m = self.script("return [document.documentElement.scrollHeight, window.innerHeight]").await;
            let (doc, view) = (m[0].as_i64().unwrap_or(0), m[1].as_i64().unwrap_or(0));
            if doc <= view || height >= 10_000 {
                break;
            }
            height = (height + doc - view).min(10_000);
            self.post("/window/rect", json!({"width": width, "height": height})).await;
        }
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        self.width(width).await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap_or_default();
        std::fs::write(self.shots.join(format!("{name}-{width}.png")), bytes).unwrap();
    }

    async fn quit(&mut self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

/// How the header sits: `[rows of the top bar, its height, entries off
/// screen, page scroll width, window width]`. A row is the set of the bar's
/// entries (brand, each link and menu of the navigation, sign-out) whose
/// vertical middles agree within 8 px.
const HEADER: &str = "const bar = document.querySelector('header .topbar');
  const items = [bar.querySelector('.brand'), ...bar.querySelectorAll('nav > a, nav > details > summary'), bar.querySelector('.signout')];
  const mids = items.map(e => { const r = e.getBoundingClientRect(); return r.top + r.height / 2; }).sort((a, b) => a - b);
  let rows = 0, last = -100;
  for (const m of mids) { if (m - last > 8) { rows += 1; last = m; } }
  const off = items.filter(e => { const r = e.getBoundingClientRect(); return r.width === 0 || r.left < 0 || r.right > window.innerWidth; })
    .map(e => e.textContent.trim());
  return [rows, Math.round(bar.getBoundingClientRect().height), off, document.documentElement.scrollWidth, window.innerWidth];";

/// The VM table's box: `[scrollWidth, clientWidth, Actions cells whose
/// right edge passes the box's, each column's label and width]`.
const TABLE: &str = "const box = document.querySelector('#vm-list .table-scroll');
  const right = box.getBoundingClientRect().right;
  const past = Array.from(box.querySelectorAll('td.actions')).filter(td => td.getBoundingClientRect().right > right + 0.5).length;
  const widths = Array.from(box.querySelectorAll('thead th')).map(th => th.textContent.trim() + ' ' + Math.round(th.getBoundingClientRect().width));
  return [box.scrollWidth, box.clientWidth, past, widths];";

async fn header(b: &Browser) -> (i64, i64, Value, i64, i64) {
    let h = b.script(HEADER).await;
    (h[0].as_i64().unwrap(), h[1].as_i64().unwrap(), h[2].clone(), h[3].as_i64().unwrap(), h[4].as_i64().unwrap())
}

/// The native image `deb` on `sb`; the admin's token.
async fn image(app: &common::TestApp) -> String {
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "deb", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    let (s, b) = app.call(reqwest::Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{b}");
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_header_and_the_vm_table_fit_at_1400_and_800_pixels() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start(&app.base).await else { return };
    let admin = image(&app).await;
    let alice = app.user(&admin, "alice").await;
    // A team project (the table's "Launched by" column), seven VMs of long names with tags and leases.
    let (s, body) = app.call(reqwest::Method::POST, "/api/v1/projects", &alice, Some(json!({"name": "platform-team"}))).await;
    assert_eq!(s, 201, "{body}");
    let launch = json!({"instance": "sb", "image": "deb", "count": 7, "name": "analytics-warehouse-ingest-worker-eu-central",
        "tags": {"team": "data-platform", "cost-center": "rd-4711"}, "lease": "8h"});
    let (s, body) = app.call(reqwest::Method::POST, "/api/v1/vms?project=platform-team", &alice, Some(launch)).await;
    assert_eq!(s, 201, "{body}");
    for _ in 0..2 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
    }

    for (user, pw, most_rows) in [("alice", "alice-password", 1), ("super", common::SUPER_PW, 2)] {
        b.width(1400).await;
        b.sign_in(user, pw).await;
        if user == "alice" {
            b.click("#project-select option[value='platform-team']").await;
            b.click("#switch-project").await;
            b.find("#current-project[data-project='platform-team']").await;
        }
        b.goto("/vms").await;
        let (rows, height, off, _, _) = header(&b).await;
        b.shot(1400, &format!("{user}-vms")).await;
        assert!(rows <= most_rows, "{user} at 1400 px: the header takes {rows} rows ({height} px)");
        assert_eq!(off, json!([]), "{user} at 1400 px: header entries off screen");
        if user == "alice" {
            assert_eq!(b.script("return document.querySelectorAll('#vms tbody tr[id^=\"vm-\"]').length").await, 7);
            let t = b.script(TABLE).await;
            assert!(t[0].as_i64() <= t[1].as_i64(), "the VM table scrolls in its box at 1400 px: {t}");
            assert_eq!(t[2], 0, "Actions cells past the table's box at 1400 px: {t}");
        }
        // A menu opened: its panel lies on the page and over what follows.
        b.click("#nav-resources summary").await;
        b.shot(1400, &format!("{user}-menu-open")).await;
        let panel = b.script("const r = document.querySelector('#nav-resources .menu-panel').getBoundingClientRect(); return [r.width, r.right, window.innerWidth];").await;
        assert!(panel[0].as_f64().unwrap() > 0.0 && panel[1].as_f64() <= panel[2].as_f64(), "{panel}");

        // 800 px: no sideways scrolling, every entry on screen, a menu from the keyboard.
        b.width(800).await;
        b.goto("/vms").await;
        let (rows, height, off, scroll, inner) = header(&b).await;
        b.shot(800, &format!("{user}-vms")).await;
        assert!(scroll <= inner, "{user} at 800 px: the page scrolls sideways ({scroll} > {inner})");
        assert_eq!(off, json!([]), "{user} at 800 px: header entries off screen ({rows} rows, {height} px)");
        assert!(rows <= 2, "{user} at 800 px: the header takes {rows} rows ({height} px)");
        let menu = if user == "super" { "#nav-admin" } else { "#nav-resources" };
        let summary = b.find(&format!("{menu} summary")).await;
        b.post(&format!("/element/{summary}/value"), json!({"text": "\u{E007}"})).await;
        assert_eq!(b.script(&format!("return document.querySelector('{menu}').open")).await, true, "Enter opens {menu}");
        let panel = b.script(&format!("const r = document.querySelector('{menu} .menu-panel').getBoundingClientRect(); return [r.left, r.right, window.innerWidth];")).await;
        assert!(panel[0].as_f64().unwrap() >= 0.0 && panel[1].as_f64() <= panel[2].as_f64(), "{menu} at 800 px: {panel}");
        b.shot(800, &format!("{user}-menu-open")).await;
        let (link, page) = if user == "super" {
            ("#nav-admin-overview", "admin/overview")
        } else {
            ("#nav-resources a[href='/security-groups']", "security-groups")
        };
        b.click(link).await;
        b.find("h1").await;
        let here = b.script("return window.location.pathname").await;
        assert_eq!(here, if page == "security-groups" { "/security-groups" } else { "/admin" }, "the menu's link leads to its page");
        // The menu holding the current page is marked.
        let marked = if user == "super" { "#nav-admin summary.current" } else { "#nav-resources summary.current" };
        b.find(marked).await;
        b.shot(800, &format!("{user}-{}", page.replace('/', "-"))).await;
        b.width(1400).await;
        b.shot(1400, &format!("{user}-{}", page.replace('/', "-"))).await;
        b.goto("/").await;
        b.click("header .signout button").await;
        b.find("#signin").await;
    }
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_launch_from_the_form_into_a_subnet_shows_it_on_the_vm_page() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start(&app.base).await else { return };
    let admin = image(&app).await;
    let sam_token = app.user(&admin, "sam").await;
    let sam = Actor::new(UserName::parse("sam").unwrap(), false);
    let sb = InstanceName::parse("sb").unwrap();
    let vpc = app.broker.provisioning.create_vpc(&sam, &sb, "10.42.0.0/16", &Tags::default()).await.unwrap();
    let req = CreateSubnetRequest { vpc_id: vpc.vpc_id.clone(), cidr_block: "10.42.1.0/24".into(), availability_zone: None };
    let subnet = app.broker.provisioning.create_subnet(&sam, &sb, &req, &Tags::default()).await.unwrap();

    b.width(1400).await;
    b.sign_in("sam", "sam-password").await;
    b.goto("/vms").await;
    // An unknown (well-formed) subnet: the form's message next to the field, what was typed kept.
    b.click("#launch-instance option[value='sb']").await;
    b.click("#launch-image option[value='deb']").await;
    b.fill("#launch-name", "in-subnet").await;
    b.fill("#launch-subnet", "subnet-0000000000deadbeef").await;
    b.click("#launch-submit").await;
    b.find("#launch-form").await;
    b.shot(1400, "launch-bad-subnet").await;
    let refused = b.text("#subnet_id-error").await;
    assert!(refused.contains("subnet"), "{refused}");
    assert_eq!(b.value("#launch-subnet").await, "subnet-0000000000deadbeef");
    assert_eq!(b.value("#launch-name").await, "in-subnet");
    let (_, listed) = app.call(reqwest::Method::GET, "/api/v1/vms", &sam_token, None).await;
    assert_eq!(listed["vms"].as_array().map_or(0, Vec::len), 0, "nothing launched: {listed}");

    // The subnet made through the core: the VM's page names it and its VPC.
    b.fill("#launch-subnet", &subnet.subnet_id).await;
    b.click("#launch-submit").await;
    b.find("#flash").await;
    app.broker.provisioning.reconcile("ui-test").await.unwrap();
    let id = b.script("const a = document.querySelector('#vms a.vm-link'); return a ? a.getAttribute('href') : ''").await;
    let id = id.as_str().unwrap().to_string();
    assert!(id.starts_with("/vms/"), "a VM in the list: {id}");
    b.goto(&id).await;
    assert_eq!(b.text("#vm-subnet").await, subnet.subnet_id);
    assert_eq!(b.text("#vm-vpc").await, vpc.vpc_id);
    b.shot(1400, "vm-in-subnet").await;
    b.width(800).await;
    b.shot(800, "vm-in-subnet").await;
    b.quit().await;
}
