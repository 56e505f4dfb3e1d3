//! Operations defects of the second review, with the real binary: what it
//! creates (data directory, live database with its -wal and -shm files,
//! master key, generated admin password, pid file) is private to its user,
//! whatever the umask of whoever started it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{bin, serve, stop};
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Every entry under `dir` (and `dir` itself) with its mode.
fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut out = vec![(dir.display().to_string(), mode(dir))];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push((p.display().to_string(), mode(&p)));
    }
    out
}

#[test]
fn serve_and_migrate_create_private_files() {
    let dir = tempfile::tempdir().unwrap();
    // A permissive place to start from: the broker's own umask decides.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");

    let out = bin().current_dir(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&data), 0o700, "data directory made by migrate");
    assert_eq!(mode(&data.join("cloudbroker.db")), 0o600, "database made by migrate");

    // serve on a fresh data directory (no admin password given: one is generated into a file).
    std::fs::remove_dir_all(&data).unwrap();
    let (mut child, _base) = serve(dir.path(), &[], &[]);
    let seen = modes(&data);
    stop(&mut child);
    let names: Vec<&str> = seen.iter().map(|(p, _)| p.rsplit('/').next().unwrap()).collect();
    for want in ["cloudbroker.db", "cloudbroker.db-wal", "cloudbroker.db-shm", "master.key", "initial-admin-password"] {
        assert!(names.contains(&want), "{want} missing from {seen:?}");
    }
    assert_eq!(seen[0].1, 0o700, "data directory: {seen:?}");
    for (path, m) in &seen[1..] {
        assert_eq!(m & 0o077, 0, "{path} is open to group or others (mode {m:o}): {seen:?}");
    }
}
