//! Projects (teams): a project's name and a member's role in it. Every
//! owned resource belongs to exactly one project; every user has a personal
//! project named after them (so project and user names share one
//! namespace: a team project cannot take a user's name, nor a new user a
//! project's). What each role may do is decided here and nowhere else.

use crate::{string_newtype, InvalidValue, UserName};
use serde::{Deserialize, Serialize};

/// A project name: the same rules as a user name (1-64 characters of
/// `[a-z0-9._-]`, starting with a letter or digit; `system` and
/// `anonymous` reserved).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectName(String);
string_newtype!(ProjectName);
crate::sql::sql_string!(ProjectName, |s: String| ProjectName::parse(&s));

impl ProjectName {
    /// Parses a project name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        UserName::parse(s)
            .map(|u| Self(u.as_str().to_string()))
            .map_err(|e| InvalidValue::new("project", e.message.replacen("user name", "project name", 1)))
    }

    /// The personal project of a user (named after them).
    pub fn personal(user: &UserName) -> Self {
        Self(user.as_str().to_string())
    }

    /// A name read from the store (written only after parsing).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A member's role in a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProjectRole {
    /// Reads the project's resources; acts on nothing.
    Viewer,
    /// Launches and acts on the project's resources.
    Member,
    /// A member who also manages the project's members, credentials and quotas.
    Owner,
}

impl ProjectRole {
    /// Every role, weakest first.
    pub const ALL: [ProjectRole; 3] = [ProjectRole::Viewer, ProjectRole::Member, ProjectRole::Owner];

    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Member => "member",
            ProjectRole::Owner => "owner",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            InvalidValue::new("role", format!("unknown role '{}' (one of owner, member, viewer)", s.chars().take(40).collect::<String>()))
        })
    }

    /// Whether this role launches and acts on the project's resources.
    pub fn can_act(self) -> bool {
        self >= ProjectRole::Member
    }

    /// Whether this role manages members, credentials and quotas.
    pub fn can_manage(self) -> bool {
        self == ProjectRole::Owner
    }
}

crate::sql::sql_string!(ProjectRole, |s: String| ProjectRole::parse(&s), |v: &ProjectRole| v.as_str());

impl std::fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_user_name_rules() {
        assert!(ProjectName::parse("team-a").is_ok());
        assert!(ProjectName::parse("ops.eu_1").is_ok());
        let e = ProjectName::parse("Team A").unwrap_err();
        assert_eq!(e.field, "project");
        assert!(e.message.contains("project name 'Team A' is invalid"), "{}", e.message);
        assert!(ProjectName::parse("system").is_err());
        assert!(ProjectName::parse("").is_err());
        assert!(ProjectName::parse(&"a".repeat(65)).is_err());
        let u = UserName::parse("alice").unwrap();
        assert_eq!(ProjectName::personal(&u).as_str(), "alice");
    }

    #[test]
    fn roles_parse_and_order() {
        for r in ProjectRole::ALL {
            assert_eq!(ProjectRole::parse(r.as_str()).unwrap(), r);
        }
        assert!(ProjectRole::parse("admin").unwrap_err().message.contains("one of owner, member, viewer"));
        assert!(!ProjectRole::Viewer.can_act());
        assert!(ProjectRole::Member.can_act() && !ProjectRole::Member.can_manage());
        assert!(ProjectRole::Owner.can_act() && ProjectRole::Owner.can_manage());
    }
}
