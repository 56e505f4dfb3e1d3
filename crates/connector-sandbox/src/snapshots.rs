//! Snapshots and images made from instances, with EC2's rules and codes: a
//! snapshot is taken of a volume of its account (`InvalidVolume.NotFound`
//! else) and goes `pending -> completed` after `boot.delay.ms`; a volume
//! made from it is at least its size (`InvalidParameterValue`); a snapshot
//! an image of the account uses cannot be deleted (`InvalidSnapshot.InUse`);
//! another account's snapshot is `InvalidSnapshot.NotFound`. `CreateImage`
//! takes a running or stopped VM of the account, a name of 3-128 allowed
//! characters unique in the account (`InvalidAMIName.Malformed`,
//! `InvalidAMIName.Duplicate`), snapshots each attached volume and adds an
//! image that account lists and deregisters. It launches in that account
//! and in the accounts it shares it with (launch permissions: `accounts`),
//! which the broker grants for the users it shares the image with.

use super::*;
use cloudbroker_connector_api::{CreateImageRequest, SnapshotInfo};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimSnapshot {
    pub(crate) info: SnapshotInfo,
    pub(crate) account: String,
    /// Wall-clock time of the last state change, in ms since the epoch.
    pub(crate) changed_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimImage {
    pub(crate) info: ImageInfo,
    pub(crate) account: String,
    /// The image the instance was launched from.
    pub(crate) source_image: String,
    /// The snapshots of the instance's volumes it holds.
    pub(crate) snapshots: Vec<String>,
    /// The other accounts it is shared with (launch permissions: `accounts`).
    #[serde(default)]
    pub(crate) launch_accounts: std::collections::BTreeSet<String>,
}

/// Whether `name` is an AMI name EC2 accepts.
fn valid_ami_name(name: &str) -> bool {
    (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'(' | b')' | b'[' | b']' | b' ' | b'.' | b'/' | b'-' | b'\'' | b'@' | b'_'))
}

impl World {
    pub(crate) fn snapshot<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimSnapshot, ConnectorError> {
        match self.snapshots.get_mut(id) {
            Some(s) if s.account == account => Ok(s),
            _ => Err(err_not_found("InvalidSnapshot.NotFound", format!("The snapshot '{id}' does not exist."))),
        }
    }

    /// The snapshot's size when a volume of `size_gib` may be made from it.
    pub(crate) fn check_volume_from(&mut self, account: &str, id: &str, size_gib: u32) -> Result<(), ConnectorError> {
        let s = self.snapshot(account, id)?;
        if s.info.state == "error" {
            return Err(err_invalid("IncorrectState", format!("Snapshot '{id}' is in the 'error' state.")));
        }
        if size_gib < s.info.size_gib {
            return Err(err_invalid(
                "InvalidParameterValue",
                format!("Volume of size {size_gib}GiB is smaller than snapshot '{id}', expect size >= {}GiB", s.info.size_gib),
            ));
        }
        Ok(())
    }

    /// Whether the account owns `image_id` (one it made).
    pub(crate) fn own_image(&self, account: &str, image_id: &str) -> bool {
        self.images.get(image_id).is_some_and(|i| i.account == account)
    }

    fn take_snapshot(&mut self, account: &str, volume_id: &str, description: &str) -> Result<SnapshotInfo, ConnectorError> {
        let size = self.volume(account, volume_id)?.info.size_gib;
        self.next += 1;
        let info = SnapshotInfo {
            snapshot_id: format!("snap-{:017x}", self.next ^ 0x5a70_0000_0000),
            volume_id: volume_id.to_string(),
            size_gib: size,
            state: "pending".into(),
            description: description.to_string(),
            start_time: Some(Utc::now()),
            progress: "0%".into(),
        };
        self.snapshots
            .insert(info.snapshot_id.clone(), SimSnapshot { info: info.clone(), account: account.to_string(), changed_ms: now_ms() });
        Ok(info)
    }
}

impl SandboxConnector {
    /// Snapshots go `pending -> completed` after the boot delay.
    pub(crate) fn tick_snapshots(w: &mut World, now: i64, delay: i64) {
        for s in w.snapshots.values_mut() {
            if s.info.state == "pending" && now.saturating_sub(s.changed_ms) >= delay {
                s.info.state = "completed".into();
                s.info.progress = "100%".into();
                s.changed_ms = now;
            }
        }
    }

