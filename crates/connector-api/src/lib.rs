//! The connector API: what every cloud connector implements, and the shared
//! vocabulary the rest of the broker speaks.
//!
//! * [`names`]: newtypes for connector instance names (and the kind's type).
//! * [`builder`]: [`ConnectorBuilder`], what each connector crate implements to
//!   describe its kind, and [`Connectors`], the set the binary registers.
//! * [`decl`]: the `cloud.connector.class` declaration parser (`<instance>:<kind>, ...`).
//! * [`params`]: parameter specs (type, default, secret, ...), the [`params::KindSpec`]
//!   a connector declares its kind with, and the parameters common to every kind.
//! * [`state`]: [`state::WorldStore`], state a connector keeps in the broker's database.
//! * [`conf`]: the SlipStream-style `connectors.d/*.conf` loader with file:line errors.
//! * [`model`], [`error`], [`Connector`]: the async trait and its types.

pub mod builder;
pub mod conf;
pub mod decl;
pub mod error;
pub mod instance_attrs;
pub mod model;
pub mod names;
pub mod network;
pub mod params;
pub mod retry;
pub mod secret;
pub mod security_groups;
pub mod state;

use async_trait::async_trait;

pub use builder::{BuildContext, ConnectorBuilder, Connectors};
pub use error::ConnectorError;
pub use instance_attrs::{AttributeValue, ConsoleOutput, InstanceAttribute};
pub use model::*;
pub use names::InstanceName;
pub use network::{CreateSubnetRequest, SubnetInfo, VpcInfo};
pub use params::ConnectorKind;
pub use secret::SecretString;
pub use security_groups::{
    CidrRange, CreateSecurityGroupRequest, GroupPair, IpPermission, RuleDirection, SecurityGroupInfo, SecurityGroupRule,
};

