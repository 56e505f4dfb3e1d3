//! The `connectors.d` loader on arbitrary text: it never panics, every
//! error names a line of the file, and an instance it loads has no error.
#![no_main]

use cloudbroker_connector_api::conf::load_texts;
use cloudbroker_connector_api::Connectors;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

/// Two of the kinds the binary ships, with their own parameters (`ec2`
/// is left out so that fuzz builds do not compile the AWS SDK; its
/// parameters use the same types as `ec2query`'s).
fn kinds() -> Connectors {
    Connectors::new().with(cloudbroker_connector_ec2query::Ec2QueryBuilder).with(cloudbroker_connector_sandbox::SandboxBuilder)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Two files: the second may redeclare what the first declared.
    let (a, b) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i));
    let files = vec![(PathBuf::from("a.conf"), a.to_string()), (PathBuf::from("b.conf"), b.to_string())];
    let load = load_texts(&files, &kinds());
    let lines = [a.lines().count(), b.lines().count()];
    for e in &load.errors {
        let n = if e.location.file == PathBuf::from("a.conf") { lines[0] } else { lines[1] };
        assert!(e.location.line >= 1 && e.location.line <= n.max(1), "{e}");
    }
    for i in &load.instances {
        assert!(!load.rejected.contains(&i.declaration.instance.to_string()), "{} loaded and rejected", i.declaration.instance);
    }
});
