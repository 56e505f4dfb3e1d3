//! The audit log as a service: admins read it newest first, page by page,
//! filtered by actor, action and time. Services write their own entries
//! (nothing at the HTTP edges does), each as an [`AuditEvent`]: a typed
//! action, target and outcome, rendered to the texts the log has always
//! held (the tests below pin every one).

use crate::auth::Actor;
use crate::domain::{Cursor, Page, PageRequest};
use crate::error::ServiceResult;
use chrono::{DateTime, Utc};
use cloudbroker_store::audit::{AuditFilter, AuditRow, NewAudit};
use cloudbroker_store::{Store, StoreError};
use serde::Serialize;

/// Which entries to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The actor as recorded: a user name, or `system`.
    pub actor: Option<String>,
    /// e.g. `vm.launch`, `login`.
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Admins only: one project's entries (owners always read their
    /// project's, and only those).
    pub project: Option<crate::domain::ProjectName>,
    /// Only entries about this user's resources (their subject).
    pub subject: Option<String>,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// The project it belongs to (empty for the broker's own events).
    pub project: String,
    /// The user whose resource was acted on (empty: none recorded), e.g.
    /// the owner of a VM an admin terminated.
    pub subject: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            detail: r.detail,
            project: r.project,
            subject: r.subject,
        }
    }
}

/// The audit service.
pub struct Audit {
    store: Store,
}

impl Audit {
    /// A new service.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// One page of entries, newest first: admins read every entry (or one
    /// project's); a team project's owners read their project's entries
    /// (the actor's entered project). A personal project's audit is read by
    /// admins only, as before projects existed.
    pub async fn list(&self, actor: &Actor, q: AuditQuery, page: PageRequest) -> ServiceResult<Page<AuditEntry>> {
        let project = if actor.is_admin {
            q.project.map(|p| p.to_string())
        } else if actor.in_personal_project() {
            return Err(crate::ServiceError::Forbidden(
                "the audit log needs the admin role (owners of a team project read its entries with ?project=NAME)".into(),
            ));
        } else {
            actor.require_manage()?;
            Some(actor.project.to_string())
        };
        let filter = AuditFilter {
            actor: q.actor,
            project,
            action: q.action,
            subject: q.subject,
            since_ms: q.since.map(|t| t.timestamp_millis()),
            until_ms: q.until.map(|t| t.timestamp_millis()),
            before_id: page.after.as_ref().map(|c| c.num),
        };
        let rows = self.store.audit_page(&filter, i64::from(page.limit) + 1).await?;
        Ok(Page::from_fetched(rows.into_iter().map(AuditEntry::from).collect(), page.limit, |e| Cursor::new(e.id, "")))
    }

    /// Records an event done by `actor` (a user name, or `system`), for the
    /// edges' own events (e.g. a refused CSRF token).
    pub async fn record(&self, actor: &str, event: &AuditEvent<'_>) -> ServiceResult<()> {
        Ok(record(&self.store, actor, event).await?)
    }
}

/// Appends `event`, done by `actor` (a user name, or `system`), to the log
/// through `store` (the services hold the store, not the [`Audit`] service).
pub(crate) async fn record(store: &Store, actor: &str, event: &AuditEvent<'_>) -> Result<(), StoreError> {
    let target = event.target.to_string();
    store.append_audit(&event.row(actor, &target)).await
}

