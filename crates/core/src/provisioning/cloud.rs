//! A launch's cloud step: the last of its three steps (plan, admit,
//! cloud). Its VMs are recorded (status `requested`) before the cloud is
//! called, in a task of its own, so a client that goes away does not cut a
//! launch short. A launch whose outcome is unknown (timeout, broken
//! connection) is never repeated: clouds that ignore ClientToken would
//! launch twice; the reconciler adopts what it launched instead. What a
//! launch makes sure of in a cloud account (its key pair, its security
//! group) is remembered for [`PREPARED_TTL`], so a launch is one cloud call.

use super::admit::Admitted;
use super::plan::LaunchPlan;
use super::Provisioning;
use crate::audit::{self, AuditAction, AuditEvent, AuditOutcome, AuditTarget};
use crate::domain::{CredentialId, InstanceName, LaunchId, ProjectName, UserName, VmId, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use crate::Actor;
use cloudbroker_connector_api::model::tags;
use cloudbroker_connector_api::{Connector, ConnectorError, Credentials, RunRequest};
use cloudbroker_store::vms::VmUpdate;
use sha2::{Digest, Sha256};
use std::sync::Arc;

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

impl Provisioning {
    /// Asks the cloud for an admitted launch's VMs, in a task of its own,
    /// and records what it answered.
    pub(super) async fn cloud(self: &Arc<Self>, actor: &Actor, plan: LaunchPlan, admitted: Admitted) -> ServiceResult<()> {
        let req = &plan.request;
        let ssh_key = match plan.ssh_public_key.clone() {
            Some(k) => Some(k),
            None => self.store.get_user(actor.name.as_str()).await?.and_then(|u| u.ssh_public_key),
        };
        let count = u32::try_from(admitted.rows.len()).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let run = RunRequest {
            image_id: plan.image.image_id.clone(),
            instance_type: plan.instance_type.clone(),
            count,
            key_name: None,
            user_data: req.user_data.clone(),
            security_groups: match &plan.groups {
                Some((names, _)) => names.clone(),
                None => plan.security_group.clone().into_iter().collect(),
            },
            security_group_ids: plan.groups.as_ref().map(|(_, ids)| ids.clone()).unwrap_or_default(),
            subnet_id: plan.subnet_id.clone(),
            tags: {
                let mut t = vec![
                    (tags::BROKER.to_string(), self.broker_id.clone()),
                    (tags::USER.to_string(), actor.name.to_string()),
                    (tags::LAUNCH.to_string(), admitted.launch_id.to_string()),
                ];
                // A team project's VMs say so (a personal project's need not:
                // the reconciler takes the user's when the tag is absent).
                if !actor.in_personal_project() {
                    t.push((tags::PROJECT.to_string(), actor.project.to_string()));
                }
                if !req.name.is_empty() {
                    t.push((tags::NAME.to_string(), req.name.clone()));
                }
                t.extend(req.tags.user.iter().map(|(k, v)| (k.clone(), v.clone())));
                t
            },
            client_token: admitted.launch_id.to_string(),
            zone: req.zone.clone(),
            block_devices: req.block_devices.clone(),
            shutdown_behavior: req.shutdown_behavior,
        };
        let job = CloudLaunch {
            connector: plan.connector,
            creds: plan.creds,
            user: actor.name.clone(),
            project: actor.project.clone(),
            ssh_key,
            instance: plan.request.instance,
            launch_id: admitted.launch_id,
            credential_id: plan.credential_id,
            image: plan.image.from_image.clone(),
            rows: admitted.rows,
        };
        // The cloud part runs in its own task: a client that goes away does not cut it short.
        // In the request's span, so its cloud calls carry the request id.
        let this = self.clone();
        tokio::spawn(tracing::Instrument::in_current_span(async move { this.run_cloud(job, run).await }))
            .await
            .map_err(|e| ServiceError::Internal(format!("launch task: {e}")))?
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
        let first = match job.connector.run_instances(&job.creds, run).await {
            Err(e) if prepared_missing(&e) => {
                tracing::info!(instance = %job.instance, error = %e, "a security group or key pair was gone: making sure again");
                self.prepared.forget(job);
                self.prepare(job, run).await?;
                job.connector.run_instances(&job.creds, run).await
            }
            other => other,
        };
        match first {
            // An image made from a VM in another cloud account: granted now, asked once more (`accounts.rs`).
            Err(e) if super::accounts::image_missing(&e) => {
                match self.grant_for_launch(job.connector.as_ref(), &job.instance, &job.image, &job.creds).await {
                    Ok(true) => job.connector.run_instances(&job.creds, run).await,
                    Ok(false) => Err(e),
                    Err(ServiceError::Cloud(ge)) => Err(ge),
                    Err(ge) => Err(ConnectorError::Cloud {
                        code: "LaunchPermissionNotGranted".into(),
                        message: format!("the image is another cloud account's, and launch permission could not be granted: {ge}"),
                    }),
                }
            }
            other => other,
        }
    }

    async fn run_cloud(&self, job: CloudLaunch, mut run: RunRequest) -> ServiceResult<()> {
        let mut in_flight = crate::metrics::LaunchInFlight::start(job.instance.as_str());
        let outcome = self.prepare_and_run(&job, &mut run).await;
        let (user, instance, launch_id) = (job.user.as_str(), &job.instance, &job.launch_id);
        let target = AuditTarget::Launch { instance: instance.as_str(), launch_id: launch_id.as_str() };
        let project = job.project.as_str();
        match outcome {
            Ok(vms) => {
                in_flight.outcome("ok");
                for (i, vm) in vms.iter().enumerate() {
                    // The cloud's i-th VM into the launch's i-th record; should
                    // the reconciler have been first, the general matching.
                    let status = VmStatus::from(vm.state);
                    let adopted = match job.rows.get(i) {
                        Some(row) => self.store.adopt_vm(row, &vm.id, status, vm.private_ip.as_deref(), vm.public_ip.as_deref()).await?,
                        None => false,
                    };
                    if !adopted {
                        self.record_cloud_vm(instance, launch_id, &job.credential_id, vm).await?;
                    }
                    if let (Some(row), Some(subnet), Some(vpc)) = (job.rows.get(i).filter(|_| adopted), &vm.subnet_id, &vm.vpc_id) {
                        self.store.set_vm_network(row, subnet, vpc).await?;
                    }
                    if let Some(row) = job.rows.get(i).filter(|_| adopted) {
                        self.record_launch_details(row, vm).await?;
                    }
                }
                let ids = vms.iter().map(|v| v.id.as_str()).collect::<Vec<_>>().join(",");
                audit::record(&self.store, user, &AuditEvent::ok(AuditAction::VmLaunch, target).detail(ids).in_project(project)).await?;
                Ok(())
            }
            Err(e) if ambiguous(&e) => {
                // The cloud may or may not have launched: leave the records
                // `requested`; the reconciler finds them by tag or fails them.
                in_flight.outcome("unknown");
                audit::record(
                    &self.store,
                    user,
                    &AuditEvent::new(AuditAction::VmLaunch, target, AuditOutcome::Unknown).detail(e.to_string()).in_project(project),
                )
                .await?;
                Err(e.into())
            }
            Err(e) => {
                in_flight.outcome("failed");
                for v in self.launch_vms(launch_id).await? {
                    if v.cloud_id.is_none() {
                        let error = e.to_string();
                        let update = VmUpdate { error: Some(&error), ..VmUpdate::state(&v.id, VmStatus::Failed) };
                        self.store.update_vm(&update).await?;
                    }
                }
                audit::record(
                    &self.store,
                    user,
                    &AuditEvent::new(AuditAction::VmLaunch, target, AuditOutcome::Failed).detail(e.to_string()).in_project(project),
                )
                .await?;
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
    /// The project the launch is in (its audit records name it).
    project: ProjectName,
    ssh_key: Option<String>,
    instance: InstanceName,
    launch_id: LaunchId,
    credential_id: CredentialId,
    /// The native image the cloud image id came from (empty for a raw id).
    image: String,
    /// The launch's records (by launch index).
    rows: Vec<VmId>,
}
