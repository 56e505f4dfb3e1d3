//! User tags: at most 40, keys 1-128 characters, values at most 256; keys
//! the broker or the cloud reserve (`cloudbroker:*`, `aws:*`) are refused,
//! so a user can never forge the tags adoption relies on. On a VM `Name` is
//! refused too (its name is a field of its own, [`Tags::parse`]); on every
//! other resource it is an ordinary tag ([`Tags::parse_resource`]).

use super::InvalidValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The cloud's tag holding a VM's name (EC2's convention); the connector
/// API's `model::tags::NAME` is this.
pub const NAME_TAG: &str = "Name";

/// Most tags on one VM.
pub const MAX_TAGS: usize = 40;

/// Validated user tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    /// Parses user tags of a VM (`Name` is refused: a VM's name is its own field).
    pub fn parse(map: BTreeMap<String, String>) -> Result<Self, InvalidValue> {
        Self::parse_with(map, false)
    }

    /// Parses user tags of a resource other than a VM (a volume, a group, a
    /// VPC, a subnet, a snapshot): as [`Tags::parse`], except that `Name` is
    /// an ordinary tag, kept verbatim as EC2 keeps it.
    pub fn parse_resource(map: BTreeMap<String, String>) -> Result<Self, InvalidValue> {
        Self::parse_with(map, true)
    }

    fn parse_with(map: BTreeMap<String, String>, name_allowed: bool) -> Result<Self, InvalidValue> {
        if map.len() > MAX_TAGS {
            return Err(InvalidValue::new("tags", format!("at most {MAX_TAGS} tags")));
        }
        for (k, v) in &map {
            let shown: String = k.chars().take(40).collect();
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                return Err(InvalidValue::new("tags", format!("tag '{shown}': keys are 1-128 characters, values at most 256")));
            }
            if k.chars().any(char::is_control) || v.chars().any(char::is_control) {
                return Err(InvalidValue::new("tags", format!("tag '{shown}': control characters are not allowed")));
            }
            if Self::is_reserved(k) && !(name_allowed && k == NAME_TAG) {
                return Err(InvalidValue::new("tags", format!("tag '{k}' is reserved (cloudbroker:*, aws:*, Name: use the name field)")));
            }
        }
        Ok(Self(map))
    }

    /// Whether a key belongs to the broker or the cloud.
    pub fn is_reserved(key: &str) -> bool {
        key.starts_with("cloudbroker:") || key.starts_with("aws:") || key == NAME_TAG
    }

    /// Tags read back from the store, as they were written: user tags checked
    /// by [`Tags::parse`], plus the reserved-prefix tags a client keeps on
    /// the record only (another broker chained in front; never put on a cloud).
    pub fn from_stored(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    /// The tags.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Key-value pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(BTreeMap::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rules() {
        assert_eq!(Tags::parse(map(&[("team", "a")])).unwrap().get("team"), Some("a"));
        for k in ["cloudbroker:user", "aws:x", "Name"] {
            assert!(Tags::parse(map(&[(k, "alice")])).unwrap_err().message.contains("reserved"), "{k}");
        }
        assert!(Tags::parse(map(&[("", "x")])).is_err());
        assert!(Tags::parse(map(&[("k", &"v".repeat(257))])).is_err());
        assert!(Tags::parse(map(&[("k", "a\nb")])).is_err());
        let many: BTreeMap<String, String> = (0..41).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(Tags::parse(many).unwrap_err().message, "at most 40 tags");
        // Other resources keep Name as a tag; the broker's and the cloud's prefixes stay refused.
        assert_eq!(Tags::parse_resource(map(&[("Name", "web net")])).unwrap().get("Name"), Some("web net"));
        for k in ["cloudbroker:user", "aws:x"] {
            assert!(Tags::parse_resource(map(&[(k, "alice")])).unwrap_err().message.contains("reserved"), "{k}");
        }
        assert!(Tags::parse_resource(map(&[("Name", "a\nb")])).is_err());
        let stored = Tags::from_stored(map(&[("cloudbroker:user", "x"), ("team", "a")]));
        assert_eq!(stored.as_map().len(), 2, "records keep what was written");
    }
}
