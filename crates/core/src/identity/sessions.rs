//! Web sessions: 256-bit random ids, stored as SHA-256 hashes, with idle
//! and absolute expiry and a per-session CSRF token; a disabled user's
//! session resolves to nothing.

use super::Identity;
use crate::auth::{random_token, token_hash, user_name, Actor};
use crate::error::ServiceResult;
use cloudbroker_store::now_ms;
use std::time::Duration;

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

impl Identity {
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

    /// Deletes sessions past their idle or absolute expiry; returns how many.
    pub async fn purge_sessions(&self) -> ServiceResult<u64> {
        self.throttle.prune(&self.throttle_limits).await?;
        let now = now_ms();
        let idle = now - self.session_limits.idle.as_millis() as i64;
        let absolute = now - self.session_limits.absolute.as_millis() as i64;
        Ok(self.store.purge_sessions(idle, absolute).await?)
    }
}
