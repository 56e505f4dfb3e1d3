//! A project's own launch policies on a connector instance: the same
//! parameters as the instance's (`policy.instance.types`, `policy.images`,
//! `policy.tags.required`, `policy.count.max`, `lease.max`), validated with
//! the same specs, stored per (project, instance). A launch in the project
//! must pass the instance's policies AND the project's (two
//! [`LaunchPolicy`] checks in the admission, the instance's first), so a
//! project can only tighten what its instance allows, never loosen it; a
//! project's refusal names the project. Its `lease.max` also caps the
//! lease a launch gets by default and a member's extension (`leases.rs`).
//! A launch form shows both at once ([`LaunchPolicy::narrowed_by`], for
//! display only: launches are checked against each policy).
//!
//! Who: a project's owners and admins set them (audited as a project
//! update naming the instance and the values); its members and viewers
//! read them; anyone else is told the project does not exist.
//!
//! Admins: a project's policies bind admins acting in the project exactly
//! when the instance's bind them: under the instance's
//! `policy.exempt.admins` an admin skips both (a project cannot exempt
//! anyone, nor un-exempt an admin the instance's administrators exempted);
//! otherwise an admin's launch in the project passes both, as a member's.
//! A member's extension is capped by both `lease.max`, an admin's by
//! neither (as for the instance's).

use super::leases::LeaseTerms;
use super::policy::LaunchPolicy;
use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::{InstanceName, ProjectName, ProjectRole};
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::params::{
    validate_value, ParamSpec, ParamValues, LEASE_MAX, POLICY_COUNT_MAX, POLICY_IMAGES, POLICY_INSTANCE_TYPES, POLICY_TAGS_REQUIRED,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// The parameters a project may set, in the order they are shown.
pub const SPECS: [ParamSpec; 5] = [POLICY_INSTANCE_TYPES, POLICY_IMAGES, POLICY_TAGS_REQUIRED, POLICY_COUNT_MAX, LEASE_MAX];

/// The longest value a project may set (a list of types or tags).
const MAX_VALUE: usize = 1000;

/// A project's own policies on one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectPolicy {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub instance: InstanceName,
    /// The project's values, by parameter name (empty: none of its own).
    pub values: BTreeMap<String, String>,
    /// The instance's own values of the same parameters (what the
    /// project's tighten).
    pub instance_values: BTreeMap<String, String>,
    /// Who last set the project's values, and when (`null`: never).
    pub updated_by: Option<String>,
    #[serde(serialize_with = "crate::domain::time::rfc3339_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Checks a project's policy values against their specs: only the
/// parameters of [`SPECS`], each valid; an empty value is left out (unset).
/// A refusal names the parameter (as its field).
pub fn validate(values: &BTreeMap<String, String>) -> ServiceResult<Vec<(String, String)>> {
    if let Some(unknown) = values.keys().find(|k| !SPECS.iter().any(|s| s.name == k.as_str())) {
        let allowed: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        let shown: String = unknown.chars().take(64).collect();
        return Err(ServiceError::Invalid {
            field: None,
            message: format!("'{shown}' is not a policy a project may set (allowed: {})", allowed.join(", ")),
        });
    }
    let mut out = Vec::new();
    for spec in &SPECS {
        if let Some(raw) = values.get(spec.name) {
            if raw.len() > MAX_VALUE {
                return Err(ServiceError::invalid_field(spec.name, format!("{}: at most {MAX_VALUE} characters", spec.name)));
            }
            match validate_value(spec, raw) {
                Ok(Some(v)) => out.push((spec.name.to_string(), v)),
                Ok(None) => {}
                Err(e) => return Err(ServiceError::invalid_field(spec.name, format!("{}: {e}", spec.name))),
            }
        }
    }
    Ok(out)
}

/// The smaller of two limits (`None`: no limit).
fn min<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
        (a, b) => a.or(b),
    }
}

/// The instance's values of the parameters a project may set.
fn instance_values(values: &ParamValues) -> BTreeMap<String, String> {
    SPECS.iter().filter_map(|s| values.get_set(s.name).map(|v| (s.name.to_string(), v.to_string()))).collect()
}

