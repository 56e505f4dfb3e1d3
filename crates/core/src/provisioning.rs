//! VMs: launch within quotas, actions, and reconciliation with the clouds.
//!
//! A launch is recorded **before** the cloud call: its VMs are inserted in
//! state `requested` in the same transaction that checks the quota. The cloud
//! call carries tags naming the broker, the user and the launch, and a
//! ClientToken derived from the launch. Whatever happens next (success, an
//! error, a crash of the broker), the VMs in the cloud are matched back to
//! their records by the launch tag, so none is orphaned or counted twice:
//! the launch itself does it on success, the reconciler does it otherwise.

use crate::credentials::Vault;
use crate::error::{ServiceError, ServiceResult};
use crate::identity::Actor;
use crate::images::Images;
use crate::registry::{Registry, Status};
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{Connector, ConnectorError, ConnectorKind, DescribeFilter, RunRequest, Vm, VmState};
use cloudbroker_store::quota::{Admission, AdmitError, NewVm};
use cloudbroker_store::vms::{VmFilter, VmRow};
use cloudbroker_store::{now_ms, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The broker default quota when neither an override nor `quota.vm` is set.
pub const DEFAULT_QUOTA: i64 = 20;
/// Most VMs one launch request may ask for.
pub const MAX_COUNT: u32 = 100;

/// A launch request (the JSON API's `POST /api/v1/vms`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    pub instance: String,
    pub image: String,
    pub instance_type: Option<String>,
    pub count: Option<u32>,
    pub name: Option<String>,
    pub user_data: Option<String>,
    pub client_token: Option<String>,
    /// User tags, put on the cloud instances too.
    pub tags: Option<BTreeMap<String, String>>,
}

/// A VM as shown to users.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VmView {
    #[serde(flatten)]
    pub vm: VmRow,
    /// The address to reach the VM by, following the instance's `connection.policy`.
    pub address: Option<String>,
}

/// A user's quota on one instance.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct QuotaView {
    pub instance: String,
    pub limit: i64,
    /// `override`, `instance` (its quota.vm) or `default`.
    pub source: String,
    pub usage: i64,
    pub enforced: bool,
}

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

/// The provisioning service.
pub struct Provisioning {
    store: Store,
    registry: Arc<Registry>,
    vault: Arc<Vault>,
    images: Arc<Images>,
    broker_id: String,
    /// A `requested` VM not seen in the cloud after this long is a failed launch.
    pub launch_grace: Duration,
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

fn ambiguous(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Timeout { .. } | ConnectorError::Transport { .. } | ConnectorError::Throttled { .. }) || e.is_retryable()
}

fn address(policy: &str, private_ip: &Option<String>, public_ip: &Option<String>) -> Option<String> {
    match policy {
        "public" => public_ip.clone(),
        "local" => private_ip.clone(),
        _ => public_ip.clone().or_else(|| private_ip.clone()),
    }
}

impl Provisioning {
    /// A new service.
    pub fn new(store: Store, registry: Arc<Registry>, vault: Arc<Vault>, images: Arc<Images>, broker_id: String) -> Self {
        Self { store, registry, vault, images, broker_id, launch_grace: Duration::from_secs(600) }
    }

    /// The broker id VMs are tagged with.
    pub fn broker_id(&self) -> &str {
        &self.broker_id
    }

    fn view(&self, vm: VmRow) -> VmView {
        let snap = self.registry.snapshot();
        let policy = snap.instance(&vm.instance).and_then(|i| i.values.get(i.kind, "connection.policy")).unwrap_or_else(|| "auto".into());
        let address = address(&policy, &vm.private_ip, &vm.public_ip);
        VmView { vm, address }
    }

    fn connector(
        &self,
        instance: &str,
    ) -> ServiceResult<(Arc<dyn Connector>, ConnectorKind, cloudbroker_connector_api::params::ParamValues)> {
        let snap = self.registry.snapshot();
        let e = snap.instance(instance).ok_or_else(|| ServiceError::NotFound(format!("connector instance '{instance}'")))?;
        match (&e.status, &e.connector) {
            (Status::Ready, Some(c)) => Ok((c.clone(), e.kind, e.values.clone())),
            (Status::Error { errors }, _) => {
                Err(ServiceError::Invalid(format!("connector instance '{instance}' is not ready: {}", errors.join("; "))))
            }
            _ => Err(ServiceError::Invalid(format!("connector instance '{instance}' is not ready"))),
        }
    }

