//! API tokens: `cbt_` + 256 random bits, stored as SHA-256 hashes, shown
//! once, revocable, with optional expiry. Resolved through a [`TokenCache`]
//! with the credential cache's invariant ([`crate::cache`]): an answer is
//! never older than [`TOKEN_CACHE_TTL`]; revoking a token, changing a
//! password, disabling a user or changing a role empties it before the
//! change is reported done (so it holds at once on this replica, within the
//! TTL on the others); refusals are never cached; an expired token is
//! refused from the cache too. A token minted with a token records its
//! parent, never outlives it and is revoked with it (a token with a revoked
//! ancestor is refused).

use super::Identity;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::{random_token, token_hash, user_name, Actor};
use crate::cache::CredentialCache;
use crate::domain::{Cursor, Page, PageRequest, TokenId, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use cloudbroker_store::identity::TokenRow;
use cloudbroker_store::now_ms;
use std::time::Duration;

/// How long another replica's revocation of a token may go unseen here.
pub const TOKEN_CACHE_TTL: Duration = crate::cache::KEY_CACHE_TTL;

/// Live API tokens recently resolved, by the SHA-256 of the token (the raw
/// token is never kept): the token's id and its actor. See the module's invariant.
pub type TokenCache = CredentialCache<(String, Actor)>;

/// The longest lifetime a token can be given (about 10 years).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

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

impl Identity {
    /// The API-token cache (for inspection in tests).
    pub fn token_cache(&self) -> &TokenCache {
        &self.token_cache
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
        let target = AuditTarget::UserItem { user: user.as_str(), item: id.as_str() };
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::TokenCreate, target).detail(detail)).await?;
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
        let epoch = self.token_cache.epoch();
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
        let actor = Actor {
            expires_at: t.expires_at,
            token_id: Some(TokenId::from_stored(t.id.clone())),
            ..Actor::new(user_name(t.user_name), is_admin)
        };
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
        self.epoch.bump();
        let Some(children) = revoked else {
            return Err(ServiceError::NotFound(Resource::Token(id.clone())));
        };
        let detail = if children > 0 { format!("{children} token(s) minted from it revoked too") } else { String::new() };
        let target = AuditTarget::UserItem { user: user.as_str(), item: id.as_str() };
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::TokenRevoke, target).detail(detail)).await?;
        Ok(())
    }
}
