//! The checked-in corpus of malformed `connectors.d` files: each
//! `tests/corpus/conf/NAME.conf` is loaded alone, as the broker loads a
//! directory, and what comes out (every error with its file and line, the
//! instances that still load, those left out) must equal
//! `NAME.expected` exactly. A message that changes is a visible change of the
//! operator-facing contract: rerun with `CLOUDBROKER_BLESS=1` to rewrite the
//! expectations, and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use cloudbroker_connector_api::conf::load_dir;
use cloudbroker_connector_api::Connectors;
use std::path::{Path, PathBuf};

/// The three kinds the binary ships, with their own parameters.
fn kinds() -> Connectors {
    Connectors::new()
        .with(cloudbroker_connector_ec2::Ec2Builder)
        .with(cloudbroker_connector_ec2query::Ec2QueryBuilder)
        .with(cloudbroker_connector_sandbox::SandboxBuilder)
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/conf")
}

/// What loading `file` alone reports, with the temporary directory's path
/// replaced by nothing so that the text names the file as an operator sees it.
fn outcome(file: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let name = file.file_name().unwrap();
    std::fs::copy(file, dir.path().join(name)).unwrap();
    let load = load_dir(dir.path(), &kinds());
    let prefix = format!("{}/", dir.path().display());
    let mut out = String::new();
    for e in &load.errors {
        out.push_str(&format!("error: {}\n", e.to_string().replace(&prefix, "")));
    }
    let loaded: Vec<String> = load.instances.iter().map(|i| format!("{}:{}", i.declaration.instance, i.declaration.kind)).collect();
    out.push_str(&format!("loaded: {}\n", loaded.join(", ")));
    out.push_str(&format!("rejected: {}\n", load.rejected.join(", ")));
    out
}

#[test]
fn every_malformed_file_gets_its_exact_errors() {
    let bless = std::env::var_os("CLOUDBROKER_BLESS").is_some();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus holds {} files", files.len());
    let mut mismatches = Vec::new();
    for f in &files {
        let got = outcome(f);
        // A malformed file must say what is wrong, with its file and line.
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(got.contains(&format!("error: {name}:")), "{name} loaded without an error:\n{got}");
        let expected_path = f.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if got != expected {
            mismatches.push(format!("{name}\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn a_good_file_next_to_a_bad_one_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(corpus().join("bad-values.conf"), dir.path().join("20-bad.conf")).unwrap();
    std::fs::write(dir.path().join("10-good.conf"), "cloud.connector.class = good:sandbox\ngood.quota.vm = 4\n").unwrap();
    let load = load_dir(dir.path(), &kinds());
    let names: Vec<String> = load.instances.iter().map(|i| i.declaration.instance.to_string()).collect();
    assert_eq!(names, ["good"], "errors: {:?}", load.errors);
    assert_eq!(load.rejected, ["a"]);
    assert!(load.errors.iter().all(|e| e.location.file.ends_with("20-bad.conf")), "{:?}", load.errors);
}
