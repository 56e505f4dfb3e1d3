//! Launching VMs. The VMs are recorded (status `requested`) in the same
//! transaction that checks the quota, then the cloud is called in a task of
//! its own, so a client that goes away does not cut a launch short. A launch
//! whose outcome is unknown (timeout, broken connection) is never repeated:
//! clouds that ignore ClientToken would launch twice; the reconciler adopts
//! what it launched instead.

use super::{Provisioning, Vm};
use crate::domain::{ClientToken, CredentialId, ImageRef, InstanceName, LaunchId, Tags, UserName, VmId, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use crate::identity::Actor;
use crate::images::ResolvedImage;
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{Connector, ConnectorError, ConnectorKind, Credentials, RunRequest};
use cloudbroker_store::quota::{Admission, AdmitError, NewVm};
use cloudbroker_store::vms::VmFilter;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most VMs one launch request may ask for.
pub const MAX_COUNT: u32 = 100;

/// What to launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchSpec {
    pub instance: InstanceName,
    pub image: ImageRef,
    pub instance_type: Option<String>,
    pub count: u32,
    pub name: String,
    pub user_data: Option<String>,
    pub client_token: Option<ClientToken>,
    /// User tags, put on the cloud instances too.
    pub tags: Tags,
    /// An SSH public key for this launch instead of the one in the user's profile.
    pub ssh_public_key: Option<String>,
    /// The name of the user's key pair `ssh_public_key` came from (EC2's `KeyName`), recorded on the VMs.
    pub key_name: Option<String>,
    /// Tags kept on the broker's records only, never put on the cloud: a
    /// client's own reserved tags (another broker chained in front of this
    /// one tags its VMs `cloudbroker:*`, which this broker uses on its cloud).
    pub client_tags: BTreeMap<String, String>,
}

/// Client tags a launch may carry at most.
pub const MAX_CLIENT_TAGS: usize = 10;

impl LaunchSpec {
    /// One VM of `image` on `instance`, nothing else set.
    pub fn new(instance: InstanceName, image: ImageRef) -> Self {
        Self {
            instance,
            image,
            instance_type: None,
            count: 1,
            name: String::new(),
            user_data: None,
            client_token: None,
            tags: Tags::default(),
            ssh_public_key: None,
            key_name: None,
            client_tags: BTreeMap::new(),
        }
    }
}

/// What a launch did.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchOutcome {
    /// False when the client token was seen before: `vms` are the first launch's.
    pub created: bool,
    pub vms: Vec<Vm>,
}

/// How long a security group or key pair a launch made sure of is taken
/// as still there in that cloud account, without asking again. Should it
/// vanish meanwhile, the launch's RunInstances fails with the cloud's
/// not-found code; the launch then forgets it, makes sure again and asks
/// once more (a refused RunInstances launched nothing, so asking again
/// cannot launch twice).
pub const PREPARED_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Things made sure of per (connector instance, credential), with when; and
/// one gate per thing, so concurrent launches into one account (a burst after
/// a restart) wait for one check instead of each asking the cloud. The gate
/// keeps the last failed check: launches that waited while it was made take
/// its answer instead of asking again one after another (a cloud that times
/// out would otherwise make the last of a burst wait one timeout per launch).
#[derive(Default)]
pub(super) struct Prepared {
    done: std::sync::Mutex<std::collections::HashMap<(String, String, String), std::time::Instant>>,
    gates: std::sync::Mutex<std::collections::HashMap<(String, String, String), Arc<Gate>>>,
}

/// One thing's gate: held while it is made sure of; the last failure, with when.
type Gate = tokio::sync::Mutex<Option<(std::time::Instant, ConnectorError)>>;

/// Entries kept at most (a bound on memory).
const PREPARED_MAX: usize = 10_000;

impl Prepared {
    fn key(job: &CloudLaunch, what: &str) -> (String, String, String) {
        (job.instance.to_string(), job.credential_id.to_string(), what.to_string())
    }

