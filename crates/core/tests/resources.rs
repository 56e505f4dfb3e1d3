//! Elastic IPs and volumes through the core services, on SQLite and
//! PostgreSQL, against the sandbox cloud: the cloud is really called with
//! the caller's credentials, the records answer listings, a user sees and
//! touches only their own addresses, volumes and VMs, and the cloud's codes
//! come through typed.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use cloudbroker_connector_api::{ConnectorError, SecretString};
use cloudbroker_core::audit::AuditQuery;
use cloudbroker_core::domain::{AllocationId, PageRequest, Tags, VmStatus, VolumeId, VolumeSize};
use cloudbroker_core::images::{ImageMapping, ImageSpec};
use cloudbroker_core::provisioning::{LaunchRequest, VolumeSpec};
use cloudbroker_core::testing::{image, image_ref, instance, user};
use cloudbroker_core::{Actor, Broker, Resource, ServiceError};
use std::collections::BTreeMap;

async fn add_user(b: &Broker, name: &str) -> Actor {
    let u = b.identity.create_user(&Actor::system(), &user(name), &SecretString::new(format!("{name}-password")), false).await.unwrap();
    Actor::new(u.name, false)
}

async fn running_vm(b: &Broker, who: &Actor) -> cloudbroker_core::domain::VmId {
    let mut mappings = BTreeMap::new();
    mappings.insert(
        instance("sb"),
        ImageMapping { image_id: "ami-sandbox-debian-12".into(), instance_type: Some("t2.small".into()), security_group: None },
    );
    let spec = ImageSpec { name: image("linux"), description: String::new(), os: "linux".into(), parent: None, mappings };
    if b.images.get(&image("linux")).await.is_err() {
        b.images.put(&Actor::system(), spec, true).await.unwrap();
    }
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

fn cloud_code(e: &ServiceError) -> Option<&str> {
    match e {
        ServiceError::Cloud(c) => c.code(),
        _ => None,
    }
}

broker_test!(addresses_are_owned_associated_and_released, |b: Broker| async move {
    let (alice, bob) = (add_user(&b, "alice").await, add_user(&b, "bob").await);
    let sb = instance("sb");
    let vm = running_vm(&b, &alice).await;
    let a = b.provisioning.allocate_address(&alice, &sb).await.unwrap();
    assert!(a.allocation_id.as_str().starts_with("eipalloc-") && a.public_ip.starts_with("198.51."), "{a:?}");
    assert_eq!(b.provisioning.addresses(&alice, &sb).await.unwrap(), vec![a.clone()]);
    // Bob sees nothing of it and can do nothing with it.
    assert!(b.provisioning.addresses(&bob, &sb).await.unwrap().is_empty());
    let not_found = |e: ServiceError| matches!(&e, ServiceError::NotFound(Resource::Address(id)) if *id == a.allocation_id);
    let bob_vm = running_vm(&b, &bob).await;
    assert!(not_found(b.provisioning.associate_address(&bob, &sb, &a.allocation_id, &bob_vm).await.unwrap_err()));
    assert!(not_found(b.provisioning.release_address(&bob, &sb, &a.allocation_id).await.unwrap_err()));
    assert!(not_found(b.provisioning.disassociate_address(&bob, &sb, &a.allocation_id).await.unwrap_err()));
    // Nor can bob put his own address on alice's VM; nor alice on another region.
    let ba = b.provisioning.allocate_address(&bob, &sb).await.unwrap();
    let e = b.provisioning.associate_address(&bob, &sb, &ba.allocation_id, &vm).await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(id)) if *id == vm), "{e}");
    let e = b.provisioning.associate_address(&alice, &instance("sb2"), &a.allocation_id, &vm).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(Resource::Address(_))), "{e}");

    let assoc = b.provisioning.associate_address(&alice, &sb, &a.allocation_id, &vm).await.unwrap();
    assert_eq!(assoc.vm.as_ref(), Some(&vm));
    assert!(assoc.association_id.as_deref().is_some_and(|s| s.starts_with("eipassoc-")));
    assert_eq!(b.provisioning.get(&alice, &vm).await.unwrap().public_ip.as_deref(), Some(a.public_ip.as_str()));
    // Released while associated: the cloud's own code comes through.
    let e = b.provisioning.release_address(&alice, &sb, &a.allocation_id).await.unwrap_err();
    assert_eq!(cloud_code(&e), Some("InvalidIPAddress.InUse"), "{e}");
    let d = b.provisioning.disassociate_address(&alice, &sb, &a.allocation_id).await.unwrap();
    assert_eq!((d.vm, d.association_id), (None, None));
    assert!(matches!(b.provisioning.disassociate_address(&alice, &sb, &a.allocation_id).await, Err(ServiceError::Conflict(_))));
    b.provisioning.release_address(&alice, &sb, &a.allocation_id).await.unwrap();
    assert!(b.provisioning.addresses(&alice, &sb).await.unwrap().is_empty());
    assert!(matches!(b.provisioning.release_address(&alice, &sb, &a.allocation_id).await, Err(ServiceError::NotFound(_))));
    // Every change is audited.
    let log = b.audit.list(&Actor::system(), AuditQuery::default(), PageRequest::first(100)).await.unwrap().items;
    for action in ["address.allocate", "address.associate", "address.disassociate", "address.release"] {
        assert!(log.iter().any(|r| r.action == action && r.actor == "alice"), "no {action} in the audit log");
    }
    let _ = AllocationId::parse("eipalloc-x").unwrap();
});

