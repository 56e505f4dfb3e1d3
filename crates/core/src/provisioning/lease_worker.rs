//! The lease worker: ends each expired VM lease exactly once, on one
//! replica, whatever crashes or replicas do, and records the warnings due
//! before. A pass (every few seconds on every replica, no global lock):
//!
//! 1. warnings due (one query on the `vms_lease_warn_due` index): each is
//!    recorded by one conditional update, and audited (`vm.lease.warn`)
//!    only by the replica whose update wrote it;
//! 2. leases of VMs that ended before them are closed, with no cloud call;
//! 3. expired leases (one query on the `vms_lease_due` index, earliest
//!    first): at most `lease.max.actions` per connector instance are
//!    claimed (one conditional update each: one replica wins, only while
//!    the lease is still expired, so an extension committed first wins);
//!    the rest are deferred to the next pass and reported;
//! 4. per (instance, credential), the claimed VMs are described first and
//!    acted on in one call per action (`stop_instances`,
//!    `terminate_instances`). A VM already in the lease's end state (a
//!    claimant that died after its call) is recorded, never acted on twice.
//!    Fails safe: a VM the cloud does not report, whose state cannot be
//!    read, whose connector is not ready or whose credential cannot be used
//!    is skipped and reported, never acted on; its claim is released.
//! 5. the claimant records the outcome (`lease_done_at`, a note saying
//!    how late when the broker was down at expiry), the VM's state, and
//!    the audit (`vm.lease.expire`, by `system`, in the VM's project).
//!
//! A claim older than the claim lifetime ([`LEASE_CLAIM_TTL`] unless
//! configured) is taken over: its replica died.
//! Every time comes from the provisioning clock, so tests set it.

use super::leases::LeaseTerms;
use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::domain::lease::format_duration;
use crate::domain::time::{rfc3339_string, Fraction};
use crate::domain::{CredentialId, InstanceName, LeaseAction, VmStatus};
use crate::error::ServiceResult;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::{Connector, ConnectorError, Credentials, DescribeFilter, VmState};
use cloudbroker_store::vm_leases::LeaseDue;
use cloudbroker_store::vms::VmUpdate;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a claim on an expiry holds before another replica takes it
/// over (its claimant died mid-action), unless configured
/// (`lease_claim_ttl_secs`, [`Provisioning::lease_claim_ttl`]). Far longer
/// than a pass's calls.
pub const LEASE_CLAIM_TTL: Duration = Duration::from_secs(120);

/// An action this long after the expiry counts as late (the broker was
/// down, or behind): its note and the pass's summary say how late.
const LATE_AFTER_SECS: i64 = 60;

/// Most warnings recorded per pass (the rest wait for the next).
const WARN_BATCH: i64 = 1000;

/// Most due leases read per pass, whatever the instances allow.
const DUE_READ_MAX: i64 = 100_000;

/// VMs per cloud call (describe, stop, terminate).
const CALL_BATCH: usize = 100;

/// The actor the audit log records the broker's own acts by.
const SYSTEM: &str = "system";

/// What one pass of the lease worker did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeasePassReport {
    /// Warnings recorded by this pass (each audited once, by one replica).
    pub warned: usize,
    /// VMs stopped by their lease.
    pub stopped: usize,
    /// VMs terminated by their lease.
    pub terminated: usize,
    /// Leases closed with no cloud call: the VM ended before its lease.
    pub ended_before: usize,
    /// Leases recorded with no cloud call: the cloud already had the VM in
    /// the lease's end state (a claimant died after acting; or the VM was
    /// stopped or terminated outside the broker).
    pub already_done: usize,
    /// Of the above, how many were dealt with more than a minute after
    /// their expiry (the broker was down or behind), and the latest by.
    pub late: usize,
    /// The most late one's delay, in seconds.
    pub late_by_secs: i64,
    /// Due VMs not acted on because their state or their cloud could not
    /// be read (never acted on; their claim is released; tried again).
    pub skipped: usize,
    /// Why, one line per skipped VM (`vm-…: why`).
    pub skip_reasons: Vec<String>,
    /// Due VMs over their instance's `lease.max.actions` this pass.
    pub deferred: usize,
    /// Due VMs another replica holds a live claim on (it acts on them).
    pub busy: usize,
    /// Errors that ended the work on a group early (its claims released).
    pub errors: Vec<String>,
}

impl LeasePassReport {
    /// VMs acted on (stopped or terminated by a cloud call).
    pub fn acted(&self) -> usize {
        self.stopped + self.terminated
    }

