//! The `ec2` connector: Amazon EC2 (and AWS-compatible endpoints) through the
//! official AWS SDK for Rust.
//!
//! One [`Ec2Connector`] per connector *instance* (e.g. `ec2-eu-central-1`),
//! built by [`build`] from the instance's parameters (see
//! `ConnectorKind::Ec2.params()`):
//!
//! | parameter | use |
//! | --- | --- |
//! | `region` (required) | region of every call and of the SigV4 signature |
//! | `endpoint` | endpoint URL override (AWS-compatible clouds, tests); default: AWS's endpoint of the region |
//! | `timeout.seconds` (30) | timeout of one attempt of one API call |
//! | `max.iaas.workers` (20) | concurrent API calls to this instance, all users together |
//!
//! # Credentials
//!
//! Every call uses the credentials passed to it (the user's), as static
//! credentials. The SDK's default credential chain (environment, profile,
//! instance metadata) is **never** used: a broker running on EC2 must not
//! launch VMs with its own instance role on a user's behalf. One SDK client is
//! cached per access key id (rebuilt when the secret changes).
//!
//! # Calls, retries, timeouts
//!
//! The SDK's own retries are disabled. Every API call goes through the
//! instance's [`CallGate`]: at most `max.iaas.workers` attempts in flight,
//! `timeout.seconds` per attempt, jittered exponential backoff on retryable
//! errors (throttling, transport, timeouts, transient server errors; never on
//! capacity, limit, auth or invalid-request errors). Paginated calls go
//! through the gate page by page. `RunInstances` carries the request's
//! `ClientToken`, so a retried launch never starts VMs twice.
//!
//! # Errors
//!
//! Errors the cloud reports are classified by their EC2 code with
//! [`ConnectorError::from_ec2_code`], keeping the cloud's message verbatim
//! (an `UnauthorizedOperation` message names the missing action, e.g.
//! `ec2:RunInstances`). An HTTP 503 without a code is `Throttled`; other
//! answers without a code are `Transport` (5xx), `Auth` (401/403) or `Cloud`;
//! connection failures are `Transport`; timeouts are `Timeout`.
//!
//! # Listing images
//!
//! [`Connector::list_images`] lists the images **owned by the account**
//! (`DescribeImages Owners=self`, all pages) plus the instance's
//! `orchestrator.imageid` if set. Public catalogue images (AWS has hundreds of
//! thousands) are not listed: the broker's image catalogue refers to them by id.
//!
//! # Security groups
//!
//! VMs are launched with security group *names* (`SecurityGroups`), which
//! works in EC2-Classic and in the default VPC. [`Connector::ensure_security_group`]
//! looks the name up with the `group-name` filter and creates the group
//! (in the default VPC) when missing; `InvalidGroup.Duplicate` from a
//! concurrent creation counts as success.
//!
//! # Minimal IAM policy
//!
//! Exactly the EC2 actions this connector calls (also in
//! `docs/ec2-iam-policy.json`, explained in `docs/connectors-ec2.md`):
//!
//! | action | used by |
//! | --- | --- |
//! | `ec2:DescribeRegions` | `validate_credentials` |
//! | `ec2:RunInstances` | `run_instances` |
//! | `ec2:CreateTags` (only with `ec2:CreateAction = RunInstances`) | tags given at launch (`TagSpecifications`) |
//! | `ec2:DescribeInstances` | `describe_instances` |
//! | `ec2:StartInstances`, `ec2:StopInstances`, `ec2:RebootInstances`, `ec2:TerminateInstances` | VM actions |
//! | `ec2:ImportKeyPair`, `ec2:DeleteKeyPair`, `ec2:DescribeKeyPairs` | key pairs |
//! | `ec2:DescribeImages` | `list_images` |
//! | `ec2:DescribeInstanceTypes` | `list_instance_types` |
//! | `ec2:DescribeSecurityGroups`, `ec2:CreateSecurityGroup` | `ensure_security_group` |
//! | `ec2:AllocateAddress`, `ec2:AssociateAddress`, `ec2:DisassociateAddress`, `ec2:ReleaseAddress`, `ec2:DescribeAddresses` | Elastic IPs |
//! | `ec2:CreateVolume`, `ec2:AttachVolume`, `ec2:DetachVolume`, `ec2:DeleteVolume`, `ec2:DescribeVolumes` | volumes |
//!
//! ```json
#![doc = include_str!("../../../docs/ec2-iam-policy.json")]
//! ```

