//! Connector instance names (`ec2-eu-central-1`): kebab-case, at most 63
//! characters. The connector API declares instances by these names and the
//! store keeps them in `instance` columns, so the type lives here, below
//! both; `cloudbroker_connector_api::InstanceName` is this type.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A connector instance name: kebab-case, `^[a-z0-9]+(-[a-z0-9]+)*$`, at most 63 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("instance name is empty")]
    Empty,
    #[error("instance name '{0}' is too long (at most 63 characters)")]
    TooLong(String),
    #[error("instance name '{0}' is not kebab-case (lowercase letters and digits, words separated by single '-')")]
    NotKebab(String),
    /// A kind no registered builder declares: the name, and the known kinds (comma-separated).
    #[error("unknown connector kind '{0}' (known: {1})")]
    UnknownKind(String, String),
}

impl InstanceName {
    /// Parses and validates an instance name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > 63 {
            return Err(NameError::TooLong(s.to_string()));
        }
        let ok = s.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if !ok {
            return Err(NameError::NotKebab(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InstanceName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for InstanceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

// Stored in `instance` columns; a stored name that breaks the rules names the field `instance`.
crate::sql::sql_string!(InstanceName, |s: String| InstanceName::parse(&s).map_err(|e| crate::InvalidValue::new("instance", e.to_string())));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        for good in ["ec2", "ec2-eu-central-1", "one-lab", "a1-2b"] {
            assert_eq!(InstanceName::parse(good).map(|n| n.to_string()), Ok(good.to_string()));
        }
        assert_eq!(InstanceName::parse(""), Err(NameError::Empty));
        for bad in ["Ec2", "ec2_eu", "-ec2", "ec2-", "ec2--eu", "ec2 eu", "é"] {
            assert!(matches!(InstanceName::parse(bad), Err(NameError::NotKebab(_))), "{bad}");
        }
        assert!(matches!(InstanceName::parse(&"a".repeat(64)), Err(NameError::TooLong(_))));
    }
}
