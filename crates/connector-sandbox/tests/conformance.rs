//! The sandbox, in this process's memory, passes the conformance suite every
//! connector passes (`cloudbroker_testkit::conformance`).
#![allow(clippy::unwrap_used)]

use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::{Credentials, InstanceName};

#[tokio::test]
async fn passes_the_conformance_suite() {
    let values = ParamValues::new([("boot.delay.ms".to_string(), "0".to_string())].into_iter().collect());
    let conn = cloudbroker_connector_sandbox::build(InstanceName::parse("sb-conformance").unwrap(), &values).unwrap();
    let target = cloudbroker_testkit::conformance::Target {
        conn: conn.as_ref(),
        creds: Credentials::new("AKIACONFORMANCE", "secret"),
        image_id: "ami-sandbox-debian-12".into(),
        instance_type: "t2.micro".into(),
        // The instance's one zone.
        zone: "sb-conformancea".into(),
        security_groups: vec![],
    };
    cloudbroker_testkit::conformance::run(&target).await;
}
