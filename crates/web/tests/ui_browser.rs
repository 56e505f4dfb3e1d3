//! The UI in a real headless Chromium, driven through chromedriver's
//! WebDriver HTTP protocol (a small client over reqwest), against the real
//! server on loopback: the scenario a reviewer repeats by hand. Every page
//! visited is saved as a full-page screenshot into the folder the test
//! prints (`CLOUDBROKER_UI_SCREENSHOTS`, default `<tmp>/cloudbroker-ui-screenshots`).
//! The scenario ends with an EC2 access key made on the profile page driving
//! the EC2 front (a request signed with `cloudbroker-sigv`), then disabled.
//! A second scenario (screenshots in the sub-folder `projects`): an owner
//! makes a project, adds a member and a viewer and stores the project's
//! credential; the member switches to it and launches with that credential;
//! the viewer switches, sees the VM and has no button to stop it (a forged
//! stop is refused).
//! A costs scenario (sub-folder `costs`): VMs that ran over the last days,
//! then the Costs page (its SVG chart and table), the dashboard's spend and
//! the VMs page's cost column, for a user and for an admin.
//! A deployments scenario (sub-folder `deployments`): the shipped `lamp`
//! application deployed from its Deploy form, its page with the SVG
//! diagram followed to ready, scaled through its plan, terminated.
//! Without `chromium` and `chromium-driver` (scripts/test installs them
//! when it can) the test says it was SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

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

/// One browser session; dropping it (also on a failed assertion) ends the
/// session, so chromedriver closes Chromium before it is stopped itself.
struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    shots: PathBuf,
    n: usize,
    closed: bool,
    _driver: Driver,
}

