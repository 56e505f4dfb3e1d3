//! A connector wrapper that passes every cloud error through the vault's
//! scrubbing ([`scrub_cloud_error`]) with the credentials of
//! the call, so a cloud message that echoes the secret (or the access key
//! id) reaches no user, log, audit record or stored status in clear. The
//! registry wraps every connector of a kind that takes credentials
//! ([`wrap`]). Every method of [`Connector`] is forwarded, the defaulted ones
//! included, so the wrapped connector's own versions run.

use async_trait::async_trait;
use cloudbroker_connector_api::{
    mask_tail, AddressInfo, Connector, ConnectorError, ConnectorKind, CreateVolumeRequest, CredentialCheck, Credentials, DescribeFilter,
    ImageInfo, InstanceName, InstanceTypeInfo, KeyPairInfo, RunRequest, StateChange, Vm, VmState, VolumeAttachment, VolumeInfo,
};
use std::sync::Arc;

/// `inner`, scrubbing its errors, where its kind takes credentials (the
/// sandbox's are not secrets: its messages are left alone).
pub fn wrap(inner: Arc<dyn Connector>) -> Arc<dyn Connector> {
    if inner.kind().needs_credentials() {
        Arc::new(Scrubbed(inner))
    } else {
        inner
    }
}

struct Scrubbed(Arc<dyn Connector>);

#[async_trait]
impl Connector for Scrubbed {
    fn kind(&self) -> ConnectorKind {
        self.0.kind()
    }

    fn instance(&self) -> &InstanceName {
        self.0.instance()
    }

