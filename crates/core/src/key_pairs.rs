//! Named SSH key pairs of projects, for launches that name one (the EC2
//! front's `KeyName`). Imported public keys are parsed (OpenSSH format) and
//! fingerprinted; a created pair is Ed25519, its private key returned once
//! and never stored. A pair belongs to the project its creator acted in
//! (names are unique per project; the same name in two projects is two
//! pairs) and records who made it. Every member of the project sees and
//! launches with its pairs; creating, importing and deleting need the
//! `member` role (viewers list them only). Another project's pairs do not
//! exist for the actor. A project has at most
//! [`crate::limits::MAX_KEY_PAIRS`] of them.

use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::UserName;
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use cloudbroker_store::key_pairs::KeyPairRow;
use cloudbroker_store::Store;
use serde::Serialize;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A key pair as shown.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyPair {
    pub name: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub public_key: String,
    /// Who made (or imported) it.
    pub created_by: UserName,
    pub created_at: DateTime<Utc>,
    /// User tags (EC2's tags on the pair's `key-…` id).
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
}

impl From<KeyPairRow> for KeyPair {
    fn from(r: KeyPairRow) -> Self {
        Self {
            name: r.name,
            fingerprint: r.fingerprint,
            public_key: r.public_key,
            created_by: r.created_by,
            created_at: r.created_at,
            tags: r.tags,
        }
    }
}

/// `current` with `remove` taken off and `set` put on: user tags and
/// `Name` (reserved `cloudbroker:`/`aws:` keys are refused, as on volumes),
/// at most `MAX_TAGS` in all. The tags of key pairs and addresses, kept by
/// the broker.
pub fn retag(
    current: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> ServiceResult<BTreeMap<String, String>> {
    check_tags(set)?;
    let name = crate::domain::NAME_TAG;
    if remove.iter().any(|k| crate::domain::Tags::is_reserved(k) && k != name) {
        return Err(ServiceError::invalid_field("tags", "reserved tags (cloudbroker:, aws:) cannot be removed"));
    }
    let mut merged = current.clone();
    for k in remove {
        merged.remove(k);
    }
    merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if merged.len() > crate::domain::MAX_TAGS {
        return Err(ServiceError::LimitExceeded { limit: crate::limits::Limit::Tags, max: crate::domain::MAX_TAGS as i64 });
    }
    Ok(merged)
}

/// Tags to set on a key pair or an address: the rules of a resource's user
/// tags, `Name` among them as EC2 clients name things with it.
pub fn check_tags(set: &BTreeMap<String, String>) -> ServiceResult<()> {
    crate::domain::Tags::parse_resource(set.clone())?;
    Ok(())
}

/// Key pair names: 1-255 printable ASCII characters.
fn check_name(name: &str) -> ServiceResult<()> {
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ServiceError::invalid_field("key_name", "a key pair name is 1-255 printable ASCII characters"));
    }
    Ok(())
}

/// An OpenSSH public key of at most 16 KiB.
fn parse_public_key(public_key: &str) -> ServiceResult<PublicKey> {
    if public_key.len() > 16 * 1024 {
        return Err(ServiceError::invalid_field("public_key", "the public key is larger than 16 KiB"));
    }
    PublicKey::from_openssh(public_key.trim())
        .map_err(|e| ServiceError::invalid_field("public_key", format!("not an OpenSSH public key (e.g. 'ssh-ed25519 AAAA...'): {e}")))
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(Resource::Record(format!("key pair '{}'", name.chars().take(255).collect::<String>())))
}

/// The kind of key pair the broker makes (EC2's `KeyType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    #[default]
    Ed25519,
    Rsa,
}

impl KeyType {
    /// EC2's name (`ed25519`, `rsa`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa => "rsa",
        }
    }

    /// Parses EC2's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ed25519" => Some(KeyType::Ed25519),
            "rsa" => Some(KeyType::Rsa),
            _ => None,
        }
    }
}

/// The key-pair service.
pub struct KeyPairs {
    store: Store,
}

impl KeyPairs {
    /// The service on the store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Stores, in the actor's project, the public key of a pair the user
    /// made themselves.
    pub async fn import(&self, actor: &Actor, name: &str, public_key: &str) -> ServiceResult<KeyPair> {
        actor.require_act()?;
        check_name(name)?;
        let key = parse_public_key(public_key)?;
        self.store_key(actor, name, &key).await
    }

    /// What creating (`public_key` `None`) or importing a pair checks,
    /// without storing anything: the actor may, the name is well-formed and
    /// free in its project, the public key parses (EC2's `DryRun`).
    pub async fn check_new(&self, actor: &Actor, name: &str, public_key: Option<&str>) -> ServiceResult<()> {
        actor.require_act()?;
        check_name(name)?;
        if let Some(k) = public_key {
            parse_public_key(k)?;
        }
        if self.store.key_pair(&actor.project, name).await?.is_some() {
            return Err(ServiceError::Conflict(format!("key pair '{name}' already exists")));
        }
        crate::limits::check(&self.store, cloudbroker_store::limits::Owned::KeyPairs, actor.project.as_str(), crate::limits::MAX_KEY_PAIRS)
            .await
    }

    /// Makes an Ed25519 pair in the actor's project; returns it and the
    /// private key (OpenSSH PEM), which exists nowhere else afterwards.
    pub async fn create(&self, actor: &Actor, name: &str) -> ServiceResult<(KeyPair, Zeroizing<String>)> {
        self.create_of(actor, name, KeyType::Ed25519).await
    }

