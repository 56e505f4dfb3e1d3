//! The application document: its types, parsing and validation, and the
//! files that declare applications (`connectors.d/applications/`). A
//! document that [`AppDoc::parse`] accepts satisfies every rule of the
//! design (names, bounds, references, no dependency cycle, no unknown
//! field); every violation is reported at once, each naming its path in the
//! document (`nodes.web.depends_on[0]`) and, where it can be found, its
//! line. A leaf: it depends on [`crate::domain`] only, so the registry
//! (which loads the files) and the services' error type (which carries
//! [`AppError`]s) use it without depending on `deployments`, where it is
//! re-exported as `crate::deployments::app`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

use cloudbroker_store::Store;

/// The outputs every node has: the broker publishes them.
pub const BUILTIN_OUTPUTS: [&str; 2] = ["hostname", "instanceid"];
/// At most this many bytes of document.
pub const MAX_DOC_BYTES: usize = 256 * 1024;
/// At most this many bytes of user data per node.
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// At most this many characters of description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// At most this many nodes.
pub const MAX_NODES: usize = 20;
/// At most this many VMs per node, and in all.
pub const MAX_MULTIPLICITY: u32 = 100;
/// A deployment's overall timeout when the document gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// An application's name: a lowercase letter, then lowercase letters,
/// digits, `_` or `-`; at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    /// Parses a name (the message says what is wrong).
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.len() <= 64
            && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "application name '{}' is invalid: a lowercase letter, then lowercase letters, digits, '_' or '-' (at most 64)",
                s.chars().take(64).collect::<String>()
            ))
        }
    }

    /// A name read from the store (written only after parsing).
    pub(crate) fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AppName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One error in a document: where (`nodes.web.depends_on[0]`; empty for the
/// whole document), what, and the line of the source it is on where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppError {
    pub path: String,
    pub message: String,
    /// 1-based line in the source, where it could be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl AppError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into(), line: None }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// When a node's VM counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadyWhen {
    /// It called `cloudbroker-client ready`.
    #[default]
    Client,
    /// It is running (images without the client).
    Running,
}

impl ReadyWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyWhen::Client => "client",
            ReadyWhen::Running => "running",
        }
    }
}

/// An input or output parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub default: Option<String>,
    pub description: String,
    pub secret: bool,
}

/// One node: VMs of one image that play one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    pub image: String,
    pub instance_type: Option<String>,
    pub multiplicity: u32,
    /// The connector instances it may run on; empty: any the user may use.
    pub instances: Vec<String>,
    pub ready_when: ReadyWhen,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Option<Duration>,
    pub depends_on: Vec<String>,
    pub inputs: Vec<ParamSpec>,
    pub outputs: Vec<ParamSpec>,
    pub user_data: Option<String>,
}

/// A validated application document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppDoc {
    pub description: String,
    /// Deployment-wide inputs.
    pub inputs: Vec<ParamSpec>,
    pub nodes: BTreeMap<String, NodeSpec>,
    /// `"<node>.<input>"` -> `"<node>.<output>"`.
    pub mappings: BTreeMap<String, String>,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Option<Duration>,
}

/// One stored version of an application.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub name: AppName,
    pub version: i64,
    pub doc: AppDoc,
    /// The text as saved.
    pub source: String,
    /// `connectors.d/applications/lamp.yaml`, or `saved by alice`.
    pub origin: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn ser_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// A duration in the document's syntax (`1h30m`, `45s`).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    out
}

