//! The `sandbox` connector: a simulated EC2-like cloud held in memory, for
//! demos, dry runs and load tests with no cloud account.
//!
//! Behaves like EC2 where it matters to the broker: VMs go `pending ->
//! running` after `boot.delay.ms` (likewise `stopping -> stopped`,
//! `shutting-down -> terminated`), get a private address (10.0.0.0/8) and,
//! with `public.ips`, a public one (TEST-NET-3, 203.0.113.0/24 and up); a
//! `ClientToken` makes launches idempotent; each access key id is its own
//! account; `failure.rate` makes launches fail with
//! `InsufficientInstanceCapacity`; `capacity` bounds the live VMs.
//!
//! Elastic IPs (TEST-NET-2, 198.51.100.0/24) and volumes are simulated too,
//! with EC2's rules and error codes: at most [`MAX_ADDRESSES`] addresses per
//! account; an address is associated with one VM at a time (a VM gets one
//! address: associating another moves it); a volume attaches only to a
//! running or stopped VM of the same account, in the instance's one zone
//! (`<instance>a`), as a free device `/dev/sd[b-z]` or `/dev/xvd[b-z]`;
//! volumes go `creating -> available` and attachments `attaching ->
//! attached`, `detaching -> detached` after `boot.delay.ms`; a terminated VM
//! loses its address and its volumes are detached.
//!
//! Where the simulated cloud lives: built by the broker ([`build_persistent`])
//! it lives in the broker's database through a [`WorldStore`], so it
//! survives restarts and two replicas on one database see one sandbox (each
//! call runs in one transaction that excludes every other caller of the
//! instance, on any replica). Built alone ([`build`], [`SandboxConnector::new`])
//! it lives in this process's memory. Timed transitions are computed from
//! wall-clock times kept with each VM, so they need no timer task.

use async_trait::async_trait;
use chrono::Utc;
use cloudbroker_connector_api::params::ParamValues;
use cloudbroker_connector_api::retry::{CallGate, CallPolicy};
use cloudbroker_connector_api::{
    AddressInfo, Connector, ConnectorError, ConnectorKind, CreateVolumeRequest, CredentialCheck, Credentials, DescribeFilter, ImageInfo,
    InstanceName, InstanceTypeInfo, KeyPairInfo, RunRequest, StateChange, Vm, VmState, VolumeAttachment, VolumeInfo, VolumeState,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Images every sandbox account can launch.
pub const IMAGES: &[(&str, &str)] = &[
    ("ami-sandbox-ubuntu-2204", "Ubuntu 22.04 LTS"),
    ("ami-sandbox-ubuntu-2404", "Ubuntu 24.04 LTS"),
    ("ami-sandbox-debian-12", "Debian 12"),
    ("ami-sandbox-rocky-9", "Rocky Linux 9"),
    ("ami-sandbox-alpine-3", "Alpine Linux 3"),
];

/// Instance types offered: (name, vCPUs, MiB).
pub const INSTANCE_TYPES: &[(&str, u32, u64)] = &[
    ("t2.nano", 1, 512),
    ("t2.micro", 1, 1024),
    ("t2.small", 1, 2048),
    ("t2.medium", 2, 4096),
    ("m5.large", 2, 8192),
    ("m5.xlarge", 4, 16384),
    ("c5.2xlarge", 8, 16384),
];

/// Settings of one sandbox instance.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    pub boot_delay: Duration,
    pub failure_rate: f64,
    pub capacity: Option<usize>,
    pub public_ips: bool,
    /// Whether launch tags are kept (false: a cloud that drops them).
    pub keep_tags: bool,
    pub api_latency: Duration,
    pub workers: usize,
}

