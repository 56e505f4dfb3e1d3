//! The lease worker's queries (issue 26), on SQLite and PostgreSQL: each
//! reads its partial index; warnings and claims are conditional updates
//! that one caller alone wins; a claim holds until it is older than the
//! claim lifetime (its replica died); only the claimant records the
//! outcome; an extension is refused while a claim is live.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_model::{ClientToken, CredentialId, InstanceName, LaunchId, LeaseAction, NewLease, ProjectName, UserName, VmId, VmStatus};
use cloudbroker_store::quota::{Admission, NewVm};
use cloudbroker_store::vms::VmUpdate;
use cloudbroker_store::{store_test, Store};

/// The expiry of the leases here (ms) and their warning, an hour before.
const END: i64 = 1_800_000_000_000;
const WARN: i64 = END - 3_600_000;
/// The claim lifetime the tests use (ms).
const TTL: i64 = 120_000;

fn id(s: &str) -> VmId {
    VmId::from_stored(s.to_string())
}

/// `n` VMs `<tag>-<i>` of alice on `sb`, running with cloud ids, each with
/// a lease ending at END (terminate), warned from WARN.
async fn launch(s: &Store, tag: &str, n: usize) {
    let user = UserName::parse("alice").unwrap();
    if s.get_user("alice").await.unwrap().is_none() {
        s.create_user("alice", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", false).await.unwrap();
    }
    let vms: Vec<NewVm> = (0..n)
        .map(|i| NewVm {
            id: id(&format!("{tag}-{i}")),
            launch_index: i as i64,
            name: format!("vm-{i}"),
            image: "img".into(),
            image_id: "ami-1".into(),
            instance_type: "t2.micro".into(),
            tags: "{}".into(),
            key_name: None,
        })
        .collect();
    s.admit_launch(&Admission {
        launch_id: &LaunchId::from_stored(tag.to_string()),
        user: &user,
        project: &ProjectName::personal(&user),
        instance: &InstanceName::parse("sb").unwrap(),
        credential_id: &CredentialId::from_stored("c".to_string()),
        client_token: &ClientToken::from_stored(tag.to_string()),
        limit: None,
        project_limit: None,
        member_check: false,
        counted: &VmStatus::QUOTA_COUNTED,
        state: VmStatus::Requested,
        lease: Some(NewLease { expires_at: END, action: LeaseAction::Terminate, warn_at: WARN }),
        vms: &vms,
        termination_protection: false,
        audit: None,
        budget: None,
    })
    .await
    .unwrap();
    for i in 0..n {
        let cloud = format!("i-{tag}-{i}");
        s.update_vm(&VmUpdate { cloud_id: Some(&cloud), ..VmUpdate::state(&id(&format!("{tag}-{i}")), VmStatus::Running) }).await.unwrap();
    }
}

fn ids(rows: &[cloudbroker_store::vm_leases::LeaseDue]) -> Vec<String> {
    rows.iter().map(|r| r.id.to_string()).collect()
}

store_test!(warnings_are_due_at_their_time_and_recorded_once, |s: Store| async move {
    launch(&s, "w", 3).await;
    assert!(s.vm_lease_warnings_due(WARN - 1, 100).await.unwrap().is_empty(), "not due a millisecond before");
    let due = s.vm_lease_warnings_due(WARN, 100).await.unwrap();
    assert_eq!(due.len(), 3);
    let d = &due[0];
    assert_eq!((d.expires_at, d.action, d.warn_at, d.state), (END, LeaseAction::Terminate, Some(WARN), VmStatus::Running));
    assert_eq!(d.cloud_id.as_deref(), Some("i-w-0"));
    assert_eq!(d.project.as_str(), "alice");
    // Not before its time, then once: the second caller's update writes nothing.
    assert!(!s.mark_vm_lease_warned(&id("w-0"), WARN - 1, Some("early")).await.unwrap());
    assert!(s.mark_vm_lease_warned(&id("w-0"), WARN, Some("lease ends soon")).await.unwrap());
    assert!(!s.mark_vm_lease_warned(&id("w-0"), WARN + 5, Some("again")).await.unwrap());
    let vm = s.get_vm(&id("w-0")).await.unwrap().unwrap();
    let lease = vm.lease.unwrap();
    assert_eq!(lease.warned_at.map(|t| t.timestamp_millis()), Some(WARN));
    assert_eq!(lease.note.as_deref(), Some("lease ends soon"));
    assert_eq!(ids(&s.vm_lease_warnings_due(END, 100).await.unwrap()), ["w-1", "w-2"]);
    // The limit, and a warning marked without a note keeps the note.
    assert_eq!(s.vm_lease_warnings_due(END, 1).await.unwrap().len(), 1);
    assert!(s.mark_vm_lease_warned(&id("w-1"), WARN, None).await.unwrap());
    assert_eq!(s.get_vm(&id("w-1")).await.unwrap().unwrap().lease.unwrap().note, None);
    // A new lease (an extension) forgets the warning.
    let later = NewLease { expires_at: END + 7_200_000, action: LeaseAction::Stop, warn_at: WARN + 7_200_000 };
    assert!(s.set_vm_lease(&id("w-0"), Some(&later)).await.unwrap());
    assert_eq!(ids(&s.vm_lease_warnings_due(WARN + 7_200_000, 100).await.unwrap()), ["w-2", "w-0"]);
});

store_test!(expiries_are_due_in_order_and_ended_vms_are_closed, |s: Store| async move {
    launch(&s, "e", 4).await;
    // Different expiries: e-3 first, e-0 last.
    for (i, end) in [(3, END - 3000), (1, END - 2000), (2, END - 1000)] {
        let l = NewLease { expires_at: end, action: LeaseAction::Stop, warn_at: end - 3_600_000 };
        assert!(s.set_vm_lease(&id(&format!("e-{i}")), Some(&l)).await.unwrap());
    }
    assert!(s.vm_lease_expiries_due(END - 3001, 100).await.unwrap().is_empty());
    assert_eq!(ids(&s.vm_lease_expiries_due(END - 2000, 100).await.unwrap()), ["e-3", "e-1"]);
    let all = s.vm_lease_expiries_due(END, 100).await.unwrap();
    assert_eq!(ids(&all), ["e-3", "e-1", "e-2", "e-0"]);
    assert_eq!(all[0].action, LeaseAction::Stop);
    assert_eq!(ids(&s.vm_lease_expiries_due(END, 2).await.unwrap()), ["e-3", "e-1"]);
    assert_eq!(s.count_vm_leases_due(END - 1).await.unwrap(), 3);
    assert_eq!(s.count_vm_leases_due(END).await.unwrap(), 4);

    // e-1 ended (terminated), e-2 failed and e-3 is shutting down before
    // their leases; e-0 ended too but its lease is not due yet.
    s.update_vm(&VmUpdate::state(&id("e-1"), VmStatus::Terminated)).await.unwrap();
    s.update_vm(&VmUpdate::state(&id("e-2"), VmStatus::Failed)).await.unwrap();
    s.update_vm(&VmUpdate::state(&id("e-3"), VmStatus::ShuttingDown)).await.unwrap();
    s.update_vm(&VmUpdate::state(&id("e-0"), VmStatus::Terminated)).await.unwrap();
    // e-2 was claimed: it may have ended by its claimant's act, which the
    // worker records; it is never closed as "ended before its lease".
    assert!(s.claim_vm_lease(&id("e-2"), "r1", END - 1000, TTL).await.unwrap());
    assert_eq!(s.close_ended_vm_leases(END - 500).await.unwrap(), 2, "e-3 and e-1");
    let e1 = s.get_vm(&id("e-1")).await.unwrap().unwrap().lease.unwrap();
    assert_eq!(e1.ended_at.map(|t| t.timestamp_millis()), Some(END - 500));
    assert_eq!(e1.note.as_deref(), Some("ended before its lease (terminated)"));
    let e3 = s.get_vm(&id("e-3")).await.unwrap().unwrap().lease.unwrap();
    assert_eq!(e3.note.as_deref(), Some("ended before its lease (shutting-down)"));
    assert_eq!(ids(&s.vm_lease_expiries_due(END, 100).await.unwrap()), ["e-2", "e-0"], "closed leases leave the due set");
    assert_eq!(s.close_ended_vm_leases(END).await.unwrap(), 1, "e-0 at its expiry");
    assert_eq!(s.close_ended_vm_leases(END + 10 * TTL).await.unwrap(), 0, "a claimed one, even long dead, is left to the worker");
    assert_eq!(ids(&s.vm_lease_expiries_due(END + TTL, 100).await.unwrap()), ["e-2"]);
});

store_test!(a_claim_is_won_once_held_until_dead_and_finished_by_its_claimant, |s: Store| async move {
    launch(&s, "c", 1).await;
    let vm = id("c-0");
    assert!(!s.claim_vm_lease(&vm, "r1", END - 1, TTL).await.unwrap(), "not expired yet");
    assert!(s.claim_vm_lease(&vm, "r1", END, TTL).await.unwrap());
    assert!(!s.claim_vm_lease(&vm, "r2", END + 1000, TTL).await.unwrap(), "a live claim");
    assert!(!s.claim_vm_lease(&vm, "r2", END + TTL, TTL).await.unwrap(), "still live at exactly its lifetime");
    let due = s.vm_lease_expiries_due(END, 10).await.unwrap();
    assert_eq!((due[0].claimed_by.as_deref(), due[0].claimed_at), (Some("r1"), Some(END)));
    // An extension waits while a replica acts on the expiry.
    let ext = NewLease { expires_at: END + 3_600_000, action: LeaseAction::Terminate, warn_at: END };
    assert!(!s.set_vm_lease(&vm, Some(&ext)).await.unwrap());
    // r1 died: r2 takes over; r1 can no longer record or release.
    assert!(s.claim_vm_lease(&vm, "r2", END + TTL + 1, TTL).await.unwrap());
    assert!(!s.finish_vm_lease(&vm, "r1", END + TTL + 2, "by r1").await.unwrap());
    assert!(!s.release_vm_lease_claim(&vm, "r1", Some("r1 gives up")).await.unwrap());
    assert!(s.finish_vm_lease(&vm, "r2", END + TTL + 2, "terminated by its lease").await.unwrap());
    assert!(!s.finish_vm_lease(&vm, "r2", END + TTL + 3, "twice").await.unwrap(), "once");
    let lease = s.get_vm(&vm).await.unwrap().unwrap().lease.unwrap();
    assert_eq!(lease.ended_at.map(|t| t.timestamp_millis()), Some(END + TTL + 2));
    assert_eq!(lease.note.as_deref(), Some("terminated by its lease"));
    // Dealt with: never claimed again, out of the due set; a new lease may be set.
    assert!(!s.claim_vm_lease(&vm, "r3", END + 10 * TTL, TTL).await.unwrap());
    assert!(s.vm_lease_expiries_due(END + 10 * TTL, 10).await.unwrap().is_empty());
    assert!(s.set_vm_lease(&vm, Some(&ext)).await.unwrap());
    assert_eq!(s.get_vm(&vm).await.unwrap().unwrap().lease.unwrap().ended_at, None);
});

store_test!(a_released_claim_is_claimed_again_and_keeps_its_note, |s: Store| async move {
    launch(&s, "r", 1).await;
    let vm = id("r-0");
    assert!(s.claim_vm_lease(&vm, "r1", END, TTL).await.unwrap());
    assert!(!s.release_vm_lease_claim(&vm, "r2", None).await.unwrap(), "only the claimant releases");
    assert!(s.release_vm_lease_claim(&vm, "r1", Some("skipped: the cloud does not report it")).await.unwrap());
    let due = s.vm_lease_expiries_due(END, 10).await.unwrap();
    assert_eq!((due[0].claimed_by.as_deref(), due[0].claimed_at), (None, None));
    assert_eq!(s.get_vm(&vm).await.unwrap().unwrap().lease.unwrap().note.as_deref(), Some("skipped: the cloud does not report it"));
    assert!(s.claim_vm_lease(&vm, "r2", END + 1, TTL).await.unwrap(), "claimed again at once");
});

store_test!(concurrent_claims_have_one_winner, |s: Store| async move {
    launch(&s, "k", 1).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.claim_vm_lease(&id("k-0"), &format!("r{i}"), END + i, TTL).await.unwrap() }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
});

store_test!(the_worker_queries_read_their_partial_indexes, |s: Store| async move {
    launch(&s, "p", 2).await;
    for (name, plan) in s.lease_query_plans().await.unwrap() {
        let index = if name == "warnings due" { "vms_lease_warn_due" } else { "vms_lease_due" };
        assert!(plan.contains(index), "{name}: the plan does not read {index}:\n{plan}");
    }
});
