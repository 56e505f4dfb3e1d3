//! Projects (teams) and their members. A project and its first owner are
//! written in one transaction; so is every change of a member, together with
//! the check that the project keeps at least one owner (the change first
//! writes the project's row, which on PostgreSQL makes concurrent changes of
//! one project's members wait for each other and on SQLite takes the
//! database's write lock, so two owners demoting each other cannot both
//! pass). Project and user names share one namespace: a user's personal
//! project is named after them, so the primary key refuses a team project
//! named like a user and a user named like a project.

use crate::{ms_to_time, now_ms, Store, StoreError};
use chrono::{DateTime, Utc};
use cloudbroker_model::{ProjectName, ProjectRole, UserName};
use serde::Serialize;
use sqlx::AnyConnection;

/// A stored project.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectRow {
    pub name: ProjectName,
    pub description: String,
    /// The user whose personal project this is (`None`: a team project).
    pub personal_of: Option<UserName>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProjectRow {
    /// Whether this is a user's personal project.
    pub fn is_personal(&self) -> bool {
        self.personal_of.is_some()
    }
}

/// A member of a project.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    pub project: ProjectName,
    pub user_name: UserName,
    pub role: ProjectRole,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// What a project holds that is still live (its delete is refused while
/// any is not zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProjectResources {
    /// VMs neither terminated nor failed.
    pub vms: i64,
    /// Addresses not released.
    pub addresses: i64,
    /// Volumes not deleted.
    pub volumes: i64,
    /// Images registered in the project (a later project of that name
    /// must not inherit them).
    pub images: i64,
}

impl ProjectResources {
    /// Whether the project holds nothing live.
    pub fn is_empty(&self) -> bool {
        self.vms == 0 && self.addresses == 0 && self.volumes == 0 && self.images == 0
    }
}

/// A member change that did not happen because the project would be left
/// without an owner.
pub const LAST_OWNER: &str = "must keep at least one owner";

type ProjectTuple = (String, String, Option<String>, String, i64, i64);
type MemberTuple = (String, String, String, String, i64);
/// A project's columns and a member's role.
type ProjectRoleTuple = (String, String, Option<String>, String, i64, i64, String);

const PROJECT_COLS: &str = "name, description, personal_of, created_by, created_at, updated_at";
const MEMBER_COLS: &str = "project, user_name, role, added_by, added_at";

fn project(t: ProjectTuple) -> ProjectRow {
    ProjectRow {
        name: ProjectName::from_stored(t.0),
        description: t.1,
        personal_of: t.2.map(UserName::from_stored),
        created_by: t.3,
        created_at: ms_to_time(t.4),
        updated_at: ms_to_time(t.5),
    }
}

fn member(t: MemberTuple) -> Result<MemberRow, StoreError> {
    let role = ProjectRole::parse(&t.2).map_err(|e| StoreError::Config(format!("stored role of '{}' in '{}': {}", t.1, t.0, e.message)))?;
    Ok(MemberRow {
        project: ProjectName::from_stored(t.0),
        user_name: UserName::from_stored(t.1),
        role,
        added_by: t.3,
        added_at: ms_to_time(t.4),
    })
}

/// Writes the project's row (the lock every member change takes first);
/// false when there is no such project.
async fn lock_project(conn: &mut AnyConnection, name: &ProjectName, now: i64) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE projects SET updated_at = $1 WHERE name = $2").bind(now).bind(name.as_str()).execute(&mut *conn).await?;
    Ok(r.rows_affected() == 1)
}

/// Checks, under the project's lock, that `manager` (the owner a change is
/// made by; `None`: an admin, or a member leaving) is still an owner: a
/// change by an owner demoted meanwhile is a conflict.
async fn still_owner(conn: &mut AnyConnection, project: &ProjectName, manager: Option<&UserName>) -> Result<(), StoreError> {
    let Some(m) = manager else { return Ok(()) };
    if role_in(conn, project, m).await? != Some(ProjectRole::Owner) {
        return Err(StoreError::Conflict(format!("'{m}' is no longer an owner of project '{project}'")));
    }
    Ok(())
}

async fn owners_in(conn: &mut AnyConnection, name: &ProjectName) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM project_members WHERE project = $1 AND role = 'owner'")
        .bind(name.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(n)
}

async fn role_in(conn: &mut AnyConnection, name: &ProjectName, user: &UserName) -> Result<Option<ProjectRole>, StoreError> {
    let r: Option<(String,)> = sqlx::query_as("SELECT role FROM project_members WHERE project = $1 AND user_name = $2")
        .bind(name.as_str())
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    r.map(|(s,)| ProjectRole::parse(&s).map_err(|e| StoreError::Config(format!("stored role of '{user}' in '{name}': {}", e.message))))
        .transpose()
}

