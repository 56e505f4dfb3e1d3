//! Quota admission: VMs are recorded (in the state the services give) in the same
//! transaction that checks the quotas (the user's and the project's), so
//! concurrent launches, on one broker or on several replicas sharing
//! PostgreSQL, can never push a user or a project past its limit.
//!
//! The transaction first writes the (user, instance) lock row, then (when a
//! project limit applies) the (project, instance) one, always in this order
//! (so two admissions never wait on each other in a cycle): on PostgreSQL
//! the row locks make every other admission for those pairs wait until
//! commit (and, under READ COMMITTED, the counts that follow see the
//! winner's rows); on SQLite the first write takes the database's write
//! lock, so admissions are serialised the same way. Both counts are of live
//! records (no counter that could drift).

use crate::audit::NewAudit;
use crate::{Store, StoreError};
use cloudbroker_model::{ClientToken, CredentialId, InstanceName, LaunchId, ProjectName, ProjectRole, UserName, VmId, VmStatus};

/// One VM to record.
#[derive(Clone, Debug)]
pub struct NewVm {
    pub id: VmId,
    pub launch_index: i64,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub instance_type: String,
    /// User tags, as a JSON object.
    pub tags: String,
    /// The user's key pair it was launched with (EC2's `KeyName`).
    pub key_name: Option<String>,
}

/// The launch being admitted.
#[derive(Clone, Debug)]
pub struct Admission<'a> {
    pub launch_id: &'a LaunchId,
    /// Who launches (the user quota counts their VMs, in every project).
    pub user: &'a UserName,
    /// The project the VMs are recorded in (the project quota counts its VMs).
    pub project: &'a ProjectName,
    pub instance: &'a InstanceName,
    pub credential_id: &'a CredentialId,
    pub client_token: &'a ClientToken,
    /// The user's limit; `None`: no user quota enforced.
    pub limit: Option<i64>,
    /// The project's limit; `None`: no project quota enforced.
    pub project_limit: Option<i64>,
    /// Whether `user` must still act in `project` (as `member` or `owner`)
    /// when the VMs are recorded: a member removed, or made a viewer, on
    /// another replica while this one still holds their cached membership
    /// launches nothing (`false` for admins, who act in every project).
    pub member_check: bool,
    /// The states that count against the limit (the services decide which).
    pub counted: &'a [VmStatus],
    /// The state the VMs are recorded in.
    pub state: VmStatus,
    /// The lease every VM of the launch gets, if any.
    pub lease: Option<cloudbroker_model::NewLease>,
    /// The budgets the launch must fit in, checked after the quotas in the
    /// same transaction (a project budget takes the project's lock).
    pub budget: Option<crate::budgets::BudgetCheck<'a>>,
    pub vms: &'a [NewVm],
    /// Termination protection (migration 0038) on every VM recorded,
    /// written in the same transaction (EC2's `DisableApiTermination`).
    pub termination_protection: bool,
    /// An audit record written in the same transaction: recorded exactly
    /// when the VMs are (its detail is replaced by the one `rows` gives in
    /// [`Store::admit_launch_range`]).
    pub audit: Option<NewAudit<'a>>,
}

/// Which quota refused a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaKind {
    /// The launching user's, on the instance (all their projects together).
    User,
    /// The project's, on the instance (all its members together).
    Project,
}

/// Why a launch was not admitted.
#[derive(Debug)]
pub enum AdmitError {
    /// `which` quota leaves room for fewer than `requested` (the least count).
    Quota {
        which: QuotaKind,
        limit: i64,
        current: i64,
        requested: i64,
    },
    /// Under `member_check`, the user no longer acts in the project: their
    /// role there now (`None`: no longer a member).
    NotActing(Option<ProjectRole>),
    /// A budget leaves room for fewer than `min` VMs: (whose, the budget,
    /// spent and committed so far), in micros.
    Budget {
        scope: crate::budgets::BudgetScope,
        budget: i64,
        spent: i64,
    },
    Store(StoreError),
}

impl From<sqlx::Error> for AdmitError {
    fn from(e: sqlx::Error) -> Self {
        AdmitError::Store(e.into())
    }
}

/// `$first, $first+1, ...` placeholders for a list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// What [`Store::admit_launches`] runs last in its transaction: given the
/// connection and the store's time (ms).
pub type ExtraFn<'e> = Box<
    dyn for<'c> FnOnce(
            &'c mut sqlx::AnyConnection,
            i64,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'c>>
        + Send
        + 'e,
