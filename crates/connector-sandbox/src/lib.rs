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
    Connector, ConnectorError, ConnectorKind, CredentialCheck, Credentials, DescribeFilter, ImageInfo, InstanceName, InstanceTypeInfo,
    KeyPairInfo, RunRequest, StateChange, Vm, VmState,
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

/// Keeps sandbox worlds outside the process (the broker's database).
#[async_trait]
pub trait WorldStore: Send + Sync {
    /// Runs `f` on the stored world of `instance` (`None` when none is
    /// stored yet) inside one transaction that excludes every other caller
    /// for this instance, on any replica; stores what `f` returns, if anything.
    async fn update<'a>(&'a self, instance: &'a str, f: WorldChange<'a>) -> Result<(), String>;
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
            .map_err(|message| ConnectorError::Transport { message: format!("sandbox state: {message}") })?;
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
        self.enter(creds, |w, acct| {
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
        .await
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

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        if !self.settings.keep_tags {
            return Err(ConnectorError::Unsupported { operation: "CreateTags".into() });
        }
        self.enter(creds, |w, acct| {
            for id in ids {
                Self::owned(w, acct, id)?;
            }
            for id in ids {
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
            for id in ids {
                Self::owned(w, acct, id)?;
            }
            for id in ids {
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
