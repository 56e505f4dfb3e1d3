//! The cost report's read of VM state history (issue 25), and bulk writes
//! of history for the benchmarks' seeding tool.
//!
//! [`Store::each_vm_history`] hands a report every VM its filter covers
//! with that VM's history: exactly the VMs and histories
//! [`Store::vms_with_history`] returns (same condition, same order within
//! a VM), read without decoding whole VM records: a report of one user or
//! project streams its VMs' histories through the history's VM index; a
//! report of everyone reads the period's history through its time index
//! (and the older entries of the VMs alive when the period began), each
//! query answering one aggregated text rather than a row per entry.
//!
//! [`Store::seed_state_history`] is for `crates/bench-seed` only, never
//! called by the broker: after it, each VM named has exactly the history
//! given (its rows appended in the order of their times, so the history's
//! sequence order is its time order, as the triggers write it), and its
//! record's `created_at` / `updated_at` are the first and last of those
//! times; no other VM's history or record changes.

use crate::metering::{Bind, PeriodFilter, StateChange};
use crate::{ms_to_time, Store, StoreError};
use cloudbroker_model::VmStatus;
use futures::TryStreamExt;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// What a cost report reads of a VM: what it groups by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeteredVm {
    pub id: String,
    pub user: String,
    pub project: String,
    pub instance: String,
    pub instance_type: String,
    pub image: String,
    /// Empty unless asked for (`with_tags`).
    pub tags: BTreeMap<String, String>,
}

/// `sql` with `binds` bound in order.
fn bound<'q>(sql: &'q str, binds: &[Bind]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

impl Store {
    /// Calls `each` with every VM `f` covers that has state history up to
    /// `f.to`, and that history (oldest first, ties in the order recorded),
    /// in no particular order of VMs; the VMs' tags only `with_tags`.
    ///
    /// A report of one user or project reads its VMs' histories through
    /// the history's VM index (a few VMs among many). A report of everyone
    /// (or of one connector instance) reads the period's history in one
    /// pass over the history's time index, whoever's VMs grew it, and each
    /// covered VM's older entries (those of VMs alive when the period
    /// began) through the VM index: what it reads grows with the period's
    /// history and the VMs alive at its start, not with all history.
    pub async fn each_vm_history<F>(&self, f: &PeriodFilter, with_tags: bool, each: F) -> Result<(), StoreError>
    where
        F: FnMut(&MeteredVm, &[StateChange]) + Send,
    {
        if f.user.is_some() || f.project.is_some() {
            self.each_vm_history_by_vm(f, with_tags, each).await
        } else {
            self.each_vm_history_by_time(f, with_tags, each).await
        }
    }

