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

/// A broker process started by [`serve`]: killed (SIGKILL) and reaped when
/// dropped, unless it has ended before (a test that panics halfway leaves
/// no broker behind holding its database, its port, or the build's lock it
/// inherited). Where util-linux's `setpriv` is installed, the process is
/// also started with a parent-death signal (SIGKILL when the test thread
/// that started it ends), so a test process killed outright (a timeout)
/// leaves none either. Derefs to the [`Child`].
pub struct Broker(Child);

impl std::ops::Deref for Broker {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Broker {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `setpriv`, when installed (it sets the parent-death signal, then execs).
const SETPRIV: &str = "/usr/bin/setpriv";

/// Starts `cloudbroker serve --listen 127.0.0.1:0 <args>` in `dir` and
/// returns the process (killed when dropped) and its base URL (read from
/// the "listening on" log line).
pub fn serve(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> (Broker, String) {
    let mut c = bin();
    if std::path::Path::new(SETPRIV).exists() {
        let mut w = Command::new(SETPRIV);
        w.args(["--pdeathsig", "KILL", "--", env!("CARGO_BIN_EXE_cloudbroker")]);
        for (k, _) in std::env::vars() {
            if k.starts_with("CLOUDBROKER_") {
                w.env_remove(k);
            }
        }
        c = w;
    }
    c.current_dir(dir).args(["serve", "--listen", "127.0.0.1:0"]).args(args).stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = Broker(c.spawn().unwrap());
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

/// SIGKILL and wait (a crash).
pub fn kill(child: &mut Child) {
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
}
