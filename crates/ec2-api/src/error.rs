//! EC2 errors: a code, a message and an HTTP status, written as EC2's error
//! XML. The core's typed errors map onto EC2's codes here, and only here:
//! a VM not found is `InvalidInstanceID.NotFound`, an image
//! `InvalidAMIID.NotFound`, the quota `InstanceLimitExceeded`, a per-user
//! cap `AddressLimitExceeded` and friends, the cloud's
//! own code passes through. Internal details never reach the client.

use crate::ids::{IdError, IdKind};
use crate::xml::Xml;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use cloudbroker_connector_api::ConnectorError;
use cloudbroker_core::limits::Limit;
use cloudbroker_core::{ObjectKind, QuotaScope, Resource, ServiceError};

/// An EC2 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl Ec2Error {
    /// An error with a code and status.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_string(), message: message.into(), status }
    }

    /// 400 with a client error code.
    pub fn client(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The one answer to every authentication failure: unknown key, bad
    /// signature and disabled key look the same.
    pub fn auth_failure() -> Self {
        Self::new(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
    }

    /// The answer to `DryRun=true` when every check passed (nothing was done).
    pub fn dry_run() -> Self {
        Self::new(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    }

    /// A missing parameter.
    pub fn missing(name: &str) -> Self {
        Self::client("MissingParameter", format!("The request must contain the parameter {name}"))
    }

    /// A bad parameter value.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::client("InvalidParameterValue", message)
    }

    /// An address that does not exist (for this caller).
    pub fn allocation_not_found(id: &str) -> Self {
        Self::client("InvalidAllocationID.NotFound", format!("The allocation ID '{}' does not exist", crate::ids::shown(id)))
    }

    /// A volume that does not exist (for this caller).
    pub fn volume_not_found(id: &str) -> Self {
        Self::client("InvalidVolume.NotFound", format!("The volume '{}' does not exist.", crate::ids::shown(id)))
    }

    /// The XML answer.
    pub fn response(&self, request_id: &str) -> HttpResponse {
        let mut x = Xml::bare("Response");
        x.open("Errors").open("Error").leaf("Code", &self.code).leaf("Message", &self.message).close("Error").close("Errors");
        x.leaf("RequestID", request_id);
        HttpResponse::build(StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST))
            .content_type("text/xml;charset=UTF-8")
            .insert_header(("x-amzn-RequestId", request_id.to_string()))
            .body(x.finish("Response"))
    }
}

/// A malformed id: EC2's `*.Malformed` code for its kind.
impl From<IdError> for Ec2Error {
    fn from(e: IdError) -> Self {
        match e.kind {
            IdKind::Instance => Ec2Error::client("InvalidInstanceID.Malformed", format!("Invalid id: \"{}\"", e.given)),
            // An id with the volume prefix is one EC2 looks up and does not find.
            IdKind::Volume(_) if e.given.starts_with("vol-") => Ec2Error::volume_not_found(&e.given),
            IdKind::Volume(param) => Ec2Error::client(
                "InvalidVolumeID.Malformed",
                format!("Value ({}) for parameter {param} is invalid: not a volume id (vol-...)", e.given),
            ),
            IdKind::Allocation(param) => Ec2Error::client(
                "InvalidAllocationID.Malformed",
                format!("Value ({}) for parameter {param} is invalid: not an allocation id (eipalloc-...)", e.given),
            ),
        }
    }
}

