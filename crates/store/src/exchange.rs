//! Parameter exchange in the store (migration 0029): the VMs' credentials
//! (`deployment_tokens`, the SHA-256 of each token only), the deployment's
//! parameters (`deployment_params`; secret values arrive sealed, the store
//! never sees them in clear) and who waits on what (`deployment_waits`).
//!
//! A credential is live only while its row is not revoked, its member slot
//! is neither failed nor removed, its VM is not shutting down, terminated or failed and
//! its deployment is not terminated: checked by one join on every request
//! ([`Store::live_deployment_token`]), so it stops working when the VM ends
//! even before the deployment's driver revokes it. Every time is the store's
//! clock.

use crate::{Store, StoreError};

/// The VM a live credential belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmCredential {
    pub deployment_id: String,
    pub node: String,
    pub idx: i64,
    pub attempt: i64,
    pub vm_id: String,
}

/// A stored parameter (a secret's `value` is its sealed form).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ParamRow {
    pub name: String,
    pub value: String,
    pub secret: bool,
    pub set_by: String,
    pub set_at: i64,
}

#[derive(sqlx::FromRow)]
struct ParamDb {
    name: String,
    value: String,
    secret: i64,
    set_by: String,
    set_at: i64,
}

impl From<ParamDb> for ParamRow {
    fn from(p: ParamDb) -> Self {
        ParamRow { name: p.name, value: p.value, secret: p.secret != 0, set_by: p.set_by, set_at: p.set_at }
    }
}

/// A VM waiting on a parameter.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WaitRow {
    pub node: String,
    pub idx: i64,
    pub param: String,
    pub since: i64,
}

/// What the exchange reads of a deployment: its application version's
/// source (the document as saved) and its state.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeploymentSource {
    pub app_name: String,
    pub app_version: i64,
    pub source: String,
    pub state: String,
}

/// Records a VM's credential (its hash) inside a caller's transaction (the
/// admission's): a no-op when it is already there.
pub async fn insert_deployment_token(
    conn: &mut sqlx::AnyConnection,
    token_hash: &str,
    deployment_id: &str,
    node: &str,
    idx: i64,
    attempt: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deployment_tokens (token_hash, deployment_id, node, idx, attempt, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_hash) DO NOTHING",
    )
    .bind(token_hash)
    .bind(deployment_id)
    .bind(node)
    .bind(idx)
    .bind(attempt)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const PARAM_COLUMNS: &str = "name, value, CAST(secret AS BIGINT) AS secret, set_by, set_at";

impl Store {
    /// Records a VM's credential (its hash); a no-op when already there.
    pub async fn register_deployment_token(
        &self,
        token_hash: &str,
        deployment_id: &str,
        node: &str,
        idx: i64,
        attempt: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_deployment_token(&mut conn, token_hash, deployment_id, node, idx, attempt, self.clock_ms()).await
    }

    /// The VM whose credential hashes to `token_hash`, if it is live (see the
    /// module's comment).
    pub async fn live_deployment_token(&self, token_hash: &str) -> Result<Option<VmCredential>, StoreError> {
        let row: Option<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT t.deployment_id, t.node, t.idx, t.attempt, m.vm_id FROM deployment_tokens t \
             JOIN deployment_members m ON m.deployment_id = t.deployment_id AND m.node = t.node AND m.idx = t.idx \
                AND m.attempt = t.attempt \
             JOIN vms v ON v.id = m.vm_id \
             JOIN deployments d ON d.id = t.deployment_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND m.state NOT IN ('failed', 'removed') \
               AND v.state NOT IN ('shutting-down', 'terminated', 'failed') AND d.state <> 'terminated'",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(deployment_id, node, idx, attempt, vm_id)| VmCredential { deployment_id, node, idx, attempt, vm_id }))
    }

