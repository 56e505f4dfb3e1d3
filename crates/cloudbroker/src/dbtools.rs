//! Database chores that must not go through the services: `migrate --check`
//! (reads the migration table, applies nothing), the start-up refusal of a
//! schema newer than this binary, and the SQLite `backup` / `restore`
//! commands. A backup is a consistent online snapshot (`VACUUM INTO`, one
//! read transaction, while the broker serves), written 0600 because it holds
//! sealed credentials and password hashes; the master key is never in it. A
//! restore replaces the database of a *stopped* data directory only after
//! the backup proved to be an intact SQLite database whose schema this
//! binary knows, and keeps the database it replaces.

use sqlx::{Connection, Row};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file of a `sqlite://PATH[?...]` URL.
fn sqlite_path(url: &str) -> PathBuf {
    let p = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    PathBuf::from(p.split('?').next().unwrap_or(p))
}

/// (version, description) of every migration this binary carries.
fn known(url: &str) -> Vec<(i64, String)> {
    let m = if is_sqlite(url) { &SQLITE_MIGRATIONS } else { &POSTGRES_MIGRATIONS };
    m.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| (m.version, m.description.to_string())).collect()
}

/// Applied migration versions; empty when the database has no migration table yet.
async fn applied(conn: &mut sqlx::AnyConnection, sqlite: bool) -> Result<BTreeSet<i64>, String> {
    let exists_sql = if sqlite {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
    } else {
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
    };
    let n: i64 = sqlx::query(exists_sql).fetch_one(&mut *conn).await.map_err(|e| e.to_string())?.try_get(0).map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(BTreeSet::new());
    }
    let rows =
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE").fetch_all(&mut *conn).await.map_err(|e| e.to_string())?;
    rows.iter().map(|r| r.try_get::<i64, _>(0).map_err(|e| e.to_string())).collect()
}

async fn connect(url: &str) -> Result<sqlx::AnyConnection, String> {
    sqlx::any::install_default_drivers();
    let url = if is_sqlite(url) { format!("{url}{}mode=ro", if url.contains('?') { '&' } else { '?' }) } else { url.to_string() };
    sqlx::AnyConnection::connect(&url).await.map_err(|e| format!("cannot open {}: {e}", cloudbroker_store::redact_url(&url)))
}

/// What the database holds compared with this binary.
struct Schema {
    pending: Vec<(i64, String)>,
    unknown: Vec<i64>,
    applied: usize,
}

async fn schema(url: &str) -> Result<Schema, String> {
    let known = known(url);
    let applied = if is_sqlite(url) && !sqlite_path(url).exists() {
        BTreeSet::new()
    } else {
        let mut conn = connect(url).await?;
        let a = applied(&mut conn, is_sqlite(url)).await;
        let _ = conn.close().await;
        a?
    };
    let versions: BTreeSet<i64> = known.iter().map(|k| k.0).collect();
    Ok(Schema {
        pending: known.into_iter().filter(|k| !applied.contains(&k.0)).collect(),
        unknown: applied.iter().copied().filter(|v| !versions.contains(v)).collect(),
        applied: applied.len(),
    })
}

fn newer_schema_error(what: &str, unknown: &[i64]) -> String {
    let list: Vec<String> = unknown.iter().map(i64::to_string).collect();
    format!(
        "{what} has migration(s) {} that this binary (cloudbroker {}) does not know: its schema is newer; \
         run the newer binary (or restore a backup made with this version)",
        list.join(", "),
        env!("CARGO_PKG_VERSION")
    )
}

