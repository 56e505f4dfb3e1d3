//! One conformance suite for every connector: the same scenarios, with the
//! same assertions, run against the sandbox (in process), `ec2` and
//! `ec2query` (against moto). A connector passes when each call reaches its
//! cloud and the answer read back says what EC2 would: launch and describe
//! by tag and by id, stop, start and terminate, tags, Elastic IPs and
//! volumes, and EC2's error codes for ids that do not exist. What only one
//! connector does (signing modes, paging, faults, IAM) stays in its own tests.

// Assertions: panicking on an unexpected answer is the point.
#![allow(clippy::unwrap_used)]

use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{
    Connector, ConnectorError, CreateVolumeRequest, Credentials, DescribeFilter, RunRequest, Vm, VmState, VolumeState,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A connector under test, with what its cloud accepts.
pub struct Target<'a> {
    pub conn: &'a dyn Connector,
    pub creds: Credentials,
    /// An image the cloud launches.
    pub image_id: String,
    /// An instance type the cloud offers.
    pub instance_type: String,
    /// The zone volumes are created in (the VMs' zone).
    pub zone: String,
    /// Security groups named at launch.
    pub security_groups: Vec<String>,
}

/// Runs every scenario, in order, each on VMs of its own.
pub async fn run(t: &Target<'_>) {
    launch_and_describe(t).await;
    stop_start_terminate(t).await;
    instance_tags(t).await;
    let vm = t.conn.run_instances(&t.creds, &request(t, "conformance-eip", 1)).await.unwrap_or_else(|e| panic!("{e:?}")).remove(0);
    wait_for(t, &vm.id, VmState::Running).await;
    addresses_and_volumes(t.conn, &t.creds, &vm.id, &t.zone).await;
    unknown_ids_are_not_found(t).await;
}

/// A launch request of `count` VMs tagged with `launch`.
pub fn request(t: &Target<'_>, launch: &str, count: u32) -> RunRequest {
    RunRequest {
        image_id: t.image_id.clone(),
        instance_type: t.instance_type.clone(),
        count,
        key_name: None,
        user_data: Some("#!/bin/sh\necho hello\n".into()),
        security_groups: t.security_groups.clone(),
        subnet_id: None,
        tags: vec![(tags::BROKER.into(), "conformance".into()), (tags::LAUNCH.into(), launch.into()), (tags::USER.into(), "alice".into())],
        client_token: format!("{launch}-token"),
        ..Default::default()
    }
}

fn ids_of(vms: &[Vm]) -> BTreeSet<String> {
    vms.iter().map(|v| v.id.clone()).collect()
}

