//! No parameter is dropped: once an action's typed input is parsed, every
//! parameter its parser did not read ([`Params::unread`]) is refused. One
//! that EC2 documents for the action but the broker does not honour is
//! `UnsupportedOperation` naming it (unless it is given with EC2's default
//! value, which asks for nothing); any other is EC2's `UnknownParameter`.

use crate::action::Action;
use crate::error::Ec2Error;
use crate::request::Params;

/// Parameters EC2 documents for `action` that its parser may leave unread
/// (by their first segment: `Placement` covers `Placement.Tenancy`).
/// Parameters an action honours are read by its parser and never reach this list
/// (`spec`'s tests check that none it lists as honoured is here).
pub fn documented(action: Action) -> &'static [&'static str] {
    use Action::*;
    match action {
        RunInstances => &[
            "AdditionalInfo",
            "BlockDeviceMapping",
            "CapacityReservationSpecification",
            "CpuOptions",
            "CreditSpecification",
            "DisableApiStop",
            "EbsOptimized",
            "ElasticGpuSpecification",
            "ElasticInferenceAccelerator",
            "EnablePrimaryIpv6",
            "EnclaveOptions",
            "HibernationOptions",
            "IamInstanceProfile",
            "InstanceMarketOptions",
            "Ipv6Address",
            "Ipv6AddressCount",
            "KernelId",
            "LaunchTemplate",
            "LicenseSpecification",
            "MaintenanceOptions",
            "MetadataOptions",
            "Monitoring",
            "NetworkInterface",
            "NetworkPerformanceOptions",
            "Operator",
            "Placement",
            "PrivateDnsNameOptions",
            "PrivateIpAddress",
            "RamdiskId",
            "TagSpecification",
        ],
        DescribeInstances | DescribeInstanceStatus | DescribeVolumes | DescribeInstanceTypes | DescribeTags => &["Filter"],
        StartInstances => &["AdditionalInfo"],
        StopInstances => &["Force", "Hibernate", "SkipOsShutdown"],
        TerminateInstances => &["SkipOsShutdown"],
        CreateKeyPair => &["TagSpecification"],
        ImportKeyPair => &["TagSpecification", "KeyType", "KeyFormat"],
        DescribeKeyPairs => &["IncludePublicKey"],
        DeleteKeyPair => &["KeyPairId"],
        AllocateAddress => &["Address", "PublicIpv4Pool", "NetworkBorderGroup", "CustomerOwnedIpv4Pool", "TagSpecification", "IpamPoolId"],
        AssociateAddress => &["NetworkInterfaceId", "PrivateIpAddress"],
        ReleaseAddress => &["NetworkBorderGroup"],
        CreateVolume => &[
            "AvailabilityZoneId",
            "KmsKeyId",
            "MultiAttachEnabled",
            "OutpostArn",
            "TagSpecification",
            "VolumeInitializationRate",
            "Operator",
        ],
        DescribeImages => &["ExecutableBy", "IncludeDeprecated", "IncludeDisabled"],
        RegisterImage => &[
            "Architecture",
            "BlockDeviceMapping",
            "BootMode",
            "EnaSupport",
            "KernelId",
            "RamdiskId",
            "RootDeviceName",
            "SriovNetSupport",
            "VirtualizationType",
            "TpmSupport",
            "UefiData",
            "ImdsSupport",
            "TagSpecification",
            "BillingProduct",
        ],
        DeregisterImage => &["DeleteAssociatedSnapshots"],
        CreateSnapshot => &["OutpostArn", "Location"],
        DescribeSnapshots => &["RestorableBy"],
        CreateImage => &["BlockDeviceMapping", "TagSpecification", "SnapshotLocation"],
        // `LaunchPermission.Add.N.OrganizationArn` and the like: only users and `Group` are taken.
        ModifyImageAttribute => {
            &["Description", "ProductCode", "OrganizationArn", "OrganizationalUnitArn", "ImdsSupport", "Value", "LaunchPermission"]
        }
        DescribeRegions => &["AllRegions"],
        DescribeAvailabilityZones => &["Filter", "AllAvailabilityZones"],
        DescribeAccountAttributes => &["AttributeName"],
        CreateVpc => &[
            "AmazonProvidedIpv6CidrBlock",
            "Ipv6Pool",
            "Ipv6CidrBlock",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
            "Ipv6CidrBlockNetworkBorderGroup",
            "VpcEncryptionControl",
        ],
        CreateSubnet => &[
            "AvailabilityZoneId",
            "Ipv6CidrBlock",
            "OutpostArn",
            "Ipv6Native",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
        ],
        ModifySubnetAttribute => &[
            "AssignIpv6AddressOnCreation",
            "CustomerOwnedIpv4Pool",
            "EnableDns64",
            "EnableLniAtDeviceIndex",
            "DisableLniAtDeviceIndex",
            "EnableResourceNameDnsAAAARecordOnLaunch",
            "EnableResourceNameDnsARecordOnLaunch",
            "MapCustomerOwnedIpOnLaunch",
            "PrivateDnsHostnameTypeOnLaunch",
        ],
        _ => &[],
    }
}

