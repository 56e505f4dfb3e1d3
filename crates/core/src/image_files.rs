//! Image ids set in files: `connectors.d/images/*.conf`, lines
//! `<image>.<instance> = <cloud image id>`. Read by the registry with the
//! rest of `connectors.d` (so one snapshot holds both) and served by
//! [`crate::images`]. A leaf: it depends on [`crate::domain`] only.

use crate::domain::ImageName;
use cloudbroker_connector_api::conf::Location;
use std::collections::BTreeMap;
use std::path::Path;

/// Image ids from files: image -> instance -> (cloud image id, where it was set).
pub type FileImages = BTreeMap<String, BTreeMap<String, (String, Location)>>;

/// Loads `images/*.conf`: lines `<image>.<instance> = <cloud image id>`.
/// Errors name the file and line; a bad line is skipped, the others load.
pub fn load_image_files(dir: &Path, declared: &[String]) -> (FileImages, Vec<String>) {
    use cloudbroker_connector_api::conf::{conf_files, parse_kv};
    let mut out: FileImages = BTreeMap::new();
    let mut errors = Vec::new();
    let files = match conf_files(dir) {
        Ok(f) => f,
        Err(e) => return (out, vec![format!("{}: cannot read directory: {e}", dir.display())]),
    };
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: cannot read file: {e}", f.display()));
                continue;
            }
        };
        let (lines, errs) = parse_kv(&f, &text);
        errors.extend(errs.iter().map(|e| e.to_string()));
        for l in lines {
            let Some((image, instance)) = l.key.rsplit_once('.') else {
                errors.push(format!("{}: key '{}' must be <image>.<connector-instance>", l.location, l.key));
                continue;
            };
            if let Err(e) = ImageName::parse(image) {
                errors.push(format!("{}: {e}", l.location));
                continue;
            }
            if !declared.iter().any(|d| d == instance) {
                errors.push(format!("{}: key '{}': no connector instance '{instance}' is declared", l.location, l.key));
                continue;
            }
            if l.value.is_empty() {
                continue; // unset
            }
            let entry = out.entry(image.to_string()).or_default();
            if let Some((_, first)) = entry.get(instance) {
                errors.push(format!("{}: duplicate image id for '{}' (first set at {first})", l.location, l.key));
                continue;
            }
            entry.insert(instance.to_string(), (l.value.clone(), l.location.clone()));
        }
    }
    (out, errors)
}
