//! Reading VM state history (migration 0024): the states each VM took and
//! when, as the triggers appended them, and the running spans a trigger
//! keeps from it (migration 0030), and the changes of each VM's instance
//! type (migration 0046), which say what type each span ran as. Metering
//! bills from these rows alone, never from "now minus created_at".

use crate::vms::VmRow;
use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};
use cloudbroker_model::{VmId, VmStatus};

/// One recorded state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub state: VmStatus,
    pub at: DateTime<Utc>,
}

/// One recorded change of a VM's instance type (always while stopped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeChange {
    pub at: DateTime<Utc>,
    /// The type until `at`.
    pub from: String,
    /// The type from `at` on.
    pub to: String,
}

/// A VM as metering reads it: its record (with its current type), its
/// running history and the changes of its type, each oldest first.
#[derive(Clone, Debug)]
pub struct VmHistory {
    pub vm: VmRow,
    pub states: Vec<StateChange>,
    pub types: Vec<TypeChange>,
}

impl Store {
    /// The states VM `id` took, oldest first (ties in the order they were recorded).
    pub async fn vm_state_history(&self, id: &VmId) -> Result<Vec<StateChange>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, at FROM vm_state_history WHERE vm_id = $1 ORDER BY at, id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|(state, at)| {
                let state = VmStatus::parse(&state)
                    .map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("VM {id}: state history: {}", e.message).into())))?;
                Ok(StateChange { state, at: ms_to_time(at) })
            })
            .collect()
    }

    /// The changes of VM `id`'s instance type, oldest first.
    pub async fn vm_type_changes(&self, id: &VmId) -> Result<Vec<TypeChange>, StoreError> {
        let rows: Vec<(String, i64, String, String)> =
            sqlx::query_as("SELECT vm_id, at, from_type, to_type FROM vm_type_changes WHERE vm_id = $1 ORDER BY at, id")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(type_change).map(|(_, c)| c).collect())
    }

    /// The type changes at or after `from` (ms), by VM, oldest first: of
    /// the VMs `scope` covers (a condition on `vms` with its binds), or of
    /// every VM when `None` (the caller skips those it does not cover).
    /// One query whatever the number of VMs; changes are rare, so it reads
    /// few rows. Those before `from` are not needed: a change is made only
    /// while the VM is stopped, so none falls inside a running span, and a
    /// span that reaches into the period and started before a change ended
    /// before it: the change is at or after `from`.
    pub(crate) async fn type_changes_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        scope: Option<(&str, &[Bind])>,
        from: i64,
    ) -> Result<std::collections::HashMap<String, Vec<TypeChange>>, StoreError> {
        let (sql, binds) = match scope {
            Some((cond, binds)) => (
                format!(
                    "SELECT c.vm_id, c.at, c.from_type, c.to_type FROM vm_type_changes c WHERE c.at >= ${} \
                     AND c.vm_id IN (SELECT id FROM vms WHERE {cond}) ORDER BY c.vm_id, c.at, c.id",
                    binds.len() + 1
                ),
                binds,
            ),
            None => {
                ("SELECT vm_id, at, from_type, to_type FROM vm_type_changes WHERE at >= $1 ORDER BY vm_id, at, id".to_string(), &[][..])
            }
        };
        let mut q = sqlx::query_as::<_, (String, i64, String, String)>(&sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        let mut out: std::collections::HashMap<String, Vec<TypeChange>> = std::collections::HashMap::new();
        for (vm_id, c) in q.bind(from).fetch_all(&mut *conn).await?.into_iter().map(type_change) {
            out.entry(vm_id).or_default().push(c);
        }
        Ok(out)
    }
}

/// A row of `vm_type_changes` read as (vm id, change).
fn type_change((vm_id, at, from, to): (String, i64, String, String)) -> (String, TypeChange) {
    (vm_id, TypeChange { at: ms_to_time(at), from, to })
}

/// A bound value of a metering query.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// Which VMs a report covers: those that existed during `[from, to)` (ms),
/// of one user, project or connector instance when given.
#[derive(Clone, Debug, Default)]
pub struct PeriodFilter {
    pub user: Option<String>,
    pub project: Option<String>,
    pub instance: Option<String>,
    pub from: i64,
    pub to: i64,
}

