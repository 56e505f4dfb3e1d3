//! Parameter exchange: how a deployment's VMs find each other at boot. Each
//! VM gets a credential of its own ([`Exchange::vm_token`]: `cbvm_` and an
//! HMAC of its slot under a key derived from the vault's master key, so a
//! restarted driver rebuilds the same user data without storing it; only its
//! SHA-256 is stored). Its user data ([`boot_user_data`]) writes the
//! credential and the broker's address to `/etc/cloudbroker/env`, installs
//! the client the broker serves, then runs the node's own user data.
//!
//! A credential reaches only the exchange (`/api/v1/exchange/*`), and there
//! only its own deployment: every name resolves within it
//! ([`resolve_name`]). It works while its VM lives (checked by one join on
//! every request), so it stops working when the VM ends even if the driver
//! is late to revoke it. Secret values are sealed by the vault (bound to
//! their deployment and name) and opened only for a VM that asks.

use crate::deployments::{AppDoc, ParamSpec, BUILTIN_OUTPUTS};
use crate::domain::{DeploymentId, VmId};
use crate::error::{ServiceError, ServiceResult};
use crate::vault::{vault_err, Vault};
use base64::Engine;
use cloudbroker_store::exchange::ParamRow;
use cloudbroker_store::Store;
use serde::Serialize;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every VM credential starts with (a user's API token never does).
pub const VM_TOKEN_PREFIX: &str = "cbvm_";
/// The clouds' user data limit: the boot script with the node's user data must fit.
pub const MAX_BOOT_USER_DATA: usize = 16 * 1024;
/// The longest a `get` waits in one request.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest value a VM may set.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// The longest abort message.
pub const MAX_ABORT_MESSAGE: usize = 1000;
/// The key derivation purpose of VM credentials.
const TOKEN_KEY_PURPOSE: &str = "deployment-vm-tokens";

/// The SHA-256 of a credential, as stored (hex).
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A VM's credential from the derived key: `cbvm_` + base64url(HMAC-SHA256(key, "dep/node/idx/attempt")).
pub fn vm_token_with(key: &[u8; 32], deployment: &str, node: &str, idx: i64, attempt: i64) -> String {
    use hmac::digest::KeyInit;
    use hmac::{Hmac, Mac};
    // HMAC pads a key shorter than the hash's block (64 bytes) with zeros: the same MAC as the 32-byte key.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new(&block.into());
    mac.update(format!("{deployment}/{node}/{idx}/{attempt}").as_bytes());
    format!("{VM_TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// What a VM's boot script is made of.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// Where the VM reaches the broker: `public_url`, else the listen address.
    pub broker_url: String,
    pub token: String,
    pub deployment: DeploymentId,
    pub node: String,
    pub idx: i64,
    /// The node's user data template (rendered by [`boot_user_data`]).
    pub user_data: Option<String>,
}

/// A template with `{{deployment}}`, `{{node}}`, `{{index}}` and
/// `{{broker_url}}` (spaces inside the braces allowed) replaced.
pub fn render_template(template: &str, b: &BootInfo) -> String {
    let mut out = template.to_string();
    let idx = b.idx.to_string();
    for (key, value) in
        [("deployment", b.deployment.as_str()), ("node", b.node.as_str()), ("index", idx.as_str()), ("broker_url", b.broker_url.as_str())]
    {
        for pattern in [format!("{{{{{key}}}}}"), format!("{{{{ {key} }}}}")] {
            out = out.replace(&pattern, value);
        }
    }
    out
}

/// `s` single-quoted for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A heredoc delimiter (or MIME boundary) starting with `base` that no line of `body` contains.
fn unused_marker(base: &str, body: &str) -> String {
    (0..)
        .map(|n| if n == 0 { base.to_string() } else { format!("{base}_{n}") })
        .find(|m| !body.contains(m.as_str()))
        .unwrap_or_else(|| base.to_string())
}

/// The part of the boot script that sets up the exchange.
fn setup_script(b: &BootInfo) -> String {
    let env = [
        ("CLOUDBROKER_URL", b.broker_url.trim_end_matches('/').to_string()),
        ("CLOUDBROKER_TOKEN", b.token.clone()),
        ("CLOUDBROKER_DEPLOYMENT", b.deployment.as_str().to_string()),
        ("CLOUDBROKER_NODE", b.node.clone()),
        ("CLOUDBROKER_INDEX", b.idx.to_string()),
    ];
    let mut lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", sh_quote(v))).collect();
    lines.push(format!("export {}", env.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" ")));
    let env_text = lines.join("\n");
    let eof = unused_marker("CLOUDBROKER_ENV", &env_text);
    format!(
        r#"#!/bin/sh
# cloudbroker: deployment {dep}, node {node}, VM {idx}. Written by the broker:
# sets up the parameter exchange (cloudbroker-client), then runs the node's user data.
umask 077
mkdir -p /etc/cloudbroker
cat > /etc/cloudbroker/env <<'{eof}'
{env_text}
{eof}
chmod 600 /etc/cloudbroker/env
. /etc/cloudbroker/env
mkdir -p /usr/local/bin
n=0
until curl -fsS -o /usr/local/bin/cloudbroker-client.new "$CLOUDBROKER_URL/client/cloudbroker-client.sh"; do
    n=$((n + 1))
    if [ "$n" -ge 60 ]; then echo "cloudbroker: cannot fetch the client from $CLOUDBROKER_URL" >&2; break; fi
    sleep 5
done
if [ -s /usr/local/bin/cloudbroker-client.new ]; then
    chmod 755 /usr/local/bin/cloudbroker-client.new
    mv /usr/local/bin/cloudbroker-client.new /usr/local/bin/cloudbroker-client
fi
PATH="/usr/local/bin:$PATH"
export PATH
"#,
        dep = b.deployment.as_str(),
        node = b.node,
        idx = b.idx,
    )
}

/// The user data of a deployment's VM: a `#!/bin/sh` script that writes
/// `/etc/cloudbroker/env` (mode 600), installs the client from
/// `$CLOUDBROKER_URL/client/cloudbroker-client.sh` as
/// `/usr/local/bin/cloudbroker-client`, then runs the node's user data (a
/// script: with its own `#!`, else with sh). A `#cloud-config` user data is
/// put with the script in a MIME multipart document instead, as cloud-init
/// takes it. Refused (naming the node) over the clouds' 16 KiB limit.
pub fn boot_user_data(b: &BootInfo) -> ServiceResult<String> {
    let setup = setup_script(b);
    let user = b.user_data.as_deref().map(|t| render_template(t, b)).filter(|u| !u.trim().is_empty());
    let out = match user {
        None => setup,
        Some(u) if u.trim_start().starts_with("#cloud-config") => {
            let boundary = unused_marker("==cloudbroker-boundary==", &format!("{setup}{u}"));
            let part = |kind: &str, file: &str, body: &str| {
                format!(
                    "--{boundary}\nContent-Type: {kind}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\
                     Content-Disposition: attachment; filename=\"{file}\"\n\n{body}{nl}",
                    nl = if body.ends_with('\n') { "" } else { "\n" }
                )
            };
            format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n{}{}--{boundary}--\n",
                part("text/cloud-config", "cloud-config.txt", &u),
                part("text/x-shellscript", "cloudbroker-boot.sh", &setup),
            )
        }
        Some(u) => {
            let eof = unused_marker("CLOUDBROKER_USER_DATA", &u);
            let nl = if u.ends_with('\n') { "" } else { "\n" };
            format!(
                "{setup}cat > /etc/cloudbroker/user-data <<'{eof}'\n{u}{nl}{eof}\nchmod 700 /etc/cloudbroker/user-data\numask 022\n\
                 if [ \"$(head -c 2 /etc/cloudbroker/user-data)\" = '#!' ]; then exec /etc/cloudbroker/user-data; fi\n\
                 exec sh /etc/cloudbroker/user-data\n"
            )
        }
    };
    if out.len() > MAX_BOOT_USER_DATA {
        return Err(ServiceError::invalid_field(
            "user_data",
            format!(
                "nodes.{}.user_data: with the broker's boot script the VM's user data is {} bytes, over the clouds' limit of {MAX_BOOT_USER_DATA}; shorten it",
                b.node,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Where a value comes from, tried in order: the first that has one wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A stored parameter (`input.x`, `web.input.x`, `db.1.port`).
    Param(String),
    /// The output of the lowest-index live VM of a node that has published it.
    NodeOutput { node: String, output: String },
    /// A default from the document.
    Value(String),
}

/// What a name resolves to for one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub steps: Vec<Step>,
    /// The value is secret (an input or output marked so).
    pub secret: bool,
}

fn find<'a>(specs: &'a [ParamSpec], name: &str) -> Option<&'a ParamSpec> {
    specs.iter().find(|p| p.name == name)
}

/// Resolves `name` as asked by VM `idx` of `node`, within its deployment's
/// document: an input of the VM's node (mapped: the mapped node's output;
/// else the value given at deploy `<node>.input.<name>`, else its default,
/// else the deployment input of that name); an output of its own node (its
/// own value); a deployment input; `<node>.<output>` (the lowest-index live
/// VM's value); `<node>.<idx>.<output>`. The error names what is unknown.
pub fn resolve_name(doc: &AppDoc, node: &str, idx: i64, name: &str) -> Result<Resolved, String> {
    let shown: String = name.chars().take(100).collect();
    let Some(spec) = doc.nodes.get(node) else { return Err(format!("node '{node}' is not in the application")) };
    let output_of = |n: &str, out: &str| -> Result<bool, String> {
        let Some(s) = doc.nodes.get(n) else { return Err(format!("unknown parameter '{shown}': no node '{n}'")) };
        if BUILTIN_OUTPUTS.contains(&out) {
            return Ok(false);
        }
        match find(&s.outputs, out) {
            Some(p) => Ok(p.secret),
            None => Err(format!("unknown parameter '{shown}': node '{n}' has no output '{out}'")),
        }
    };
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [one] => {
            if let Some(input) = find(&spec.inputs, one) {
                if let Some((from, out)) = doc.mapping_of(node, one) {
                    let secret = input.secret || output_of(from, out)?;
                    return Ok(Resolved { steps: vec![Step::NodeOutput { node: from.into(), output: out.into() }], secret });
                }
                let mut steps = vec![Step::Param(format!("{node}.input.{one}"))];
                if let Some(d) = &input.default {
                    steps.push(Step::Value(d.clone()));
                }
                let mut secret = input.secret;
                if let Some(dep) = find(&doc.inputs, one) {
                    steps.push(Step::Param(format!("input.{one}")));
                    steps.extend(dep.default.clone().map(Step::Value));
                    secret |= dep.secret;
                }
                return Ok(Resolved { steps, secret });
            }
            if BUILTIN_OUTPUTS.contains(one) || find(&spec.outputs, one).is_some() {
                let secret = find(&spec.outputs, one).is_some_and(|p| p.secret);
                return Ok(Resolved { steps: vec![Step::Param(format!("{node}.{idx}.{one}"))], secret });
            }
            if let Some(dep) = find(&doc.inputs, one) {
                let mut steps = vec![Step::Param(format!("input.{one}"))];
                steps.extend(dep.default.clone().map(Step::Value));
                return Ok(Resolved { steps, secret: dep.secret });
            }
            Err(format!(
                "unknown parameter '{shown}': not an input or output of node '{node}' nor an input of the deployment \
                 (other nodes' outputs are NODE.OUTPUT or NODE.INDEX.OUTPUT)"
            ))
        }
        [n, out] => {
            let secret = output_of(n, out)?;
            Ok(Resolved { steps: vec![Step::NodeOutput { node: n.to_string(), output: out.to_string() }], secret })
        }
        [n, i, out] => {
            let secret = output_of(n, out)?;
            let i: i64 = i
                .parse::<i64>()
                .ok()
                .filter(|v| (1..=i64::from(super::app::MAX_MULTIPLICITY)).contains(v) && v.to_string() == *i)
                .ok_or_else(|| format!("unknown parameter '{shown}': '{i}' is not a VM index (1 to {})", super::app::MAX_MULTIPLICITY))?;
            Ok(Resolved { steps: vec![Step::Param(format!("{n}.{i}.{out}"))], secret })
        }
        _ => Err(format!("unknown parameter '{shown}': a name is NAME, NODE.OUTPUT or NODE.INDEX.OUTPUT")),
    }
}

