//! Deployments in the store (migration 0029): the deployment rows, their
//! members (one row per VM slot attempt, each naming the VM record admitted
//! with it) and their event timeline.
//!
//! A deployment's rows are inserted inside the admission's transaction (the
//! `insert_*` functions take the caller's connection), so its VMs and its
//! rows are recorded together or not at all. One replica drives a
//! deployment at a time: [`Store::claim_deployments`] takes a claim with a
//! conditional update (unclaimed, or its claim expired), so a crashed
//! replica's deployments are resumed by any other. The operation in
//! progress (`op`) is set by a conditional update too, so two never
//! interleave. A held VM (`held`) is released (`requested`) by one
//! conditional update: whoever wins it, and only they, makes the cloud
//! call. Every time is the store's clock.

use crate::{Store, StoreError};
use cloudbroker_model::{DeploymentId, VmId, VmStatus};

/// A deployment as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeploymentRow {
    pub id: DeploymentId,
    pub name: String,
    pub app_name: String,
    pub app_version: i64,
    pub user_name: String,
    pub project: String,
    pub state: String,
    pub on_failure: String,
    /// JSON: node -> {instance, multiplicity, instance_type?}.
    pub placement: String,
    pub message: Option<String>,
    pub abort_requested: Option<String>,
    pub op: Option<String>,
    pub deadline_at: Option<i64>,
    pub claim_owner: Option<String>,
    pub claim_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

const DEPLOYMENT_COLS: &str = "id, name, app_name, app_version, user_name, project, state, on_failure, placement, message, \
     abort_requested, op, deadline_at, claim_owner, claim_until, created_at, updated_at, version";

/// A member (one attempt of one VM slot) with its VM's record, as the
/// driver reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub node: String,
    /// 1-based within the node.
    pub idx: i64,
    pub attempt: i64,
    pub vm_id: Option<VmId>,
    /// held | launching | running | ready | failed | removed
    pub state: String,
    pub ready_at: Option<i64>,
    pub updated_at: i64,
    /// The VM record's state, cloud id, addresses and error (`None`: no record).
    pub vm_state: Option<VmStatus>,
    pub cloud_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub vm_error: Option<String>,
    /// When the VM was launched (its record's `created_at`: a held VM's is
    /// set when it is released).
    pub vm_created_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct MemberDb {
    node: String,
    idx: i64,
    attempt: i64,
    vm_id: Option<String>,
    state: String,
    ready_at: Option<i64>,
    updated_at: i64,
    vm_state: Option<String>,
    cloud_id: Option<String>,
    private_ip: Option<String>,
    public_ip: Option<String>,
    vm_error: Option<String>,
    vm_created_at: Option<i64>,
}

/// One event of a deployment's timeline (its order is `id`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub message: String,
}

/// A deployment to record.
#[derive(Clone, Debug)]
pub struct NewDeployment {
    pub id: DeploymentId,
    pub name: String,
    pub app_name: String,
    pub app_version: i64,
    pub user: String,
    pub project: String,
    pub state: String,
    pub on_failure: String,
    pub placement: String,
    pub deadline_at: Option<i64>,
}

/// A member to record (its VM admitted in the same transaction).
#[derive(Clone, Debug)]
pub struct NewMember {
    pub node: String,
    pub idx: i64,
    pub attempt: i64,
    pub vm_id: VmId,
    pub state: String,
}

