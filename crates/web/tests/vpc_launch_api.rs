//! A launch through the JSON API names a subnet (`subnet_id`): one of the
//! project's (made through the EC2 front) places the VMs there, their
//! addresses from its block and `subnetId` in DescribeInstances; an
//! unknown subnet, or another project's, is 404 and launches nothing; a
//! malformed one is 400 naming `subnet_id`. Both backends.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

/// The text of the first `<tag>` in `xml`.
fn element(xml: &str, tag: &str) -> String {
    let start = xml.find(&format!("<{tag}>")).unwrap_or_else(|| panic!("no {tag} in {xml}")) + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_string()
}

async fn user(app: &TestApp, admin: &str, name: &str) -> (String, (String, String)) {
    let t = app.user(admin, name).await;
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{name}/access-keys"), &t, None).await;
    assert_eq!(s, 201, "{k}");
    (t, (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string()))
}

app_test!(a_json_launch_goes_into_the_subnet_it_names, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let (alice, alice_key) = user(&app, &admin, "alice").await;
    let (bob, _) = user(&app, &admin, "bob").await;
    let (s, xml) = app.ec2_call(&alice_key, "sb", "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.7.0.0%2F16").await;
    assert_eq!(s, 200, "{xml}");
    let vpc = element(&xml, "vpcId");
    let body = format!("Action=CreateSubnet&Version=2016-11-15&VpcId={vpc}&CidrBlock=10.7.3.0%2F24");
    let (s, xml) = app.ec2_call(&alice_key, "sb", &body).await;
    assert_eq!(s, 200, "{xml}");
    let subnet = element(&xml, "subnetId");

    let launch = |subnet: &str, name: &str| json!({"instance": "sb", "image": "ubuntu", "name": name, "subnet_id": subnet});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch(&subnet, "in-subnet"))).await;
    assert_eq!(s, 201, "{b}");
    let vm = &b["vms"][0];
    let ip = vm["private_ip"].as_str().unwrap_or_else(|| panic!("{b}")).to_string();
    assert!(ip.starts_with("10.7.3."), "{vm}");
    let id = vm["id"].as_str().unwrap().strip_prefix("vm-").unwrap().to_string();
    let (s, xml) = app.ec2_call(&alice_key, "sb", &format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-{id}")).await;
    assert_eq!(s, 200, "{xml}");
    assert_eq!((element(&xml, "subnetId"), element(&xml, "vpcId")), (subnet.clone(), vpc.clone()));

    // Unknown, another project's, malformed: nothing is launched.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch("subnet-0123456789abcdef0", "nowhere"))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("cloud.InvalidSubnetID.NotFound")), "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &bob, Some(launch(&subnet, "not-mine"))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")), "{b}");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch("sub net", "bad"))).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("subnet_id"), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/vms", &bob, None).await;
    assert_eq!((s, b["vms"].as_array().map(Vec::len)), (200, Some(0)), "{b}");
    let (s, b) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!((s, b["vms"].as_array().map(Vec::len)), (200, Some(1)), "{b}");
});
