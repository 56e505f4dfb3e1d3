//! The checked-in corpus of malformed EC2 Query requests: each
//! `tests/corpus/ec2/NAME.txt` holds one form body, sent correctly signed
//! (SigV4, region `sb`) by a user who owns nothing, and the answer's HTTP
//! status, EC2 error code and message must equal `NAME.expected` exactly.
//! The request is malformed, never the signature: a parser that mistakes
//! one for the other shows up here. Rerun with `CLOUDBROKER_BLESS=1` to
//! rewrite the expectations after a deliberate change, and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/ec2")
}

/// The text between `<tag>` and `</tag>`, if any.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

app_test!(every_malformed_request_gets_its_exact_error, |app: TestApp| async move {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let t = app.user(&admin, "carol").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/carol/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    // The key works: a well-formed request is answered.
    let (s, body) = app.ec2_call(&key, "sb", "Action=DescribeInstances&Version=2016-11-15").await;
    assert_eq!(s, 200, "{body}");

    let bless = std::env::var_os("CLOUDBROKER_BLESS").is_some();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "txt")).collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus holds {} requests", files.len());
    let mut mismatches = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let body = std::fs::read_to_string(f).unwrap();
        let (status, xml) = app.ec2_call(&key, "sb", body.trim_end()).await;
        // Every answer is EC2's error document with a request id, never a signature complaint.
        assert!(xml.contains("<Response><Errors><Error>") && element(&xml, "RequestID").is_some(), "{name}: {status} {xml}");
        let code = element(&xml, "Code").unwrap_or_default();
        assert!(!matches!(code, "AuthFailure" | "SignatureDoesNotMatch" | "IncompleteSignature"), "{name}: {xml}");
        let got = format!("{status} {code}: {}\n", element(&xml, "Message").unwrap_or_default());
        let expected_path = f.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if got != expected {
            mismatches.push(format!("{name}: expected {expected}          got {got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join(""));
    // Nothing was launched or stored by any of them.
    let (_, vms) = app.call(Method::GET, "/api/v1/vms", &t, None).await;
    assert_eq!(vms["vms"].as_array().map(Vec::len), Some(0), "{vms}");
});
