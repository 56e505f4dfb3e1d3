//! What each EC2 action takes, in one place: the parameters its parser
//! honours (AWS's names, `.N`/`.M` for list members), the filters it
//! accepts and its page range (`MaxResults`). The README's table of actions
//! is rendered from here ([`readme_table`]) and checked against the file by
//! a test; other tests check that every parameter listed is read by the
//! action's parser, that no listed parameter is among those refused as
//! documented-but-not-honoured ([`crate::accepted`]), that the filters
//! listed are the ones the parser's filter check accepts, and that the page
//! range is the parser's. A `match` over [`Action`] gives every action its
//! row (the compiler refuses a new action without one).
//!
//! The filter names are not copied here: each action's list is the constant
//! its parser checks names against (`actions::*::*_FILTERS`).
//! `Filter.N.Name`/`Filter.N.Value.M`, `MaxResults`/`NextToken` and the
//! protocol's own parameters (`Action`, `Version`, `DryRun`, SigV2's) are not
//! listed as parameters: the filter and page columns say them.

use crate::action::Action;
use crate::actions::{addresses, attributes, images, instances, keypairs, regions, security_groups, snapshots, tags, volumes, vpcs};

/// Whether a parameter must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Always.
    Required,
    /// Exactly one of the action's `OneOf` parameters (listed next to each other).
    OneOf,
    /// Never (its note may say when it is).
    Optional,
}

/// One parameter an action honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// AWS's name; `N` and `M` stand for list indices (1, 2, ...).
    pub name: &'static str,
    pub need: Need,
    /// A short note for the table (values taken, the resource type of a
    /// `TagSpecification.N`); empty for none.
    pub note: &'static str,
}

const fn req(name: &'static str) -> Param {
    Param { name, need: Need::Required, note: "" }
}

const fn one(name: &'static str) -> Param {
    Param { name, need: Need::OneOf, note: "" }
}

const fn opt(name: &'static str) -> Param {
    Param { name, need: Need::Optional, note: "" }
}

const fn opt_n(name: &'static str, note: &'static str) -> Param {
    Param { name, need: Need::Optional, note }
}

const fn req_n(name: &'static str, note: &'static str) -> Param {
    Param { name, need: Need::Required, note }
}

/// The name of `TagSpecification.N` parameters; their note is the resource
/// type whose tags the action takes (another type's are refused).
pub const TAG_SPECIFICATION: &str = "TagSpecification.N";

const fn tag_spec(resource: &'static str) -> Param {
    Param { name: TAG_SPECIFICATION, need: Need::Optional, note: resource }
}

/// Which tag filters an action takes besides its named ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagFilters {
    /// None.
    No,
    /// `tag:<key>` only (DescribeTags: `key` and `value` name the tag).
    Key,
    /// `tag:<key>`, `tag-key` and `tag-value`.
    All,
}

/// The filters an action accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters {
    /// The named filters: the list the parser checks names against.
    pub names: &'static [&'static str],
    pub tags: TagFilters,
}

/// One action's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub action: Action,
    pub params: &'static [Param],
    /// `None`: the action takes no filters (`Filter.N` is refused).
    pub filters: Option<Filters>,
    /// `MaxResults` range (with `NextToken`); `None`: one answer, no pages.
    pub pages: Option<(i64, i64)>,
}

const fn filters(names: &'static [&'static str], tags: TagFilters) -> Option<Filters> {
    Some(Filters { names, tags })
}

const INSTANCE_IDS: &[Param] = &[req("InstanceId.N")];

