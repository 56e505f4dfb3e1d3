//! The sandbox on its own: lifecycle, EC2 rules for addresses and volumes,
//! account isolation, refusals, capacity and failure rate, catalogue.

use super::*;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0uK1cZ5Yx user@host";

fn sandbox(delay_ms: u64) -> SandboxConnector {
    SandboxConnector::new(
        InstanceName::parse("sb").unwrap(),
        SandboxSettings {
            boot_delay: Duration::from_millis(delay_ms),
            failure_rate: 0.0,
            capacity: None,
            public_ips: true,
            keep_tags: true,
            api_latency: Duration::ZERO,
            workers: 4,
        },
    )
}

fn creds(a: &str) -> Credentials {
    Credentials::new(a, "secret")
}

fn req(count: u32, token: &str) -> RunRequest {
    RunRequest {
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.micro".into(),
        count,
        tags: vec![("cloudbroker:launch".into(), token.into())],
        client_token: token.into(),
        ..RunRequest::default()
    }
}

#[tokio::test]
async fn full_lifecycle() {
    let sb = sandbox(30);
    let c = creds("alice");
    assert!(sb.validate_credentials(&c).await.is_ok());
    assert!(matches!(sb.validate_credentials(&Credentials::new("a", "")).await, Err(ConnectorError::Auth { .. })));

    sb.import_key_pair(&c, "k1", KEY).await.unwrap();
    let mut r = req(3, "tok-1");
    r.key_name = Some("k1".into());
    let vms = sb.run_instances(&c, &r).await.unwrap();
    assert_eq!(vms.len(), 3);
    assert!(vms.iter().all(|v| v.state == VmState::Pending && v.private_ip.is_some() && v.public_ip.is_some()));
    let ips: std::collections::BTreeSet<_> = vms.iter().map(|v| v.private_ip.clone()).collect();
    assert_eq!(ips.len(), 3, "addresses are unique");

    // Idempotent on the client token.
    let again = sb.run_instances(&c, &r).await.unwrap();
    assert_eq!(again.iter().map(|v| &v.id).collect::<Vec<_>>(), vms.iter().map(|v| &v.id).collect::<Vec<_>>());
    assert_eq!(sb.describe_instances(&c, &DescribeFilter::default()).await.unwrap().len(), 3);

    tokio::time::sleep(Duration::from_millis(50)).await;
    let ids: Vec<String> = vms.iter().map(|v| v.id.clone()).collect();
    let d = sb.describe_instances(&c, &DescribeFilter::tag("cloudbroker:launch", "tok-1")).await.unwrap();
    assert!(d.iter().all(|v| v.state == VmState::Running), "{d:?}");

    sb.reboot_instances(&c, &ids[..1]).await.unwrap();
    let ch = sb.stop_instances(&c, &ids[..1]).await.unwrap();
    assert_eq!((ch[0].previous, ch[0].current), (VmState::Running, VmState::Stopping));
    assert!(matches!(sb.reboot_instances(&c, &ids[..1]).await, Err(ConnectorError::InvalidRequest { .. })));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = sb.describe_instances(&c, &DescribeFilter::ids(&ids[..1])).await.unwrap();
    assert_eq!(d[0].state, VmState::Stopped);
    assert_eq!(d[0].public_ip, None);
    let ch = sb.start_instances(&c, &ids[..1]).await.unwrap();
    assert_eq!(ch[0].current, VmState::Pending);

    let ch = sb.terminate_instances(&c, &ids).await.unwrap();
    assert!(ch.iter().all(|c| c.current == VmState::ShuttingDown));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = sb.describe_instances(&c, &DescribeFilter::ids(&ids)).await.unwrap();
    assert!(d.iter().all(|v| v.state == VmState::Terminated && v.private_ip.is_none()));
    assert!(matches!(sb.start_instances(&c, &ids[..1]).await, Err(ConnectorError::InvalidRequest { .. })));

    assert_eq!(sb.list_key_pairs(&c).await.unwrap().len(), 1);
    sb.delete_key_pair(&c, "k1").await.unwrap();
    assert!(sb.list_key_pairs(&c).await.unwrap().is_empty());
}

