//! Several cloud accounts behind one project. Every credential acts in one
//! cloud account, which the connector names ([`Connector::account_id`]);
//! the broker asks once per (instance, access key) and keeps the answer in
//! memory (a key that is replaced is a new entry).
//!
//! * **Images made from VMs, shared across accounts.** Sharing such an
//!   image with a broker user whose credential on the image's instance is
//!   another account grants that account launch permission at the cloud,
//!   with the credential the image was made with (the VM's); removing the
//!   user revokes it (unless another user who keeps the image shares that
//!   account). The cloud is changed before the broker records the share,
//!   so a refused grant is the caller's error and nothing is recorded. A
//!   user with no credential there yet is recorded and granted on their
//!   launch: a launch of such an image the cloud answers "not found" is
//!   granted then (the same way, for project members in other accounts
//!   too) and asked once more; a failed grant fails the launch.
//! * **Launches into a teammate's network.** A launch into a subnet, or with
//!   security groups, that the project recorded with a teammate's
//!   credential of another account than the launcher's goes to that
//!   account: the launch uses, and its VMs are recorded with, that
//!   credential (so every member acts on them). Objects of two other
//!   accounts in one launch are refused. Quotas and costs stay the
//!   launcher's (they go by user and project, not by credential).

use super::Provisioning;
use crate::auth::Actor;
use crate::domain::{CredentialId, ImageName, InstanceName, UserName, VmId};
use crate::error::{ServiceError, ServiceResult};
use crate::images::ImageView;
use cloudbroker_connector_api::{Connector, ConnectorError, Credentials};
use cloudbroker_store::cloud_objects::ObjectKind;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most entries kept (a bound on memory).
const ACCOUNTS_MAX: usize = 10_000;

/// Cloud account ids by (instance, access key id).
#[derive(Default)]
pub(super) struct Accounts(Mutex<HashMap<(String, String), String>>);

/// Whether a refused launch says the image is not there for the account.
pub(super) fn image_missing(e: &ConnectorError) -> bool {
    match e {
        ConnectorError::NotFound { code, .. } | ConnectorError::InvalidRequest { code, .. } | ConnectorError::Cloud { code, .. } => {
            code.starts_with("InvalidAMIID")
        }
        _ => false,
    }
}

/// The instance, cloud image id and owner credential of an image made from a VM.
struct MadeImage {
    instance: InstanceName,
    image_id: String,
    credential_id: CredentialId,
}

