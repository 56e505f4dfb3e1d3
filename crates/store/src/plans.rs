//! The one reader of query plans: each named statement's plan as the
//! database gives it (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
//! PostgreSQL), one line per row, joined with newlines. Everything runs in
//! one transaction that is rolled back, so a setting made for the plans (or
//! a statement executed to time it) never outlives the call nor reaches
//! another user of the pooled connection. Tests read plans through it (on
//! tables small enough that PostgreSQL would read them whole whatever their
//! indexes) and so does the benchmark (through `cloudbroker-bench-seed
//! --plans`, on real tables).

use crate::{Backend, Store, StoreError};
use sqlx::Row;

/// Which plan PostgreSQL is asked for; SQLite has one (`EXPLAIN QUERY PLAN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanKind {
    /// `EXPLAIN` of the statement as written (literals, no parameters), with
    /// sequential scans priced out: on a test's small table the plan then
    /// says whether an index can answer.
    IndexesPreferred,
    /// The generic plan of the statement prepared with one parameter `$1`
    /// (what a long-running broker ends up using, the value unknown to the
    /// planner), executed with `$1` = this value by `EXPLAIN (ANALYZE, …)`:
    /// the benchmark's view of real tables. SQLite binds the value to `$1`.
    GenericExecuted(i64),
}

impl Store {
    /// The plan of each `(name, sql)` statement, in order, as
    /// `(name, plan text)`. See [`PlanKind`] for what PostgreSQL is asked.
    pub async fn query_plans<'a>(&self, queries: &[(&'a str, String)], kind: PlanKind) -> Result<Vec<(&'a str, String)>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let postgres = self.backend() == Backend::Postgres;
        if postgres {
            let setting = match kind {
                PlanKind::IndexesPreferred => "SET LOCAL enable_seqscan = off",
                PlanKind::GenericExecuted(_) => "SET LOCAL plan_cache_mode = force_generic_plan",
            };
            sqlx::query(setting).execute(&mut *tx).await?;
        }
        let mut out = Vec::with_capacity(queries.len());
        for (name, sql) in queries {
            let lines: Vec<String> = match (postgres, kind) {
                (false, PlanKind::IndexesPreferred) => {
                    let rows: Vec<(i64, i64, i64, String)> =
                        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}")).fetch_all(&mut *tx).await?;
                    rows.into_iter().map(|r| r.3).collect()
                }
                (false, PlanKind::GenericExecuted(v)) => {
                    let rows: Vec<(i64, i64, i64, String)> =
                        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}")).bind(v).fetch_all(&mut *tx).await?;
                    rows.into_iter().map(|r| r.3).collect()
                }
                (true, PlanKind::IndexesPreferred) => {
                    let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}")).fetch_all(&mut *tx).await?;
                    rows.into_iter().map(|r| r.0).collect()
                }
                (true, PlanKind::GenericExecuted(v)) => {
                    // PREPARE through the simple protocol: its `$1` is the
                    // prepared statement's parameter, not this message's.
                    sqlx::raw_sql(&format!("PREPARE cb_plan AS {sql}")).execute(&mut *tx).await?;
                    let rows = sqlx::query(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) EXECUTE cb_plan({v})"))
                        .fetch_all(&mut *tx)
                        .await?;
                    sqlx::raw_sql("DEALLOCATE cb_plan").execute(&mut *tx).await?;
                    rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?
                }
            };
            out.push((*name, lines.join("\n")));
        }
        tx.rollback().await?;
        Ok(out)
    }
}
