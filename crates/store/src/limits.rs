//! Caps on what one project owns (key pairs, live Elastic IPs, live
//! volumes): the count and the insert run in one transaction, so concurrent
//! creations, by any of the project's members, on one broker or on replicas
//! sharing PostgreSQL, never pass the cap.
//!
//! As in quota admission ([`crate::quota`]), the transaction first writes the
//! project's lock row for that kind (`project_quota_locks`, under an
//! `instance` key that starts with `#`, which no connector instance name
//! can): on PostgreSQL the row lock makes every other capped insert of that
//! project and kind wait until commit, and under READ COMMITTED the count
//! that follows sees the winner's row; on SQLite the first write takes the
//! database's write lock. A capped insert takes no other lock, so it never
//! waits in a cycle with a launch's admission.

use crate::cloud_objects::ObjectKind;
use crate::key_pairs::KeyPairRow;
use crate::resources::{AddressRow, VolumeRow};
use crate::{now_ms, Store, StoreError};
use sqlx::AnyConnection;
use std::collections::BTreeMap;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owned {
    KeyPairs,
    /// Live (not released) addresses, on every instance.
    Addresses,
    /// Live (not deleted) volumes, on every instance.
    Volumes,
    /// Live recorded cloud objects of one kind, on every instance.
    Objects(ObjectKind),
}

impl Owned {
    fn lock_key(self) -> &'static str {
        match self {
            Owned::KeyPairs => "#key_pairs",
            Owned::Addresses => "#addresses",
            Owned::Volumes => "#volumes",
            Owned::Objects(ObjectKind::SecurityGroup) => "#security-groups",
            Owned::Objects(ObjectKind::Vpc) => "#vpcs",
            Owned::Objects(ObjectKind::Subnet) => "#subnets",
            Owned::Objects(ObjectKind::Snapshot) => "#snapshots",
        }
    }

    fn count_sql(self) -> &'static str {
        match self {
            Owned::KeyPairs => "SELECT COUNT(*) FROM key_pairs WHERE project = $1",
            Owned::Addresses => "SELECT COUNT(*) FROM addresses WHERE project = $1 AND ended_at IS NULL",
            Owned::Volumes => "SELECT COUNT(*) FROM volumes WHERE project = $1 AND ended_at IS NULL",
            Owned::Objects(ObjectKind::SecurityGroup) => {
                "SELECT COUNT(*) FROM cloud_objects WHERE project = $1 AND kind = 'security-group' AND ended_at IS NULL"
            }
            Owned::Objects(ObjectKind::Vpc) => {
                "SELECT COUNT(*) FROM cloud_objects WHERE project = $1 AND kind = 'vpc' AND ended_at IS NULL"
            }
            Owned::Objects(ObjectKind::Subnet) => {
                "SELECT COUNT(*) FROM cloud_objects WHERE project = $1 AND kind = 'subnet' AND ended_at IS NULL"
            }
            Owned::Objects(ObjectKind::Snapshot) => {
                "SELECT COUNT(*) FROM cloud_objects WHERE project = $1 AND kind = 'snapshot' AND ended_at IS NULL"
            }
        }
    }
}

/// Why a capped insert did not happen.
#[derive(Debug)]
pub enum CapError {
    /// The project already has `current` (at least `limit`).
    Full {
        kind: Owned,
        limit: i64,
        current: i64,
    },
    Store(StoreError),
}

impl From<StoreError> for CapError {
    fn from(e: StoreError) -> Self {
        CapError::Store(e)
    }
}

impl From<sqlx::Error> for CapError {
    fn from(e: sqlx::Error) -> Self {
        CapError::Store(e.into())
    }
}

/// Takes the (project, kind) lock row and counts; `Full` when at the limit.
pub(crate) async fn lock_and_check(conn: &mut AnyConnection, kind: Owned, project: &str, limit: i64) -> Result<(), CapError> {
    sqlx::query(
        "INSERT INTO project_quota_locks (project, instance, version) VALUES ($1, $2, 0) \
         ON CONFLICT (project, instance) DO UPDATE SET version = project_quota_locks.version + 1",
    )
    .bind(project)
    .bind(kind.lock_key())
    .execute(&mut *conn)
    .await?;
    let (current,): (i64,) = sqlx::query_as(kind.count_sql()).bind(project).fetch_one(&mut *conn).await?;
    if current >= limit {
        return Err(CapError::Full { kind, limit, current });
    }
    Ok(())
}

impl Store {
    /// How many of `kind` the project has now (a cheap check before asking
    /// a cloud; the capped inserts below are what enforce the cap).
    pub async fn owned_count(&self, kind: Owned, project: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(kind.count_sql()).bind(project).fetch_one(self.pool()).await?;
        Ok(n)
    }

