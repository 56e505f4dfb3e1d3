//! The connector parameters written in the docs agree with what the
//! connectors declare (`crates/connector-*/src/kind.rs`, one source):
//!
//! * README.md's tables of kinds and parameters, between the
//!   `<!-- BEGIN generated: ... -->` and `<!-- END generated: ... -->`
//!   markers, are rendered from the declarations and must match exactly;
//!   `CLOUDBROKER_BLESS=1 cargo nextest run -p cloudbroker --test docs`
//!   rewrites them (review the diff).
//! * docs/connectors-<kind>.md's parameter tables name every declared
//!   parameter of the kind, and no other, with the declared default.
//! * connectors.d/*.conf and deploy/kubernetes/configmap-connectors.yaml
//!   name only declared parameters; the shipped connectors.d documents every
//!   parameter of every kind, and a comment's "Default: X" is the declared default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_connector_api::params::{ConnectorKind, ParamSpec, COMMON};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kinds() -> Vec<ConnectorKind> {
    cloudbroker::connectors().kinds()
}

fn kind(name: &str) -> ConnectorKind {
    cloudbroker::connectors().kind(name).unwrap()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn default_cell(spec: &ParamSpec) -> String {
    match (spec.required, spec.default) {
        (true, _) => "required".into(),
        (false, Some(d)) => format!("`{d}`"),
        (false, None) => "unset".into(),
    }
}

/// The kinds table: name, what it is, whether users need credentials.
fn kinds_table() -> String {
    let mut out = String::from("| kind | what it is | users' own cloud credentials |\n|---|---|---|\n");
    for k in kinds() {
        let spec = k.spec();
        out.push_str(&format!("| `{}` | {} | {} |\n", k, cell(spec.summary), if spec.needs_credentials { "needed" } else { "not needed" }));
    }
    out
}

/// The parameters table: the common ones once (`all`), then each kind's
/// own, a parameter declared alike by several kinds on one row.
fn params_table() -> String {
    let kinds = kinds();
    let mut out = String::from("| kind | parameter | default | meaning |\n|---|---|---|---|\n");
    let common: Vec<&ParamSpec> = COMMON.iter().filter(|c| kinds.iter().all(|k| k.param(c.name).is_some())).collect();
    for c in &common {
        out.push_str(&format!("| all | `{}` | {} | {} |\n", c.name, default_cell(c), cell(c.description)));
    }
    let mut done: Vec<(ConnectorKind, &str)> = Vec::new();
    for k in &kinds {
        for s in k.params() {
            if common.iter().any(|c| c.name == s.name) || done.contains(&(*k, s.name)) {
                continue;
            }
            let same = |o: &ParamSpec| {
                o.name == s.name
                    && o.description == s.description
                    && o.default == s.default
                    && o.required == s.required
                    && format!("{:?}", o.ty) == format!("{:?}", s.ty)
            };
            let alike: Vec<ConnectorKind> = kinds.iter().copied().filter(|o| o.param(s.name).is_some_and(same)).collect();
            for o in &alike {
                done.push((*o, s.name));
            }
            let names: Vec<&str> = alike.iter().map(|o| o.as_str()).collect();
            out.push_str(&format!("| {} | `{}` | {} | {} |\n", names.join(", "), s.name, default_cell(s), cell(s.description)));
        }
    }
    out
}

/// Replaces (or checks) the text between the markers of `section`.
fn generated(text: &str, section: &str, body: &str) -> Result<String, String> {
    let begin = format!("<!-- BEGIN generated: {section} -->\n");
    let end = format!("<!-- END generated: {section} -->");
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return Err(format!("README.md lacks the markers {begin:?} and {end:?}"));
    };
    let start = b + begin.len();
    Ok(format!("{}{}{}", &text[..start], body, &text[e..]))
}

#[test]
fn readme_tables_are_rendered_from_the_declarations() {
    let path = root().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut want = generated(&text, "connector kinds", &kinds_table()).unwrap();
    want = generated(&want, "connector parameters", &params_table()).unwrap();
    if want == text {
        return;
    }
    if std::env::var_os("CLOUDBROKER_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let diff: Vec<String> = text.lines().zip(want.lines()).filter(|(a, b)| a != b).take(10).map(|(a, b)| format!("- {a}\n+ {b}")).collect();
    panic!(
        "README.md's connector tables differ from what the connectors declare (crates/connector-*/src/kind.rs); \
         rewrite them with `CLOUDBROKER_BLESS=1 cargo nextest run -p cloudbroker --test docs` and review the diff:\n{}{}",
        diff.join("\n"),
        if text.lines().count() != want.lines().count() { "\n(and the line counts differ)" } else { "" }
    );
}

/// `| `name` | default | ... |` rows of the first table under "## Parameters"
/// or the first table whose header starts with `| parameter |`.
fn doc_table(text: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("| parameter |") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells[0].starts_with("---") {
                continue;
            }
            rows.insert(cells[0].trim_matches('`').to_string(), cells[1].trim_matches('`').to_string());
        }
    }
    rows
}