impl Provisioning {
    /// The cloud account `creds` act in on `instance` (asked once per key).
    pub(super) async fn account_of(
        &self,
        connector: &dyn Connector,
        instance: &InstanceName,
        creds: &Credentials,
    ) -> ServiceResult<String> {
        let key = (instance.to_string(), creds.access_key_id.clone());
        if let Some(a) = self.accounts.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(a.clone());
        }
        let account = connector.account_id(creds).await?;
        let mut g = self.accounts.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= ACCOUNTS_MAX {
            g.clear();
        }
        g.insert(key, account.clone());
        Ok(account)
    }

    /// Where an image made from a VM lives and whose credential made it;
    /// `None` for every other image (registered or declared: not the
    /// broker's to share at the cloud).
    async fn made_image(&self, img: &ImageView) -> ServiceResult<Option<MadeImage>> {
        let Some(vm) = self.store.image_made_from(img.name.as_str()).await? else { return Ok(None) };
        let Some(row) = (match VmId::parse(&vm) {
            Ok(id) => self.store.get_vm(&id).await?,
            Err(_) => None,
        }) else {
            return Ok(None);
        };
        let Some(m) = img.mappings.get(row.instance.as_str()) else { return Ok(None) };
        Ok(Some(MadeImage { instance: row.instance.clone(), image_id: m.image_id.clone(), credential_id: row.credential_id.clone() }))
    }

    /// The account `user` launches in on `instance` (their personal
    /// project's pick); `None` when they have no credential there yet.
    async fn account_of_user(&self, connector: &dyn Connector, instance: &InstanceName, user: &UserName) -> ServiceResult<Option<String>> {
        match self.vault.credentials_for(user, instance).await {
            Ok((creds, _)) => Ok(Some(self.account_of(connector, instance, &creds).await?)),
            Err(ServiceError::Invalid { .. } | ServiceError::Forbidden(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Changes the launch permissions of a private image (see
    /// [`crate::images::Images::share`]) and, for an image made from a VM,
    /// the cloud's launch permissions of the users' accounts (see the
    /// module comment): the cloud first, then the record.
    pub async fn share_image(&self, actor: &Actor, name: &ImageName, add: &[UserName], remove: &[UserName]) -> ServiceResult<ImageView> {
        let img = self.images.check_share(actor, name, add).await?;
        if let Some(made) = self.made_image(&img).await? {
            let (connector, _, _) = self.connector(&made.instance)?;
            let owner_creds = self.vault.credentials_to_act(actor, &made.credential_id, &format!("image '{name}'")).await?;
            let owner = self.account_of(connector.as_ref(), &made.instance, &owner_creds).await?;
            let mut grant = Vec::new();
            for u in add {
                if let Some(a) = self.account_of_user(connector.as_ref(), &made.instance, u).await? {
                    if a != owner && !grant.contains(&a) {
                        grant.push(a);
                    }
                }
            }
            let mut revoke = Vec::new();
            if !remove.is_empty() {
                let mut kept = Vec::new();
                for u in img.shared_with.iter().filter(|u| !remove.contains(u)).chain(add) {
                    if let Some(a) = self.account_of_user(connector.as_ref(), &made.instance, u).await? {
                        kept.push(a);
                    }
                }
                for u in remove.iter().filter(|u| img.shared_with.contains(u) && !add.contains(u)) {
                    if let Some(a) = self.account_of_user(connector.as_ref(), &made.instance, u).await? {
                        if a != owner && !kept.contains(&a) && !revoke.contains(&a) {
                            revoke.push(a);
                        }
                    }
                }
            }
            if !grant.is_empty() || !revoke.is_empty() {
                connector.modify_image_launch_permission(&owner_creds, &made.image_id, &grant, &revoke).await?;
                tracing::info!(image = %name, instance = %made.instance, granted = grant.len(), revoked = revoke.len(), "launch permissions changed at the cloud");
            }
        }
        self.images.share(actor, name, add, remove).await
    }

    /// A launch of `image` (a native image's name) with `creds` that the
    /// cloud refused as not found: when it is an image made from a VM in
    /// another account, grants the launcher's account launch permission
    /// with the image's credential. `Ok(true)`: granted, ask again.
    pub(super) async fn grant_for_launch(
        &self,
        connector: &dyn Connector,
        instance: &InstanceName,
        image: &str,
        creds: &Credentials,
    ) -> ServiceResult<bool> {
        let Ok(name) = ImageName::parse(image) else { return Ok(false) };
        let Ok(img) = self.images.get(&name).await else { return Ok(false) };
        let Some(made) = self.made_image(&img).await?.filter(|m| &m.instance == instance) else { return Ok(false) };
        let owner_creds = self.vault.credentials_by_id(&made.credential_id).await?;
        let owner = self.account_of(connector, instance, &owner_creds).await?;
        let launcher = self.account_of(connector, instance, creds).await?;
        if owner == launcher {
            return Ok(false);
        }
        connector.modify_image_launch_permission(&owner_creds, &made.image_id, std::slice::from_ref(&launcher), &[]).await?;
        tracing::info!(image = %name, %instance, "granted launch permission at the cloud on launch");
        Ok(true)
    }

    /// The credential a launch goes with (see the module comment): the
    /// launcher's, unless the subnet or groups it names were recorded with
    /// a teammate's credential of another account.
    pub(super) async fn network_credential(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        connector: &dyn Connector,
        launcher: (Credentials, CredentialId),
        subnet: Option<&str>,
        group_ids: &[String],
    ) -> ServiceResult<(Credentials, CredentialId)> {
        let mut named = Vec::new();
        if let Some(s) = subnet {
            named.push((ObjectKind::Subnet, s));
        }
        named.extend(group_ids.iter().map(|g| (ObjectKind::SecurityGroup, g.as_str())));
        let mut other: Option<(Credentials, CredentialId, String, String)> = None;
        let mut own_account = None;
        for (kind, id) in named {
            let Some(row) = self.store.cloud_object(instance.as_str(), kind, id).await? else { continue };
            if row.ended_at.is_some() || !actor.sees(&row.project) || row.credential_id == launcher.1.as_str() {
                continue;
            }
            let cred = CredentialId::from_stored(row.credential_id.clone());
            let what = format!("{kind} '{id}'");
            let creds = self.vault.credentials_to_act(actor, &cred, &what).await?;
            let account = self.account_of(connector, instance, &creds).await?;
            let mine = match &own_account {
                Some(a) => a,
                None => own_account.insert(self.account_of(connector, instance, &launcher.0).await?),
            };
            if &account == mine {
                continue;
            }
            match &other {
                Some((_, _, a, first)) if a != &account => {
                    return Err(ServiceError::invalid_field(
                        "subnet_id",
                        format!("{first} and {what} are in two other cloud accounts: a launch goes into one"),
                    ))
                }
                Some(_) => {}
                None => other = Some((creds, cred, account, what)),
            }
        }
        Ok(other.map_or(launcher, |(creds, cred, _, _)| (creds, cred)))
    }
}