/// Whether `s` is a node or parameter name: `[a-z][a-z0-9_]{0,31}`.
pub fn is_name(s: &str) -> bool {
    s.len() <= 32
        && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

const NAME_RULE: &str = "a lowercase letter, then lowercase letters, digits or '_' (at most 32)";

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

impl AppDoc {
    /// Parses and validates a document (YAML, or JSON, which is YAML too).
    /// Every error is returned at once, each with its path and line.
    pub fn parse(text: &str) -> Result<AppDoc, Vec<AppError>> {
        if text.len() > MAX_DOC_BYTES {
            return Err(vec![AppError::new("", format!("the document is {} bytes; at most {MAX_DOC_BYTES}", text.len()))]);
        }
        let value: Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                return Err(vec![AppError { path: String::new(), message: e.to_string(), line }]);
            }
        };
        let mut cx = Cx::default();
        let doc = cx.doc(&value);
        if cx.errors.is_empty() {
            Ok(doc)
        } else {
            for e in &mut cx.errors {
                e.line = line_of(text, &e.path);
            }
            Err(cx.errors)
        }
    }

    /// [`AppDoc::parse`] plus the rules for a version about to be
    /// published (saved, or loaded from a file): documents are readable by
    /// every signed-in user, so a secret input has no default in them (it
    /// is given at deploy time, and sealed then). Stored versions are read
    /// with [`AppDoc::parse`] alone, so nothing already saved stops
    /// loading.
    pub fn parse_new(text: &str) -> Result<AppDoc, Vec<AppError>> {
        let doc = Self::parse(text)?;
        let mut errors = Vec::new();
        let mut check = |path: String, params: &[ParamSpec]| {
            for (i, p) in params.iter().enumerate() {
                if p.secret && p.default.is_some() {
                    let path = format!("{path}[{i}].default");
                    let line = line_of(text, &path);
                    errors.push(AppError {
                        path,
                        message: format!(
                            "secret input '{}' cannot have a default: every signed-in user can read the document; give it at deploy time",
                            p.name
                        ),
                        line,
                    });
                }
            }
        };
        check("inputs".into(), &doc.inputs);
        for (n, node) in &doc.nodes {
            check(format!("nodes.{n}.inputs"), &node.inputs);
        }
        if errors.is_empty() {
            Ok(doc)
        } else {
            Err(errors)
        }
    }

    /// node -> input -> (node, output) it is mapped from.
    pub fn mapping_of(&self, node: &str, input: &str) -> Option<(&str, &str)> {
        self.mappings.get(&format!("{node}.{input}")).and_then(|v| v.split_once('.'))
    }

    /// The nodes in an order where every node comes after what it depends
    /// on (by name among those free at the same time).
    pub fn launch_order(&self) -> Vec<&str> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::with_capacity(self.nodes.len());
        while order.len() < self.nodes.len() {
            let next = self
                .nodes
                .iter()
                .find(|(n, s)| !done.contains(n.as_str()) && s.depends_on.iter().all(|d| done.contains(d.as_str())))
                .map(|(n, _)| n.as_str());
            match next {
                Some(n) => {
                    done.insert(n);
                    order.push(n);
                }
                // A cycle (parse refuses them): the rest by name.
                None => {
                    for n in self.nodes.keys() {
                        if done.insert(n.as_str()) {
                            order.push(n.as_str());
                        }
                    }
                }
            }
        }
        order
    }

    /// The overall timeout (the document's, else [`DEFAULT_TIMEOUT`]).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Every VM of every node.
    pub fn total_multiplicity(&self) -> u32 {
        self.nodes.values().map(|n| n.multiplicity).sum()
    }
}

impl NodeSpec {
    /// Whether the node has `output` (declared, or built in).
    pub fn has_output(&self, output: &str) -> bool {
        BUILTIN_OUTPUTS.contains(&output) || self.outputs.iter().any(|o| o.name == output)
    }
}

/// The validation's state: the errors found so far.
#[derive(Default)]
struct Cx {
    errors: Vec<AppError>,
}

