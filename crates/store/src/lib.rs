//! The broker's store: SQLite (embedded default) or PostgreSQL (scale-out),
//! chosen by the scheme of the database URL, behind one API.
//!
//! Both backends are reached through sqlx's `Any` driver with SQL written to
//! run on both (`$N` placeholders, `BIGINT` milliseconds for times, `TEXT`
//! ids, integers for flags); where the dialects differ, the store branches on
//! [`Backend`]. Migrations live in `migrations/{sqlite,postgres}`, are embedded
//! in the binary once (`migrator`), run by [`Store::migrate`] and compared
//! with a database by [`maintenance`] (status, backup, restore).
//!
//! A SQLite file and its directory are created private (file 0600, so its
//! `-wal` and `-shm` files, which SQLite creates with the file's mode, are
//! too; directory 0700). A SQLite connection that opens read-only (SQLite
//! falls back to read-only where the file cannot be written) is refused
//! when opened, so no connection that cannot write ever enters the pool.

pub mod access_keys;
pub mod applications;
pub mod audit;
pub mod budgets;
pub mod cloud_objects;
pub mod console;
pub mod credential_uses;
pub mod credentials;
pub mod deployments;
pub mod error;
pub mod exchange;
pub mod identity;
pub mod image_shares;
pub mod images;
pub mod key_pairs;
pub mod lease;
pub mod limits;
pub mod maintenance;
pub mod metering;
pub mod metering_report;
pub mod overview;
pub mod params;
mod pg_read;
pub mod plans;
pub mod prices;
pub mod project_policies;
pub mod projects;
pub mod quota;
pub mod resource_sync;
pub mod resources;
pub mod sandbox;
mod sqlite_read;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod vm_attributes;
pub mod vm_launch_details;
pub mod vm_leases;
pub mod vm_networks;
pub mod vm_table;
pub mod vms;
pub mod volume_tokens;

pub use error::StoreError;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a request waits for a database connection before it fails as
/// unavailable (503) rather than hanging while the database is down.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(8);

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from a URL's scheme.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or("");
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::Config(format!(
                "unsupported database URL scheme '{scheme}:' in {}: use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            ))),
        }
    }

    /// The backend's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The migrations of a backend: the only copy in the workspace.
pub(crate) fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// A handle on the database (cheap to clone).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite on a file: reads of VM records made on the calling thread
    /// (`sqlite_read`); none on PostgreSQL or a memory database.
    reader: Option<std::sync::Arc<sqlite_read::Reader>>,
    /// PostgreSQL: reads of VM records over connections of their own
    /// (`pg_read`); none on SQLite.
    pg_reader: Option<std::sync::Arc<pg_read::PgReader>>,
    /// The clock VM state changes are stamped with (their history is what
    /// metering bills); the broker's services share it, a test sets it.
    clock: cloudbroker_model::clock::Clock,
}

/// Query parameters of a database URL that carry a credential (libpq's
/// `password`, `sslpassword`, and the usual spellings of a secret or token).
const SECRET_QUERY_PARAMS: &[&str] =
    &["password", "pass", "passwd", "pwd", "sslpassword", "secret", "token", "auth_token", "sslkey_password"];

/// Hides the credentials of a database URL for messages and logs: the
/// password in the authority and credential query parameters
/// (`?password=...`, `?sslpassword=...`). A URL that does not parse is shown
/// up to its query only.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw) else {
        // Unparsable: keep nothing that could be a credential.
        return match raw.split_once('?') {
            Some((base, _)) => format!("{base}?***"),
            None => raw.to_string(),
        };
    };
    let mut changed = false;
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
        changed = true;
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if pairs.iter().any(|(k, _)| SECRET_QUERY_PARAMS.contains(&k.to_ascii_lowercase().as_str())) {
            let mut q = u.query_pairs_mut();
            q.clear();
            for (k, v) in &pairs {
                let secret = SECRET_QUERY_PARAMS.contains(&k.to_ascii_lowercase().as_str());
                q.append_pair(k, if secret { "***" } else { v });
            }
            drop(q);
            changed = true;
        }
    }
    if changed {
        u.to_string()
    } else {
        raw.to_string()
    }
}

/// Creates a SQLite database file's directory (0700) and the file itself
/// (0600) when missing, so that neither is ever readable by others, whatever
/// the process's umask. Existing ones are left as they are.
fn create_private_sqlite_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", parent.display())))?;
        }
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!("cannot create the database file {}: {e}", path.display()))),
    }
}

/// A write that is rolled back: fails with SQLITE_READONLY on a connection
/// SQLite opened read-only (`BEGIN IMMEDIATE` alone does not, in WAL mode).
const WRITE_CHECK: &str = "BEGIN IMMEDIATE; PRAGMA user_version = 0; ROLLBACK;";

/// The default SQLite URL for a data directory.
pub fn sqlite_url_for(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("cloudbroker.db").display())
}

