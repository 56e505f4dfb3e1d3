//! Projects (teams) as a service: creating them, their members and roles,
//! and entering one ([`Projects::enter`]: the only way an edge moves an
//! [`Actor`] out of its personal project). Its invariants: a non-member
//! (not an admin) cannot tell a project exists (NotFound, like another
//! user's VM); a personal project keeps exactly one member, its user, as
//! owner, and is never deleted here; a team project keeps at least one
//! owner (checked in the store's transaction) and is deleted only while it
//! holds nothing live. Every change is audited in the project, and every
//! membership change bumps the broker's [`CacheEpoch`] before it is
//! reported done, so an entered actor cached on this replica is forgotten
//! at once (on other replicas within [`KEY_CACHE_TTL`]).

use crate::audit::{self, AuditAction, AuditEvent, AuditTarget};
use crate::auth::Actor;
use crate::cache::{CacheEpoch, CredentialCache, KEY_CACHE_TTL};
use crate::domain::{Cursor, Page, PageRequest, ProjectName, ProjectRole, UserName};
use crate::error::{Resource, ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use cloudbroker_store::projects::{MemberRow, ProjectDeletion, ProjectRow};
use cloudbroker_store::Store;
use serde::Serialize;

/// The longest description kept (characters).
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A project as shown to someone who sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: ProjectName,
    pub description: String,
    /// Whether this is a user's personal project (named after them, they its only member).
    pub personal: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in it; `null` for an admin who is not a member.
    pub role: Option<ProjectRole>,
}

impl Project {
    fn from_row(r: ProjectRow, role: Option<ProjectRole>) -> Self {
        Self {
            personal: r.is_personal(),
            name: r.name,
            description: r.description,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            role,
        }
    }
}

/// A member of a project.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user: UserName,
    pub role: ProjectRole,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Self {
        Self { user: r.user_name, role: r.role, added_by: r.added_by, added_at: r.added_at }
    }
}

/// A project with its members (what its members and admins see).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectDetail {
    pub project: Project,
    pub members: Vec<Member>,
}

/// The projects service.
pub struct Projects {
    store: Store,
    epoch: CacheEpoch,
    /// Entered projects: `m\n<user>\n<project>` -> the member's role,
    /// `a\n<project>` -> the project exists (for admins). Refusals are never
    /// cached (see [`crate::cache`]).
    entered: CredentialCache<ProjectRole>,
}

/// Checks a description as sent (what the API document promises): at most
/// [`MAX_DESCRIPTION_CHARS`], no control characters but tabs and newlines
/// (a vertical tab is refused even where trimming would drop it); kept
/// trimmed.
fn description(d: &str) -> ServiceResult<String> {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ServiceError::invalid_field("description", format!("a description has at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ServiceError::invalid_field("description", "a description cannot hold control characters"));
    }
    Ok(d.trim().to_string())
}

fn not_found(p: &ProjectName) -> ServiceError {
    ServiceError::NotFound(Resource::Project(p.clone()))
}

fn personal_refused(p: &ProjectName, what: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "'{p}' is a personal project: it has exactly one member, its user, and cannot {what}; create a team project to share resources"
    ))
}

impl Projects {
    /// A new service; membership changes bump `epoch` (shared with the
    /// broker's other credential caches).
    pub fn new(store: Store, epoch: CacheEpoch) -> Self {
        Self { entered: CredentialCache::new(epoch.clone()), store, epoch }
    }

    /// The same actor acting in `project`: its personal project as owner;
    /// any existing project as owner for an admin; a project it is a member
    /// of with its role there; else NotFound. One primary-key lookup,
    /// cached for at most [`KEY_CACHE_TTL`] and forgotten on any membership
    /// change of this broker.
    pub async fn enter(&self, actor: Actor, project: &ProjectName) -> ServiceResult<Actor> {
        if project.as_str() == actor.name.as_str() {
            return Ok(actor.in_project(project.clone(), ProjectRole::Owner));
        }
        let key = if actor.is_admin { format!("a\n{project}") } else { format!("m\n{}\n{project}", actor.name) };
        if let Some(role) = self.entered.get(&key) {
            return Ok(actor.in_project(project.clone(), role));
        }
        let epoch = self.entered.epoch();
        let role = if actor.is_admin {
            self.store.get_project(project).await?.map(|_| ProjectRole::Owner)
        } else {
            self.store.project_membership(project, &actor.name).await?
        };
        let role = role.ok_or_else(|| not_found(project))?;
        self.entered.put(&key, &role, epoch, None);
        Ok(actor.in_project(project.clone(), role))
    }

    /// The project and the actor's role there (`None` for an admin who is no
    /// member), fresh from the store; NotFound for a non-member.
    async fn visible(&self, actor: &Actor, name: &ProjectName) -> ServiceResult<(ProjectRow, Option<ProjectRole>)> {
        let row = self.store.get_project(name).await?.ok_or_else(|| not_found(name))?;
        let role = self.store.project_membership(name, &actor.name).await?;
        if role.is_none() && !actor.is_admin {
            return Err(not_found(name));
        }
        Ok((row, role))
    }

