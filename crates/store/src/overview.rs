//! Counts for overview pages: VMs per user, instance and state, in one
//! grouped query (an index scan, not a page walk, however many VMs there are),
//! of everyone, of one user, or of one project.

use crate::{Store, StoreError};

/// How many VMs one user has on one instance in one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmCount {
    pub user: String,
    pub instance: String,
    pub state: String,
    pub count: i64,
}

impl Store {
    /// VM counts grouped by user, instance and state, for the states given
    /// (an empty list: every state); only `user`'s when given.
    pub async fn vm_counts(&self, user: Option<&str>, states: &[&str]) -> Result<Vec<VmCount>, StoreError> {
        self.grouped_vm_counts(user.map(|u| ("user_name", u)), states).await
    }

    /// As [`Store::vm_counts`], of one project's VMs (grouped by the user who
    /// launched them, instance and state).
    pub async fn project_vm_counts(&self, project: &str, states: &[&str]) -> Result<Vec<VmCount>, StoreError> {
        self.grouped_vm_counts(Some(("project", project)), states).await
    }

    /// The counts, only the VMs whose `column` is `value` when given.
    async fn grouped_vm_counts(&self, only: Option<(&'static str, &str)>, states: &[&str]) -> Result<Vec<VmCount>, StoreError> {
        let mut sql = String::from("SELECT user_name, instance, state, COUNT(*) FROM vms WHERE 1 = 1");
        let mut n = 1;
        if let Some((column, _)) = only {
            sql.push_str(&format!(" AND {column} = ${n}"));
            n += 1;
        }
        if !states.is_empty() {
            let ph: Vec<String> = (n..n + states.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" AND state IN ({})", ph.join(", ")));
        }
        sql.push_str(" GROUP BY user_name, instance, state ORDER BY user_name, instance, state");
        let mut q = sqlx::query_as::<_, (String, String, String, i64)>(&sql);
        if let Some((_, value)) = only {
            q = q.bind(value);
        }
        for s in states {
            q = q.bind(*s);
        }
        let rows = q.fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|(user, instance, state, count)| VmCount { user, instance, state, count }).collect())
    }
}