impl SandboxSettings {
    /// Reads the declared `sandbox` parameters.
    pub fn from_params(p: &ParamValues) -> Self {
        let k = ConnectorKind::Sandbox;
        Self {
            boot_delay: Duration::from_millis(p.get_int(k, "boot.delay.ms").unwrap_or(2000).max(0) as u64),
            failure_rate: p.get_f64(k, "failure.rate").unwrap_or(0.0),
            capacity: p.get_int(k, "capacity").map(|c| c.max(0) as usize),
            public_ips: p.get_bool(k, "public.ips").unwrap_or(true),
            keep_tags: p.get_bool(k, "keep.tags").unwrap_or(true),
            api_latency: Duration::from_millis(p.get_int(k, "api.latency.ms").unwrap_or(0).max(0) as u64),
            workers: p.get_int(k, "max.iaas.workers").unwrap_or(20).max(1) as usize,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SimVm {
    vm: Vm,
    account: String,
    /// Wall-clock time of the last state change, in ms since the epoch.
    changed_ms: i64,
}

/// Elastic IPs an account may hold at once (EC2's default limit).
pub const MAX_ADDRESSES: usize = 5;

/// The largest volume, in GiB.
pub const MAX_VOLUME_GIB: u32 = 16_384;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SimAddress {
    info: AddressInfo,
    account: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SimVolume {
    info: VolumeInfo,
    account: String,
    /// Wall-clock time of the last state change, in ms since the epoch.
    changed_ms: i64,
    tags: BTreeMap<String, String>,
}

/// Splits resource ids into volumes and instances.
fn split_volumes(ids: &[String]) -> (Vec<String>, Vec<String>) {
    ids.iter().cloned().partition(|id| id.starts_with("vol-"))
}

/// One simulated cloud. Every field has a default so that a world stored by
/// an older broker still loads.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct World {
    vms: BTreeMap<String, SimVm>,
    order: Vec<String>,
    /// Launch ids by `account` + U+001F + client token.
    tokens: BTreeMap<String, Vec<String>>,
    keys: HashMap<String, BTreeMap<String, String>>,
    addresses: BTreeMap<String, SimAddress>,
    volumes: BTreeMap<String, SimVolume>,
    next: u64,
}

fn token_key(account: &str, token: &str) -> String {
    format!("{account}\u{1f}{token}")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A change to a stored world: gets the stored JSON (if any), answers the
/// JSON to store (if anything changed).
pub type WorldChange<'a> = Box<dyn for<'b> FnOnce(Option<&'b [u8]>) -> Option<Vec<u8>> + Send + 'a>;

/// The code of the error a call answers when the database that keeps the
/// world is unavailable for now (nothing changed): not the simulated
/// cloud's refusal, so the broker answers it as its own database being
/// unavailable (503 `database_unavailable`), not as a cloud error (502).
pub const DATABASE_UNAVAILABLE_CODE: &str = "SandboxDatabaseUnavailable";

/// Why a [`WorldStore`] could not run a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorldStoreError {
    /// The database cannot be reached or refuses work for now; nothing changed.
    Unavailable(String),
    /// Anything else.
    Failed(String),
}

/// Keeps sandbox worlds outside the process (the broker's database).
#[async_trait]
pub trait WorldStore: Send + Sync {
    /// Runs `f` on the stored world of `instance` (`None` when none is
    /// stored yet) inside one transaction that excludes every other caller
    /// for this instance, on any replica; stores what `f` returns, if anything.
    async fn update<'a>(&'a self, instance: &'a str, f: WorldChange<'a>) -> Result<(), WorldStoreError>;
}

fn err_invalid(code: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidRequest { code: code.into(), message: message.into() }
}

fn err_not_found(code: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::NotFound { code: code.into(), message: message.into() }
}

/// Whether `device` is a device name a volume may take.
fn valid_device(device: &str) -> bool {
    let rest = device.strip_prefix("/dev/sd").or_else(|| device.strip_prefix("/dev/xvd"));
    matches!(rest.map(str::as_bytes), Some([b'b'..=b'z']))
}

impl World {
    fn address<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimAddress, ConnectorError> {
        match self.addresses.get_mut(id) {
            Some(a) if a.account == account => Ok(a),
            _ => Err(err_not_found("InvalidAllocationID.NotFound", format!("The allocation ID '{id}' does not exist"))),
        }
    }

    fn volume<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimVolume, ConnectorError> {
        match self.volumes.get_mut(id) {
            Some(v) if v.account == account => Ok(v),
            _ => Err(err_not_found("InvalidVolume.NotFound", format!("The volume '{id}' does not exist."))),
        }
    }

    /// A VM of the account that may take an address or a volume (running or stopped).
    fn usable_vm(&self, account: &str, id: &str) -> Result<&SimVm, ConnectorError> {
        match self.vms.get(id) {
            Some(s) if s.account == account => match s.vm.state {
                VmState::Running | VmState::Stopped => Ok(s),
                other => Err(err_invalid("IncorrectInstanceState", format!("The instance '{id}' is not in a valid state ({other})"))),
            },
            _ => Err(err_not_found("InvalidInstanceID.NotFound", format!("The instance ID '{id}' does not exist"))),
        }
    }
}

/// The simulated cloud of one connector instance.
pub struct SandboxConnector {
    instance: InstanceName,
    settings: SandboxSettings,
    gate: CallGate,
    world: Arc<Mutex<World>>,
    persist: Option<Arc<dyn WorldStore>>,
}

/// The simulated clouds of this process, by instance name: changing an
/// instance's parameters rebuilds its connector but keeps its VMs, as a real
/// cloud would.
fn shared_world(instance: &InstanceName) -> Arc<Mutex<World>> {
    static WORLDS: std::sync::OnceLock<Mutex<HashMap<String, Arc<Mutex<World>>>>> = std::sync::OnceLock::new();
    let m = WORLDS.get_or_init(|| Mutex::new(HashMap::new()));
    m.lock().unwrap_or_else(|e| e.into_inner()).entry(instance.to_string()).or_default().clone()
}

/// A test hook: holds this process's listings (`describe_instances`, and so
/// the default `instance_states`) of one sandbox instance after they have
/// read the world and before they answer, until released. A test can then
/// act on a VM while a listing's observation of it is certainly older than
/// the action. Installed by [`ListingHold::install`]; released on
/// [`ListingHold::release`] or drop. No hold installed: one map look-up.
pub struct ListingHold {
    instance: String,
    /// One permit per listing held so far.
    held: tokio::sync::Semaphore,
    released: tokio::sync::watch::Sender<bool>,
}

fn listing_holds() -> MutexGuard<'static, HashMap<String, Arc<ListingHold>>> {
    static HOLDS: std::sync::OnceLock<Mutex<HashMap<String, Arc<ListingHold>>>> = std::sync::OnceLock::new();
    HOLDS.get_or_init(|| Mutex::new(HashMap::new())).lock().unwrap_or_else(|e| e.into_inner())
}

impl ListingHold {
    /// Holds every listing of `instance` from now on until released.
    pub fn install(instance: &str) -> Arc<Self> {
        let hold = Arc::new(Self {
            instance: instance.to_string(),
            held: tokio::sync::Semaphore::new(0),
            released: tokio::sync::watch::channel(false).0,
        });
        listing_holds().insert(instance.to_string(), hold.clone());
        hold
    }

    /// Waits until a listing has read the world and is held.
    pub async fn held(&self) {
        if let Ok(p) = self.held.acquire().await {
            p.forget();
        }
    }

    /// Lets every held listing answer (with what it read) and holds no more.
    pub fn release(&self) {
        let mut holds = listing_holds();
        if holds.get(&self.instance).is_some_and(|h| std::ptr::eq(Arc::as_ptr(h), self)) {
            holds.remove(&self.instance);
        }
        self.released.send_replace(true);
    }

    /// Holds a listing of `instance` while a hold is installed.
    async fn wait(instance: &str) {
        let Some(hold) = listing_holds().get(instance).cloned() else { return };
        let mut released = hold.released.subscribe();
        hold.held.add_permits(1);
        let _ = released.wait_for(|r| *r).await;
    }
}

impl Drop for ListingHold {
    fn drop(&mut self) {
        self.released.send_replace(true);
    }
}

/// Builds a sandbox connector instance.
pub fn build(instance: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
    let world = shared_world(&instance);
    let mut c = SandboxConnector::new(instance, SandboxSettings::from_params(params));
    c.world = world;
    Ok(Arc::new(c))
}

/// Builds a sandbox connector instance whose world lives in `store`.
pub fn build_persistent(
    instance: InstanceName,
    params: &ParamValues,
    store: Arc<dyn WorldStore>,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let mut c = SandboxConnector::new(instance, SandboxSettings::from_params(params));
    c.persist = Some(store);
    Ok(Arc::new(c))
}

impl SandboxConnector {
    /// A new, empty simulated cloud.
    pub fn new(instance: InstanceName, settings: SandboxSettings) -> Self {
        let gate = CallGate::new(settings.workers, CallPolicy { max_attempts: 1, ..CallPolicy::default() }).for_instance(&instance);
        Self { instance, settings, gate, world: Arc::new(Mutex::new(World::default())), persist: None }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances timed transitions.
    fn tick(&self, w: &mut World) {
        let now = now_ms();
        let delay = i64::try_from(self.settings.boot_delay.as_millis()).unwrap_or(i64::MAX);
        for s in w.vms.values_mut() {
            if now.saturating_sub(s.changed_ms) < delay {
                continue;
            }
            let next = match s.vm.state {
                VmState::Pending => VmState::Running,
                VmState::Stopping => VmState::Stopped,
                VmState::ShuttingDown => VmState::Terminated,
                _ => continue,
            };
            s.vm.state = next;
            s.changed_ms = now;
            if next == VmState::Terminated || next == VmState::Stopped {
                s.vm.public_ip = None;
            }
            if next == VmState::Terminated {
                s.vm.private_ip = None;
            }
        }
        // A terminated VM keeps no address and no volume.
        let gone: Vec<String> = w.vms.iter().filter(|(_, s)| s.vm.state == VmState::Terminated).map(|(id, _)| id.clone()).collect();
        for a in w.addresses.values_mut() {
            if a.info.instance_id.as_ref().is_some_and(|i| gone.contains(i)) {
                a.info.instance_id = None;
                a.info.association_id = None;
                a.info.private_ip = None;
            }
        }
        for v in w.volumes.values_mut() {
            let before = v.info.attachments.len();
            v.info.attachments.retain(|a| !gone.contains(&a.instance_id));
            if before != v.info.attachments.len() && v.info.attachments.is_empty() {
                v.info.state = VolumeState::Available;
            }
        }
        for v in w.volumes.values_mut() {
            if now.saturating_sub(v.changed_ms) < delay {
                continue;
            }
            if v.info.state == VolumeState::Creating {
                v.info.state = VolumeState::Available;
            }
            for a in &mut v.info.attachments {
                if a.state == "attaching" {
                    a.state = "attached".into();
                }
            }
            if v.info.attachments.iter().any(|a| a.state == "detaching") {
                v.info.attachments.retain(|a| a.state != "detaching");
                if v.info.attachments.is_empty() {
                    v.info.state = VolumeState::Available;
                }
            }
        }
    }

    async fn enter<T: Send>(
        &self,
        creds: &Credentials,
        f: impl FnOnce(&mut World, &str) -> Result<T, ConnectorError> + Send,
    ) -> Result<T, ConnectorError> {
        check_creds(creds)?;
        let latency = self.settings.api_latency;
        let cell = Mutex::new(Some(f));
        self.gate
            .call("sandbox", || {
                let taken = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
                async move {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    let f = taken.ok_or_else(|| ConnectorError::Transport { message: "sandbox call retried".into() })?;
                    match &self.persist {
                        None => {
                            let mut w = self.world();
                            self.tick(&mut w);
                            f(&mut w, &creds.access_key_id)
                        }
                        Some(store) => self.enter_stored(store.as_ref(), &creds.access_key_id, f).await,
                    }
                }
            })
            .await
    }

    /// Runs `f` on the world kept in `store`, in its transaction.
    async fn enter_stored<T: Send>(
        &self,
        store: &dyn WorldStore,
        account: &str,
        f: impl FnOnce(&mut World, &str) -> Result<T, ConnectorError> + Send,
    ) -> Result<T, ConnectorError> {
        let mut out: Option<Result<T, ConnectorError>> = None;
        let slot = &mut out;
        let unreadable = |e: serde_json::Error| ConnectorError::Cloud {
            code: "SandboxStateUnreadable".into(),
            message: format!("the sandbox '{}' kept in the database cannot be read ({e}); nothing was changed", self.instance),
        };
        store
            .update(
                self.instance.as_str(),
                Box::new(move |stored: Option<&[u8]>| {
                    let mut w: World = match stored.map(serde_json::from_slice).transpose() {
                        Ok(w) => w.unwrap_or_default(),
                        Err(e) => {
                            *slot = Some(Err(unreadable(e)));
                            return None;
                        }
                    };
                    self.tick(&mut w);
                    let r = f(&mut w, account);
                    let bytes = serde_json::to_vec(&w);
                    *slot = Some(r);
                    match bytes {
                        Ok(b) if Some(b.as_slice()) != stored => Some(b),
                        _ => None,
                    }
                }),
            )
            .await
            .map_err(|e| match e {
                WorldStoreError::Unavailable(message) => ConnectorError::Cloud {
                    code: DATABASE_UNAVAILABLE_CODE.into(),
                    message: format!(
                        "the database keeping the sandbox '{}' is unavailable; nothing was changed ({message})",
                        self.instance
                    ),
                },
                WorldStoreError::Failed(message) => ConnectorError::Transport { message: format!("sandbox state: {message}") },
            })?;
        out.unwrap_or_else(|| Err(ConnectorError::Transport { message: "sandbox state: not run".into() }))
    }

    fn owned<'w>(w: &'w mut World, account: &str, id: &str) -> Result<&'w mut SimVm, ConnectorError> {
        match w.vms.get_mut(id) {
            Some(s) if s.account == account => Ok(s),
            _ => Err(ConnectorError::NotFound {
                code: "InvalidInstanceID.NotFound".into(),
                message: format!("The instance ID '{id}' does not exist"),
            }),
        }
    }

    fn transition(
        &self,
        creds: &Credentials,
        ids: &[String],
        f: fn(VmState) -> Result<Option<VmState>, String>,
    ) -> impl std::future::Future<Output = Result<Vec<StateChange>, ConnectorError>> + '_ {
        let ids = ids.to_vec();
        let creds = creds.clone();
        async move {
            self.enter(&creds, move |w, acct| {
                for id in &ids {
                    let s = Self::owned(w, acct, id)?;
                    f(s.vm.state).map_err(|m| ConnectorError::InvalidRequest {
                        code: "IncorrectInstanceState".into(),
                        message: format!("{id}: {m}"),
                    })?;
                }
                let now = now_ms();
                let mut out = Vec::new();
                for id in &ids {
                    let s = Self::owned(w, acct, id)?;
                    let previous = s.vm.state;
                    if let Ok(Some(next)) = f(previous) {
                        s.vm.state = next;
                        s.changed_ms = now;
                    }
                    out.push(StateChange { id: id.clone(), previous, current: s.vm.state });
                }
                Ok(out)
            })
            .await
        }
    }
}

