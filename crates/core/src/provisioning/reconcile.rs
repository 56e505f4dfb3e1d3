//! Reconciliation: brings the broker's records and the clouds back in line.
//! One pass visits every (instance, credential) with live VMs, each under a
//! lease in the database so that only one replica works on a group at a
//! time; it adopts VMs whose launch was interrupted, refreshes statuses and
//! addresses, marks VMs gone from the cloud, and fails launches that never
//! reached the cloud within the grace period. A full pass then brings the
//! records of addresses and volumes in line (`reconcile_resources.rs`).
//!
//! Invariants: a VM record ends (terminated) only on the cloud's word for that
//! id (`InvalidInstanceID.NotFound` or a terminated state), never because a
//! tag-filtered listing missed it; a VM found by its tags is recorded only for
//! a user who may act with the credential it was listed with, in a project
//! (its project tag, else the user's personal one) where the user is a
//! member who acts and may use that credential; one cloud VM has
//! at most one record (a unique index, whatever two replicas do). What a
//! listing reports is written to a record only while the record is still at
//! the version read before the listing began ([`Versions`],
//! `Store::observe_vm`): an action (terminate, stop, start), a launch or
//! another replica that wrote in between is newer than the report and is
//! kept, and the next pass asks the cloud again. So a VM the user ended is
//! never brought back to `running` by a listing taken before the terminate.
//! A stop or terminate is recorded at the time the cloud gives for it, when
//! it gives one ([`cloud_since`]), so metering bills it to that time.

use super::{Provisioning, Vm};
use crate::auth::Actor;
use crate::domain::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, Tags, UserName, VmId, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{Connector, ConnectorError, Credentials, DescribeFilter, VmState};
use cloudbroker_store::now_ms;
use cloudbroker_store::vms::VmRow;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Reconcile groups (connector instance, credential) worked on at once.
const GROUPS_AT_ONCE: usize = 4;

/// What a reconciliation pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconcileReport {
    pub groups: usize,
    pub skipped_locked: usize,
    pub updated: usize,
    pub adopted: usize,
    pub vanished: usize,
    pub failed_launches: usize,
    /// Broker-tagged VMs not recorded: their user tag names someone who may
    /// not use the credential they were listed with (in the project they are
    /// tagged with, a project where that user is no acting member).
    pub refused: usize,
    /// Known VMs the tag listing missed and the cloud reported by id without
    /// our tag (a cloud that keeps no tags, or a tag removed in the cloud).
    pub untagged: usize,
    /// Known VMs the cloud neither listed nor reported missing.
    pub unconfirmed: usize,
    /// Reports not written: the record changed after the listing began (an
    /// action, a launch or another replica wrote it); the next pass looks again.
    pub stale: usize,
    /// (instance, credential) groups whose addresses and volumes were
    /// compared with the cloud (`reconcile_resources.rs`).
    pub resource_groups: usize,
    /// Address records brought in line with the cloud (disassociated, moved, released).
    pub addresses_updated: usize,
    /// Volume records brought in line with the cloud (detached, deleted with their VM).
    pub volumes_updated: usize,
    pub errors: Vec<String>,
}

impl ReconcileReport {
    /// Whether the pass changed anything or met errors (worth a log line).
    pub fn is_eventful(&self) -> bool {
        self.updated + self.adopted + self.vanished + self.failed_launches + self.addresses_updated + self.volumes_updated > 0
            || !self.errors.is_empty()
    }

    /// Adds up the report of another group.
    fn absorb(&mut self, o: ReconcileReport) {
        self.groups += o.groups;
        self.skipped_locked += o.skipped_locked;
        self.updated += o.updated;
        self.adopted += o.adopted;
        self.vanished += o.vanished;
        self.failed_launches += o.failed_launches;
        self.refused += o.refused;
        self.untagged += o.untagged;
        self.unconfirmed += o.unconfirmed;
        self.stale += o.stale;
        self.resource_groups += o.resource_groups;
        self.addresses_updated += o.addresses_updated;
        self.volumes_updated += o.volumes_updated;
        self.errors.extend(o.errors);
    }
}

