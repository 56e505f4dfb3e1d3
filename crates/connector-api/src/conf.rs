//! The `connectors.d/*.conf` loader (SlipStream format).
//!
//! ```text
//! # a comment
//! cloud.connector.class = ec2-eu-central-1:ec2
//! ec2-eu-central-1.region = eu-central-1
//! ec2-eu-central-1.quota.vm =
//! ```
//!
//! Files load in sorted name order. Every problem is reported with its file
//! and line; an instance with any error is left out (and named in
//! [`ConfLoad::rejected`]) while the good instances load. Kinds and their
//! parameters are those of the registered [`Connectors`].

use crate::builder::Connectors;
use crate::decl::{parse_declarations, DeclError, Declaration};
use crate::names::InstanceName;
use crate::params::{validate_value, ParamValues};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The key that declares connector instances.
pub const CONNECTOR_CLASS_KEY: &str = "cloud.connector.class";

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One error, with its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfError {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// One `key = value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvLine {
    pub key: String,
    pub value: String,
    pub location: Location,
}

/// Splits a file into `key = value` lines. Blank lines and lines starting
/// with `#` or `!` are skipped; a line without `=` is an error.
pub fn parse_kv(file: &Path, text: &str) -> (Vec<KvLine>, Vec<ConfError>) {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let location = Location { file: file.to_path_buf(), line: i + 1 };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                lines.push(KvLine { key: k.trim().to_string(), value: v.trim().to_string(), location });
            }
            Some(_) => errors.push(ConfError { location, message: "missing key before '='".into() }),
            None => errors.push(ConfError { location, message: format!("expected 'key = value', found '{line}'") }),
        }
    }
    (lines, errors)
}

/// A parameter value from a file; `None` when the file sets it empty (unset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileParam {
    pub value: Option<String>,
    pub location: Location,
}

/// A connector instance declared in a file, with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileInstance {
    pub declaration: Declaration,
    pub location: Location,
    pub params: BTreeMap<String, FileParam>,
}

impl FileInstance {
    /// The explicitly set values.
    pub fn values(&self) -> ParamValues {
        ParamValues::new(self.params.iter().filter_map(|(k, p)| p.value.clone().map(|v| (k.clone(), v))).collect())
    }
}

/// The result of loading a directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConfLoad {
    /// Files read, in load order.
    pub files: Vec<PathBuf>,
    /// Instances with no error, in declaration order.
    pub instances: Vec<FileInstance>,
    /// Instances left out because of an error about them.
    pub rejected: Vec<String>,
    /// Every error, in file and line order.
    pub errors: Vec<ConfError>,
}

impl ConfLoad {
    /// Whether everything loaded cleanly.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Lists `*.conf` files of a directory in sorted name order. A missing
/// directory has no files.
pub fn conf_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in rd {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "conf") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every `*.conf` file of `dir`.
pub fn load_dir(dir: &Path, kinds: &Connectors) -> ConfLoad {
    let files = match conf_files(dir) {
        Ok(f) => f,
        Err(e) => {
            return ConfLoad {
                errors: vec![ConfError {
                    location: Location { file: dir.to_path_buf(), line: 0 },
                    message: format!("cannot read directory: {e}"),
                }],
                ..ConfLoad::default()
            }
        }
    };
    let mut texts = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match std::fs::read(f).map(String::from_utf8) {
            Ok(Ok(t)) => texts.push((f.clone(), t)),
            // Point at the first line that is not UTF-8; nothing of the file loads.
            Ok(Err(e)) => {
                let at = e.utf8_error().valid_up_to();
                let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
                errors.push(ConfError {
                    location: Location { file: f.clone(), line },
                    message: format!("not valid UTF-8 (byte {} of the file); the whole file is ignored", at + 1),
                });
            }
            Err(e) => errors.push(ConfError { location: Location { file: f.clone(), line: 0 }, message: format!("cannot read file: {e}") }),
        }
    }
    let mut load = load_texts(&texts, kinds);
    load.files = files;
    load.errors.extend(errors);
    load.errors.sort_by(|a, b| (&a.location.file, a.location.line).cmp(&(&b.location.file, b.location.line)));
    load
}

