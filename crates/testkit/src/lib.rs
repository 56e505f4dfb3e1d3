//! Test helpers for cloudbroker crates (a dev-dependency only; never published).
//!
//! # A real EC2 API on loopback: [`MotoServer`]
//!
//! [`MotoServer::start`] runs `scripts/moto_fault_server.py`: [moto]'s server
//! (an in-memory AWS mock) on `127.0.0.1` behind a small fault-injection
//! middleware. Each server is its own process with its own state, on a free
//! port, killed when the value is dropped (and exiting by itself if the test
//! process dies: it watches its standard input).
//!
//! It needs the project's Python venv with moto, made by `scripts/python-venv`
//! (`scripts/test` and `.ci/run` call it). The venv is `$CLOUDBROKER_VENV`, or
//! `<repo>/.venv`; the repository root is the first ancestor of
//! `CARGO_MANIFEST_DIR` holding `Cargo.lock` or `.git`.
//!
//! ```no_run
//! # async fn demo() {
//! use cloudbroker_testkit::{MotoOptions, MotoServer};
//! let moto = MotoServer::start(MotoOptions::default());
//! let endpoint = moto.endpoint(); // http://127.0.0.1:PORT, give it to the connector
//! moto.set_faults(serde_json::json!({ "throttle_first": 3 })).await;
//! // ... make calls ...
//! let stats = moto.stats().await;
//! assert_eq!(stats["actions"]["DescribeRegions"], 4);
//! # }
//! ```
//!
//! ## Faults (`set_faults`, replaces the whole configuration)
//!
//! | field | effect |
//! | --- | --- |
//! | `throttle_first: K` | the next K API requests answer HTTP 503 `RequestLimitExceeded` (EC2 error XML) |
//! | `throttle_actions: [..]` | only these actions are throttled (default: all) |
//! | `bare_503_first: K` | the next K API requests answer HTTP 503 with an empty body |
//! | `capacity_error_actions: [..]` | these actions answer HTTP 500 `InsufficientInstanceCapacity` with AWS's message |
//! | `hang_actions: [..]`, `hang_seconds: N` | these actions wait N seconds (default 30) before moto answers |
//! | `delay_ms: N`, `delay_actions: [..]` | every request (or only these actions) is delayed N ms |
//!
//! ## Statistics (`stats`)
//!
//! `{"actions": {"RunInstances": 2, ..}, "requests": n, "in_flight": n,
//! "peak_in_flight": n, "injected": {"throttle": n, "bare_503": n,
//! "capacity": n, "hang": n, "delay": n}, "log": [{"action", "max_results",
//! "next_token", "fault"}, ..]}`. Every attempt counts, faulted or not.
//! `peak_in_flight` is measured at the middleware: requests that arrived and
//! whose answer is not finished yet (injected delays included).
//!
//! ## Signature checking
//!
//! moto checks SigV4 signatures and IAM policies only when started with
//! `INITIAL_NO_AUTH_ACTION_COUNT=0` in [`MotoOptions::env`]; then only keys of
//! IAM users it knows work. [`MotoServer::create_iam_user`] creates such a
//! user, key and inline policy directly in moto's IAM backend (no signed call
//! is needed, so it works with the count at 0).
//!
//! `ec2_only` serves `create_backend_app("ec2")` directly: EC2 Query requests
//! are answered whatever their signature (SigV2 clients included), and no
//! other service is served.
//!
//! [moto]: https://github.com/getmoto/moto
//!
//! # One conformance suite for every connector: [`conformance`]
//!
//! [`conformance::run`] drives a connector through the scenarios every cloud
//! must pass alike (launch, describe, state changes, tags, addresses,
//! volumes, unknown ids); each connector crate runs it against its cloud.
#![allow(clippy::panic, clippy::expect_used)]

pub mod conformance;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long to wait for the server to print `READY`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How to start a [`MotoServer`].
#[derive(Clone, Debug, Default)]
pub struct MotoOptions {
    /// Serve EC2 only (any signature accepted, SigV2 included).
    pub ec2_only: bool,
    /// Extra environment for the server process, e.g.
    /// `("INITIAL_NO_AUTH_ACTION_COUNT", "0")` to check signatures and IAM policies.
    pub env: Vec<(String, String)>,
    /// Start with `--indexed-tags`: one resource's tags read from moto's tag
    /// map instead of a scan of every tag (same answers; what the benchmarks use).
    pub indexed_tags: bool,
}

impl MotoOptions {
    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Options for a server that checks signatures and IAM policies from the
    /// first request on (`INITIAL_NO_AUTH_ACTION_COUNT=0`).
    pub fn with_auth() -> Self {
        Self::default().env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
    }
}

/// An IAM user created in moto, with its access key.
#[derive(Clone, Debug)]
pub struct IamUser {
    pub user_name: String,
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A running moto server (see the crate docs). Killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// The repository root: the first ancestor of `CARGO_MANIFEST_DIR` (at run
/// time, else at this crate's build time) holding `Cargo.lock` or `.git`.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let found = start.ancestors().find(|d| d.join("Cargo.lock").is_file() || d.join(".git").exists()).map(Path::to_path_buf);
    match found {
        Some(root) => root,
        None => {
            let fallback = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            fallback.ancestors().nth(2).map(Path::to_path_buf).unwrap_or(fallback)
        }
    }
}

/// The venv directory: `$CLOUDBROKER_VENV`, or `<repo>/.venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("CLOUDBROKER_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => repo_root().join(".venv"),
    }
}

/// The venv's Python interpreter.
pub fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python")
}