>;

/// A lock row of an admission: (instance, 0 for the user's / 1 for the
/// project's, owner). Sorted, this is the global order locks are taken in.
type LockKey = (String, u8, String);

/// The lock rows `a` takes: the user's, and the project's when a project
/// quota or budget applies.
fn lock_keys(a: &Admission<'_>) -> Vec<LockKey> {
    let mut keys = vec![(a.instance.to_string(), 0, a.user.to_string())];
    let project_budget = a.budget.as_ref().is_some_and(|b| b.limits.iter().any(|(s, _)| *s == crate::budgets::BudgetScope::Project));
    if a.project_limit.is_some() || project_budget {
        keys.push((a.instance.to_string(), 1, a.project.to_string()));
    }
    keys
}

/// Takes a lock row (writes it, so waiting happens here).
async fn lock(conn: &mut sqlx::AnyConnection, (instance, which, owner): &LockKey) -> Result<(), sqlx::Error> {
    let sql = if *which == 0 {
        "INSERT INTO quota_locks (user_name, instance, version) VALUES ($1, $2, 0) ON CONFLICT (user_name, instance) DO UPDATE SET version = quota_locks.version + 1"
    } else {
        "INSERT INTO project_quota_locks (project, instance, version) VALUES ($1, $2, 0) ON CONFLICT (project, instance) DO UPDATE SET version = project_quota_locks.version + 1"
    };
    sqlx::query(sql).bind(owner.as_str()).bind(instance.as_str()).execute(&mut *conn).await?;
    Ok(())
}

