//! Test support: a fresh database per test, on SQLite always and on
//! PostgreSQL when `CLOUDBROKER_TEST_POSTGRES_URL` names a server (each test
//! then gets a database of its own, created from that URL; later runs drop
//! the ones older than six hours, so a shared test server does not fill up).

use crate::{Store, StoreError};

/// The environment variable naming a PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "CLOUDBROKER_TEST_POSTGRES_URL";

/// A fresh database; its files are removed when it is dropped.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A temporary directory removed on drop (kept small to avoid a dependency).
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TestDb {
    /// A fresh, migrated SQLite database in a temporary directory.
    pub async fn sqlite() -> Result<Self, StoreError> {
        let dir = std::env::temp_dir().join(format!("cloudbroker-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Config(e.to_string()))?;
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let store = Store::open(&url).await?;
        Ok(Self { store, url, _dir: Some(tempfile_dir::TempDir(dir)) })
    }

    /// A fresh, migrated PostgreSQL database, or `None` (with a notice on
    /// stderr) when no server is configured.
    pub async fn postgres() -> Result<Option<Self>, StoreError> {
        let Ok(base) = std::env::var(POSTGRES_ENV) else {
            eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
            return Ok(None);
        };
        let url = Self::create_postgres_database(&base).await?;
        let store = Store::open(&url).await?;
        Ok(Some(Self { store, url, _dir: None }))
    }

    /// Creates an empty database on the server of `base` and returns its URL.
    /// Its name carries its creation time (`cbtest_<unix secs>_<uuid>`), so
    /// later runs drop what earlier ones left ([`drop_stale_databases`]):
    /// a test server otherwise grows by a database per test, without end.
    pub async fn create_postgres_database(base: &str) -> Result<String, StoreError> {
        let admin = Store::connect(base).await?;
        drop_stale_databases(&admin).await;
        let name = format!("cbtest_{}_{}", crate::now_ms() / 1000, uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(admin.pool()).await?;
        admin.close().await;
        let mut u = url::Url::parse(base).map_err(|e| StoreError::Config(e.to_string()))?;
        u.set_path(&format!("/{name}"));
        Ok(u.to_string())
    }
}

/// Test databases older than this are dropped by later runs (no test runs this long).
const STALE_TEST_DATABASE_SECS: i64 = 6 * 3600;

/// Most stale test databases one call drops (the rest go with later calls).
const STALE_DROPS_PER_CALL: usize = 20;

/// Whether test database `name` was made more than [`STALE_TEST_DATABASE_SECS`]
/// before `now_secs` (one named the old way, without its time, is stale).
fn is_stale_test_database(name: &str, now_secs: i64) -> bool {
    let Some(rest) = name.strip_prefix("cbtest_") else { return false };
    match rest.split_once('_').and_then(|(secs, _)| secs.parse::<i64>().ok()) {
        Some(created) => now_secs - created > STALE_TEST_DATABASE_SECS,
        None => true,
    }
}

/// Drops a few test databases earlier runs left (best effort: another run
/// may be dropping the same ones; errors are ignored).
async fn drop_stale_databases(admin: &Store) {
    let now = crate::now_ms() / 1000;
    let names: Vec<(String,)> = sqlx::query_as("SELECT datname::text FROM pg_database WHERE datname LIKE 'cbtest%'")
        .fetch_all(admin.pool())
        .await
        .unwrap_or_default();
    let stale = names.into_iter().map(|(n,)| n).filter(|n| is_stale_test_database(n, now)).take(STALE_DROPS_PER_CALL);
    for name in stale {
        if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(admin.pool()).await;
        }
    }
}

/// Runs a test body against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! store_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = $crate::testing::TestDb::sqlite().await.expect("sqlite test db");
                ($body)(db.store.clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = $crate::testing::TestDb::postgres().await.expect("postgres test db") {
                    ($body)(db.store.clone()).await;
                }
            }
        }
    };
}

impl Store {
    /// Applies this backend's migrations up to `version` and no further: the
    /// schema an older binary left, for tests of the migrations after it
    /// ([`Store::migrate`] later applies the rest).
    pub async fn migrate_up_to(&self, version: i64) -> Result<(), StoreError> {
        let upto: Vec<sqlx::migrate::Migration> =
            crate::migrator(self.backend()).iter().filter(|m| m.version <= version).cloned().collect();
        let m = sqlx::migrate::Migrator { migrations: std::borrow::Cow::Owned(upto), ..sqlx::migrate::Migrator::DEFAULT };
        m.run(self.pool()).await.map_err(|e| StoreError::Migrate(e.to_string()))
    }

    /// Holds up to `n` connections of the pool at once, so that it opens
    /// new ones, then gives them all back; answers how many it got, each
    /// waited for at most `within` (test support for what the pool does
    /// with connections opened in a given state of the database).
    pub async fn hold_connections(&self, n: usize, within: std::time::Duration) -> usize {
        let mut held = Vec::new();
        for _ in 0..n {
            if let Ok(Ok(c)) = tokio::time::timeout(within, self.pool().acquire()).await {
                held.push(c);
            }
        }
        held.len()
    }
}

#[cfg(test)]
mod stale_tests {
    use super::is_stale_test_database;

    #[test]
    fn old_test_databases_are_stale_and_others_are_kept() {
        let now = 1_800_000_000;
        assert!(is_stale_test_database(&format!("cbtest_{}_abc", now - 7 * 3600), now));
        assert!(!is_stale_test_database(&format!("cbtest_{}_abc", now - 60), now));
        assert!(is_stale_test_database("cbtest_c42eb9569284445ab3f12ad98f296b9a", now), "the old naming");
        assert!(!is_stale_test_database("postgres", now));
        assert!(!is_stale_test_database("cloudbroker", now));
    }
}