    /// The quota limit of a user on an instance, and where it comes from.
    pub async fn limit_for(&self, user: &str, instance: &str) -> ServiceResult<(i64, &'static str)> {
        if let Some(l) = self.store.quota_override(user, instance).await? {
            return Ok((l, "override"));
        }
        let snap = self.registry.snapshot();
        if let Some(l) = snap.instance(instance).and_then(|i| i.values.get_set("quota.vm")).and_then(|v| v.parse().ok()) {
            return Ok((l, "instance"));
        }
        Ok((DEFAULT_QUOTA, "default"))
    }

    /// Launches VMs. Returns whether they were created now (false when the
    /// client token was seen before) and the VMs.
    pub async fn launch(self: &Arc<Self>, actor: &Actor, req: LaunchRequest) -> ServiceResult<(bool, Vec<VmView>)> {
        let count = req.count.unwrap_or(1);
        if count == 0 || count > MAX_COUNT {
            return Err(ServiceError::Invalid(format!("count must be between 1 and {MAX_COUNT}")));
        }
        let name = req.name.clone().unwrap_or_default();
        if name.len() > 128 {
            return Err(ServiceError::Invalid("name is longer than 128 characters".into()));
        }
        if let Some(t) = &req.client_token {
            if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
                return Err(ServiceError::Invalid("client_token must be 1-64 characters of letters, digits, '-', '_', '.', ':'".into()));
            }
            let existing = self
                .store
                .list_vms(&VmFilter { user: Some(actor.name.clone()), client_token: Some(t.clone()), ..VmFilter::default() })
                .await?;
            if !existing.is_empty() {
                return Ok((false, existing.into_iter().map(|v| self.view(v)).collect()));
            }
        }
        let user_tags = req.tags.clone().unwrap_or_default();
        if user_tags.len() > 40 {
            return Err(ServiceError::Invalid("at most 40 tags".into()));
        }
        for (k, v) in &user_tags {
            if k.is_empty() || k.len() > 128 || v.len() > 256 {
                return Err(ServiceError::Invalid(format!("tag '{k}': keys are 1-128 characters, values at most 256")));
            }
            if k.starts_with("cloudbroker:") || k.starts_with("aws:") || k == tags::NAME {
                return Err(ServiceError::Invalid(format!("tag '{k}' is reserved (cloudbroker:*, aws:*, Name: use the name field)")));
            }
        }
        let tags_json = serde_json::to_string(&user_tags).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (connector, kind, values) = self.connector(&req.instance)?;
        let snap = self.registry.snapshot();
        let resolved = match self.images.resolve(&req.image, &req.instance).await {
            Ok(r) => r,
            Err(ServiceError::NotFound(_)) if snap.system_bool("images.allow.raw") => crate::images::ResolvedImage {
                image_id: req.image.clone(),
                instance_type: None,
                security_group: None,
                from_image: String::new(),
            },
            Err(ServiceError::NotFound(_)) => {
                return Err(ServiceError::Invalid(format!(
                    "image '{}' is not a native image (and raw cloud image ids are not allowed: images.allow.raw)",
                    req.image
                )))
            }
            Err(e) => return Err(e),
        };
        let instance_type = req
            .instance_type
            .clone()
            .or(resolved.instance_type.clone())
            .or_else(|| match kind {
                ConnectorKind::Ec2 => values.get(kind, "orchestrator.instance.type"),
                ConnectorKind::Ec2query => {
                    values.get(kind, "instance.types").and_then(|l| l.split(',').next().map(|s| s.trim().to_string()))
                }
                ConnectorKind::Sandbox => None,
            })
            .unwrap_or_else(|| "t2.micro".into());
        let security_group = resolved.security_group.clone().or_else(|| values.get(kind, "security.group"));
        let (creds, credential_id) = self.vault.credentials_for(&actor.name, &req.instance).await?;
        let limit = if snap.system_bool("quota.enable") { Some(self.limit_for(&actor.name, &req.instance).await?.0) } else { None };

