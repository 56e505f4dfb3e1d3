//! Elastic IPs, volumes, key pairs and registered images belong to
//! projects, through the core services, on SQLite and PostgreSQL, against
//! the sandbox cloud: a member of a project sees and acts on what another
//! member made there; a viewer sees it and cannot act (Forbidden); a member
//! of another project (the same user in another project included) sees
//! nothing of it (NotFound) and cannot launch with its key pair or image;
//! key pair names are per project; the caps count per project, whoever made
//! the rows.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::{PageRequest, ProjectName, ProjectRole, Tags, VmId, VmStatus, VolumeSize};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::limits::{Limit, MAX_ADDRESSES, MAX_KEY_PAIRS, MAX_VOLUMES};
use cloudbroker_core::provisioning::{LaunchRequest, VolumeSpec};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::collections::BTreeMap;

const PUB_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQpWmwNDw+/viwoFdeIlYgFCWnA/NgoR/X5ICtefgTf cloudbroker-test";
const OTHER_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIrfkw6NnNDNuTrQ6kQr+oIVd8hD6Z+8sqEQZA3xsZ1y";

fn project(s: &str) -> ProjectName {
    ProjectName::parse(s).unwrap()
}

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&Actor::system(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

/// Who acts: alice (owner) and bob (member) of team-a, vic its viewer,
/// carol owner of team-b; bob also in his personal project.
struct Team {
    alice: Actor,
    bob: Actor,
    vic: Actor,
    carol: Actor,
    bob_alone: Actor,
}

async fn team(b: &Broker) -> Team {
    let (alice, bob, vic, carol) =
        (add_user(b, "alice").await, add_user(b, "bob").await, add_user(b, "vic").await, add_user(b, "carol").await);
    b.projects.create(&alice, &project("team-a"), "", None).await.unwrap();
    b.projects.set_member(&alice, &project("team-a"), &bob.name, ProjectRole::Member).await.unwrap();
    b.projects.set_member(&alice, &project("team-a"), &vic.name, ProjectRole::Viewer).await.unwrap();
    b.projects.create(&carol, &project("team-b"), "", None).await.unwrap();
    let (a, bb) = (project("team-a"), project("team-b"));
    Team {
        alice: b.projects.enter(alice, &a).await.unwrap(),
        bob: b.projects.enter(bob.clone(), &a).await.unwrap(),
        vic: b.projects.enter(vic, &a).await.unwrap(),
        carol: b.projects.enter(carol, &bb).await.unwrap(),
        bob_alone: bob,
    }
}

async fn linux_image(b: &Broker) {
    let mut mappings = BTreeMap::new();
    mappings.insert(
        instance("sb"),
        ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
    );
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    if b.images.get(&image("linux")).await.is_err() {
        b.images.put(&Actor::system(), spec, true).await.unwrap();
    }
}

async fn running_vm(b: &Broker, who: &Actor) -> VmId {
    linux_image(b).await;
    let vm = b.provisioning.launch(who, LaunchRequest::new(instance("sb"), image_ref("linux"))).await.unwrap().vms.remove(0);
    for _ in 0..50 {
        b.provisioning.reconcile("t").await.unwrap();
        if b.provisioning.get(who, &vm.id).await.unwrap().status == VmStatus::Running {
            return vm.id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the VM never ran");
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> bool {
    matches!(&r, Err(ServiceError::Forbidden(m)) if m.contains("viewer"))
}

broker_test!(addresses_belong_to_the_project, |b: Broker| async move {
    let t = team(&b).await;
    let sb = instance("sb");
    let vm = running_vm(&b, &t.alice).await;
    let a = b.provisioning.allocate_address(&t.alice, &sb).await.unwrap();
    let id = a.allocation_id.clone();
    // Every member (and the viewer) lists it; bob acts on alice's address and VM.
    for who in [&t.alice, &t.bob, &t.vic] {
        assert_eq!(b.provisioning.addresses(who, &sb).await.unwrap(), vec![a.clone()], "{}", who.name);
        assert_eq!(b.provisioning.address(who, &sb, &id).await.unwrap(), a);
    }
    let assoc = b.provisioning.associate_address(&t.bob, &sb, &id, &vm).await.unwrap();
    assert_eq!(assoc.vm.as_ref(), Some(&vm));

    // The viewer sees it and cannot act.
    assert!(forbidden(b.provisioning.allocate_address(&t.vic, &sb).await));
    assert!(forbidden(b.provisioning.check_allocate_address(&t.vic, &sb).await));
    assert!(forbidden(b.provisioning.disassociate_address(&t.vic, &sb, &id).await));
    assert!(forbidden(b.provisioning.check_disassociate_address(&t.vic, &sb, &id).await));
    assert!(forbidden(b.provisioning.associate_address(&t.vic, &sb, &id, &vm).await));
    assert!(forbidden(b.provisioning.release_address(&t.vic, &sb, &id).await));
    assert!(forbidden(b.provisioning.check_release_address(&t.vic, &sb, &id).await));
    assert_eq!(b.provisioning.address(&t.alice, &sb, &id).await.unwrap().vm.as_ref(), Some(&vm), "nothing changed");

    // Another project sees nothing of it: carol's, and bob's own personal one.
    for who in [&t.carol, &t.bob_alone] {
        assert!(b.provisioning.addresses(who, &sb).await.unwrap().is_empty(), "{}", who.project);
        let nf = |e: ServiceError| matches!(&e, ServiceError::NotFound(Resource::Address(x)) if *x == id);
        assert!(nf(b.provisioning.address(who, &sb, &id).await.unwrap_err()));
        assert!(nf(b.provisioning.disassociate_address(who, &sb, &id).await.unwrap_err()));
        assert!(nf(b.provisioning.release_address(who, &sb, &id).await.unwrap_err()));
        assert!(nf(b.provisioning.check_release_address(who, &sb, &id).await.unwrap_err()));
    }
    // An address goes only on a VM of its own project: not on bob's
    // personal VM (the same user, another project), nor a team-a address
    // seen from bob's personal project.
    let bob_vm = running_vm(&b, &t.bob_alone).await;
    let e = b.provisioning.disassociate_address(&t.bob, &sb, &id).await.unwrap();
    assert_eq!(e.vm, None);
    let e = b.provisioning.associate_address(&t.bob, &sb, &id, &bob_vm).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(v)) if *v == bob_vm), "{e}");
    let e = b.provisioning.check_associate_address(&t.bob, &sb, &id, &bob_vm).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(_))), "{e}");
    let mine = b.provisioning.allocate_address(&t.bob_alone, &sb).await.unwrap();
    let e = b.provisioning.associate_address(&t.bob_alone, &sb, &mine.allocation_id, &vm).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(v)) if *v == vm), "{e}");
    assert_eq!(b.provisioning.addresses(&t.bob_alone, &sb).await.unwrap(), vec![mine.clone()]);
    assert_eq!(b.provisioning.addresses(&t.alice, &sb).await.unwrap(), vec![b.provisioning.address(&t.bob, &sb, &id).await.unwrap()]);

    // Bob releases what alice allocated; the audit names the project.
    b.provisioning.release_address(&t.bob, &sb, &id).await.unwrap();
    assert!(b.provisioning.addresses(&t.alice, &sb).await.unwrap().is_empty());
    let log = b.audit.list(&Actor::system(), AuditQuery::default(), PageRequest::first(200)).await.unwrap().items;
    let release = log.iter().find(|r| r.action == "address.release" && r.actor == "bob").expect("release audited");
    assert_eq!(release.project, "team-a");
    let alloc = log.iter().find(|r| r.action == "address.allocate" && r.actor == "bob").expect("allocation audited");
    assert_eq!(alloc.project, "bob");
});

