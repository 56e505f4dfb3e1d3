//! Issue 20, items 8, 11, 12 and 13, against a real broker (sandbox
//! instances) on SQLite and PostgreSQL, with boto3 on the EC2 front and the
//! JSON API: a credential is held by the Elastic IPs and volumes made with
//! it as by live VMs; a revoked grant stops its former grantee from acting
//! on what they made with it; another user's sandbox account cannot be
//! stored; a private image yields its name to `connectors.d/images`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// An EC2 access key of `user` (id, secret).
async fn access_key(app: &TestApp, user: &str, token: &str) -> (String, String) {
    let (s, k) = app.call(Method::POST, &format!("/api/v1/users/{user}/access-keys"), token, None).await;
    assert_eq!(s, 201, "{k}");
    (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string())
}

/// Runs `body` with boto3: `c` is an EC2 client of `key` on region (connector
/// instance) `sb`, `code_of(fn, **kw)` the EC2 error code of a call (or
/// None); `body` assigns the dict `out`, printed as JSON and returned.
async fn boto3(app: &TestApp, key: &(String, String), body: &str) -> Value {
    let script = format!(
        "import json, boto3\nfrom botocore.config import Config\nfrom botocore.exceptions import ClientError\n\
         c = boto3.client('ec2', endpoint_url='{ep}', region_name='sb', aws_access_key_id='{ak}', aws_secret_access_key='{sk}', \
         config=Config(retries={{'max_attempts': 1, 'mode': 'standard'}}))\n\
         def code_of(fn, **kw):\n    try:\n        fn(**kw)\n    except ClientError as e:\n        return [e.response['Error']['Code'], e.response['Error']['Message']]\n    return None\n\
         out = {{}}\n{body}\nprint(json.dumps(out))\n",
        ep = app.url("/ec2"),
        ak = key.0,
        sk = key.1,
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python())
            .arg("-c")
            .arg(script)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "boto3 failed:\n{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Allocates an address and creates a volume as `key`: (allocation id, volume id).
async fn address_and_volume(app: &TestApp, key: &(String, String)) -> (String, String) {
    let out = boto3(
        app,
        key,
        "out['address'] = c.allocate_address(Domain='vpc')['AllocationId']\n\
         out['volume'] = c.create_volume(Size=1, AvailabilityZone='sba')['VolumeId']",
    )
    .await;
    (out["address"].as_str().unwrap().to_string(), out["volume"].as_str().unwrap().to_string())
}

async fn put_own_credential(app: &TestApp, token: &str, user: &str, key_id: &str, secret: &str) -> (u16, Value) {
    app.call(
        Method::PUT,
        &format!("/api/v1/users/{user}/credentials/sb"),
        token,
        Some(json!({"access_key_id": key_id, "secret_access_key": secret})),
    )
    .await
}

fn message(b: &Value) -> String {
    b["error"]["message"].as_str().unwrap_or_default().to_string()
}

// Item 8: deleting or replacing a credential minds the addresses and volumes
// made with it, as it minds live VMs.
app_test!(addresses_and_volumes_hold_their_credential_like_live_vms, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let key = access_key(&app, "alice", &alice).await;
    let (s, b) = put_own_credential(&app, &alice, "alice", "alice-account-1", "secret-1").await;
    assert_eq!(s, 200, "{b}");
    let (address, volume) = address_and_volume(&app, &key).await;
    let stored = app.broker.store().get_credential("user", "alice", "sb").await.unwrap().unwrap();
    assert_eq!(app.broker.store().address("sb", &address).await.unwrap().unwrap().credential_id, stored.id);

    // Deleting: refused, naming both, nothing deleted.
    let (s, b) = app.call(Method::DELETE, "/api/v1/users/alice/credentials/sb", &alice, None).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "conflict");
    let m = message(&b);
    assert!(m.contains(&address) && m.contains(&volume) && m.contains("Elastic IP") && m.contains("volume"), "{m}");
    assert_eq!(app.call(Method::GET, "/api/v1/users/alice/credentials/sb", &alice, None).await.0, 200);

    // Replacing with keys of another (sandbox) account: refused the same way,
    // force or not (the cloud answered: it does not know them).
    for force in [false, true] {
        let (s, b) = app
            .call(
                Method::PUT,
                "/api/v1/users/alice/credentials/sb",
                &alice,
                Some(json!({"access_key_id": "alice-account-2", "secret_access_key": "secret-2", "force": force})),
            )
            .await;
        assert_eq!(s, 409, "force={force}: {b}");
        let m = message(&b);
        assert!(m.contains(&address) && m.contains(&volume), "{m}");
    }
    let kept = app.broker.store().get_credential("user", "alice", "sb").await.unwrap().unwrap();
    assert_eq!(kept.secret_sealed, stored.secret_sealed, "nothing was replaced");

    // Keys of the same account (a new secret) see them: accepted, and the
    // address and volume stay usable with them.
    let (s, b) = put_own_credential(&app, &alice, "alice", "alice-account-1", "secret-rotated").await;
    assert_eq!(s, 200, "{b}");
    let out = boto3(
        &app,
        &key,
        &format!(
            "out['release'] = code_of(c.release_address, AllocationId='{address}')\n\
             out['delete'] = code_of(c.delete_volume, VolumeId='{volume}')\n\
             out['left'] = [len(c.describe_addresses()['Addresses']), len(c.describe_volumes()['Volumes'])]"
        ),
    )
    .await;
    assert_eq!(out, json!({"release": null, "delete": null, "left": [0, 0]}));

    // Nothing uses it any more: it can go.
    let (s, b) = app.call(Method::DELETE, "/api/v1/users/alice/credentials/sb", &alice, None).await;
    assert_eq!(s, 204, "{b}");
});

