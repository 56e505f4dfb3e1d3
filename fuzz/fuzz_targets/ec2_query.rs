//! The EC2 Query parameter parser on arbitrary query strings: `X.N` lists,
//! `Filter.N.Name/Value.M`, `Tag.N`, `TagSpecification.N`, integers with
//! bounds. It answers a value or an EC2 error, never a panic.
#![no_main]

use cloudbroker_ec2_api::request::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(pairs) = cloudbroker_sigv::parse_form_urlencoded(text) else { return };
    let Ok(params) = Params::new(pairs) else { return };
    let _ = params.required("Action");
    let _ = params.int("MaxResults", 5..=1000);
    let _ = params.int("MinCount", 1..=100);
    for prefix in ["InstanceId", "ImageId", "KeyName", "ResourceId", "Owner"] {
        let _ = params.list(prefix);
    }
    let _ = params.filters();
    let _ = params.tags();
    for resource in ["instance", "volume"] {
        let _ = params.tag_specifications(resource);
    }
});
