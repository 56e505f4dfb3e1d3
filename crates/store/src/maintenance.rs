//! Database chores that must not go through a running store: the migration
//! status (reads the migration table, applies and creates nothing), the
//! refusal of a schema newer than this binary, and the SQLite backup and
//! restore. They compare the database with the same embedded migrations
//! that [`Store::migrate`] applies (one migrator, [`crate::migrator`]).
//!
//! A backup is a consistent online snapshot (`VACUUM INTO`, one read
//! transaction, while the broker serves) of the whole database, every table
//! whatever migration made it, written 0600 because it holds sealed
//! credentials and password hashes; the master key is never in it. A
//! restore replaces the database only after the backup proved to be an
//! intact SQLite database whose schema this binary knows, and keeps the
//! database it replaces (with its WAL) aside as `<db>.pre-restore`.

use crate::{migrator, redact_url, Backend, Store};
use sqlx::{Connection, Row};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Why a chore failed; the messages are shown to the operator as they are.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("cannot open {db}: {message}")]
    Open { db: String, message: String },
    /// A query or file operation failed (its own message).
    #[error("{0}")]
    Failed(String),
    #[error(
        "{what} has migration(s) {} that this binary (cloudbroker {}) does not know: its schema is newer; \
         run the newer binary (or restore a backup made with this version)",
        .unknown.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
        env!("CARGO_PKG_VERSION")
    )]
    NewerSchema { what: String, unknown: Vec<i64> },
    #[error("{what} handles SQLite databases; for PostgreSQL use pg_dump -Fc / pg_restore (see README \"Backup and restore\")")]
    SqliteOnly { what: &'static str },
    #[error("no database at {}", .0.display())]
    NoDatabase(PathBuf),
    #[error("cannot create {}: {message} (the backup never overwrites a file)", .path.display())]
    BackupExists { path: PathBuf, message: String },
    #[error("{}: not a UTF-8 path", .0.display())]
    NotUtf8(PathBuf),
    #[error("VACUUM INTO failed: {0}")]
    Vacuum(String),
    #[error("{}: no such backup file", .0.display())]
    NoBackupFile(PathBuf),
    #[error("{} is not a SQLite database: {message}", .path.display())]
    NotSqlite { path: PathBuf, message: String },
    #[error("{} is damaged: {check}", .path.display())]
    Damaged { path: PathBuf, check: String },
    #[error("{} is not a cloudbroker database (no migrations applied)", .0.display())]
    NotCloudbroker(PathBuf),
    #[error("{} exists: pass --force to replace it (it is kept as {}.pre-restore)", .0.display(), .0.display())]
    WouldReplace(PathBuf),
    /// A file step of a restore failed (`cannot copy to ...`, `cannot move ... aside`, ...).
    #[error("{step}: {message}")]
    File { step: String, message: String },
}

/// One embedded migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub description: String,
}

/// What a database holds compared with this binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Embedded migrations not applied yet, in order.
    pub pending: Vec<Migration>,
    /// Applied versions this binary does not carry (the schema is newer).
    pub unknown: Vec<i64>,
    /// How many migrations are applied.
    pub applied: usize,
}

impl MigrationStatus {
    /// The refusal of a schema newer than this binary, naming the database as `what`.
    pub fn newer_schema(&self, what: &str) -> Option<MaintenanceError> {
        (!self.unknown.is_empty()).then(|| MaintenanceError::NewerSchema { what: what.to_string(), unknown: self.unknown.clone() })
    }
}

/// A backup written.
#[derive(Clone, Debug)]
pub struct Backup {
    /// The database file backed up.
    pub database: PathBuf,
    pub bytes: u64,
    /// Migrations applied in the backup.
    pub applied: usize,
}

/// A restore done.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The database file replaced.
    pub database: PathBuf,
    /// Migrations applied in the restored database.
    pub applied: usize,
    /// Migrations the next start applies.
    pub pending: usize,
}

fn failed(e: impl std::fmt::Display) -> MaintenanceError {
    MaintenanceError::Failed(e.to_string())
}

fn file_step(step: String) -> impl FnOnce(std::io::Error) -> MaintenanceError {
    move |e| MaintenanceError::File { step, message: e.to_string() }
}

