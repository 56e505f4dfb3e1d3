//! Every state a VM record takes is appended to its history, in the same
//! transaction, stamped with the store's clock, whichever write made it
//! (an insert, the broker's own update, an observation of the cloud); a
//! write that leaves the state as it was appends nothing. Both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use cloudbroker_model::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, Tags, UserName, VmId, VmStatus};
use cloudbroker_store::metering::StateChange;
use cloudbroker_store::vms::{VmRow, VmUpdate};
use cloudbroker_store::{store_test, Store};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn row(id: &str) -> VmRow {
    VmRow {
        id: VmId::from_stored(id.to_string()),
        launch_id: LaunchId::generate(),
        launch_index: 0,
        user: UserName::from_stored("alice".into()),
        project: ProjectName::from_stored("alice".into()),
        instance: InstanceName::parse("sb").unwrap(),
        credential_id: CredentialId::from_stored(String::new()),
        client_token: ClientToken::from_stored(format!("t-{id}")),
        name: "n".into(),
        image: "img".into(),
        image_id: "ami-1".into(),
        instance_type: "t2.micro".into(),
        state: VmStatus::Pending,
        cloud_id: Some(format!("i-{id}")),
        private_ip: None,
        public_ip: None,
        error: None,
        tags: Tags::default(),
        key_name: None,
        created_at: t0(),
        updated_at: t0(),
        version: 0,
        lease: None,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

store_test!(state_changes_are_appended_with_the_clock, |s: Store| async move {
    s.create_user("alice", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", false).await.unwrap();
    let clock = s.clock().clone();
    clock.set(at(0));
    let r = row("vm-h1");
    assert!(s.insert_adopted_vm(&r).await.unwrap());
    clock.set(at(10));
    s.update_vm(&VmUpdate::state(&r.id, VmStatus::Running)).await.unwrap();
    // The same state again (a refresh): nothing appended.
    clock.set(at(20));
    s.update_vm(&VmUpdate::state(&r.id, VmStatus::Running)).await.unwrap();
    // An observation of the cloud at the record's version.
    clock.set(at(3600));
    let version = s.get_vm(&r.id).await.unwrap().unwrap().version;
    assert!(s.observe_vm(&r.id, version, VmStatus::Stopped, None, None, None).await.unwrap());
    // A stale observation writes nothing and appends nothing.
    clock.set(at(3700));
    assert!(!s.observe_vm(&r.id, version, VmStatus::Terminated, None, None, None).await.unwrap());
    let h = s.vm_state_history(&r.id).await.unwrap();
    assert_eq!(
        h,
        vec![
            StateChange { state: VmStatus::Pending, at: at(0) },
            StateChange { state: VmStatus::Running, at: at(10) },
            StateChange { state: VmStatus::Stopped, at: at(3600) },
        ]
    );
    // Another VM's history is its own.
    assert!(s.vm_state_history(&VmId::from_stored("vm-none".into())).await.unwrap().is_empty());
});
