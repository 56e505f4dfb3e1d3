//! Sign-in attempts shared by every replica. An admission is one
//! transaction: it first writes each key's row in `throttle_keys` (in sorted
//! order, so two admissions never wait on each other crosswise), which makes
//! concurrent admissions for the same key take turns on any replica and on
//! both backends; then reads the key's attempts in the window, asks the
//! caller's rule, and records the attempt only if the rule admits it.

use crate::{Store, StoreError};

/// An attempt recorded by [`Store::admit_attempt`], to take back on success.
#[derive(Clone, Debug)]
pub struct RecordedAttempt {
    pub id: String,
    pub keys: Vec<String>,
}

impl Store {
    /// Admits an attempt on `keys` at `now` (ms). `rule` gets, per key in the
    /// order given, the times (ms, oldest first) of its attempts since
    /// `since`, and answers `None` to admit or `Some(seconds)` to refuse with
    /// a wait. An admitted attempt is recorded under every key.
    pub async fn admit_attempt(
        &self,
        keys: &[String],
        now: i64,
        since: i64,
        rule: impl FnOnce(&[Vec<i64>]) -> Option<u64>,
    ) -> Result<Result<RecordedAttempt, u64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        for k in &sorted {
            sqlx::query(
                "INSERT INTO throttle_keys (key, touched_at) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET touched_at = excluded.touched_at",
            )
            .bind(k.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut seen = Vec::with_capacity(keys.len());
        for k in keys {
            let times: Vec<(i64,)> = sqlx::query_as("SELECT at FROM login_attempts WHERE key = $1 AND at > $2 ORDER BY at")
                .bind(k.as_str())
                .bind(since)
                .fetch_all(&mut *tx)
                .await?;
            seen.push(times.into_iter().map(|t| t.0).collect::<Vec<_>>());
        }
        if let Some(wait) = rule(&seen) {
            tx.rollback().await?;
            return Ok(Err(wait));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        for (i, k) in sorted.iter().enumerate() {
            sqlx::query("INSERT INTO login_attempts (id, key, at) VALUES ($1, $2, $3)")
                .bind(format!("{id}-{i}"))
                .bind(k.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(RecordedAttempt { id, keys: sorted.into_iter().cloned().collect() }))
    }

    /// A successful sign-in: every attempt on `clear_key` goes, and `attempt`
    /// no longer counts against its other keys.
    pub async fn take_back_attempt(&self, attempt: &RecordedAttempt, clear_key: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM login_attempts WHERE key = $1").bind(clear_key).execute(&mut *tx).await?;
        for i in 0..attempt.keys.len() {
            sqlx::query("DELETE FROM login_attempts WHERE id = $1").bind(format!("{}-{i}", attempt.id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets attempts and keys older than `before` (ms).
    pub async fn purge_attempts(&self, before: i64) -> Result<u64, StoreError> {
        let a = sqlx::query("DELETE FROM login_attempts WHERE at < $1").bind(before).execute(self.pool()).await?;
        let k = sqlx::query("DELETE FROM throttle_keys WHERE touched_at < $1").bind(before).execute(self.pool()).await?;
        Ok(a.rows_affected() + k.rows_affected())
    }

    /// Keys with attempts still counting (for inspection and tests).
    pub async fn throttled_keys(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(DISTINCT key) FROM login_attempts").fetch_one(self.pool()).await?;
        Ok(n)
    }
}