broker_test!(volumes_belong_to_the_project, |b: Broker| async move {
    let t = team(&b).await;
    let sb = instance("sb");
    let vm = running_vm(&b, &t.alice).await;
    let spec = || VolumeSpec {
        size: VolumeSize::new(8).unwrap(),
        zone: "sba".into(),
        volume_type: Some("gp3".into()),
        tags: Tags::parse([("team".to_string(), "a".to_string())].into()).unwrap(),
    };
    let v = b.provisioning.create_volume(&t.alice, &sb, spec()).await.unwrap();
    let id = v.volume_id.clone();
    for who in [&t.alice, &t.bob, &t.vic] {
        let listed = b.provisioning.volumes(who, &sb).await.unwrap();
        assert_eq!(listed.iter().map(|v| &v.volume_id).collect::<Vec<_>>(), [&id], "{}", who.name);
        b.provisioning.volume(who, &sb, &id).await.unwrap();
    }
    // Bob attaches alice's volume to alice's VM, tags it.
    let att = b.provisioning.attach_volume(&t.bob, &sb, &id, &vm, "/dev/sdf").await.unwrap();
    assert_eq!(att.attachment.as_ref().map(|a| &a.vm), Some(&vm));
    let set: BTreeMap<String, String> = [("by".to_string(), "bob".to_string())].into();
    b.provisioning.tag_volume(&t.bob, &sb, &id, &set, &[]).await.unwrap();

    // The viewer sees it and cannot act.
    assert!(forbidden(b.provisioning.create_volume(&t.vic, &sb, spec()).await));
    assert!(forbidden(b.provisioning.check_create_volume(&t.vic, &sb, &spec()).await));
    assert!(forbidden(b.provisioning.detach_volume(&t.vic, &sb, &id, None, false).await));
    assert!(forbidden(b.provisioning.check_detach_volume(&t.vic, &sb, &id, None).await));
    assert!(forbidden(b.provisioning.attach_volume(&t.vic, &sb, &id, &vm, "/dev/sdg").await));
    assert!(forbidden(b.provisioning.delete_volume(&t.vic, &sb, &id).await));
    assert!(forbidden(b.provisioning.check_delete_volume(&t.vic, &sb, &id).await));
    assert!(forbidden(b.provisioning.tag_volume(&t.vic, &sb, &id, &BTreeMap::new(), &["by".to_string()]).await));
    assert!(forbidden(b.provisioning.check_tag_volume(&t.vic, &sb, &id, &BTreeMap::new(), &["by".to_string()]).await));
    assert_eq!(b.provisioning.volume(&t.vic, &sb, &id).await.unwrap().tags.get("by").map(String::as_str), Some("bob"));

    // Another project sees nothing of it.
    for who in [&t.carol, &t.bob_alone] {
        assert!(b.provisioning.volumes(who, &sb).await.unwrap().is_empty(), "{}", who.project);
        let nf = |e: ServiceError| matches!(&e, ServiceError::NotFound(Resource::Volume(x)) if *x == id);
        assert!(nf(b.provisioning.volume(who, &sb, &id).await.unwrap_err()));
        assert!(nf(b.provisioning.detach_volume(who, &sb, &id, None, false).await.unwrap_err()));
        assert!(nf(b.provisioning.delete_volume(who, &sb, &id).await.unwrap_err()));
        assert!(nf(b.provisioning.tag_volume(who, &sb, &id, &set, &[]).await.unwrap_err()));
        assert!(nf(b.provisioning.check_attach_volume(who, &sb, &id, &vm, "/dev/sdg").await.unwrap_err()));
    }
    // A volume goes only on a VM of its own project.
    let bob_vm = running_vm(&b, &t.bob_alone).await;
    let e = b.provisioning.detach_volume(&t.bob, &sb, &id, Some(&bob_vm), false).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(v)) if *v == bob_vm), "{e}");
    b.provisioning.detach_volume(&t.bob, &sb, &id, Some(&vm), false).await.unwrap();
    for _ in 0..50 {
        if b.provisioning.volumes(&t.alice, &sb).await.unwrap()[0].attachment.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let e = b.provisioning.attach_volume(&t.bob, &sb, &id, &bob_vm, "/dev/sdf").await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(_))), "{e}");
    let e = b.provisioning.check_attach_volume(&t.bob, &sb, &id, &bob_vm, "/dev/sdf").await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(_))), "{e}");

    // Bob deletes what alice created.
    b.provisioning.delete_volume(&t.bob, &sb, &id).await.unwrap();
    assert!(b.provisioning.volumes(&t.alice, &sb).await.unwrap().is_empty());
});