/// The VM a request of the exchange comes from (its credential was live).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmCaller {
    pub deployment: DeploymentId,
    pub node: String,
    pub idx: i64,
    pub attempt: i64,
    pub vm_id: VmId,
}

impl VmCaller {
    /// How a value it set is credited (`web.2 (vm-...)`).
    fn set_by(&self) -> String {
        format!("{}.{} ({})", self.node, self.idx, self.vm_id)
    }
}

/// A parameter as `self` lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamInfo {
    pub name: String,
    pub description: String,
    pub secret: bool,
    /// Inputs: the output it is mapped from (`db.hostname`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped_from: Option<String>,
    /// Outputs: published by the broker (`hostname`, `instanceid`).
    pub builtin: bool,
}

/// What a VM learns about itself (`GET /api/v1/exchange/self`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SelfInfo {
    pub deployment: String,
    pub node: String,
    pub index: i64,
    pub attempt: i64,
    pub vm_id: String,
    pub application: String,
    pub version: i64,
    /// The node's inputs, then the deployment's (`input.NAME` is not needed: ask for NAME).
    pub inputs: Vec<ParamInfo>,
    pub deployment_inputs: Vec<ParamInfo>,
    pub outputs: Vec<ParamInfo>,
}

/// The exchange service (`broker.exchange`).
pub struct Exchange {
    store: Store,
    vault: Arc<Vault>,
    /// Where VMs reach the broker (`public_url`, else `http://<listen>`).
    pub broker_url: String,
    /// Woken when a parameter is set on this replica: long polls here answer at once.
    changed: tokio::sync::Notify,
    /// Notified on a VM's `ready` and `abort`: the deployments driver waits on it.
    pub kick: Arc<tokio::sync::Notify>,
    /// How often a long poll reads the database (a value set on another replica).
    pub poll_every: Duration,
    /// Parsed documents by (application, version): a version never changes.
    docs: Mutex<HashMap<(String, i64), Arc<AppDoc>>>,
}