fn key_of(k: &Value) -> Option<&str> {
    match k {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Cx {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(AppError::new(path, message));
    }

    /// A mapping's fields, refusing unknown ones and non-string keys.
    fn fields<'a>(&mut self, v: &'a Value, path: &str, allowed: &[&str]) -> Option<BTreeMap<&'a str, &'a Value>> {
        let Value::Mapping(m) = v else {
            self.err(path, format!("must be a mapping, not {}", type_name(v)));
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, val) in m {
            match key_of(k) {
                Some(k) if allowed.contains(&k) => {
                    out.insert(k, val);
                }
                Some(k) => self.err(join(path, k), format!("unknown field '{}'; expected one of: {}", clip(k), allowed.join(", "))),
                None => self.err(path, format!("field names must be strings, not {}", type_name(k))),
            }
        }
        Some(out)
    }

    /// A scalar as text (numbers and booleans as written); `None` for null.
    fn scalar(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.err(path, format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    fn description(&mut self, v: Option<&&Value>, path: &str) -> String {
        let Some(v) = v else { return String::new() };
        let p = join(path, "description");
        let d = self.scalar(v, &p).unwrap_or_default();
        let n = d.chars().count();
        if n > MAX_DESCRIPTION_CHARS {
            self.err(p, format!("is {n} characters long; at most {MAX_DESCRIPTION_CHARS}"));
        }
        d
    }

    fn duration(&mut self, v: Option<&&Value>, path: &str) -> Option<Duration> {
        let v = v?;
        let text = match v {
            Value::Null => return None,
            Value::String(s) => s.clone(),
            other => {
                self.err(path, format!("must be a duration such as 10m or 1h30m, not {}", type_name(other)));
                return None;
            }
        };
        match cloudbroker_model::lease::parse_duration(&text) {
            Ok(d) => Some(Duration::from_secs(u64::try_from(d.num_seconds()).unwrap_or(0))),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    fn list<'a>(&mut self, v: Option<&&'a Value>, path: &str) -> &'a [Value] {
        match v {
            None | Some(Value::Null) => &[],
            Some(Value::Sequence(s)) => s.as_slice(),
            Some(other) => {
                self.err(path, format!("must be a list, not {}", type_name(other)));
                &[]
            }
        }
    }

    /// A list of parameters (`inputs` allow `default`, `outputs` do not).
    fn params(&mut self, v: Option<&&Value>, path: &str, what: &str, with_default: bool) -> Vec<ParamSpec> {
        let allowed: &[&str] =
            if with_default { &["name", "default", "description", "secret"] } else { &["name", "description", "secret"] };
        let mut out: Vec<ParamSpec> = Vec::new();
        for (i, item) in self.list(v, path).iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(f) = self.fields(item, &p, allowed) else { continue };
            let np = format!("{p}.name");
            let name = match f.get("name") {
                None => {
                    self.err(&np, format!("missing: every {what} has a name"));
                    continue;
                }
                Some(n) => self.scalar(n, &np).unwrap_or_default(),
            };
            if !is_name(&name) {
                self.err(&np, format!("'{}' is not a valid {what} name: {NAME_RULE}", clip(&name)));
            } else if out.iter().any(|o| o.name == name) {
                self.err(&np, format!("duplicate {what} '{name}'"));
            } else if what == "output" && BUILTIN_OUTPUTS.contains(&name.as_str()) {
                self.err(&np, format!("'{name}' is a built-in output: the broker publishes it"));
            }
            let default = f.get("default").and_then(|d| self.scalar(d, &format!("{p}.default")));
            let description = self.description(f.get("description"), &p);
            let secret = match f.get("secret") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    self.err(format!("{p}.secret"), format!("must be true or false, not {}", type_name(other)));
                    false
                }
            };
            out.push(ParamSpec { name, default, description, secret });
        }
        out
    }

    fn doc(&mut self, v: &Value) -> AppDoc {
        let mut doc =
            AppDoc { description: String::new(), inputs: vec![], nodes: BTreeMap::new(), mappings: BTreeMap::new(), timeout: None };
        let Some(f) = self.fields(v, "", &["description", "inputs", "nodes", "mappings", "timeout"]) else {
            if let Some(e) = self.errors.last_mut() {
                e.message = format!("the document {}, with at least `nodes`", e.message);
            }
            return doc;
        };
        doc.description = self.description(f.get("description"), "");
        doc.inputs = self.params(f.get("inputs"), "inputs", "input", true);
        doc.timeout = self.duration(f.get("timeout"), "timeout");
        match f.get("nodes") {
            None | Some(Value::Null) => self.err("nodes", "missing: an application has at least one node"),
            Some(Value::Mapping(m)) => {
                if m.is_empty() {
                    self.err("nodes", "an application has at least one node");
                }
                if m.len() > MAX_NODES {
                    self.err("nodes", format!("{} nodes; at most {MAX_NODES}", m.len()));
                }
                for (k, nv) in m {
                    let Some(name) = key_of(k) else {
                        self.err("nodes", format!("node names must be strings, not {}", type_name(k)));
                        continue;
                    };
                    let path = format!("nodes.{name}");
                    if !is_name(name) {
                        self.err(&path, format!("'{}' is not a valid node name: {NAME_RULE}", clip(name)));
                    }
                    if let Some(n) = self.node(nv, &path) {
                        doc.nodes.insert(name.to_string(), n);
                    }
                }
            }
            Some(other) => self.err("nodes", format!("must be a mapping of node name to node, not {}", type_name(other))),
        }
        let total: u32 = doc.nodes.values().map(|n| n.multiplicity).sum();
        if total > MAX_MULTIPLICITY {
            self.err("nodes", format!("{total} VMs in all (the sum of the multiplicities); at most {MAX_MULTIPLICITY}"));
        }
        self.dependencies(&doc);
        doc.mappings = self.mappings(f.get("mappings"), &doc);
        doc
    }

    fn node(&mut self, v: &Value, path: &str) -> Option<NodeSpec> {
        const FIELDS: &[&str] = &[
            "image",
            "instance_type",
            "multiplicity",
            "instances",
            "ready_when",
            "timeout",
            "depends_on",
            "inputs",
            "outputs",
            "user_data",
        ];
        let f = self.fields(v, path, FIELDS)?;
        let ip = format!("{path}.image");
        let image = match f.get("image").and_then(|i| self.scalar(i, &ip)) {
            None => {
                self.err(&ip, "missing: every node names a native image (e.g. ubuntu-22.04)");
                String::new()
            }
            Some(i) => {
                if let Err(e) = crate::domain::ImageName::parse(&i) {
                    self.err(&ip, e.message);
                }
                i
            }
        };
        let tp = format!("{path}.instance_type");
        let instance_type = f.get("instance_type").and_then(|t| self.scalar(t, &tp)).filter(|t| !t.is_empty());
        if let Some(t) = &instance_type {
            if t.len() > 64 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.err(&tp, format!("'{}' is not an instance type", clip(t)));
            }
        }
        let mp = format!("{path}.multiplicity");
        let multiplicity = match f.get("multiplicity") {
            None | Some(Value::Null) => 1,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(m) if m <= u64::from(MAX_MULTIPLICITY) => m as u32,
                _ => {
                    self.err(&mp, format!("{n}: must be a whole number from 0 to {MAX_MULTIPLICITY}"));
                    0
                }
            },
            Some(other) => {
                self.err(&mp, format!("must be a whole number from 0 to {MAX_MULTIPLICITY}, not {}", type_name(other)));
                0
            }
        };
        let inp = format!("{path}.instances");
        let mut instances = Vec::new();
        for (i, item) in self.list(f.get("instances"), &inp).iter().enumerate() {
            let p = format!("{inp}[{i}]");
            let Some(s) = self.scalar(item, &p) else { continue };
            match crate::domain::InstanceName::parse(&s) {
                Ok(_) if instances.contains(&s) => self.err(&p, format!("'{s}' is listed twice")),
                Ok(_) => instances.push(s),
                Err(e) => self.err(&p, e.to_string()),
            }
        }
        let rp = format!("{path}.ready_when");
        let ready_when = match f.get("ready_when").and_then(|r| self.scalar(r, &rp)).as_deref() {
            None | Some("client") => ReadyWhen::Client,
            Some("running") => ReadyWhen::Running,
            Some(other) => {
                self.err(&rp, format!("'{}': must be client (the VM calls `cloudbroker-client ready`) or running", clip(other)));
                ReadyWhen::Client
            }
        };
        let timeout = self.duration(f.get("timeout"), &format!("{path}.timeout"));
        let dp = format!("{path}.depends_on");
        let mut depends_on = Vec::new();
        for (i, item) in self.list(f.get("depends_on"), &dp).iter().enumerate() {
            let p = format!("{dp}[{i}]");
            if let Some(s) = self.scalar(item, &p) {
                if depends_on.contains(&s) {
                    self.err(&p, format!("'{}' is listed twice", clip(&s)));
                } else {
                    depends_on.push(s);
                }
            }
        }
        let inputs = self.params(f.get("inputs"), &format!("{path}.inputs"), "input", true);
        let outputs = self.params(f.get("outputs"), &format!("{path}.outputs"), "output", false);
        let up = format!("{path}.user_data");
        let user_data = f.get("user_data").and_then(|u| self.scalar(u, &up));
        if let Some(u) = &user_data {
            if u.len() > MAX_USER_DATA_BYTES {
                self.err(&up, format!("is {} bytes; at most {MAX_USER_DATA_BYTES} (16 KiB)", u.len()));
            }
        }
        Some(NodeSpec { image, instance_type, multiplicity, instances, ready_when, timeout, depends_on, inputs, outputs, user_data })
    }

    /// `depends_on` names existing nodes; no cycle (each is named).
    fn dependencies(&mut self, doc: &AppDoc) {
        for (name, n) in &doc.nodes {
            for (i, d) in n.depends_on.iter().enumerate() {
                if !doc.nodes.contains_key(d) {
                    self.err(format!("nodes.{name}.depends_on[{i}]"), format!("no node '{}'", clip(d)));
                }
            }
        }
        // Depth-first search; a edge back to a node on the stack closes a cycle.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnStack,
            Done,
        }
        let mut mark: BTreeMap<&str, Mark> = doc.nodes.keys().map(|k| (k.as_str(), Mark::New)).collect();
        let mut cycles: Vec<Vec<String>> = Vec::new();
        fn visit<'a>(
            n: &'a str,
            doc: &'a AppDoc,
            mark: &mut BTreeMap<&'a str, Mark>,
            stack: &mut Vec<&'a str>,
            cycles: &mut Vec<Vec<String>>,
        ) {
            mark.insert(n, Mark::OnStack);
            stack.push(n);
            for d in &doc.nodes[n].depends_on {
                match mark.get(d.as_str()).copied() {
                    Some(Mark::New) => visit(d.as_str(), doc, mark, stack, cycles),
                    Some(Mark::OnStack) => {
                        let from = stack.iter().position(|s| *s == d.as_str()).unwrap_or(0);
                        let mut c: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                        c.push(d.clone());
                        cycles.push(c);
                    }
                    _ => {}
                }
            }
            stack.pop();
            mark.insert(n, Mark::Done);
        }
        for n in doc.nodes.keys() {
            if mark[n.as_str()] == Mark::New {
                visit(n, doc, &mut mark, &mut Vec::new(), &mut cycles);
            }
        }
        for c in cycles {
            self.err(format!("nodes.{}.depends_on", c[0]), format!("dependency cycle: {}", c.join(" -> ")));
        }
    }

    fn mappings(&mut self, v: Option<&&Value>, doc: &AppDoc) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let m: &Mapping = match v {
            None | Some(Value::Null) => return out,
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                self.err("mappings", format!("must be a mapping of \"<node>.<input>\" to \"<node>.<output>\", not {}", type_name(other)));
                return out;
            }
        };
        for (k, val) in m {
            let Some(left) = key_of(k) else {
                self.err("mappings", format!("keys must be strings \"<node>.<input>\", not {}", type_name(k)));
                continue;
            };
            let path = format!("mappings.{left}");
            let mut ok = true;
            match left.split_once('.') {
                None => {
                    self.err(&path, "the left side must be \"<node>.<input>\"");
                    ok = false;
                }
                Some((node, input)) => match doc.nodes.get(node) {
                    None => {
                        self.err(&path, format!("no node '{}'", clip(node)));
                        ok = false;
                    }
                    Some(n) if !n.inputs.iter().any(|i| i.name == input) => {
                        self.err(&path, format!("node '{node}' has no input '{}'", clip(input)));
                        ok = false;
                    }
                    Some(_) => {}
                },
            }
            let right = match val {
                Value::String(s) => s.clone(),
                other => {
                    self.err(&path, format!("the right side must be \"<node>.<output>\", not {}", type_name(other)));
                    continue;
                }
            };
            match right.split_once('.') {
                None => {
                    self.err(&path, format!("'{}': the right side must be \"<node>.<output>\"", clip(&right)));
                    ok = false;
                }
                Some((node, output)) => match doc.nodes.get(node) {
                    None => {
                        self.err(&path, format!("'{}': no node '{}'", clip(&right), clip(node)));
                        ok = false;
                    }
                    Some(n) if !n.has_output(output) => {
                        let mut names: Vec<&str> = n.outputs.iter().map(|o| o.name.as_str()).collect();
                        names.extend(BUILTIN_OUTPUTS);
                        self.err(&path, format!("node '{node}' has no output '{}' (it has: {})", clip(output), names.join(", ")));
                        ok = false;
                    }
                    Some(_) => {}
                },
            }
            if ok {
                out.insert(left.to_string(), right);
            }
        }
        out
    }
}

