//! The admin overview (`/admin`, also `/admin/overview`): across every
//! user, live VMs per connector instance and state (a matrix with totals),
//! users at or above [`NEAR_QUOTA_PERCENT`] of a quota with the figures,
//! the failed launches of the last day (counted; the latest few with their
//! errors, linked), this replica's background workers (reconcile first)
//! with their last run and error (said to be this replica's: the store
//! keeps no other replica's), which replica holds each work lease, and the
//! instances in error. One load is
//! a fixed handful of aggregate queries (see `Provisioning::admin_overview`),
//! never a query per user or per VM.

use super::context::Ctx;
use super::errors::UiResult;
use super::form::when;
use super::{page, Chrome};
use actix_web::web;
use askama::Template;
use cloudbroker_core::domain::VmStatus;
use cloudbroker_core::provisioning::{QuotaSource, NEAR_QUOTA_PERCENT};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(show)).route("/", web::get().to(show)).route("/overview", web::get().to(show));
}

/// One row of the matrix: an instance, its count per state column, its total.
struct MatrixRow {
    instance: String,
    cells: Vec<Cell>,
    total: i64,
}

/// One count of the matrix, with its state column.
struct Cell {
    state: &'static str,
    n: i64,
}

struct QuotaRow {
    user: String,
    instance: String,
    usage: i64,
    limit: i64,
    percent: i64,
    source: &'static str,
}

struct FailedRow {
    id: String,
    name: String,
    user: String,
    project: String,
    instance: String,
    error: String,
    at: String,
}

struct WorkerRow {
    name: String,
    state: String,
    runs: u64,
    last_success: String,
    last_duration: String,
    failures: u64,
    summary: String,
    error: String,
}

/// A work lease: which replica does that work now.
struct LeaseRow {
    name: String,
    holder: String,
    this_replica: bool,
    until: String,
}

#[derive(Template)]
#[template(path = "admin_overview.html")]
struct OverviewPage {
    c: Chrome,
    states: Vec<&'static str>,
    matrix: Vec<MatrixRow>,
    column_totals: Vec<Cell>,
    total: i64,
    near_percent: i64,
    near_quota: Vec<QuotaRow>,
    quotas_enforced: bool,
    failed_count: i64,
    failed_since: String,
    failed: Vec<FailedRow>,
    /// More failed than listed.
    failed_more: bool,
    workers: Vec<WorkerRow>,
    /// This replica's id.
    replica: String,
    leases: Vec<LeaseRow>,
    instances_in_error: Vec<(String, Vec<String>)>,
    file_errors: Vec<String>,
    instance_count: usize,
}

/// A time to the second (UTC).
fn at(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

async fn show(ui: Ctx) -> UiResult {
    let (actor, broker) = (ui.actor(), &ui.broker);
    let o = broker.provisioning.admin_overview(actor).await?;
    let instances: Vec<String> = broker.system.connectors(actor).iter().map(|i| i.name.to_string()).collect();
    // Columns: every live state, in the status order.
    let states: Vec<VmStatus> = VmStatus::ALL.into_iter().filter(|s| s.is_live()).collect();
    let mut names: Vec<String> = instances.clone();
    for c in &o.counts {
        if !names.contains(&c.instance) {
            names.push(c.instance.clone());
        }
    }
    let matrix: Vec<MatrixRow> = names
        .into_iter()
        .map(|instance| {
            let cells: Vec<Cell> = states
                .iter()
                .map(|s| Cell {
                    state: s.as_str(),
                    n: o.counts.iter().filter(|c| c.instance == instance && c.state == *s).map(|c| c.count).sum(),
                })
                .collect();
            MatrixRow { total: cells.iter().map(|c| c.n).sum(), instance, cells }
        })
        .collect();
    let column_totals: Vec<Cell> =
        states.iter().enumerate().map(|(i, s)| Cell { state: s.as_str(), n: matrix.iter().map(|r| r.cells[i].n).sum() }).collect();
    let near_quota = o
        .near_quota
        .iter()
        .map(|q| QuotaRow {
            user: q.user.clone(),
            instance: q.instance.clone(),
            usage: q.usage,
            limit: q.limit,
            percent: q.percent(),
            source: match q.source {
                QuotaSource::Override => "override",
                QuotaSource::Instance => "instance quota.vm",
                QuotaSource::Default => "default",
            },
        })
        .collect();
    let failed = o
        .failed
        .iter()
        .map(|f| FailedRow {
            id: f.id.to_string(),
            name: f.name.clone(),
            user: f.user.clone(),
            project: f.project.clone(),
            instance: f.instance.clone(),
            error: f.error.clone().unwrap_or_else(|| "no reason recorded".into()),
            at: at(&f.at),
        })
        .collect();
    let mut workers: Vec<WorkerRow> = broker
        .readiness()
        .await
        .workers
        .into_iter()
        .map(|w| WorkerRow {
            name: w.name.to_string(),
            state: format!("{:?}", w.state).to_lowercase(),
            runs: w.runs,
            last_success: w.last_success_at.as_ref().map_or_else(|| "never".to_string(), at),
            last_duration: w.last_duration_ms.map_or_else(String::new, |ms| format!("{ms} ms")),
            failures: w.consecutive_failures,
            summary: w.last_summary.unwrap_or_default(),
            error: w.last_error.unwrap_or_default(),
        })
        .collect();
    // Reconciliation first: it is what keeps records and clouds in line.
    workers.sort_by_key(|w| (w.name != "reconcile", w.name != "transition-watch", w.name.clone()));
    let leases = broker
        .work_leases()
        .await?
        .into_iter()
        .map(|l| LeaseRow { name: l.name, holder: l.holder, this_replica: l.this_replica, until: at(&l.until) })
        .collect();
    let total = column_totals.iter().map(|c| c.n).sum();
    Ok(page(&OverviewPage {
        c: ui.chrome("admin/overview", "Overview"),
        states: states.iter().map(|s| s.as_str()).collect(),
        matrix,
        column_totals,
        total,
        near_percent: NEAR_QUOTA_PERCENT,
        near_quota,
        quotas_enforced: o.quotas_enforced,
        failed_count: o.failed_count,
        failed_since: when(&o.failed_since),
        failed_more: o.failed_count > o.failed.len() as i64,
        failed,
        workers,
        replica: broker.replica_id.clone(),
        leases,
        instances_in_error: o.instances_in_error,
        file_errors: o.file_errors,
        instance_count: instances.len(),
    }))
}
