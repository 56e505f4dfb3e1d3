//! `cloud.connector.class` values: parsing never panics, and what parses
//! renders back to a value that parses to the same declarations.
#![no_main]

use cloudbroker_connector_api::decl::{parse_declarations, render_declarations};
use cloudbroker_connector_api::Connectors;
use libfuzzer_sys::fuzz_target;

/// Two of the kinds the binary ships, with their own parameters (`ec2`
/// is left out so that fuzz builds do not compile the AWS SDK; its
/// parameters use the same types as `ec2query`'s).
fn kinds() -> Connectors {
    Connectors::new().with(cloudbroker_connector_ec2query::Ec2QueryBuilder).with(cloudbroker_connector_sandbox::SandboxBuilder)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (decls, _errors) = parse_declarations(text, &kinds());
    let rendered = render_declarations(&decls);
    let (again, errors) = parse_declarations(&rendered, &kinds());
    assert!(errors.is_empty(), "{rendered:?}: {errors:?}");
    assert_eq!(again, decls, "{rendered:?}");
});
