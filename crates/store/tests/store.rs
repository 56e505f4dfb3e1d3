//! The store suite: runs on SQLite always and on PostgreSQL when
//! CLOUDBROKER_TEST_POSTGRES_URL is set.

use cloudbroker_store::{store_test, Backend, Store};

store_test!(migrations_apply_and_are_idempotent, |s: Store| async move {
    let applied = s.applied_migrations().await.unwrap();
    assert_eq!(applied.len(), s.known_migrations());
    assert!(!applied.is_empty());
    s.migrate().await.unwrap();
    assert_eq!(s.applied_migrations().await.unwrap(), applied);
    s.ping().await.unwrap();
});

store_test!(params_round_trip_with_origin_and_version, |s: Store| async move {
    assert!(s.list_params().await.unwrap().is_empty());
    assert_eq!(s.config_version().await.unwrap(), 0);
    let v1 = s
        .put_params(&[("quota.enable".into(), Some("true".into())), ("a.region".into(), Some("eu-west-1".into()))], "super")
        .await
        .unwrap();
    let p = s.list_params().await.unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].key.as_str(), p[0].value.as_str(), p[0].updated_by.as_str()), ("a.region", "eu-west-1", "super"));
    let v2 = s.put_params(&[("a.region".into(), None), ("quota.enable".into(), Some("false".into()))], "admin2").await.unwrap();
    assert!(v2 > v1);
    let p = s.list_params().await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].value.as_str(), p[0].updated_by.as_str()), ("false", "admin2"));
    assert_eq!(s.config_version().await.unwrap(), v2);
});

store_test!(leases_are_exclusive_and_expire, |s: Store| async move {
    assert!(s.try_lease("reconcile:a", "r1", 60_000).await.unwrap());
    assert!(!s.try_lease("reconcile:a", "r2", 60_000).await.unwrap());
    assert!(s.try_lease("reconcile:a", "r1", 60_000).await.unwrap(), "renewal by the holder");
    assert_eq!(s.lease_holder("reconcile:a").await.unwrap().as_deref(), Some("r1"));
    assert!(s.try_lease("reconcile:b", "r2", 1).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(s.try_lease("reconcile:b", "r1", 60_000).await.unwrap(), "expired lease is taken over");
    s.release_lease("reconcile:a", "r2").await.unwrap();
    assert_eq!(s.lease_holder("reconcile:a").await.unwrap().as_deref(), Some("r1"), "only the holder releases");
    s.release_lease("reconcile:a", "r1").await.unwrap();
    assert!(s.try_lease("reconcile:a", "r2", 60_000).await.unwrap());
});

store_test!(concurrent_lease_has_one_winner, |s: Store| async move {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.try_lease("job", &format!("r{i}"), 60_000).await.unwrap() }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
});

store_test!(broker_id_is_stable, |s: Store| async move {
    let a = s.broker_id().await.unwrap();
    assert_eq!(a.len(), 12);
    assert_eq!(s.broker_id().await.unwrap(), a);
});

#[test]
fn backend_from_url() {
    assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
    assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
    assert_eq!(Backend::from_url("postgresql://u@h/db").unwrap(), Backend::Postgres);
    let e = Backend::from_url("mysql://u:pw@h/db").unwrap_err().to_string();
    assert!(e.contains("unsupported database URL scheme 'mysql:'"), "{e}");
    assert!(!e.contains("pw"), "password is redacted: {e}");
}

#[tokio::test]
async fn sqlite_file_and_directory_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/broker.db");
    let s = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    s.ping().await.unwrap();
    assert!(path.exists());
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_password() {
    let e = Store::connect("postgres://u:hunter2@127.0.0.1:1/db").await.unwrap_err().to_string();
    assert!(e.starts_with("cannot connect to database postgres://u:***@127.0.0.1:1/db"), "{e}");
    assert!(!e.contains("hunter2"));
}
