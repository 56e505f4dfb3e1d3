//! Users, roles, passwords, sessions, API tokens and login throttling.
//!
//! * Passwords: Argon2id PHC strings, hashed and verified off the async
//!   executor; unknown users are checked against a dummy hash so timing
//!   reveals nothing; hashes made with older parameters are upgraded on login.
//! * Sessions: 256-bit random ids, stored as SHA-256 hashes, with idle and
//!   absolute expiry and a per-session CSRF token.
//! * API tokens: `cbt_` + 256 random bits, stored as SHA-256 hashes, shown
//!   once, revocable, with optional expiry. Resolved through a [`TokenCache`]
//!   with the access-key cache's invariant: an answer is never older than
//!   [`TOKEN_CACHE_TTL`]; revoking a token, changing a password, disabling a
//!   user or changing a role empties it before the change is reported done
//!   (so it holds at once on this replica, within the TTL on the others);
//!   refusals are never cached; an expired token is refused from the cache too.
//!   A token minted with a token records its parent, never outlives it and
//!   is revoked with it (a token with a revoked ancestor is refused).
//! * Password changes end every session and token of the user; an admin's
//!   reset of another user's password (the recovery path after a
//!   compromise) also disables their EC2 access keys, and a self-service
//!   change does so when asked; the audit record says what ended.

use crate::domain::{Cursor, InstanceName, Page, PageRequest, TokenId, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_store::identity::{TokenRow, UserRow};
use cloudbroker_store::{now_ms, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// How long another replica's revocation of a token may go unseen here.
pub const TOKEN_CACHE_TTL: Duration = crate::access_keys::KEY_CACHE_TTL;

/// Live API tokens recently resolved, by the SHA-256 of the token (the raw
/// token is never kept): the token's id and its actor. See the module's invariant.
pub type TokenCache = crate::access_keys::CredentialCache<(String, Actor)>;

/// The built-in administrator.
pub const SUPER_USER: &str = "super";

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: UserName,
    pub is_admin: bool,
    /// When what this actor authenticated with (an API token) expires:
    /// nothing it mints may outlive it. `None` for a password or a session.
    pub expires_at: Option<DateTime<Utc>>,
    /// The API token this actor authenticated with: a token it mints is
    /// revoked with it. `None` for a password, a session or an access key.
    pub token_id: Option<TokenId>,
}

impl Actor {
    /// An actor that authenticated with a password (or a session).
    pub fn new(name: UserName, is_admin: bool) -> Self {
        Self { name, is_admin, expires_at: None, token_id: None }
    }

    /// An actor for the command line / the system itself.
    pub fn system() -> Self {
        Self::new(UserName::system(), true)
    }

    /// Admin check.
    pub fn require_admin(&self) -> ServiceResult<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("this action needs the admin role".into()))
        }
    }

    /// Self-or-admin check; other users' things are "not found" to non-admins.
    pub fn require_self_or_admin(&self, user: &UserName) -> ServiceResult<()> {
        if self.is_admin || &self.name == user {
            Ok(())
        } else {
            Err(ServiceError::NotFound(Resource::User(user.clone())))
        }
    }
}

/// A user as shown (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: UserName,
    pub is_admin: bool,
    pub ssh_public_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The connector instance that SigV2 requests sent to plain `/ec2` act on
    /// (SigV2 cannot name a region); `null` when not chosen.
    pub default_ec2_region: Option<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            name: user_name(r.name),
            is_admin: r.is_admin,
            ssh_public_key: r.ssh_public_key,
            created_at: r.created_at,
            disabled_at: r.disabled_at,
            default_ec2_region: r.default_ec2_region,
        }
    }
}

/// An API token as shown (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: TokenId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_name: UserName,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The token this one was minted with (revoking that one revokes this
    /// one); `null` when minted with a password or a session.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub parent_id: Option<TokenId>,
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Self {
        Self {
            id: TokenId::from_stored(r.id),
            user_name: user_name(r.user_name),
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            parent_id: r.parent_id.map(TokenId::from_stored),
        }
    }
}