/// One step of a path: a field or a list index.
enum Seg {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    // `mappings.<node>.<input>`: the key holds a dot.
    if let Some(rest) = path.strip_prefix("mappings.") {
        segs.push(Seg::Key("mappings".into()));
        segs.push(Seg::Key(rest.into()));
        return segs;
    }
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut it = part.split('[');
        if let Some(k) = it.next().filter(|k| !k.is_empty()) {
            segs.push(Seg::Key(k.to_string()));
        }
        for idx in it {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                segs.push(Seg::Index(i));
            }
        }
    }
    segs
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn has_key(line: &str, key: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ").trim_start();
    let plain = format!("{key}:");
    let quoted = format!("\"{key}\":");
    let squoted = format!("'{key}':");
    if t.starts_with(&plain) || t.starts_with(&quoted) || t.starts_with(&squoted) {
        return true;
    }
    // Flow style: `{name: x, ...}`, `{"name": "x"}`.
    ["{", ", ", ",", "{ "]
        .iter()
        .any(|p| line.contains(&format!("{p}{plain}")) || line.contains(&format!("{p}{quoted}")) || line.contains(&format!("{p}{squoted}")))
}

/// The end (exclusive) of the block opened at line `at`.
fn block_end(lines: &[&str], at: usize, hi: usize) -> usize {
    let ind = indent(lines[at]);
    let dash = lines[at].trim_start().starts_with('-');
    for (i, l) in lines.iter().enumerate().take(hi).skip(at + 1) {
        if !is_content(l) {
            continue;
        }
        let li = indent(l);
        // YAML lets a list sit at its key's indentation.
        if li < ind || (li == ind && (dash || !l.trim_start().starts_with('-'))) {
            return i;
        }
    }
    hi
}

