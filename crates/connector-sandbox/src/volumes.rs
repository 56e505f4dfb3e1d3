//! Volumes with EC2's rules: sizes up to [`MAX_VOLUME_GIB`], in the
//! instance's one zone; a volume attaches only to a running or stopped VM of
//! its account as a free `/dev/sd[b-z]` or `/dev/xvd[b-z]`, and is deleted
//! only when detached.

use super::*;

impl SandboxConnector {
    pub(crate) async fn do_create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        let zone = format!("{}a", self.instance);
        self.enter(creds, |w, acct| {
            if req.size_gib == 0 || req.size_gib > MAX_VOLUME_GIB {
                return Err(err_invalid(
                    "InvalidParameterValue",
                    format!("Volume of {}GiB is out of range 1-{MAX_VOLUME_GIB}", req.size_gib),
                ));
            }
            if req.zone != zone {
                return Err(err_invalid(
                    "InvalidParameterValue",
                    format!("Invalid availability zone: [{}]; this sandbox has one zone, {zone}", req.zone),
                ));
            }
            if let Some(t) =
                req.volume_type.as_deref().filter(|t| !matches!(*t, "standard" | "gp2" | "gp3" | "io1" | "io2" | "st1" | "sc1"))
            {
                return Err(err_invalid("InvalidParameterValue", format!("Invalid volume type: {t}")));
            }
            launch_options::check_volume(req)?;
            if let Some(snap) = &req.snapshot_id {
                w.check_volume_from(acct, snap, req.size_gib)?;
            }
            w.next += 1;
            let info = VolumeInfo {
                volume_id: format!("vol-{:017x}", w.next ^ 0x7010_0000_0000),
                size_gib: req.size_gib,
                zone: zone.clone(),
                state: VolumeState::Creating,
                attachments: Vec::new(),
            };
            w.volumes.insert(
                info.volume_id.clone(),
                SimVolume { info: info.clone(), account: acct.to_string(), changed_ms: now_ms(), tags: BTreeMap::new() },
            );
            w.record_volume(&info.volume_id, req);
            Ok(info)
        })
        .await
    }

    pub(crate) async fn do_attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        self.enter(creds, |w, acct| {
            let state = w.volume(acct, volume_id)?.info.state;
            w.usable_vm(acct, instance_id)?;
            match state {
                VolumeState::Available => {}
                VolumeState::InUse => return Err(err_invalid("VolumeInUse", format!("{volume_id} is already attached to an instance"))),
                other => return Err(err_invalid("IncorrectState", format!("The volume '{volume_id}' is '{other}'"))),
            }
            if !valid_device(device) {
                return Err(err_invalid("InvalidParameterValue", format!("Value ({device}) for parameter device is invalid.")));
            }
            let taken = w.volumes.values().any(|v| v.info.attachments.iter().any(|a| a.instance_id == instance_id && a.device == device));
            if taken {
                return Err(err_invalid("InvalidParameterValue", format!("Attachment point {device} is already in use")));
            }
            let att = VolumeAttachment {
                volume_id: volume_id.to_string(),
                instance_id: instance_id.to_string(),
                device: device.to_string(),
                state: "attaching".into(),
            };
            let v = w.volume(acct, volume_id)?;
            v.info.state = VolumeState::InUse;
            v.info.attachments = vec![att.clone()];
            v.changed_ms = now_ms();
            Ok(att)
        })
        .await
    }

    pub(crate) async fn do_detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let _ = force;
        self.enter(creds, |w, acct| {
            let v = w.volume(acct, volume_id)?;
            let Some(att) = v.info.attachments.first_mut() else {
                return Err(err_invalid("IncorrectState", format!("Volume '{volume_id}' is in the 'available' state.")));
            };
            if instance_id.is_some_and(|i| i != att.instance_id) {
                return Err(err_not_found(
                    "InvalidAttachment.NotFound",
                    format!("Volume '{volume_id}' is not attached to '{}'", instance_id.unwrap_or_default()),
                ));
            }
            att.state = "detaching".into();
            let out = att.clone();
            v.changed_ms = now_ms();
            Ok(out)
        })
        .await
    }

    pub(crate) async fn do_delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let v = w.volume(acct, volume_id)?;
            match v.info.state {
                VolumeState::Available | VolumeState::Error | VolumeState::Creating => {}
                VolumeState::InUse => return Err(err_invalid("VolumeInUse", format!("Volume {volume_id} is currently attached"))),
                other => return Err(err_invalid("IncorrectState", format!("The volume '{volume_id}' is '{other}'"))),
            }
            w.volumes.remove(volume_id);
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            for id in volume_ids {
                w.volume(acct, id)?;
            }
            Ok(w.volumes
                .values()
                .filter(|v| v.account == acct && (volume_ids.is_empty() || volume_ids.contains(&v.info.volume_id)))
                .map(|v| v.info.clone())
                .collect())
        })
        .await
    }
}