impl Drop for Browser {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.closed {
            return;
        }
        let addr = self._driver.url.trim_start_matches("http://").to_string();
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
        Self::start_in(base, None).await
    }

    /// A browser whose screenshots go to the folder `sub` of the screenshot
    /// folder (`None`: the folder itself), emptied of earlier ones first.
    async fn start_in(base: &str, sub: Option<&str>) -> Option<Self> {
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
        let d = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/status", d.url)).send().await {
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
        let r: Value = http.post(format!("{}/session", d.url)).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_string();
        let root = std::env::var_os("CLOUDBROKER_UI_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("cloudbroker-ui-screenshots"));
        let shots = match sub {
            Some(s) => root.join(s),
            None => root,
        };
        // Only this scenario's earlier screenshots (another may be writing in a sub-folder).
        std::fs::create_dir_all(&shots).unwrap();
        for e in std::fs::read_dir(&shots).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        println!("UI screenshots of every page visited: {}", shots.display());
        eprintln!("UI screenshots of every page visited: {}", shots.display());
        Some(Self { http, session, base: base.to_string(), shots, n: 0, closed: false, _driver: d })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self._driver.url, self.session);
        let mut r = self.http.request(method, url);
        r = r.json(&body.unwrap_or_else(|| json!({})));
        let v: Value = r.send().await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}")).json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/session/{}{path}", self._driver.url, self.session);
        let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    /// Saves a full-page screenshot named after the step.
    async fn shot(&mut self, name: &str) {
        self.n += 1;
        // Full page: grow the window until its viewport holds the whole document, then back.
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

    async fn goto(&mut self, path: &str, name: &str) {
        self.post("/url", json!({"url": format!("{}{path}", self.base)})).await;
        self.shot(name).await;
    }

    /// The element `css` selects, waiting (up to 15 s) for a page that is
    /// still loading after a click on a busy machine.
    async fn find(&self, css: &str) -> String {
        let url = format!("{}/session/{}/element", self._driver.url, self.session);
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

    async fn count(&self, css: &str) -> usize {
        self.post("/elements", json!({"using": "css selector", "value": css})).await.as_array().map_or(0, Vec::len)
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

    /// Clicks and screenshots the page that results.
    async fn submit(&mut self, css: &str, name: &str) {
        self.click(css).await;
        self.shot(name).await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/text")).await.as_str().unwrap_or_default().to_string()
    }

    async fn value(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/property/value")).await.as_str().unwrap_or_default().to_string()
    }

    async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap_or_default().to_string()
    }

    async fn sign_in(&mut self, user: &str, pw: &str) {
        self.goto("/login", &format!("login-{user}")).await;
        self.fill("#username", user).await;
        self.fill("#password", pw).await;
        self.submit("#signin", &format!("dashboard-{user}")).await;
        assert_eq!(self.text("#whoami").await.split(' ').next(), Some(user), "signed in as {user}");
    }

    async fn sign_out(&mut self) {
        self.submit("header .signout button", "signed-out").await;
        assert!(self.count("#signin").await == 1, "back on the sign-in page");
    }

    async fn quit(&mut self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

/// A SigV4-signed (`cloudbroker-sigv`) DescribeInstances on `region`: status and body.
async fn ec2_describe(app: &common::TestApp, key_id: &str, secret: &str, region: &str) -> (u16, String) {
    let body = "Action=DescribeInstances&Version=2016-11-15";
    let headers = vec![
        ("host".to_string(), app.base.trim_start_matches("http://").to_string()),
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
    ];
    let params = cloudbroker_sigv::SigningParams::new(key_id, secret, region, "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("POST", "/ec2", &[], &headers, body.as_bytes(), &params).unwrap();
    let mut r = app.http.post(app.url("/ec2")).body(body);
    for (k, v) in headers.iter().chain(added.iter()).filter(|(k, _)| k != "host") {
        r = r.header(k.as_str(), v.as_str());
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reviewers_scenario_in_a_real_browser() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start(&app.base).await else { return };

    // super declares two instances in Basics and sees their sections.
    b.sign_in("super", common::SUPER_PW).await;
    b.goto("/admin/system", "system").await;
    b.fill("[name='p.cloud.connector.class']", "sbx-a:sandbox, sbx-b:sandbox").await;
    b.submit("#save-system", "system-declared").await;
    assert!(b.text("#flash").await.contains("Saved"));
    assert_eq!(b.count("#instance-sbx-a").await + b.count("#instance-sbx-b").await, 2, "both sections appear");
    // Sections fold (issue 23): open them all; they stay open across the saves below.
    b.click("#open-all").await;
    // A parameter set here shows who set it.
    b.fill("[name='p.sbx-a.boot.delay.ms']", "1500").await;
    b.click("#advanced select[name='p.quota.enable'] option[value='true']").await;
    b.submit("#save-system", "system-param-set").await;
    let origin = b.text("[id='p.sbx-a.boot.delay.ms-origin']").await;
    assert!(origin.starts_with("set here by super"), "{origin}");
    // A bad value: the message next to the field, what was typed kept.
    b.fill("[name='p.sbx-b.max.iaas.workers']", "lots").await;
    b.submit("#save-system", "system-bad-value").await;
    let err = b.text("#instance-sbx-b .field-error").await;
    assert!(err.contains("sbx-b.max.iaas.workers"), "{err}");
    assert_eq!(b.value("[id='p.sbx-b.max.iaas.workers']").await, "lots");
    // An instance declared by a file is read-only, its file and line said.
    let file_origin = b.text("[id='p.sb.boot.delay.ms-origin']").await;
    assert!(file_origin.contains("sb.conf:2") && file_origin.contains("read-only"), "{file_origin}");
    assert_eq!(
        b.count("#instance-sb input[readonly]").await,
        b.count("#instance-sb input").await - b.count("#instance-sb input[name]").await
    );
    b.goto("/admin/connectors", "connectors").await;
    assert!(b.text("#connector-sbx-a").await.contains("ready"));

    // A native image with ids for both instances.
    b.goto("/admin/images/new", "image-new").await;
    b.fill("#name", "ubuntu-22.04").await;
    b.fill("#description", "Ubuntu 22.04 LTS").await;
    b.fill("[name='id.sbx-a']", "ami-sandbox-ubuntu-2204").await;
    b.fill("[name='id.sbx-b']", "ami-sandbox-ubuntu-2204").await;
    b.fill("[name='type.sbx-a']", "t2.small").await;
    b.submit("#save-image", "image-saved").await;
    assert!(b.text("#flash").await.contains("Image ubuntu-22.04 saved"));
    assert!(b.text("#mappings").await.contains("ami-sandbox-ubuntu-2204 (this image)"));

    // A user with a quota of 2 on sbx-a.
    b.goto("/admin/users", "users").await;
    b.fill("#new-name", "erin").await;
    b.fill("#new-password", "erin-password").await;
    b.submit("#create-user", "user-created").await;
    assert!(b.text("#flash").await.contains("User erin created"));
    b.fill("#quota-vm-sbx-a", "2").await;
    b.submit("#quota-sbx-a button", "user-quota").await;
    assert!(b.text("#quota-sbx-a").await.contains("override"));
    b.sign_out().await;

    // erin: credentials, two VMs, a third refused, one terminated.
    b.sign_in("erin", "erin-password").await;
    b.goto("/admin/system", "erin-refused-admin").await;
    assert!(b.text("#page-error").await.contains("for administrators"));
    b.goto("/credentials", "credentials").await;
    b.fill("[id='sbx-a-access_key_id']", "AKIAERIN00000000WXYZ").await;
    b.fill("#sbx-a-secret", "erin-cloud-secret").await;
    b.submit("#cred-sbx-a button[type=submit]:not(.danger)", "credentials-saved").await;
    assert!(b.text("#cred-sbx-a .masked").await.ends_with("WXYZ") && b.text("#cred-sbx-a .masked").await.starts_with("****"));
    assert!(!b.source().await.contains("erin-cloud-secret"), "the secret is never rendered");
    b.goto("/vms", "vms").await;
    b.click("#launch-instance option[value='sbx-a']").await;
    b.click("#launch-image option[value='ubuntu-22.04']").await;
    let e = b.find("#launch-type").await;
    let placeholder = b.get(&format!("/element/{e}/attribute/placeholder")).await;
    assert_eq!(placeholder, "default: t2.small", "the image's default type on sbx-a is shown");
    b.fill("#launch-count", "2").await;
    b.fill("#launch-name", "web").await;
    // Read the page before the screenshot: the list reloads itself every 3 s
    // while a VM is pending, and a flash is shown once.
    b.click("#launch-submit").await;
    assert!(b.text("#flash").await.contains("Launched 2 VM(s)"));
    assert_eq!(b.count("#vms .state-pending").await + b.count("#vms .state-running").await, 2);
    assert_eq!(b.count("#refreshing").await, 1, "the list refreshes itself while pending");
    b.shot("vms-launched").await;
    // The page reloads itself; the background reconciler (not started in tests) is run here.
    let mut running = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        running = b.count("#vms .state-running").await;
        if running == 2 {
            break;
        }
    }
    b.shot("vms-running").await;
    assert_eq!(running, 2, "both VMs reached running");
    b.click("#launch-instance option[value='sbx-a']").await;
    b.click("#launch-image option[value='ubuntu-22.04']").await;
    b.submit("#launch-submit", "vms-over-quota").await;
    let msg = b.text("#form-error").await;
    assert!(msg.contains("Over quota") && msg.contains("you may have 2"), "{msg}");
    b.click("#vms a.button.danger").await;
    b.shot("vm-terminate-confirm").await;
    b.submit("#confirm-terminate", "vm-terminated").await;
    assert!(b.text("#flash").await.contains("terminate"));
    // A form without the CSRF token is refused.
    b.post(
        "/execute/sync",
        json!({"script": "var f=document.createElement('form');f.method='post';f.action='/profile/ssh-key';var i=document.createElement('input');i.name='ssh_public_key';i.value='ssh-ed25519 AAAA x';f.appendChild(i);document.body.appendChild(f);f.submit();", "args": []}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.shot("csrf-refused").await;
    assert!(b.source().await.contains("invalid CSRF token"));
    b.goto("/vms", "vms-after").await;

    // An EC2 access key made in the browser drives the EC2 front; disabled there, it stops.
    b.goto("/profile", "profile").await;
    b.submit("#create-access-key", "access-key-created").await;
    let key_id = b.text("#new-access-key-id").await;
    let secret = b.text("#new-secret-key").await;
    assert!(key_id.starts_with("AKIA") && !secret.is_empty(), "{key_id}");
    assert!(b.value("#awscli-example").await.contains("ec2 describe-instances"));
    let (s, body) = ec2_describe(&app, &key_id, &secret, "sbx-a").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body.matches("<instanceId>").count(), 2, "erin's VM and the one she terminated: {body}");
    assert!(body.contains("<name>running</name>"), "{body}");
    b.goto("/profile", "profile-with-key").await;
    assert!(!b.source().await.contains(&secret), "the secret is shown once");
    b.submit(&format!("#disable-{key_id}"), "access-key-disabled").await;
    assert!(b.text("#flash").await.contains("Access key disabled"));
    assert_eq!(b.text(&format!("tr[data-key='{key_id}'] .state")).await, "disabled");
    let (s, body) = ec2_describe(&app, &key_id, &secret, "sbx-a").await;
    assert!(s == 401 && body.contains("<Code>AuthFailure</Code>"), "{s} {body}");
    b.sign_out().await;

    // Someone else sees none of it.
    let admin = app.token("super", common::SUPER_PW).await;
    app.user(&admin, "frank").await;
    b.sign_in("frank", "frank-password").await;
    b.goto("/vms", "frank-vms").await;
    assert_eq!(b.count("#vms tbody tr[id]").await, 0);
    b.goto("/credentials", "frank-credentials").await;
    assert_eq!(b.count(".masked").await, 0);
    b.quit().await;
}

/// Submits, from the page, a form the page does not offer (with the
/// session's CSRF token the page holds): what a forged request looks like.
async fn forge_post(b: &Browser, action: &str) {
    let script = format!(
        "var f=document.createElement('form');f.method='post';f.action='{action}';var i=document.createElement('input');i.name='csrf';\
         i.value=document.querySelector('input[name=csrf]').value;f.appendChild(i);document.body.appendChild(f);f.submit();"
    );
    b.post("/execute/sync", json!({"script": script, "args": []})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_shares_a_project_in_a_real_browser() {
    use cloudbroker_core::domain::{PageRequest, ProjectName, VmStatus};
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start_in(&app.base, Some("projects")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    for u in ["olga", "mia", "vic"] {
        app.user(&admin, u).await;
    }
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "debian-12", "description": "Debian 12", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    // olga makes team-a, adds mia (member) and vic (viewer), stores the project's keys for sb.
    b.sign_in("olga", "olga-password").await;
    b.goto("/projects", "projects").await;
    b.fill("#project-name", "team-a").await;
    b.fill("#project-description", "The A team: web servers").await;
    b.submit("#create-project", "project-created").await;
    assert!(b.text("#flash").await.contains("Project team-a created"));
    b.fill("#member-user", "mia").await;
    b.click("#member-role option[value='member']").await;
    b.submit("#add-member", "member-added").await;
    assert!(b.text("#flash").await.contains("mia added to team-a as member"));
    b.fill("#member-user", "vic").await;
    b.click("#member-role option[value='viewer']").await;
    b.submit("#add-member", "viewer-added").await;
    assert_eq!(b.text("#member-vic .role").await, "viewer");
    b.fill("[id='sb-pc-key']", "AKIATEAMA000000WXYZ").await;
    b.fill("[id='sb-pc-secret']", "team-cloud-secret").await;
    b.submit("[id='save-pcred-sb']", "project-credential-stored").await;
    assert!(b.text("#flash").await.contains("Credentials of team-a for sb saved"));
    assert_eq!(b.text("#pcred-sb .masked").await, "****WXYZ");
    assert!(!b.source().await.contains("team-cloud-secret"), "the secret is never rendered");
    b.goto("/projects/team-a", "project-page").await;
    b.sign_out().await;

    // mia switches to team-a in the header and launches there, with the project's keys.
    b.sign_in("mia", "mia-password").await;
    assert_eq!(b.text("#current-project a").await, "mia");
    b.click("#project-select option[value='team-a']").await;
    b.submit("#switch-project", "switcher-mia").await;
    assert!(b.text("#flash").await.contains("Now working in project team-a as member"));
    assert_eq!(b.text("#current-project a").await, "team-a");
    b.goto("/credentials", "mia-credentials").await;
    assert!(b.text("#pcred-sb").await.contains("****WXYZ"), "the project's keys, masked");
    assert!(!b.source().await.contains("team-cloud-secret"));
    b.goto("/vms", "mia-vms").await;
    b.click("#launch-instance option[value='sb']").await;
    b.click("#launch-image option[value='debian-12']").await;
    b.fill("#launch-name", "team-web").await;
    b.click("#launch-submit").await;
    assert!(b.text("#flash").await.contains("Launched 1 VM(s)"));
    b.shot("mia-launched").await;
    let team = ProjectName::parse("team-a").unwrap();
    let sys = cloudbroker_core::Actor::system();
    let q = cloudbroker_core::provisioning::VmQuery { project: Some(team.clone()), ..Default::default() };
    let vms = app.broker.provisioning.list(&sys, q, PageRequest::default()).await.unwrap().items;
    assert_eq!(vms.len(), 1);
    let vm = &vms[0];
    assert_eq!((vm.user.as_str(), vm.project.as_str(), vm.name.as_str()), ("mia", "team-a", "team-web"));
    let cred = app.broker.store().get_credential("project", "team-a", "sb").await.unwrap().expect("the project's credential");
    assert_eq!(vm.credential_id.as_str(), cred.id, "the VM records the project's credential");
    let mut running = false;
    for _ in 0..60 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        if app.broker.provisioning.get(&sys, &vm.id).await.unwrap().status == VmStatus::Running {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(running, "the VM reached running");
    b.sign_out().await;

    // vic, a viewer: sees the VM after switching, has no button; a forged stop is refused.
    b.sign_in("vic", "vic-password").await;
    b.goto("/vms", "vic-personal-vms").await;
    assert_eq!(b.count(&format!("#vm-{}", vm.id)).await, 0, "not in vic's personal project");
    b.click("#project-select option[value='team-a']").await;
    b.submit("#switch-project", "switcher-vic").await;
    assert!(b.text("#flash").await.contains("as viewer"));
    b.goto("/vms", "viewer-vms").await;
    assert_eq!(b.count(&format!("#vm-{}", vm.id)).await, 1, "the viewer sees the project's VM");
    assert!(b.text(&format!("#vm-{} .launched-by", vm.id)).await.contains("mia"));
    // (Copy buttons for the ids are not actions.)
    assert_eq!(b.count("#vms button:not(.copy)").await + b.count("#vms a.button").await, 0, "no stop, reboot or terminate");
    assert_eq!(b.count("#vms input[type=checkbox]").await, 0, "no bulk selection");
    assert_eq!(b.count("#launch").await, 0, "no launch form");
    assert_eq!(b.count("#viewer-note").await, 1);
    forge_post(&b, &format!("/vms/{}/stop", vm.id)).await;
    b.shot("viewer-forged-stop").await;
    assert!(b.text("#flash").await.contains("Not allowed: you are a viewer of project"), "{}", b.source().await);
    assert_eq!(app.broker.provisioning.get(&sys, &vm.id).await.unwrap().status, VmStatus::Running, "still running");
    b.goto("/projects/team-a", "viewer-project-page").await;
    assert_eq!(b.count("#add-member").await + b.count("[id='save-pcred-sb']").await, 0, "a viewer manages nothing");
    assert_eq!(b.text("#pcred-sb .masked").await, "****WXYZ");
    assert!(!b.source().await.contains("team-cloud-secret"));
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn launch_policies_and_governance_in_a_real_browser() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start_in(&app.base, Some("governance")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let gwen = app.user(&admin, "gwen").await;
    for (name, id) in [("linux", "ami-sandbox-debian-12"), ("ubuntu", "ami-sandbox-ubuntu-2204")] {
        let (s, body) = app
            .call(reqwest::Method::POST, "/api/v1/images", &admin, Some(json!({"name": name, "mappings": {"sb": {"image_id": id}}})))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, body) = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/gwen/credentials/sb",
            &gwen,
            Some(json!({"access_key_id": "AKIAGWEN00000001234", "secret_access_key": "gwen-cloud-secret"})),
        )
        .await;
    assert!(s == 200 || s == 201, "{body}");
    // Launched before any policy: a big one.
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/vms",
            &gwen,
            Some(json!({"instance": "sb", "image": "linux", "instance_type": "t2.medium", "name": "big-one"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    // super sets sb's policies in Configuration → System, then looks at Governance.
    b.sign_in("super", common::SUPER_PW).await;
    b.goto("/admin/system?open=sb", "system").await;
    b.fill("[name='p.sb.policy.instance.types']", "t2.micro, t2.small, t3.*").await;
    b.fill("[name='p.sb.policy.images']", "linux").await;
    b.fill("[name='p.sb.policy.tags.required']", "cost-center=(rd|ops|sales), owner").await;
    b.fill("[name='p.sb.policy.count.max']", "2").await;
    b.submit("#save-system", "system-policies-set").await;
    assert!(b.text("#flash").await.contains("Saved 4 value(s)"));
    // And its lease terms.
    b.fill("[name='p.sb.lease.default']", "8h").await;
    b.fill("[name='p.sb.lease.max']", "1d").await;
    b.submit("#save-system", "system-lease-terms-set").await;
    assert!(b.text("#flash").await.contains("Saved 2 value(s)"));
    b.goto("/admin/governance", "governance").await;
    let terms = b.text("#lease-terms-sb").await;
    assert!(terms.contains("lease.default") && terms.contains("8h") && terms.contains("lease.max"), "{terms}");
    let sb = b.text("#governance-sb").await;
    assert!(sb.contains("t2.micro, t2.small, t3.*") && sb.contains("set here by super"), "{sb}");
    assert!(sb.contains("Not stopped: listed only") && sb.contains("big-one"), "{sb}");
    assert_eq!(b.count("#violations-sb tbody tr").await, 1);
    assert!(b.text("#governance-sb2").await.contains("None: every live VM on sb2"));
    b.sign_out().await;

    // gwen: the form applies sb's policy; a refusal comes back next to the field.
    b.sign_in("gwen", "gwen-password").await;
    b.goto("/vms", "vms-policy-table").await;
    assert!(b.text("#launch-policies").await.contains("cost-center (rd, ops, sales), owner"));
    b.click("#launch-policies a[href='/vms?launch=sb#launch']").await;
    b.shot("launch-form-with-policy").await;
    assert_eq!(b.count("select#launch-type option").await, 3, "the default and the two plain types");
    assert_eq!(b.count("#launch-image option[value='ubuntu']").await, 0, "only the allowed images");
    b.click("#launch-image option[value='linux']").await;
    b.click("#launch-type option[value='t2.small']").await;
    b.click("[id='launch-tag.cost-center'] option[value='ops']").await;
    b.fill("[id='launch-tag.owner']", "gwen").await;
    b.fill("#launch-count", "3").await;
    b.fill("#launch-name", "web").await;
    b.submit("#launch-submit", "launch-refused-by-policy").await;
    let e = b.text("#count-error").await;
    assert!(e.contains("at most 2 per launch (policy.count.max: 2)"), "{e}");
    assert_eq!(b.value("[id='launch-tag.owner']").await, "gwen", "what was typed is kept");
    assert_eq!(b.value("#launch-name").await, "web");
    b.fill("#launch-count", "2").await;
    assert!(b.text("#launch-lease-help").await.contains("Lease on sb: default 8h, at most 1d, then terminate"));
    b.fill("#launch-lease", "4h").await;
    b.click("#launch-submit").await;
    assert!(b.text("#flash").await.contains("Launched 2 VM(s)"));
    assert!(b.text("#flash").await.contains("then terminate)"), "the lease said");
    b.shot("launched-within-policy").await;

    // The lease on the VMs page: expiry in UTC, time left; one click extends it.
    let web = {
        let q = cloudbroker_core::provisioning::VmQuery { name: Some("web-0".into()), ..Default::default() };
        let sys = cloudbroker_core::Actor::system();
        app.broker.provisioning.list(&sys, q, cloudbroker_core::domain::PageRequest::default()).await.unwrap().items.remove(0)
    };
    let before = web.lease.clone().expect("launched with a lease").expires_at;
    let cell = b.text(&format!("#vm-{} td.lease", web.id)).await;
    assert!(
        cell.contains(&before.format("%Y-%m-%d %H:%M UTC").to_string())
            && (cell.contains("in 4h") || cell.contains("in 3h 59m"))
            && cell.contains("then terminate"),
        "{cell}"
    );
    b.shot("vms-with-leases").await;
    b.submit(&format!("#vm-{} button.extend", web.id), "lease-extended").await;
    let f = b.text("#flash").await;
    assert!(f.contains(&format!("Extended the lease of {}", web.id)) && f.contains("(in 8h)"), "{f}");
    let after = app.broker.provisioning.get(&cloudbroker_core::Actor::system(), &web.id).await.unwrap().lease.unwrap().expires_at;
    assert!(after > before + chrono::Duration::hours(3), "{before} -> {after}");
    let cell = b.text(&format!("#vm-{} td.lease", web.id)).await;
    assert!(cell.contains(&after.format("%Y-%m-%d %H:%M UTC").to_string()), "the new expiry shown: {cell}");
    // The VM's page: past lease.max is refused next to the field.
    b.click(&format!("#vm-{} a.vm-link", web.id)).await;
    b.shot("vm-page-with-lease").await;
    b.fill("#extend-lease", "3d").await;
    b.submit("#extend-submit", "lease-refused-over-max").await;
    assert!(b.text("#lease-error").await.contains("lease.max: 1d"));
    assert_eq!(b.value("#extend-lease").await, "3d");
    b.goto("/admin/governance", "gwen-refused-governance").await;
    assert!(b.text("#page-error").await.contains("for administrators"));
    b.sign_out().await;

    // super: the leases due within a day, across projects, and the extension among the lease actions.
    b.sign_in("super", common::SUPER_PW).await;
    b.goto("/admin/governance", "governance-leases-due").await;
    assert_eq!(b.count("#leases-due-table tbody tr").await, 2, "gwen's two VMs");
    assert!(b.text(&format!("#due-{}", web.id)).await.contains(&after.format("%Y-%m-%d %H:%M UTC").to_string()));
    assert!(b.text("#lease-actions-table").await.contains("vm.lease.set"));

    // The broker's clock moved on: half an hour before the end the warning (amber), at the end the note.
    let sys = cloudbroker_core::Actor::system();
    for _ in 0..50 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        if app.broker.provisioning.get(&sys, &web.id).await.unwrap().status == cloudbroker_core::domain::VmStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.broker.clock.set(after - chrono::Duration::minutes(30));
    let report = app.broker.provisioning.lease_pass("ui-test").await.unwrap();
    assert!(report.warned >= 1, "{report:?}");
    b.goto(&format!("/vms/{}", web.id), "vm-page-lease-warned").await;
    assert!(b.text("#lease-now").await.contains("Warned: the lease ends soon"));
    assert_eq!(b.count("#vm-lease.warn").await, 1, "amber");
    app.broker.clock.set(after + chrono::Duration::minutes(1));
    let report = app.broker.provisioning.lease_pass("ui-test").await.unwrap();
    assert!(report.terminated >= 1, "{report:?}");
    b.goto(&format!("/vms/{}", web.id), "vm-page-lease-ended").await;
    let ended = b.text("#lease-now").await;
    assert!(ended.starts_with("Was due") && ended.contains("ended") && ended.contains("terminated"), "{ended}");
    assert_eq!(b.count("#extend-form").await, 0, "a VM on its way out takes no lease");
    // With the background workers running, the page shows the lease worker's status.
    let workers = app.broker.spawn_background();
    for _ in 0..100 {
        if app.broker.readiness().await.workers.iter().any(|w| w.name == "lease" && w.runs > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.goto("/admin/governance", "governance-lease-actions").await;
    workers.shutdown(Duration::from_secs(10)).await;
    assert!(b.text("#lease-worker").await.contains("pass(es) run here"));
    assert!(b.text("#lease-actions-table").await.contains("vm.lease.expire"));
    assert_eq!(b.count("#leases-due-table").await, 0, "nothing due any more");
    b.quit().await;
}

/// Costs (issue 25), screenshots in the sub-folder `costs`: VMs that ran
/// over the last few days (the broker's clock moved by the test), then the
/// Costs page (the month as a stacked SVG chart with its table), the
/// dashboard's month to date, burn rate and forecast, and the VMs page's
/// cost column, for a user; an admin's Costs page by user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn costs_in_a_real_browser() {
    use chrono::{Datelike, DurationRound, TimeZone};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d/prices")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/prices/50-test.conf"),
        "currency = USD\nsb.markup = 10\nsb.price.instance.t2.micro = 0.0116\nsb.price.instance.t2.small = 0.023\nsb.price.instance.m5.large = 0.096\n",
    )
    .unwrap();
    let app = common::TestApp::start(None, dir).await.unwrap();
    let Some(mut b) = Browser::start_in(&app.base, Some("costs")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let hana = app.user(&admin, "hana").await;
    let ivan = app.user(&admin, "ivan").await;
    // From a few days ago (this month) to now, by the broker's clock.
    let now = chrono::Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();
    let month = chrono::Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).unwrap();
    let t0 = (now - chrono::Duration::days(4)).max(month);
    app.broker.clock.set(t0);
    let mut ids = std::collections::BTreeMap::new();
    for (who, name, t, team) in [
        (&hana, "web", "t2.micro", "blue"),
        (&hana, "db", "t2.small", "red"),
        (&hana, "batch", "m5.large", "red"),
        (&hana, "scratch", "t2.medium", "blue"),
        (&ivan, "ivan-box", "m5.large", "green"),
    ] {
        let (s, body) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/vms",
                who,
                Some(json!({"instance": "sb", "image": "linux", "instance_type": t, "name": name, "tags": {"team": team}})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        ids.insert(name, (who.clone(), body["vms"][0]["id"].as_str().unwrap().to_string()));
    }
    app.broker.provisioning.reconcile("ui-test").await.unwrap();
    let act = |name: &'static str, action: &'static str| {
        let (who, id) = ids[name].clone();
        let app = &app;
        async move {
            let (s, body) = app.call(reqwest::Method::POST, &format!("/api/v1/vms/{id}/{action}"), &who, None).await;
            assert_eq!(s, 200, "{action} {name}: {body}");
            app.broker.provisioning.reconcile("ui-test").await.unwrap();
        }
    };
    let step = ((now - t0) / 4).max(chrono::Duration::minutes(10));
    app.broker.clock.advance(step);
    act("batch", "stop").await;
    act("scratch", "stop").await;
    app.broker.clock.advance(step);
    act("batch", "start").await;
    act("ivan-box", "stop").await;
    app.broker.clock.advance(step);
    act("db", "stop").await;
    app.broker.clock.set(now.max(app.broker.clock.now() + chrono::Duration::minutes(10)));
    let report = app.call(reqwest::Method::GET, "/api/v1/costs?group_by=instance_type", &hana, None).await.1;

    b.sign_in("hana", "hana-password").await;
    b.goto("/costs?group_by=instance_type", "costs-by-type").await;
    assert_eq!(b.count("svg#cost-chart").await, 1, "the chart is drawn");
    assert!(b.count("svg#cost-chart rect[data-group='m5.large']").await >= 1);
    // The UI shows cents, the exact figure in the title (the API's).
    let total = report["total"].as_str().unwrap();
    let cents = format!("{:.2}", total.parse::<f64>().unwrap());
    assert_eq!(b.text("#cost-total").await, cents);
    assert_eq!(b.count(&format!("#cost-total[title='{total}']")).await, 1, "the exact total in the title");
    assert!(b.text("#unpriced").await.contains("t2.medium"));
    b.click("#c-group option[value='tag']").await;
    b.fill("#c-tag", "team").await;
    b.submit("#cost-filters button", "costs-by-tag").await;
    assert_eq!(b.text("#cost-total").await, cents, "the same total, grouped otherwise");
    assert!(b.text("#cost-table").await.contains("red"));
    b.goto("/", "dashboard-costs").await;
    // Rounded to cents (the exact figure is the element's title).
    let total = cloudbroker_core::costs::money::Micros::parse(report["total"].as_str().unwrap()).unwrap();
    assert_eq!(b.text("#spend-mtd").await, format!("USD {}", total.to_decimal(2)));
    assert!(b.text("#spend-rate").await.ends_with("/h"));
    b.goto("/vms", "vms-costs").await;
    let web_id = &ids["web"].1;
    assert!(b.text(&format!("#vm-{web_id} td.cost-month")).await.starts_with("USD "));
    b.goto(&format!("/vms/{web_id}"), "vm-cost").await;
    assert!(b.text("#vm-cost-total").await.starts_with("USD "));
    b.sign_out().await;

    b.sign_in("super", common::SUPER_PW).await;
    b.goto("/costs", "admin-costs-by-user").await;
    let table = b.text("#cost-table").await;
    assert!(table.contains("hana") && table.contains("ivan"), "{table}");
    assert_eq!(b.count("#c-user").await + b.count("#c-instance").await, 2, "an admin filters by user and instance");
    b.goto("/", "admin-dashboard-costs").await;
    assert!(b.text("#spend-mtd").await.starts_with("USD "));
    // The admin Prices page: the file's prices with their origins, what is unpriced (amber); a price set there.
    b.goto("/admin/prices", "admin-prices").await;
    assert!(b.text("#unpriced").await.contains("t2.medium"), "t2.medium is unpriced");
    assert!(b.text("#prices-table").await.contains("50-test.conf"));
    b.fill("#price-name", "t2.medium").await;
    b.fill("#price-price", "0.0464").await;
    b.submit("#price-set", "admin-prices-set").await;
    assert!(b.text("#prices-table").await.contains("set by admin super"));
    assert!(!b.text("#unpriced").await.contains("t2.medium"), "t2.medium is priced now");
    b.quit().await;
}

/// Deployments (issue 27, sub-folder `deployments`): a user deploys the
/// shipped `lamp` application from its Deploy form (a dry run first), opens
/// the deployment's page (its SVG diagram), watches it become ready while
/// the page refreshes itself, scales `web` through the plan and its confirm,
/// and terminates it after the confirmation page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_from_the_ui_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("connectors.d/applications");
    std::fs::create_dir_all(&apps).unwrap();
    let lamp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors.d/applications/lamp.yaml");
    std::fs::copy(&lamp, apps.join("lamp.yaml")).unwrap();
    let app = common::TestApp::start(None, dir).await.unwrap();
    let Some(mut b) = Browser::start_in(&app.base, Some("deployments")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let image = json!({"name": "ubuntu-22.04", "description": "Ubuntu 22.04 LTS",
        "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}, "sb2": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    let (s, body) = app.call(reqwest::Method::POST, "/api/v1/images", &admin, Some(image)).await;
    assert_eq!(s, 201, "{body}");
    app.user(&admin, "dana").await;

    b.sign_in("dana", "dana-password").await;
    b.click("header nav a[href='/deployments']").await;
    b.shot("deployments-empty").await;
    b.submit("#deploy-lamp", "deploy-form").await;
    b.fill("#deploy-name", "shop").await;
    b.fill("[id='in-site_title']", "Dana's shop").await;
    b.fill("[id='in-db-db_password']", "dana-db-secret").await;
    b.click("[id='place-db'] option[value='sb']").await;
    b.click("[id='place-web'] option[value='sb2']").await;
    b.submit("#deploy-preview", "deploy-dry-run").await;
    assert!(b.text("#preview").await.contains("sb2"), "the dry run says where");
    assert_eq!(b.value("#deploy-name").await, "shop", "what was typed is kept");
    assert_eq!(b.value("[id='in-db-db_password']").await, "", "but not the secret");
    b.fill("[id='in-db-db_password']", "dana-db-secret").await;
    b.click("#deploy-submit").await;
    assert!(b.text("#flash").await.contains("Deployed shop"));
    assert_eq!(b.count("svg.deploy-diagram g.node").await, 2, "both nodes drawn");
    assert_eq!(b.count("svg.deploy-diagram g.member").await, 3, "and their three VMs");
    assert!(!b.source().await.contains("dana-db-secret"), "the secret is never rendered");
    b.shot("deployment-provisioning").await;
    // The page reloads itself; the background workers (not started in tests) run here.
    let mut ready = false;
    for _ in 0..80 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        app.broker.deployments.drive_pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if b.count("#dep-state").await == 1 && b.text("#dep-state").await == "ready" {
            ready = true;
            break;
        }
    }
    assert!(ready, "the deployment became ready: {}", b.source().await);
    b.shot("deployment-ready").await;
    assert_eq!(b.count("svg.deploy-diagram g.member[data-state='ready']").await, 3, "every VM ready (drawn green)");

    b.click("#dep-scale").await;
    b.click("#scale-node option[value='web']").await;
    b.fill("#scale-multiplicity", "4").await;
    b.submit("#scale-show-plan", "scale-plan").await;
    assert!(b.text("#scale-launch").await.contains("#3, #4"));
    b.click("#scale-confirm").await;
    assert!(b.text("#flash").await.contains("Scaling web from 2 to 4"));
    b.shot("scaled").await;
    for _ in 0..80 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
        let r = app.broker.deployments.drive_pass().await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if b.count("svg.deploy-diagram g.member[data-state='ready']").await == 5 && b.text("#dep-state").await == "ready" {
            break;
        }
    }
    b.shot("scaled-ready").await;
    assert_eq!(b.count("svg.deploy-diagram g.member").await, 5, "db's VM and web's four");
    assert_eq!(
        b.count("svg.deploy-diagram g.member[data-state='ready']").await,
        5,
        "the two new VMs launched and ready: {}",
        b.source().await
    );
    let page = b.get("/url").await.as_str().unwrap().to_string();
    let path = page.trim_start_matches(app.base.as_str()).to_string();
    assert!(path.starts_with("/deployments/dep-"), "{path}");
    b.goto("/deployments", "deployments-list").await;
    assert!(b.text("#deployments").await.contains("shop"));
    b.goto(&format!("{path}/terminate"), "terminate-confirm").await;
    b.submit("#confirm-terminate", "terminating").await;
    assert!(b.text("#flash").await.contains("Terminating shop"));
    b.quit().await;
}

/// Issue 23's broken items a browser shows (screenshots in the sub-folder
/// `console`): the VMs page's list refreshes itself while a VM is pending
/// and the launch form keeps what is being typed; an access key's page
/// reloaded shows no secret and makes no key; a save with three bad values
/// marks all three; a reload with a broken file is amber and the
/// Connectors page lists the instance left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_keeps_what_is_typed_in_a_real_browser() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start_in(&app.base, Some("console")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    app.user(&admin, "ada").await;
    b.sign_in("ada", "ada-password").await;
    b.goto("/vms", "vms").await;
    b.click("#launch-instance option[value='sb']").await;
    b.click("#launch-image option[value='linux']").await;
    b.fill("#launch-name", "first").await;
    b.click("#launch-submit").await;
    assert!(b.text("#flash").await.contains("Launched 1 VM(s)"));
    assert_eq!(b.count("#refreshing[data-refresh]").await, 1, "the list refreshes itself while pending");
    b.shot("vms-pending").await;
    // Typing the next launch while the first one is pending.
    b.click("#launch-instance option[value='sb']").await;
    b.fill("#launch-name", "second-one").await;
    b.fill("#launch-tags", "team=web").await;
    // Give the list several refreshes, while typing and after.
    tokio::time::sleep(Duration::from_secs(4)).await;
    b.click("h1").await;
    app.broker.provisioning.reconcile("ui-test").await.unwrap();
    let mut running = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        running = b.count("#vms .state-running").await;
        if running == 1 {
            break;
        }
    }
    b.shot("vms-refreshed-form-kept").await;
    assert_eq!(running, 1, "the list refreshed by itself: {}", b.source().await);
    assert_eq!(b.count("#refreshing").await, 0, "nothing pending: no more refreshes");
    assert_eq!(b.value("#launch-name").await, "second-one", "the form kept what was typed");
    assert_eq!(b.value("#launch-tags").await, "team=web");
    assert_eq!(b.value("#launch-instance").await, "sb");
    // Shutting down: no Terminate offered.
    b.click("#vms a.button.danger").await;
    b.submit("#confirm-terminate", "vm-terminating").await;
    assert_eq!(b.count("#vms .state-shutting-down").await, 1);
    assert_eq!(b.count("#vms a.button.danger").await, 0, "no Terminate for a VM shutting down");
    // An access key: the page after the redirect shows it once; reloading makes no other.
    b.goto("/profile", "profile").await;
    b.submit("#create-access-key", "access-key-created").await;
    let secret = b.text("#new-secret-key").await;
    assert!(!secret.is_empty());
    b.post("/refresh", json!({})).await;
    b.shot("access-key-reloaded").await;
    assert!(!b.source().await.contains(&secret), "the secret is shown once");
    assert_eq!(b.count("#access-keys tr[data-key]").await, 1, "one key, however often reloaded");
    b.sign_out().await;

    // super: three bad values at once; a broken file on reload.
    b.sign_in("super", common::SUPER_PW).await;
    b.goto("/admin/system", "system").await;
    b.fill("[name='p.cloud.connector.class']", "ua:sandbox").await;
    b.submit("#save-system", "system-declared").await;
    b.fill("[name='p.ua.boot.delay.ms']", "abc").await;
    b.fill("[name='p.ua.failure.rate']", "2").await;
    b.fill("[name='p.ua.max.iaas.workers']", "0").await;
    b.submit("#save-system", "system-three-errors").await;
    assert_eq!(b.count("#instance-ua .field-error").await, 3, "every bad value is marked");
    assert!(b.text("#error-summary").await.contains("3 values need fixing"));
    assert_eq!(b.value("[id='p.ua.boot.delay.ms']").await, "abc");
    std::fs::write(app.dir.path().join("connectors.d/z.conf"), "cloud.connector.class = fz:sandbox\nfz.boot.delay.ms = abc\n").unwrap();
    b.goto("/admin/system", "system-before-reload").await;
    b.submit("#reload", "system-reloaded-broken").await;
    let flash_class = b.get(&format!("/element/{}/attribute/class", b.find("#flash").await)).await;
    assert!(flash_class.as_str().unwrap_or_default().contains("warn"), "{flash_class}");
    assert!(b.text("#flash").await.contains("not loaded: fz"));
    b.goto("/admin/connectors", "connectors-with-a-broken-file").await;
    assert!(b.text("#connector-fz").await.contains("not loaded"));
    b.goto("/api/docs", "api-reference").await;
    assert!(!b.text("body").await.contains('`'), "the Markdown is rendered");
    b.quit().await;
}

/// A full-page screenshot at `width` pixels (the window back to 1280 × 900 after).
async fn shot_at(b: &mut Browser, width: i64, name: &str) {
    b.n += 1;
    b.post("/window/rect", json!({"width": width, "height": 900})).await;
    let measure = json!({"script": "return [document.documentElement.scrollHeight, window.innerHeight]", "args": []});
    let mut height = 900;
    for _ in 0..3 {
        let m = b.post("/execute/sync", measure.clone()).await;
        let (doc, view) = (m[0].as_i64().unwrap_or(0), m[1].as_i64().unwrap_or(0));
        if doc <= view || height >= 10_000 {
            break;
        }
        height = (height + doc - view).min(10_000);
        b.post("/window/rect", json!({"width": width, "height": height})).await;
    }
    let png = b.get("/screenshot").await;
    b.post("/window/rect", json!({"width": 1280, "height": 900})).await;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap_or_default();
    std::fs::write(b.shots.join(format!("{:02}-{name}-{width}.png", b.n)), bytes).unwrap();
}

/// The VM table and the VM page (issue 23, screenshots at 1400 and 800
/// pixels in the sub-folder `console/vm-table`): the table sorted by name
/// from its header, terminated VMs hidden until "show all", paged with
/// Next, two VMs stopped at once through the one confirmation, then a VM's
/// page with its cloud id, history and SSH line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_vm_table_and_page_in_a_real_browser() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start_in(&app.base, Some("console/vm-table")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "debian-12", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let tess = app.user(&admin, "tess").await;
    let mut ids = Vec::new();
    for name in ["gamma", "alpha", "beta"] {
        let (s, body) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/vms",
                &tess,
                Some(json!({"instance": "sb", "image": "debian-12", "count": 10, "name": name, "tags": {"team": name}})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        ids.extend(body["vms"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()));
    }
    for _ in 0..2 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
    }
    let (s, body) = app.call(reqwest::Method::POST, &format!("/api/v1/vms/{}/terminate", ids[0]), &tess, None).await;
    assert_eq!(s, 200, "{body}");
    for _ in 0..2 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
    }
    b.sign_in("tess", "tess-password").await;
    b.goto("/vms?per_page=10", "vms").await;
    shot_at(&mut b, 1400, "vms-table").await;
    shot_at(&mut b, 800, "vms-table").await;
    assert_eq!(b.text("#vm-range").await, "1–10 of 29", "the terminated VM is hidden");
    // Sorted by name from the header; the column is marked.
    b.click("th[data-sort='name'] a").await;
    shot_at(&mut b, 1400, "vms-by-name").await;
    b.find("th[aria-sort='ascending'][data-sort='name']").await;
    assert!(b.text("#vms tbody tr:first-child .vm-link").await.starts_with("alpha-"));
    // Next keeps the order.
    b.click("#page-next").await;
    shot_at(&mut b, 1400, "vms-by-name-page-2").await;
    assert_eq!(b.text("#vm-range").await, "11–20 of 29");
    assert!(b.text("#vms tbody tr:first-child .vm-link").await.starts_with("beta-"));
    // Every state: the terminated one is back.
    b.click("#show-all").await;
    shot_at(&mut b, 1400, "vms-show-all").await;
    assert_eq!(b.text("#vm-range").await, "1–10 of 30");
    // Two VMs stopped at once, through one confirmation.
    b.goto("/vms?sort=name&dir=asc&per_page=10", "vms-select").await;
    b.click(&format!("[id='select-{}']", ids[10])).await;
    b.click(&format!("[id='select-{}']", ids[11])).await;
    b.click("#bulk-stop").await;
    shot_at(&mut b, 1400, "bulk-stop-confirm").await;
    shot_at(&mut b, 800, "bulk-stop-confirm").await;
    let listed = b.text("#bulk-vms").await;
    assert!(listed.contains(&ids[10]) && listed.contains(&ids[11]), "{listed}");
    b.click("#confirm-bulk").await;
    shot_at(&mut b, 1400, "bulk-stop-done").await;
    assert!(b.text("#bulk-summary").await.contains("2 of 2 VM(s) stopped"), "{}", b.source().await);
    // A VM's page: its cloud id, its history, its SSH line.
    b.goto(&format!("/vms/{}", ids[12]), "vm-page").await;
    shot_at(&mut b, 1400, "vm-page").await;
    shot_at(&mut b, 800, "vm-page").await;
    assert!(b.text("#vm-cloud-id").await.starts_with("i-"));
    assert!(b.text("#vm-history-table").await.contains("launched by tess"));
    if b.count("#vm-ssh").await == 1 {
        assert!(b.text("#vm-ssh").await.starts_with("ssh admin@"));
    } else {
        assert!(b.text("#vm-ssh-none").await.starts_with("No address"));
    }
    b.quit().await;
}

/// The admin console (issue 23, screenshots at 1400 and 800 pixels in the
/// sub-folder `admin`): the overview with live VMs per instance and state,
/// a user near quota and a failed launch; an admin's view of a user's
/// resources, terminating one of their VMs through its confirmation page;
/// the audit page filtered by action, showing the admin as actor and the
/// user as subject, and a configuration change as old → new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_console_in_a_real_browser() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start_in(&app.base, Some("admin")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "debian-12", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}, "sb2": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let una = app.user(&admin, "una").await;
    let (s, body) = app.call(reqwest::Method::PUT, "/api/v1/users/una/quotas/sb", &admin, Some(json!({"vm": 5}))).await;
    assert!(s == 200, "{body}");
    let (s, body) = app
        .call(reqwest::Method::POST, "/api/v1/vms", &una, Some(json!({"instance": "sb", "image": "debian-12", "count": 5, "name": "web"})))
        .await;
    assert_eq!(s, 201, "{body}");
    let first = body["vms"][0]["id"].as_str().unwrap().to_string();
    let (s, body) = app.call(reqwest::Method::PUT, "/api/v1/system/config", &admin, Some(json!({"sb2.failure.rate": "1"}))).await;
    assert!(s == 200, "{body}");
    let _ = app
        .call(reqwest::Method::POST, "/api/v1/vms", &una, Some(json!({"instance": "sb2", "image": "debian-12", "name": "doomed"})))
        .await;
    app.broker.provisioning.reconcile("ui-test").await.unwrap();
    b.sign_in("super", common::SUPER_PW).await;
    b.click("#nav-admin summary").await;
    b.click("#nav-admin-overview").await;
    shot_at(&mut b, 1400, "overview").await;
    shot_at(&mut b, 800, "overview").await;
    assert_eq!(b.text("#live-matrix tr[data-instance='sb'] td[data-state='running']").await, "5");
    assert!(b.text("#near-quota tr[data-user='una']").await.contains("100%"));
    assert_eq!(b.text("#failed-total").await, "1");
    // The user's resources, from the near-quota row.
    b.click("#near-quota tr[data-user='una'] a").await;
    shot_at(&mut b, 1400, "user-resources").await;
    shot_at(&mut b, 800, "user-resources").await;
    assert_eq!(b.count("#user-vms tr[data-vm]").await, 6, "5 running and the failed one");
    b.click(&format!("[id='terminate-{first}']")).await;
    shot_at(&mut b, 1400, "terminate-confirm").await;
    b.click("#confirm").await;
    shot_at(&mut b, 1400, "terminated").await;
    assert!(b.text("#flash").await.contains(&first));
    // The audit log: the admin as actor, una as subject.
    b.goto("/admin/audit", "audit").await;
    b.click("#a-action option[value='vm.terminate']").await;
    b.click(".filters button[type='submit']").await;
    shot_at(&mut b, 1400, "audit-terminate").await;
    shot_at(&mut b, 800, "audit-terminate").await;
    assert_eq!(b.text("#audit tr[data-action='vm.terminate'] td.actor").await, "super");
    assert_eq!(b.text("#audit tr[data-action='vm.terminate'] td.subject").await, "una");
    b.goto("/admin/audit?action=config.change", "audit-config").await;
    shot_at(&mut b, 1400, "audit-config").await;
    assert!(b.text("#audit ul.changes").await.contains("sb2.failure.rate"));
    b.quit().await;
}

/// The resource pages (issue 23, screenshots at 1400 and 800 pixels in the
/// sub-folder `resources`): a key pair created (its private key shown once)
/// and one imported, a volume created and attached to a VM, an address
/// allocated and associated, the release of that address refused as the
/// form's message, and a key pair deleted through its confirmation page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_pairs_volumes_and_addresses_in_a_real_browser() {
    let app = common::TestApp::sqlite().await;
    let Some(mut b) = Browser::start_in(&app.base, Some("resources")).await else { return };
    let admin = app.token("super", common::SUPER_PW).await;
    let (s, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let rhea = app.user(&admin, "rhea").await;
    let (s, body) =
        app.call(reqwest::Method::POST, "/api/v1/vms", &rhea, Some(json!({"instance": "sb", "image": "linux", "name": "web"}))).await;
    assert_eq!(s, 201, "{body}");
    let vm = body["vms"][0]["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        app.broker.provisioning.reconcile("ui-test").await.unwrap();
    }
    b.sign_in("rhea", "rhea-password").await;

    // Key pairs: one created (the private key once), one imported.
    b.click("#nav-resources summary").await;
    b.click("header nav a[href='/keypairs']").await;
    b.fill("#keypair-name", "rhea-laptop").await;
    b.click("#create-keypair").await;
    assert!(b.text("#new-private-key").await.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    shot_at(&mut b, 1400, "keypair-created").await;
    shot_at(&mut b, 800, "keypair-created").await;
    b.fill("#import-name", "ci").await;
    b.fill("#import-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvb2Qga2V5IGZvciB0ZXN0cyBvbmx5IG9rIG9rIG9r ci@build").await;
    b.click("#import-keypair").await;
    b.find("#keypairs tr[data-keypair='ci']").await;
    assert_eq!(b.count("#keypairs tr[data-keypair]").await, 2);
    assert_eq!(b.count("#new-private-key").await, 0, "shown once");
    shot_at(&mut b, 1400, "keypairs").await;
    shot_at(&mut b, 800, "keypairs").await;

    // A volume, created then attached to the VM.
    b.click("#nav-resources summary").await;
    b.click("header nav a[href='/volumes']").await;
    b.click("#volume-instance option[value='sb']").await;
    b.fill("#volume-size", "4").await;
    b.click("#volume-type option[value='gp3']").await;
    b.fill("#volume-tags", "team=data").await;
    b.click("#create-volume-submit").await;
    let flash = b.text("#flash").await;
    let vol = flash.split(' ').nth(1).unwrap_or_default().to_string();
    assert!(vol.starts_with("vol-"), "{flash}");
    for _ in 0..50 {
        if b.count(&format!("[id='attach-{vol}']")).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.post("/refresh", json!({})).await;
    }
    b.click(&format!("[id='attach-{vol}']")).await;
    b.click(&format!("#attach-vm option[value='{vm}']")).await;
    shot_at(&mut b, 1400, "volume-attach").await;
    b.click("#attach-submit").await;
    assert!(b.text("#flash").await.contains("attached to"), "{}", b.source().await);
    assert!(b.text(&format!("[id='volume-{vol}'] td.attachment")).await.contains("/dev/sdf"));
    shot_at(&mut b, 1400, "volumes").await;
    shot_at(&mut b, 800, "volumes").await;

    // An address, allocated then associated; its release refused while associated.
    b.click("#nav-resources summary").await;
    b.click("header nav a[href='/addresses']").await;
    b.click("#address-instance option[value='sb']").await;
    b.click("#allocate-submit").await;
    let flash = b.text("#flash").await;
    let alloc = flash.rsplit(": ").next().unwrap_or_default().to_string();
    assert!(alloc.starts_with("eipalloc-"), "{flash}");
    b.click(&format!("[id='associate-{alloc}']")).await;
    b.click(&format!("#associate-vm option[value='{vm}']")).await;
    b.click("#associate-submit").await;
    assert!(b.text(&format!("[id='address-{alloc}'] td.association")).await.contains(&vm));
    shot_at(&mut b, 1400, "addresses").await;
    shot_at(&mut b, 800, "addresses").await;
    b.click(&format!("[id='release-{alloc}']")).await;
    shot_at(&mut b, 1400, "address-release-confirm").await;
    b.click("#confirm-button").await;
    assert!(b.text("#form-error").await.contains("was not released"), "{}", b.source().await);
    shot_at(&mut b, 1400, "address-release-refused").await;

    // One confirmation, to the end: the imported key pair deleted.
    b.goto("/keypairs", "keypairs-again").await;
    b.click("[id='delete-keypair-ci']").await;
    assert!(b.text("#confirm-heading").await.contains("Delete key pair ci?"));
    shot_at(&mut b, 1400, "keypair-delete-confirm").await;
    shot_at(&mut b, 800, "keypair-delete-confirm").await;
    b.click("#confirm-button").await;
    assert!(b.text("#flash").await.contains("Key pair ci deleted"));
    assert_eq!(b.count("#keypairs tr[data-keypair]").await, 1);
    b.quit().await;
}
