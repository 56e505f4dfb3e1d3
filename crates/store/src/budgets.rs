//! Budgets in the store: per-user and per-project overrides of an
//! instance's monthly budget, the thresholds each budget crossed (recorded
//! once per month, whichever replica sees it first), and the budget check
//! the launch admission runs inside its transaction (after the quota
//! locks, so launches of one user, or one project, on one instance are
//! checked one after the other on every replica).

use crate::metering::{PeriodFilter, VmHistory};
use crate::quota::QuotaKind;
use crate::{Store, StoreError};

/// Whose budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BudgetScope {
    User,
    Project,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
        }
    }

    /// The quota kind whose lock serializes this budget's admissions.
    pub fn kind(self) -> QuotaKind {
        match self {
            Self::User => QuotaKind::User,
            Self::Project => QuotaKind::Project,
        }
    }
}

/// The spend the admission weighs: given the VMs of a scope on the
/// instance this month with their state histories and type changes, what
/// they spent and have committed (millionths of the currency).
pub type SpendFn<'a> = dyn Fn(&[VmHistory]) -> i64 + Send + Sync + 'a;

/// The budget checks of one launch.
#[derive(Clone)]
pub struct BudgetCheck<'a> {
    /// The budgets that apply: the user's and/or the project's, in micros.
    pub limits: Vec<(BudgetScope, i64)>,
    /// The month so far, `[from, now]` in ms.
    pub from: i64,
    pub now: i64,
    /// What one more VM commits: its first billing period at its price (micros).
    pub per_vm: i64,
    pub spend: &'a SpendFn<'a>,
}

impl std::fmt::Debug for BudgetCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetCheck").field("limits", &self.limits).field("per_vm", &self.per_vm).finish()
    }
}

/// A threshold a budget crossed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetAlert {
    pub scope: String,
    pub owner: String,
    pub instance: String,
    /// `YYYY-MM`.
    pub month: String,
    pub threshold: i64,
    pub spent: i64,
    pub budget: i64,
    pub at: i64,
}

