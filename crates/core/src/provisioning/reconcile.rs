//! Reconciliation: brings the broker's records and the clouds back in line.
//! One pass visits every (instance, credential) with live VMs, each under a
//! lease in the database so that only one replica works on a group at a
//! time; it adopts VMs whose launch was interrupted, refreshes statuses and
//! addresses, marks VMs gone from the cloud, and fails launches that never
//! reached the cloud within the grace period.

use super::{Provisioning, Vm};
use crate::domain::{CredentialId, InstanceName, LaunchId, UserName, VmId, VmStatus};
use crate::error::ServiceResult;
use crate::identity::Actor;
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{DescribeFilter, VmState};
use cloudbroker_store::now_ms;
use cloudbroker_store::vms::VmRow;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What a reconciliation pass did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReconcileReport {
    pub groups: usize,
    pub skipped_locked: usize,
    pub updated: usize,
    pub adopted: usize,
    pub vanished: usize,
    pub failed_launches: usize,
    pub errors: Vec<String>,
}

impl ReconcileReport {
    /// Whether the pass changed anything or met errors (worth a log line).
    pub fn is_eventful(&self) -> bool {
        self.updated + self.adopted + self.vanished + self.failed_launches > 0 || !self.errors.is_empty()
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
        let ttl = self.lease_ttl();
        let mut report = ReconcileReport::default();
        let live: Vec<&str> = VmStatus::ALL.iter().filter(|s| s.is_live()).map(|s| s.as_str()).collect();
        let rows = self.store.vms_in_states(&live).await?;
        let mut groups: BTreeMap<(String, String), Vec<VmRow>> = BTreeMap::new();
        for v in rows {
            groups.entry((v.instance.clone(), v.credential_id.clone())).or_default().push(v);
        }
        for ((instance, cred), rows) in groups {
            report.groups += 1;
            let lease = format!("reconcile:{instance}:{cred}");
            if !self.store.try_lease(&lease, holder, ttl.as_millis() as i64).await? {
                report.skipped_locked += 1;
                continue;
            }
            let vms = match self.vms(rows) {
                Ok(v) => v,
                Err(e) => {
                    report.errors.push(format!("{instance}: {e}"));
                    continue;
                }
            };
            let Ok(instance) = InstanceName::parse(&instance) else { continue };
            let cred = CredentialId::from_stored(cred);
            if let Err(e) = self.reconcile_group(&instance, &cred, &vms, &mut report).await {
                report.errors.push(format!("{instance}: {e}"));
            }
        }
        Ok(report)
    }

    /// Matches a cloud VM of a launch to a record (idempotent). Returns
    /// whether a record was changed.
    pub(super) async fn record_cloud_vm(
        &self,
        instance: &InstanceName,
        launch_id: &LaunchId,
        _credential: &CredentialId,
        vm: &cloudbroker_connector_api::Vm,
    ) -> ServiceResult<bool> {
        let status = VmStatus::from(vm.state);
        if let Some(known) = self.store.vm_by_cloud_id(instance.as_str(), &vm.id).await? {
            let changed = known.state != status.as_str() || known.private_ip != vm.private_ip || known.public_ip != vm.public_ip;
            if changed {
                self.store.update_vm(&known.id, status.as_str(), None, vm.private_ip.as_deref(), vm.public_ip.as_deref(), None).await?;
            }
            return Ok(changed);
        }
        for r in self.launch_vms(launch_id).await?.iter().filter(|r| r.cloud_id.is_none()) {
            if self.store.adopt_vm(r.id.as_str(), &vm.id, status.as_str(), vm.private_ip.as_deref(), vm.public_ip.as_deref()).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn reconcile_group(
        &self,
        instance: &InstanceName,
        cred: &CredentialId,
        rows: &[Vm],
        report: &mut ReconcileReport,
    ) -> ServiceResult<()> {
        let (connector, _, _) = self.connector(instance)?;
        let creds = self.vault.credentials_by_id(cred).await?;
        let seen = connector.describe_instances(&creds, &DescribeFilter::tag(tags::BROKER, &self.broker_id)).await?;
        let seen_ids: BTreeSet<&str> = seen.iter().map(|v| v.id.as_str()).collect();
        for vm in &seen {
            let Some(tag) = vm.tag(tags::LAUNCH) else { continue };
            // A launch tag that is not one of ours cannot match a launch record;
            // such a VM can still be recorded below, under a launch id of its own.
            let launch = LaunchId::parse(tag).ok();
            let known = self.store.vm_by_cloud_id(instance.as_str(), &vm.id).await?;
            let any_launch = launch.clone().unwrap_or_else(LaunchId::generate);
            if known.is_some() {
                if self.record_cloud_vm(instance, &any_launch, cred, vm).await? {
                    report.updated += 1;
                }
                continue;
            }
            if launch.is_some() && self.record_cloud_vm(instance, &any_launch, cred, vm).await? {
                report.adopted += 1;
                tracing::info!(%instance, cloud_id = %vm.id, launch = %any_launch, "adopted a VM launched before an interruption");
                continue;
            }
            let launch = any_launch;
            // A broker-tagged VM with no record at all (e.g. restored database): record it.
            let Some(user) = vm.tag(tags::USER).and_then(|u| UserName::parse(u).ok()) else { continue };
            if vm.state == VmState::Terminated || self.store.get_user(user.as_str()).await?.is_none() {
                continue;
            }
            let row = VmRow {
                id: VmId::generate().to_string(),
                launch_id: launch.to_string(),
                launch_index: 0,
                user: user.to_string(),
                instance: instance.to_string(),
                credential_id: cred.to_string(),
                client_token: format!("adopted:{}", vm.id),
                name: vm.tag(tags::NAME).unwrap_or("").to_string(),
                image: vm.image_id.clone(),
                image_id: vm.image_id.clone(),
                instance_type: vm.instance_type.clone(),
                state: VmStatus::from(vm.state).as_str().to_string(),
                cloud_id: Some(vm.id.clone()),
                private_ip: vm.private_ip.clone(),
                public_ip: vm.public_ip.clone(),
                error: None,
                tags: vm.tags.iter().filter(|(k, _)| !k.starts_with("cloudbroker:") && k != tags::NAME).cloned().collect(),
                created_at: chrono::Utc::now(),
                updated_at: chrono::Utc::now(),
            };
            self.store.insert_adopted_vm(&row).await?;
            report.adopted += 1;
        }
        let grace_ms = self.launch_grace.as_millis() as i64;
        for r in rows {
            match &r.cloud_id {
                Some(id) if !seen_ids.contains(id.as_str()) => {
                    self.store
                        .update_vm(
                            r.id.as_str(),
                            VmStatus::Terminated.as_str(),
                            None,
                            None,
                            None,
                            Some("no longer in the cloud (terminated outside the broker)"),
                        )
                        .await?;
                    report.vanished += 1;
                }
                None if now_ms() - r.created_at.timestamp_millis() > grace_ms => {
                    // Re-read: the adoption above may just have given it a cloud id.
                    if let Some(fresh) = self.store.get_vm(r.id.as_str()).await? {
                        if fresh.cloud_id.is_none() && fresh.state == VmStatus::Requested.as_str() {
                            self.store
                                .update_vm(
                                    r.id.as_str(),
                                    VmStatus::Failed.as_str(),
                                    None,
                                    None,
                                    None,
                                    Some("launch interrupted before the cloud created the VM"),
                                )
                                .await?;
                            report.failed_launches += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