use async_trait::async_trait;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Region, StalledStreamProtectionConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    DomainType, Filter, Instance, InstanceStateChange, InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::Blob;
use base64::Engine as _;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::retry::{CallGate, CallPolicy};
use cloudbroker_connector_api::{
    AddressInfo, Connector, ConnectorError, ConnectorKind, CreateVolumeRequest, CredentialCheck, Credentials, DescribeFilter, ImageInfo,
    InstanceName, InstanceTypeInfo, KeyPairInfo, RunRequest, SecretString, StateChange, Vm, VmState, VolumeAttachment, VolumeInfo,
    VolumeState,
};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The EC2 actions this connector calls: the minimal IAM policy
/// (`ec2:CreateTags` is needed for tags given at launch).
pub const IAM_ACTIONS: &[&str] = &[
    "ec2:DescribeRegions",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:RebootInstances",
    "ec2:TerminateInstances",
    "ec2:ImportKeyPair",
    "ec2:DeleteKeyPair",
    "ec2:DescribeKeyPairs",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:AllocateAddress",
    "ec2:AssociateAddress",
    "ec2:DisassociateAddress",
    "ec2:ReleaseAddress",
    "ec2:DescribeAddresses",
    "ec2:CreateVolume",
    "ec2:AttachVolume",
    "ec2:DetachVolume",
    "ec2:DeleteVolume",
    "ec2:DescribeVolumes",
];

/// At most this many per-credential clients are cached; past it the cache is emptied.
const CLIENT_CACHE_MAX: usize = 1024;

/// Tuning that is not a declared parameter.
#[derive(Clone, Debug)]
pub struct Ec2Options {
    /// `MaxResults` of one `DescribeInstances` page when no ids are given
    /// (EC2 accepts 5 to 1000).
    pub describe_page_size: i32,
    /// `MaxResults` of one `DescribeInstanceTypes` page (5 to 100).
    pub instance_types_page_size: i32,
    /// `MaxResults` of one `DescribeImages` page (5 to 1000).
    pub images_page_size: i32,
    /// Attempts per API call (1 = no retry).
    pub max_attempts: u32,
    /// First backoff between attempts (doubled each retry, jittered).
    pub base_delay: Duration,
}

impl Default for Ec2Options {
    fn default() -> Self {
        let p = CallPolicy::default();
        Self {
            describe_page_size: 1000,
            instance_types_page_size: 100,
            images_page_size: 1000,
            max_attempts: p.max_attempts,
            base_delay: p.base_delay,
        }
    }
}

/// Builds the `ec2` connector of one instance (see the crate docs).
pub fn build(instance: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(Ec2Connector::new(instance, params, Ec2Options::default())?))
}

/// [`build`] with non-default [`Ec2Options`].
pub fn build_with(instance: InstanceName, params: &ParamValues, options: Ec2Options) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(Arc::new(Ec2Connector::new(instance, params, options)?))
}

struct CachedClient {
    secret: SecretString,
    client: Client,
}

/// The `ec2` connector of one instance.
pub struct Ec2Connector {
    instance: InstanceName,
    region: String,
    endpoint: Option<String>,
    orchestrator_image: Option<String>,
    timeout: Duration,
    options: Ec2Options,
    gate: CallGate,
    clients: Mutex<HashMap<String, CachedClient>>,
}

impl std::fmt::Debug for Ec2Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Connector")
            .field("instance", &self.instance)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("workers", &self.gate.workers())
            .finish_non_exhaustive()
    }
}

fn invalid(code: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidRequest { code: code.to_string(), message: message.into() }
}

