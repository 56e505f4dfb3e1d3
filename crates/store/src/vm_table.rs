//! The VM table of the web console (issue 23): one project's VMs filtered
//! (instance, states, an exact name or a tag), sorted by a column in either
//! direction, a page of them by LIMIT/OFFSET in the query, and how many
//! match in all. Ties always break by creation time then id, newest first,
//! so a page's rows never shift between two reads of an unchanged table.
//! Sorting by name is indexed (migration 0032); the other columns are read
//! within a project (indexed), which bounds what the database sorts.
//! Also what the VM's page shows beside its state history: the audit
//! records about the VM (by target, indexed in 0032).

use crate::vms::{vm, VmRow, VmTuple, COLS};
use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};

/// Which VMs the table shows.
#[derive(Clone, Debug, Default)]
pub struct VmTableFilter {
    /// Only this project's (`None`: every project, admins only).
    pub project: Option<String>,
    pub instance: Option<String>,
    /// Only VMs in one of these states (`None`: any state).
    pub states: Option<Vec<String>>,
    /// An exact name.
    pub name: Option<String>,
    /// A user tag that must be present with this value.
    pub tag: Option<(String, String)>,
}

/// The column the table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmTableSort {
    Name,
    State,
    Type,
    Instance,
    Created,
}

impl VmTableSort {
    fn column(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::State => "state",
            Self::Type => "instance_type",
            Self::Instance => "instance",
            Self::Created => "created_at",
        }
    }
}

/// `f` as a WHERE clause with its binds (all text).
fn condition(store: &Store, f: &VmTableFilter) -> (String, Vec<String>) {
    let mut sql = String::from("1 = 1");
    let mut binds: Vec<String> = Vec::new();
    for (col, v) in [("project", &f.project), ("instance", &f.instance), ("name", &f.name)] {
        if let Some(v) = v {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {col} = ${}", binds.len()));
        }
    }
    if let Some(states) = &f.states {
        if states.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            let mut ps = Vec::new();
            for s in states {
                binds.push(s.clone());
                ps.push(format!("${}", binds.len()));
            }
            sql.push_str(&format!(" AND state IN ({})", ps.join(", ")));
        }
    }
    if let Some((k, val)) = &f.tag {
        binds.push(k.clone());
        binds.push(val.clone());
        let (kp, vp) = (binds.len() - 1, binds.len());
        sql.push_str(&match store.backend() {
            crate::Backend::Sqlite => {
                format!(" AND EXISTS (SELECT 1 FROM json_each(vms.tags) j WHERE j.key = ${kp} AND j.value = ${vp})")
            }
            crate::Backend::Postgres => {
                format!(" AND EXISTS (SELECT 1 FROM jsonb_each_text(vms.tags::jsonb) j WHERE j.key = ${kp} AND j.value = ${vp})")
            }
        });
    }
    (sql, binds)
}

/// One audit record about a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmAuditRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub detail: String,
}

impl Store {
    /// Rows `offset..offset + limit` of the VMs matching `f`, sorted by
    /// `sort` (`desc`: descending), ties by creation time then id, newest
    /// first. Newest first (`Created`, `desc`) may instead start after a
    /// VM (`after`: its creation time in ms and id, the keyset of the
    /// previous page's last row; `offset` is then not used).
    pub async fn table_vms(
        &self,
        f: &VmTableFilter,
        sort: VmTableSort,
        desc: bool,
        offset: i64,
        limit: i64,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<VmRow>, StoreError> {
        let (mut cond, mut binds) = condition(self, f);
        let dir = if desc { "DESC" } else { "ASC" };
        let order = match sort {
            VmTableSort::Created => format!("created_at {dir}, id {dir}"),
            s => format!("{} {dir}, created_at DESC, id DESC", s.column()),
        };
        let after = after.filter(|_| sort == VmTableSort::Created && desc);
        if let Some((_, id)) = after {
            binds.push(id.to_string());
            let idp = binds.len();
            cond.push_str(&format!(" AND (created_at < ${a} OR (created_at = ${a} AND id < ${idp}))", a = idp + 1));
        }
        let base = binds.len() + usize::from(after.is_some());
        let (lp, op) = (base + 1, base + 2);
        let sql = format!("SELECT {COLS} FROM vms WHERE {cond} ORDER BY {order} LIMIT ${lp} OFFSET ${op}");
        let mut q = sqlx::query_as::<_, VmTuple>(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        if let Some((ms, _)) = after {
            q = q.bind(ms);
        }
        let offset = if after.is_some() { 0 } else { offset };
        let rows = q.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        rows.into_iter().map(vm).collect()
    }

    /// How many VMs match `f`.
    pub async fn count_table_vms(&self, f: &VmTableFilter) -> Result<i64, StoreError> {
        let (cond, binds) = condition(self, f);
        let sql = format!("SELECT COUNT(*) FROM vms WHERE {cond}");
        let mut q = sqlx::query_as::<_, (i64,)>(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        Ok(q.fetch_one(self.pool()).await?.0)
    }

    /// The ids of every VM matching `f`, newest first (to sort by a value
    /// the database does not hold, such as the cost this month).
    pub async fn table_vm_ids(&self, f: &VmTableFilter) -> Result<Vec<String>, StoreError> {
        let (cond, binds) = condition(self, f);
        let sql = format!("SELECT id FROM vms WHERE {cond} ORDER BY created_at DESC, id DESC");
        let mut q = sqlx::query_as::<_, (String,)>(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        Ok(q.fetch_all(self.pool()).await?.into_iter().map(|(id,)| id).collect())
    }

    /// The VMs with these ids (in no particular order; unknown ids are left out).
    pub async fn vms_by_ids(&self, ids: &[String]) -> Result<Vec<VmRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ps: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!("SELECT {COLS} FROM vms WHERE id IN ({})", ps.join(", "));
        let mut q = sqlx::query_as::<_, VmTuple>(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(self.pool()).await?.into_iter().map(vm).collect()
    }

    /// The audit records whose target is one of `targets` (a VM's id, its
    /// launch's `instance/launch_id`), oldest first, at most `limit`.
    pub async fn audit_of_targets(&self, targets: &[String], limit: i64) -> Result<Vec<VmAuditRow>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let ps: Vec<String> = (1..=targets.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT at, actor, action, outcome, detail FROM audit_log WHERE target IN ({}) ORDER BY id LIMIT ${}",
            ps.join(", "),
            targets.len() + 1
        );
        let mut q = sqlx::query_as::<_, (i64, String, String, String, String)>(&sql);
        for t in targets {
            q = q.bind(t);
        }
        let rows = q.bind(limit).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(at, actor, action, outcome, detail)| VmAuditRow { at: ms_to_time(at), actor, action, outcome, detail })
            .collect())
    }
}