// Item 11: a revoked grant is checked on every use.
app_test!(a_revoked_grant_stops_the_former_grantee_not_the_admins, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let key = access_key(&app, "alice", &alice).await;
    let image = json!({"name": "debian", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let shared = json!({"access_key_id": "team-account", "secret_access_key": "team-secret"});
    let (s, b) = app.call(Method::PUT, "/api/v1/system/credentials/sb/team", &admin, Some(shared)).await;
    assert_eq!(s, 200, "{b}");
    let grant = |users: Value| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let (s, b) = app.call(Method::PUT, "/api/v1/system/credentials/sb/team/grants", &admin, Some(json!({"users": users}))).await;
            assert_eq!(s, 200, "{b}");
        }
    };
    grant(json!(["alice"])).await;

    // Alice launches, allocates and creates with the team's keys.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "debian"}))).await;
    assert_eq!(s, 201, "{b}");
    let vm = b["vms"][0]["id"].as_str().unwrap().to_string();
    // The VM's EC2 instance id.
    let ec2_vm = format!("i-{}", vm.strip_prefix("vm-").unwrap_or(&vm));
    let (address, volume) = address_and_volume(&app, &key).await;
    let team = app.broker.store().get_credential("system", "team", "sb").await.unwrap().unwrap();
    assert_eq!(app.broker.store().volume("sb", &volume).await.unwrap().unwrap().credential_id, team.id);

    // The grant is revoked.
    grant(json!([])).await;

    // Every action of alice's on what she made with it: 403 naming the grant.
    for action in ["stop", "reboot", "start", "terminate"] {
        let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{vm}/{action}"), &alice, None).await;
        assert_eq!(s, 403, "{action}: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
        let m = message(&b);
        assert!(m.contains("'team'") && m.contains("revoked") && m.contains(&vm), "{action}: {m}");
    }
    let out = boto3(
        &app,
        &key,
        &format!(
            "out['associate'] = code_of(c.associate_address, AllocationId='{address}', InstanceId='{ec2_vm}')\n\
             out['release'] = code_of(c.release_address, AllocationId='{address}')\n\
             out['attach'] = code_of(c.attach_volume, VolumeId='{volume}', InstanceId='{ec2_vm}', Device='/dev/sdf')\n\
             out['delete'] = code_of(c.delete_volume, VolumeId='{volume}')\n\
             out['addresses'] = [a['AllocationId'] for a in c.describe_addresses()['Addresses']]\n\
             out['volumes'] = [v['VolumeId'] for v in c.describe_volumes()['Volumes']]"
        ),
    )
    .await;
    for k in ["associate", "release", "attach", "delete"] {
        assert_eq!(out[k][0], "UnauthorizedOperation", "{k}: {out}");
        assert!(out[k][1].as_str().unwrap().contains("revoked"), "{k}: {out}");
    }
    // Still there and still hers to see.
    assert_eq!(out["addresses"], json!([address]), "{out}");
    assert_eq!(out["volumes"], json!([volume]), "{out}");
    assert_eq!(app.call(Method::GET, &format!("/api/v1/vms/{vm}"), &alice, None).await.0, 200);
    // A new launch with the revoked grant finds no credentials either (the
    // sandbox gives her her own account instead: not the team's).
    let (alice_name, sb) =
        (cloudbroker_core::domain::UserName::parse("alice").unwrap(), cloudbroker_core::domain::InstanceName::parse("sb").unwrap());
    let (c, id) = app.broker.vault.credentials_for(&alice_name, &sb).await.unwrap();
    assert_ne!((c.access_key_id.as_str(), id.as_str()), ("team-account", team.id.as_str()));

    // The credential is held by what alice made with it.
    let (s, b) = app.call(Method::DELETE, "/api/v1/system/credentials/sb/team", &admin, None).await;
    assert_eq!(s, 409, "{b}");
    let m = message(&b);
    assert!(m.contains(&vm) && m.contains(&format!("{address} (of alice)")) && m.contains(&format!("{volume} (of alice)")), "{m}");

    // Admins may still act on the VM.
    let (s, b) = app.call(Method::POST, &format!("/api/v1/vms/{vm}/terminate"), &admin, None).await;
    assert_eq!(s, 200, "{b}");

    // Granted again, alice cleans up; then the credential can go.
    grant(json!(["alice"])).await;
    let out = boto3(
        &app,
        &key,
        &format!(
            "out['release'] = code_of(c.release_address, AllocationId='{address}')\n\
             out['delete'] = code_of(c.delete_volume, VolumeId='{volume}')"
        ),
    )
    .await;
    assert_eq!(out, json!({"release": null, "delete": null}));
    // The reconciler's job, done here: the VM shutting down becomes terminated.
    for _ in 0..100 {
        let _ = app.broker.provisioning.reconcile("review2-test").await;
        if app.call(Method::GET, &format!("/api/v1/vms/{vm}"), &admin, None).await.1["state"] == "terminated" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, b) = app.call(Method::DELETE, "/api/v1/system/credentials/sb/team", &admin, None).await;
    assert_eq!(s, 204, "{b}");
});

