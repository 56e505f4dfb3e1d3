//! Applications: every validation rule of the document (each error naming
//! its exact path, a cycle named, all errors at once), versions (an
//! identical save makes none, a change makes N+1, a published version never
//! changes), who may save, and the drop-in files (a bad file reported as
//! file:line while a good one loads; a reload picks up a new or changed
//! file; file-declared applications are read-only), on both backends.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cloudbroker_core::deployments::{AppDoc, AppError, AppName, ReadyWhen};
use cloudbroker_core::domain::{ProjectName, ProjectRole, UserName};
use cloudbroker_core::{Actor, Broker, ServiceError};

const LAMP: &str = include_str!("../../../connectors.d/applications/lamp.yaml");

fn errors(text: &str) -> Vec<AppError> {
    match AppDoc::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// The errors as `path: message` lines.
fn shown(text: &str) -> Vec<String> {
    errors(text).iter().map(ToString::to_string).collect()
}

fn has(text: &str, expected: &str) {
    let all = shown(text);
    assert!(all.iter().any(|e| e == expected), "expected `{expected}` among {all:#?}");
}

fn has_prefix(text: &str, path: &str) {
    let all = shown(text);
    assert!(all.iter().any(|e| e.starts_with(&format!("{path}: "))), "expected an error at `{path}` among {all:#?}");
}

#[test]
fn the_shipped_example_is_valid() {
    let doc = AppDoc::parse(LAMP).expect("lamp.yaml parses");
    assert_eq!(doc.nodes.len(), 2);
    assert_eq!(doc.nodes["web"].multiplicity, 2);
    assert_eq!(doc.nodes["web"].depends_on, vec!["db".to_string()]);
    assert_eq!(doc.nodes["db"].ready_when, ReadyWhen::Running);
    assert!(doc.nodes["db"].inputs[0].secret);
    assert_eq!(doc.nodes["db"].timeout, Some(std::time::Duration::from_secs(600)));
    assert_eq!(doc.timeout, Some(std::time::Duration::from_secs(1800)));
    assert_eq!(doc.mapping_of("web", "db_host"), Some(("db", "hostname")));
    assert_eq!(doc.mapping_of("web", "db_port"), Some(("db", "port")));
    assert_eq!(doc.mapping_of("web", "nothing"), None);
    assert_eq!(doc.launch_order(), vec!["db", "web"]);
    assert_eq!(doc.inputs[0].default.as_deref(), Some("Hello"));
    assert_eq!(doc.nodes["web"].inputs[1].default.as_deref(), Some("5432"));
}

#[test]
fn json_is_accepted_and_defaults_apply() {
    let doc = AppDoc::parse(
        r#"{"nodes": {"a": {"image": "ubuntu-22.04"}, "b": {"image": "debian-12", "depends_on": ["a"], "multiplicity": 0}}}"#,
    )
    .expect("JSON parses");
    assert_eq!(doc.nodes["a"].multiplicity, 1);
    assert_eq!(doc.nodes["a"].ready_when, ReadyWhen::Client);
    assert_eq!(doc.nodes["b"].multiplicity, 0);
    assert_eq!(doc.effective_timeout(), std::time::Duration::from_secs(1800));
    assert_eq!(doc.launch_order(), vec!["a", "b"]);
}

#[test]
fn names_follow_the_rule() {
    has_prefix("nodes:\n  Web:\n    image: x\n", "nodes.Web");
    has_prefix("nodes:\n  a23456789012345678901234567890123:\n    image: x\n", "nodes.a23456789012345678901234567890123");
    has_prefix("nodes:\n  a:\n    image: x\n    inputs:\n      - name: 9lives\n", "nodes.a.inputs[0].name");
    has_prefix("inputs:\n  - name: Bad-Name\nnodes:\n  a:\n    image: x\n", "inputs[0].name");
    has_prefix("nodes:\n  a:\n    image: x\n    outputs:\n      - name: port\n      - name: port\n", "nodes.a.outputs[1].name");
    has(
        "nodes:\n  a:\n    image: x\n    outputs:\n      - name: hostname\n",
        "nodes.a.outputs[0].name: 'hostname' is a built-in output: the broker publishes it",
    );
    has_prefix("nodes:\n  a:\n    image: x\n    inputs:\n      - description: nameless\n", "nodes.a.inputs[0].name");
    has_prefix("nodes:\n  a:\n    image: Not An Image\n", "nodes.a.image");
    has_prefix("nodes:\n  a:\n    multiplicity: 1\n", "nodes.a.image");
    has_prefix("nodes:\n  a:\n    image: x\n    instances: [Bad_Instance]\n", "nodes.a.instances[0]");
    assert!(AppName::parse("lamp-2_b").is_ok());
    assert!(AppName::parse("Lamp").is_err());
    assert!(AppName::parse(&"a".repeat(65)).is_err());
}

#[test]
fn node_counts_and_multiplicities_are_bounded() {
    has("description: none\n", "nodes: missing: an application has at least one node");
    has("nodes: {}\n", "nodes: an application has at least one node");
    let many: String = (0..21).map(|i| format!("  n{i}:\n    image: x\n    multiplicity: 0\n")).collect();
    has(&format!("nodes:\n{many}"), "nodes: 21 nodes; at most 20");
    has("nodes:\n  a:\n    image: x\n    multiplicity: 101\n", "nodes.a.multiplicity: 101: must be a whole number from 0 to 100");
    has_prefix("nodes:\n  a:\n    image: x\n    multiplicity: -1\n", "nodes.a.multiplicity");
    has_prefix("nodes:\n  a:\n    image: x\n    multiplicity: two\n", "nodes.a.multiplicity");
    has(
        "nodes:\n  a:\n    image: x\n    multiplicity: 60\n  b:\n    image: x\n    multiplicity: 41\n",
        "nodes: 101 VMs in all (the sum of the multiplicities); at most 100",
    );
    assert!(AppDoc::parse("nodes:\n  a:\n    image: x\n    multiplicity: 60\n  b:\n    image: x\n    multiplicity: 40\n").is_ok());
}

#[test]
fn dependencies_name_nodes_and_form_no_cycle() {
    has("nodes:\n  web:\n    image: x\n    depends_on: [dbx]\n", "nodes.web.depends_on[0]: no node 'dbx'");
    has(
        "nodes:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
        "nodes.a.depends_on: dependency cycle: a -> b -> a",
    );
    has(
        "nodes:\n  a:\n    image: x\n    depends_on: [c]\n  b:\n    image: x\n    depends_on: [a]\n  c:\n    image: x\n    depends_on: [b]\n",
        "nodes.a.depends_on: dependency cycle: a -> c -> b -> a",
    );
    has("nodes:\n  a:\n    image: x\n    depends_on: [a]\n", "nodes.a.depends_on: dependency cycle: a -> a");
    has_prefix("nodes:\n  a:\n    image: x\n  b:\n    image: x\n    depends_on: [a, a]\n", "nodes.b.depends_on[1]");
}

#[test]
fn mappings_join_an_input_to_an_output() {
    let base = "nodes:\n  db:\n    image: x\n    outputs:\n      - name: port\n  web:\n    image: x\n    inputs:\n      - name: db_host\n      - name: db_port\n";
    assert!(AppDoc::parse(&format!("{base}mappings:\n  web.db_host: db.hostname\n  web.db_port: db.port\n")).is_ok());
    assert!(AppDoc::parse(&format!("{base}mappings:\n  web.db_host: db.instanceid\n")).is_ok(), "built-in outputs");
    has(&format!("{base}mappings:\n  web.db_hostx: db.hostname\n"), "mappings.web.db_hostx: node 'web' has no input 'db_hostx'");
    has(&format!("{base}mappings:\n  webx.db_host: db.hostname\n"), "mappings.webx.db_host: no node 'webx'");
    has(
        &format!("{base}mappings:\n  web.db_host: db.hostnam\n"),
        "mappings.web.db_host: node 'db' has no output 'hostnam' (it has: port, hostname, instanceid)",
    );
    has(&format!("{base}mappings:\n  web.db_host: dbx.hostname\n"), "mappings.web.db_host: 'dbx.hostname': no node 'dbx'");
    has_prefix(&format!("{base}mappings:\n  web: db.hostname\n"), "mappings.web");
    // An input appears in at most one mapping: a second key for it is refused.
    let dup = shown(&format!("{base}mappings:\n  web.db_host: db.hostname\n  web.db_host: db.port\n"));
    assert_eq!(dup.len(), 1, "{dup:?}");
    assert!(dup[0].contains("duplicate"), "{dup:?}");
}

#[test]
fn sizes_are_bounded() {
    let big = "x".repeat(16 * 1024 + 1);
    has(&format!("nodes:\n  a:\n    image: x\n    user_data: \"{big}\"\n"), "nodes.a.user_data: is 16385 bytes; at most 16384 (16 KiB)");
    let ok = "x".repeat(16 * 1024);
    assert!(AppDoc::parse(&format!("nodes:\n  a:\n    image: x\n    user_data: \"{ok}\"\n")).is_ok());
    has(
        &format!("description: \"{}\"\nnodes:\n  a:\n    image: x\n", "d".repeat(1001)),
        "description: is 1001 characters long; at most 1000",
    );
    has_prefix(
        &format!("nodes:\n  a:\n    image: x\n    inputs:\n      - name: p\n        description: \"{}\"\n", "d".repeat(1001)),
        "nodes.a.inputs[0].description",
    );
    let huge = format!("description: x\nnodes:\n  a:\n    image: x\n# {}\n", "c".repeat(256 * 1024));
    let e = shown(&huge);
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("at most 262144"), "{e:?}");
}

