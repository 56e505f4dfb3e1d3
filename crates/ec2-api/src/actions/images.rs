//! `DescribeImages`: the native images that resolve to a cloud image on the
//! caller's region, under their stable `ami-` ids (see [`crate::ids`]).

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::image_id;

pub async fn describe_images(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let instance = ctx.instance()?;
    let ids = ctx.params.list("ImageId")?;
    let owners = ctx.params.list("Owner")?;
    let filters = ctx.params.filters()?;
    for (name, _) in &filters {
        if !matches!(name.as_str(), "name" | "image-id" | "state") {
            return Err(Ec2Error::invalid(format!("The filter '{}' is invalid", crate::ids::shown(name))));
        }
    }
    let mut rows = Vec::new();
    // Native images belong to the broker ("cloudbroker"); none is the caller's own.
    let owner_ok = owners.is_empty() || owners.iter().any(|o| o == "cloudbroker" || o == "amazon" || o == "all");
    if owner_ok {
        for img in ctx.broker.images.list().await? {
            let Ok(resolved) = ctx.broker.images.resolve(&img.name, &instance).await else { continue };
            let ami = image_id(img.name.as_str());
            if !ids.is_empty() && !ids.contains(&ami) {
                continue;
            }
            let matches = filters.iter().all(|(f, values)| match f.as_str() {
                "name" => values.iter().any(|v| glob(v, img.name.as_str())),
                "image-id" => values.contains(&ami),
                _ => values.iter().any(|v| v == "available"),
            });
            if matches {
                rows.push((ami, img, resolved));
            }
        }
    }
    if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|(ami, _, _)| ami == *id)) {
        return Err(Ec2Error::client("InvalidAMIID.NotFound", format!("The image id '[{}]' does not exist", crate::ids::shown(missing))));
    }
    let (mut x, root) = ctx.doc("DescribeImages");
    x.open("imagesSet");
    for (ami, img, resolved) in rows {
        x.open("item")
            .leaf("imageId", &ami)
            .leaf("imageLocation", &format!("cloudbroker/{}", img.name))
            .leaf("imageState", "available")
            .leaf("imageOwnerId", "cloudbroker")
            .leaf("isPublic", "true")
            .leaf("architecture", "x86_64")
            .leaf("imageType", "machine")
            .leaf("name", img.name.as_str())
            .leaf("description", &img.description)
            .leaf("platformDetails", if img.os.is_empty() { "Linux/UNIX" } else { &img.os })
            .leaf("rootDeviceType", "ebs")
            .leaf("virtualizationType", "hvm")
            .opt("cloudImageId", Some(resolved.image_id.as_str()))
            .close("item");
    }
    x.close("imagesSet");
    Ok(x.finish(&root))
}

/// EC2 filter values accept `*` (any run) and `?` (one character). Linear
/// backtracking on the last `*`, so no pattern makes it slow.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().take(256).collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn filter_globs() {
        assert!(glob("ubuntu-*", "ubuntu-22.04"));
        assert!(glob("*22.0?", "ubuntu-22.04"));
        assert!(!glob("debian*", "ubuntu-22.04"));
        assert!(glob("exact", "exact"));
        assert!(glob("*", ""));
        assert!(!glob("?", ""));
        let hostile = "*a".repeat(100);
        assert!(!glob(&hostile, &"a".repeat(99)));
    }
}