/// The 1-based line of `path` in `source`, where it can be found (block
/// YAML and indented JSON; a flow value gives the line it starts on).
pub fn line_of(source: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let (mut lo, mut hi) = (0usize, lines.len());
    let mut found: Option<usize> = None;
    let mut first = true;
    for seg in split_path(path) {
        match seg {
            Seg::Key(k) => {
                // A child is on the lines below its parent, or on the
                // parent's own line for a list item (`- name: x`, `{name: x}`).
                let inline = lines.get(lo).is_some_and(|l| l.trim_start().starts_with('-') || l.trim_start().starts_with('{'));
                let start = if first || inline { lo } else { lo + 1 };
                let Some(at) = (start..hi).find(|&i| has_key(lines[i], &k)) else { break };
                found = Some(at);
                lo = at;
                hi = block_end(&lines, at, hi);
            }
            Seg::Index(n) => {
                let items: Vec<usize> =
                    (lo + 1..hi).filter(|&i| lines[i].trim_start().starts_with('-') || lines[i].trim_start().starts_with('{')).collect();
                let min = items.iter().map(|&i| indent(lines[i])).min();
                let items: Vec<usize> = items.into_iter().filter(|&i| Some(indent(lines[i])) == min).collect();
                let Some(&at) = items.get(n) else { break };
                found = Some(at);
                lo = at;
                hi = block_end(&lines, at, hi);
            }
        }
        first = false;
    }
    found.map(|i| i + 1)
}