/// A user name read from the store (written only after parsing).
pub(crate) fn user_name(s: String) -> UserName {
    UserName::from_stored(s)
}

/// What may surround an SSH key line (a pasted line's spaces and newline).
const SSH_KEY_PADDING: &[char] = &[' ', '\t', '\r', '\n'];

/// An OpenSSH public key line: `<type> <base64 blob> [comment]`, the type
/// `ssh-*` or `ecdsa-*`, type and blob printable ASCII (the blob at least 16
/// characters), separated by spaces or tabs; the comment has no control
/// character but tabs. The JSON API's document states the same rule as
/// `^[ \t\r\n]*(ssh-|ecdsa-)[!-~]*[ \t]+[!-~]{16,}([ \t][^\x00-\x08\x0a-\x1f\x7f-\x9f]*)?[ \t\r\n]*$`.
pub fn ssh_key_ok(key: &str) -> bool {
    let sep = [' ', '\t'];
    let line = key.trim_matches(SSH_KEY_PADDING);
    let Some((kind, rest)) = line.split_once(sep) else { return false };
    let (blob, comment) = rest.trim_start_matches(sep).split_once(sep).unwrap_or((rest.trim_start_matches(sep), ""));
    (kind.starts_with("ssh-") || kind.starts_with("ecdsa-"))
        && kind.bytes().all(|b| b.is_ascii_graphic())
        && blob.len() >= 16
        && blob.bytes().all(|b| b.is_ascii_graphic())
        && comment.chars().all(|c| c == '\t' || !c.is_control())
}

/// Passwords must be at least this long.
pub const MIN_PASSWORD_LEN: usize = 8;
/// And at most this long (Argon2 hashes any length; a megabyte password is an attack).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// The longest lifetime a token can be given (about 10 years).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

fn check_password(password: &SecretString) -> ServiceResult<()> {
    let n = password.expose().chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(ServiceError::invalid_field("password", format!("password must have at least {MIN_PASSWORD_LEN} characters")));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(ServiceError::invalid_field("password", format!("password must have at most {MAX_PASSWORD_LEN} characters")));
    }
    Ok(())
}

fn argon2() -> Argon2<'static> {
    // OWASP's recommended Argon2id setting: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> ServiceResult<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("password hashing: {e}")))
}

/// Argon2 runs (19 MiB and tens of milliseconds each) at most this many at a
/// time, whatever the number of requests: the others wait their turn.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)))
}

/// Hashes a password (off the executor).
pub async fn hash_password(password: &SecretString) -> ServiceResult<String> {
    let pw = password.clone();
    let _slot = hashing_slots().acquire().await.map_err(|e| ServiceError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_blocking(pw.expose())).await.map_err(|e| ServiceError::Internal(e.to_string()))?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("dummy password for unknown users").unwrap_or_default())
}

/// Verifies a password against a PHC string (off the executor). Returns
/// whether it matched and whether the hash should be upgraded.
async fn verify(hash: String, password: SecretString) -> (bool, bool) {
    let Ok(_slot) = hashing_slots().acquire().await else { return (false, false) };
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else { return (false, false) };
        let ok = argon2().verify_password(password.expose().as_bytes(), &parsed).is_ok();
        let current = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
        let stale = parsed.algorithm.as_str() != "argon2id"
            || Params::try_from(&parsed)
                .map(|p| p.m_cost() != current.m_cost() || p.t_cost() != current.t_cost() || p.p_cost() != current.p_cost())
                .unwrap_or(true);
        (ok, ok && stale)
    })
    .await
    .unwrap_or((false, false))
}

/// SHA-256 hex of a token or session id.
pub fn token_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

