//! EC2 API access keys: what SigV2/SigV4 clients (awscli, boto3, the AWS
//! SDKs) sign with when they talk to the broker's EC2 front-end. The secret
//! is shown once, at creation; it is sealed in the vault (signature checks
//! need the plaintext) and bound to its owner like cloud credentials, so key
//! rotation re-seals it too. A key is usable only while it is active, not
//! past its expiry, and its owner is enabled; unknown, disabled and expired
//! keys look the same to a caller.
//!
//! Expiry: a key may be given a lifetime at creation (at most
//! [`MAX_KEY_LIFETIME`]); a key minted by an expiring actor (an API token
//! with an expiry) never outlives it, like a token minted from a token.
//! Whether a key has expired is decided against the `now` the caller
//! passes ([`Vault::access_key_holder_at`]), never a clock read here.
//!
//! Lookups go through a [`KeyCache`] (the EC2 front checks a key on every
//! request). Its invariant: a cached answer is never older than
//! [`KEY_CACHE_TTL`], never served past the key's expiry, and any change
//! this process makes to a key (disable, enable, delete) or to its owner
//! (disable, admin role, password reset) empties the cache before the change
//! is reported done, so it takes effect at once on this replica and within
//! [`KEY_CACHE_TTL`] on the others. Refusals (unknown, inactive or expired
//! keys) are never cached, so a new key works at once everywhere.
//! A master-key rotation re-seals secrets but does not change them, so
//! cached secrets stay right across it.

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
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Active keys a user may hold at once.
pub const MAX_KEYS_PER_USER: usize = 5;

/// The longest lifetime a key can be given (the same bound as API tokens').
pub const MAX_KEY_LIFETIME: Duration = crate::identity::MAX_TOKEN_LIFETIME;

pub(crate) const ACTIVE: &str = "active";
pub(crate) const DISABLED: &str = "disabled";
/// Shown (never stored) for an active key past its expiry.
const EXPIRED: &str = "expired";

/// An access key as shown (never its secret).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKey {
    pub access_key_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user: UserName,
    /// `active`, `disabled`, or `expired` (was active, now past `expires_at`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^(active|disabled|expired)$"))]
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working; `null`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

fn expired(r: &CredentialRow, now: DateTime<Utc>) -> bool {
    r.expires_at.is_some_and(|e| e <= now)
}

fn shown(r: &CredentialRow, now: DateTime<Utc>) -> AccessKey {
    AccessKey {
        access_key_id: r.instance.clone(),
        user: user_name(r.owner.clone()),
        state: if r.status == ACTIVE && expired(r, now) { EXPIRED.to_string() } else { r.status.clone() },
        created_at: r.created_at,
        last_used_at: r.checked_at,
        expires_at: r.expires_at,
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

/// How long another replica's change to a key or its owner may go unseen here.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// Keys cached at most (a bound on memory, not a working-set guess).
const KEY_CACHE_MAX: usize = 10_000;

/// Derived keys kept per access key (one per signing date, region and service).
const DERIVED_MAX: usize = 8;

/// Bumped by every change that can make a cached holder wrong, in any
/// broker of this process; a cache seeing a new value forgets everything.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Forgets every cached access key and API token in this process (called
/// after a key's or token's state, or its owner's state or role, changed).
pub fn forget_cached_keys() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// The current invalidation epoch (read before a lookup whose answer may be cached).
pub(crate) fn cache_epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Who an access key belongs to, and its secret (for signature checks only).
#[derive(Clone)]
pub struct KeyHolder {
    /// The key's owner; its `expires_at` is the key's.
    pub actor: Actor,
    pub secret: SecretString,
    derived: Arc<Mutex<Vec<Derived>>>,
}

impl KeyHolder {
    /// Whether the key has expired at `now`.
    fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.actor.expires_at.is_some_and(|e| e <= now)
    }
}

/// A key derived from a secret, with its label (e.g. `aws4/DATE/REGION/SERVICE`).
type Derived = (String, Zeroizing<[u8; 32]>);

impl KeyHolder {
    /// A key derived from the secret (a SigV4 signing key), computed by
    /// `derive` once per `label` while this holder stays cached.
    pub fn derived(&self, label: &str, derive: impl FnOnce(&str) -> [u8; 32]) -> Zeroizing<[u8; 32]> {
        let mut slots = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, k)) = slots.iter().find(|(l, _)| l == label) {
            return k.clone();
        }
        let k = Zeroizing::new(derive(self.secret.expose()));
        if slots.len() >= DERIVED_MAX {
            slots.remove(0);
        }
        slots.push((label.to_string(), k.clone()));
        k
    }
}