broker_test!(key_pairs_belong_to_the_project, |b: Broker| async move {
    let t = team(&b).await;
    linux_image(&b).await;
    let pair = b.key_pairs.import(&t.alice, "k", PUB_KEY).await.unwrap();
    assert_eq!(pair.created_by, t.alice.name);
    // Members and the viewer list it and read it.
    for who in [&t.alice, &t.bob, &t.vic] {
        assert_eq!(b.key_pairs.list(who).await.unwrap(), vec![pair.clone()], "{}", who.name);
        assert_eq!(b.key_pairs.get(who, "k").await.unwrap(), pair);
    }
    // Bob launches with alice's pair.
    let mut r = LaunchRequest::new(instance("sb"), image_ref("linux"));
    r.key_name = Some("k".into());
    let vm = b.provisioning.launch(&t.bob, r.clone()).await.unwrap().vms.remove(0);
    assert_eq!(vm.key_name.as_deref(), Some("k"));

    // The viewer cannot make, import or delete one.
    assert!(forbidden(b.key_pairs.create(&t.vic, "v").await));
    assert!(forbidden(b.key_pairs.import(&t.vic, "v", PUB_KEY).await));
    assert!(forbidden(b.key_pairs.check_new(&t.vic, "v", None).await));
    assert!(forbidden(b.key_pairs.delete(&t.vic, "k").await));
    assert!(forbidden(b.key_pairs.check_delete(&t.vic)));
    assert_eq!(b.key_pairs.list(&t.alice).await.unwrap().len(), 1);

    // Another project sees nothing of it, and cannot launch with its name.
    for who in [&t.carol, &t.bob_alone] {
        assert!(b.key_pairs.list(who).await.unwrap().is_empty(), "{}", who.project);
        assert!(matches!(b.key_pairs.get(who, "k").await, Err(ServiceError::NotFound(_))));
        assert!(matches!(b.key_pairs.delete(who, "k").await, Err(ServiceError::NotFound(_))));
        let e = b.provisioning.launch(who, r.clone()).await.unwrap_err();
        assert!(matches!(&e, ServiceError::NotFound(Resource::KeyPair(n)) if n == "k"), "{e}");
    }

    // Names are per project: the same user makes "k" in their personal
    // project too, another pair; deleting one leaves the other.
    let alice_alone = Actor::new(t.alice.name.clone(), false);
    let mine = b.key_pairs.import(&alice_alone, "k", OTHER_KEY).await.unwrap();
    assert_ne!(mine.fingerprint, pair.fingerprint);
    assert!(matches!(b.key_pairs.import(&t.bob, "k", OTHER_KEY).await, Err(ServiceError::Conflict(_))), "taken in team-a");
    assert!(matches!(b.key_pairs.check_new(&t.bob, "k", None).await, Err(ServiceError::Conflict(_))));
    b.key_pairs.delete(&t.bob, "k").await.unwrap();
    assert!(b.key_pairs.list(&t.alice).await.unwrap().is_empty());
    assert_eq!(b.key_pairs.list(&alice_alone).await.unwrap(), vec![mine]);
});

