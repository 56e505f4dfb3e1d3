//! Counts for overview pages: VMs per user, instance and state, in one
//! grouped query (an index scan, not a page walk, however many VMs there are).

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
        let mut sql = String::from("SELECT user_name, instance, state, COUNT(*) FROM vms WHERE 1 = 1");
        let mut n = 1;
        if user.is_some() {
            sql.push_str(&format!(" AND user_name = ${n}"));
            n += 1;
        }
        if !states.is_empty() {
            let ph: Vec<String> = (n..n + states.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" AND state IN ({})", ph.join(", ")));
        }
        sql.push_str(" GROUP BY user_name, instance, state ORDER BY user_name, instance, state");
        let mut q = sqlx::query_as::<_, (String, String, String, i64)>(&sql);
        if let Some(u) = user {
            q = q.bind(u);
        }
        for s in states {
            q = q.bind(*s);
        }
        let rows = q.fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|(user, instance, state, count)| VmCount { user, instance, state, count }).collect())
    }
}