impl Ec2Connector {
    /// Builds the connector from the instance's parameters.
    pub fn new(instance: InstanceName, params: &ParamValues, options: Ec2Options) -> Result<Self, ConnectorError> {
        let kind = ConnectorKind::Ec2;
        let region = params
            .get(kind, "region")
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| invalid("MissingParameter", format!("connector instance {instance}: the parameter 'region' is required")))?;
        let endpoint = params.get(kind, "endpoint").map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(invalid(
                    "InvalidParameterValue",
                    format!("connector instance {instance}: endpoint '{e}' is not an http(s) URL"),
                ));
            }
        }
        let timeout_s = params.get_int(kind, "timeout.seconds").unwrap_or(30).clamp(1, 3600) as u64;
        let workers = params.get_int(kind, "max.iaas.workers").unwrap_or(20).clamp(1, 1000) as usize;
        let timeout = Duration::from_secs(timeout_s);
        let policy =
            CallPolicy { max_attempts: options.max_attempts.max(1), base_delay: options.base_delay, timeout, ..CallPolicy::default() };
        let gate_name = instance.clone();
        Ok(Self {
            instance,
            region: region.trim().to_string(),
            endpoint,
            orchestrator_image: params.get(kind, "orchestrator.imageid").filter(|s| !s.trim().is_empty()),
            timeout,
            options,
            gate: CallGate::new(workers, policy).for_instance(&gate_name),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The region of this instance.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The gate all calls of this instance go through.
    pub fn gate(&self) -> &CallGate {
        &self.gate
    }

    /// The SDK client for these credentials (cached per access key id).
    pub fn client(&self, creds: &Credentials) -> Result<Client, ConnectorError> {
        if creds.access_key_id.trim().is_empty() || creds.secret_access_key.is_empty() {
            return Err(ConnectorError::Auth {
                code: "MissingAuthenticationToken".into(),
                message: "no EC2 credentials: both the access key id and the secret access key are required".into(),
            });
        }
        let mut cache = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = cache.get(&creds.access_key_id) {
            if c.secret == creds.secret_access_key {
                return Ok(c.client.clone());
            }
        }
        if cache.len() >= CLIENT_CACHE_MAX {
            cache.clear();
        }
        let client = self.new_client(creds);
        cache.insert(creds.access_key_id.clone(), CachedClient { secret: creds.secret_access_key.clone(), client: client.clone() });
        Ok(client)
    }

    fn new_client(&self, creds: &Credentials) -> Client {
        let static_creds = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().to_string(),
            None,
            None,
            "cloudbroker",
        );
        let mut b = aws_sdk_ec2::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(static_creds)
            // Our CallGate retries (and counts); the SDK must not.
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(self.timeout).build())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(e) = &self.endpoint {
            b = b.endpoint_url(e.clone());
        }
        Client::from_conf(b.build())
    }

    /// Runs one SDK call through the gate, mapping its errors.
    async fn call<T, E, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let timeout_s = self.timeout.as_secs().max(1);
        self.gate
            .call(op, || {
                let fut = f();
                async move {
                    fut.await.map_err(|e| {
                        let mapped = map_sdk_error(e, timeout_s);
                        tracing::debug!(op, error = %mapped, "EC2 call failed");
                        mapped
                    })
                }
            })
            .await
    }

    async fn describe_all(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        let client = self.client(creds)?;
        let mut filters = Vec::new();
        for (k, v) in &filter.tags {
            filters.push(Filter::builder().name(format!("tag:{k}")).values(v.clone()).build());
        }
        for k in &filter.tag_keys {
            filters.push(Filter::builder().name("tag-key").values(k.clone()).build());
        }
        let mut base = client.describe_instances().set_filters(if filters.is_empty() { None } else { Some(filters) });
        if filter.ids.is_empty() {
            base = base.max_results(self.options.describe_page_size);
        } else {
            base = base.set_instance_ids(Some(filter.ids.clone()));
        }
        let mut vms = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let out = self.call("DescribeInstances", || req.clone().send()).await?;
            for r in out.reservations() {
                for i in r.instances() {
                    if let Some(vm) = vm_from(i) {
                        vms.push(vm);
                    }
                }
            }
            match next_page("DescribeInstances", &mut pages, token.as_deref(), out.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        // EC2 ANDs filters; apply them again here so that clouds that ignore some stay correct.
        vms.retain(|vm| filter.matches(vm));
        let mut seen = std::collections::HashSet::new();
        vms.retain(|vm| seen.insert(vm.id.clone()));
        Ok(vms)
    }
}

/// Safety stop for a cloud that never stops answering a `nextToken`.
const MAX_PAGES: u32 = 10_000;

/// The token of the next page, or `None` at the end. A cloud that answers the
/// token it was just given would loop forever, and stopping quietly would
/// return a partial list that callers take for the whole: that is an error.
fn next_page(action: &str, pages: &mut u32, previous: Option<&str>, next: Option<&str>) -> Result<Option<String>, ConnectorError> {
    *pages += 1;
    match next.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(_) if *pages >= MAX_PAGES => Err(ConnectorError::Cloud {
            code: "PaginationLoop".into(),
            message: format!("{action} did not end after {MAX_PAGES} pages; the listing is incomplete"),
        }),
        Some(t) if previous == Some(t) => Err(ConnectorError::Cloud {
            code: "PaginationLoop".into(),
            message: format!("{action} answered the same nextToken twice; the listing is incomplete"),
        }),
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// Maps an SDK error to a [`ConnectorError`].
pub fn map_sdk_error<E>(err: SdkError<E, HttpResponse>, timeout_s: u64) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match e.code() {
                Some(code) => ConnectorError::from_ec2_code(code, e.message().unwrap_or("")),
                None => by_status(status, e.message().map(str::to_string).unwrap_or_else(|| describe(&err))),
            }
        }
        SdkError::TimeoutError(_) => ConnectorError::Timeout { seconds: timeout_s },
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                ConnectorError::Timeout { seconds: timeout_s }
            } else {
                ConnectorError::Transport { message: describe(&err) }
            }
        }
        SdkError::ResponseError(_) => by_status(status, describe(&err)),
        SdkError::ConstructionFailure(_) => ConnectorError::InvalidRequest { code: "ConstructionFailure".into(), message: describe(&err) },
        _ => ConnectorError::Transport { message: describe(&err) },
    }
}