/// Appends `event`, done by `actor`, to the log: it belongs to the
/// event's project when it names one (the resource acted on), else to the
/// project the actor acts in.
pub(crate) async fn record_by(store: &Store, actor: &crate::Actor, event: &AuditEvent<'_>) -> Result<(), StoreError> {
    let target = event.target.to_string();
    let mut row = event.row(actor.name.as_str(), &target);
    if event.project.is_none() {
        row.project = actor.project.as_str();
    }
    store.append_audit(&row).await
}

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Login,
    UserCreate,
    UserPassword,
    UserRole,
    UserDefaultEc2Region,
    UserDisable,
    UserEnable,
    TokenCreate,
    TokenRevoke,
    AccessKeyCreate,
    AccessKeyState,
    AccessKeyDelete,
    KeyPairCreate,
    KeyPairDelete,
    CredentialSave,
    CredentialDelete,
    CredentialGrant,
    CredentialUse,
    KeysRotate,
    ImageRegister,
    ImageDeregister,
    ImageSave,
    ImageDelete,
    ImageRename,
    ConfigChange,
    ConfigReload,
    QuotaChange,
    VmLaunch,
    VmTerminate,
    /// A VM stopped by a user or an admin.
    VmStop,
    /// A stopped VM started by a user or an admin.
    VmStart,
    /// A lease set or extended (by a user or an admin).
    VmLeaseSet,
    /// The warning that a lease ends soon.
    VmLeaseWarn,
    /// The broker acted on an ended lease (stop or terminate), or skipped it (and why).
    VmLeaseExpire,
    /// A monthly budget's spend crossed a warning threshold (50%, 80%, 100%).
    BudgetAlert,
    /// A price or markup set or removed through the UI or the API.
    PriceChange,
    /// An application saved (a new version) or deleted.
    ApplicationChange,
    /// A deployment made, scaled, aborted or terminated by a user.
    DeploymentChange,
    VolumeCreate,
    VolumeAttach,
    VolumeDetach,
    VolumeDelete,
    AddressAllocate,
    AddressAssociate,
    AddressDisassociate,
    AddressRelease,
    ProjectCreate,
    ProjectUpdate,
    ProjectDelete,
    ProjectMemberPut,
    ProjectMemberRemove,
    /// A VPC or subnet made or deleted through the broker (EC2 CreateVpc, CreateSubnet, ...).
    VpcCreate,
    VpcDelete,
    SubnetCreate,
    SubnetDelete,
    /// A security group made, deleted, or its rules changed (EC2
    /// CreateSecurityGroup, Authorize/RevokeSecurityGroupIngress/Egress, ...).
    SecurityGroupCreate,
    SecurityGroupDelete,
    SecurityGroupAuthorize,
    SecurityGroupRevoke,
    /// A snapshot of a volume taken (EC2 CreateSnapshot).
    SnapshotCreate,
    SnapshotDelete,
    /// A private image made from a VM (EC2 CreateImage, the VM page).
    ImageCreate,
    /// A private image's launch permissions changed (users added or removed).
    ImageShare,
}

impl AuditAction {
    /// Every action, for tests and documentation.
    pub const ALL: [AuditAction; 63] = [
        Self::Login,
        Self::UserCreate,
        Self::UserPassword,
        Self::UserRole,
        Self::UserDefaultEc2Region,
        Self::UserDisable,
        Self::UserEnable,
        Self::TokenCreate,
        Self::TokenRevoke,
        Self::AccessKeyCreate,
        Self::AccessKeyState,
        Self::AccessKeyDelete,
        Self::KeyPairCreate,
        Self::KeyPairDelete,
        Self::CredentialSave,
        Self::CredentialDelete,
        Self::CredentialGrant,
        Self::CredentialUse,
        Self::KeysRotate,
        Self::ImageRegister,
        Self::ImageDeregister,
        Self::ImageSave,
        Self::ImageDelete,
        Self::ImageRename,
        Self::ConfigChange,
        Self::ConfigReload,
        Self::QuotaChange,
        Self::VmLaunch,
        Self::VmTerminate,
        Self::VmStop,
        Self::VmStart,
        Self::VmLeaseSet,
        Self::VmLeaseWarn,
        Self::VmLeaseExpire,
        Self::BudgetAlert,
        Self::PriceChange,
        Self::ApplicationChange,
        Self::DeploymentChange,
        Self::VolumeCreate,
        Self::VolumeAttach,
        Self::VolumeDetach,
        Self::VolumeDelete,
        Self::AddressAllocate,
        Self::AddressAssociate,
        Self::AddressDisassociate,
        Self::AddressRelease,
        Self::ProjectCreate,
        Self::ProjectUpdate,
        Self::ProjectDelete,
        Self::ProjectMemberPut,
        Self::ProjectMemberRemove,
        Self::VpcCreate,
        Self::VpcDelete,
        Self::SubnetCreate,
        Self::SubnetDelete,
        Self::SecurityGroupCreate,
        Self::SecurityGroupDelete,
        Self::SecurityGroupAuthorize,
        Self::SecurityGroupRevoke,
        Self::SnapshotCreate,
        Self::SnapshotDelete,
        Self::ImageCreate,
        Self::ImageShare,
    ];