// Item 12: `sandbox-<user>` is that user's sandbox account alone.
app_test!(another_users_sandbox_account_cannot_be_stored, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let image = json!({"name": "debian", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    // Bob works in his own sandbox account, `sandbox-bob`.
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &bob, Some(json!({"instance": "sb", "image": "debian"}))).await;
    assert_eq!(s, 201, "{b}");

    for force in [false, true] {
        let (s, b) = app
            .call(
                Method::PUT,
                "/api/v1/users/alice/credentials/sb",
                &alice,
                Some(json!({"access_key_id": "sandbox-bob", "secret_access_key": "anything", "force": force})),
            )
            .await;
        assert_eq!(s, 400, "force={force}: {b}");
        assert_eq!(b["error"]["code"], "invalid_request", "{b}");
        assert_eq!(b["error"]["field"], "access_key_id", "{b}");
        assert!(message(&b).contains("sandbox-bob") && message(&b).contains("another user's sandbox account"), "{b}");
    }
    // Spaces around do not get past it.
    let (s, b) = put_own_credential(&app, &alice, "alice", "  sandbox-bob ", "anything").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("access_key_id")), "{b}");
    // Nothing was stored: alice still works in her own account.
    assert_eq!(app.call(Method::GET, "/api/v1/users/alice/credentials/sb", &alice, None).await.0, 404);
    let (s, b) = app.call(Method::GET, "/api/v1/vms", &alice, None).await;
    assert_eq!(s, 200, "{b}");
    // Not even an admin stores it for alice, nor as a shared credential.
    let (s, b) = put_own_credential(&app, &admin, "alice", "sandbox-bob", "anything").await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("access_key_id")), "{b}");
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/system/credentials/sb/team",
            &admin,
            Some(json!({"access_key_id": "sandbox-bob", "secret_access_key": "anything"})),
        )
        .await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("access_key_id")), "{b}");
    // Her own account id, and any other id, are fine.
    assert_eq!(put_own_credential(&app, &alice, "alice", "sandbox-alice", "mine").await.0, 200);
    assert_eq!(put_own_credential(&app, &alice, "alice", "sandbox2-bob", "mine").await.0, 200);
    let audit = app.broker.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|r| r.action == "credential.save" && r.outcome == "rejected" && r.detail.contains("sandbox-bob")));
});

