//! Cloud objects of projects besides VMs, addresses and volumes (security
//! groups, VPCs, subnets, snapshots), as the services see them: one record
//! per object the broker made ([`cloudbroker_store::cloud_objects`]),
//! visible to every member of its project (admins: every project's), acted
//! on by members (a viewer: 403), "not found" to everyone else, so another
//! project's object is indistinguishable from one that does not exist. A
//! project has at most [`crate::limits::max_objects`] live objects of each
//! kind, held under concurrency by the store's capped insert. An object is
//! acted on with the credential it was made with, and only while the actor
//! may still use that credential ([`crate::vault`]).

use super::Provisioning;
use crate::auth::Actor;
use crate::domain::{CredentialId, InstanceName, Tags};
use crate::error::{Resource, ServiceError, ServiceResult};
use cloudbroker_connector_api::{Connector, Credentials};
use cloudbroker_store::cloud_objects::{Attrs, CloudObjectRow, NewCloudObject, ObjectKind};
use std::sync::Arc;

/// What a new record holds besides who made it and where.
#[derive(Clone, Debug)]
pub struct NewObject<'a> {
    pub kind: ObjectKind,
    pub cloud_id: &'a str,
    /// The credential the object was made with.
    pub credential_id: &'a CredentialId,
    /// The object it lives in or came from (a subnet's VPC, a snapshot's volume).
    pub parent: Option<&'a str>,
    pub state: &'a str,
    pub attrs: Attrs,
    pub tags: &'a Tags,
}

impl Provisioning {
    /// A live object the actor sees (its project's; any for admins).
    pub async fn visible_object(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        kind: ObjectKind,
        id: &str,
    ) -> ServiceResult<CloudObjectRow> {
        match self.store.cloud_object(instance.as_str(), kind, id).await? {
            Some(r) if actor.sees(&r.project) && r.ended_at.is_none() => Ok(r),
            _ => Err(ServiceError::NotFound(Resource::CloudObject { kind, id: id.to_string() })),
        }
    }

    /// A live object the actor sees and may act on (a viewer may not: 403).
    pub async fn actable_object(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        kind: ObjectKind,
        id: &str,
    ) -> ServiceResult<CloudObjectRow> {
        let row = self.visible_object(actor, instance, kind, id).await?;
        actor.require_act()?;
        Ok(row)
    }

    /// The connector of `instance` and the credentials a new object there is
    /// made with (those a launch in the actor's project would use), after
    /// checking the actor may act and the project is under its cap of `kind`.
    pub async fn for_new_object(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        kind: ObjectKind,
    ) -> ServiceResult<(Arc<dyn Connector>, Credentials, CredentialId)> {
        actor.require_act()?;
        let (connector, _, _) = self.connector(instance)?;
        let (creds, cred_id) = self.vault.credentials_for_launch(actor, instance).await?;
        crate::limits::check(
            &self.store,
            cloudbroker_store::limits::Owned::Objects(kind),
            actor.project.as_str(),
            crate::limits::max_objects(kind),
        )
        .await?;
        Ok((connector, creds, cred_id))
    }

    /// The connector and the credentials to act on a recorded object with
    /// (the ones it was made with, while the actor may use them).
    pub async fn for_object(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        row: &CloudObjectRow,
    ) -> ServiceResult<(Arc<dyn Connector>, Credentials)> {
        let (connector, _, _) = self.connector(instance)?;
        let cred = CredentialId::from_stored(row.credential_id.clone());
        let creds = self.vault.credentials_to_act(actor, &cred, &format!("{} '{}'", row.kind, row.cloud_id)).await?;
        Ok((connector, creds))
    }

    /// Records an object the actor just made in their project. Refused
    /// (`LimitExceeded`) when the project reached its cap meanwhile: the
    /// caller then gives the cloud object back.
    pub async fn record_object(&self, actor: &Actor, instance: &InstanceName, new: &NewObject<'_>) -> ServiceResult<CloudObjectRow> {
        let tags = new.tags.as_map().clone();
        let row = NewCloudObject {
            instance: instance.as_str(),
            kind: new.kind,
            cloud_id: new.cloud_id,
            project: actor.project.as_str(),
            user: actor.name.as_str(),
            credential_id: new.credential_id.as_str(),
            parent: new.parent,
            state: new.state,
            attrs: &new.attrs,
            tags: &tags,
        };
        self.store.insert_cloud_object_capped(crate::limits::max_objects(new.kind), &row).await.map_err(crate::limits::capped)
    }

    /// The live objects of a kind the actor's project has on `instance`, oldest first.
    pub async fn objects(&self, actor: &Actor, instance: &InstanceName, kind: ObjectKind) -> ServiceResult<Vec<CloudObjectRow>> {
        Ok(self.store.cloud_objects(actor.project.as_str(), instance.as_str(), kind).await?)
    }

    /// Marks an object ended (deleted at the cloud) with its final state.
    pub async fn end_object(&self, instance: &InstanceName, kind: ObjectKind, id: &str, final_state: &str) -> ServiceResult<()> {
        Ok(self.store.end_cloud_object(instance.as_str(), kind, id, final_state).await?)
    }
}