    /// Whether the pass did, skipped, deferred or failed anything.
    pub fn is_eventful(&self) -> bool {
        self.warned + self.acted() + self.ended_before + self.already_done + self.skipped + self.deferred > 0 || !self.errors.is_empty()
    }

    /// Whether some VM was skipped or some group failed (the worker's step
    /// is then reported as failed).
    pub fn has_failures(&self) -> bool {
        self.skipped > 0 || !self.errors.is_empty()
    }

    /// One line for people: "warned 2, stopped 1, terminated 3, skipped 1
    /// (vm-…: why), deferred 40 over lease.max.actions"; parts that are
    /// zero are left out; empty when nothing happened.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (n, what) in [(self.warned, "warned"), (self.stopped, "stopped"), (self.terminated, "terminated")] {
            if n > 0 {
                parts.push(format!("{what} {n}"));
            }
        }
        if self.ended_before > 0 {
            parts.push(format!("closed {} (VM ended before its lease)", self.ended_before));
        }
        if self.already_done > 0 {
            parts.push(format!("recorded {} already ended in the cloud", self.already_done));
        }
        if self.late > 0 {
            parts.push(format!("{} late by up to {}", self.late, format_duration(chrono::Duration::seconds(self.late_by_secs))));
        }
        if self.skipped > 0 {
            const SHOWN: usize = 5;
            let mut why = self.skip_reasons.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
            if self.skip_reasons.len() > SHOWN {
                why.push_str(&format!("; and {} more", self.skip_reasons.len() - SHOWN));
            }
            parts.push(format!("skipped {} ({why})", self.skipped));
        }
        if self.deferred > 0 {
            parts.push(format!("deferred {} over lease.max.actions", self.deferred));
        }
        if !self.errors.is_empty() {
            parts.push(format!("{} error(s): {}", self.errors.len(), self.errors.join("; ")));
        }
        parts.join(", ")
    }

    fn skip(&mut self, r: &LeaseDue, why: &str) {
        self.skipped += 1;
        self.skip_reasons.push(format!("{}: {why}", r.id));
    }

    fn count_late(&mut self, late_secs: i64) {
        if late_secs > LATE_AFTER_SECS {
            self.late += 1;
            self.late_by_secs = self.late_by_secs.max(late_secs);
        }
    }
}

/// A time in notes: RFC 3339, to the second.
fn at(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp(ms.div_euclid(1000), 0).unwrap_or_default();
    rfc3339_string(&t, Fraction::Auto)
}

/// Whether a VM in `state` has ended (or is ending): its lease has
/// nothing left to do.
fn ended(state: VmStatus) -> bool {
    !state.is_live() || state == VmStatus::ShuttingDown
}

/// The past tense of an action, in notes.
fn done_word(action: LeaseAction) -> &'static str {
    match action {
        LeaseAction::Stop => "stopped",
        LeaseAction::Terminate => "terminated",
    }
}

/// ", 3m late" when the act at `now` is more than a minute after `due` (ms).
fn lateness(due: i64, now: i64) -> String {
    let late = (now - due) / 1000;
    if late > LATE_AFTER_SECS {
        format!(", {} late", format_duration(chrono::Duration::seconds(late)))
    } else {
        String::new()
    }
}

/// The VMs of one (instance, credential) claimed by this pass.
struct Group<'a> {
    instance: &'a InstanceName,
    credential: &'a CredentialId,
    rows: Vec<LeaseDue>,
}

