//! EC2 API access keys: what SigV2/SigV4 clients (awscli, boto3, the AWS
//! SDKs) sign with when they talk to the broker's EC2 front-end. The secret
//! is shown once, at creation; it is sealed with the vault's master key
//! (signature checks need the plaintext) and bound to its owner like cloud
//! credentials, in a table of its own; key rotation re-seals it too. A key
//! is usable only while it is active, not past its expiry, and its owner is
//! enabled; unknown, disabled and expired keys look the same to a caller.
//!
//! Projects: a key acts in one project, chosen at creation (the holder's
//! personal project by default; its holder must be a member of it, or an
//! admin). The key's holder ([`AccessKeys::holder_at`]) is the actor entered
//! in that project with its CURRENT role there: a viewer's key reads but
//! cannot act, and a key whose holder left the project stops working (the
//! same `None` as an unknown key).
//!
//! Expiry: a key may be given a lifetime at creation (at most
//! [`MAX_KEY_LIFETIME`]); a key minted by an expiring actor (an API token
//! with an expiry) never outlives it, like a token minted from a token.
//! Whether a key has expired is decided against the `now` the caller
//! passes ([`AccessKeys::holder_at`]), never a clock read here.
//!
//! Lookups go through a [`KeyCache`] (the EC2 front checks a key on every
//! request). Its invariant ([`crate::cache`]): a cached answer is never
//! older than [`KEY_CACHE_TTL`], never served past the key's expiry, and any
//! change this broker makes to a key (disable, enable, delete), to its
//! owner (disable, admin role, password reset) or to a membership (removal,
//! role) empties the cache before the
//! change is reported done (the broker's [`CacheEpoch`] moves), so it takes
//! effect at once on this replica and within [`KEY_CACHE_TTL`] on the
//! others. Refusals (unknown, inactive or expired keys) are never cached, so
//! a new key works at once everywhere. A master-key rotation re-seals
//! secrets but does not change them, so cached secrets stay right across it.