/// Sealed values are bound to their deployment and name.
fn param_aad(deployment: &str, name: &str) -> String {
    format!("cloudbroker/v1/deployment-param/{deployment}/{name}")
}

impl Exchange {
    pub fn new(store: Store, vault: Arc<Vault>, broker_url: String) -> Self {
        Self {
            store,
            vault,
            broker_url,
            changed: tokio::sync::Notify::new(),
            kick: Arc::new(tokio::sync::Notify::new()),
            poll_every: Duration::from_millis(250),
            docs: Mutex::new(HashMap::new()),
        }
    }

    /// The credential of slot `idx` (attempt `attempt`) of `node`: the same
    /// on every replica while the master key is the same. Never logged.
    pub fn vm_token(&self, dep: &DeploymentId, node: &str, idx: i64, attempt: i64) -> ServiceResult<String> {
        let key = self.vault.derive_key(TOKEN_KEY_PURPOSE)?;
        Ok(vm_token_with(&key, dep.as_str(), node, idx, attempt))
    }

    /// Computes a VM's credential and records its hash (idempotent: call it
    /// whenever its user data is built, so a credential rebuilt after a key
    /// rotation works too). Returns the credential.
    pub async fn register_token(&self, dep: &DeploymentId, node: &str, idx: i64, attempt: i64) -> ServiceResult<String> {
        let token = self.vm_token(dep, node, idx, attempt)?;
        self.store.register_deployment_token(&token_hash(&token), dep.as_str(), node, idx, attempt).await?;
        Ok(token)
    }

