//! SigV4 parsing, verification and clock-skew tests.

// Test code: panicking on unexpected values is the point (the workspace
// denies these lints for library code only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, TimeZone, Utc};
use cloudbroker_sigv::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const GOOD: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn parses_a_good_authorization_header() {
    let auth = parse_authorization_header(GOOD).unwrap();
    assert_eq!(
        auth,
        ParsedAuthorization {
            access_key: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "ec2".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
        }
    );
    assert_eq!(auth.scope(), "20150830/us-east-1/ec2/aws4_request");
    assert_eq!(auth.to_string(), GOOD);
    auth.check_scope("us-east-1", "ec2").unwrap();
    assert!(matches!(auth.check_scope("eu-west-1", "ec2"), Err(SigError::ScopeMismatch { .. })));

    // Any component order, no space after commas, surrounding whitespace.
    let reordered = "  AWS4-HMAC-SHA256 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31,SignedHeaders=host;x-amz-date,Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request ";
    assert_eq!(parse_authorization_header(reordered).unwrap(), auth);
}

#[test]
fn malformed_authorization_headers_name_the_problem() {
    let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    let cred = "Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request";
    let sh = "SignedHeaders=host;x-amz-date";
    let with = |c: &str, s: &str, g: &str| format!("AWS4-HMAC-SHA256 {c}, {s}, {g}");
    let good_sig = format!("Signature={sig}");

    let cases: Vec<(String, SigError)> = vec![
        (GOOD.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), SigError::UnsupportedAlgorithm("AWS4-HMAC-SHA512".into())),
        ("AWS AKIDEXAMPLE:c2lnbmF0dXJl".into(), SigError::UnsupportedAlgorithm("AWS".into())),
        ("AWS4-HMAC-SHA256".into(), SigError::MalformedAuthorization("no components after the algorithm".into())),
        (format!("AWS4-HMAC-SHA256 {sh}, {good_sig}"), SigError::MissingComponent("Credential")),
        (format!("AWS4-HMAC-SHA256 {cred}, {good_sig}"), SigError::MissingComponent("SignedHeaders")),
        (format!("AWS4-HMAC-SHA256 {cred}, {sh}"), SigError::MissingComponent("Signature")),
        (format!("{}, {sh}", with(cred, sh, &good_sig)), SigError::DuplicateComponent("SignedHeaders".into())),
        (format!("{}, Foo=bar", with(cred, sh, &good_sig)), SigError::MalformedAuthorization("unknown component `Foo`".into())),
        (format!("{}, junk", with(cred, sh, &good_sig)), SigError::MalformedAuthorization("component `junk` is not Key=Value".into())),
    ];
    for (header, want) in cases {
        assert_eq!(parse_authorization_header(&header), Err(want), "{header}");
    }

    // Credential problems.
    for bad in [
        "Credential=AKIDEXAMPLE/20150830/us-east-1/ec2",
        "Credential=/20150830/us-east-1/ec2/aws4_request",
        "Credential=AKIDEXAMPLE/2015083/us-east-1/ec2/aws4_request",
        "Credential=AKIDEXAMPLE/20151330/us-east-1/ec2/aws4_request",
        "Credential=AKIDEXAMPLE/20150830//ec2/aws4_request",
        "Credential=AKIDEXAMPLE/20150830/us-east-1//aws4_request",
        "Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws5_request",
        "Credential=AKID/EXAMPLE/20150830/us-east-1/ec2/aws4_request",
    ] {
        let header = with(bad, sh, &good_sig);
        assert!(
            matches!(parse_authorization_header(&header), Err(SigError::MalformedCredential(_))),
            "{bad}: {:?}",
            parse_authorization_header(&header)
        );
    }

    // SignedHeaders problems.
    for bad in [
        "SignedHeaders=",
        "SignedHeaders=Host;x-amz-date",
        "SignedHeaders=x-amz-date;host",
        "SignedHeaders=host;host",
        "SignedHeaders=host;;x-amz-date",
    ] {
        let header = with(cred, bad, &good_sig);
        assert!(
            matches!(parse_authorization_header(&header), Err(SigError::MalformedSignedHeaders(_))),
            "{bad}: {:?}",
            parse_authorization_header(&header)
        );
    }

    // Signature problems.
    for bad in [
        "Signature=".to_string(),
        format!("Signature={}", &sig[1..]),
        format!("Signature={}", sig.to_uppercase()),
        format!("Signature={}g", &sig[1..]),
    ] {
        let header = with(cred, sh, &bad);
        assert!(matches!(parse_authorization_header(&header), Err(SigError::MalformedSignature(_))), "{bad}");
    }
}

