//! A VM's instance attributes (EC2's Describe/ModifyInstanceAttribute) and
//! its console output (GetConsoleOutput). Whoever sees a VM reads them;
//! changing them needs the `member` role, as any action does.
//!
//! * `instanceType` changes only while the VM is stopped (a conflict
//!   otherwise, EC2's `IncorrectInstanceState`), must pass the launch
//!   policies of its instance and project as a launch of that type would,
//!   is changed in the cloud first and then in the VM's record, so the
//!   budget admission of its next start, and every count by type, see the
//!   new type. It is read from the record (no cloud call).
//! * `userData` (stopped only), `instanceInitiatedShutdownBehavior` and
//!   `sourceDestCheck` live in the cloud: read and changed there.
//! * `disableApiTermination` is the broker's own (migration 0038): while on,
//!   terminating the VM is refused on every front (EC2, JSON API, UI, bulk,
//!   a deployment's teardown) with [`ServiceError::NotPermitted`]. A lease
//!   whose action is `terminate` still ends it at its expiry: a lease is a
//!   limit set by the project's or instance's governance, which a user's
//!   setting must not escape (AWS has no leases; documented in the README).

use super::{Provisioning, Vm};
use crate::auth::Actor;
use crate::domain::{VmId, VmStatus};
use crate::error::{ServiceError, ServiceResult};
use cloudbroker_connector_api::{AttributeValue, ConsoleOutput, InstanceAttribute};

/// An attribute of a VM: the cloud's, or the broker's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmAttribute {
    Cloud(InstanceAttribute),
    /// `disableApiTermination`.
    DisableApiTermination,
}

impl VmAttribute {
    /// EC2's name of the attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            VmAttribute::Cloud(a) => a.as_str(),
            VmAttribute::DisableApiTermination => "disableApiTermination",
        }
    }

    /// The attribute EC2 names `name` (`None`: not one the broker knows).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "disableApiTermination" => Some(VmAttribute::DisableApiTermination),
            other => InstanceAttribute::parse(other).map(VmAttribute::Cloud),
        }
    }
}

/// A value of a VM attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmAttributeValue {
    Cloud(AttributeValue),
    DisableApiTermination(bool),
}

impl Provisioning {
    /// The refusal to terminate VM `v` while it is protected (nothing when
    /// it is not, or already ended).
    pub(super) async fn refuse_protected(&self, v: &Vm) -> ServiceResult<()> {
        if v.status.is_live() && self.store.vm_termination_protected(&v.id).await? {
            return Err(ServiceError::NotPermitted(format!(
                "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                v.id
            )));
        }
        Ok(())
    }

    /// The cloud instance of a VM the actor sees (one with none yet has no attributes).
    fn cloud_instance(v: &Vm) -> ServiceResult<String> {
        v.cloud_id.clone().ok_or_else(|| ServiceError::Conflict(format!("VM '{}' is {} and has no cloud instance yet", v.id, v.status)))
    }

    /// One attribute of VM `id` (any VM the actor sees).
    pub async fn vm_attribute(&self, actor: &Actor, id: &VmId, attribute: VmAttribute) -> ServiceResult<VmAttributeValue> {
        let v = self.owned(actor, id).await?;
        match attribute {
            VmAttribute::DisableApiTermination => {
                Ok(VmAttributeValue::DisableApiTermination(self.store.vm_termination_protected(&v.id).await?))
            }
            VmAttribute::Cloud(InstanceAttribute::InstanceType) => {
                Ok(VmAttributeValue::Cloud(AttributeValue::InstanceType(v.instance_type.clone())))
            }
            VmAttribute::Cloud(a) => {
                let cloud_id = Self::cloud_instance(&v)?;
                let (connector, _, _) = self.connector(&v.instance)?;
                let creds = self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{id}'")).await?;
                Ok(VmAttributeValue::Cloud(connector.describe_instance_attribute(&creds, &cloud_id, a).await?))
            }
        }
    }

