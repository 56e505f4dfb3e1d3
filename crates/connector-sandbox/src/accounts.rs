//! Accounts and launch permissions, simulated with EC2's rules: each
//! access key id is its own account and is its account id. An image made
//! from an instance is launched by the account that made it and by the
//! accounts it granted launch permission to (`ModifyImageAttribute`
//! `LaunchPermission`); to every other account it does not exist
//! (`InvalidAMIID.NotFound`), on launch as on a change of its permissions.

use super::*;

impl World {
    /// Whether `account` may launch `image_id`: one of the sandbox's own
    /// images, or one made from an instance by the account or shared with it.
    pub(crate) fn launchable_image(&self, account: &str, image_id: &str) -> bool {
        IMAGES.iter().any(|(id, _)| *id == image_id)
            || self.images.get(image_id).is_some_and(|i| i.account == account || i.launch_accounts.contains(account))
    }
}

impl SandboxConnector {
    pub(crate) async fn do_account_id(&self, creds: &Credentials) -> Result<String, ConnectorError> {
        self.enter(creds, |_, acct| Ok(acct.to_string())).await
    }

    pub(crate) async fn do_modify_image_launch_permission(
        &self,
        creds: &Credentials,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let Some(img) = w.images.get_mut(image_id).filter(|i| i.account == acct) else {
                return Err(err_not_found("InvalidAMIID.NotFound", format!("The image id '[{image_id}]' does not exist")));
            };
            for a in remove {
                img.launch_accounts.remove(a);
            }
            img.launch_accounts.extend(add.iter().filter(|a| a.as_str() != acct).cloned());
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use cloudbroker_connector_api::{Connector, CreateImageRequest, RunRequest};

    fn code(e: ConnectorError) -> String {
        match e {
            ConnectorError::NotFound { code, .. } | ConnectorError::InvalidRequest { code, .. } => code,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn images_are_launched_by_their_account_and_those_it_shares_with() {
        let settings = SandboxSettings {
            boot_delay: std::time::Duration::ZERO,
            failure_rate: 0.0,
            capacity: None,
            public_ips: true,
            keep_tags: true,
            api_latency: std::time::Duration::ZERO,
            workers: 4,
        };
        let sb = SandboxConnector::new(InstanceName::parse("sb").unwrap(), settings);
        let (a, b) = (Credentials::new("acct-a", "s"), Credentials::new("acct-b", "s"));
        assert_eq!(sb.account_id(&a).await.unwrap(), "acct-a");
        assert_eq!(sb.account_id(&b).await.unwrap(), "acct-b");
        let run = |image: &str| RunRequest { image_id: image.into(), instance_type: "t2.micro".into(), count: 1, ..RunRequest::default() };
        let vm = sb.run_instances(&a, &run(IMAGES[0].0)).await.unwrap().remove(0);
        let req = CreateImageRequest { instance_id: vm.id, name: "mine".into(), description: None, no_reboot: true };
        let ami = sb.create_image(&a, &req).await.unwrap();
        sb.run_instances(&a, &run(&ami)).await.unwrap();
        assert_eq!(code(sb.run_instances(&b, &run(&ami)).await.unwrap_err()), "InvalidAMIID.NotFound");
        // Only the owner changes the permissions.
        let grant = ["acct-b".to_string()];
        assert_eq!(code(sb.modify_image_launch_permission(&b, &ami, &grant, &[]).await.unwrap_err()), "InvalidAMIID.NotFound");
        sb.modify_image_launch_permission(&a, &ami, &grant, &[]).await.unwrap();
        sb.modify_image_launch_permission(&a, &ami, &grant, &[]).await.unwrap();
        sb.run_instances(&b, &run(&ami)).await.unwrap();
        sb.modify_image_launch_permission(&a, &ami, &[], &grant).await.unwrap();
        assert_eq!(code(sb.run_instances(&b, &run(&ami)).await.unwrap_err()), "InvalidAMIID.NotFound");
    }
}