impl Provisioning {
    /// One pass of the lease worker, as `holder` (this replica's id): see
    /// the module's documentation. Times come from the provisioning clock.
    /// A store error ends the pass (`Err`); a group's failure is reported
    /// in the report's errors, its claims released.
    pub async fn lease_pass(&self, holder: &str) -> ServiceResult<LeasePassReport> {
        let now = self.clock.now_ms();
        let ttl = self.lease_claim_ttl.as_millis() as i64;
        let mut report = LeasePassReport::default();
        self.lease_warnings(now, &mut report).await?;
        report.ended_before += usize::try_from(self.store.close_ended_vm_leases(now).await?).unwrap_or(0);

        // Each instance's cap; the read is bounded by their sum (an instance
        // since removed gets the default cap and is skipped: no connector).
        let snap = self.registry.snapshot();
        let terms: BTreeMap<&str, LeaseTerms> = snap.instances.iter().map(|e| (e.name.as_str(), LeaseTerms::of(&e.values))).collect();
        let default_cap = LeaseTerms::of(&cloudbroker_connector_api::params::ParamValues::default()).max_actions;
        let budget = terms.values().map(|t| t.max_actions as i64).sum::<i64>().clamp(default_cap as i64, DUE_READ_MAX);
        let due = self.store.vm_lease_expiries_due(now, budget).await?;
        if due.len() as i64 == budget {
            // More may wait than were read: they wait for the next pass.
            let total = self.store.count_vm_leases_due(now).await?;
            report.deferred += usize::try_from(total - budget).unwrap_or(0);
        }

        let mut taken: BTreeMap<InstanceName, usize> = BTreeMap::new();
        let mut claimed: BTreeMap<(InstanceName, CredentialId), Vec<LeaseDue>> = BTreeMap::new();
        for d in due {
            if d.claimed_by.is_some() && d.claimed_at.is_some_and(|t| t >= now - ttl) {
                report.busy += 1;
                continue;
            }
            if d.state == VmStatus::Held {
                // A deployment's VM not launched yet: its lease acts once
                // it is (nothing in the cloud to stop or terminate).
                continue;
            }
            if ended(d.state) {
                // A dead claimant's act ended it (or it ended meanwhile:
                // closed by the next pass's first step). No cloud call.
                if d.claimed_by.is_some() && self.store.claim_vm_lease(&d.id, holder, now, ttl).await? {
                    self.lease_ended_in_record(holder, now, &d, &mut report).await?;
                }
                continue;
            }
            let cap = terms.get(d.instance.as_str()).map_or(default_cap, |t| t.max_actions);
            let n = taken.entry(d.instance.clone()).or_default();
            if *n >= cap {
                report.deferred += 1;
                continue;
            }
            if !self.store.claim_vm_lease(&d.id, holder, now, ttl).await? {
                report.busy += 1;
                continue;
            }
            *n += 1;
            claimed.entry((d.instance.clone(), d.credential_id.clone())).or_default().push(d);
        }

        for ((instance, credential), rows) in &claimed {
            let group = Group { instance, credential, rows: rows.clone() };
            if let Err(e) = self.end_leases(holder, now, &group, &mut report).await {
                report.errors.push(format!("{instance}: {e}"));
                tracing::warn!(%instance, error = %e, "lease worker: a group failed; its claims are released");
                for r in rows {
                    // Those already recorded are not released (done).
                    let _ = self.store.release_vm_lease_claim(&r.id, holder, None).await;
                }
            }
        }
        if report.is_eventful() {
            tracing::info!(summary = %report.summary(), "lease pass");
        }
        Ok(report)
    }

    /// Step 1: records the warnings due at `now`.
    async fn lease_warnings(&self, now: i64, report: &mut LeasePassReport) -> ServiceResult<()> {
        for r in self.store.vm_lease_warnings_due(now, WARN_BATCH).await? {
            if ended(r.state) || r.expires_at <= now {
                // Nothing to warn of: the VM ended, or the lease already
                // ended (the broker was down through the warning): marked,
                // so it leaves the warnings' index; the expiry deals with it.
                self.store.mark_vm_lease_warned(&r.id, now, None).await?;
                continue;
            }
            let note = format!(
                "lease ends at {} (in {}): the VM will be {}",
                at(r.expires_at),
                format_duration(chrono::Duration::milliseconds(r.expires_at - now)),
                done_word(r.action)
            );
            if self.store.mark_vm_lease_warned(&r.id, now, Some(&note)).await? {
                report.warned += 1;
                let event = AuditEvent::ok(AuditAction::VmLeaseWarn, AuditTarget::Vm(r.id.as_str()))
                    .detail(note.as_str())
                    .in_project(r.project.as_str());
                audit::record(&self.store, SYSTEM, &event).await?;
            }
        }
        Ok(())
    }

    /// Releases `r`'s claim without acting, saying why (fail safe).
    async fn skip_lease(&self, holder: &str, now: i64, r: &LeaseDue, why: &str, report: &mut LeasePassReport) -> ServiceResult<()> {
        tracing::warn!(vm = %r.id, instance = %r.instance, why, "lease worker: skipped a due VM (not acted on)");
        report.skip(r, why);
        let note = format!("lease ended at {}; not acted on yet (at {}): {why}", at(r.expires_at), at(now));
        self.store.release_vm_lease_claim(&r.id, holder, Some(&note)).await?;
        Ok(())
    }

