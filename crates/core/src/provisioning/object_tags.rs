//! Tags on recorded cloud objects (security groups, VPCs, subnets,
//! snapshots): checked like a volume's (`Name` is a tag like any other,
//! reserved `cloudbroker:`/`aws:` keys cannot be set or removed, at most
//! `MAX_TAGS` tags), kept in the object's record and put on the cloud's
//! object too where the cloud keeps tags (a cloud that keeps none:
//! the record only). Only members of the object's project may tag it (a
//! viewer: 403); anyone else finds no such object.

use super::Provisioning;
use crate::auth::Actor;
use crate::domain::InstanceName;
use crate::error::ServiceResult;
use cloudbroker_connector_api::ConnectorError;
use cloudbroker_store::cloud_objects::{CloudObjectRow, ObjectKind};
use std::collections::BTreeMap;

impl Provisioning {
    /// What tagging object `id` checks (EC2's `DryRun`, and CreateTags /
    /// DeleteTags before any change): the actor may act on it, the tags are
    /// valid and within the cap, its credential may be used. Answers the
    /// record and the tags it would have.
    pub async fn check_tag_object(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        kind: ObjectKind,
        id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<(CloudObjectRow, BTreeMap<String, String>)> {
        let row = self.actable_object(actor, instance, kind, id).await?;
        let merged = crate::key_pairs::retag(&row.tags, set, remove)?;
        self.for_object(actor, instance, &row).await?;
        Ok((row, merged))
    }

    /// Sets and removes tags of object `id`: at the cloud (where it keeps
    /// tags), then in its record. Answers the record as it is now.
    pub async fn tag_object(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        kind: ObjectKind,
        id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<CloudObjectRow> {
        let (row, merged) = self.check_tag_object(actor, instance, kind, id, set, remove).await?;
        let (connector, creds) = self.for_object(actor, instance, &row).await?;
        let ids = [row.cloud_id.clone()];
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
        self.store.set_cloud_object_tags(instance.as_str(), kind, id, &merged).await?;
        self.visible_object(actor, instance, kind, id).await
    }
}