pub fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Login throttling, per account and per client address, shared by every
/// replica through the database (crates/store/src/throttle.rs).
///
/// An attempt is recorded when it is admitted, before the password is
/// checked, so concurrent guesses (on one replica or several) cannot all
/// pass the check; a successful login takes its account's record back. Past
/// `per_account` failures in the window an account is slowed down, not
/// locked out: each further attempt waits twice as long as the previous one,
/// up to `max_delay`, so its owner still gets in. Records older than the
/// window are purged with the expired sessions.
///
/// The per-address rule (`per_address` failures from one client address)
/// slows down guessing across many accounts, but it never refuses a
/// correct password of an account that is not itself slowed down: behind a
/// proxy many users share one address (unless the proxy is trusted, see
/// `trusted_proxies`), and one attacker must not lock them all out. Such an
/// attempt is checked; a wrong password then answers "throttled", exactly
/// as if it had not been checked.
pub struct Throttle {
    store: Store,
}

/// Throttling limits.
#[derive(Clone, Debug)]
pub struct ThrottleLimits {
    pub window: Duration,
    pub per_account: usize,
    pub per_address: usize,
    /// The longest wait between attempts on a slowed-down account.
    pub max_delay: Duration,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self { window: Duration::from_secs(15 * 60), per_account: 5, per_address: 20, max_delay: Duration::from_secs(60) }
    }
}

/// An admitted login attempt (already counted as a failure until taken back).
pub struct Attempt {
    account: String,
    recorded: cloudbroker_store::throttle::RecordedAttempt,
    /// Set when the client address is over its limit: a wrong password is
    /// answered "throttled" (with this wait), a correct one still passes.
    address_wait: Option<u64>,
}

impl ThrottleLimits {
    /// The address rule: `Some(seconds to wait)` when an address with
    /// `address` recent attempts (ms, oldest first) is over its limit at `now` (ms).
    fn address_wait(&self, now: i64, address: Option<&[i64]>) -> Option<u64> {
        let window = self.window.as_millis() as i64;
        let v = address?;
        if v.len() < self.per_address {
            return None;
        }
        let oldest = v.first().copied().unwrap_or(now);
        Some(((window - (now - oldest)).max(0) as u64 / 1000).max(1))
    }

    /// The account rule: `Some(seconds to wait)` when an attempt on an
    /// account with `account` recent attempts (ms, oldest first) must wait.
    fn account_wait(&self, now: i64, account: &[i64]) -> Option<u64> {
        if account.len() >= self.per_account {
            let over = u32::try_from(account.len() - self.per_account).unwrap_or(u32::MAX).min(16);
            let delay = (1000i64 << over).min(self.max_delay.as_millis() as i64);
            let since = account.last().map_or(delay, |t| now - t);
            if since < delay {
                return Some((((delay - since) as u64).div_ceil(1000)).max(1));
            }
        }
        None
    }
}

impl Throttle {
    /// Admits an attempt and records it, or says how long to wait. An
    /// attempt over only the address limit is admitted with
    /// [`Attempt::address_wait`] set: only a correct password may pass it.
    async fn admit(&self, limits: &ThrottleLimits, user: &str, addr: Option<IpAddr>) -> ServiceResult<Attempt> {
        let now = now_ms();
        let account = format!("u:{user}");
        let mut keys = vec![account.clone()];
        if let Some(a) = addr {
            keys.push(format!("a:{a}"));
        }
        let since = now - limits.window.as_millis() as i64;
        let has_address = addr.is_some();
        // Set by the rule (run inside the store's transaction): u64::MAX for none.
        let address_wait = std::sync::atomic::AtomicU64::new(u64::MAX);
        let r = self
            .store
            .admit_attempt(&keys, now, since, |seen| {
                let by_address = limits.address_wait(now, if has_address { seen.get(1).map(Vec::as_slice) } else { None });
                address_wait.store(by_address.unwrap_or(u64::MAX), std::sync::atomic::Ordering::Relaxed);
                limits.account_wait(now, &seen[0])
            })
            .await?;
        match r {
            Ok(recorded) => {
                let w = address_wait.load(std::sync::atomic::Ordering::Relaxed);
                Ok(Attempt { account, recorded, address_wait: (w != u64::MAX).then_some(w) })
            }
            Err(retry_after_secs) => Err(ServiceError::Throttled { retry_after_secs }),
        }
    }

