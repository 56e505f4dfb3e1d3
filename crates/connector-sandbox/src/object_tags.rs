//! Tags on the simulation's VPCs, subnets, security groups and snapshots
//! (EC2's CreateTags/DeleteTags on `vpc-`, `subnet-`, `sg-` and `snap-`
//! ids): each is found only through its own account (another account's id
//! is the kind's NotFound code, as EC2 answers), and its tags are kept by id
//! in [`World::object_tags`]; a VPC's and a subnet's are shown in their
//! Describe answers too.

use super::world::{err_not_found, World};
use cloudbroker_connector_api::ConnectorError;

/// Whether `id` names a VPC, subnet, security group or snapshot.
pub(crate) fn is_object_id(id: &str) -> bool {
    ["vpc-", "subnet-", "sg-", "snap-"].iter().any(|p| id.starts_with(p))
}

impl World {
    /// Object `id` (see [`is_object_id`]) is `account`'s, else the kind's NotFound.
    pub(crate) fn tagged_object(&mut self, account: &str, id: &str) -> Result<(), ConnectorError> {
        let mine = if id.starts_with("vpc-") {
            self.vpcs.get(id).is_some_and(|v| v.account == account)
        } else if id.starts_with("subnet-") {
            self.subnets.get(id).is_some_and(|s| s.account == account)
        } else if id.starts_with("sg-") {
            self.groups.get(id).is_some_and(|g| g.account == account)
        } else {
            self.snapshots.get(id).is_some_and(|s| s.account == account)
        };
        if mine {
            return Ok(());
        }
        Err(if id.starts_with("vpc-") {
            err_not_found("InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist"))
        } else if id.starts_with("subnet-") {
            err_not_found("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
        } else if id.starts_with("sg-") {
            err_not_found("InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
        } else {
            err_not_found("InvalidSnapshot.NotFound", format!("The snapshot '{id}' does not exist."))
        })
    }

    /// Sets `tags` on object `id` (checked with [`Self::tagged_object`]).
    pub(crate) fn set_object_tags(&mut self, id: &str, tags: &[(String, String)]) {
        let kept = self.object_tags.entry(id.to_string()).or_default();
        for (k, v) in tags {
            kept.insert(k.clone(), v.clone());
        }
        self.show_object_tags(id);
    }

    /// Removes `keys` from object `id`'s tags.
    pub(crate) fn remove_object_tags(&mut self, id: &str, keys: &[String]) {
        if let Some(kept) = self.object_tags.get_mut(id) {
            kept.retain(|k, _| !keys.contains(k));
            if kept.is_empty() {
                self.object_tags.remove(id);
            }
        }
        self.show_object_tags(id);
    }

    /// A VPC's or subnet's Describe answer shows its tags.
    fn show_object_tags(&mut self, id: &str) {
        let tags: Vec<(String, String)> =
            self.object_tags.get(id).map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        if let Some(v) = self.vpcs.get_mut(id) {
            v.info.tags = tags;
        } else if let Some(s) = self.subnets.get_mut(id) {
            s.info.tags = tags;
        }
    }
}