        let launch_id = uuid::Uuid::new_v4().simple().to_string();
        let client_token = req.client_token.clone().unwrap_or_else(|| launch_id.clone());
        let vms: Vec<NewVm> = (0..count)
            .map(|i| NewVm {
                id: new_id("vm-"),
                launch_index: i64::from(i),
                name: if count > 1 && !name.is_empty() { format!("{name}-{i}") } else { name.clone() },
                image: req.image.clone(),
                image_id: resolved.image_id.clone(),
                instance_type: instance_type.clone(),
                tags: tags_json.clone(),
            })
            .collect();
        let admission = Admission {
            launch_id: &launch_id,
            user: &actor.name,
            instance: &req.instance,
            credential_id: &credential_id,
            client_token: &client_token,
            limit,
            vms: &vms,
        };
        match self.store.admit_launch(&admission).await {
            Ok(()) => {}
            Err(AdmitError::Quota { limit, current, requested }) => {
                self.store
                    .audit(
                        &actor.name,
                        "vm.launch",
                        &req.instance,
                        "over-quota",
                        &format!("quota={limit}, current={current}, requested={requested}"),
                    )
                    .await?;
                return Err(ServiceError::QuotaExceeded { quota: limit, current, requested });
            }
            Err(AdmitError::Store(e)) if e.is_unique_violation() => {
                // The same client token raced with another request: answer with its VMs.
                let existing = self
                    .store
                    .list_vms(&VmFilter { user: Some(actor.name.clone()), client_token: Some(client_token.clone()), ..VmFilter::default() })
                    .await?;
                return Ok((false, existing.into_iter().map(|v| self.view(v)).collect()));
            }
            Err(AdmitError::Store(e)) => return Err(e.into()),
        }
        self.store
            .audit(
                &actor.name,
                "vm.launch",
                &format!("{}/{launch_id}", req.instance),
                "requested",
                &format!("{count} x {instance_type} {}", resolved.image_id),
            )
            .await?;

