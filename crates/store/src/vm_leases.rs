//! VM leases in the store: the `lease_*` columns of `vms` (migration 0023).
//! A lease is set (or removed) only while no replica is acting on its
//! expiry; a replica acts only after claiming the expiry with one
//! conditional update, which succeeds for one replica alone and only while
//! the lease is still expired and not dealt with. So an extension that
//! commits first wins over the worker, and two replicas never both act.
//!
//! The worker's queries (below `set_vm_lease`) each name one partial index
//! of migration 0023, so a pass reads only leases not yet dealt with.

use crate::{Store, StoreError};
use cloudbroker_model::{CredentialId, InstanceName, LeaseAction, NewLease, ProjectName, VmId, VmStatus};

impl Store {
    /// Sets VM `id`'s lease (`None`: removes it), forgetting any earlier
    /// warning, claim and outcome. Returns `false` (nothing written) while
    /// a replica holds a claim on the current lease's expiry and has not
    /// dealt with it (it is acting on the VM now).
    pub async fn set_vm_lease(&self, id: &VmId, lease: Option<&NewLease>) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET lease_expires_at = $2, lease_action = $3, lease_warn_at = $4, lease_warned_at = NULL, \
             lease_claimed_by = NULL, lease_claimed_at = NULL, lease_done_at = NULL, lease_note = NULL, \
             updated_at = $5, version = version + 1 \
             WHERE id = $1 AND (lease_claimed_by IS NULL OR lease_done_at IS NOT NULL)",
        )
        .bind(id)
        .bind(lease.map(|l| l.expires_at))
        .bind(lease.map(|l| l.action.as_str()))
        .bind(lease.map(|l| l.warn_at))
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// A VM whose lease the worker deals with: what it needs to warn, close,
/// claim and act, read from the lease indexes alone (no tags, no history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseDue {
    pub id: VmId,
    pub instance: InstanceName,
    pub credential_id: CredentialId,
    pub project: ProjectName,
    pub state: VmStatus,
    pub cloud_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// The expiry (ms since the epoch).
    pub expires_at: i64,
    pub action: LeaseAction,
    /// When the warning is due (ms).
    pub warn_at: Option<i64>,
    /// The replica holding a claim on the expiry, and since when (ms).
    pub claimed_by: Option<String>,
    pub claimed_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LeaseDueDb {
    id: String,
    instance: String,
    credential_id: String,
    project: String,
    state: String,
    cloud_id: Option<String>,
    private_ip: Option<String>,
    public_ip: Option<String>,
    lease_expires_at: i64,
    lease_action: String,
    lease_warn_at: Option<i64>,
    lease_claimed_by: Option<String>,
    lease_claimed_at: Option<i64>,
}

const DUE_COLS: &str = "id, instance, credential_id, project, state, cloud_id, private_ip, public_ip, lease_expires_at, lease_action, \
                        lease_warn_at, lease_claimed_by, lease_claimed_at";

/// The states of a VM that has ended (or is ending): its lease has nothing
/// left to do.
const ENDED: &str = "('terminated', 'failed', 'shutting-down')";

/// Warnings due at `$1`, at most `$2`: the `vms_lease_warn_due` index.
fn warnings_due_sql() -> String {
    format!(
        "SELECT {DUE_COLS} FROM vms WHERE lease_warn_at IS NOT NULL AND lease_warned_at IS NULL AND lease_done_at IS NULL \
         AND lease_warn_at <= $1 ORDER BY lease_warn_at LIMIT $2"
    )
}

/// Expiries due at `$1`, at most `$2`, earliest first: the `vms_lease_due` index.
fn expiries_due_sql() -> String {
    format!(
        "SELECT {DUE_COLS} FROM vms WHERE lease_expires_at IS NOT NULL AND lease_done_at IS NULL AND lease_expires_at <= $1 \
         ORDER BY lease_expires_at LIMIT $2"
    )
}

