//! Launch policies per connector instance: what a launch on an instance may
//! use (instance types, native images), must carry (tags, with allowed
//! values) and may ask for at most (VMs per launch), read from the
//! instance's `policy.*` parameters. A [`LaunchPolicy`] is checked once, in
//! the launch admission (`admit.rs`), so the JSON API, the UI and the EC2
//! front refuse alike and a dry run previews the same refusal; a refusal is
//! a [`ServiceError::PolicyViolation`] naming the policy and the offending
//! value. A policy applies to launches from the moment it is set; VMs that
//! already break it are only listed ([`Provisioning::policy_violations`]).

use super::{Provisioning, Vm};
use crate::domain::{ImageName, InstanceName, ProjectName, Tags, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::Actor;
use cloudbroker_connector_api::params::{parse_tag_rules, ParamValues};
use cloudbroker_store::vms::VmFilter;
use serde::Serialize;

/// `policy.instance.types`.
pub const INSTANCE_TYPES: &str = "policy.instance.types";
/// `policy.images`.
pub const IMAGES: &str = "policy.images";
/// `policy.tags.required`.
pub const TAGS_REQUIRED: &str = "policy.tags.required";
/// `policy.count.max`.
pub const COUNT_MAX: &str = "policy.count.max";
/// `policy.exempt.admins`.
pub const EXEMPT_ADMINS: &str = "policy.exempt.admins";

/// A tag every launch must carry, with its allowed values (`None`: any).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequiredTag {
    pub key: String,
    pub allowed: Option<Vec<String>>,
}

impl RequiredTag {
    /// Whether `value` is allowed.
    pub fn allows(&self, value: &str) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.iter().any(|x| x == value))
    }
}

impl std::fmt::Display for RequiredTag {
    /// As written in the parameter: `key` or `key=(a|b|c)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.allowed {
            None => f.write_str(&self.key),
            Some(a) => write!(f, "{}=({})", self.key, a.join("|")),
        }
    }
}

/// One connector instance's launch policies (all empty: anything goes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LaunchPolicy {
    /// Instance types or patterns with `*` (empty: any).
    pub instance_types: Vec<String>,
    /// Native image names (empty: any; when set, raw cloud ids are refused).
    pub images: Vec<ImageName>,
    pub required_tags: Vec<RequiredTag>,
    /// Most VMs per launch: a count range whose most is higher is refused.
    pub count_max: Option<u32>,
    /// The longest lease a launch may ask for (`lease.max`, from now).
    #[serde(skip)]
    pub lease_max: Option<chrono::Duration>,
    /// Whether admins' launches skip these checks.
    pub exempt_admins: bool,
    /// The project whose own policies these are (`None`: the instance's;
    /// see `project_policy.rs`): its refusals name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectName>,
}

/// `pattern` (with `*` matching any run of characters) matches `s` whole.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if s.len() < first.len() + last.len() || !s.starts_with(first) || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The items of a comma-separated list value.
fn items(v: Option<&str>) -> Vec<String> {
    v.map(|v| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
}

/// What a launch asks for, as the policies see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Asked<'a> {
    pub instance_type: &'a str,
    /// The image as asked for (a native name or a raw cloud id).
    pub image: &'a str,
    /// Whether `image` resolved as a native image.
    pub native: bool,
    pub tags: &'a Tags,
    /// The launch's name (EC2's `Name` tag).
    pub name: &'a str,
    /// The most VMs the launch asks for.
    pub count_max: u32,
    /// How long the launch's lease is, from now (`None`: no lease).
    pub lease: Option<chrono::Duration>,
}

impl LaunchPolicy {
    /// The policies an instance's parameter values set. Values were
    /// validated against their specs when read; a list item that is not a
    /// well-formed image name is kept (it then matches no image, so a
    /// policy never widens by being misspelt).
    pub fn of(values: &ParamValues) -> Self {
        let required_tags = values
            .get_set(TAGS_REQUIRED)
            .and_then(|v| parse_tag_rules(v).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(key, allowed)| RequiredTag { key, allowed })
            .collect();
        Self {
            instance_types: items(values.get_set(INSTANCE_TYPES)),
            images: items(values.get_set(IMAGES)).into_iter().map(ImageName::from_stored).collect(),
            required_tags,
            count_max: values.get_set(COUNT_MAX).and_then(|v| v.parse().ok()),
            lease_max: values.get_set(super::leases::MAX).and_then(|v| crate::domain::lease::parse_duration(v).ok()),
            exempt_admins: values.get_set(EXEMPT_ADMINS) == Some("true"),
            project: None,
        }
    }

