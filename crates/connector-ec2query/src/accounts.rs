//! Which cloud account a credential acts in, and other accounts' launch
//! permissions on the account's images, over the Query API. The account is
//! the `ownerId` of the account's security groups, else of its VPCs (a
//! cloud that names neither says so instead of guessing). Launch
//! permissions are `ModifyImageAttribute` with
//! `LaunchPermission.Add.N.UserId` / `LaunchPermission.Remove.N.UserId`.

use crate::parse::check_return;
use crate::request::Params;
use crate::xml::Element;
use crate::Ec2QueryConnector;
use cloudbroker_connector_api::{ConnectorError, Credentials};

/// The first `ownerId` of the items of `set` in an answer.
pub fn first_owner(root: &Element, set: &str) -> Option<String> {
    root.items(set).find_map(|i| i.child_text("ownerId").filter(|o| !o.is_empty()).map(str::to_string))
}

/// ModifyImageAttribute's parameters for launch permissions of accounts.
pub fn launch_permission(image_id: &str, add: &[String], remove: &[String]) -> Params {
    let mut p: Params = vec![("ImageId".to_string(), image_id.to_string())];
    for (op, ids) in [("Add", add), ("Remove", remove)] {
        for (i, a) in ids.iter().enumerate() {
            p.push((format!("LaunchPermission.{op}.{}.UserId", i + 1), a.clone()));
        }
    }
    p
}

impl Ec2QueryConnector {
    pub(crate) async fn do_account_id(&self, creds: &Credentials) -> Result<String, ConnectorError> {
        let root = self.call(creds, "DescribeSecurityGroups", Params::new()).await?;
        if let Some(owner) = first_owner(&root, "securityGroupInfo") {
            return Ok(owner);
        }
        let root = self.call(creds, "DescribeVpcs", Params::new()).await?;
        first_owner(&root, "vpcSet").ok_or_else(|| ConnectorError::Cloud {
            code: "AccountUnknown".into(),
            message: "the cloud named no owner of the account's security groups or VPCs: its account id is unknown".into(),
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
        let root = self.call(creds, "ModifyImageAttribute", launch_permission(image_id, add, remove)).await?;
        check_return(&root, "ModifyImageAttribute")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn owners_are_read_and_permissions_asked() {
        let doc = r#"<DescribeSecurityGroupsResponse><securityGroupInfo><item><ownerId>222233334444</ownerId>
            <groupId>sg-1</groupId></item></securityGroupInfo></DescribeSecurityGroupsResponse>"#;
        assert_eq!(first_owner(&crate::xml::parse(doc).unwrap(), "securityGroupInfo").as_deref(), Some("222233334444"));
        let none = r#"<DescribeSecurityGroupsResponse><securityGroupInfo/></DescribeSecurityGroupsResponse>"#;
        assert_eq!(first_owner(&crate::xml::parse(none).unwrap(), "securityGroupInfo"), None);
        let p = launch_permission("ami-1", &["111".into(), "222".into()], &["333".into()]);
        let want: Params = vec![
            ("ImageId".into(), "ami-1".into()),
            ("LaunchPermission.Add.1.UserId".into(), "111".into()),
            ("LaunchPermission.Add.2.UserId".into(), "222".into()),
            ("LaunchPermission.Remove.1.UserId".into(), "333".into()),
        ];
        assert_eq!(p, want);
    }
}