    /// A successful login: the account's record goes, and this attempt no
    /// longer counts against its address.
    async fn refund(&self, attempt: &Attempt) -> ServiceResult<()> {
        Ok(self.store.take_back_attempt(&attempt.recorded, &attempt.account).await?)
    }

    /// Forgets everything older than the window.
    async fn prune(&self, limits: &ThrottleLimits) -> ServiceResult<u64> {
        Ok(self.store.purge_attempts(now_ms() - limits.window.as_millis() as i64).await?)
    }

    /// Accounts and addresses with attempts still counting.
    pub async fn tracked(&self) -> ServiceResult<i64> {
        Ok(self.store.throttled_keys().await?)
    }
}

/// Session lifetimes.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { idle: Duration::from_secs(30 * 60), absolute: Duration::from_secs(12 * 3600) }
    }
}

/// A resolved session.
#[derive(Clone, Debug)]
pub struct Session {
    pub actor: Actor,
    pub csrf_token: String,
}

/// The identity service.
pub struct Identity {
    pub(crate) store: Store,
    throttle: Throttle,
    pub throttle_limits: ThrottleLimits,
    pub session_limits: SessionLimits,
    token_cache: TokenCache,
}

impl Identity {
    /// A new service on the store.
    pub fn new(store: Store) -> Self {
        Self {
            throttle: Throttle { store: store.clone() },
            store,
            throttle_limits: ThrottleLimits::default(),
            session_limits: SessionLimits::default(),
            token_cache: TokenCache::default(),
        }
    }

    /// The API-token cache (for inspection in tests).
    pub fn token_cache(&self) -> &TokenCache {
        &self.token_cache
    }

    /// Creates `super` on first start. Returns the generated password, if one was generated.
    pub async fn bootstrap_super(&self, configured: Option<&SecretString>) -> ServiceResult<Option<SecretString>> {
        if self.store.get_user(SUPER_USER).await?.is_some() {
            return Ok(None);
        }
        let (pw, generated) = match configured {
            Some(p) => (p.clone(), false),
            None => (SecretString::new(random_token("")[..20].to_string()), true),
        };
        let hash = hash_password(&pw).await?;
        match self.store.create_user(SUPER_USER, &hash, true).await {
            Ok(()) => {}
            Err(e) if e.is_unique_violation() => return Ok(None), // another replica won
            Err(e) => return Err(e.into()),
        }
        self.store.audit("system", "user.create", SUPER_USER, "ok", "bootstrap").await?;
        Ok(generated.then_some(pw))
    }

    /// Creates a user.
    pub async fn create_user(&self, actor: &Actor, name: &UserName, password: &SecretString, is_admin: bool) -> ServiceResult<User> {
        actor.require_admin()?;
        check_password(password)?;
        let hash = hash_password(password).await?;
        self.store.create_user(name.as_str(), &hash, is_admin).await?;
        self.store.audit(actor.name.as_str(), "user.create", name.as_str(), "ok", if is_admin { "admin" } else { "user" }).await?;
        self.user(name).await
    }

    /// The stored user, or not found.
    async fn user(&self, name: &UserName) -> ServiceResult<User> {
        self.store.get_user(name.as_str()).await?.map(User::from).ok_or_else(|| ServiceError::NotFound(Resource::User(name.clone())))
    }

    /// Sets a password. Changing one's own needs the current password (a
    /// stolen session or token must not be enough to take the account over);
    /// an admin sets another user's without it. Either way every session and
    /// token of the user ends: whoever held them must sign in again. An
    /// admin's reset also disables the user's EC2 access keys (see
    /// [`Self::change_password`]); a change of one's own leaves them.
    pub async fn set_password(
        &self,
        actor: &Actor,
        name: &UserName,
        current: Option<&SecretString>,
        password: &SecretString,
        addr: Option<IpAddr>,
    ) -> ServiceResult<()> {
        self.change_password(actor, name, current, password, addr, false).await
    }

