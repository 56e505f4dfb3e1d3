//! Stop, start or terminate several VMs at once from the table: the
//! table's checkboxes (`vm.<id>`) and an action post to `/vms/bulk`, which
//! changes nothing and answers one confirmation page listing the VMs; its
//! button posts the same to `/vms/bulk/confirm`, which acts on each VM
//! through the one provisioning service (its role, credential, budget and
//! audit rules apply to each, as to one click) and reports each VM's
//! outcome on its own line. Every VM named must be one the user sees
//! (checked for all before anything is done): a form naming another
//! project's VM is refused whole, 404, and nothing happens. No JavaScript.

use super::{friendly, VmRow};
use crate::ui::context::{CsrfForm, Ctx};
use crate::ui::errors::{UiError, UiResult};
use crate::ui::{html, Chrome};
use actix_web::http::StatusCode;
use askama::Template;
use cloudbroker_core::domain::{VmAction, VmId};
use cloudbroker_core::provisioning::Vm;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The most VMs one batch may name.
const MAX_BATCH: usize = 200;

/// The form: the action, and a field `vm.<id>` per VM selected.
#[derive(Deserialize, Default)]
pub(in crate::ui) struct BulkForm {
    #[serde(default)]
    action: String,
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
}

/// One VM of the batch as the pages list it.
struct BatchRow {
    vm: VmRow,
    /// What happened (the result page), or what will (the confirmation).
    outcome: String,
    /// Whether it went through (the result page).
    ok: bool,
}

#[derive(Template)]
#[template(path = "vms_bulk.html")]
struct BulkPage {
    c: Chrome,
    /// `stop`, `start` or `terminate`.
    action: &'static str,
    /// The action in words, capitalised (`Stop`).
    verb: &'static str,
    rows: Vec<BatchRow>,
    /// The result page (else the confirmation).
    done: bool,
    /// The result in a sentence (`2 of 3 stopped; 1 refused`).
    summary: String,
}

/// The action asked for (stop, start, terminate).
fn action_of(s: &str) -> Result<(VmAction, &'static str), UiError> {
    match s {
        "stop" => Ok((VmAction::Stop, "Stop")),
        "start" => Ok((VmAction::Start, "Start")),
        "terminate" => Ok((VmAction::Terminate, "Terminate")),
        _ => Err(UiError::Page {
            status: StatusCode::BAD_REQUEST,
            heading: "That did not work",
            message: "Choose Stop, Start or Terminate for the VMs selected. Nothing was changed.".into(),
        }),
    }
}

/// The VMs the form names, every one seen by the user (else the whole
/// batch is refused: not found), in the order named.
async fn batch(ui: &Ctx, form: &BulkForm) -> Result<Vec<Vm>, UiError> {
    let ids: Vec<&str> = form.fields.iter().filter(|(_, v)| !v.is_empty()).filter_map(|(k, _)| k.strip_prefix("vm.")).collect();
    if ids.is_empty() {
        return Err(UiError::Page {
            status: StatusCode::BAD_REQUEST,
            heading: "No VM selected",
            message: "Tick the VMs to act on in the list, then choose the action. Nothing was changed.".into(),
        });
    }
    if ids.len() > MAX_BATCH {
        return Err(UiError::Page {
            status: StatusCode::BAD_REQUEST,
            heading: "Too many VMs",
            message: format!("At most {MAX_BATCH} VMs at once. Nothing was changed."),
        });
    }
    let mut vms = Vec::with_capacity(ids.len());
    for id in ids {
        let id = VmId::parse(id).map_err(|_| UiError::NotFound("No such VM: nothing was changed."))?;
        match ui.broker.provisioning.get(ui.actor(), &id).await {
            Ok(v) => vms.push(v),
            Err(cloudbroker_core::ServiceError::NotFound(_)) => return Err(UiError::NotFound("No such VM: nothing was changed.")),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(vms)
}

/// What `action` will do to VM `v`, as the confirmation says it.
fn preview(v: &VmRow, action: VmAction) -> String {
    let applies = match action {
        VmAction::Stop => v.can_stop,
        VmAction::Start => v.can_start,
        _ => v.can_terminate,
    };
    if applies {
        match action {
            VmAction::Terminate => "will be destroyed with its disks".into(),
            VmAction::Stop => "will be stopped".into(),
            _ => "will be started".into(),
        }
    } else {
        format!("is {}: the broker will say what it makes of it", v.state)
    }
}

/// The confirmation page: nothing changes.
pub(super) async fn confirm(ui: Ctx, form: CsrfForm<BulkForm>) -> UiResult {
    let form = form.into_inner();
    let (action, verb) = action_of(&form.action)?;
    let vms = batch(&ui, &form).await?;
    ui.actor().require_act()?;
    let now = ui.broker.clock.now();
    let rows = vms
        .into_iter()
        .map(|v| {
            let vm = VmRow::of(v, now);
            BatchRow { outcome: preview(&vm, action), vm, ok: true }
        })
        .collect::<Vec<_>>();
    let title = format!("{verb} {} VM(s)?", rows.len());
    let summary = title.clone();
    Ok(html(StatusCode::OK, &BulkPage { c: ui.chrome("vms", title), action: action.as_str(), verb, rows, done: false, summary }))
}

/// Acts on each VM and reports each outcome.
pub(super) async fn apply(ui: Ctx, form: CsrfForm<BulkForm>) -> UiResult {
    let form = form.into_inner();
    let (action, verb) = action_of(&form.action)?;
    let vms = batch(&ui, &form).await?;
    ui.actor().require_act()?;
    let now = ui.broker.clock.now();
    let mut rows = Vec::with_capacity(vms.len());
    for v in vms {
        let id = v.id.clone();
        let (vm, outcome, ok) = match ui.broker.provisioning.action(ui.actor(), &id, action).await {
            Ok(after) => {
                let outcome = format!("now {}", after.status.as_str());
                (VmRow::of(after, now), outcome, true)
            }
            Err(e) => (VmRow::of(v, now), format!("refused: {}", friendly(&e)), false),
        };
        rows.push(BatchRow { vm, outcome, ok });
    }
    let done = rows.iter().filter(|r| r.ok).count();
    let failed = rows.len() - done;
    let past = match action {
        VmAction::Stop => "stopped",
        VmAction::Start => "started",
        _ => "terminated",
    };
    let mut summary = format!("{verb}: {done} of {} VM(s) {past}", rows.len());
    if failed > 0 {
        summary.push_str(&format!("; {failed} refused (each says why below)"));
    }
    let status = if done == 0 { StatusCode::CONFLICT } else { StatusCode::OK };
    Ok(html(
        status,
        &BulkPage { c: ui.chrome("vms", format!("{verb}: results")), action: action.as_str(), verb, rows, done: true, summary },
    ))
}