/// An application declared by a file of `connectors.d/applications/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileApplication {
    pub name: AppName,
    /// The file, as shown (the origin of its versions).
    pub file: String,
    pub source: String,
    pub hash: String,
}

/// SHA-256 hex of a document's text.
pub fn source_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Loads `applications/*.yaml|*.yml|*.json`: one application per file,
/// named after the file (`lamp.yaml` declares `lamp`). Errors name the file
/// and line; a bad file is skipped, the others load.
pub fn load_application_files(dir: &Path) -> (Vec<FileApplication>, Vec<String>) {
    let mut out: Vec<FileApplication> = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (out, errors),
        Err(e) => return (out, vec![format!("{}: cannot read directory: {e}", dir.display())]),
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    files.sort();
    for f in files {
        let shown = f.display().to_string();
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = match AppName::parse(stem) {
            Ok(n) => n,
            Err(e) => {
                errors.push(format!("{shown}: the file name gives the application's name: {e}"));
                continue;
            }
        };
        if let Some(first) = out.iter().find(|a| a.name == name) {
            errors.push(format!("{shown}: application '{name}' is already declared by {}", first.file));
            continue;
        }
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{shown}: cannot read file: {e}"));
                continue;
            }
        };
        match AppDoc::parse_new(&text) {
            Ok(_) => out.push(FileApplication { name, file: shown, hash: source_hash(&text), source: text }),
            Err(errs) => {
                for e in errs {
                    match e.line {
                        Some(l) => errors.push(format!("{shown}:{l}: {e}")),
                        None => errors.push(format!("{shown}: {e}")),
                    }
                }
            }
        }
    }
    (out, errors)
}