impl Store {
    /// The user's override for an instance.
    pub async fn quota_override(&self, user: &UserName, instance: &InstanceName) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT vm_limit FROM quota_overrides WHERE user_name = $1 AND instance = $2")
            .bind(user)
            .bind(instance)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.0))
    }

    /// Sets (`Some`) or removes a user's override.
    pub async fn set_quota_override(&self, user: &UserName, instance: &InstanceName, limit: Option<i64>) -> Result<(), StoreError> {
        match limit {
            Some(l) => {
                sqlx::query("INSERT INTO quota_overrides (user_name, instance, vm_limit) VALUES ($1, $2, $3) ON CONFLICT (user_name, instance) DO UPDATE SET vm_limit = excluded.vm_limit")
                    .bind(user)
                    .bind(instance)
                    .bind(l)
                    .execute(self.pool())
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM quota_overrides WHERE user_name = $1 AND instance = $2")
                    .bind(user)
                    .bind(instance)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// VMs of a user on an instance in the `counted` states.
    pub async fn quota_usage(&self, user: &UserName, instance: &InstanceName, counted: &[VmStatus]) -> Result<i64, StoreError> {
        let sql =
            format!("SELECT COUNT(*) FROM vms WHERE user_name = $1 AND instance = $2 AND state IN ({})", placeholders(3, counted.len()));
        let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(user).bind(instance);
        for s in counted {
            q = q.bind(*s);
        }
        Ok(q.fetch_one(self.pool()).await?.0)
    }

    /// A project's override for an instance.
    pub async fn project_quota_override(&self, project: &ProjectName, instance: &InstanceName) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT vm_limit FROM project_quota_overrides WHERE project = $1 AND instance = $2")
            .bind(project)
            .bind(instance)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.0))
    }

    /// A project's overrides, by instance name.
    pub async fn project_quota_overrides(&self, project: &ProjectName) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT instance, vm_limit FROM project_quota_overrides WHERE project = $1 ORDER BY instance")
            .bind(project)
            .fetch_all(self.pool())
            .await?)
    }

    /// Sets (`Some`) or removes a project's override (the project must exist).
    pub async fn set_project_quota_override(
        &self,
        project: &ProjectName,
        instance: &InstanceName,
        limit: Option<i64>,
    ) -> Result<(), StoreError> {
        match limit {
            Some(l) => {
                sqlx::query("INSERT INTO project_quota_overrides (project, instance, vm_limit) VALUES ($1, $2, $3) ON CONFLICT (project, instance) DO UPDATE SET vm_limit = excluded.vm_limit")
                    .bind(project)
                    .bind(instance)
                    .bind(l)
                    .execute(self.pool())
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM project_quota_overrides WHERE project = $1 AND instance = $2")
                    .bind(project)
                    .bind(instance)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// VMs of a project on an instance in the `counted` states.
    pub async fn project_quota_usage(
        &self,
        project: &ProjectName,
        instance: &InstanceName,
        counted: &[VmStatus],
    ) -> Result<i64, StoreError> {
        let sql =
            format!("SELECT COUNT(*) FROM vms WHERE project = $1 AND instance = $2 AND state IN ({})", placeholders(3, counted.len()));
        let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(project).bind(instance);
        for s in counted {
            q = q.bind(*s);
        }
        Ok(q.fetch_one(self.pool()).await?.0)
    }

    /// Atomically checks the quota and records the VMs.
    pub async fn admit_launch(&self, a: &Admission<'_>) -> Result<(), AdmitError> {
        let n = a.vms.len();
        let detail = a.audit.map(|r| r.detail).unwrap_or_default();
        self.admit_launch_range(a, n, n, |_| (a.vms.to_vec(), detail.to_string())).await.map(|_| ())
    }

    /// Atomically checks the quotas and records a launch of between `min`
    /// and `max` VMs (EC2's MinCount and MaxCount) in one transaction: as
    /// many as both limits leave room for, at most `max`; none when fewer
    /// than `min` fit (the refusal names the quota, the user's checked
    /// first, and `min` as requested). `rows(n)`
    /// gives the `n` VMs to record and the audit detail (`a.vms` and the
    /// detail of `a.audit` are not used). Returns `n`.
    pub async fn admit_launch_range<F>(&self, a: &Admission<'_>, min: usize, max: usize, rows: F) -> Result<usize, AdmitError>
    where
        F: FnOnce(usize) -> (Vec<NewVm>, String),
    {
        let mut tx = self.pool().begin().await?;
        // Lock first: the first statement writes, so waiting happens here;
        // the user's row, then the project's (always in this order).
        for key in lock_keys(a) {
            lock(&mut tx, &key).await?;
        }
        match self.admit_in(&mut tx, a, min, max, rows).await {
            Ok(admitted) => {
                tx.commit().await?;
                Ok(admitted)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    /// Admits several launches (each of exactly its `vms`) in ONE
    /// transaction, all or none: the lock rows of every (user, instance)
    /// and (project, instance) involved are taken first, in one global
    /// order (by instance, the user's before the project's: the order a
    /// single admission takes its own, so no two admissions wait on each
    /// other in a cycle); then each admission's checks run in turn and its
    /// VMs are inserted, so the next one's counts and budget spend see
    /// them. `extra` runs last in the same transaction (a deployment's own
    /// rows), with the store's time. On a refusal nothing is recorded: the
    /// error comes with the index of the admission refused.
    pub async fn admit_launches(&self, admissions: &[Admission<'_>], extra: Option<ExtraFn<'_>>) -> Result<(), (usize, AdmitError)> {
        let at = |i: usize| move |e: sqlx::Error| (i, AdmitError::from(e));
        let mut tx = self.pool().begin().await.map_err(at(0))?;
        let mut keys: Vec<LockKey> = admissions.iter().flat_map(lock_keys).collect();
        keys.sort();
        keys.dedup();
        for key in &keys {
            lock(&mut tx, key).await.map_err(at(0))?;
        }
        for (i, a) in admissions.iter().enumerate() {
            let n = a.vms.len();
            let detail = a.audit.map(|r| r.detail).unwrap_or_default();
            if let Err(e) = self.admit_in(&mut tx, a, n, n, |_| (a.vms.to_vec(), detail.to_string())).await {
                tx.rollback().await.map_err(at(i))?;
                return Err((i, e));
            }
        }
        if let Some(extra) = extra {
            let now = self.clock_ms();
            if let Err(e) = extra(&mut tx, now).await {
                tx.rollback().await.map_err(at(admissions.len()))?;
                return Err((admissions.len(), AdmitError::Store(e)));
            }
        }
        tx.commit().await.map_err(at(admissions.len()))?;
        Ok(())
    }

    /// One admission's checks and records inside a transaction whose lock
    /// rows are taken (see [`Store::admit_launch_range`]); the caller rolls
    /// back on an error.
    async fn admit_in<F>(
        &self,
        tx: &mut sqlx::AnyConnection,
        a: &Admission<'_>,
        min: usize,
        max: usize,
        rows: F,
    ) -> Result<usize, AdmitError>
    where
        F: FnOnce(usize) -> (Vec<NewVm>, String),
    {
        // The project still exists (a replica may still hold an actor entered
        // in a project deleted since): else nothing is recorded. Its row is
        // held (shared, on PostgreSQL; SQLite's write lock is already held)
        // until commit, so a deletion that first writes the row and then
        // counts the project's live VMs in its transaction sees these.
        let share = match self.backend() {
            crate::Backend::Postgres => " FOR SHARE",
            crate::Backend::Sqlite => "",
        };
        let exists: Option<(String,)> =
            sqlx::query_as(&format!("SELECT name FROM projects WHERE name = $1{share}")).bind(a.project).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Err(AdmitError::Store(StoreError::NotFound(format!("project '{}'", a.project))));
        }
        if a.member_check {
            let role: Option<(String,)> = sqlx::query_as("SELECT role FROM project_members WHERE project = $1 AND user_name = $2")
                .bind(a.project)
                .bind(a.user)
                .fetch_optional(&mut *tx)
                .await?;
            match role.as_ref().map(|(r,)| ProjectRole::parse(r)) {
                Some(Ok(r)) if r.can_act() => {}
                Some(Ok(r)) => {
                    return Err(AdmitError::NotActing(Some(r)));
                }
                _ => {
                    return Err(AdmitError::NotActing(None));
                }
            }
        }
        let mut admitted = max;
        for (which, limit, column, owner) in
            [(QuotaKind::User, a.limit, "user_name", a.user.as_str()), (QuotaKind::Project, a.project_limit, "project", a.project.as_str())]
        {
            let Some(limit) = limit else { continue };
            let sql = format!(
                "SELECT COUNT(*) FROM vms WHERE {column} = $1 AND instance = $2 AND state IN ({})",
                placeholders(3, a.counted.len())
            );
            let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(owner).bind(a.instance);
            for s in a.counted {
                q = q.bind(*s);
            }
            let (current,) = q.fetch_one(&mut *tx).await?;
            let room = usize::try_from(limit - current).unwrap_or(0);
            if room < min {
                return Err(AdmitError::Quota { which, limit, current, requested: min as i64 });
            }
            admitted = admitted.min(room);
        }
        if let Some(check) = &a.budget {
            match self
                .budget_room(&mut *tx, check, a.user.as_str(), a.project.as_str(), a.instance.as_str(), min)
                .await
                .map_err(AdmitError::Store)?
            {
                Ok(room) => admitted = admitted.min(room),
                Err((scope, budget, spent)) => {
                    return Err(AdmitError::Budget { scope, budget, spent });
                }
            }
        }
        let (vms, detail) = rows(admitted);
        let now = self.clock_ms();
        for v in &vms {
            sqlx::query(
                "INSERT INTO vms (id, launch_id, launch_index, user_name, instance, credential_id, client_token, name, image, image_id, instance_type, state, created_at, updated_at, tags, key_name, project, lease_expires_at, lease_action, lease_warn_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17, $18, $19)",
            )
            .bind(&v.id)
            .bind(a.launch_id)
            .bind(v.launch_index)
            .bind(a.user)
            .bind(a.instance)
            .bind(a.credential_id)
            .bind(a.client_token)
            .bind(&v.name)
            .bind(&v.image)
            .bind(&v.image_id)
            .bind(&v.instance_type)
            .bind(a.state)
            .bind(now)
            .bind(&v.tags)
            .bind(&v.key_name)
            .bind(a.project)
            .bind(a.lease.map(|l| l.expires_at))
            .bind(a.lease.map(|l| l.action.as_str()))
            .bind(a.lease.map(|l| l.warn_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                e if e.is_unique_violation() => AdmitError::Store(StoreError::Conflict(format!("client token '{}' was already used", a.client_token))),
                e => AdmitError::Store(e),
            })?;
            if a.termination_protection {
                sqlx::query("INSERT INTO vm_termination_protection (vm_id, set_at) VALUES ($1, $2)")
                    .bind(&v.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| AdmitError::Store(e.into()))?;
            }
        }
        if let Some(r) = a.audit {
            crate::audit::insert_audit(&mut *tx, now, &NewAudit { detail: &detail, ..r }).await.map_err(AdmitError::Store)?;
        }
        Ok(admitted)
    }
}
