//! An EC2 Query request's parameters: from the query string (GET) and the
//! form body (POST), with the list conventions of the Query API: `X.N`
//! members, `Filter.N.Name` / `Filter.N.Value.M`, `TagSpecification.N...`.
//! Sizes are bounded: a request with absurd list indices or too many
//! parameters is refused before any work. Every lookup marks what it read,
//! so once an action's input is parsed, a parameter nobody read is one the
//! action does not take ([`Params::unread`]): refused, never dropped.

use crate::error::Ec2Error;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Parameters a request may carry at most.
pub const MAX_PARAMS: usize = 2_000;
/// The largest `N` accepted in `X.N`.
const MAX_INDEX: usize = 1_000;

/// The parameters of one request, with which of them were read.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    read: Vec<AtomicBool>,
}

impl Clone for Params {
    fn clone(&self) -> Self {
        Self { pairs: self.pairs.clone(), read: self.read.iter().map(|r| AtomicBool::new(r.load(Ordering::Relaxed))).collect() }
    }
}

/// Parameters of every request, whatever the action: the protocol's own
/// (SigV2's signature fields, the version) and `DryRun`.
const COMMON: &[&str] = &[
    "Action",
    "Version",
    "DryRun",
    "AWSAccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "Timestamp",
    "Expires",
    "SecurityToken",
];

impl Params {
    /// Wraps decoded pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, Ec2Error> {
        if pairs.len() > MAX_PARAMS {
            return Err(Ec2Error::invalid(format!("too many parameters ({}; at most {MAX_PARAMS})", pairs.len())));
        }
        // A name given twice would mean whichever copy a lookup meets first: refused.
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        if let Some((dup, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(Ec2Error::invalid(format!("parameter {} is given more than once", crate::ids::shown(dup))));
        }
        let read = pairs.iter().map(|_| AtomicBool::new(false)).collect();
        Ok(Self { pairs, read })
    }

    /// All pairs (marking none of them read).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Marks the pair at `i` read.
    fn mark(&self, i: usize) {
        if let Some(r) = self.read.get(i) {
            r.store(true, Ordering::Relaxed);
        }
    }