broker_test!(registered_images_belong_to_the_project, |b: Broker| async move {
    let t = team(&b).await;
    let sb = instance("sb");
    let name = image("team-img");
    let v = b.provisioning.register_image(&t.alice, &sb, "ami-sandbox-debian-12", &name, "ours").await.unwrap();
    assert_eq!((v.owner.as_ref(), v.project.as_ref()), (Some(&t.alice.name), Some(&project("team-a"))));
    // Members and the viewer see it; members launch it.
    for who in [&t.alice, &t.bob, &t.vic] {
        assert_eq!(b.images.get_for(who, &name).await.unwrap().name, name, "{}", who.name);
        assert!(b.images.list_for(who).await.unwrap().iter().any(|i| i.name == name));
        assert!(b.images.page(who, &PageRequest::first(100)).await.unwrap().items.iter().any(|i| i.name == name));
        assert!(b.images.launchable_by(who).await.unwrap().iter().any(|l| l.image.name == name && l.on.contains_key(&sb)));
    }
    b.provisioning.launch(&t.bob, LaunchRequest::new(sb.clone(), image_ref("team-img"))).await.unwrap();

    // The viewer registers and deregisters nothing.
    assert!(forbidden(b.provisioning.register_image(&t.vic, &sb, "ami-sandbox-debian-12", &image("vic-img"), "").await));
    assert!(forbidden(b.provisioning.check_register_image(&t.vic, &sb, "ami-sandbox-debian-12", &image("vic-img"), "").await));
    assert!(forbidden(b.images.deregister(&t.vic, &name).await));
    assert!(forbidden(b.images.check_deregister(&t.vic, &name).await));

    // Another project (the creator's personal one included) does not see it nor launch it.
    let alice_alone = Actor::new(t.alice.name.clone(), false);
    for who in [&t.carol, &t.bob_alone, &alice_alone] {
        let nf = |e: ServiceError| matches!(&e, ServiceError::NotFound(Resource::Image(n)) if *n == name);
        assert!(nf(b.images.get_for(who, &name).await.unwrap_err()), "{}", who.project);
        assert!(!b.images.list_for(who).await.unwrap().iter().any(|i| i.name == name));
        assert!(!b.images.page(who, &PageRequest::first(100)).await.unwrap().items.iter().any(|i| i.name == name));
        assert!(!b.images.launchable_by(who).await.unwrap().iter().any(|l| l.image.name == name));
        // A launch of it fails as one of an image that does not exist.
        let e = b.provisioning.launch(who, LaunchRequest::new(sb.clone(), image_ref("team-img"))).await.unwrap_err();
        let none = b.provisioning.launch(who, LaunchRequest::new(sb.clone(), image_ref("none-img"))).await.unwrap_err();
        assert_eq!(e.to_string(), none.to_string().replace("none-img", "team-img"));
        assert!(nf(b.images.deregister(who, &name).await.unwrap_err()));
    }
    // Admins see it.
    assert!(b.images.get_for(&Actor::system(), &name).await.is_ok());

    // Bob (a member, not its registrant) deregisters it.
    b.images.deregister(&t.bob, &name).await.unwrap();
    assert!(b.images.get_for(&t.alice, &name).await.is_err());
});

