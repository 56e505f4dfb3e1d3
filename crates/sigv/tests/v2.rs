//! SigV2 (EC2 Query API) tests.
//!
//! Expected strings and signatures were produced by an independent
//! implementation, `tests/reference/sigv_ref.py` (Python stdlib: `urllib.parse.quote`
//! with `safe='-_.~'`, `sorted` by UTF-8 key bytes, `hmac`, `hashlib`,
//! `base64`); run `python3 tests/reference/sigv_ref.py` to reproduce them.

// Test code: panicking on unexpected values is the point (the workspace
// denies these lints for library code only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, TimeZone, Utc};
use cloudbroker_sigv::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Mixed-case keys (`AWSAccessKeyId` sorts before `Action`, `Zeta` before
/// `zeta`), a value needing space/`*`/`/`/multi-byte encoding, `~` kept, and
/// `+ = &` encoded.
fn describe_images(method: &str) -> Vec<(String, String)> {
    p(&[
        ("Action", "DescribeImages"),
        ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
        ("ImageId.1", "ami-2bb65342"),
        ("Filter.1.Name", "description"),
        ("Filter.1.Value.1", "my image *~/ \u{1234} \u{e9}"),
        ("zeta", "a+b=c&d"),
        ("Zeta", "upper"),
        ("SignatureVersion", "2"),
        ("Timestamp", "2011-10-03T15:19:30Z"),
        ("Version", "2016-11-15"),
        ("SignatureMethod", method),
    ])
}

const STS_SHA256: &str = "GET\nec2.amazonaws.com\n/\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeImages&Filter.1.Name=description&Filter.1.Value.1=my%20image%20%2A~%2F%20%E1%88%B4%20%C3%A9&ImageId.1=ami-2bb65342&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30Z&Version=2016-11-15&Zeta=upper&zeta=a%2Bb%3Dc%26d";
const SIG_SHA256: &str = "S578WtEVYz02yYm+PLJAo5X/W4Ae/OMbyBlPTGZs+fg=";
const SIG_SHA1: &str = "LeeIot4sE2c7bKSu7I2odTagdfo=";

#[test]
fn canonical_string_and_signatures_match_reference() {
    let params = describe_images("HmacSHA256");
    let sts = canonical_query_v2("GET", "EC2.Amazonaws.com", "/", &params);
    assert_eq!(sts, STS_SHA256);
    assert_eq!(sign_v2(SECRET, &sts, SigV2Method::HmacSha256), SIG_SHA256);

    let params = describe_images("HmacSHA1");
    let sts = canonical_query_v2("GET", "ec2.amazonaws.com", "", &params);
    assert_eq!(sts, STS_SHA256.replace("HmacSHA256", "HmacSHA1"));
    assert_eq!(sign_v2(SECRET, &sts, SigV2Method::HmacSha1), SIG_SHA1);
}

#[test]
fn signature_param_is_ignored_in_canonical_string() {
    let mut params = describe_images("HmacSHA256");
    params.push(("Signature".into(), "whatever".into()));
    assert_eq!(canonical_query_v2("GET", "ec2.amazonaws.com", "/", &params), STS_SHA256);
}

#[test]
fn verify_reference_signatures_both_methods() {
    for (method, sig) in [("HmacSHA256", SIG_SHA256), ("HmacSHA1", SIG_SHA1)] {
        let mut params = describe_images(method);
        params.push(("Signature".into(), sig.into()));
        verify_v2("GET", "ec2.amazonaws.com", "/", &params, SECRET).unwrap();
        // Host case does not matter, the secret and every signed part do.
        verify_v2("GET", "EC2.AMAZONAWS.COM", "/", &params, SECRET).unwrap();
        let wrong_secret = SECRET.replace('w', "W");
        assert!(matches!(verify_v2("GET", "ec2.amazonaws.com", "/", &params, &wrong_secret), Err(SigError::SignatureMismatch { .. })));
        assert!(matches!(verify_v2("POST", "ec2.amazonaws.com", "/", &params, SECRET), Err(SigError::SignatureMismatch { .. })));
        assert!(matches!(verify_v2("GET", "ec2.amazonaws.com:8443", "/", &params, SECRET), Err(SigError::SignatureMismatch { .. })));
        let mut tampered = params.clone();
        tampered[2].1 = "ami-2bb65343".into();
        assert!(matches!(verify_v2("GET", "ec2.amazonaws.com", "/", &tampered, SECRET), Err(SigError::SignatureMismatch { .. })));
    }
}

#[test]
fn sign_v2_params_post_with_port_matches_reference() {
    let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let mut params = p(&[
        ("Action", "RunInstances"),
        ("UserData", "IyEvYmluL3NoCmVjaG8gaGk="),
        ("Version", "2016-11-15"),
        // Stale auth parameters are replaced.
        ("SignatureMethod", "HmacSHA1"),
        ("Signature", "stale"),
    ]);
    sign_v2_params("POST", "localhost:8773", "/services/Cloud", &mut params, "AKIAIOSFODNN7EXAMPLE", SECRET, now);
    assert_eq!(
        params,
        p(&[
            ("Action", "RunInstances"),
            ("UserData", "IyEvYmluL3NoCmVjaG8gaGk="),
            ("Version", "2016-11-15"),
            ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", "2024-01-02T03:04:05Z"),
            ("Signature", "xNBuPjpG+ZL9OOm8hp8QZBvk1xf4A0XNkhnFiW0n084="),
        ])
    );
    // What goes over the wire decodes back to what was signed.
    let body = encode_query(&params);
    let received = parse_form_urlencoded(&body).unwrap();
    assert_eq!(received, params);
    verify_v2("POST", "localhost:8773", "/services/Cloud", &received, SECRET).unwrap();
    assert_eq!(v2_access_key(&received).unwrap(), "AKIAIOSFODNN7EXAMPLE");
    check_v2_time(&received, now, MAX_CLOCK_SKEW_SECS).unwrap();
}

#[test]
fn sign_v2_params_keeps_expires_instead_of_timestamp() {
    let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let mut params = p(&[("Action", "DescribeRegions"), ("Expires", "2024-01-02T03:10:00Z")]);
    sign_v2_params("GET", "ec2.amazonaws.com", "/", &mut params, "AK", SECRET, now);
    assert!(!params.iter().any(|(k, _)| k == "Timestamp"));
    verify_v2("GET", "ec2.amazonaws.com", "/", &params, SECRET).unwrap();
    check_v2_time(&params, now, MAX_CLOCK_SKEW_SECS).unwrap();
    let later = Utc.with_ymd_and_hms(2024, 1, 2, 3, 10, 1).unwrap();
    assert_eq!(check_v2_time(&params, later, MAX_CLOCK_SKEW_SECS), Err(SigError::Expired));
}

#[test]
fn verify_v2_reports_what_is_wrong() {
    let signed = || {
        let mut params = describe_images("HmacSHA256");
        params.push(("Signature".into(), SIG_SHA256.into()));
        params
    };
    let verify = |params: &[(String, String)]| verify_v2("GET", "ec2.amazonaws.com", "/", params, SECRET);

    let mut missing = signed();
    missing.retain(|(k, _)| k != "Signature");
    assert_eq!(verify(&missing), Err(SigError::MissingQueryParam("Signature")));

    let mut dup = signed();
    dup.push(("Signature".into(), SIG_SHA256.into()));
    assert_eq!(verify(&dup), Err(SigError::DuplicateQueryParam("Signature".into())));

    let mut v1 = signed();
    for (k, v) in &mut v1 {
        if k == "SignatureVersion" {
            *v = "1".into();
        }
    }
    assert_eq!(verify(&v1), Err(SigError::UnsupportedSignatureVersion("1".into())));

    let mut md5 = signed();
    for (k, v) in &mut md5 {
        if k == "SignatureMethod" {
            *v = "HmacMD5".into();
        }
    }
    assert_eq!(verify(&md5), Err(SigError::UnsupportedAlgorithm("HmacMD5".into())));

    let mut bad_b64 = signed();
    for (k, v) in &mut bad_b64 {
        if k == "Signature" {
            *v = "not base64!".into();
        }
    }
    assert!(matches!(verify(&bad_b64), Err(SigError::MalformedSignature(_))));
}

#[test]
fn v2_time_checks() {
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2011, 10, 3, 15, 19, 30).unwrap();
    let at = |ts: &str| p(&[("Timestamp", ts)]);
    check_v2_time(&at("2011-10-03T15:34:30Z"), now, 900).unwrap();
    check_v2_time(&at("2011-10-03T15:04:30Z"), now, 900).unwrap();
    assert!(matches!(check_v2_time(&at("2011-10-03T15:34:31Z"), now, 900), Err(SigError::RequestTimeTooSkewed { skew_secs: 901, .. })));
    assert!(matches!(check_v2_time(&at("2011-10-03T15:04:29Z"), now, 900), Err(SigError::RequestTimeTooSkewed { skew_secs: -901, .. })));
    assert!(matches!(check_v2_time(&at("garbage"), now, 900), Err(SigError::MalformedDate(_))));
    assert_eq!(check_v2_time(&[], now, 900), Err(SigError::MissingQueryParam("Timestamp")));
    let both = p(&[("Timestamp", "2011-10-03T15:19:30Z"), ("Expires", "2011-10-03T15:19:30Z")]);
    assert!(matches!(check_v2_time(&both, now, 900), Err(SigError::InvalidRequest(_))));
}