    /// The checks of changing VM `id`'s attribute to `value`, in EC2's
    /// order: the VM, the role, its state, then the value's own rules.
    async fn modifiable(&self, actor: &Actor, id: &VmId, value: &VmAttributeValue) -> ServiceResult<Vm> {
        let v = self.owned(actor, id).await?;
        actor.require_act()?;
        if matches!(v.status, VmStatus::Terminated | VmStatus::Failed | VmStatus::ShuttingDown) {
            return Err(ServiceError::Conflict(format!("The instance '{}' is {}: its attributes cannot change", v.id, v.status)));
        }
        if let VmAttributeValue::Cloud(AttributeValue::InstanceType(_) | AttributeValue::UserData(_)) = value {
            if v.status != VmStatus::Stopped {
                return Err(ServiceError::Conflict(format!("The instance '{}' is not in the 'stopped' state.", v.id)));
            }
        }
        if let VmAttributeValue::Cloud(AttributeValue::InstanceType(t)) = value {
            super::request::InstanceType::parse(t)?;
            // As a launch of that type would be: the instance's policies, then the project's own.
            let values = {
                let snap = self.registry.snapshot();
                snap.instance(v.instance.as_str()).map(|e| e.values.clone())
            };
            if let Some(values) = values {
                let policy = Some(super::policy::LaunchPolicy::of(&values)).filter(|p| !p.is_empty() && p.applies_to(actor));
                let project = self.project_policy_of(&v.project, &v.instance, &values).await?.filter(|p| p.applies_to(actor));
                for p in policy.iter().chain(&project) {
                    if let Some(refusal) = p.type_refusal(&v.instance, t) {
                        return Err(refusal);
                    }
                }
            }
        }
        if let VmAttributeValue::Cloud(AttributeValue::InstanceInitiatedShutdownBehavior(b)) = value {
            if !cloudbroker_connector_api::instance_attrs::SHUTDOWN_BEHAVIORS.contains(&b.as_str()) {
                return Err(ServiceError::invalid_field(
                    "instance_initiated_shutdown_behavior",
                    format!("'{b}' is not a shutdown behaviour: stop or terminate"),
                ));
            }
        }
        if let VmAttributeValue::Cloud(_) = value {
            Self::cloud_instance(&v)?;
            self.connector(&v.instance)?;
            self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{id}'")).await?;
        }
        Ok(v)
    }

    /// Whether [`Self::modify_vm_attribute`] would change it (EC2's `DryRun`).
    pub async fn check_modify_vm_attribute(&self, actor: &Actor, id: &VmId, value: &VmAttributeValue) -> ServiceResult<()> {
        self.modifiable(actor, id, value).await.map(|_| ())
    }

    /// Changes one attribute of VM `id` (a member of its project); returns the VM.
    pub async fn modify_vm_attribute(&self, actor: &Actor, id: &VmId, value: &VmAttributeValue) -> ServiceResult<Vm> {
        let v = self.modifiable(actor, id, value).await?;
        match value {
            VmAttributeValue::DisableApiTermination(on) => self.store.set_vm_termination_protection(&v.id, *on).await?,
            VmAttributeValue::Cloud(a) => {
                let cloud_id = Self::cloud_instance(&v)?;
                let (connector, _, _) = self.connector(&v.instance)?;
                let creds = self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{id}'")).await?;
                connector.modify_instance_attribute(&creds, &cloud_id, a).await?;
                if let AttributeValue::InstanceType(t) = a {
                    if !self.store.set_stopped_vm_instance_type(&v.id, t).await? {
                        // Started in between (the cloud had it stopped): the next
                        // reconcile pass reads the type the cloud reports.
                        tracing::warn!(vm = %v.id, "the instance type changed in the cloud while the record left 'stopped'");
                    }
                }
            }
        }
        self.owned(actor, id).await
    }

    /// What VM `id`'s cloud instance wrote to its console (any VM the actor sees).
    pub async fn console_output(&self, actor: &Actor, id: &VmId) -> ServiceResult<ConsoleOutput> {
        let v = self.owned(actor, id).await?;
        let cloud_id = Self::cloud_instance(&v)?;
        let (connector, _, _) = self.connector(&v.instance)?;
        let creds = self.vault.credentials_to_act(actor, &v.credential_id, &format!("VM '{id}'")).await?;
        Ok(connector.get_console_output(&creds, &cloud_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_are_ec2s() {
        for name in ["instanceType", "userData", "disableApiTermination", "instanceInitiatedShutdownBehavior", "sourceDestCheck"] {
            assert_eq!(VmAttribute::parse(name).map(VmAttribute::as_str), Some(name));
        }
        assert_eq!(VmAttribute::parse("kernel"), None);
    }
}