use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::{random_token, user_name, Actor};
use crate::cache::{CacheEpoch, KeyCache, KeyHolder};
use crate::domain::{ProjectName, ProjectRole, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::master_keys::credential_aad;
use crate::vault::{vault_err, Vault};
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_store::access_keys::{AccessKeyRow, NewAccessKey, ACCESS_KEY_SCOPE, KEY_ACTIVE, KEY_DISABLED};
use cloudbroker_store::Store;
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub use crate::cache::KEY_CACHE_TTL;

/// Active keys a user may hold at once.
pub const MAX_KEYS_PER_USER: usize = 5;

/// The longest lifetime a key can be given (the same bound as API tokens').
pub const MAX_KEY_LIFETIME: Duration = crate::identity::MAX_TOKEN_LIFETIME;

/// Shown (never stored) for an active key past its expiry.
const EXPIRED: &str = "expired";

/// An access key as shown (never its secret).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKey {
    pub access_key_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user: UserName,
    /// The project the key acts in (its holder's personal project unless
    /// another was chosen at creation).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub project: ProjectName,
    /// `active`, `disabled`, or `expired` (was active, now past `expires_at`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^(active|disabled|expired)$"))]
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working; `null`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

fn expired(r: &AccessKeyRow, now: DateTime<Utc>) -> bool {
    r.expires_at.is_some_and(|e| e <= now)
}

fn shown(r: &AccessKeyRow, now: DateTime<Utc>) -> AccessKey {
    AccessKey {
        access_key_id: r.access_key_id.clone(),
        user: user_name(r.user_name.clone()),
        project: key_project(r),
        state: if r.state == KEY_ACTIVE && expired(r, now) { EXPIRED.to_string() } else { r.state.clone() },
        created_at: r.created_at,
        last_used_at: r.last_used_at,
        expires_at: r.expires_at,
    }
}

/// The project a stored key acts in (rows written before projects: the
/// holder's personal one).
fn key_project(r: &AccessKeyRow) -> ProjectName {
    ProjectName::from_stored(if r.project.is_empty() { r.user_name.clone() } else { r.project.clone() })
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

fn key_not_found(key_id: &str) -> ServiceError {
    ServiceError::NotFound(Resource::Record(format!("access key '{}'", key_id.chars().take(128).collect::<String>())))
}

/// The access-key service.
pub struct AccessKeys {
    store: Store,
    /// Seals and opens the secrets (with the master keys).
    vault: Arc<Vault>,
    /// The broker's invalidation epoch (shared with the token cache).
    epoch: CacheEpoch,
    /// Active keys recently checked.
    cache: KeyCache,
}

impl AccessKeys {
    /// The service on the store, sealing with `vault`'s master keys, its
    /// cache emptied whenever `epoch` moves.
    pub fn new(store: Store, vault: Arc<Vault>, epoch: CacheEpoch) -> Self {
        Self { store, vault, cache: KeyCache::new(epoch.clone()), epoch }
    }

    /// Creates an access key for `user` (self or admin) that expires with
    /// the actor (if it does); returns it and its secret, which is shown this once.
    pub async fn create(&self, actor: &Actor, user: &UserName) -> ServiceResult<(AccessKey, SecretString)> {
        self.create_expiring(actor, user, None).await
    }

    /// Creates an access key for `user` (self or admin) that expires after
    /// `expires_in` (1 s to [`MAX_KEY_LIFETIME`]; `None`: never) and never
    /// after the actor's own expiry (a key minted with an expiring token
    /// dies with it). Returns the key and its secret, shown this once.
    pub async fn create_expiring(
        &self,
        actor: &Actor,
        user: &UserName,
        expires_in: Option<Duration>,
    ) -> ServiceResult<(AccessKey, SecretString)> {
        self.create_in(actor, user, None, expires_in).await
    }

    /// As [`Self::create_expiring`], for a key acting in `project` (`None`:
    /// the user's personal project). `user` must be a member of it (any
    /// role), or an admin; otherwise the project is "not found".
    pub async fn create_in(
        &self,
        actor: &Actor,
        user: &UserName,
        project: Option<&ProjectName>,
        expires_in: Option<Duration>,
    ) -> ServiceResult<(AccessKey, SecretString)> {
        actor.require_self_or_admin(user)?;
        let personal = ProjectName::personal(user);
        let project = project.unwrap_or(&personal);
        let now = Utc::now();
        let requested = match expires_in {
            None => None,
            Some(d) => {
                let at = (!d.is_zero() && d <= MAX_KEY_LIFETIME)
                    .then(|| chrono::TimeDelta::from_std(d).ok().and_then(|d| now.checked_add_signed(d)))
                    .flatten();
                Some(at.ok_or_else(|| {
                    ServiceError::invalid_field(
                        "expires_in_secs",
                        format!("an access key lives 1 to {} seconds (or give no expiry)", MAX_KEY_LIFETIME.as_secs()),
                    )
                })?)
            }
        };
        let expires_at = match (requested, actor.expires_at) {
            (Some(r), Some(a)) => Some(r.min(a)),
            (r, a) => r.or(a),
        };
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ServiceError::Unauthenticated("the token used has expired".into()));
        }
        let Some(holder) = self.store.get_user(user.as_str()).await? else {
            return Err(ServiceError::NotFound(Resource::User(user.clone())));
        };
        if project != &personal && self.role_in(project, user, holder.is_admin).await?.is_none() {
            return Err(ServiceError::NotFound(Resource::Project(project.clone())));
        }
        let existing = self.store.list_access_keys(user.as_str()).await?;
        if existing.iter().filter(|r| r.state == KEY_ACTIVE && !expired(r, now)).count() >= MAX_KEYS_PER_USER {
            return Err(ServiceError::Conflict(format!(
                "'{user}' already has {MAX_KEYS_PER_USER} active access keys: disable or delete one first"
            )));
        }
        let key_id = new_key_id();
        let secret = SecretString::new(random_token("")[..40].to_string());
        self.vault.refresh_keys()?;
        let owner = user.as_str();
        let (sk, sealing_key) = self.vault.with_keys(|k| {
            Ok((
                k.seal(secret.expose().as_bytes(), &credential_aad(ACCESS_KEY_SCOPE, owner, &key_id, "secret_access_key"))?,
                k.current_id().to_string(),
            ))
        })?;
        self.store
            .insert_access_key(&NewAccessKey {
                access_key_id: &key_id,
                user_name: owner,
                project: project.as_str(),
                secret_sealed: &sk,
                master_key_id: &sealing_key,
                expires_at_ms: expires_at.map(|e| e.timestamp_millis()),
            })
            .await?;
        let mut detail =
            expires_at.map(|e| format!("expires {}", e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).unwrap_or_default();
        if project != &personal {
            detail = if detail.is_empty() { format!("project {project}") } else { format!("project {project}; {detail}") };
        }
        let target = AuditTarget::UserItem { user: user.as_str(), item: &key_id };
        let mut event = AuditEvent::ok(AuditAction::AccessKeyCreate, target).detail(detail.as_str());
        if project != &personal {
            // A team's key: its owners read it in the team's audit.
            event = event.in_project(project.as_str());
        }
        audit::record_by(&self.store, actor, &event).await?;
        let row = self.store.access_key(&key_id).await?.ok_or_else(|| ServiceError::Internal("access key vanished".into()))?;
        Ok((shown(&row, now), secret))
    }

    /// `user`'s role in a team `project`: its membership, or owner for an
    /// admin when the project exists (`None`: neither).
    async fn role_in(&self, project: &ProjectName, user: &UserName, is_admin: bool) -> ServiceResult<Option<ProjectRole>> {
        if let Some(role) = self.store.project_membership(project, user).await? {
            return Ok(Some(role));
        }
        Ok((is_admin && self.store.get_project(project).await?.is_some()).then_some(ProjectRole::Owner))
    }

    /// A user's access keys (self or admin).
    pub async fn list(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<AccessKey>> {
        actor.require_self_or_admin(user)?;
        let now = Utc::now();
        Ok(self.store.list_access_keys(user.as_str()).await?.iter().map(|r| shown(r, now)).collect())
    }

    /// Disables or re-enables an access key (self or admin).
    pub async fn set_active(&self, actor: &Actor, user: &UserName, key_id: &str, active: bool) -> ServiceResult<AccessKey> {
        actor.require_self_or_admin(user)?;
        let state = if active { KEY_ACTIVE } else { KEY_DISABLED };
        let changed = self.store.set_access_key_state(user.as_str(), key_id, state).await?;
        self.forget_cached();
        if !changed {
            return Err(key_not_found(key_id));
        }
        let target = AuditTarget::UserItem { user: user.as_str(), item: key_id };
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::AccessKeyState, target).detail(state).about(user.as_str()))
            .await?;
        let row = self.store.access_key(key_id).await?.ok_or_else(|| key_not_found(key_id))?;
        Ok(shown(&row, Utc::now()))
    }

    /// Deletes an access key (self or admin).
    pub async fn delete(&self, actor: &Actor, user: &UserName, key_id: &str) -> ServiceResult<()> {
        actor.require_self_or_admin(user)?;
        let deleted = self.store.delete_access_key(user.as_str(), key_id).await?;
        self.forget_cached();
        if !deleted {
            return Err(key_not_found(key_id));
        }
        let target = AuditTarget::UserItem { user: user.as_str(), item: key_id };
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::AccessKeyDelete, target).about(user.as_str())).await?;
        Ok(())
    }

    /// [`Self::holder_at`] now, by the wall clock. Prefer passing the
    /// request's `now` (the time its signature was checked against).
    pub async fn holder(&self, key_id: &str) -> ServiceResult<Option<KeyHolder>> {
        self.holder_at(key_id, Utc::now()).await
    }

    /// The holder of an active, unexpired (at `now`) access key of an
    /// enabled user, entered in the key's project with its current role
    /// there, with the secret to check a signature against; `None` for
    /// anything else (a holder no longer in the key's project included), the
    /// same whatever the reason. Answers from the
    /// [`KeyCache`] when it can, but never with a key expired at `now`.
    pub async fn holder_at(&self, key_id: &str, now: DateTime<Utc>) -> ServiceResult<Option<KeyHolder>> {
        if !looks_like_key_id(key_id) {
            return Ok(None);
        }
        if let Some(h) = self.cache.get(key_id) {
            if !h.expired_at(now) {
                return Ok(Some(h));
            }
            self.cache.remove(key_id);
            return Ok(None);
        }
        // Read the epoch before the database: a change made during the
        // lookup bumps it, and the (possibly stale) answer is not cached.
        let epoch = self.cache.epoch();
        // One query: the key, its holder's state and role in the key's project.
        let Some(found) = self.store.access_key_holder(key_id).await? else { return Ok(None) };
        let row = &found.key;
        if row.state != KEY_ACTIVE || expired(row, now) || found.disabled {
            return Ok(None);
        }
        let holder_name = user_name(row.user_name.clone());
        let mut actor = Actor { expires_at: row.expires_at, ..Actor::new(holder_name.clone(), found.is_admin) };
        let project = key_project(row);
        if project != actor.project {
            let role = match found.role.as_deref().map(ProjectRole::parse) {
                Some(Ok(role)) => Some(role),
                Some(Err(e)) => {
                    return Err(ServiceError::Internal(format!("stored role of '{holder_name}' in '{project}': {}", e.message)))
                }
                // An admin acts as an owner of any project that exists.
                None if found.is_admin && self.store.get_project(&project).await?.is_some() => Some(ProjectRole::Owner),
                None => None,
            };
            let Some(role) = role else { return Ok(None) };
            actor = actor.in_project(project, role);
        }
        if !self.vault.with_keys(|k| Ok(k.ids().contains(&row.master_key_id)))? {
            self.vault.refresh_keys()?;
        }
        let secret = self.vault.with_keys(|k| {
            k.open(&row.secret_sealed, &credential_aad(ACCESS_KEY_SCOPE, &row.user_name, &row.access_key_id, "secret_access_key"))
        })?;
        let secret =
            SecretString::new(String::from_utf8(secret.to_vec()).map_err(|_| vault_err(crate::master_keys::VaultError::Malformed))?);
        let holder = KeyHolder::new(actor, secret);
        self.cache.put(key_id, &holder, epoch, row.last_used_at.map(|t| t.timestamp_millis()));
        Ok(Some(holder))
    }

    /// Records that a key was used (at most once a minute per key is
    /// enough; a cached key knows when it was last recorded).
    pub async fn record_use(&self, key_id: &str) -> ServiceResult<()> {
        let now = cloudbroker_store::now_ms();
        match self.cache.should_touch(key_id, now) {
            Some(false) => Ok(()),
            Some(true) => Ok(self.store.touch_access_key(key_id, now).await?),
            None => {
                if let Some(row) = self.store.access_key(key_id).await? {
                    if row.last_used_at.is_none_or(|t| now - t.timestamp_millis() > 60_000) {
                        self.store.touch_access_key(key_id, now).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Forgets every cached access key and API token of this broker (its
    /// [`CacheEpoch`] moves); the next lookups read the database.
    pub fn forget_cached(&self) {
        self.epoch.bump();
    }

    /// The access-key cache (for inspection in tests).
    pub fn key_cache(&self) -> &KeyCache {
        &self.cache
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