/// `migrate --check`: exit 0 when up to date, 1 when migrations are pending,
/// 2 when the schema is newer than this binary. Applies nothing.
pub async fn migrate_check(url: &str) -> Result<ExitCode, String> {
    let s = schema(url).await?;
    let db = cloudbroker_store::redact_url(url);
    if !s.unknown.is_empty() {
        eprintln!("error: {}", newer_schema_error(&db, &s.unknown));
        return Ok(ExitCode::from(2));
    }
    if s.pending.is_empty() {
        println!("{db}: up to date ({} migrations applied)", s.applied);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{db}: {} migration(s) applied, {} pending:", s.applied, s.pending.len());
    for (v, d) in &s.pending {
        println!("  {v:04} {d}");
    }
    Ok(ExitCode::from(1))
}

/// Refuses to start on a schema newer than this binary (a rolled-back
/// binary must not write to it).
pub async fn refuse_newer_schema(url: &str) -> Result<(), String> {
    let s = schema(url).await?;
    if s.unknown.is_empty() {
        Ok(())
    } else {
        Err(newer_schema_error(&cloudbroker_store::redact_url(url), &s.unknown))
    }
}

fn sqlite_only(url: &str, what: &str) -> Result<PathBuf, String> {
    if is_sqlite(url) {
        Ok(sqlite_path(url))
    } else {
        Err(format!("{what} handles SQLite databases; for PostgreSQL use pg_dump -Fc / pg_restore (see README \"Backup and restore\")"))
    }
}

/// `backup --to FILE`: a consistent snapshot of the live SQLite database.
pub async fn backup(url: &str, to: &Path) -> Result<ExitCode, String> {
    let db = sqlite_only(url, "backup")?;
    if !db.exists() {
        return Err(format!("no database at {}", db.display()));
    }
    // Created empty and private first: VACUUM INTO fills it, and nobody else can read it meanwhile.
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| format!("cannot create {}: {e} (the backup never overwrites a file)", to.display()))?;
    }
    let result = async {
        let mut conn = connect(url).await?;
        let target = to.to_str().ok_or_else(|| format!("{}: not a UTF-8 path", to.display()))?;
        sqlx::query(&format!("VACUUM INTO '{}'", target.replace('\'', "''")))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("VACUUM INTO failed: {e}"))?;
        let _ = conn.close().await;
        let f = std::fs::File::open(to).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    let s = schema(&format!("sqlite://{}", to.display())).await?;
    println!(
        "backup of {} written to {} ({} bytes, schema at migration {}); the master key is not in it: keep a copy of the key file with it",
        db.display(),
        to.display(),
        std::fs::metadata(to).map(|m| m.len()).unwrap_or(0),
        s.applied
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
    let db = sqlite_only(url, "restore")?;
    if let Some(pid) = running(&data_dir.join("cloudbroker.pid")) {
        return Err(format!("a broker (pid {pid}) is running on {}: stop it first", data_dir.display()));
    }
    if !from.is_file() {
        return Err(format!("{}: no such backup file", from.display()));
    }
    let from_url = format!("sqlite://{}", from.display());
    // An intact SQLite database ...
    let mut conn = connect(&from_url).await?;
    let check: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("{} is not a SQLite database: {e}", from.display()))?
        .try_get(0)
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    if check != "ok" {
        return Err(format!("{} is damaged: {check}", from.display()));
    }
    // ... made by a broker, with a schema this binary knows.
    let s = schema(&from_url).await?;
    if s.applied == 0 {
        return Err(format!("{} is not a cloudbroker database (no migrations applied)", from.display()));
    }
    if !s.unknown.is_empty() {
        return Err(newer_schema_error(&from.display().to_string(), &s.unknown));
    }
    if db.exists() && !force {
        return Err(format!("{} exists: pass --force to replace it (it is kept as {}.pre-restore)", db.display(), db.display()));
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let tmp = db.with_extension("db.restoring");
    std::fs::copy(from, &tmp).map_err(|e| format!("cannot copy to {}: {e}", tmp.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
    }
    // The old database and its WAL go aside together: a stale WAL replayed
    // onto the restored file would corrupt it.
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            let kept = PathBuf::from(format!("{}{suffix}.pre-restore", db.display()));
            std::fs::rename(&p, &kept).map_err(|e| format!("cannot move {} aside: {e}", p.display()))?;
        }
    }
    std::fs::rename(&tmp, &db).map_err(|e| format!("cannot put {} in place: {e}", db.display()))?;
    if let Some(dir) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    println!(
        "restored {} from {} (schema at migration {}{}); start the broker with the master key file that was in use when the backup was made",
        db.display(),
        from.display(),
        s.applied,
        if s.pending.is_empty() { String::new() } else { format!(", {} migration(s) to apply at start", s.pending.len()) }
    );
    Ok(ExitCode::SUCCESS)
}