    /// The pairs whose name `select` accepts, each marked read.
    fn reading<'a>(&'a self, select: impl Fn(&str) -> bool + 'a) -> impl Iterator<Item = &'a (String, String)> + 'a {
        self.pairs.iter().enumerate().filter(move |(_, (k, _))| select(k)).map(|(i, kv)| {
            self.mark(i);
            kv
        })
    }

    /// The one value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.pairs.iter().position(|(k, _)| k == name)?;
        self.mark(i);
        Some(self.pairs[i].1.as_str())
    }

    /// The names given under `prefix.` (`BlockDeviceMapping.1.Ebs.Iops`...), marked read.
    pub fn names_under(&self, prefix: &str) -> Vec<&str> {
        let dotted = format!("{prefix}.");
        self.reading(move |k| k.starts_with(&dotted)).map(|(k, _)| k.as_str()).collect()
    }

    /// The parameters nobody read, in the order given (the protocol's own are
    /// always read). Asked once the action's input is parsed: each of them is
    /// one the action does not take.
    pub fn unread(&self) -> Vec<&str> {
        self.pairs
            .iter()
            .zip(&self.read)
            .filter(|((k, _), r)| !r.load(Ordering::Relaxed) && !COMMON.contains(&k.as_str()) && !k.starts_with("X-Amz-"))
            .map(|((k, _), _)| k.as_str())
            .collect()
    }

    /// The value of `name`, or `MissingParameter`.
    pub fn required(&self, name: &str) -> Result<&str, Ec2Error> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| Ec2Error::missing(name))
    }

    /// An integer parameter within `range`.
    pub fn int(&self, name: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(Ec2Error::invalid(format!(
                    "Value ({}) for parameter {name} is invalid: expected an integer from {} to {}",
                    crate::ids::shown(v),
                    range.start(),
                    range.end()
                ))),
            },
        }
    }

    /// `prefix.1`, `prefix.2`, ... in index order (gaps allowed).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Ec2Error> {
        let mut out = BTreeMap::new();
        let under = |k: &str| k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')).is_some();
        for (k, v) in self.reading(under) {
            if let Some(n) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
                out.insert(index(k, n)?, v.clone());
            }
        }
        Ok(out.into_values().collect())
    }

    /// `Filter.N.Name` with its `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<(String, Vec<String>)>, Ec2Error> {
        self.groups("Filter", "Name", "Value")
    }

    /// Groups `{prefix}.N.{name}` with their `{prefix}.N.{value}.M` lists.
    fn groups(&self, prefix: &str, name: &str, value: &str) -> Result<Vec<(String, Vec<String>)>, Ec2Error> {
        let mut groups: BTreeMap<usize, (Option<String>, BTreeMap<usize, String>)> = BTreeMap::new();
        let value_of = |field: &str| field == name || field.strip_prefix(value).and_then(|r| r.strip_prefix('.')).is_some();
        let member = |k: &str| {
            k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')).and_then(|r| r.split_once('.')).is_some_and(|(_, f)| value_of(f))
        };
        for (k, v) in self.reading(member) {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else { continue };
            let Some((n, field)) = rest.split_once('.') else { continue };
            let g = groups.entry(index(k, n)?).or_default();
            if field == name {
                g.0 = Some(v.clone());
            } else if let Some(m) = field.strip_prefix(value).and_then(|r| r.strip_prefix('.')) {
                g.1.insert(index(k, m)?, v.clone());
            }
        }
        groups
            .into_iter()
            .map(|(n, (name_v, values))| {
                let name_v = name_v.ok_or_else(|| Ec2Error::missing(&format!("{prefix}.{n}.{name}")))?;
                Ok((name_v, values.into_values().collect()))
            })
            .collect()
    }

    /// `Tag.N.Key` / `Tag.N.Value` pairs (value absent when not given).
    pub fn tags(&self) -> Result<Vec<(String, Option<String>)>, Ec2Error> {
        let mut tags: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
        let member = |k: &str| k.strip_prefix("Tag.").and_then(|r| r.split_once('.')).is_some_and(|(_, p)| p == "Key" || p == "Value");
        for (k, v) in self.reading(member) {
            let Some((n, part)) = k.strip_prefix("Tag.").and_then(|r| r.split_once('.')) else { continue };
            let t = tags.entry(index(k, n)?).or_default();
            match part {
                "Key" => t.0 = Some(v.clone()),
                "Value" => t.1 = Some(v.clone()),
                _ => {}
            }
        }
        tags.into_iter().map(|(n, (k, v))| Ok((k.ok_or_else(|| Ec2Error::missing(&format!("Tag.{n}.Key")))?, v))).collect()
    }

    /// Tags of `TagSpecification.N` whose `ResourceType` is `resource`.
    pub fn tag_specifications(&self, resource: &str) -> Result<Vec<(String, String)>, Ec2Error> {
        let mut specs: BTreeMap<usize, TagSpec> = BTreeMap::new();
        let member = |k: &str| {
            k.strip_prefix("TagSpecification.").and_then(|r| r.split_once('.')).is_some_and(|(_, f)| {
                f == "ResourceType"
                    || f.strip_prefix("Tag.").and_then(|t| t.split_once('.')).is_some_and(|(_, p)| p == "Key" || p == "Value")
            })
        };
        // Where each spec's pairs are: only those of `resource` are read here
        // (another resource type's tags are not this action's to drop).
        let mut at: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, (k, v)) in self.pairs.iter().enumerate().filter(|(_, (k, _))| member(k)) {
            let Some(rest) = k.strip_prefix("TagSpecification.") else { continue };
            let Some((n, field)) = rest.split_once('.') else { continue };
            let n = index(k, n)?;
            at.entry(n).or_default().push(i);
            let spec = specs.entry(n).or_default();
            if field == "ResourceType" {
                spec.0 = Some(v.clone());
            } else if let Some(t) = field.strip_prefix("Tag.") {
                let Some((m, part)) = t.split_once('.') else { continue };
                let tag = spec.1.entry(index(k, m)?).or_default();
                match part {
                    "Key" => tag.0 = Some(v.clone()),
                    "Value" => tag.1 = Some(v.clone()),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        for (n, (kind, tags)) in specs {
            let kind = kind.ok_or_else(|| Ec2Error::missing(&format!("TagSpecification.{n}.ResourceType")))?;
            if kind != resource {
                continue;
            }
            for i in at.get(&n).into_iter().flatten() {
                self.mark(*i);
            }
            for (m, (k, v)) in tags {
                let k = k.ok_or_else(|| Ec2Error::missing(&format!("TagSpecification.{n}.Tag.{m}.Key")))?;
                out.push((k, v.unwrap_or_default()));
            }
        }
        Ok(out)
    }
}

/// A `TagSpecification.N`: its resource type and its tags (key, value) by index.
type TagSpec = (Option<String>, BTreeMap<usize, (Option<String>, Option<String>)>);

fn index(key: &str, n: &str) -> Result<usize, Ec2Error> {
    match n.parse::<usize>() {
        Ok(i) if (1..=MAX_INDEX).contains(&i) && !n.starts_with('0') => Ok(i),
        _ => Err(Ec2Error::invalid(format!("parameter {}: list index must be 1 to {MAX_INDEX}", crate::ids::shown(key)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    #[test]
    fn lists_filters_and_tag_specifications() {
        let r = p(&[
            ("InstanceId.2", "i-b"),
            ("InstanceId.1", "i-a"),
            ("Filter.1.Name", "instance-state-name"),
            ("Filter.1.Value.2", "stopped"),
            ("Filter.1.Value.1", "running"),
            ("Filter.2.Name", "tag:team"),
            ("Filter.2.Value.1", "a"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "team"),
            ("TagSpecification.1.Tag.1.Value", "a"),
            ("TagSpecification.2.ResourceType", "volume"),
            ("TagSpecification.2.Tag.1.Key", "v"),
        ]);
        assert_eq!(r.list("InstanceId").unwrap(), vec!["i-a", "i-b"]);
        assert_eq!(
            r.filters().unwrap(),
            vec![
                ("instance-state-name".to_string(), vec!["running".to_string(), "stopped".to_string()]),
                ("tag:team".into(), vec!["a".into()])
            ]
        );
        assert_eq!(r.tag_specifications("instance").unwrap(), vec![("team".to_string(), "a".to_string())]);
    }

    #[test]
    fn what_no_lookup_read_is_unread() {
        let r = p(&[
            ("Action", "X"),
            ("Version", "2016-11-15"),
            ("InstanceId.1", "i-a"),
            ("Filter.1.Name", "n"),
            ("Filter.1.Value.1", "v"),
            ("Filter.1.Colour", "red"),
            ("Tag.1.Key", "k"),
            ("Tag.1.Other", "o"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "k"),
            ("TagSpecification.1.Bogus", "b"),
            ("BlockDeviceMapping.1.DeviceName", "/dev/sdb"),
            ("Bogus", "1"),
        ]);
        r.list("InstanceId").unwrap();
        r.filters().unwrap();
        r.tags().unwrap();
        r.tag_specifications("instance").unwrap();
        assert_eq!(r.unread(), ["Filter.1.Colour", "Tag.1.Other", "TagSpecification.1.Bogus", "BlockDeviceMapping.1.DeviceName", "Bogus"]);
        assert_eq!(r.names_under("BlockDeviceMapping"), ["BlockDeviceMapping.1.DeviceName"]);
        assert_eq!(r.get("Bogus"), Some("1"));
        assert_eq!(r.unread(), ["Filter.1.Colour", "Tag.1.Other", "TagSpecification.1.Bogus"]);
        assert_eq!(r.clone().unread().len(), 3);
    }

    #[test]
    fn absurd_indices_and_missing_names_are_refused() {
        assert_eq!(p(&[("InstanceId.99999999999", "x")]).list("InstanceId").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p(&[("InstanceId.0", "x")]).list("InstanceId").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p(&[("Filter.1.Value.1", "x")]).filters().unwrap_err().code, "MissingParameter");
        assert_eq!(p(&[("MaxResults", "abc")]).int("MaxResults", 5..=1000).unwrap_err().code, "InvalidParameterValue");
        let many = (0..MAX_PARAMS + 1).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Params::new(many).is_err());
    }
}