/// An answer without an EC2 error code, by its HTTP status.
fn by_status(status: Option<u16>, message: String) -> ConnectorError {
    match status {
        Some(503) => ConnectorError::Throttled {
            code: "HTTP503".into(),
            message: if message.is_empty() { "HTTP 503 Service Unavailable".into() } else { message },
        },
        Some(s @ (401 | 403)) => ConnectorError::Auth { code: format!("HTTP{s}"), message },
        Some(s) if s >= 500 => ConnectorError::Transport { message: format!("HTTP {s} without an error code: {message}") },
        Some(s) => ConnectorError::Cloud { code: format!("HTTP{s}"), message },
        None => ConnectorError::Transport { message },
    }
}

/// The error and its sources, one line.
fn describe(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = e.source();
    }
    s
}

fn vm_from(i: &Instance) -> Option<Vm> {
    let id = i.instance_id()?.to_string();
    let state = i.state().and_then(|s| s.name()).and_then(|n| VmState::parse(n.as_str())).unwrap_or(VmState::Pending);
    Some(Vm {
        id,
        state,
        image_id: i.image_id().unwrap_or_default().to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        private_ip: i.private_ip_address().filter(|s| !s.is_empty()).map(str::to_string),
        public_ip: i.public_ip_address().filter(|s| !s.is_empty()).map(str::to_string),
        key_name: i.key_name().filter(|s| !s.is_empty()).map(str::to_string),
        launch_time: i.launch_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        client_token: i.client_token().filter(|s| !s.is_empty()).map(str::to_string),
        tags: i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect(),
    })
}

fn state_of(s: Option<&aws_sdk_ec2::types::InstanceState>) -> VmState {
    s.and_then(|s| s.name()).and_then(|n| VmState::parse(n.as_str())).unwrap_or(VmState::Pending)
}

fn state_changes(list: &[InstanceStateChange]) -> Vec<StateChange> {
    list.iter()
        .filter_map(|c| {
            Some(StateChange {
                id: c.instance_id()?.to_string(),
                previous: state_of(c.previous_state()),
                current: state_of(c.current_state()),
            })
        })
        .collect()
}

fn address_from(a: &aws_sdk_ec2::types::Address) -> Option<AddressInfo> {
    Some(AddressInfo {
        public_ip: a.public_ip()?.to_string(),
        allocation_id: a.allocation_id()?.to_string(),
        instance_id: a.instance_id().filter(|s| !s.is_empty()).map(str::to_string),
        association_id: a.association_id().map(str::to_string),
        private_ip: a.private_ip_address().map(str::to_string),
    })
}

fn attachment_from(
    volume_id: Option<&str>,
    instance_id: Option<&str>,
    device: Option<&str>,
    state: Option<&aws_sdk_ec2::types::VolumeAttachmentState>,
) -> Option<VolumeAttachment> {
    Some(VolumeAttachment {
        volume_id: volume_id?.to_string(),
        instance_id: instance_id?.to_string(),
        device: device.unwrap_or_default().to_string(),
        state: state?.as_str().to_string(),
    })
}

fn volume_state(s: Option<&aws_sdk_ec2::types::VolumeState>) -> VolumeState {
    s.and_then(|s| VolumeState::parse(s.as_str())).unwrap_or(VolumeState::Error)
}

fn volume_from(v: &aws_sdk_ec2::types::Volume) -> Option<VolumeInfo> {
    Some(VolumeInfo {
        volume_id: v.volume_id()?.to_string(),
        size_gib: v.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
        zone: v.availability_zone().unwrap_or_default().to_string(),
        state: volume_state(v.state()),
        attachments: v
            .attachments()
            .iter()
            .filter_map(|a| attachment_from(a.volume_id(), a.instance_id(), a.device(), a.state()))
            .collect(),
    })
}

fn unreadable(action: &str, what: &str) -> ConnectorError {
    ConnectorError::Transport { message: format!("unreadable {action} answer from the cloud: {what}") }
}

fn check_ids(ids: &[String]) -> Result<(), ConnectorError> {
    if ids.is_empty() {
        return Err(invalid("MissingParameter", "no instance ids given"));
    }
    Ok(())
}

/// What to tell a user whose credentials failed validation.
fn validation_error(e: ConnectorError, region: &str, endpoint: &str) -> ConnectorError {
    let hint = match &e {
        ConnectorError::Auth { code, .. } => match code.as_str() {
            "InvalidClientTokenId" | "InvalidAccessKeyId" => "the access key id is not known to the cloud",
            "SignatureDoesNotMatch" => "the secret access key does not match the access key id",
            "AuthFailure" => "the access key id is unknown or the secret access key is wrong (EC2 does not say which)",
            "OptInRequired" => "the account is not subscribed to EC2 or has not opted in to this region",
            "PendingVerification" | "Blocked" => "the account is not active yet or is blocked",
            _ => "the cloud rejected the credentials",
        },
        ConnectorError::Forbidden { .. } => {
            "the credentials are valid but may not call ec2:DescribeRegions; give the user the connector's IAM policy"
        }
        _ => "",
    };
    match e {
        ConnectorError::Auth { code, message } => ConnectorError::Auth { code, message: format!("{hint}: {message}") },
        ConnectorError::Forbidden { code, message } => ConnectorError::Forbidden { code, message: format!("{hint}: {message}") },
        ConnectorError::Transport { message } => {
            ConnectorError::Transport { message: format!("the EC2 endpoint {endpoint} (region {region}) is unreachable: {message}") }
        }
        other => other,
    }
}

