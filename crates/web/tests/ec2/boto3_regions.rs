//! Runs a boto3 script of tests/ec2 against a broker whose regions are a
//! sandbox instance (`sb`, which enforces EC2's rules where moto does not:
//! the script's `STRICT` regions) and an `ec2` instance in front of moto
//! (`aws`), with an image mapped on each and users that each have an
//! access key and a cloud credential on moto; the script gets them in its
//! environment and prints a JSON summary as its last line. Shared by the
//! boto3 drivers (included with `#[path]`), each of which checks the
//! summary and what the broker and moto recorded.

use crate::common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};

/// What differs between the drivers.
pub struct Boto3Script<'a> {
    /// The script's file name in tests/ec2.
    pub script: &'a str,
    /// `REGIONS` for the script (`region=image,...`, or `region=zone=image,...`).
    pub regions: &'a str,
    /// The users made (name, moto access key id): each script user's
    /// `{NAME}_AK` / `{NAME}_SK` are its key on the broker; its moto secret is `{name}-moto-secret`.
    pub users: &'a [(&'a str, &'a str)],
    /// Whether the script also gets the broker's URL (`API`) and an admin's token (`ADMIN`).
    pub admin_env: bool,
    /// Whether the broker's reconciler runs while the script does.
    pub reconcile: bool,
}

/// A finished run: the broker, moto, an admin's token and the script's summary.
pub struct Boto3Run {
    pub app: TestApp,
    pub moto: cloudbroker_testkit::MotoServer,
    pub admin: String,
    pub out: Value,
}

/// Starts moto and the broker (on `db_url`, SQLite when `None`), runs `s`'s
/// script and asserts that it succeeded with a JSON summary.
pub async fn run_boto3(db_url: Option<String>, s: Boto3Script<'_>) -> Boto3Run {
    let moto = cloudbroker_testkit::MotoServer::start(cloudbroker_testkit::MotoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(
        dir.path().join("connectors.d/sb.conf"),
        format!(
            "cloud.connector.class = sb:sandbox, aws:ec2\nsb.boot.delay.ms = 0\naws.region = us-east-1\naws.endpoint = {}\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let app = TestApp::start(db_url, dir).await.unwrap();
    let admin = app.token("super", SUPER_PW).await;
    for image in [
        json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}}),
        json!({"name": "moto-linux", "mappings": {"aws": {"image_id": "ami-12c6146b", "instance_type": "t2.micro"}}}),
    ] {
        assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    }
    let mut env = vec![
        ("EP".to_string(), app.url("/ec2")),
        ("REGIONS".into(), s.regions.to_string()),
        ("STRICT".into(), "sb".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    if s.admin_env {
        env.push(("API".into(), app.url("")));
        env.push(("ADMIN".into(), admin.clone()));
    }
    for &(u, cloud_key) in s.users {
        let t = app.user(&admin, u).await;
        let (status, k) = app.call(Method::POST, &format!("/api/v1/users/{u}/access-keys"), &t, None).await;
        assert_eq!(status, 201, "{k}");
        let up = u.to_uppercase();
        env.push((format!("{up}_AK"), k["access_key_id"].as_str().unwrap().to_string()));
        env.push((format!("{up}_SK"), k["secret_access_key"].as_str().unwrap().to_string()));
        let body = json!({"access_key_id": cloud_key, "secret_access_key": format!("{u}-moto-secret")});
        let (status, b) = app.call(Method::PUT, &format!("/api/v1/users/{u}/credentials/aws"), &t, Some(body)).await;
        assert_eq!(status, 200, "{b}");
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2").join(s.script);
    let reconciler = s.reconcile.then(|| {
        let broker = app.broker.clone();
        tokio::spawn(async move {
            loop {
                let _ = broker.provisioning.reconcile("ec2-boto3-test").await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    });
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python()).arg(script).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    if let Some(r) = reconciler {
        r.abort();
    }
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "boto3 script failed:\n{stderr}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    Boto3Run { app, moto, admin, out }
}
