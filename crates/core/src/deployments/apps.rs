//! The applications service: named, versioned documents. A published
//! version never changes; saving an identical document (same text) makes
//! no version, a changed one makes N+1. Everyone signed in reads; members
//! (not viewers) save new names; only a name's creator or an admin adds
//! versions to it or deletes it; a name declared by a file in
//! `connectors.d/applications/` is read-only here (edit the file).
//!
//! Files are loaded with the rest of `connectors.d` (the registry calls
//! [`load_application_files`] and [`store_file_applications`] on every
//! reload): a bad file is reported as `file:line: message` and skipped,
//! the others load; each good file's text is stored as a version (by its
//! hash: unchanged text, no new version), so a deployment can reference a
//! version that never changes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloudbroker_store::applications::StoredApplication;
use cloudbroker_store::Store;
use serde::Serialize;

use super::app::{AppDoc, AppName, Application};
pub use crate::app_doc::{load_application_files, source_hash, store_file_applications, FileApplication};
use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::registry::Registry;

/// The latest version of one application, for lists.
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationSummary {
    pub name: AppName,
    pub version: i64,
    pub description: String,
    /// Its nodes, by name.
    pub nodes: Vec<String>,
    /// The file that declared it, or `saved by <user>`.
    pub origin: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The file that declares it now (read-only here), if any.
    pub declared_in: Option<String>,
}

/// The applications service (on the broker as `broker.applications`).
pub struct Applications {
    store: Store,
    registry: Arc<Registry>,
}

fn not_found(name: &AppName) -> ServiceError {
    ServiceError::NotFound(Resource::Record(format!("application '{name}'")))
}

impl Applications {
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        Self { store, registry }
    }

    /// The file that declares `name` now, if one does (then it is read-only here).
    pub fn declared_in(&self, name: &AppName) -> Option<String> {
        self.registry.snapshot().file_applications.iter().find(|a| &a.name == name).map(|a| a.file.clone())
    }

    fn application(row: StoredApplication) -> ServiceResult<Application> {
        let doc = AppDoc::parse(&row.source).map_err(|e| {
            let all: Vec<String> = e.iter().map(ToString::to_string).collect();
            ServiceError::Internal(format!(
                "stored application '{}' version {} no longer parses: {}",
                row.name,
                row.version,
                all.join("; ")
            ))
        })?;
        Ok(Application {
            name: AppName::from_stored(row.name),
            version: row.version,
            doc,
            source: row.source,
            origin: row.origin,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }

    /// The latest version of every application, by name.
    pub async fn list(&self, _actor: &Actor) -> ServiceResult<Vec<ApplicationSummary>> {
        let snap = self.registry.snapshot();
        let rows = self.store.list_applications().await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let doc = AppDoc::parse(&r.source).ok();
                let name = AppName::from_stored(r.name);
                ApplicationSummary {
                    declared_in: snap.file_applications.iter().find(|a| a.name == name).map(|a| a.file.clone()),
                    name,
                    version: r.version,
                    description: doc.as_ref().map(|d| d.description.clone()).unwrap_or_default(),
                    nodes: doc.map(|d| d.nodes.into_keys().collect()).unwrap_or_default(),
                    origin: r.origin,
                    created_by: r.created_by,
                    created_at: r.created_at,
                }
            })
            .collect())
    }

    /// One version (`None`: the latest). A version given by number is
    /// served even when its name was deleted (deployments reference it).
    pub async fn get(&self, _actor: &Actor, name: &AppName, version: Option<i64>) -> ServiceResult<Application> {
        let row = self.store.get_application(name.as_str(), version).await?;
        match (row, version) {
            (Some(r), Some(_)) => Self::application(r),
            (Some(r), None) if r.deleted_at.is_none() => Self::application(r),
            (None, Some(v)) if self.store.get_application(name.as_str(), None).await?.is_some_and(|r| r.deleted_at.is_none()) => {
                Err(ServiceError::NotFound(Resource::Record(format!("version {v} of application '{name}'"))))
            }
            _ => Err(not_found(name)),
        }
    }

    /// Every version of an application: (version, when, origin), oldest first.
    pub async fn versions(&self, _actor: &Actor, name: &AppName) -> ServiceResult<Vec<(i64, DateTime<Utc>, String)>> {
        let rows = self.store.application_versions(name.as_str()).await?;
        if rows.last().is_none_or(|r| r.deleted_at.is_some()) {
            return Err(not_found(name));
        }
        Ok(rows.into_iter().map(|r| (r.version, r.created_at, r.origin)).collect())
    }

    /// Who may change `name`: refused when a file declares it, or when it
    /// exists and the actor is neither its creator nor an admin. The
    /// existing (not deleted) versions.
    async fn check_change(&self, actor: &Actor, name: &AppName) -> ServiceResult<Vec<StoredApplication>> {
        actor.require_act()?;
        if let Some(file) = self.declared_in(name) {
            return Err(ServiceError::Conflict(format!("application '{name}' is declared in {file}: edit the file and reload")));
        }
        let live: Vec<StoredApplication> =
            self.store.application_versions(name.as_str()).await?.into_iter().filter(|r| r.deleted_at.is_none()).collect();
        if let Some(first) = live.first() {
            if !actor.is_admin && first.created_by.as_deref() != Some(actor.name.as_str()) {
                let by = first.created_by.as_deref().map_or_else(|| first.origin.clone(), |u| format!("created by '{u}'"));
                return Err(ServiceError::Forbidden(format!(
                    "application '{name}' is {by}: only its creator or an administrator may change it"
                )));
            }
        }
        Ok(live)
    }

    /// Saves a document under `name`: validated first (every error at
    /// once, as [`ServiceError::InvalidDocument`]); the same text as the
    /// latest version makes nothing new, a changed one version N+1.
    pub async fn save(&self, actor: &Actor, name: &AppName, text: &str) -> ServiceResult<Application> {
        self.check_change(actor, name).await?;
        let doc = AppDoc::parse_new(text).map_err(ServiceError::InvalidDocument)?;
        let origin = format!("saved by {}", actor.name);
        let (row, created) =
            self.store.put_application(name.as_str(), text, &source_hash(text), &origin, Some(actor.name.as_str())).await?;
        if created {
            tracing::info!(application = %name, version = row.version, user = %actor.name, "application version saved");
            let event = AuditEvent::ok(AuditAction::ApplicationChange, AuditTarget::Application(name.as_str()))
                .detail(format!("version {} saved", row.version));
            audit::record_by(&self.store, actor, &event).await?;
        }
        Ok(Application {
            name: name.clone(),
            version: row.version,
            doc,
            source: row.source,
            origin: row.origin,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }

    /// Deletes an application (every version stays readable by number for
    /// the deployments that reference it). Refused (409) while a deployment
    /// not yet terminated uses it.
    pub async fn delete(&self, actor: &Actor, name: &AppName) -> ServiceResult<()> {
        let live = self.check_change(actor, name).await?;
        if live.is_empty() || !self.store.delete_application(name.as_str()).await? {
            return Err(not_found(name));
        }
        tracing::info!(application = %name, user = %actor.name, "application deleted");
        let event = AuditEvent::ok(AuditAction::ApplicationChange, AuditTarget::Application(name.as_str())).detail("deleted");
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }
}