/// Waits (up to 20 s) until the cloud describes `id` as `state`.
pub async fn wait_for(t: &Target<'_>, id: &str, state: VmState) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = t.conn.describe_instances(&t.creds, &DescribeFilter::ids(&[id.to_string()])).await.unwrap_or_else(|e| panic!("{e:?}"));
        if d.first().is_some_and(|v| v.state == state) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never became {state}: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two tagged VMs: the launch answers them pending or running with the
/// request's tags, image, type and client token; describing by the launch
/// tag, by ids, and by tag key and tag finds exactly them; another tag none.
pub async fn launch_and_describe(t: &Target<'_>) {
    let launch = "conformance-launch";
    let vms = t.conn.run_instances(&t.creds, &request(t, launch, 2)).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(vms.len(), 2, "{vms:?}");
    for vm in &vms {
        assert!(vm.id.starts_with("i-"), "{vm:?}");
        assert_eq!(vm.tag(tags::LAUNCH), Some(launch), "{vm:?}");
        assert_eq!(vm.tag(tags::USER), Some("alice"), "{vm:?}");
        assert_eq!(vm.image_id, t.image_id);
        assert_eq!(vm.instance_type, t.instance_type);
        assert_eq!(vm.client_token.as_deref(), Some(format!("{launch}-token").as_str()));
        assert!(matches!(vm.state, VmState::Pending | VmState::Running), "{vm:?}");
    }
    let ids = ids_of(&vms);
    for id in &ids {
        wait_for(t, id, VmState::Running).await;
    }
    let by_tag = t.conn.describe_instances(&t.creds, &DescribeFilter::tag(tags::LAUNCH, launch)).await.unwrap();
    assert_eq!(ids_of(&by_tag), ids, "describe by tag returns exactly the launched VMs");
    for vm in &by_tag {
        let launched = vms.iter().find(|v| v.id == vm.id).unwrap_or_else(|| panic!("{vm:?}"));
        assert!(vm.private_ip.is_some(), "{vm:?}");
        assert_eq!(vm.private_ip, launched.private_ip);
        assert!(vm.launch_time.is_some(), "{vm:?}");
    }
    let id_list: Vec<String> = ids.iter().cloned().collect();
    assert_eq!(ids_of(&t.conn.describe_instances(&t.creds, &DescribeFilter::ids(&id_list)).await.unwrap()), ids);
    let filter = DescribeFilter { tag_keys: vec![tags::BROKER.into()], tags: vec![(tags::LAUNCH.into(), launch.into())], ids: vec![] };
    assert_eq!(ids_of(&t.conn.describe_instances(&t.creds, &filter).await.unwrap()), ids);
    let none = t.conn.describe_instances(&t.creds, &DescribeFilter::tag(tags::LAUNCH, "no-such-launch")).await.unwrap();
    assert!(none.is_empty(), "{none:?}");
    let states = t.conn.instance_states(&t.creds, &id_list).await.unwrap();
    assert_eq!(states.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>(), ids);
    assert!(states.iter().all(|(_, s)| *s == VmState::Running), "{states:?}");
}

/// Stop, start, reboot and terminate one VM, each change reported with
/// the state it left and the cloud's describe following it.
pub async fn stop_start_terminate(t: &Target<'_>) {
    let vm = t.conn.run_instances(&t.creds, &request(t, "conformance-states", 1)).await.unwrap().remove(0);
    let id = vec![vm.id.clone()];
    wait_for(t, &vm.id, VmState::Running).await;
    let ch = t.conn.stop_instances(&t.creds, &id).await.unwrap();
    assert_eq!((ch.len(), ch[0].id.as_str(), ch[0].previous), (1, vm.id.as_str(), VmState::Running), "{ch:?}");
    assert!(matches!(ch[0].current, VmState::Stopping | VmState::Stopped), "{ch:?}");
    wait_for(t, &vm.id, VmState::Stopped).await;
    let ch = t.conn.start_instances(&t.creds, &id).await.unwrap();
    assert_eq!(ch[0].previous, VmState::Stopped, "{ch:?}");
    assert!(matches!(ch[0].current, VmState::Pending | VmState::Running), "{ch:?}");
    wait_for(t, &vm.id, VmState::Running).await;
    t.conn.reboot_instances(&t.creds, &id).await.unwrap();
    let ch = t.conn.terminate_instances(&t.creds, &id).await.unwrap();
    assert!(matches!(ch[0].current, VmState::ShuttingDown | VmState::Terminated), "{ch:?}");
    wait_for(t, &vm.id, VmState::Terminated).await;
}

/// Tags set on a running VM are described with it; deleted ones are gone.
pub async fn instance_tags(t: &Target<'_>) {
    let vm = t.conn.run_instances(&t.creds, &request(t, "conformance-tags", 1)).await.unwrap().remove(0);
    let id = vec![vm.id.clone()];
    t.conn.create_tags(&t.creds, &id, &[("env".into(), "test".into())]).await.unwrap();
    let d = t.conn.describe_instances(&t.creds, &DescribeFilter::ids(&id)).await.unwrap();
    assert_eq!(d[0].tag("env"), Some("test"), "{d:?}");
    assert_eq!(d[0].tag(tags::LAUNCH), Some("conformance-tags"), "{d:?}");
    let found = t.conn.describe_instances(&t.creds, &DescribeFilter::tag("env", "test")).await.unwrap();
    assert_eq!(ids_of(&found), ids_of(&d));
    t.conn.delete_tags(&t.creds, &id, &["env".into()]).await.unwrap();
    let d = t.conn.describe_instances(&t.creds, &DescribeFilter::ids(&id)).await.unwrap();
    assert_eq!(d[0].tag("env"), None, "{d:?}");
    assert_eq!(d[0].tag(tags::LAUNCH), Some("conformance-tags"), "{d:?}");
}

/// Elastic IPs and volumes: each call reaches the cloud and its answer is
/// read back; the cloud's own error codes come through typed.
pub async fn addresses_and_volumes(conn: &dyn Connector, creds: &Credentials, vm_id: &str, zone: &str) {
    let addr = conn.allocate_address(creds).await.unwrap();
    assert!(addr.allocation_id.starts_with("eipalloc-") && !addr.public_ip.is_empty(), "{addr:?}");
    let assoc = conn.associate_address(creds, &addr.allocation_id, vm_id, false).await.unwrap();
    assert!(assoc.starts_with("eipassoc-"), "{assoc}");
    let d = conn.describe_addresses(creds, std::slice::from_ref(&addr.allocation_id)).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].instance_id.as_deref(), d[0].association_id.as_deref()), (Some(vm_id), Some(assoc.as_str())));
    assert_eq!(d[0].public_ip, addr.public_ip);
    conn.disassociate_address(creds, &assoc).await.unwrap();
    let d = conn.describe_addresses(creds, std::slice::from_ref(&addr.allocation_id)).await.unwrap();
    assert_eq!(d[0].instance_id, None, "{d:?}");
    conn.release_address(creds, &addr.allocation_id).await.unwrap();
    assert!(!conn.describe_addresses(creds, &[]).await.unwrap().iter().any(|a| a.allocation_id == addr.allocation_id));
    let e = conn.release_address(creds, "eipalloc-00000000000000000").await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::NotFound { code, .. } | ConnectorError::InvalidRequest { code, .. } if code.starts_with("InvalidAllocationID")),
        "{e:?}"
    );

    let req = CreateVolumeRequest { size_gib: 8, zone: zone.into(), volume_type: Some("gp2".into()), ..Default::default() };
    let v = conn.create_volume(creds, &req).await.unwrap();
    assert!(v.volume_id.starts_with("vol-"), "{v:?}");
    assert_eq!((v.size_gib, v.zone.as_str()), (8, zone));
    assert!(matches!(v.state, VolumeState::Creating | VolumeState::Available), "{v:?}");
    let att = conn.attach_volume(creds, &v.volume_id, vm_id, "/dev/sdf").await.unwrap();
    assert_eq!((att.volume_id.as_str(), att.instance_id.as_str(), att.device.as_str()), (v.volume_id.as_str(), vm_id, "/dev/sdf"));
    let d = conn.describe_volumes(creds, std::slice::from_ref(&v.volume_id)).await.unwrap();
    assert_eq!(d[0].state, VolumeState::InUse, "{d:?}");
    assert_eq!(d[0].attachments.len(), 1);
    assert_eq!(d[0].attachments[0].instance_id, vm_id);
    assert!(conn.describe_volumes(creds, &[]).await.unwrap().iter().any(|x| x.volume_id == v.volume_id));
    conn.detach_volume(creds, &v.volume_id, Some(vm_id), false).await.unwrap();
    let d = conn.describe_volumes(creds, std::slice::from_ref(&v.volume_id)).await.unwrap();
    assert_eq!((d[0].state, d[0].attachments.len()), (VolumeState::Available, 0), "{d:?}");
    conn.delete_volume(creds, &v.volume_id).await.unwrap();
    let e = conn.describe_volumes(creds, std::slice::from_ref(&v.volume_id)).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidVolume.NotFound"), "{e:?}");
}

/// Ids the cloud never gave: EC2's not-found codes, typed.
pub async fn unknown_ids_are_not_found(t: &Target<'_>) {
    let unknown = vec!["i-0123456789abcdef0".to_string()];
    let e = t.conn.describe_instances(&t.creds, &DescribeFilter::ids(&unknown)).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidInstanceID.NotFound"), "{e:?}");
    match t.conn.start_instances(&t.creds, &unknown).await.unwrap_err() {
        ConnectorError::NotFound { code, message } => {
            assert_eq!(code, "InvalidInstanceID.NotFound");
            assert!(message.contains("i-0123456789abcdef0"), "{message}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let e = t.conn.describe_volumes(&t.creds, &["vol-0123456789abcdef0".to_string()]).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidVolume.NotFound"), "{e:?}");
}