/// Authorize/Revoke's parameters: the common ones, then `$extra`.
macro_rules! rules {
    ($($extra:expr),* $(,)?) => {
        ps![
            one("GroupId"),
            one("GroupName"),
            opt_n("IpPermissions.N.IpProtocol", "`-1`, `tcp`, `udp`, `icmp`, `icmpv6` or a number"),
            opt("IpPermissions.N.FromPort"),
            opt("IpPermissions.N.ToPort"),
            opt("IpPermissions.N.IpRanges.M.CidrIp"),
            opt("IpPermissions.N.IpRanges.M.Description"),
            opt("IpPermissions.N.Ipv6Ranges.M.CidrIpv6"),
            opt("IpPermissions.N.Ipv6Ranges.M.Description"),
            opt("IpPermissions.N.Groups.M.GroupId"),
            opt_n("IpPermissions.N.Groups.M.GroupName", "a group in the same VPC"),
            opt("IpPermissions.N.Groups.M.Description"),
            opt_n("IpProtocol", "flat form"),
            opt_n("FromPort", "flat form"),
            opt_n("ToPort", "flat form"),
            opt_n("CidrIp", "flat form"),
            $($extra),*
        ]
    };
}

/// Ingress only: a source group by name (full ICMP, TCP and UDP from it).
const SOURCE_NAME: Param = opt_n("SourceSecurityGroupName", "a group in the same VPC; not with the flat form");
const SOURCE_OWNER: Param = opt_n("SourceSecurityGroupOwnerId", "your own owner id only");
/// Revokes only: rules by id, not with permissions.
const RULE_IDS: Param = opt_n("SecurityGroupRuleId.N", "not with permissions");

