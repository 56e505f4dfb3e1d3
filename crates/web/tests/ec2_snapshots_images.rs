//! Snapshots and images made from instances with boto3
//! (tests/ec2/boto3_snapshots_images.py) on a broker whose regions are a
//! sandbox instance and an `ec2` instance in front of moto, on SQLite and
//! PostgreSQL: a snapshot of a volume and a volume from it, an image of an
//! instance launched by its maker and by a user it is shared with (and by
//! no one else), EC2's error codes; the audit log records each step.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "ec2/boto3_regions.rs"]
mod boto3_regions;

use boto3_regions::{run_boto3, Boto3Run, Boto3Script};
use reqwest::Method;
use serde_json::json;

async fn snapshots_and_images(db_url: Option<String>) {
    let users = [("alice", "AKIAALICEMOTO000001"), ("bob", "AKIABOBMOTO0000001"), ("carol", "AKIACAROLMOTO00001")];
    let script = Boto3Script {
        script: "boto3_snapshots_images.py",
        regions: "sb=sba=ubuntu,aws=us-east-1a=moto-linux",
        users: &users,
        admin_env: false,
        reconcile: true,
    };
    let Boto3Run { app, moto, admin, out } = run_boto3(db_url, script).await;
    for region in ["sb", "aws"] {
        let o = &out[region];
        assert_eq!(o["created"], json!([true, true, true, true, true]), "{region}: {o}");
        assert_eq!(o["completed"], json!([true, true]), "{region}: {o}");
        assert_eq!(o["own"], true, "{region}: {o}");
        assert_eq!(o["filters"], json!([1, 1, 1, 0, 1]), "{region}: {o}");
        assert_eq!(o["bad_filter"], "InvalidParameterValue", "{region}: {o}");
        assert_eq!(o["malformed"], "InvalidParameterValue", "{region}: {o}");
        assert_eq!(o["unknown"], "InvalidSnapshot.NotFound", "{region}: {o}");
        assert_eq!(o["unknown_volume"], "InvalidVolume.NotFound", "{region}: {o}");
        assert_eq!(o["from_snapshot_size"], 2, "{region}: {o}");
        assert_eq!(o["bob_list"], json!([]), "{region}: {o}");
        for k in ["bob_describe", "bob_delete", "bob_volume", "deleted", "deleted_again"] {
            assert_eq!(o[k], "InvalidSnapshot.NotFound", "{region} {k}: {o}");
        }
        assert_eq!(o["own_images"], json!([format!("alice-img-{region}")]), "{region}: {o}");
        assert_eq!(o["duplicate"], "InvalidAMIName.Duplicate", "{region}: {o}");
        for k in ["bob_before", "bob_run_before", "bob_share", "carol_describe", "carol_run", "bob_after_remove", "deregistered"] {
            assert_eq!(o[k], "InvalidAMIID.NotFound", "{region} {k}: {o}");
        }
        for k in ["bob_deregister", "bob_attribute", "group_all"] {
            assert_eq!(o[k], "UnauthorizedOperation", "{region} {k}: {o}");
        }
        assert_eq!(o["permissions"], json!([{"UserId": "bob"}]), "{region}: {o}");
        assert_eq!(o["after_remove"], json!([]), "{region}: {o}");
        assert_eq!(o["unknown_user"], "InvalidAMIAttributeItemValue", "{region}: {o}");
        assert_eq!(o["bad_attribute"], "InvalidParameterValue", "{region}: {o}");
        assert_eq!(o["bob_sees"], json!([format!("alice-img-{region}")]), "{region}: {o}");
        assert_eq!(o["bob_launched"], true, "{region}: {o}");
    }
    assert_eq!(out["sb"]["too_small"], "InvalidParameterValue", "{out}");
    // The audit log has each step.
    let (s, log) = app.call(Method::GET, "/api/v1/audit?limit=500", &admin, None).await;
    assert_eq!(s, 200, "{log}");
    let text = log.to_string();
    for action in ["snapshot.create", "snapshot.delete", "image.create", "image.share", "image.deregister"] {
        assert!(text.contains(&format!("\"{action}\"")), "{action} missing from the audit log");
    }
    // The image made on moto is gone from moto too.
    for action in ["CreateSnapshot", "DeleteSnapshot", "CreateImage", "DeregisterImage"] {
        assert!(moto.action_count(action).await >= 1, "{action} never reached moto");
    }
    let conn = app.broker.registry.snapshot().instance("aws").unwrap().connector.clone().unwrap();
    let creds = cloudbroker_connector_api::Credentials::new("AKIAALICEMOTO000001", "alice-moto-secret");
    let images = conn.list_images(&creds).await.unwrap();
    assert!(images.iter().all(|i| i.name.as_deref() != Some("alice-img-aws")), "{images:?}");
}

db_url_test!(boto3_snapshots_and_images, super::snapshots_and_images);
