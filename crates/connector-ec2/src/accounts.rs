//! Which cloud account a credential acts in, and other accounts' launch
//! permissions on the account's images. The account is the `ownerId` of
//! the account's own security groups (every VPC has its default group);
//! an account with none says so instead of guessing. Launch permissions
//! are EC2's `ModifyImageAttribute` with `LaunchPermission` `Add`/`Remove`
//! `UserId`, one call for both lists.

use super::*;
use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};

impl Ec2Connector {
    pub(crate) async fn do_account_id(&self, creds: &Credentials) -> Result<String, ConnectorError> {
        let req = self.client(creds)?.describe_security_groups().max_results(5);
        let out = self.call("DescribeSecurityGroups", || req.clone().send()).await?;
        out.security_groups().iter().find_map(|g| g.owner_id().filter(|o| !o.is_empty()).map(str::to_string)).ok_or_else(|| {
            ConnectorError::Cloud {
                code: "AccountUnknown".into(),
                message: "the cloud named no owner of the account's security groups: its account id is unknown".into(),
            }
        })
    }

    pub(crate) async fn do_modify_image_launch_permission(
        &self,
        creds: &Credentials,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ConnectorError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let perms = |ids: &[String]| {
            (!ids.is_empty()).then(|| ids.iter().map(|a| LaunchPermission::builder().user_id(a.clone()).build()).collect::<Vec<_>>())
        };
        let mods = LaunchPermissionModifications::builder().set_add(perms(add)).set_remove(perms(remove)).build();
        let req = self.client(creds)?.modify_image_attribute().image_id(image_id).launch_permission(mods);
        self.call("ModifyImageAttribute", || req.clone().send()).await?;
        Ok(())
    }
}
