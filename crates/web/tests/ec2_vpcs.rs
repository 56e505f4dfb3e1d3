//! VPCs and subnets with boto3 (tests/ec2/boto3_vpcs.py) on a broker whose
//! regions are a sandbox instance and an `ec2` instance in front of moto,
//! on SQLite and PostgreSQL: VPCs and subnets made, described with filters
//! and refused with EC2's codes; launches into a subnet (the private
//! address inside its block, SubnetId and VpcId shown) and by the
//! instance's `subnet.id` / `vpc.id`; another project's VPCs and subnets
//! never seen nor used; the account's default VPC seen by all but not
//! deleted; the audit log records each change.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "ec2/boto3_regions.rs"]
mod boto3_regions;

use boto3_regions::{run_boto3, Boto3Run, Boto3Script};
use reqwest::Method;
use serde_json::{json, Value};

async fn vpcs(db_url: Option<String>) {
    let users = [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001")];
    let script =
        Boto3Script { script: "boto3_vpcs.py", regions: "sb=ubuntu,aws=moto-linux", users: &users, admin_env: true, reconcile: false };
    let Boto3Run { app, moto, admin, out } = run_boto3(db_url, script).await;
    for region in ["sb", "aws"] {
        let o = &out[region];
        let is = |k: &str, want: Value| assert_eq!(o[k], want, "{region} {k}: {o}");
        is("vpc", json!([true, "10.42.0.0/16", false]));
        is("vpc_range", json!("InvalidVpc.Range"));
        is("vpc_cidr", json!("InvalidParameterValue"));
        is("vpc_tenancy", json!("UnsupportedOperation"));
        is("vpc_dry", json!("DryRunOperation"));
        is("subnet", json!([true, true, "10.42.1.0/24", 251, false]));
        is("subnet_outside", json!("InvalidSubnet.Range"));
        is("subnet_small", json!("InvalidSubnet.Range"));
        is("subnet_conflict", json!("InvalidSubnet.Conflict"));
        is("subnet_no_vpc", json!("InvalidVpcID.NotFound"));
        is("vpc_malformed", json!("InvalidVpcID.Malformed"));
        is("vpc_unknown", json!("InvalidVpcID.NotFound"));
        is("subnet_malformed", json!("InvalidSubnetID.Malformed"));
        is("subnet_unknown", json!("InvalidSubnetID.NotFound"));
        is("delete_unknown", json!(["InvalidVpcID.NotFound", "InvalidSubnetID.NotFound"]));
        is("vpc_filters", json!([1, 1, 1, 1, 1, 1]));
        is("subnet_filters", json!([1, 1, 1, 1, 1, 1]));
        is("bad_filter", json!(["InvalidParameterValue", "InvalidParameterValue"]));
        is("map_public", json!(true));
        is("modify_missing", json!("MissingParameter"));
        is("modify_default", json!("UnauthorizedOperation"));
        is("launched", json!([true, true, true]));
        is("instance_filter", json!(1));
        is("run_unknown", json!("InvalidSubnetID.NotFound"));
        is("run_malformed", json!("InvalidSubnetID.Malformed"));
        is("run_dry", json!("DryRunOperation"));
        is("delete_vpc_busy", json!("DependencyViolation"));
        is("bob_list", json!([]));
        is(
            "bob",
            json!([
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidSubnetID.NotFound"
            ]),
        );
        is("bob_default", json!(1));
        is("delete_default", json!("UnauthorizedOperation"));
        is("subnet_default", json!([true, true]));
        is("subnet_default_bob", json!("InvalidSubnetID.NotFound"));
        is("vpc_default", json!([true, true]));
        is("vpc_elsewhere", json!("InvalidParameterValue"));
        is("deleted", json!(["InvalidSubnetID.NotFound", "InvalidVpcID.NotFound"]));
    }
    assert_eq!(out["sb"]["delete_subnet_busy"], "DependencyViolation", "{out}");
    // The audit log has each step.
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    for action in ["vpc.create", "vpc.delete", "subnet.create", "subnet.delete"] {
        assert!(text.contains(&format!("\"{action}\"")), "{action} missing from the audit log");
    }
    // moto saw the calls.
    for action in ["CreateVpc", "CreateSubnet", "ModifySubnetAttribute", "DeleteSubnet", "DeleteVpc"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
}

crate::db_url_test!(boto3_vpcs, super::vpcs);
