//! Domain types, in the ground crate below both the store and core (core
//! re-exports it as `cloudbroker_core::domain`): every name, id and
//! enumerated value the services take or return is parsed once, at the edge
//! (JSON API, web UI, EC2 front, CLI), into one of these types; past that
//! point only the type travels, so a service never sees an unchecked string
//! where a domain type exists. The connector API takes its instance names
//! from here (the model depends on no other crate of the workspace).
//!
//! Each type's `parse` says what was wrong in an [`InvalidValue`] naming the
//! field, which the edges turn into a 400, a form message next to that field,
//! or an EC2 `InvalidParameterValue`.
//!
//! The string types bind to and decode from a `TEXT` column as their string
//! ([`sqlx`], every database, `Any` included); a decode parses, so a value
//! the database holds that breaks its type's rules is a decode error naming
//! the column, never an unchecked value.

pub mod clock;
mod ids;
mod instance;
pub mod lease;
pub mod money;
mod names;
mod page;
mod project;
mod resources;
mod sql;
mod tags;
pub mod time;
mod vm;

pub use ids::{ClientToken, CredentialId, DeploymentId, LaunchId, TokenId, VmId};
pub use instance::{InstanceName, NameError};
pub use lease::{Lease, LeaseAction, LeaseAsk, NewLease};
pub use names::{CredentialName, ImageName, ImageRef, UserName};
pub use page::{Cursor, Page, PageRequest, CURSOR_PATTERN, DEFAULT_PAGE, MAX_CURSOR_LEN, MAX_PAGE};
pub use project::{ProjectName, ProjectRole};
pub use resources::{AllocationId, VolumeId, VolumeSize};
pub use tags::{Tags, MAX_TAGS, NAME_TAG};
pub use vm::{VmAction, VmStatus};

/// A value that failed to parse: which field, and why (for people).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    /// The field (as the JSON API names it), e.g. `name`, `instance`.
    pub field: &'static str,
    pub message: String,
}

impl InvalidValue {
    /// A new error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Parses an instance name, naming the field on failure.
pub fn parse_instance(field: &'static str, s: &str) -> Result<InstanceName, InvalidValue> {
    InstanceName::parse(s).map_err(|e| InvalidValue::new(field, e.to_string()))
}

/// Implements the common traits of a string newtype with a `parse` constructor:
/// `Display`, `AsRef<str>`, `as_str`, `FromStr`, transparent `Serialize`, and a
/// `Deserialize` that parses (so a JSON body can never carry an invalid value).
#[macro_export]
macro_rules! string_newtype {
    ($t:ident) => {
        impl $t {
            /// The value as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl $crate::__private::serde::Serialize for $t {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $t {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as $crate::__private::serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err($crate::__private::serde::de::Error::custom)
            }
        }
    };
}

/// What [`string_newtype!`] names from its callers' crates.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}

/// The first 64 characters of a hostile value, for an error message.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