fn check_creds(creds: &Credentials) -> Result<(), ConnectorError> {
    if creds.access_key_id.trim().is_empty() || creds.secret_access_key.is_empty() {
        return Err(ConnectorError::Auth {
            code: "AuthFailure".into(),
            message: "sandbox credentials need a non-empty access key id and secret".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl Connector for SandboxConnector {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sandbox
    }

    fn instance(&self) -> &InstanceName {
        &self.instance
    }

    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        self.enter(creds, |_, acct| Ok(CredentialCheck { account: Some(acct.to_string()), message: "sandbox account ready".into() })).await
    }

    async fn run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        let fail = self.settings.failure_rate > 0.0 && rand::thread_rng().gen_bool(self.settings.failure_rate.clamp(0.0, 1.0));
        let (public_ips, capacity, keep_tags) = (self.settings.public_ips, self.settings.capacity, self.settings.keep_tags);
        let instance = self.instance.to_string();
        self.enter(creds, move |w, acct| {
            if req.count == 0 {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidParameterValue".into(),
                    message: "count must be at least 1".into(),
                });
            }
            if !req.client_token.is_empty() {
                if let Some(ids) = w.tokens.get(&token_key(acct, &req.client_token)) {
                    return Ok(ids.iter().filter_map(|id| w.vms.get(id).map(|s| s.vm.clone())).collect());
                }
            }
            if !IMAGES.iter().any(|(id, _)| *id == req.image_id) {
                return Err(ConnectorError::NotFound {
                    code: "InvalidAMIID.NotFound".into(),
                    message: format!("The image id '[{}]' does not exist", req.image_id),
                });
            }
            if !INSTANCE_TYPES.iter().any(|(t, _, _)| *t == req.instance_type) {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidParameterValue".into(),
                    message: format!("Invalid value '{}' for InstanceType.", req.instance_type),
                });
            }
            if let Some(k) = &req.key_name {
                if !w.keys.get(acct).is_some_and(|m| m.contains_key(k)) {
                    return Err(ConnectorError::NotFound {
                        code: "InvalidKeyPair.NotFound".into(),
                        message: format!("The key pair '{k}' does not exist"),
                    });
                }
            }
            if fail {
                return Err(ConnectorError::Capacity {
                    code: "InsufficientInstanceCapacity".into(),
                    message: format!("We currently do not have sufficient {} capacity in sandbox '{instance}'.", req.instance_type),
                });
            }
            if let Some(cap) = capacity {
                let live = w.vms.values().filter(|s| s.vm.state != VmState::Terminated).count();
                if live + req.count as usize > cap {
                    return Err(ConnectorError::Capacity {
                        code: "InsufficientInstanceCapacity".into(),
                        message: format!("sandbox '{instance}' is full ({live} of {cap} VMs live, {} requested)", req.count),
                    });
                }
            }
            let now = now_ms();
            let mut out = Vec::new();
            for _ in 0..req.count {
                w.next += 1;
                let n = w.next;
                let id = format!("i-{:017x}", n ^ 0x5a5a_0000_0000);
                let vm = Vm {
                    id: id.clone(),
                    state: VmState::Pending,
                    image_id: req.image_id.clone(),
                    instance_type: req.instance_type.clone(),
                    private_ip: Some(format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)),
                    public_ip: public_ips.then(|| format!("203.0.{}.{}", 113 + ((n >> 8) & 0x7f), n & 0xff)),
                    key_name: req.key_name.clone(),
                    launch_time: Some(Utc::now()),
                    client_token: (!req.client_token.is_empty()).then(|| req.client_token.clone()),
                    tags: if keep_tags { req.tags.clone() } else { Vec::new() },
                };
                w.vms.insert(id.clone(), SimVm { vm: vm.clone(), account: acct.to_string(), changed_ms: now });
                w.order.push(id);
                out.push(vm);
            }
            if !req.client_token.is_empty() {
                w.tokens.insert(token_key(acct, &req.client_token), out.iter().map(|v| v.id.clone()).collect());
            }
            Ok(out)
        })
        .await
    }

    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        let seen = self
            .enter(creds, |w, acct| {
                for id in &filter.ids {
                    Self::owned(w, acct, id)?;
                }
                Ok(w.order
                    .iter()
                    .filter_map(|id| w.vms.get(id))
                    .filter(|s| s.account == acct && filter.matches(&s.vm))
                    .map(|s| s.vm.clone())
                    .collect())
            })
            .await;
        ListingHold::wait(self.instance.as_str()).await;
        seen
    }

    async fn start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Stopped => Ok(Some(VmState::Pending)),
            VmState::Pending | VmState::Running => Ok(None),
            other => Err(format!("cannot start an instance that is {other}")),
        })
        .await
    }

    async fn stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Running | VmState::Pending => Ok(Some(VmState::Stopping)),
            VmState::Stopping | VmState::Stopped => Ok(None),
            other => Err(format!("cannot stop an instance that is {other}")),
        })
        .await
    }

    async fn reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Running => Ok(None),
            other => Err(format!("cannot reboot an instance that is {other}")),
        })
        .await
        .map(|_| ())
    }

    async fn terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.transition(creds, ids, |s| match s {
            VmState::Terminated | VmState::ShuttingDown => Ok(None),
            _ => Ok(Some(VmState::ShuttingDown)),
        })
        .await
    }

    async fn allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        self.enter(creds, |w, acct| {
            if w.addresses.values().filter(|a| a.account == acct).count() >= MAX_ADDRESSES {
                return Err(ConnectorError::Limit {
                    code: "AddressLimitExceeded".into(),
                    message: format!("The maximum number of addresses has been reached ({MAX_ADDRESSES})."),
                });
            }
            w.next += 1;
            let n = w.next;
            let info = AddressInfo {
                public_ip: format!("198.51.{}.{}", 100 + ((n >> 8) & 0x7f), n & 0xff),
                allocation_id: format!("eipalloc-{:017x}", n ^ 0xa11c_0000_0000),
                instance_id: None,
                association_id: None,
                private_ip: None,
            };
            w.addresses.insert(info.allocation_id.clone(), SimAddress { info: info.clone(), account: acct.to_string() });
            Ok(info)
        })
        .await
    }

    async fn associate_address(&self, creds: &Credentials, allocation_id: &str, instance_id: &str) -> Result<String, ConnectorError> {
        self.enter(creds, |w, acct| {
            let current = w.address(acct, allocation_id)?.info.clone();
            let private_ip = w.usable_vm(acct, instance_id)?.vm.private_ip.clone();
            if let Some(other) = current.instance_id.as_deref().filter(|i| *i != instance_id) {
                return Err(err_invalid(
                    "Resource.AlreadyAssociated",
                    format!("The address with allocation id [{allocation_id}] is already associated with instance {other}"),
                ));
            }
            // The VM's previous address (another one) lets go.
            for a in w.addresses.values_mut() {
                if a.info.instance_id.as_deref() == Some(instance_id) && a.info.allocation_id != allocation_id {
                    a.info.instance_id = None;
                    a.info.association_id = None;
                    a.info.private_ip = None;
                }
            }
            w.next += 1;
            let assoc = format!("eipassoc-{:017x}", w.next ^ 0xa550_0000_0000);
            let a = w.address(acct, allocation_id)?;
            a.info.instance_id = Some(instance_id.to_string());
            a.info.association_id = Some(assoc.clone());
            a.info.private_ip = private_ip;
            let ip = a.info.public_ip.clone();
            if let Some(s) = w.vms.get_mut(instance_id) {
                s.vm.public_ip = Some(ip);
            }
            Ok(assoc)
        })
        .await
    }

    async fn disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let Some(a) = w.addresses.values_mut().find(|a| a.account == acct && a.info.association_id.as_deref() == Some(association_id))
            else {
                return Err(err_not_found(
                    "InvalidAssociationID.NotFound",
                    format!("The association ID '{association_id}' does not exist"),
                ));
            };
            let vm = a.info.instance_id.take();
            a.info.association_id = None;
            a.info.private_ip = None;
            if let Some(s) = vm.and_then(|id| w.vms.get_mut(&id)) {
                s.vm.public_ip = None;
            }
            Ok(())
        })
        .await
    }

    async fn release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let a = w.address(acct, allocation_id)?;
            if a.info.association_id.is_some() {
                return Err(err_invalid("InvalidIPAddress.InUse", format!("Address {} is in use.", a.info.public_ip)));
            }
            w.addresses.remove(allocation_id);
            Ok(())
        })
        .await
    }

    async fn describe_addresses(&self, creds: &Credentials, allocation_ids: &[String]) -> Result<Vec<AddressInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            for id in allocation_ids {
                w.address(acct, id)?;
            }
            Ok(w.addresses
                .values()
                .filter(|a| a.account == acct && (allocation_ids.is_empty() || allocation_ids.contains(&a.info.allocation_id)))
                .map(|a| a.info.clone())
                .collect())
        })
        .await
    }

    async fn create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        let zone = format!("{}a", self.instance);
        self.enter(creds, |w, acct| {
            if req.size_gib == 0 || req.size_gib > MAX_VOLUME_GIB {
                return Err(err_invalid(
                    "InvalidParameterValue",
                    format!("Volume of {}GiB is out of range 1-{MAX_VOLUME_GIB}", req.size_gib),
                ));
            }
            if req.zone != zone {
                return Err(err_invalid(
                    "InvalidParameterValue",
                    format!("Invalid availability zone: [{}]; this sandbox has one zone, {zone}", req.zone),
                ));
            }
            if let Some(t) =
                req.volume_type.as_deref().filter(|t| !matches!(*t, "standard" | "gp2" | "gp3" | "io1" | "io2" | "st1" | "sc1"))
            {
                return Err(err_invalid("InvalidParameterValue", format!("Invalid volume type: {t}")));
            }
            w.next += 1;
            let info = VolumeInfo {
                volume_id: format!("vol-{:017x}", w.next ^ 0x7010_0000_0000),
                size_gib: req.size_gib,
                zone: zone.clone(),
                state: VolumeState::Creating,
                attachments: Vec::new(),
            };
            w.volumes.insert(
                info.volume_id.clone(),
                SimVolume { info: info.clone(), account: acct.to_string(), changed_ms: now_ms(), tags: BTreeMap::new() },
            );
            Ok(info)
        })
        .await
    }

    async fn attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        self.enter(creds, |w, acct| {
            let state = w.volume(acct, volume_id)?.info.state;
            w.usable_vm(acct, instance_id)?;
            match state {
                VolumeState::Available => {}
                VolumeState::InUse => return Err(err_invalid("VolumeInUse", format!("{volume_id} is already attached to an instance"))),
                other => return Err(err_invalid("IncorrectState", format!("The volume '{volume_id}' is '{other}'"))),
            }
            if !valid_device(device) {
                return Err(err_invalid("InvalidParameterValue", format!("Value ({device}) for parameter device is invalid.")));
            }
            let taken = w.volumes.values().any(|v| v.info.attachments.iter().any(|a| a.instance_id == instance_id && a.device == device));
            if taken {
                return Err(err_invalid("InvalidParameterValue", format!("Attachment point {device} is already in use")));
            }
            let att = VolumeAttachment {
                volume_id: volume_id.to_string(),
                instance_id: instance_id.to_string(),
                device: device.to_string(),
                state: "attaching".into(),
            };
            let v = w.volume(acct, volume_id)?;
            v.info.state = VolumeState::InUse;
            v.info.attachments = vec![att.clone()];
            v.changed_ms = now_ms();
            Ok(att)
        })
        .await
    }

    async fn detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        let _ = force;
        self.enter(creds, |w, acct| {
            let v = w.volume(acct, volume_id)?;
            let Some(att) = v.info.attachments.first_mut() else {
                return Err(err_invalid("IncorrectState", format!("Volume '{volume_id}' is in the 'available' state.")));
            };
            if instance_id.is_some_and(|i| i != att.instance_id) {
                return Err(err_not_found(
                    "InvalidAttachment.NotFound",
                    format!("Volume '{volume_id}' is not attached to '{}'", instance_id.unwrap_or_default()),
                ));
            }
            att.state = "detaching".into();
            let out = att.clone();
            v.changed_ms = now_ms();
            Ok(out)
        })
        .await
    }

    async fn delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let v = w.volume(acct, volume_id)?;
            match v.info.state {
                VolumeState::Available | VolumeState::Error | VolumeState::Creating => {}
                VolumeState::InUse => return Err(err_invalid("VolumeInUse", format!("Volume {volume_id} is currently attached"))),
                other => return Err(err_invalid("IncorrectState", format!("The volume '{volume_id}' is '{other}'"))),
            }
            w.volumes.remove(volume_id);
            Ok(())
        })
        .await
    }

    async fn describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            for id in volume_ids {
                w.volume(acct, id)?;
            }
            Ok(w.volumes
                .values()
                .filter(|v| v.account == acct && (volume_ids.is_empty() || volume_ids.contains(&v.info.volume_id)))
                .map(|v| v.info.clone())
                .collect())
        })
        .await
    }

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        if !self.settings.keep_tags {
            return Err(ConnectorError::Unsupported { operation: "CreateTags".into() });
        }
        self.enter(creds, |w, acct| {
            let (volumes, ids) = split_volumes(ids);
            for id in &volumes {
                w.volume(acct, id)?;
            }
            for id in &ids {
                Self::owned(w, acct, id)?;
            }
            for v in &volumes {
                let tagged = &mut w.volume(acct, v)?.tags;
                for (k, val) in tags {
                    tagged.insert(k.clone(), val.clone());
                }
            }
            for id in &ids {
                let vm = &mut Self::owned(w, acct, id)?.vm;
                for (k, v) in tags {
                    vm.tags.retain(|(key, _)| key != k);
                    vm.tags.push((k.clone(), v.clone()));
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        if !self.settings.keep_tags {
            return Err(ConnectorError::Unsupported { operation: "DeleteTags".into() });
        }
        self.enter(creds, |w, acct| {
            let (volumes, ids) = split_volumes(ids);
            for id in &volumes {
                w.volume(acct, id)?;
            }
            for id in &ids {
                Self::owned(w, acct, id)?;
            }
            for v in &volumes {
                w.volume(acct, v)?.tags.retain(|k, _| !keys.contains(k));
            }
            for id in &ids {
                Self::owned(w, acct, id)?.vm.tags.retain(|(k, _)| !keys.contains(k));
            }
            Ok(())
        })
        .await
    }

    async fn import_key_pair(&self, creds: &Credentials, name: &str, public_key: &str) -> Result<KeyPairInfo, ConnectorError> {
        self.enter(creds, |w, acct| {
            let keys = w.keys.entry(acct.to_string()).or_default();
            if keys.contains_key(name) {
                return Err(ConnectorError::InvalidRequest {
                    code: "InvalidKeyPair.Duplicate".into(),
                    message: format!("The keypair '{name}' already exists."),
                });
            }
            let fp = fingerprint(public_key)?;
            keys.insert(name.to_string(), fp.clone());
            Ok(KeyPairInfo { name: name.to_string(), fingerprint: Some(fp) })
        })
        .await
    }

    async fn delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            if let Some(k) = w.keys.get_mut(acct) {
                k.remove(name);
            }
            Ok(())
        })
        .await
    }

    async fn list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            Ok(w.keys
                .get(acct)
                .map(|k| k.iter().map(|(n, f)| KeyPairInfo { name: n.clone(), fingerprint: Some(f.clone()) }).collect())
                .unwrap_or_default())
        })
        .await
    }

    async fn list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        self.enter(creds, |_, _| {
            Ok(IMAGES
                .iter()
                .map(|(id, name)| ImageInfo {
                    id: id.to_string(),
                    name: Some(name.to_string()),
                    description: None,
                    state: Some("available".into()),
                })
                .collect())
        })
        .await
    }

    async fn list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        self.enter(creds, |_, _| {
            Ok(INSTANCE_TYPES
                .iter()
                .map(|(n, c, m)| InstanceTypeInfo { name: n.to_string(), vcpus: Some(*c), memory_mib: Some(*m) })
                .collect())
        })
        .await
    }
}

