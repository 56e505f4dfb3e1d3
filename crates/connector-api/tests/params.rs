//! The parameters each shipped kind declares, checked against the generic
//! spec machinery of `params`, and kinds parsed against the registered builders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_connector_api::params::ConnectorKind;
use cloudbroker_connector_api::Connectors;

const EC2: ConnectorKind = cloudbroker_connector_ec2::KIND;
const EC2QUERY: ConnectorKind = cloudbroker_connector_ec2query::KIND;
const SANDBOX: ConnectorKind = cloudbroker_connector_sandbox::KIND;

/// The three kinds the binary ships, with their own parameters.
fn kinds() -> Connectors {
    Connectors::new()
        .with(cloudbroker_connector_ec2::Ec2Builder)
        .with(cloudbroker_connector_ec2query::Ec2QueryBuilder)
        .with(cloudbroker_connector_sandbox::SandboxBuilder)
}

use cloudbroker_connector_api::names::NameError;
use cloudbroker_connector_api::params::*;

fn spec(kind: ConnectorKind, name: &str) -> &'static ParamSpec {
    kind.param(name).unwrap_or_else(|| panic!("{name}"))
}

#[test]
fn every_kind_declares_common_params() {
    for k in kinds().kinds() {
        for n in ["quota.vm", "max.iaas.workers", "connection.policy"] {
            assert!(k.param(n).is_some(), "{k} lacks {n}");
        }
    }
    assert!(spec(EC2, "region").required);
    assert!(spec(EC2QUERY, "endpoint").required);
}

#[test]
fn validates_types() {
    let w = spec(EC2, "max.iaas.workers");
    assert_eq!(validate_value(w, "20"), Ok(Some("20".into())));
    assert_eq!(validate_value(w, "abc"), Err("'abc' is not an integer".into()));
    assert!(validate_value(w, "0").unwrap_err().contains("out of range"));
    assert_eq!(validate_value(spec(EC2, "quota.vm"), "  "), Ok(None));
    let pol = spec(EC2, "connection.policy");
    assert!(validate_value(pol, "private").unwrap_err().contains("public, local, auto"));
    let url = spec(EC2, "endpoint");
    assert!(validate_value(url, "ftp://x").is_err());
    assert!(validate_value(url, "http://127.0.0.1:5000").is_ok());
    let f = spec(SANDBOX, "failure.rate");
    assert!(validate_value(f, "1.5").is_err());
    assert!(validate_value(f, "NaN").is_err());
    assert!(validate_value(f, "0.25").is_ok());
    let b = spec(EC2QUERY, "tls.verify");
    assert!(validate_value(b, "yes").is_err());
    let l = spec(EC2QUERY, "instance.types");
    assert!(validate_value(l, "m1.small,,m1.large").is_err());
    let sv = spec(EC2QUERY, "signature.version");
    assert!(validate_value(sv, "3").is_err());
}

#[test]
fn defaults_and_missing() {
    let v = ParamValues::default();
    assert_eq!(v.get_int(EC2, "max.iaas.workers"), Some(20));
    assert_eq!(v.get(EC2, "security.group").as_deref(), Some("default"));
    assert_eq!(v.missing_required(EC2), ["region"]);
    assert!(v.missing_required(SANDBOX).is_empty());
}

#[test]
fn kinds_parse_against_the_registered_builders() {
    assert_eq!(kinds().kind("ec2query"), Ok(EC2QUERY));
    assert_eq!(kinds().kind("EC2"), Err(NameError::UnknownKind("EC2".into(), "ec2, ec2query, sandbox".into())));
    for k in kinds().kinds() {
        assert_eq!(kinds().kind(k.as_str()), Ok(k));
    }
}

#[test]
fn every_kind_declares_the_launch_policies_and_tag_rules_parse() {
    for k in kinds().kinds() {
        for s in POLICIES {
            assert!(k.param(s.name).is_some(), "{k} lacks {}", s.name);
        }
    }
    let rules = parse_tag_rules("cost-center=(rd|ops|sales), owner ,env=prod").unwrap();
    assert_eq!(
        rules,
        vec![
            ("cost-center".to_string(), Some(vec!["rd".to_string(), "ops".into(), "sales".into()])),
            ("owner".to_string(), None),
            ("env".to_string(), Some(vec!["prod".to_string()])),
        ]
    );
    let t = spec(SANDBOX, "policy.tags.required");
    assert_eq!(validate_value(t, " owner ").unwrap().as_deref(), Some("owner"));
    assert_eq!(validate_value(t, "").unwrap(), None);
    for (bad, says) in [
        ("a=(x, b", "without commas inside"),
        ("a=(x|)", "each allowed value is non-empty"),
        ("=(x)", "a tag key is non-empty"),
        ("a,,b", "has an empty item"),
        ("a, a=(x)", "given twice"),
        ("a=(x", "key=(a|b|c)"),
    ] {
        let e = validate_value(t, bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    assert!(validate_value(spec(SANDBOX, "policy.count.max"), "1001").is_err());
    assert_eq!(spec(EC2, "policy.exempt.admins").default, Some("false"));
}
