//! An EC2 Query request's parameters: from the query string (GET) and the
//! form body (POST), with the list conventions of the Query API: `X.N`
//! members, `Filter.N.Name` / `Filter.N.Value.M`, `TagSpecification.N...`.
//! Sizes are bounded: a request with absurd list indices or too many
//! parameters is refused before any work.

use crate::error::Ec2Error;
use std::collections::BTreeMap;

/// Parameters a request may carry at most.
pub const MAX_PARAMS: usize = 2_000;
/// The largest `N` accepted in `X.N`.
const MAX_INDEX: usize = 1_000;

/// The parameters of one request.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

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
        Ok(Self { pairs })
    }

    /// All pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The one value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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
        for (k, v) in &self.pairs {
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
        for (k, v) in &self.pairs {
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
        for (k, v) in &self.pairs {
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
        for (k, v) in &self.pairs {
            let Some(rest) = k.strip_prefix("TagSpecification.") else { continue };
            let Some((n, field)) = rest.split_once('.') else { continue };
            let spec = specs.entry(index(k, n)?).or_default();
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
    fn absurd_indices_and_missing_names_are_refused() {
        assert_eq!(p(&[("InstanceId.99999999999", "x")]).list("InstanceId").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p(&[("InstanceId.0", "x")]).list("InstanceId").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p(&[("Filter.1.Value.1", "x")]).filters().unwrap_err().code, "MissingParameter");
        assert_eq!(p(&[("MaxResults", "abc")]).int("MaxResults", 5..=1000).unwrap_err().code, "InvalidParameterValue");
        let many = (0..MAX_PARAMS + 1).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Params::new(many).is_err());
    }
}