    /// The user data of a VM: registers its credential and builds its boot
    /// script around the node's `template` (see [`boot_user_data`]).
    pub async fn user_data_for(
        &self,
        dep: &DeploymentId,
        node: &str,
        idx: i64,
        attempt: i64,
        template: Option<&str>,
    ) -> ServiceResult<String> {
        let token = self.register_token(dep, node, idx, attempt).await?;
        boot_user_data(&BootInfo {
            broker_url: self.broker_url.clone(),
            token,
            deployment: dep.clone(),
            node: node.to_string(),
            idx,
            user_data: template.map(str::to_string),
        })
    }

    /// The VM a credential belongs to, if it is live; else 401.
    pub async fn authenticate(&self, token: &str) -> ServiceResult<VmCaller> {
        let refused = || ServiceError::Unauthenticated("the VM token is unknown, revoked, or its VM has ended".into());
        if !token.starts_with(VM_TOKEN_PREFIX) {
            return Err(ServiceError::Unauthenticated("the exchange takes a deployment VM's token (cbvm_...), not a user's token".into()));
        }
        let Some(c) = self.store.live_deployment_token(&token_hash(token)).await? else { return Err(refused()) };
        let deployment = DeploymentId::parse(&c.deployment_id).map_err(|e| ServiceError::Internal(format!("stored deployment id: {e}")))?;
        let vm_id = VmId::parse(&c.vm_id).map_err(|e| ServiceError::Internal(format!("stored VM id: {e}")))?;
        Ok(VmCaller { deployment, node: c.node, idx: c.idx, attempt: c.attempt, vm_id })
    }

