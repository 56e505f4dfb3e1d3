//! Issue 20, items 3, 6, 7 and 9: the EC2 front acts only on what a
//! signature covers, checks a presigned URL's expiry wherever its signature
//! is put, answers the same for an unknown key as for a wrong signature, and
//! bounds a SigV2 `Expires`. Each scenario replays, against a real broker on
//! SQLite and PostgreSQL, a request an attacker could make from a captured
//! one; presigned URLs come from boto3 (a client nobody here wrote), the
//! rest is signed raw with `cloudbroker-sigv` so it can be taken apart.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::json;

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const UNKNOWN_KEY: &str = "AKIAUNKNOWNKEY000000";

/// alice's access key (id, secret), an image for `sb`, and two running instances.
async fn setup(app: &TestApp) -> ((String, String), [String; 2]) {
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204", "instance_type": "t2.small"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let t = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &t, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    let (_, images) = app.ec2_call(&key, "sb", "Action=DescribeImages&Version=2016-11-15").await;
    let ami = between(&images, "<imageId>", "<").unwrap();
    let (s, run) = app.ec2_call(&key, "sb", &format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&MinCount=2&MaxCount=2")).await;
    assert_eq!(s, 200, "{run}");
    let ids: Vec<String> = run.split("<instanceId>").skip(1).map(|r| r.split('<').next().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2, "{run}");
    (key, [ids[0].clone(), ids[1].clone()])
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    s.split_once(start).and_then(|(_, r)| r.split_once(end)).map(|(v, _)| v.to_string())
}

/// (status, EC2 error code, message) of an answer.
fn answer(status: u16, body: &str) -> (u16, String, String) {
    (status, between(body, "<Code>", "</Code>").unwrap_or_default(), between(body, "<Message>", "</Message>").unwrap_or_default())
}

/// Whether `id` has been told to shut down (its state as the broker says it).
async fn shut_down(app: &TestApp, key: &(String, String), id: &str) -> bool {
    let (s, body) = app.ec2_call(key, "sb", &format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={id}")).await;
    assert_eq!(s, 200, "{body}");
    let state = between(&body, "<instanceState>", "</instanceState>").and_then(|x| between(&x, "<name>", "</name>")).unwrap();
    matches!(state.as_str(), "shutting-down" | "terminated")
}

fn host(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// `params` SigV2-signed for a POST to `path` (its form body), now or with `Expires`.
fn sigv2(app: &TestApp, key: &(String, String), method: &str, path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    p.push(("Version".into(), "2016-11-15".into()));
    cloudbroker_sigv::sign_v2_params(method, &host(app), path, &mut p, &key.0, &key.1, chrono::Utc::now());
    p
}

async fn send(r: reqwest::RequestBuilder) -> (u16, String) {
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A URL presigned by boto3 (`generate_presigned_url`) for `operation` with `params` (JSON).
async fn boto3_presigned(app: &TestApp, key: &(String, String), operation: &str, params: &str, expires: u32, http_method: &str) -> String {
    let code = format!(
        "import boto3, json, sys\n\
         c = boto3.client('ec2', endpoint_url=sys.argv[1], region_name='sb', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])\n\
         print(c.generate_presigned_url('{operation}', Params=json.loads(sys.argv[4]), ExpiresIn={expires}, HttpMethod='{http_method}'))\n"
    );
    let args = vec!["-c".to_string(), code, app.url("/ec2"), key.0.clone(), key.1.clone(), params.to_string()];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cloudbroker_testkit::venv_python())
            .args(args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

// Item 3: a SigV2 POST signs its form body only; the replay of a captured
// `TerminateInstances` for A with `?InstanceId.2=B` added to the URL
// terminated both. It is refused, naming the parameter, and nothing is done.
app_test!(a_sigv2_post_acts_on_its_signed_form_only, |app: TestApp| async move {
    let (key, [a, b]) = setup(&app).await;
    let signed = sigv2(&app, &key, "POST", "/ec2/sb", &[("Action", "TerminateInstances"), ("InstanceId.1", &a)]);
    let body = cloudbroker_sigv::encode_query(&signed);
    let (s, text) =
        send(app.http.post(app.url(&format!("/ec2/sb?InstanceId.2={b}"))).header("content-type", FORM).body(body.clone())).await;
    let (status, code, message) = answer(s, &text);
    assert_eq!((status, code.as_str()), (400, "InvalidParameter"), "{text}");
    assert!(message.contains("InstanceId.2") && message.contains("SigV2 POST"), "{message}");
    assert!(!shut_down(&app, &key, &a).await && !shut_down(&app, &key, &b).await, "the refused request acted");
    // An unsigned query parameter of any name is refused, even a harmless one.
    let (s, text) = send(app.http.post(app.url("/ec2/sb?Version=2016-11-15")).header("content-type", FORM).body(body.clone())).await;
    assert_eq!(answer(s, &text).1, "InvalidParameter", "{text}");
    // The request as signed does what it says, and only that.
    let (s, text) = send(app.http.post(app.url("/ec2/sb")).header("content-type", FORM).body(body)).await;
    assert_eq!(s, 200, "{text}");
    assert!(shut_down(&app, &key, &a).await && !shut_down(&app, &key, &b).await);
});

/// A presigned URL for `/ec2` with `query`, its payload hash `payload`.
fn presigned(app: &TestApp, key: &(String, String), method: &str, query: &[(&str, &str)], payload: &str) -> String {
    let query: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let headers = vec![("host".to_string(), host(app))];
    let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, "sb", "ec2", chrono::Utc::now());
    let mut full = query.clone();
    full.extend(cloudbroker_sigv::presign_v4(method, "/ec2", &query, &headers, payload, &params, 60).unwrap());
    app.url(&format!("/ec2?{}", cloudbroker_sigv::encode_query(&full)))
}

// Item 3: a presigned URL may carry a body only if it signed the body's
// hash. One signed with UNSIGNED-PAYLOAD covers no body: a form body added
// to it was merged into the parameters; it is refused, and nothing is done.
app_test!(a_presigned_url_carries_no_body_it_did_not_sign, |app: TestApp| async move {
    let (key, [a, b]) = setup(&app).await;
    let v = "2016-11-15";
    let url = presigned(&app, &key, "POST", &[("Action", "TerminateInstances"), ("Version", v), ("InstanceId.1", &a)], "UNSIGNED-PAYLOAD");
    let (s, text) = send(app.http.post(&url).header("content-type", FORM).body(format!("InstanceId.2={b}"))).await;
    let (status, code, message) = answer(s, &text);
    assert_eq!((status, code.as_str()), (400, "IncompleteSignature"), "{text}");
    assert!(message.contains("UNSIGNED-PAYLOAD"), "{message}");
    assert!(!shut_down(&app, &key, &a).await && !shut_down(&app, &key, &b).await, "the refused request acted");
    // The URL as presigned works, on A only.
    let (s, text) = send(app.http.post(&url)).await;
    assert_eq!(s, 200, "{text}");
    assert!(shut_down(&app, &key, &a).await && !shut_down(&app, &key, &b).await);

    // boto3 presigns the empty body's hash: a body added to its URL does not verify.
    let url = boto3_presigned(&app, &key, "terminate_instances", &json!({"InstanceIds": [b]}).to_string(), 300, "POST").await;
    assert!(url.contains("X-Amz-Signature=") && url.contains(&b), "{url}");
    let (s, text) = send(app.http.post(&url).header("content-type", FORM).body(format!("InstanceId.2={a}"))).await;
    assert_eq!(answer(s, &text).1, "AuthFailure", "{text}");
    assert!(!shut_down(&app, &key, &b).await, "the refused request acted");

    // A presigned body hash covers the body: accepted, and the body is read ...
    let body = format!("InstanceId.1={b}");
    let url =
        presigned(&app, &key, "POST", &[("Action", "DescribeInstances"), ("Version", v)], &cloudbroker_sigv::sha256_hex(body.as_bytes()));
    let (s, text) = send(app.http.post(&url).header("content-type", FORM).body(body.clone())).await;
    assert_eq!(s, 200, "{text}");
    assert!(text.contains(&b) && !text.contains(&a), "the body's filter was not applied: {text}");
    // ... and only that body.
    let (s, text) = send(app.http.post(&url).header("content-type", FORM).body(format!("{body}&InstanceId.2={a}"))).await;
    assert_eq!(answer(s, &text).1, "AuthFailure", "{text}");
});

// Item 6: boto3's presigned URL with ExpiresIn=1, 3 s later, is refused as a
// URL; it was accepted once its signature was moved into an Authorization
// header with a fresh X-Amz-Date. A header signature may carry no X-Amz-*
// parameter in its query.
app_test!(a_presigned_signature_moved_into_a_header_is_refused, |app: TestApp| async move {
    let (key, _) = setup(&app).await;
    let url = boto3_presigned(&app, &key, "describe_regions", "{}", 1, "GET").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (s, text) = send(app.http.get(&url)).await;
    assert_eq!(answer(s, &text).0, 400, "{text}");
    assert_eq!(answer(s, &text).1, "RequestExpired", "{text}");

    let query = cloudbroker_sigv::parse_query(url.split_once('?').unwrap().1).unwrap();
    let presigned = cloudbroker_sigv::parse_presigned_query(&query).unwrap();
    let fresh = cloudbroker_sigv::format_amz_date(chrono::Utc::now());
    for url in [url.clone(), url.replace("X-Amz-Expires=1", "X-Amz-Expires=3600")] {
        let (s, text) =
            send(app.http.get(&url).header("authorization", presigned.auth.to_string()).header("x-amz-date", fresh.as_str())).await;
        let (status, code, message) = answer(s, &text);
        assert_eq!((status, code.as_str()), (400, "IncompleteSignature"), "{text}");
        assert!(message.contains("X-Amz-") && message.contains("Authorization header"), "{message}");
    }
    // A genuine header signature with an X-Amz-* query parameter beside it: refused the same way.
    let headers = vec![("host".to_string(), host(&app))];
    let q = vec![("Action".to_string(), "DescribeRegions".to_string()), ("X-Amz-Expires".to_string(), "1".to_string())];
    let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, "sb", "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("GET", "/ec2", &q, &headers, b"", &params).unwrap();
    let mut r = app.http.get(app.url(&format!("/ec2?{}", cloudbroker_sigv::encode_query(&q))));
    for (k, v) in &added {
        r = r.header(k.as_str(), v.as_str());
    }
    let (s, text) = send(r).await;
    let (status, code, message) = answer(s, &text);
    assert_eq!((status, code.as_str()), (400, "IncompleteSignature"), "{text}");
    assert!(message.contains("`X-Amz-Expires`"), "{message}");
});

/// A change made to a signed `Authorization` value.
type Tweak = fn(String) -> String;

/// SigV4 in the header for DescribeRegions, with `key` and its signature
/// then altered by `tweak` (on the Authorization value).
async fn v4_header(app: &TestApp, key: &(String, String), tweak: impl Fn(String) -> String) -> (u16, String, String) {
    let body = "Action=DescribeRegions&Version=2016-11-15";
    let headers = vec![("host".to_string(), host(app)), ("content-type".to_string(), FORM.to_string())];
    let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, "sb", "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("POST", "/ec2", &[], &headers, body.as_bytes(), &params).unwrap();
    let mut r = app.http.post(app.url("/ec2")).header("content-type", FORM).body(body);
    for (k, v) in added {
        let v = if k == "Authorization" { tweak(v) } else { v };
        r = r.header(k.as_str(), v.as_str());
    }
    let (s, text) = send(r).await;
    answer(s, &text)
}

/// SigV2 GET for DescribeRegions with `key`, a parameter then replaced.
async fn v2_get(app: &TestApp, key: &(String, String), replace: Option<(&str, &str)>) -> (u16, String, String) {
    let mut p = sigv2(app, key, "GET", "/ec2/sb", &[("Action", "DescribeRegions")]);
    if let Some((name, value)) = replace {
        p.iter_mut().filter(|(k, _)| k == name).for_each(|(_, v)| *v = value.to_string());
    }
    let (s, text) = send(app.http.get(app.url(&format!("/ec2/sb?{}", cloudbroker_sigv::encode_query(&p))))).await;
    answer(s, &text)
}

// Item 7: a wrong signature with an active key answered 400
// IncompleteSignature where an unknown key answered 401 AuthFailure. Every
// structural check now comes before the key lookup: each malformed request
// gets the same answer (status, code, message) for an active key, a
// disabled key and an unknown key; every signature failure is AuthFailure.
app_test!(unknown_disabled_and_active_keys_answer_alike, |app: TestApp| async move {
    let (active, _) = setup(&app).await;
    let alice = app.token("alice", "alice-password").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 201, "{k}");
    let disabled = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    let (s, _) = app.call(Method::POST, &format!("/api/v1/users/alice/access-keys/{}/disable", disabled.0), &alice, None).await;
    assert_eq!(s, 200);
    let unknown = (UNKNOWN_KEY.to_string(), active.1.clone());
    let wrong_secret = |k: &(String, String)| (k.0.clone(), "not-the-secret".to_string());

    // Both signed correctly, the active key works (the probe is sound).
    assert_eq!(v4_header(&app, &active, |v| v).await.0, 200);
    assert_eq!(v2_get(&app, &active, None).await.0, 200);

    let structural: Vec<(&str, Tweak)> = vec![
        ("host not signed", |v| v.replace("SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;x-amz-date")),
        ("x-amz-date not signed", |v| v.replace("SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;host")),
        ("a signed header not sent", |v| {
            v.replace("SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;host;x-amz-date;x-not-sent")
        }),
    ];
    for (what, tweak) in structural {
        let want = v4_header(&app, &active, tweak).await;
        assert_eq!((want.0, want.1.as_str()), (400, "IncompleteSignature"), "{what}: {want:?}");
        assert_eq!(v4_header(&app, &disabled, tweak).await, want, "{what}: a disabled key answers differently");
        assert_eq!(v4_header(&app, &unknown, tweak).await, want, "{what}: an unknown key answers differently");
    }
    for (name, value) in [("SignatureMethod", "HmacMD5"), ("Signature", "not base64!"), ("SignatureVersion", "1")] {
        let want = v2_get(&app, &active, Some((name, value))).await;
        assert_eq!((want.0, want.1.as_str()), (400, "IncompleteSignature"), "{name}: {want:?}");
        assert_eq!(v2_get(&app, &disabled, Some((name, value))).await, want, "{name}: a disabled key answers differently");
        assert_eq!(v2_get(&app, &unknown, Some((name, value))).await, want, "{name}: an unknown key answers differently");
    }

    // Signature failures: one AuthFailure for all.
    let failure = (401, "AuthFailure".to_string(), "AWS was not able to validate the provided access credentials".to_string());
    for k in [&active, &disabled, &unknown] {
        assert_eq!(v4_header(&app, &wrong_secret(k), |v| v).await, failure, "{}", k.0);
        assert_eq!(v2_get(&app, &wrong_secret(k), None).await, failure, "{}", k.0);
        let flip_last = |v: String| {
            let last = if v.ends_with('0') { '1' } else { '0' };
            format!("{}{last}", &v[..v.len() - 1])
        };
        assert_eq!(v4_header(&app, k, flip_last).await, failure, "{}", k.0);
    }
    assert_eq!(v4_header(&app, &disabled, |v| v).await, failure);
    assert_eq!(v2_get(&app, &unknown, None).await, failure);
});

// Item 9: a SigV2 `Expires` had no upper bound (a captured request lived as
// long as its signer chose). At most 15 minutes ahead, as the README says.
app_test!(a_sigv2_expires_lies_at_most_fifteen_minutes_ahead, |app: TestApp| async move {
    let (key, [a, _]) = setup(&app).await;
    let expires = |mins: i64| cloudbroker_sigv::format_v2_timestamp(chrono::Utc::now() + chrono::Duration::minutes(mins));
    let call = |e: String, action: &'static str, id: Option<String>| {
        let app = &app;
        let key = &key;
        async move {
            let mut params = vec![("Action", action), ("Expires", e.as_str())];
            if let Some(id) = id.as_deref() {
                params.push(("InstanceId.1", id));
            }
            let p = sigv2(app, key, "GET", "/ec2/sb", &params);
            let (s, text) = send(app.http.get(app.url(&format!("/ec2/sb?{}", cloudbroker_sigv::encode_query(&p))))).await;
            answer(s, &text)
        }
    };
    let (status, code, message) = call(expires(60), "TerminateInstances", Some(a.clone())).await;
    assert_eq!((status, code.as_str()), (400, "RequestExpired"), "{message}");
    assert!(message.contains("at most 900 seconds"), "{message}");
    assert!(!shut_down(&app, &key, &a).await, "the refused request acted");
    let (status, code, _) = call(expires(60 * 24 * 365), "DescribeRegions", None).await;
    assert_eq!((status, code.as_str()), (400, "RequestExpired"));
    assert_eq!(call(expires(10), "DescribeRegions", None).await.0, 200);
    assert_eq!(call(expires(-1), "DescribeRegions", None).await.1, "RequestExpired");
});