    /// Where a refusal happens: `'sb'`, or `'sb' for project 'team-a'`.
    fn place(&self, instance: &InstanceName) -> String {
        match &self.project {
            None => format!("'{instance}'"),
            Some(p) => format!("'{instance}' for project '{p}'"),
        }
    }

    /// Whether no policy is set (launches are not checked).
    pub fn is_empty(&self) -> bool {
        self.instance_types.is_empty()
            && self.images.is_empty()
            && self.required_tags.is_empty()
            && self.count_max.is_none()
            && self.lease_max.is_none()
    }

    /// Whether the policies apply to `actor`'s launches (admins are exempt
    /// only under `policy.exempt.admins`).
    pub fn applies_to(&self, actor: &Actor) -> bool {
        !(self.exempt_admins && actor.is_admin)
    }

    /// Whether instance type `t` is allowed.
    pub fn allows_type(&self, t: &str) -> bool {
        self.instance_types.is_empty() || self.instance_types.iter().any(|p| glob(p, t))
    }

    /// Whether the native image `name` is allowed.
    pub fn allows_image(&self, name: &str) -> bool {
        self.images.is_empty() || self.images.iter().any(|i| i.as_str() == name)
    }

    /// `policy.instance.types` as written (normalised: `a, b`).
    pub fn instance_types_text(&self) -> String {
        self.instance_types.join(", ")
    }

    /// `policy.images` as written (normalised).
    pub fn images_text(&self) -> String {
        self.images.iter().map(ImageName::as_str).collect::<Vec<_>>().join(", ")
    }

    /// `policy.tags.required` as written (normalised).
    pub fn required_tags_text(&self) -> String {
        self.required_tags.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }

    /// The refusal of instance type `t` on `instance`, if refused.
    pub(super) fn type_refusal(&self, instance: &InstanceName, t: &str) -> Option<ServiceError> {
        let at = self.place(instance);
        (!self.allows_type(t)).then(|| ServiceError::PolicyViolation {
            policy: INSTANCE_TYPES,
            field: "instance_type",
            message: format!("instance type '{t}' is not allowed on {at} ({INSTANCE_TYPES}: {})", self.instance_types_text()),
        })
    }

    /// The refusal of `image` (native or a raw cloud id) on `instance`, if refused.
    fn image_refusal(&self, instance: &InstanceName, image: &str, native: bool) -> Option<ServiceError> {
        let at = self.place(instance);
        if self.images.is_empty() || (native && self.allows_image(image)) {
            return None;
        }
        let what = if native { "is not allowed" } else { "is a raw cloud image id, not allowed" };
        Some(ServiceError::PolicyViolation {
            policy: IMAGES,
            field: "image",
            message: format!("image '{image}' {what} on {at} ({IMAGES}: {})", self.images_text()),
        })
    }