    /// The document of a deployment's application version.
    async fn doc_of(&self, dep: &DeploymentId) -> ServiceResult<Arc<AppDoc>> {
        let Some(src) = self.store.deployment_source(dep.as_str()).await? else {
            return Err(ServiceError::Unauthenticated("the VM's deployment is gone".into()));
        };
        let key = (src.app_name.clone(), src.app_version);
        if let Some(d) = self.docs.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(d.clone());
        }
        let doc = AppDoc::parse(&src.source).map_err(|errors| {
            ServiceError::Internal(format!(
                "stored application {} version {} does not parse: {}",
                src.app_name,
                src.app_version,
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ))
        })?;
        let doc = Arc::new(doc);
        self.docs.lock().unwrap_or_else(|e| e.into_inner()).insert(key, doc.clone());
        Ok(doc)
    }

    /// Seals `value` for parameter `name` of `dep` (stored as base64 text).
    pub fn seal_value(&self, dep: &DeploymentId, name: &str, value: &str) -> ServiceResult<String> {
        let sealed = self.vault.with_keys(|k| k.seal(value.as_bytes(), &param_aad(dep.as_str(), name)))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// The clear value of a stored parameter.
    fn open_row(&self, dep: &DeploymentId, row: &ParamRow) -> ServiceResult<String> {
        if !row.secret {
            return Ok(row.value.clone());
        }
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&row.value)
            .map_err(|_| ServiceError::Internal(format!("secret parameter {} is not sealed", row.name)))?;
        let id = crate::master_keys::MasterKeys::key_id_of(&blob).map_err(vault_err)?.to_string();
        if !self.vault.key_ids().contains(&id) {
            self.vault.refresh_keys()?;
        }
        let clear = self.vault.with_keys(|k| k.open(&blob, &param_aad(dep.as_str(), &row.name)))?;
        Ok(String::from_utf8_lossy(&clear).into_owned())
    }

    /// Stores a parameter of `dep` (sealed when `secret`) and wakes the VMs
    /// waiting here. The driver publishes `hostname`/`instanceid` and the
    /// deploy-time inputs (`input.x`, `node.input.x`) with it.
    pub async fn put_param(&self, dep: &DeploymentId, name: &str, value: &str, secret: bool, set_by: &str) -> ServiceResult<()> {
        let stored = if secret { self.seal_value(dep, name, value)? } else { value.to_string() };
        self.store.set_deployment_param(dep.as_str(), name, &stored, secret, set_by).await?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// The value of a resolved name now, if set.
    async fn lookup(&self, dep: &DeploymentId, r: &Resolved) -> ServiceResult<Option<String>> {
        for step in &r.steps {
            let row = match step {
                Step::Value(v) => return Ok(Some(v.clone())),
                Step::Param(name) => self.store.deployment_param(dep.as_str(), name).await?,
                Step::NodeOutput { node, output } => self.store.deployment_node_output(dep.as_str(), node, output).await?,
            };
            if let Some(row) = row {
                return Ok(Some(self.open_row(dep, &row)?));
            }
        }
        Ok(None)
    }

    /// `get NAME`: its value, waiting up to `wait` (at most [`MAX_WAIT`]) for
    /// it to be set; `None` when it is still not set then. While it waits,
    /// the wait is recorded (the deployment page shows it).
    pub async fn get(&self, caller: &VmCaller, name: &str, wait: Duration) -> ServiceResult<Option<String>> {
        let doc = self.doc_of(&caller.deployment).await?;
        let resolved = resolve_name(&doc, &caller.node, caller.idx, name).map_err(|m| ServiceError::invalid_field("name", m))?;
        if let Some(v) = self.lookup(&caller.deployment, &resolved).await? {
            return Ok(Some(v));
        }
        let wait = wait.min(MAX_WAIT);
        if wait.is_zero() {
            return Ok(None);
        }
        let dep = caller.deployment.as_str();
        self.store.add_deployment_wait(dep, &caller.node, caller.idx, name).await?;
        // Removed when the wait ends, and also when the request is dropped
        // (the VM hung up): then by a task of its own.
        let guard =
            WaitGuard { store: self.store.clone(), key: Some((dep.to_string(), caller.node.clone(), caller.idx, name.to_string())) };
        let deadline = tokio::time::Instant::now() + wait;
        let out = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = self.lookup(&caller.deployment, &resolved).await? {
                break Some(v);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break None;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep((deadline - now).min(self.poll_every)) => {}
            }
        };
        guard.finish().await?;
        Ok(out)
    }

    /// `set NAME VALUE`: only an output the VM's node declares; stored as `<node>.<idx>.<name>`.
    pub async fn set(&self, caller: &VmCaller, name: &str, value: &str) -> ServiceResult<()> {
        let doc = self.doc_of(&caller.deployment).await?;
        let Some(spec) = doc.nodes.get(&caller.node) else {
            return Err(ServiceError::Internal("the VM's node is not in its application".into()));
        };
        let shown: String = name.chars().take(100).collect();
        let Some(out) = find(&spec.outputs, name) else {
            let declared = spec.outputs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
            let why = if BUILTIN_OUTPUTS.contains(&name) { " (the broker publishes it)" } else { "" };
            return Err(ServiceError::invalid_field(
                "name",
                format!(
                    "'{shown}' is not an output node '{}' declares{why}; its outputs: {}",
                    caller.node,
                    if declared.is_empty() { "none" } else { &declared }
                ),
            ));
        };
        if value.len() > MAX_VALUE_BYTES {
            return Err(ServiceError::invalid_field("value", format!("a value is at most {MAX_VALUE_BYTES} bytes")));
        }
        let key = format!("{}.{}.{}", caller.node, caller.idx, name);
        self.put_param(&caller.deployment, &key, value, out.secret, &caller.set_by()).await
    }

    /// `ready`: the VM says it is ready (the first call counts).
    pub async fn ready(&self, caller: &VmCaller) -> ServiceResult<()> {
        self.store.mark_member_ready(caller.deployment.as_str(), &caller.node, caller.idx, caller.attempt).await?;
        self.kick.notify_one();
        Ok(())
    }

    /// `abort MESSAGE`: asks the driver to stop the deployment with
    /// `<node>.<idx>: MESSAGE` (the first abort wins). Returns whether this one was recorded.
    pub async fn abort(&self, caller: &VmCaller, message: &str) -> ServiceResult<bool> {
        let message = message.trim();
        if message.is_empty() {
            return Err(ServiceError::invalid_field("message", "say why the deployment is aborted"));
        }
        if message.chars().count() > MAX_ABORT_MESSAGE {
            return Err(ServiceError::invalid_field("message", format!("a message is at most {MAX_ABORT_MESSAGE} characters")));
        }
        let set =
            self.store.request_deployment_abort(caller.deployment.as_str(), &format!("{}.{}: {message}", caller.node, caller.idx)).await?;
        self.kick.notify_one();
        Ok(set)
    }

    /// What the VM is, with its node's parameters.
    pub async fn self_info(&self, caller: &VmCaller) -> ServiceResult<SelfInfo> {
        let src = self.store.deployment_source(caller.deployment.as_str()).await?;
        let doc = self.doc_of(&caller.deployment).await?;
        let Some(spec) = doc.nodes.get(&caller.node) else {
            return Err(ServiceError::Internal("the VM's node is not in its application".into()));
        };
        let info = |p: &ParamSpec, mapped_from: Option<String>, builtin: bool| ParamInfo {
            name: p.name.clone(),
            description: p.description.clone(),
            secret: p.secret,
            mapped_from,
            builtin,
        };
        let inputs =
            spec.inputs.iter().map(|p| info(p, doc.mapping_of(&caller.node, &p.name).map(|(n, o)| format!("{n}.{o}")), false)).collect();
        let mut outputs: Vec<ParamInfo> = spec.outputs.iter().map(|p| info(p, None, false)).collect();
        for b in BUILTIN_OUTPUTS {
            outputs.push(ParamInfo {
                name: b.to_string(),
                description: "published by the broker".into(),
                secret: false,
                mapped_from: None,
                builtin: true,
            });
        }
        Ok(SelfInfo {
            deployment: caller.deployment.to_string(),
            node: caller.node.clone(),
            index: caller.idx,
            attempt: caller.attempt,
            vm_id: caller.vm_id.to_string(),
            application: src.as_ref().map(|s| s.app_name.clone()).unwrap_or_default(),
            version: src.as_ref().map_or(0, |s| s.app_version),
            inputs,
            deployment_inputs: doc.inputs.iter().map(|p| info(p, None, false)).collect(),
            outputs,
        })
    }

    /// Key ids the sealed parameters need (a master key rotation keeps them).
    pub async fn sealing_key_ids(&self) -> ServiceResult<Vec<String>> {
        crate::vault::parameter_key_ids(&self.store).await
    }
}