    /// [`Self::set_password`], and the user's EC2 access keys: an admin's
    /// reset of another user's password (the recovery path after a
    /// compromise) always disables them; a change of one's own disables
    /// them when `disable_access_keys`. The audit record counts what ended.
    pub async fn change_password(
        &self,
        actor: &Actor,
        name: &UserName,
        current: Option<&SecretString>,
        password: &SecretString,
        addr: Option<IpAddr>,
        disable_access_keys: bool,
    ) -> ServiceResult<()> {
        actor.require_self_or_admin(name)?;
        check_password(password)?;
        if &actor.name == name {
            let Some(current) = current else {
                return Err(ServiceError::invalid_field("current_password", "give your current password to change it"));
            };
            match self.authenticate(name, current, addr).await {
                Ok(_) => {}
                Err(ServiceError::Unauthenticated(_)) => {
                    return Err(ServiceError::invalid_field("current_password", "the current password is wrong"));
                }
                Err(e) => return Err(e),
            }
        }
        let hash = hash_password(password).await?;
        self.store.set_password_hash(name.as_str(), &hash).await?;
        let sessions = self.store.delete_user_sessions(name.as_str()).await?;
        let tokens = self.store.revoke_all_tokens(name.as_str()).await?;
        let reset = &actor.name != name;
        let keys = if reset || disable_access_keys {
            let n = self.store.set_user_access_keys_state(name.as_str(), crate::access_keys::ACTIVE, crate::access_keys::DISABLED).await?;
            format!("{n} access key(s) disabled")
        } else {
            "access keys left active".to_string()
        };
        crate::access_keys::forget_cached_keys();
        let what = if reset { "admin reset" } else { "changed by the user" };
        self.store
            .audit(
                actor.name.as_str(),
                "user.password",
                name.as_str(),
                "ok",
                &format!("{what}: {sessions} session(s) ended, {tokens} token(s) revoked, {keys}"),
            )
            .await?;
        Ok(())
    }

    /// Grants or removes the admin role.
    pub async fn set_admin(&self, actor: &Actor, name: &UserName, is_admin: bool) -> ServiceResult<()> {
        actor.require_admin()?;
        if name.as_str() == SUPER_USER && !is_admin {
            return Err(ServiceError::Conflict("super is always an admin".into()));
        }
        self.store.set_admin(name.as_str(), is_admin).await?;
        // Cached EC2 access keys carry the owner's role: forget them now.
        crate::access_keys::forget_cached_keys();
        self.store.audit(actor.name.as_str(), "user.role", name.as_str(), "ok", if is_admin { "admin" } else { "user" }).await?;
        Ok(())
    }

    /// A user (self or admin).
    pub async fn get_user(&self, actor: &Actor, name: &UserName) -> ServiceResult<User> {
        actor.require_self_or_admin(name)?;
        self.user(name).await
    }

    /// All users (admin).
    pub async fn list_users(&self, actor: &Actor) -> ServiceResult<Vec<User>> {
        actor.require_admin()?;
        Ok(self.store.list_users().await?.into_iter().map(User::from).collect())
    }

    /// One page of users, by name (admin).
    pub async fn page_users(&self, actor: &Actor, page: &PageRequest) -> ServiceResult<Page<User>> {
        actor.require_admin()?;
        let after = page.after.as_ref().map(|c| c.key.as_str());
        let rows = self.store.page_users(after, i64::from(page.limit) + 1).await?;
        Ok(Page::from_fetched(rows.into_iter().map(User::from).collect(), page.limit, |u| Cursor::new(0, u.name.as_str())))
    }

    /// Sets the user's SSH public key (self or admin).
    pub async fn set_ssh_key(&self, actor: &Actor, name: &UserName, key: Option<&str>) -> ServiceResult<()> {
        actor.require_self_or_admin(name)?;
        self.user(name).await?;
        if let Some(k) = key {
            if !ssh_key_ok(k) {
                return Err(ServiceError::invalid_field(
                    "ssh_public_key",
                    "SSH public key is not in OpenSSH format (e.g. 'ssh-ed25519 AAAA... comment')",
                ));
            }
        }
        self.store.set_ssh_key(name.as_str(), key.map(|k| k.trim_matches(SSH_KEY_PADDING))).await?;
        Ok(())
    }

