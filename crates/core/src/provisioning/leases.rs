//! VM leases as users and admins see them: the terms an instance sets
//! (`lease.default`, `lease.max`, `lease.action`, `lease.warn`,
//! `lease.max.actions`), the lease a launch gets, and setting or extending
//! one later. A lease is stored as an absolute expiry with its action, both
//! fixed when it is given; nothing but a new lease (an extension) moves it.
//!
//! Caps: a launch's lease is checked against `lease.max` in the launch
//! admission (a policy, `policy.rs`); an extension by a member is capped at
//! `lease.max` from now, an admin's is not. A VM the broker adopted gets a
//! lease only from an admin. Setting a lease never races the lease worker:
//! the store refuses it while a replica is acting on the expiry, and the
//! worker claims only leases still expired when it claims them, so an
//! extension that commits first always wins.
//!
//! The worker that ends leases is `lease_worker.rs`.

use super::{Provisioning, Vm};
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::domain::lease::{format_duration, parse_duration};
use crate::domain::{InstanceName, LeaseAction, LeaseAsk, NewLease, VmId};
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Duration, Utc};
use cloudbroker_connector_api::params::ParamValues;
use serde::Serialize;

/// `lease.default`.
pub const DEFAULT: &str = "lease.default";
/// `lease.max`.
pub const MAX: &str = "lease.max";
/// `lease.action`.
pub const ACTION: &str = "lease.action";
/// `lease.warn`.
pub const WARN: &str = "lease.warn";
/// `lease.max.actions`.
pub const MAX_ACTIONS: &str = "lease.max.actions";

/// The one-click extension when an instance sets neither `lease.default` nor `lease.max`.
const FALLBACK_EXTENSION_HOURS: i64 = 24;

/// One connector instance's lease terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseTerms {
    /// The lease of a launch that asks for none.
    #[serde(serialize_with = "duration_text")]
    pub default: Option<Duration>,
    /// The longest lease from now a launch or a member's extension may ask for.
    #[serde(serialize_with = "duration_text")]
    pub max: Option<Duration>,
    pub action: LeaseAction,
    /// How long before the end the warning is recorded.
    #[serde(serialize_with = "duration_text_req")]
    pub warn: Duration,
    /// Most VMs of the instance one pass of the lease worker acts on.
    pub max_actions: usize,
}

fn duration_text<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

fn duration_text_req<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

impl LeaseTerms {
    /// The terms an instance's (validated) parameters set.
    pub fn of(values: &ParamValues) -> Self {
        let dur = |name| values.get_set(name).and_then(|v| parse_duration(v).ok());
        Self {
            default: dur(DEFAULT),
            max: dur(MAX),
            action: values.get_set(ACTION).and_then(|v| LeaseAction::parse(v).ok()).unwrap_or(LeaseAction::Terminate),
            warn: dur(WARN).unwrap_or_else(|| Duration::hours(1)),
            max_actions: values.get_set(MAX_ACTIONS).and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(100),
        }
    }

    /// The lease a launch that asks for none gets: `lease.default` (never
    /// longer than `lease.max`), else `lease.max`, else none.
    pub fn default_span(&self) -> Option<Duration> {
        match (self.default, self.max) {
            (Some(d), Some(m)) => Some(d.min(m)),
            (d, m) => d.or(m),
        }
    }

    /// What one click on "Extend" asks for: the default lease, else the
    /// longest, else a day (never past `lease.max`).
    pub fn extension(&self) -> Duration {
        self.default_span().unwrap_or_else(|| Duration::hours(FALLBACK_EXTENSION_HOURS))
    }

    /// The record of a lease ending at `expires_at`.
    pub fn lease_until(&self, expires_at: DateTime<Utc>) -> NewLease {
        NewLease { expires_at: expires_at.timestamp_millis(), action: self.action, warn_at: (expires_at - self.warn).timestamp_millis() }
    }