/// A cloud, as seen by the broker. One value per connector *instance*
/// (e.g. `ec2-eu-central-1`), shared by every user of that instance; the
/// user's credentials are passed on every call.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The kind of this connector (`ec2`, `ec2query`, `sandbox`).
    fn kind(&self) -> ConnectorKind;

    /// The instance name this connector was built for.
    fn instance(&self) -> &InstanceName;

    /// Checks that the credentials work against this instance (its own region
    /// and endpoint).
    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError>;

    /// Launches `req.count` VMs. Implementations must make the call idempotent
    /// for the same `req.client_token` where the cloud allows it, and must tag
    /// every VM with `req.tags`.
    async fn run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError>;

    /// Describes VMs matching the filter (all pages).
    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError>;

    /// Starts stopped VMs.
    async fn start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError>;

    /// Stops running VMs.
    async fn stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError>;

    /// Reboots running VMs.
    async fn reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError>;

    /// Terminates VMs.
    async fn terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError>;

    /// Imports an SSH public key under `name`.
    async fn import_key_pair(&self, creds: &Credentials, name: &str, public_key: &str) -> Result<KeyPairInfo, ConnectorError>;

    /// Deletes the key pair `name` (not an error if it does not exist).
    async fn delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError>;

    /// Lists the key pairs of the account.
    async fn list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError>;

    /// Lists the images the account can launch.
    async fn list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError>;

    /// Lists the instance types (sizes) offered.
    async fn list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError>;

    /// Allocates an Elastic IP address.
    async fn allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError>;

    /// Associates an allocated address with a cloud instance; returns the
    /// association id. An address is associated with one instance at a time:
    /// one associated with another instance moves only with
    /// `allow_reassociation` (else `Resource.AlreadyAssociated`).
    async fn associate_address(
        &self,
        creds: &Credentials,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
    ) -> Result<String, ConnectorError>;

    /// Reads one attribute of a cloud instance (EC2's DescribeInstanceAttribute).
    async fn describe_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        attribute: InstanceAttribute,
    ) -> Result<AttributeValue, ConnectorError>;

    /// Changes one attribute of a cloud instance (EC2's
    /// ModifyInstanceAttribute): `instanceType` and `userData` only while it
    /// is stopped (else `IncorrectInstanceState`).
    async fn modify_instance_attribute(&self, creds: &Credentials, instance_id: &str, value: &AttributeValue)
        -> Result<(), ConnectorError>;

    /// What a cloud instance wrote to its console (EC2's GetConsoleOutput).
    async fn get_console_output(&self, creds: &Credentials, instance_id: &str) -> Result<ConsoleOutput, ConnectorError>;

    /// Ends an association.
    async fn disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError>;

    /// Releases an address (it must not be associated).
    async fn release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError>;

    /// Describes addresses by allocation id (all of the account when empty).
    async fn describe_addresses(&self, creds: &Credentials, allocation_ids: &[String]) -> Result<Vec<AddressInfo>, ConnectorError>;

    /// Creates a volume.
    async fn create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError>;

    /// Attaches an available volume to a cloud instance as `device`.
    async fn attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError>;

    /// Detaches a volume (from `instance_id` when given).
    async fn detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError>;

    /// Deletes a volume (it must not be attached).
    async fn delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError>;

    /// Describes volumes by id (all of the account when empty).
    async fn describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError>;

    /// Takes a snapshot of a volume of the account.
    async fn create_snapshot(&self, creds: &Credentials, volume_id: &str, description: &str) -> Result<SnapshotInfo, ConnectorError>;

    /// Deletes a snapshot (refused while a registered image uses it).
    async fn delete_snapshot(&self, creds: &Credentials, snapshot_id: &str) -> Result<(), ConnectorError>;

    /// Describes the account's own snapshots by id (all of them when empty).
    async fn describe_snapshots(&self, creds: &Credentials, snapshot_ids: &[String]) -> Result<Vec<SnapshotInfo>, ConnectorError>;

    /// Makes an image of a cloud instance of the account; returns the new
    /// cloud image id.
    async fn create_image(&self, creds: &Credentials, req: &CreateImageRequest) -> Result<String, ConnectorError>;

    /// Deregisters an image the account owns.
    async fn deregister_image(&self, creds: &Credentials, image_id: &str) -> Result<(), ConnectorError>;

    /// The cloud account the credentials act in (EC2's 12-digit account
    /// id, the `ownerId` of what the account owns): how the broker tells
    /// whether two credentials are one account. Callers cache it per key.
    async fn account_id(&self, creds: &Credentials) -> Result<String, ConnectorError>;

    /// Adds and removes other accounts' launch permissions on an image the
    /// account owns (EC2's `ModifyImageAttribute` `LaunchPermission`
    /// `Add`/`Remove` `UserId`): `InvalidAMIID.NotFound` for an image it
    /// does not own. Adding an account that has it already, or removing one
    /// that has not, is no error.
    async fn modify_image_launch_permission(
        &self,
        creds: &Credentials,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ConnectorError>;

    /// Creates a VPC with the IPv4 block `cidr` (`/16` to `/28`; EC2's
    /// `InvalidVpc.Range` otherwise).
    async fn create_vpc(&self, creds: &Credentials, cidr: &str) -> Result<VpcInfo, ConnectorError>;

    /// Deletes a VPC (it must hold no subnet: `DependencyViolation`).
    async fn delete_vpc(&self, creds: &Credentials, vpc_id: &str) -> Result<(), ConnectorError>;

    /// Describes VPCs by id (all of the account when empty; an unknown id
    /// fails the call with `InvalidVpcID.NotFound`).
    async fn describe_vpcs(&self, creds: &Credentials, vpc_ids: &[String]) -> Result<Vec<VpcInfo>, ConnectorError>;

    /// Creates a subnet: its block inside its VPC's, overlapping no other
    /// subnet of the VPC (`InvalidSubnet.Range`, `InvalidSubnet.Conflict`).
    async fn create_subnet(&self, creds: &Credentials, req: &CreateSubnetRequest) -> Result<SubnetInfo, ConnectorError>;

    /// Deletes a subnet (it must hold no live VM: `DependencyViolation`).
    async fn delete_subnet(&self, creds: &Credentials, subnet_id: &str) -> Result<(), ConnectorError>;

    /// Describes subnets by id (all of the account when empty; an unknown id
    /// fails the call with `InvalidSubnetID.NotFound`).
    async fn describe_subnets(&self, creds: &Credentials, subnet_ids: &[String]) -> Result<Vec<SubnetInfo>, ConnectorError>;

    /// Sets whether VMs launched into the subnet get a public address.
    async fn modify_subnet_map_public_ip(&self, creds: &Credentials, subnet_id: &str, map_public_ip: bool) -> Result<(), ConnectorError>;

    /// Sets tags (key, value) on instances and volumes. Clouds that keep no tags say
    /// `Unsupported` (the broker then keeps them in its records only).
    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        let _ = (creds, ids, tags);
        Err(ConnectorError::Unsupported { operation: "CreateTags".into() })
    }

    /// Removes tags (by key) from instances.
    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        let _ = (creds, ids, keys);
        Err(ConnectorError::Unsupported { operation: "DeleteTags".into() })
    }

    /// Creates a security group (in `req.vpc_id`, else the account's
    /// default VPC). EC2's codes: `InvalidGroup.Duplicate` for a name taken
    /// in that VPC, `InvalidVpcID.NotFound`.
    async fn create_security_group(
        &self,
        creds: &Credentials,
        req: &CreateSecurityGroupRequest,
    ) -> Result<SecurityGroupInfo, ConnectorError>;

    /// Deletes a security group: `InvalidGroup.NotFound`, `DependencyViolation`
    /// while an instance uses it, `CannotDelete` for a VPC's default group.
    async fn delete_security_group(&self, creds: &Credentials, group_id: &str) -> Result<(), ConnectorError>;

    /// Describes security groups by id (every group of the account when
    /// empty); an unknown id fails the call with `InvalidGroup.NotFound`.
    async fn describe_security_groups(&self, creds: &Credentials, group_ids: &[String]) -> Result<Vec<SecurityGroupInfo>, ConnectorError>;

    /// Adds rules to a group: `InvalidPermission.Duplicate` when one exists
    /// already (nothing is added then). Answers the rules added.
    async fn authorize_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError>;

    /// Removes rules from a group: `InvalidPermission.NotFound` when one
    /// does not exist (nothing is removed then).
    async fn revoke_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: RuleDirection,
        permissions: &[IpPermission],
    ) -> Result<(), ConnectorError>;

    /// The rules of groups, flat with their ids (every group of the account when empty).
    async fn describe_security_group_rules(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroupRule>, ConnectorError>;

    /// Makes sure a security group exists (creating it if needed). Clouds
    /// without security groups accept any name.
    async fn ensure_security_group(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        let _ = (creds, name);
        Ok(())
    }

    /// The states of instances by id, for watching VMs on their way
    /// somewhere: lighter than [`Connector::describe_instances`] where the
    /// cloud has a call for it (EC2's DescribeInstanceStatus with
    /// IncludeAllInstances; a tenth of the work for the cloud). Like
    /// DescribeInstances, an unknown id fails the call with
    /// `InvalidInstanceID.NotFound`. The default asks `describe_instances`.
    async fn instance_states(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<(String, VmState)>, ConnectorError> {
        Ok(self.describe_instances(creds, &DescribeFilter::ids(ids)).await?.into_iter().map(|v| (v.id, v.state)).collect())
    }

    /// Looks one image up by its cloud id, whoever owns it (public images
    /// too): `None` when the cloud has no such image for these credentials.
    /// The default searches [`Connector::list_images`].
    async fn describe_image(&self, creds: &Credentials, id: &str) -> Result<Option<ImageInfo>, ConnectorError> {
        Ok(self.list_images(creds).await?.into_iter().find(|i| i.id == id))
    }
}
