//! Passwords: Argon2id PHC strings, hashed and verified off the async
//! executor (a few at a time); unknown users are checked against a dummy
//! hash so timing reveals nothing; hashes made with older parameters are
//! upgraded on login, which is throttled ([`super::throttle`]); the memory
//! of a hash (19 MiB) goes back to the system soon after it. A password
//! change ends every session and token of the user; an admin's reset of
//! another user's password (the recovery path after a compromise) also
//! disables their EC2 access keys, and a self-service change does so when
//! asked; the audit record says what ended.

use super::Identity;
use crate::audit::{self, AuditAction, AuditEvent, AuditOutcome, AuditTarget};
use crate::auth::{user_name, Actor};
use crate::domain::UserName;
use crate::error::{ServiceError, ServiceResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use cloudbroker_connector_api::SecretString;
use cloudbroker_store::access_keys::{KEY_ACTIVE, KEY_DISABLED};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Passwords must be at least this long.
pub const MIN_PASSWORD_LEN: usize = 8;
/// And at most this long (Argon2 hashes any length; a megabyte password is an attack).
pub const MAX_PASSWORD_LEN: usize = 1024;

pub(super) fn check_password(password: &SecretString) -> ServiceResult<()> {
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
    let r = tokio::task::spawn_blocking(move || hash_blocking(pw.expose())).await.map_err(|e| ServiceError::Internal(e.to_string()));
    return_memory_soon();
    r?
}

/// How long after the last hash a thread ends to return its memory: past
/// mimalloc's purge delay (1 s).
const RETURN_AFTER: Duration = Duration::from_millis(1200);

/// Has the system take back the memory of the hashes just made. The
/// binary's allocator (mimalloc) returns memory freed more than its purge
/// delay ago when a thread next frees a page or ends; an idle broker does
/// neither for long (the blocking threads that ran Argon2 end 10 s after),
/// and an idle broker kept the last hash's 19 MiB. So after a hash one
/// thread (one at a time, however many hashes) waits until `RETURN_AFTER`
/// has passed since the last of them, and ends. With another allocator it
/// is a thread that sleeps and ends.
fn return_memory_soon() {
    static START: OnceLock<Instant> = OnceLock::new();
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    static WAITING: AtomicBool = AtomicBool::new(false);
    let start = *START.get_or_init(Instant::now);
    let now_ms = move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    LAST_MS.store(now_ms(), Ordering::Release);
    if WAITING.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new().name("memory-return".into()).spawn(move || {
        let after = u64::try_from(RETURN_AFTER.as_millis()).unwrap_or(u64::MAX);
        loop {
            let due = LAST_MS.load(Ordering::Acquire).saturating_add(after);
            let now = now_ms();
            if now < due {
                std::thread::sleep(Duration::from_millis(due - now));
                continue;
            }
            WAITING.store(false, Ordering::Release);
            // A hash that ended since the load above, after this thread
            // said it no longer waits, started no thread of its own: wait
            // for it too, unless another thread does.
            if LAST_MS.load(Ordering::Acquire).saturating_add(after) > now_ms() && !WAITING.swap(true, Ordering::AcqRel) {
                continue;
            }
            break;
        }
        // An allocation of its own, so that the allocator sees this thread end.
        drop(std::hint::black_box(Box::new(0u64)));
    });
    if spawned.is_err() {
        WAITING.store(false, Ordering::Release);
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("dummy password for unknown users").unwrap_or_default())
}

/// Verifies a password against a PHC string (off the executor). Returns
/// whether it matched and whether the hash should be upgraded.
async fn verify(hash: String, password: SecretString) -> (bool, bool) {
    let Ok(_slot) = hashing_slots().acquire().await else { return (false, false) };
    let r = tokio::task::spawn_blocking(move || {
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
    .unwrap_or((false, false));
    return_memory_soon();
    r
}

impl Identity {
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
            let n = self.store.set_user_access_keys_state(name.as_str(), KEY_ACTIVE, KEY_DISABLED).await?;
            format!("{n} access key(s) disabled")
        } else {
            "access keys left active".to_string()
        };
        self.epoch.bump();
        let what = if reset { "admin reset" } else { "changed by the user" };
        let event = AuditEvent::ok(AuditAction::UserPassword, AuditTarget::User(name.as_str()))
            .detail(format!("{what}: {sessions} session(s) ended, {tokens} token(s) revoked, {keys}"));
        audit::record_by(&self.store, actor, &event).await?;
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
                let event = AuditEvent::new(AuditAction::Login, AuditTarget::User(name), AuditOutcome::Rejected)
                    .detail(format!("account disabled {from}"));
                audit::record(&self.store, name, &event).await?;
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
                audit::record(&self.store, name, &AuditEvent::ok(AuditAction::Login, AuditTarget::User(name)).detail(from.as_str()))
                    .await?;
                Ok(Actor::new(user_name(u.name), u.is_admin))
            }
            _ => {
                audit::record(
                    &self.store,
                    name,
                    &AuditEvent::new(AuditAction::Login, AuditTarget::User(name), AuditOutcome::Failure).detail(from.as_str()),
                )
                .await?;
                match attempt.address_wait {
                    Some(retry_after_secs) => Err(ServiceError::Throttled { retry_after_secs }),
                    None => Err(ServiceError::Unauthenticated("wrong user name or password".into())),
                }
            }
        }
    }
}