impl MotoServer {
    /// Starts a server on a free `127.0.0.1` port and waits until it listens.
    ///
    /// Panics, saying what to do, when the venv is missing or the server does
    /// not come up. Blocks the calling thread for the start-up (a few seconds).
    pub fn start(opts: MotoOptions) -> MotoServer {
        let root = repo_root();
        let python = venv_python();
        if !python.exists() {
            panic!(
                "moto's Python venv is missing: {} does not exist.\n\
                 Run `scripts/python-venv` in {} (it installs moto[server], boto3 and awscli into \
                 ${{CLOUDBROKER_VENV:-<repo>/.venv}}); scripts/test does it for you.",
                python.display(),
                root.display()
            );
        }
        let script = root.join("scripts").join("moto_fault_server.py");
        if !script.is_file() {
            panic!("{} is missing", script.display());
        }
        let dir = tempfile::tempdir().expect("cannot create a temporary directory for moto's log");
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).expect("cannot create moto's log file");

        let mut cmd = Command::new(&python);
        cmd.arg("-u").arg(&script).args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"]);
        if opts.ec2_only {
            cmd.arg("--ec2-only");
        }
        if opts.indexed_tags {
            cmd.arg("--indexed-tags");
        }
        // moto must not pick up a proxy or a developer's AWS profile.
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_PROFILE", "AWS_CONFIG_FILE"] {
            cmd.env_remove(var);
        }
        cmd.env("PYTHONUNBUFFERED", "1");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.current_dir(&root).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python.display(), script.display()));

        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<u16>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Keep draining stdout after READY so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("READY ").and_then(|p| p.trim().parse::<u16>().ok()) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });

        let port = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(port) => port,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => format!("did not print READY within {}s", READY_TIMEOUT.as_secs()),
                    mpsc::RecvTimeoutError::Disconnected => "exited before printing READY".to_string(),
                };
                panic!(
                    "moto server ({} {}) {why}.\nIf moto is not installed, run `scripts/python-venv`.\n--- server log ---\n{}",
                    python.display(),
                    script.display(),
                    tail(&log, 4000)
                );
            }
        };
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("cannot build an HTTP client");
        MotoServer { child, port, log_path, _dir: dir, http }
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's stderr so far (moto's warnings and tracebacks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Replaces the fault configuration (see the crate docs).
    pub async fn set_faults(&self, faults: serde_json::Value) {
        self.post_json("/_fault", &faults).await;
    }

    /// Request statistics (see the crate docs).
    pub async fn stats(&self) -> serde_json::Value {
        self.send(self.http.get(format!("{}/_fault/stats", self.endpoint())), "GET /_fault/stats").await
    }

    /// Attempts seen for one action so far (0 if none).
    pub async fn action_count(&self, action: &str) -> u64 {
        self.stats().await["actions"][action].as_u64().unwrap_or(0)
    }

    /// Clears the fault configuration and the statistics (moto's state is kept).
    pub async fn reset(&self) {
        self.post_json("/_fault/reset", &serde_json::json!({})).await;
    }

    /// Resets moto's own state (all resources of all services).
    pub async fn reset_moto(&self) {
        self.send(self.http.post(format!("{}/moto-api/reset", self.endpoint())), "POST /moto-api/reset").await;
    }

    /// Creates an IAM user with an access key and, if given, an inline policy
    /// (an IAM policy document), directly in moto's IAM backend.
    pub async fn create_iam_user(&self, user_name: &str, policy: Option<serde_json::Value>) -> IamUser {
        let v = self.post_json("/_iam/user", &serde_json::json!({ "user_name": user_name, "policy": policy })).await;
        let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("/_iam/user answered without {k}: {v}")).to_string();
        IamUser {
            user_name: field("user_name"),
            arn: field("arn"),
            access_key_id: field("access_key_id"),
            secret_access_key: field("secret_access_key"),
        }
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let what = format!("POST {path}");
        self.send(self.http.post(format!("{}{path}", self.endpoint())).json(body), &what).await
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> serde_json::Value {
        let resp = req.send().await.unwrap_or_else(|e| panic!("moto control call {what} failed: {e}\n{}", tail(&self.log(), 2000)));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_else(|e| panic!("moto control call {what}: cannot read the answer: {e}"));
        if !status.is_success() {
            panic!("moto control call {what} answered {status}: {text}");
        }
        if text.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("moto control call {what} answered non-JSON ({e}): {text}"))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_repo_root() {
        let root = repo_root();
        assert!(root.join("Cargo.lock").is_file() || root.join(".git").exists(), "{}", root.display());
        assert!(root.join("scripts").join("moto_fault_server.py").is_file());
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("aé", 1), "");
    }

    #[tokio::test]
    async fn faults_and_stats_round_trip() {
        let moto = MotoServer::start(MotoOptions::default());
        moto.set_faults(serde_json::json!({ "throttle_first": 1 })).await;
        // An unsigned EC2 Query request, throttled once then answered by moto.
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let ask = || {
            http.post(moto.endpoint())
                .header("content-type", "application/x-www-form-urlencoded")
                .body("Action=DescribeRegions&Version=2016-11-15")
                .send()
        };
        let first = ask().await.unwrap();
        assert_eq!(first.status().as_u16(), 503);
        assert!(first.text().await.unwrap().contains("<Code>RequestLimitExceeded</Code>"));
        let stats = moto.stats().await;
        assert_eq!(stats["actions"]["DescribeRegions"], 1);
        assert_eq!(stats["injected"]["throttle"], 1);
        assert_eq!(stats["peak_in_flight"], 1);
        moto.reset().await;
        assert_eq!(moto.stats().await["requests"], 0);
        let user = moto.create_iam_user("kit", None).await;
        assert!(user.access_key_id.starts_with("AKIA"), "{user:?}");
        assert!(user.arn.ends_with(":user/kit"));
    }
}