#[test]
fn unknown_fields_values_and_durations_are_refused() {
    has("nodes:\n  a:\n    imag: x\n    image: x\n", "nodes.a.imag: unknown field 'imag'; expected one of: image, instance_type, multiplicity, instances, ready_when, timeout, depends_on, inputs, outputs, user_data");
    has_prefix("nodes:\n  a:\n    image: x\nnode: {}\n", "node");
    has_prefix("nodes:\n  a:\n    image: x\n    outputs:\n      - {name: p, default: x}\n", "nodes.a.outputs[0].default");
    has(
        "nodes:\n  a:\n    image: x\n    ready_when: booted\n",
        "nodes.a.ready_when: 'booted': must be client (the VM calls `cloudbroker-client ready`) or running",
    );
    has_prefix("nodes:\n  a:\n    image: x\n    timeout: 10 minutes\n", "nodes.a.timeout");
    has_prefix("nodes:\n  a:\n    image: x\ntimeout: 30\n", "timeout");
    has_prefix("nodes:\n  a:\n    image: x\n    inputs:\n      - {name: p, secret: maybe}\n", "nodes.a.inputs[0].secret");
    let e = errors("- just\n- a list\n");
    assert_eq!((e.len(), e[0].path.as_str()), (1, ""), "{e:?}");
    assert!(e[0].message.contains("must be a mapping"), "{e:?}");
    // Syntax errors come with their line.
    let e = errors("nodes:\n  a:\n    image: x\n  b: [unclosed\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].line.is_some(), "{e:?}");
}

#[test]
fn a_new_version_gives_no_secret_a_default() {
    // Every signed-in user reads documents: a secret's default would be
    // shown to all. Saved and file-loaded versions refuse it, naming the
    // path and line; a stored version that has one still reads.
    let text = "inputs:\n  - {name: token, secret: true}\nnodes:\n  db:\n    image: x\n    inputs:\n      - name: pw\n        secret: true\n        default: hunter2\n      - {name: port, default: \"5432\"}\n";
    let e = match AppDoc::parse_new(text) {
        Ok(_) => panic!("a secret default was accepted"),
        Err(e) => e,
    };
    let all: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].starts_with("nodes.db.inputs[0].default: secret input 'pw' cannot have a default"), "{all:#?}");
    assert_eq!(e[0].line, Some(9), "the default's own line: {e:?}");
    assert!(AppDoc::parse(text).is_ok(), "stored versions keep reading");
    assert!(AppDoc::parse_new(&text.replace("        default: hunter2\n", "")).is_ok());
}

