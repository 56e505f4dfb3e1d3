//! The services' error type. Its variants carry typed subjects (which
//! resource was not found, which field was invalid, the cloud's own error
//! with its code) so each edge maps it once: the JSON API to a status and a
//! code, the web UI to a message next to the right field, the EC2 front to
//! `InvalidInstanceID.NotFound`, `InvalidAMIID.NotFound` and friends.

use crate::domain::{AllocationId, CredentialName, ImageName, InstanceName, InvalidValue, TokenId, UserName, VmId, VolumeId};
use cloudbroker_connector_api::ConnectorError;
use cloudbroker_store::cloud_objects::ObjectKind;
use cloudbroker_store::StoreError;

/// What was not found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    User(UserName),
    Instance(InstanceName),
    Image(ImageName),
    Vm(VmId),
    /// A user's Elastic IP (by allocation id).
    Address(AllocationId),
    /// A user's volume.
    Volume(VolumeId),
    Token(TokenId),
    /// A user's credentials for an instance.
    Credentials {
        instance: InstanceName,
    },
    /// A shared credential.
    SharedCredential {
        name: CredentialName,
        instance: InstanceName,
    },
    /// A stored credential by id (background work).
    CredentialId(String),
    /// One of the user's key pairs, by name (a launch's `key_name`).
    KeyPair(String),
    /// A project (one the caller is no member of is "not found" too).
    Project(crate::domain::ProjectName),
    /// A record the store did not find, described by the store.
    Record(String),
    /// A recorded cloud object (security group, VPC, subnet, snapshot) by its cloud id.
    CloudObject {
        kind: cloudbroker_store::cloud_objects::ObjectKind,
        id: String,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::User(u) => write!(f, "user '{u}'"),
            Resource::Instance(i) => write!(f, "connector instance '{i}'"),
            Resource::Image(i) => write!(f, "image '{i}'"),
            Resource::Vm(v) => write!(f, "VM '{v}'"),
            Resource::Address(a) => write!(f, "address '{a}'"),
            Resource::Volume(v) => write!(f, "volume '{v}'"),
            Resource::CloudObject { kind, id } => write!(f, "{kind} '{id}'"),
            Resource::Token(t) => write!(f, "token '{t}'"),
            Resource::Credentials { instance } => write!(f, "credentials for '{instance}'"),
            Resource::SharedCredential { name, instance } => write!(f, "shared credential '{name}' for '{instance}'"),
            Resource::CredentialId(id) => write!(f, "credential {id}"),
            Resource::KeyPair(name) => write!(f, "key pair '{name}'"),
            Resource::Project(p) => write!(f, "project '{p}'"),
            Resource::Record(what) => f.write_str(what),
        }
    }
}

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(Resource),
    #[error("{0}")]
    Conflict(String),
    /// Refused by a setting of the resource itself (a VM's termination
    /// protection, EC2's `disableApiTermination`): the JSON API answers
    /// 409 `not_permitted`, the UI "Not possible now", the EC2 front
    /// `OperationNotPermitted`.
    #[error("{0}")]
    NotPermitted(String),
    /// Bad input; `field` names the offending input where there is one.
    #[error("{message}")]
    Invalid { field: Option<&'static str>, message: String },
    /// Well-formed input naming something the configuration lacks (an image
    /// with no id on the instance, a missing parent, an undeclared instance):
    /// the JSON API answers 409, the UI puts the message next to `field`, the
    /// EC2 front answers the code of that field (`InvalidAMIID.NotFound`).
    #[error("{message}")]
    Unresolved { field: &'static str, message: String },
    /// A connector instance exists but cannot serve (declaration error, not started).
    #[error("{0}")]
    Unavailable(String),
    /// The database cannot be reached or refuses work for now; nothing was
    /// changed. Callers may retry (the JSON API answers 503 with Retry-After).
    #[error("the broker's database is unavailable; try again in a few seconds")]
    DatabaseUnavailable(#[source] StoreError),
    /// Stored data was sealed with a master key this process's key file
    /// lacks (a replica with its own, stale copy of the file): it cannot
    /// serve that data until it gets the current file. Names the key id,
    /// never the key.
    #[error("this broker's master key file lacks the key '{key_id}' that stored credentials were sealed with: give this replica the current key file (every replica must use the same one)")]
    MasterKeyUnknown { key_id: String },
    #[error("too many failed attempts; try again in {retry_after_secs}s")]
    Throttled { retry_after_secs: u64 },
    /// A launch refused by `scope`'s quota: it leaves room for `quota -
    /// current` VMs, fewer than the `requested` least count.
    #[error("{}", scope.exceeded(*quota, *current, *requested))]
    QuotaExceeded { scope: QuotaScope, quota: i64, current: i64, requested: i64 },
    /// A launch (or a start) that would take a monthly budget past its
    /// amount: the JSON API answers 409 `budget_exceeded` with the figures,
    /// the UI a form message, the EC2 front `InstanceLimitExceeded` with the
    /// same message.
    #[error("{0}")]
    BudgetExceeded(Box<BudgetRefusal>),
    /// A launch refused by one of its connector instance's launch policies:
    /// `policy` is the parameter (`policy.instance.types`, ...), `field` the
    /// launch's input that breaks it; the message names both and the
    /// offending value. The JSON API answers 409 `policy_violation`, the UI
    /// puts the message next to `field`, the EC2 front answers
    /// `InvalidParameterValue`.
    #[error("{message}")]
    PolicyViolation { policy: &'static str, field: &'static str, message: String },
    /// A cap on what one user owns, or on one resource's tags (enforced by `limits`).
    #[error("limit reached: at most {max} {limit}; delete some first")]
    LimitExceeded { limit: Limit, max: i64 },
    /// The cloud's own error, with its code. (A sandbox whose world the
    /// broker's database keeps answers that database's unavailability as
    /// [`ServiceError::DatabaseUnavailable`], see `From<ConnectorError>`.)
    #[error("cloud error: {0}")]
    Cloud(ConnectorError),
    /// The store failed; the source is kept for the log, never shown to callers.
    #[error("internal error: {0}")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// An application document with errors, every one of them (each names
    /// its path): the JSON API answers 400 `invalid_document` with
    /// `errors: [{path, message}]`, the UI lists them next to their lines.
    #[error("{}", invalid_document_message(.0))]
    InvalidDocument(Vec<crate::app_doc::AppError>),
    /// A deployment's VM refused (by a quota, a budget, a launch policy...):
    /// the refusal of its node `node` on connector instance `instance`.
    /// Every front answers as for `error` (same status and code), with the
    /// node named in the message.
    #[error("node '{node}' on '{instance}': {error}")]
    InNode { node: String, instance: String, error: Box<ServiceError> },
}

fn invalid_document_message(errors: &[crate::app_doc::AppError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("the application document has {} error(s): {}", errors.len(), all.join("; "))
}

/// Which quota refused a launch ([`ServiceError::QuotaExceeded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaScope {
    /// The launching user's quota on the instance (their VMs in every project).
    User,
    /// The project's quota on the instance (the VMs of all its members).
    Project(crate::domain::ProjectName),
}

impl QuotaScope {
    /// The refusal's message: the user quota's as it always was; the
    /// project quota's names the project.
    fn exceeded(&self, quota: i64, current: i64, requested: i64) -> String {
        match self {
            QuotaScope::User => format!("Concurrent VM quota exceeded (quota={quota}, current={current}, requested={requested})"),
            QuotaScope::Project(p) => {
                format!("Concurrent VM quota of project '{p}' exceeded (project quota={quota}, current={current}, requested={requested})")
            }
        }
    }
}

impl ServiceError {
    /// An [`ServiceError::Unresolved`] reference in `field`.
    pub fn unresolved(field: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Unresolved { field, message: message.into() }
    }

    /// Bad input not tied to one field.
    pub fn invalid(message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: None, message: message.into() }
    }

    /// Bad input in `field`.
    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: Some(field), message: message.into() }
    }

    /// Whether this is an internal failure (logged, not shown).
    pub fn is_internal(&self) -> bool {
        matches!(self, ServiceError::Store(_) | ServiceError::Internal(_))
    }
}

