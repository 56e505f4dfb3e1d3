//! Running the real binary in tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, with no CLOUDBROKER_* variable inherited from the test environment.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudbroker"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLOUDBROKER_") {
            c.env_remove(k);
        }
    }
    c
}

/// Starts `cloudbroker serve --listen 127.0.0.1:0 <args>` in `dir` and
/// returns the process and its base URL (read from the "listening on" log line).
pub fn serve(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut c = bin();
    c.current_dir(dir).args(["serve", "--listen", "127.0.0.1:0"]).args(args).stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            std::thread::spawn(move || for _ in lines {});
            return (child, format!("http://{addr}"));
        }
        seen.push(line);
    }
    panic!("broker did not start: {seen:?}");
}

/// SIGTERM and wait.
pub fn stop(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap()
}
