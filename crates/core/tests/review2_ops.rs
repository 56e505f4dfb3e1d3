//! Operations defects of the second review, at the service level: a key
//! rotation where the key file cannot be written changes nothing (no key
//! only in memory, so what is saved afterwards still opens after a
//! restart); replicas with separate key files say which key they lack
//! (`MasterKeyUnknown`, readiness false, a metric) instead of failing with
//! internal errors; the sandbox's world store going away is the database
//! being unavailable, not a cloud error. Each runs on SQLite and, when
//! configured, PostgreSQL.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::testing::{instance, user};
use cloudbroker_core::vault::Scope;
use cloudbroker_core::{Actor, Broker, Config, ServiceError};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};

async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return None;
    };
    Some(TestDb::create_postgres_database(&base).await.unwrap())
}

fn conf(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("connectors.d")).unwrap();
    std::fs::write(dir.join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\n").unwrap();
}

async fn start(dir: &std::path::Path, db: Option<String>) -> Broker {
    conf(dir);
    Broker::start(Config::for_tests(dir, db), common::connectors()).await.unwrap()
}

async fn save(b: &Broker, name: &str, secret: &str) {
    let who = user(name);
    if b.identity.create_user(&Actor::system(), &who, &cloudbroker_connector_api::SecretString::new("pw-123456789"), false).await.is_err() {
        // Already there (a second save).
    }
    b.vault.put(&Actor::system(), Scope::User(&who), &instance("sb"), &format!("AKIA{name}0000"), secret, false).await.unwrap();
}

async fn opened(b: &Broker, name: &str) -> Result<String, ServiceError> {
    b.vault.credentials_for(&user(name), &instance("sb")).await.map(|(c, _)| c.secret_access_key.expose().to_string())
}

async fn rotation_where_the_key_file_cannot_be_written_changes_nothing(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), db.clone()).await;
    save(&b, "alice", "alice-secret").await;
    let ids = b.vault.key_ids();
    let key_file = dir.path().join("master.key");
    let before = std::fs::read(&key_file).unwrap();
    // The key file cannot be replaced: the temporary file a write makes
    // next to it cannot be created (a directory is in its way; unlike
    // permission bits, this stops root too).
    std::fs::create_dir(key_file.with_extension("tmp")).unwrap();
    let e = b.vault.rotate(&Actor::system()).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("cannot rotate") && msg.contains(&key_file.display().to_string()) && msg.contains("cannot be written"), "{msg}");
    assert_eq!(b.vault.key_ids(), ids, "the in-memory key set changed");
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
    // Saved after the refused rotation: sealed with a key that is on disk.
    save(&b, "bob", "bob-secret").await;
    b.close().await;
    // A restart (any replica) opens everything.
    let b = Broker::start(Config::for_tests(dir.path(), Some(b.config.database_url.clone())), common::connectors()).await.unwrap();
    assert_eq!(opened(&b, "alice").await.unwrap(), "alice-secret");
    assert_eq!(opened(&b, "bob").await.unwrap(), "bob-secret");
    // Writable again: the rotation goes through.
    std::fs::remove_dir(key_file.with_extension("tmp")).unwrap();
    let r = b.vault.rotate(&Actor::system()).await.unwrap();
    assert_eq!(r.resealed, 2);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_refused_where_key_file_is_not_writable_sqlite() {
    rotation_where_the_key_file_cannot_be_written_changes_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_refused_where_key_file_is_not_writable_postgres() {
    if let Some(url) = postgres_url().await {
        rotation_where_the_key_file_cannot_be_written_changes_nothing(Some(url)).await;
    }
}

async fn a_replica_lacking_the_current_key_says_so(db: Option<String>) {
    cloudbroker_core::metrics::install();
    let (da, db_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), db).await;
    save(&a, "alice", "alice-secret").await;
    // Replica B: same database, its own copy of the key file.
    std::fs::copy(da.path().join("master.key"), db_dir.path().join("master.key")).unwrap();
    let b = start(db_dir.path(), Some(a.config.database_url.clone())).await;
    assert_eq!(opened(&b, "alice").await.unwrap(), "alice-secret");
    assert!(b.readiness().await.ready);
    let rotation = a.vault.rotate(&Actor::system()).await.unwrap();
    // A re-sealed everything under a key only its own file holds.
    assert_eq!(opened(&a, "alice").await.unwrap(), "alice-secret");
    let e = opened(&b, "alice").await.unwrap_err();
    match &e {
        ServiceError::MasterKeyUnknown { key_id } => assert_eq!(key_id, &rotation.current_key),
        other => panic!("expected MasterKeyUnknown, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&rotation.current_key) && msg.contains("key file"), "{msg}");
    let r = b.readiness().await;
    assert!(!r.ready, "B cannot open the stored credentials, yet reports ready");
    let why = r.master_keys.unwrap();
    assert!(why.contains(&rotation.current_key) && why.contains("master.key"), "{why}");
    assert!(a.readiness().await.ready);
    let metrics = cloudbroker_core::metrics::render();
    assert!(metrics.lines().any(|l| l.starts_with("cloudbroker_vault_unknown_key_total") && !l.ends_with(" 0")), "{metrics}");
    assert!(metrics.contains("cloudbroker_vault_missing_keys"), "{metrics}");
    // Given the current file, B serves again.
    std::fs::copy(da.path().join("master.key"), db_dir.path().join("master.key")).unwrap();
    assert_eq!(opened(&b, "alice").await.unwrap(), "alice-secret");
    assert!(b.readiness().await.ready);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_with_stale_key_file_reports_the_missing_key_sqlite() {
    a_replica_lacking_the_current_key_says_so(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_with_stale_key_file_reports_the_missing_key_postgres() {
    if let Some(url) = postgres_url().await {
        a_replica_lacking_the_current_key_says_so(Some(url)).await;
    }
}

/// The sandbox keeps its world in the broker's database: that database going
/// away is the broker's own unavailability (503 `database_unavailable`,
/// retry later), not a cloud error (502 `cloud_error`).
async fn sandbox_database_errors_are_the_database_being_unavailable(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), db).await;
    let sandbox = b.registry.snapshot().instance("sb").unwrap().connector.clone().unwrap();
    let creds = cloudbroker_connector_api::Credentials::new("sandbox-alice", "sandbox");
    sandbox.list_key_pairs(&creds).await.unwrap();
    b.close().await;
    let e = sandbox.list_key_pairs(&creds).await.unwrap_err();
    assert!(e.to_string().contains("unavailable"), "{e}");
    let e = ServiceError::from(e);
    assert!(matches!(e, ServiceError::DatabaseUnavailable(_)), "{e:?}");
    assert_eq!(e.to_string(), "the broker's database is unavailable; try again in a few seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_database_errors_map_to_database_unavailable_sqlite() {
    sandbox_database_errors_are_the_database_being_unavailable(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_database_errors_map_to_database_unavailable_postgres() {
    if let Some(url) = postgres_url().await {
        sandbox_database_errors_are_the_database_being_unavailable(Some(url)).await;
    }
}
