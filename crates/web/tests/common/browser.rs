//! A real headless Chromium driven through chromedriver's WebDriver HTTP
//! protocol (a small client over reqwest), as `ui_browser.rs` drives it, for
//! browser tests that include it (`#[path = "common/browser.rs"] mod
//! browser;`): chromedriver and the browser session end on drop, also on a
//! failed assertion, so neither outlives the test. Every page visited is
//! saved as a full-page screenshot in the sub-folder the test names of
//! `CLOUDBROKER_UI_SCREENSHOTS` (default `<tmp>/cloudbroker-ui-screenshots`).
//! Without `chromium` and `chromedriver` [`Browser::start_in`] says the test
//! was SKIPPED and gives `None`.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    shots: PathBuf,
    n: usize,
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
    /// A browser on the broker at `base`, its screenshots in the folder
    /// `sub` of the screenshot folder (emptied of earlier ones first).
    pub async fn start_in(base: &str, sub: &str) -> Option<Self> {
        let (Some(driver), Some(chromium)) = (find_binary(&["chromedriver"]), find_binary(&["chromium", "chromium-browser"])) else {
            eprintln!("NOTICE: chromium / chromedriver not installed (Debian: chromium chromium-driver): the browser tests were SKIPPED");
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
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
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
                     "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900"]
        }}}});
        let r: Value = http.post(format!("{}/session", driver.url)).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_string();
        let root = std::env::var_os("CLOUDBROKER_UI_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("cloudbroker-ui-screenshots"));
        let shots = root.join(sub);
        std::fs::create_dir_all(&shots).unwrap();
        for e in std::fs::read_dir(&shots).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        eprintln!("UI screenshots of every page visited: {}", shots.display());
        Some(Self { http, session, base: base.to_string(), shots, n: 0, closed: false, driver })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let r = self.http.request(method, url).json(&body.unwrap_or_else(|| json!({})));
        let v: Value = r.send().await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}")).json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    /// Saves a full-page screenshot named after the step.
    pub async fn shot(&mut self, name: &str) {
        self.n += 1;
        let measure = json!({"script": "return [document.documentElement.scrollHeight, window.innerHeight]", "args": []});
        let mut height = 900;
        for _ in 0..3 {
            let m = self.post("/execute/sync", measure.clone()).await;
            let (doc, view) = (m[0].as_i64().unwrap_or(0), m[1].as_i64().unwrap_or(0));
            if doc <= view || height >= 10_000 {
                break;
            }
            height = (height + doc - view).min(10_000);
            self.post("/window/rect", json!({"width": 1280, "height": height})).await;
        }
        let png = self.get("/screenshot").await;
        self.post("/window/rect", json!({"width": 1280, "height": 900})).await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap_or_default();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.n)), bytes).unwrap();
    }

    /// Opens `path` of the broker and screenshots it.
    pub async fn goto(&mut self, path: &str, name: &str) {
        self.post("/url", json!({"url": format!("{}{path}", self.base)})).await;
        self.shot(name).await;
    }

    /// The element `css` selects, waiting (up to 15 s) for a page still loading.
    pub async fn find(&self, css: &str) -> String {
        let url = format!("{}/session/{}/element", self.driver.url, self.session);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let v: Value =
                self.http.post(&url).json(&json!({"using": "css selector", "value": css})).send().await.unwrap().json().await.unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            if std::time::Instant::now() > deadline {
                panic!("WebDriver /element {css}: {}", v["value"]);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements `css` selects now.
    pub async fn count(&self, css: &str) -> usize {
        self.post("/elements", json!({"using": "css selector", "value": css})).await.as_array().map_or(0, Vec::len)
    }

    /// Types `text` into the field `css` (emptied first).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text})).await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Clicks and screenshots the page that results.
    pub async fn submit(&mut self, css: &str, name: &str) {
        self.click(css).await;
        self.shot(name).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/text")).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn value(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/property/value")).await.as_str().unwrap_or_default().to_string()
    }

    /// Whether the checkbox `css` is ticked.
    pub async fn checked(&self, css: &str) -> bool {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/property/checked")).await.as_bool().unwrap_or(false)
    }

    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap_or_default().to_string()
    }

    /// The address the browser is at, path and query only.
    pub async fn path(&self) -> String {
        let url = self.get("/url").await.as_str().unwrap_or_default().to_string();
        url.strip_prefix(&self.base).unwrap_or(&url).to_string()
    }

    pub async fn sign_in(&mut self, user: &str, pw: &str) {
        self.goto("/login", &format!("login-{user}")).await;
        self.fill("#username", user).await;
        self.fill("#password", pw).await;
        self.submit("#signin", &format!("dashboard-{user}")).await;
        assert_eq!(self.text("#whoami").await.split(' ').next(), Some(user), "signed in as {user}");
    }

    pub async fn sign_out(&mut self) {
        self.submit("header .signout button", "signed-out").await;
        assert!(self.count("#signin").await == 1, "back on the sign-in page");
    }

    pub async fn quit(&mut self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}
