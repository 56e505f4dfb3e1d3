//! `cloud.connector.class` values: parsing never panics, and what parses
//! renders back to a value that parses to the same declarations.
#![no_main]

use cloudbroker_connector_api::decl::{parse_declarations, render_declarations};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (decls, _errors) = parse_declarations(text);
    let rendered = render_declarations(&decls);
    let (again, errors) = parse_declarations(&rendered);
    assert!(errors.is_empty(), "{rendered:?}: {errors:?}");
    assert_eq!(again, decls, "{rendered:?}");
});