        // The cloud part runs in its own task: a client that goes away does not cut it short.
        let this = self.clone();
        let user = actor.name.clone();
        let ssh_key = self.store.get_user(&actor.name).await?.and_then(|u| u.ssh_public_key);
        let run = RunRequest {
            image_id: resolved.image_id.clone(),
            instance_type,
            count,
            key_name: None,
            user_data: req.user_data.clone(),
            security_groups: security_group.into_iter().collect(),
            tags: {
                let mut t = vec![
                    (tags::BROKER.to_string(), self.broker_id.clone()),
                    (tags::USER.to_string(), actor.name.clone()),
                    (tags::LAUNCH.to_string(), launch_id.clone()),
                ];
                if !name.is_empty() {
                    t.push((tags::NAME.to_string(), name.clone()));
                }
                t.extend(user_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                t
            },
            client_token: launch_id.clone(),
        };
        let instance = req.instance.clone();
        let lid = launch_id.clone();
        let result = tokio::spawn(async move { this.run_cloud(connector, creds, user, ssh_key, instance, lid, run).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("launch task: {e}")))?;
        result?;
        let rows = self.store.list_vms(&VmFilter { launch_id: Some(launch_id), ..VmFilter::default() }).await?;
        Ok((true, rows.into_iter().map(|v| self.view(v)).collect()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_cloud(
        &self,
        connector: Arc<dyn Connector>,
        creds: cloudbroker_connector_api::Credentials,
        user: String,
        ssh_key: Option<String>,
        instance: String,
        launch_id: String,
        mut run: RunRequest,
    ) -> ServiceResult<()> {
        let prepared: Result<(), ConnectorError> = async {
            if let Some(key) = &ssh_key {
                let fp = hex::encode(&Sha256::digest(key.trim().as_bytes())[..6]);
                let key_name = format!("cloudbroker-{user}-{fp}");
                let known = connector.list_key_pairs(&creds).await?.iter().any(|k| k.name == key_name);
                if !known {
                    match connector.import_key_pair(&creds, &key_name, key).await {
                        Ok(_) => {}
                        Err(ConnectorError::InvalidRequest { code, .. }) if code.contains("Duplicate") => {}
                        Err(ConnectorError::Unsupported { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                run.key_name = Some(key_name);
            }
            if let Some(g) = run.security_groups.first() {
                connector.ensure_security_group(&creds, g).await?;
            }
            Ok(())
        }
        .await;
        let outcome = match prepared {
            Ok(()) => connector.run_instances(&creds, &run).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(vms) => {
                for vm in &vms {
                    self.record_cloud_vm(&instance, &launch_id, vm).await?;
                }
                self.store
                    .audit(
                        &user,
                        "vm.launch",
                        &format!("{instance}/{launch_id}"),
                        "ok",
                        &vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>().join(","),
                    )
                    .await?;
                Ok(())
            }
            Err(e) if ambiguous(&e) => {
                // The cloud may or may not have launched: leave the records
                // `requested`; the reconciler finds them by tag or fails them.
                self.store.audit(&user, "vm.launch", &format!("{instance}/{launch_id}"), "unknown", &e.to_string()).await?;
                Err(e.into())
            }
            Err(e) => {
                for v in self.store.list_vms(&VmFilter { launch_id: Some(launch_id.clone()), ..VmFilter::default() }).await? {
                    if v.cloud_id.is_none() {
                        self.store.update_vm(&v.id, "failed", None, None, None, Some(&e.to_string())).await?;
                    }
                }
                self.store.audit(&user, "vm.launch", &format!("{instance}/{launch_id}"), "failed", &e.to_string()).await?;
                Err(e.into())
            }
        }
    }

    /// Matches a cloud VM of a launch to a record (idempotent). Returns
    /// whether a record was changed.
    async fn record_cloud_vm(&self, instance: &str, launch_id: &str, vm: &Vm) -> ServiceResult<bool> {
        if let Some(known) = self.store.vm_by_cloud_id(instance, &vm.id).await? {
            let changed = known.state != vm.state.as_str() || known.private_ip != vm.private_ip || known.public_ip != vm.public_ip;
            if changed {
                self.store.update_vm(&known.id, vm.state.as_str(), None, vm.private_ip.as_deref(), vm.public_ip.as_deref(), None).await?;
            }
            return Ok(changed);
        }
        let rows = self.store.list_vms(&VmFilter { launch_id: Some(launch_id.to_string()), ..VmFilter::default() }).await?;
        for r in rows.iter().filter(|r| r.cloud_id.is_none()) {
            if self.store.adopt_vm(&r.id, &vm.id, vm.state.as_str(), vm.private_ip.as_deref(), vm.public_ip.as_deref()).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn owned(&self, actor: &Actor, vm: Option<VmRow>, id: &str) -> ServiceResult<VmRow> {
        match vm {
            Some(v) if actor.is_admin || v.user == actor.name => Ok(v),
            _ => Err(ServiceError::NotFound(format!("VM '{id}'"))),
        }
    }

    /// One VM (owner or admin).
    pub async fn get(&self, actor: &Actor, id: &str) -> ServiceResult<VmView> {
        let v = self.owned(actor, self.store.get_vm(id).await?, id)?;
        Ok(self.view(v))
    }

    /// VMs: a user's own; admins see all (or one user's).
    pub async fn list(&self, actor: &Actor, mut filter: VmFilter) -> ServiceResult<Vec<VmView>> {
        if !actor.is_admin {
            filter.user = Some(actor.name.clone());
        }
        Ok(self.store.list_vms(&filter).await?.into_iter().map(|v| self.view(v)).collect())
    }

    /// start, stop, reboot or terminate.
    pub async fn action(&self, actor: &Actor, id: &str, action: &str) -> ServiceResult<VmView> {
        let v = self.owned(actor, self.store.get_vm(id).await?, id)?;
        let Some(cloud_id) = v.cloud_id.clone() else {
            return Err(ServiceError::Conflict(format!("VM '{id}' is {} and has no cloud instance yet", v.state)));
        };
        if v.state == "terminated" && action != "terminate" {
            return Err(ServiceError::Conflict(format!("VM '{id}' is terminated")));
        }
        let (connector, _, _) = self.connector(&v.instance)?;
        let creds = self.vault.credentials_by_id(&v.credential_id).await?;
        let ids = [cloud_id];
        let change = match action {
            "start" => connector.start_instances(&creds, &ids).await?.into_iter().next(),
            "stop" => connector.stop_instances(&creds, &ids).await?.into_iter().next(),
            "terminate" => connector.terminate_instances(&creds, &ids).await?.into_iter().next(),
            "reboot" => {
                connector.reboot_instances(&creds, &ids).await?;
                None
            }
            other => return Err(ServiceError::Invalid(format!("unknown action '{other}'"))),
        };
        if let Some(c) = change {
            let (pip, pub_ip) = if c.current == VmState::Terminated || c.current == VmState::ShuttingDown {
                (None, None)
            } else {
                (v.private_ip.clone(), v.public_ip.clone())
            };
            self.store.update_vm(&v.id, c.current.as_str(), None, pip.as_deref(), pub_ip.as_deref(), None).await?;
        }
        if action == "terminate" {
            self.store.audit(&actor.name, "vm.terminate", &v.id, "ok", &v.instance).await?;
        }
        self.get(actor, id).await
    }

    /// A user's quotas and usage on every instance (self or admin).
    pub async fn quotas(&self, actor: &Actor, user: &str) -> ServiceResult<Vec<QuotaView>> {
        actor.require_self_or_admin(user)?;
        if self.store.get_user(user).await?.is_none() {
            return Err(ServiceError::NotFound(format!("user '{user}'")));
        }
        let snap = self.registry.snapshot();
        let enforced = snap.system_bool("quota.enable");
        let mut out = Vec::new();
        for i in &snap.instances {
            let (limit, source) = self.limit_for(user, i.name.as_str()).await?;
            out.push(QuotaView {
                instance: i.name.to_string(),
                limit,
                source: source.into(),
                usage: self.store.quota_usage(user, i.name.as_str()).await?,
                enforced,
            });
        }
        Ok(out)
    }

    /// Sets (or with `None` removes) a user's override (admin).
    pub async fn set_quota(&self, actor: &Actor, user: &str, instance: &str, limit: Option<i64>) -> ServiceResult<()> {
        actor.require_admin()?;
        if self.store.get_user(user).await?.is_none() {
            return Err(ServiceError::NotFound(format!("user '{user}'")));
        }
        if self.registry.snapshot().instance(instance).is_none() {
            return Err(ServiceError::NotFound(format!("connector instance '{instance}'")));
        }
        if let Some(l) = limit {
            if !(0..=1_000_000).contains(&l) {
                return Err(ServiceError::Invalid("vm must be between 0 and 1000000".into()));
            }
        }
        self.store.set_quota_override(user, instance, limit).await?;
        self.store
            .audit(
                &actor.name,
                "quota.change",
                &format!("{user}/{instance}"),
                "ok",
                &limit.map(|l| l.to_string()).unwrap_or_else(|| "unset".into()),
            )
            .await?;
        Ok(())
    }

    /// One reconciliation pass over every (instance, credential) with live
    /// VMs, each under a lease so only one replica works on it at a time.
    pub async fn reconcile(&self, holder: &str, lease_ttl: Duration) -> ServiceResult<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let live = self.store.live_vms().await?;
        let mut groups: BTreeMap<(String, String), Vec<VmRow>> = BTreeMap::new();
        for v in live {
            groups.entry((v.instance.clone(), v.credential_id.clone())).or_default().push(v);
        }
        for ((instance, cred), rows) in groups {
            report.groups += 1;
            let lease = format!("reconcile:{instance}:{cred}");
            if !self.store.try_lease(&lease, holder, lease_ttl.as_millis() as i64).await? {
                report.skipped_locked += 1;
                continue;
            }
            if let Err(e) = self.reconcile_group(&instance, &cred, &rows, &mut report).await {
                report.errors.push(format!("{instance}: {e}"));
            }
        }
        Ok(report)
    }

    async fn reconcile_group(&self, instance: &str, cred: &str, rows: &[VmRow], report: &mut ReconcileReport) -> ServiceResult<()> {
        let (connector, _, _) = self.connector(instance)?;
        let creds = self.vault.credentials_by_id(cred).await?;
        let seen = connector.describe_instances(&creds, &DescribeFilter::tag(tags::BROKER, &self.broker_id)).await?;
        let seen_ids: BTreeSet<&str> = seen.iter().map(|v| v.id.as_str()).collect();
        for vm in &seen {
            let Some(launch) = vm.tag(tags::LAUNCH) else { continue };
            let known = self.store.vm_by_cloud_id(instance, &vm.id).await?;
            if known.is_some() {
                if self.record_cloud_vm(instance, launch, vm).await? {
                    report.updated += 1;
                }
                continue;
            }
            if self.record_cloud_vm(instance, launch, vm).await? {
                report.adopted += 1;
                tracing::info!(instance, cloud_id = %vm.id, launch, "adopted a VM launched before an interruption");
                continue;
            }
            // A broker-tagged VM with no record at all (e.g. restored database): record it.
            let Some(user) = vm.tag(tags::USER) else { continue };
            if vm.state == VmState::Terminated || self.store.get_user(user).await?.is_none() {
                continue;
            }
            let row = VmRow {
                id: new_id("vm-"),
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
                state: vm.state.as_str().to_string(),
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
                        .update_vm(&r.id, "terminated", None, None, None, Some("no longer in the cloud (terminated outside the broker)"))
                        .await?;
                    report.vanished += 1;
                }
                None if now_ms() - r.created_at.timestamp_millis() > grace_ms => {
                    // Re-read: the adoption above may just have given it a cloud id.
                    if let Some(fresh) = self.store.get_vm(&r.id).await? {
                        if fresh.cloud_id.is_none() && fresh.state == "requested" {
                            self.store
                                .update_vm(&r.id, "failed", None, None, None, Some("launch interrupted before the cloud created the VM"))
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
