//! The web console's VM table and VM page (issue 23). The table is one
//! project's VMs (the actor's; admins may name another), filtered by
//! instance, states, an exact name or a tag, sorted by a column, one page
//! of it by LIMIT/OFFSET in the query with the count of all that match.
//! Sorting by the cost this month (a value the database does not hold)
//! reads the matching ids, orders them by the costs given, and reads the
//! page's rows alone. The VM page reads the VM's state history (the
//! triggers' rows) merged with the audit records about it and its launch,
//! and which credential it was launched with (never a secret: its scope,
//! its owner, and to those who may see it, its key's masked hint).

use super::{Provisioning, Vm};
use crate::auth::Actor;
use crate::domain::{Cursor, InstanceName, ProjectName, VmId, VmStatus};
use crate::error::ServiceResult;
use chrono::{DateTime, Utc};
use cloudbroker_store::vm_table::{VmTableFilter, VmTableSort};
use std::collections::BTreeMap;

/// The column the table is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VmSort {
    Name,
    State,
    Type,
    Instance,
    #[default]
    Created,
    /// The cost this month so far.
    Cost,
}

impl VmSort {
    /// Every column, as the URL names it.
    pub const ALL: [VmSort; 6] = [Self::Name, Self::State, Self::Type, Self::Instance, Self::Created, Self::Cost];

    /// The name in the URL (`?sort=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::State => "state",
            Self::Type => "type",
            Self::Instance => "instance",
            Self::Created => "created",
            Self::Cost => "cost",
        }
    }

    /// The column named `s` (`None`: no such column).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the column reads best descending first (newest, dearest).
    pub fn desc_first(self) -> bool {
        matches!(self, Self::Created | Self::Cost)
    }
}

/// Which rows of the table to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmTableQuery {
    /// Admins only: another project's table (others always read theirs).
    pub project: Option<ProjectName>,
    pub instance: Option<InstanceName>,
    /// Only these states (`None`: any).
    pub states: Option<Vec<VmStatus>>,
    /// An exact name.
    pub name: Option<String>,
    /// A user tag as `key`, `value`.
    pub tag: Option<(String, String)>,
    pub sort: VmSort,
    pub desc: bool,
    /// The first row (0-based).
    pub offset: u64,
    /// How many rows at most.
    pub limit: u32,
    /// Newest first only: start after this VM (the keyset of the previous
    /// page's last row, [`VmTablePage::next`]); `offset` then only numbers the rows.
    pub after: Option<Cursor>,
}

/// One page of the table.
#[derive(Clone, Debug)]
pub struct VmTablePage {
    pub items: Vec<Vm>,
    /// How many VMs match in all.
    pub total: u64,
    /// Newest first: the keyset of this page's last row, to start the next
    /// page after (`None`: another order, or the last page).
    pub next: Option<Cursor>,
}

/// One line of a VM's history: a state it took, or something done to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmHistoryLine {
    pub at: DateTime<Utc>,
    /// The state it took (`None`: an audit record about it).
    pub state: Option<VmStatus>,
    /// Why, or what was done and by whom (empty: the record says no more).
    pub reason: String,
}

/// The credential a VM was launched with, as its page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialUsed {
    /// `user`, `project`, `system` (shared), or `none` (a connector that
    /// needs no credentials: the launcher's own identity there).
    pub scope: String,
    /// The user, the project, or the shared credential's name.
    pub owner: String,
    /// The access key's masked hint, to those who may read the credential.
    pub hint: Option<String>,
}