async fn live_in(conn: &mut AnyConnection, project: &ProjectName) -> Result<ProjectResources, StoreError> {
    let (vms, addresses, volumes, images): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM vms WHERE project = $1 AND state NOT IN ('terminated', 'failed')), \
           (SELECT COUNT(*) FROM addresses WHERE project = $1 AND ended_at IS NULL), \
           (SELECT COUNT(*) FROM volumes WHERE project = $1 AND ended_at IS NULL), \
           (SELECT COUNT(*) FROM images WHERE project = $1)",
    )
    .bind(project.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(ProjectResources { vms, addresses, volumes, images })
}

/// What [`Store::delete_project`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectDeletion {
    Deleted,
    /// No such team project.
    NotFound,
    /// Refused: the project still holds these.
    Holds(ProjectResources),
}

impl Store {
    /// Creates a team project with its first owner, in one transaction. A
    /// name taken by a project (or a user: their personal project) is a
    /// conflict; an unknown owner is not found.
    pub async fn create_project(
        &self,
        name: &ProjectName,
        description: &str,
        created_by: &str,
        owner: &UserName,
    ) -> Result<ProjectRow, StoreError> {
        let now = now_ms();
        // The first statement writes (on SQLite a transaction that reads
        // first cannot take the write lock once another writer committed:
        // "database is locked" at once, no waiting).
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO projects (name, description, personal_of, created_by, created_at, updated_at) VALUES ($1, $2, NULL, $3, $4, $4)",
        )
        .bind(name.as_str())
        .bind(description)
        .bind(created_by)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            e if e.is_unique_violation() => StoreError::Conflict(format!("the name '{name}' is taken (by a project or a user)")),
            e => e,
        })?;
        let known: Option<(String,)> =
            sqlx::query_as("SELECT name FROM users WHERE name = $1").bind(owner.as_str()).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("user '{owner}'")));
        }
        sqlx::query("INSERT INTO project_members (project, user_name, role, added_by, added_at) VALUES ($1, $2, 'owner', $3, $4)")
            .bind(name.as_str())
            .bind(owner.as_str())
            .bind(created_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_project(name).await?.ok_or_else(|| StoreError::NotFound(format!("project '{name}'")))
    }

    /// A project by name.
    pub async fn get_project(&self, name: &ProjectName) -> Result<Option<ProjectRow>, StoreError> {
        let r: Option<ProjectTuple> = sqlx::query_as(&format!("SELECT {PROJECT_COLS} FROM projects WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(project))
    }

    /// The projects a user is a member of, with their role, by name.
    pub async fn projects_of_user(&self, user: &UserName) -> Result<Vec<(ProjectRow, ProjectRole)>, StoreError> {
        let cols = PROJECT_COLS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ");
        let name = self.bytewise("p.name");
        let r: Vec<ProjectRoleTuple> = sqlx::query_as(&format!(
            "SELECT {cols}, m.role FROM project_members m JOIN projects p ON p.name = m.project WHERE m.user_name = $1 ORDER BY {name}"
        ))
        .bind(user.as_str())
        .fetch_all(self.pool())
        .await?;
        r.into_iter()
            .map(|(a, b, c, d, e, f, role)| {
                let row = project((a, b, c, d, e, f));
                let role = ProjectRole::parse(&role)
                    .map_err(|e| StoreError::Config(format!("stored role of '{user}' in '{}': {}", row.name, e.message)))?;
                Ok((row, role))
            })
            .collect()
    }

    /// Every project, by name (admins).
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let name = self.bytewise("name");
        let r: Vec<ProjectTuple> =
            sqlx::query_as(&format!("SELECT {PROJECT_COLS} FROM projects ORDER BY {name}")).fetch_all(self.pool()).await?;
        Ok(r.into_iter().map(project).collect())
    }

    /// One page of every project by name (byte order), after the name `after` (admins).
    pub async fn page_projects(&self, after: Option<&str>, limit: i64) -> Result<Vec<ProjectRow>, StoreError> {
        let name = self.bytewise("name");
        let r: Vec<ProjectTuple> =
            sqlx::query_as(&format!("SELECT {PROJECT_COLS} FROM projects WHERE {name} > $1 ORDER BY {name} LIMIT $2"))
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(self.pool())
                .await?;
        Ok(r.into_iter().map(project).collect())
    }

    /// Sets a project's description; false when there is no such project.
    pub async fn set_project_description(&self, name: &ProjectName, description: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE projects SET description = $1, updated_at = $2 WHERE name = $3")
            .bind(description)
            .bind(now_ms())
            .bind(name.as_str())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a team project if it holds nothing live (counted in the same
    /// transaction, after writing the project's row). Its members, grants,
    /// quota overrides, key pairs, credentials and access keys go with it.
    /// A personal project is never deleted here.
    pub async fn delete_project(&self, name: &ProjectName) -> Result<ProjectDeletion, StoreError> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("UPDATE projects SET updated_at = $1 WHERE name = $2 AND personal_of IS NULL")
            .bind(now_ms())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(ProjectDeletion::NotFound);
        }
        let live = live_in(&mut tx, name).await?;
        if !live.is_empty() {
            return Ok(ProjectDeletion::Holds(live));
        }
        sqlx::query("DELETE FROM project_quota_locks WHERE project = $1").bind(name.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM key_pairs WHERE project = $1").bind(name.as_str()).execute(&mut *tx).await?;
        // The project's credentials and access keys: a later project of that name gets none of them.
        sqlx::query("DELETE FROM credentials WHERE scope = 'project' AND owner = $1").bind(name.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM access_keys WHERE project = $1").bind(name.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM projects WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ProjectDeletion::Deleted)
    }

    /// A user's role in a project (`None`: not a member). One primary-key lookup.
    pub async fn project_membership(&self, project: &ProjectName, user: &UserName) -> Result<Option<ProjectRole>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        role_in(&mut conn, project, user).await
    }

    /// A project's members, by user name.
    pub async fn project_members(&self, project: &ProjectName) -> Result<Vec<MemberRow>, StoreError> {
        let name = self.bytewise("user_name");
        let r: Vec<MemberTuple> = sqlx::query_as(&format!("SELECT {MEMBER_COLS} FROM project_members WHERE project = $1 ORDER BY {name}"))
            .bind(project.as_str())
            .fetch_all(self.pool())
            .await?;
        r.into_iter().map(member).collect()
    }

    /// Adds a member or changes their role, keeping at least one owner
    /// (else a conflict naming [`LAST_OWNER`]); `manager` (the owner making
    /// the change, `None` for an admin) must still be an owner. Returns the
    /// previous role (`None`: newly added). An unknown project or user is
    /// not found.
    pub async fn put_project_member(
        &self,
        project: &ProjectName,
        user: &UserName,
        role: ProjectRole,
        added_by: &str,
        manager: Option<&UserName>,
    ) -> Result<Option<ProjectRole>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        if !lock_project(&mut tx, project, now).await? {
            return Err(StoreError::NotFound(format!("project '{project}'")));
        }
        still_owner(&mut tx, project, manager).await?;
        let known: Option<(String,)> =
            sqlx::query_as("SELECT name FROM users WHERE name = $1").bind(user.as_str()).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("user '{user}'")));
        }
        let before = role_in(&mut tx, project, user).await?;
        match before {
            Some(_) => {
                sqlx::query("UPDATE project_members SET role = $1 WHERE project = $2 AND user_name = $3")
                    .bind(role.as_str())
                    .bind(project.as_str())
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("INSERT INTO project_members (project, user_name, role, added_by, added_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(project.as_str())
                    .bind(user.as_str())
                    .bind(role.as_str())
                    .bind(added_by)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if owners_in(&mut tx, project).await? == 0 {
            return Err(StoreError::Conflict(format!("project '{project}' {LAST_OWNER}")));
        }
        tx.commit().await?;
        Ok(before)
    }

    /// Removes a member, keeping at least one owner (else a conflict naming
    /// [`LAST_OWNER`]); `manager` (the owner removing them; `None` for an
    /// admin or a member leaving) must still be an owner. Returns the
    /// removed member's role (`None`: was no member).
    pub async fn remove_project_member(
        &self,
        project: &ProjectName,
        user: &UserName,
        manager: Option<&UserName>,
    ) -> Result<Option<ProjectRole>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        if !lock_project(&mut tx, project, now).await? {
            return Ok(None);
        }
        still_owner(&mut tx, project, manager).await?;
        let before = role_in(&mut tx, project, user).await?;
        if before.is_none() {
            return Ok(None);
        }
        sqlx::query("DELETE FROM project_members WHERE project = $1 AND user_name = $2")
            .bind(project.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        if owners_in(&mut tx, project).await? == 0 {
            return Err(StoreError::Conflict(format!("project '{project}' {LAST_OWNER}")));
        }
        tx.commit().await?;
        Ok(before)
    }

    /// How many owners a project has.
    pub async fn count_project_owners(&self, project: &ProjectName) -> Result<i64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        owners_in(&mut conn, project).await
    }

    /// What a project still holds live: VMs neither terminated nor failed,
    /// addresses not released, volumes not deleted, registered images.
    pub async fn project_live_resources(&self, project: &ProjectName) -> Result<ProjectResources, StoreError> {
        let mut conn = self.pool().acquire().await?;
        live_in(&mut conn, project).await
    }
}