impl Provisioning {
    /// How long a reconcile lease lives: three intervals, at least 30 s, so a
    /// slow pass keeps it and a dead replica's lease expires soon.
    pub fn lease_ttl(&self) -> Duration {
        (self.reconcile_interval * 3).max(Duration::from_secs(30))
    }

    /// A pass now, on an admin's request.
    pub async fn reconcile_now(&self, actor: &Actor, holder: &str) -> ServiceResult<ReconcileReport> {
        actor.require_admin()?;
        self.reconcile(holder).await
    }

    /// One reconciliation pass over every (instance, credential) with live
    /// VMs, each under a lease so only one replica works on it at a time.
    pub async fn reconcile(&self, holder: &str) -> ServiceResult<ReconcileReport> {
        let pass = crate::metrics::ReconcilePass::start();
        let mut r = self.reconcile_groups(holder, false).await;
        if let Ok(report) = r.as_mut() {
            // Addresses and volumes, once the VMs' records are fresh.
            if let Err(e) = self.reconcile_resources(holder, report).await {
                report.errors.push(format!("addresses, volumes: {e}"));
            }
        }
        pass.finish(r.as_ref().is_ok_and(|r| r.errors.is_empty()));
        r
    }

    /// A pass over only the groups with a VM on its way somewhere (launch in
    /// flight, pending, stopping, shutting down): run every few seconds, it
    /// makes records (and so every front-end's answers) follow the cloud
    /// soon after an action, without listing every group that often.
    pub async fn watch_transitional(&self, holder: &str) -> ServiceResult<ReconcileReport> {
        self.reconcile_groups(holder, true).await
    }

    async fn reconcile_groups(&self, holder: &str, transitional_only: bool) -> ServiceResult<ReconcileReport> {
        let ttl = self.lease_ttl();
        let mut report = ReconcileReport::default();
        // The gauges count the live VMs in the database; the watch (every
        // few seconds) then reads only the VMs on the move, a full pass all
        // the live ones.
        let live: Vec<VmStatus> = VmStatus::ALL.into_iter().filter(|s| s.is_live()).collect();
        let counts = self.store.vm_counts_by_instance(&live).await?;
        crate::metrics::set_vm_counts(&counts.into_iter().map(|(i, s, n)| ((i, s), usize::try_from(n).unwrap_or(0))).collect());
        // A deployment's held VMs have no cloud call yet: nothing to
        // reconcile (their launch grace counts from their release, which
        // sets their created_at: see `Store::release_held_vm`).
        let live: Vec<VmStatus> = live.into_iter().filter(|s| *s != VmStatus::Held).collect();
        let states: Vec<VmStatus> =
            if transitional_only { VmStatus::ALL.into_iter().filter(|s| s.is_transitional()).collect() } else { live };
        let rows = self.store.vms_in_states(&states).await?;
        let mut groups: BTreeMap<(String, String), Vec<VmRow>> = BTreeMap::new();
        for v in rows {
            groups.entry((v.instance.to_string(), v.credential_id.to_string())).or_default().push(v);
        }
        if transitional_only {
            groups.retain(|_, rows| rows.iter().any(|r| r.cloud_id.is_some() && r.state.is_transitional()));
        }
        // Groups (one per connector instance and credential) are independent:
        // each holds its own lease and its calls go through its instance's
        // call gate (`max.iaas.workers`), so a few run at once and a slow
        // cloud account does not hold up the others.
        let jobs = groups.into_iter().map(|((instance, cred), rows)| async move {
            let mut part = ReconcileReport { groups: 1, ..ReconcileReport::default() };
            let lease = format!("reconcile:{instance}:{cred}");
            if !self.store.try_lease(&lease, holder, ttl.as_millis() as i64).await? {
                part.skipped_locked += 1;
                return Ok::<_, ServiceError>(part);
            }
            let versions = Versions::of(&rows);
            let vms = match self.vms(rows) {
                Ok(v) => v,
                Err(e) => {
                    part.errors.push(format!("{instance}: {e}"));
                    return Ok(part);
                }
            };
            let Ok(instance) = InstanceName::parse(&instance) else { return Ok(part) };
            let cred = CredentialId::from_stored(cred);
            let done = if transitional_only {
                self.watch_group(&instance, &cred, &vms, &versions, (&lease, holder), &mut part).await
            } else {
                self.reconcile_group(&instance, &cred, &vms, &versions, (&lease, holder), &mut part).await
            };
            if let Err(e) = done {
                part.errors.push(format!("{instance}: {e}"));
            }
            Ok(part)
        });
        let parts: Vec<ServiceResult<ReconcileReport>> = futures::stream::iter(jobs).buffer_unordered(GROUPS_AT_ONCE).collect().await;
        for part in parts {
            report.absorb(part?);
        }
        Ok(report)
    }