// Item 13: a name the operator's files declare is theirs.
app_test!(a_private_image_yields_its_name_to_the_files, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let alice = app.user(&admin, "alice").await;
    let bob = app.user(&admin, "bob").await;
    let key = access_key(&app, "alice", &alice).await;
    let out = boto3(
        &app,
        &key,
        "out['id'] = c.register_image(Name='foo', ImageLocation='ami-sandbox-ubuntu-2204', Description='mine')['ImageId']",
    )
    .await;
    assert!(out["id"].as_str().unwrap().starts_with("ami-"), "{out}");
    let images = app.dir.path().join("connectors.d/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("ops.conf"), "foo.sb = ami-sandbox-debian-12\n").unwrap();
    let (s, b) = app.call(Method::POST, "/api/v1/connectors/reload", &admin, None).await;
    assert_eq!(s, 200, "{b}");

    // The listing shows the operator's public image under the name, and
    // alice's under its new one, saying why.
    let (s, b) = app.call(Method::GET, "/api/v1/images", &alice, None).await;
    assert_eq!(s, 200, "{b}");
    let list = b["images"].as_array().unwrap();
    let foo = list.iter().find(|i| i["name"] == "foo").unwrap();
    assert_eq!((foo["owner"].clone(), foo["mappings"]["sb"]["image_id"].clone()), (Value::Null, json!("ami-sandbox-debian-12")), "{b}");
    let mine = list.iter().find(|i| i["name"] == "foo-alice").unwrap_or_else(|| panic!("{b}"));
    assert_eq!((mine["owner"].clone(), mine["mappings"]["sb"]["image_id"].clone()), (json!("alice"), json!("ami-sandbox-ubuntu-2204")));
    let d = mine["description"].as_str().unwrap();
    assert!(d.contains("Renamed from 'foo'") && d.contains("connectors.d/images") && d.ends_with("mine"), "{d}");
    // Bob sees the public one, not alice's.
    let (_, b) = app.call(Method::GET, "/api/v1/images", &bob, None).await;
    let names: Vec<&str> = b["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"foo") && !names.contains(&"foo-alice"), "{b}");

    // Everyone launches the operator's image by the name; alice hers by its new name.
    for (who, token) in [("alice", &alice), ("bob", &bob)] {
        let (s, b) = app.call(Method::POST, "/api/v1/vms", token, Some(json!({"instance": "sb", "image": "foo"}))).await;
        assert_eq!(s, 201, "{who}: {b}");
        assert!(b.to_string().contains("ami-sandbox-debian-12"), "{who}: {b}");
    }
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(json!({"instance": "sb", "image": "foo-alice"}))).await;
    assert_eq!(s, 201, "{b}");
    assert!(b.to_string().contains("ami-sandbox-ubuntu-2204"), "{b}");
    // And in EC2: her DescribeImages shows it under its new name.
    let out = boto3(&app, &key, "out['mine'] = sorted(i['Name'] for i in c.describe_images(Owners=['self'])['Images'])").await;
    assert_eq!(out["mine"], json!(["foo-alice"]), "{out}");
    let audit = app.broker.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|r| r.action == "image.rename" && r.target == "foo" && r.detail.contains("foo-alice")), "{audit:?}");
});