/// Issue 20 item 9: `Expires` is a request time too, so it may lie at most
/// 15 minutes ahead (it had no upper bound: a request signed to live a year).
#[test]
fn expires_lies_at_most_fifteen_minutes_ahead() {
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2011, 10, 3, 15, 19, 30).unwrap();
    let expires = |ts: &str| p(&[("Expires", ts)]);
    check_v2_time(&expires("2011-10-03T15:34:30Z"), now, MAX_CLOCK_SKEW_SECS).unwrap();
    check_v2_time(&expires("2011-10-03T15:19:30Z"), now, MAX_CLOCK_SKEW_SECS).unwrap();
    assert_eq!(
        check_v2_time(&expires("2011-10-03T15:34:31Z"), now, MAX_CLOCK_SKEW_SECS),
        Err(SigError::ExpiresTooFarAhead { ahead_secs: 901, max_ahead_secs: 900 })
    );
    assert_eq!(
        check_v2_time(&expires("2011-10-03T16:19:30Z"), now, MAX_CLOCK_SKEW_SECS),
        Err(SigError::ExpiresTooFarAhead { ahead_secs: 3600, max_ahead_secs: 900 })
    );
    assert_eq!(check_v2_time(&expires("2011-10-03T15:19:29Z"), now, MAX_CLOCK_SKEW_SECS), Err(SigError::Expired));
    // The message names the figures.
    let e = check_v2_time(&expires("2012-10-03T15:19:30Z"), now, MAX_CLOCK_SKEW_SECS).unwrap_err();
    assert!(e.to_string().contains("(at most 900s allowed)"), "{e}");
}

