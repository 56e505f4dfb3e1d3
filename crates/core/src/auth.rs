//! Who is acting ([`Actor`]), in which project, and the checks every
//! service makes of it (admin, self-or-admin, the project's role), plus the small helpers the credential services
//! share: user names read back from the store, random tokens and their
//! SHA-256 hashes. A leaf: it depends on `domain` and `error` only, so every
//! service can use it without depending on another service.

use crate::domain::{ProjectName, ProjectRole, TokenId, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The built-in administrator.
pub const SUPER_USER: &str = "super";

/// Who is acting, and in which project.
///
/// `project` is where the actor's launches go and whose resources it sees
/// (its personal project unless the edge entered another, checking the
/// membership: see `Projects::enter`); `role` is its role there (admins
/// act as owners of every project). Services trust both: only the edges
/// set them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: UserName,
    pub is_admin: bool,
    pub project: ProjectName,
    pub role: ProjectRole,
    /// When what this actor authenticated with (an API token) expires:
    /// nothing it mints may outlive it. `None` for a password or a session.
    pub expires_at: Option<DateTime<Utc>>,
    /// The API token this actor authenticated with: a token it mints is
    /// revoked with it. `None` for a password, a session or an access key.
    pub token_id: Option<TokenId>,
}

impl Actor {
    /// An actor that authenticated with a password (or a session).
    /// It acts in its personal project, as its owner.
    pub fn new(name: UserName, is_admin: bool) -> Self {
        Self { project: ProjectName::personal(&name), role: ProjectRole::Owner, name, is_admin, expires_at: None, token_id: None }
    }

    /// The same actor acting in `project` with `role` (the edges call this
    /// once the membership is checked).
    pub fn in_project(self, project: ProjectName, role: ProjectRole) -> Self {
        Self { project, role, ..self }
    }

    /// Whether it acts in its personal project.
    pub fn in_personal_project(&self) -> bool {
        self.project.as_str() == self.name.as_str()
    }

    /// Whether it may see a resource of `project`: its own project's, or
    /// any for admins.
    pub fn sees(&self, project: &str) -> bool {
        self.is_admin || self.project.as_str() == project
    }

    /// Launching and acting on resources needs the `member` role (or admin).
    pub fn require_act(&self) -> ServiceResult<()> {
        if self.is_admin || self.role.can_act() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "you are a {} of project '{}': viewers read the project's resources but cannot change them",
                self.role, self.project
            )))
        }
    }

    /// Managing members, credentials and quotas of its project needs the
    /// `owner` role (or admin).
    pub fn require_manage(&self) -> ServiceResult<()> {
        if self.is_admin || self.role.can_manage() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "you are a {} of project '{}': only its owners manage its members, credentials and quotas",
                self.role, self.project
            )))
        }
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

/// A user name read from the store (written only after parsing).
pub(crate) fn user_name(s: String) -> UserName {
    UserName::from_stored(s)
}

/// SHA-256 hex of a token or session id.
pub fn token_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// `prefix` + 256 random bits, URL-safe base64 (no padding).
pub fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}
