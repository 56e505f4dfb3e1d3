//! Runs tests/ec2/awscli_session.sh and checks its steps: every step
//! whose action the EC2 front implements passed; every other was skipped
//! as not implemented. Shared by ec2_awscli.rs and ec2_chain.rs (included
//! with `#[path]`).

/// The session's actions, in the order it takes them.
pub const SESSION_ACTIONS: &[&str] = &[
    "CreateVpc",
    "CreateSubnet",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RunInstances",
    "CreateVolume",
    "AttachVolume",
    "CreateSnapshot",
    "CreateImage",
    "TerminateInstances",
    "DeleteVolume",
    "DeleteSnapshot",
    "DeregisterImage",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteVpc",
];

/// Runs the session against `ep` (region `region`, zone `zone`, image
/// `image`) with an access key; asserts that it finished, that each action
/// the front implements passed and each it does not was skipped as such.
/// Returns the script's output.
pub async fn session_steps(ep: String, region: &str, zone: &str, image: &str, key: &(String, String)) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2/awscli_session.sh");
    let env = vec![
        ("AWS".to_string(), cloudbroker_testkit::venv_dir().join("bin/aws").display().to_string()),
        ("EP".into(), ep),
        ("REGION".into(), region.to_string()),
        ("ZONE".into(), zone.to_string()),
        ("IMAGE".into(), image.to_string()),
        ("AWS_ACCESS_KEY_ID".into(), key.0.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), key.1.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ("AWS_MAX_ATTEMPTS".into(), "1".into()),
    ];
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg(script).envs(env).output().unwrap()).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success() && stdout.lines().any(|l| l == "DONE"), "the awscli session failed:\n{stdout}\n{stderr}");
    for action in SESSION_ACTIONS {
        let implemented = cloudbroker_ec2_api::action::Action::parse(action).is_ok();
        let passed = stdout.lines().any(|l| l.starts_with(&format!("OK: {action} ")));
        let skipped = stdout.lines().any(|l| l == format!("SKIPPED: {action} not implemented"));
        if implemented {
            // A step skipped only because an earlier one was (e.g. CreateSubnet
            // without CreateVpc) says so; anything else must pass.
            let waits = stdout.lines().any(|l| l.starts_with(&format!("SKIPPED: {action} needs ")));
            assert!(passed || waits, "{action} is implemented but its step did not pass:\n{stdout}\n{stderr}");
        } else {
            assert!(skipped && !passed, "{action} is not implemented and was not skipped as such:\n{stdout}");
        }
    }
    stdout
}