#[test]
fn connector_guides_list_every_declared_parameter_with_its_default() {
    let mut problems = Vec::new();
    for (file, kind_name) in [("docs/connectors-ec2.md", "ec2"), ("docs/connectors-ec2query.md", "ec2query")] {
        let k = kind(kind_name);
        let rows = doc_table(&std::fs::read_to_string(root().join(file)).unwrap());
        for s in k.params() {
            match rows.get(s.name) {
                None => problems.push(format!("{file}: parameter `{}` of {kind_name} is not in the table", s.name)),
                Some(d) => {
                    let ok = match (s.required, s.default) {
                        (true, _) => d == "(required)",
                        (false, Some(v)) => d == v,
                        (false, None) => !d.chars().next().is_some_and(|c| c.is_ascii_digit()) && !d.starts_with('`'),
                    };
                    if !ok {
                        problems.push(format!("{file}: `{}` says default {d:?}; declared: {}", s.name, default_cell(s)));
                    }
                }
            }
        }
        for name in rows.keys() {
            if k.param(name).is_none() {
                problems.push(format!("{file}: `{name}` is not a parameter of {kind_name}"));
            }
        }
    }
    assert!(problems.is_empty(), "the guides disagree with the declarations (crates/connector-*/src/kind.rs):\n{}", problems.join("\n"));
}

/// `<instance>.<param>` keys of a conf text (commented out or not), with
/// the line before each (its comment), and the declared instances.
/// (instance, parameter, the comment line before it).
type ConfKey = (String, String, String);

fn conf_keys(text: &str) -> (BTreeMap<String, String>, Vec<ConfKey>) {
    let mut decls = BTreeMap::new();
    let mut keys = Vec::new();
    let mut previous = String::new();
    for raw in text.lines() {
        let line = raw.trim().trim_start_matches('#').trim();
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if k == "cloud.connector.class" {
                for e in v.split(',') {
                    let (i, kd) = e.split_once(':').unwrap_or((e, e));
                    decls.insert(i.trim().to_string(), kd.trim().to_string());
                }
            } else if let Some((inst, param)) = k.split_once('.') {
                if !k.contains(' ') {
                    keys.push((inst.to_string(), param.to_string(), previous.clone()));
                }
            }
        }
        previous = line.to_string();
    }
    (decls, keys)
}

#[test]
fn shipped_conf_files_use_declared_parameters_and_defaults() {
    let mut problems = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut dir: Vec<PathBuf> = std::fs::read_dir(root().join("connectors.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    dir.sort();
    for p in &dir {
        texts.push((p.strip_prefix(root()).unwrap().display().to_string(), std::fs::read_to_string(p).unwrap()));
    }
    let shipped = texts.len();
    texts.push((
        "deploy/kubernetes/configmap-connectors.yaml".into(),
        std::fs::read_to_string(root().join("deploy/kubernetes/configmap-connectors.yaml")).unwrap(),
    ));
    let mut documented: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, (file, text)) in texts.iter().enumerate() {
        let (decls, keys) = conf_keys(text);
        for (inst, param, comment) in keys {
            let Some(kind_name) = decls.get(&inst) else { continue };
            let k = kind(kind_name);
            let Some(spec) = k.param(&param) else {
                problems.push(format!("{file}: `{inst}.{param}` is not a parameter of {kind_name}"));
                continue;
            };
            if i < shipped {
                documented.entry(kind_name.clone()).or_default().push(param.clone());
            }
            // "Default: 20." / "Default 2000." in the comment line above.
            let at = comment.match_indices("Default").map(|(i, _)| i).find(|&i| i == 0 || comment[..i].ends_with(". "));
            // A sentence "Default: X." or "Default X." (not "Default per-user quota ...").
            let sentence = at.map(|i| comment[i + "Default".len()..].trim_start_matches(':').split(". ").next().unwrap_or("").trim());
            if let Some(sentence) = sentence.filter(|s| !s.contains(' ')) {
                let said = sentence.trim_end_matches('.');
                let declared = spec.default.unwrap_or("");
                if declared != said {
                    problems
                        .push(format!("{file}: the comment of `{inst}.{param}` says default {said:?}; declared: {}", default_cell(spec)));
                }
            }
        }
    }
    for k in kinds() {
        for s in k.params() {
            if !documented.get(k.as_str()).is_some_and(|d| d.iter().any(|p| p == s.name)) {
                problems.push(format!("connectors.d/: no example documents `{}` of {k}", s.name));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the conf examples disagree with the declarations (crates/connector-*/src/kind.rs):\n{}",
        problems.join("\n")
    );
}
