//! The credential vault service: cloud credentials per connector instance
//! in three scopes, and key rotation. **user**: a user's own keys (self or
//! admin); **project**: a project's keys (its owners, or admins, store and
//! delete them; its members see them masked; nobody reads a secret back);
//! **system**: shared keys (admins) granted to chosen projects. Secrets are sealed by [`crate::master_keys`] and never leave this
//! module in clear except as [`Credentials`] handed to a connector; a cloud's
//! message that echoes them is scrubbed ([`crate::scrubbed::scrub_cloud_error`])
//! before anyone sees it.
//!
//! A rotation is refused, changing nothing, where the key file cannot be
//! written; it holds a database lease, renewed while it runs. Data sealed
//! with a key this process's file lacks is refused as
//! [`ServiceError::MasterKeyUnknown`] (503, and `/readyz` reports it, see
//! [`Vault::check_keys`]).
//!
//! A credential is what the broker acts with on everything made with it:
//! live VMs, Elastic IPs not released, volumes not deleted. Deleting it is
//! refused (409, naming them) while any exists; new keys replacing it must
//! still show the cloud every one of them (another account's keys are
//! refused the same way, unless the cloud cannot be asked and `force` is set).
//!
//! A launch picks its credential ([`Vault::credentials_for_launch`]): the
//! actor's own (scope user) for the instance, else its project's (scope
//! project), else a shared one granted to its project, else (kinds that
//! need none: the sandbox) the anonymous per-user account; the VM records
//! which.
//!
//! Sharing: a shared credential is used by the members of the projects it is
//! granted to, and the grant is checked again on every use, not only at
//! launch. When a grant is revoked, the project's VMs, volumes and addresses
//! made with it stay as they are (running, billed, listed to its members
//! and to admins); every action of the members on them (start, stop,
//! reboot, terminate, tag, attach, detach, delete, associate, disassociate,
//! release) is a 403 naming the revoked grant, while admins may still act
//! on the VMs. The credential cannot be deleted while they exist: grant it
//! again for the project to clean up, or terminate the VMs as an admin. A
//! project credential acts only on its own project's resources.
//!
//! On a sandbox instance the access key id is the account: the broker gives
//! each user without stored keys the account `sandbox-<user>`, so stored
//! keys may not name `sandbox-<another user>` (nor, when shared or a
//! project's, any `sandbox-` account).

use crate::audit::{self, AuditAction, AuditEvent, AuditOutcome, AuditTarget};
use crate::auth::Actor;
use crate::domain::{CredentialId, CredentialName, Cursor, InstanceName, Page, PageRequest, ProjectName, UserName, VmStatus};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::master_keys::{credential_aad, MasterKeys, VaultError};
use crate::registry::{Registry, Status};
use crate::scrubbed::scrub_secret;
use cloudbroker_connector_api::{mask_tail, ConnectorError, Credentials, DescribeFilter};
use cloudbroker_store::access_keys::{AccessKeyRow, ResealKey, ACCESS_KEY_SCOPE};
use cloudbroker_store::credential_uses::{CredentialRemoval, CredentialUses};
use cloudbroker_store::credentials::{CredentialRow, NewCredential, Reseal};
use cloudbroker_store::Store;
use serde::Serialize;
use std::sync::{Arc, RwLock};

/// A credential as shown to people: never the secret.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaskedCredential {
    pub instance: String,
    pub scope: String,
    pub owner: String,
    /// e.g. `****MPLE`.
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `verified` or `unverified`.
    pub status: String,
    pub status_message: String,
    pub updated_at: String,
    /// The projects a shared (system) credential is granted to; absent for
    /// the other scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_to: Option<Vec<String>>,
}

fn masked(r: &CredentialRow, granted_to: Option<Vec<String>>) -> MaskedCredential {
    MaskedCredential {
        instance: r.instance.clone(),
        scope: r.scope.clone(),
        owner: r.owner.clone(),
        access_key_id: r.access_key_hint.clone(),
        secret_access_key: "********".into(),
        status: r.status.clone(),
        status_message: r.status_message.clone(),
        updated_at: r.updated_at.to_rfc3339(),
        granted_to,
    }
}