impl From<ServiceError> for Ec2Error {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthenticated(_) => Ec2Error::auth_failure(),
            ServiceError::Forbidden(m) => Ec2Error::new(403, "UnauthorizedOperation", m),
            ServiceError::NotFound(Resource::Vm(id)) => {
                Ec2Error::client("InvalidInstanceID.NotFound", format!("The instance ID '{}' does not exist", crate::ids::instance_id(&id)))
            }
            ServiceError::NotFound(Resource::Image(name)) => {
                Ec2Error::client("InvalidAMIID.NotFound", format!("The image id '[{}]' does not exist", crate::ids::image_id(name.as_str())))
            }
            ServiceError::NotFound(Resource::Address(id)) => Ec2Error::allocation_not_found(id.as_str()),
            ServiceError::NotFound(Resource::Volume(id)) => Ec2Error::volume_not_found(id.as_str()),
            ServiceError::NotFound(Resource::KeyPair(name)) => crate::actions::keypairs::not_found(&name),
            ServiceError::NotFound(Resource::CloudObject { kind, id }) => object_not_found(kind, &id),
            ServiceError::NotFound(Resource::Instance(i)) => {
                Ec2Error::client("InvalidParameterValue", format!("'{i}' is not a region (connector instance) of this broker"))
            }
            ServiceError::NotFound(r) => Ec2Error::client("InvalidParameterValue", format!("{r} does not exist")),
            ServiceError::Invalid { field: Some("image"), message } | ServiceError::Unresolved { field: "image", message } => {
                Ec2Error::client("InvalidAMIID.NotFound", message)
            }
            ServiceError::Unresolved { message, .. } => Ec2Error::invalid(message),
            ServiceError::Invalid { message, .. } => Ec2Error::invalid(message),
            e @ ServiceError::InvalidDocument(_) => Ec2Error::invalid(e.to_string()),
            e @ ServiceError::InNode { .. } => Ec2Error::invalid(e.to_string()),
            ServiceError::Conflict(m) => Ec2Error::client("IncorrectInstanceState", m),
            ServiceError::NotPermitted(m) => Ec2Error::client("OperationNotPermitted", m),
            // A launch policy of the region (connector instance): the message names it and the value.
            ServiceError::PolicyViolation { message, .. } => Ec2Error::invalid(message),
            // A monthly budget: EC2 has no code of its own for it; a limit is what it is.
            ServiceError::BudgetExceeded(b) => Ec2Error::client("InstanceLimitExceeded", format!("Budget exceeded: {b}")),
            ServiceError::QuotaExceeded { scope: QuotaScope::User, quota, current, requested } => Ec2Error::client(
                "InstanceLimitExceeded",
                format!("Your quota allows for {} more running instance(s). You requested at least {requested} (quota={quota}, current={current})", (quota - current).max(0)),
            ),
            ServiceError::QuotaExceeded { scope: QuotaScope::Project(p), quota, current, requested } => Ec2Error::client(
                "InstanceLimitExceeded",
                format!("The quota of project '{p}' allows for {} more running instance(s). You requested at least {requested} (project quota={quota}, current={current})", (quota - current).max(0)),
            ),
            ServiceError::LimitExceeded { limit, max } => {
                let code = match limit {
                    Limit::KeyPairs => "ResourceLimitExceeded",
                    Limit::Addresses => "AddressLimitExceeded",
                    Limit::Volumes => "VolumeLimitExceeded",
                    Limit::Tags => "TagLimitExceeded",
                    Limit::Objects(ObjectKind::SecurityGroup) => "SecurityGroupLimitExceeded",
                    Limit::Objects(ObjectKind::Vpc) => "VpcLimitExceeded",
                    Limit::Objects(ObjectKind::Subnet) => "SubnetLimitExceeded",
                    Limit::Objects(ObjectKind::Snapshot) => "SnapshotLimitExceeded",
                    Limit::PrivateImages => "ResourceLimitExceeded",
                };
                Ec2Error::client(code, format!("You have reached the limit of {max} {limit}"))
            }
            ServiceError::Throttled { .. } => Ec2Error::new(503, "RequestLimitExceeded", "Request limit exceeded."),
            ServiceError::Unavailable(m) => Ec2Error::new(503, "Unavailable", m),
            ServiceError::DatabaseUnavailable(source) => {
                tracing::warn!(error = %source, "EC2 front: database unavailable");
                Ec2Error::new(503, "Unavailable", "The service is unavailable. Please try again shortly.")
            }
            ServiceError::MasterKeyUnknown { .. } => {
                tracing::error!(error = %e, "EC2 front: master key missing");
                Ec2Error::new(503, "Unavailable", e.to_string())
            }
            ServiceError::Cloud(c) => cloud(c),
            other => {
                tracing::error!(error = %other, "EC2 front: internal error");
                Ec2Error::new(500, "InternalError", "An internal error has occurred")
            }
        }
    }
}

