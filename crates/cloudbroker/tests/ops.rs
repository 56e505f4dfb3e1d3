//! Operations, on the real binary: `GET /metrics` (Prometheus text, route
//! templates and instance names only as labels, loopback or bearer token),
//! request ids (accepted or generated, echoed, in every log line of the
//! request and of the cloud calls it causes), JSON logs, no secret in the
//! output even at `trace`, SIGTERM draining an in-flight launch before
//! exiting 0, and HTTPS served directly with a certificate reloaded on SIGHUP.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PW: &str = "super-Pw-0ps-7731";

/// A running broker whose stderr is kept.
struct Running {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(dir: &std::path::Path, conf: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir.join("connectors.d")).unwrap();
        std::fs::write(dir.join("connectors.d/sb.conf"), conf).unwrap();
        let mut c = common::bin();
        c.current_dir(dir).args(["serve", "--listen", "127.0.0.1:0"]).args(args).stderr(Stdio::piped());
        c.env("CLOUDBROKER_ADMIN_PASSWORD", PW);
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                    let _ = tx.send(url);
                }
                sink.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Self { child, base, log },
            Err(_) => panic!("broker did not start: {:?}", log.lock().unwrap()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, wait, and the whole log (the reader thread has seen EOF).
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = common::stop(&mut self.child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // The reader thread drains the pipe after the process exits.
        while Instant::now() < deadline && !self.log.lock().unwrap().iter().any(|l| l.contains("stopped")) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

async fn token(http: &reqwest::Client, r: &Running, user: &str, pw: &str) -> String {
    let resp = http.post(r.url("/api/v1/tokens")).basic_auth(user, Some(pw)).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

async fn metrics_text(http: &reqwest::Client, r: &Running) -> String {
    let resp = http.get(r.url("/metrics")).send().await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}: {text}");
    text
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

async fn image(http: &reqwest::Client, r: &Running, t: &str) {
    let resp = http
        .post(r.url("/api/v1/images"))
        .bearer_auth(t)
        .json(&json!({"name": "img", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn metrics_request_ids_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(
        dir.path(),
        "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n",
        &["--log-format", "json"],
        &[("CLOUDBROKER_LOG_LEVEL", "info,cloudbroker_connector_api=debug"), ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1")],
    );
    let http = reqwest::Client::new();
    let t = token(&http, &r, "super", PW).await;
    image(&http, &r, &t).await;

    // Request ids: a plain one is kept, anything else replaced.
    let resp = http.get(r.url("/healthz")).header("X-Request-Id", "ops-probe-1").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "ops-probe-1");
    for bad in ["has space", "quote\"d", &"x".repeat(129)] {
        let resp = http.get(r.url("/healthz")).header("X-Request-Id", bad).send().await.unwrap();
        let got = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(got, bad);
        assert!(got.len() == 32 && got.bytes().all(|b| b.is_ascii_hexdigit()), "generated id {got:?}");
    }
    let resp = http.get(r.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 32, "an id is generated when none is sent");

    // A launch, a credential save, a 404 on an id, a quota rejection.
    let resp = http
        .put(r.url("/api/v1/users/super/credentials/sb"))
        .bearer_auth(&t)
        .json(&json!({"access_key_id": "AKIAOPSMETRICS000001", "secret_access_key": "ops-secret-value"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let resp = http
        .post(r.url("/api/v1/vms"))
        .bearer_auth(&t)
        .header("X-Request-Id", "ops-launch-1")
        .json(&json!({"instance": "sb", "image": "img", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-request-id"], "ops-launch-1");
    let resp = http.get(r.url("/api/v1/vms/vm-nosuch-metricsprobe")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http.put(r.url("/api/v1/system/config")).bearer_auth(&t).json(&json!({"quota.enable": true})).send().await.unwrap();
    assert!(resp.status().is_success());
    let resp = http.put(r.url("/api/v1/users/super/quotas/sb")).bearer_auth(&t).json(&json!({"vm": 1})).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let resp =
        http.post(r.url("/api/v1/vms")).bearer_auth(&t).json(&json!({"instance": "sb", "image": "img", "count": 2})).send().await.unwrap();
    assert!(resp.status().is_client_error(), "over quota: {}", resp.status());

    // The reconciler (every second) counts the VM.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = metrics_text(&http, &r).await;
        if sample(&text, "cloudbroker_vms{instance=\"sb\",state=\"running\"}") == Some(1.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let version = env!("CARGO_PKG_VERSION");
    for (series, want) in [
        (format!("cloudbroker_build_info{{version=\"{version}\"}}"), 1.0),
        ("cloudbroker_vms{instance=\"sb\",state=\"running\"}".into(), 1.0),
        ("cloudbroker_http_requests_total{method=\"POST\",route=\"/api/v1/vms\",status=\"201\"}".into(), 1.0),
        ("cloudbroker_http_requests_total{method=\"GET\",route=\"/api/v1/vms/{id}\",status=\"404\"}".into(), 1.0),
        ("cloudbroker_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}".into(), 5.0),
        ("cloudbroker_launches_total{instance=\"sb\",outcome=\"ok\"}".into(), 1.0),
        ("cloudbroker_launches_in_flight".into(), 0.0),
        ("cloudbroker_quota_rejections_total{instance=\"sb\"}".into(), 1.0),
        ("cloudbroker_vault_operations_total{op=\"seal\",outcome=\"ok\"}".into(), 1.0),
        ("cloudbroker_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/vms\"}".into(), 2.0),
    ] {
        assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
    }
    assert!(
        sample(&text, "cloudbroker_cloud_calls_total{instance=\"sb\",action=\"sandbox\",outcome=\"ok\"}").unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert!(sample(&text, "cloudbroker_reconcile_passes_total{outcome=\"ok\"}").unwrap_or(0.0) >= 1.0, "{text}");
    assert!(text.contains("cloudbroker_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/vms\",le=\"0.005\"}"));
    assert!(text.contains("cloudbroker_cloud_call_duration_seconds_bucket{instance=\"sb\",action=\"sandbox\",le=\"1\"}"));
    assert!(text.contains("# TYPE cloudbroker_reconcile_duration_seconds histogram"));
    // Scrape-safe: no ids, user names or key ids as label values.
    for private in ["vm-nosuch-metricsprobe", "super", "AKIAOPS", "ops-launch-1", "ami-sandbox-debian-12"] {
        assert!(!text.contains(private), "{private} in /metrics:\n{text}");
    }

    // Behind a proxy, loopback is not enough.
    let resp = http.get(r.url("/metrics")).header("X-Forwarded-For", "203.0.113.9").send().await.unwrap();
    assert_eq!(resp.status(), 403);

    let (status, log) = r.stop();
    assert!(status.success(), "{status:?}");
    let objects: Vec<Value> =
        log.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {l}: {e}"))).collect();
    let of = |id: &str| objects.iter().filter(|o| o.to_string().contains(id)).cloned().collect::<Vec<_>>();
    let launch = of("ops-launch-1");
    assert!(
        launch.iter().any(|o| o["fields"]["message"] == "request" && o["fields"]["status"] == 201 && o["span"]["route"] == "/api/v1/vms"),
        "{launch:#?}"
    );
    assert!(
        launch
            .iter()
            .any(|o| o["fields"]["message"] == "cloud call done" && o["span"]["name"] == "cloud_call" && o["span"]["instance"] == "sb"),
        "the cloud call carries the request id: {launch:#?}"
    );
    assert!(of("ops-probe-1").iter().any(|o| o["span"]["route"] == "/healthz"));
}

#[tokio::test]
async fn metrics_token_opens_metrics_to_bearers_only() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics.token");
    std::fs::write(&token_file, "scrape-token-8841\n").unwrap();
    let r = Running::start(
        dir.path(),
        "cloud.connector.class = sb:sandbox\n",
        &[],
        &[("CLOUDBROKER_METRICS_TOKEN_FILE", token_file.to_str().unwrap())],
    );
    let http = reqwest::Client::new();
    let resp = http.get(r.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "a token is set: loopback alone is not enough");
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(http.get(r.url("/metrics")).bearer_auth("scrape-token-884").send().await.unwrap().status(), 401);
    let resp = http.get(r.url("/metrics")).bearer_auth("scrape-token-8841").header("X-Forwarded-For", "203.0.113.9").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("cloudbroker_build_info"));
    let (status, log) = r.stop();
    assert!(status.success());
    assert!(!log.iter().any(|l| l.contains("scrape-token-8841")));
}

/// Logins, password changes, credential saves and token creation with
/// tracing at `trace` for every crate: none of the secrets shows up.
#[tokio::test]
async fn no_secret_in_the_log_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(
        dir.path(),
        "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\n",
        &[],
        &[("CLOUDBROKER_LOG_LEVEL", "trace"), ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1")],
    );
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let mut secrets = vec![PW.to_string()];
    let t = token(&http, &r, "super", PW).await;
    secrets.push(t.clone());

    let (alice_pw, alice_pw2) = ("alice-Pw-1st-5521", "alice-Pw-2nd-9931");
    secrets.extend([alice_pw.to_string(), alice_pw2.to_string()]);
    let resp = http
        .post(r.url("/api/v1/users"))
        .bearer_auth(&t)
        .json(&json!({"name": "alice", "password": alice_pw, "admin": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = http.put(r.url("/api/v1/users/alice/password")).bearer_auth(&t).json(&json!({"password": alice_pw2})).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let alice_token = token(&http, &r, "alice", alice_pw2).await;
    secrets.push(alice_token.clone());
    assert_eq!(http.post(r.url("/api/v1/tokens")).basic_auth("alice", Some(alice_pw)).send().await.unwrap().status(), 401);

    let secret_key = "wJalrXUtnFEMI-K7MDENG-ops-trace-secret";
    secrets.push(secret_key.to_string());
    let resp = http
        .put(r.url("/api/v1/users/alice/credentials/sb"))
        .bearer_auth(&alice_token)
        .json(&json!({"access_key_id": "AKIAOPSTRACE00000001", "secret_access_key": secret_key}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    image(&http, &r, &t).await;
    let resp =
        http.post(r.url("/api/v1/vms")).bearer_auth(&alice_token).json(&json!({"instance": "sb", "image": "img"})).send().await.unwrap();
    assert_eq!(resp.status(), 201, "a launch opens the credential: {}", resp.text().await.unwrap());

    // The web UI: a form login with its CSRF token; the session cookie is a secret too.
    let ui = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = ui.get(r.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = form.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let resp = ui.post(r.url("/login")).form(&[("username", "alice"), ("password", alice_pw2), ("csrf", &csrf)]).send().await.unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let before = secrets.len();
    secrets.extend(resp.cookies().map(|c| c.value().to_string()).filter(|v| v.len() >= 16));
    assert!(secrets.len() > before, "a session cookie was set");
    let home = ui.get(r.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("alice"), "signed in: {home}");
    let resp =
        ui.post(r.url("/login")).form(&[("username", "alice"), ("password", "wrong-Pw-0000"), ("csrf", &csrf)]).send().await.unwrap();
    assert!(!resp.status().is_server_error());

    // Let the reconciler open the credential too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, log) = r.stop();
    assert!(status.success());
    let text = log.join("\n");
    assert!(log.iter().filter(|l| l.contains("TRACE")).count() > 10, "trace logging was on: {} lines", log.len());
    assert!(text.contains("POST") && text.contains("/api/v1/tokens"), "requests were logged");
    for (i, s) in secrets.iter().enumerate() {
        assert!(!text.contains(s.as_str()), "secret #{i} of {} appears in the log", secrets.len());
    }
}

/// SIGTERM while a launch waits for the cloud: `/readyz` turns 503 (during
/// the shutdown delay), then new connections are refused, the launch still
/// completes with its VMs recorded, the replica's reconcile leases are
/// released, and the process exits 0.
#[tokio::test]
async fn sigterm_drains_an_in_flight_launch_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::start(
        dir.path(),
        "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\nsb.api.latency.ms = 3000\n",
        &[],
        &[("CLOUDBROKER_SHUTDOWN_DELAY_SECS", "1"), ("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "1")],
    );
    let http = reqwest::Client::new();
    let t = token(&http, &r, "super", PW).await;
    image(&http, &r, &t).await;
    // The reconciler holds a lease on the group of an earlier launch.
    let (code, body) = {
        let resp = http.post(r.url("/api/v1/vms")).bearer_auth(&t).json(&json!({"instance": "sb", "image": "img"})).send().await;
        let resp = resp.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while leases(dir.path()).await == 0 {
        assert!(Instant::now() < deadline, "the reconciler never took a lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let launch = {
        let (http, url, t) = (http.clone(), r.url("/api/v1/vms"), t.clone());
        tokio::spawn(async move {
            let resp = http.post(url).bearer_auth(t).json(&json!({"instance": "sb", "image": "img", "count": 2})).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&metrics_text(&http, &r).await, "cloudbroker_launches_in_flight") != Some(1.0) {
        assert!(Instant::now() < deadline, "the launch never reached the cloud");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Command::new("kill").args(["-TERM", &r.child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !r.log.lock().unwrap().iter().any(|l| l.contains("shutting down")) {
        assert!(Instant::now() < deadline, "SIGTERM was not acted on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Readiness says draining at once; once the delay ends, new connections are refused.
    let addr = r.base.trim_start_matches("http://").to_string();
    assert!(r.base.starts_with("http://"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_draining = false;
    let mut refused = false;
    while Instant::now() < deadline && !(saw_draining && refused) {
        if let Ok(resp) = reqwest::Client::new().get(r.url("/readyz")).send().await {
            let code = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(code == 503 && body["status"] == "draining", "readiness after SIGTERM: {code} {body}");
            saw_draining = true;
        }
        refused |= std::net::TcpStream::connect(&addr).is_err();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener was closed");
    let (code, body) = launch.await.unwrap();
    assert_eq!(code, 201, "the in-flight launch finished: {body}");
    let vms = body["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    assert!(vms.iter().all(|v| v["cloud_id"].is_string()), "{body}");
    let (status, log) = r.stop();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let text = log.join("\n");
    assert!(text.contains("shutting down") && text.contains("stopped"), "{text}");
    assert!(saw_draining, "readiness answered 503 draining during the shutdown delay");
    assert_eq!(leases(dir.path()).await, 0, "leases left after a clean stop");
}

/// Rows in the leases table of the data directory's SQLite database.
async fn leases(dir: &std::path::Path) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", dir.join("data/cloudbroker.db").display());
    let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM leases").fetch_one(&mut c).await.unwrap().try_get(0).unwrap();
    c.close().await.unwrap();
    n
}

/// A self-signed certificate for 127.0.0.1 (PEM cert, PEM key), made by openssl.
fn self_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key, conf) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")), dir.join(format!("{name}.cnf")));
    // An end-entity certificate (CA:FALSE): webpki refuses a CA as a server certificate.
    std::fs::write(
        &conf,
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = {name}\n[ext]\n\
             basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n\
             subjectAltName = IP:127.0.0.1,DNS:localhost\n"
        ),
    )
    .unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-config"])
        .arg(&conf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) makes the test certificates");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

fn trusting(cert: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// HTTPS with the configured pair; SIGHUP swaps in a new pair, and a broken
/// pair on reload keeps the current one; a key that does not match its
/// certificate stops the start with a clear error.
#[tokio::test]
async fn https_with_a_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1) = self_signed(dir.path(), "first");
    let (c2, k2) = self_signed(dir.path(), "second");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&c1, &cert).unwrap();
    std::fs::copy(&k1, &key).unwrap();
    let r = Running::start(
        dir.path(),
        "cloud.connector.class = sb:sandbox\n",
        &[],
        &[("CLOUDBROKER_TLS_CERT_FILE", cert.to_str().unwrap()), ("CLOUDBROKER_TLS_KEY_FILE", key.to_str().unwrap())],
    );
    assert!(r.base.starts_with("https://127.0.0.1:"), "{}", r.base);
    let resp = trusting(&c1).get(r.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(trusting(&c2).get(r.url("/healthz")).send().await.is_err(), "the second certificate is not served yet");
    let plain = r.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.map(|r| r.status() != 200).unwrap_or(true), "no plain HTTP on the TLS port");
    // The session cookie is Secure when served over TLS.
    let login = trusting(&c1).get(r.url("/login")).send().await.unwrap();
    let cookies: Vec<String> = login.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(!cookies.is_empty() && cookies.iter().all(|c| c.contains("Secure")), "{cookies:?}");

    let hup = |pid: u32| Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    std::fs::copy(&c2, &cert).unwrap();
    std::fs::copy(&k2, &key).unwrap();
    hup(r.child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while trusting(&c2).get(r.url("/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(trusting(&c1).get(r.url("/healthz")).send().await.is_err(), "the old certificate is gone");

    // A broken file on reload: the current pair stays.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    hup(r.child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !r.log.lock().unwrap().iter().any(|l| l.contains("TLS certificate not reloaded")) {
        assert!(Instant::now() < deadline, "the failed reload was not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(trusting(&c2).get(r.url("/healthz")).send().await.unwrap().status(), 200);
    let (status, _) = r.stop();
    assert!(status.success());

    // A key of another certificate: refused at start, naming the files.
    let out = common::bin()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CLOUDBROKER_TLS_CERT_FILE", &c1)
        .env("CLOUDBROKER_TLS_KEY_FILE", &k2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("does not belong to tls_cert_file"), "{err}");
    let out = common::bin().current_dir(dir.path()).args(["serve"]).env("CLOUDBROKER_TLS_CERT_FILE", &c1).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("tls_key_file"));
}