    /// Revokes the credentials of a deployment's VMs: all of them, a node's,
    /// or one slot's (`idx`, every attempt). Returns how many were revoked.
    pub async fn revoke_deployment_tokens(&self, deployment_id: &str, node: Option<&str>, idx: Option<i64>) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE deployment_tokens SET revoked_at = $4 WHERE deployment_id = $1 AND revoked_at IS NULL \
             AND ($2 IS NULL OR node = $2) AND ($3 IS NULL OR idx = $3)",
        )
        .bind(deployment_id)
        .bind(node)
        .bind(idx)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// The deployment's application source and state (`None`: no such deployment).
    pub async fn deployment_source(&self, deployment_id: &str) -> Result<Option<DeploymentSource>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.app_name, d.app_version, a.source, d.state FROM deployments d \
             JOIN applications a ON a.name = d.app_name AND a.version = d.app_version WHERE d.id = $1",
        )
        .bind(deployment_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// One parameter of a deployment.
    pub async fn deployment_param(&self, deployment_id: &str, name: &str) -> Result<Option<ParamRow>, StoreError> {
        let row: Option<ParamDb> =
            sqlx::query_as(&format!("SELECT {PARAM_COLUMNS} FROM deployment_params WHERE deployment_id = $1 AND name = $2"))
                .bind(deployment_id)
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(ParamRow::from))
    }

    /// `<node>.<idx>.<output>` of the lowest-index VM of `node` that is live
    /// (its slot neither failed nor removed) and has published `output`.
    pub async fn deployment_node_output(&self, deployment_id: &str, node: &str, output: &str) -> Result<Option<ParamRow>, StoreError> {
        let row: Option<ParamDb> = sqlx::query_as(
            "SELECT p.name, p.value, CAST(p.secret AS BIGINT) AS secret, p.set_by, p.set_at FROM deployment_params p \
             JOIN deployment_members m ON m.deployment_id = p.deployment_id \
                AND p.name = m.node || '.' || CAST(m.idx AS TEXT) || '.' || $3 \
             WHERE p.deployment_id = $1 AND m.node = $2 AND m.state NOT IN ('failed', 'removed') \
             ORDER BY m.idx LIMIT 1",
        )
        .bind(deployment_id)
        .bind(node)
        .bind(output)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(ParamRow::from))
    }

    /// Every parameter of a deployment, by name.
    pub async fn deployment_params(&self, deployment_id: &str) -> Result<Vec<ParamRow>, StoreError> {
        let rows: Vec<ParamDb> = sqlx::query_as(&format!(
            "SELECT {PARAM_COLUMNS} FROM deployment_params WHERE deployment_id = $1 ORDER BY {}",
            self.bytewise("name")
        ))
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(ParamRow::from).collect())
    }

    /// Sets (or replaces) a parameter; a secret's `value` is already sealed.
    pub async fn set_deployment_param(
        &self,
        deployment_id: &str,
        name: &str,
        value: &str,
        secret: bool,
        set_by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployment_params (deployment_id, name, value, secret, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (deployment_id, name) DO UPDATE SET value = excluded.value, secret = excluded.secret, \
             set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(deployment_id)
        .bind(name)
        .bind(value)
        .bind(i64::from(secret))
        .bind(set_by)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Withdraws the outputs of a slot (`<node>.<idx>.*`): a VM removed by a
    /// scale down. Returns how many went.
    pub async fn withdraw_member_outputs(&self, deployment_id: &str, node: &str, idx: i64) -> Result<u64, StoreError> {
        let prefix = format!("{node}.{idx}.");
        let r = sqlx::query("DELETE FROM deployment_params WHERE deployment_id = $1 AND substr(name, 1, length($2)) = $2")
            .bind(deployment_id)
            .bind(&prefix)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// The sealed values of every secret parameter (for the master key
    /// rotation: which keys they need).
    pub async fn secret_deployment_values(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT value FROM deployment_params WHERE secret <> 0").fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Records that VM `idx` of `node` waits on `param` (kept from its first wait).
    pub async fn add_deployment_wait(&self, deployment_id: &str, node: &str, idx: i64, param: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployment_waits (deployment_id, node, idx, param, since) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (deployment_id, node, idx, param) DO NOTHING",
        )
        .bind(deployment_id)
        .bind(node)
        .bind(idx)
        .bind(param)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The VM no longer waits on `param`.
    pub async fn remove_deployment_wait(&self, deployment_id: &str, node: &str, idx: i64, param: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM deployment_waits WHERE deployment_id = $1 AND node = $2 AND idx = $3 AND param = $4")
            .bind(deployment_id)
            .bind(node)
            .bind(idx)
            .bind(param)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Who waits on what in a deployment, by node, index and parameter.
    pub async fn deployment_waits(&self, deployment_id: &str) -> Result<Vec<WaitRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT node, idx, param, since FROM deployment_waits WHERE deployment_id = $1 ORDER BY {}, idx, {}",
            self.bytewise("node"),
            self.bytewise("param")
        ))
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// A VM's `ready` call: stamps its member row (the first call counts;
    /// the driver reads `ready_at`). `false` when the row is not there.
    pub async fn mark_member_ready(&self, deployment_id: &str, node: &str, idx: i64, attempt: i64) -> Result<bool, StoreError> {
        let now = self.clock_ms();
        let r = sqlx::query(
            "UPDATE deployment_members SET ready_at = COALESCE(ready_at, $5), updated_at = $5 \
             WHERE deployment_id = $1 AND node = $2 AND idx = $3 AND attempt = $4",
        )
        .bind(deployment_id)
        .bind(node)
        .bind(idx)
        .bind(attempt)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A VM's (or the user's) abort: sets the deployment's abort flag with
    /// `message` unless one is set already or the deployment has ended or is
    /// ending. Returns whether it was set now.
    pub async fn request_deployment_abort(&self, deployment_id: &str, message: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE deployments SET abort_requested = $2, updated_at = $3, version = version + 1 \
             WHERE id = $1 AND abort_requested IS NULL AND state NOT IN ('failed', 'terminating', 'terminated')",
        )
        .bind(deployment_id)
        .bind(message)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