#[test]
fn every_error_is_reported_at_once_with_its_line() {
    let text = "\
description: three mistakes
nodes:
  db:
    image: ubuntu-22.04
    multiplicity: 500
  web:
    image: ubuntu-22.04
    depends_on: [dbx]
    colour: blue
mappings:
  web.db_host: db.hostname
";
    let e = errors(text);
    let all: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(e.len(), 4, "{all:#?}");
    let line = |path: &str| e.iter().find(|x| x.path == path).unwrap_or_else(|| panic!("no error at {path}: {all:#?}")).line;
    assert_eq!(line("nodes.db.multiplicity"), Some(5));
    assert_eq!(line("nodes.web.depends_on[0]"), Some(8));
    assert_eq!(line("nodes.web.colour"), Some(9));
    assert_eq!(line("mappings.web.db_host"), Some(11));
    assert!(all.contains(&"mappings.web.db_host: node 'web' has no input 'db_host'".to_string()), "{all:#?}");
}

fn user(name: &str) -> Actor {
    Actor::new(UserName::parse(name).unwrap(), false)
}

fn admin() -> Actor {
    Actor::new(UserName::parse("super").unwrap(), true)
}

fn name(s: &str) -> AppName {
    AppName::parse(s).unwrap()
}

const V1: &str = "nodes:\n  a:\n    image: ubuntu-22.04\n";
const V2: &str = "nodes:\n  a:\n    image: ubuntu-22.04\n    multiplicity: 2\n";