#[async_trait]
impl Connector for Ec2Connector {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Ec2
    }

    fn instance(&self) -> &InstanceName {
        &self.instance
    }

    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        let endpoint = self.endpoint.clone().unwrap_or_else(|| format!("https://ec2.{}.amazonaws.com", self.region));
        let client = self.client(creds).map_err(|e| validation_error(e, &self.region, &endpoint))?;
        let req = client.describe_regions();
        let out = self.call("DescribeRegions", || req.clone().send()).await.map_err(|e| validation_error(e, &self.region, &endpoint))?;
        let listed = out.regions().iter().any(|r| r.region_name() == Some(self.region.as_str()));
        if !listed && self.endpoint.is_none() {
            return Err(ConnectorError::Auth {
                code: "OptInRequired".into(),
                message: format!(
                    "the credentials are valid, but region {} is not enabled for this account (enable it in the AWS console)",
                    self.region
                ),
            });
        }
        Ok(CredentialCheck {
            account: None,
            message: format!("credentials {} are valid for EC2 region {} ({endpoint})", creds.masked_access_key(), self.region),
        })
    }

    async fn run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        if req.count == 0 {
            return Err(invalid("InvalidParameterValue", "count must be at least 1"));
        }
        if req.image_id.trim().is_empty() {
            return Err(invalid("MissingParameter", "no image id given"));
        }
        let count = i32::try_from(req.count).map_err(|_| invalid("InvalidParameterValue", format!("count {} is too large", req.count)))?;
        let client = self.client(creds)?;
        let mut b = client
            .run_instances()
            .image_id(req.image_id.clone())
            .min_count(count)
            .max_count(count)
            .set_key_name(req.key_name.clone().filter(|k| !k.is_empty()))
            .set_user_data(req.user_data.as_ref().map(|u| base64::engine::general_purpose::STANDARD.encode(u.as_bytes())))
            .set_security_groups(if req.security_groups.is_empty() { None } else { Some(req.security_groups.clone()) });
        if !req.instance_type.is_empty() {
            b = b.instance_type(InstanceType::from(req.instance_type.as_str()));
        }
        if !req.tags.is_empty() {
            let tags = req.tags.iter().map(|(k, v)| Tag::builder().key(k.clone()).value(v.clone()).build()).collect();
            b = b.tag_specifications(TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(tags)).build());
        }
        if !req.client_token.is_empty() {
            b = b.client_token(req.client_token.clone());
        }
        let out = self.call("RunInstances", || b.clone().send()).await?;
        let mut vms: Vec<Vm> = out.instances().iter().filter_map(vm_from).collect();
        for vm in &mut vms {
            // Tags given at launch are not always echoed by RunInstances.
            if vm.tags.is_empty() {
                vm.tags = req.tags.clone();
            }
            if vm.client_token.is_none() && !req.client_token.is_empty() {
                vm.client_token = Some(req.client_token.clone());
            }
        }
        tracing::info!(instance = %self.instance, count = vms.len(), image = %req.image_id, "launched EC2 instances");
        Ok(vms)
    }

    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        self.describe_all(creds, filter).await
    }

    async fn instance_states(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<(String, VmState)>, ConnectorError> {
        check_ids(ids)?;
        let base = self.client(creds)?.describe_instance_status().set_instance_ids(Some(ids.to_vec())).include_all_instances(true);
        let mut out = Vec::with_capacity(ids.len());
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeInstanceStatus", || req.clone().send()).await?;
            for st in page.instance_statuses() {
                if let Some(id) = st.instance_id() {
                    out.push((id.to_string(), state_of(st.instance_state())));
                }
            }
            match next_page("DescribeInstanceStatus", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(out)
    }

    async fn start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.start_instances().set_instance_ids(Some(ids.to_vec()));
        let out = self.call("StartInstances", || req.clone().send()).await?;
        Ok(state_changes(out.starting_instances()))
    }

    async fn stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.stop_instances().set_instance_ids(Some(ids.to_vec()));
        let out = self.call("StopInstances", || req.clone().send()).await?;
        Ok(state_changes(out.stopping_instances()))
    }

    async fn reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.reboot_instances().set_instance_ids(Some(ids.to_vec()));
        self.call("RebootInstances", || req.clone().send()).await?;
        Ok(())
    }

    async fn terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        check_ids(ids)?;
        let req = self.client(creds)?.terminate_instances().set_instance_ids(Some(ids.to_vec()));
        let out = self.call("TerminateInstances", || req.clone().send()).await?;
        Ok(state_changes(out.terminating_instances()))
    }

    async fn allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        let req = self.client(creds)?.allocate_address().domain(DomainType::Vpc);
        let out = self.call("AllocateAddress", || req.clone().send()).await?;
        Ok(AddressInfo {
            public_ip: out.public_ip().ok_or_else(|| unreadable("AllocateAddress", "no publicIp"))?.to_string(),
            allocation_id: out.allocation_id().ok_or_else(|| unreadable("AllocateAddress", "no allocationId"))?.to_string(),
            instance_id: None,
            association_id: None,
            private_ip: None,
        })
    }

    async fn associate_address(&self, creds: &Credentials, allocation_id: &str, instance_id: &str) -> Result<String, ConnectorError> {
        let req = self.client(creds)?.associate_address().allocation_id(allocation_id).instance_id(instance_id);
        let out = self.call("AssociateAddress", || req.clone().send()).await?;
        Ok(out.association_id().ok_or_else(|| unreadable("AssociateAddress", "no associationId"))?.to_string())
    }

    async fn disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.disassociate_address().association_id(association_id);
        self.call("DisassociateAddress", || req.clone().send()).await?;
        Ok(())
    }

    async fn release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.release_address().allocation_id(allocation_id);
        self.call("ReleaseAddress", || req.clone().send()).await?;
        Ok(())
    }

    async fn describe_addresses(&self, creds: &Credentials, allocation_ids: &[String]) -> Result<Vec<AddressInfo>, ConnectorError> {
        let ids = (!allocation_ids.is_empty()).then(|| allocation_ids.to_vec());
        let req = self.client(creds)?.describe_addresses().set_allocation_ids(ids);
        let out = self.call("DescribeAddresses", || req.clone().send()).await?;
        Ok(out.addresses().iter().filter_map(address_from).collect())
    }

    async fn create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        let size = i32::try_from(req.size_gib).map_err(|_| invalid("InvalidParameterValue", "volume size out of range"))?;
        let call = self
            .client(creds)?
            .create_volume()
            .size(size)
            .availability_zone(&req.zone)
            .set_volume_type(req.volume_type.as_deref().map(VolumeType::from));
        let out = self.call("CreateVolume", || call.clone().send()).await?;
        Ok(VolumeInfo {
            volume_id: out.volume_id().ok_or_else(|| unreadable("CreateVolume", "no volumeId"))?.to_string(),
            size_gib: out.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(req.size_gib),
            zone: out.availability_zone().unwrap_or(&req.zone).to_string(),
            state: volume_state(out.state()),
            attachments: Vec::new(),
        })
    }

    async fn attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let req = self.client(creds)?.attach_volume().volume_id(volume_id).instance_id(instance_id).device(device);
        let out = self.call("AttachVolume", || req.clone().send()).await?;
        attachment_from(out.volume_id().or(Some(volume_id)), out.instance_id().or(Some(instance_id)), out.device(), out.state())
            .ok_or_else(|| unreadable("AttachVolume", "no attachment state"))
    }

    async fn detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let req = self.client(creds)?.detach_volume().volume_id(volume_id).set_instance_id(instance_id.map(str::to_string)).force(force);
        let out = self.call("DetachVolume", || req.clone().send()).await?;
        attachment_from(out.volume_id().or(Some(volume_id)), out.instance_id().or(instance_id), out.device(), out.state())
            .ok_or_else(|| unreadable("DetachVolume", "no attachment state"))
    }

    async fn delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_volume().volume_id(volume_id);
        self.call("DeleteVolume", || req.clone().send()).await?;
        Ok(())
    }

    async fn describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let mut base = client.describe_volumes();
        if volume_ids.is_empty() {
            // DescribeVolumes takes MaxResults 5-500.
            base = base.max_results(self.options.describe_page_size.clamp(5, 500));
        } else {
            base = base.set_volume_ids(Some(volume_ids.to_vec()));
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let page = self.call("DescribeVolumes", || req.clone().send()).await?;
            out.extend(page.volumes().iter().filter_map(volume_from));
            match next_page("DescribeVolumes", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        check_ids(ids)?;
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let req = self.client(creds)?.create_tags().set_resources(Some(ids.to_vec())).set_tags(Some(tags));
        self.call("CreateTags", || req.clone().send()).await?;
        Ok(())
    }

    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        check_ids(ids)?;
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        let req = self.client(creds)?.delete_tags().set_resources(Some(ids.to_vec())).set_tags(Some(tags));
        self.call("DeleteTags", || req.clone().send()).await?;
        Ok(())
    }

    async fn import_key_pair(&self, creds: &Credentials, name: &str, public_key: &str) -> Result<KeyPairInfo, ConnectorError> {
        if name.trim().is_empty() {
            return Err(invalid("MissingParameter", "no key pair name given"));
        }
        let req =
            self.client(creds)?.import_key_pair().key_name(name).public_key_material(Blob::new(public_key.trim().as_bytes().to_vec()));
        let out = self.call("ImportKeyPair", || req.clone().send()).await?;
        Ok(KeyPairInfo { name: out.key_name().unwrap_or(name).to_string(), fingerprint: out.key_fingerprint().map(str::to_string) })
    }

    async fn delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_key_pair().key_name(name);
        match self.call("DeleteKeyPair", || req.clone().send()).await {
            Ok(_) | Err(ConnectorError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        let req = self.client(creds)?.describe_key_pairs();
        let out = self.call("DescribeKeyPairs", || req.clone().send()).await?;
        Ok(out
            .key_pairs()
            .iter()
            .filter_map(|k| Some(KeyPairInfo { name: k.key_name()?.to_string(), fingerprint: k.key_fingerprint().map(str::to_string) }))
            .collect())
    }

    async fn list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let mut images: BTreeMap<String, ImageInfo> = BTreeMap::new();
        let base = client.describe_images().owners("self").max_results(self.options.images_page_size);
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let out = self.call("DescribeImages", || req.clone().send()).await?;
            for i in out.images() {
                if let Some(info) = image_from(i) {
                    images.insert(info.id.clone(), info);
                }
            }
            match next_page("DescribeImages", &mut pages, token.as_deref(), out.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        if let Some(id) = self.orchestrator_image.as_ref().filter(|id| !images.contains_key(*id)) {
            let req = client.describe_images().image_ids(id.clone());
            match self.call("DescribeImages", || req.clone().send()).await {
                Ok(out) => {
                    for i in out.images() {
                        if let Some(info) = image_from(i) {
                            images.insert(info.id.clone(), info);
                        }
                    }
                }
                Err(e @ (ConnectorError::NotFound { .. } | ConnectorError::InvalidRequest { .. })) => {
                    tracing::warn!(instance = %self.instance, image = %id, error = %e, "orchestrator.imageid is not visible to these credentials");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(images.into_values().collect())
    }

    async fn list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let base = client.describe_instance_types().max_results(self.options.instance_types_page_size);
        let mut types: BTreeMap<String, InstanceTypeInfo> = BTreeMap::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let req = base.clone().set_next_token(token.clone());
            let out = self.call("DescribeInstanceTypes", || req.clone().send()).await?;
            for t in out.instance_types() {
                if let Some(name) = t.instance_type() {
                    types.insert(
                        name.as_str().to_string(),
                        InstanceTypeInfo {
                            name: name.as_str().to_string(),
                            vcpus: t.v_cpu_info().and_then(|v| v.default_v_cpus()).and_then(|n| u32::try_from(n).ok()),
                            memory_mib: t.memory_info().and_then(|m| m.size_in_mib()).and_then(|n| u64::try_from(n).ok()),
                        },
                    );
                }
            }
            match next_page("DescribeInstanceTypes", &mut pages, token.as_deref(), out.next_token())? {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(types.into_values().collect())
    }

    async fn ensure_security_group(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        if name.trim().is_empty() {
            return Err(invalid("MissingParameter", "no security group name given"));
        }
        let client = self.client(creds)?;
        let req = client.describe_security_groups().filters(Filter::builder().name("group-name").values(name).build());
        let out = self.call("DescribeSecurityGroups", || req.clone().send()).await?;
        if out.security_groups().iter().any(|g| g.group_name() == Some(name)) {
            return Ok(());
        }
        // No spaces: moto re-encodes form bodies with '+' for spaces when it
        // checks signatures, while the SDK sends %20.
        let req = client.create_security_group().group_name(name).description("created-by-cloudbroker");
        match self.call("CreateSecurityGroup", || req.clone().send()).await {
            Ok(_) => {
                tracing::info!(instance = %self.instance, group = name, "created security group");
                Ok(())
            }
            Err(ConnectorError::InvalidRequest { code, .. }) if code == "InvalidGroup.Duplicate" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn describe_image(&self, creds: &Credentials, id: &str) -> Result<Option<ImageInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let req = client.describe_images().image_ids(id);
        match self.call("DescribeImages", || req.clone().send()).await {
            Ok(out) => Ok(out.images().iter().filter_map(image_from).find(|i| i.id == id)),
            // An unknown or malformed id: the cloud has no such image.
            Err(ConnectorError::NotFound { .. }) => Ok(None),
            Err(ConnectorError::InvalidRequest { code, .. }) if code.starts_with("InvalidAMIID") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn image_from(i: &aws_sdk_ec2::types::Image) -> Option<ImageInfo> {
    Some(ImageInfo {
        id: i.image_id()?.to_string(),
        name: i.name().map(str::to_string),
        description: i.description().map(str::to_string),
        state: i.state().map(|s| s.as_str().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_or_endless_next_token_is_an_error_not_a_short_list() {
        let mut pages = 0;
        assert_eq!(next_page("DescribeInstances", &mut pages, None, Some("a")).unwrap(), Some("a".to_string()));
        assert_eq!(next_page("DescribeInstances", &mut pages, Some("a"), Some("")).unwrap(), None);
        let e = next_page("DescribeInstances", &mut pages, Some("a"), Some("a")).unwrap_err();
        assert!(matches!(&e, ConnectorError::Cloud { code, .. } if code == "PaginationLoop"), "{e}");
        assert!(!e.is_retryable());
        let mut pages = MAX_PAGES - 1;
        assert!(next_page("DescribeInstances", &mut pages, Some("a"), Some("b")).is_err());
    }

    fn params(kv: &[(&str, &str)]) -> ParamValues {
        ParamValues::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn name() -> InstanceName {
        InstanceName::parse("ec2-test").unwrap()
    }

    #[test]
    fn region_is_required_and_defaults_apply() {
        let e = Ec2Connector::new(name(), &params(&[]), Ec2Options::default()).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidRequest { code, message } if code == "MissingParameter" && message.contains("region")),
            "{e:?}"
        );
        let c = Ec2Connector::new(name(), &params(&[("region", "eu-central-1")]), Ec2Options::default()).unwrap();
        assert_eq!(c.gate().workers(), 20);
        assert_eq!(c.gate().policy().timeout, Duration::from_secs(30));
        assert_eq!(c.region(), "eu-central-1");
        let c = Ec2Connector::new(
            name(),
            &params(&[("region", "x"), ("max.iaas.workers", "3"), ("timeout.seconds", "2")]),
            Ec2Options::default(),
        )
        .unwrap();
        assert_eq!(c.gate().workers(), 3);
        assert_eq!(c.gate().policy().timeout, Duration::from_secs(2));
        assert!(Ec2Connector::new(name(), &params(&[("region", "x"), ("endpoint", "ftp://x")]), Ec2Options::default()).is_err());
    }

    #[test]
    fn clients_are_cached_per_key_and_rebuilt_on_new_secret() {
        let c = Ec2Connector::new(name(), &params(&[("region", "us-east-1"), ("endpoint", "http://127.0.0.1:1")]), Ec2Options::default())
            .unwrap();
        c.client(&Credentials::new("AKIA1", "s1")).unwrap();
        c.client(&Credentials::new("AKIA1", "s1")).unwrap();
        c.client(&Credentials::new("AKIA2", "s2")).unwrap();
        assert_eq!(c.clients.lock().unwrap().len(), 2);
        c.client(&Credentials::new("AKIA1", "s3")).unwrap();
        assert!(c.clients.lock().unwrap()["AKIA1"].secret == SecretString::new("s3"));
        assert!(matches!(c.client(&Credentials::new("", "s")), Err(ConnectorError::Auth { .. })));
    }

    #[test]
    fn codeless_answers_by_status() {
        assert!(matches!(by_status(Some(503), String::new()), ConnectorError::Throttled { .. }));
        assert!(by_status(Some(503), String::new()).is_retryable());
        assert!(matches!(by_status(Some(502), "x".into()), ConnectorError::Transport { .. }));
        assert!(matches!(by_status(Some(403), "x".into()), ConnectorError::Auth { .. }));
        assert!(matches!(by_status(Some(400), "x".into()), ConnectorError::Cloud { .. }));
    }

    #[test]
    fn validation_errors_say_what_is_wrong() {
        let e = validation_error(ConnectorError::from_ec2_code("AuthFailure", "AWS was not able to validate"), "r", "e");
        assert!(e.to_string().contains("secret access key is wrong") && e.to_string().contains("AWS was not able to validate"), "{e}");
        let e = validation_error(ConnectorError::from_ec2_code("UnauthorizedOperation", "not authorized: ec2:DescribeRegions"), "r", "e");
        assert!(
            matches!(&e, ConnectorError::Forbidden { message, .. } if message.contains("IAM policy") && message.contains("ec2:DescribeRegions"))
        );
        let e = validation_error(ConnectorError::Transport { message: "connection refused".into() }, "r", "http://x");
        assert!(e.to_string().contains("unreachable") && e.to_string().contains("connection refused"));
    }

    #[test]
    fn iam_policy_doc_lists_exactly_the_actions() {
        let doc = include_str!("../../../docs/ec2-iam-policy.json");
        let mut in_doc: Vec<&str> = doc.split('"').filter(|s| s.starts_with("ec2:") && !s.starts_with("ec2:CreateAction")).collect();
        in_doc.sort_unstable();
        in_doc.dedup();
        let mut ours = IAM_ACTIONS.to_vec();
        ours.sort_unstable();
        assert_eq!(in_doc, ours);
    }
}