/// `terms` with `lease.max` the narrower of the instance's and the
/// project's (so a launch's default lease and a one-click extension stay
/// within both).
pub(super) fn tightened(mut terms: LeaseTerms, project: Option<&LaunchPolicy>) -> LeaseTerms {
    if let Some(pm) = project.and_then(|p| p.lease_max) {
        terms.max = Some(terms.max.map_or(pm, |m| m.min(pm)));
    }
    terms
}

impl LaunchPolicy {
    /// For showing on a launch form: what this (an instance's) policy and
    /// `project`'s own allow together. Exact instance types allowed by
    /// both, with the patterns of both (a hint: the admission checks each
    /// against both lists); the images both allow; every required tag, a
    /// key both require with the values both allow; the smaller counts and
    /// lease; this policy's admin exemption, `project`'s name. Launches are
    /// never checked against it: the admission checks both policies.
    pub fn narrowed_by(&self, project: &LaunchPolicy) -> LaunchPolicy {
        let instance_types = match (self.instance_types.is_empty(), project.instance_types.is_empty()) {
            (_, true) => self.instance_types.clone(),
            (true, false) => project.instance_types.clone(),
            (false, false) => {
                let mut out: Vec<String> = Vec::new();
                for t in self.instance_types.iter().chain(&project.instance_types) {
                    let keep = t.contains('*') || (self.allows_type(t) && project.allows_type(t));
                    if keep && !out.contains(t) {
                        out.push(t.clone());
                    }
                }
                out
            }
        };
        let images = match (self.images.is_empty(), project.images.is_empty()) {
            (_, true) => self.images.clone(),
            (true, false) => project.images.clone(),
            (false, false) => self.images.iter().filter(|i| project.images.contains(i)).cloned().collect(),
        };
        let mut required_tags = self.required_tags.clone();
        for t in &project.required_tags {
            match required_tags.iter_mut().find(|r| r.key == t.key) {
                None => required_tags.push(t.clone()),
                Some(r) => {
                    r.allowed = match (r.allowed.take(), &t.allowed) {
                        (None, b) => b.clone(),
                        (a, None) => a,
                        (Some(a), Some(b)) => Some(a.into_iter().filter(|v| b.contains(v)).collect()),
                    }
                }
            }
        }
        LaunchPolicy {
            instance_types,
            images,
            required_tags,
            count_max: min(self.count_max, project.count_max),
            lease_max: min(self.lease_max, project.lease_max),
            exempt_admins: self.exempt_admins,
            project: project.project.clone(),
        }
    }
}

impl Provisioning {
    /// The project exists and `actor` may read it: its role there (`None`
    /// for an admin who is no member); others get NotFound.
    async fn policy_reader(&self, actor: &Actor, project: &ProjectName) -> ServiceResult<Option<ProjectRole>> {
        let not_found = || ServiceError::NotFound(Resource::Project(project.clone()));
        if self.store.get_project(project).await?.is_none() {
            return Err(not_found());
        }
        let role = self.store.project_membership(project, &actor.name).await?;
        if role.is_none() && !actor.is_admin {
            return Err(not_found());
        }
        Ok(role)
    }