    /// The action as stored and filtered on (`GET /api/v1/audit?action=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::UserCreate => "user.create",
            Self::UserPassword => "user.password",
            Self::UserRole => "user.role",
            Self::UserDefaultEc2Region => "user.default_ec2_region",
            Self::UserDisable => "user.disable",
            Self::UserEnable => "user.enable",
            Self::TokenCreate => "token.create",
            Self::TokenRevoke => "token.revoke",
            Self::AccessKeyCreate => "access_key.create",
            Self::AccessKeyState => "access_key.state",
            Self::AccessKeyDelete => "access_key.delete",
            Self::KeyPairCreate => "key_pair.create",
            Self::KeyPairDelete => "key_pair.delete",
            Self::CredentialSave => "credential.save",
            Self::CredentialDelete => "credential.delete",
            Self::CredentialGrant => "credential.grant",
            Self::CredentialUse => "credential.use",
            Self::KeysRotate => "keys.rotate",
            Self::ImageRegister => "image.register",
            Self::ImageDeregister => "image.deregister",
            Self::ImageSave => "image.save",
            Self::ImageDelete => "image.delete",
            Self::ImageRename => "image.rename",
            Self::ConfigChange => "config.change",
            Self::ConfigReload => "config.reload",
            Self::QuotaChange => "quota.change",
            Self::VmLaunch => "vm.launch",
            Self::VmTerminate => "vm.terminate",
            Self::VmStop => "vm.stop",
            Self::VmStart => "vm.start",
            Self::VmLeaseSet => "vm.lease.set",
            Self::VmLeaseWarn => "vm.lease.warn",
            Self::VmLeaseExpire => "vm.lease.expire",
            Self::BudgetAlert => "budget.alert",
            Self::PriceChange => "price.change",
            Self::ApplicationChange => "application.change",
            Self::DeploymentChange => "deployment.change",
            Self::VolumeCreate => "volume.create",
            Self::VolumeAttach => "volume.attach",
            Self::VolumeDetach => "volume.detach",
            Self::VolumeDelete => "volume.delete",
            Self::AddressAllocate => "address.allocate",
            Self::AddressAssociate => "address.associate",
            Self::AddressDisassociate => "address.disassociate",
            Self::AddressRelease => "address.release",
            Self::ProjectCreate => "project.create",
            Self::ProjectUpdate => "project.update",
            Self::ProjectDelete => "project.delete",
            Self::ProjectMemberPut => "project.member.put",
            Self::ProjectMemberRemove => "project.member.remove",
            Self::VpcCreate => "vpc.create",
            Self::VpcDelete => "vpc.delete",
            Self::SubnetCreate => "subnet.create",
            Self::SubnetDelete => "subnet.delete",
            Self::SecurityGroupCreate => "security_group.create",
            Self::SecurityGroupDelete => "security_group.delete",
            Self::SecurityGroupAuthorize => "security_group.authorize",
            Self::SecurityGroupRevoke => "security_group.revoke",
            Self::SnapshotCreate => "snapshot.create",
            Self::SnapshotDelete => "snapshot.delete",
            Self::ImageCreate => "image.create",
            Self::ImageShare => "image.share",
        }
    }
}

