//! System configuration as a service: the effective parameters with their
//! origins, changes made through the UI/API (all or nothing, refused for keys
//! a `connectors.d` file manages), reloading the files, and the connector
//! overview. Every change is audited here, whichever edge asked for it.
//! Only admins see an instance's parameters, their origins (file paths and
//! lines, who set what) and its error details; other users see its name,
//! kind and whether it serves ([`ConnectorsView`]).

use crate::audit::{self, AuditAction, AuditEvent, AuditOutcome, AuditTarget};
use crate::auth::Actor;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::registry::{ConfigChangeError, EffectiveParam, InstanceEntry, Registry, RegistryError, Snapshot};
use cloudbroker_store::Store;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// The whole configuration as an admin sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigView {
    /// System parameters, then every instance's.
    pub params: Vec<EffectiveParam>,
    pub file_errors: Vec<String>,
    pub errors: Vec<String>,
    pub files: Vec<PathBuf>,
    pub version: i64,
}

/// The connector instances as one user may see them.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ConnectorsView {
    /// An admin's view: parameters with their origins, error details.
    Full(Vec<InstanceEntry>),
    /// Anyone else's: no parameters, origins or error details.
    Summary(Vec<ConnectorSummary>),
}

/// A connector instance as a user who is not an admin sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ConnectorSummary {
    pub name: String,
    pub kind: String,
    pub status: SummaryState,
}

/// Whether an instance serves (`{"state": "ready"}` or `{"state": "error"}`).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum SummaryState {
    Ready,
    Error,
}

/// What a change or a reload left behind.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigOutcome {
    pub version: i64,
    pub connectors: usize,
    pub file_errors: Vec<String>,
    pub errors: Vec<String>,
}

impl ConfigOutcome {
    fn of(s: &Snapshot) -> Self {
        Self { version: s.config_version, connectors: s.instances.len(), file_errors: s.file_errors.clone(), errors: s.errors.clone() }
    }
}

impl From<ConfigChangeError> for ServiceError {
    fn from(e: ConfigChangeError) -> Self {
        match e {
            ConfigChangeError::ManagedByFile { .. } => ServiceError::Conflict(e.to_string()),
            // A well-formed name of no parameter: not found, as in a path.
            ConfigChangeError::UnknownKey(k) => ServiceError::NotFound(Resource::Record(format!("parameter '{k}'"))),
            ConfigChangeError::BadValue { .. } => ServiceError::invalid_field("params", e.to_string()),
            ConfigChangeError::Registry(r) => r.into(),
        }
    }
}

impl From<RegistryError> for ServiceError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(s) => s.into(),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// The system configuration service.
pub struct System {
    store: Store,
    registry: Arc<Registry>,
}

/// The most characters of one value a `config.change` record keeps.
const AUDITED_VALUE_CHARS: usize = 200;

/// What a change did to each of `keys`, one line each: `key: old → new`
/// (`(unset)` for no value; a secret's values are never written, only that
/// it changed). The audit page shows these lines as old → new.
pub fn changed_values(before: &Snapshot, after: &Snapshot, keys: &[&str]) -> String {
    let find = |snap: &Snapshot, key: &str| {
        snap.system.iter().chain(snap.instances.iter().flat_map(|i| i.params.iter())).find(|p| p.key == key).cloned()
    };
    let shown = |v: Option<&str>| match v {
        None => "(unset)".to_string(),
        Some(v) => {
            let one_line: String = v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            match one_line.char_indices().nth(AUDITED_VALUE_CHARS) {
                Some((i, _)) => format!("{}…", &one_line[..i]),
                None => one_line,
            }
        }
    };
    keys.iter()
        .map(|key| {
            let (old, new) = (find(before, key), find(after, key));
            if old.as_ref().or(new.as_ref()).is_some_and(|p| p.spec.secret) {
                return format!("{key}: (secret, changed)");
            }
            format!(
                "{key}: {} → {}",
                shown(old.as_ref().and_then(|p| p.value.as_deref())),
                shown(new.as_ref().and_then(|p| p.value.as_deref()))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl System {
    /// A new service.
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        Self { store, registry }
    }

    /// Every parameter with its value and origin (admin).
    pub fn config(&self, actor: &Actor) -> ServiceResult<ConfigView> {
        actor.require_admin()?;
        let snap = self.registry.snapshot();
        Ok(ConfigView {
            params: snap.system.iter().chain(snap.instances.iter().flat_map(|i| i.params.iter())).cloned().collect(),
            file_errors: snap.file_errors.clone(),
            errors: snap.errors.clone(),
            files: snap.files.clone(),
            version: snap.config_version,
        })
    }

    /// Applies changes (`None` clears a value), all or nothing (admin).
    pub async fn set(&self, actor: &Actor, changes: &[(String, Option<String>)]) -> ServiceResult<ConfigOutcome> {
        actor.require_admin()?;
        if changes.len() > 1000 {
            return Err(ServiceError::invalid_field("params", "at most 1000 parameters in one change"));
        }
        for (k, v) in changes {
            if k.chars().count() > 256 || v.as_ref().is_some_and(|v| v.chars().count() > 65_536) {
                return Err(ServiceError::invalid_field("params", "keys are at most 256 characters, values at most 65536"));
            }
        }
        let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
        let before = self.registry.snapshot();
        match self.registry.set_params(changes, actor.name.as_str()).await {
            Ok(snap) => {
                let event =
                    AuditEvent::ok(AuditAction::ConfigChange, AuditTarget::Params(&keys)).detail(changed_values(&before, &snap, &keys));
                audit::record_by(&self.store, actor, &event).await?;
                Ok(ConfigOutcome::of(&snap))
            }
            Err(e) => {
                let e = ServiceError::from(e);
                if !e.is_internal() {
                    let event = AuditEvent::new(AuditAction::ConfigChange, AuditTarget::Params(&keys), AuditOutcome::Rejected)
                        .detail(e.to_string());
                    audit::record_by(&self.store, actor, &event).await?;
                }
                Err(e)
            }
        }
    }

    /// Re-reads `connectors.d` (admin).
    pub async fn reload(&self, actor: &Actor) -> ServiceResult<ConfigOutcome> {
        actor.require_admin()?;
        let snap = self.registry.reload().await?;
        audit::record_by(&self.store, actor, &AuditEvent::ok(AuditAction::ConfigReload, AuditTarget::ConnectorsDir)).await?;
        Ok(ConfigOutcome::of(&snap))
    }

    /// The connector instances with kind, parameters and status (for the
    /// broker's own pages and checks; an edge shows [`Self::connectors_view`]).
    pub fn connectors(&self, _actor: &Actor) -> Vec<InstanceEntry> {
        self.registry.snapshot().instances.clone()
    }

    /// The connector instances as `actor` may see them: everything for an
    /// admin; name, kind and state only for anyone else.
    pub fn connectors_view(&self, actor: &Actor) -> ConnectorsView {
        let snap = self.registry.snapshot();
        if actor.is_admin {
            return ConnectorsView::Full(snap.instances.clone());
        }
        ConnectorsView::Summary(
            snap.instances
                .iter()
                .map(|i| ConnectorSummary {
                    name: i.name.to_string(),
                    kind: i.kind.to_string(),
                    status: match i.status {
                        crate::registry::Status::Ready => SummaryState::Ready,
                        crate::registry::Status::Error { .. } => SummaryState::Error,
                    },
                })
                .collect(),
        )
    }

    /// Whether a boolean system parameter is on.
    pub fn flag(&self, key: &str) -> bool {
        self.registry.snapshot().system_bool(key)
    }
}