#[tokio::test]
async fn addresses_and_volumes_follow_ec2_rules() {
    let sb = sandbox(0);
    let (a, b) = (creds("alice"), creds("bob"));
    let vm = sb.run_instances(&a, &req(1, "v")).await.unwrap().remove(0);
    let addr = sb.allocate_address(&a).await.unwrap();
    assert!(addr.public_ip.starts_with("198.51.") && addr.allocation_id.starts_with("eipalloc-"), "{addr:?}");
    // A terminated VM takes no address.
    let dead = sb.run_instances(&a, &req(1, "dead")).await.unwrap().remove(0);
    sb.terminate_instances(&a, std::slice::from_ref(&dead.id)).await.unwrap();
    let e = sb.associate_address(&a, &addr.allocation_id, &dead.id, false).await.unwrap_err();
    assert_eq!(e.code(), Some("IncorrectInstanceState"), "{e}");
    let assoc = sb.associate_address(&a, &addr.allocation_id, &vm.id, false).await.unwrap();
    let d = sb.describe_addresses(&a, std::slice::from_ref(&addr.allocation_id)).await.unwrap();
    assert_eq!((d[0].instance_id.as_deref(), d[0].association_id.as_deref()), (Some(vm.id.as_str()), Some(assoc.as_str())));
    assert_eq!(
        sb.describe_instances(&a, &DescribeFilter::ids(std::slice::from_ref(&vm.id))).await.unwrap()[0].public_ip,
        Some(addr.public_ip.clone())
    );
    // Another account sees none of it.
    assert_eq!(sb.describe_addresses(&b, &[]).await.unwrap(), vec![]);
    assert_eq!(sb.release_address(&b, &addr.allocation_id).await.unwrap_err().code(), Some("InvalidAllocationID.NotFound"));
    let bvm = sb.run_instances(&b, &req(1, "w")).await.unwrap().remove(0);
    let baddr = sb.allocate_address(&b).await.unwrap();
    assert_eq!(sb.associate_address(&b, &baddr.allocation_id, &vm.id, false).await.unwrap_err().code(), Some("InvalidInstanceID.NotFound"));
    // One VM at a time.
    let _ = bvm;
    let vm2 = sb.run_instances(&a, &req(1, "v2")).await.unwrap().remove(0);
    sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
    let e = sb.associate_address(&a, &addr.allocation_id, &vm2.id, false).await.unwrap_err();
    assert_eq!(e.code(), Some("Resource.AlreadyAssociated"), "{e}");
    assert_eq!(sb.release_address(&a, &addr.allocation_id).await.unwrap_err().code(), Some("InvalidIPAddress.InUse"));
    sb.disassociate_address(&a, &assoc).await.unwrap();
    assert_eq!(sb.disassociate_address(&a, &assoc).await.unwrap_err().code(), Some("InvalidAssociationID.NotFound"));
    sb.release_address(&a, &addr.allocation_id).await.unwrap();
    assert!(sb.describe_addresses(&a, &[]).await.unwrap().is_empty());
    for _ in 0..MAX_ADDRESSES {
        sb.allocate_address(&a).await.unwrap();
    }
    assert!(matches!(sb.allocate_address(&a).await, Err(ConnectorError::Limit { .. })));

    // Volumes.
    let zone = "sba".to_string();
    let bad = CreateVolumeRequest { size_gib: 0, zone: zone.clone(), volume_type: None, ..Default::default() };
    assert_eq!(sb.create_volume(&a, &bad).await.unwrap_err().code(), Some("InvalidParameterValue"));
    let elsewhere = CreateVolumeRequest { size_gib: 1, zone: "us-east-1a".into(), volume_type: None, ..Default::default() };
    assert_eq!(sb.create_volume(&a, &elsewhere).await.unwrap_err().code(), Some("InvalidParameterValue"));
    let v = sb
        .create_volume(&a, &CreateVolumeRequest { size_gib: 8, zone, volume_type: Some("gp3".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((v.state, v.size_gib), (VolumeState::Creating, 8));
    assert_eq!(sb.describe_volumes(&a, std::slice::from_ref(&v.volume_id)).await.unwrap()[0].state, VolumeState::Available);
    assert_eq!(sb.attach_volume(&a, &v.volume_id, &vm.id, "/dev/hda").await.unwrap_err().code(), Some("InvalidParameterValue"));
    assert_eq!(sb.attach_volume(&b, &v.volume_id, &bvm.id, "/dev/sdf").await.unwrap_err().code(), Some("InvalidVolume.NotFound"));
    let att = sb.attach_volume(&a, &v.volume_id, &vm.id, "/dev/sdf").await.unwrap();
    assert_eq!(att.state, "attaching");
    let d = sb.describe_volumes(&a, &[]).await.unwrap();
    assert_eq!((d[0].state, d[0].attachments[0].state.as_str()), (VolumeState::InUse, "attached"));
    assert_eq!(sb.attach_volume(&a, &v.volume_id, &vm2.id, "/dev/sdg").await.unwrap_err().code(), Some("VolumeInUse"));
    assert_eq!(sb.delete_volume(&a, &v.volume_id).await.unwrap_err().code(), Some("VolumeInUse"));
    let v2 = sb
        .create_volume(&a, &CreateVolumeRequest { size_gib: 1, zone: "sba".into(), volume_type: None, ..Default::default() })
        .await
        .unwrap();
    sb.describe_volumes(&a, &[]).await.unwrap();
    let e = sb.attach_volume(&a, &v2.volume_id, &vm.id, "/dev/sdf").await.unwrap_err();
    assert!(e.to_string().contains("already in use"), "{e}");
    assert_eq!(sb.detach_volume(&a, &v.volume_id, Some(&vm2.id), false).await.unwrap_err().code(), Some("InvalidAttachment.NotFound"));
    sb.detach_volume(&a, &v.volume_id, Some(&vm.id), false).await.unwrap();
    assert_eq!(sb.describe_volumes(&a, std::slice::from_ref(&v.volume_id)).await.unwrap()[0].state, VolumeState::Available);
    sb.delete_volume(&a, &v.volume_id).await.unwrap();
    assert_eq!(sb.describe_volumes(&a, std::slice::from_ref(&v.volume_id)).await.unwrap_err().code(), Some("InvalidVolume.NotFound"));
    // Termination detaches.
    sb.attach_volume(&a, &v2.volume_id, &vm.id, "/dev/sdh").await.unwrap();
    sb.terminate_instances(&a, std::slice::from_ref(&vm.id)).await.unwrap();
    sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
    let d = sb.describe_volumes(&a, std::slice::from_ref(&v2.volume_id)).await.unwrap();
    assert_eq!((d[0].state, d[0].attachments.len()), (VolumeState::Available, 0));
    // Volume tags.
    sb.create_tags(&a, std::slice::from_ref(&v2.volume_id), &[("k".into(), "v".into())]).await.unwrap();
    assert!(sb.create_tags(&b, std::slice::from_ref(&v2.volume_id), &[("k".into(), "v".into())]).await.is_err());
}

#[tokio::test]
async fn accounts_are_isolated() {
    let sb = sandbox(0);
    let vms = sb.run_instances(&creds("alice"), &req(1, "t")).await.unwrap();
    assert!(sb.describe_instances(&creds("bob"), &DescribeFilter::default()).await.unwrap().is_empty());
    let e = sb.terminate_instances(&creds("bob"), &[vms[0].id.clone()]).await.unwrap_err();
    assert!(matches!(e, ConnectorError::NotFound { .. }));
    // The same token in another account is another launch.
    let other = sb.run_instances(&creds("bob"), &req(1, "t")).await.unwrap();
    assert_ne!(other[0].id, vms[0].id);
}

#[tokio::test]
async fn rejects_bad_requests() {
    let sb = sandbox(0);
    let c = creds("a");
    let mut r = req(1, "x");
    r.image_id = "ami-nope".into();
    assert!(matches!(sb.run_instances(&c, &r).await, Err(ConnectorError::NotFound { code, .. }) if code == "InvalidAMIID.NotFound"));
    let mut r = req(1, "y");
    r.instance_type = "z9.huge".into();
    assert!(matches!(sb.run_instances(&c, &r).await, Err(ConnectorError::InvalidRequest { .. })));
    let mut r = req(1, "z");
    r.key_name = Some("missing".into());
    assert!(matches!(sb.run_instances(&c, &r).await, Err(ConnectorError::NotFound { .. })));
    assert!(matches!(sb.import_key_pair(&c, "k", "not a key").await, Err(ConnectorError::InvalidRequest { .. })));
    assert!(matches!(sb.describe_instances(&c, &DescribeFilter::ids(&["i-nope".into()])).await, Err(ConnectorError::NotFound { .. })));
}

#[tokio::test]
async fn capacity_and_failure_rate() {
    let mut s = sandbox(0).settings;
    s.capacity = Some(2);
    let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), s.clone());
    let c = creds("a");
    sb.run_instances(&c, &req(2, "a")).await.unwrap();
    let e = sb.run_instances(&c, &req(1, "b")).await.unwrap_err();
    assert!(matches!(&e, ConnectorError::Capacity { message, .. } if message.contains("2 of 2")), "{e}");

    s.capacity = None;
    s.failure_rate = 1.0;
    let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), s);
    assert!(matches!(sb.run_instances(&c, &req(1, "c")).await, Err(ConnectorError::Capacity { .. })));
}

#[tokio::test]
async fn catalogue_and_params() {
    let mut m = BTreeMap::new();
    m.insert("boot.delay.ms".to_string(), "5".to_string());
    m.insert("public.ips".to_string(), "false".to_string());
    let s = SandboxSettings::from_params(&ParamValues::new(m));
    assert_eq!(s.boot_delay, Duration::from_millis(5));
    assert!(!s.public_ips);
    assert_eq!(s.workers, 20);
    let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), s);
    let c = creds("a");
    assert_eq!(sb.list_images(&c).await.unwrap().len(), IMAGES.len());
    assert!(sb.list_instance_types(&c).await.unwrap().iter().any(|t| t.name == "t2.micro" && t.vcpus == Some(1)));
    let vms = sb.run_instances(&c, &req(1, "p")).await.unwrap();
    assert_eq!(vms[0].public_ip, None);
}