impl From<InvalidValue> for ServiceError {
    fn from(e: InvalidValue) -> Self {
        ServiceError::Invalid { field: Some(e.field), message: e.message }
    }
}

impl From<ConnectorError> for ServiceError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::Cloud { code, message } if code == cloudbroker_connector_api::state::DATABASE_UNAVAILABLE_CODE => {
                ServiceError::DatabaseUnavailable(StoreError::Unavailable(message))
            }
            other => ServiceError::Cloud(other),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(Resource::Record(what)),
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other if other.is_unavailable() => ServiceError::DatabaseUnavailable(other),
            other => ServiceError::Store(other),
        }
    }
}

/// Shorthand.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Which cap was reached (the caps are enforced by `crate::limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    KeyPairs,
    Addresses,
    Volumes,
    /// User tags on one VM or volume.
    Tags,
    /// Live recorded cloud objects of one kind (security groups, VPCs, ...).
    Objects(cloudbroker_store::cloud_objects::ObjectKind),
    /// Private images (registered or made from VMs) one project may have.
    PrivateImages,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::KeyPairs => "key pairs per project",
            Limit::Addresses => "Elastic IP addresses per project",
            Limit::Volumes => "volumes per project",
            Limit::Tags => "tags per resource",
            Limit::Objects(ObjectKind::SecurityGroup) => "security groups per project",
            Limit::Objects(ObjectKind::Vpc) => "VPCs per project",
            Limit::Objects(ObjectKind::Subnet) => "subnets per project",
            Limit::Objects(ObjectKind::Snapshot) => "snapshots per project",
            Limit::PrivateImages => "private images per project",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_subject() {
        let vm = VmId::parse("vm-abc").unwrap();
        assert_eq!(ServiceError::NotFound(Resource::Vm(vm)).to_string(), "VM 'vm-abc' not found");
        let e: ServiceError = InvalidValue::new("name", "bad").into();
        assert!(matches!(e, ServiceError::Invalid { field: Some("name"), .. }));
        let e: ServiceError = StoreError::Config("disk on fire".into()).into();
        assert!(e.is_internal());
        assert!(std::error::Error::source(&e).is_some(), "the store error is kept as the source");
    }
}

/// Why a launch was refused by a budget, with the figures.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BudgetRefusal {
    /// `user` or `project`.
    pub scope: &'static str,
    pub owner: String,
    pub instance: String,
    pub currency: String,
    pub budget: crate::domain::money::Micros,
    /// Spent and committed this month.
    pub spent: crate::domain::money::Micros,
    /// What the launch (or start) needs at least (its first billing periods).
    pub requested: crate::domain::money::Micros,
    /// `launch` or `start`.
    pub action: &'static str,
}

impl std::fmt::Display for BudgetRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.currency;
        write!(
            f,
            "the monthly budget of {} '{}' on '{}' is {} {c}: {} {c} is spent or committed this month and this {} needs at least {} {c} more (its first billing period)",
            self.scope,
            self.owner,
            self.instance,
            self.budget.to_decimal(2),
            self.spent.to_decimal(2),
            self.action,
            self.requested.to_decimal(4),
        )
    }
}