    /// Steps 4 and 5 for one group of claimed VMs.
    async fn end_leases(&self, holder: &str, now: i64, g: &Group<'_>, report: &mut LeasePassReport) -> ServiceResult<()> {
        let (with_cloud, without): (Vec<&LeaseDue>, Vec<&LeaseDue>) = g.rows.iter().partition(|r| r.cloud_id.is_some());
        for r in without {
            self.skip_lease(holder, now, r, "it has no cloud instance yet (its launch is in flight)", report).await?;
        }
        if with_cloud.is_empty() {
            return Ok(());
        }
        let connector = match self.connector(g.instance) {
            Ok((c, _, _)) => c,
            Err(e) => {
                for r in with_cloud {
                    self.skip_lease(holder, now, r, &e.to_string(), report).await?;
                }
                return Ok(());
            }
        };
        let creds = match self.vault.credentials_by_id(g.credential).await {
            Ok(c) => c,
            Err(e) => {
                let why = format!("its credential cannot be used: {e}");
                for r in with_cloud {
                    self.skip_lease(holder, now, r, &why, report).await?;
                }
                return Ok(());
            }
        };
        for chunk in with_cloud.chunks(CALL_BATCH) {
            let states = match describe_states(connector.as_ref(), &creds, chunk).await {
                Ok(s) => s,
                Err(e) => {
                    let why = format!("the cloud did not tell its state: {e}");
                    for r in chunk {
                        self.skip_lease(holder, now, r, &why, report).await?;
                    }
                    continue;
                }
            };
            let mut to_stop: Vec<&LeaseDue> = Vec::new();
            let mut to_terminate: Vec<&LeaseDue> = Vec::new();
            for (r, state) in chunk.iter().zip(states) {
                match (state, r.action) {
                    (None, _) => self.skip_lease(holder, now, r, "the cloud does not report it", report).await?,
                    (Some(s @ (VmState::Terminated | VmState::ShuttingDown)), _)
                    | (Some(s @ (VmState::Stopped | VmState::Stopping)), LeaseAction::Stop) => {
                        self.lease_already_done(holder, now, r, s, report).await?
                    }
                    (Some(VmState::Running), LeaseAction::Stop) => to_stop.push(r),
                    (Some(s), LeaseAction::Stop) => {
                        let why = format!("it is {} in the cloud: it cannot be stopped now", s.as_str());
                        self.skip_lease(holder, now, r, &why, report).await?
                    }
                    (Some(_), LeaseAction::Terminate) => to_terminate.push(r),
                }
            }
            self.act_on_leases(holder, now, connector.as_ref(), &creds, LeaseAction::Stop, &to_stop, report).await?;
            self.act_on_leases(holder, now, connector.as_ref(), &creds, LeaseAction::Terminate, &to_terminate, report).await?;
        }
        Ok(())
    }

    /// Records a lease taken over from a dead claimant whose VM's record
    /// already shows it ended: no call.
    async fn lease_ended_in_record(&self, holder: &str, now: i64, r: &LeaseDue, report: &mut LeasePassReport) -> ServiceResult<()> {
        let note = format!(
            "{} by its lease at {} (due {}{}): its record already showed it {} (a replica acted and stopped before recording it)",
            done_word(r.action),
            at(now),
            at(r.expires_at),
            lateness(r.expires_at, now),
            r.state
        );
        if self.store.finish_vm_lease(&r.id, holder, now, &note).await? {
            report.already_done += 1;
            report.count_late((now - r.expires_at) / 1000);
            let event = AuditEvent::ok(AuditAction::VmLeaseExpire, AuditTarget::Vm(r.id.as_str()))
                .detail(note.as_str())
                .in_project(r.project.as_str());
            audit::record(&self.store, SYSTEM, &event).await?;
        }
        Ok(())
    }

    /// Records a lease whose end the cloud already shows (`state`): no call.
    async fn lease_already_done(
        &self,
        holder: &str,
        now: i64,
        r: &LeaseDue,
        state: VmState,
        report: &mut LeasePassReport,
    ) -> ServiceResult<()> {
        let taken_over = r.claimed_by.is_some();
        let note = if taken_over {
            format!(
                "{} by its lease at {} (due {}{}): the cloud already had it {} (a replica acted and stopped before recording it)",
                done_word(r.action),
                at(now),
                at(r.expires_at),
                lateness(r.expires_at, now),
                state.as_str()
            )
        } else {
            format!("already {} in the cloud when its lease ended (due {}): nothing to do", state.as_str(), at(r.expires_at))
        };
        self.record_vm_state(r, state).await?;
        if self.store.finish_vm_lease(&r.id, holder, now, &note).await? {
            report.already_done += 1;
            report.count_late((now - r.expires_at) / 1000);
            let event = AuditEvent::ok(AuditAction::VmLeaseExpire, AuditTarget::Vm(r.id.as_str()))
                .detail(note.as_str())
                .in_project(r.project.as_str());
            audit::record(&self.store, SYSTEM, &event).await?;
        }
        Ok(())
    }

