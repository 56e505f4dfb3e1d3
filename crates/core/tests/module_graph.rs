//! The modules of `cloudbroker-core` form no loop: reading every file of
//! `src/` for its `crate::<module>` paths (comments left out; a path through
//! a re-export of `lib.rs`, such as `crate::Actor`, counts as a use of the
//! module it comes from), the graph of top-level modules (a directory
//! module such as `provisioning/` is one node with all its files) has no
//! cycle, so no two modules import each other, directly or through others.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without `//` comments (doc comments included: a doc link is no import).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split_once("//").map_or(l, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of everything `crate::` names in `code`,
/// expanding `crate::{a, b::c}` groups.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // e.g. `some_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if c == ',' && depth == 1 {
                    items.push(std::mem::take(&mut item));
                } else {
                    item.push(c);
                }
            }
            items.push(item);
            out.extend(items.iter().map(|i| ident_at(i.trim()).to_string()).filter(|i| !i.is_empty()));
        } else {
            out.push(ident_at(rest).to_string());
        }
    }
    out
}

/// `lib.rs`: the top-level modules, and what each root re-export comes from.
fn root(lib: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for line in code(lib).lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod ")) {
            modules.insert(ident_at(m).to_string());
        } else if let Some(u) = line.strip_prefix("pub use ") {
            // `pub use other_crate as name;`: another crate, a leaf here.
            let Some((module, names)) = u.split_once("::") else { continue };
            let names = names.trim_end_matches(';').trim_start_matches('{').trim_end_matches('}');
            for n in names.split(',') {
                let n = n.trim();
                let shown = n.rsplit(" as ").next().unwrap_or(n).trim();
                reexports.insert(shown.to_string(), module.to_string());
            }
        }
    }
    (modules, reexports)
}

/// The graph: top-level module -> the modules its files use.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (modules, reexports) = root(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        assert!(modules.contains(&module), "{} is not a module declared in lib.rs", rel.display());
        let text = std::fs::read_to_string(&f).expect("read");
        for used in crate_paths(&code(&text)) {
            let target = if modules.contains(&used) { used } else { reexports.get(&used).cloned().unwrap_or(used) };
            if target != module && modules.contains(&target) {
                g.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    g
}

/// A cycle of `g`, if any, as the list of its modules (first repeated last).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        mark: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        mark.insert(n.to_string(), Mark::Open);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match mark.get(m).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(m, g, mark, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        mark.insert(n.to_string(), Mark::Done);
        None
    }
    let mut mark = BTreeMap::new();
    for n in g.keys() {
        if mark.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(n, g, &mut mark, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_modules_of_core_form_no_loop() {
    let g = graph();
    if let Some(cycle) = find_cycle(&g) {
        let edges: Vec<String> =
            g.iter().map(|(m, uses)| format!("  {m} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
        panic!("modules of cloudbroker-core import each other: {}\nthe graph:\n{}", cycle.join(" -> "), edges.join("\n"));
    }
}

#[test]
fn the_reader_sees_uses_groups_and_reexports_and_finds_loops() {
    assert_eq!(crate_paths("use crate::{auth::Actor, error::{ServiceError, ServiceResult}};"), vec!["auth", "error"]);
    assert_eq!(crate_paths("let x = crate::domain::UserName::parse(s); other_crate::x();"), vec!["domain"]);
    assert_eq!(crate_paths(&code("/// see [`crate::vault`]\nuse crate::cache::KeyCache; // crate::identity")), vec!["cache"]);
    let (modules, reexports) = root("pub mod auth;\npub mod error;\npub use auth::Actor;\npub use error::{Resource, ServiceError};\n");
    assert_eq!(modules.len(), 2);
    assert_eq!(reexports.get("ServiceError").map(String::as_str), Some("error"));
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let dag: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".to_string(), BTreeSet::new())].into();
    assert_eq!(find_cycle(&dag), None);
}
