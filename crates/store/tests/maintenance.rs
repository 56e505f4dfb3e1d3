//! The store's database chores: the migration status compares a database
//! with the same embedded migrations `migrate` applies (on both backends,
//! creating nothing); a SQLite backup holds every table and restores in
//! place of a database, which is kept aside; a schema newer than the binary
//! is refused; PostgreSQL is sent to pg_dump.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_store::maintenance::MaintenanceError;
use cloudbroker_store::testing::TestDb;
use cloudbroker_store::Store;
use sqlx::Connection;

#[tokio::test]
async fn sqlite_status_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    // No database yet: everything is pending, and nothing is created.
    let missing = format!("sqlite://{}", dir.path().join("none.db").display());
    let s = Store::migration_status(&missing).await.unwrap();
    assert_eq!((s.applied, s.unknown.len()), (0, 0));
    assert_eq!(s.pending.first().map(|m| m.version), Some(1));
    assert!(!dir.path().join("none.db").exists(), "the status creates nothing");

    let db = TestDb::sqlite().await.unwrap();
    let s = Store::migration_status(&db.url).await.unwrap();
    assert!(s.pending.is_empty() && s.unknown.is_empty(), "{s:?}");
    assert_eq!(s.applied, db.store.known_migrations());
    Store::refuse_newer_schema(&db.url).await.unwrap();
    let id = db.store.broker_id().await.unwrap();

    // A backup: private, never overwriting, with every row.
    let backup = dir.path().join("backup.db");
    let b = Store::backup_to(&db.url, &backup).await.unwrap();
    assert_eq!(b.applied, s.applied);
    assert!(b.bytes > 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    let again = Store::backup_to(&db.url, &backup).await.unwrap_err();
    assert!(matches!(again, MaintenanceError::BackupExists { .. }) && again.to_string().contains("never overwrites"), "{again}");

    // Restored over another database only with force; the old one is kept.
    let target = dir.path().join("restored").join("cloudbroker.db");
    let target_url = format!("sqlite://{}", target.display());
    Store::open(&target_url).await.unwrap().close().await;
    let e = Store::restore_from(&target_url, &backup, false).await.unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    let r = Store::restore_from(&target_url, &backup, true).await.unwrap();
    assert_eq!((r.applied, r.pending), (s.applied, 0));
    assert!(dir.path().join("restored").join("cloudbroker.db.pre-restore").exists());
    let restored = Store::open(&target_url).await.unwrap();
    assert_eq!(restored.broker_id().await.unwrap(), id, "the backup holds the rows");
    restored.close().await;

    // A schema from a newer binary is refused, by status and restore alike.
    let backup_url = format!("sqlite://{}", backup.display());
    let mut c = sqlx::AnyConnection::connect(&backup_url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();
    assert_eq!(Store::migration_status(&backup_url).await.unwrap().unknown, vec![9999]);
    let e = Store::refuse_newer_schema(&backup_url).await.unwrap_err();
    assert!(e.to_string().contains("9999") && e.to_string().contains("newer"), "{e}");
    let e = Store::restore_from(&target_url, &backup, true).await.unwrap_err();
    assert!(matches!(e, MaintenanceError::NewerSchema { .. }), "{e}");

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database, not at all, no").unwrap();
    let e = Store::restore_from(&target_url, &junk, true).await.unwrap_err();
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
}

#[tokio::test]
async fn postgres_status_and_no_file_backup() {
    let Some(db) = TestDb::postgres().await.unwrap() else { return };
    let s = Store::migration_status(&db.url).await.unwrap();
    assert!(s.pending.is_empty() && s.unknown.is_empty(), "{s:?}");
    assert_eq!(s.applied, db.store.known_migrations());
    Store::refuse_newer_schema(&db.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = Store::backup_to(&db.url, &dir.path().join("b.db")).await.unwrap_err();
    assert!(e.to_string().contains("pg_dump"), "{e}");
    let e = Store::restore_from(&db.url, &dir.path().join("b.db"), true).await.unwrap_err();
    assert!(e.to_string().contains("pg_dump"), "{e}");
}