/// Parameters given with EC2's default value ask for nothing: honoured as given.
const DEFAULTS: &[(&str, &str)] = &[
    ("Monitoring.Enabled", "false"),
    ("EbsOptimized", "false"),
    ("DisableApiTermination", "false"),
    ("DisableApiStop", "false"),
    ("Placement.Tenancy", "default"),
    ("Force", "false"),
    ("Hibernate", "false"),
    ("SkipOsShutdown", "false"),
    ("MultiAttachEnabled", "false"),
    ("AllRegions", "false"),
    ("AllAvailabilityZones", "false"),
    ("IncludeDeprecated", "false"),
    ("IncludeDisabled", "false"),
    ("IncludePublicKey", "true"),
];

/// `parsed` once no parameter is left unread; else the refusal of the
/// first one left (in the order given).
pub fn all_read<T>(action: Action, params: &Params, parsed: T) -> Result<T, Ec2Error> {
    for name in params.unread() {
        let value = params.get(name).unwrap_or_default();
        if DEFAULTS.iter().any(|(n, d)| *n == name && value.eq_ignore_ascii_case(d)) {
            continue;
        }
        let head = name.split('.').next().unwrap_or(name);
        let shown = crate::ids::shown(name);
        if documented(action).contains(&head) {
            return Err(Ec2Error::client(
                "UnsupportedOperation",
                format!("The parameter {shown} is not supported by this broker for {}", action.name()),
            ));
        }
        return Err(Ec2Error::client("UnknownParameter", format!("The parameter {shown} is not recognized")));
    }
    Ok(parsed)
}

/// `parse`'s input of `action` from `params`, with nothing left unread.
pub fn input<T>(action: Action, params: &Params, parse: impl FnOnce(&Params) -> Result<T, Ec2Error>) -> Result<T, Ec2Error> {
    let parsed = parse(params)?;
    all_read(action, params, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    #[test]
    fn unread_parameters_are_refused_by_kind() {
        let read = |params: &Params| {
            params.get("InstanceId.1");
            Ok(())
        };
        let ok = p(&[("Action", "StopInstances"), ("Version", "2016-11-15"), ("InstanceId.1", "i-1"), ("Force", "false")]);
        assert!(input(Action::StopInstances, &ok, read).is_ok());
        let e = input(Action::StopInstances, &p(&[("InstanceId.1", "i-1"), ("Force", "true")]), read).unwrap_err();
        assert_eq!((e.code.as_str(), e.status), ("UnsupportedOperation", 400));
        assert_eq!(e.message, "The parameter Force is not supported by this broker for StopInstances");
        let e = input(Action::StopInstances, &p(&[("InstanceId.1", "i-1"), ("Colour", "red")]), read).unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("UnknownParameter", "The parameter Colour is not recognized"));
        let e = input(Action::RunInstances, &p(&[("Placement.GroupName", "g")]), |_| Ok(())).unwrap_err();
        assert_eq!(e.code, "UnsupportedOperation");
        assert!(e.message.contains("Placement.GroupName"), "{}", e.message);
        // A parse error comes first.
        let e = input(Action::StopInstances, &p(&[("Colour", "red")]), |_| Err::<(), _>(Ec2Error::missing("InstanceId.1"))).unwrap_err();
        assert_eq!(e.code, "MissingParameter");
    }
}
