//! Ids the broker makes: VMs, launches, API tokens, stored credentials; and
//! the client token a caller gives to make a launch idempotent. Values read
//! back from the store are trusted (`from_stored`); values from callers and
//! from clouds' tags go through `parse`.

use crate::{string_newtype, InvalidValue};

fn random_hex(n: usize) -> String {
    let s = uuid::Uuid::new_v4().simple().to_string();
    s.get(..n).unwrap_or(&s).to_string()
}

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A VM's broker id: `vm-` and 1-32 lowercase letters or digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId(String);
string_newtype!(VmId);
crate::sql::sql_string!(VmId, |s: String| VmId::parse(&s));

impl VmId {
    /// Parses a VM id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s.strip_prefix("vm-") {
            Some(rest) if !rest.is_empty() && rest.len() <= 32 && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) => {
                Ok(Self(s.to_string()))
            }
            _ => Err(InvalidValue::new("id", format!("'{}' is not a VM id (vm-...)", s.chars().take(40).collect::<String>()))),
        }
    }

    /// A new random id.
    pub fn generate() -> Self {
        Self(format!("vm-{}", random_hex(16)))
    }

    /// An id read from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A deployment's id: `dep-` and 16 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeploymentId(String);
string_newtype!(DeploymentId);
crate::sql::sql_string!(DeploymentId, |s: String| DeploymentId::parse(&s));

impl DeploymentId {
    /// Parses a deployment id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s.strip_prefix("dep-") {
            Some(rest) if rest.len() == 16 && lower_hex(rest) => Ok(Self(s.to_string())),
            _ => Err(InvalidValue::new("id", format!("'{}' is not a deployment id (dep-...)", s.chars().take(40).collect::<String>()))),
        }
    }

    /// A new random id.
    pub fn generate() -> Self {
        Self(format!("dep-{}", random_hex(16)))
    }

    /// An id read from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A launch id: 32 lowercase hex digits. It tags the cloud instances of one
/// launch so they can be matched back to their records.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaunchId(String);
string_newtype!(LaunchId);
crate::sql::sql_string!(LaunchId, |s: String| LaunchId::parse(&s));

impl LaunchId {
    /// Parses a launch id (from a caller's filter or a cloud's tag).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.len() == 32 && lower_hex(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new("launch", format!("'{}' is not a launch id (32 hex digits)", s.chars().take(40).collect::<String>())))
        }
    }

    /// A new random launch id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// An id read from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A client token: 1-64 characters of letters, digits, `-`, `_`, `.`, `:`.
/// The same token from the same user returns the first launch's VMs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientToken(String);
string_newtype!(ClientToken);
crate::sql::sql_string!(ClientToken, |s: String| ClientToken::parse(&s));

impl ClientToken {
    /// Parses a client token.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
            return Err(InvalidValue::new("client_token", "client_token must be 1-64 characters of letters, digits, '-', '_', '.', ':'"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// An API token's id (not the token): 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenId(String);
string_newtype!(TokenId);
crate::sql::sql_string!(TokenId, |s: String| TokenId::parse(&s));

impl TokenId {
    /// Parses a token id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.len() == 32 && lower_hex(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new("id", format!("'{}' is not a token id (32 hex digits)", s.chars().take(40).collect::<String>())))
        }
    }

    /// A new random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// The id of the stored credential a VM was launched with (opaque; the
/// sandbox's per-user identity is `anonymous:<user>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialId(String);
// Opaque: read back as stored.
crate::sql::sql_string!(CredentialId, |s: String| Ok(CredentialId(s)));

impl CredentialId {
    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_ids() {
        let id = VmId::generate();
        assert_eq!(VmId::parse(id.as_str()), Ok(id.clone()));
        assert!(id.as_str().starts_with("vm-") && id.as_str().len() == 19);
        for bad in ["", "vm-", "i-123", "vm-ABC", "vm-a/b", &format!("vm-{}", "a".repeat(33))] {
            assert!(VmId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deployment_ids() {
        let d = DeploymentId::generate();
        assert_eq!(DeploymentId::parse(d.as_str()), Ok(d.clone()));
        assert!(d.as_str().starts_with("dep-") && d.as_str().len() == 20);
        for bad in ["", "dep-", "dep-0123456789abcdeg", "dep-0123456789ABCDEF", "vm-0123456789abcdef", "dep-0123456789abcdef0"] {
            assert!(DeploymentId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn launch_and_token_ids() {
        let l = LaunchId::generate();
        assert_eq!(LaunchId::parse(l.as_str()), Ok(l));
        assert!(LaunchId::parse("forged-launch").is_err());
        assert!(LaunchId::parse(&"A".repeat(32)).is_err());
        let t = TokenId::generate();
        assert_eq!(TokenId::parse(t.as_str()), Ok(t));
        assert_eq!(TokenId::parse("x").unwrap_err().field, "id");
    }

    #[test]
    fn client_tokens() {
        assert!(ClientToken::parse("retry-1:a.b_c").is_ok());
        for bad in ["", "has space", "é", &"a".repeat(65)] {
            assert_eq!(ClientToken::parse(bad).unwrap_err().field, "client_token", "{bad}");
        }
    }
}
