//! Names people choose: users, native images, shared credentials; and the
//! image a launch asks for (a native image name or, where allowed, a raw cloud
//! image id). A value of these types has passed its rules.

use crate::{string_newtype, InvalidValue};

/// Names reserved for the broker itself (audit entries by the system, the CLI).
const RESERVED_USER_NAMES: &[&str] = &["system", "anonymous"];

/// A user name: 1-64 characters of `[a-z0-9._-]`, starting with a letter or
/// digit; `system` and `anonymous` are reserved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);
string_newtype!(UserName);
crate::sql::sql_string!(UserName, |s: String| UserName::parse_stored(&s));

impl UserName {
    /// Parses a user name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
            && s.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            return Err(InvalidValue::new(
                "name",
                format!("user name '{}' is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-'", shown(s)),
            ));
        }
        if RESERVED_USER_NAMES.contains(&s) {
            return Err(InvalidValue::new("name", format!("user name '{s}' is reserved for the broker")));
        }
        Ok(Self(s.to_string()))
    }

    /// A name as the store may hold it: [`UserName::parse`]'s rules, the
    /// reserved names included (the broker's own audit entries are `system`).
    pub fn parse_stored(s: &str) -> Result<Self, InvalidValue> {
        if RESERVED_USER_NAMES.contains(&s) {
            return Ok(Self(s.to_string()));
        }
        Self::parse(s)
    }

    /// The broker itself, as the actor of the command line and background work.
    pub fn system() -> Self {
        Self("system".to_string())
    }

    /// A name read from the store (written only after parsing).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A native image name: lowercase letters and digits, words joined by `-`, `_`
/// or `.`, at most 128 characters (e.g. `ubuntu-22.04`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageName(String);
string_newtype!(ImageName);
crate::sql::sql_string!(ImageName, |s: String| ImageName::parse(&s));

impl ImageName {
    /// A name read from the store or a checked file.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// Parses an image name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue::new(
                "name",
                format!("image name '{}' is invalid: use lowercase letters, digits, '-', '_' or '.' (e.g. ubuntu-22.04)", shown(s)),
            ))
        }
    }
}

/// The name of a shared (system-scope) credential: the same rules as image names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialName(String);
string_newtype!(CredentialName);
crate::sql::sql_string!(CredentialName, |s: String| CredentialName::parse(&s));

impl CredentialName {
    /// Parses a shared credential name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        ImageName::parse(s).map(|n| Self(n.0)).map_err(|_| {
            InvalidValue::new("name", format!("credential name '{}' is invalid: use lowercase letters, digits, '-', '_' or '.'", shown(s)))
        })
    }
}

/// The image a launch names: a native image, or (where `images.allow.raw`)
/// a cloud image id. 1-255 printable characters without spaces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef(String);
string_newtype!(ImageRef);
crate::sql::sql_string!(ImageRef, |s: String| ImageRef::parse(&s));

impl ImageRef {
    /// Parses an image reference.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new("image", format!("image '{}' is invalid: 1-255 printable characters, no spaces", shown(s))));
        }
        Ok(Self(s.to_string()))
    }

    /// A native image name as a reference.
    pub fn native(name: &ImageName) -> Self {
        Self(name.0.clone())
    }

    /// The native image this names, if it is a valid image name.
    pub fn as_native(&self) -> Option<ImageName> {
        ImageName::parse(&self.0).ok()
    }
}

/// A hostile value is shown shortened in messages.
fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for good in ["alice", "a", "bob.smith", "x_1-2", "9lives"] {
            assert_eq!(UserName::parse(good).map(|n| n.to_string()), Ok(good.to_string()));
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "é", &"a".repeat(65)] {
            let e = UserName::parse(bad).unwrap_err();
            assert_eq!(e.field, "name");
            assert!(e.message.contains("is invalid"), "{e}");
        }
        assert!(UserName::parse("system").unwrap_err().message.contains("reserved"));
        assert_eq!(UserName::system().as_str(), "system");
        let long = UserName::parse(&"x".repeat(10_000)).unwrap_err().message;
        assert!(long.len() < 200, "a hostile value is not echoed whole: {}", long.len());
    }

    #[test]
    fn image_names_and_refs() {
        assert!(ImageName::parse("ubuntu-22.04").is_ok());
        for bad in ["", "Ubuntu", "a-", "-a", "a b", &"a".repeat(129)] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
        assert!(CredentialName::parse("team-a").is_ok());
        assert!(CredentialName::parse("Team A").unwrap_err().message.starts_with("credential name"));
        let r = ImageRef::parse("ami-0abc").unwrap();
        assert_eq!(r.as_native().map(|n| n.to_string()), Some("ami-0abc".to_string()));
        assert_eq!(ImageRef::parse("AMI-UPPER").unwrap().as_native(), None);
        assert!(ImageRef::parse("has space").is_err());
        assert_eq!(ImageRef::parse("").unwrap_err().field, "image");
    }

    #[test]
    fn serde_parses() {
        let n: Result<UserName, _> = serde_json::from_str("\"alice\"");
        assert_eq!(n.map(|n| n.to_string()).ok(), Some("alice".into()));
        assert!(serde_json::from_str::<UserName>("\"Not Valid\"").is_err());
        assert_eq!(serde_json::to_string(&ImageName::parse("debian-12").unwrap()).ok(), Some("\"debian-12\"".into()));
    }
}