    fn fresh(&self, job: &CloudLaunch, what: &str) -> bool {
        let g = self.done.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&Self::key(job, what)).is_some_and(|at| at.elapsed() < PREPARED_TTL)
    }

    fn mark(&self, job: &CloudLaunch, what: &str) {
        let mut g = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= PREPARED_MAX {
            g.clear();
        }
        g.insert(Self::key(job, what), std::time::Instant::now());
    }

    /// Runs `make` unless `what` was made sure of within the TTL. Launches
    /// arriving together queue on one gate and find it done, or failed while
    /// they waited (that failure is their answer). A gate map emptied at its
    /// bound only lets two checks overlap, which is harmless.
    async fn ensure<F, Fut>(&self, job: &CloudLaunch, what: &str, make: F) -> Result<(), ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), ConnectorError>>,
    {
        if self.fresh(job, what) {
            return Ok(());
        }
        let gate = {
            let mut g = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            if g.len() >= PREPARED_MAX {
                g.clear();
            }
            g.entry(Self::key(job, what)).or_default().clone()
        };
        let asked = std::time::Instant::now();
        let mut last_failure = gate.lock().await;
        if self.fresh(job, what) {
            return Ok(());
        }
        if let Some((at, e)) = last_failure.as_ref() {
            if *at >= asked {
                return Err(e.clone());
            }
        }
        match make().await {
            Ok(()) => {
                *last_failure = None;
                self.mark(job, what);
                Ok(())
            }
            Err(e) => {
                *last_failure = Some((std::time::Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Forgets everything made sure of for this launch's account.
    fn forget(&self, job: &CloudLaunch) {
        let mut g = self.done.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|(i, c, _), _| !(i == job.instance.as_str() && c == job.credential_id.as_str()));
    }
}

/// Whether a refused RunInstances says a security group or key pair the
/// launch named is not there (so what was made sure of is out of date).
fn prepared_missing(e: &ConnectorError) -> bool {
    match e {
        ConnectorError::NotFound { code, .. } | ConnectorError::InvalidRequest { code, .. } | ConnectorError::Cloud { code, .. } => {
            code.starts_with("InvalidGroup") || code.starts_with("InvalidKeyPair")
        }
        _ => false,
    }
}

/// Whether the cloud may or may not have acted on a failed call.
fn ambiguous(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Timeout { .. } | ConnectorError::Transport { .. } | ConnectorError::Throttled { .. }) || e.is_retryable()
}

/// Most bytes of user data (EC2's own limit is 16 KiB before base64).
const MAX_USER_DATA: usize = 16 * 1024;

impl Provisioning {
    /// The VMs an earlier launch with this client token made, if any.
    async fn by_client_token(&self, user: &UserName, token: &ClientToken) -> ServiceResult<Vec<Vm>> {
        let rows = self
            .store
            .list_vms(&VmFilter { user: Some(user.to_string()), client_token: Some(token.to_string()), ..VmFilter::default() })
            .await?;
        self.vms(rows)
    }

    /// Another replica may have changed the configuration (`quota.enable`,
    /// an instance's quota) since this one last polled: a launch never goes
    /// by a stale switch. One small query; a reload only on change.
    pub(super) async fn fresh_config(&self) -> ServiceResult<()> {
        self.registry.reload_if_changed().await.map_err(|e| match e {
            crate::registry::RegistryError::Store(s) => ServiceError::from(s),
            other => ServiceError::Internal(format!("configuration: {other}")),
        })?;
        Ok(())
    }

    /// A launch's own fields, checked before anything is looked up.
    pub(super) fn check(spec: &LaunchSpec) -> ServiceResult<()> {
        if spec.count == 0 || spec.count > MAX_COUNT {
            return Err(ServiceError::invalid_field("count", format!("count must be between 1 and {MAX_COUNT}")));
        }
        if spec.name.chars().count() > 128 || spec.name.chars().any(char::is_control) {
            return Err(ServiceError::invalid_field("name", "name is at most 128 characters, no control characters"));
        }
        if let Some(t) = &spec.instance_type {
            if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ServiceError::invalid_field("instance_type", "instance_type is 1-64 printable characters"));
            }
        }
        if spec.user_data.as_ref().is_some_and(|u| u.len() > MAX_USER_DATA) {
            return Err(ServiceError::invalid_field("user_data", format!("user_data is at most {MAX_USER_DATA} bytes")));
        }
        if spec.client_tags.len() > MAX_CLIENT_TAGS
            || spec
                .client_tags
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256 || k.chars().chain(v.chars()).any(char::is_control))
        {
            return Err(ServiceError::invalid_field(
                "tags",
                format!("at most {MAX_CLIENT_TAGS} reserved client tags, keys 1-128 and values up to 256 characters"),
            ));
        }
        Ok(())
    }

    /// The image a launch uses: a native image resolved for the instance, or a
    /// raw cloud id where `images.allow.raw` allows it.
    pub(super) async fn resolve_image(&self, actor: &Actor, image: &ImageRef, instance: &InstanceName) -> ServiceResult<ResolvedImage> {
        let allow_raw = self.registry.snapshot().system_bool("images.allow.raw");
        let native = match image.as_native() {
            Some(n) => match self.images.resolve_for(actor, &n, instance).await {
                Err(ServiceError::NotFound(_)) => None,
                other => Some(other),
            },
            None => None,
        };
        match native {
            Some(r) => r,
            None if allow_raw => {
                Ok(ResolvedImage { image_id: image.to_string(), instance_type: None, security_group: None, from_image: String::new() })
            }
            // Well-formed, but the configuration has no such image.
            None => Err(ServiceError::unresolved(
                "image",
                format!("image '{image}' is not a native image (and raw cloud image ids are not allowed: images.allow.raw)"),
            )),
        }
    }

    /// Launches VMs.
    pub async fn launch(self: &Arc<Self>, actor: &Actor, spec: LaunchSpec) -> ServiceResult<LaunchOutcome> {
        // A client token seen before is found when the admission's insert
        // meets its unique index (or, at a full quota, before refusing), so
        // the common case (a new token) costs no lookup.
        Self::check(&spec)?;
        let mut record_tags = spec.tags.as_map().clone();
        record_tags.extend(spec.client_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        let tags_json = serde_json::to_string(&record_tags).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.fresh_config().await?;
        let (connector, kind, values) = self.connector(&spec.instance)?;
        let snap = self.registry.snapshot();
        let resolved = self.resolve_image(actor, &spec.image, &spec.instance).await?;
        let instance_type = spec
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
        let (creds, credential_id) = self.vault.credentials_for(&actor.name, &spec.instance).await?;
        let limit = if snap.system_bool("quota.enable") { Some(self.limit_for(&actor.name, &spec.instance).await?.0) } else { None };

        let launch_id = LaunchId::generate();
        let client_token = spec.client_token.clone().unwrap_or_else(|| ClientToken::from_stored(launch_id.to_string()));
        let count = spec.count;
        let vms: Vec<NewVm> = (0..count)
            .map(|i| NewVm {
                id: VmId::generate().to_string(),
                launch_index: i64::from(i),
                name: if count > 1 && !spec.name.is_empty() { format!("{}-{i}", spec.name) } else { spec.name.clone() },
                image: spec.image.to_string(),
                image_id: resolved.image_id.clone(),
                instance_type: instance_type.clone(),
                tags: tags_json.clone(),
                key_name: spec.key_name.clone(),
            })
            .collect();
        let counted = VmStatus::quota_counted_names();
        let audit_target = format!("{}/{launch_id}", spec.instance);
        let audit_detail = format!("{count} x {instance_type} {}", resolved.image_id);
        let admission = Admission {
            launch_id: launch_id.as_str(),
            user: actor.name.as_str(),
            instance: spec.instance.as_str(),
            credential_id: credential_id.as_str(),
            client_token: client_token.as_str(),
            limit,
            counted: &counted,
            state: VmStatus::Requested.as_str(),
            vms: &vms,
            audit: Some(("vm.launch", &audit_target, "requested", &audit_detail)),
        };
        match self.store.admit_launch(&admission).await {
            Ok(()) => {}
            Err(AdmitError::Quota { limit, current, requested }) => {
                // A retry of an admitted launch (its VMs count against the quota now).
                if let Some(t) = &spec.client_token {
                    let existing = self.by_client_token(&actor.name, t).await?;
                    if !existing.is_empty() {
                        return Ok(LaunchOutcome { created: false, vms: existing });
                    }
                }
                crate::metrics::quota_rejected(spec.instance.as_str());
                self.store
                    .audit(
                        actor.name.as_str(),
                        "vm.launch",
                        spec.instance.as_str(),
                        "over-quota",
                        &format!("quota={limit}, current={current}, requested={requested}"),
                    )
                    .await?;
                return Err(ServiceError::QuotaExceeded { quota: limit, current, requested });
            }
            Err(AdmitError::Store(e)) if e.is_unique_violation() || matches!(e, cloudbroker_store::StoreError::Conflict(_)) => {
                // The same client token raced with another request: answer with its VMs.
                let existing = self.by_client_token(&actor.name, &client_token).await?;
                return Ok(LaunchOutcome { created: false, vms: existing });
            }
            Err(AdmitError::Store(e)) => return Err(e.into()),
        }
        let ssh_key = match &spec.ssh_public_key {
            Some(k) => Some(k.clone()),
            None => self.store.get_user(actor.name.as_str()).await?.and_then(|u| u.ssh_public_key),
        };
        let run = RunRequest {
            image_id: resolved.image_id.clone(),
            instance_type,
            count,
            key_name: None,
            user_data: spec.user_data.clone(),
            security_groups: security_group.into_iter().collect(),
            tags: {
                let mut t = vec![
                    (tags::BROKER.to_string(), self.broker_id.clone()),
                    (tags::USER.to_string(), actor.name.to_string()),
                    (tags::LAUNCH.to_string(), launch_id.to_string()),
                ];
                if !spec.name.is_empty() {
                    t.push((tags::NAME.to_string(), spec.name.clone()));
                }
                t.extend(spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                t
            },
            client_token: launch_id.to_string(),
        };
        // The cloud part runs in its own task: a client that goes away does not cut it short.
        let this = self.clone();
        let job = CloudLaunch {
            connector,
            creds,
            user: actor.name.clone(),
            ssh_key,
            instance: spec.instance.clone(),
            launch_id: launch_id.clone(),
            credential_id,
            rows: vms.iter().map(|v| v.id.clone()).collect(),
        };
        // In the request's span, so its cloud calls carry the request id.
        tokio::spawn(tracing::Instrument::in_current_span(async move { this.run_cloud(job, run).await }))
            .await
            .map_err(|e| ServiceError::Internal(format!("launch task: {e}")))??;
        Ok(LaunchOutcome { created: true, vms: self.launch_vms(&launch_id).await? })
    }

    /// Makes sure the launch's key pair and security group exist in the
    /// cloud account, asking the cloud only when that was not done within
    /// [`PREPARED_TTL`] (a launch is one cloud call, not three).
    async fn prepare(&self, job: &CloudLaunch, run: &mut RunRequest) -> Result<(), ConnectorError> {
        if let Some(key) = &job.ssh_key {
            let fp = hex::encode(&Sha256::digest(key.trim().as_bytes())[..6]);
            let key_name = format!("cloudbroker-{}-{fp}", job.user);
            let what = format!("key-pair:{key_name}");
            self.prepared
                .ensure(job, &what, || async {
                    let known = job.connector.list_key_pairs(&job.creds).await?.iter().any(|k| k.name == key_name);
                    if !known {
                        match job.connector.import_key_pair(&job.creds, &key_name, key).await {
                            Ok(_) => {}
                            Err(ConnectorError::InvalidRequest { code, .. }) if code.contains("Duplicate") => {}
                            Err(ConnectorError::Unsupported { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                })
                .await?;
            run.key_name = Some(key_name);
        }
        if let Some(g) = run.security_groups.first() {
            let what = format!("security-group:{g}");
            self.prepared.ensure(job, &what, || job.connector.ensure_security_group(&job.creds, g)).await?;
        }
        Ok(())
    }

    /// Prepares and asks the cloud; once more, after preparing afresh, when
    /// the cloud says a group or key pair taken as there is not.
    async fn prepare_and_run(&self, job: &CloudLaunch, run: &mut RunRequest) -> Result<Vec<cloudbroker_connector_api::Vm>, ConnectorError> {
        self.prepare(job, run).await?;
        match job.connector.run_instances(&job.creds, run).await {
            Err(e) if prepared_missing(&e) => {
                tracing::info!(instance = %job.instance, error = %e, "a security group or key pair was gone: making sure again");
                self.prepared.forget(job);
                self.prepare(job, run).await?;
                job.connector.run_instances(&job.creds, run).await
            }
            other => other,
        }
    }

    async fn run_cloud(&self, job: CloudLaunch, mut run: RunRequest) -> ServiceResult<()> {
        let mut in_flight = crate::metrics::LaunchInFlight::start(job.instance.as_str());
        let outcome = self.prepare_and_run(&job, &mut run).await;
        let (user, instance, launch_id) = (job.user.as_str(), &job.instance, &job.launch_id);
        let target = format!("{instance}/{launch_id}");
        match outcome {
            Ok(vms) => {
                in_flight.outcome("ok");
                for (i, vm) in vms.iter().enumerate() {
                    // The cloud's i-th VM into the launch's i-th record; should
                    // the reconciler have been first, the general matching.
                    let status = VmStatus::from(vm.state);
                    let adopted = match job.rows.get(i) {
                        Some(row) => {
                            self.store.adopt_vm(row, &vm.id, status.as_str(), vm.private_ip.as_deref(), vm.public_ip.as_deref()).await?
                        }
                        None => false,
                    };
                    if !adopted {
                        self.record_cloud_vm(instance, launch_id, &job.credential_id, vm).await?;
                    }
                }
                let ids = vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>().join(",");
                self.store.audit(user, "vm.launch", &target, "ok", &ids).await?;
                Ok(())
            }
            Err(e) if ambiguous(&e) => {
                // The cloud may or may not have launched: leave the records
                // `requested`; the reconciler finds them by tag or fails them.
                in_flight.outcome("unknown");
                self.store.audit(user, "vm.launch", &target, "unknown", &e.to_string()).await?;
                Err(e.into())
            }
            Err(e) => {
                in_flight.outcome("failed");
                for v in self.launch_vms(launch_id).await? {
                    if v.cloud_id.is_none() {
                        self.store.update_vm(v.id.as_str(), VmStatus::Failed.as_str(), None, None, None, Some(&e.to_string())).await?;
                    }
                }
                self.store.audit(user, "vm.launch", &target, "failed", &e.to_string()).await?;
                Err(e.into())
            }
        }
    }
}

/// The cloud half of a launch.
struct CloudLaunch {
    connector: Arc<dyn Connector>,
    creds: Credentials,
    user: UserName,
    ssh_key: Option<String>,
    instance: InstanceName,
    launch_id: LaunchId,
    credential_id: CredentialId,
    /// The launch's records (by launch index).
    rows: Vec<String>,
}