/// An EC2 Query API call as the client in this workspace will send it.
struct Ec2Call {
    headers: Vec<(String, String)>,
    body: &'static [u8],
}

fn ec2_call() -> Ec2Call {
    Ec2Call {
        headers: h(&[("Host", "ec2.us-east-1.amazonaws.com"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]),
        body: b"Action=DescribeInstances&Version=2016-11-15",
    }
}

fn ec2_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
}

/// Signs [`ec2_call`] and returns the full received header list.
fn signed_ec2(secret: &str) -> Vec<(String, String)> {
    let call = ec2_call();
    let params = SigningParams::new("AKIDEXAMPLE", secret, "us-east-1", "ec2", ec2_time());
    let added = sign_v4_headers("POST", "/", &[], &call.headers, call.body, &params).unwrap();
    let mut all = call.headers;
    all.extend(added);
    all.push(("User-Agent".into(), "not-signed/1.0".into()));
    all
}

fn verify(headers: &[(String, String)], body: &[u8], secret: &str) -> Result<(), SigError> {
    let auth = headers.iter().find(|(n, _)| n == "Authorization").map(|(_, v)| parse_authorization_header(v)).unwrap()?;
    let payload = sha256_hex(body);
    verify_v4(&SigV4Request::new("POST", "/", &[], headers, &payload), &auth, secret)
}

