//! What still uses a stored credential: the live VMs, the Elastic IPs not
//! released and the volumes not deleted that were made with it (the broker
//! acts on each of them with that credential, and with no other), and
//! whether a shared credential is still granted to a project. A credential is
//! deleted only when nothing live uses it, checked in the delete statement
//! itself, so a resource recorded in between is never orphaned silently.

use crate::{Store, StoreError};

/// How many of each kind of user a refusal names at most.
const NAMED: i64 = 20;

/// What uses a credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialUses {
    /// Live VMs: (broker VM id, cloud id when known).
    pub vms: Vec<(String, Option<String>)>,
    /// Addresses not released: (allocation id, user).
    pub addresses: Vec<(String, String)>,
    /// Volumes not deleted: (volume id, user).
    pub volumes: Vec<(String, String)>,
}

impl CredentialUses {
    /// Nothing uses it.
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty() && self.addresses.is_empty() && self.volumes.is_empty()
    }
}

/// What deleting an unused credential did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRemoval {
    Deleted,
    NotFound,
    /// Something live uses it: nothing was deleted.
    InUse(CredentialUses),
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// What uses a credential: VMs in one of `live_states`, addresses not
    /// released, volumes not deleted (oldest first, at most `limit` of each).
    pub async fn credential_uses(&self, credential_id: &str, live_states: &[&str], limit: i64) -> Result<CredentialUses, StoreError> {
        let limit = limit.max(0);
        let sql = format!(
            "SELECT id, cloud_id FROM vms WHERE credential_id = $1 AND state IN ({}) ORDER BY created_at, id LIMIT {limit}",
            placeholders(2, live_states.len())
        );
        let mut q = sqlx::query_as::<_, (String, Option<String>)>(&sql).bind(credential_id);
        for st in live_states {
            q = q.bind(*st);
        }
        let vms = q.fetch_all(self.pool()).await?;
        let addresses: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT allocation_id, user_name FROM addresses WHERE credential_id = $1 AND ended_at IS NULL \
             ORDER BY created_at, allocation_id LIMIT {limit}"
        ))
        .bind(credential_id)
        .fetch_all(self.pool())
        .await?;
        let volumes: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT volume_id, user_name FROM volumes WHERE credential_id = $1 AND ended_at IS NULL \
             ORDER BY created_at, volume_id LIMIT {limit}"
        ))
        .bind(credential_id)
        .fetch_all(self.pool())
        .await?;
        Ok(CredentialUses { vms, addresses, volumes })
    }

    /// Deletes the credential of (scope, owner, instance), and its grants,
    /// unless VMs in one of `live_states`, addresses not released or volumes
    /// not deleted still use it (one statement checks and deletes).
    pub async fn delete_unused_credential(
        &self,
        scope: &str,
        owner: &str,
        instance: &str,
        live_states: &[&str],
    ) -> Result<CredentialRemoval, StoreError> {
        let id: Option<(String,)> = sqlx::query_as("SELECT id FROM credentials WHERE scope = $1 AND owner = $2 AND instance = $3")
            .bind(scope)
            .bind(owner)
            .bind(instance)
            .fetch_optional(self.pool())
            .await?;
        let Some((id,)) = id else { return Ok(CredentialRemoval::NotFound) };
        let mut tx = self.pool().begin().await?;
        let sql = format!(
            "DELETE FROM credentials WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM vms WHERE vms.credential_id = $1 AND vms.state IN ({})) \
             AND NOT EXISTS (SELECT 1 FROM addresses a WHERE a.credential_id = $1 AND a.ended_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.credential_id = $1 AND v.ended_at IS NULL)",
            placeholders(2, live_states.len())
        );
        let mut q = sqlx::query(&sql).bind(&id);
        for st in live_states {
            q = q.bind(*st);
        }
        if q.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            let uses = self.credential_uses(&id, live_states, NAMED).await?;
            // Gone meanwhile, or freed meanwhile (then the caller may retry).
            return Ok(if uses.is_empty() { CredentialRemoval::NotFound } else { CredentialRemoval::InUse(uses) });
        }
        sqlx::query("DELETE FROM credential_project_grants WHERE credential_id = $1").bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(CredentialRemoval::Deleted)
    }

    /// Whether a (shared) credential is granted to `project` now.
    pub async fn is_granted(&self, credential_id: &str, project: &str) -> Result<bool, StoreError> {
        let r: Option<(String,)> =
            sqlx::query_as("SELECT project FROM credential_project_grants WHERE credential_id = $1 AND project = $2")
                .bind(credential_id)
                .bind(project)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::CredentialRemoval;
    use crate::credentials::NewCredential;
    use crate::store_test;
    use crate::Store;
    use std::collections::BTreeMap;

    store_test!(addresses_and_volumes_keep_their_credential, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        let cred = |id| NewCredential {
            id,
            scope: "user",
            owner: "alice",
            instance: "sb",
            access_key_hint: "****",
            access_key_sealed: b"a",
            secret_sealed: b"s",
            key_id: "k",
            status: "verified",
            status_message: "",
        };
        store.put_credential(&cred("cred-1")).await.unwrap();
        store.insert_address("sb", "eipalloc-1", "alice", "cred-1", "198.51.100.1").await.unwrap();
        store.insert_volume("sb", "vol-1", "alice", "cred-1", 8, "sba", None, "available", &BTreeMap::new()).await.unwrap();
        let live = ["requested", "pending", "running"];
        match store.delete_unused_credential("user", "alice", "sb", &live).await.unwrap() {
            CredentialRemoval::InUse(u) => {
                assert!(u.vms.is_empty());
                assert_eq!(u.addresses, vec![("eipalloc-1".to_string(), "alice".to_string())]);
                assert_eq!(u.volumes, vec![("vol-1".to_string(), "alice".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(store.get_credential("user", "alice", "sb").await.unwrap().is_some());
        store.end_address("sb", "eipalloc-1").await.unwrap();
        assert!(matches!(store.delete_unused_credential("user", "alice", "sb", &live).await.unwrap(), CredentialRemoval::InUse(_)));
        store.end_volume("sb", "vol-1").await.unwrap();
        assert_eq!(store.delete_unused_credential("user", "alice", "sb", &live).await.unwrap(), CredentialRemoval::Deleted);
        assert_eq!(store.delete_unused_credential("user", "alice", "sb", &live).await.unwrap(), CredentialRemoval::NotFound);
    });

    /// A project row, whether or not creating the user made it already.
    async fn project(store: &Store, name: &str) {
        sqlx::query(
            "INSERT INTO projects (name, description, created_by, created_at, updated_at) VALUES ($1, '', 'super', 0, 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(store.pool())
        .await
        .unwrap();
    }

    fn shared(id: &'static str, scope: &'static str, owner: &'static str) -> NewCredential<'static> {
        NewCredential {
            id,
            scope,
            owner,
            instance: "sb",
            access_key_hint: "****",
            access_key_sealed: b"a",
            secret_sealed: b"s",
            key_id: "k",
            status: "verified",
            status_message: "",
        }
    }

    store_test!(grants_are_checked_one_by_one, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        project(&store, "alice").await;
        project(&store, "team-a").await;
        store.put_credential(&shared("cred-9", "system", "team")).await.unwrap();
        store.set_grants("cred-9", &["team-a".to_string(), "alice".to_string()]).await.unwrap();
        assert!(store.is_granted("cred-9", "team-a").await.unwrap());
        assert!(store.is_granted("cred-9", "alice").await.unwrap());
        assert!(!store.is_granted("cred-9", "bob").await.unwrap());
        assert_eq!(store.grants("cred-9").await.unwrap(), vec!["alice".to_string(), "team-a".to_string()]);
        let granted = store.granted_credentials("team-a", "sb").await.unwrap();
        assert_eq!(granted.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["cred-9"]);
        assert!(store.granted_credentials("team-a", "other").await.unwrap().is_empty());
        assert!(store.granted_credentials("team-b", "sb").await.unwrap().is_empty());
        store.set_grants("cred-9", &["team-a".to_string()]).await.unwrap();
        assert!(!store.is_granted("cred-9", "alice").await.unwrap());
        assert!(store.is_granted("cred-9", "team-a").await.unwrap());
        store.set_grants("cred-9", &[]).await.unwrap();
        assert!(!store.is_granted("cred-9", "team-a").await.unwrap());
        assert!(store.grants("cred-9").await.unwrap().is_empty());
    });

    store_test!(a_deleted_credential_takes_its_grants_along, |store: Store| async move {
        project(&store, "team-a").await;
        store.put_credential(&shared("cred-7", "system", "team")).await.unwrap();
        store.set_grants("cred-7", &["team-a".to_string()]).await.unwrap();
        let live = ["requested", "pending", "running"];
        assert_eq!(store.delete_unused_credential("system", "team", "sb", &live).await.unwrap(), CredentialRemoval::Deleted);
        assert!(!store.is_granted("cred-7", "team-a").await.unwrap());
        assert!(store.granted_credentials("team-a", "sb").await.unwrap().is_empty());
    });

    store_test!(project_credentials_are_owned_by_the_project, |store: Store| async move {
        project(&store, "team-a").await;
        store.put_credential(&shared("cred-p", "project", "team-a")).await.unwrap();
        let r = store.get_credential("project", "team-a", "sb").await.unwrap().unwrap();
        assert_eq!((r.scope.as_str(), r.owner.as_str()), ("project", "team-a"));
        assert!(store.get_credential("user", "team-a", "sb").await.unwrap().is_none());
        assert_eq!(store.list_credentials("project", Some("team-a")).await.unwrap().len(), 1);
        assert!(store.list_credentials("project", Some("team-b")).await.unwrap().is_empty());
        // A project credential is no shared one: granting is for system scope only.
        assert!(store.granted_credentials("team-a", "sb").await.unwrap().is_empty());
    });
}