broker_test!(versions_are_immutable_and_made_only_by_changes, |b: Broker| async move {
    let alice = user("alice");
    let apps = &b.applications;
    let n = name("web-app");
    let v = apps.save(&alice, &n, V1).await.unwrap();
    assert_eq!(v.version, 1);
    assert_eq!(v.origin, "saved by alice");
    assert_eq!(v.created_by.as_deref(), Some("alice"));
    // The same text: no new version.
    assert_eq!(apps.save(&alice, &n, V1).await.unwrap().version, 1);
    assert_eq!(apps.versions(&alice, &n).await.unwrap().len(), 1);
    // A change: N+1, and version 1 is still what it was.
    let v2 = apps.save(&alice, &n, V2).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.doc.nodes["a"].multiplicity, 2);
    let old = apps.get(&alice, &n, Some(1)).await.unwrap();
    assert_eq!(old.source, V1);
    assert_eq!(old.doc.nodes["a"].multiplicity, 1);
    assert_eq!(apps.get(&alice, &n, None).await.unwrap().version, 2);
    // Back to the first text: a new version again (versions only grow).
    assert_eq!(apps.save(&alice, &n, V1).await.unwrap().version, 3);
    let versions = apps.versions(&alice, &n).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(matches!(apps.get(&alice, &n, Some(9)).await, Err(ServiceError::NotFound(_))));
    // Each new version is audited once, by its author (the unchanged save is not).
    let log = b.audit.list(&Actor::system(), Default::default(), Default::default()).await.unwrap();
    let saved: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.action == "application.change" && e.target == "web-app")
        .map(|e| (e.actor.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(saved.len(), 3, "{saved:?}");
    assert!(saved.iter().all(|(who, _)| *who == "alice"), "{saved:?}");
    assert!(saved.iter().any(|(_, d)| *d == "version 3 saved"), "{saved:?}");
    // Listed with its latest version, read by anyone signed in.
    let list = apps.list(&user("bob")).await.unwrap();
    let item = list.iter().find(|a| a.name == n).expect("listed");
    assert_eq!((item.version, item.nodes.clone()), (3, vec!["a".to_string()]));
    // An invalid document: every error, nothing stored.
    match apps.save(&alice, &n, "nodes:\n  a:\n    image: x\n    depends_on: [zz]\n    multiplicity: 900\n").await {
        Err(ServiceError::InvalidDocument(errs)) => assert_eq!(errs.len(), 2, "{errs:?}"),
        other => panic!("expected InvalidDocument, got {other:?}"),
    }
    assert_eq!(apps.get(&alice, &n, None).await.unwrap().version, 3);
    // A secret with a default is refused at save (a version everyone reads).
    let secret = "nodes:\n  a:\n    image: x\n    inputs:\n      - {name: pw, secret: true, default: s3cret}\n";
    match apps.save(&alice, &n, secret).await {
        Err(ServiceError::InvalidDocument(errs)) => {
            assert_eq!(errs.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), vec!["nodes.a.inputs[0].default"], "{errs:?}")
        }
        other => panic!("expected InvalidDocument, got {other:?}"),
    }
    assert_eq!(apps.get(&alice, &n, None).await.unwrap().version, 3);
});