#[test]
fn sign_v4_headers_matches_independent_reference() {
    // Expected signature from tests/reference/sigv_ref.py (Python hmac/hashlib).
    let headers = signed_ec2(SECRET);
    let value = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(value("X-Amz-Date"), "20240102T030405Z");
    assert_eq!(
        value("Authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/ec2/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=b329ada4f3cb9a45d0cc9a4b9ae1287418163fc04405dc4fe16c377c2c71b542"
    );
    assert!(!headers.iter().any(|(n, _)| n == "X-Amz-Security-Token"));
}

#[test]
fn verify_v4_accepts_signed_request_and_rejects_one_char_changes() {
    let call = ec2_call();
    let headers = signed_ec2(SECRET);
    verify(&headers, call.body, SECRET).unwrap();

    // Secret with one character changed.
    let mut secret = SECRET.to_string();
    secret.replace_range(0..1, "W");
    assert!(matches!(verify(&headers, call.body, &secret), Err(SigError::SignatureMismatch { .. })));

    // Body with one character changed.
    let body = b"Action=DescribeInstances&Version=2016-11-16";
    assert!(matches!(verify(&headers, body, SECRET), Err(SigError::SignatureMismatch { .. })));

    // Signed header with one character changed.
    let mut tampered = headers.clone();
    tampered[0].1 = "ec2.us-east-2.amazonaws.com".into();
    assert!(matches!(verify(&tampered, call.body, SECRET), Err(SigError::SignatureMismatch { .. })));

    // Signature with one character changed.
    let mut tampered = headers.clone();
    for (n, v) in &mut tampered {
        if n == "Authorization" {
            let last = v.pop().unwrap();
            v.push(if last == '0' { '1' } else { '0' });
        }
    }
    let err = verify(&tampered, call.body, SECRET).unwrap_err();
    let SigError::SignatureMismatch { canonical_request, string_to_sign } = err else {
        panic!("unexpected {err:?}");
    };
    assert!(canonical_request.starts_with("POST\n/\n\ncontent-type:"));
    assert!(string_to_sign.starts_with("AWS4-HMAC-SHA256\n20240102T030405Z\n"));

    // Unsigned headers may change freely; header name case does not matter.
    let mut relaxed = headers.clone();
    for (n, v) in &mut relaxed {
        if n == "User-Agent" {
            *v = "something-else".into();
        }
        if n == "Host" {
            *n = "HOST".into();
        }
    }
    verify(&relaxed, call.body, SECRET).unwrap();
}

#[test]
fn verify_v4_structural_errors() {
    let call = ec2_call();
    let headers = signed_ec2(SECRET);
    let auth_of = |hs: &[(String, String)]| parse_authorization_header(&hs.iter().find(|(n, _)| n == "Authorization").unwrap().1).unwrap();
    let payload = sha256_hex(call.body);
    let run =
        |hs: &[(String, String)], auth: &ParsedAuthorization| verify_v4(&SigV4Request::new("POST", "/", &[], hs, &payload), auth, SECRET);

    let no_date: Vec<_> = headers.iter().filter(|(n, _)| n != "X-Amz-Date").cloned().collect();
    assert_eq!(run(&no_date, &auth_of(&headers)), Err(SigError::MissingHeader("x-amz-date".into())));

    let no_ct: Vec<_> = headers.iter().filter(|(n, _)| n != "Content-Type").cloned().collect();
    assert_eq!(run(&no_ct, &auth_of(&headers)), Err(SigError::MissingHeader("content-type".into())));

    let mut auth = auth_of(&headers);
    auth.signed_headers.retain(|n| n != "host");
    assert_eq!(run(&headers, &auth), Err(SigError::UnsignedHeader("host".into())));

    let mut auth = auth_of(&headers);
    auth.signed_headers.retain(|n| n != "x-amz-date");
    assert_eq!(run(&headers, &auth), Err(SigError::UnsignedHeader("x-amz-date".into())));

    let mut auth = auth_of(&headers);
    auth.date = "20240103".into();
    assert!(matches!(run(&headers, &auth), Err(SigError::ScopeDateMismatch { .. })));
}

#[test]
fn sign_v4_headers_input_errors_and_session_token() {
    let call = ec2_call();
    let mut params = SigningParams::new("AKID", SECRET, "us-east-1", "ec2", ec2_time());
    let no_host = h(&[("Content-Type", "text/plain")]);
    assert_eq!(sign_v4_headers("POST", "/", &[], &no_host, b"", &params), Err(SigError::MissingHeader("host".into())));
    let mut dated = call.headers.clone();
    dated.push(("x-amz-date".into(), "20240102T030405Z".into()));
    assert_eq!(sign_v4_headers("POST", "/", &[], &dated, b"", &params), Err(SigError::ConflictingHeader("x-amz-date".into())));

    params.session_token = Some("TOKEN/+=");
    let added = sign_v4_headers("POST", "/", &[], &call.headers, call.body, &params).unwrap();
    let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["X-Amz-Date", "X-Amz-Security-Token", "Authorization"]);
    assert!(added[2].1.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"));
    let mut all = call.headers.clone();
    all.extend(added);
    verify(&all, call.body, SECRET).unwrap();
    // Dropping the token invalidates the request.
    all.retain(|(n, _)| n != "X-Amz-Security-Token");
    assert_eq!(verify(&all, call.body, SECRET), Err(SigError::MissingHeader("x-amz-security-token".into())));
}

#[test]
fn presign_round_trip_and_query_errors() {
    let headers = h(&[("Host", "ec2.us-east-1.amazonaws.com")]);
    let query = h(&[("Action", "DescribeRegions"), ("Version", "2016-11-15")]);
    let params = SigningParams::new("AKIDEXAMPLE", SECRET, "us-east-1", "ec2", ec2_time());
    let added = presign_v4("GET", "/", &query, &headers, EMPTY_PAYLOAD_SHA256, &params, 300).unwrap();
    let mut full = query.clone();
    full.extend(added);
    // Through the wire and back.
    let received = parse_query(&encode_query(&full)).unwrap();
    assert_eq!(received, full);
    let presigned = parse_presigned_query(&received).unwrap();
    assert_eq!(presigned.expires_secs, 300);
    assert_eq!(presigned.amz_date, "20240102T030405Z");
    assert_eq!(presigned.auth.signed_headers, ["host"]);
    let req = SigV4Request::new("GET", "/", &received, &headers, EMPTY_PAYLOAD_SHA256);
    verify_v4(&req, &presigned.auth, SECRET).unwrap();

    // Tampered parameter.
    let mut tampered = received.clone();
    tampered[0].1 = "DescribeRegionz".into();
    let req_t = SigV4Request::new("GET", "/", &tampered, &headers, EMPTY_PAYLOAD_SHA256);
    assert!(matches!(verify_v4(&req_t, &presigned.auth, SECRET), Err(SigError::SignatureMismatch { .. })));

    // Expiry window.
    presigned.check_expiry(ec2_time(), 900).unwrap();
    presigned.check_expiry(ec2_time() + Duration::seconds(300), 900).unwrap();
    assert_eq!(presigned.check_expiry(ec2_time() + Duration::seconds(301), 900), Err(SigError::Expired));
    assert!(matches!(presigned.check_expiry(ec2_time() - Duration::seconds(901), 900), Err(SigError::RequestTimeTooSkewed { .. })));

    // Missing / malformed parameters.
    let without = |name: &str| -> Vec<(String, String)> { received.iter().filter(|(k, _)| k != name).cloned().collect() };
    let replaced = |name: &str, value: &str| -> Vec<(String, String)> {
        received.iter().map(|(k, v)| if k == name { (k.clone(), value.to_string()) } else { (k.clone(), v.clone()) }).collect()
    };
    for name in ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"] {
        assert!(
            matches!(
                parse_presigned_query(&without(name)),
                Err(SigError::MissingQueryParam(n)) if n == name
            ),
            "{name}"
        );
    }
    assert_eq!(
        parse_presigned_query(&replaced("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256")),
        Err(SigError::UnsupportedAlgorithm("AWS4-ECDSA-P256-SHA256".into()))
    );
    for bad in ["0", "604801", "-1", "+5", "abc"] {
        assert_eq!(parse_presigned_query(&replaced("X-Amz-Expires", bad)), Err(SigError::InvalidExpires(bad.into())), "{bad}");
    }
    assert!(matches!(parse_presigned_query(&replaced("X-Amz-Date", "2024-01-02T03:04:05Z")), Err(SigError::MalformedDate(_))));
    assert!(matches!(parse_presigned_query(&replaced("X-Amz-Date", "20240103T030405Z")), Err(SigError::ScopeDateMismatch { .. })));
    assert!(matches!(
        parse_presigned_query(&replaced("X-Amz-Credential", "AKID/20240102/us-east-1")),
        Err(SigError::MalformedCredential(_))
    ));
    let mut dup = received.clone();
    dup.push(("X-Amz-Signature".into(), presigned.auth.signature.clone()));
    assert_eq!(parse_presigned_query(&dup), Err(SigError::DuplicateQueryParam("X-Amz-Signature".into())));
    assert_eq!(presign_v4("GET", "/", &query, &headers, EMPTY_PAYLOAD_SHA256, &params, 0), Err(SigError::InvalidExpires("0".into())));
}

