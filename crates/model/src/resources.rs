//! Ids and sizes of the cloud objects a user keeps besides VMs: Elastic IP
//! allocation ids (`eipalloc-...`), volume ids (`vol-...`) and volume sizes
//! (1 to 16384 GiB). They are the cloud's own ids, scoped by the connector
//! instance; parsing only checks their shape.

use crate::{string_newtype, InvalidValue};

fn cloud_id(field: &'static str, prefix: &str, what: &str, s: &str) -> Result<String, InvalidValue> {
    match s.strip_prefix(prefix) {
        Some(rest) if !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(s.to_string()),
        _ => Err(InvalidValue::new(field, format!("'{}' is not {what} ({prefix}...)", s.chars().take(64).collect::<String>()))),
    }
}

/// An Elastic IP's allocation id: `eipalloc-` and 1-64 letters or digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocationId(String);
string_newtype!(AllocationId);
crate::sql::sql_string!(AllocationId, |s: String| AllocationId::parse(&s));

impl AllocationId {
    /// Parses an allocation id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        cloud_id("allocation_id", "eipalloc-", "an allocation id", s).map(Self)
    }

    /// An id a cloud answered or the store holds.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A volume id: `vol-` and 1-64 letters or digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeId(String);
string_newtype!(VolumeId);
crate::sql::sql_string!(VolumeId, |s: String| VolumeId::parse(&s));

impl VolumeId {
    /// Parses a volume id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        cloud_id("volume_id", "vol-", "a volume id", s).map(Self)
    }

    /// An id a cloud answered or the store holds.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// A volume size in GiB, 1 to [`VolumeSize::MAX_GIB`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct VolumeSize(u32);

impl VolumeSize {
    /// The largest volume (EC2's limit for gp2/gp3).
    pub const MAX_GIB: u32 = 16_384;

    /// Parses a size in GiB.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        s.trim().parse::<u32>().ok().and_then(|n| Self::new(n).ok()).ok_or_else(|| {
            InvalidValue::new(
                "size",
                format!("'{}' is not a volume size: 1 to {} GiB", s.chars().take(20).collect::<String>(), Self::MAX_GIB),
            )
        })
    }

    /// A size in GiB within bounds.
    pub fn new(gib: u32) -> Result<Self, InvalidValue> {
        if (1..=Self::MAX_GIB).contains(&gib) {
            Ok(Self(gib))
        } else {
            Err(InvalidValue::new("size", format!("{gib} GiB is not a volume size: 1 to {} GiB", Self::MAX_GIB)))
        }
    }

    /// The size in GiB.
    pub fn gib(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sizes_are_checked() {
        assert_eq!(AllocationId::parse("eipalloc-0a1b").unwrap().as_str(), "eipalloc-0a1b");
        for bad in ["eipalloc-", "vol-1", "eipalloc-a/b", "eipalloc-a b"] {
            assert_eq!(AllocationId::parse(bad).unwrap_err().field, "allocation_id", "{bad}");
        }
        assert!(VolumeId::parse("vol-0123abc").is_ok());
        assert!(VolumeId::parse(&format!("vol-{}", "a".repeat(65))).is_err());
        assert!(VolumeId::parse("eipalloc-1").is_err());
        assert_eq!(VolumeSize::parse("8").unwrap().gib(), 8);
        assert_eq!(VolumeSize::parse("16384").unwrap().gib(), 16_384);
        for bad in ["0", "16385", "-1", "x", ""] {
            assert_eq!(VolumeSize::parse(bad).unwrap_err().field, "size", "{bad}");
        }
    }
}