impl Store {
    /// An override of `owner`'s budget on `instance` (micros).
    pub async fn budget_override(&self, scope: BudgetScope, owner: &str, instance: &str) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT amount FROM budget_overrides WHERE scope = $1 AND owner = $2 AND instance = $3")
            .bind(scope.as_str())
            .bind(owner)
            .bind(instance)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.0))
    }

    /// How many overrides there are, of anyone on any instance (what a
    /// replica caches to skip the per-launch lookup while there are none).
    pub async fn budget_override_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM budget_overrides").fetch_one(self.pool()).await?;
        Ok(n)
    }

    /// The overrides on `instance` of the given owners, in one statement:
    /// (scope, owner, amount) of those that have one. Two owners (a
    /// launch's user and project) are looked up by key; more (a pass of the
    /// budget watch) read the instance's overrides once.
    pub async fn budget_overrides_on(
        &self,
        instance: &str,
        owners: &[(BudgetScope, &str)],
    ) -> Result<Vec<(BudgetScope, String, i64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = match owners {
            [] => Vec::new(),
            [(s1, o1)] => {
                sqlx::query_as("SELECT scope, owner, amount FROM budget_overrides WHERE instance = $1 AND scope = $2 AND owner = $3")
                    .bind(instance)
                    .bind(s1.as_str())
                    .bind(*o1)
                    .fetch_all(self.pool())
                    .await?
            }
            [(s1, o1), (s2, o2)] => {
                sqlx::query_as(
                    "SELECT scope, owner, amount FROM budget_overrides WHERE instance = $1 \
                     AND ((scope = $2 AND owner = $3) OR (scope = $4 AND owner = $5))",
                )
                .bind(instance)
                .bind(s1.as_str())
                .bind(*o1)
                .bind(s2.as_str())
                .bind(*o2)
                .fetch_all(self.pool())
                .await?
            }
            _ => {
                sqlx::query_as("SELECT scope, owner, amount FROM budget_overrides WHERE instance = $1")
                    .bind(instance)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(scope, owner, amount)| {
                let scope = match scope.as_str() {
                    "user" => BudgetScope::User,
                    "project" => BudgetScope::Project,
                    _ => return None,
                };
                owners.iter().any(|(s, o)| *s == scope && *o == owner).then_some((scope, owner, amount))
            })
            .collect())
    }

    /// Every override of `owner`: (instance, amount).
    pub async fn budget_overrides(&self, scope: BudgetScope, owner: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT instance, amount FROM budget_overrides WHERE scope = $1 AND owner = $2 ORDER BY instance")
            .bind(scope.as_str())
            .bind(owner)
            .fetch_all(self.pool())
            .await?)
    }

    /// Sets (`Some`) or removes an override.
    pub async fn set_budget_override(
        &self,
        scope: BudgetScope,
        owner: &str,
        instance: &str,
        amount: Option<i64>,
    ) -> Result<(), StoreError> {
        match amount {
            Some(a) => {
                sqlx::query(
                    "INSERT INTO budget_overrides (scope, owner, instance, amount) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (scope, owner, instance) DO UPDATE SET amount = excluded.amount",
                )
                .bind(scope.as_str())
                .bind(owner)
                .bind(instance)
                .bind(a)
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM budget_overrides WHERE scope = $1 AND owner = $2 AND instance = $3")
                    .bind(scope.as_str())
                    .bind(owner)
                    .bind(instance)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Records that a budget crossed a threshold this month, once: returns
    /// whether this call recorded it (false: already recorded, here or on
    /// another replica).
    pub async fn record_budget_alert(&self, a: &BudgetAlert) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO budget_alerts (scope, owner, instance, month, threshold, spent, budget, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (scope, owner, instance, month, threshold) DO NOTHING",
        )
        .bind(&a.scope)
        .bind(&a.owner)
        .bind(&a.instance)
        .bind(&a.month)
        .bind(a.threshold)
        .bind(a.spent)
        .bind(a.budget)
        .bind(a.at)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The thresholds `owner`'s budgets crossed in `month`, newest first.
    pub async fn budget_alerts(&self, scope: BudgetScope, owner: &str, month: &str) -> Result<Vec<BudgetAlert>, StoreError> {
        type Row = (String, String, String, String, i64, i64, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT scope, owner, instance, month, threshold, spent, budget, at FROM budget_alerts \
             WHERE scope = $1 AND owner = $2 AND month = $3 ORDER BY at DESC, threshold DESC",
        )
        .bind(scope.as_str())
        .bind(owner)
        .bind(month)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(scope, owner, instance, month, threshold, spent, budget, at)| BudgetAlert {
                scope,
                owner,
                instance,
                month,
                threshold,
                spent,
                budget,
                at,
            })
            .collect())
    }

    /// Inside an admission's transaction: how many more VMs each budget
    /// leaves room for (the least of them), or the first budget that
    /// leaves room for fewer than `min`: (scope, budget, spent).
    pub(crate) async fn budget_room(
        &self,
        conn: &mut sqlx::AnyConnection,
        check: &BudgetCheck<'_>,
        user: &str,
        project: &str,
        instance: &str,
        min: usize,
    ) -> Result<Result<usize, (BudgetScope, i64, i64)>, StoreError> {
        let mut room = usize::MAX;
        for &(scope, budget) in &check.limits {
            let (u, p) = match scope {
                BudgetScope::User => (Some(user.to_string()), None),
                BudgetScope::Project => (None, Some(project.to_string())),
            };
            let f = PeriodFilter { user: u, project: p, instance: Some(instance.to_string()), from: check.from, to: check.now };
            let vms = self.vms_with_history_on(&mut *conn, &f).await?;
            let spent = (check.spend)(&vms);
            let left = budget - spent;
            let fits = if check.per_vm <= 0 { usize::MAX } else { usize::try_from(left.max(0) / check.per_vm).unwrap_or(0) };
            if fits < min {
                return Ok(Err((scope, budget, spent)));
            }
            room = room.min(fits);
        }
        Ok(Ok(room))
    }
}

impl Store {
    /// Admits the start of stopped VM `vm` under `check`, exactly as a
    /// launch is admitted: under the user's (and, for a project budget,
    /// the project's) lock on the instance, the budgets are weighed and the
    /// VM is marked `pending` in the same transaction (so a concurrent
    /// start, or launch, weighs its first period). Returns false when the
    /// VM is no longer stopped (nothing written).
    pub async fn admit_start(
        &self,
        vm: &cloudbroker_model::VmId,
        user: &str,
        project: &str,
        instance: &str,
        check: &BudgetCheck<'_>,
    ) -> Result<bool, crate::quota::AdmitError> {
        use crate::quota::AdmitError;
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO quota_locks (user_name, instance, version) VALUES ($1, $2, 0) ON CONFLICT (user_name, instance) DO UPDATE SET version = quota_locks.version + 1")
            .bind(user)
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        if check.limits.iter().any(|(s, _)| *s == BudgetScope::Project) {
            sqlx::query("INSERT INTO project_quota_locks (project, instance, version) VALUES ($1, $2, 0) ON CONFLICT (project, instance) DO UPDATE SET version = project_quota_locks.version + 1")
                .bind(project)
                .bind(instance)
                .execute(&mut *tx)
                .await?;
        }
        if let Err((scope, budget, spent)) =
            self.budget_room(&mut tx, check, user, project, instance, 1).await.map_err(AdmitError::Store)?
        {
            tx.rollback().await?;
            return Err(AdmitError::Budget { scope, budget, spent });
        }
        let r = sqlx::query("UPDATE vms SET state = 'pending', updated_at = $2, state_since = NULL, version = version + 1 WHERE id = $1 AND state = 'stopped'")
            .bind(vm)
            .bind(self.clock_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }
}