/// Stores every file's application as a version (nothing new when its
/// text is that of the latest version). The errors, one per failed file.
pub async fn store_file_applications(store: &Store, apps: &[FileApplication]) -> Vec<String> {
    let mut errors = Vec::new();
    for a in apps {
        match store.put_application(a.name.as_str(), &a.source, &a.hash, &a.file, None).await {
            Ok((row, true)) => {
                tracing::info!(application = %a.name, version = row.version, file = %a.file, "application version stored from file")
            }
            Ok((_, false)) => {}
            Err(e) => errors.push(format!("{}: cannot store application '{}': {e}", a.file, a.name)),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_paths() {
        let src = "nodes:\n  db:\n    image: x\n  web:\n    image: y\n    depends_on: [db]\n    inputs:\n      - name: a\n      - {name: b}\nmappings:\n  web.a: db.hostname\n";
        assert_eq!(line_of(src, "nodes.web.depends_on[0]"), Some(6));
        assert_eq!(line_of(src, "nodes.web.image"), Some(5));
        assert_eq!(line_of(src, "nodes.db.image"), Some(3));
        assert_eq!(line_of(src, "nodes.web.inputs[1].name"), Some(9));
        assert_eq!(line_of(src, "nodes.web.inputs[0].name"), Some(8));
        assert_eq!(line_of(src, "mappings.web.a"), Some(11));
        assert_eq!(line_of(src, "nodes.db.depends_on"), Some(2), "falls back to the deepest line found");
    }

    #[test]
    fn durations_format() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
    }
}
