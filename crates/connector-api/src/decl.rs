//! `cloud.connector.class`: a comma-separated list of `<instance>:<kind>` entries.
//!
//! Whitespace around names is trimmed, empty entries are ignored, and a bare
//! `ec2` means instance `ec2` of kind `ec2`. Bad entries are reported one by
//! one and never take the good ones down with them; a duplicate instance name
//! is an error (the first declaration is kept).

use crate::builder::Connectors;
use crate::names::{InstanceName, NameError};
use crate::params::ConnectorKind;
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
pub fn parse_entry(entry: &str, kinds: &Connectors) -> Result<Declaration, DeclError> {
    let (inst, kind) = match entry.split_once(':') {
        Some((i, k)) => (i.trim(), k.trim()),
        None => (entry, entry),
    };
    if inst.is_empty() || kind.is_empty() || kind.contains(':') {
        return Err(DeclError::Malformed { entry: entry.to_string() });
    }
    let kind = kinds.kind(kind).map_err(|source| DeclError::Name { entry: entry.to_string(), source })?;
    let instance = InstanceName::parse(inst).map_err(|source| DeclError::Name { entry: entry.to_string(), source })?;
    Ok(Declaration { instance, kind })
}

/// Parses a whole `cloud.connector.class` value. Returns the good
/// declarations in order and the errors, each naming its entry.
pub fn parse_declarations(value: &str, kinds: &Connectors) -> (Vec<Declaration>, Vec<DeclError>) {
    let mut out: Vec<Declaration> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<InstanceName, ConnectorKind> = BTreeMap::new();
    for raw in value.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        match parse_entry(entry, kinds) {
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