/// How many expiries are due at `$1`: the `vms_lease_due` index.
const COUNT_DUE_SQL: &str =
    "SELECT COUNT(*) FROM vms WHERE lease_expires_at IS NOT NULL AND lease_done_at IS NULL AND lease_expires_at <= $1";

/// Closes the due leases (at `$1`) of ended VMs nobody claimed (a claimed
/// one ended by its claimant's act: the worker records that): the
/// `vms_lease_due` index. The
/// state is tested as an expression (`state || ''`) so that no database
/// reads the (state, instance) index instead: it holds every ended VM of
/// the history, the due index only the leases not dealt with.
fn close_ended_sql() -> String {
    format!(
        "UPDATE vms SET lease_done_at = $1, lease_note = 'ended before its lease (' || state || ')', \
         updated_at = $2, version = version + 1 \
         WHERE lease_expires_at IS NOT NULL AND lease_done_at IS NULL AND lease_expires_at <= $1 AND (state || '') IN {ENDED} \
         AND lease_claimed_by IS NULL"
    )
}

fn decode(what: String) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(what.into()))
}

fn due(t: LeaseDueDb) -> Result<LeaseDue, StoreError> {
    let state = VmStatus::parse(&t.state).map_err(|e| decode(format!("VM {}: column state: {}", t.id, e.message)))?;
    let instance = InstanceName::parse(&t.instance).map_err(|e| decode(format!("VM {}: column instance: {e}", t.id)))?;
    let action = LeaseAction::parse(&t.lease_action).map_err(|e| decode(format!("VM {}: column lease_action: {}", t.id, e.message)))?;
    Ok(LeaseDue {
        id: VmId::from_stored(t.id),
        instance,
        credential_id: CredentialId::from_stored(t.credential_id),
        project: ProjectName::from_stored(t.project),
        state,
        cloud_id: t.cloud_id,
        private_ip: t.private_ip,
        public_ip: t.public_ip,
        expires_at: t.lease_expires_at,
        action,
        warn_at: t.lease_warn_at,
        claimed_by: t.lease_claimed_by,
        claimed_at: t.lease_claimed_at,
    })
}

/// The lease worker's queries. Every one names the predicate of one of the
/// two partial indexes of migration 0023 (`vms_lease_warn_due`,
/// `vms_lease_due`), so it reads only leases not yet dealt with, however
/// many VMs and ended leases the table holds. Times are the caller's clock
/// (ms), never the database's or this process's: a test sets them.
impl Store {
    /// Up to `limit` leases whose warning is due at `now` and not yet
    /// recorded (nor the lease dealt with), earliest first.
    pub async fn vm_lease_warnings_due(&self, now: i64, limit: i64) -> Result<Vec<LeaseDue>, StoreError> {
        let rows: Vec<LeaseDueDb> = sqlx::query_as(&warnings_due_sql()).bind(now).bind(limit).fetch_all(self.pool()).await?;
        rows.into_iter().map(due).collect()
    }

    /// Records that VM `id`'s warning was given at `now` (with `note`, or
    /// keeping the note when `None`), if it is still due and not recorded:
    /// true for one caller alone (the one that then audits it).
    pub async fn mark_vm_lease_warned(&self, id: &VmId, now: i64, note: Option<&str>) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET lease_warned_at = $2, lease_note = COALESCE($3, lease_note), updated_at = $4, version = version + 1 \
             WHERE id = $1 AND lease_warn_at IS NOT NULL AND lease_warn_at <= $2 AND lease_warned_at IS NULL AND lease_done_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(note)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Closes every lease expired at `now` whose VM ended before it
    /// (terminated, failed, shutting down) and that no replica claimed (a
    /// claimed one may have ended by its claimant's act: the worker that
    /// takes the claim over records that): done at `now`, noted "ended
    /// before its lease (<state>)". No cloud call is needed. Returns how
    /// many were closed.
    pub async fn close_ended_vm_leases(&self, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(&close_ended_sql()).bind(now).bind(self.clock_ms()).execute(self.pool()).await?;
        Ok(r.rows_affected())
    }