/// Which credential a caller asks for.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    User(&'a UserName),
    /// A project's credential: the actor must act in that project (the
    /// edge entered it, checking the membership) unless it is an admin.
    Project(&'a ProjectName),
    /// A shared credential, by its name.
    System(&'a CredentialName),
}

impl<'a> Scope<'a> {
    fn parts(&self) -> (&'static str, &'a str) {
        match self {
            Scope::User(u) => ("user", u.as_str()),
            Scope::Project(p) => ("project", p.as_str()),
            Scope::System(n) => ("system", n.as_str()),
        }
    }

    /// May `actor` see the masked credential (a project's: any member).
    fn check_read(&self, actor: &Actor) -> ServiceResult<()> {
        match self {
            Scope::User(u) => actor.require_self_or_admin(u),
            Scope::Project(p) if actor.is_admin || actor.project == **p => Ok(()),
            Scope::Project(p) => Err(ServiceError::NotFound(Resource::Project((*p).clone()))),
            Scope::System(_) => actor.require_admin(),
        }
    }

    /// May `actor` store or delete it (a project's: its owners).
    fn check(&self, actor: &Actor) -> ServiceResult<()> {
        self.check_read(actor)?;
        match self {
            Scope::Project(_) => actor.require_manage(),
            _ => Ok(()),
        }
    }

    fn not_found(&self, instance: &InstanceName) -> ServiceError {
        ServiceError::NotFound(match self {
            Scope::User(_) => Resource::Credentials { instance: instance.clone() },
            Scope::Project(p) => Resource::Record(format!("credentials of project '{p}' for '{instance}'")),
            Scope::System(n) => Resource::SharedCredential { name: (*n).clone(), instance: instance.clone() },
        })
    }

    /// The audit event, recorded in the project whose credential it is.
    fn audited(&self, event: AuditEvent<'a>) -> AuditEvent<'a> {
        match self {
            Scope::Project(p) => event.in_project(p.as_str()),
            _ => event,
        }
    }
}

/// The vault service.
pub struct Vault {
    pub(crate) store: Store,
    registry: Arc<Registry>,
    pub(crate) keys: RwLock<MasterKeys>,
    /// How long a key that seals nothing any more stays in the file, so that
    /// another process still sealing with it (a replica that has not re-read
    /// the file yet) writes nothing the file cannot open.
    pub retired_key_grace: std::time::Duration,
    /// How long the rotation lease lasts unless renewed (renewed every
    /// third of it while a rotation runs).
    pub rotate_lease_ttl: std::time::Duration,
}

/// What a key rotation did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rotation {
    /// The key that seals from now on.
    pub current_key: String,
    /// Keys that seal nothing any more, kept for the grace period.
    pub retired_keys: Vec<String>,
    /// Keys removed from the file (retired longer than the grace period).
    pub dropped_keys: Vec<String>,
    /// Stored secrets re-sealed under the current key.
    pub resealed: u64,
}

/// The default [`Vault::retired_key_grace`].
pub const RETIRED_KEY_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// The database lock that serialises key rotations across processes.
const ROTATE_LEASE: &str = "vault:rotate";
/// The default [`Vault::rotate_lease_ttl`].
pub const ROTATE_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The additional data an EC2 access key's secret is sealed with (as when
/// access keys were credential rows of [`ACCESS_KEY_SCOPE`]).
fn access_key_aad(k: &AccessKeyRow) -> String {
    credential_aad(ACCESS_KEY_SCOPE, &k.user_name, &k.access_key_id, "secret_access_key")
}

pub(crate) fn vault_err(e: VaultError) -> ServiceError {
    match e {
        VaultError::UnknownKey(key_id) => {
            crate::metrics::vault_unknown_key();
            tracing::error!(key_id = %key_id, "stored data is sealed with a master key this process's key file lacks");
            ServiceError::MasterKeyUnknown { key_id }
        }
        other => ServiceError::Internal(other.to_string()),
    }
}

/// A rotation refused because the key file cannot be written: nothing changed.
fn rotate_err(e: VaultError) -> ServiceError {
    match e {
        VaultError::NotWritable { .. } => ServiceError::Conflict(format!(
            "cannot rotate the master key here: {e}. Rotate where the key file is writable (`cloudbroker keys rotate`, see the README), then give every replica the new file"
        )),
        other => vault_err(other),
    }
}

/// Runs `work` while renewing the lease `name` of `holder` every third of
/// `ttl`, so that a long run keeps it (another process would otherwise take
/// it once `ttl` has passed and run the same job at the same time).
pub(crate) async fn hold_lease<T>(
    store: &Store,
    name: &str,
    holder: &str,
    ttl: std::time::Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::select! {
        out = work => out,
        never = renew_lease(store, name, holder, ttl) => match never {},
    }
}

async fn renew_lease(store: &Store, name: &str, holder: &str, ttl: std::time::Duration) -> std::convert::Infallible {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let mut every = tokio::time::interval((ttl / 3).max(std::time::Duration::from_millis(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        match store.try_lease(name, holder, ttl_ms).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(lease = name, "a lease held by this process was taken by another one"),
            Err(e) => tracing::warn!(lease = name, error = %e, "could not renew a lease; retrying"),
        }
    }
}

/// The sandbox connector's account ids given to users: `sandbox-<user>` is
/// the account of `user` when they store no keys of their own (the sandbox
/// makes each access key id its own account).
pub const SANDBOX_ACCOUNT_PREFIX: &str = "sandbox-";

/// The sandbox account of `user` (see [`SANDBOX_ACCOUNT_PREFIX`]).
pub fn sandbox_account(user: &UserName) -> String {
    format!("{SANDBOX_ACCOUNT_PREFIX}{user}")
}

/// Why keys with `access_key_id` may not be stored for `user` (`None`: as a
/// shared credential) on a sandbox instance: they would open another user's
/// sandbox account.
fn foreign_sandbox_account(user: Option<&UserName>, access_key_id: &str) -> Option<String> {
    let other = access_key_id.strip_prefix(SANDBOX_ACCOUNT_PREFIX)?;
    match user {
        Some(u) if other == u.as_str() => None,
        Some(_) => Some(format!(
            "access_key_id '{SANDBOX_ACCOUNT_PREFIX}{}' is another user's sandbox account: on a sandbox instance \
             '{SANDBOX_ACCOUNT_PREFIX}<user>' belongs to that user alone; choose another access key id",
            other.chars().take(64).collect::<String>()
        )),
        None => Some(format!(
            "access_key_id '{SANDBOX_ACCOUNT_PREFIX}{}' names a user's sandbox account: on a sandbox instance \
             '{SANDBOX_ACCOUNT_PREFIX}<user>' ids are reserved to each user; choose another access key id",
            other.chars().take(64).collect::<String>()
        )),
    }
}

/// For people: what a credential is still used by.
fn describe_uses(uses: &CredentialUses) -> String {
    let mut parts = Vec::new();
    if !uses.vms.is_empty() {
        parts.push(format!("live VM(s) {}", uses.vms.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ")));
    }
    let owned = |v: &[(String, String)]| v.iter().map(|(id, user)| format!("{id} (of {user})")).collect::<Vec<_>>().join(", ");
    if !uses.addresses.is_empty() {
        parts.push(format!("Elastic IP(s) {}", owned(&uses.addresses)));
    }
    if !uses.volumes.is_empty() {
        parts.push(format!("volume(s) {}", owned(&uses.volumes)));
    }
    parts.join("; ")
}

/// Describes why a credential check failed, for people.
pub fn explain(e: &ConnectorError) -> String {
    match e {
        ConnectorError::Auth { code, message } => {
            let what = match code.as_str() {
                "InvalidClientTokenId" | "InvalidAccessKeyId" => "the access key id is not known to the cloud",
                "SignatureDoesNotMatch" => "the secret access key is wrong",
                _ => "the cloud rejected the credentials",
            };
            format!("{what} ({code}: {message})")
        }
        ConnectorError::Forbidden { code, message } => format!("the credentials lack a permission ({code}: {message})"),
        ConnectorError::Transport { message } => format!("the endpoint is unreachable: {message}"),
        ConnectorError::Timeout { seconds } => format!("the endpoint did not answer within {seconds}s"),
        other => other.to_string(),
    }
}

impl Vault {
    /// Opens the vault: loads (or creates) the master keys and checks that
    /// they open every stored secret. Nothing is modified on failure.
    pub async fn open(store: Store, registry: Arc<Registry>, key_file: &std::path::Path) -> ServiceResult<Self> {
        let rows = store.all_credentials().await?;
        let access_keys = store.all_access_keys().await?;
        let keys = if rows.is_empty() && access_keys.is_empty() {
            MasterKeys::load_or_create(key_file)
        } else if !key_file.exists() {
            Err(VaultError::KeyFile {
                path: key_file.display().to_string(),
                message: format!(
                    "missing, but {} stored credential(s) were sealed with a master key; restore the key file",
                    rows.len() + access_keys.len()
                ),
            })
        } else {
            MasterKeys::load(key_file)
        }
        .map_err(vault_err)?;
        // One check per key id in use: does the key open data sealed with it?
        let mut checked = std::collections::BTreeSet::new();
        for r in &rows {
            if checked.insert(r.key_id.clone()) {
                keys.open(&r.secret_sealed, &credential_aad(&r.scope, &r.owner, &r.instance, "secret_access_key")).map_err(|e| {
                    ServiceError::Internal(format!("the master key file {} cannot open stored credentials: {e}", key_file.display()))
                })?;
            }
        }
        for k in &access_keys {
            if checked.insert(k.master_key_id.clone()) {
                keys.open(&k.secret_sealed, &access_key_aad(k)).map_err(|e| {
                    ServiceError::Internal(format!("the master key file {} cannot open stored credentials: {e}", key_file.display()))
                })?;
            }
        }
        Ok(Self { store, registry, keys: RwLock::new(keys), retired_key_grace: RETIRED_KEY_GRACE, rotate_lease_ttl: ROTATE_LEASE_TTL })
    }

    pub(crate) fn with_keys<T>(&self, f: impl FnOnce(&MasterKeys) -> Result<T, VaultError>) -> ServiceResult<T> {
        let g = self.keys.read().unwrap_or_else(|e| e.into_inner());
        f(&g).map_err(vault_err)
    }

    /// Picks up keys another process (a rotation by the CLI or a replica)
    /// wrote to the key file, merging: nothing known is forgotten.
    pub(crate) fn refresh_keys(&self) -> ServiceResult<()> {
        self.keys.write().unwrap_or_else(|e| e.into_inner()).merge_from_disk().map_err(vault_err)?;
        Ok(())
    }

    /// Whether this process can open everything stored: the key file (as it
    /// is now) holds every key id stored data is sealed with. The error says
    /// which ids are missing (never a key) and what to do; `/readyz` reports
    /// it and `cloudbroker_vault_missing_keys` counts them.
    pub async fn check_keys(&self) -> ServiceResult<()> {
        self.refresh_keys()?;
        let in_use = self.store.key_ids_in_use().await?;
        let known = self.key_ids();
        let missing: Vec<String> = in_use.into_iter().filter(|id| !known.contains(id)).collect();
        crate::metrics::vault_missing_keys(missing.len());
        if missing.is_empty() {
            return Ok(());
        }
        let path = self.keys.read().unwrap_or_else(|e| e.into_inner()).path().display().to_string();
        Err(ServiceError::Unavailable(format!(
            "the master key file {path} lacks key(s) {} that stored credentials are sealed with: give this replica the current key file (every replica must use the same one)",
            missing.join(", ")
        )))
    }

    fn check_instance(&self, instance: &InstanceName) -> ServiceResult<()> {
        let snap = self.registry.snapshot();
        snap.instance(instance.as_str()).map(|_| ()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))
    }

    /// Validates credentials against the instance with its own check.
    pub async fn validate(&self, instance: &InstanceName, creds: &Credentials) -> ServiceResult<Result<String, String>> {
        let snap = self.registry.snapshot();
        let entry = snap.instance(instance.as_str()).ok_or_else(|| ServiceError::NotFound(Resource::Instance(instance.clone())))?;
        let Some(c) = entry.connector.clone() else {
            let why = match &entry.status {
                Status::Error { errors } => errors.join("; "),
                Status::Ready => "not started".into(),
            };
            return Ok(Err(format!("connector instance '{instance}' is not ready: {why}")));
        };
        Ok(match c.validate_credentials(creds).await {
            Ok(check) => Ok(check.message),
            Err(e) => Err(explain(&e)),
        })
    }

    /// Stores credentials after validating them. When validation fails and
    /// `force` is false, nothing is stored and the reason is returned as an
    /// error; with `force`, they are stored as `unverified`.
    pub async fn put(
        &self,
        actor: &Actor,
        scope: Scope<'_>,
        instance: &InstanceName,
        access_key_id: &str,
        secret: &str,
        force: bool,
    ) -> ServiceResult<MaskedCredential> {
        scope.check(actor)?;
        self.check_instance(instance)?;
        let access_key_id = access_key_id.trim();
        if access_key_id.is_empty() {
            return Err(ServiceError::invalid_field("access_key_id", "access_key_id and secret_access_key are both required"));
        }
        if secret.is_empty() {
            return Err(ServiceError::invalid_field("secret_access_key", "access_key_id and secret_access_key are both required"));
        }
        if access_key_id.chars().count() > 256 || access_key_id.chars().any(char::is_control) {
            return Err(ServiceError::invalid_field("access_key_id", "access_key_id is at most 256 characters, no control characters"));
        }
        if secret.chars().count() > 4096 {
            return Err(ServiceError::invalid_field("secret_access_key", "secret_access_key is at most 4096 characters"));
        }
        match scope {
            Scope::User(u) if self.store.get_user(u.as_str()).await?.is_none() => {
                return Err(ServiceError::NotFound(Resource::User(u.clone())));
            }
            Scope::Project(p) if self.store.get_project(p).await?.is_none() => {
                return Err(ServiceError::NotFound(Resource::Project(p.clone())));
            }
            _ => {}
        }
        if self.is_sandbox(instance) {
            // A project's keys are shared by its members: no user's sandbox account.
            let user = match scope {
                Scope::User(u) => Some(u),
                Scope::Project(_) | Scope::System(_) => None,
            };
            if let Some(why) = foreign_sandbox_account(user, access_key_id) {
                let (sc, owner) = scope.parts();
                let target = AuditTarget::Credential { scope: sc, owner, instance: instance.as_str() };
                let event = AuditEvent::new(AuditAction::CredentialSave, target, AuditOutcome::Rejected).detail(why.as_str());
                audit::record_by(&self.store, actor, &scope.audited(event)).await?;
                return Err(ServiceError::invalid_field("access_key_id", why));
            }
        }
        let creds = Credentials::new(access_key_id, secret);
        // Clouds may echo the key id (or worse) in messages: scrub before storing or returning.
        let scrub = |m: String| scrub_secret(&scrub_secret(&m, secret, "********"), access_key_id, &mask_tail(access_key_id));
        let (status, message) = match self.validate(instance, &creds).await? {
            Ok(m) => ("verified", scrub(m)),
            Err(why) if force => ("unverified", scrub(why)),
            Err(why) => {
                let why = scrub(why);
                let (sc, owner) = scope.parts();
                let target = AuditTarget::Credential { scope: sc, owner, instance: instance.as_str() };
                let event = AuditEvent::new(AuditAction::CredentialSave, target, AuditOutcome::Rejected).detail(why.as_str());
                audit::record_by(&self.store, actor, &scope.audited(event)).await?;
                return Err(ServiceError::invalid_field(
                    "access_key_id",
                    format!("credentials failed validation: {why} (save with force to store them unverified)"),
                ));
            }
        };
        let (sc, owner) = scope.parts();
        self.check_replacement_sees_live_vms(sc, owner, instance, &creds, force).await?;
        self.check_replacement_sees_resources(sc, owner, instance, &creds, force).await?;
        // Seal with the newest key, even one another process just added.
        self.refresh_keys()?;
        let sealed = self.with_keys(|k| {
            Ok((
                k.seal(access_key_id.as_bytes(), &credential_aad(sc, owner, instance.as_str(), "access_key_id"))?,
                k.seal(secret.as_bytes(), &credential_aad(sc, owner, instance.as_str(), "secret_access_key"))?,
                k.current_id().to_string(),
            ))
        });
        crate::metrics::vault_op("seal", sealed.is_ok());
        let (ak, sk, key_id) = sealed?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let hint = mask_tail(access_key_id);
        self.store
            .put_credential(&NewCredential {
                id: &id,
                scope: sc,
                owner,
                instance: instance.as_str(),
                access_key_hint: &hint,
                access_key_sealed: &ak,
                secret_sealed: &sk,
                key_id: &key_id,
                status,
                status_message: &message,
            })
            .await?;
        let outcome = if status == "verified" { AuditOutcome::Verified } else { AuditOutcome::Unverified };
        let target = AuditTarget::Credential { scope: sc, owner, instance: instance.as_str() };
        audit::record_by(&self.store, actor, &scope.audited(AuditEvent::new(AuditAction::CredentialSave, target, outcome))).await?;
        self.get(actor, scope, instance).await
    }

    /// New keys for a credential that live VMs use must still reach those VMs:
    /// keys of another cloud account would make them look gone (and leave
    /// them running, billed and unmanageable). Refused, saying which VMs,
    /// unless the cloud could not be asked and `force` is set.
    async fn check_replacement_sees_live_vms(
        &self,
        sc: &str,
        owner: &str,
        instance: &InstanceName,
        creds: &Credentials,
        force: bool,
    ) -> ServiceResult<()> {
        let Some(existing) = self.store.get_credential(sc, owner, instance.as_str()).await? else { return Ok(()) };
        let live = self.store.vms_using_credential(&existing.id, &VmStatus::live_names()).await?;
        let ids: Vec<String> = live.iter().filter_map(|(_, cloud)| cloud.clone()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let Some(connector) = self.registry.snapshot().instance(instance.as_str()).and_then(|i| i.connector.clone()) else {
            return Ok(());
        };
        let refused = |what: String| {
            ServiceError::Conflict(format!(
                "{what}; these keys would lose live VM(s) {} launched with the current keys (another cloud account?): terminate them first",
                live.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", ")
            ))
        };
        let found = connector.describe_instances(creds, &DescribeFilter::ids(&ids)).await.map(|f| f.into_iter().map(|v| v.id).collect());
        all_shown(&ids, found, "VMs", force, &refused)
    }

    /// As [`Self::check_replacement_sees_live_vms`], for the Elastic IPs not
    /// released and the volumes not deleted that were made with the current
    /// keys: the new ones must still show the cloud every one of them.
    async fn check_replacement_sees_resources(
        &self,
        sc: &str,
        owner: &str,
        instance: &InstanceName,
        creds: &Credentials,
        force: bool,
    ) -> ServiceResult<()> {
        let Some(existing) = self.store.get_credential(sc, owner, instance.as_str()).await? else { return Ok(()) };
        let uses = self.store.credential_uses(&existing.id, &VmStatus::live_names(), i64::MAX).await?;
        if uses.addresses.is_empty() && uses.volumes.is_empty() {
            return Ok(());
        }
        let Some(connector) = self.registry.snapshot().instance(instance.as_str()).and_then(|i| i.connector.clone()) else {
            return Ok(());
        };
        let shown = CredentialUses {
            vms: Vec::new(),
            addresses: uses.addresses.iter().take(20).cloned().collect(),
            volumes: uses.volumes.iter().take(20).cloned().collect(),
        };
        let refused = |what: String| {
            ServiceError::Conflict(format!(
                "{what}; these keys would lose {} made with the current keys (another cloud account?): release or delete them first",
                describe_uses(&shown)
            ))
        };
        let addresses: Vec<String> = uses.addresses.iter().map(|(id, _)| id.clone()).collect();
        if !addresses.is_empty() {
            let found = connector.describe_addresses(creds, &addresses).await.map(|f| f.into_iter().map(|a| a.allocation_id).collect());
            all_shown(&addresses, found, "Elastic IPs", force, &refused)?;
        }
        let volumes: Vec<String> = uses.volumes.iter().map(|(id, _)| id.clone()).collect();
        if !volumes.is_empty() {
            let found = connector.describe_volumes(creds, &volumes).await.map(|f| f.into_iter().map(|v| v.volume_id).collect());
            all_shown(&volumes, found, "volumes", force, &refused)?;
        }
        Ok(())
    }

    /// Whether `instance` is of a kind that needs no keys (the sandbox,
    /// where the access key id is the account).
    fn is_sandbox(&self, instance: &InstanceName) -> bool {
        self.registry.snapshot().instance(instance.as_str()).is_some_and(|i| !i.kind.needs_credentials())
    }

    /// The masked credential.
    pub async fn get(&self, actor: &Actor, scope: Scope<'_>, instance: &InstanceName) -> ServiceResult<MaskedCredential> {
        scope.check_read(actor)?;
        let (sc, owner) = scope.parts();
        let r = self.store.get_credential(sc, owner, instance.as_str()).await?.ok_or_else(|| scope.not_found(instance))?;
        let grants = if sc == "system" { Some(self.store.grants(&r.id).await?) } else { None };
        Ok(masked(&r, grants))
    }

    /// A user's credentials, masked.
    pub async fn list_user(&self, actor: &Actor, user: &UserName) -> ServiceResult<Vec<MaskedCredential>> {
        actor.require_self_or_admin(user)?;
        Ok(self.store.list_credentials("user", Some(user.as_str())).await?.iter().map(|r| masked(r, None)).collect())
    }

    /// A project's credentials, masked, by instance (its members, or admins).
    pub async fn list_project(&self, actor: &Actor, project: &ProjectName) -> ServiceResult<Vec<MaskedCredential>> {
        let scope = Scope::Project(project);
        scope.check_read(actor)?;
        if actor.is_admin && self.store.get_project(project).await?.is_none() {
            return Err(ServiceError::NotFound(Resource::Project(project.clone())));
        }
        Ok(self.store.list_credentials("project", Some(project.as_str())).await?.iter().map(|r| masked(r, None)).collect())
    }

    /// Shared credentials, masked (admin).
    pub async fn list_shared(&self, actor: &Actor) -> ServiceResult<Vec<MaskedCredential>> {
        actor.require_admin()?;
        let mut out = Vec::new();
        for r in self.store.list_credentials("system", None).await? {
            let g = self.store.grants(&r.id).await?;
            out.push(masked(&r, Some(g)));
        }
        Ok(out)
    }

    /// The name of the shared credential a launch of `actor` on `instance`
    /// falls back to when it has neither its own nor its project's: the
    /// first by name granted to its project, as [`Self::credentials_for_launch`]
    /// picks it (`None`: none is granted). Names only, never keys.
    pub async fn shared_for(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Option<String>> {
        Ok(self.store.granted_credentials(actor.project.as_str(), instance.as_str()).await?.into_iter().next().map(|r| r.owner))
    }

    /// One page of a user's credentials, masked, by instance (self or admin).
    pub async fn page_user(&self, actor: &Actor, user: &UserName, page: &PageRequest) -> ServiceResult<Page<MaskedCredential>> {
        actor.require_self_or_admin(user)?;
        let after = page.after.as_ref().map(|c| (user.as_str(), c.key.as_str()));
        let rows = self.store.page_credentials("user", Some(user.as_str()), after, i64::from(page.limit) + 1).await?;
        let items = rows.iter().map(|r| masked(r, None)).collect();
        Ok(Page::from_fetched(items, page.limit, |c| Cursor::new(0, c.instance.as_str())))
    }

    /// One page of shared credentials, masked, by name then instance (admin).
    pub async fn page_shared(&self, actor: &Actor, page: &PageRequest) -> ServiceResult<Page<MaskedCredential>> {
        actor.require_admin()?;
        // The key is `name/instance`: neither contains '/'.
        let after = page.after.as_ref().map(|c| c.key.split_once('/').unwrap_or((c.key.as_str(), "")));
        let rows = self.store.page_credentials("system", None, after, i64::from(page.limit) + 1).await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            items.push(masked(r, Some(self.store.grants(&r.id).await?)));
        }
        Ok(Page::from_fetched(items, page.limit, |c| Cursor::new(0, format!("{}/{}", c.owner, c.instance))))
    }

    /// Deletes credentials; refused while live VMs, Elastic IPs or volumes
    /// made with them exist (the broker acts on those with these keys only).
    pub async fn delete(&self, actor: &Actor, scope: Scope<'_>, instance: &InstanceName) -> ServiceResult<()> {
        scope.check(actor)?;
        let (sc, owner) = scope.parts();
        match self.store.delete_unused_credential(sc, owner, instance.as_str(), &VmStatus::live_names()).await? {
            CredentialRemoval::Deleted => {}
            CredentialRemoval::NotFound => return Err(scope.not_found(instance)),
            CredentialRemoval::InUse(uses) => {
                let why = format!(
                    "these credentials are in use by {}: terminate, release or delete them first (the broker acts on them with these keys only)",
                    describe_uses(&uses)
                );
                let target = AuditTarget::Credential { scope: sc, owner, instance: instance.as_str() };
                let event = AuditEvent::new(AuditAction::CredentialDelete, target, AuditOutcome::Rejected).detail(why.as_str());
                audit::record_by(&self.store, actor, &scope.audited(event)).await?;
                return Err(ServiceError::Conflict(why));
            }
        }
        let target = AuditTarget::Credential { scope: sc, owner, instance: instance.as_str() };
        audit::record_by(&self.store, actor, &scope.audited(AuditEvent::ok(AuditAction::CredentialDelete, target))).await?;
        Ok(())
    }

    /// Grants a shared credential to projects (replacing the list; admin).
    /// Every project must exist.
    pub async fn grant(
        &self,
        actor: &Actor,
        name: &CredentialName,
        instance: &InstanceName,
        projects: &[ProjectName],
    ) -> ServiceResult<MaskedCredential> {
        actor.require_admin()?;
        let r = self
            .store
            .get_credential("system", name.as_str(), instance.as_str())
            .await?
            .ok_or_else(|| Scope::System(name).not_found(instance))?;
        for p in projects {
            if self.store.get_project(p).await?.is_none() {
                return Err(ServiceError::NotFound(Resource::Project(p.clone())));
            }
        }
        let mut names: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        names.sort();
        names.dedup();
        self.store.set_grants(&r.id, &names).await?;
        let target = AuditTarget::Credential { scope: "system", owner: name.as_str(), instance: instance.as_str() };
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::CredentialGrant, target).detail(names.join(","))).await?;
        Ok(masked(&r, Some(self.store.grants(&r.id).await?)))
    }

    /// Grants a shared credential to the personal projects of `users`
    /// (replacing the list; admin): grants as they were before projects.
    pub async fn grant_users(
        &self,
        actor: &Actor,
        name: &CredentialName,
        instance: &InstanceName,
        users: &[UserName],
    ) -> ServiceResult<MaskedCredential> {
        actor.require_admin()?;
        let projects = self.personal_projects(users).await?;
        self.grant(actor, name, instance, &projects).await
    }

    /// The personal projects of `users` (for grants naming users, as before
    /// projects): each user must exist.
    pub async fn personal_projects(&self, users: &[UserName]) -> ServiceResult<Vec<ProjectName>> {
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            if self.store.get_user(u.as_str()).await?.is_none() {
                return Err(ServiceError::NotFound(Resource::User(u.clone())));
            }
            out.push(ProjectName::personal(u));
        }
        Ok(out)
    }

    fn open_row(&self, r: &CredentialRow) -> ServiceResult<Credentials> {
        // A key added by `cloudbroker keys rotate` in another process: merge the file in.
        let known = self.keys.read().unwrap_or_else(|e| e.into_inner()).ids().contains(&r.key_id);
        if !known {
            self.refresh_keys()?;
        }
        let opened = self.with_keys(|k| {
            let ak = k.open(&r.access_key_sealed, &credential_aad(&r.scope, &r.owner, &r.instance, "access_key_id"))?;
            let sk = k.open(&r.secret_sealed, &credential_aad(&r.scope, &r.owner, &r.instance, "secret_access_key"))?;
            Ok(Credentials::new(String::from_utf8_lossy(&ak).into_owned(), String::from_utf8_lossy(&sk).into_owned()))
        });
        crate::metrics::vault_op("open", opened.is_ok());
        opened
    }

    /// The credentials `user` launches with on `instance` in their personal
    /// project (see [`Self::credentials_for_launch`]).
    pub async fn credentials_for(&self, user: &UserName, instance: &InstanceName) -> ServiceResult<(Credentials, CredentialId)> {
        self.credentials_for_launch(&Actor::new(user.clone(), false), instance).await
    }

    /// The credentials `actor` launches with on `instance` in its project,
    /// and which stored credential they are. The pick rule: the actor's own
    /// (scope user), else its project's (scope project), else a shared one
    /// granted to its project (the first by name); for connector kinds that
    /// need none (the sandbox), a per-user identity.
    pub async fn credentials_for_launch(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<(Credentials, CredentialId)> {
        let user = &actor.name;
        if let Some(r) = self.store.get_credential("user", user.as_str(), instance.as_str()).await? {
            let creds = self.open_row(&r)?;
            self.refuse_foreign_sandbox_account(Some(user), instance, &creds)?;
            return Ok((creds, CredentialId::from_stored(r.id)));
        }
        let project = actor.project.as_str();
        let picked = match self.store.get_credential("project", project, instance.as_str()).await? {
            Some(r) => Some(r),
            None => self.store.granted_credentials(project, instance.as_str()).await?.into_iter().next(),
        };
        if let Some(r) = picked {
            let creds = self.open_row(&r)?;
            self.refuse_foreign_sandbox_account(None, instance, &creds)?;
            return Ok((creds, CredentialId::from_stored(r.id)));
        }
        let snap = self.registry.snapshot();
        match snap.instance(instance.as_str()) {
            Some(i) if !i.kind.needs_credentials() => {
                Ok((Credentials::new(sandbox_account(user), "sandbox"), CredentialId::from_stored(format!("anonymous:{user}"))))
            }
            Some(_) if actor.in_personal_project() => Err(ServiceError::invalid_field(
                "instance",
                format!("no credentials for connector instance '{instance}': add them to your profile"),
            )),
            Some(_) => Err(ServiceError::invalid_field(
                "instance",
                format!(
                    "no credentials for connector instance '{instance}' in project '{project}': add them to your profile, \
                     or ask an owner of the project to store the project's"
                ),
            )),
            None => Err(ServiceError::NotFound(Resource::Instance(instance.clone()))),
        }
    }

    /// Keys stored before [`foreign_sandbox_account`] was checked are not
    /// used to enter another user's sandbox account either.
    fn refuse_foreign_sandbox_account(&self, user: Option<&UserName>, instance: &InstanceName, creds: &Credentials) -> ServiceResult<()> {
        if !self.is_sandbox(instance) {
            return Ok(());
        }
        match foreign_sandbox_account(user, &creds.access_key_id) {
            Some(why) => Err(ServiceError::Forbidden(format!("the stored credentials for '{instance}' cannot be used: {why}"))),
            None => Ok(()),
        }
    }

    /// The credentials `actor` acts with on an existing resource of its
    /// project (`what`, e.g. `VM 'vm-…'`) made with the stored credential
    /// `id`: as [`Self::credentials_by_id`], but (admins excepted) a shared
    /// credential must still be granted to the actor's project, and a
    /// project's credential must be that project's. A revoked grant is a 403
    /// naming it. A user's credential (the resource's creator's) is allowed:
    /// the caller checked that the resource is in the actor's project.
    pub async fn credentials_to_act(&self, actor: &Actor, id: &CredentialId, what: &str) -> ServiceResult<Credentials> {
        if id.as_str().starts_with("anonymous:") {
            return self.credentials_by_id(id).await;
        }
        let r = self
            .store
            .get_credential_by_id(id.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(Resource::CredentialId(id.to_string())))?;
        if r.scope == "project" && !actor.is_admin && r.owner != actor.project.as_str() {
            let why = format!(
                "{what} was made with the credentials of project '{}' for connector instance '{}': \
                 act on it from that project",
                r.owner, r.instance
            );
            let target = AuditTarget::Credential { scope: "project", owner: &r.owner, instance: &r.instance };
            let event = AuditEvent::new(AuditAction::CredentialUse, target, AuditOutcome::Rejected).detail(why.as_str());
            audit::record_by(&self.store, actor, &event).await?;
            return Err(ServiceError::Forbidden(why));
        }
        if r.scope == "system" && !actor.is_admin && !self.store.is_granted(&r.id, actor.project.as_str()).await? {
            let to = if actor.in_personal_project() { "you".to_string() } else { format!("project '{}'", actor.project) };
            let why = format!(
                "{what} was made with the shared credential '{}' for connector instance '{}', whose grant to {to} was revoked: \
                 ask an administrator to grant it to {to} again",
                r.owner, r.instance
            );
            let target = AuditTarget::Credential { scope: "system", owner: &r.owner, instance: &r.instance };
            let event = AuditEvent::new(AuditAction::CredentialUse, target, AuditOutcome::Rejected).detail(why.as_str());
            audit::record_by(&self.store, actor, &event).await?;
            return Err(ServiceError::Forbidden(why));
        }
        self.open_row(&r)
    }

    /// The credentials of a stored credential id (for background work).
    pub async fn credentials_by_id(&self, id: &CredentialId) -> ServiceResult<Credentials> {
        if let Some(user) = id.as_str().strip_prefix("anonymous:") {
            return Ok(Credentials::new(format!("{SANDBOX_ACCOUNT_PREFIX}{user}"), "sandbox"));
        }
        let r = self
            .store
            .get_credential_by_id(id.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(Resource::CredentialId(id.to_string())))?;
        self.open_row(&r)
    }

    /// The credentials an admin's check of `instance`'s cloud asks with (the
    /// image form's checks): those a launch of theirs would use, else the
    /// first shared credential stored for `instance` by name (admins see
    /// them all); with words naming which (never a key). `None`: none can.
    pub async fn credentials_to_check(&self, actor: &Actor, instance: &InstanceName) -> ServiceResult<Option<(Credentials, String)>> {
        match self.credentials_for_launch(actor, instance).await {
            Ok((creds, id)) => {
                let label = match self.store.get_credential_by_id(id.as_str()).await? {
                    Some(r) if r.scope == "user" => format!("the credential of {}", r.owner),
                    Some(r) if r.scope == "project" => format!("the credential of project '{}'", r.owner),
                    Some(r) => format!("the shared credential '{}'", r.owner),
                    None => format!("the sandbox identity of {}", actor.name),
                };
                return Ok(Some((creds, label)));
            }
            Err(ServiceError::Invalid { .. }) => {}
            Err(e) => return Err(e),
        }
        if !actor.is_admin {
            return Ok(None);
        }
        let mut rows: Vec<_> =
            self.store.list_credentials("system", None).await?.into_iter().filter(|r| r.instance == instance.as_str()).collect();
        rows.sort_by(|a, b| a.owner.cmp(&b.owner));
        match rows.first() {
            Some(r) => Ok(Some((self.open_row(r)?, format!("the shared credential '{}'", r.owner)))),
            None => Ok(None),
        }
    }

    /// Rotates the master key: adds a new key, re-seals every secret under
    /// it, then retires the keys nothing uses (dropped after
    /// [`Self::retired_key_grace`]). One rotation at a time across processes
    /// (a database lock); a row saved meanwhile with an older key is
    /// re-sealed in a further round, never overwritten with older data.
    ///
    /// Refused, changing nothing, where the key file cannot be written (a
    /// read-only mount): the error names the file and why.
    pub async fn rotate(&self, actor: &Actor) -> ServiceResult<Rotation> {
        actor.require_admin()?;
        self.refresh_keys()?;
        let writable = self.keys.read().unwrap_or_else(|e| e.into_inner()).check_writable();
        if let Err(e) = writable {
            let e = rotate_err(e);
            let event = AuditEvent::new(AuditAction::KeysRotate, AuditTarget::None, AuditOutcome::Rejected).detail(e.to_string());
            audit::record_by(&self.store, actor, &event).await?;
            return Err(e);
        }
        let holder = uuid::Uuid::new_v4().simple().to_string();
        let ttl = self.rotate_lease_ttl;
        if !self.store.try_lease(ROTATE_LEASE, &holder, i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)).await? {
            return Err(ServiceError::Conflict("another master key rotation is running; try again when it has finished".into()));
        }
        let out = hold_lease(&self.store, ROTATE_LEASE, &holder, ttl, self.rotate_locked(actor)).await;
        crate::metrics::vault_op("rotate", out.is_ok());
        if let Err(e) = self.store.release_lease(ROTATE_LEASE, &holder).await {
            tracing::warn!(error = %e, "could not release the key rotation lock; it expires by itself");
        }
        out
    }

    async fn rotate_locked(&self, actor: &Actor) -> ServiceResult<Rotation> {
        self.refresh_keys()?;
        // Written to the file first: on failure nothing changed.
        let new_id = self.keys.write().unwrap_or_else(|e| e.into_inner()).add_key().map_err(rotate_err)?;
        let mut resealed_total = 0;
        let mut in_use = Vec::new();
        for _round in 0..5 {
            let rows: Vec<CredentialRow> = self.store.all_credentials().await?.into_iter().filter(|r| r.key_id != new_id).collect();
            let access_keys: Vec<AccessKeyRow> =
                self.store.all_access_keys().await?.into_iter().filter(|k| k.master_key_id != new_id).collect();
            if rows.is_empty() && access_keys.is_empty() {
                in_use = vec![new_id.clone()];
                break;
            }
            let known = self.key_ids();
            if rows.iter().any(|r| !known.contains(&r.key_id)) || access_keys.iter().any(|k| !known.contains(&k.master_key_id)) {
                self.refresh_keys()?;
            }
            let mut resealed = Vec::new();
            let mut resealed_keys = Vec::new();
            {
                let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
                for r in &rows {
                    let ak_aad = credential_aad(&r.scope, &r.owner, &r.instance, "access_key_id");
                    let sk_aad = credential_aad(&r.scope, &r.owner, &r.instance, "secret_access_key");
                    let ak = keys.open(&r.access_key_sealed, &ak_aad).map_err(vault_err)?;
                    let sk = keys.open(&r.secret_sealed, &sk_aad).map_err(vault_err)?;
                    resealed.push(Reseal {
                        id: r.id.clone(),
                        previous_secret_sealed: r.secret_sealed.clone(),
                        access_key_sealed: keys.seal(&ak, &ak_aad).map_err(vault_err)?,
                        secret_sealed: keys.seal(&sk, &sk_aad).map_err(vault_err)?,
                        key_id: new_id.clone(),
                    });
                }
                for k in &access_keys {
                    let aad = access_key_aad(k);
                    let sk = keys.open(&k.secret_sealed, &aad).map_err(vault_err)?;
                    resealed_keys.push(ResealKey {
                        access_key_id: k.access_key_id.clone(),
                        previous_secret_sealed: k.secret_sealed.clone(),
                        secret_sealed: keys.seal(&sk, &aad).map_err(vault_err)?,
                        master_key_id: new_id.clone(),
                    });
                }
            }
            resealed_total += self.store.reseal_credentials(&resealed).await?;
            resealed_total += self.store.reseal_access_keys(&resealed_keys).await?;
            in_use = self.store.key_ids_in_use().await?;
        }
        // Deployments' sealed parameters are not re-sealed: the keys they need stay.
        for id in parameter_key_ids(&self.store).await? {
            if !in_use.contains(&id) {
                in_use.push(id);
            }
        }
        let now = chrono::Utc::now().timestamp();
        let dropped =
            self.keys.write().unwrap_or_else(|e| e.into_inner()).retire(&in_use, self.retired_key_grace, now).map_err(vault_err)?;
        let retired = self.keys.read().unwrap_or_else(|e| e.into_inner()).retired_ids();
        let event = AuditEvent::ok(AuditAction::KeysRotate, AuditTarget::MasterKey(&new_id)).detail(format!(
            "{resealed_total} secret(s) re-sealed; retired {}; dropped {}",
            retired.join(","),
            dropped.join(",")
        ));
        audit::record_by(&self.store, actor, &event).await?;
        Ok(Rotation { current_key: new_id, retired_keys: retired, dropped_keys: dropped, resealed: resealed_total })
    }

    /// A 32-byte key for `purpose` (e.g. "deployment-tokens"), derived from
    /// the current master key (see [`MasterKeys::derive`]): the same on every
    /// replica, never stored, never logged.
    pub fn derive_key(&self, purpose: &str) -> ServiceResult<zeroize::Zeroizing<[u8; 32]>> {
        self.with_keys(|k| k.derive(purpose))
    }

    /// Ids of the loaded keys.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).ids()
    }
}