struct Cached<V> {
    value: V,
    fetched: Instant,
    /// When this process last recorded the credential's use (ms), to write it at most once a minute.
    touched_ms: Option<i64>,
}

/// Credentials (access keys, API tokens) recently looked up, by key: see
/// the module's invariant (answers at most [`KEY_CACHE_TTL`] old, emptied
/// by [`forget_cached_keys`], refusals never put in).
pub struct CredentialCache<V> {
    inner: Mutex<CacheInner<V>>,
}

/// Active access keys recently looked up.
pub type KeyCache = CredentialCache<KeyHolder>;

impl<V> Default for CredentialCache<V> {
    fn default() -> Self {
        Self { inner: Mutex::new(CacheInner { epoch: 0, keys: HashMap::new() }) }
    }
}

struct CacheInner<V> {
    epoch: u64,
    keys: HashMap<String, Cached<V>>,
}

impl<V: Clone> CredentialCache<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner<V>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = EPOCH.load(Ordering::SeqCst);
        if g.epoch != now {
            g.keys.clear();
            g.epoch = now;
        }
        g
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let mut g = self.lock();
        match g.keys.get(key) {
            Some(c) if c.fetched.elapsed() < KEY_CACHE_TTL => Some(c.value.clone()),
            Some(_) => {
                g.keys.remove(key);
                None
            }
            None => None,
        }
    }

    /// Forgets one entry (e.g. a token past its expiry).
    pub(crate) fn remove(&self, key: &str) {
        self.lock().keys.remove(key);
    }

    /// Caches `value` unless the cache was invalidated since `epoch` (when the lookup started).
    pub(crate) fn put(&self, key: &str, value: &V, epoch: u64, touched_ms: Option<i64>) {
        let mut g = self.lock();
        if g.epoch != epoch {
            return;
        }
        if g.keys.len() >= KEY_CACHE_MAX {
            g.keys.retain(|_, c| c.fetched.elapsed() < KEY_CACHE_TTL);
            if g.keys.len() >= KEY_CACHE_MAX {
                g.keys.clear();
            }
        }
        g.keys.insert(key.to_string(), Cached { value: value.clone(), fetched: Instant::now(), touched_ms });
    }

    /// Whether the credential's use should be written now (at most once a
    /// minute per key); `None` when it is not cached.
    pub(crate) fn should_touch(&self, key: &str, now_ms: i64) -> Option<bool> {
        let mut g = self.lock();
        let c = g.keys.get_mut(key)?;
        if c.touched_ms.is_some_and(|t| now_ms - t <= 60_000) {
            return Some(false);
        }
        c.touched_ms = Some(now_ms);
        Some(true)
    }

    /// How many entries are cached (for tests).
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Vault {
    /// Creates an access key for `user` (self or admin) that expires with
    /// the actor (if it does); returns it and its secret, which is shown this once.
    pub async fn create_access_key(&self, actor: &Actor, user: &UserName) -> ServiceResult<(AccessKey, SecretString)> {
        self.create_access_key_expiring(actor, user, None).await
    }

    /// Creates an access key for `user` (self or admin) that expires after
    /// `expires_in` (1 s to [`MAX_KEY_LIFETIME`]; `None`: never) and never
    /// after the actor's own expiry (a key minted with an expiring token
    /// dies with it). Returns the key and its secret, shown this once.
    pub async fn create_access_key_expiring(
        &self,
        actor: &Actor,
        user: &UserName,
        expires_in: Option<Duration>,
    ) -> ServiceResult<(AccessKey, SecretString)> {
        actor.require_self_or_admin(user)?;
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
        if self.store.get_user(user.as_str()).await?.is_none() {
            return Err(ServiceError::NotFound(Resource::User(user.clone())));
        }
        let existing = self.store.list_credentials(ACCESS_KEY_SCOPE, Some(user.as_str())).await?;
        if existing.iter().filter(|r| r.status == ACTIVE && !expired(r, now)).count() >= MAX_KEYS_PER_USER {
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
        self.store.finish_new_access_key(&key_id, expires_at.map(|e| e.timestamp_millis())).await?;
        let detail = expires_at.map(|e| format!("expires {}", e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).unwrap_or_default();
        self.store.audit(actor.name.as_str(), "access_key.create", &format!("{user}/{key_id}"), "ok", &detail).await?;
        let row = self.store.access_key(&key_id).await?.ok_or_else(|| ServiceError::Internal("access key vanished".into()))?;
        Ok((shown(&row, now), secret))
    }

    /// A user's access keys (self or admin).
    pub async fn list_access_keys(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<AccessKey>> {
        actor.require_self_or_admin(user)?;
        let now = Utc::now();
        Ok(self.store.list_credentials(ACCESS_KEY_SCOPE, Some(user.as_str())).await?.iter().map(|r| shown(r, now)).collect())
    }

    fn key_not_found(key_id: &str) -> ServiceError {
        ServiceError::NotFound(Resource::Record(format!("access key '{}'", key_id.chars().take(128).collect::<String>())))
    }

    /// Disables or re-enables an access key (self or admin).
    pub async fn set_access_key_active(&self, actor: &Actor, user: &UserName, key_id: &str, active: bool) -> ServiceResult<AccessKey> {
        actor.require_self_or_admin(user)?;
        let state = if active { ACTIVE } else { DISABLED };
        let changed = self.store.set_access_key_state(user.as_str(), key_id, state).await?;
        forget_cached_keys();
        if !changed {
            return Err(Self::key_not_found(key_id));
        }
        self.store.audit(actor.name.as_str(), "access_key.state", &format!("{user}/{key_id}"), "ok", state).await?;
        let row = self.store.access_key(key_id).await?.ok_or_else(|| Self::key_not_found(key_id))?;
        Ok(shown(&row, Utc::now()))
    }

    /// Deletes an access key (self or admin).
    pub async fn delete_access_key(&self, actor: &Actor, user: &UserName, key_id: &str) -> ServiceResult<()> {
        actor.require_self_or_admin(user)?;
        let deleted = self.store.delete_access_key(user.as_str(), key_id).await?;
        forget_cached_keys();
        if !deleted {
            return Err(Self::key_not_found(key_id));
        }
        self.store.audit(actor.name.as_str(), "access_key.delete", &format!("{user}/{key_id}"), "ok", "").await?;
        Ok(())
    }

    /// [`Self::access_key_holder_at`] now, by the wall clock. Prefer passing
    /// the request's `now` (the time its signature was checked against).
    pub async fn access_key_holder(&self, key_id: &str) -> ServiceResult<Option<KeyHolder>> {
        self.access_key_holder_at(key_id, Utc::now()).await
    }

    /// The holder of an active, unexpired (at `now`) access key of an
    /// enabled user, with the secret to check a signature against; `None`
    /// for anything else, the same whatever the reason. Answers from the
    /// [`KeyCache`] when it can, but never with a key expired at `now`.
    pub async fn access_key_holder_at(&self, key_id: &str, now: DateTime<Utc>) -> ServiceResult<Option<KeyHolder>> {
        if !looks_like_key_id(key_id) {
            return Ok(None);
        }
        if let Some(h) = self.key_cache.get(key_id) {
            if !h.expired_at(now) {
                return Ok(Some(h));
            }
            self.key_cache.remove(key_id);
            return Ok(None);
        }
        // Read the epoch before the database: a change made during the
        // lookup bumps it, and the (possibly stale) answer is not cached.
        let epoch = EPOCH.load(Ordering::SeqCst);
        let Some(row) = self.store.access_key(key_id).await? else { return Ok(None) };
        if row.status != ACTIVE || expired(&row, now) {
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
        let actor = Actor { expires_at: row.expires_at, ..Actor::new(user_name(user.name), user.is_admin) };
        let holder = KeyHolder { actor, secret, derived: Arc::default() };
        self.key_cache.put(key_id, &holder, epoch, row.checked_at.map(|t| t.timestamp_millis()));
        Ok(Some(holder))
    }

    /// Records that a key was used (at most once a minute per key is
    /// enough; a cached key knows when it was last recorded).
    pub async fn access_key_used(&self, key_id: &str) -> ServiceResult<()> {
        let now = cloudbroker_store::now_ms();
        match self.key_cache.should_touch(key_id, now) {
            Some(false) => Ok(()),
            Some(true) => Ok(self.store.touch_access_key(key_id, now).await?),
            None => {
                if let Some(row) = self.store.access_key(key_id).await? {
                    if row.checked_at.is_none_or(|t| now - t.timestamp_millis() > 60_000) {
                        self.store.touch_access_key(key_id, now).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The access-key cache (for inspection in tests).
    pub fn key_cache(&self) -> &KeyCache {
        &self.key_cache
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

    fn holder() -> KeyHolder {
        KeyHolder { actor: Actor::new(user_name("alice".into()), false), secret: SecretString::new("s3cret"), derived: Arc::default() }
    }

    #[test]
    fn cached_holders_expire_and_are_forgotten_on_change() {
        let cache = KeyCache::default();
        let epoch = EPOCH.load(Ordering::SeqCst);
        cache.put("AKIAAAAAAAAAAAAAAAAA", &holder(), epoch, None);
        // Another test of this process may have bumped the epoch meanwhile; then nothing was cached.
        if EPOCH.load(Ordering::SeqCst) == epoch {
            assert!(cache.get("AKIAAAAAAAAAAAAAAAAA").is_some());
        }
        // An entry older than the TTL is not answered (another replica's change is seen within it).
        {
            let mut g = cache.lock();
            for c in g.keys.values_mut() {
                c.fetched = Instant::now().checked_sub(KEY_CACHE_TTL).unwrap_or_else(Instant::now);
            }
        }
        assert!(cache.get("AKIAAAAAAAAAAAAAAAAA").is_none());
        // A change forgets everything.
        let epoch = EPOCH.load(Ordering::SeqCst);
        cache.put("AKIABBBBBBBBBBBBBBBB", &holder(), epoch, None);
        forget_cached_keys();
        assert!(cache.get("AKIABBBBBBBBBBBBBBBB").is_none());
        // A lookup that started before a change does not cache its answer.
        cache.put("AKIACCCCCCCCCCCCCCCC", &holder(), epoch, None);
        assert!(cache.get("AKIACCCCCCCCCCCCCCCC").is_none());
    }

    #[test]
    fn derived_keys_are_computed_once_per_label() {
        let h = holder();
        let mut calls = 0;
        let a = h.derived("aws4/20260101/sb/ec2", |s| {
            calls += 1;
            assert_eq!(s, "s3cret");
            [1; 32]
        });
        let b = h.derived("aws4/20260101/sb/ec2", |_| {
            calls += 1;
            [2; 32]
        });
        assert_eq!((*a, *b, calls), ([1; 32], [1; 32], 1));
        let c = h.derived("aws4/20260102/sb/ec2", |_| [3; 32]);
        assert_eq!(*c, [3; 32]);
        // Clones (what the cache hands out) share the derived keys.
        assert_eq!(*h.clone().derived("aws4/20260102/sb/ec2", |_| [9; 32]), [3; 32]);
    }
}
