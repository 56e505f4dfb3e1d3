//! EC2 API access keys: what SigV2/SigV4 clients (awscli, boto3, the AWS
//! SDKs) sign with when they talk to the broker's EC2 front-end. The secret
//! is shown once, at creation; it is sealed in the vault (signature checks
//! need the plaintext) and bound to its owner like cloud credentials, so key
//! rotation re-seals it too. A key is usable only while it is active and its
//! owner is enabled; unknown and disabled keys look the same to a caller.

use crate::domain::UserName;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::identity::{user_name, Actor};
use crate::master_keys::credential_aad;
use crate::vault::{vault_err, Vault};
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_store::access_keys::ACCESS_KEY_SCOPE;
use cloudbroker_store::credentials::{CredentialRow, NewCredential};
use rand::Rng;
use serde::Serialize;

/// Active keys a user may hold at once.
pub const MAX_KEYS_PER_USER: usize = 5;

const ACTIVE: &str = "active";
const DISABLED: &str = "disabled";

/// An access key as shown (never its secret).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKey {
    pub access_key_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user: UserName,
    /// `active` or `disabled`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn shown(r: &CredentialRow) -> AccessKey {
    AccessKey {
        access_key_id: r.instance.clone(),
        user: user_name(r.owner.clone()),
        state: r.status.clone(),
        created_at: r.created_at,
        last_used_at: r.checked_at,
    }
}

/// A new access key id: `AKIA` + 16 base32 characters, like AWS's.
fn new_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rngs::OsRng;
    let tail: String = (0..16).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("AKIA{tail}")
}

/// Whether `s` has the shape of an access key id (cheap check before any lookup).
pub fn looks_like_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Who an access key belongs to, and its secret (for signature checks only).
pub struct KeyHolder {
    pub actor: Actor,
    pub secret: SecretString,
}

impl Vault {
    /// Creates an access key for `user` (self or admin); returns it and its
    /// secret, which is shown this once.
    pub async fn create_access_key(&self, actor: &Actor, user: &UserName) -> ServiceResult<(AccessKey, SecretString)> {
        actor.require_self_or_admin(user)?;
        if self.store.get_user(user.as_str()).await?.is_none() {
            return Err(ServiceError::NotFound(Resource::User(user.clone())));
        }
        let existing = self.store.list_credentials(ACCESS_KEY_SCOPE, Some(user.as_str())).await?;
        if existing.iter().filter(|r| r.status == ACTIVE).count() >= MAX_KEYS_PER_USER {
            return Err(ServiceError::Conflict(format!(
                "'{user}' already has {MAX_KEYS_PER_USER} active access keys: disable or delete one first"
            )));
        }
        let key_id = new_key_id();
        let secret = SecretString::new(crate::identity::random_token("")[..40].to_string());
        self.refresh_keys()?;
        let owner = user.as_str();
        let (ak, sk, sealing_key) = self.with_keys(|k| {
            Ok((
                k.seal(key_id.as_bytes(), &credential_aad(ACCESS_KEY_SCOPE, owner, &key_id, "access_key_id"))?,
                k.seal(secret.expose().as_bytes(), &credential_aad(ACCESS_KEY_SCOPE, owner, &key_id, "secret_access_key"))?,
                k.current_id().to_string(),
            ))
        })?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.store
            .put_credential(&NewCredential {
                id: &id,
                scope: ACCESS_KEY_SCOPE,
                owner,
                instance: &key_id,
                access_key_hint: &key_id,
                access_key_sealed: &ak,
                secret_sealed: &sk,
                key_id: &sealing_key,
                status: ACTIVE,
                status_message: "",
            })
            .await?;
        self.store.clear_access_key_use(&key_id).await?;
        self.store.audit(actor.name.as_str(), "access_key.create", &format!("{user}/{key_id}"), "ok", "").await?;
        let row = self.store.access_key(&key_id).await?.ok_or_else(|| ServiceError::Internal("access key vanished".into()))?;
        Ok((shown(&row), secret))
    }

    /// A user's access keys (self or admin).
    pub async fn list_access_keys(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<AccessKey>> {
        actor.require_self_or_admin(user)?;
        Ok(self.store.list_credentials(ACCESS_KEY_SCOPE, Some(user.as_str())).await?.iter().map(shown).collect())
    }

    fn key_not_found(key_id: &str) -> ServiceError {
        ServiceError::NotFound(Resource::Record(format!("access key '{}'", key_id.chars().take(128).collect::<String>())))
    }

    /// Disables or re-enables an access key (self or admin).
    pub async fn set_access_key_active(&self, actor: &Actor, user: &UserName, key_id: &str, active: bool) -> ServiceResult<AccessKey> {
        actor.require_self_or_admin(user)?;
        let state = if active { ACTIVE } else { DISABLED };
        if !self.store.set_access_key_state(user.as_str(), key_id, state).await? {
            return Err(Self::key_not_found(key_id));
        }
        self.store.audit(actor.name.as_str(), "access_key.state", &format!("{user}/{key_id}"), "ok", state).await?;
        let row = self.store.access_key(key_id).await?.ok_or_else(|| Self::key_not_found(key_id))?;
        Ok(shown(&row))
    }

    /// Deletes an access key (self or admin).
    pub async fn delete_access_key(&self, actor: &Actor, user: &UserName, key_id: &str) -> ServiceResult<()> {
        actor.require_self_or_admin(user)?;
        if !self.store.delete_access_key(user.as_str(), key_id).await? {
            return Err(Self::key_not_found(key_id));
        }
        self.store.audit(actor.name.as_str(), "access_key.delete", &format!("{user}/{key_id}"), "ok", "").await?;
        Ok(())
    }

    /// The holder of an active access key of an enabled user, with the
    /// secret to check a signature against; `None` for anything else, the
    /// same whatever the reason.
    pub async fn access_key_holder(&self, key_id: &str) -> ServiceResult<Option<KeyHolder>> {
        if !looks_like_key_id(key_id) {
            return Ok(None);
        }
        let Some(row) = self.store.access_key(key_id).await? else { return Ok(None) };
        if row.status != ACTIVE {
            return Ok(None);
        }
        let Some(user) = self.store.get_user(&row.owner).await?.filter(|u| u.disabled_at.is_none()) else { return Ok(None) };
        if !self.with_keys(|k| Ok(k.ids().contains(&row.key_id)))? {
            self.refresh_keys()?;
        }
        let secret = self
            .with_keys(|k| k.open(&row.secret_sealed, &credential_aad(ACCESS_KEY_SCOPE, &row.owner, &row.instance, "secret_access_key")))?;
        let secret =
            SecretString::new(String::from_utf8(secret.to_vec()).map_err(|_| vault_err(crate::master_keys::VaultError::Malformed))?);
        Ok(Some(KeyHolder { actor: Actor::new(user_name(user.name), user.is_admin), secret }))
    }

    /// Records that a key was used (at most once a minute per key is enough).
    pub async fn access_key_used(&self, key_id: &str) -> ServiceResult<()> {
        let now = cloudbroker_store::now_ms();
        if let Some(row) = self.store.access_key(key_id).await? {
            if row.checked_at.is_none_or(|t| now - t.timestamp_millis() > 60_000) {
                self.store.touch_access_key(key_id, now).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_look_like_aws_ones() {
        let a = new_key_id();
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("AKIA") && looks_like_key_id(&a));
        assert_ne!(a, new_key_id());
        assert!(!looks_like_key_id("AKIA/../x"));
        assert!(!looks_like_key_id("short"));
    }
}