    /// One call per batch for `action` on `rows`, then the records.
    #[allow(clippy::too_many_arguments)]
    async fn act_on_leases(
        &self,
        holder: &str,
        now: i64,
        connector: &dyn Connector,
        creds: &Credentials,
        action: LeaseAction,
        rows: &[&LeaseDue],
        report: &mut LeasePassReport,
    ) -> ServiceResult<()> {
        for chunk in rows.chunks(CALL_BATCH) {
            let ids: Vec<String> = chunk.iter().filter_map(|r| r.cloud_id.clone()).collect();
            let answer = match action {
                LeaseAction::Stop => connector.stop_instances(creds, &ids).await,
                LeaseAction::Terminate => connector.terminate_instances(creds, &ids).await,
            };
            let changes = match answer {
                Ok(c) => c,
                Err(e) => {
                    // Whatever the cloud did, the next pass describes first.
                    let why = format!("the cloud refused to {action} it: {e}");
                    for r in chunk {
                        self.skip_lease(holder, now, r, &why, report).await?;
                    }
                    continue;
                }
            };
            for r in chunk {
                if let Some(c) = changes.iter().find(|c| Some(&c.id) == r.cloud_id.as_ref()) {
                    self.record_vm_state(r, c.current).await?;
                }
                let note =
                    format!("{} by its lease at {} (due {}{})", done_word(action), at(now), at(r.expires_at), lateness(r.expires_at, now));
                if !self.store.finish_vm_lease(&r.id, holder, now, &note).await? {
                    // Taken over meanwhile (this pass outlived its claim):
                    // the other replica describes first, so it does not act again.
                    report.errors.push(format!("{}: the claim on its lease was taken over while acting", r.id));
                    continue;
                }
                match action {
                    LeaseAction::Stop => report.stopped += 1,
                    LeaseAction::Terminate => report.terminated += 1,
                }
                report.count_late((now - r.expires_at) / 1000);
                let event = AuditEvent::ok(AuditAction::VmLeaseExpire, AuditTarget::Vm(r.id.as_str()))
                    .detail(note.as_str())
                    .in_project(r.project.as_str());
                audit::record(&self.store, SYSTEM, &event).await?;
            }
        }
        Ok(())
    }

    /// Writes a VM's state as the cloud reported it, as an action does
    /// (`actions.rs`): an ended VM loses its addresses.
    async fn record_vm_state(&self, r: &LeaseDue, state: VmState) -> ServiceResult<()> {
        let status = VmStatus::from(state);
        if status == r.state {
            return Ok(());
        }
        let (private_ip, public_ip) = if matches!(state, VmState::Terminated | VmState::ShuttingDown) {
            (None, None)
        } else {
            (r.private_ip.as_deref(), r.public_ip.as_deref())
        };
        self.store.update_vm(&VmUpdate { private_ip, public_ip, ..VmUpdate::state(&r.id, status) }).await?;
        Ok(())
    }
}

/// The state the cloud reports for each of `rows` (`None`: it answered
/// without it). EC2 refuses a whole request when one id is unknown
/// (`InvalidInstanceID.NotFound`): the batch is then asked one id at a time,
/// and an unknown id is reported as `None` (never taken as "gone": the
/// worker does not act on what it cannot see).
async fn describe_states(
    connector: &dyn Connector,
    creds: &Credentials,
    rows: &[&LeaseDue],
) -> Result<Vec<Option<VmState>>, ConnectorError> {
    let ids: Vec<String> = rows.iter().filter_map(|r| r.cloud_id.clone()).collect();
    let of = |found: &[cloudbroker_connector_api::Vm], id: &str| found.iter().find(|v| v.id == id).map(|v| v.state);
    match connector.describe_instances(creds, &DescribeFilter::ids(&ids)).await {
        Ok(found) => Ok(ids.iter().map(|id| of(&found, id)).collect()),
        Err(ConnectorError::NotFound { code, .. }) if code == "InvalidInstanceID.NotFound" => {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                match connector.describe_instances(creds, &DescribeFilter::ids(std::slice::from_ref(id))).await {
                    Ok(found) => out.push(of(&found, id)),
                    Err(ConnectorError::NotFound { code, .. }) if code == "InvalidInstanceID.NotFound" => out.push(None),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
        Err(e) => Err(e),
    }
}
