//! Everything of a signed request the broker parses before it knows the
//! key: the SigV4 `Authorization` header, presigned query parameters,
//! `X-Amz-Date`, SigV2 parameters and timestamps, query strings and form
//! bodies. None may panic, whatever the bytes.
#![no_main]

use cloudbroker_sigv as sigv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let _ = sigv::parse_authorization_header(text);
    let _ = sigv::parse_amz_date(text);
    let _ = sigv::parse_v2_timestamp(text);
    for parsed in [sigv::parse_query(text), sigv::parse_form_urlencoded(text)] {
        let Ok(pairs) = parsed else { continue };
        if let Ok(p) = sigv::parse_presigned_query(&pairs) {
            let _ = p.check_expiry(now, 900);
        }
        let _ = sigv::v2_access_key(&pairs);
        let _ = sigv::check_v2_time(&pairs, now, 900);
        let _ = sigv::verify_v2("POST", "127.0.0.1", "/ec2", &pairs, "secret");
        let _ = sigv::canonical_query_string(&pairs);
    }
});