broker_test!(caps_count_per_project, |b: Broker| async move {
    let t = team(&b).await;
    let sb = instance("sb");
    let store = b.store();
    let team_a = project("team-a");
    // Fill team-a's caps to one below, made by alice and bob alike.
    for i in 0..MAX_ADDRESSES - 1 {
        let by = if i % 2 == 0 { "alice" } else { "bob" };
        store
            .insert_address_capped(MAX_ADDRESSES, "elsewhere", &format!("eipalloc-{i:08}"), "team-a", by, "cred-x", "198.51.100.1")
            .await
            .unwrap();
    }
    for i in 0..MAX_VOLUMES - 1 {
        let by = if i % 2 == 0 { "alice" } else { "bob" };
        let tags = BTreeMap::new();
        store
            .insert_volume_capped(
                MAX_VOLUMES,
                "elsewhere",
                &format!("vol-{i:08}"),
                "team-a",
                by,
                "cred-x",
                8,
                "sba",
                None,
                "available",
                &tags,
            )
            .await
            .unwrap();
    }
    for i in 0..MAX_KEY_PAIRS - 1 {
        let by = if i % 2 == 0 { &t.alice.name } else { &t.bob.name };
        store.insert_key_pair_capped(MAX_KEY_PAIRS, &team_a, by, &format!("k{i}"), PUB_KEY, "fp").await.unwrap();
    }
    // Alice takes the last one of each; then bob, another member, is refused.
    b.provisioning.allocate_address(&t.alice, &sb).await.unwrap();
    let spec = || VolumeSpec { size: VolumeSize::new(8).unwrap(), zone: "sba".into(), volume_type: None, tags: Tags::default() };
    b.provisioning.create_volume(&t.alice, &sb, spec()).await.unwrap();
    b.key_pairs.import(&t.alice, "last", PUB_KEY).await.unwrap();
    let full = |r: Result<(), ServiceError>, limit: Limit| matches!(r, Err(ServiceError::LimitExceeded { limit: l, .. }) if l == limit);
    assert!(full(b.provisioning.allocate_address(&t.bob, &sb).await.map(|_| ()), Limit::Addresses));
    assert!(full(b.provisioning.check_allocate_address(&t.bob, &sb).await, Limit::Addresses));
    assert!(full(b.provisioning.create_volume(&t.bob, &sb, spec()).await.map(|_| ()), Limit::Volumes));
    assert!(full(b.provisioning.check_create_volume(&t.bob, &sb, &spec()).await, Limit::Volumes));
    assert!(full(b.key_pairs.import(&t.bob, "one-more", PUB_KEY).await.map(|_| ()), Limit::KeyPairs));
    assert!(full(b.key_pairs.check_new(&t.bob, "one-more", None).await, Limit::KeyPairs));
    // Bob's personal project counts apart.
    b.provisioning.allocate_address(&t.bob_alone, &sb).await.unwrap();
    b.provisioning.create_volume(&t.bob_alone, &sb, spec()).await.unwrap();
    b.key_pairs.import(&t.bob_alone, "one-more", PUB_KEY).await.unwrap();
    // The other team's too.
    b.key_pairs.import(&t.carol, "k0", PUB_KEY).await.unwrap();
});
