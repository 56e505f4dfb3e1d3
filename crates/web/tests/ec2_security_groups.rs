//! Security groups with boto3 (tests/ec2/boto3_security_groups.py) on a
//! broker whose regions are a sandbox instance and an `ec2` instance in
//! front of moto, on SQLite and PostgreSQL: groups made, described with
//! filters, their rules added and removed in every form EC2 takes, launches
//! into them by id and by name, EC2's error codes, and another user's
//! groups never seen nor touched; the audit log records each change.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "ec2/boto3_regions.rs"]
mod boto3_regions;

use boto3_regions::{run_boto3, Boto3Run, Boto3Script};
use reqwest::Method;
use serde_json::{json, Value};

async fn security_groups(db_url: Option<String>) {
    let users = [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001")];
    let script = Boto3Script {
        script: "boto3_security_groups.py",
        regions: "sb=ubuntu,aws=moto-linux",
        users: &users,
        admin_env: false,
        reconcile: false,
    };
    let Boto3Run { app, moto, admin, out } = run_boto3(db_url, script).await;
    for region in ["sb", "aws"] {
        let o = &out[region];
        let is = |k: &str, want: Value| assert_eq!(o[k], want, "{region} {k}: {o}");
        is("ids", json!([true, true, true]));
        is("duplicate", json!("InvalidGroup.Duplicate"));
        is("sg_name", json!("InvalidParameterValue"));
        is("dry_run", json!("DryRunOperation"));
        is("described", json!([format!("web-{region}"), "web servers", {"team": "web"}]));
        is("egress_default", json!(true));
        is("vpc", json!(true));
        is("added", json!([["tcp", 22, "10.0.0.0/8", false], ["tcp", 443, "::/0", false]]));
        is("rule_ids", json!(true));
        is("dup_rule", json!("InvalidPermission.Duplicate"));
        for k in ["bad_cidr", "bad_port", "bad_protocol"] {
            is(k, json!("InvalidParameterValue"));
        }
        is("ingress", json!([["tcp", 22, 1, 0], ["tcp", 443, 0, 1], ["udp", 53, 1, 0]]));
        is("descriptions", json!(["ssh"]));
        is("source_group", json!([true]));
        is("egress_rule", json!(true));
        is("filters", json!([1, 1, 1, 1, 1, 2, 1]));
        is("bad_filter", json!("InvalidParameterValue"));
        is("malformed", json!("InvalidGroupId.Malformed"));
        is("unknown", json!("InvalidGroup.NotFound"));
        is("rules", json!([[false, "tcp", 22], [false, "tcp", 443], [false, "udp", 53], [true, "-1", -1]]));
        is("revoked_again", json!("InvalidPermission.NotFound"));
        is("after_revoke", json!([53, 443]));
        is("bob_list", json!([]));
        for k in ["bob_describe", "bob_delete", "bob_authorize", "bob_revoke", "bob_run", "bob_peer"] {
            is(k, json!("InvalidGroup.NotFound"));
        }
        is("launched", json!([true, true]));
        is("run_unknown", json!("InvalidGroup.NotFound"));
        is("run_malformed", json!("InvalidGroupId.Malformed"));
        is("run_dry", json!("DryRunOperation"));
        is("run_dry_unknown", json!("InvalidGroup.NotFound"));
        is("delete_default", json!("CannotDelete"));
        is("deleted", json!("InvalidGroup.NotFound"));
        is("deleted_again", json!("InvalidGroup.NotFound"));
        is("left", json!([]));
    }
    assert_eq!(out["sb"]["in_use"], "DependencyViolation", "{out}");
    // The audit log has each step.
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    for action in ["security_group.create", "security_group.delete", "security_group.authorize", "security_group.revoke"] {
        assert!(text.contains(&format!("\"{action}\"")), "{action} missing from the audit log");
    }
    // moto saw the calls, with the groups' ids.
    for action in ["CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "DeleteSecurityGroup"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
}

db_url_test!(boto3_security_groups, super::security_groups);
