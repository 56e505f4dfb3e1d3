//! Volumes of projects: created (in the project the actor acts in),
//! attached to one of the project's VMs, detached, tagged and deleted
//! through the cloud, and recorded so that listings answer from the
//! broker's records. A listing asks the cloud only about the project's
//! volumes that are in transition (`creating`, `attaching`, `detaching`,
//! `deleting`), so settled volumes cost no cloud call. Every member of the
//! project sees and acts on its volumes, whoever created them; a viewer
//! sees them but cannot act (403); another project's volumes and VMs are
//! "not found" (admins see every project's). A volume is only attached to a
//! VM of its own project. A project has at most [`MAX_VOLUMES`] live
//! volumes, each at most `MAX_TAGS` tags. A new volume is created with the
//! credential a launch in the project would use; a volume made with a
//! shared credential is acted on only while that credential may still be
//! used there (else 403, see [`crate::vault`]).

use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{CredentialId, InstanceName, Tags, VmId, VolumeId, VolumeSize};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::limits::MAX_VOLUMES;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::{ConnectorError, CreateVolumeRequest, VolumeState};
use cloudbroker_store::limits::Owned;
use cloudbroker_store::resources::VolumeRow;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A volume's attachment, as the broker knows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Attachment {
    pub vm: VmId,
    pub device: String,
    /// `attaching`, `attached`, `detaching`.
    pub state: String,
    /// When the attachment last changed (its attach time, once attached;
    /// the EC2 front's `attachTime`).
    #[serde(skip)]
    pub since: DateTime<Utc>,
}

/// A volume as the broker knows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Volume {
    #[serde(skip)]
    pub instance: InstanceName,
    pub volume_id: VolumeId,
    pub size_gib: u32,
    pub zone: String,
    pub volume_type: Option<String>,
    /// EC2's state name (`creating`, `available`, `in-use`, ...).
    pub state: String,
    pub attachment: Option<Attachment>,
    pub tags: BTreeMap<String, String>,
    /// As given at its creation (`None`: not given, the cloud's default;
    /// volumes recorded before these were kept: `None`).
    pub encrypted: Option<bool>,
    pub iops: Option<u32>,
    /// MiB/s.
    pub throughput: Option<u32>,
    /// The snapshot it was made from.
    pub snapshot_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What a new volume is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub size: VolumeSize,
    /// The availability zone (the cloud checks it).
    pub zone: String,
    pub volume_type: Option<String>,
    /// User tags (reserved prefixes refused).
    pub tags: Tags,
}

/// A new volume's options beyond its [`VolumeSpec`] (EC2's `Iops`,
/// `Encrypted`, `Throughput`): `None` is the cloud's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeOptions {
    pub iops: Option<u32>,
    pub encrypted: Option<bool>,
    /// MiB/s.
    pub throughput: Option<u32>,
}

impl Volume {
    pub(super) fn from_row(r: VolumeRow, instance: &InstanceName) -> Self {
        let attachment = match (r.vm_id, r.device) {
            (Some(vm), Some(device)) => Some(Attachment {
                vm: VmId::from_stored(vm),
                device,
                state: r.attach_state.unwrap_or_else(|| "attached".into()),
                since: r.updated_at,
            }),
            _ => None,
        };
        Self {
            instance: instance.clone(),
            volume_id: VolumeId::from_stored(r.volume_id),
            size_gib: u32::try_from(r.size_gib).unwrap_or(0),
            zone: r.zone,
            volume_type: r.volume_type,
            state: r.state,
            attachment,
            tags: r.tags,
            encrypted: r.encrypted,
            iops: r.iops.and_then(|n| u32::try_from(n).ok()),
            throughput: r.throughput.and_then(|n| u32::try_from(n).ok()),
            snapshot_id: r.snapshot_id,
            created_at: r.created_at,
        }
    }
}

