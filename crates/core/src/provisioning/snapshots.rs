//! Snapshots of projects' volumes, and private images made from projects'
//! VMs. A snapshot is taken of a volume of the actor's project (another
//! project's volume is "not found"), with the credential the volume was
//! made with, and recorded in the shared record of cloud objects (kind
//! `snapshot`, parent the volume) so that it belongs to the project as
//! volumes do: members see and act on it, a viewer sees it, everyone else
//! finds nothing. Listings answer from the records; snapshots still
//! `pending` are asked about at the cloud first (one call per credential),
//! so the state follows the cloud. A volume is made from a snapshot only
//! of the same project ([`Provisioning::volume_snapshot`]).
//!
//! An image made from a VM (`CreateImage`) is a private native image of the
//! actor's project, the actor its owner, mapped on the VM's connector
//! instance to the cloud's new image id, its parent the VM's image; made
//! with the VM's credential. See [`crate::images`] for who sees, launches
//! and shares it.

use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{CredentialId, ImageName, InstanceName, Tags, VmId, VolumeId};
use crate::error::{ServiceError, ServiceResult};
use crate::images::ImageView;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::{ConnectorError, CreateImageRequest, SnapshotInfo};
use cloudbroker_store::cloud_objects::{Attrs, CloudObjectRow, NewCloudObject, ObjectKind};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A snapshot as the broker knows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    #[serde(skip)]
    pub instance: InstanceName,
    pub snapshot_id: String,
    pub volume_id: String,
    pub size_gib: u32,
    /// `pending`, `completed` or `error` (EC2's names).
    pub state: String,
    pub description: String,
    pub progress: String,
    /// The project it belongs to (EC2's owner id).
    pub project: String,
    pub tags: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

impl Snapshot {
    fn from_row(r: CloudObjectRow, instance: &InstanceName) -> Self {
        let text = |k: &str| r.attrs.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        Self {
            instance: instance.clone(),
            volume_id: r.parent.clone().unwrap_or_default(),
            size_gib: r.attrs.get("size_gib").and_then(serde_json::Value::as_u64).and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
            description: text("description"),
            progress: text("progress"),
            snapshot_id: r.cloud_id,
            state: r.state,
            project: r.project,
            tags: r.tags,
            created_at: r.created_at,
        }
    }
}

fn attrs_of(info: &SnapshotInfo) -> Attrs {
    let mut a = Attrs::new();
    a.insert("size_gib".into(), info.size_gib.into());
    a.insert("description".into(), info.description.clone().into());
    a.insert("progress".into(), info.progress.clone().into());
    a
}

/// A snapshot in the audit log.
fn target<'a>(instance: &'a InstanceName, id: &'a str) -> AuditTarget<'a> {
    AuditTarget::CloudResource { instance: instance.as_str(), id }
}

impl Provisioning {
    /// Takes a snapshot of a volume of the actor's project.
    pub async fn create_snapshot(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        volume: &VolumeId,
        description: &str,
        tags: &Tags,
    ) -> ServiceResult<Snapshot> {
        self.check_create_snapshot(actor, instance, volume, description).await?;
        let vol = self.actable_volume(actor, instance, volume).await?;
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(vol.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("volume '{volume}'")).await?;
        let info = connector.create_snapshot(&creds, volume.as_str(), description).await?;
        let mut info = info;
        if info.size_gib == 0 {
            info.size_gib = u32::try_from(vol.size_gib).unwrap_or(0);
        }
        let tag_map = tags.as_map().clone();
        let attrs = attrs_of(&info);
        let new = NewCloudObject {
            instance: instance.as_str(),
            kind: ObjectKind::Snapshot,
            cloud_id: &info.snapshot_id,
            project: vol.project.as_str(),
            user: actor.name.as_str(),
            credential_id: cred.as_str(),
            parent: Some(volume.as_str()),
            state: &info.state,
            attrs: &attrs,
            tags: &tag_map,
        };
        let row = match self.store.insert_cloud_object_capped(crate::limits::max_objects(ObjectKind::Snapshot), &new).await {
            Ok(r) => r,
            Err(e) => {
                // Not recorded: give it back.
                if let Err(de) = connector.delete_snapshot(&creds, &info.snapshot_id).await {
                    tracing::error!(instance = %instance, snapshot = %info.snapshot_id, error = %de, "a snapshot the broker could not record was not deleted");
                }
                return Err(crate::limits::capped(e));
            }
        };
        if !tags.is_empty() {
            let pairs: Vec<(String, String)> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            match connector.create_tags(&creds, std::slice::from_ref(&info.snapshot_id), &pairs).await {
                Ok(()) | Err(ConnectorError::Unsupported { .. }) => {}
                Err(e) => {
                    tracing::warn!(instance = %instance, snapshot = %info.snapshot_id, error = %e, "snapshot tags kept by the broker only")
                }
            }
        }
        let event = AuditEvent::ok(AuditAction::SnapshotCreate, target(instance, &info.snapshot_id))
            .detail(volume.as_str())
            .in_project(&vol.project);
        audit::record_by(&self.store, actor, &event).await?;
        Ok(Snapshot::from_row(row, instance))
    }