    pub(crate) async fn do_create_snapshot(
        &self,
        creds: &Credentials,
        volume_id: &str,
        description: &str,
    ) -> Result<SnapshotInfo, ConnectorError> {
        if description.chars().count() > 255 {
            return Err(err_invalid("InvalidParameterValue", "The description is at most 255 characters"));
        }
        self.enter(creds, |w, acct| w.take_snapshot(acct, volume_id, description)).await
    }

    pub(crate) async fn do_delete_snapshot(&self, creds: &Credentials, snapshot_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            w.snapshot(acct, snapshot_id)?;
            if let Some(img) = w.images.values().find(|i| i.account == acct && i.snapshots.iter().any(|s| s == snapshot_id)) {
                return Err(err_invalid(
                    "InvalidSnapshot.InUse",
                    format!("The snapshot {snapshot_id} is currently in use by {}", img.info.id),
                ));
            }
            w.snapshots.remove(snapshot_id);
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_snapshots(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<SnapshotInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            for id in ids {
                w.snapshot(acct, id)?;
            }
            Ok(w.snapshots
                .values()
                .filter(|s| s.account == acct && (ids.is_empty() || ids.contains(&s.info.snapshot_id)))
                .map(|s| s.info.clone())
                .collect())
        })
        .await
    }

    pub(crate) async fn do_create_image(&self, creds: &Credentials, req: &CreateImageRequest) -> Result<String, ConnectorError> {
        self.enter(creds, |w, acct| {
            let source = w.usable_vm(acct, &req.instance_id)?.vm.image_id.clone();
            if !valid_ami_name(&req.name) {
                return Err(err_invalid(
                    "InvalidAMIName.Malformed",
                    format!("AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_' ({})", req.name),
                ));
            }
            if let Some(i) = w.images.values().find(|i| i.account == acct && i.info.name.as_deref() == Some(req.name.as_str())) {
                return Err(err_invalid("InvalidAMIName.Duplicate", format!("AMI name {} is already in use by AMI {}", req.name, i.info.id)));
            }
            if req.description.as_deref().is_some_and(|d| d.chars().count() > 255) {
                return Err(err_invalid("InvalidParameterValue", "The description is at most 255 characters"));
            }
            w.next += 1;
            let id = format!("ami-{:017x}", w.next ^ 0xa310_0000_0000);
            let volumes: Vec<String> = w
                .volumes
                .values()
                .filter(|v| v.account == acct && v.info.attachments.iter().any(|a| a.instance_id == req.instance_id))
                .map(|v| v.info.volume_id.clone())
                .collect();
            let mut snapshots = Vec::new();
            for v in volumes {
                let d = format!("Created by CreateImage({}) for {id} from {v}", req.instance_id);
                snapshots.push(w.take_snapshot(acct, &v, &d)?.snapshot_id);
            }
            let info =
                ImageInfo { id: id.clone(), name: Some(req.name.clone()), description: req.description.clone(), state: Some("available".into()) };
            w.images.insert(id.clone(), SimImage { info, account: acct.to_string(), source_image: source, snapshots, launch_accounts: Default::default() });
            Ok(id)
        })
        .await
    }

    pub(crate) async fn do_deregister_image(&self, creds: &Credentials, image_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            if !w.own_image(acct, image_id) {
                return Err(err_not_found("InvalidAMIID.NotFound", format!("The image id '[{image_id}]' does not exist")));
            }
            w.images.remove(image_id);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn sandbox() -> SandboxConnector {
        SandboxConnector::new(
            InstanceName::parse("sb").unwrap(),
            SandboxSettings {
                boot_delay: Duration::ZERO,
                failure_rate: 0.0,
                capacity: None,
                public_ips: true,
                keep_tags: true,
                api_latency: Duration::ZERO,
                workers: 4,
            },
        )
    }

    #[tokio::test]
    async fn snapshots_and_images_follow_ec2_rules() {
        let sb = sandbox();
        let (a, b) = (Credentials::new("alice", "s"), Credentials::new("bob", "s"));
        let code = |e: ConnectorError| e.code().unwrap_or_default().to_string();
        let run = |image: &str| RunRequest { image_id: image.into(), instance_type: "t2.micro".into(), count: 1, ..RunRequest::default() };
        let vm = sb.run_instances(&a, &run("ami-sandbox-debian-12")).await.unwrap().remove(0);
        let vol = sb.create_volume(&a, &CreateVolumeRequest { size_gib: 4, zone: "sba".into(), ..Default::default() }).await.unwrap();
        assert_eq!(code(sb.create_snapshot(&a, "vol-nope", "").await.unwrap_err()), "InvalidVolume.NotFound");
        assert_eq!(code(sb.create_snapshot(&b, &vol.volume_id, "").await.unwrap_err()), "InvalidVolume.NotFound");
        let s = sb.create_snapshot(&a, &vol.volume_id, "d").await.unwrap();
        assert_eq!((s.state.as_str(), s.size_gib, s.volume_id.as_str()), ("pending", 4, vol.volume_id.as_str()));
        let d = sb.describe_snapshots(&a, std::slice::from_ref(&s.snapshot_id)).await.unwrap();
        assert_eq!((d[0].state.as_str(), d[0].progress.as_str()), ("completed", "100%"));
        assert_eq!(code(sb.describe_snapshots(&b, std::slice::from_ref(&s.snapshot_id)).await.unwrap_err()), "InvalidSnapshot.NotFound");
        assert!(sb.describe_snapshots(&b, &[]).await.unwrap().is_empty());
        // A volume from it: at least its size.
        let from = |size| CreateVolumeRequest {
            size_gib: size,
            zone: "sba".into(),
            snapshot_id: Some(s.snapshot_id.clone()),
            ..Default::default()
        };
        assert_eq!(code(sb.create_volume(&a, &from(3)).await.unwrap_err()), "InvalidParameterValue");
        assert_eq!(code(sb.create_volume(&b, &from(4)).await.unwrap_err()), "InvalidSnapshot.NotFound");
        assert_eq!(sb.create_volume(&a, &from(4)).await.unwrap().size_gib, 4);
        // An image of the VM, with its attached volume's snapshot in use.
        sb.describe_volumes(&a, &[]).await.unwrap();
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        sb.attach_volume(&a, &vol.volume_id, &vm.id, "/dev/sdf").await.unwrap();
        let img = |name: &str| CreateImageRequest { instance_id: vm.id.clone(), name: name.into(), description: None, no_reboot: true };
        assert_eq!(code(sb.create_image(&a, &img("x")).await.unwrap_err()), "InvalidAMIName.Malformed");
        assert_eq!(code(sb.create_image(&b, &img("mine")).await.unwrap_err()), "InvalidInstanceID.NotFound");
        let ami = sb.create_image(&a, &img("mine")).await.unwrap();
        assert_eq!(code(sb.create_image(&a, &img("mine")).await.unwrap_err()), "InvalidAMIName.Duplicate");
        assert!(sb.list_images(&a).await.unwrap().iter().any(|i| i.id == ami));
        assert!(!sb.list_images(&b).await.unwrap().iter().any(|i| i.id == ami), "listed by its account alone");
        let held = sb.describe_snapshots(&a, &[]).await.unwrap().into_iter().find(|x| x.snapshot_id != s.snapshot_id).unwrap();
        assert_eq!(code(sb.delete_snapshot(&a, &held.snapshot_id).await.unwrap_err()), "InvalidSnapshot.InUse");
        // Launched by its account and by another the broker let launch it.
        sb.run_instances(&a, &run(&ami)).await.unwrap();
        sb.modify_image_launch_permission(&a, &ami, &["bob".to_string()], &[]).await.unwrap();
        sb.run_instances(&b, &run(&ami)).await.unwrap();
        assert_eq!(code(sb.deregister_image(&b, &ami).await.unwrap_err()), "InvalidAMIID.NotFound");
        sb.deregister_image(&a, &ami).await.unwrap();
        assert_eq!(code(sb.run_instances(&a, &run(&ami)).await.unwrap_err()), "InvalidAMIID.NotFound");
        sb.delete_snapshot(&a, &held.snapshot_id).await.unwrap();
        sb.delete_snapshot(&a, &s.snapshot_id).await.unwrap();
        assert_eq!(code(sb.delete_snapshot(&a, &s.snapshot_id).await.unwrap_err()), "InvalidSnapshot.NotFound");
    }
}