broker_test!(volumes_are_owned_attached_detached_and_deleted, |b: Broker| async move {
    let (alice, bob) = (add_user(&b, "alice").await, add_user(&b, "bob").await);
    let sb = instance("sb");
    let vm = running_vm(&b, &alice).await;
    let spec = |zone: &str| VolumeSpec {
        size: VolumeSize::new(8).unwrap(),
        zone: zone.into(),
        volume_type: Some("gp3".into()),
        tags: Tags::parse([("team".to_string(), "a".to_string())].into()).unwrap(),
    };
    let e = b.provisioning.create_volume(&alice, &sb, spec("us-east-1a")).await.unwrap_err();
    assert_eq!(cloud_code(&e), Some("InvalidParameterValue"), "{e}");
    assert!(matches!(e, ServiceError::Cloud(ConnectorError::InvalidRequest { .. })));
    let e = b.provisioning.create_volume(&alice, &sb, VolumeSpec { volume_type: Some("g p".into()), ..spec("sba") }).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("volume_type"), .. }), "{e}");
    let v = b.provisioning.create_volume(&alice, &sb, spec("sba")).await.unwrap();
    assert_eq!((v.size_gib, v.zone.as_str(), v.state.as_str()), (8, "sba", "creating"));
    assert_eq!(v.tags.get("team").map(String::as_str), Some("a"));
    // The listing settles the volume from the cloud.
    let listed = b.provisioning.volumes(&alice, &sb).await.unwrap();
    assert_eq!((listed.len(), listed[0].state.as_str()), (1, "available"));
    assert!(b.provisioning.volumes(&bob, &sb).await.unwrap().is_empty());

    let bob_vm = running_vm(&b, &bob).await;
    let nf = |e: ServiceError| matches!(&e, ServiceError::NotFound(Resource::Volume(id)) if *id == v.volume_id);
    assert!(nf(b.provisioning.attach_volume(&bob, &sb, &v.volume_id, &bob_vm, "/dev/sdf").await.unwrap_err()));
    assert!(nf(b.provisioning.detach_volume(&bob, &sb, &v.volume_id, None, false).await.unwrap_err()));
    assert!(nf(b.provisioning.delete_volume(&bob, &sb, &v.volume_id).await.unwrap_err()));
    assert!(nf(b.provisioning.tag_volume(&bob, &sb, &v.volume_id, &BTreeMap::new(), &["team".into()]).await.unwrap_err()));
    let e = b.provisioning.attach_volume(&alice, &sb, &v.volume_id, &bob_vm, "/dev/sdf").await.unwrap_err();
    assert!(matches!(&e, ServiceError::NotFound(Resource::Vm(id)) if *id == bob_vm), "{e}");
    let e = b.provisioning.attach_volume(&alice, &sb, &v.volume_id, &vm, "sdf").await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("device"), .. }), "{e}");

    let att = b.provisioning.attach_volume(&alice, &sb, &v.volume_id, &vm, "/dev/sdf").await.unwrap();
    assert_eq!(att.state, "in-use");
    let a = att.attachment.clone().unwrap();
    assert_eq!((a.vm, a.device.as_str()), (vm.clone(), "/dev/sdf"));
    let listed = b.provisioning.volumes(&alice, &sb).await.unwrap();
    assert_eq!(listed[0].attachment.as_ref().map(|a| a.state.as_str()), Some("attached"));
    let e = b.provisioning.delete_volume(&alice, &sb, &v.volume_id).await.unwrap_err();
    assert_eq!(cloud_code(&e), Some("VolumeInUse"), "{e}");
    b.provisioning.detach_volume(&alice, &sb, &v.volume_id, Some(&vm), false).await.unwrap();
    let listed = b.provisioning.volumes(&alice, &sb).await.unwrap();
    assert_eq!((listed[0].state.as_str(), listed[0].attachment.clone()), ("available", None));

    let tagged = b
        .provisioning
        .tag_volume(&alice, &sb, &v.volume_id, &[("env".to_string(), "dev".to_string())].into(), &["team".into()])
        .await
        .unwrap();
    assert_eq!(tagged.tags, [("env".to_string(), "dev".to_string())].into());
    let e = b.provisioning.tag_volume(&alice, &sb, &v.volume_id, &[("aws:x".to_string(), "1".to_string())].into(), &[]).await.unwrap_err();
    assert!(matches!(e, ServiceError::Invalid { field: Some("tags"), .. }), "{e}");

    b.provisioning.delete_volume(&alice, &sb, &v.volume_id).await.unwrap();
    assert!(b.provisioning.volumes(&alice, &sb).await.unwrap().is_empty());
    assert!(matches!(b.provisioning.volume(&alice, &sb, &v.volume_id).await, Err(ServiceError::NotFound(Resource::Volume(_)))));
    let log = b.audit.list(&Actor::system(), AuditQuery::default(), PageRequest::first(100)).await.unwrap().items;
    for action in ["volume.create", "volume.attach", "volume.detach", "volume.delete"] {
        assert!(log.iter().any(|r| r.action == action && r.actor == "alice"), "no {action} in the audit log");
    }
    let _ = VolumeId::parse("vol-1").unwrap();
});