impl VolumeSpec {
    /// The spec's own fields (the size was parsed already; the cloud checks the zone exists).
    pub(super) fn check(&self) -> ServiceResult<()> {
        if self.zone.is_empty() || self.zone.len() > 64 || self.zone.chars().any(char::is_control) {
            return Err(ServiceError::invalid_field("zone", "an availability zone is 1-64 characters"));
        }
        if let Some(t) =
            self.volume_type.as_deref().filter(|t| t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(ServiceError::invalid_field(
                "volume_type",
                format!("'{}' is not a volume type (gp3, gp2, ...)", t.chars().take(40).collect::<String>()),
            ));
        }
        Ok(())
    }
}

/// A volume in the audit log.
fn target<'a>(instance: &'a InstanceName, id: &'a VolumeId) -> AuditTarget<'a> {
    AuditTarget::CloudResource { instance: instance.as_str(), id: id.as_str() }
}

fn transitional(r: &VolumeRow) -> bool {
    matches!(r.state.as_str(), "creating" | "deleting") || matches!(r.attach_state.as_deref(), Some("attaching" | "detaching"))
}

/// Device names: `/dev/` and 1-32 letters, digits or `/`.
pub(super) fn check_device(device: &str) -> ServiceResult<()> {
    let ok = device
        .strip_prefix("/dev/")
        .is_some_and(|d| !d.is_empty() && d.len() <= 32 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid_field(
            "device",
            format!("'{}' is not a device name (e.g. /dev/sdf)", device.chars().take(40).collect::<String>()),
        ))
    }
}

impl Provisioning {
    /// A live volume the actor sees (its project's; any for admins).
    pub(super) async fn visible_volume(&self, actor: &Actor, instance: &InstanceName, id: &VolumeId) -> ServiceResult<VolumeRow> {
        match self.store.volume(instance.as_str(), id.as_str()).await? {
            Some(r) if actor.sees(&r.project) && r.ended_at.is_none() => Ok(r),
            _ => Err(ServiceError::NotFound(Resource::Volume(id.clone()))),
        }
    }

    /// A live volume the actor sees and may act on (a viewer may not: 403).
    pub(super) async fn actable_volume(&self, actor: &Actor, instance: &InstanceName, id: &VolumeId) -> ServiceResult<VolumeRow> {
        let row = self.visible_volume(actor, instance, id).await?;
        actor.require_act()?;
        Ok(row)
    }

    /// Creates a volume on `instance` in the actor's project, with the
    /// credentials a launch there would use.
    pub async fn create_volume(&self, actor: &Actor, instance: &InstanceName, spec: VolumeSpec) -> ServiceResult<Volume> {
        self.create_volume_with(actor, instance, spec, VolumeOptions::default()).await
    }

    /// [`Self::create_volume`] with the performance and encryption options
    /// EC2 clients may ask for (passed to the cloud, which checks them
    /// against the volume type).
    pub async fn create_volume_with(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        spec: VolumeSpec,
        options: VolumeOptions,
    ) -> ServiceResult<Volume> {
        self.create_volume_from(actor, instance, spec, options, None).await
    }