impl Provisioning {
    /// One page of the VM table and how many VMs match; `costs` (by VM id,
    /// in micro-units) orders the table when it is sorted by cost.
    pub async fn table(&self, actor: &Actor, q: &VmTableQuery, costs: &BTreeMap<String, i64>) -> ServiceResult<VmTablePage> {
        let project = match (&q.project, actor.is_admin) {
            (Some(p), true) => p.to_string(),
            _ => actor.project.to_string(),
        };
        let filter = VmTableFilter {
            project: Some(project),
            instance: q.instance.as_ref().map(|i| i.to_string()),
            states: q.states.as_ref().map(|s| s.iter().map(|s| s.as_str().to_string()).collect()),
            name: q.name.clone(),
            tag: q.tag.clone(),
        };
        let total = self.store.count_table_vms(&filter).await?.max(0) as u64;
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        let limit = i64::from(q.limit.max(1));
        let sort = match q.sort {
            VmSort::Name => VmTableSort::Name,
            VmSort::State => VmTableSort::State,
            VmSort::Type => VmTableSort::Type,
            VmSort::Instance => VmTableSort::Instance,
            VmSort::Created => VmTableSort::Created,
            VmSort::Cost => {
                let mut ids = self.store.table_vm_ids(&filter).await?;
                // Stable: equal costs keep the newest first.
                let cost = |id: &String| costs.get(id).copied().unwrap_or(0);
                if q.desc {
                    ids.sort_by_key(|id| std::cmp::Reverse(cost(id)));
                } else {
                    ids.sort_by_key(cost);
                }
                let page: Vec<String> = ids.into_iter().skip(q.offset as usize).take(limit as usize).collect();
                let mut rows = self.store.vms_by_ids(&page).await?;
                rows.sort_by_key(|r| page.iter().position(|id| id == r.id.as_str()));
                return Ok(VmTablePage { items: self.vms(rows)?, total, next: None });
            }
        };
        let after = q.after.as_ref().map(|c| (c.num, c.key.as_str()));
        let rows = self.store.table_vms(&filter, sort, q.desc, offset, limit + 1, after).await?;
        let keyset = sort == VmTableSort::Created && q.desc;
        let page = crate::domain::Page::from_fetched(self.vms(rows)?, limit as u32, |v| {
            Cursor::new(v.created_at.timestamp_millis(), v.id.as_str())
        });
        let next = page.next_cursor.filter(|_| keyset).and_then(|c| Cursor::decode(&c).ok());
        Ok(VmTablePage { items: page.items, total, next })
    }

    /// VM `id`'s history, oldest first: each state it took (with the
    /// reason where the broker knows it: who launched it, why it failed)
    /// and the audit records about it and its launch (who terminated it,
    /// its lease set, warned and expired).
    pub async fn history(&self, actor: &Actor, id: &VmId) -> ServiceResult<Vec<VmHistoryLine>> {
        let v = self.owned(actor, id).await?;
        let states = self.store.vm_state_history(id).await?;
        let targets = vec![v.id.to_string(), format!("{}/{}", v.instance, v.launch_id)];
        let audit = self.store.audit_of_targets(&targets, 200).await?;
        let last = states.len().saturating_sub(1);
        let mut lines: Vec<VmHistoryLine> = states
            .into_iter()
            .enumerate()
            .map(|(n, s)| {
                let reason = match s.state {
                    VmStatus::Requested => format!("launched by {}", v.user),
                    VmStatus::Failed if n == last => v.error.clone().unwrap_or_default(),
                    VmStatus::Terminated if n == last => v.error.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                VmHistoryLine { at: s.at, state: Some(s.state), reason }
            })
            .collect();
        lines.extend(audit.into_iter().map(|a| {
            let mut reason = format!("{} by {}", a.action, a.actor);
            if a.outcome != "ok" {
                reason.push_str(&format!(" ({})", a.outcome));
            }
            if !a.detail.is_empty() {
                reason.push_str(&format!(": {}", a.detail));
            }
            VmHistoryLine { at: a.at, state: None, reason }
        }));
        // Stable: a state and a record at the same time keep that order.
        lines.sort_by_key(|l| l.at);
        Ok(lines)
    }

    /// The credential VM `id` was launched with (`None`: it is no longer stored).
    pub async fn credential_used(&self, actor: &Actor, id: &VmId) -> ServiceResult<Option<CredentialUsed>> {
        let v = self.owned(actor, id).await?;
        // A connector that needs no credentials (the sandbox): the launcher's own identity there.
        if let Some(user) = v.credential_id.as_str().strip_prefix("anonymous:") {
            return Ok(Some(CredentialUsed { scope: "none".into(), owner: user.to_string(), hint: None }));
        }
        let Some(c) = self.store.get_credential_by_id(v.credential_id.as_str()).await? else {
            return Ok(None);
        };
        let readable = actor.is_admin
            || match c.scope.as_str() {
                "user" => c.owner == actor.name.as_str(),
                "project" => c.owner == actor.project.as_str(),
                _ => false,
            };
        Ok(Some(CredentialUsed { scope: c.scope, owner: c.owner, hint: readable.then_some(c.access_key_hint) }))
    }
}