    /// [`Store::insert_key_pair`], refused when the project has `limit` pairs.
    pub async fn insert_key_pair_capped(
        &self,
        limit: i64,
        project: &cloudbroker_model::ProjectName,
        created_by: &cloudbroker_model::UserName,
        name: &str,
        public_key: &str,
        fingerprint: &str,
    ) -> Result<KeyPairRow, CapError> {
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::KeyPairs, project.as_str(), limit).await?;
        let row = crate::key_pairs::insert_key_pair_on(&mut *tx, project, created_by, name, public_key, fingerprint, now_ms()).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records a new address of `project` allocated by `user`, refused when
    /// the project has `limit` live addresses.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_address_capped(
        &self,
        limit: i64,
        instance: &str,
        allocation_id: &str,
        project: &str,
        user: &str,
        credential_id: &str,
        public_ip: &str,
    ) -> Result<AddressRow, CapError> {
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::Addresses, project, limit).await?;
        crate::resources::insert_address_on(&mut *tx, instance, allocation_id, project, user, credential_id, public_ip, self.clock_ms())
            .await?;
        tx.commit().await?;
        Ok(self.address(instance, allocation_id).await?.ok_or_else(|| StoreError::NotFound(format!("address '{allocation_id}'")))?)
    }

    /// Records a new volume of `project` created by `user`, refused when
    /// the project has `limit` live volumes.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_volume_capped(
        &self,
        limit: i64,
        instance: &str,
        volume_id: &str,
        project: &str,
        user: &str,
        credential_id: &str,
        size_gib: i64,
        zone: &str,
        volume_type: Option<&str>,
        state: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<VolumeRow, CapError> {
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::Volumes, project, limit).await?;
        let new =
            crate::resources::NewVolume { instance, volume_id, project, user, credential_id, size_gib, zone, volume_type, state, tags };
        crate::resources::insert_volume_on(&mut *tx, &new, self.clock_ms()).await?;
        tx.commit().await?;
        Ok(self.volume(instance, volume_id).await?.ok_or_else(|| StoreError::NotFound(format!("volume '{volume_id}'")))?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store_test;

    store_test!(caps_hold_and_count_only_live_rows, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        let alice = cloudbroker_model::UserName::parse("alice").unwrap();
        let mine = cloudbroker_model::ProjectName::personal(&alice);
        for i in 0..3 {
            store.insert_key_pair_capped(3, &mine, &alice, &format!("k{i}"), "ssh-ed25519 AAAA", "fp").await.unwrap();
        }
        let e = store.insert_key_pair_capped(3, &mine, &alice, "k3", "ssh-ed25519 AAAA", "fp").await.unwrap_err();
        assert!(matches!(e, CapError::Full { kind: Owned::KeyPairs, limit: 3, current: 3 }), "{e:?}");
        assert!(store.key_pair(&mine, "k3").await.unwrap().is_none(), "nothing written past the cap");
        assert!(matches!(
            store.insert_key_pair_capped(9, &mine, &alice, "k0", "ssh-ed25519 AAAA", "fp").await,
            Err(CapError::Store(StoreError::Conflict(_)))
        ));

        store.insert_address_capped(1, "sb", "eipalloc-1", "alice", "alice", "cred-1", "198.51.100.1").await.unwrap();
        assert!(matches!(
            store.insert_address_capped(1, "sb2", "eipalloc-2", "alice", "alice", "cred-1", "198.51.100.2").await,
            Err(CapError::Full { kind: Owned::Addresses, .. })
        ));
        store.end_address("sb", "eipalloc-1").await.unwrap();
        assert_eq!(store.owned_count(Owned::Addresses, "alice").await.unwrap(), 0, "a released address no longer counts");
        store.insert_address_capped(1, "sb2", "eipalloc-2", "alice", "alice", "cred-1", "198.51.100.2").await.unwrap();

        let tags = BTreeMap::new();
        let v = store.insert_volume_capped(1, "sb", "vol-1", "alice", "alice", "cred-1", 8, "sba", None, "creating", &tags).await.unwrap();
        assert_eq!((v.volume_id.as_str(), v.user.as_str()), ("vol-1", "alice"));
        assert!(matches!(
            store.insert_volume_capped(1, "sb", "vol-2", "alice", "alice", "cred-1", 8, "sba", None, "creating", &tags).await,
            Err(CapError::Full { kind: Owned::Volumes, .. })
        ));
    });

    store_test!(concurrent_inserts_never_pass_the_cap, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        let tries: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.insert_address_capped(5, "sb", &format!("eipalloc-{i}"), "alice", "alice", "cred-1", "198.51.100.1").await
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tries {
            match t.await.unwrap() {
                Ok(_) => admitted += 1,
                Err(CapError::Full { limit: 5, .. }) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!(admitted, 5);
        assert_eq!(store.owned_count(Owned::Addresses, "alice").await.unwrap(), 5);
    });

    store_test!(concurrent_object_inserts_never_pass_the_cap_of_their_kind, |store: Store| async move {
        use crate::cloud_objects::{Attrs, NewCloudObject, ObjectKind};
        let tries: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                // Half are VPCs, half subnets: each kind has its own cap of 3.
                let kind = if i % 2 == 0 { ObjectKind::Vpc } else { ObjectKind::Subnet };
                tokio::spawn(async move {
                    let (attrs, tags, id) = (Attrs::new(), BTreeMap::new(), format!("obj-{i}"));
                    let new = NewCloudObject {
                        instance: "sb",
                        kind,
                        cloud_id: &id,
                        project: "team",
                        user: "alice",
                        credential_id: "cred-1",
                        parent: None,
                        state: "available",
                        attrs: &attrs,
                        tags: &tags,
                    };
                    store.insert_cloud_object_capped(3, &new).await.map(|r| r.kind)
                })
            })
            .collect();
        let mut admitted = Vec::new();
        for t in tries {
            match t.await.unwrap() {
                Ok(kind) => admitted.push(kind),
                Err(CapError::Full { limit: 3, .. }) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!(admitted.iter().filter(|k| **k == ObjectKind::Vpc).count(), 3);
        assert_eq!(admitted.iter().filter(|k| **k == ObjectKind::Subnet).count(), 3);
        for kind in ObjectKind::ALL {
            let n = if matches!(kind, ObjectKind::Vpc | ObjectKind::Subnet) { 3 } else { 0 };
            assert_eq!(store.owned_count(Owned::Objects(kind), "team").await.unwrap(), n, "{kind}");
            // Each kind counts its own rows under its own lock.
            assert!(Owned::Objects(kind).count_sql().contains(&format!("kind = '{}'", kind.as_str())), "{kind}");
            let others = ObjectKind::ALL.into_iter().filter(|k| *k != kind);
            assert!(others.map(|k| Owned::Objects(k).lock_key()).all(|l| l != Owned::Objects(kind).lock_key()));
        }
    });

    store_test!(caps_count_per_project_whoever_made_the_rows, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        store.create_user("bob", "h", false).await.unwrap();
        let (alice, bob) = (cloudbroker_model::UserName::parse("alice").unwrap(), cloudbroker_model::UserName::parse("bob").unwrap());
        let team = cloudbroker_model::ProjectName::parse("team-a").unwrap();
        let tags = BTreeMap::new();
        // Two members of one project fill its cap together.
        store.insert_key_pair_capped(2, &team, &alice, "k", "ssh-ed25519 AAAA", "fp").await.unwrap();
        store.insert_key_pair_capped(2, &team, &bob, "k2", "ssh-ed25519 AAAA", "fp").await.unwrap();
        assert!(matches!(
            store.insert_key_pair_capped(2, &team, &alice, "k3", "ssh-ed25519 AAAA", "fp").await,
            Err(CapError::Full { kind: Owned::KeyPairs, limit: 2, current: 2 })
        ));
        // The same name in another project (alice's personal one) is another pair.
        let mine = cloudbroker_model::ProjectName::personal(&alice);
        let k = store.insert_key_pair_capped(2, &mine, &alice, "k", "ssh-ed25519 BBBB", "fp2").await.unwrap();
        assert_eq!((k.project.as_str(), k.created_by.as_str()), ("alice", "alice"));
        let t = store.key_pair(&team, "k").await.unwrap().unwrap();
        assert_eq!((t.project.as_str(), t.created_by.as_str(), t.public_key.as_str()), ("team-a", "alice", "ssh-ed25519 AAAA"));
        assert_eq!(store.key_pairs(&team).await.unwrap().len(), 2);
        assert_eq!(store.key_pairs(&mine).await.unwrap().len(), 1);
        assert!(store.delete_key_pair(&team, "k").await.unwrap());
        assert!(store.key_pair(&mine, "k").await.unwrap().is_some(), "deleting in one project leaves the other's pair");

        store.insert_address_capped(2, "sb", "eipalloc-1", "team-a", "alice", "cred-1", "198.51.100.1").await.unwrap();
        store.insert_address_capped(2, "sb", "eipalloc-2", "team-a", "bob", "cred-2", "198.51.100.2").await.unwrap();
        assert!(matches!(
            store.insert_address_capped(2, "sb", "eipalloc-3", "team-a", "bob", "cred-2", "198.51.100.3").await,
            Err(CapError::Full { kind: Owned::Addresses, .. })
        ));
        // Bob's personal project counts apart.
        store.insert_address_capped(2, "sb", "eipalloc-3", "bob", "bob", "cred-2", "198.51.100.3").await.unwrap();
        assert_eq!(store.owned_count(Owned::Addresses, "team-a").await.unwrap(), 2);
        assert_eq!(store.owned_count(Owned::Addresses, "bob").await.unwrap(), 1);
        assert_eq!(store.owned_count(Owned::Addresses, "alice").await.unwrap(), 0);

        store.insert_volume_capped(1, "sb", "vol-1", "team-a", "bob", "cred-2", 8, "sba", None, "creating", &tags).await.unwrap();
        assert!(matches!(
            store.insert_volume_capped(1, "sb", "vol-2", "team-a", "alice", "cred-1", 8, "sba", None, "creating", &tags).await,
            Err(CapError::Full { kind: Owned::Volumes, .. })
        ));
        store.insert_volume_capped(1, "sb", "vol-2", "alice", "alice", "cred-1", 8, "sba", None, "creating", &tags).await.unwrap();
    });
}
