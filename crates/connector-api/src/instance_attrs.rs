//! Instance attributes a cloud keeps and changes (EC2's
//! `Describe/ModifyInstanceAttribute`), and what an instance wrote to its
//! console (`GetConsoleOutput`). The broker keeps its own attributes
//! (termination protection) itself; these are the cloud's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An attribute of a cloud instance, by EC2's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceAttribute {
    /// `instanceType`: changed only while the instance is stopped.
    InstanceType,
    /// `userData` (text): changed only while the instance is stopped.
    UserData,
    /// `instanceInitiatedShutdownBehavior`: `stop` or `terminate`.
    InstanceInitiatedShutdownBehavior,
    /// `sourceDestCheck`: whether the instance's traffic is checked.
    SourceDestCheck,
}

impl InstanceAttribute {
    /// Every attribute a connector reads and changes.
    pub const ALL: [InstanceAttribute; 4] = [
        InstanceAttribute::InstanceType,
        InstanceAttribute::UserData,
        InstanceAttribute::InstanceInitiatedShutdownBehavior,
        InstanceAttribute::SourceDestCheck,
    ];

    /// EC2's name (`Attribute=` of DescribeInstanceAttribute).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceAttribute::InstanceType => "instanceType",
            InstanceAttribute::UserData => "userData",
            InstanceAttribute::InstanceInitiatedShutdownBehavior => "instanceInitiatedShutdownBehavior",
            InstanceAttribute::SourceDestCheck => "sourceDestCheck",
        }
    }

    /// The attribute EC2 names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeValue {
    InstanceType(String),
    /// The user data as text (`None`: the instance has none).
    UserData(Option<String>),
    /// `stop` or `terminate`.
    InstanceInitiatedShutdownBehavior(String),
    SourceDestCheck(bool),
}

impl AttributeValue {
    /// Which attribute this is a value of.
    pub fn attribute(&self) -> InstanceAttribute {
        match self {
            AttributeValue::InstanceType(_) => InstanceAttribute::InstanceType,
            AttributeValue::UserData(_) => InstanceAttribute::UserData,
            AttributeValue::InstanceInitiatedShutdownBehavior(_) => InstanceAttribute::InstanceInitiatedShutdownBehavior,
            AttributeValue::SourceDestCheck(_) => InstanceAttribute::SourceDestCheck,
        }
    }
}

/// The shutdown behaviours EC2 knows.
pub const SHUTDOWN_BEHAVIORS: [&str; 2] = ["stop", "terminate"];

/// What an instance wrote to its console, as the cloud keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleOutput {
    /// The text (decoded; `None`: nothing yet).
    pub output: Option<String>,
    /// When the cloud last took it.
    pub timestamp: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_round_trip() {
        for a in InstanceAttribute::ALL {
            assert_eq!(InstanceAttribute::parse(a.as_str()), Some(a));
        }
        assert_eq!(InstanceAttribute::parse("disableApiTermination"), None);
        assert_eq!(AttributeValue::SourceDestCheck(true).attribute(), InstanceAttribute::SourceDestCheck);
    }
}
