//! What the key-pair, volume and address pages share: a time as their
//! tables show it (how long ago by the broker's clock, the exact UTC time
//! in the `title`, RFC 3339 in `datetime`), the connector instances the
//! user may act on, and the VMs of the current project that can take a
//! volume or an address (live, not on their way out, with a cloud
//! instance), read through the same provisioning service the VM list uses;
//! and the shape of their handlers: a list read on every instance (one that
//! cannot be read is a problem said above the list, not a failed page), a
//! refusal as form messages (what was typed kept by the caller), a row
//! action refused as a message over the list, ids from the path.

use super::context::Ctx;
use super::errors::UiError;
use super::form::{friendly, FormErrors};
use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use cloudbroker_core::domain::{InstanceName, PageRequest, VmStatus};
use cloudbroker_core::provisioning::VmQuery;
use cloudbroker_core::{ServiceError, ServiceResult};
use std::future::Future;

/// A time as the resource tables show it.
pub struct Stamp {
    /// `3 min ago`.
    pub ago: String,
    /// `2026-12-07 10:04:05 UTC` (the cell's `title`).
    pub exact: String,
    /// RFC 3339 (the `<time>`'s `datetime`).
    pub iso: String,
}

impl Stamp {
    /// `t` as seen at `now`.
    pub fn of(t: &DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let s = (now - *t).num_seconds().max(0);
        let ago = match s {
            0..=59 => "just now".to_string(),
            60..=3599 => format!("{} min ago", s / 60),
            3600..=86_399 => format!("{} h ago", s / 3600),
            _ => format!("{} d ago", s / 86_400),
        };
        Self { ago, exact: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(), iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }
    }
}

/// The connector instances the user sees (those a volume or an address can be on).
pub fn instances(ui: &Ctx) -> Vec<String> {
    ui.broker.system.connectors(ui.actor()).iter().map(|i| i.name.to_string()).collect()
}

/// A VM a volume can be attached to, or an address associated with.
pub struct VmChoice {
    pub id: String,
    /// Its name, or its id when it has none.
    pub label: String,
    pub instance: String,
}

/// The current project's VMs on `instance` (every instance: `None`) that
/// can take a volume or an address: live, not shutting down, known to the
/// cloud. At most 500, newest first as the VM list has them.
pub async fn vm_choices(ui: &Ctx, instance: Option<&InstanceName>) -> Vec<VmChoice> {
    let actor = ui.actor();
    let query = VmQuery { project: Some(actor.project.clone()), instance: instance.cloned(), ..VmQuery::default() };
    let Ok(page) = PageRequest::parse(Some("500"), None) else { return Vec::new() };
    let vms = match ui.broker.provisioning.list(actor, query, page).await {
        Ok(p) => p.items,
        Err(e) => {
            tracing::warn!(error = %e, "resource pages: the VMs to choose from");
            Vec::new()
        }
    };
    vms.into_iter()
        .filter(|v| v.status.is_live() && v.status != VmStatus::ShuttingDown && v.cloud_id.is_some())
        .map(|v| VmChoice {
            label: if v.name.is_empty() { v.id.to_string() } else { format!("{} ({})", v.name, v.id) },
            id: v.id.to_string(),
            instance: v.instance.to_string(),
        })
        .collect()
}

/// The status of a page that shows service error `e` as a form message
/// (the status the JSON API answers it with).
pub fn status_of(e: &cloudbroker_core::ServiceError) -> actix_web::http::StatusCode {
    crate::common::error::status_and_code(e).0
}

/// What `read` gives on every instance the user sees (in the instances'
/// order), and the instances it failed on with why (`(instance, why)`, said
/// above the list): one unreachable cloud does not fail the page.
pub async fn per_instance<T, Fut>(ui: &Ctx, read: impl Fn(InstanceName) -> Fut) -> (Vec<T>, Vec<(String, String)>)
where
    Fut: Future<Output = ServiceResult<Vec<T>>>,
{
    let (mut out, mut problems) = (Vec::new(), Vec::new());
    for i in instances(ui) {
        let Ok(name) = InstanceName::parse(&i) else { continue };
        match read(name).await {
            Ok(items) => out.extend(items),
            Err(e) => problems.push((i, friendly(&e))),
        }
    }
    (out, problems)
}

/// A create form's refusal by the service: a message next to each of
/// `fields` it names, else one at the top that starts with `nothing_done`
/// ("No volume was created.") and says why.
pub fn refused(e: &ServiceError, fields: &[&str], nothing_done: &str) -> FormErrors {
    let errs = FormErrors::from_service(e, fields);
    if errs.general.is_some() {
        FormErrors::general(format!("{nothing_done} {}", friendly(e)))
    } else {
        errs
    }
}

/// The `vm` field's message for a VM that is not the project's on the instance.
pub fn no_such_vm() -> FormErrors {
    FormErrors::field("vm", "No such VM in this project on this instance: choose one of the list")
}

/// A row action's (detach, delete, release…) refusal: no right to act, or
/// the row gone, is the error page; anything else a message over the list,
/// `not_done` ("Volume vol-1 was not deleted") and why, with its status.
pub fn row_refused(e: ServiceError, not_done: &str) -> Result<(FormErrors, StatusCode), UiError> {
    match e {
        ServiceError::Forbidden(_) | ServiceError::NotFound(_) => Err(e.into()),
        e => Ok((FormErrors::general(format!("{not_done}. {}", friendly(&e))), status_of(&e))),
    }
}

/// The instance and id a `/{instance}/{id}` path names, `id` read by
/// `parse`; a malformed one names no such thing (`missing`: "No such volume.").
pub fn in_path<Id, E>(
    p: &(String, String),
    parse: impl Fn(&str) -> Result<Id, E>,
    missing: &'static str,
) -> Result<(InstanceName, Id), UiError> {
    let instance = InstanceName::parse(&p.0).map_err(|_| UiError::NotFound(missing))?;
    Ok((instance, parse(&p.1).map_err(|_| UiError::NotFound(missing))?))
}