/// A recorded wait, removed when it ends.
struct WaitGuard {
    store: Store,
    key: Option<(String, String, i64, String)>,
}

impl WaitGuard {
    async fn finish(mut self) -> ServiceResult<()> {
        if let Some((dep, node, idx, param)) = self.key.take() {
            self.store.remove_deployment_wait(&dep, &node, idx, &param).await?;
        }
        Ok(())
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if let Some((dep, node, idx, param)) = self.key.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.remove_deployment_wait(&dep, &node, idx, &param).await {
                        tracing::warn!(error = %e, "could not remove a finished wait; it stays listed until the VM waits again");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
description: test
inputs:
  - {name: site_title, default: Hello}
  - {name: region}
nodes:
  db:
    image: ubuntu-22.04
    inputs:
      - {name: db_password, secret: true}
    outputs:
      - {name: port}
      - {name: root_key, secret: true}
  web:
    image: ubuntu-22.04
    multiplicity: 2
    depends_on: [db]
    inputs:
      - {name: db_host}
      - {name: db_port, default: "5432"}
      - {name: region}
      - {name: key}
    outputs:
      - {name: url}
    user_data: |
      #!/bin/sh
      echo {{node}} {{index}}
mappings:
  web.db_host: db.hostname
  web.key: db.root_key
"#;

    fn doc() -> AppDoc {
        AppDoc::parse(APP).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn param(s: &str) -> Step {
        Step::Param(s.into())
    }

    #[test]
    fn names_resolve_within_the_deployment() {
        let d = doc();
        // A mapped input: the mapped node's output (lowest live VM).
        let r = resolve_name(&d, "web", 2, "db_host").unwrap();
        assert_eq!(r.steps, vec![Step::NodeOutput { node: "db".into(), output: "hostname".into() }]);
        assert!(!r.secret);
        // Mapped from a secret output: secret.
        assert!(resolve_name(&d, "web", 1, "key").unwrap().secret);
        // Not mapped: given at deploy, else the default.
        let r = resolve_name(&d, "web", 1, "db_port").unwrap();
        assert_eq!(r.steps, vec![param("web.input.db_port"), Step::Value("5432".into())]);
        // A node input named like a deployment input falls back to it.
        let r = resolve_name(&d, "web", 1, "region").unwrap();
        assert_eq!(r.steps, vec![param("web.input.region"), param("input.region")]);
        // A secret input.
        let r = resolve_name(&d, "db", 1, "db_password").unwrap();
        assert_eq!(r.steps, vec![param("db.input.db_password")]);
        assert!(r.secret);
        // Its own output (declared or built in): its own value.
        assert_eq!(resolve_name(&d, "web", 2, "url").unwrap().steps, vec![param("web.2.url")]);
        assert_eq!(resolve_name(&d, "db", 1, "hostname").unwrap().steps, vec![param("db.1.hostname")]);
        assert!(resolve_name(&d, "db", 1, "root_key").unwrap().secret);
        // A deployment input.
        let r = resolve_name(&d, "db", 1, "site_title").unwrap();
        assert_eq!(r.steps, vec![param("input.site_title"), Step::Value("Hello".into())]);
        // Another node's output, any VM or one.
        assert_eq!(
            resolve_name(&d, "web", 1, "db.port").unwrap().steps,
            vec![Step::NodeOutput { node: "db".into(), output: "port".into() }]
        );
        assert_eq!(resolve_name(&d, "db", 1, "web.2.url").unwrap().steps, vec![param("web.2.url")]);
        assert_eq!(resolve_name(&d, "db", 1, "web.1.instanceid").unwrap().steps, vec![param("web.1.instanceid")]);
        assert!(resolve_name(&d, "web", 1, "db.1.root_key").unwrap().secret);
    }

    #[test]
    fn unknown_names_are_refused_naming_them() {
        let d = doc();
        for (name, needle) in [
            ("nope", "unknown parameter 'nope'"),
            ("db_password", "not an input or output of node 'web'"),
            ("dbx.port", "no node 'dbx'"),
            ("db.nope", "node 'db' has no output 'nope'"),
            ("db.0.port", "'0' is not a VM index"),
            ("db.01.port", "'01' is not a VM index"),
            ("db.x.port", "'x' is not a VM index"),
            ("db.1.nope", "no output 'nope'"),
            ("a.b.c.d", "NODE.INDEX.OUTPUT"),
            ("input.site_title", "no node 'input'"),
            // Another node's input is not readable.
            ("db.db_password", "node 'db' has no output 'db_password'"),
        ] {
            let e = resolve_name(&d, "web", 1, name).unwrap_err();
            assert!(e.contains(needle), "{name}: {e}");
        }
    }

    fn boot(user_data: Option<&str>) -> BootInfo {
        BootInfo {
            broker_url: "https://broker.example:8443/".into(),
            token: "cbvm_abc-DEF_123".into(),
            deployment: DeploymentId::parse("dep-0123456789abcdef").unwrap(),
            node: "web".into(),
            idx: 2,
            user_data: user_data.map(str::to_string),
        }
    }

    #[test]
    fn the_boot_script_sets_up_the_client_then_runs_the_node_script() {
        let s = boot_user_data(&boot(Some("#!/bin/bash\necho {{node}}-{{ index }} {{deployment}} {{broker_url}}\n"))).unwrap();
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        for needle in [
            "CLOUDBROKER_URL='https://broker.example:8443'",
            "CLOUDBROKER_TOKEN='cbvm_abc-DEF_123'",
            "CLOUDBROKER_DEPLOYMENT='dep-0123456789abcdef'",
            "CLOUDBROKER_NODE='web'",
            "CLOUDBROKER_INDEX='2'",
            "chmod 600 /etc/cloudbroker/env",
            "\"$CLOUDBROKER_URL/client/cloudbroker-client.sh\"",
            "/usr/local/bin/cloudbroker-client",
            "echo web-2 dep-0123456789abcdef https://broker.example:8443/\n",
        ] {
            assert!(s.contains(needle), "{needle} not in:\n{s}");
        }
        // The node's script comes after the setup.
        assert!(s.find("cloudbroker-client.sh").unwrap() < s.find("echo web-2").unwrap());
        // Without user data: the setup alone.
        let plain = boot_user_data(&boot(None)).unwrap();
        assert!(!plain.contains("/etc/cloudbroker/user-data"));
    }

    #[test]
    fn the_boot_script_runs_for_real_and_writes_the_env_file() {
        // Run the setup part in a scratch root: rewrite the absolute paths.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let s = boot_user_data(&boot(Some("#!/bin/sh\necho \"ran $CLOUDBROKER_NODE $CLOUDBROKER_INDEX\" > /etc/cloudbroker/out\n")))
            .unwrap()
            .replace("/etc/cloudbroker", &format!("{root}/etc/cloudbroker"))
            .replace("/usr/local/bin", &format!("{root}/bin"))
            .replace("until curl", "until false && curl")
            .replace("sleep 5", ":");
        let out = std::process::Command::new("sh").arg("-c").arg(&s).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let env = format!("{root}/etc/cloudbroker/env");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&env).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(format!("{root}/etc/cloudbroker/out")).unwrap(), "ran web 2\n");
    }

    #[test]
    fn a_cloud_config_goes_in_a_multipart_document() {
        let s = boot_user_data(&boot(Some("#cloud-config\npackages: [nginx]\nruncmd:\n  - echo {{node}}\n"))).unwrap();
        assert!(s.starts_with("Content-Type: multipart/mixed; boundary=\"==cloudbroker-boundary==\"\nMIME-Version: 1.0\n\n"), "{s}");
        let parts: Vec<&str> = s.split("--==cloudbroker-boundary==").collect();
        // Preamble, two parts, and the closing "--".
        assert_eq!(parts.len(), 4, "{s}");
        assert!(parts[1].contains("Content-Type: text/cloud-config") && parts[1].contains("\n\n#cloud-config\npackages: [nginx]"));
        assert!(parts[1].contains("  - echo web\n"));
        assert!(parts[2].contains("Content-Type: text/x-shellscript") && parts[2].contains("\n\n#!/bin/sh\n"));
        assert!(parts[2].contains("CLOUDBROKER_TOKEN='cbvm_abc-DEF_123'"));
        assert_eq!(parts[3], "--\n");
        // A boundary that the content contains is not used.
        let s = boot_user_data(&boot(Some("#cloud-config\n# ==cloudbroker-boundary==\n"))).unwrap();
        assert!(s.starts_with("Content-Type: multipart/mixed; boundary=\"==cloudbroker-boundary==_1\""), "{s}");
    }

    #[test]
    fn the_user_data_limit_names_the_node() {
        let big = format!("#!/bin/sh\n{}\n", "x".repeat(MAX_BOOT_USER_DATA));
        let e = boot_user_data(&boot(Some(&big))).unwrap_err();
        assert!(
            matches!(&e, ServiceError::Invalid { field: Some("user_data"), message } if message.contains("nodes.web.user_data")),
            "{e:?}"
        );
        // Just under the limit passes.
        let setup = boot_user_data(&boot(Some("#!/bin/sh\n\n"))).unwrap().len();
        let fits = format!("#!/bin/sh\n{}\n", "x".repeat(MAX_BOOT_USER_DATA - setup));
        assert!(boot_user_data(&boot(Some(&fits))).unwrap().len() <= MAX_BOOT_USER_DATA);
    }

    #[test]
    fn hostile_values_stay_quoted_and_heredocs_stay_closed() {
        let mut b = boot(Some("#!/bin/sh\nCLOUDBROKER_USER_DATA\necho after\n"));
        b.broker_url = "http://x/'; rm -rf / #".into();
        let s = boot_user_data(&b).unwrap();
        assert!(s.contains(r"CLOUDBROKER_URL='http://x/'\''; rm -rf / #'"), "{s}");
        assert!(s.contains("<<'CLOUDBROKER_USER_DATA_1'\n"), "{s}");
    }

    #[test]
    fn tokens_are_deterministic_per_slot_and_attempt() {
        let k = [7u8; 32];
        let a = vm_token_with(&k, "dep-0123456789abcdef", "web", 1, 1);
        assert!(a.starts_with(VM_TOKEN_PREFIX) && a.len() == VM_TOKEN_PREFIX.len() + 43, "{a}");
        assert_eq!(a, vm_token_with(&k, "dep-0123456789abcdef", "web", 1, 1));
        assert_ne!(a, vm_token_with(&k, "dep-0123456789abcdef", "web", 1, 2));
        assert_ne!(a, vm_token_with(&k, "dep-0123456789abcdef", "web", 2, 1));
        assert_ne!(a, vm_token_with(&[8u8; 32], "dep-0123456789abcdef", "web", 1, 1));
        assert_eq!(token_hash(&a).len(), 64);
        // The zero-padded key gives the standard HMAC of the 32-byte key.
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&k).unwrap();
        mac.update(b"dep-0123456789abcdef/web/1/1");
        let want = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(a, format!("{VM_TOKEN_PREFIX}{want}"));
    }
}