/// What it was done to; shown as the entry's target text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditTarget<'a> {
    /// Nothing in particular (shown empty).
    None,
    /// A user account, by name (also the name a login was tried with).
    User(&'a str),
    /// Something a user owns, by its id or name: an API token, an access
    /// key, a key pair (`user/item`).
    UserItem { user: &'a str, item: &'a str },
    /// A credential of a scope (`user` or `system`), an owner (a user, or
    /// the shared credential's name) and a connector instance
    /// (`scope/owner/instance`).
    Credential { scope: &'a str, owner: &'a str, instance: &'a str },
    /// A master key, by id.
    MasterKey(&'a str),
    /// An image, by name.
    Image(&'a str),
    /// System configuration parameters, by key (`k1,k2`).
    Params(&'a [&'a str]),
    /// The connector configuration directory (`connectors.d`).
    ConnectorsDir,
    /// A user's quota on a connector instance (`user/instance`).
    Quota { user: &'a str, instance: &'a str },
    /// A connector instance (a launch refused before it had an id).
    Instance(&'a str),
    /// A launch on a connector instance (`instance/launch_id`).
    Launch { instance: &'a str, launch_id: &'a str },
    /// A VM, by id.
    Vm(&'a str),
    /// A volume or an address, by its cloud id on a connector instance (`instance/id`).
    CloudResource { instance: &'a str, id: &'a str },
    /// A project, by name.
    Project(&'a str),
    /// A member of a project (`project/user`).
    ProjectMember { project: &'a str, user: &'a str },
    /// An application, by name.
    Application(&'a str),
    /// A deployment, by id.
    Deployment(&'a str),
}

impl std::fmt::Display for AuditTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => Ok(()),
            Self::User(s)
            | Self::MasterKey(s)
            | Self::Image(s)
            | Self::Instance(s)
            | Self::Vm(s)
            | Self::Project(s)
            | Self::Application(s)
            | Self::Deployment(s) => f.write_str(s),
            Self::UserItem { user, item } => write!(f, "{user}/{item}"),
            Self::Credential { scope, owner, instance } => write!(f, "{scope}/{owner}/{instance}"),
            Self::Params(keys) => f.write_str(&keys.join(",")),
            Self::ConnectorsDir => f.write_str("connectors.d"),
            Self::Quota { user, instance } => write!(f, "{user}/{instance}"),
            Self::Launch { instance, launch_id } => write!(f, "{instance}/{launch_id}"),
            Self::CloudResource { instance, id } => write!(f, "{instance}/{id}"),
            Self::ProjectMember { project, user } => write!(f, "{project}/{user}"),
        }
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused (invalid, not allowed, disabled account).
    Rejected,
    /// A login with a wrong name or password.
    Failure,
    /// The cloud refused or failed.
    Failed,
    /// The cloud may or may not have done it (the reconciler finds out).
    Unknown,
    /// A launch refused by the quota.
    OverQuota,
    /// A launch admitted and recorded, not yet sent to the cloud.
    Requested,
    /// A credential saved after the cloud accepted it.
    Verified,
    /// A credential saved without the cloud's check (forced).
    Unverified,
}

impl AuditOutcome {
    /// Every outcome, for tests and documentation.
    pub const ALL: [AuditOutcome; 9] = [
        Self::Ok,
        Self::Rejected,
        Self::Failure,
        Self::Failed,
        Self::Unknown,
        Self::OverQuota,
        Self::Requested,
        Self::Verified,
        Self::Unverified,
    ];

    /// The outcome as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Failure => "failure",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::OverQuota => "over-quota",
            Self::Requested => "requested",
            Self::Verified => "verified",
            Self::Unverified => "unverified",
        }
    }
}

/// One event for the log: the action, its target and outcome, and free
/// details (empty unless given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent<'a> {
    pub action: AuditAction,
    pub target: AuditTarget<'a>,
    pub outcome: AuditOutcome,
    pub detail: std::borrow::Cow<'a, str>,
    /// The project it belongs to: the resource's when one is acted on
    /// (set with [`AuditEvent::in_project`]), else the actor's (see
    /// [`record_by`]); `None` for the broker's own events.
    pub project: Option<&'a str>,
    /// The user whose resource it was done to (set with
    /// [`AuditEvent::about`]): with an admin as actor, whose VM, volume,
    /// address, key pair or access key it was.
    pub subject: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    /// An event without details.
    pub fn new(action: AuditAction, target: AuditTarget<'a>, outcome: AuditOutcome) -> Self {
        Self { action, target, outcome, detail: std::borrow::Cow::Borrowed(""), project: None, subject: None }
    }

    /// A successful event without details.
    pub fn ok(action: AuditAction, target: AuditTarget<'a>) -> Self {
        Self::new(action, target, AuditOutcome::Ok)
    }

    /// The same event with details.
    pub fn detail(self, detail: impl Into<std::borrow::Cow<'a, str>>) -> Self {
        Self { detail: detail.into(), ..self }
    }

    /// The same event, belonging to `project` (the resource's project).
    pub fn in_project(self, project: &'a str) -> Self {
        Self { project: Some(project), ..self }
    }

    /// The same event, done to a resource of `user` (its subject).
    pub fn about(self, user: &'a str) -> Self {
        Self { subject: Some(user), ..self }
    }

    /// The row the store appends, with the target already rendered (`target`,
    /// from [`AuditTarget`]'s `Display`).
    pub(crate) fn row<'r>(&'r self, actor: &'r str, target: &'r str) -> NewAudit<'r> {
        NewAudit {
            actor,
            action: self.action.as_str(),
            target,
            outcome: self.outcome.as_str(),
            detail: &self.detail,
            project: self.project.unwrap_or(""),
            subject: self.subject.unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The texts the string calls wrote before the events were typed, call
    /// site by call site (action, the target as the call formatted it,
    /// outcome), and the event that replaces each.
    #[test]
    fn events_render_the_texts_the_string_calls_wrote() {
        let keys = ["a", "b"];
        let cases: Vec<(AuditEvent<'_>, [&str; 4])> = vec![
            (
                AuditEvent::ok(AuditAction::UserCreate, AuditTarget::User("super")).detail("bootstrap"),
                ["user.create", "super", "ok", "bootstrap"],
            ),
            (AuditEvent::ok(AuditAction::UserCreate, AuditTarget::User("bob")).detail("admin"), ["user.create", "bob", "ok", "admin"]),
            (AuditEvent::ok(AuditAction::UserPassword, AuditTarget::User("bob")), ["user.password", "bob", "ok", ""]),
            (AuditEvent::ok(AuditAction::UserRole, AuditTarget::User("bob")).detail("user"), ["user.role", "bob", "ok", "user"]),
            (AuditEvent::ok(AuditAction::UserDefaultEc2Region, AuditTarget::User("bob")), ["user.default_ec2_region", "bob", "ok", ""]),
            (AuditEvent::ok(AuditAction::UserDisable, AuditTarget::User("bob")), ["user.disable", "bob", "ok", ""]),
            (AuditEvent::ok(AuditAction::UserEnable, AuditTarget::User("bob")), ["user.enable", "bob", "ok", ""]),
            (AuditEvent::new(AuditAction::Login, AuditTarget::User("bob"), AuditOutcome::Rejected), ["login", "bob", "rejected", ""]),
            (AuditEvent::ok(AuditAction::Login, AuditTarget::User("bob")), ["login", "bob", "ok", ""]),
            (AuditEvent::new(AuditAction::Login, AuditTarget::User("bob"), AuditOutcome::Failure), ["login", "bob", "failure", ""]),
            (
                AuditEvent::ok(AuditAction::TokenCreate, AuditTarget::UserItem { user: "bob", item: "t1" }),
                ["token.create", "bob/t1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::TokenRevoke, AuditTarget::UserItem { user: "bob", item: "t1" }),
                ["token.revoke", "bob/t1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::AccessKeyCreate, AuditTarget::UserItem { user: "bob", item: "AKIA1" }),
                ["access_key.create", "bob/AKIA1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::AccessKeyState, AuditTarget::UserItem { user: "bob", item: "AKIA1" }).detail("disabled"),
                ["access_key.state", "bob/AKIA1", "ok", "disabled"],
            ),
            (
                AuditEvent::ok(AuditAction::AccessKeyDelete, AuditTarget::UserItem { user: "bob", item: "AKIA1" }),
                ["access_key.delete", "bob/AKIA1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::KeyPairCreate, AuditTarget::UserItem { user: "bob", item: "k" }),
                ["key_pair.create", "bob/k", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::KeyPairDelete, AuditTarget::UserItem { user: "bob", item: "k" }),
                ["key_pair.delete", "bob/k", "ok", ""],
            ),
            (
                AuditEvent::new(
                    AuditAction::CredentialSave,
                    AuditTarget::Credential { scope: "user", owner: "bob", instance: "sb" },
                    AuditOutcome::Rejected,
                ),
                ["credential.save", "user/bob/sb", "rejected", ""],
            ),
            (
                AuditEvent::new(
                    AuditAction::CredentialSave,
                    AuditTarget::Credential { scope: "system", owner: "shared", instance: "sb" },
                    AuditOutcome::Verified,
                ),
                ["credential.save", "system/shared/sb", "verified", ""],
            ),
            (
                AuditEvent::new(
                    AuditAction::CredentialSave,
                    AuditTarget::Credential { scope: "user", owner: "bob", instance: "sb" },
                    AuditOutcome::Unverified,
                ),
                ["credential.save", "user/bob/sb", "unverified", ""],
            ),
            (
                AuditEvent::ok(AuditAction::CredentialDelete, AuditTarget::Credential { scope: "user", owner: "bob", instance: "sb" }),
                ["credential.delete", "user/bob/sb", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::CredentialGrant, AuditTarget::Credential { scope: "system", owner: "shared", instance: "sb" })
                    .detail("bob,carol"),
                ["credential.grant", "system/shared/sb", "ok", "bob,carol"],
            ),
            (
                AuditEvent::new(
                    AuditAction::CredentialUse,
                    AuditTarget::Credential { scope: "system", owner: "shared", instance: "sb" },
                    AuditOutcome::Rejected,
                ),
                ["credential.use", "system/shared/sb", "rejected", ""],
            ),
            (AuditEvent::new(AuditAction::KeysRotate, AuditTarget::None, AuditOutcome::Rejected), ["keys.rotate", "", "rejected", ""]),
            (AuditEvent::ok(AuditAction::KeysRotate, AuditTarget::MasterKey("k2")), ["keys.rotate", "k2", "ok", ""]),
            (AuditEvent::ok(AuditAction::ImageRename, AuditTarget::Image("img")), ["image.rename", "img", "ok", ""]),
            (AuditEvent::ok(AuditAction::ImageRegister, AuditTarget::Image("img")), ["image.register", "img", "ok", ""]),
            (AuditEvent::ok(AuditAction::ImageDeregister, AuditTarget::Image("img")), ["image.deregister", "img", "ok", ""]),
            (AuditEvent::ok(AuditAction::ImageSave, AuditTarget::Image("img")), ["image.save", "img", "ok", ""]),
            (AuditEvent::ok(AuditAction::ImageDelete, AuditTarget::Image("img")), ["image.delete", "img", "ok", ""]),
            (AuditEvent::ok(AuditAction::ConfigChange, AuditTarget::Params(&keys)), ["config.change", "a,b", "ok", ""]),
            (
                AuditEvent::new(AuditAction::ConfigChange, AuditTarget::Params(&keys[..1]), AuditOutcome::Rejected),
                ["config.change", "a", "rejected", ""],
            ),
            (AuditEvent::ok(AuditAction::ConfigReload, AuditTarget::ConnectorsDir), ["config.reload", "connectors.d", "ok", ""]),
            (
                AuditEvent::ok(AuditAction::QuotaChange, AuditTarget::Quota { user: "bob", instance: "sb" }).detail("unset"),
                ["quota.change", "bob/sb", "ok", "unset"],
            ),
            (
                AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Instance("sb"), AuditOutcome::OverQuota),
                ["vm.launch", "sb", "over-quota", ""],
            ),
            (
                AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Launch { instance: "sb", launch_id: "l1" }, AuditOutcome::Requested),
                ["vm.launch", "sb/l1", "requested", ""],
            ),
            (
                AuditEvent::ok(AuditAction::VmLaunch, AuditTarget::Launch { instance: "sb", launch_id: "l1" }),
                ["vm.launch", "sb/l1", "ok", ""],
            ),
            (
                AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Launch { instance: "sb", launch_id: "l1" }, AuditOutcome::Unknown),
                ["vm.launch", "sb/l1", "unknown", ""],
            ),
            (
                AuditEvent::new(AuditAction::VmLaunch, AuditTarget::Launch { instance: "sb", launch_id: "l1" }, AuditOutcome::Failed),
                ["vm.launch", "sb/l1", "failed", ""],
            ),
            (AuditEvent::ok(AuditAction::VmTerminate, AuditTarget::Vm("vm-1")).detail("sb"), ["vm.terminate", "vm-1", "ok", "sb"]),
            (AuditEvent::ok(AuditAction::VmStop, AuditTarget::Vm("vm-1")).detail("sb").about("bob"), ["vm.stop", "vm-1", "ok", "sb"]),
            (AuditEvent::ok(AuditAction::VmStart, AuditTarget::Vm("vm-1")).detail("sb").about("bob"), ["vm.start", "vm-1", "ok", "sb"]),
            (AuditEvent::ok(AuditAction::VmLeaseSet, AuditTarget::Vm("vm-1")).detail("until T"), ["vm.lease.set", "vm-1", "ok", "until T"]),
            (AuditEvent::ok(AuditAction::VmLeaseWarn, AuditTarget::Vm("vm-1")), ["vm.lease.warn", "vm-1", "ok", ""]),
            (AuditEvent::ok(AuditAction::VmLeaseExpire, AuditTarget::Vm("vm-1")), ["vm.lease.expire", "vm-1", "ok", ""]),
            (
                AuditEvent::ok(AuditAction::BudgetAlert, AuditTarget::Quota { user: "bob", instance: "sb" }).detail("80%"),
                ["budget.alert", "bob/sb", "ok", "80%"],
            ),
            (
                AuditEvent::ok(AuditAction::PriceChange, AuditTarget::Instance("sb")).detail("markup: 10%"),
                ["price.change", "sb", "ok", "markup: 10%"],
            ),
            (
                AuditEvent::ok(AuditAction::ApplicationChange, AuditTarget::Application("lamp")).detail("version 2 saved"),
                ["application.change", "lamp", "ok", "version 2 saved"],
            ),
            (
                AuditEvent::ok(AuditAction::DeploymentChange, AuditTarget::Deployment("dep-0123456789abcdef")).detail("terminate"),
                ["deployment.change", "dep-0123456789abcdef", "ok", "terminate"],
            ),
            (
                AuditEvent::ok(AuditAction::VolumeCreate, AuditTarget::CloudResource { instance: "sb", id: "vol-1" }).detail("8 GiB"),
                ["volume.create", "sb/vol-1", "ok", "8 GiB"],
            ),
            (
                AuditEvent::ok(AuditAction::VolumeAttach, AuditTarget::CloudResource { instance: "sb", id: "vol-1" }),
                ["volume.attach", "sb/vol-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::VolumeDetach, AuditTarget::CloudResource { instance: "sb", id: "vol-1" }),
                ["volume.detach", "sb/vol-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::VolumeDelete, AuditTarget::CloudResource { instance: "sb", id: "vol-1" }),
                ["volume.delete", "sb/vol-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::AddressAllocate, AuditTarget::CloudResource { instance: "sb", id: "eipalloc-1" }),
                ["address.allocate", "sb/eipalloc-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::AddressAssociate, AuditTarget::CloudResource { instance: "sb", id: "eipalloc-1" }),
                ["address.associate", "sb/eipalloc-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::AddressDisassociate, AuditTarget::CloudResource { instance: "sb", id: "eipalloc-1" }),
                ["address.disassociate", "sb/eipalloc-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::AddressRelease, AuditTarget::CloudResource { instance: "sb", id: "eipalloc-1" }),
                ["address.release", "sb/eipalloc-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::ProjectCreate, AuditTarget::Project("team-a")).detail("owner bob"),
                ["project.create", "team-a", "ok", "owner bob"],
            ),
            (AuditEvent::ok(AuditAction::ProjectUpdate, AuditTarget::Project("team-a")), ["project.update", "team-a", "ok", ""]),
            (AuditEvent::ok(AuditAction::ProjectDelete, AuditTarget::Project("team-a")), ["project.delete", "team-a", "ok", ""]),
            (
                AuditEvent::ok(AuditAction::ProjectMemberPut, AuditTarget::ProjectMember { project: "team-a", user: "carol" })
                    .detail("viewer"),
                ["project.member.put", "team-a/carol", "ok", "viewer"],
            ),
            (
                AuditEvent::ok(AuditAction::ProjectMemberRemove, AuditTarget::ProjectMember { project: "team-a", user: "carol" }),
                ["project.member.remove", "team-a/carol", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::VpcCreate, AuditTarget::CloudResource { instance: "sb", id: "vpc-1" }).detail("10.1.0.0/16"),
                ["vpc.create", "sb/vpc-1", "ok", "10.1.0.0/16"],
            ),
            (
                AuditEvent::ok(AuditAction::VpcDelete, AuditTarget::CloudResource { instance: "sb", id: "vpc-1" }),
                ["vpc.delete", "sb/vpc-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::SubnetCreate, AuditTarget::CloudResource { instance: "sb", id: "subnet-1" })
                    .detail("10.1.2.0/24 in vpc-1"),
                ["subnet.create", "sb/subnet-1", "ok", "10.1.2.0/24 in vpc-1"],
            ),
            (
                AuditEvent::ok(AuditAction::SubnetDelete, AuditTarget::CloudResource { instance: "sb", id: "subnet-1" }),
                ["subnet.delete", "sb/subnet-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::SecurityGroupCreate, AuditTarget::CloudResource { instance: "sb", id: "sg-1" }).detail("web"),
                ["security_group.create", "sb/sg-1", "ok", "web"],
            ),
            (
                AuditEvent::ok(AuditAction::SecurityGroupDelete, AuditTarget::CloudResource { instance: "sb", id: "sg-1" }),
                ["security_group.delete", "sb/sg-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::SecurityGroupAuthorize, AuditTarget::CloudResource { instance: "sb", id: "sg-1" })
                    .detail("ingress tcp 22-22 10.0.0.0/8"),
                ["security_group.authorize", "sb/sg-1", "ok", "ingress tcp 22-22 10.0.0.0/8"],
            ),
            (
                AuditEvent::ok(AuditAction::SecurityGroupRevoke, AuditTarget::CloudResource { instance: "sb", id: "sg-1" })
                    .detail("egress -1 0.0.0.0/0"),
                ["security_group.revoke", "sb/sg-1", "ok", "egress -1 0.0.0.0/0"],
            ),
            (
                AuditEvent::ok(AuditAction::SnapshotCreate, AuditTarget::CloudResource { instance: "sb", id: "snap-1" }).detail("vol-1"),
                ["snapshot.create", "sb/snap-1", "ok", "vol-1"],
            ),
            (
                AuditEvent::ok(AuditAction::SnapshotDelete, AuditTarget::CloudResource { instance: "sb", id: "snap-1" }),
                ["snapshot.delete", "sb/snap-1", "ok", ""],
            ),
            (
                AuditEvent::ok(AuditAction::ImageCreate, AuditTarget::Image("mine")).detail("vm-1 sb:ami-1"),
                ["image.create", "mine", "ok", "vm-1 sb:ami-1"],
            ),
            (
                AuditEvent::ok(AuditAction::ImageShare, AuditTarget::Image("mine")).detail("+bob -carol"),
                ["image.share", "mine", "ok", "+bob -carol"],
            ),
        ];
        let mut actions = BTreeSet::new();
        let mut outcomes = BTreeSet::new();
        for (event, [action, target, outcome, detail]) in &cases {
            let rendered = event.target.to_string();
            let row = event.row("bob", &rendered);
            assert_eq!(
                (row.actor, row.action, row.target, row.outcome, row.detail),
                ("bob", *action, *target, *outcome, *detail),
                "{event:?}"
            );
            actions.insert(event.action.as_str());
            outcomes.insert(event.outcome.as_str());
        }
        // Every action and outcome is pinned by a case above.
        assert_eq!(actions.len(), AuditAction::ALL.len());
        assert_eq!(outcomes.len(), AuditOutcome::ALL.len());
    }

    #[test]
    fn the_subject_is_the_owner_named_and_empty_otherwise() {
        let about = AuditEvent::ok(AuditAction::VmTerminate, AuditTarget::Vm("vm-1")).about("alice");
        assert_eq!(about.row("admin", "vm-1").subject, "alice");
        let plain = AuditEvent::ok(AuditAction::VmTerminate, AuditTarget::Vm("vm-1"));
        assert_eq!(plain.row("alice", "vm-1").subject, "");
    }

    #[test]
    fn action_and_outcome_texts_are_distinct() {
        let a: BTreeSet<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(a.len(), AuditAction::ALL.len());
        let o: BTreeSet<&str> = AuditOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(o.len(), AuditOutcome::ALL.len());
    }
}