impl Store {
    /// Connects (creating a SQLite file and its directory if missing).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let shown = redact_url(url);
        let (url, max) = match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                if !path.is_empty() && path != ":memory:" && !url.contains("mode=memory") && !url.contains("mode=ro") {
                    create_private_sqlite_file(Path::new(path))?;
                }
                let sep = if url.contains('?') { '&' } else { '?' };
                let url = if url.contains("mode=") { url.to_string() } else { format!("{url}{sep}mode=rwc") };
                (url, 8)
            }
            Backend::Postgres => (url.to_string(), 16),
        };
        // One direct attempt first, so an unreachable server fails fast with its own message.
        // A connection of a URL asking for read-only is read-only on purpose.
        let check_writable = backend == Backend::Sqlite && !url.contains("mode=ro");
        let mut probe =
            sqlx::AnyConnection::connect(&url).await.map_err(|e| StoreError::Connect { url: shown.clone(), message: e.to_string() })?;
        if check_writable {
            // A file that cannot be written fails here with SQLite's own words
            // (the pool would retry until its timeout).
            let check = format!("PRAGMA busy_timeout = 30000; {WRITE_CHECK}");
            if let Err(e) = probe.execute(check.as_str()).await {
                let _ = probe.close().await;
                return Err(StoreError::Connect { url: shown.clone(), message: format!("the database cannot be written: {e}") });
            }
        }
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // PostgreSQL: a pooled connection may have been cut (server
            // restarted, backend terminated): ping it before use, so such a
            // connection is replaced instead of failing a request. SQLite's
            // connections are in this process and cannot be cut; the ping
            // was a second trip to the connection's worker thread per query
            // (about half the cost of reading one VM).
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").await?;
                        // SQLite opens a file it cannot write read-only, and
                        // such a connection would stay read-only in the pool
                        // after the file is writable again: refuse it now
                        // (SQLITE_READONLY, which callers see as the
                        // database being unavailable), so the pool opens a
                        // fresh one next time.
                        if check_writable {
                            conn.execute(WRITE_CHECK).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| StoreError::Connect { url: shown.clone(), message: e.to_string() })?;
        let reader = match backend {
            Backend::Sqlite => sqlite_read::Reader::for_url(&url).map(std::sync::Arc::new),
            Backend::Postgres => None,
        };
        let pg_reader = match backend {
            Backend::Postgres => pg_read::PgReader::for_url(&url).map(std::sync::Arc::new),
            Backend::Sqlite => None,
        };
        Ok(Self { pool, backend, reader, pg_reader, clock: cloudbroker_model::clock::Clock::system() })
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let s = Self::connect(url).await?;
        s.migrate().await?;
        Ok(s)
    }

    /// The clock VM records are stamped with (shared: setting a clone sets it).
    pub fn clock(&self) -> &cloudbroker_model::clock::Clock {
        &self.clock
    }

    /// Now, by [`Store::clock`], in milliseconds since the epoch.
    pub(crate) fn clock_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend).run(&self.pool).await.map_err(|e| StoreError::Migrate(e.to_string()))
    }

    /// Versions of the applied migrations.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Number of migrations embedded for this backend.
    pub fn known_migrations(&self) -> usize {
        migrator(self.backend).iter().count()
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: (i64,) = sqlx::query_as("SELECT CAST(1 AS BIGINT)").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A text column compared and sorted byte by byte on both backends (keyset
    /// pagination merges and compares keys outside SQL too).
    pub(crate) fn bytewise(&self, col: &str) -> String {
        match self.backend {
            Backend::Sqlite => col.to_string(),
            Backend::Postgres => format!("{col} COLLATE \"C\""),
        }
    }

    /// The direct SQLite reader (see `sqlite_read`), when there is one.
    pub(crate) fn sqlite_reader(&self) -> Option<&sqlite_read::Reader> {
        self.reader.as_deref()
    }

    /// The direct PostgreSQL reader (see `pg_read`), when there is one.
    pub(crate) fn pg_reader(&self) -> Option<&pg_read::PgReader> {
        self.pg_reader.as_deref()
    }

    /// The connection pool, for the store's own modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The broker id: a random id made on first use and kept in the database,
    /// shared by every replica of one deployment (used to tag VMs).
    pub async fn broker_id(&self) -> Result<String, StoreError> {
        let candidate = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        sqlx::query("INSERT INTO broker_meta (key, value) VALUES ('broker_id', $1) ON CONFLICT (key) DO NOTHING")
            .bind(&candidate)
            .execute(&self.pool)
            .await?;
        let (v,): (String,) = sqlx::query_as("SELECT value FROM broker_meta WHERE key = 'broker_id'").fetch_one(&self.pool).await?;
        Ok(v)
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Converts stored milliseconds to a time.
pub fn ms_to_time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[allow(dead_code)]
pub(crate) type Row = AnyRow;

impl FromStr for Backend {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::from_url(s)
    }
}