    /// The refusal of a launch's tags (`tag` looks one up) on `instance`, if refused.
    fn tags_refusal<'t>(&self, instance: &InstanceName, tag: impl Fn(&str) -> Option<&'t str>) -> Option<ServiceError> {
        let at = self.place(instance);
        for r in &self.required_tags {
            let refusal = match tag(&r.key) {
                None => format!("tag '{}' is required on {at}", r.key),
                Some(v) if !r.allows(v) => format!("tag '{}' = '{v}' is not allowed on {at}", r.key),
                Some(_) => continue,
            };
            return Some(ServiceError::PolicyViolation {
                policy: TAGS_REQUIRED,
                field: "tags",
                message: format!("{refusal} ({TAGS_REQUIRED}: {})", self.required_tags_text()),
            });
        }
        None
    }

    /// The refusal of a launch of at most `count` VMs on `instance`, if refused.
    fn count_refusal(&self, instance: &InstanceName, count: u32) -> Option<ServiceError> {
        let at = self.place(instance);
        let max = self.count_max?;
        (count > max).then(|| ServiceError::PolicyViolation {
            policy: COUNT_MAX,
            field: "count",
            message: format!("a launch of up to {count} VMs is not allowed on {at}: at most {max} per launch ({COUNT_MAX}: {max})"),
        })
    }

    /// The refusal of a lease `span` long on `instance`, if refused.
    fn lease_refusal(&self, instance: &InstanceName, span: Option<chrono::Duration>) -> Option<ServiceError> {
        let at = self.place(instance);
        let (max, span) = (self.lease_max?, span?);
        let text = crate::domain::lease::format_duration;
        (span > max).then(|| ServiceError::PolicyViolation {
            policy: super::leases::MAX,
            field: "lease",
            message: format!(
                "a lease of {} is not allowed on {at}: at most {} from now ({}: {})",
                text(span),
                text(max),
                super::leases::MAX,
                text(max)
            ),
        })
    }

    /// The refusal of a lease `span` long from now on `instance` under
    /// `lease.max`, if refused (an extension's cap: `leases.rs`).
    pub(super) fn check_lease(&self, instance: &InstanceName, span: chrono::Duration) -> ServiceResult<()> {
        self.lease_refusal(instance, Some(span)).map_or(Ok(()), Err)
    }

    /// The first policy `asked` breaks on `instance`, in the order: count,
    /// instance type, image, tags, lease.
    pub(super) fn check(&self, instance: &InstanceName, asked: &Asked<'_>) -> ServiceResult<()> {
        let refusal = self
            .count_refusal(instance, asked.count_max)
            .or_else(|| self.type_refusal(instance, asked.instance_type))
            .or_else(|| self.image_refusal(instance, asked.image, asked.native))
            .or_else(|| {
                self.tags_refusal(instance, |k| match asked.tags.get(k) {
                    Some(v) => Some(v),
                    None if k == "Name" && !asked.name.is_empty() => Some(asked.name),
                    None => None,
                })
            })
            .or_else(|| self.lease_refusal(instance, asked.lease));
        refusal.map_or(Ok(()), Err)
    }

    /// Why a recorded VM breaks these policies, if it does (the count is a
    /// launch's, not a VM's, and is not checked).
    fn vm_violation(&self, vm: &Vm) -> Option<String> {
        let native = self.images.iter().any(|i| i.as_str() == vm.image) || ImageName::parse(&vm.image).is_ok();
        self.type_refusal(&vm.instance, &vm.instance_type)
            .or_else(|| self.image_refusal(&vm.instance, &vm.image, native))
            .or_else(|| {
                self.tags_refusal(&vm.instance, |k| match vm.tags.get(k) {
                    Some(v) => Some(v),
                    None if k == "Name" && !vm.name.is_empty() => Some(vm.name.as_str()),
                    None => None,
                })
            })
            .map(|e| e.to_string())
    }
}