    /// Makes a pair of `key_type` (EC2's `KeyType`; RSA keys are 2048
    /// bits, as EC2's) in the actor's project; returns it and the private
    /// key (OpenSSH PEM), which exists nowhere else afterwards.
    pub async fn create_of(&self, actor: &Actor, name: &str, key_type: KeyType) -> ServiceResult<(KeyPair, Zeroizing<String>)> {
        actor.require_act()?;
        check_name(name)?;
        let private = match key_type {
            KeyType::Ed25519 => PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519),
            // A second or so of work: off the async threads.
            KeyType::Rsa => tokio::task::spawn_blocking(|| {
                let pair = ssh_key::private::RsaKeypair::random(&mut rand::rngs::OsRng, 2048)?;
                PrivateKey::new(ssh_key::private::KeypairData::from(pair), "")
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("key generation: {e}")))?,
        }
        .map_err(|e| ServiceError::Internal(format!("key generation: {e}")))?;
        let pem = private.to_openssh(LineEnding::LF).map_err(|e| ServiceError::Internal(format!("key encoding: {e}")))?;
        let pair = self.store_key(actor, name, private.public_key()).await?;
        Ok((pair, pem))
    }

    async fn store_key(&self, actor: &Actor, name: &str, key: &PublicKey) -> ServiceResult<KeyPair> {
        let text = key.to_openssh().map_err(|e| ServiceError::Internal(format!("key encoding: {e}")))?;
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let row = self
            .store
            .insert_key_pair_capped(crate::limits::MAX_KEY_PAIRS, &actor.project, &actor.name, name, &text, &fp)
            .await
            .map_err(crate::limits::capped)?;
        let target = AuditTarget::UserItem { user: actor.project.as_str(), item: name };
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::KeyPairCreate, target).detail(fp.as_str())).await?;
        Ok(row.into())
    }

    /// The key pairs of the actor's project (any role).
    pub async fn list(&self, actor: &Actor) -> ServiceResult<Vec<KeyPair>> {
        Ok(self.store.key_pairs(&actor.project).await?.into_iter().map(KeyPair::from).collect())
    }

    /// One key pair of the actor's project (any role).
    pub async fn get(&self, actor: &Actor, name: &str) -> ServiceResult<KeyPair> {
        self.store.key_pair(&actor.project, name).await?.map(KeyPair::from).ok_or_else(|| not_found(name))
    }

    /// What tagging a pair checks (EC2's `DryRun`, and CreateTags/DeleteTags
    /// before any change): the pair is the project's, the actor may act in
    /// it, the tags are valid. Answers the tags it would have.
    pub async fn check_tag(
        &self,
        actor: &Actor,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> ServiceResult<BTreeMap<String, String>> {
        let pair = self.get(actor, name).await?;
        actor.require_act()?;
        retag(&pair.tags, set, remove)
    }

    /// Sets and removes user tags of a pair of the actor's project (kept by the broker).
    pub async fn tag(&self, actor: &Actor, name: &str, set: &BTreeMap<String, String>, remove: &[String]) -> ServiceResult<KeyPair> {
        let merged = self.check_tag(actor, name, set, remove).await?;
        if !self.store.set_key_pair_tags(&actor.project, name, &merged).await? {
            return Err(not_found(name));
        }
        self.get(actor, name).await
    }

    /// What deleting a pair checks (EC2's `DryRun`): the actor may act in
    /// its project. Whether the pair exists is not checked (EC2's
    /// `DeleteKeyPair` answers the same either way).
    pub fn check_delete(&self, actor: &Actor) -> ServiceResult<()> {
        actor.require_act()
    }

    /// Deletes a key pair of the actor's project (`member` role). VMs
    /// launched with it keep it.
    pub async fn delete(&self, actor: &Actor, name: &str) -> ServiceResult<()> {
        actor.require_act()?;
        // Who made it is the record's subject (an admin deleting a user's pair names both).
        let creator = self.store.key_pair(&actor.project, name).await?.map(|r| r.created_by);
        if !self.store.delete_key_pair(&actor.project, name).await? {
            return Err(not_found(name));
        }
        let target = AuditTarget::UserItem { user: actor.project.as_str(), item: name };
        let event = AuditEvent::ok(AuditAction::KeyPairDelete, target);
        let event = match &creator {
            Some(c) => event.about(c.as_str()),
            None => event,
        };
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }

    /// The key pairs `user` made, in every project (admin), by project and name.
    pub async fn made_by(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<(crate::domain::ProjectName, KeyPair)>> {
        actor.require_admin()?;
        let rows = self.store.key_pairs_made_by(user).await?;
        Ok(rows.into_iter().map(|r| (r.project.clone(), KeyPair::from(r))).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_pair_and_address_tags_take_name_and_refuse_what_resources_refuse() {
        let tags = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        check_tags(&tags(&[("Name", "web key"), ("team", "a")])).unwrap();
        let long = "n".repeat(257);
        for (bad, says) in [
            (tags(&[("Name", long.as_str())]), "tag 'Name': keys are 1-128 characters, values at most 256"),
            (tags(&[("Name", "a\u{7}b")]), "tag 'Name': control characters are not allowed"),
            (tags(&[("aws:x", "1")]), "tag 'aws:x' is reserved"),
        ] {
            let e = check_tags(&bad).unwrap_err();
            assert!(matches!(&e, ServiceError::Invalid { field: Some("tags"), message } if message.starts_with(says)), "{e:?}");
        }
        // Retagging keeps the same rules, and `Name` may be removed.
        let merged = retag(&tags(&[("Name", "old")]), &tags(&[("team", "b")]), &["Name".to_string()]).unwrap();
        assert_eq!(merged, tags(&[("team", "b")]));
    }
}
