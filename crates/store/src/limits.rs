//! Caps on what one user owns (key pairs, live Elastic IPs, live volumes):
//! the count and the insert run in one transaction, so concurrent creations,
//! on one broker or on replicas sharing PostgreSQL, never pass the cap.
//!
//! As in quota admission ([`crate::quota`]), the transaction first writes the
//! user's lock row for that kind (`quota_locks`, under an `instance` key that
//! starts with `#`, which no connector instance name can): on PostgreSQL the
//! row lock makes every other capped insert of that user and kind wait until
//! commit, and under READ COMMITTED the count that follows sees the winner's
//! row; on SQLite the first write takes the database's write lock.

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
}

impl Owned {
    fn lock_key(self) -> &'static str {
        match self {
            Owned::KeyPairs => "#key_pairs",
            Owned::Addresses => "#addresses",
            Owned::Volumes => "#volumes",
        }
    }

    fn count_sql(self) -> &'static str {
        match self {
            Owned::KeyPairs => "SELECT COUNT(*) FROM key_pairs WHERE user_name = $1",
            Owned::Addresses => "SELECT COUNT(*) FROM addresses WHERE user_name = $1 AND ended_at IS NULL",
            Owned::Volumes => "SELECT COUNT(*) FROM volumes WHERE user_name = $1 AND ended_at IS NULL",
        }
    }
}

/// Why a capped insert did not happen.
#[derive(Debug)]
pub enum CapError {
    /// The user already has `current` (at least `limit`).
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

/// Takes the (user, kind) lock row and counts; `Full` when at the limit.
async fn lock_and_check(conn: &mut AnyConnection, kind: Owned, user: &str, limit: i64) -> Result<(), CapError> {
    sqlx::query("INSERT INTO quota_locks (user_name, instance, version) VALUES ($1, $2, 0) ON CONFLICT (user_name, instance) DO UPDATE SET version = quota_locks.version + 1")
        .bind(user)
        .bind(kind.lock_key())
        .execute(&mut *conn)
        .await?;
    let (current,): (i64,) = sqlx::query_as(kind.count_sql()).bind(user).fetch_one(&mut *conn).await?;
    if current >= limit {
        return Err(CapError::Full { kind, limit, current });
    }
    Ok(())
}

impl Store {
    /// How many of `kind` the user has now (a cheap check before asking a
    /// cloud; the capped inserts below are what enforce the cap).
    pub async fn owned_count(&self, kind: Owned, user: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(kind.count_sql()).bind(user).fetch_one(self.pool()).await?;
        Ok(n)
    }

    /// [`Store::insert_key_pair`], refused when the user has `limit` pairs.
    pub async fn insert_key_pair_capped(
        &self,
        limit: i64,
        user: &cloudbroker_model::UserName,
        name: &str,
        public_key: &str,
        fingerprint: &str,
    ) -> Result<KeyPairRow, CapError> {
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::KeyPairs, user.as_str(), limit).await?;
        let row = crate::key_pairs::insert_key_pair_on(&mut *tx, user, name, public_key, fingerprint, now_ms()).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// [`Store::insert_address`], refused when the user has `limit` live addresses.
    pub async fn insert_address_capped(
        &self,
        limit: i64,
        instance: &str,
        allocation_id: &str,
        user: &str,
        credential_id: &str,
        public_ip: &str,
    ) -> Result<AddressRow, CapError> {
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::Addresses, user, limit).await?;
        crate::resources::insert_address_on(&mut *tx, instance, allocation_id, user, credential_id, public_ip, now_ms()).await?;
        tx.commit().await?;
        Ok(self.address(instance, allocation_id).await?.ok_or_else(|| StoreError::NotFound(format!("address '{allocation_id}'")))?)
    }

    /// [`Store::insert_volume`], refused when the user has `limit` live volumes.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_volume_capped(
        &self,
        limit: i64,
        instance: &str,
        volume_id: &str,
        user: &str,
        credential_id: &str,
        size_gib: i64,
        zone: &str,
        volume_type: Option<&str>,
        state: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<VolumeRow, CapError> {
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::Volumes, user, limit).await?;
        let new = crate::resources::NewVolume { instance, volume_id, user, credential_id, size_gib, zone, volume_type, state, tags };
        crate::resources::insert_volume_on(&mut *tx, &new, now_ms()).await?;
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
        for i in 0..3 {
            store.insert_key_pair_capped(3, &alice, &format!("k{i}"), "ssh-ed25519 AAAA", "fp").await.unwrap();
        }
        let e = store.insert_key_pair_capped(3, &alice, "k3", "ssh-ed25519 AAAA", "fp").await.unwrap_err();
        assert!(matches!(e, CapError::Full { kind: Owned::KeyPairs, limit: 3, current: 3 }), "{e:?}");
        assert!(store.key_pair(&alice, "k3").await.unwrap().is_none(), "nothing written past the cap");
        assert!(matches!(
            store.insert_key_pair_capped(9, &alice, "k0", "ssh-ed25519 AAAA", "fp").await,
            Err(CapError::Store(StoreError::Conflict(_)))
        ));

        store.insert_address_capped(1, "sb", "eipalloc-1", "alice", "cred-1", "198.51.100.1").await.unwrap();
        assert!(matches!(
            store.insert_address_capped(1, "sb2", "eipalloc-2", "alice", "cred-1", "198.51.100.2").await,
            Err(CapError::Full { kind: Owned::Addresses, .. })
        ));
        store.end_address("sb", "eipalloc-1").await.unwrap();
        assert_eq!(store.owned_count(Owned::Addresses, "alice").await.unwrap(), 0, "a released address no longer counts");
        store.insert_address_capped(1, "sb2", "eipalloc-2", "alice", "cred-1", "198.51.100.2").await.unwrap();

        let tags = BTreeMap::new();
        let v = store.insert_volume_capped(1, "sb", "vol-1", "alice", "cred-1", 8, "sba", None, "creating", &tags).await.unwrap();
        assert_eq!((v.volume_id.as_str(), v.user.as_str()), ("vol-1", "alice"));
        assert!(matches!(
            store.insert_volume_capped(1, "sb", "vol-2", "alice", "cred-1", 8, "sba", None, "creating", &tags).await,
            Err(CapError::Full { kind: Owned::Volumes, .. })
        ));
    });

    store_test!(concurrent_inserts_never_pass_the_cap, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        let tries: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.insert_address_capped(5, "sb", &format!("eipalloc-{i}"), "alice", "cred-1", "198.51.100.1").await
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
}
