//! The real binary.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::bin;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn check_passes_on_the_shipped_directory() {
    let out = bin().args(["connectors", "check", "--connectors-dir"]).arg(repo().join("connectors.d")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok     sandbox:sandbox"), "{stdout}");
    assert!(stdout.contains("3 file(s)"), "{stdout}");
    assert!(stdout.contains("1 instance(s), no errors"), "{stdout}");
}

#[test]
fn check_reports_file_and_line_and_lists_good_instances() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.conf"), "cloud.connector.class = good:sandbox, bad:sandbox\n\nbad.max.iaas.workers = abc\n").unwrap();
    std::fs::write(dir.path().join("b.conf"), "# other\ncloud.connector.class = x:openstack\n").unwrap();
    let out = bin().args(["connectors", "check", "--connectors-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("ok     good:sandbox"), "{stdout}");
    assert!(stdout.contains("reject bad"), "{stdout}");
    assert!(stderr.contains("a.conf:3: bad value for 'bad.max.iaas.workers': 'abc' is not an integer"), "{stderr}");
    assert!(stderr.contains("b.conf:2: entry 'x:openstack': unknown connector kind 'openstack'"), "{stderr}");
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["connectors", "check", "--help"],
        vec!["connectors", "list", "--help"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
    let out = bin().arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cloudbroker "));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = bin().args(["migrate", "--listen", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen: 'nowhere' is not an address:port"));
}

#[test]
fn serve_on_defaults_runs_sandbox_and_migrate_reports() {
    let dir = tempfile::tempdir().unwrap();
    let conn = dir.path().join("connectors.d");
    std::fs::create_dir_all(&conn).unwrap();
    std::fs::copy(repo().join("connectors.d/10-sandbox.conf"), conn.join("10-sandbox.conf")).unwrap();

    let out = bin().current_dir(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("database sqlite is at migration"));
    assert!(dir.path().join("data/cloudbroker.db").exists(), "default sqlite path ./data/cloudbroker.db");

    let mut child = bin().current_dir(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut addr = None;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = Some(rest.split_whitespace().next().unwrap().to_string());
            break;
        }
        seen.push(line);
    }
    let addr = addr.unwrap_or_else(|| panic!("no listening line in {seen:?}"));
    std::thread::spawn(move || for _ in lines {});
    let body = http_get(&addr, "/readyz");
    assert!(body.contains("\"status\":\"ready\""), "{body}");
    assert!(body.contains("\"ready\":1"), "sandbox loaded: {body}");
    assert!(dir.path().join("data/cloudbroker.pid").exists());

    // connectors list sees the same instance, and reload signals the server.
    let out = bin().current_dir(dir.path()).args(["connectors", "reload"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(300));
    let out = bin().current_dir(dir.path()).args(["connectors", "list"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sandbox:sandbox  [ready]"), "{stdout}");
    assert!(stdout.contains("sandbox.boot.delay.ms = 2000  (./connectors.d/10-sandbox.conf:8)"), "{stdout}");

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown: {status:?}");
    assert!(!dir.path().join("data/cloudbroker.pid").exists());
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn users_tokens_and_key_rotation_from_the_command_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut c = bin()
            .current_dir(dir.path())
            .args(args)
            .env("CLOUDBROKER_ADMIN_PASSWORD", "super-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, out, err) = run(&["user", "add", "alice"], "alice-password\n");
    assert!(ok, "{err}");
    assert!(out.contains("created user alice"));
    let (ok, _, err) = run(&["user", "add", "alice"], "alice-password\n");
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&["user", "add", "bob"], "short\n");
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, out, _) = run(&["user", "list"], "");
    assert!(ok && out.contains("alice\tuser") && out.contains("super\tadmin"), "{out}");
    let (ok, _, err) = run(&["user", "passwd", "alice"], "new-alice-password\n");
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["token", "create", "alice"], "");
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("cbt_") && err.contains("shown once"), "{out}");
    let key_before = std::fs::read_to_string(dir.path().join("data/master.key")).unwrap();
    let (ok, out, err) = run(&["keys", "rotate"], "");
    assert!(ok, "{err}");
    assert!(out.contains("current master key: k"), "{out}");
    let key_after = std::fs::read_to_string(dir.path().join("data/master.key")).unwrap();
    assert_ne!(key_before, key_after);
}