    /// Matches a cloud VM a launch got back to a record: puts it into one of
    /// the launch's rows without a cloud id. A record that already holds it
    /// is left alone: whoever recorded it (the reconciler, an action) did so
    /// after the cloud made it, so no later than this answer. Returns whether
    /// a record was changed.
    pub(super) async fn record_cloud_vm(
        &self,
        instance: &InstanceName,
        launch_id: &LaunchId,
        credential: &CredentialId,
        vm: &cloudbroker_connector_api::Vm,
    ) -> ServiceResult<bool> {
        Ok(self.record_observed(instance, launch_id, credential, vm, &Versions::default()).await? == Observed::Written)
    }

    /// Matches a cloud VM, as a listing reported it, to a record
    /// (idempotent). A known record is written only while it is at the
    /// version in `versions` (read before the listing began). A VM is put
    /// into a launch's row only when that row is of the same instance and
    /// credential, and (when the VM carries a user or project tag) of that
    /// user and project: tags are written by whoever holds the cloud
    /// account, so they are never enough on their own.
    async fn record_observed(
        &self,
        instance: &InstanceName,
        launch_id: &LaunchId,
        credential: &CredentialId,
        vm: &cloudbroker_connector_api::Vm,
        versions: &Versions,
    ) -> ServiceResult<Observed> {
        let status = VmStatus::from(vm.state);
        if let Some(known) = self.store.vm_by_cloud_id(instance, &vm.id).await? {
            let changed = known.state != status || known.private_ip != vm.private_ip || known.public_ip != vm.public_ip;
            if !changed {
                return Ok(Observed::Unchanged);
            }
            // Not read before the listing (recorded or ended since, or not
            // live): this report is no newer than the record.
            let Some(version) = versions.get(&known.id) else { return Ok(Observed::Unchanged) };
            if known.version != version
                || !self
                    .store
                    .observe_vm_since(
                        &known.id,
                        version,
                        status,
                        (vm.private_ip.as_deref(), vm.public_ip.as_deref()),
                        None,
                        cloud_since(vm),
                    )
                    .await?
            {
                return Ok(Observed::Stale);
            }
            self.wake_deployment(known.tags.get(super::DEPLOYMENT_TAG));
            return Ok(Observed::Written);
        }
        let tagged_user = vm.tag(tags::USER);
        let tagged_project = vm.tag(tags::PROJECT);
        let candidates = self.launch_vms(launch_id).await?;
        for r in candidates.iter().filter(|r| {
            r.cloud_id.is_none()
                && &r.instance == instance
                && &r.credential_id == credential
                && tagged_user.is_none_or(|u| u == r.user.as_str())
                && tagged_project.is_none_or(|p| p == r.project.as_str())
        }) {
            if self.store.adopt_vm(&r.id, &vm.id, status, vm.private_ip.as_deref(), vm.public_ip.as_deref()).await? {
                self.wake_deployment(r.tags.get(super::DEPLOYMENT_TAG));
                return Ok(Observed::Written);
            }
        }
        Ok(Observed::Unchanged)
    }

    /// Whether `user` may launch in `project` with the stored credential
    /// `cred`: the user acts in the project (its personal one, or a member
    /// who may act), and the credential is theirs, the project's, or a
    /// shared one granted to the project.
    async fn may_use_credential(&self, user: &UserName, project: &ProjectName, cred: &CredentialId) -> ServiceResult<bool> {
        if project.as_str() != user.as_str() && !self.store.project_membership(project, user).await?.is_some_and(|role| role.can_act()) {
            return Ok(false);
        }
        if let Some(owner) = cred.as_str().strip_prefix("anonymous:") {
            return Ok(owner == user.as_str());
        }
        let Some(row) = self.store.get_credential_by_id(cred.as_str()).await? else { return Ok(false) };
        Ok(match row.scope.as_str() {
            "user" => row.owner == user.as_str(),
            "project" => row.owner == project.as_str(),
            _ => self.store.grants(&row.id).await?.iter().any(|g| g == project.as_str()),
        })
    }

