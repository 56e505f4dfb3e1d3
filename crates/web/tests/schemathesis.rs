//! The JSON API checked against its own OpenAPI document by a tool that did
//! not write it: schemathesis (from the project's venv, `scripts/python-venv`)
//! runs every check (`--checks all`: status codes, content types, response
//! schemas, positive and negative data, missing auth, 405 with `Allow`,
//! use-after-free, resources available after creation ...) against a broker
//! on loopback with an admin token and some data, and must find nothing.
//! Each run takes a fresh random seed, printed (and named in a failure) so
//! that run can be replayed with `CLOUDBROKER_SCHEMATHESIS_SEED`.
//!
//! Left out, by operation id, because they would end the run rather than
//! test anything: `rotate_keys` (re-seals every credential under a new
//! master key), `set_password` (ends every session and token of the user,
//! the caller's own included), `revoke_token` and `revoke_user_token` (the
//! caller's own token can be listed and so revoked), `disable_user`
//! (disabling a user revokes their access). They have tests of their own.
//!
//! Three operations (and `put_application`, below) take a 400 among the answers to schema-valid data:
//! `cost_report` and `vm_cost`, whose `from` and `to` must be in order (and
//! for a report at most 400 days apart), which a schema cannot say (each is
//! a valid RFC 3339 time on its own); such a pair is refused with a 400
//! naming `to` (tests/costs_api.rs). And `put_project_policy`, whose values follow
//! the grammar of the instance parameters of the same names (type lists,
//! tag rules such as `cost-center=(rd|ops)`, durations, a count within
//! 1-1000), checked by the parameters' own specs: a string the schema
//! allows may still be refused with a 400 naming the parameter
//! (tests/project_policies_api.rs). Every other check still applies to them.
//! Likewise `put_application`: an application document's rules reach
//! across fields (a `depends_on` or a mapping names a node or parameter
//! declared elsewhere, no dependency cycle, names of nodes as map keys,
//! a total of VMs): a document the schema allows may be refused with a
//! 400 `invalid_document` naming each path (tests/applications_api.rs).
//! And `put_price` / `delete_price`: a price's effective time must not be
//! in the past by the broker's clock and an address is named `-` (a 400
//! naming the field), and only a price not in effect yet may be deleted (a
//! 409 otherwise), which a schema cannot say (tests/prices_admin.rs).
//! And `put_budget`: a project budget is for team projects; a personal
//! project (named as its owner) is refused with a 400 naming `owner`, which
//! depends on which projects exist (crates/core/tests/budget_review.rs).
//! And `launch`: the cloud behind the instance checks the values it is
//! given (an instance type it does not offer, a subnet) and its refusal is a
//! 400 `cloud.CODE` (tests/ec2_fidelity.rs, tests/vpc_launch_api.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

/// Operations excluded from the run, and why: see the file's comment.
const EXCLUDED: &[&str] = &["rotate_keys", "set_password", "revoke_token", "revoke_user_token", "disable_user"];

/// Operations that may answer schema-valid data with a 400, and why: see the file's comment.
const CROSS_FIELD_RULES: &[&str] = &[
    "cost_report",
    "vm_cost",
    "put_project_policy",
    "put_application",
    "put_price",
    "delete_price",
    "put_budget",
    // A launch: the cloud behind the instance checks what it is given (an instance type it
    // does not offer is its 400 `cloud.InvalidParameterValue`), which no schema can say.
    "launch",
    // Security groups: names (not `default`, not `sg-*`), protocols, ports and CIDR blocks are checked as EC2 does.
    "create_security_group",
    "add_security_group_rule",
    "remove_security_group_rule",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    let schemathesis = cloudbroker_testkit::venv_dir().join("bin").join("schemathesis");
    assert!(schemathesis.exists(), "{} is missing: run scripts/python-venv", schemathesis.display());
    let app = TestApp::sqlite().await;
    let admin = app.token("super", SUPER_PW).await;
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/images",
            &admin,
            Some(json!({"name": "linux", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    app.user(&admin, "alice").await;
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &admin, Some(json!({"instance": "sb", "image": "linux", "name": "web"}))).await;
    assert_eq!(s, 201, "{b}");

    // A fresh seed every run (so runs explore different data), printed so a
    // failure can be replayed: CLOUDBROKER_SCHEMATHESIS_SEED=<seed>.
    let seed = std::env::var("CLOUDBROKER_SCHEMATHESIS_SEED")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    eprintln!("schemathesis seed {seed} (replay with CLOUDBROKER_SCHEMATHESIS_SEED={seed})");
    let mut config = String::new();
    for op in CROSS_FIELD_RULES {
        config.push_str(&format!(
            "[[operations]]\ninclude-operation-id = \"{op}\"\nchecks.positive_data_acceptance.expected-statuses = [\"2xx\", \"3xx\", \"400\", \"401\", \"403\", \"404\", \"409\", \"429\", \"5xx\"]\n\n"
        ));
    }
    let config_file = app.dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut cmd = std::process::Command::new(&schemathesis);
    cmd.arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--checks", "all", "--max-examples", "20", "--seed", &seed.to_string(), "--no-color", "--output-sanitize", "false"])
        .args(["--request-timeout", "30", "--header", &format!("Authorization: Bearer {admin}")]);
    for op in EXCLUDED {
        cmd.args(["--exclude-operation-id", op]);
    }
    // Schemathesis keeps its reports under the working directory.
    cmd.current_dir(app.dir.path()).env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed with seed {seed} (replay: CLOUDBROKER_SCHEMATHESIS_SEED={seed}) ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It really ran: every operation but the excluded ones was tested.
    assert!(stdout.contains("Tested: "), "{stdout}");
    assert!(!stdout.contains("Tested: 0"), "{stdout}");
    eprintln!("{}", stdout.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
    app.stop().await;
}