/// Whether the cloud, asked with the new keys, `found` every one of `ids`
/// (`what`: "VMs", "Elastic IPs", "volumes"); a failure to ask passes with `force`.
fn all_shown(
    ids: &[String],
    found: Result<Vec<String>, ConnectorError>,
    what: &str,
    force: bool,
    refused: &dyn Fn(String) -> ServiceError,
) -> ServiceResult<()> {
    match found {
        Ok(found) if ids.iter().all(|id| found.contains(id)) => Ok(()),
        Ok(_) => Err(refused(format!("the cloud does not show these keys every one of the {what} of the current ones"))),
        Err(ConnectorError::NotFound { .. }) => Err(refused(format!("the cloud does not know these {what} under the new keys"))),
        Err(_) if force => Ok(()),
        Err(e) => Err(refused(format!("the {what} could not be checked with the new keys ({})", explain(&e)))),
    }
}

/// Key ids the deployments' sealed parameters need: a master key rotation
/// does not re-seal them, so it keeps these keys (see [`Vault::rotate`]); here, not in `deployments`, which depends on the vault.
pub(crate) async fn parameter_key_ids(store: &Store) -> ServiceResult<Vec<String>> {
    use base64::Engine as _;
    let mut ids = std::collections::BTreeSet::new();
    for v in store.secret_deployment_values().await? {
        if let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(&v) {
            if let Ok(id) = crate::master_keys::MasterKeys::key_id_of(&blob) {
                ids.insert(id.to_string());
            }
        }
    }
    Ok(ids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::hold_lease;
    use std::time::Duration;

    #[tokio::test]
    async fn a_held_lease_is_renewed_while_the_work_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = cloudbroker_store::Store::open(&cloudbroker_store::sqlite_url_for(dir.path())).await.unwrap();
        let ttl = Duration::from_millis(300);
        assert!(store.try_lease("job", "a", 300).await.unwrap());
        // Another process tries to take it well after the first lease would have expired.
        let other = async {
            let mut taken = Vec::new();
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                taken.push(store.try_lease("job", "b", 300).await.unwrap());
            }
            taken
        };
        let (taken, done) = tokio::join!(
            other,
            hold_lease(&store, "job", "a", ttl, async {
                tokio::time::sleep(Duration::from_millis(1300)).await;
                "done"
            })
        );
        assert_eq!(done, "done");
        assert_eq!(taken, vec![false; 6], "the lease expired under a running job");
        assert_eq!(store.lease_holder("job").await.unwrap().as_deref(), Some("a"));
        // Once the work is over, nothing renews it: it expires.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(store.try_lease("job", "b", 300).await.unwrap());
        store.close().await;
    }
}
