//! The database commands of the CLI (`migrate --check`, `backup`, `restore`)
//! and the start-up refusal of a schema newer than this binary: thin callers
//! of the store's chores ([`cloudbroker_store::maintenance`]), which hold the
//! SQL and the one copy of the migrations; here only what the operator sees
//! (messages, exit codes) and the data directory's running-broker check.

use cloudbroker_store::maintenance::{self, MaintenanceError};
use cloudbroker_store::Store;
use std::path::Path;
use std::process::ExitCode;

fn text(e: MaintenanceError) -> String {
    e.to_string()
}

/// `migrate --check`: exit 0 when up to date, 1 when migrations are pending,
/// 2 when the schema is newer than this binary. Applies nothing.
pub async fn migrate_check(url: &str) -> Result<ExitCode, String> {
    let s = Store::migration_status(url).await.map_err(text)?;
    let db = cloudbroker_store::redact_url(url);
    if let Some(e) = s.newer_schema(&db) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    if s.pending.is_empty() {
        println!("{db}: up to date ({} migrations applied)", s.applied);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{db}: {} migration(s) applied, {} pending:", s.applied, s.pending.len());
    for m in &s.pending {
        println!("  {:04} {}", m.version, m.description);
    }
    Ok(ExitCode::from(1))
}

/// Refuses to start on a schema newer than this binary (a rolled-back
/// binary must not write to it).
pub async fn refuse_newer_schema(url: &str) -> Result<(), String> {
    Store::refuse_newer_schema(url).await.map_err(text)
}

/// `backup --to FILE`: a consistent snapshot of the live SQLite database.
pub async fn backup(url: &str, to: &Path) -> Result<ExitCode, String> {
    let b = Store::backup_to(url, to).await.map_err(text)?;
    println!(
        "backup of {} written to {} ({} bytes, schema at migration {}); the master key is not in it: keep a copy of the key file with it",
        b.database.display(),
        to.display(),
        b.bytes,
        b.applied
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether the pid in `pid_file` is a live process.
fn running(pid_file: &Path) -> Option<String> {
    let pid = std::fs::read_to_string(pid_file).ok()?.trim().to_string();
    let alive = std::process::Command::new("kill").args(["-0", &pid]).stderr(std::process::Stdio::null()).status().ok()?.success();
    alive.then_some(pid)
}

/// `restore --from FILE`: into the stopped data directory's SQLite database.
pub async fn restore(url: &str, data_dir: &Path, from: &Path, force: bool) -> Result<ExitCode, String> {
    maintenance::sqlite_file(url, "restore").map_err(text)?;
    if let Some(pid) = running(&data_dir.join("cloudbroker.pid")) {
        return Err(format!("a broker (pid {pid}) is running on {}: stop it first", data_dir.display()));
    }
    let r = Store::restore_from(url, from, force).await.map_err(text)?;
    println!(
        "restored {} from {} (schema at migration {}{}); start the broker with the master key file that was in use when the backup was made",
        r.database.display(),
        from.display(),
        r.applied,
        if r.pending == 0 { String::new() } else { format!(", {} migration(s) to apply at start", r.pending) }
    );
    Ok(ExitCode::SUCCESS)
}