/// Loads files given as (path, text), in the given order.
pub fn load_texts(files: &[(PathBuf, String)], kinds: &Connectors) -> ConfLoad {
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    for (path, text) in files {
        let (l, e) = parse_kv(path, text);
        lines.extend(l);
        errors.extend(e);
    }

    // Pass 1: declarations.
    let mut instances: Vec<FileInstance> = Vec::new();
    let mut failed_names: BTreeSet<String> = BTreeSet::new();
    for l in lines.iter().filter(|l| l.key == CONNECTOR_CLASS_KEY) {
        let (decls, errs) = parse_declarations(&l.value, kinds);
        for e in errs {
            if let DeclError::Duplicate { .. } = e {
            } else if let Some((name, _)) = e.entry().split_once(':') {
                failed_names.insert(name.trim().to_string());
            } else {
                failed_names.insert(e.entry().to_string());
            }
            errors.push(ConfError { location: l.location.clone(), message: e.to_string() });
        }
        for d in decls {
            if let Some(first) = instances.iter().find(|i| i.declaration.instance == d.instance) {
                errors.push(ConfError {
                    location: l.location.clone(),
                    message: format!(
                        "duplicate instance name '{}' (already declared as {}:{} at {})",
                        d.instance, first.declaration.instance, first.declaration.kind, first.location
                    ),
                });
                continue;
            }
            instances.push(FileInstance { declaration: d, location: l.location.clone(), params: BTreeMap::new() });
        }
    }

    // Pass 2: parameters.
    let mut rejected: BTreeSet<String> = BTreeSet::new();
    for l in lines.iter().filter(|l| l.key != CONNECTOR_CLASS_KEY) {
        let err = |message: String| ConfError { location: l.location.clone(), message };
        let Some((inst, param)) = l.key.split_once('.') else {
            errors.push(err(format!("unknown key '{}' (expected {CONNECTOR_CLASS_KEY} or <instance>.<parameter>)", l.key)));
            continue;
        };
        if failed_names.contains(inst) {
            continue; // its declaration error is already reported
        }
        let Some(fi) = instances.iter_mut().find(|i| i.declaration.instance.as_str() == inst) else {
            let hint = match InstanceName::parse(inst) {
                Ok(_) => format!("no connector instance '{inst}' is declared ({CONNECTOR_CLASS_KEY} = {inst}:<connector>)"),
                Err(e) => e.to_string(),
            };
            errors.push(err(format!("key '{}': {hint}", l.key)));
            continue;
        };
        let kind = fi.declaration.kind;
        let Some(spec) = kind.param(param) else {
            rejected.insert(inst.to_string());
            let known: Vec<&str> = kind.params().iter().map(|s| s.name).collect();
            errors.push(err(format!("unknown parameter '{param}' for {kind} instance '{inst}' (known: {})", known.join(", "))));
            continue;
        };
        if let Some(prev) = fi.params.get(param) {
            rejected.insert(inst.to_string());
            errors.push(err(format!("duplicate parameter '{}' (first set at {})", l.key, prev.location)));
            continue;
        }
        match validate_value(spec, &l.value) {
            Ok(value) => {
                fi.params.insert(param.to_string(), FileParam { value, location: l.location.clone() });
            }
            Err(msg) => {
                rejected.insert(inst.to_string());
                errors.push(err(format!("bad value for '{}': {msg}", l.key)));
            }
        }
    }

    // Pass 3: required parameters.
    for fi in &instances {
        let missing = fi.values().missing_required(fi.declaration.kind);
        if !missing.is_empty() {
            rejected.insert(fi.declaration.instance.to_string());
            errors.push(ConfError {
                location: fi.location.clone(),
                message: format!(
                    "{} instance '{}' lacks required parameter(s): {}",
                    fi.declaration.kind,
                    fi.declaration.instance,
                    missing.iter().map(|m| format!("{}.{m}", fi.declaration.instance)).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }

    errors.sort_by(|a, b| (&a.location.file, a.location.line).cmp(&(&b.location.file, b.location.line)));
    let (good, bad): (Vec<_>, Vec<_>) = instances.into_iter().partition(|i| !rejected.contains(i.declaration.instance.as_str()));
    ConfLoad {
        files: files.iter().map(|(p, _)| p.clone()).collect(),
        instances: good,
        rejected: bad.into_iter().map(|i| i.declaration.instance.to_string()).collect(),
        errors,
    }
}