#[test]
fn clock_skew_both_directions() {
    let now = Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap();
    for secs in [0, 1, 899, 900, -1, -899, -900] {
        check_clock_skew(now + Duration::seconds(secs), now, MAX_CLOCK_SKEW_SECS).unwrap_or_else(|e| panic!("{secs}: {e}"));
    }
    assert_eq!(
        check_clock_skew(now + Duration::seconds(901), now, MAX_CLOCK_SKEW_SECS),
        Err(SigError::RequestTimeTooSkewed { skew_secs: 901, max_skew_secs: 900 })
    );
    assert_eq!(
        check_clock_skew(now - Duration::seconds(901), now, MAX_CLOCK_SKEW_SECS),
        Err(SigError::RequestTimeTooSkewed { skew_secs: -901, max_skew_secs: 900 })
    );
    assert!(check_clock_skew(now - Duration::days(1), now, MAX_CLOCK_SKEW_SECS).is_err());
    let t = parse_amz_date("20150830T122100Z").unwrap();
    check_clock_skew(t, now, MAX_CLOCK_SKEW_SECS).unwrap();
}

/// Issue 20 item 6: a presigned URL's parameters moved beside an
/// `Authorization` header (with a fresh `X-Amz-Date` header) verified with
/// the URL's old date and no expiry check. In header mode the query may
/// carry no `X-Amz-*` parameter, and the date is the header's.
#[test]
fn a_header_signature_refuses_presigned_parameters_in_the_query() {
    let headers = h(&[("Host", "ec2.us-east-1.amazonaws.com")]);
    let query = h(&[("Action", "DescribeRegions"), ("Version", "2016-11-15")]);
    let params = SigningParams::new("AKIDEXAMPLE", SECRET, "us-east-1", "ec2", ec2_time());
    let mut url = query.clone();
    url.extend(presign_v4("GET", "/", &query, &headers, UNSIGNED_PAYLOAD, &params, 1).unwrap());
    let presigned = parse_presigned_query(&url).unwrap();
    // As a URL, it verifies.
    let as_url = SigV4Request::new("GET", "/", &url, &headers, UNSIGNED_PAYLOAD);
    prepare_v4(&as_url, &presigned.auth, SignatureLocation::Query)
        .unwrap()
        .verify(&signing_key(SECRET, "20240102", "us-east-1", "ec2"), &presigned.auth.signature)
        .unwrap();
    // Replayed as a header signature with a fresh date: refused, naming the parameter.
    let mut replay_headers = headers.clone();
    replay_headers.push(("X-Amz-Date".into(), "20240102T031000Z".into()));
    replay_headers.push(("Authorization".into(), presigned.auth.to_string()));
    let replay = SigV4Request::new("GET", "/", &url, &replay_headers, UNSIGNED_PAYLOAD);
    assert_eq!(
        prepare_v4(&replay, &presigned.auth, SignatureLocation::Header),
        Err(SigError::SigningParamInQuery("X-Amz-Algorithm".into()))
    );
    // Any X-Amz-* parameter, in any case.
    let one = h(&[("Action", "DescribeRegions"), ("x-amz-date", "20240102T030405Z")]);
    let mut auth = presigned.auth.clone();
    auth.signed_headers = vec!["host".into(), "x-amz-date".into()];
    assert_eq!(
        prepare_v4(&SigV4Request::new("GET", "/", &one, &replay_headers, UNSIGNED_PAYLOAD), &auth, SignatureLocation::Header),
        Err(SigError::SigningParamInQuery("x-amz-date".into()))
    );
    // Without the query parameters the header date counts, and must be signed.
    assert_eq!(
        prepare_v4(&SigV4Request::new("GET", "/", &query, &replay_headers, UNSIGNED_PAYLOAD), &presigned.auth, SignatureLocation::Header),
        Err(SigError::UnsignedHeader("x-amz-date".into()))
    );
}