    /// As [`Self::visible`], and the actor manages it (owner or admin: others get Forbidden).
    async fn managed(&self, actor: &Actor, name: &ProjectName) -> ServiceResult<(ProjectRow, Option<ProjectRole>)> {
        let (row, role) = self.visible(actor, name).await?;
        if !actor.is_admin && !role.is_some_and(ProjectRole::can_manage) {
            let role = role.map_or("member", ProjectRole::as_str);
            return Err(ServiceError::Forbidden(format!(
                "you are a {role} of project '{name}': only its owners manage its members and settings"
            )));
        }
        Ok((row, role))
    }

    /// Creates a team project. Any user may; the creator becomes its owner,
    /// unless an admin names the first `owner` (an enabled user). The name
    /// is shared with users: one taken by a user or a project is a conflict.
    pub async fn create(
        &self,
        actor: &Actor,
        name: &ProjectName,
        description_text: &str,
        owner: Option<&UserName>,
    ) -> ServiceResult<Project> {
        let owner = match owner {
            Some(o) if o != &actor.name => {
                if !actor.is_admin {
                    return Err(ServiceError::Forbidden("only admins name another user as a project's first owner".into()));
                }
                o.clone()
            }
            _ => actor.name.clone(),
        };
        let text = description(description_text)?;
        if owner != actor.name {
            self.enabled_user(&owner).await?;
        }
        let row = self.store.create_project(name, &text, actor.name.as_str(), &owner).await.map_err(|e| match e {
            cloudbroker_store::StoreError::NotFound(_) => ServiceError::NotFound(Resource::User(owner.clone())),
            e => e.into(),
        })?;
        let detail = format!("owner {owner}");
        let event =
            AuditEvent::ok(AuditAction::ProjectCreate, AuditTarget::Project(name.as_str())).detail(detail).in_project(name.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        let role = (owner == actor.name).then_some(ProjectRole::Owner);
        Ok(Project::from_row(row, role))
    }

    /// An existing, enabled user (unknown: NotFound; disabled: Conflict).
    async fn enabled_user(&self, user: &UserName) -> ServiceResult<()> {
        let u = self.store.get_user(user.as_str()).await?.ok_or_else(|| ServiceError::NotFound(Resource::User(user.clone())))?;
        if u.disabled_at.is_some() {
            return Err(ServiceError::Conflict(format!("user '{user}' is disabled: enable the account first")));
        }
        Ok(())
    }

    /// A project with its members: its members and admins see it; others get NotFound.
    pub async fn get(&self, actor: &Actor, name: &ProjectName) -> ServiceResult<ProjectDetail> {
        let (row, role) = self.visible(actor, name).await?;
        let members = self.store.project_members(name).await?.into_iter().map(Member::from).collect();
        Ok(ProjectDetail { project: Project::from_row(row, role), members })
    }

    /// A project's members (members and admins; others get NotFound).
    pub async fn members(&self, actor: &Actor, name: &ProjectName) -> ServiceResult<Vec<Member>> {
        self.visible(actor, name).await?;
        Ok(self.store.project_members(name).await?.into_iter().map(Member::from).collect())
    }

    /// The projects the actor is a member of, with its role, by name (the
    /// personal one included; for a project switcher: admins too get only theirs).
    pub async fn list_mine(&self, actor: &Actor) -> ServiceResult<Vec<Project>> {
        let rows = self.store.projects_of_user(&actor.name).await?;
        Ok(rows.into_iter().map(|(r, role)| Project::from_row(r, Some(role))).collect())
    }

    /// The projects the actor sees, by name: its own (with its role); for
    /// admins every project (the role `null` where they are no member).
    pub async fn list(&self, actor: &Actor) -> ServiceResult<Vec<Project>> {
        if !actor.is_admin {
            return self.list_mine(actor).await;
        }
        let mine: std::collections::HashMap<ProjectName, ProjectRole> =
            self.store.projects_of_user(&actor.name).await?.into_iter().map(|(r, role)| (r.name, role)).collect();
        let all = self.store.list_projects().await?;
        Ok(all
            .into_iter()
            .map(|r| {
                let role = mine.get(&r.name).copied();
                Project::from_row(r, role)
            })
            .collect())
    }

    /// One page of the projects the actor sees, by name (byte order): its
    /// own with its role; for admins every project (role `null` where they
    /// are no member).
    pub async fn page(&self, actor: &Actor, page: &PageRequest) -> ServiceResult<Page<Project>> {
        let after = page.after.as_ref().map(|c| c.key.clone()).unwrap_or_default();
        let mine = self.store.projects_of_user(&actor.name).await?;
        let items: Vec<Project> = if actor.is_admin {
            let roles: std::collections::HashMap<ProjectName, ProjectRole> = mine.into_iter().map(|(r, role)| (r.name, role)).collect();
            let rows = self.store.page_projects(Some(&after), i64::from(page.limit) + 1).await?;
            rows.into_iter()
                .map(|r| {
                    let role = roles.get(&r.name).copied();
                    Project::from_row(r, role)
                })
                .collect()
        } else {
            mine.into_iter()
                .filter(|(r, _)| r.name.as_str() > after.as_str())
                .take(page.limit as usize + 1)
                .map(|(r, role)| Project::from_row(r, Some(role)))
                .collect()
        };
        Ok(Page::from_fetched(items, page.limit, |p| Cursor::new(0, p.name.as_str())))
    }

    /// Sets a project's description (owners and admins).
    pub async fn update(&self, actor: &Actor, name: &ProjectName, description_text: &str) -> ServiceResult<Project> {
        let (_, role) = self.managed(actor, name).await?;
        let text = description(description_text)?;
        if !self.store.set_project_description(name, &text).await? {
            return Err(not_found(name));
        }
        let event = AuditEvent::ok(AuditAction::ProjectUpdate, AuditTarget::Project(name.as_str())).in_project(name.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        let row = self.store.get_project(name).await?.ok_or_else(|| not_found(name))?;
        Ok(Project::from_row(row, role))
    }

    /// Deletes a team project (owners and admins). A personal project is
    /// refused (409), and so is a project still holding live VMs,
    /// addresses or volumes, or registered images (409 naming how many,
    /// counted in the deleting transaction).
    pub async fn delete(&self, actor: &Actor, name: &ProjectName) -> ServiceResult<()> {
        let (row, _) = self.managed(actor, name).await?;
        if row.is_personal() {
            return Err(personal_refused(name, "be deleted while its user exists"));
        }
        match self.store.delete_project(name).await? {
            ProjectDeletion::Deleted => {}
            ProjectDeletion::NotFound => return Err(not_found(name)),
            ProjectDeletion::Holds(live) => {
                return Err(ServiceError::Conflict(format!(
                    "project '{name}' still holds {} live VM(s), {} address(es), {} volume(s) and {} registered image(s): \
                     terminate, release and delete them first",
                    live.vms, live.addresses, live.volumes, live.images
                )))
            }
        }
        // Members' entered actors go now.
        self.epoch.bump();
        let event = AuditEvent::ok(AuditAction::ProjectDelete, AuditTarget::Project(name.as_str())).in_project(name.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }

    /// Adds `user` to a team project with `role`, or changes their role
    /// (owners and admins). The user must exist (404) and be enabled (409);
    /// a personal project is refused (409); the project keeps at least one
    /// owner (409).
    pub async fn set_member(&self, actor: &Actor, name: &ProjectName, user: &UserName, role: ProjectRole) -> ServiceResult<Member> {
        let (row, _) = self.managed(actor, name).await?;
        if row.is_personal() {
            return Err(personal_refused(name, "get members"));
        }
        self.enabled_user(user).await?;
        let manager = (!actor.is_admin).then_some(&actor.name);
        let before = self.store.put_project_member(name, user, role, actor.name.as_str(), manager).await.map_err(|e| match e {
            cloudbroker_store::StoreError::NotFound(what) if what.starts_with("user") => {
                ServiceError::NotFound(Resource::User(user.clone()))
            }
            cloudbroker_store::StoreError::NotFound(_) => not_found(name),
            e => e.into(),
        })?;
        // The member's cached entries (their old role) go now.
        self.epoch.bump();
        let detail = match before {
            Some(b) if b != role => format!("{role} (was {b})"),
            _ => role.to_string(),
        };
        let event =
            AuditEvent::ok(AuditAction::ProjectMemberPut, AuditTarget::ProjectMember { project: name.as_str(), user: user.as_str() })
                .detail(detail)
                .in_project(name.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        self.store
            .project_members(name)
            .await?
            .into_iter()
            .find(|m| &m.user_name == user)
            .map(Member::from)
            .ok_or_else(|| ServiceError::NotFound(Resource::User(user.clone())))
    }

    /// Removes `user` from a team project: owners and admins remove anyone,
    /// a member may leave. The project keeps at least one owner (409); a
    /// personal project is refused (409); someone who is no member is NotFound.
    pub async fn remove_member(&self, actor: &Actor, name: &ProjectName, user: &UserName) -> ServiceResult<()> {
        let (row, _) = if &actor.name == user { self.visible(actor, name).await? } else { self.managed(actor, name).await? };
        if row.is_personal() {
            return Err(personal_refused(name, "lose its member"));
        }
        let manager = (!actor.is_admin && &actor.name != user).then_some(&actor.name);
        let before = self.store.remove_project_member(name, user, manager).await?;
        if before.is_none() {
            return Err(ServiceError::NotFound(Resource::Record(format!("member '{user}' of project '{name}'"))));
        }
        // The removed member's entered actors go now (other replicas: within the TTL).
        self.epoch.bump();
        let event =
            AuditEvent::ok(AuditAction::ProjectMemberRemove, AuditTarget::ProjectMember { project: name.as_str(), user: user.as_str() })
                .in_project(name.as_str());
        audit::record_by(&self.store, actor, &event).await?;
        Ok(())
    }
}

/// How long another replica's membership change may go unseen here.
pub const MEMBERSHIP_CACHE_TTL: std::time::Duration = KEY_CACHE_TTL;