    /// Sets or clears the user's default EC2 region (self or admin). The
    /// caller ([`crate::Broker::set_default_ec2_region`]) has checked that
    /// the region is a connector instance.
    pub(crate) async fn set_default_ec2_region(&self, actor: &Actor, name: &UserName, region: Option<&InstanceName>) -> ServiceResult<()> {
        actor.require_self_or_admin(name)?;
        self.user(name).await?;
        self.store.set_default_ec2_region(name.as_str(), region.map(InstanceName::as_str)).await?;
        self.store
            .audit(actor.name.as_str(), "user.default_ec2_region", name.as_str(), "ok", region.map(InstanceName::as_str).unwrap_or(""))
            .await?;
        Ok(())
    }

    /// Checks a user name and password, with throttling. A disabled account
    /// is refused, said only to who knows its password.
    pub async fn authenticate(&self, name: &UserName, password: &SecretString, addr: Option<IpAddr>) -> ServiceResult<Actor> {
        let attempt = self.throttle.admit(&self.throttle_limits, name.as_str(), addr).await?;
        let name = name.as_str();
        let user = self.store.get_user(name).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_string());
        let (ok, stale) = verify(hash, password.clone()).await;
        let from = addr.map(|a| a.to_string()).unwrap_or_default();
        match (user, ok) {
            (Some(u), true) if u.disabled_at.is_some() => {
                self.store.audit(name, "login", name, "rejected", &format!("account disabled {from}")).await?;
                Err(ServiceError::Forbidden(format!("the account '{name}' is disabled; ask an administrator")))
            }
            (Some(u), true) => {
                self.throttle.refund(&attempt).await?;
                if stale {
                    if let Ok(h) = hash_password(password).await {
                        self.store.set_password_hash(name, &h).await?;
                        tracing::info!(user = name, "password hash upgraded to current parameters");
                    }
                }
                self.store.audit(name, "login", name, "ok", &from).await?;
                Ok(Actor::new(user_name(u.name), u.is_admin))
            }
            _ => {
                self.store.audit(name, "login", name, "failure", &from).await?;
                match attempt.address_wait {
                    Some(retry_after_secs) => Err(ServiceError::Throttled { retry_after_secs }),
                    None => Err(ServiceError::Unauthenticated("wrong user name or password".into())),
                }
            }
        }
    }

    /// The login throttle (for inspection).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Disables or enables an account (admin). Disabling ends its sessions
    /// and revokes its tokens; `super` and the acting admin cannot be disabled.
    pub async fn set_disabled(&self, actor: &Actor, name: &UserName, disabled: bool) -> ServiceResult<User> {
        actor.require_admin()?;
        if disabled && (name.as_str() == SUPER_USER || name == &actor.name) {
            return Err(ServiceError::invalid_field("user", format!("'{name}' cannot be disabled (super, or yourself)")));
        }
        let changed = self.store.set_user_disabled(name.as_str(), disabled).await?;
        // Cached EC2 access keys carry the owner's state: forget them now.
        crate::access_keys::forget_cached_keys();
        if !changed {
            return Err(ServiceError::NotFound(Resource::User(name.clone())));
        }
        let mut detail = String::new();
        if disabled {
            let sessions = self.store.delete_user_sessions(name.as_str()).await?;
            let tokens = self.store.revoke_all_tokens(name.as_str()).await?;
            crate::access_keys::forget_cached_keys();
            detail = format!("{sessions} session(s) ended, {tokens} token(s) revoked");
        }
        let what = if disabled { "user.disable" } else { "user.enable" };
        self.store.audit(actor.name.as_str(), what, name.as_str(), "ok", &detail).await?;
        self.user(name).await
    }

    /// Starts a web session; returns the raw session id (for the cookie).
    pub async fn create_session(&self, actor: &Actor) -> ServiceResult<(String, Session)> {
        let raw = random_token("");
        let csrf = random_token("");
        self.store.create_session(&token_hash(&raw), actor.name.as_str(), &csrf).await?;
        Ok((raw, Session { actor: actor.clone(), csrf_token: csrf }))
    }

    /// Resolves a session cookie, enforcing idle and absolute expiry.
    pub async fn resolve_session(&self, raw: &str) -> ServiceResult<Option<Session>> {
        let h = token_hash(raw);
        let Some(s) = self.store.get_session(&h).await? else { return Ok(None) };
        let now = now_ms();
        let idle = self.session_limits.idle.as_millis() as i64;
        let absolute = self.session_limits.absolute.as_millis() as i64;
        if now - s.last_seen_at > idle || now - s.created_at > absolute {
            self.store.delete_session(&h).await?;
            return Ok(None);
        }
        let Some(u) = self.store.get_user(&s.user_name).await?.filter(|u| u.disabled_at.is_none()) else { return Ok(None) };
        self.store.touch_session(&h).await?;
        Ok(Some(Session { actor: Actor::new(user_name(u.name), u.is_admin), csrf_token: s.csrf_token }))
    }

    /// Ends a session.
    pub async fn logout(&self, raw: &str) -> ServiceResult<()> {
        self.store.delete_session(&token_hash(raw)).await?;
        Ok(())
    }

    /// Creates an API token for `user` (self or admin); returns the raw token (shown once).
    pub async fn create_token(
        &self,
        actor: &Actor,
        user: &UserName,
        name: &str,
        expires_in: Option<Duration>,
    ) -> ServiceResult<(String, Token)> {
        actor.require_self_or_admin(user)?;
        self.user(user).await?;
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid_field("name", "a token name is 1-64 characters, no control characters"));
        }
        let now = now_ms();
        let requested = match expires_in {
            None => None,
            Some(d) if d > MAX_TOKEN_LIFETIME || d.is_zero() => {
                return Err(ServiceError::invalid_field(
                    "expires_in_secs",
                    format!("a token lives 1 to {} seconds (or give no expiry)", MAX_TOKEN_LIFETIME.as_secs()),
                ));
            }
            // Cannot overflow: bounded by MAX_TOKEN_LIFETIME above.
            Some(d) => Some(now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        };
        // A token minted with a token never outlives it.
        let parent = actor.expires_at.map(|t| t.timestamp_millis());
        let expires = match (requested, parent) {
            (Some(r), Some(p)) => Some(r.min(p)),
            (r, p) => r.or(p),
        };
        let raw = random_token("cbt_");
        let id = TokenId::generate();
        // A token minted with a token is revoked with it.
        let parent_id = actor.token_id.as_ref().map(TokenId::as_str);
        let row = self.store.create_token(id.as_str(), user.as_str(), name, &token_hash(&raw), expires, parent_id).await?;
        let detail = match parent_id {
            Some(p) => format!("{name} (minted with token {p})"),
            None => name.to_string(),
        };
        self.store.audit(actor.name.as_str(), "token.create", &format!("{user}/{id}"), "ok", &detail).await?;
        Ok((raw, row.into()))
    }

    /// Resolves a bearer token.
    pub async fn resolve_token(&self, raw: &str) -> ServiceResult<Option<Actor>> {
        let hash = token_hash(raw);
        let now = now_ms();
        if let Some((id, actor)) = self.token_cache.get(&hash) {
            if actor.expires_at.is_none_or(|e| e.timestamp_millis() > now) {
                if self.token_cache.should_touch(&hash, now) == Some(true) {
                    self.store.touch_token(&id, now).await?;
                }
                return Ok(Some(actor));
            }
            // Expired since it was cached: the database refuses it below.
            self.token_cache.remove(&hash);
        }
        // Read the epoch before the database: a change made during the
        // lookup empties the cache, and this (possibly stale) answer is not kept.
        let epoch = crate::access_keys::cache_epoch();
        let Some((t, is_admin)) = self.store.live_token(&hash, now).await? else { return Ok(None) };
        // A token minted from a token dies with it, even when it was minted
        // while its parent was being revoked (the revocation missed it).
        if let Some(parent) = &t.parent_id {
            if self.store.token_lineage_revoked(parent).await? {
                return Ok(None);
            }
        }
        let recent = t.last_used_at.is_some_and(|l| now - l.timestamp_millis() <= cloudbroker_store::identity::TOKEN_USE_RESOLUTION_MS);
        if !recent {
            self.store.touch_token(&t.id, now).await?;
        }
        let actor =
            Actor { name: user_name(t.user_name), is_admin, expires_at: t.expires_at, token_id: Some(TokenId::from_stored(t.id.clone())) };
        let touched = if recent { t.last_used_at.map(|l| l.timestamp_millis()) } else { Some(now) };
        self.token_cache.put(&hash, &(t.id.clone(), actor.clone()), epoch, touched);
        Ok(Some(actor))
    }

    /// A user's tokens (self or admin).
    pub async fn list_tokens(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<Token>> {
        actor.require_self_or_admin(user)?;
        Ok(self.store.list_tokens(user.as_str()).await?.into_iter().map(Token::from).collect())
    }

    /// One page of a user's tokens, newest first (self or admin).
    pub async fn page_tokens(&self, actor: &Actor, user: &UserName, page: &PageRequest) -> ServiceResult<Page<Token>> {
        actor.require_self_or_admin(user)?;
        let after = page.after.as_ref().map(|c| (c.num, c.key.as_str()));
        let rows = self.store.page_tokens(user.as_str(), after, i64::from(page.limit) + 1).await?;
        Ok(Page::from_fetched(rows.into_iter().map(Token::from).collect(), page.limit, |t| {
            Cursor::new(t.created_at.timestamp_millis(), t.id.as_str())
        }))
    }

    /// Revokes a token (self or admin), and every token minted from it.
    pub async fn revoke_token(&self, actor: &Actor, user: &UserName, id: &TokenId) -> ServiceResult<()> {
        actor.require_self_or_admin(user)?;
        let revoked = self.store.revoke_token_tree(user.as_str(), id.as_str()).await?;
        crate::access_keys::forget_cached_keys();
        let Some(children) = revoked else {
            return Err(ServiceError::NotFound(Resource::Token(id.clone())));
        };
        let detail = if children > 0 { format!("{children} token(s) minted from it revoked too") } else { String::new() };
        self.store.audit(actor.name.as_str(), "token.revoke", &format!("{user}/{id}"), "ok", &detail).await?;
        Ok(())
    }

    /// Deletes sessions past their idle or absolute expiry; returns how many.
    pub async fn purge_sessions(&self) -> ServiceResult<u64> {
        self.throttle.prune(&self.throttle_limits).await?;
        let now = now_ms();
        let idle = now - self.session_limits.idle.as_millis() as i64;
        let absolute = now - self.session_limits.absolute.as_millis() as i64;
        Ok(self.store.purge_sessions(idle, absolute).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::ssh_key_ok;

    #[test]
    fn ssh_keys() {
        for ok in [
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA super@x",
            "  ssh-rsa\tAAAAB3NzaC1yc2EAAAADAQABAAABAQ  \r\n",
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY josé laptop",
            "ssh-ed25519   AAAAC3NzaC1lZDI1NTE5AAAAIA",
        ] {
            assert!(ssh_key_ok(ok), "{ok:?}");
        }
        for bad in [
            "not a key",
            "ssh-ed25519 short",
            "ssh-ed25519",
            "rsa AAAAC3NzaC1lZDI1NTE5AAAAIA",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\ncomment",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA bad\u{7}bell",
            "ssh-ed25519\u{85}AAAAC3NzaC1lZDI1NTE5AAAAIA",
        ] {
            assert!(!ssh_key_ok(bad), "{bad:?}");
        }
    }
}
