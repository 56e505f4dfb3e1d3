//! Users, roles, passwords, sessions, API tokens and login throttling.
//!
//! * Passwords: Argon2id PHC strings, hashed and verified off the async
//!   executor; unknown users are checked against a dummy hash so timing
//!   reveals nothing; hashes made with older parameters are upgraded on login.
//! * Sessions: 256-bit random ids, stored as SHA-256 hashes, with idle and
//!   absolute expiry and a per-session CSRF token.
//! * API tokens: `cbt_` + 256 random bits, stored as SHA-256 hashes, shown
//!   once, revocable, with optional expiry.

use crate::domain::{TokenId, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use cloudbroker_connector_api::SecretString;
use chrono::{DateTime, Utc};
use cloudbroker_store::identity::{TokenRow, UserRow};
use cloudbroker_store::{now_ms, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The built-in administrator.
pub const SUPER_USER: &str = "super";

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: UserName,
    pub is_admin: bool,
}

impl Actor {
    /// An actor for the command line / the system itself.
    pub fn system() -> Self {
        Self { name: UserName::system(), is_admin: true }
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
pub struct User {
    pub name: UserName,
    pub is_admin: bool,
    pub ssh_public_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self { name: user_name(r.name), is_admin: r.is_admin, ssh_public_key: r.ssh_public_key, created_at: r.created_at }
    }
}

/// An API token as shown (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    pub id: TokenId,
    pub user_name: UserName,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
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
        }
    }
}

/// A user name read from the store (written only after parsing).
pub(crate) fn user_name(s: String) -> UserName {
    UserName::from_stored(s)
}

/// Passwords must be at least this long.
pub const MIN_PASSWORD_LEN: usize = 8;
/// And at most this long (Argon2 hashes any length; a megabyte password is an attack).
pub const MAX_PASSWORD_LEN: usize = 1024;

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

/// Hashes a password (off the executor).
pub async fn hash_password(password: &SecretString) -> ServiceResult<String> {
    let pw = password.clone();
    tokio::task::spawn_blocking(move || hash_blocking(pw.expose())).await.map_err(|e| ServiceError::Internal(e.to_string()))?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("dummy password for unknown users").unwrap_or_default())
}

/// Verifies a password against a PHC string (off the executor). Returns
/// whether it matched and whether the hash should be upgraded.
async fn verify(hash: String, password: SecretString) -> (bool, bool) {
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

/// Login throttling, per account and per client address, in this process.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Throttling limits.
#[derive(Clone, Debug)]
pub struct ThrottleLimits {
    pub window: Duration,
    pub per_account: usize,
    pub per_address: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self { window: Duration::from_secs(15 * 60), per_account: 5, per_address: 20 }
    }
}

impl Throttle {
    fn keys(user: &str, addr: Option<IpAddr>) -> Vec<(String, bool)> {
        let mut k = vec![(format!("u:{user}"), true)];
        if let Some(a) = addr {
            k.push((format!("a:{a}"), false));
        }
        k
    }

    fn check(&self, limits: &ThrottleLimits, user: &str, addr: Option<IpAddr>) -> ServiceResult<()> {
        let now = Instant::now();
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (k, is_account) in Self::keys(user, addr) {
            if let Some(v) = m.get_mut(&k) {
                v.retain(|t| now.duration_since(*t) < limits.window);
                let limit = if is_account { limits.per_account } else { limits.per_address };
                if v.len() >= limit {
                    let oldest = v.first().copied().unwrap_or(now);
                    let retry = limits.window.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
                    return Err(ServiceError::Throttled { retry_after_secs: retry });
                }
            }
        }
        Ok(())
    }

    fn fail(&self, user: &str, addr: Option<IpAddr>) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (k, _) in Self::keys(user, addr) {
            m.entry(k).or_default().push(Instant::now());
        }
    }

    fn succeed(&self, user: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&format!("u:{user}"));
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
    store: Store,
    throttle: Throttle,
    pub throttle_limits: ThrottleLimits,
    pub session_limits: SessionLimits,
}

