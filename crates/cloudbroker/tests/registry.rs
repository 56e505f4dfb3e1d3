//! The connector registry: files and UI values, origins, precedence, reload,
//! with the connector kinds the binary ships (`cloudbroker::connectors()`).

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use cloudbroker_core::registry::{ConfigChangeError, Origin, Registry, Status};
use cloudbroker_store::testing::TestDb;
use cloudbroker_store::{store_test, Store};
use std::path::Path;
use std::sync::Arc;

async fn registry(store: Store, dir: &Path) -> Arc<Registry> {
    Registry::load(store, dir, cloudbroker::connectors()).await.unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

store_test!(files_and_ui_compose_with_origins, |store: Store| async move {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = sb-file:sandbox\nsb-file.boot.delay.ms = 10\n");
    let reg = registry(store, dir.path()).await;
    let snap = reg.snapshot();
    assert_eq!(snap.instances.len(), 1);
    let i = snap.instance("sb-file").unwrap();
    assert_eq!(i.status, Status::Ready);
    assert!(matches!(i.declared_by, Origin::File { line: 1, .. }));
    let p = i.params.iter().find(|p| p.key == "sb-file.boot.delay.ms").unwrap();
    assert_eq!(p.value.as_deref(), Some("10"));
    assert!(matches!(&p.origin, Origin::File { line: 2, .. }));
    let d = i.params.iter().find(|p| p.key == "sb-file.max.iaas.workers").unwrap();
    assert_eq!((d.value.as_deref(), &d.origin), (Some("20"), &Origin::Default));

    // The UI declares another instance and sets a parameter of the file's instance.
    let snap = reg
        .set_params(
            &[
                ("cloud.connector.class".into(), Some("sb-ui:sandbox".into())),
                ("sb-ui.failure.rate".into(), Some("0.5".into())),
                ("sb-file.max.iaas.workers".into(), Some("7".into())),
                ("quota.enable".into(), Some("true".into())),
            ],
            "super",
        )
        .await
        .unwrap();
    assert_eq!(snap.instances.len(), 2);
    let ui = snap.instance("sb-ui").unwrap();
    assert!(matches!(&ui.declared_by, Origin::Ui { updated_by, .. } if updated_by == "super"));
    let w = snap.instance("sb-file").unwrap().params.iter().find(|p| p.key == "sb-file.max.iaas.workers").unwrap().clone();
    assert_eq!(w.value.as_deref(), Some("7"));
    assert!(matches!(w.origin, Origin::Ui { .. }));
    assert!(snap.system_bool("quota.enable"));
});

store_test!(files_win_and_ui_cannot_change_file_keys, |store: Store| async move {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = s:sandbox\n");
    let reg = registry(store.clone(), dir.path()).await;
    reg.set_params(&[("s.boot.delay.ms".into(), Some("99".into()))], "super").await.unwrap();

    // Now a file sets the same key: the file wins, the UI value is kept as overridden.
    write(dir.path(), "a.conf", "cloud.connector.class = s:sandbox\ns.boot.delay.ms = 5\n");
    let snap = reg.reload().await.unwrap();
    let p = snap.instance("s").unwrap().params.iter().find(|p| p.key == "s.boot.delay.ms").unwrap().clone();
    assert_eq!(p.value.as_deref(), Some("5"));
    assert_eq!(p.overridden_ui_value.as_deref(), Some("99"));

    let e = reg.set_params(&[("s.boot.delay.ms".into(), Some("1".into()))], "super").await.unwrap_err();
    assert!(matches!(&e, ConfigChangeError::ManagedByFile { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("a.conf:2"), "{e}");
    // Nothing stored changed.
    let stored = store.list_params().await.unwrap();
    assert_eq!(stored.iter().find(|p| p.key == "s.boot.delay.ms").unwrap().value, "99");
});

store_test!(bad_changes_are_refused_whole, |store: Store| async move {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = s:sandbox\n");
    let reg = registry(store.clone(), dir.path()).await;
    let before = store.list_params().await.unwrap();
    let e = reg
        .set_params(&[("quota.enable".into(), Some("true".into())), ("s.max.iaas.workers".into(), Some("abc".into()))], "super")
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "bad value for 's.max.iaas.workers': 'abc' is not an integer");
    assert_eq!(store.list_params().await.unwrap(), before, "nothing stored");
    let e = reg.set_params(&[("s.nope".into(), Some("1".into()))], "super").await.unwrap_err();
    assert!(matches!(e, ConfigChangeError::UnknownKey(_)));
    let e = reg.set_params(&[("cloud.connector.class".into(), Some("x:azure".into()))], "super").await.unwrap_err();
    assert!(e.to_string().contains("unknown connector kind 'azure'"), "{e}");
});

store_test!(ui_declaration_conflicting_with_file_is_reported, |store: Store| async move {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = x:sandbox\n");
    let reg = registry(store, dir.path()).await;
    let snap = reg.set_params(&[("cloud.connector.class".into(), Some("x:ec2".into()))], "super").await.unwrap();
    assert_eq!(snap.instance("x").unwrap().kind.as_str(), "sandbox");
    assert!(snap.errors.iter().any(|e| e.contains("instance 'x' is declared as ec2 in the UI and as sandbox at")), "{:?}", snap.errors);
});

store_test!(missing_required_and_reload_keeps_connectors, |store: Store| async move {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = s:sandbox\n");
    let reg = registry(store.clone(), dir.path()).await;
    let snap = reg.set_params(&[("cloud.connector.class".into(), Some("aws:ec2".into()))], "super").await.unwrap();
    match &snap.instance("aws").unwrap().status {
        Status::Error { errors } => assert!(errors.iter().any(|e| e.contains("required parameter 'aws.region' is not set")), "{errors:?}"),
        s => panic!("{s:?}"),
    }
    let c1 = snap.instance("s").unwrap().connector.clone().unwrap();
    let snap2 = reg.reload().await.unwrap();
    let c2 = snap2.instance("s").unwrap().connector.clone().unwrap();
    assert!(Arc::ptr_eq(&c1, &c2), "unchanged instance keeps its connector");
    write(dir.path(), "a.conf", "cloud.connector.class = s:sandbox\ns.boot.delay.ms = 1\n");
    let snap3 = reg.reload().await.unwrap();
    assert!(!Arc::ptr_eq(&c1, snap3.instance("s").unwrap().connector.as_ref().unwrap()), "changed instance is rebuilt");
});

store_test!(other_replica_changes_are_picked_up, |store: Store| async move {
    let dir = tempfile::tempdir().unwrap();
    let a = registry(store.clone(), dir.path()).await;
    let b = registry(store.clone(), dir.path()).await;
    a.set_params(&[("cloud.connector.class".into(), Some("late:sandbox".into()))], "super").await.unwrap();
    assert!(b.snapshot().instance("late").is_none());
    assert!(b.reload_if_changed().await.unwrap());
    assert!(b.snapshot().instance("late").is_some());
    assert!(!b.reload_if_changed().await.unwrap());
});

#[tokio::test]
async fn file_errors_are_visible_in_snapshot() {
    let db = TestDb::sqlite().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = good:sandbox, bad:nope\n");
    let reg = registry(db.store.clone(), dir.path()).await;
    let snap = reg.snapshot();
    assert_eq!(snap.instances.len(), 1);
    assert_eq!(snap.file_errors.len(), 1);
    assert!(snap.file_errors[0].contains("a.conf:1: entry 'bad:nope'"), "{:?}", snap.file_errors);
}

/// The cloud image id `linux` resolves to on instance `s`.
async fn id_on(imgs: &cloudbroker_core::images::Images) -> Result<String, cloudbroker_core::ServiceError> {
    use cloudbroker_core::testing::{image, instance};
    imgs.resolve(&image("linux"), &instance("s")).await.map(|r| r.image_id)
}

store_test!(image_catalogue_follows_the_writes_of_every_replica, |store: Store| async move {
    use cloudbroker_core::images::{ImageMapping, ImageSpec, Images};
    use cloudbroker_core::testing::{image, instance};
    use cloudbroker_core::{Actor, ServiceError};
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.conf", "cloud.connector.class = s:sandbox\n");
    // Two replicas: each its own registry and image service, one database.
    let (ra, rb) = (registry(store.clone(), dir.path()).await, registry(store.clone(), dir.path()).await);
    let (a, b) = (Images::new(store.clone(), ra.clone()), Images::new(store.clone(), rb));
    let spec = |id: &str| ImageSpec {
        name: image("linux"),
        description: String::new(),
        os: "linux".into(),
        parent: None,
        mappings: [(instance("s"), ImageMapping { image_id: id.into(), instance_type: None, security_group: None })].into(),
    };
    // Both replicas cache the empty catalogue first.
    assert!(a.catalogue().await.unwrap().images().is_empty());
    assert!(matches!(id_on(&b).await, Err(ServiceError::NotFound(_))));

    a.put(&Actor::system(), spec("ami-1"), true).await.unwrap();
    assert_eq!(id_on(&b).await.unwrap(), "ami-1", "another replica's create is seen at once");
    // Unchanged: the same catalogue, not a fresh read.
    let (c1, c2) = (b.catalogue().await.unwrap(), b.catalogue().await.unwrap());
    assert!(std::ptr::eq(c1.images().as_ptr(), c2.images().as_ptr()));

    b.put(&Actor::system(), spec("ami-2"), false).await.unwrap();
    assert_eq!(id_on(&a).await.unwrap(), "ami-2", "another replica's replace is seen at once");
    b.delete(&Actor::system(), &image("linux")).await.unwrap();
    assert!(matches!(a.get(&image("linux")).await, Err(ServiceError::NotFound(_))), "another replica's delete is seen at once");

    // File images come with the configuration snapshot: a reload shows them.
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    write(&dir.path().join("images"), "linux.conf", "linux.s = ami-from-file\n");
    assert!(matches!(id_on(&a).await, Err(ServiceError::NotFound(_))));
    ra.reload().await.unwrap();
    assert_eq!(id_on(&a).await.unwrap(), "ami-from-file");
});