    /// As [`Self::policy_reader`], for its owners and admins only (403 for other members).
    async fn policy_writer(&self, actor: &Actor, project: &ProjectName, instance: &InstanceName) -> ServiceResult<ParamValues> {
        let role = self.policy_reader(actor, project).await?;
        if !actor.is_admin && !role.is_some_and(ProjectRole::can_manage) {
            let role = role.map_or("member", ProjectRole::as_str);
            return Err(ServiceError::Forbidden(format!(
                "you are a {role} of project '{project}': only its owners (and admins) set its launch policies"
            )));
        }
        self.fresh_config().await?;
        let snap = self.registry.snapshot();
        let entry = snap.instance(instance.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))?;
        Ok(entry.values.clone())
    }

    /// A project's own policies on every configured instance (empty values
    /// where it has none), then on instances no longer configured (its
    /// members, any role, and admins).
    pub async fn project_policies(&self, actor: &Actor, project: &ProjectName) -> ServiceResult<Vec<ProjectPolicy>> {
        self.policy_reader(actor, project).await?;
        self.fresh_config().await?;
        let snap = self.registry.snapshot();
        let rows = self.store.project_policies(project.as_str()).await?;
        let mut out: Vec<ProjectPolicy> = snap
            .instances
            .iter()
            .map(|i| ProjectPolicy {
                instance: i.name.clone(),
                values: BTreeMap::new(),
                instance_values: instance_values(&i.values),
                updated_by: None,
                updated_at: None,
            })
            .collect();
        for r in rows {
            let at = match out.iter().position(|p| p.instance.as_str() == r.instance) {
                Some(at) => at,
                None => {
                    // Written only after parsing.
                    let Ok(instance) = InstanceName::parse(&r.instance) else { continue };
                    out.push(ProjectPolicy {
                        instance,
                        values: BTreeMap::new(),
                        instance_values: BTreeMap::new(),
                        updated_by: None,
                        updated_at: None,
                    });
                    out.len() - 1
                }
            };
            let p = &mut out[at];
            let t = DateTime::<Utc>::from_timestamp_millis(r.updated_at);
            if p.updated_at.is_none_or(|u| t.is_some_and(|t| t > u)) {
                p.updated_at = t;
                p.updated_by = Some(r.updated_by.clone());
            }
            p.values.insert(r.name, r.value);
        }
        Ok(out)
    }

    /// Replaces a project's own policies on `instance` by `values`
    /// (parameter name -> value; an empty value unsets it): owners and
    /// admins; a bad value is refused naming its parameter, an unknown
    /// instance is not found. Audited. Applies to launches from now on.
    pub async fn set_project_policy(
        &self,
        actor: &Actor,
        project: &ProjectName,
        instance: &InstanceName,
        values: &BTreeMap<String, String>,
    ) -> ServiceResult<ProjectPolicy> {
        let inst = self.policy_writer(actor, project, instance).await?;
        let valid = validate(values)?;
        self.store.put_project_policy(project.as_str(), instance.as_str(), &valid, actor.name.as_str()).await?;
        let detail = if valid.is_empty() {
            format!("launch policies on {instance}: none of its own")
        } else {
            let shown: Vec<String> = valid.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("launch policies on {instance}: {}", shown.join("; "))
        };
        let event =
            AuditEvent::ok(AuditAction::ProjectUpdate, AuditTarget::Project(project.as_str())).detail(detail).in_project(project.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        let rows = self.store.project_policy(project.as_str(), instance.as_str()).await?;
        Ok(ProjectPolicy {
            instance: instance.clone(),
            updated_by: rows.first().map(|r| r.updated_by.clone()),
            updated_at: rows.first().and_then(|r| DateTime::<Utc>::from_timestamp_millis(r.updated_at)),
            values: rows.into_iter().map(|r| (r.name, r.value)).collect(),
            instance_values: instance_values(&inst),
        })
    }

    /// Removes a project's own policies on `instance` (owners and admins;
    /// an unknown instance is not found, one without policies is fine). Audited.
    pub async fn delete_project_policy(&self, actor: &Actor, project: &ProjectName, instance: &InstanceName) -> ServiceResult<()> {
        self.policy_writer(actor, project, instance).await?;
        if self.store.delete_project_policy(project.as_str(), instance.as_str()).await? {
            let event = AuditEvent::ok(AuditAction::ProjectUpdate, AuditTarget::Project(project.as_str()))
                .detail(format!("launch policies on {instance}: removed"))
                .in_project(project.as_str());
            audit::record_by(&self.store, actor, &event).await?;
        }
        Ok(())
    }

    /// The project's own policies on `instance` as a [`LaunchPolicy`]
    /// naming the project (`None`: it has none), with the instance's
    /// admin exemption (`instance_values` are the instance's parameters).
    pub(super) async fn project_policy_of(
        &self,
        project: &ProjectName,
        instance: &InstanceName,
        instance_values: &ParamValues,
    ) -> ServiceResult<Option<LaunchPolicy>> {
        let rows = self.store.project_policy(project.as_str(), instance.as_str()).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut p = LaunchPolicy::of(&ParamValues::new(rows.into_iter().map(|r| (r.name, r.value)).collect()));
        p.exempt_admins = LaunchPolicy::of(instance_values).exempt_admins;
        p.project = Some(project.clone());
        Ok(Some(p).filter(|p| !p.is_empty()))
    }

    /// The launch policies on `instance` for launches in the project
    /// `actor` acts in: the instance's, and the project's own when it has
    /// any (both apply: the launch form shows both; see
    /// [`LaunchPolicy::applies_to`] for admins).
    pub async fn policies_for(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<(LaunchPolicy, Option<LaunchPolicy>)> {
        self.fresh_config().await?;
        let snap = self.registry.snapshot();
        let entry = snap.instance(instance.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))?;
        let project = self.project_policy_of(&actor.project, instance, &entry.values).await?;
        Ok((LaunchPolicy::of(&entry.values), project))
    }

    /// The project's `lease.max` on `instance` as a policy (what caps a
    /// member's extension of a VM of `project`), if the project sets one.
    pub(super) async fn project_lease_policy(&self, project: &ProjectName, instance: &InstanceName) -> ServiceResult<Option<LaunchPolicy>> {
        let snap = self.registry.snapshot();
        let values = snap.instance(instance.as_str()).map(|e| e.values.clone()).unwrap_or_default();
        Ok(self.project_policy_of(project, instance, &values).await?.filter(|p| p.lease_max.is_some()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn values_are_checked_with_the_instance_specs() {
        let ok = validate(&map(&[("policy.instance.types", " t3.* "), ("lease.max", "4h"), ("policy.images", "")])).unwrap();
        assert_eq!(ok, [("policy.instance.types".to_string(), "t3.*".to_string()), ("lease.max".into(), "4h".into())]);
        let e = validate(&map(&[("policy.count.max", "0")])).unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field: Some("policy.count.max"), .. }), "{e:?}");
        assert!(e.to_string().starts_with("policy.count.max: "), "{e}");
        let e = validate(&map(&[("lease.max", "soon")])).unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field: Some("lease.max"), .. }), "{e:?}");
        let e = validate(&map(&[("policy.tags.required", "a=(")])).unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field: Some("policy.tags.required"), .. }), "{e:?}");
        let e = validate(&map(&[("policy.exempt.admins", "true")])).unwrap_err();
        assert!(e.to_string().contains("'policy.exempt.admins' is not a policy a project may set"), "{e}");
    }

    #[test]
    fn a_form_shows_what_both_allow() {
        let of = |pairs: &[(&str, &str)]| LaunchPolicy::of(&ParamValues::new(map(pairs)));
        let inst = of(&[
            ("policy.instance.types", "t2.*, m5.large"),
            ("policy.images", "linux, alpine"),
            ("policy.tags.required", "team=(a|b), owner"),
            ("policy.count.max", "5"),
        ]);
        let proj = of(&[
            ("policy.instance.types", "t2.micro, m5.xlarge, c5.*"),
            ("policy.images", "alpine, ubuntu"),
            ("policy.tags.required", "team=(b|c), cost"),
            ("policy.count.max", "2"),
            ("lease.max", "4h"),
        ]);
        let n = inst.narrowed_by(&proj);
        assert_eq!(n.instance_types_text(), "t2.*, t2.micro, c5.*");
        assert_eq!(n.images_text(), "alpine");
        assert_eq!(n.required_tags_text(), "team=(b), owner, cost");
        assert_eq!((n.count_max, n.lease_max), (Some(2), Some(chrono::Duration::hours(4))));
        assert_eq!(LaunchPolicy::default().narrowed_by(&proj).instance_types, proj.instance_types);
        assert_eq!(inst.narrowed_by(&LaunchPolicy::default()), inst);
    }

    #[test]
    fn the_narrower_lease_max_wins() {
        let terms = |pairs: &[(&str, &str)]| LeaseTerms::of(&ParamValues::new(map(pairs)));
        let project = LaunchPolicy::of(&ParamValues::new(map(&[("lease.max", "2h")])));
        assert_eq!(tightened(terms(&[("lease.max", "1d")]), Some(&project)).max, Some(chrono::Duration::hours(2)));
        assert_eq!(tightened(terms(&[("lease.max", "1h")]), Some(&project)).max, Some(chrono::Duration::hours(1)));
        assert_eq!(tightened(terms(&[]), Some(&project)).default_span(), Some(chrono::Duration::hours(2)));
        assert_eq!(tightened(terms(&[("lease.default", "8h")]), None).max, None);
    }
}