/// Issue 20 item 7: `prepare_v4` does every check that needs no secret, and
/// `PreparedV4::matches` agrees with `verify_v4`.
#[test]
fn prepare_v4_then_matches_is_verify_v4() {
    let call = ec2_call();
    let headers = signed_ec2(SECRET);
    let auth = parse_authorization_header(&headers.iter().find(|(n, _)| n == "Authorization").unwrap().1).unwrap();
    let payload = sha256_hex(call.body);
    let req = SigV4Request::new("POST", "/", &[], &headers, &payload);
    let prepared = prepare_v4(&req, &auth, SignatureLocation::Header).unwrap();
    assert!(prepared.matches(&signing_key(SECRET, &auth.date, &auth.region, &auth.service), &auth.signature));
    assert!(!prepared.matches(&signing_key("wrong", &auth.date, &auth.region, &auth.service), &auth.signature));
    verify_v4(&req, &auth, SECRET).unwrap();
    // Structural errors come from prepare_v4, with no key at all.
    let mut no_host = auth.clone();
    no_host.signed_headers.retain(|n| n != "host");
    assert_eq!(prepare_v4(&req, &no_host, SignatureLocation::Header), Err(SigError::UnsignedHeader("host".into())));
    let mut extra = auth.clone();
    extra.signed_headers.push("x-not-sent".into());
    assert_eq!(prepare_v4(&req, &extra, SignatureLocation::Header), Err(SigError::MissingHeader("x-not-sent".into())));
    // A presigned location needs the query's date.
    assert_eq!(prepare_v4(&req, &auth, SignatureLocation::Query), Err(SigError::MissingQueryParam("X-Amz-Date")));
}