/// Issue 20 item 7: everything but the secret is checked by `parse_v2`, so a
/// server refuses a malformed request the same way whether its key exists.
#[test]
fn parse_v2_checks_all_but_the_secret() {
    let mut signed = describe_images("HmacSHA256");
    signed.push(("Signature".into(), SIG_SHA256.into()));
    let parsed = parse_v2(&signed).unwrap();
    assert_eq!((parsed.access_key.as_str(), parsed.method), ("AKIAIOSFODNN7EXAMPLE", SigV2Method::HmacSha256));
    let sts = canonical_query_v2("GET", "ec2.amazonaws.com", "/", &signed);
    assert!(parsed.matches(SECRET, &sts));
    assert!(!parsed.matches("another secret", &sts));
    assert!(!parsed.matches(SECRET, &sts.replace("GET", "PUT")));
    // The secret never shows in Debug, nor the signature.
    assert!(!format!("{parsed:?}").contains(SIG_SHA256), "{parsed:?}");

    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        signed.iter().map(|(k, v)| if k == name { (k.clone(), value.to_string()) } else { (k.clone(), v.clone()) }).collect()
    };
    assert!(matches!(parse_v2(&with("Signature", "not base64!")), Err(SigError::MalformedSignature(_))));
    assert_eq!(parse_v2(&with("SignatureMethod", "HmacMD5")), Err(SigError::UnsupportedAlgorithm("HmacMD5".into())));
    assert_eq!(parse_v2(&with("SignatureVersion", "1")), Err(SigError::UnsupportedSignatureVersion("1".into())));
    let no_key: Vec<_> = signed.iter().filter(|(k, _)| k != "AWSAccessKeyId").cloned().collect();
    assert_eq!(parse_v2(&no_key), Err(SigError::MissingQueryParam("AWSAccessKeyId")));
    // verify_v2 keeps its answers (its tests above), and agrees with parse_v2 + matches.
    verify_v2("GET", "ec2.amazonaws.com", "/", &signed, SECRET).unwrap();
}