    async fn validate_credentials(&self, creds: &Credentials) -> Result<CredentialCheck, ConnectorError> {
        self.0.validate_credentials(creds).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn run_instances(&self, creds: &Credentials, req: &RunRequest) -> Result<Vec<Vm>, ConnectorError> {
        self.0.run_instances(creds, req).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_instances(&self, creds: &Credentials, filter: &DescribeFilter) -> Result<Vec<Vm>, ConnectorError> {
        self.0.describe_instances(creds, filter).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn start_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.0.start_instances(creds, ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn stop_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.0.stop_instances(creds, ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn reboot_instances(&self, creds: &Credentials, ids: &[String]) -> Result<(), ConnectorError> {
        self.0.reboot_instances(creds, ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn terminate_instances(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<StateChange>, ConnectorError> {
        self.0.terminate_instances(creds, ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn import_key_pair(&self, creds: &Credentials, name: &str, public_key: &str) -> Result<KeyPairInfo, ConnectorError> {
        self.0.import_key_pair(creds, name, public_key).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_key_pair(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        self.0.delete_key_pair(creds, name).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn list_key_pairs(&self, creds: &Credentials) -> Result<Vec<KeyPairInfo>, ConnectorError> {
        self.0.list_key_pairs(creds).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn list_images(&self, creds: &Credentials) -> Result<Vec<ImageInfo>, ConnectorError> {
        self.0.list_images(creds).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn list_instance_types(&self, creds: &Credentials) -> Result<Vec<InstanceTypeInfo>, ConnectorError> {
        self.0.list_instance_types(creds).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        self.0.allocate_address(creds).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn associate_address(
        &self,
        creds: &Credentials,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
    ) -> Result<String, ConnectorError> {
        self.0.associate_address(creds, allocation_id, instance_id, allow_reassociation).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        attribute: cloudbroker_connector_api::InstanceAttribute,
    ) -> Result<cloudbroker_connector_api::AttributeValue, ConnectorError> {
        self.0.describe_instance_attribute(creds, instance_id, attribute).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn modify_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        value: &cloudbroker_connector_api::AttributeValue,
    ) -> Result<(), ConnectorError> {
        self.0.modify_instance_attribute(creds, instance_id, value).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn get_console_output(
        &self,
        creds: &Credentials,
        instance_id: &str,
    ) -> Result<cloudbroker_connector_api::ConsoleOutput, ConnectorError> {
        self.0.get_console_output(creds, instance_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError> {
        self.0.disassociate_address(creds, association_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        self.0.release_address(creds, allocation_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_addresses(&self, creds: &Credentials, allocation_ids: &[String]) -> Result<Vec<AddressInfo>, ConnectorError> {
        self.0.describe_addresses(creds, allocation_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_volume(&self, creds: &Credentials, req: &CreateVolumeRequest) -> Result<VolumeInfo, ConnectorError> {
        self.0.create_volume(creds, req).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn attach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<VolumeAttachment, ConnectorError> {
        self.0.attach_volume(creds, volume_id, instance_id, device).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn detach_volume(
        &self,
        creds: &Credentials,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<VolumeAttachment, ConnectorError> {
        self.0.detach_volume(creds, volume_id, instance_id, force).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_volume(&self, creds: &Credentials, volume_id: &str) -> Result<(), ConnectorError> {
        self.0.delete_volume(creds, volume_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_volumes(&self, creds: &Credentials, volume_ids: &[String]) -> Result<Vec<VolumeInfo>, ConnectorError> {
        self.0.describe_volumes(creds, volume_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_snapshot(
        &self,
        creds: &Credentials,
        volume_id: &str,
        description: &str,
    ) -> Result<cloudbroker_connector_api::SnapshotInfo, ConnectorError> {
        self.0.create_snapshot(creds, volume_id, description).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_snapshot(&self, creds: &Credentials, snapshot_id: &str) -> Result<(), ConnectorError> {
        self.0.delete_snapshot(creds, snapshot_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_snapshots(
        &self,
        creds: &Credentials,
        snapshot_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SnapshotInfo>, ConnectorError> {
        self.0.describe_snapshots(creds, snapshot_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_image(
        &self,
        creds: &Credentials,
        req: &cloudbroker_connector_api::CreateImageRequest,
    ) -> Result<String, ConnectorError> {
        self.0.create_image(creds, req).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn deregister_image(&self, creds: &Credentials, image_id: &str) -> Result<(), ConnectorError> {
        self.0.deregister_image(creds, image_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn account_id(&self, creds: &Credentials) -> Result<String, ConnectorError> {
        self.0.account_id(creds).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn modify_image_launch_permission(
        &self,
        creds: &Credentials,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ConnectorError> {
        self.0.modify_image_launch_permission(creds, image_id, add, remove).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_vpc(&self, creds: &Credentials, cidr: &str) -> Result<cloudbroker_connector_api::VpcInfo, ConnectorError> {
        self.0.create_vpc(creds, cidr).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_vpc(&self, creds: &Credentials, vpc_id: &str) -> Result<(), ConnectorError> {
        self.0.delete_vpc(creds, vpc_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_vpcs(
        &self,
        creds: &Credentials,
        vpc_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::VpcInfo>, ConnectorError> {
        self.0.describe_vpcs(creds, vpc_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_subnet(
        &self,
        creds: &Credentials,
        req: &cloudbroker_connector_api::CreateSubnetRequest,
    ) -> Result<cloudbroker_connector_api::SubnetInfo, ConnectorError> {
        self.0.create_subnet(creds, req).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_subnet(&self, creds: &Credentials, subnet_id: &str) -> Result<(), ConnectorError> {
        self.0.delete_subnet(creds, subnet_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_subnets(
        &self,
        creds: &Credentials,
        subnet_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SubnetInfo>, ConnectorError> {
        self.0.describe_subnets(creds, subnet_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn modify_subnet_map_public_ip(&self, creds: &Credentials, subnet_id: &str, map_public_ip: bool) -> Result<(), ConnectorError> {
        self.0.modify_subnet_map_public_ip(creds, subnet_id, map_public_ip).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_tags(&self, creds: &Credentials, ids: &[String], tags: &[(String, String)]) -> Result<(), ConnectorError> {
        self.0.create_tags(creds, ids, tags).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_tags(&self, creds: &Credentials, ids: &[String], keys: &[String]) -> Result<(), ConnectorError> {
        self.0.delete_tags(creds, ids, keys).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn create_security_group(
        &self,
        creds: &Credentials,
        req: &cloudbroker_connector_api::CreateSecurityGroupRequest,
    ) -> Result<cloudbroker_connector_api::SecurityGroupInfo, ConnectorError> {
        self.0.create_security_group(creds, req).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn delete_security_group(&self, creds: &Credentials, group_id: &str) -> Result<(), ConnectorError> {
        self.0.delete_security_group(creds, group_id).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_security_groups(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SecurityGroupInfo>, ConnectorError> {
        self.0.describe_security_groups(creds, group_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn authorize_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: cloudbroker_connector_api::RuleDirection,
        permissions: &[cloudbroker_connector_api::IpPermission],
    ) -> Result<Vec<cloudbroker_connector_api::SecurityGroupRule>, ConnectorError> {
        self.0.authorize_security_group(creds, group_id, direction, permissions).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn revoke_security_group(
        &self,
        creds: &Credentials,
        group_id: &str,
        direction: cloudbroker_connector_api::RuleDirection,
        permissions: &[cloudbroker_connector_api::IpPermission],
    ) -> Result<(), ConnectorError> {
        self.0.revoke_security_group(creds, group_id, direction, permissions).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_security_group_rules(
        &self,
        creds: &Credentials,
        group_ids: &[String],
    ) -> Result<Vec<cloudbroker_connector_api::SecurityGroupRule>, ConnectorError> {
        self.0.describe_security_group_rules(creds, group_ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn ensure_security_group(&self, creds: &Credentials, name: &str) -> Result<(), ConnectorError> {
        self.0.ensure_security_group(creds, name).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn instance_states(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<(String, VmState)>, ConnectorError> {
        self.0.instance_states(creds, ids).await.map_err(|e| scrub_cloud_error(e, creds))
    }

    async fn describe_image(&self, creds: &Credentials, id: &str) -> Result<Option<ImageInfo>, ConnectorError> {
        self.0.describe_image(creds, id).await.map_err(|e| scrub_cloud_error(e, creds))
    }
}

/// A cloud's error with the credentials it was called with scrubbed from its
/// message (clouds may echo a key id, or worse, the secret): the secret
/// becomes `********`, the access key id its masked tail.
pub fn scrub_cloud_error(e: ConnectorError, creds: &Credentials) -> ConnectorError {
    let secret = creds.secret_access_key.expose();
    let key_id = creds.access_key_id.as_str();
    let scrub = |m: String| scrub_secret(&scrub_secret(&m, secret, "********"), key_id, &mask_tail(key_id));
    match e {
        ConnectorError::Auth { code, message } => ConnectorError::Auth { code, message: scrub(message) },
        ConnectorError::Forbidden { code, message } => ConnectorError::Forbidden { code, message: scrub(message) },
        ConnectorError::NotFound { code, message } => ConnectorError::NotFound { code, message: scrub(message) },
        ConnectorError::Limit { code, message } => ConnectorError::Limit { code, message: scrub(message) },
        ConnectorError::Throttled { code, message } => ConnectorError::Throttled { code, message: scrub(message) },
        ConnectorError::Capacity { code, message } => ConnectorError::Capacity { code, message: scrub(message) },
        ConnectorError::InvalidRequest { code, message } => ConnectorError::InvalidRequest { code, message: scrub(message) },
        ConnectorError::Transport { message } => ConnectorError::Transport { message: scrub(message) },
        ConnectorError::Cloud { code, message } => ConnectorError::Cloud { code, message: scrub(message) },
        other @ (ConnectorError::Unsupported { .. } | ConnectorError::Timeout { .. }) => other,
    }
}

/// Replaces `secret` in a cloud's message. A secret shorter than 8
/// characters is replaced only where it stands as a whole word, so that a
/// one-letter secret does not turn every word containing that letter into
/// asterisks (and so reveal the secret by where the asterisks fall).
pub(crate) fn scrub_secret(message: &str, secret: &str, with: &str) -> String {
    if secret.is_empty() {
        return message.to_string();
    }
    if secret.chars().count() >= 8 {
        return message.replace(secret, with);
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    let mut prev: Option<char> = None;
    while let Some(pos) = rest.find(secret) {
        let before = rest[..pos].chars().next_back().or(if pos == 0 { prev } else { None });
        let after = rest[pos + secret.len()..].chars().next();
        out.push_str(&rest[..pos]);
        if before.is_none_or(|c| !is_word(c)) && after.is_none_or(|c| !is_word(c)) {
            out.push_str(with);
        } else {
            out.push_str(secret);
        }
        prev = secret.chars().next_back();
        rest = &rest[pos + secret.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{scrub_cloud_error, scrub_secret};
    use cloudbroker_connector_api::{ConnectorError, Credentials};

    #[test]
    fn cloud_errors_are_scrubbed_of_the_credentials_of_the_call() {
        let creds = Credentials::new("AKIAEXAMPLEKEY123456", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let e = ConnectorError::InvalidRequest {
            code: "InvalidParameterValue".into(),
            message: "bad signature for AKIAEXAMPLEKEY123456 with secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let shown = scrub_cloud_error(e, &creds).to_string();
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("AKIAEXAMPLEKEY123456"), "{shown}");
        assert!(shown.contains("InvalidParameterValue") && shown.contains("********") && shown.contains("3456"), "{shown}");
        let t = scrub_cloud_error(ConnectorError::Transport { message: "x wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into() }, &creds);
        assert_eq!(t.to_string(), "transport error: x ********");
    }

    #[test]
    fn short_secrets_are_scrubbed_as_whole_words_only() {
        assert_eq!(scrub_secret("sandbox account ready", "s", "****"), "sandbox account ready");
        assert_eq!(scrub_secret("bad secret s given", "s", "****"), "bad secret **** given");
        assert_eq!(scrub_secret("s", "s", "****"), "****");
        assert_eq!(scrub_secret("key=abc,abcd", "abc", "*"), "key=*,abcd");
        let long = "wJalrXUtnFEMI/K7MDENG";
        assert_eq!(scrub_secret(&format!("x{long}y and {long}"), long, "*"), "x*y and *");
        assert_eq!(scrub_secret("anything", "", "*"), "anything");
    }
}