    /// What [`Self::create_snapshot`] checks before calling the cloud (a dry run).
    pub async fn check_create_snapshot(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        volume: &VolumeId,
        description: &str,
    ) -> ServiceResult<()> {
        if description.chars().count() > 255 || description.chars().any(char::is_control) {
            return Err(ServiceError::invalid_field("description", "a snapshot description is at most 255 printable characters"));
        }
        let vol = self.actable_volume(actor, instance, volume).await?;
        crate::limits::check(
            &self.store,
            cloudbroker_store::limits::Owned::Objects(ObjectKind::Snapshot),
            &vol.project,
            crate::limits::max_objects(ObjectKind::Snapshot),
        )
        .await
    }

    /// Deletes a snapshot of the actor's project (the cloud refuses while
    /// an image uses it: `InvalidSnapshot.InUse`).
    pub async fn delete_snapshot(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<()> {
        let row = self.actable_object(actor, instance, ObjectKind::Snapshot, id).await?;
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        match connector.delete_snapshot(&creds, id).await {
            Ok(()) | Err(ConnectorError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.end_object(instance, ObjectKind::Snapshot, id, "deleted").await?;
        let event = AuditEvent::ok(AuditAction::SnapshotDelete, target(instance, id)).in_project(&row.project).about(&row.user);
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }

    /// One snapshot the actor sees (refreshed from the cloud while pending).
    pub async fn snapshot(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<Snapshot> {
        let row = self.visible_object(actor, instance, ObjectKind::Snapshot, id).await?;
        if row.state == "pending" {
            self.refresh_snapshots(instance, std::slice::from_ref(&row)).await?;
            let row = self.visible_object(actor, instance, ObjectKind::Snapshot, id).await?;
            return Ok(Snapshot::from_row(row, instance));
        }
        Ok(Snapshot::from_row(row, instance))
    }

    /// The snapshot a new volume of the actor's project is made from: one of
    /// its project's (any other is "not found").
    pub async fn volume_snapshot(&self, actor: &Actor, instance: &InstanceName, id: &str) -> ServiceResult<Snapshot> {
        let s = self.snapshot(actor, instance, id).await?;
        if s.project != actor.project.as_str() {
            return Err(ServiceError::NotFound(crate::error::Resource::CloudObject { kind: ObjectKind::Snapshot, id: id.to_string() }));
        }
        Ok(s)
    }

    /// The snapshots of the actor's project on `instance`, oldest first;
    /// pending ones are refreshed from the cloud first.
    pub async fn snapshots(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Vec<Snapshot>> {
        let mut rows = self.objects(actor, instance, ObjectKind::Snapshot).await?;
        if rows.iter().any(|r| r.state == "pending") {
            match self.refresh_snapshots(instance, &rows).await {
                Ok(()) => rows = self.objects(actor, instance, ObjectKind::Snapshot).await?,
                Err(e) if !e.is_internal() => tracing::warn!(instance = %instance, error = %e, "pending snapshots not refreshed"),
                Err(e) => return Err(e),
            }
        }
        Ok(rows.into_iter().map(|r| Snapshot::from_row(r, instance)).collect())
    }

    /// Asks the cloud about the pending snapshots among `rows` and records
    /// what it says (one gone from the cloud is ended).
    async fn refresh_snapshots(&self, instance: &InstanceName, rows: &[CloudObjectRow]) -> ServiceResult<()> {
        let (connector, _, _) = self.connector(instance)?;
        let mut by_cred: HashMap<&str, Vec<&CloudObjectRow>> = HashMap::new();
        for r in rows.iter().filter(|r| r.state == "pending") {
            by_cred.entry(r.credential_id.as_str()).or_default().push(r);
        }
        for (cred, group) in by_cred {
            let creds = self.vault.credentials_by_id(&CredentialId::from_stored(cred.to_string())).await?;
            let mut infos = Vec::new();
            for r in &group {
                match connector.describe_snapshots(&creds, std::slice::from_ref(&r.cloud_id)).await {
                    Ok(i) => infos.extend(i),
                    Err(ConnectorError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for r in group {
                match infos.iter().find(|i| i.snapshot_id == r.cloud_id) {
                    None => self.end_object(instance, ObjectKind::Snapshot, &r.cloud_id, "deleted").await?,
                    Some(i) => {
                        let mut attrs = r.attrs.clone();
                        attrs.insert("progress".into(), i.progress.clone().into());
                        if i.size_gib > 0 {
                            attrs.insert("size_gib".into(), i.size_gib.into());
                        }
                        self.store.update_cloud_object(instance.as_str(), ObjectKind::Snapshot, &r.cloud_id, &i.state, Some(&attrs)).await?
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets and removes user tags of a snapshot (the broker's record; put
    /// on the cloud's snapshot too where the cloud keeps tags).
    pub async fn tag_snapshot(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<Snapshot> {
        let row = self.actable_object(actor, instance, ObjectKind::Snapshot, id).await?;
        Tags::parse(set.clone())?;
        let mut merged = row.tags.clone();
        for k in remove {
            merged.remove(k);
        }
        merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        if merged.len() > crate::domain::MAX_TAGS {
            return Err(ServiceError::LimitExceeded { limit: crate::limits::Limit::Tags, max: crate::domain::MAX_TAGS as i64 });
        }
        self.store.set_cloud_object_tags(instance.as_str(), ObjectKind::Snapshot, id, &merged).await?;
        self.snapshot(actor, instance, id).await
    }

    /// Makes a private image of a VM of the actor's project (see the module
    /// comment): the cloud's `CreateImage` with the VM's credential, then
    /// the native image `name`, mapped on the VM's instance.
    pub async fn create_image(
        &self,
        actor: &Actor,
        vm: &VmId,
        name: &ImageName,
        description: &str,
        no_reboot: bool,
    ) -> ServiceResult<ImageView> {
        let (v, cloud_vm) = self.image_source(actor, vm, name, description).await?;
        let (connector, _, _) = self.connector(&v.instance)?;
        let creds = self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{vm}'")).await?;
        let req = CreateImageRequest {
            instance_id: cloud_vm,
            name: name.to_string(),
            description: (!description.is_empty()).then(|| description.to_string()),
            no_reboot,
        };
        let image_id = connector.create_image(&creds, &req).await?;
        let detail = format!("{vm} {}:{image_id}", v.instance);
        match self.images.create_private(actor, name, description, Some(&v.image), &v.instance, &image_id, &detail).await {
            Ok(img) => Ok(img),
            Err(e) => {
                // Not recorded: give the cloud's image back.
                if let Err(de) = connector.deregister_image(&creds, &image_id).await {
                    tracing::error!(instance = %v.instance, image = %image_id, error = %de, "an image the broker could not record was not deregistered");
                }
                Err(e)
            }
        }
    }

    /// What [`Self::create_image`] checks before calling the cloud (a dry
    /// run): the VM is of the actor's project and running or stopped, the
    /// name is free and the project under its cap of private images.
    pub async fn check_create_image(&self, actor: &Actor, vm: &VmId, name: &ImageName, description: &str) -> ServiceResult<()> {
        self.image_source(actor, vm, name, description).await.map(|_| ())
    }

    async fn image_source(&self, actor: &Actor, vm: &VmId, name: &ImageName, description: &str) -> ServiceResult<(super::Vm, String)> {
        actor.require_act()?;
        // The name is the cloud image's name too: EC2 wants 3-128 characters.
        if name.as_str().len() < 3 {
            return Err(ServiceError::invalid_field(
                "name",
                "an image made from a VM has a name of 3 to 128 characters (the cloud's rule)",
            ));
        }
        let v = self.owned(actor, vm).await?;
        if v.project != actor.project {
            return Err(ServiceError::NotFound(crate::error::Resource::Vm(vm.clone())));
        }
        let cloud_vm = match v.cloud_id.clone() {
            Some(c) if v.status.is_live() => c,
            _ => return Err(ServiceError::Conflict(format!("VM '{vm}' is {}: an image is made of a running or stopped VM", v.status))),
        };
        self.images.check_create_private(actor, name, description).await?;
        Ok((v, cloud_vm))
    }

    /// Deregisters an image as [`crate::images::Images::deregister`] does,
    /// and, when it was made from a VM, the cloud's image behind it too
    /// (asked with the actor's launch credentials there; a cloud that no
    /// longer has it is no error). A registered image's cloud image is left
    /// alone: the broker did not make it.
    pub async fn deregister_image(&self, actor: &Actor, name: &ImageName) -> ServiceResult<()> {
        self.images.check_deregister(actor, name).await?;
        let img = self.images.get_for(actor, name).await?;
        let made = self.store.image_made_from(name.as_str()).await?;
        self.images.deregister(actor, name).await?;
        if made.is_some() {
            for (inst, m) in &img.mappings {
                let Ok(instance) = InstanceName::parse(inst) else { continue };
                let Ok((connector, _, _)) = self.connector(&instance) else { continue };
                let Ok((creds, _)) = self.vault.credentials_for_launch(actor, &instance).await else { continue };
                match connector.deregister_image(&creds, &m.image_id).await {
                    Ok(()) | Err(ConnectorError::NotFound { .. } | ConnectorError::Unsupported { .. }) => {}
                    Err(e) => {
                        tracing::warn!(instance = %instance, image = %m.image_id, error = %e, "the cloud's image was not deregistered")
                    }
                }
            }
        }
        Ok(())
    }
}
