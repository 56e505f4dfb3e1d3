//! The actions this front implements, parsed once from the `Action`
//! parameter. Every other name is refused with EC2's `InvalidAction` (the
//! message shows at most 64 characters of what was sent). What an action is
//! (a `Describe*` that changes nothing) is a method
//! here, never a comparison of strings elsewhere.

use crate::error::Ec2Error;

macro_rules! actions {
    ($($variant:ident),+ $(,)?) => {
        /// One implemented EC2 action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action {
            $($variant),+
        }

        impl Action {
            /// Every implemented action.
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            /// The action's EC2 name (as sent in `Action`, and the root of its answer).
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => stringify!($variant)),+
                }
            }

            /// The action named `name`, or EC2's `InvalidAction`.
            pub fn parse(name: &str) -> Result<Action, Ec2Error> {
                match name {
                    $(stringify!($variant) => Ok(Action::$variant),)+
                    other => Err(Ec2Error::client(
                        "InvalidAction",
                        format!("The action {} is not valid for this web service", crate::ids::shown(other)),
                    )),
                }
            }
        }
    };
}

actions!(
    DescribeRegions,
    DescribeAvailabilityZones,
    DescribeAccountAttributes,
    DescribeInstanceTypes,
    DescribeImages,
    RegisterImage,
    DeregisterImage,
    DescribeInstances,
    DescribeInstanceStatus,
    RunInstances,
    StartInstances,
    StopInstances,
    RebootInstances,
    TerminateInstances,
    CreateTags,
    DeleteTags,
    DescribeTags,
    CreateKeyPair,
    ImportKeyPair,
    DescribeKeyPairs,
    DeleteKeyPair,
    AllocateAddress,
    AssociateAddress,
    DisassociateAddress,
    ReleaseAddress,
    DescribeAddresses,
    CreateVolume,
    AttachVolume,
    DetachVolume,
    DeleteVolume,
    DescribeVolumes,
    CreateVpc,
    DeleteVpc,
    DescribeVpcs,
    CreateSubnet,
    DeleteSubnet,
    DescribeSubnets,
    ModifySubnetAttribute,
    CreateSnapshot,
    DeleteSnapshot,
    DescribeSnapshots,
    CreateImage,
    DescribeImageAttribute,
    ModifyImageAttribute,
    DescribeInstanceAttribute,
    ModifyInstanceAttribute,
    GetConsoleOutput,
    DescribeInstanceTypeOfferings,
    CreateSecurityGroup,
    DeleteSecurityGroup,
    DescribeSecurityGroups,
    AuthorizeSecurityGroupIngress,
    AuthorizeSecurityGroupEgress,
    RevokeSecurityGroupIngress,
    RevokeSecurityGroupEgress,
    DescribeSecurityGroupRules,
);

impl Action {
    /// A `Describe*` action: it changes nothing, so under `DryRun=true` it
    /// runs every check of its answer and then answers `DryRunOperation`.
    /// Every other action handles `DryRun` itself (the core's `check_*`).
    pub fn is_describe(self) -> bool {
        matches!(
            self,
            Action::DescribeRegions
                | Action::DescribeAvailabilityZones
                | Action::DescribeAccountAttributes
                | Action::DescribeInstanceTypes
                | Action::DescribeImages
                | Action::DescribeInstances
                | Action::DescribeInstanceStatus
                | Action::DescribeTags
                | Action::DescribeKeyPairs
                | Action::DescribeAddresses
                | Action::DescribeVolumes
                | Action::DescribeVpcs
                | Action::DescribeSubnets
                | Action::DescribeSnapshots
                | Action::DescribeImageAttribute
                | Action::DescribeInstanceAttribute
                | Action::DescribeInstanceTypeOfferings
                | Action::DescribeSecurityGroups
                | Action::DescribeSecurityGroupRules
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_invalid_action() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()).unwrap(), *a);
            assert_eq!(a.is_describe(), a.name().starts_with("Describe"), "{a:?}");
        }
        let e = Action::parse("DescribeNothing").unwrap_err();
        assert_eq!((e.code.as_str(), e.status), ("InvalidAction", 400));
        assert_eq!(e.message, "The action DescribeNothing is not valid for this web service");
        assert_eq!(Action::parse("describeinstances").unwrap_err().code, "InvalidAction");
    }
}
