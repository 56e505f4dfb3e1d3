//! The cost report's read of VM state history (issue 25), and bulk writes
//! of history for the benchmarks' seeding tool.
//!
//! [`Store::each_vm_history`] hands a report every VM its filter covers
//! that ran in the period, with that VM's running history and type changes:
//! exactly the VMs (of those with spans), histories and type changes
//! [`Store::vms_with_history`] returns (same condition, same order within a
//! VM), read from the running spans
//! (migration 0030) without decoding whole VM records, each query
//! answering one aggregated text rather than a row per VM or span.
//!
//! [`Store::seed_state_history`] is for `crates/bench-seed` only, never
//! called by the broker: after it, each VM named has exactly the history
//! given (its rows appended in the order of their times, so the history's
//! sequence order is its time order, as the triggers write it, and its
//! running spans are written anew from them by their trigger), and its
//! record's `created_at` / `updated_at` are the first and last of those
//! times; no other VM's history or record changes.

use crate::metering::{Bind, PeriodFilter, StateChange, TypeChange};
use crate::{Store, StoreError};
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
    /// Calls `each` with every VM `f` covers that ran during `[f.from,
    /// f.to]`, with its running history (as [`Store::vms_with_history`]
    /// gives it: each running span's start and end, oldest first) and the
    /// changes of its type (`Store::type_changes_on`), in no particular
    /// order of VMs; the VMs' tags only `with_tags`.
    ///
    /// Two queries, each answering one aggregated text rather than a row
    /// per VM or span (a row crosses the driver's channel one at a time:
    /// what dominated the first profiles of a report): the VMs `f` covers,
    /// and the running spans that reach into the period. A report of one
    /// user or project reads its VMs' spans through the spans' VM index; a
    /// report of everyone (or of one connector instance) reads the period's
    /// spans through their end's index, whoever's: what it reads grows with
    /// the spans in the period, never with all history. A third query reads
    /// the type changes the same way (as rows: they are rare).
    pub async fn each_vm_history<F>(&self, f: &PeriodFilter, with_tags: bool, mut each: F) -> Result<(), StoreError>
    where
        F: FnMut(&MeteredVm, &[StateChange], &[TypeChange]) + Send,
    {
        let (cond, binds) = f.sql();
        let mut conn = self.pool().acquire().await?;
        let vms = self.metered_vms(&mut conn, &cond, &binds, with_tags).await?;
        if vms.is_empty() {
            return Ok(());
        }
        let slots: HashMap<&str, usize> = vms.iter().enumerate().map(|(i, v)| (v.id.as_str(), i)).collect();
        // Each covered VM's spans as (from, id, to), by the VM's slot.
        let mut spans: Vec<Vec<(i64, i64, Option<i64>)>> = vec![Vec::new(); vms.len()];
        let agg = match self.backend() {
            crate::Backend::Sqlite => {
                "group_concat(s.vm_id || ' ' || s.started_at || ' ' || s.id || ' ' || COALESCE(CAST(s.ended_at AS TEXT), '-'), ' ')"
            }
            crate::Backend::Postgres => {
                "string_agg(s.vm_id || ' ' || s.started_at || ' ' || s.id || ' ' || COALESCE(CAST(s.ended_at AS TEXT), '-'), ' ')"
            }
        };
        let n = binds.len() + 1;
        let in_period = "s.started_at <= $1 AND (s.ended_at IS NULL OR s.ended_at >= $2)";
        let by_vm = f.user.is_some() || f.project.is_some();
        let types = self.type_changes_on(&mut conn, by_vm.then_some((cond.as_str(), &binds[..])), f.from).await?;
        let text: Option<String> = if by_vm {
            let sql = format!(
                "SELECT {agg} FROM vm_running_spans s WHERE s.started_at <= ${n} AND (s.ended_at IS NULL OR s.ended_at >= ${}) \
                 AND s.vm_id IN (SELECT id FROM vms WHERE {cond})",
                n + 1
            );
            let (t,): (Option<String>,) = bound(&sql, &binds)
                .bind(f.to)
                .bind(f.from)
                .try_map(|r: sqlx::any::AnyRow| Ok((r.try_get(0)?,)))
                .fetch_one(&mut *conn)
                .await?;
            t
        } else {
            // Whoever's: spans of VMs not covered are skipped below.
            let sql = format!("SELECT {agg} FROM vm_running_spans s WHERE {in_period}");
            let (t,): (Option<String>,) = sqlx::query_as(&sql).bind(f.to).bind(f.from).fetch_one(&mut *conn).await?;
            t
        };
        if let Some(text) = text {
            let bad = || StoreError::Db(sqlx::Error::Decode("running spans aggregated as text: malformed".into()));
            let mut it = text.split(' ');
            while let Some(vm_id) = it.next() {
                let (from, id, to) = (it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?, it.next().ok_or_else(bad)?);
                if let Some(&slot) = slots.get(vm_id) {
                    let from: i64 = from.parse().map_err(|_| bad())?;
                    let id: i64 = id.parse().map_err(|_| bad())?;
                    let to: Option<i64> = if to == "-" { None } else { Some(to.parse().map_err(|_| bad())?) };
                    spans[slot].push((from, id, to));
                }
            }
        }
        let mut history: Vec<StateChange> = Vec::new();
        for (slot, mut s) in spans.into_iter().enumerate() {
            if s.is_empty() {
                continue;
            }
            // Oldest first, in the order recorded.
            if !s.is_sorted_by_key(|&(from, id, _)| (from, id)) {
                s.sort_unstable_by_key(|&(from, id, _)| (from, id));
            }
            history.clear();
            for &(from, _, to) in &s {
                crate::metering::push_span(&mut history, from, to);
            }
            each(&vms[slot], &history, types.get(vms[slot].id.as_str()).map_or(&[], Vec::as_slice));
        }
        Ok(())
    }

    /// The VMs covered by `cond` (on `vms`, with `binds`), read as one
    /// aggregated text (fields split by U+001F, VMs by U+001E: neither
    /// occurs in names, and JSON escapes both).
    async fn metered_vms(
        &self,
        conn: &mut sqlx::AnyConnection,
        cond: &str,
        binds: &[Bind],
        with_tags: bool,
    ) -> Result<Vec<MeteredVm>, StoreError> {
        let tags_col = if with_tags { "tags" } else { "'{}'" };
        let (fs, rs, agg) = match self.backend() {
            crate::Backend::Sqlite => ("char(31)", "char(30)", "group_concat"),
            crate::Backend::Postgres => ("chr(31)", "chr(30)", "string_agg"),
        };
        let sql = format!(
            "SELECT {agg}(id || {fs} || user_name || {fs} || project || {fs} || instance || {fs} || instance_type || {fs} || image \
             || {fs} || COALESCE({tags_col}, '{{}}'), {rs}) FROM vms WHERE {cond}"
        );
        let (text,): (Option<String>,) =
            bound(&sql, binds).try_map(|r: sqlx::any::AnyRow| Ok((r.try_get(0)?,))).fetch_one(&mut *conn).await?;
        let Some(text) = text else { return Ok(Vec::new()) };
        let bad = || StoreError::Db(sqlx::Error::Decode("VMs aggregated as text: malformed".into()));
        let mut out = Vec::new();
        for rec in text.split('\u{1e}') {
            let mut it = rec.split('\u{1f}');
            let mut next = || it.next().ok_or_else(bad);
            let (id, user, project, instance, instance_type, image, tags) = (next()?, next()?, next()?, next()?, next()?, next()?, next()?);
            if it.next().is_some() {
                return Err(bad());
            }
            out.push(MeteredVm {
                id: id.to_string(),
                user: user.to_string(),
                project: project.to_string(),
                instance: instance.to_string(),
                instance_type: instance_type.to_string(),
                image: image.to_string(),
                tags: if with_tags { serde_json::from_str(tags).unwrap_or_default() } else { BTreeMap::new() },
            });
        }
        Ok(out)
    }
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
            // Their running spans too: the history's trigger writes them
            // anew from the rows appended below (in time order).
            for table in ["vm_state_history", "vm_running_spans"] {
                let sql = format!("DELETE FROM {table} WHERE vm_id IN ({list})");
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
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