    /// Up to `limit` leases expired at `now` and not dealt with, earliest
    /// expiry first (claimed ones included: the caller sees whose).
    pub async fn vm_lease_expiries_due(&self, now: i64, limit: i64) -> Result<Vec<LeaseDue>, StoreError> {
        let rows: Vec<LeaseDueDb> = sqlx::query_as(&expiries_due_sql()).bind(now).bind(limit).fetch_all(self.pool()).await?;
        rows.into_iter().map(due).collect()
    }

    /// How many leases are expired at `now` and not dealt with (read when
    /// [`Store::vm_lease_expiries_due`] came back full, to report what waits).
    pub async fn count_vm_leases_due(&self, now: i64) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(COUNT_DUE_SQL).bind(now).fetch_one(self.pool()).await?;
        Ok(n)
    }

    /// Claims VM `id`'s expired lease for `holder` at `now`: true for one
    /// caller alone, and only while the lease is still expired at `now`,
    /// not dealt with, and unclaimed or its claim older than `claim_ttl` ms
    /// (the claimant died). An extension committed first wins: the lease is
    /// then no longer expired.
    pub async fn claim_vm_lease(&self, id: &VmId, holder: &str, now: i64, claim_ttl: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET lease_claimed_by = $2, lease_claimed_at = $3 \
             WHERE id = $1 AND lease_expires_at IS NOT NULL AND lease_done_at IS NULL AND lease_expires_at <= $3 \
             AND (lease_claimed_by IS NULL OR lease_claimed_at < $4)",
        )
        .bind(id)
        .bind(holder)
        .bind(now)
        .bind(now - claim_ttl)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives up `holder`'s claim on VM `id`'s lease without dealing with it
    /// (the next pass tries again), with `note` saying why when given.
    /// Returns false when `holder` holds no such claim (taken over).
    pub async fn release_vm_lease_claim(&self, id: &VmId, holder: &str, note: Option<&str>) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET lease_claimed_by = NULL, lease_claimed_at = NULL, lease_note = COALESCE($3, lease_note), \
             updated_at = $4, version = version + 1 WHERE id = $1 AND lease_claimed_by = $2 AND lease_done_at IS NULL",
        )
        .bind(id)
        .bind(holder)
        .bind(note)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records that `holder` dealt with VM `id`'s lease at `now`, with
    /// `note`: only the claimant, once (false: no such claim, or done).
    /// Nothing acts on this lease again.
    pub async fn finish_vm_lease(&self, id: &VmId, holder: &str, now: i64, note: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET lease_done_at = $3, lease_note = $4, updated_at = $5, version = version + 1 \
             WHERE id = $1 AND lease_claimed_by = $2 AND lease_done_at IS NULL",
        )
        .bind(id)
        .bind(holder)
        .bind(now)
        .bind(note)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// The lease worker's statements over many rows, as a pass runs them, with
/// `$1` the pass's time and the limits a pass uses (1,000 warnings, 100
/// expiries), named: what the plan test and the benchmark
/// (`cloudbroker-bench-seed --plans leases`) ask the database to plan.
pub fn lease_statements() -> [(&'static str, String); 4] {
    [
        ("warnings due", warnings_due_sql().replace("$2", "1000")),
        ("expiries due", expiries_due_sql().replace("$2", "100")),
        ("count due", COUNT_DUE_SQL.to_string()),
        ("close ended", close_ended_sql().replace("$2", "$1")),
    ]
}

#[cfg(feature = "testing")]
impl Store {
    /// Test support: the database's plan of each of the lease worker's
    /// queries over many rows ((name, plan text)), to check that each reads
    /// its partial index. PostgreSQL is asked with sequential scans
    /// discouraged (a test table is small enough for one to look cheaper);
    /// SQLite as is.
    pub async fn lease_query_plans(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let queries = lease_statements().map(|(name, sql)| (name, sql.replace("$1", "1000")));
        self.query_plans(&queries, crate::plans::PlanKind::IndexesPreferred).await
    }
}
