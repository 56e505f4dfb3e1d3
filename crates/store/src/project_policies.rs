//! A project's own launch policies per connector instance (table
//! `project_policies`, migration 0023): parameter name -> value, with who
//! set them and when. One instance's set is replaced whole, in one
//! transaction, so a launch reading it (one indexed query on the primary
//! key's prefix) sees the old set or the new one, never a mix. Values are
//! stored as validated by the caller; the store checks nothing about them.
//! Deleting a project deletes its policies (foreign key, ON DELETE CASCADE).

use crate::{Store, StoreError};

/// One stored project policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectPolicyRow {
    pub instance: String,
    pub name: String,
    pub value: String,
    pub updated_by: String,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

type Tuple = (String, String, String, String, i64);

fn row((instance, name, value, updated_by, updated_at): Tuple) -> ProjectPolicyRow {
    ProjectPolicyRow { instance, name, value, updated_by, updated_at }
}

impl Store {
    /// A project's policies on every instance, by instance then name.
    pub async fn project_policies(&self, project: &str) -> Result<Vec<ProjectPolicyRow>, StoreError> {
        let rows: Vec<Tuple> = sqlx::query_as(
            "SELECT instance, name, value, updated_by, updated_at FROM project_policies WHERE project = $1 ORDER BY instance, name",
        )
        .bind(project)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// A project's policies on one instance (what a launch checks), by name.
    pub async fn project_policy(&self, project: &str, instance: &str) -> Result<Vec<ProjectPolicyRow>, StoreError> {
        let rows: Vec<Tuple> = sqlx::query_as(
            "SELECT instance, name, value, updated_by, updated_at FROM project_policies \
             WHERE project = $1 AND instance = $2 ORDER BY name",
        )
        .bind(project)
        .bind(instance)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Replaces a project's policies on one instance by `values` (name,
    /// value; empty: none left), in one transaction.
    pub async fn put_project_policy(
        &self,
        project: &str,
        instance: &str,
        values: &[(String, String)],
        updated_by: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM project_policies WHERE project = $1 AND instance = $2")
            .bind(project)
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        for (name, value) in values {
            sqlx::query(
                "INSERT INTO project_policies (project, instance, name, value, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(project)
            .bind(instance)
            .bind(name)
            .bind(value)
            .bind(updated_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a project's policies on one instance; whether there were any.
    pub async fn delete_project_policy(&self, project: &str, instance: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM project_policies WHERE project = $1 AND instance = $2")
            .bind(project)
            .bind(instance)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store_test;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    store_test!(a_set_is_replaced_whole_and_goes_with_its_project, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        let alice = cloudbroker_model::UserName::parse("alice").unwrap();
        let team = cloudbroker_model::ProjectName::parse("team-a").unwrap();
        store.create_project(&team, "", "alice", &alice).await.unwrap();
        store.put_project_policy("team-a", "sb", &pairs(&[("policy.count.max", "2"), ("lease.max", "4h")]), "alice").await.unwrap();
        store.put_project_policy("team-a", "sb2", &pairs(&[("policy.images", "alpine")]), "alice").await.unwrap();
        let all = store.project_policies("team-a").await.unwrap();
        let names: Vec<_> = all.iter().map(|r| (r.instance.as_str(), r.name.as_str(), r.value.as_str())).collect();
        assert_eq!(names, [("sb", "lease.max", "4h"), ("sb", "policy.count.max", "2"), ("sb2", "policy.images", "alpine")]);
        assert_eq!(all[0].updated_by, "alice");
        // Replaced whole: a name not given again is gone.
        store.put_project_policy("team-a", "sb", &pairs(&[("policy.count.max", "1")]), "alice").await.unwrap();
        let sb = store.project_policy("team-a", "sb").await.unwrap();
        assert_eq!(sb.iter().map(|r| (r.name.as_str(), r.value.as_str())).collect::<Vec<_>>(), [("policy.count.max", "1")]);
        assert!(store.delete_project_policy("team-a", "sb").await.unwrap());
        assert!(!store.delete_project_policy("team-a", "sb").await.unwrap());
        assert!(store.project_policy("team-a", "sb").await.unwrap().is_empty());
        assert_eq!(store.project_policies("team-a").await.unwrap().len(), 1, "other instances keep theirs");
        // Another project's are its own; deleting the project deletes its policies.
        assert!(store.project_policies("alice").await.unwrap().is_empty());
        store.delete_project(&team).await.unwrap();
        assert!(store.project_policies("team-a").await.unwrap().is_empty());
    });
}