impl Identity {
    /// A new service on the store.
    pub fn new(store: Store) -> Self {
        Self { store, throttle: Throttle::default(), throttle_limits: ThrottleLimits::default(), session_limits: SessionLimits::default() }
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

    /// Sets a password (self or admin).
    pub async fn set_password(&self, actor: &Actor, name: &UserName, password: &SecretString) -> ServiceResult<()> {
        actor.require_self_or_admin(name)?;
        check_password(password)?;
        let hash = hash_password(password).await?;
        self.store.set_password_hash(name.as_str(), &hash).await?;
        self.store.audit(actor.name.as_str(), "user.password", name.as_str(), "ok", "").await?;
        Ok(())
    }

    /// Grants or removes the admin role.
    pub async fn set_admin(&self, actor: &Actor, name: &UserName, is_admin: bool) -> ServiceResult<()> {
        actor.require_admin()?;
        if name.as_str() == SUPER_USER && !is_admin {
            return Err(ServiceError::invalid_field("admin", "super is always an admin"));
        }
        self.store.set_admin(name.as_str(), is_admin).await?;
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

    /// Sets the user's SSH public key (self or admin).
    pub async fn set_ssh_key(&self, actor: &Actor, name: &UserName, key: Option<&str>) -> ServiceResult<()> {
        actor.require_self_or_admin(name)?;
        if let Some(k) = key {
            let mut p = k.split_whitespace();
            let ok =
                matches!((p.next(), p.next()), (Some(a), Some(b)) if (a.starts_with("ssh-") || a.starts_with("ecdsa-")) && b.len() >= 16);
            if !ok {
                return Err(ServiceError::invalid_field(
                    "ssh_public_key",
                    "SSH public key is not in OpenSSH format (e.g. 'ssh-ed25519 AAAA... comment')",
                ));
            }
        }
        self.store.set_ssh_key(name.as_str(), key.map(str::trim)).await?;
        Ok(())
    }

    /// Checks a user name and password, with throttling.
    pub async fn authenticate(&self, name: &UserName, password: &SecretString, addr: Option<IpAddr>) -> ServiceResult<Actor> {
        let name = name.as_str();
        self.throttle.check(&self.throttle_limits, name, addr)?;
        let user = self.store.get_user(name).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_string());
        let (ok, stale) = verify(hash, password.clone()).await;
        match (user, ok) {
            (Some(u), true) => {
                self.throttle.succeed(name);
                if stale {
                    if let Ok(h) = hash_password(password).await {
                        self.store.set_password_hash(name, &h).await?;
                        tracing::info!(user = name, "password hash upgraded to current parameters");
                    }
                }
                self.store.audit(name, "login", name, "ok", &addr.map(|a| a.to_string()).unwrap_or_default()).await?;
                Ok(Actor { name: user_name(u.name), is_admin: u.is_admin })
            }
            _ => {
                self.throttle.fail(name, addr);
                self.store.audit(name, "login", name, "failure", &addr.map(|a| a.to_string()).unwrap_or_default()).await?;
                Err(ServiceError::Unauthenticated("wrong user name or password".into()))
            }
        }
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
        let Some(u) = self.store.get_user(&s.user_name).await? else { return Ok(None) };
        self.store.touch_session(&h).await?;
        Ok(Some(Session { actor: Actor { name: user_name(u.name), is_admin: u.is_admin }, csrf_token: s.csrf_token }))
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
        let raw = random_token("cbt_");
        let id = TokenId::generate();
        let expires = expires_in.map(|d| now_ms() + d.as_millis() as i64);
        let row = self.store.create_token(id.as_str(), user.as_str(), name, &token_hash(&raw), expires).await?;
        self.store.audit(actor.name.as_str(), "token.create", &format!("{user}/{id}"), "ok", name).await?;
        Ok((raw, row.into()))
    }

    /// Resolves a bearer token.
    pub async fn resolve_token(&self, raw: &str) -> ServiceResult<Option<Actor>> {
        let Some(t) = self.store.use_token(&token_hash(raw)).await? else { return Ok(None) };
        let Some(u) = self.store.get_user(&t.user_name).await? else { return Ok(None) };
        Ok(Some(Actor { name: user_name(u.name), is_admin: u.is_admin }))
    }

    /// A user's tokens (self or admin).
    pub async fn list_tokens(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<Token>> {
        actor.require_self_or_admin(user)?;
        Ok(self.store.list_tokens(user.as_str()).await?.into_iter().map(Token::from).collect())
    }

    /// Revokes a token (self or admin).
    pub async fn revoke_token(&self, actor: &Actor, user: &UserName, id: &TokenId) -> ServiceResult<()> {
        actor.require_self_or_admin(user)?;
        if !self.store.revoke_token(user.as_str(), id.as_str()).await? {
            return Err(ServiceError::NotFound(Resource::Token(id.clone())));
        }
        self.store.audit(actor.name.as_str(), "token.revoke", &format!("{user}/{id}"), "ok", "").await?;
        Ok(())
    }

    /// Deletes sessions past their idle or absolute expiry; returns how many.
    pub async fn purge_sessions(&self) -> ServiceResult<u64> {
        let now = now_ms();
        let idle = now - self.session_limits.idle.as_millis() as i64;
        let absolute = now - self.session_limits.absolute.as_millis() as i64;
        Ok(self.store.purge_sessions(idle, absolute).await?)
    }
}
