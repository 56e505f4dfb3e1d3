//! The master key guards start-up: a readable, wrong or missing key file stops
//! the broker with a clear message and changes nothing.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::master_keys::MasterKeys;
use cloudbroker_core::testing::{instance, user};
use cloudbroker_core::vault::Scope;
use cloudbroker_core::{Actor, Broker, Config};
use std::os::unix::fs::PermissionsExt;

async fn seeded(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir.join("connectors.d")).unwrap();
    std::fs::write(dir.join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\n").unwrap();
    let b = Broker::start(Config::for_tests(dir, None), common::connectors()).await.unwrap();
    b.identity.create_user(&Actor::system(), &user("alice"), &SecretString::new("alice-password"), false).await.unwrap();
    b.vault.put(&Actor::system(), Scope::User(&user("alice")), &instance("sb"), "AKIA1234567890", "sekrit", false).await.unwrap();
    let rows = b.store().all_credentials().await.unwrap();
    b.store().close().await;
    rows.into_iter().map(|r| (r.id, r.secret_sealed)).collect()
}

async fn stored(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let s = cloudbroker_store::Store::open(&cloudbroker_store::sqlite_url_for(dir)).await.unwrap();
    let rows = s.all_credentials().await.unwrap();
    s.close().await;
    rows.into_iter().map(|r| (r.id, r.secret_sealed)).collect()
}

#[tokio::test]
async fn key_file_generated_with_0600() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path()).await;
    let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn world_readable_key_stops_start() {
    let dir = tempfile::tempdir().unwrap();
    let before = seeded(dir.path()).await;
    let key = dir.path().join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Broker::start(Config::for_tests(dir.path(), None), common::connectors()).await.err().unwrap().to_string();
    assert!(e.contains("readable by group or others") && e.contains("chmod 600"), "{e}");
    assert_eq!(stored(dir.path()).await, before);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let b = Broker::start(Config::for_tests(dir.path(), None), common::connectors()).await.unwrap();
    assert_eq!(b.vault.credentials_for(&user("alice"), &instance("sb")).await.unwrap().0.secret_access_key.expose(), "sekrit");
}

#[tokio::test]
async fn wrong_key_stops_start_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let before = seeded(dir.path()).await;
    let key = dir.path().join("master.key");
    let original = std::fs::read(&key).unwrap();
    let other = tempfile::tempdir().unwrap();
    MasterKeys::load_or_create(&other.path().join("k")).unwrap();
    let ids = MasterKeys::load(&key).unwrap().ids();
    // Same key id, different key material.
    let text = std::fs::read_to_string(other.path().join("k")).unwrap();
    let other_id = MasterKeys::load(&other.path().join("k")).unwrap().ids()[0].clone();
    std::fs::write(&key, text.replace(&other_id, &ids[0])).unwrap();
    let e = Broker::start(Config::for_tests(dir.path(), None), common::connectors()).await.err().unwrap().to_string();
    assert!(e.contains("cannot open stored credentials"), "{e}");
    assert_eq!(stored(dir.path()).await, before);

    // A key file with none of the ids in use.
    std::fs::write(&key, &text).unwrap();
    let e = Broker::start(Config::for_tests(dir.path(), None), common::connectors()).await.err().unwrap().to_string();
    assert!(e.contains("not in the master key file"), "{e}");

    // Missing key file with sealed data: refused, and no new key is made.
    std::fs::remove_file(&key).unwrap();
    let e = Broker::start(Config::for_tests(dir.path(), None), common::connectors()).await.err().unwrap().to_string();
    assert!(e.contains("missing, but 1 stored credential(s)"), "{e}");
    assert!(!key.exists());
    assert_eq!(stored(dir.path()).await, before);

    std::fs::write(&key, original).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Broker::start(Config::for_tests(dir.path(), None), common::connectors()).await.is_ok());
}