/// Records a deployment inside the caller's transaction, at `now`.
pub async fn insert_deployment(conn: &mut sqlx::AnyConnection, d: &NewDeployment, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deployments (id, name, app_name, app_version, user_name, project, state, on_failure, placement, deadline_at, \
         created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 0)",
    )
    .bind(&d.id)
    .bind(&d.name)
    .bind(&d.app_name)
    .bind(d.app_version)
    .bind(&d.user)
    .bind(&d.project)
    .bind(&d.state)
    .bind(&d.on_failure)
    .bind(&d.placement)
    .bind(d.deadline_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records members inside the caller's transaction, at `now`.
pub async fn insert_members(conn: &mut sqlx::AnyConnection, dep: &DeploymentId, members: &[NewMember], now: i64) -> Result<(), StoreError> {
    for m in members {
        sqlx::query(
            "INSERT INTO deployment_members (deployment_id, node, idx, attempt, vm_id, state, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(dep)
        .bind(&m.node)
        .bind(m.idx)
        .bind(m.attempt)
        .bind(&m.vm_id)
        .bind(&m.state)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds an event inside the caller's transaction.
pub async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    dep: &DeploymentId,
    at: i64,
    kind: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO deployment_events (deployment_id, at, kind, message) VALUES ($1, $2, $3, $4)")
        .bind(dep)
        .bind(at)
        .bind(kind)
        .bind(message)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets a parameter inside the caller's transaction (a secret's `value`
/// already sealed), replacing one of the same name.
pub async fn insert_param(
    conn: &mut sqlx::AnyConnection,
    dep: &DeploymentId,
    name: &str,
    value: &str,
    secret: bool,
    set_by: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deployment_params (deployment_id, name, value, secret, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (deployment_id, name) DO UPDATE SET value = excluded.value, secret = excluded.secret, set_by = excluded.set_by, \
         set_at = excluded.set_at",
    )
    .bind(dep)
    .bind(name)
    .bind(value)
    .bind(i64::from(secret))
    .bind(set_by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a deployment's admission writes in its transaction
/// ([`crate::Store::admit_launches`]'s `extra`): the deployment, its
/// members, its parameters given at deploy ((name, stored value, secret)),
/// and its first event.
pub fn new_deployment_rows(
    d: NewDeployment,
    members: Vec<NewMember>,
    params: Vec<(String, String, bool)>,
    set_by: String,
    event: String,
) -> crate::quota::ExtraFn<'static> {
    Box::new(move |conn: &mut sqlx::AnyConnection, now: i64| {
        Box::pin(async move {
            insert_deployment(conn, &d, now).await?;
            insert_members(conn, &d.id, &members, now).await?;
            for (name, value, secret) in &params {
                insert_param(conn, &d.id, name, value, *secret, &set_by, now).await?;
            }
            insert_event(conn, &d.id, now, "created", &event).await
        })
    })
}

/// What an admission of more members writes in its transaction: the
/// members, the attempt they replace marked failed (`replaces`: (node,
/// idx, attempt)), and an event. The new members wait for their launch,
/// so a deployment `executing` or `ready` is `provisioning` again in the
/// same transaction (no reader sees it `ready` with VMs not launched: a
/// page showing it keeps refreshing until the driver launched them).
pub fn more_members_rows(
    dep: DeploymentId,
    members: Vec<NewMember>,
    replaces: Option<(String, i64, i64)>,
    kind: &'static str,
    event: String,
) -> crate::quota::ExtraFn<'static> {
    Box::new(move |conn: &mut sqlx::AnyConnection, now: i64| {
        Box::pin(async move {
            if let Some((node, idx, attempt)) = &replaces {
                sqlx::query(
                    "UPDATE deployment_members SET state = 'failed', updated_at = $5 \
                     WHERE deployment_id = $1 AND node = $2 AND idx = $3 AND attempt = $4",
                )
                .bind(&dep)
                .bind(node)
                .bind(*idx)
                .bind(*attempt)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            insert_members(conn, &dep, &members, now).await?;
            insert_event(conn, &dep, now, kind, &event).await?;
            let moved = sqlx::query(
                "UPDATE deployments SET state = 'provisioning', updated_at = $2, version = version + 1 \
                 WHERE id = $1 AND state IN ('executing', 'ready')",
            )
            .bind(&dep)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if moved.rows_affected() == 1 {
                insert_event(conn, &dep, now, "provisioning", "VMs wait for their launch").await?;
            }
            Ok(())
        })
    })
}

/// The deployments a driver pass works on: on their way somewhere, with an
/// operation in progress (a failed one's clean-up), woken (one of their VMs
/// changed: migration 0031's trigger), or ready with an abort asked for.
/// Settled ones (ready, failed, terminated) are not read: the text is the
/// partial index `deployments_driven`'s condition, word for word, so both
/// backends answer from that index.
pub const DRIVEN: &str = "state IN ('provisioning', 'executing', 'terminating') OR op IS NOT NULL OR wake <> 0 \
     OR (state = 'ready' AND abort_requested IS NOT NULL)";

impl Store {
    /// One deployment.
    pub async fn get_deployment(&self, id: &DeploymentId) -> Result<Option<DeploymentRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {DEPLOYMENT_COLS} FROM deployments WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?)
    }

    /// Deployments, newest first: one project's, or every one (`None`).
    pub async fn list_deployments(&self, project: Option<&str>) -> Result<Vec<DeploymentRow>, StoreError> {
        let rows = match project {
            Some(p) => {
                sqlx::query_as(&format!("SELECT {DEPLOYMENT_COLS} FROM deployments WHERE project = $1 ORDER BY created_at DESC, id DESC"))
                    .bind(p)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as(&format!("SELECT {DEPLOYMENT_COLS} FROM deployments ORDER BY created_at DESC, id DESC"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(rows)
    }

    /// How many deployments of application `app` a project has had (to name the next one).
    pub async fn count_deployments_of(&self, project: &str, app: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM deployments WHERE project = $1 AND app_name = $2")
            .bind(project)
            .bind(app)
            .fetch_one(self.pool())
            .await?;
        Ok(n)
    }

    /// Whether a live deployment (not terminated) uses application `app`.
    pub async fn application_in_use(&self, app: &str) -> Result<bool, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM deployments WHERE app_name = $1 AND state <> 'terminated'")
            .bind(app)
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// A deployment's members, every attempt, with their VMs' records, by node, index and attempt.
    pub async fn deployment_members(&self, id: &DeploymentId) -> Result<Vec<MemberRow>, StoreError> {
        let rows: Vec<MemberDb> = sqlx::query_as(&format!(
            "SELECT m.node, m.idx, m.attempt, m.vm_id, m.state, m.ready_at, m.updated_at, v.state AS vm_state, v.cloud_id, \
             v.private_ip, v.public_ip, v.error AS vm_error, v.created_at AS vm_created_at FROM deployment_members m LEFT JOIN vms v ON v.id = m.vm_id \
             WHERE m.deployment_id = $1 ORDER BY {}, m.idx, m.attempt",
            self.bytewise("m.node")
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let vm_state = match r.vm_state {
                    Some(s) => Some(
                        VmStatus::parse(&s).map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("vms.state: {}", e.message).into())))?,
                    ),
                    None => None,
                };
                Ok(MemberRow {
                    node: r.node,
                    idx: r.idx,
                    attempt: r.attempt,
                    vm_id: r.vm_id.map(VmId::from_stored),
                    state: r.state,
                    ready_at: r.ready_at,
                    updated_at: r.updated_at,
                    vm_state,
                    cloud_id: r.cloud_id,
                    private_ip: r.private_ip,
                    public_ip: r.public_ip,
                    vm_error: r.vm_error,
                    vm_created_at: r.vm_created_at,
                })
            })
            .collect()
    }

    /// A deployment's timeline, in order.
    pub async fn deployment_events(&self, id: &DeploymentId) -> Result<Vec<EventRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, at, kind, message FROM deployment_events WHERE deployment_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Adds an event to a deployment's timeline, now.
    pub async fn add_deployment_event(&self, id: &DeploymentId, kind: &str, message: &str) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_event(&mut conn, id, self.clock_ms(), kind, message).await
    }

    /// Records members (a replacement attempt, a scale up) with an event, in one transaction.
    pub async fn add_deployment_members(
        &self,
        id: &DeploymentId,
        members: &[NewMember],
        kind: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let now = self.clock_ms();
        insert_members(&mut tx, id, members, now).await?;
        insert_event(&mut tx, id, now, kind, message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` deployments the driver works on for `owner`
    /// until `until` (ms): each only when unclaimed, its claim expired, or
    /// already `owner`'s (renewed). Returns the ids claimed.
    pub async fn claim_deployments(&self, owner: &str, until: i64, limit: i64) -> Result<Vec<DeploymentId>, StoreError> {
        let now = self.clock_ms();
        let candidates: Vec<(DeploymentId,)> = sqlx::query_as(&format!(
            "SELECT id FROM deployments WHERE ({DRIVEN}) AND (claim_owner IS NULL OR claim_until < $1 OR claim_owner = $2) \
             ORDER BY updated_at LIMIT $3"
        ))
        .bind(now)
        .bind(owner)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::new();
        for (id,) in candidates {
            let r = sqlx::query(
                "UPDATE deployments SET claim_owner = $2, claim_until = $3 WHERE id = $1 \
                 AND (claim_owner IS NULL OR claim_until < $4 OR claim_owner = $2)",
            )
            .bind(&id)
            .bind(owner)
            .bind(until)
            .bind(now)
            .execute(self.pool())
            .await?;
            if r.rows_affected() == 1 {
                claimed.push(id);
            }
        }
        Ok(claimed)
    }

    /// Who stopped or terminated VM `vm` through the broker since `since`
    /// (ms): the actor and action of its latest such audit record, if any
    /// (none: it was stopped or ended at the cloud, outside the broker).
    pub async fn vm_stopped_by(&self, vm: &VmId, since: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT actor, action FROM audit_log WHERE target = $1 AND action IN ('vm.stop', 'vm.terminate') AND outcome = 'ok' \
             AND at >= $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(vm)
        .bind(since)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Clears a deployment's `wake` (the driver, before it reads its members:
    /// a change made after this wakes it again).
    pub async fn clear_deployment_wake(&self, id: &DeploymentId) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET wake = 0 WHERE id = $1 AND wake <> 0").bind(id).execute(self.pool()).await?;
        Ok(())
    }

    /// The plan of a driver pass's query (`EXPLAIN QUERY PLAN` on SQLite,
    /// `EXPLAIN` on PostgreSQL), one line per row, for tests.
    pub async fn explain_claim_deployments(&self) -> Result<String, StoreError> {
        let sql = format!(
            "SELECT id FROM deployments WHERE ({DRIVEN}) AND (claim_owner IS NULL OR claim_until < 0 OR claim_owner = 'x') \
             ORDER BY updated_at LIMIT 50"
        );
        // A table of a few rows is read whole whatever its indexes: with
        // sequential scans priced out, the plan says whether the partial
        // index can answer (its condition proven by the query's).
        let mut plans = self.query_plans(&[("claim", sql)], crate::plans::PlanKind::IndexesPreferred).await?;
        Ok(plans.pop().map(|(_, plan)| plan).unwrap_or_default())
    }

    /// Whether `owner` still holds its claim on `id` (renewing it until `until`).
    pub async fn renew_deployment_claim(&self, id: &DeploymentId, owner: &str, until: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE deployments SET claim_until = $3 WHERE id = $1 AND claim_owner = $2")
            .bind(id)
            .bind(owner)
            .bind(until)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives up `owner`'s claim on `id`.
    pub async fn release_deployment_claim(&self, id: &DeploymentId, owner: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET claim_owner = NULL, claim_until = NULL WHERE id = $1 AND claim_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Moves a deployment from one of `from` to `to` (with `message` when
    /// given) and records the event `kind`, in one transaction. False (and
    /// nothing written) when it is in none of `from`.
    pub async fn transition_deployment(
        &self,
        id: &DeploymentId,
        from: &[&str],
        to: &str,
        message: Option<&str>,
        kind: &str,
        event: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let now = self.clock_ms();
        let states = from.iter().map(|s| format!("'{}'", s.replace('\'', ""))).collect::<Vec<_>>().join(", ");
        let r = sqlx::query(&format!(
            "UPDATE deployments SET state = $2, message = COALESCE($3, message), updated_at = $4, version = version + 1 \
             WHERE id = $1 AND state IN ({states})"
        ))
        .bind(id)
        .bind(to)
        .bind(message)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_event(&mut tx, id, now, kind, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts operation `op` on a deployment: only when none is in
    /// progress and the deployment is in one of `states` (false otherwise).
    pub async fn begin_deployment_op(&self, id: &DeploymentId, op: &str, states: &[&str]) -> Result<bool, StoreError> {
        let states = states.iter().map(|s| format!("'{}'", s.replace('\'', ""))).collect::<Vec<_>>().join(", ");
        let r = sqlx::query(&format!(
            "UPDATE deployments SET op = $2, updated_at = $3, version = version + 1 WHERE id = $1 AND op IS NULL AND state IN ({states})"
        ))
        .bind(id)
        .bind(op)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends operation `op` (false: another, or none, is in progress).
    pub async fn finish_deployment_op(&self, id: &DeploymentId, op: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE deployments SET op = NULL, updated_at = $3, version = version + 1 WHERE id = $1 AND op = $2")
            .bind(id)
            .bind(op)
            .bind(self.clock_ms())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Sets the operation in progress whatever it was (a failure's clean-up
    /// takes over from a scale it interrupts).
    pub async fn force_deployment_op(&self, id: &DeploymentId, op: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET op = $2, updated_at = $3, version = version + 1 WHERE id = $1")
            .bind(id)
            .bind(op)
            .bind(self.clock_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sets a member's state (false: no such member, or already in it).
    pub async fn set_member_state(&self, id: &DeploymentId, node: &str, idx: i64, attempt: i64, state: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE deployment_members SET state = $5, updated_at = $6 \
             WHERE deployment_id = $1 AND node = $2 AND idx = $3 AND attempt = $4 AND state <> $5",
        )
        .bind(id)
        .bind(node)
        .bind(idx)
        .bind(attempt)
        .bind(state)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Releases a held VM: `held` -> `requested`, its `created_at` set to now
    /// (the reconciler's launch grace counts from the release, since that is
    /// when its cloud call is made). True for one caller alone, who then
    /// makes the cloud call.
    pub async fn release_held_vm(&self, vm: &VmId) -> Result<bool, StoreError> {
        let now = self.clock_ms();
        let r = sqlx::query(
            "UPDATE vms SET state = 'requested', created_at = $2, updated_at = $2, state_since = NULL, version = version + 1 \
             WHERE id = $1 AND state = 'held'",
        )
        .bind(vm)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a held VM that will never be launched (`terminated`, with why).
    /// False when it is no longer held.
    pub async fn end_held_vm(&self, vm: &VmId, why: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET state = 'terminated', error = $3, updated_at = $2, state_since = NULL, version = version + 1 \
             WHERE id = $1 AND state = 'held'",
        )
        .bind(vm)
        .bind(self.clock_ms())
        .bind(why)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
