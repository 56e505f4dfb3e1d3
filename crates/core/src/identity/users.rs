//! Accounts: creating them (and `super` on first start), roles, SSH keys,
//! the default EC2 region, disabling. Disabling a user or changing a role
//! moves the broker's cache epoch, so cached credentials carrying the old
//! state are forgotten before the change is reported done.

use super::passwords::{check_password, hash_password};
use super::Identity;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::{random_token, user_name, Actor, SUPER_USER};
use crate::domain::{Cursor, InstanceName, Page, PageRequest, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use cloudbroker_store::identity::UserRow;

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

impl Identity {
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
        audit::record(&self.store, "system", &AuditEvent::ok(AuditAction::UserCreate, AuditTarget::User(SUPER_USER)).detail("bootstrap"))
            .await?;
        Ok(generated.then_some(pw))
    }

    /// Creates a user.
    pub async fn create_user(&self, actor: &Actor, name: &UserName, password: &SecretString, is_admin: bool) -> ServiceResult<User> {
        actor.require_admin()?;
        check_password(password)?;
        let hash = hash_password(password).await?;
        self.store.create_user(name.as_str(), &hash, is_admin).await?;
        let event =
            AuditEvent::ok(AuditAction::UserCreate, AuditTarget::User(name.as_str())).detail(if is_admin { "admin" } else { "user" });
        audit::record_by(&self.store, actor, &event).await?;
        self.user(name).await
    }

    /// The stored user, or not found.
    pub(super) async fn user(&self, name: &UserName) -> ServiceResult<User> {
        self.store.get_user(name.as_str()).await?.map(User::from).ok_or_else(|| ServiceError::NotFound(Resource::User(name.clone())))
    }

    /// Grants or removes the admin role.
    pub async fn set_admin(&self, actor: &Actor, name: &UserName, is_admin: bool) -> ServiceResult<()> {
        actor.require_admin()?;
        if name.as_str() == SUPER_USER && !is_admin {
            return Err(ServiceError::Conflict("super is always an admin".into()));
        }
        self.store.set_admin(name.as_str(), is_admin).await?;
        // Cached EC2 access keys carry the owner's role: forget them now.
        self.epoch.bump();
        let event = AuditEvent::ok(AuditAction::UserRole, AuditTarget::User(name.as_str())).detail(if is_admin { "admin" } else { "user" });
        audit::record_by(&self.store, actor, &event).await?;
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
        let event = AuditEvent::ok(AuditAction::UserDefaultEc2Region, AuditTarget::User(name.as_str()))
            .detail(region.map(InstanceName::as_str).unwrap_or(""));
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
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
        self.epoch.bump();
        if !changed {
            return Err(ServiceError::NotFound(Resource::User(name.clone())));
        }
        let mut detail = String::new();
        if disabled {
            let sessions = self.store.delete_user_sessions(name.as_str()).await?;
            let tokens = self.store.revoke_all_tokens(name.as_str()).await?;
            self.epoch.bump();
            detail = format!("{sessions} session(s) ended, {tokens} token(s) revoked");
        }
        let what = if disabled { AuditAction::UserDisable } else { AuditAction::UserEnable };
        audit::record_by(&self.store, actor, &AuditEvent::ok(what, AuditTarget::User(name.as_str())).detail(detail)).await?;
        self.user(name).await
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