/// EC2's answer for a recorded cloud object the caller does not have.
pub fn object_not_found(kind: ObjectKind, id: &str) -> Ec2Error {
    let id = crate::ids::shown(id);
    match kind {
        ObjectKind::SecurityGroup => Ec2Error::client("InvalidGroup.NotFound", format!("The security group '{id}' does not exist")),
        ObjectKind::Vpc => Ec2Error::client("InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist")),
        ObjectKind::Subnet => Ec2Error::client("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist")),
        ObjectKind::Snapshot => Ec2Error::client("InvalidSnapshot.NotFound", format!("The snapshot '{id}' does not exist.")),
    }
}

/// A cloud's error, passed through with its code where EC2 has one.
fn cloud(e: ConnectorError) -> Ec2Error {
    match e {
        ConnectorError::Throttled { message, .. } => Ec2Error::new(503, "RequestLimitExceeded", message),
        ConnectorError::Capacity { code, message } => Ec2Error::new(500, &code, message),
        ConnectorError::Limit { code, message }
        | ConnectorError::InvalidRequest { code, message }
        | ConnectorError::NotFound { code, message } => Ec2Error::client(&code, message),
        ConnectorError::Forbidden { message, .. } | ConnectorError::Auth { message, .. } => {
            Ec2Error::new(403, "UnauthorizedOperation", format!("the cloud refused the broker's credentials: {message}"))
        }
        ConnectorError::Unsupported { operation } => {
            Ec2Error::client("UnsupportedOperation", format!("{operation} is not supported by this region"))
        }
        ConnectorError::Timeout { .. } | ConnectorError::Transport { .. } => Ec2Error::new(503, "Unavailable", e.to_string()),
        // The cloud's own failure (its 5xx): EC2's answer to a service that cannot serve now.
        ConnectorError::Cloud { code, message } => {
            Ec2Error::new(503, "Unavailable", format!("the cloud behind this region failed ({code}): {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbroker_core::domain::VmId;

    #[test]
    fn typed_core_errors_become_ec2_codes() {
        let id = VmId::parse("vm-0123456789abcdef").unwrap();
        let e = Ec2Error::from(ServiceError::NotFound(Resource::Vm(id)));
        assert_eq!((e.code.as_str(), e.status), ("InvalidInstanceID.NotFound", 400));
        assert!(e.message.contains("i-0123456789abcdef"), "{}", e.message);
        let e = Ec2Error::from(ServiceError::QuotaExceeded { scope: QuotaScope::User, quota: 3, current: 2, requested: 2 });
        assert_eq!(e.code, "InstanceLimitExceeded");
        assert!(e.message.contains("1 more"), "{}", e.message);
        let project = QuotaScope::Project(cloudbroker_core::domain::ProjectName::parse("team-a").unwrap());
        let e = Ec2Error::from(ServiceError::QuotaExceeded { scope: project, quota: 50, current: 50, requested: 1 });
        assert_eq!(e.code, "InstanceLimitExceeded");
        assert!(e.message.contains("project 'team-a'") && e.message.contains("0 more"), "{}", e.message);
        for (limit, code) in [
            (Limit::KeyPairs, "ResourceLimitExceeded"),
            (Limit::Addresses, "AddressLimitExceeded"),
            (Limit::Volumes, "VolumeLimitExceeded"),
            (Limit::Tags, "TagLimitExceeded"),
            (Limit::Objects(ObjectKind::SecurityGroup), "SecurityGroupLimitExceeded"),
            (Limit::Objects(ObjectKind::Vpc), "VpcLimitExceeded"),
            (Limit::Objects(ObjectKind::Subnet), "SubnetLimitExceeded"),
            (Limit::Objects(ObjectKind::Snapshot), "SnapshotLimitExceeded"),
            (Limit::PrivateImages, "ResourceLimitExceeded"),
        ] {
            let e = Ec2Error::from(ServiceError::LimitExceeded { limit, max: 7 });
            assert_eq!((e.code.as_str(), e.status), (code, 400));
            assert!(e.message.contains("7 "), "{}", e.message);
        }
        let e = Ec2Error::from(ServiceError::Internal("db password in a message".into()));
        assert!(!e.message.contains("password"));
        let e = Ec2Error::from(ServiceError::Cloud(ConnectorError::Capacity {
            code: "InsufficientInstanceCapacity".into(),
            message: "none".into(),
        }));
        assert_eq!(e.code, "InsufficientInstanceCapacity");
    }

    #[test]
    fn a_clouds_refusal_keeps_its_code_and_is_a_client_error() {
        for code in ["Resource.AlreadyAssociated", "IncorrectState", "InvalidParameterValue", "InvalidZone.NotFound"] {
            let e = Ec2Error::from(ServiceError::Cloud(ConnectorError::from_ec2_code(code, "the cloud says no")));
            assert_eq!((e.code.as_str(), e.status, e.message.as_str()), (code, 400, "the cloud says no"));
        }
        let e = Ec2Error::from(ServiceError::Cloud(ConnectorError::from_ec2_code("InternalError", "boom")));
        assert_eq!((e.code.as_str(), e.status), ("Unavailable", 503));
        assert!(e.message.contains("InternalError") && e.message.contains("boom"), "{}", e.message);
        let e = Ec2Error::from(ServiceError::Cloud(ConnectorError::from_ec2_code("RequestLimitExceeded", "slow down")));
        assert_eq!((e.code.as_str(), e.status), ("RequestLimitExceeded", 503));
    }

    #[test]
    fn a_well_prefixed_unknown_volume_is_not_found_not_malformed() {
        let e = Ec2Error::from(crate::ids::volume_id("VolumeId", "vol-does_not-exist").unwrap_err());
        assert_eq!((e.code.as_str(), e.message.as_str()), ("InvalidVolume.NotFound", "The volume 'vol-does_not-exist' does not exist."));
        assert_eq!(Ec2Error::from(crate::ids::volume_id("VolumeId", "bogus").unwrap_err()).code, "InvalidVolumeID.Malformed");
    }

    #[test]
    fn malformed_ids_become_ec2_codes() {
        let e = Ec2Error::from(crate::ids::vm_id("i-NOT/valid").unwrap_err());
        assert_eq!(e.code, "InvalidInstanceID.Malformed");
        assert_eq!(e.message, "Invalid id: \"i-NOT/valid\"");
        assert_eq!(Ec2Error::from(crate::ids::vm_id("vm-abc").unwrap_err()).code, "InvalidInstanceID.Malformed");
        let e = Ec2Error::from(crate::ids::volume_id("ResourceId", "v-1").unwrap_err());
        assert_eq!(e.code, "InvalidVolumeID.Malformed");
        assert_eq!(e.message, "Value (v-1) for parameter ResourceId is invalid: not a volume id (vol-...)");
        let e = Ec2Error::from(crate::ids::allocation_id("AllocationId", "x").unwrap_err());
        assert_eq!(e.code, "InvalidAllocationID.Malformed");
        assert_eq!(e.message, "Value (x) for parameter AllocationId is invalid: not an allocation id (eipalloc-...)");
    }

    #[test]
    fn error_xml_escapes_the_message() {
        let r = Ec2Error::invalid("bad <value> & more");
        let resp = r.response("req");
        assert_eq!(resp.status(), 400);
    }
}