broker_test!(only_members_save_and_only_the_creator_or_an_admin_changes, |b: Broker| async move {
    let apps = &b.applications;
    let n = name("shared");
    apps.save(&user("alice"), &n, V1).await.unwrap();
    // Another user may not add versions, nor delete.
    assert!(matches!(apps.save(&user("bob"), &n, V2).await, Err(ServiceError::Forbidden(_))));
    assert!(matches!(apps.delete(&user("bob"), &n).await, Err(ServiceError::Forbidden(_))));
    // A viewer saves nothing, even a new name.
    let viewer = user("carol").in_project(ProjectName::parse("team").unwrap(), ProjectRole::Viewer);
    assert!(matches!(apps.save(&viewer, &name("mine"), V1).await, Err(ServiceError::Forbidden(_))));
    // An admin may.
    assert_eq!(apps.save(&admin(), &n, V2).await.unwrap().version, 2);
    // Deleted: gone from the list and by name; a version by number stays readable.
    apps.delete(&user("alice"), &n).await.unwrap();
    assert!(matches!(apps.get(&user("alice"), &n, None).await, Err(ServiceError::NotFound(_))));
    assert!(apps.list(&admin()).await.unwrap().iter().all(|a| a.name != n));
    assert_eq!(apps.get(&user("alice"), &n, Some(2)).await.unwrap().source, V2);
    assert!(matches!(apps.delete(&user("alice"), &n).await, Err(ServiceError::NotFound(_))));
    // The name may be taken again: versions go on from the last one.
    let again = apps.save(&user("bob"), &n, V1).await.unwrap();
    assert_eq!((again.version, again.created_by.as_deref()), (3, Some("bob")));
    assert!(matches!(apps.save(&user("alice"), &n, V2).await, Err(ServiceError::Forbidden(_))));
});

const BAD_FILE: &str = "\
description: broken
nodes:
  web:
    image: ubuntu-22.04
    depends_on: [dbx]
";