impl Provisioning {
    /// The launch policies of `instance` now (anyone may read them: the
    /// launch form shows them).
    pub async fn policy_for(&self, instance: &InstanceName) -> ServiceResult<LaunchPolicy> {
        self.fresh_config().await?;
        let snap = self.registry.snapshot();
        let entry = snap.instance(instance.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))?;
        Ok(LaunchPolicy::of(&entry.values))
    }

    /// Admins only: the live VMs of `instance` that break its policies now
    /// (launched before a policy was set or tightened, or by an exempt
    /// admin), each with why. They are listed, never stopped.
    pub async fn policy_violations(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Vec<(Vm, String)>> {
        actor.require_admin()?;
        let policy = self.policy_for(instance).await?;
        if policy.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .list_vms(&VmFilter { instance: Some(instance.to_string()), ended_after: Some(i64::MAX), ..VmFilter::default() })
            .await?;
        let mut out = Vec::new();
        for vm in self.vms(rows)? {
            if !vm.status.is_live() || vm.status == VmStatus::Requested {
                continue;
            }
            if let Some(why) = policy.vm_violation(&vm) {
                out.push((vm, why));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn policy(pairs: &[(&str, &str)]) -> LaunchPolicy {
        LaunchPolicy::of(&ParamValues::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()))
    }

    #[test]
    fn patterns_match_whole_types() {
        assert!(glob("t3.*", "t3.micro"));
        assert!(!glob("t3.*", "t3a.micro"));
        assert!(glob("*.large", "m5.large"));
        assert!(glob("m*.x*large", "m5.xlarge"));
        assert!(!glob("m5.large", "m5.large2"));
        assert!(glob("*", "anything"));
        let p = policy(&[(INSTANCE_TYPES, "t3.*, m5.large")]);
        assert!(p.allows_type("t3.nano") && p.allows_type("m5.large"));
        assert!(!p.allows_type("m5.xlarge"));
        assert!(LaunchPolicy::default().allows_type("x1.32xlarge"));
    }

    #[test]
    fn parameters_make_the_policy() {
        let p = policy(&[
            (IMAGES, "ubuntu-22.04,alpine"),
            (TAGS_REQUIRED, "cost-center=(rd|ops|sales), owner"),
            (COUNT_MAX, "3"),
            (EXEMPT_ADMINS, "true"),
        ]);
        assert_eq!(p.images_text(), "ubuntu-22.04, alpine");
        assert_eq!(p.required_tags_text(), "cost-center=(rd|ops|sales), owner");
        assert_eq!(p.required_tags[0].allowed.as_deref(), Some(&["rd".to_string(), "ops".into(), "sales".into()][..]));
        assert_eq!(p.count_max, Some(3));
        assert!(p.exempt_admins && !p.is_empty());
        assert!(LaunchPolicy::of(&ParamValues::default()).is_empty());
    }

    #[test]
    fn refusals_name_the_policy_and_the_value() {
        let sb = InstanceName::parse("sb").unwrap();
        let p = policy(&[(INSTANCE_TYPES, "t3.*, t2.micro"), (IMAGES, "alpine"), (TAGS_REQUIRED, "team=(a|b)"), (COUNT_MAX, "2")]);
        let tags = Tags::parse([("team".to_string(), "a".to_string())].into()).unwrap();
        let ok = Asked { instance_type: "t3.small", image: "alpine", native: true, tags: &tags, name: "", count_max: 2, lease: None };
        p.check(&sb, &ok).unwrap();
        let msg = |a: Asked<'_>| p.check(&sb, &a).unwrap_err().to_string();
        assert_eq!(
            msg(Asked { instance_type: "m5.xlarge", ..ok }),
            "instance type 'm5.xlarge' is not allowed on 'sb' (policy.instance.types: t3.*, t2.micro)"
        );
        assert_eq!(msg(Asked { image: "debian", ..ok }), "image 'debian' is not allowed on 'sb' (policy.images: alpine)");
        assert_eq!(
            msg(Asked { image: "ami-1", native: false, ..ok }),
            "image 'ami-1' is a raw cloud image id, not allowed on 'sb' (policy.images: alpine)"
        );
        let none = Tags::default();
        assert_eq!(msg(Asked { tags: &none, ..ok }), "tag 'team' is required on 'sb' (policy.tags.required: team=(a|b))");
        let c = Tags::parse([("team".to_string(), "c".to_string())].into()).unwrap();
        assert_eq!(msg(Asked { tags: &c, ..ok }), "tag 'team' = 'c' is not allowed on 'sb' (policy.tags.required: team=(a|b))");
        assert_eq!(
            msg(Asked { count_max: 3, ..ok }),
            "a launch of up to 3 VMs is not allowed on 'sb': at most 2 per launch (policy.count.max: 2)"
        );
        let leased = policy(&[("lease.max", "1d")]);
        assert!(!leased.is_empty());
        leased.check(&sb, &Asked { lease: Some(chrono::Duration::hours(24)), ..ok }).unwrap();
        leased.check(&sb, &Asked { lease: None, ..ok }).unwrap();
        assert_eq!(
            leased.check(&sb, &Asked { lease: Some(chrono::Duration::hours(36)), ..ok }).unwrap_err().to_string(),
            "a lease of 1d 12h is not allowed on 'sb': at most 1d from now (lease.max: 1d)"
        );
    }
}
