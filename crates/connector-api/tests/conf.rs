//! The `connectors.d` loader and the `cloud.connector.class` parser with
//! the kinds the binary ships (their parameters are declared by the
//! connector crates, so these tests live outside the crate's unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_connector_api::params::ConnectorKind;
use cloudbroker_connector_api::Connectors;

const EC2: ConnectorKind = cloudbroker_connector_ec2::KIND;
const SANDBOX: ConnectorKind = cloudbroker_connector_sandbox::KIND;

/// The three kinds the binary ships, with their own parameters.
fn kinds() -> Connectors {
    Connectors::new()
        .with(cloudbroker_connector_ec2::Ec2Builder)
        .with(cloudbroker_connector_ec2query::Ec2QueryBuilder)
        .with(cloudbroker_connector_sandbox::SandboxBuilder)
}

use cloudbroker_connector_api::conf::*;
use cloudbroker_connector_api::decl::*;
use std::path::PathBuf;

fn load(files: &[(&str, &str)]) -> ConfLoad {
    let f: Vec<(PathBuf, String)> = files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
    load_texts(&f, &kinds())
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
    assert_eq!(i.declaration.kind, EC2);
    assert_eq!(i.params["region"].value.as_deref(), Some("eu-central-1"));
    assert_eq!(i.params["region"].location.line, 6);
    assert_eq!(i.params["quota.vm"].value, None, "empty means unset");
    assert_eq!(i.values().get_int(EC2, "max.iaas.workers"), Some(20));
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
    assert_eq!(l.instances[0].declaration.kind, SANDBOX);
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
    let l = load_dir(dir.path(), &kinds());
    assert!(l.is_clean());
    let names: Vec<_> = l.instances.iter().map(|i| i.declaration.instance.to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(l.files.len(), 2);
    assert!(load_dir(&dir.path().join("missing"), &kinds()).instances.is_empty());
}

// The `cloud.connector.class` parser.

fn names(d: &[Declaration]) -> Vec<String> {
    d.iter().map(|d| format!("{}:{}", d.instance, d.kind)).collect()
}

#[test]
fn parses_list_with_whitespace_and_empty_entries() {
    let (d, e) = parse_declarations("  ec2-eu-central-1:ec2 ,ec2-eu-west-1 : ec2,, one-lab:ec2query , ", &kinds());
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(names(&d), ["ec2-eu-central-1:ec2", "ec2-eu-west-1:ec2", "one-lab:ec2query"]);
}

#[test]
fn bare_kind_is_instance_of_itself() {
    let (d, e) = parse_declarations("ec2, sandbox", &kinds());
    assert!(e.is_empty());
    assert_eq!(names(&d), ["ec2:ec2", "sandbox:sandbox"]);
}

#[test]
fn empty_value_declares_nothing() {
    let (d, e) = parse_declarations(" , ,", &kinds());
    assert!(d.is_empty() && e.is_empty());
}

#[test]
fn unknown_kind_is_reported_and_good_entries_survive() {
    let (d, e) = parse_declarations("a:ec2, b:openstack, c:sandbox", &kinds());
    assert_eq!(names(&d), ["a:ec2", "c:sandbox"]);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].entry(), "b:openstack");
    assert!(e[0].to_string().contains("unknown connector kind 'openstack'"), "{}", e[0]);
}

#[test]
fn bare_unknown_kind() {
    let (d, e) = parse_declarations("azure", &kinds());
    assert!(d.is_empty());
    assert!(e[0].to_string().contains("unknown connector kind 'azure'"));
}

#[test]
fn bad_instance_name() {
    let (d, e) = parse_declarations("EC2_West:ec2, ok:ec2", &kinds());
    assert_eq!(names(&d), ["ok:ec2"]);
    assert!(e[0].to_string().contains("entry 'EC2_West:ec2'"));
    assert!(e[0].to_string().contains("not kebab-case"));
}

#[test]
fn duplicate_is_an_error_and_first_wins() {
    let (d, e) = parse_declarations("x:ec2, x:sandbox", &kinds());
    assert_eq!(names(&d), ["x:ec2"]);
    assert_eq!(e.len(), 1);
    assert!(matches!(&e[0], DeclError::Duplicate { instance, first, .. } if instance == "x" && first == "x:ec2"));
}

#[test]
fn malformed_entries() {
    for bad in [":ec2", "x:", "x:ec2:y"] {
        let (d, e) = parse_declarations(bad, &kinds());
        assert!(d.is_empty(), "{bad}");
        assert!(matches!(e[0], DeclError::Malformed { .. }), "{bad}: {:?}", e[0]);
    }
}

#[test]
fn render_round_trips() {
    let (d, _) = parse_declarations("a:ec2,b:sandbox", &kinds());
    assert_eq!(render_declarations(&d), "a:ec2, b:sandbox");
    assert_eq!(parse_declarations(&render_declarations(&d), &kinds()).0, d);
}