    /// Keeps this replica's lease on a group while it works on it; false when
    /// another replica holds it now (this pass then stops writing to the group).
    async fn renew(&self, lease: &str, holder: &str) -> ServiceResult<bool> {
        Ok(self.store.try_lease(lease, holder, self.lease_ttl().as_millis() as i64).await?)
    }

    async fn reconcile_group(
        &self,
        instance: &InstanceName,
        cred: &CredentialId,
        rows: &[Vm],
        versions: &Versions,
        (lease, holder): (&str, &str),
        report: &mut ReconcileReport,
    ) -> ServiceResult<()> {
        let (connector, _, _) = self.connector(instance)?;
        let creds = self.vault.credentials_by_id(cred).await?;
        let seen = connector.describe_instances(&creds, &DescribeFilter::tag(tags::BROKER, &self.broker_id)).await?;
        if !self.renew(lease, holder).await? {
            report.skipped_locked += 1;
            return Ok(());
        }
        let seen_ids: BTreeSet<&str> = seen.iter().map(|v| v.id.as_str()).collect();
        // The group's records as read before the listing, by cloud id: a VM
        // the cloud reports just as its record says needs no query (an idle
        // pass over 1,000 VMs made two each; a record changed since then is
        // newer than this listing anyway, so nothing would be written).
        let recorded: BTreeMap<&str, &Vm> = rows.iter().filter_map(|r| r.cloud_id.as_deref().map(|id| (id, r))).collect();
        for vm in &seen {
            let Some(tag) = vm.tag(tags::LAUNCH) else { continue };
            if recorded
                .get(vm.id.as_str())
                .is_some_and(|r| r.status == VmStatus::from(vm.state) && r.private_ip == vm.private_ip && r.public_ip == vm.public_ip)
            {
                continue;
            }
            // A launch tag that is not one of ours cannot match a launch record;
            // such a VM can still be recorded below, under a launch id of its own.
            let launch = LaunchId::parse(tag).ok();
            let known = self.store.vm_by_cloud_id(instance, &vm.id).await?;
            let any_launch = launch.clone().unwrap_or_else(LaunchId::generate);
            if known.is_some() {
                match self.record_observed(instance, &any_launch, cred, vm, versions).await? {
                    Observed::Written => report.updated += 1,
                    Observed::Stale => report.stale += 1,
                    Observed::Unchanged => {}
                }
                continue;
            }
            if launch.is_some() && self.record_observed(instance, &any_launch, cred, vm, versions).await? == Observed::Written {
                report.adopted += 1;
                tracing::info!(%instance, cloud_id = %vm.id, launch = %any_launch, "adopted a VM launched before an interruption");
                continue;
            }
            let launch = any_launch;
            // A broker-tagged VM with no record at all (e.g. restored database):
            // record it, but only for a user who may act with the credential it
            // was listed with. Anyone can write tags in their own account.
            let Some(user) = vm.tag(tags::USER).and_then(|u| UserName::parse(u).ok()) else { continue };
            if vm.state == VmState::Terminated || self.store.get_user(user.as_str()).await?.is_none() {
                continue;
            }
            // Its project: the one it is tagged with, else the user's personal one.
            let project = match vm.tag(tags::PROJECT) {
                Some(p) => match ProjectName::parse(p) {
                    Ok(p) => p,
                    Err(_) => {
                        report.refused += 1;
                        continue;
                    }
                },
                None => ProjectName::personal(&user),
            };
            if !self.may_use_credential(&user, &project, cred).await? {
                report.refused += 1;
                tracing::warn!(%instance, cloud_id = %vm.id, tagged_user = %user, tagged_project = %project, "a broker-tagged VM names a user (or project) who may not use the credential it was listed with; not recorded");
                continue;
            }
            let row = VmRow {
                id: VmId::generate(),
                launch_id: launch.clone(),
                launch_index: 0,
                user: user.clone(),
                project,
                instance: instance.clone(),
                credential_id: cred.clone(),
                client_token: ClientToken::from_stored(format!("adopted:{}", vm.id)),
                name: vm.tag(tags::NAME).unwrap_or("").to_string(),
                image: vm.image_id.clone(),
                image_id: vm.image_id.clone(),
                instance_type: vm.instance_type.clone(),
                state: VmStatus::from(vm.state),
                key_name: None,
                cloud_id: Some(vm.id.clone()),
                private_ip: vm.private_ip.clone(),
                public_ip: vm.public_ip.clone(),
                error: None,
                tags: Tags::from_stored(
                    vm.tags.iter().filter(|(k, _)| !k.starts_with("cloudbroker:") && k != tags::NAME).cloned().collect(),
                ),
                created_at: chrono::Utc::now(),
                updated_at: chrono::Utc::now(),
                version: 0,
                // Adopted, not launched: no lease unless an admin sets one.
                lease: None,
            };
            if self.store.insert_adopted_vm(&row).await? {
                report.adopted += 1;
            }
        }
        // Adopted VMs (and any without one) get their network record from the listing.
        let by_cloud: BTreeMap<&str, VmId> = rows.iter().filter_map(|r| r.cloud_id.as_deref().map(|c| (c, r.id.clone()))).collect();
        self.record_missing_networks(instance, &seen, &by_cloud).await?;
        // The tag listing is a hint: clouds that keep no tags, or a user who
        // removed ours, would make running VMs look gone. Ask for the missing
        // ones by id; only the cloud's "no such instance" or an explicit
        // terminated state ends a record.
        let missing: Vec<&Vm> = rows.iter().filter(|r| r.cloud_id.as_deref().is_some_and(|id| !seen_ids.contains(id))).collect();
        if !self.confirm(instance, connector.as_ref(), &creds, &missing, versions, (lease, holder), report).await? {
            return Ok(());
        }
        let grace_ms = self.launch_grace.as_millis() as i64;
        for r in rows {
            if r.cloud_id.is_none() && now_ms() - r.created_at.timestamp_millis() > grace_ms {
                // Re-read: the adoption above may just have given it a cloud id.
                // Ended only if nothing wrote it since (the launch's answer).
                if let Some(fresh) = self.store.get_vm(&r.id).await? {
                    if fresh.cloud_id.is_none() && fresh.state == VmStatus::Requested {
                        if self.end_record(r, fresh.version, VmStatus::Failed, "launch interrupted before the cloud created the VM").await?
                        {
                            report.failed_launches += 1;
                        } else {
                            report.stale += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Wakes this replica's deployments driver when a VM record just
    /// written belongs to a deployment (`deployment`: its reserved tag):
    /// running, its node may now be ready (and its dependents released in
    /// the same pass); stopped or ended, its node is degraded. The
    /// deployment moves on now rather than at the driver's next pass.
    fn wake_deployment(&self, deployment: Option<&str>) {
        if let (Some(_), Some(kick)) = (deployment, self.deployment_kick.get()) {
            kick.notify_one();
        }
    }

    /// Ends a record with `status` and why (its addresses are dropped), if
    /// it is still at `version`. Returns whether it was written.
    async fn end_record(&self, r: &Vm, version: i64, status: VmStatus, why: &str) -> ServiceResult<bool> {
        Ok(self.store.observe_vm(&r.id, version, status, None, None, Some(why)).await?)
    }

    /// Asks the cloud for `rows` by id (in batches) and records what it
    /// says: only the cloud's "no such instance" or an explicit terminated
    /// state ends a record; each is written only while the record is at its
    /// version in `versions`. False when the group's lease was lost meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn confirm(
        &self,
        instance: &InstanceName,
        connector: &dyn Connector,
        creds: &Credentials,
        rows: &[&Vm],
        versions: &Versions,
        (lease, holder): (&str, &str),
        report: &mut ReconcileReport,
    ) -> ServiceResult<bool> {
        for chunk in rows.chunks(CONFIRM_BATCH) {
            let confirmed = self.confirm_by_id(connector, creds, chunk).await?;
            if !self.renew(lease, holder).await? {
                report.skipped_locked += 1;
                return Ok(false);
            }
            for (r, found) in chunk.iter().zip(confirmed) {
                let Some(version) = versions.get(&r.id) else {
                    report.stale += 1;
                    continue;
                };
                match found {
                    Confirmed::Gone => {
                        if self
                            .end_record(r, version, VmStatus::Terminated, "no longer in the cloud (terminated outside the broker)")
                            .await?
                        {
                            self.wake_deployment(r.tags.get(super::DEPLOYMENT_TAG));
                            report.vanished += 1;
                        } else {
                            report.stale += 1;
                        }
                    }
                    Confirmed::Present(vm) => {
                        let status = VmStatus::from(vm.state);
                        if r.status != status || r.private_ip != vm.private_ip || r.public_ip != vm.public_ip {
                            let addresses = (vm.private_ip.as_deref(), vm.public_ip.as_deref());
                            let written = self.store.observe_vm_since(&r.id, version, status, addresses, None, cloud_since(&vm)).await?;
                            if written {
                                self.wake_deployment(r.tags.get(super::DEPLOYMENT_TAG));
                            }
                            if !written {
                                report.stale += 1;
                            } else if status == VmStatus::Terminated {
                                report.vanished += 1;
                            } else {
                                report.updated += 1;
                            }
                        }
                        if vm.tag(tags::BROKER) != Some(self.broker_id.as_str()) {
                            report.untagged += 1;
                        }
                    }
                    Confirmed::Unknown => {
                        report.unconfirmed += 1;
                        report.errors.push(format!(
                            "{instance}: VM {} ({}) was neither listed nor reported missing by the cloud; its record is kept",
                            r.id,
                            r.cloud_id.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
        }
        Ok(true)
    }

    /// The transition watch's work on a group: the VMs on their way
    /// somewhere, asked for by id (a call per 100, never a listing of the
    /// whole account, which costs the cloud as much as the account is big),
    /// and only their states where the cloud can say just that (EC2's
    /// DescribeInstanceStatus: a tenth of the cloud's work of describing
    /// them). A VM is described in full only when its addresses may have
    /// changed: it became running without both addresses known, or stopped.
    /// Launches still in flight are left to their launch, and interrupted
    /// ones to the full pass (which adopts by tag before it fails them).
    async fn watch_group(
        &self,
        instance: &InstanceName,
        cred: &CredentialId,
        rows: &[Vm],
        versions: &Versions,
        (lease, holder): (&str, &str),
        report: &mut ReconcileReport,
    ) -> ServiceResult<()> {
        let moving: Vec<&Vm> = rows.iter().filter(|r| r.cloud_id.is_some() && r.status.is_transitional()).collect();
        if moving.is_empty() {
            return Ok(());
        }
        let (connector, _, _) = self.connector(instance)?;
        let creds = self.vault.credentials_by_id(cred).await?;
        let mut details: Vec<&Vm> = Vec::new();
        for chunk in moving.chunks(CONFIRM_BATCH) {
            let ids: Vec<String> = chunk.iter().filter_map(|r| r.cloud_id.clone()).collect();
            let states = match connector.instance_states(&creds, &ids).await {
                Ok(states) => states,
                // Not allowed (an IAM policy written before the broker asked
                // for states), or an id the cloud does not know in the batch:
                // the full description sorts these out, one by one if need be.
                Err(ConnectorError::Forbidden { .. }) | Err(ConnectorError::NotFound { .. }) => {
                    details.extend(chunk.iter().copied());
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if !self.renew(lease, holder).await? {
                report.skipped_locked += 1;
                return Ok(());
            }
            for r in chunk {
                let Some(status) =
                    states.iter().find(|(id, _)| Some(id.as_str()) == r.cloud_id.as_deref()).map(|(_, s)| VmStatus::from(*s))
                else {
                    details.push(r);
                    continue;
                };
                if status == r.status {
                    continue;
                }
                let addresses_known = r.private_ip.is_some() && r.public_ip.is_some();
                if (status == VmStatus::Running && !addresses_known) || status == VmStatus::Stopped {
                    details.push(r);
                    continue;
                }
                let ended = matches!(status, VmStatus::Terminated | VmStatus::ShuttingDown);
                let (private_ip, public_ip) = if ended { (None, None) } else { (r.private_ip.as_deref(), r.public_ip.as_deref()) };
                let written = match versions.get(&r.id) {
                    Some(version) => self.store.observe_vm(&r.id, version, status, private_ip, public_ip, None).await?,
                    None => false,
                };
                if written {
                    self.wake_deployment(r.tags.get(super::DEPLOYMENT_TAG));
                }
                if !written {
                    report.stale += 1;
                } else if status == VmStatus::Terminated {
                    report.vanished += 1;
                } else {
                    report.updated += 1;
                }
            }
        }
        if !details.is_empty() {
            self.confirm(instance, connector.as_ref(), &creds, &details, versions, (lease, holder), report).await?;
        }
        Ok(())
    }

    /// Asks the cloud for VMs by id. EC2 answers a whole request with
    /// `InvalidInstanceID.NotFound` when one id is unknown, so a failed batch is
    /// asked again one id at a time. Any other error ends the pass for the group.
    async fn confirm_by_id(&self, connector: &dyn Connector, creds: &Credentials, rows: &[&Vm]) -> ServiceResult<Vec<Confirmed>> {
        let ids: Vec<String> = rows.iter().filter_map(|r| r.cloud_id.clone()).collect();
        match connector.describe_instances(creds, &DescribeFilter::ids(&ids)).await {
            Ok(found) => Ok(ids
                .iter()
                .map(|id| found.iter().find(|v| &v.id == id).cloned().map_or(Confirmed::Unknown, |v| Confirmed::Present(Box::new(v))))
                .collect()),
            Err(ConnectorError::NotFound { code, .. }) if is_instance_not_found(&code) && ids.len() == 1 => Ok(vec![Confirmed::Gone]),
            Err(ConnectorError::NotFound { code, .. }) if is_instance_not_found(&code) => {
                let mut out = Vec::with_capacity(ids.len());
                for r in rows {
                    out.extend(Box::pin(self.confirm_by_id(connector, creds, std::slice::from_ref(r))).await?);
                }
                Ok(out)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The versions of VM records (by record id) as read before a listing of
/// the cloud began: what the listing reports may be written to a record only
/// while it is still at this version (`Store::observe_vm`).
#[derive(Default)]
struct Versions(BTreeMap<VmId, i64>);

impl Versions {
    fn of(rows: &[VmRow]) -> Self {
        Self(rows.iter().map(|r| (r.id.clone(), r.version)).collect())
    }

    fn get(&self, id: &VmId) -> Option<i64> {
        self.0.get(id).copied()
    }
}

/// What became of a VM a listing reported.
#[derive(Debug, PartialEq, Eq)]
enum Observed {
    /// Written into its record (changed, or adopted by a launch's row).
    Written,
    /// Nothing to write (or not a record this pass read before listing).
    Unchanged,
    /// Not written: the record changed after the listing began.
    Stale,
}

/// VMs asked for by id per call.
const CONFIRM_BATCH: usize = 100;

/// When the cloud says a reported VM's state began, for the states that
/// end its billing (stopping, stopped, shutting down, terminated): a stop
/// the broker learns late is then billed until the cloud's time, not until
/// the pass saw it (the store clamps it between the VM's previous history
/// entry and now). EC2 gives it only for those (its StateTransitionReason
/// is empty once a VM runs again); a time reported with a running state is
/// not trusted, so a stale reason can never bill a start from long ago.
/// The transition watch's state-only answers carry no time: those changes
/// are recorded when the watch sees them (seconds later).
fn cloud_since(vm: &cloudbroker_connector_api::Vm) -> Option<chrono::DateTime<chrono::Utc>> {
    let ends = matches!(vm.state, VmState::Stopping | VmState::Stopped | VmState::ShuttingDown | VmState::Terminated);
    vm.state_since.filter(|_| ends)
}

fn is_instance_not_found(code: &str) -> bool {
    code == "InvalidInstanceID.NotFound"
}

/// What the cloud said of a VM asked for by id.
enum Confirmed {
    /// It does not know the id.
    Gone,
    /// It answered with the VM.
    Present(Box<cloudbroker_connector_api::Vm>),
    /// It answered without it and without an error.
    Unknown,
}