async fn files_load_report_and_reload(b: Broker, dir: std::path::PathBuf) {
    let apps_dir = dir.join("connectors.d").join("applications");
    std::fs::create_dir_all(&apps_dir).unwrap();
    std::fs::write(apps_dir.join("lamp.yaml"), LAMP).unwrap();
    std::fs::write(apps_dir.join("broken.yml"), BAD_FILE).unwrap();
    std::fs::write(apps_dir.join("notes.txt"), "not an application").unwrap();
    std::fs::write(
        apps_dir.join("leaky.yaml"),
        "nodes:\n  a:\n    image: x\n    inputs:\n      - {name: pw, secret: true, default: s3cret}\n",
    )
    .unwrap();
    let snap = b.registry.reload().await.unwrap();
    let leaky = apps_dir.join("leaky.yaml").display().to_string();
    assert!(
        snap.file_errors
            .iter()
            .any(|e| e.starts_with(&format!("{leaky}:5: nodes.a.inputs[0].default: secret input 'pw' cannot have a default"))),
        "{:#?}",
        snap.file_errors
    );
    assert!(matches!(b.applications.get(&user("alice"), &name("leaky"), None).await, Err(ServiceError::NotFound(_))));
    std::fs::remove_file(apps_dir.join("leaky.yaml")).unwrap();
    let bad = apps_dir.join("broken.yml").display().to_string();
    assert!(snap.file_errors.iter().any(|e| e == &format!("{bad}:5: nodes.web.depends_on[0]: no node 'dbx'")), "{:#?}", snap.file_errors);
    // The good file loaded and is stored as version 1, with its file as origin.
    let lamp = b.applications.get(&user("alice"), &name("lamp"), None).await.unwrap();
    let file = apps_dir.join("lamp.yaml").display().to_string();
    assert_eq!((lamp.version, lamp.origin.as_str(), lamp.source.as_str()), (1, file.as_str(), LAMP));
    assert!(matches!(b.applications.get(&user("alice"), &name("broken"), None).await, Err(ServiceError::NotFound(_))));
    let listed = b.applications.list(&user("alice")).await.unwrap();
    assert_eq!(listed.iter().find(|a| a.name == name("lamp")).unwrap().declared_in.as_deref(), Some(file.as_str()));
    // Read-only through the services.
    match b.applications.save(&admin(), &name("lamp"), V1).await {
        Err(ServiceError::Conflict(m)) => assert!(m.contains(&file) && m.contains("edit the file"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(b.applications.delete(&admin(), &name("lamp")).await, Err(ServiceError::Conflict(_))));
    // Reloading unchanged files makes no version; a changed file makes the next.
    b.registry.reload().await.unwrap();
    assert_eq!(b.applications.versions(&admin(), &name("lamp")).await.unwrap().len(), 1);
    std::fs::write(apps_dir.join("lamp.yaml"), LAMP.replace("multiplicity: 2", "multiplicity: 3")).unwrap();
    b.registry.reload().await.unwrap();
    let lamp2 = b.applications.get(&admin(), &name("lamp"), None).await.unwrap();
    assert_eq!((lamp2.version, lamp2.doc.nodes["web"].multiplicity), (2, 3));
    assert_eq!(b.applications.get(&admin(), &name("lamp"), Some(1)).await.unwrap().source, LAMP, "version 1 never changes");
    // A new file, and the broken one fixed: both picked up by a reload.
    std::fs::write(apps_dir.join("solo.json"), r#"{"nodes": {"one": {"image": "debian-12"}}}"#).unwrap();
    std::fs::write(apps_dir.join("broken.yml"), BAD_FILE.replace("dbx", "web2") + "  web2:\n    image: debian-12\n").unwrap();
    let snap = b.registry.reload().await.unwrap();
    assert!(snap.file_errors.iter().all(|e| !e.contains("applications")), "{:#?}", snap.file_errors);
    assert_eq!(b.applications.get(&admin(), &name("solo"), None).await.unwrap().version, 1);
    assert_eq!(b.applications.get(&admin(), &name("broken"), None).await.unwrap().doc.launch_order(), vec!["web2", "web"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_loaded_reported_and_reloaded_sqlite() {
    let t = common::TestBroker::sqlite().await;
    files_load_report_and_reload(t.broker.clone(), t.dir.path().to_path_buf()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_loaded_reported_and_reloaded_postgres() {
    if let Some(t) = common::TestBroker::postgres().await {
        files_load_report_and_reload(t.broker.clone(), t.dir.path().to_path_buf()).await;
    }
}