/// A `'static` list of parameters (const fn calls are not promoted by themselves).
macro_rules! ps {
    ($($p:expr),* $(,)?) => {
        const { &[$($p),*] as &'static [Param] }
    };
}

/// The row of `action`.
pub fn spec(action: Action) -> Spec {
    use Action::*;
    use TagFilters::{All, Key, No};
    let (params, filters, pages): (&'static [Param], Option<Filters>, Option<(i64, i64)>) = match action {
        DescribeRegions => (ps![opt("RegionName.N")], filters(regions::REGION_FILTERS, No), None),
        DescribeAvailabilityZones => (ps![opt("ZoneName.N"), opt("ZoneId.N")], filters(regions::ZONE_FILTERS, No), None),
        DescribeAccountAttributes => (ps![], None, None),
        DescribeInstanceTypes => (ps![opt("InstanceType.N")], filters(regions::INSTANCE_TYPE_FILTERS, No), Some((5, 100))),
        DescribeImages => (
            ps![opt("ImageId.N"), opt_n("Owner.N", "`self`, `cloudbroker`, `amazon`")],
            filters(images::IMAGE_FILTERS, All),
            Some((5, 1000)),
        ),
        RegisterImage => (ps![req_n("ImageLocation", "a cloud image id"), req("Name"), opt("Description")], None, None),
        DeregisterImage => (ps![req("ImageId")], None, None),
        DescribeInstances => (ps![opt("InstanceId.N")], filters(instances::INSTANCE_FILTERS, All), Some((5, 1000))),
        DescribeInstanceStatus => {
            (ps![opt("InstanceId.N"), opt("IncludeAllInstances")], filters(instances::STATUS_FILTERS, No), Some((5, 1000)))
        }
        RunInstances => (
            ps![
                req("ImageId"),
                req("MinCount"),
                req("MaxCount"),
                opt("InstanceType"),
                opt("KeyName"),
                opt_n("UserData", "base64"),
                opt("ClientToken"),
                tag_spec("instance"),
                opt("Placement.AvailabilityZone"),
                opt_n("InstanceInitiatedShutdownBehavior", "`stop`, `terminate`"),
                opt("DisableApiTermination"),
                opt("BlockDeviceMapping.N.DeviceName"),
                opt("BlockDeviceMapping.N.Ebs.VolumeSize"),
                opt("BlockDeviceMapping.N.Ebs.VolumeType"),
                opt("BlockDeviceMapping.N.Ebs.Iops"),
                opt("BlockDeviceMapping.N.Ebs.Encrypted"),
                opt("BlockDeviceMapping.N.Ebs.DeleteOnTermination"),
                opt_n("SecurityGroup.N", "names"),
                opt_n("SecurityGroupId.N", "ids"),
                opt("SubnetId"),
            ],
            None,
            None,
        ),
        StartInstances | StopInstances | RebootInstances | TerminateInstances => (INSTANCE_IDS, None, None),
        CreateTags => (ps![req("ResourceId.N"), req("Tag.N.Key"), opt("Tag.N.Value")], None, None),
        DeleteTags => (ps![req("ResourceId.N"), opt("Tag.N.Key"), opt("Tag.N.Value")], None, None),
        DescribeTags => (ps![], filters(tags::TAG_FILTERS, Key), Some((5, 1000))),
        CreateKeyPair => {
            (ps![req("KeyName"), opt_n("KeyType", "`ed25519`, `rsa`"), opt_n("KeyFormat", "`pem`"), tag_spec("key-pair")], None, None)
        }
        ImportKeyPair => (ps![req("KeyName"), req_n("PublicKeyMaterial", "base64"), tag_spec("key-pair")], None, None),
        DescribeKeyPairs => (ps![opt("KeyName.N"), opt("KeyPairId.N")], filters(keypairs::KEY_PAIR_FILTERS, All), None),
        DeleteKeyPair => (ps![req("KeyName")], None, None),
        AllocateAddress => (ps![opt_n("Domain", "`vpc`, `standard`"), tag_spec("elastic-ip")], None, None),
        AssociateAddress => (ps![one("AllocationId"), one("PublicIp"), req("InstanceId"), opt("AllowReassociation")], None, None),
        DisassociateAddress => (ps![one("AssociationId"), one("PublicIp")], None, None),
        ReleaseAddress => (ps![one("AllocationId"), one("PublicIp")], None, None),
        DescribeAddresses => (ps![opt("AllocationId.N"), opt("PublicIp.N")], filters(addresses::ADDRESS_FILTERS, All), None),
        CreateVolume => (
            ps![
                opt_n("Size", "GiB; required without `SnapshotId`"),
                req("AvailabilityZone"),
                opt("VolumeType"),
                opt("Iops"),
                opt("Encrypted"),
                opt("Throughput"),
                opt("SnapshotId"),
                opt("ClientToken"),
                tag_spec("volume"),
            ],
            None,
            None,
        ),
        AttachVolume => (ps![req("VolumeId"), req("InstanceId"), req("Device")], None, None),
        DetachVolume => (ps![req("VolumeId"), opt("InstanceId"), opt("Force")], None, None),
        DeleteVolume => (ps![req("VolumeId")], None, None),
        DescribeVolumes => (ps![opt("VolumeId.N")], filters(volumes::VOLUME_FILTERS, All), Some((5, 500))),
        CreateVpc => (ps![req("CidrBlock"), opt_n("InstanceTenancy", "`default`"), tag_spec("vpc")], None, None),
        DeleteVpc => (ps![req("VpcId")], None, None),
        DescribeVpcs => (ps![opt("VpcId.N")], filters(vpcs::VPC_FILTERS, All), Some((5, 1000))),
        CreateSubnet => (ps![req("VpcId"), req("CidrBlock"), opt("AvailabilityZone"), tag_spec("subnet")], None, None),
        DeleteSubnet => (ps![req("SubnetId")], None, None),
        DescribeSubnets => (ps![opt("SubnetId.N")], filters(vpcs::SUBNET_FILTERS, All), Some((5, 1000))),
        ModifySubnetAttribute => (ps![req("SubnetId"), req("MapPublicIpOnLaunch.Value")], None, None),
        CreateSnapshot => (ps![req("VolumeId"), opt("Description"), tag_spec("snapshot")], None, None),
        DeleteSnapshot => (ps![req("SnapshotId")], None, None),
        DescribeSnapshots => {
            (ps![opt("SnapshotId.N"), opt_n("Owner.N", "`self` or a project")], filters(snapshots::SNAPSHOT_FILTERS, All), Some((5, 1000)))
        }
        CreateImage => (ps![req("InstanceId"), req("Name"), opt("Description"), opt("NoReboot")], None, None),
        DescribeImageAttribute => (ps![req("ImageId"), req_n("Attribute", "`launchPermission`, `description`, ...")], None, None),
        ModifyImageAttribute => (
            ps![
                req("ImageId"),
                opt("LaunchPermission.Add.N.UserId"),
                opt("LaunchPermission.Remove.N.UserId"),
                opt_n("Attribute", "`launchPermission`"),
                opt_n("OperationType", "`add`, `remove`"),
                opt("UserId.N"),
            ],
            None,
            None,
        ),
        DescribeInstanceAttribute => (ps![req("InstanceId"), req("Attribute")], None, None),
        ModifyInstanceAttribute => (
            ps![
                req("InstanceId"),
                one("InstanceType.Value"),
                one_n("UserData.Value", "base64"),
                one("DisableApiTermination.Value"),
                one("InstanceInitiatedShutdownBehavior.Value"),
                one("SourceDestCheck.Value"),
                one("Attribute"),
                opt_n("Value", "with `Attribute`"),
            ],
            None,
            None,
        ),
        GetConsoleOutput => (ps![req("InstanceId"), opt("Latest")], None, None),
        DescribeInstanceTypeOfferings => (
            ps![opt_n("LocationType", "`region`, `availability-zone`, `availability-zone-id`")],
            filters(attributes::OFFERING_FILTERS, No),
            Some((5, 1000)),
        ),
        CreateSecurityGroup => (ps![req("GroupName"), req("GroupDescription"), opt("VpcId"), tag_spec("security-group")], None, None),
        DeleteSecurityGroup => (ps![one("GroupId"), one("GroupName")], None, None),
        DescribeSecurityGroups => {
            (ps![opt("GroupId.N"), opt("GroupName.N")], filters(security_groups::GROUP_FILTERS, All), Some((5, 1000)))
        }
        AuthorizeSecurityGroupEgress => (rules![], None, None),
        AuthorizeSecurityGroupIngress => (rules![SOURCE_NAME, SOURCE_OWNER], None, None),
        RevokeSecurityGroupEgress => (rules![RULE_IDS], None, None),
        RevokeSecurityGroupIngress => (rules![SOURCE_NAME, SOURCE_OWNER, RULE_IDS], None, None),
        DescribeSecurityGroupRules => (ps![opt("SecurityGroupRuleId.N")], filters(security_groups::RULE_FILTERS, All), Some((5, 1000))),
    };
    Spec { action, params, filters, pages }
}

const fn one_n(name: &'static str, note: &'static str) -> Param {
    Param { name, need: Need::OneOf, note }
}

/// Every action's row, in [`Action::ALL`]'s order.
pub fn all() -> Vec<Spec> {
    Action::ALL.iter().map(|a| spec(*a)).collect()
}

fn code(s: &str) -> String {
    format!("`{s}`")
}

/// The parameters cell: required ones in bold, `OneOf` neighbours joined by "or".
fn params_cell(params: &[Param]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut last_one = false;
    let mut prev: Option<&Param> = None;
    for p in params {
        let name = if p.name == TAG_SPECIFICATION && !p.note.is_empty() {
            format!("`{}` (`{}`)", p.name, p.note)
        } else if p.note.is_empty() {
            code(p.name)
        } else {
            format!("`{}` ({})", p.name, p.note)
        };
        // A sibling of the previous parameter (`X.A`, then `X.B`) is shown as `.B`.
        let parent = |n: &str| n.rsplit_once('.').map(|(head, _)| head.to_string()).filter(|h| h.contains('.'));
        let sibling = prev.is_some_and(|q: &Param| q.need == p.need && parent(q.name).is_some() && parent(q.name) == parent(p.name));
        let name = match p.name.rsplit_once('.') {
            Some((_, leaf)) if sibling && p.note.is_empty() && p.need == Need::Optional => format!("`.{leaf}`"),
            _ => name,
        };
        prev = Some(p);
        let shown = if p.need == Need::Optional { name } else { format!("**{name}**") };
        if p.need == Need::OneOf && last_one {
            if let Some(prev) = out.last_mut() {
                prev.push_str(" or ");
                prev.push_str(&shown);
            }
        } else {
            out.push(shown);
        }
        last_one = p.need == Need::OneOf;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

fn filters_cell(f: Option<Filters>) -> String {
    let Some(f) = f else { return "none".into() };
    let mut names: Vec<String> = f.names.iter().map(|n| code(n)).collect();
    match f.tags {
        TagFilters::No => {}
        TagFilters::Key => names.push("`tag:KEY`".into()),
        TagFilters::All => names.push("`tag:KEY`, `tag-key`, `tag-value`".into()),
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The README's table of actions (the text between its markers).
pub fn readme_table() -> String {
    let mut out = String::from("| Action | Parameters | Filters | Pages (`MaxResults`) |\n|---|---|---|---|\n");
    for s in all() {
        let pages = s.pages.map(|(lo, hi)| format!("{lo}-{hi}")).unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.action.name(),
            params_cell(s.params).replace('|', "\\|"),
            filters_cell(s.filters).replace('|', "\\|"),
            pages
        ));
    }
    out
}

/// Parses `action`'s input from `params` with the parser the dispatcher
/// uses ([`crate::accepted::input`]: nothing may be left unread), and keeps
/// nothing: what the tests of this table use to ask a parser what it takes.
/// Keep each arm the same parser as the dispatcher's (`lib.rs`).
pub fn parse_input(action: Action, params: &crate::request::Params) -> Result<(), crate::error::Ec2Error> {
    use crate::accepted::input;
    use crate::actions::key_format::KeyKindInput;
    use Action::*;
    let p = params;
    match action {
        DescribeRegions => input(action, p, regions::DescribeRegionsInput::parse).map(drop),
        DescribeAvailabilityZones => input(action, p, regions::DescribeAvailabilityZonesInput::parse).map(drop),
        DescribeAccountAttributes => input(action, p, |_| Ok(())),
        DescribeInstanceTypes => input(action, p, regions::DescribeInstanceTypesInput::parse).map(drop),
        DescribeImages => input(action, p, images::DescribeImagesInput::parse).map(drop),
        RegisterImage => input(action, p, images::RegisterImageInput::parse).map(drop),
        DeregisterImage => input(action, p, images::DeregisterImageInput::parse).map(drop),
        DescribeInstances => input(action, p, instances::DescribeInstancesInput::parse).map(drop),
        DescribeInstanceStatus => input(action, p, instances::DescribeInstanceStatusInput::parse).map(drop),
        RunInstances => input(action, p, instances::RunInstancesInput::parse).map(drop),
        StartInstances | StopInstances | RebootInstances | TerminateInstances => {
            input(action, p, instances::ChangeStateInput::parse).map(drop)
        }
        CreateTags => input(action, p, tags::CreateTagsInput::parse).map(drop),
        DeleteTags => input(action, p, tags::DeleteTagsInput::parse).map(drop),
        DescribeTags => input(action, p, tags::DescribeTagsInput::parse).map(drop),
        CreateKeyPair => input(action, p, |p| Ok((keypairs::KeyNameInput::parse(p)?, KeyKindInput::parse(p)?))).map(drop),
        ImportKeyPair => input(action, p, keypairs::ImportKeyPairInput::parse).map(drop),
        DescribeKeyPairs => input(action, p, keypairs::DescribeKeyPairsInput::parse).map(drop),
        DeleteKeyPair => input(action, p, keypairs::KeyNameInput::parse_name).map(drop),
        AllocateAddress => input(action, p, addresses::AllocateAddressInput::parse).map(drop),
        AssociateAddress => input(action, p, addresses::AssociateAddressInput::parse).map(drop),
        DisassociateAddress => input(action, p, addresses::DisassociateAddressInput::parse).map(drop),
        ReleaseAddress => input(action, p, addresses::ReleaseAddressInput::parse).map(drop),
        DescribeAddresses => input(action, p, addresses::DescribeAddressesInput::parse).map(drop),
        CreateVolume => input(action, p, volumes::CreateVolumeInput::parse).map(drop),
        AttachVolume => input(action, p, volumes::AttachVolumeInput::parse).map(drop),
        DetachVolume => input(action, p, volumes::DetachVolumeInput::parse).map(drop),
        DeleteVolume => input(action, p, volumes::DeleteVolumeInput::parse).map(drop),
        DescribeVolumes => input(action, p, volumes::DescribeVolumesInput::parse).map(drop),
        CreateVpc => input(action, p, vpcs::CreateVpcInput::parse).map(drop),
        DeleteVpc => input(action, p, vpcs::DeleteVpcInput::parse).map(drop),
        DescribeVpcs => input(action, p, vpcs::DescribeNetInput::parse_vpcs).map(drop),
        CreateSubnet => input(action, p, vpcs::CreateSubnetInput::parse).map(drop),
        DeleteSubnet => input(action, p, vpcs::DeleteSubnetInput::parse).map(drop),
        DescribeSubnets => input(action, p, vpcs::DescribeNetInput::parse_subnets).map(drop),
        ModifySubnetAttribute => input(action, p, vpcs::ModifySubnetAttributeInput::parse).map(drop),
        CreateSnapshot => input(action, p, snapshots::CreateSnapshotInput::parse).map(drop),
        DeleteSnapshot => input(action, p, snapshots::DeleteSnapshotInput::parse).map(drop),
        DescribeSnapshots => input(action, p, snapshots::DescribeSnapshotsInput::parse).map(drop),
        CreateImage => input(action, p, snapshots::CreateImageInput::parse).map(drop),
        DescribeImageAttribute => input(action, p, snapshots::DescribeImageAttributeInput::parse).map(drop),
        ModifyImageAttribute => input(action, p, snapshots::ModifyImageAttributeInput::parse).map(drop),
        DescribeInstanceAttribute => input(action, p, attributes::DescribeInstanceAttributeInput::parse).map(drop),
        ModifyInstanceAttribute => input(action, p, attributes::ModifyInstanceAttributeInput::parse).map(drop),
        GetConsoleOutput => input(action, p, attributes::GetConsoleOutputInput::parse).map(drop),
        DescribeInstanceTypeOfferings => input(action, p, attributes::DescribeInstanceTypeOfferingsInput::parse).map(drop),
        CreateSecurityGroup => input(action, p, security_groups::CreateSecurityGroupInput::parse).map(drop),
        DeleteSecurityGroup => input(action, p, security_groups::DeleteSecurityGroupInput::parse).map(drop),
        DescribeSecurityGroups => input(action, p, security_groups::DescribeSecurityGroupsInput::parse).map(drop),
        AuthorizeSecurityGroupEgress => input(action, p, security_groups::RulesInput::parse).map(drop),
        AuthorizeSecurityGroupIngress => input(action, p, security_groups::RulesInput::parse_ingress).map(drop),
        RevokeSecurityGroupEgress => input(action, p, security_groups::RulesInput::parse_revoke_egress).map(drop),
        RevokeSecurityGroupIngress => input(action, p, security_groups::RulesInput::parse_revoke_ingress).map(drop),
        DescribeSecurityGroupRules => input(action, p, security_groups::DescribeSecurityGroupRulesInput::parse).map(drop),
    }
}
