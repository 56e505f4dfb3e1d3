//! The time a state began as the cloud gives it (migration 0027): a state
//! observed with the cloud's time is recorded in the VM's history at that
//! time, clamped between the VM's previous entry (never a stop before its
//! start) and the write's own time (never ahead of the broker's clock);
//! a later write without a cloud time is stamped with the clock, never
//! with the old cloud time. Both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use cloudbroker_model::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, Tags, UserName, VmId, VmStatus};
use cloudbroker_store::metering::StateChange;
use cloudbroker_store::vms::{VmRow, VmUpdate};
use cloudbroker_store::{store_test, Store};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(secs)
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
        created_at: at(0),
        updated_at: at(0),
        version: 0,
        lease: None,
    }
}

async fn observe(s: &Store, id: &VmId, state: VmStatus, since: Option<DateTime<Utc>>) {
    let version = s.get_vm(id).await.unwrap().unwrap().version;
    assert!(s.observe_vm_since(id, version, state, (None, None), None, since).await.unwrap());
}

store_test!(cloud_times_are_recorded_clamped, |s: Store| async move {
    s.create_user("alice", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", false).await.unwrap();
    let clock = s.clock().clone();
    clock.set(at(0));
    let r = row("vm-s1");
    assert!(s.insert_adopted_vm(&r).await.unwrap());
    clock.set(at(100));
    s.update_vm(&VmUpdate::state(&r.id, VmStatus::Running)).await.unwrap();
    // Stopped at 1000 by the cloud's word, learned at 5000.
    clock.set(at(5000));
    observe(&s, &r.id, VmStatus::Stopped, Some(at(1000))).await;
    // Started by the broker at 6000: the old cloud time is not reused.
    clock.set(at(6000));
    s.update_vm(&VmUpdate::state(&r.id, VmStatus::Running)).await.unwrap();
    // A cloud time before the start: clamped to the start.
    clock.set(at(7000));
    observe(&s, &r.id, VmStatus::Stopping, Some(at(10))).await;
    // A cloud time ahead of the broker's clock: clamped to the clock.
    clock.set(at(8000));
    observe(&s, &r.id, VmStatus::Terminated, Some(at(9000))).await;
    assert_eq!(
        s.vm_state_history(&r.id).await.unwrap(),
        vec![
            StateChange { state: VmStatus::Pending, at: at(0) },
            StateChange { state: VmStatus::Running, at: at(100) },
            StateChange { state: VmStatus::Stopped, at: at(1000) },
            StateChange { state: VmStatus::Running, at: at(6000) },
            StateChange { state: VmStatus::Stopping, at: at(6000) },
            StateChange { state: VmStatus::Terminated, at: at(8000) },
        ]
    );
    // An observation without a cloud time, after one with: the clock's time.
    let r2 = row("vm-s2");
    clock.set(at(0));
    assert!(s.insert_adopted_vm(&r2).await.unwrap());
    clock.set(at(50));
    observe(&s, &r2.id, VmStatus::Running, Some(at(20))).await;
    clock.set(at(90));
    observe(&s, &r2.id, VmStatus::Stopped, None).await;
    let h: Vec<_> = s.vm_state_history(&r2.id).await.unwrap().into_iter().map(|c| c.at).collect();
    assert_eq!(h, vec![at(0), at(20), at(90)]);
});
