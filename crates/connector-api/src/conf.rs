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
//! [`ConfLoad::rejected`]) while the good instances load.

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
pub fn load_dir(dir: &Path) -> ConfLoad {
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
    let mut load = load_texts(&texts);
    load.files = files;
    load.errors.extend(errors);
    load.errors.sort_by(|a, b| (&a.location.file, a.location.line).cmp(&(&b.location.file, b.location.line)));
    load
}

/// Loads files given as (path, text), in the given order.
pub fn load_texts(files: &[(PathBuf, String)]) -> ConfLoad {
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
        let (decls, errs) = parse_declarations(&l.value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ConnectorKind;

    fn load(files: &[(&str, &str)]) -> ConfLoad {
        let f: Vec<(PathBuf, String)> = files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
        load_texts(&f)
    }

    fn msgs(l: &ConfLoad) -> Vec<String> {
        l.errors.iter().map(|e| e.to_string()).collect()
    }

    const SLIPSTREAM: &str = "\
# SlipStream example
cloud.connector.class = ec2-eu-central-1:ec2
ec2-eu-central-1.security.group = default
ec2-eu-central-1.update.clienturl = https://slipstream.example.org/downloads/ec2client.tgz
ec2-eu-central-1.orchestrator.instance.type = t2.micro
ec2-eu-central-1.region = eu-central-1
ec2-eu-central-1.quota.vm = 
ec2-eu-central-1.max.iaas.workers = 20
ec2-eu-central-1.orchestrator.imageid = ami-accff2b1
";

    #[test]
    fn loads_the_slipstream_example() {
        let l = load(&[("ec2-eu-central-1.conf", SLIPSTREAM)]);
        assert!(l.is_clean(), "{:?}", msgs(&l));
        assert_eq!(l.instances.len(), 1);
        let i = &l.instances[0];
        assert_eq!(i.declaration.kind, ConnectorKind::Ec2);
        assert_eq!(i.params["region"].value.as_deref(), Some("eu-central-1"));
        assert_eq!(i.params["region"].location.line, 6);
        assert_eq!(i.params["quota.vm"].value, None, "empty means unset");
        assert_eq!(i.values().get_int(ConnectorKind::Ec2, "max.iaas.workers"), Some(20));
    }

    #[test]
    fn bad_value_names_file_and_line_and_keeps_other_instances() {
        let l = load(&[
            ("a.conf", "cloud.connector.class = a:sandbox\na.max.iaas.workers = abc\n"),
            ("b.conf", "cloud.connector.class = b:sandbox\n"),
        ]);
        assert_eq!(msgs(&l), ["a.conf:2: bad value for 'a.max.iaas.workers': 'abc' is not an integer"]);
        assert_eq!(l.rejected, ["a"]);
        assert_eq!(l.instances.len(), 1);
        assert_eq!(l.instances[0].declaration.instance.as_str(), "b");
    }

    #[test]
    fn unknown_parameter() {
        let l = load(&[("a.conf", "cloud.connector.class = a:sandbox\na.regoin = x\n")]);
        assert_eq!(l.errors.len(), 1);
        assert!(l.errors[0].to_string().starts_with("a.conf:2: unknown parameter 'regoin' for sandbox instance 'a'"), "{}", l.errors[0]);
        assert_eq!(l.rejected, ["a"]);
    }

    #[test]
    fn unknown_kind_and_bad_name_with_line() {
        let l = load(&[("x.conf", "\n# c\ncloud.connector.class = good:sandbox, os:openstack, Bad_Name:ec2\nos.region = x\n")]);
        let m = msgs(&l);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("x.conf:3: entry 'os:openstack': unknown connector kind 'openstack'"), "{m:?}");
        assert!(m[1].starts_with("x.conf:3: entry 'Bad_Name:ec2'"), "{m:?}");
        assert_eq!(l.instances.len(), 1);
    }

    #[test]
    fn duplicate_instance_across_files_is_an_error() {
        let l = load(&[("a.conf", "cloud.connector.class = dup:sandbox\n"), ("b.conf", "cloud.connector.class = dup:ec2\n")]);
        let m = msgs(&l);
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("b.conf:1: duplicate instance name 'dup' (already declared as dup:sandbox at a.conf:1)"), "{m:?}");
        assert_eq!(l.instances[0].declaration.kind, ConnectorKind::Sandbox);
    }

    #[test]
    fn duplicate_instance_in_one_line() {
        let l = load(&[("a.conf", "cloud.connector.class = d:sandbox, d:ec2\n")]);
        assert!(msgs(&l)[0].contains("duplicate instance name 'd'"));
    }

    #[test]
    fn duplicate_parameter() {
        let l = load(&[("a.conf", "cloud.connector.class = a:sandbox\na.boot.delay.ms = 1\na.boot.delay.ms = 2\n")]);
        assert_eq!(msgs(&l), ["a.conf:3: duplicate parameter 'a.boot.delay.ms' (first set at a.conf:2)"]);
    }

    #[test]
    fn missing_required_parameter() {
        let l = load(&[("a.conf", "cloud.connector.class = e:ec2\n")]);
        assert_eq!(msgs(&l), ["a.conf:1: ec2 instance 'e' lacks required parameter(s): e.region"]);
        assert!(l.instances.is_empty());
    }

    #[test]
    fn undeclared_instance_and_malformed_lines() {
        let l = load(&[("a.conf", "nope.region = x\njust some words\n= v\nstray = 1\n")]);
        let m = msgs(&l);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("a.conf:1: key 'nope.region': no connector instance 'nope' is declared"));
        assert!(m[1].starts_with("a.conf:2: expected 'key = value'"));
        assert!(m[2].starts_with("a.conf:3: missing key"));
        assert!(m[3].starts_with("a.conf:4: unknown key 'stray'"));
    }

    #[test]
    fn params_may_precede_declaration_and_span_files() {
        let l = load(&[("a.conf", "s.boot.delay.ms = 5\n"), ("b.conf", "cloud.connector.class = s:sandbox\n")]);
        assert!(l.is_clean(), "{:?}", msgs(&l));
        assert_eq!(l.instances[0].params["boot.delay.ms"].location.file, PathBuf::from("a.conf"));
    }

    #[test]
    fn load_dir_sorted_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("20-b.conf"), "cloud.connector.class = b:sandbox\n").unwrap();
        std::fs::write(dir.path().join("10-a.conf"), "cloud.connector.class = a:sandbox\n").unwrap();
        std::fs::write(dir.path().join("README"), "not a conf").unwrap();
        std::fs::write(dir.path().join("x.conf.disabled"), "garbage").unwrap();
        let l = load_dir(dir.path());
        assert!(l.is_clean());
        let names: Vec<_> = l.instances.iter().map(|i| i.declaration.instance.to_string()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(l.files.len(), 2);
        assert!(load_dir(&dir.path().join("missing")).instances.is_empty());
    }
}