/// A stand-in fingerprint: the key must look like an OpenSSH public key.
fn fingerprint(public_key: &str) -> Result<String, ConnectorError> {
    let mut parts = public_key.split_whitespace();
    let (Some(algo), Some(body)) = (parts.next(), parts.next()) else {
        return Err(ConnectorError::InvalidRequest {
            code: "InvalidKey.Format".into(),
            message: "Key is not in valid OpenSSH public key format".into(),
        });
    };
    if !algo.starts_with("ssh-") && !algo.starts_with("ecdsa-") || body.len() < 16 {
        return Err(ConnectorError::InvalidRequest {
            code: "InvalidKey.Format".into(),
            message: "Key is not in valid OpenSSH public key format".into(),
        });
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let bytes = h.to_be_bytes();
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0uK1cZ5Yx user@host";

    fn sandbox(delay_ms: u64) -> SandboxConnector {
        SandboxConnector::new(
            InstanceName::parse("sb").unwrap(),
            SandboxSettings {
                boot_delay: Duration::from_millis(delay_ms),
                failure_rate: 0.0,
                capacity: None,
                public_ips: true,
                keep_tags: true,
                api_latency: Duration::ZERO,
                workers: 4,
            },
        )
    }

    fn creds(a: &str) -> Credentials {
        Credentials::new(a, "secret")
    }

    fn req(count: u32, token: &str) -> RunRequest {
        RunRequest {
            image_id: "ami-sandbox-debian-12".into(),
            instance_type: "t2.micro".into(),
            count,
            tags: vec![("cloudbroker:launch".into(), token.into())],
            client_token: token.into(),
            ..RunRequest::default()
        }
    }

    #[tokio::test]
    async fn full_lifecycle() {
        let sb = sandbox(30);
        let c = creds("alice");
        assert!(sb.validate_credentials(&c).await.is_ok());
        assert!(matches!(sb.validate_credentials(&Credentials::new("a", "")).await, Err(ConnectorError::Auth { .. })));

        sb.import_key_pair(&c, "k1", KEY).await.unwrap();
        let mut r = req(3, "tok-1");
        r.key_name = Some("k1".into());
        let vms = sb.run_instances(&c, &r).await.unwrap();
        assert_eq!(vms.len(), 3);
        assert!(vms.iter().all(|v| v.state == VmState::Pending && v.private_ip.is_some() && v.public_ip.is_some()));
        let ips: std::collections::BTreeSet<_> = vms.iter().map(|v| v.private_ip.clone()).collect();
        assert_eq!(ips.len(), 3, "addresses are unique");

        // Idempotent on the client token.
        let again = sb.run_instances(&c, &r).await.unwrap();
        assert_eq!(again.iter().map(|v| &v.id).collect::<Vec<_>>(), vms.iter().map(|v| &v.id).collect::<Vec<_>>());
        assert_eq!(sb.describe_instances(&c, &DescribeFilter::default()).await.unwrap().len(), 3);

        tokio::time::sleep(Duration::from_millis(50)).await;
        let ids: Vec<String> = vms.iter().map(|v| v.id.clone()).collect();
        let d = sb.describe_instances(&c, &DescribeFilter::tag("cloudbroker:launch", "tok-1")).await.unwrap();
        assert!(d.iter().all(|v| v.state == VmState::Running), "{d:?}");

        sb.reboot_instances(&c, &ids[..1]).await.unwrap();
        let ch = sb.stop_instances(&c, &ids[..1]).await.unwrap();
        assert_eq!((ch[0].previous, ch[0].current), (VmState::Running, VmState::Stopping));
        assert!(matches!(sb.reboot_instances(&c, &ids[..1]).await, Err(ConnectorError::InvalidRequest { .. })));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let d = sb.describe_instances(&c, &DescribeFilter::ids(&ids[..1])).await.unwrap();
        assert_eq!(d[0].state, VmState::Stopped);
        assert_eq!(d[0].public_ip, None);
        let ch = sb.start_instances(&c, &ids[..1]).await.unwrap();
        assert_eq!(ch[0].current, VmState::Pending);

        let ch = sb.terminate_instances(&c, &ids).await.unwrap();
        assert!(ch.iter().all(|c| c.current == VmState::ShuttingDown));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let d = sb.describe_instances(&c, &DescribeFilter::ids(&ids)).await.unwrap();
        assert!(d.iter().all(|v| v.state == VmState::Terminated && v.private_ip.is_none()));
        assert!(matches!(sb.start_instances(&c, &ids[..1]).await, Err(ConnectorError::InvalidRequest { .. })));

        assert_eq!(sb.list_key_pairs(&c).await.unwrap().len(), 1);
        sb.delete_key_pair(&c, "k1").await.unwrap();
        assert!(sb.list_key_pairs(&c).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn addresses_and_volumes_follow_ec2_rules() {
        let sb = sandbox(0);
        let (a, b) = (creds("alice"), creds("bob"));
        let vm = sb.run_instances(&a, &req(1, "v")).await.unwrap().remove(0);
        let addr = sb.allocate_address(&a).await.unwrap();
        assert!(addr.public_ip.starts_with("198.51.") && addr.allocation_id.starts_with("eipalloc-"), "{addr:?}");
        // A terminated VM takes no address.
        let dead = sb.run_instances(&a, &req(1, "dead")).await.unwrap().remove(0);
        sb.terminate_instances(&a, std::slice::from_ref(&dead.id)).await.unwrap();
        let e = sb.associate_address(&a, &addr.allocation_id, &dead.id).await.unwrap_err();
        assert_eq!(e.code(), Some("IncorrectInstanceState"), "{e}");
        let assoc = sb.associate_address(&a, &addr.allocation_id, &vm.id).await.unwrap();
        let d = sb.describe_addresses(&a, std::slice::from_ref(&addr.allocation_id)).await.unwrap();
        assert_eq!((d[0].instance_id.as_deref(), d[0].association_id.as_deref()), (Some(vm.id.as_str()), Some(assoc.as_str())));
        assert_eq!(
            sb.describe_instances(&a, &DescribeFilter::ids(std::slice::from_ref(&vm.id))).await.unwrap()[0].public_ip,
            Some(addr.public_ip.clone())
        );
        // Another account sees none of it.
        assert_eq!(sb.describe_addresses(&b, &[]).await.unwrap(), vec![]);
        assert_eq!(sb.release_address(&b, &addr.allocation_id).await.unwrap_err().code(), Some("InvalidAllocationID.NotFound"));
        let bvm = sb.run_instances(&b, &req(1, "w")).await.unwrap().remove(0);
        let baddr = sb.allocate_address(&b).await.unwrap();
        assert_eq!(sb.associate_address(&b, &baddr.allocation_id, &vm.id).await.unwrap_err().code(), Some("InvalidInstanceID.NotFound"));
        // One VM at a time.
        let _ = bvm;
        let vm2 = sb.run_instances(&a, &req(1, "v2")).await.unwrap().remove(0);
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        let e = sb.associate_address(&a, &addr.allocation_id, &vm2.id).await.unwrap_err();
        assert_eq!(e.code(), Some("Resource.AlreadyAssociated"), "{e}");
        assert_eq!(sb.release_address(&a, &addr.allocation_id).await.unwrap_err().code(), Some("InvalidIPAddress.InUse"));
        sb.disassociate_address(&a, &assoc).await.unwrap();
        assert_eq!(sb.disassociate_address(&a, &assoc).await.unwrap_err().code(), Some("InvalidAssociationID.NotFound"));
        sb.release_address(&a, &addr.allocation_id).await.unwrap();
        assert!(sb.describe_addresses(&a, &[]).await.unwrap().is_empty());
        for _ in 0..MAX_ADDRESSES {
            sb.allocate_address(&a).await.unwrap();
        }
        assert!(matches!(sb.allocate_address(&a).await, Err(ConnectorError::Limit { .. })));

        // Volumes.
        let zone = "sba".to_string();
        let bad = CreateVolumeRequest { size_gib: 0, zone: zone.clone(), volume_type: None };
        assert_eq!(sb.create_volume(&a, &bad).await.unwrap_err().code(), Some("InvalidParameterValue"));
        let elsewhere = CreateVolumeRequest { size_gib: 1, zone: "us-east-1a".into(), volume_type: None };
        assert_eq!(sb.create_volume(&a, &elsewhere).await.unwrap_err().code(), Some("InvalidParameterValue"));
        let v = sb.create_volume(&a, &CreateVolumeRequest { size_gib: 8, zone, volume_type: Some("gp3".into()) }).await.unwrap();
        assert_eq!((v.state, v.size_gib), (VolumeState::Creating, 8));
        assert_eq!(sb.describe_volumes(&a, std::slice::from_ref(&v.volume_id)).await.unwrap()[0].state, VolumeState::Available);
        assert_eq!(sb.attach_volume(&a, &v.volume_id, &vm.id, "/dev/hda").await.unwrap_err().code(), Some("InvalidParameterValue"));
        assert_eq!(sb.attach_volume(&b, &v.volume_id, &bvm.id, "/dev/sdf").await.unwrap_err().code(), Some("InvalidVolume.NotFound"));
        let att = sb.attach_volume(&a, &v.volume_id, &vm.id, "/dev/sdf").await.unwrap();
        assert_eq!(att.state, "attaching");
        let d = sb.describe_volumes(&a, &[]).await.unwrap();
        assert_eq!((d[0].state, d[0].attachments[0].state.as_str()), (VolumeState::InUse, "attached"));
        assert_eq!(sb.attach_volume(&a, &v.volume_id, &vm2.id, "/dev/sdg").await.unwrap_err().code(), Some("VolumeInUse"));
        assert_eq!(sb.delete_volume(&a, &v.volume_id).await.unwrap_err().code(), Some("VolumeInUse"));
        let v2 = sb.create_volume(&a, &CreateVolumeRequest { size_gib: 1, zone: "sba".into(), volume_type: None }).await.unwrap();
        sb.describe_volumes(&a, &[]).await.unwrap();
        let e = sb.attach_volume(&a, &v2.volume_id, &vm.id, "/dev/sdf").await.unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
        assert_eq!(sb.detach_volume(&a, &v.volume_id, Some(&vm2.id), false).await.unwrap_err().code(), Some("InvalidAttachment.NotFound"));
        sb.detach_volume(&a, &v.volume_id, Some(&vm.id), false).await.unwrap();
        assert_eq!(sb.describe_volumes(&a, std::slice::from_ref(&v.volume_id)).await.unwrap()[0].state, VolumeState::Available);
        sb.delete_volume(&a, &v.volume_id).await.unwrap();
        assert_eq!(sb.describe_volumes(&a, std::slice::from_ref(&v.volume_id)).await.unwrap_err().code(), Some("InvalidVolume.NotFound"));
        // Termination detaches.
        sb.attach_volume(&a, &v2.volume_id, &vm.id, "/dev/sdh").await.unwrap();
        sb.terminate_instances(&a, std::slice::from_ref(&vm.id)).await.unwrap();
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        let d = sb.describe_volumes(&a, std::slice::from_ref(&v2.volume_id)).await.unwrap();
        assert_eq!((d[0].state, d[0].attachments.len()), (VolumeState::Available, 0));
        // Volume tags.
        sb.create_tags(&a, std::slice::from_ref(&v2.volume_id), &[("k".into(), "v".into())]).await.unwrap();
        assert!(sb.create_tags(&b, std::slice::from_ref(&v2.volume_id), &[("k".into(), "v".into())]).await.is_err());
    }

    #[tokio::test]
    async fn accounts_are_isolated() {
        let sb = sandbox(0);
        let vms = sb.run_instances(&creds("alice"), &req(1, "t")).await.unwrap();
        assert!(sb.describe_instances(&creds("bob"), &DescribeFilter::default()).await.unwrap().is_empty());
        let e = sb.terminate_instances(&creds("bob"), &[vms[0].id.clone()]).await.unwrap_err();
        assert!(matches!(e, ConnectorError::NotFound { .. }));
        // The same token in another account is another launch.
        let other = sb.run_instances(&creds("bob"), &req(1, "t")).await.unwrap();
        assert_ne!(other[0].id, vms[0].id);
    }

    #[tokio::test]
    async fn rejects_bad_requests() {
        let sb = sandbox(0);
        let c = creds("a");
        let mut r = req(1, "x");
        r.image_id = "ami-nope".into();
        assert!(matches!(sb.run_instances(&c, &r).await, Err(ConnectorError::NotFound { code, .. }) if code == "InvalidAMIID.NotFound"));
        let mut r = req(1, "y");
        r.instance_type = "z9.huge".into();
        assert!(matches!(sb.run_instances(&c, &r).await, Err(ConnectorError::InvalidRequest { .. })));
        let mut r = req(1, "z");
        r.key_name = Some("missing".into());
        assert!(matches!(sb.run_instances(&c, &r).await, Err(ConnectorError::NotFound { .. })));
        assert!(matches!(sb.import_key_pair(&c, "k", "not a key").await, Err(ConnectorError::InvalidRequest { .. })));
        assert!(matches!(sb.describe_instances(&c, &DescribeFilter::ids(&["i-nope".into()])).await, Err(ConnectorError::NotFound { .. })));
    }

    #[tokio::test]
    async fn capacity_and_failure_rate() {
        let mut s = sandbox(0).settings;
        s.capacity = Some(2);
        let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), s.clone());
        let c = creds("a");
        sb.run_instances(&c, &req(2, "a")).await.unwrap();
        let e = sb.run_instances(&c, &req(1, "b")).await.unwrap_err();
        assert!(matches!(&e, ConnectorError::Capacity { message, .. } if message.contains("2 of 2")), "{e}");

        s.capacity = None;
        s.failure_rate = 1.0;
        let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), s);
        assert!(matches!(sb.run_instances(&c, &req(1, "c")).await, Err(ConnectorError::Capacity { .. })));
    }

    #[tokio::test]
    async fn catalogue_and_params() {
        let mut m = BTreeMap::new();
        m.insert("boot.delay.ms".to_string(), "5".to_string());
        m.insert("public.ips".to_string(), "false".to_string());
        let s = SandboxSettings::from_params(&ParamValues::new(m));
        assert_eq!(s.boot_delay, Duration::from_millis(5));
        assert!(!s.public_ips);
        assert_eq!(s.workers, 20);
        let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), s);
        let c = creds("a");
        assert_eq!(sb.list_images(&c).await.unwrap().len(), IMAGES.len());
        assert!(sb.list_instance_types(&c).await.unwrap().iter().any(|t| t.name == "t2.micro" && t.vcpus == Some(1)));
        let vms = sb.run_instances(&c, &req(1, "p")).await.unwrap();
        assert_eq!(vms[0].public_ip, None);
    }
}