    /// [`Self::create_volume_with`], from `snapshot` when given: a snapshot
    /// of the actor's project (any other is "not found"); the cloud checks
    /// the size is at least the snapshot's.
    pub async fn create_volume_from(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        spec: VolumeSpec,
        options: VolumeOptions,
        snapshot: Option<&str>,
    ) -> ServiceResult<Volume> {
        actor.require_act()?;
        spec.check()?;
        if let Some(s) = snapshot {
            self.volume_snapshot(actor, instance, s).await?;
        }
        let (connector, _, _) = self.connector(instance)?;
        let (creds, cred_id) = self.vault.credentials_for_launch(actor, instance).await?;
        crate::limits::check(&self.store, Owned::Volumes, actor.project.as_str(), MAX_VOLUMES).await?;
        let req = CreateVolumeRequest {
            size_gib: spec.size.gib(),
            zone: spec.zone.clone(),
            volume_type: spec.volume_type.clone(),
            iops: options.iops,
            encrypted: options.encrypted,
            throughput: options.throughput,
            snapshot_id: snapshot.map(str::to_string),
        };
        let info = connector.create_volume(&creds, &req).await?;
        let id =
            VolumeId::parse(&info.volume_id).map_err(|e| ServiceError::Internal(format!("the cloud answered an odd volume id: {e}")))?;
        let row = self
            .store
            .insert_volume_capped(
                MAX_VOLUMES,
                instance.as_str(),
                id.as_str(),
                actor.project.as_str(),
                actor.name.as_str(),
                cred_id.as_str(),
                i64::from(info.size_gib),
                &info.zone,
                spec.volume_type.as_deref(),
                info.state.as_str(),
                spec.tags.as_map(),
            )
            .await;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                // Not recorded (the cap was reached meanwhile, or the store failed): give it back.
                if let Err(de) = connector.delete_volume(&creds, id.as_str()).await {
                    tracing::error!(instance = %instance, volume = %id, error = %de, "a volume the broker could not record was not deleted");
                }
                return Err(crate::limits::capped(e));
            }
        };
        let row = self.record_volume_options(instance, row, &options, snapshot).await?;
        if !spec.tags.is_empty() {
            let pairs: Vec<(String, String)> = spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            match connector.create_tags(&creds, &[id.to_string()], &pairs).await {
                Ok(()) | Err(ConnectorError::Unsupported { .. }) => {}
                Err(e) => tracing::warn!(instance = %instance, volume = %id, error = %e, "volume tags kept by the broker only"),
            }
        }
        let event = AuditEvent::ok(AuditAction::VolumeCreate, target(instance, &id)).detail(format!("{} GiB", info.size_gib));
        audit::record_by(&self.store, actor, &event).await?;
        Ok(Volume::from_row(row, instance))
    }

    /// Records a new volume's options (those given; none: nothing to
    /// record) and answers its row with them.
    async fn record_volume_options(
        &self,
        instance: &InstanceName,
        mut row: VolumeRow,
        options: &VolumeOptions,
        snapshot: Option<&str>,
    ) -> ServiceResult<VolumeRow> {
        let recorded = cloudbroker_store::resources::VolumeOptionsRow {
            encrypted: options.encrypted,
            iops: options.iops.map(i64::from),
            throughput: options.throughput.map(i64::from),
            snapshot_id: snapshot.map(str::to_string),
        };
        if recorded != cloudbroker_store::resources::VolumeOptionsRow::default() {
            self.store.set_volume_options(instance.as_str(), &row.volume_id, &recorded).await?;
            row.encrypted = recorded.encrypted;
            row.iops = recorded.iops;
            row.throughput = recorded.throughput;
            row.snapshot_id = recorded.snapshot_id;
        }
        Ok(row)
    }

    /// Attaches a volume to a VM of its project as `device`.
    pub async fn attach_volume(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &VolumeId,
        vm: &VmId,
        device: &str,
    ) -> ServiceResult<Volume> {
        check_device(device)?;
        let row = self.actable_volume(actor, instance, id).await?;
        let (_, cloud_vm) = self.project_vm_on(actor, instance, &row.project, vm).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("volume '{id}'")).await?;
        let att = connector.attach_volume(&creds, id.as_str(), &cloud_vm, device).await?;
        let device = if att.device.is_empty() { device.to_string() } else { att.device };
        self.store
            .set_volume_state(
                instance.as_str(),
                id.as_str(),
                VolumeState::InUse.as_str(),
                Some(vm.as_str()),
                Some(&device),
                Some(&att.state),
            )
            .await?;
        audit::record_by(
            &self.store,
            actor,
            &AuditEvent::ok(AuditAction::VolumeAttach, target(instance, id)).detail(format!("{vm} {device}")).in_project(&row.project),
        )
        .await?;
        self.volume(actor, instance, id).await
    }

    /// The cloud instance a detach names: `vm`, when given, must be a VM of
    /// `project` on `instance` that the actor sees (any other is "not found").
    pub(super) async fn detach_from(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        project: &str,
        vm: Option<&VmId>,
    ) -> ServiceResult<Option<String>> {
        let Some(vm) = vm else { return Ok(None) };
        let v = self.owned(actor, vm).await?;
        if v.project.as_str() != project || &v.instance != instance {
            return Err(ServiceError::NotFound(Resource::Vm(vm.clone())));
        }
        Ok(v.cloud_id)
    }

    /// Detaches a volume (from `vm` when given, which must be of its project).
    pub async fn detach_volume(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &VolumeId,
        vm: Option<&VmId>,
        force: bool,
    ) -> ServiceResult<Volume> {
        let row = self.actable_volume(actor, instance, id).await?;
        let cloud_vm = self.detach_from(actor, instance, &row.project, vm).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("volume '{id}'")).await?;
        let att = connector.detach_volume(&creds, id.as_str(), cloud_vm.as_deref(), force).await?;
        let (state, vm_id, device, attach) = if att.state == "detached" {
            (VolumeState::Available.as_str(), None, None, None)
        } else {
            (
                VolumeState::InUse.as_str(),
                row.vm_id.as_deref(),
                row.device.as_deref().or(Some(att.device.as_str())),
                Some(att.state.as_str()),
            )
        };
        self.store.set_volume_state(instance.as_str(), id.as_str(), state, vm_id, device, attach).await?;
        let event = AuditEvent::ok(AuditAction::VolumeDetach, target(instance, id))
            .detail(row.vm_id.as_deref().unwrap_or(""))
            .in_project(&row.project);
        audit::record_by(&self.store, actor, &event).await?;
        self.volume(actor, instance, id).await
    }

    /// Deletes a volume (the cloud refuses while attached).
    pub async fn delete_volume(&self, actor: &Actor, instance: &InstanceName, id: &VolumeId) -> ServiceResult<()> {
        let row = self.actable_volume(actor, instance, id).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("volume '{id}'")).await?;
        connector.delete_volume(&creds, id.as_str()).await?;
        self.store.end_volume(instance.as_str(), id.as_str()).await?;
        let event = AuditEvent::ok(AuditAction::VolumeDelete, target(instance, id)).in_project(&row.project).about(&row.user);
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }

    /// Volume `id`, which the actor may act on, and its tags once `set` and
    /// `remove` are applied, checked like a VM's (see `retagged`).
    pub(super) async fn retagged_volume(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &VolumeId,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<(VolumeRow, BTreeMap<String, String>)> {
        let row = self.actable_volume(actor, instance, id).await?;
        // `Name` is a tag like any other on a volume (EC2 clients name volumes with it).
        let name = crate::domain::NAME_TAG;
        Tags::parse(set.iter().filter(|(k, _)| k.as_str() != name).map(|(k, v)| (k.clone(), v.clone())).collect())?;
        if set.get(name).is_some_and(|n| n.chars().count() > 256 || n.chars().any(char::is_control)) {
            return Err(ServiceError::invalid_field("tags", "the Name tag is at most 256 characters, no control characters"));
        }
        if remove.iter().any(|k| Tags::is_reserved(k) && k != name) {
            return Err(ServiceError::invalid_field("tags", "reserved tags (cloudbroker:, aws:) cannot be removed"));
        }
        let mut merged = row.tags.clone();
        for k in remove {
            merged.remove(k);
        }
        merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged.len() > crate::domain::MAX_TAGS {
            return Err(ServiceError::LimitExceeded { limit: crate::limits::Limit::Tags, max: crate::domain::MAX_TAGS as i64 });
        }
        Ok((row, merged))
    }

    /// Sets and removes user tags of a volume; put on
    /// the cloud's volume too where the cloud keeps tags.
    pub async fn tag_volume(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &VolumeId,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<Volume> {
        let (row, merged) = self.retagged_volume(actor, instance, id, set, remove).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("volume '{id}'")).await?;
        let ids = [id.to_string()];
        let pushed = async {
            if !remove.is_empty() {
                connector.delete_tags(&creds, &ids, remove).await?;
            }
            if !set.is_empty() {
                let pairs: Vec<(String, String)> = set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                connector.create_tags(&creds, &ids, &pairs).await?;
            }
            Ok::<(), ConnectorError>(())
        };
        match pushed.await {
            Ok(()) | Err(ConnectorError::Unsupported { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.store.set_volume_tags(instance.as_str(), id.as_str(), &merged).await?;
        self.volume(actor, instance, id).await
    }

    /// One volume the caller sees, from the records.
    pub async fn volume(&self, actor: &Actor, instance: &InstanceName, id: &VolumeId) -> ServiceResult<Volume> {
        let row = self.visible_volume(actor, instance, id).await?;
        Ok(Volume::from_row(row, instance))
    }

    /// The volumes of the caller's project on `instance`, oldest first, from
    /// the records; those in transition are refreshed from the cloud first.
    pub async fn volumes(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Vec<Volume>> {
        let mut rows = self.store.volumes(actor.project.as_str(), instance.as_str()).await?;
        if rows.iter().any(transitional) {
            // A cloud that cannot answer now leaves the records as they are.
            match self.refresh_volumes(instance, &rows).await {
                Ok(()) => rows = self.store.volumes(actor.project.as_str(), instance.as_str()).await?,
                Err(e) if !e.is_internal() => tracing::warn!(instance = %instance, error = %e, "volumes in transition not refreshed"),
                Err(e) => return Err(e),
            }
        }
        Ok(rows.into_iter().map(|r| Volume::from_row(r, instance)).collect())
    }

    /// Asks the cloud about the volumes in transition among `rows` (one call
    /// per credential) and records what it says.
    async fn refresh_volumes(&self, instance: &InstanceName, rows: &[VolumeRow]) -> ServiceResult<()> {
        let (connector, _, _) = self.connector(instance)?;
        let mut by_cred: HashMap<&str, Vec<&VolumeRow>> = HashMap::new();
        for r in rows.iter().filter(|r| transitional(r)) {
            by_cred.entry(r.credential_id.as_str()).or_default().push(r);
        }
        for (cred, group) in by_cred {
            let creds = self.vault.credentials_by_id(&CredentialId::from_stored(cred.to_string())).await?;
            let ids: Vec<String> = group.iter().map(|r| r.volume_id.clone()).collect();
            let infos = match connector.describe_volumes(&creds, &ids).await {
                Ok(i) => i,
                // One of them is gone: ask one by one.
                Err(ConnectorError::NotFound { .. }) if ids.len() > 1 => {
                    let mut found = Vec::new();
                    for id in &ids {
                        match connector.describe_volumes(&creds, std::slice::from_ref(id)).await {
                            Ok(i) => found.extend(i),
                            Err(ConnectorError::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    found
                }
                Err(ConnectorError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            for r in group {
                match infos.iter().find(|i| i.volume_id == r.volume_id) {
                    None => self.store.end_volume(instance.as_str(), &r.volume_id).await?,
                    Some(i) if i.state == VolumeState::Deleted => self.store.end_volume(instance.as_str(), &r.volume_id).await?,
                    Some(i) => match i.attachments.iter().find(|a| a.state != "detached") {
                        Some(a) => {
                            let device = r.device.clone().unwrap_or_else(|| a.device.clone());
                            self.store
                                .set_volume_state(
                                    instance.as_str(),
                                    &r.volume_id,
                                    i.state.as_str(),
                                    r.vm_id.as_deref(),
                                    Some(&device),
                                    Some(&a.state),
                                )
                                .await?
                        }
                        None => self.store.set_volume_state(instance.as_str(), &r.volume_id, i.state.as_str(), None, None, None).await?,
                    },
                }
            }
        }
        Ok(())
    }
}
