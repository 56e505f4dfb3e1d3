//! `cloud.connector.class`: a comma-separated list of `<instance>:<kind>` entries.
//!
//! Whitespace around names is trimmed, empty entries are ignored, and a bare
//! `ec2` means instance `ec2` of kind `ec2`. Bad entries are reported one by
//! one and never take the good ones down with them; a duplicate instance name
//! is an error (the first declaration is kept).

use crate::names::{ConnectorKind, InstanceName, NameError};
use serde::Serialize;
use std::collections::BTreeMap;

/// One parsed declaration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Declaration {
    pub instance: InstanceName,
    pub kind: ConnectorKind,
}

/// What was wrong with one entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeclError {
    #[error("entry '{entry}': {source}")]
    Name { entry: String, source: NameError },
    #[error("entry '{entry}': malformed, expected <instance>:<connector>")]
    Malformed { entry: String },
    #[error("entry '{entry}': duplicate instance name '{instance}' (already declared as {first})")]
    Duplicate { entry: String, instance: String, first: String },
}

impl DeclError {
    /// The entry text the error is about.
    pub fn entry(&self) -> &str {
        match self {
            DeclError::Name { entry, .. } | DeclError::Malformed { entry } | DeclError::Duplicate { entry, .. } => entry,
        }
    }
}

/// Parses one entry (already trimmed, non-empty).
pub fn parse_entry(entry: &str) -> Result<Declaration, DeclError> {
    let (inst, kind) = match entry.split_once(':') {
        Some((i, k)) => (i.trim(), k.trim()),
        None => (entry, entry),
    };
    if inst.is_empty() || kind.is_empty() || kind.contains(':') {
        return Err(DeclError::Malformed { entry: entry.to_string() });
    }
    let kind = ConnectorKind::parse(kind).map_err(|source| DeclError::Name { entry: entry.to_string(), source })?;
    let instance = InstanceName::parse(inst).map_err(|source| DeclError::Name { entry: entry.to_string(), source })?;
    Ok(Declaration { instance, kind })
}

/// Parses a whole `cloud.connector.class` value. Returns the good
/// declarations in order and the errors, each naming its entry.
pub fn parse_declarations(value: &str) -> (Vec<Declaration>, Vec<DeclError>) {
    let mut out: Vec<Declaration> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<InstanceName, ConnectorKind> = BTreeMap::new();
    for raw in value.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        match parse_entry(entry) {
            Ok(d) => {
                if let Some(first) = seen.get(&d.instance) {
                    errors.push(DeclError::Duplicate {
                        entry: entry.to_string(),
                        instance: d.instance.to_string(),
                        first: format!("{}:{}", d.instance, first),
                    });
                } else {
                    seen.insert(d.instance.clone(), d.kind);
                    out.push(d);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// Renders declarations back to the `cloud.connector.class` form.
pub fn render_declarations(decls: &[Declaration]) -> String {
    decls.iter().map(|d| format!("{}:{}", d.instance, d.kind)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &[Declaration]) -> Vec<String> {
        d.iter().map(|d| format!("{}:{}", d.instance, d.kind)).collect()
    }

    #[test]
    fn parses_list_with_whitespace_and_empty_entries() {
        let (d, e) = parse_declarations("  ec2-eu-central-1:ec2 ,ec2-eu-west-1 : ec2,, one-lab:ec2query , ");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(names(&d), ["ec2-eu-central-1:ec2", "ec2-eu-west-1:ec2", "one-lab:ec2query"]);
    }

    #[test]
    fn bare_kind_is_instance_of_itself() {
        let (d, e) = parse_declarations("ec2, sandbox");
        assert!(e.is_empty());
        assert_eq!(names(&d), ["ec2:ec2", "sandbox:sandbox"]);
    }

    #[test]
    fn empty_value_declares_nothing() {
        let (d, e) = parse_declarations(" , ,");
        assert!(d.is_empty() && e.is_empty());
    }

    #[test]
    fn unknown_kind_is_reported_and_good_entries_survive() {
        let (d, e) = parse_declarations("a:ec2, b:openstack, c:sandbox");
        assert_eq!(names(&d), ["a:ec2", "c:sandbox"]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].entry(), "b:openstack");
        assert!(e[0].to_string().contains("unknown connector kind 'openstack'"), "{}", e[0]);
    }

    #[test]
    fn bare_unknown_kind() {
        let (d, e) = parse_declarations("azure");
        assert!(d.is_empty());
        assert!(e[0].to_string().contains("unknown connector kind 'azure'"));
    }

    #[test]
    fn bad_instance_name() {
        let (d, e) = parse_declarations("EC2_West:ec2, ok:ec2");
        assert_eq!(names(&d), ["ok:ec2"]);
        assert!(e[0].to_string().contains("entry 'EC2_West:ec2'"));
        assert!(e[0].to_string().contains("not kebab-case"));
    }

    #[test]
    fn duplicate_is_an_error_and_first_wins() {
        let (d, e) = parse_declarations("x:ec2, x:sandbox");
        assert_eq!(names(&d), ["x:ec2"]);
        assert_eq!(e.len(), 1);
        assert!(matches!(&e[0], DeclError::Duplicate { instance, first, .. } if instance == "x" && first == "x:ec2"));
    }

    #[test]
    fn malformed_entries() {
        for bad in [":ec2", "x:", "x:ec2:y"] {
            let (d, e) = parse_declarations(bad);
            assert!(d.is_empty(), "{bad}");
            assert!(matches!(e[0], DeclError::Malformed { .. }), "{bad}: {:?}", e[0]);
        }
    }

    #[test]
    fn render_round_trips() {
        let (d, _) = parse_declarations("a:ec2,b:sandbox");
        assert_eq!(render_declarations(&d), "a:ec2, b:sandbox");
        assert_eq!(parse_declarations(&render_declarations(&d)).0, d);
    }
}