/// The file of a `sqlite://PATH[?...]` URL.
fn sqlite_path(url: &str) -> PathBuf {
    let p = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    PathBuf::from(p.split('?').next().unwrap_or(p))
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The SQLite file of `url`, or the refusal of `what` (`backup`, `restore`)
/// on another database.
pub fn sqlite_file(url: &str, what: &'static str) -> Result<PathBuf, MaintenanceError> {
    if is_sqlite(url) {
        Ok(sqlite_path(url))
    } else {
        Err(MaintenanceError::SqliteOnly { what })
    }
}

/// A direct connection (read-only on SQLite), outside any pool.
async fn connect(url: &str) -> Result<sqlx::AnyConnection, MaintenanceError> {
    sqlx::any::install_default_drivers();
    let url = if is_sqlite(url) { format!("{url}{}mode=ro", if url.contains('?') { '&' } else { '?' }) } else { url.to_string() };
    sqlx::AnyConnection::connect(&url).await.map_err(|e| MaintenanceError::Open { db: redact_url(&url), message: e.to_string() })
}

/// Applied migration versions; empty when the database has no migration table yet.
async fn applied(conn: &mut sqlx::AnyConnection, sqlite: bool) -> Result<BTreeSet<i64>, MaintenanceError> {
    let exists_sql = if sqlite {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
    } else {
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
    };
    let n: i64 = sqlx::query(exists_sql).fetch_one(&mut *conn).await.map_err(failed)?.try_get(0).map_err(failed)?;
    if n == 0 {
        return Ok(BTreeSet::new());
    }
    let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE").fetch_all(&mut *conn).await.map_err(failed)?;
    rows.iter().map(|r| r.try_get::<i64, _>(0).map_err(failed)).collect()
}

impl Store {
    /// The migration status of the database at `url`, compared with the
    /// migrations this binary carries. Reads only: a missing SQLite file is
    /// not created (everything is pending).
    pub async fn migration_status(url: &str) -> Result<MigrationStatus, MaintenanceError> {
        let backend = if is_sqlite(url) { Backend::Sqlite } else { Backend::Postgres };
        let known: Vec<Migration> = migrator(backend)
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| Migration { version: m.version, description: m.description.to_string() })
            .collect();
        let applied = if is_sqlite(url) && !sqlite_path(url).exists() {
            BTreeSet::new()
        } else {
            let mut conn = connect(url).await?;
            let a = applied(&mut conn, is_sqlite(url)).await;
            let _ = conn.close().await;
            a?
        };
        let versions: BTreeSet<i64> = known.iter().map(|k| k.version).collect();
        Ok(MigrationStatus {
            pending: known.into_iter().filter(|k| !applied.contains(&k.version)).collect(),
            unknown: applied.iter().copied().filter(|v| !versions.contains(v)).collect(),
            applied: applied.len(),
        })
    }

    /// Refuses a database whose schema is newer than this binary (a
    /// rolled-back binary must not write to it).
    pub async fn refuse_newer_schema(url: &str) -> Result<(), MaintenanceError> {
        match Self::migration_status(url).await?.newer_schema(&redact_url(url)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A consistent snapshot of the live SQLite database at `url`, written
    /// to `to` (created 0600, never overwritten).
    pub async fn backup_to(url: &str, to: &Path) -> Result<Backup, MaintenanceError> {
        let db = sqlite_file(url, "backup")?;
        if !db.exists() {
            return Err(MaintenanceError::NoDatabase(db));
        }
        // Created empty and private first: VACUUM INTO fills it, and nobody else can read it meanwhile.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(to)
                .map_err(|e| MaintenanceError::BackupExists { path: to.to_path_buf(), message: e.to_string() })?;
        }
        let result = async {
            let mut conn = connect(url).await?;
            let target = to.to_str().ok_or_else(|| MaintenanceError::NotUtf8(to.to_path_buf()))?;
            sqlx::query(&format!("VACUUM INTO '{}'", target.replace('\'', "''")))
                .execute(&mut conn)
                .await
                .map_err(|e| MaintenanceError::Vacuum(e.to_string()))?;
            let _ = conn.close().await;
            let f = std::fs::File::open(to).map_err(failed)?;
            f.sync_all().map_err(failed)
        }
        .await;
        if let Err(e) = result {
            let _ = std::fs::remove_file(to);
            return Err(e);
        }
        let s = Self::migration_status(&format!("sqlite://{}", to.display())).await?;
        Ok(Backup { database: db, bytes: std::fs::metadata(to).map(|m| m.len()).unwrap_or(0), applied: s.applied })
    }

    /// Replaces the SQLite database at `url` with the backup `from` (the
    /// caller makes sure no broker runs on it). An existing database is
    /// replaced only with `force`, and kept as `<db>.pre-restore`.
    pub async fn restore_from(url: &str, from: &Path, force: bool) -> Result<Restored, MaintenanceError> {
        let db = sqlite_file(url, "restore")?;
        if !from.is_file() {
            return Err(MaintenanceError::NoBackupFile(from.to_path_buf()));
        }
        let from_url = format!("sqlite://{}", from.display());
        // An intact SQLite database ...
        let mut conn = connect(&from_url).await?;
        let check: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| MaintenanceError::NotSqlite { path: from.to_path_buf(), message: e.to_string() })?
            .try_get(0)
            .map_err(failed)?;
        let _ = conn.close().await;
        if check != "ok" {
            return Err(MaintenanceError::Damaged { path: from.to_path_buf(), check });
        }
        // ... made by a broker, with a schema this binary knows.
        let s = Self::migration_status(&from_url).await?;
        if s.applied == 0 {
            return Err(MaintenanceError::NotCloudbroker(from.to_path_buf()));
        }
        if let Some(e) = s.newer_schema(&from.display().to_string()) {
            return Err(e);
        }
        if db.exists() && !force {
            return Err(MaintenanceError::WouldReplace(db));
        }
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(file_step(format!("cannot create {}", parent.display())))?;
        }
        let tmp = db.with_extension("db.restoring");
        std::fs::copy(from, &tmp).map_err(file_step(format!("cannot copy to {}", tmp.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(failed)?;
        }
        // The old database and its WAL go aside together: a stale WAL replayed
        // onto the restored file would corrupt it.
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                let kept = PathBuf::from(format!("{}{suffix}.pre-restore", db.display()));
                std::fs::rename(&p, &kept).map_err(file_step(format!("cannot move {} aside", p.display())))?;
            }
        }
        std::fs::rename(&tmp, &db).map_err(file_step(format!("cannot put {} in place", db.display())))?;
        if let Some(dir) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(Restored { database: db, applied: s.applied, pending: s.pending.len() })
    }
}
