//! Users, roles, passwords, sessions, API tokens and login throttling: the
//! [`Identity`] service, one concern per file.
//!
//! * [`users`]: accounts, roles, SSH keys, disabling; `super` on first start.
//! * [`passwords`]: Argon2id PHC strings, hashed and verified off the async
//!   executor; unknown users are checked against a dummy hash so timing
//!   reveals nothing; hashes made with older parameters are upgraded on
//!   login. Password changes end every session and token of the user; an
//!   admin's reset of another user's password (the recovery path after a
//!   compromise) also disables their EC2 access keys, and a self-service
//!   change does so when asked; the audit record says what ended.
//! * [`sessions`]: 256-bit random ids, stored as SHA-256 hashes, with idle
//!   and absolute expiry and a per-session CSRF token.
//! * [`tokens`]: API tokens, `cbt_` + 256 random bits, stored as SHA-256
//!   hashes, shown once, revocable, with optional expiry, resolved through a
//!   [`TokenCache`] ([`crate::cache`]).
//! * [`throttle`]: login throttling, per account and per client address.
//!
//! Every change that can make a cached credential wrong (revoking a token,
//! changing a password, disabling a user, changing a role) moves the
//! broker's [`CacheEpoch`] before it is reported done, which empties the
//! token cache and the access-key cache alike.

pub mod passwords;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use passwords::{hash_password, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
pub use sessions::{Session, SessionLimits};
pub use throttle::{Attempt, Throttle, ThrottleLimits};
pub use tokens::{Token, TokenCache, MAX_TOKEN_LIFETIME, TOKEN_CACHE_TTL};
pub use users::{ssh_key_ok, User};

use crate::cache::CacheEpoch;
use cloudbroker_store::Store;

/// The identity service.
pub struct Identity {
    pub(crate) store: Store,
    throttle: Throttle,
    pub throttle_limits: ThrottleLimits,
    pub session_limits: SessionLimits,
    token_cache: TokenCache,
    /// The broker's invalidation epoch (shared with the access-key cache).
    epoch: CacheEpoch,
}

impl Identity {
    /// A new service on the store; its token cache (and every other cache
    /// sharing `epoch`) is emptied by the changes it makes.
    pub fn new(store: Store, epoch: CacheEpoch) -> Self {
        Self {
            throttle: Throttle::new(store.clone()),
            store,
            throttle_limits: ThrottleLimits::default(),
            session_limits: SessionLimits::default(),
            token_cache: TokenCache::new(epoch.clone()),
            epoch,
        }
    }

    /// The login throttle (for inspection).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }
}
