//! The store suite: runs on SQLite always and on PostgreSQL when
//! CLOUDBROKER_TEST_POSTGRES_URL is set.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use cloudbroker_model::{VmId, VmStatus};
use cloudbroker_store::vms::VmUpdate;
use cloudbroker_store::{store_test, Backend, Store};

/// The states the services count against quotas.
const COUNTED: &[VmStatus] = &VmStatus::QUOTA_COUNTED;

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

mod quota {
    use super::*;
    use cloudbroker_model::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, UserName};
    use cloudbroker_store::quota::{Admission, AdmitError, NewVm, QuotaKind};

    fn user_name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    fn sb() -> InstanceName {
        InstanceName::parse("sb").unwrap()
    }

    async fn user(s: &Store, name: &str) {
        s.create_user(name, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", false).await.unwrap();
    }

    fn vms(n: usize, tag: &str) -> Vec<NewVm> {
        (0..n)
            .map(|i| NewVm {
                id: VmId::from_stored(format!("{tag}-{i}")),
                launch_index: i as i64,
                name: format!("vm-{i}"),
                image: "img".into(),
                image_id: "ami-1".into(),
                instance_type: "t2.micro".into(),
                tags: "{}".into(),
                key_name: None,
            })
            .collect()
    }

    async fn launch(s: &Store, user: &str, token: &str, n: usize, limit: Option<i64>) -> Result<(), AdmitError> {
        let v = vms(n, token);
        let (launch_id, user) = (LaunchId::from_stored(token.to_string()), user_name(user));
        let (credential_id, client_token) = (CredentialId::from_stored("c".to_string()), ClientToken::from_stored(token.to_string()));
        s.admit_launch(&Admission {
            launch_id: &launch_id,
            user: &user,
            project: &ProjectName::personal(&user),
            instance: &sb(),
            credential_id: &credential_id,
            client_token: &client_token,
            limit,
            project_limit: None,
            member_check: false,
            counted: COUNTED,
            state: VmStatus::Requested,
            lease: None,
            budget: None,
            vms: &v,
            termination_protection: false,
            audit: None,
        })
        .await
    }

    store_test!(hundred_concurrent_launches_admit_exactly_the_quota, |s: Store| async move {
        user(&s, "alice").await;
        let mut tasks = Vec::new();
        for i in 0..100 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { launch(&s, "alice", &format!("t{i}"), 1, Some(10)).await }));
        }
        let mut admitted = 0;
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => admitted += 1,
                Err(AdmitError::Quota { which: QuotaKind::User, limit: 10, current, requested: 1 }) => {
                    assert_eq!(current, 10);
                    refused += 1
                }
                Err(AdmitError::Quota { .. }) => panic!("wrong quota figures"),
                Err(AdmitError::Store(e)) => panic!("store error: {e}"),
                Err(AdmitError::NotActing(r)) => panic!("not acting: {r:?}"),
                Err(AdmitError::Budget { .. }) => panic!("no budget was set"),
            }
        }
        assert_eq!((admitted, refused), (10, 90));
        assert_eq!(s.quota_usage(&user_name("alice"), &sb(), &VmStatus::QUOTA_COUNTED).await.unwrap(), 10);
    });

    store_test!(quota_counts_states_and_multi_vm_requests, |s: Store| async move {
        user(&s, "bob").await;
        launch(&s, "bob", "a", 3, Some(4)).await.unwrap();
        assert!(matches!(
            launch(&s, "bob", "b", 2, Some(4)).await,
            Err(AdmitError::Quota { which: QuotaKind::User, limit: 4, current: 3, requested: 2 })
        ));
        // Terminated VMs free their slots; stopped ones do not.
        s.update_vm(&VmUpdate { cloud_id: Some("i-0"), ..VmUpdate::state(&VmId::from_stored("a-0".into()), VmStatus::Terminated) })
            .await
            .unwrap();
        s.update_vm(&VmUpdate { cloud_id: Some("i-1"), ..VmUpdate::state(&VmId::from_stored("a-1".into()), VmStatus::Stopped) })
            .await
            .unwrap();
        launch(&s, "bob", "b", 2, Some(4)).await.unwrap();
        assert_eq!(s.quota_usage(&user_name("bob"), &sb(), &VmStatus::QUOTA_COUNTED).await.unwrap(), 4);
        // No limit: anything goes; the same client token twice is a conflict.
        launch(&s, "bob", "c", 5, None).await.unwrap();
        assert!(matches!(launch(&s, "bob", "c", 1, None).await, Err(AdmitError::Store(e)) if e.is_unique_violation()));
        s.set_quota_override(&user_name("bob"), &sb(), Some(7)).await.unwrap();
        assert_eq!(s.quota_override(&user_name("bob"), &sb()).await.unwrap(), Some(7));
        s.set_quota_override(&user_name("bob"), &sb(), None).await.unwrap();
        assert_eq!(s.quota_override(&user_name("bob"), &sb()).await.unwrap(), None);
    });

    store_test!(watch_reads_count_and_list_by_state, |s: Store| async move {
        user(&s, "dora").await;
        launch(&s, "dora", "w", 6, None).await.unwrap();
        s.update_vm(&VmUpdate { cloud_id: Some("i-0"), ..VmUpdate::state(&VmId::from_stored("w-0".into()), VmStatus::Running) })
            .await
            .unwrap();
        s.update_vm(&VmUpdate { cloud_id: Some("i-1"), ..VmUpdate::state(&VmId::from_stored("w-1".into()), VmStatus::Running) })
            .await
            .unwrap();
        s.update_vm(&VmUpdate { cloud_id: Some("i-2"), ..VmUpdate::state(&VmId::from_stored("w-2".into()), VmStatus::Pending) })
            .await
            .unwrap();
        s.update_vm(&VmUpdate { cloud_id: Some("i-3"), ..VmUpdate::state(&VmId::from_stored("w-3".into()), VmStatus::Terminated) })
            .await
            .unwrap();
        s.update_vm(&VmUpdate { cloud_id: Some("i-4"), ..VmUpdate::state(&VmId::from_stored("w-4".into()), VmStatus::Stopping) })
            .await
            .unwrap();
        // w-5 stays requested.
        let mut counts =
            s.vm_counts_by_instance(&[VmStatus::Requested, VmStatus::Pending, VmStatus::Running, VmStatus::Stopping]).await.unwrap();
        counts.sort();
        let want: Vec<(String, String, i64)> = [("sb", "pending", 1), ("sb", "requested", 1), ("sb", "running", 2), ("sb", "stopping", 1)]
            .iter()
            .map(|(i, st, n)| (i.to_string(), st.to_string(), *n))
            .collect();
        assert_eq!(counts, want, "terminated VMs are not counted");
        let moving: Vec<String> =
            s.vms_in_states(&[VmStatus::Pending, VmStatus::Stopping]).await.unwrap().into_iter().map(|v| v.id.to_string()).collect();
        assert_eq!(moving, vec!["w-2".to_string(), "w-4".to_string()]);
    });

    #[tokio::test]
    async fn two_stores_on_one_postgres_admit_exactly_the_quota() {
        let Some(db) = cloudbroker_store::testing::TestDb::postgres().await.unwrap() else { return };
        // A second pool on the same database stands for a second replica.
        let other = Store::open(&db.url).await.unwrap();
        user(&db.store, "carol").await;
        let mut tasks = Vec::new();
        for i in 0..100 {
            let s = if i % 2 == 0 { db.store.clone() } else { other.clone() };
            tasks.push(tokio::spawn(async move { launch(&s, "carol", &format!("r{i}"), 1, Some(10)).await.is_ok() }));
        }
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        assert_eq!(admitted, 10);
        assert_eq!(other.quota_usage(&user_name("carol"), &sb(), &VmStatus::QUOTA_COUNTED).await.unwrap(), 10);
    }
}
