//! EC2 access keys in their own table, on SQLite always and on PostgreSQL
//! when CLOUDBROKER_TEST_POSTGRES_URL is set: migration 0021 carries every
//! access key stored as a credential row over (sealed bytes, owner, state,
//! times) and leaves the other credentials alone; the table's operations
//! (states, uses, re-sealing, the key ids in use) work on both backends.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_store::access_keys::{NewAccessKey, ResealKey, ACCESS_KEY_SCOPE, KEY_ACTIVE, KEY_DISABLED};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use cloudbroker_store::{store_test, Backend, Store};
use std::path::Path;

/// The migration that made the table.
const TABLE_MIGRATION: i64 = 21;

/// Applies this backend's migrations older than [`TABLE_MIGRATION`] to the
/// empty database of `url` (from the same files the store embeds, so the
/// store later sees them as applied and runs only the rest).
async fn migrate_before_the_table(url: &str, backend: Backend) {
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(backend.as_str());
    let older = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&all).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < TABLE_MIGRATION {
            std::fs::copy(&p, older.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(older.path()).await.unwrap();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    migrator.run(&pool).await.unwrap();
    // What the broker stored before 0021: a user, an access key of theirs
    // as a credential row (the key id in `instance`), a cloud credential.
    sqlx::query("INSERT INTO users (name, password_hash, is_admin, created_at, updated_at) VALUES ('alice', 'h', 0, 1000, 1000)")
        .execute(&pool)
        .await
        .unwrap();
    let insert = "INSERT INTO credentials (id, scope, owner, instance, access_key_hint, access_key_sealed, secret_sealed, key_id, status, \
                  status_message, checked_at, created_at, updated_at, expires_at) VALUES ($1, $2, 'alice', $3, $4, $5, $6, 'k1', $7, '', $8, 1000, 2000, $9)";
    sqlx::query(insert)
        .bind("c1")
        .bind(ACCESS_KEY_SCOPE)
        .bind("AKIAOLDKEY0000000001")
        .bind("AKIAOLDKEY0000000001")
        .bind(vec![1u8, 2, 3])
        .bind(vec![4u8, 5, 6, 7])
        .bind(KEY_DISABLED)
        .bind(Some(3000i64))
        .bind(Some(9_000_000_000_000i64))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(insert)
        .bind("c2")
        .bind("user")
        .bind("sb")
        .bind("****MPLE")
        .bind(vec![8u8])
        .bind(vec![9u8])
        .bind("verified")
        .bind(None::<i64>)
        .bind(None::<i64>)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn carries_access_keys_over(url: &str, backend: Backend) {
    sqlx::any::install_default_drivers();
    migrate_before_the_table(url, backend).await;
    let s = Store::open(url).await.unwrap();
    assert_eq!(s.applied_migrations().await.unwrap().len(), s.known_migrations());
    let k = s.access_key("AKIAOLDKEY0000000001").await.unwrap().expect("the access key was carried over");
    assert_eq!((k.user_name.as_str(), k.state.as_str(), k.master_key_id.as_str()), ("alice", KEY_DISABLED, "k1"));
    assert_eq!(k.secret_sealed, vec![4u8, 5, 6, 7]);
    assert_eq!(
        (k.created_at.timestamp_millis(), k.updated_at.timestamp_millis(), k.last_used_at.map(|t| t.timestamp_millis())),
        (1000, 2000, Some(3000))
    );
    assert_eq!(k.expires_at.map(|t| t.timestamp_millis()), Some(9_000_000_000_000));
    assert_eq!(s.list_access_keys("alice").await.unwrap().len(), 1);
    // Gone from the credentials; the cloud credential stays.
    assert!(s.list_credentials(ACCESS_KEY_SCOPE, None).await.unwrap().is_empty());
    let left: Vec<String> = s.all_credentials().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(left, vec!["c2".to_string()]);
    // Its sealing key still counts as in use (a rotation must not drop it).
    assert_eq!(s.key_ids_in_use().await.unwrap(), vec!["k1".to_string()]);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_carries_access_keys_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    carries_access_keys_over(&url, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_carries_access_keys_over_postgres() {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return;
    };
    let url = TestDb::create_postgres_database(&base).await.unwrap();
    carries_access_keys_over(&url, Backend::Postgres).await;
}

store_test!(access_keys_change_state_use_and_sealing, |s: Store| async move {
    s.create_user("bob", "h", false).await.unwrap();
    for (id, key) in [("AKIABOB0000000000002", "m1"), ("AKIABOB0000000000001", "m1")] {
        s.insert_access_key(&NewAccessKey {
            access_key_id: id,
            user_name: "bob",
            project: "bob",
            secret_sealed: &[1, 2],
            master_key_id: key,
            expires_at_ms: None,
        })
        .await
        .unwrap();
    }
    let keys = s.list_access_keys("bob").await.unwrap();
    assert_eq!(keys.iter().map(|k| k.access_key_id.as_str()).collect::<Vec<_>>(), ["AKIABOB0000000000001", "AKIABOB0000000000002"]);
    assert!(keys.iter().all(|k| k.state == KEY_ACTIVE && k.last_used_at.is_none() && k.expires_at.is_none()));
    // Another user's key id is not theirs to change.
    assert!(!s.set_access_key_state("alice", "AKIABOB0000000000001", KEY_DISABLED).await.unwrap());
    assert!(s.set_access_key_state("bob", "AKIABOB0000000000001", KEY_DISABLED).await.unwrap());
    assert_eq!(s.set_user_access_keys_state("bob", KEY_ACTIVE, KEY_DISABLED).await.unwrap(), 1);
    s.touch_access_key("AKIABOB0000000000001", 5000).await.unwrap();
    assert_eq!(s.access_key("AKIABOB0000000000001").await.unwrap().unwrap().last_used_at.map(|t| t.timestamp_millis()), Some(5000));
    s.clear_access_key_use("AKIABOB0000000000001").await.unwrap();
    assert!(s.access_key("AKIABOB0000000000001").await.unwrap().unwrap().last_used_at.is_none());
    // Re-sealing changes a row only while it holds what was read.
    let reseal = |id: &str, previous: Vec<u8>| ResealKey {
        access_key_id: id.into(),
        previous_secret_sealed: previous,
        secret_sealed: vec![7, 7],
        master_key_id: "m2".into(),
    };
    let n = s.reseal_access_keys(&[reseal("AKIABOB0000000000001", vec![1, 2]), reseal("AKIABOB0000000000002", vec![9])]).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.access_key_master_key_ids().await.unwrap(), ["m1", "m2"]);
    assert_eq!(s.key_ids_in_use().await.unwrap(), ["m1", "m2"]);
    assert!(s.delete_access_key("bob", "AKIABOB0000000000002").await.unwrap());
    assert!(!s.delete_access_key("bob", "AKIABOB0000000000002").await.unwrap());
    assert_eq!(s.all_access_keys().await.unwrap().len(), 1);
});

store_test!(access_keys_act_in_their_project, |s: Store| async move {
    s.create_user("bob", "h", false).await.unwrap();
    s.create_user("carol", "h", false).await.unwrap();
    for (id, user, project) in
        [("AKIABOB0000000000001", "bob", "bob"), ("AKIABOB0000000000002", "bob", "team-a"), ("AKIACAROL00000000001", "carol", "team-a")]
    {
        s.insert_access_key(&NewAccessKey {
            access_key_id: id,
            user_name: user,
            project,
            secret_sealed: &[1],
            master_key_id: "m1",
            expires_at_ms: None,
        })
        .await
        .unwrap();
    }
    assert_eq!(s.access_key("AKIABOB0000000000002").await.unwrap().unwrap().project, "team-a");
    assert_eq!(s.access_key("AKIABOB0000000000001").await.unwrap().unwrap().project, "bob");
    // By user: every key of theirs, whatever its project.
    let bobs = s.list_access_keys("bob").await.unwrap();
    assert_eq!(
        bobs.iter().map(|k| (k.access_key_id.as_str(), k.project.as_str())).collect::<Vec<_>>(),
        [("AKIABOB0000000000001", "bob"), ("AKIABOB0000000000002", "team-a")]
    );
    // By project: every member's key acting there.
    let team = s.list_project_access_keys("team-a").await.unwrap();
    assert_eq!(
        team.iter().map(|k| (k.access_key_id.as_str(), k.user_name.as_str())).collect::<Vec<_>>(),
        [("AKIABOB0000000000002", "bob"), ("AKIACAROL00000000001", "carol")]
    );
    assert!(s.list_project_access_keys("team-b").await.unwrap().is_empty());
});

store_test!(a_key_holder_is_read_with_its_role_in_one_query, |s: Store| async move {
    use cloudbroker_model::{ProjectName, ProjectRole, UserName};
    let (bob, carol) = (UserName::parse("bob").unwrap(), UserName::parse("carol").unwrap());
    s.create_user("bob", "h", false).await.unwrap();
    s.create_user("carol", "h", false).await.unwrap();
    let team = ProjectName::parse("team-a").unwrap();
    s.create_project(&team, "", "carol", &carol).await.unwrap();
    s.put_project_member(&team, &bob, ProjectRole::Viewer, "carol", None).await.unwrap();
    for (id, project) in [("AKIABOB0000000000001", "bob"), ("AKIABOB0000000000002", "team-a")] {
        s.insert_access_key(&NewAccessKey {
            access_key_id: id,
            user_name: "bob",
            project,
            secret_sealed: &[1],
            master_key_id: "m1",
            expires_at_ms: None,
        })
        .await
        .unwrap();
    }
    let h = s.access_key_holder("AKIABOB0000000000002").await.unwrap().unwrap();
    assert_eq!((h.key.project.as_str(), h.role.as_deref(), h.is_admin, h.disabled), ("team-a", Some("viewer"), false, false));
    // The personal project has its owner row (made with the user).
    let h = s.access_key_holder("AKIABOB0000000000001").await.unwrap().unwrap();
    assert_eq!((h.key.project.as_str(), h.role.as_deref()), ("bob", Some("owner")));
    // The current role, and none once removed; a disabled holder shows.
    s.put_project_member(&team, &bob, ProjectRole::Member, "carol", None).await.unwrap();
    assert_eq!(s.access_key_holder("AKIABOB0000000000002").await.unwrap().unwrap().role.as_deref(), Some("member"));
    s.remove_project_member(&team, &bob, None).await.unwrap();
    assert_eq!(s.access_key_holder("AKIABOB0000000000002").await.unwrap().unwrap().role, None);
    s.set_user_disabled("bob", true).await.unwrap();
    assert!(s.access_key_holder("AKIABOB0000000000002").await.unwrap().unwrap().disabled);
    assert!(s.access_key_holder("AKIANOBODY0000000001").await.unwrap().is_none());
});