    /// The VMs `f` covers, by id.
    async fn metered_vms(
        &self,
        conn: &mut sqlx::AnyConnection,
        f: &PeriodFilter,
        with_tags: bool,
    ) -> Result<HashMap<String, MeteredVm>, StoreError> {
        let (cond, binds) = f.sql();
        let tags_col = if with_tags { "tags" } else { "'{}'" };
        let sql = format!("SELECT id, user_name, project, instance, instance_type, image, {tags_col} FROM vms WHERE {cond}");
        let mut vms: HashMap<String, MeteredVm> = HashMap::new();
        let mut rows = bound(&sql, &binds).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            let id: String = r.try_get(0)?;
            let tags: &str = r.try_get(6)?;
            let vm = MeteredVm {
                id: id.clone(),
                user: r.try_get(1)?,
                project: r.try_get(2)?,
                instance: r.try_get(3)?,
                instance_type: r.try_get(4)?,
                image: r.try_get(5)?,
                tags: if with_tags { serde_json::from_str(tags).unwrap_or_default() } else { BTreeMap::new() },
            };
            vms.insert(id, vm);
        }
        Ok(vms)
    }

    /// [`Store::each_vm_history`] through the history's VM index, streamed VM by VM.
    async fn each_vm_history_by_vm<F>(&self, f: &PeriodFilter, with_tags: bool, mut each: F) -> Result<(), StoreError>
    where
        F: FnMut(&MeteredVm, &[StateChange]) + Send,
    {
        let (cond, binds) = f.sql();
        let mut conn = self.pool().acquire().await?;
        let vms = self.metered_vms(&mut conn, f, with_tags).await?;
        if vms.is_empty() {
            return Ok(());
        }
        // The order of Store::vms_with_history within a VM.
        let n = binds.len() + 1;
        let sql = format!(
            "SELECT h.vm_id, h.state, h.at FROM vm_state_history h WHERE h.at <= ${n} AND h.vm_id IN (SELECT id FROM vms WHERE {cond}) \
             ORDER BY h.vm_id, h.at, h.id"
        );
        let mut rows = bound(&sql, &binds).bind(f.to).fetch(&mut *conn);
        let mut current = String::new();
        let mut history: Vec<StateChange> = Vec::new();
        let mut flush = |id: &str, history: &mut Vec<StateChange>| {
            if let Some(vm) = vms.get(id) {
                if !history.is_empty() {
                    each(vm, history);
                }
            }
            history.clear();
        };
        while let Some(r) = rows.try_next().await? {
            let vm_id: &str = r.try_get(0)?;
            if vm_id != current {
                flush(&current, &mut history);
                current.clear();
                current.push_str(vm_id);
            }
            history.push(StateChange { state: state_of(vm_id, r.try_get(1)?)?, at: ms_to_time(r.try_get(2)?) });
        }
        flush(&current, &mut history);
        Ok(())
    }

    /// [`Store::each_vm_history`] through the history's time index (see there).
    async fn each_vm_history_by_time<F>(&self, f: &PeriodFilter, with_tags: bool, mut each: F) -> Result<(), StoreError>
    where
        F: FnMut(&MeteredVm, &[StateChange]) + Send,
    {
        let (cond, binds) = f.sql();
        let mut conn = self.pool().acquire().await?;
        let vms = self.metered_vms(&mut conn, f, with_tags).await?;
        if vms.is_empty() {
            return Ok(());
        }
        // Each covered VM's entries as (at, id, state), by the VM's slot.
        let slots: HashMap<&str, usize> = vms.keys().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let by_slot: Vec<&MeteredVm> = vms.values().collect();
        let mut entries: Vec<Vec<(i64, i64, VmStatus)>> = vec![Vec::new(); vms.len()];
        let n = binds.len() + 1;
        // Each query answers one text of "vm_id state at id" entries, space
        // separated: a row per entry would cross the driver's channel a
        // million times (what dominated the first profile of a report).
        let agg = match self.backend() {
            crate::Backend::Sqlite => "group_concat(h.vm_id || ' ' || h.state || ' ' || h.at || ' ' || h.id, ' ')",
            crate::Backend::Postgres => "string_agg(h.vm_id || ' ' || h.state || ' ' || h.at || ' ' || h.id, ' ')",
        };
        let mut push = |text: Option<String>| -> Result<(), StoreError> {
            let Some(text) = text else { return Ok(()) };
            let bad = || StoreError::Db(sqlx::Error::Decode("state history aggregated as text: malformed".into()));
            let mut it = text.split(' ');
            while let Some(vm_id) = it.next() {
                let (state, at, id) = (it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?);
                if let Some(&slot) = slots.get(vm_id) {
                    let at: i64 = at.parse().map_err(|_| bad())?;
                    let id: i64 = id.parse().map_err(|_| bad())?;
                    entries[slot].push((at, id, state_of(vm_id, state)?));
                }
            }
            Ok(())
        };
        // Entries before the period, of the VMs it covers (alive when it began).
        let sql = format!("SELECT {agg} FROM vm_state_history h WHERE h.at < ${n} AND h.vm_id IN (SELECT id FROM vms WHERE {cond})");
        let (old,): (Option<String>,) =
            bound(&sql, &binds).bind(f.from).try_map(|r: sqlx::any::AnyRow| Ok((r.try_get(0)?,))).fetch_one(&mut *conn).await?;
        push(old)?;
        // The period's entries, whoever's: those of VMs not covered are skipped.
        let sql = format!("SELECT {agg} FROM vm_state_history h WHERE h.at >= $1 AND h.at <= $2");
        let (new,): (Option<String>,) = sqlx::query_as(&sql).bind(f.from).bind(f.to).fetch_one(&mut *conn).await?;
        push(new)?;
        let mut history: Vec<StateChange> = Vec::new();
        for (slot, mut e) in entries.into_iter().enumerate() {
            if e.is_empty() {
                continue;
            }
            // Oldest first, ties in the order recorded: the order of Store::vms_with_history.
            if !e.is_sorted_by_key(|&(at, id, _)| (at, id)) {
                e.sort_unstable_by_key(|&(at, id, _)| (at, id));
            }
            history.clear();
            history.extend(e.iter().map(|&(at, _, state)| StateChange { state, at: ms_to_time(at) }));
            each(by_slot[slot], &history);
        }
        Ok(())
    }
}

/// A history entry's state, read back.
fn state_of(vm_id: &str, state: &str) -> Result<VmStatus, StoreError> {
    VmStatus::parse(state).map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("VM {vm_id}: state history: {}", e.message).into())))
}

/// Rows per multi-row `INSERT` (3 binds each: well under both backends' bind limits).
const BATCH: usize = 1_000;

impl Store {
    /// Replaces the state history of the VMs named in `rows` (`(vm id,
    /// state, at ms)`, any order) with `rows`, appended oldest first, and
    /// sets each VM's `created_at` / `updated_at` to its first / last time.
    /// The VMs' current states are the caller's to match (the last state of
    /// each one's rows). For seeding benchmark databases only: the broker's
    /// history is append-only and written by triggers.
    pub async fn seed_state_history(&self, rows: &[(String, String, i64)]) -> Result<u64, StoreError> {
        let mut sorted: Vec<&(String, String, i64)> = rows.iter().collect();
        sorted.sort_by_key(|r| r.2);
        let mut ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.pool().begin().await?;
        for chunk in ids.chunks(BATCH) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("DELETE FROM vm_state_history WHERE vm_id IN ({list})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        let mut written = 0u64;
        for chunk in sorted.chunks(BATCH) {
            let values =
                (0..chunk.len()).map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3)).collect::<Vec<_>>().join(", ");
            let sql = format!("INSERT INTO vm_state_history (vm_id, state, at) VALUES {values}");
            let mut q = sqlx::query(&sql);
            for (id, state, at) in chunk {
                q = q.bind(id.as_str()).bind(state.as_str()).bind(*at);
            }
            written += q.execute(&mut *tx).await?.rows_affected();
        }
        for chunk in ids.chunks(BATCH) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "UPDATE vms SET created_at = (SELECT MIN(h.at) FROM vm_state_history h WHERE h.vm_id = vms.id), \
                 updated_at = (SELECT MAX(h.at) FROM vm_state_history h WHERE h.vm_id = vms.id) \
                 WHERE id IN ({list}) AND EXISTS (SELECT 1 FROM vm_state_history h WHERE h.vm_id = vms.id)"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(written)
    }
}