impl PeriodFilter {
    /// The condition on `vms` and its binds: recorded by `to`, and not
    /// ended (terminated, failed) before `from`.
    pub(crate) fn sql(&self) -> (String, Vec<Bind>) {
        let mut binds = vec![Bind::Int(self.to), Bind::Int(self.from)];
        let mut sql = "created_at <= $1 AND NOT (state IN ('terminated', 'failed') AND updated_at < $2)".to_string();
        for (col, v) in [("user_name", &self.user), ("project", &self.project), ("instance", &self.instance)] {
            if let Some(v) = v {
                binds.push(Bind::Text(v.clone()));
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        (sql, binds)
    }
}

impl Store {
    /// The VMs a report over `f` covers, each with its running history up
    /// to `f.to` (oldest first): two queries, whatever the number of VMs.
    ///
    /// The history is what metering reads of it, from the running spans
    /// (migration 0030) that reach into the period: each span's start
    /// (`running`) and, when it ended, its end (`stopped`, standing for
    /// whichever state ended it). `running_spans` of it is exactly
    /// `running_spans` of the full history over `[f.from, f.to]` (spans that
    /// ended before `f.from` bill nothing there and are left out), and
    /// its last entry is `running` exactly when the VM's last recorded state is.
    /// Each VM's type changes are those `Store::type_changes_on` reads.
    pub async fn vms_with_history(&self, f: &PeriodFilter) -> Result<Vec<VmHistory>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        self.vms_with_history_on(&mut conn, f).await
    }

    /// [`Store::vms_with_history`] on one connection (a transaction's).
    pub(crate) async fn vms_with_history_on(&self, conn: &mut sqlx::AnyConnection, f: &PeriodFilter) -> Result<Vec<VmHistory>, StoreError> {
        let (cond, binds) = f.sql();
        let vms = self.vms_where(&mut *conn, &cond, &binds).await?;
        if vms.is_empty() {
            return Ok(Vec::new());
        }
        let n = binds.len() + 1;
        let sql = format!(
            "SELECT s.vm_id, s.started_at, s.ended_at FROM vm_running_spans s \
             WHERE s.started_at <= ${n} AND (s.ended_at IS NULL OR s.ended_at >= ${}) AND s.vm_id IN (SELECT id FROM vms WHERE {cond}) \
             ORDER BY s.vm_id, s.started_at, s.id",
            n + 1
        );
        let mut q = sqlx::query_as::<_, (String, i64, Option<i64>)>(&sql);
        for b in &binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        let rows = q.bind(f.to).bind(f.from).fetch_all(&mut *conn).await?;
        let mut by_vm: std::collections::HashMap<String, Vec<StateChange>> = std::collections::HashMap::new();
        for (vm_id, from, to) in rows {
            push_span(by_vm.entry(vm_id).or_default(), from, to);
        }
        let mut types = self.type_changes_on(&mut *conn, Some((&cond, &binds)), f.from).await?;
        Ok(vms
            .into_iter()
            .map(|vm| {
                let states = by_vm.remove(vm.id.as_str()).unwrap_or_default();
                let types = types.remove(vm.id.as_str()).unwrap_or_default();
                VmHistory { vm, states, types }
            })
            .collect())
    }
}

/// Appends a running span (`from`, and `to` when it ended; ms) to a
/// running history: `running` at its start, `stopped` at its end.
pub(crate) fn push_span(history: &mut Vec<StateChange>, from: i64, to: Option<i64>) {
    history.push(StateChange { state: VmStatus::Running, at: ms_to_time(from) });
    if let Some(to) = to {
        history.push(StateChange { state: VmStatus::Stopped, at: ms_to_time(to) });
    }
}

/// A volume or an Elastic IP as metering bills it: from creation (or
/// allocation) until deleted (released), or still.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSpan {
    pub instance: String,
    pub id: String,
    pub user: String,
    pub project: String,
    /// Volumes: the size in GiB; addresses: 0.
    pub size_gib: i64,
    /// Volumes: the volume type (`standard` when the cloud named none); addresses: empty.
    pub volume_type: String,
    /// Volumes' tags (addresses carry none here).
    pub tags: std::collections::BTreeMap<String, String>,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

impl Store {
    /// The volumes and the Elastic IPs that existed during `f`'s period
    /// (of one user, project or instance when given): one query each.
    pub async fn resources_in_period(&self, f: &PeriodFilter) -> Result<(Vec<ResourceSpan>, Vec<ResourceSpan>), StoreError> {
        let mut binds = vec![Bind::Int(f.to), Bind::Int(f.from)];
        let mut cond = "created_at <= $1 AND (ended_at IS NULL OR ended_at >= $2)".to_string();
        for (col, v) in [("user_name", &f.user), ("project", &f.project), ("instance", &f.instance)] {
            if let Some(v) = v {
                binds.push(Bind::Text(v.clone()));
                cond.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        type Row = (String, String, String, String, i64, Option<String>, String, i64, Option<i64>);
        let mut out = Vec::new();
        for sql in [
            format!("SELECT instance, volume_id, user_name, project, size_gib, volume_type, tags, created_at, ended_at FROM volumes WHERE {cond} ORDER BY created_at"),
            format!("SELECT instance, allocation_id, user_name, project, 0, NULL, '{{}}', created_at, ended_at FROM addresses WHERE {cond} ORDER BY created_at"),
        ] {
            let mut q = sqlx::query_as::<_, Row>(&sql);
            for b in &binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            let rows = q.fetch_all(self.pool()).await?;
            out.push(
                rows.into_iter()
                    .map(|(instance, id, user, project, size_gib, volume_type, tags, from, to)| ResourceSpan {
                        instance,
                        id,
                        user,
                        project,
                        size_gib,
                        volume_type: volume_type.unwrap_or_default(),
                        tags: serde_json::from_str(&tags).unwrap_or_default(),
                        from: ms_to_time(from),
                        to: to.map(ms_to_time),
                    })
                    .collect::<Vec<_>>(),
            );
        }
        let addresses = out.pop().unwrap_or_default();
        let volumes = out.pop().unwrap_or_default();
        Ok((volumes, addresses))
    }
}
