//! CreateVolume's client tokens (migration 0044): one row per (project,
//! instance, token), claimed before the cloud is asked and so unique across
//! replicas sharing the database. A claim is pending (no volume) until the
//! volume is recorded, then names it for good; a pending claim is released
//! (deleted) when the cloud call fails. Only a pending claim is ever deleted.

use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};

/// A token's claim as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeTokenClaim {
    /// The first request's parameters (canonical form).
    pub request: String,
    /// The volume made for it; `None` while the first request is at the cloud.
    pub volume_id: Option<String>,
    pub claimed_at: DateTime<Utc>,
}

/// What claiming a token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeTokenOutcome {
    /// The token was free: this request holds it now.
    Claimed,
    /// Another request claimed it first.
    Held(VolumeTokenClaim),
}

impl Store {
    /// Claims `token` for `request` in `project` on `instance`, or answers
    /// the claim that holds it (atomically: of concurrent claims on any
    /// replica, exactly one is [`VolumeTokenOutcome::Claimed`]).
    pub async fn claim_volume_token(
        &self,
        project: &str,
        instance: &str,
        token: &str,
        request: &str,
    ) -> Result<VolumeTokenOutcome, StoreError> {
        // A claim released between the insert and the read is tried again.
        for _ in 0..5 {
            let r = sqlx::query(
                "INSERT INTO volume_client_tokens (project, instance, client_token, request, claimed_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (project, instance, client_token) DO NOTHING",
            )
            .bind(project)
            .bind(instance)
            .bind(token)
            .bind(request)
            .bind(self.clock_ms())
            .execute(self.pool())
            .await?;
            if r.rows_affected() == 1 {
                return Ok(VolumeTokenOutcome::Claimed);
            }
            if let Some(held) = self.volume_token(project, instance, token).await? {
                return Ok(VolumeTokenOutcome::Held(held));
            }
        }
        Err(StoreError::Conflict(format!("client token '{token}' is claimed and released too often to claim")))
    }

    /// The claim on `token`, if any.
    pub async fn volume_token(&self, project: &str, instance: &str, token: &str) -> Result<Option<VolumeTokenClaim>, StoreError> {
        let row: Option<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT request, volume_id, claimed_at FROM volume_client_tokens WHERE project = $1 AND instance = $2 AND client_token = $3",
        )
        .bind(project)
        .bind(instance)
        .bind(token)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(request, volume_id, at)| VolumeTokenClaim { request, volume_id, claimed_at: ms_to_time(at) }))
    }

    /// Names the volume made for a pending claim (the claim is kept for good).
    pub async fn settle_volume_token(&self, project: &str, instance: &str, token: &str, volume_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE volume_client_tokens SET volume_id = $4 WHERE project = $1 AND instance = $2 AND client_token = $3 AND volume_id IS NULL",
        )
        .bind(project)
        .bind(instance)
        .bind(token)
        .bind(volume_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Releases a pending claim (its cloud call failed), or one pending
    /// since before `claimed_before` (its claimant is gone) when given.
    /// Returns whether a claim was released. A settled claim is never released.
    pub async fn release_volume_token(
        &self,
        project: &str,
        instance: &str,
        token: &str,
        claimed_before: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM volume_client_tokens WHERE project = $1 AND instance = $2 AND client_token = $3 AND volume_id IS NULL \
             AND claimed_at < $4",
        )
        .bind(project)
        .bind(instance)
        .bind(token)
        .bind(claimed_before.map_or(i64::MAX, |t| t.timestamp_millis()))
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

    store_test!(a_token_is_claimed_once_settled_and_released_only_while_pending, |store: Store| async move {
        assert_eq!(store.claim_volume_token("team", "sb", "t1", "req-a").await.unwrap(), VolumeTokenOutcome::Claimed);
        let VolumeTokenOutcome::Held(held) = store.claim_volume_token("team", "sb", "t1", "req-b").await.unwrap() else {
            panic!("claimed twice")
        };
        assert_eq!((held.request.as_str(), held.volume_id), ("req-a", None));
        // Another project, or another instance, has tokens of its own.
        assert_eq!(store.claim_volume_token("other", "sb", "t1", "req-a").await.unwrap(), VolumeTokenOutcome::Claimed);
        assert_eq!(store.claim_volume_token("team", "sb2", "t1", "req-a").await.unwrap(), VolumeTokenOutcome::Claimed);
        // A pending claim older than a cutoff in the past is not released; a failed call releases it.
        let past = Utc::now() - chrono::Duration::hours(1);
        assert!(!store.release_volume_token("team", "sb", "t1", Some(past)).await.unwrap());
        assert!(store.release_volume_token("team", "sb", "t1", None).await.unwrap());
        assert_eq!(store.claim_volume_token("team", "sb", "t1", "req-b").await.unwrap(), VolumeTokenOutcome::Claimed);
        store.settle_volume_token("team", "sb", "t1", "vol-1").await.unwrap();
        assert!(!store.release_volume_token("team", "sb", "t1", None).await.unwrap(), "a settled claim stays");
        let VolumeTokenOutcome::Held(held) = store.claim_volume_token("team", "sb", "t1", "req-b").await.unwrap() else {
            panic!("claimed twice")
        };
        assert_eq!((held.request.as_str(), held.volume_id.as_deref()), ("req-b", Some("vol-1")));
    });

    /// Concurrent claims through two stores on one database (two replicas)
    /// admit exactly one.
    async fn concurrent_claims_admit_one(db: crate::testing::TestDb) {
        let other = Store::open(&db.url).await.unwrap();
        let tries: Vec<_> = (0..16)
            .map(|i| {
                let s = if i % 2 == 0 { db.store.clone() } else { other.clone() };
                tokio::spawn(async move { s.claim_volume_token("team", "sb", "race", "req").await.unwrap() })
            })
            .collect();
        let mut claimed = 0;
        for t in tries {
            if t.await.unwrap() == VolumeTokenOutcome::Claimed {
                claimed += 1;
            }
        }
        assert_eq!(claimed, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_on_two_replicas_admit_one_sqlite() {
        concurrent_claims_admit_one(crate::testing::TestDb::sqlite().await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_on_two_replicas_admit_one_postgres() {
        if let Some(db) = crate::testing::TestDb::postgres().await.unwrap() {
            concurrent_claims_admit_one(db).await;
        }
    }
}