    /// The lease a launch asking for `ask` gets at `now` (checked to end
    /// after `now`; `lease.max` is a launch policy, checked by the admission).
    pub(super) fn for_launch(&self, ask: Option<&LeaseAsk>, now: DateTime<Utc>) -> ServiceResult<Option<NewLease>> {
        let expires_at = match (ask, self.default_span()) {
            (Some(a), _) => a.expiry(now),
            (None, Some(d)) => now + d,
            (None, None) => return Ok(None),
        };
        if expires_at <= now {
            return Err(ServiceError::invalid_field("lease", format!("the lease would end at {expires_at}, which is not in the future")));
        }
        Ok(Some(self.lease_until(expires_at)))
    }
}

impl Provisioning {
    /// The lease terms of `instance` now (anyone may read them: the launch
    /// form and the VM pages show them).
    pub async fn lease_terms(&self, instance: &InstanceName) -> ServiceResult<LeaseTerms> {
        self.fresh_config().await?;
        let snap = self.registry.snapshot();
        let entry = snap.instance(instance.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))?;
        Ok(LeaseTerms::of(&entry.values))
    }

    /// Sets VM `id`'s lease to end as `ask` says, or (`None`) extends it by
    /// one click (the instance's [`LeaseTerms::extension`] from now). A
    /// member of its project may, up to `lease.max` from now; admins
    /// without a cap, and alone on a VM the broker adopted. A VM whose lease
    /// already ended (stopped by it) gets a new one. Audited.
    pub async fn set_lease(&self, actor: &Actor, id: &VmId, ask: Option<LeaseAsk>) -> ServiceResult<Vm> {
        let vm = self.owned(actor, id).await?;
        actor.require_act()?;
        if !vm.status.is_live() {
            return Err(ServiceError::Conflict(format!("VM '{id}' is {}: it takes no lease", vm.status)));
        }
        if vm.lease.is_none() && vm.client_token.as_str().starts_with("adopted:") && !actor.is_admin {
            return Err(ServiceError::Forbidden(format!(
                "VM '{id}' was adopted by the broker, not launched through it: only an admin may give it a lease"
            )));
        }
        let terms = self.lease_terms(&vm.instance).await?;
        // The project's own lease.max (project_policy.rs) caps a member's extension too.
        let project_cap = self.project_lease_policy(&vm.project, &vm.instance).await?;
        let now = self.clock.now();
        let one_click = super::project_policy::tightened(terms.clone(), project_cap.as_ref()).extension();
        let expires_at = ask.as_ref().map_or_else(|| now + one_click, |a| a.expiry(now));
        if expires_at <= now {
            return Err(ServiceError::invalid_field("lease", format!("the lease would end at {expires_at}, which is not in the future")));
        }
        if !actor.is_admin {
            if let Some(max) = terms.max {
                if expires_at > now + max {
                    return Err(ServiceError::PolicyViolation {
                        policy: MAX,
                        field: "lease",
                        message: format!(
                            "a lease of {} is not allowed on '{}': at most {} from now ({MAX}: {})",
                            format_duration(expires_at - now),
                            vm.instance,
                            format_duration(max),
                            format_duration(max)
                        ),
                    });
                }
            }
            if let Some(p) = &project_cap {
                p.check_lease(&vm.instance, expires_at - now)?;
            }
        }
        // The action stays the one the VM's lease was given with; a VM without one gets the instance's.
        let lease = NewLease { action: vm.lease.as_ref().map_or(terms.action, |l| l.action), ..terms.lease_until(expires_at) };
        if !self.store.set_vm_lease(id, Some(&lease)).await? {
            return Err(ServiceError::Conflict(format!(
                "the lease of VM '{id}' is ending now (the broker is acting on it); try again in a minute"
            )));
        }
        let was = vm.lease.as_ref().map_or_else(
            || "none".to_string(),
            |l| crate::domain::time::rfc3339_string(&l.expires_at, crate::domain::time::Fraction::Auto),
        );
        let detail = format!(
            "until {} ({} from now, then {}; was {was})",
            crate::domain::time::rfc3339_string(&expires_at, crate::domain::time::Fraction::Auto),
            format_duration(expires_at - now),
            lease.action
        );
        let event = AuditEvent::ok(AuditAction::VmLeaseSet, AuditTarget::Vm(id.as_str())).detail(detail).in_project(vm.project.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        self.owned(actor, id).await
    }

    /// Admins only: removes VM `id`'s lease (it then runs until stopped by hand). Audited.
    pub async fn clear_lease(&self, actor: &Actor, id: &VmId) -> ServiceResult<Vm> {
        // Not found before forbidden: a non-member learns nothing of the VM.
        let vm = self.owned(actor, id).await?;
        actor.require_admin()?;
        if !self.store.set_vm_lease(id, None).await? {
            return Err(ServiceError::Conflict(format!(
                "the lease of VM '{id}' is ending now (the broker is acting on it); try again in a minute"
            )));
        }
        let event =
            AuditEvent::ok(AuditAction::VmLeaseSet, AuditTarget::Vm(id.as_str())).detail("lease removed").in_project(vm.project.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        self.owned(actor, id).await
    }
}

/// Most VMs [`Provisioning::leases_due`] returns.
pub const LEASES_DUE_LIMIT: i64 = 200;

impl Provisioning {
    /// Admins only: the live VMs (of every project) whose lease ends
    /// within `within` from now and is not dealt with yet, soonest first
    /// (those already overdue first of all), at most [`LEASES_DUE_LIMIT`].
    /// One indexed range read (`vms_lease_due`).
    pub async fn leases_due(&self, actor: &Actor, within: Duration) -> ServiceResult<Vec<Vm>> {
        actor.require_admin()?;
        let before = (self.clock.now() + within).timestamp_millis();
        let rows = self.store.vm_leases_due(before, LEASES_DUE_LIMIT).await?;
        Ok(self.vms(rows)?.into_iter().filter(|v| v.status.is_live()).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn terms(pairs: &[(&str, &str)]) -> LeaseTerms {
        LeaseTerms::of(&ParamValues::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()))
    }

    #[test]
    fn terms_come_from_parameters() {
        let t = terms(&[(DEFAULT, "8h"), (MAX, "1d"), (ACTION, "stop"), (WARN, "30m"), (MAX_ACTIONS, "5")]);
        assert_eq!(t.default, Some(Duration::hours(8)));
        assert_eq!(t.max, Some(Duration::days(1)));
        assert_eq!(t.action, LeaseAction::Stop);
        assert_eq!(t.warn, Duration::minutes(30));
        assert_eq!(t.max_actions, 5);
        let none = terms(&[]);
        assert_eq!(
            (none.default, none.max, none.action, none.warn, none.max_actions),
            (None, None, LeaseAction::Terminate, Duration::hours(1), 100)
        );
        assert_eq!(none.extension(), Duration::hours(24));
        // A default longer than the max is cut to it; a max alone gives every launch a lease.
        assert_eq!(terms(&[(DEFAULT, "3d"), (MAX, "1d")]).default_span(), Some(Duration::days(1)));
        assert_eq!(terms(&[(MAX, "2h")]).default_span(), Some(Duration::hours(2)));
    }

    #[test]
    fn a_launch_gets_an_absolute_lease() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().with_timezone(&Utc);
        let t = terms(&[(DEFAULT, "8h"), (WARN, "1h")]);
        let l = t.for_launch(None, now).unwrap().unwrap();
        assert_eq!(l.expires_at, (now + Duration::hours(8)).timestamp_millis());
        assert_eq!(l.warn_at, (now + Duration::hours(7)).timestamp_millis());
        assert_eq!(l.action, LeaseAction::Terminate);
        let asked = t.for_launch(Some(&LeaseAsk::For(Duration::minutes(30))), now).unwrap().unwrap();
        assert_eq!(asked.expires_at, (now + Duration::minutes(30)).timestamp_millis());
        assert_eq!(terms(&[]).for_launch(None, now).unwrap(), None);
        let past = LeaseAsk::Until(now - Duration::seconds(1));
        assert!(t.for_launch(Some(&past), now).unwrap_err().to_string().contains("not in the future"));
    }
}
