//! The connector without a cloud: paging stops, parameters and defaults,
//! the client cache, errors by status, validation messages, the IAM policy.

use super::*;

#[test]
fn a_repeated_or_endless_next_token_is_an_error_not_a_short_list() {
    let mut pages = 0;
    assert_eq!(next_page("DescribeInstances", &mut pages, None, Some("a")).unwrap(), Some("a".to_string()));
    assert_eq!(next_page("DescribeInstances", &mut pages, Some("a"), Some("")).unwrap(), None);
    let e = next_page("DescribeInstances", &mut pages, Some("a"), Some("a")).unwrap_err();
    assert!(matches!(&e, ConnectorError::Cloud { code, .. } if code == "PaginationLoop"), "{e}");
    assert!(!e.is_retryable());
    let mut pages = MAX_PAGES - 1;
    assert!(next_page("DescribeInstances", &mut pages, Some("a"), Some("b")).is_err());
}

fn params(kv: &[(&str, &str)]) -> ParamValues {
    ParamValues::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn name() -> InstanceName {
    InstanceName::parse("ec2-test").unwrap()
}

#[test]
fn region_is_required_and_defaults_apply() {
    let e = Ec2Connector::new(name(), &params(&[]), Ec2Options::default()).unwrap_err();
    assert!(
        matches!(&e, ConnectorError::InvalidRequest { code, message } if code == "MissingParameter" && message.contains("region")),
        "{e:?}"
    );
    let c = Ec2Connector::new(name(), &params(&[("region", "eu-central-1")]), Ec2Options::default()).unwrap();
    assert_eq!(c.gate().workers(), 20);
    assert_eq!(c.gate().policy().timeout, Duration::from_secs(30));
    assert_eq!(c.region(), "eu-central-1");
    let c =
        Ec2Connector::new(name(), &params(&[("region", "x"), ("max.iaas.workers", "3"), ("timeout.seconds", "2")]), Ec2Options::default())
            .unwrap();
    assert_eq!(c.gate().workers(), 3);
    assert_eq!(c.gate().policy().timeout, Duration::from_secs(2));
    assert!(Ec2Connector::new(name(), &params(&[("region", "x"), ("endpoint", "ftp://x")]), Ec2Options::default()).is_err());
}

#[test]
fn clients_are_cached_per_key_and_rebuilt_on_new_secret() {
    let c =
        Ec2Connector::new(name(), &params(&[("region", "us-east-1"), ("endpoint", "http://127.0.0.1:1")]), Ec2Options::default()).unwrap();
    c.client(&Credentials::new("AKIA1", "s1")).unwrap();
    c.client(&Credentials::new("AKIA1", "s1")).unwrap();
    c.client(&Credentials::new("AKIA2", "s2")).unwrap();
    assert_eq!(c.clients.lock().unwrap().len(), 2);
    c.client(&Credentials::new("AKIA1", "s3")).unwrap();
    assert!(c.clients.lock().unwrap()["AKIA1"].secret == SecretString::new("s3"));
    assert!(matches!(c.client(&Credentials::new("", "s")), Err(ConnectorError::Auth { .. })));
}

#[test]
fn codeless_answers_by_status() {
    assert!(matches!(by_status(Some(503), String::new()), ConnectorError::Throttled { .. }));
    assert!(by_status(Some(503), String::new()).is_retryable());
    assert!(matches!(by_status(Some(502), "x".into()), ConnectorError::Transport { .. }));
    assert!(matches!(by_status(Some(403), "x".into()), ConnectorError::Auth { .. }));
    assert!(matches!(by_status(Some(400), "x".into()), ConnectorError::Cloud { .. }));
}

#[test]
fn validation_errors_say_what_is_wrong() {
    let e = validation_error(ConnectorError::from_ec2_code("AuthFailure", "AWS was not able to validate"), "r", "e");
    assert!(e.to_string().contains("secret access key is wrong") && e.to_string().contains("AWS was not able to validate"), "{e}");
    let e = validation_error(ConnectorError::from_ec2_code("UnauthorizedOperation", "not authorized: ec2:DescribeRegions"), "r", "e");
    assert!(
        matches!(&e, ConnectorError::Forbidden { message, .. } if message.contains("IAM policy") && message.contains("ec2:DescribeRegions"))
    );
    let e = validation_error(ConnectorError::Transport { message: "connection refused".into() }, "r", "http://x");
    assert!(e.to_string().contains("unreachable") && e.to_string().contains("connection refused"));
}

#[test]
fn iam_policy_doc_lists_exactly_the_actions() {
    let doc = include_str!("../../../docs/ec2-iam-policy.json");
    let mut in_doc: Vec<&str> = doc.split('"').filter(|s| s.starts_with("ec2:") && !s.starts_with("ec2:CreateAction")).collect();
    in_doc.sort_unstable();
    in_doc.dedup();
    let mut ours = IAM_ACTIONS.to_vec();
    ours.sort_unstable();
    assert_eq!(in_doc, ours);
}
