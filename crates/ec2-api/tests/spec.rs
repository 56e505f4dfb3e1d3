//! The table of EC2 actions (`cloudbroker_ec2_api::spec`) tells the truth,
//! and README.md shows it:
//!
//! * the README's block between `<!-- ec2-actions:begin -->` and
//!   `<!-- ec2-actions:end -->` is exactly [`spec::readme_table`]
//!   (`CLOUDBROKER_BLESS_README=1 cargo nextest run -p cloudbroker-ec2-api
//!   --test spec` rewrites it; review the diff);
//! * every action has one row;
//! * every parameter listed is read by the action's parser: each is given
//!   (with the action's required parameters and what it needs beside it) a
//!   plausible value, and the input parses with nothing left unread;
//! * no parameter listed is also refused as documented-but-not-honoured
//!   ([`accepted::documented`]);
//! * every filter listed is accepted by the action's filter check, and an
//!   unlisted one is refused; an action listed without filters refuses any;
//! * the page range listed is the parser's (its ends accepted, one past
//!   them refused), and an action listed without pages does not read
//!   `MaxResults`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_ec2_api::accepted;
use cloudbroker_ec2_api::action::Action;
use cloudbroker_ec2_api::request::Params;
use cloudbroker_ec2_api::spec::{self, Need, Param, TagFilters, TAG_SPECIFICATION};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- ec2-actions:begin -->\n";
const END: &str = "<!-- ec2-actions:end -->";

fn readme() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

#[test]
fn readme_block_is_the_generated_table() {
    let path = readme();
    let text = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("README.md lacks the markers {BEGIN:?} and {END:?}");
    };
    let start = b + BEGIN.len();
    let want = spec::readme_table();
    if text[start..e] == want {
        return;
    }
    if std::env::var_os("CLOUDBROKER_BLESS_README").is_some() {
        std::fs::write(&path, format!("{}{}{}", &text[..start], want, &text[e..])).unwrap();
        return;
    }
    let diff: Vec<String> =
        text[start..e].lines().zip(want.lines()).filter(|(a, b)| a != b).take(5).map(|(a, b)| format!("- {a}\n+ {b}")).collect();
    panic!(
        "README.md's table of EC2 actions differs from crates/ec2-api/src/spec.rs; rewrite it with \
         `CLOUDBROKER_BLESS_README=1 cargo nextest run -p cloudbroker-ec2-api --test spec` and review the diff.\n\
         First differing lines:\n{}\n\nThe expected block:\n{BEGIN}{want}{END}",
        diff.join("\n")
    );
}

#[test]
fn every_action_has_one_row() {
    let rows = spec::all();
    assert_eq!(rows.len(), Action::ALL.len());
    for (row, a) in rows.iter().zip(Action::ALL) {
        assert_eq!(row.action, *a);
        let names: Vec<&str> = row.params.iter().map(|p| p.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{a:?} lists a parameter twice: {names:?}");
        if let Some(f) = row.filters {
            let mut n = f.names.to_vec();
            n.sort_unstable();
            n.dedup();
            assert_eq!(n.len(), f.names.len(), "{a:?} lists a filter twice");
        }
    }
    let table = spec::readme_table();
    for a in Action::ALL {
        assert_eq!(table.matches(&format!("| `{}` |", a.name())).count(), 1, "{a:?} has one line in the table");
    }
}

/// The request name of a listed parameter (`N`/`M` as 1).
fn concrete(name: &str) -> String {
    name.split('.').map(|s| if s == "N" || s == "M" { "1" } else { s }).collect::<Vec<_>>().join(".")
}

/// A plausible value for `name` (a listed parameter, concrete) in `action`,
/// with what it needs beside it.
fn sample(action: Action, p: &Param) -> Vec<(String, String)> {
    let name = concrete(p.name);
    let last = name.rsplit('.').find(|s| *s != "1").unwrap_or(&name).to_string();
    let one = |v: &str| vec![(name.clone(), v.to_string())];
    if p.name == TAG_SPECIFICATION {
        return vec![
            ("TagSpecification.1.ResourceType".into(), p.note.into()),
            ("TagSpecification.1.Tag.1.Key".into(), "team".into()),
            ("TagSpecification.1.Tag.1.Value".into(), "a".into()),
        ];
    }
    if let Some(rest) = name.strip_prefix("BlockDeviceMapping.1.") {
        let mut out = vec![("BlockDeviceMapping.1.DeviceName".to_string(), "/dev/sdb".to_string())];
        let v = match rest {
            "DeviceName" => return out,
            "Ebs.VolumeSize" => "8",
            "Ebs.VolumeType" => "gp3",
            "Ebs.Iops" => "3000",
            _ => "true",
        };
        out.push((name.clone(), v.into()));
        return out;
    }
    if let Some(rest) = name.strip_prefix("IpPermissions.1.") {
        let mut out = vec![("IpPermissions.1.IpProtocol".to_string(), "-1".to_string())];
        let (key, v) = match rest {
            "IpProtocol" => {
                out.push(("IpPermissions.1.IpRanges.1.CidrIp".into(), "10.0.0.0/8".into()));
                return out;
            }
            "FromPort" | "ToPort" => {
                out[0].1 = "tcp".into();
                out.push(("IpPermissions.1.IpRanges.1.CidrIp".into(), "10.0.0.0/8".into()));
                out.push(("IpPermissions.1.FromPort".into(), "22".into()));
                out.push(("IpPermissions.1.ToPort".into(), "22".into()));
                return out;
            }
            r if r.starts_with("IpRanges") => ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
            r if r.starts_with("Ipv6Ranges") => ("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", "2001:db8::/32"),
            _ => ("IpPermissions.1.Groups.1.GroupId", "sg-0123456789abcdef0"),
        };
        out.push((key.into(), v.into()));
        if rest.ends_with("Description") {
            out.push((name.clone(), "why".into()));
        }
        return out;
    }
    let rules = spec::spec(action).params.iter().any(|q| q.name.starts_with("IpPermissions"));
    if rules && ["IpProtocol", "FromPort", "ToPort", "CidrIp"].contains(&name.as_str()) {
        return vec![
            ("IpProtocol".into(), "tcp".into()),
            ("FromPort".into(), "22".into()),
            ("ToPort".into(), "22".into()),
            ("CidrIp".into(), "10.0.0.0/8".into()),
        ];
    }
    match (action, name.as_str()) {
        (Action::ModifyInstanceAttribute, "Attribute" | "Value") => {
            return vec![("Attribute".into(), "disableApiTermination".into()), ("Value".into(), "true".into())]
        }
        (Action::ModifyInstanceAttribute, "InstanceType.Value") => return one("t3.micro"),
        (Action::ModifyInstanceAttribute, "UserData.Value") => return one("aGk="),
        (Action::ModifyInstanceAttribute, "InstanceInitiatedShutdownBehavior.Value") => return one("stop"),
        (Action::ModifyInstanceAttribute, _) if name.ends_with(".Value") => return one("true"),
        (Action::ModifyImageAttribute, "Attribute" | "OperationType" | "UserId.1") => {
            return vec![
                ("Attribute".into(), "launchPermission".into()),
                ("OperationType".into(), "add".into()),
                ("UserId.1".into(), "bob".into()),
            ]
        }
        (Action::DescribeInstanceAttribute, "Attribute") => return one("instanceType"),
        (Action::DescribeImageAttribute, "Attribute") => return one("launchPermission"),
        (Action::DescribeImages | Action::DescribeSnapshots, "Owner.1") => return one("self"),
        (Action::CreateVolume, "SnapshotId") => return one("snap-0123456789abcdef0"),
        (Action::RegisterImage, "ImageLocation") => return one("ami-0123456789abcdef0"),
        (Action::CreateSecurityGroup, "GroupName") => return one("web"),
        // An owner id names the source group's owner: with the group.
        (_, "SourceSecurityGroupOwnerId") => {
            return vec![("SourceSecurityGroupName".into(), "web".into()), ("SourceSecurityGroupOwnerId".into(), "x".into())]
        }
        _ => {}
    }
    let v = match last.as_str() {
        "InstanceId" => "i-0123456789abcdef0",
        "ImageId" => "ami-0123456789abcdef0",
        "VolumeId" => "vol-0123456789abcdef0",
        "SnapshotId" => "snap-0123456789abcdef0",
        "VpcId" => "vpc-0123456789abcdef0",
        "SubnetId" => "subnet-0123456789abcdef0",
        "GroupId" | "SecurityGroupId" => "sg-0123456789abcdef0",
        "SecurityGroupRuleId" => "sgr-0123456789abcdef0",
        "AllocationId" => "eipalloc-0123456789abcdef0",
        "AssociationId" => "eipassoc-0123456789abcdef0",
        "KeyPairId" => "key-0123456789abcdef0",
        "PublicIp" => "203.0.113.7",
        "CidrBlock" => "10.0.0.0/16",
        "MinCount" | "MaxCount" => "1",
        "Size" => "8",
        "Iops" => "3000",
        "Throughput" => "125",
        "VolumeType" => "gp3",
        "InstanceType" => "t3.micro",
        "UserData" | "PublicKeyMaterial" => {
            if last == "PublicKeyMaterial" {
                "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUdnbFg2N1lwMGJJcVlKOWZpQTFCVGpXTGpMNmVOa2pGdHJsN2xaVEhHR0Ygazc="
            } else {
                "aGk="
            }
        }
        "KeyType" => "rsa",
        "KeyFormat" => "pem",
        "Domain" => "vpc",
        "InstanceTenancy" => "default",
        "InstanceInitiatedShutdownBehavior" => "stop",
        "LocationType" => "availability-zone",
        "Device" => "/dev/sdf",
        "Name" => "my-image",
        "ClientToken" => "token-1",
        "AvailabilityZone" => "sandboxa",
        "Owner" => "self",
        "IncludeAllInstances"
        | "AllowReassociation"
        | "Encrypted"
        | "Force"
        | "NoReboot"
        | "Latest"
        | "DisableApiTermination"
        | "Value" => "true",
        _ => "x",
    };
    one(v)
}

/// `pairs` with `more` added (a name given again takes the later value).
fn with(pairs: &[(String, String)], more: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut m: BTreeMap<String, String> = pairs.iter().cloned().collect();
    m.extend(more);
    let mut out = vec![("Action".to_string(), String::new()), ("Version".into(), "2016-11-15".into())];
    out.extend(m);
    out
}

/// The action's required parameters, and, where one of several is needed,
/// the first of them (unless `leave` is one of them).
fn base(action: Action, leave: Option<&Param>) -> Vec<(String, String)> {
    let row = spec::spec(action);
    let mut out = Vec::new();
    for p in row.params.iter().filter(|p| p.need == Need::Required) {
        out.extend(sample(action, p));
    }
    let leave_one = leave.is_some_and(|p| p.need == Need::OneOf);
    if !leave_one {
        if let Some(p) = row.params.iter().find(|p| p.need == Need::OneOf) {
            out.extend(sample(action, p));
        }
    }
    // What some actions need besides: a size, a permission.
    match action {
        Action::CreateVolume => out.push(("Size".into(), "8".into())),
        a if row_has(a, "IpPermissions.N.IpProtocol") => {
            out.push(("IpPermissions.1.IpProtocol".into(), "-1".into()));
            out.push(("IpPermissions.1.IpRanges.1.CidrIp".into(), "10.0.0.0/8".into()));
        }
        Action::ModifyImageAttribute => out.push(("LaunchPermission.Add.1.UserId".into(), "bob".into())),
        _ => {}
    }
    out
}

fn row_has(action: Action, name: &str) -> bool {
    spec::spec(action).params.iter().any(|p| p.name == name)
}

fn params(pairs: Vec<(String, String)>) -> Params {
    Params::new(pairs).unwrap()
}

#[test]
fn every_listed_parameter_is_read_by_its_parser() {
    let mut problems = Vec::new();
    for a in Action::ALL {
        let row = spec::spec(*a);
        for p in row.params {
            let mut b = base(*a, Some(p));
            let given = sample(*a, p);
            let group: Vec<String> = row.params.iter().filter(|q| q.need == Need::OneOf).map(|q| concrete(q.name)).collect();
            if given.iter().any(|(k, _)| group.contains(k)) {
                // Only the one of its group that this parameter gives (or needs).
                b.retain(|(k, _)| !group.contains(k) || given.iter().any(|(g, _)| g == k));
            }
            if p.name == "SecurityGroupRuleId.N" {
                // Rules by id go without permissions.
                b.retain(|(k, _)| !k.starts_with("IpPermissions."));
            }
            let given = params(with(&b, given));
            match cloudbroker_ec2_api::spec::parse_input(*a, &given) {
                Ok(()) => {}
                Err(e) => problems.push(format!("{a:?} with {}: {} {}", p.name, e.code, e.message)),
            }
            if let Some(left) = given.unread().first() {
                problems.push(format!("{a:?} with {}: {left} left unread", p.name));
            }
        }
    }
    assert!(problems.is_empty(), "parameters the table lists that the parser does not take:\n{}", problems.join("\n"));
}

#[test]
fn no_listed_parameter_is_refused_as_not_honoured() {
    let mut problems = Vec::new();
    for a in Action::ALL {
        let row = spec::spec(*a);
        let mut names: Vec<&str> = row.params.iter().map(|p| p.name).collect();
        if row.pages.is_some() {
            names.extend(["MaxResults", "NextToken"]);
        }
        for name in names {
            // A plain parameter or a plain list (`X`, `X.N`) is the whole of
            // its name; a structured one (`X.N.Field`, `TagSpecification.N`
            // of one resource type) leaves its siblings to the refusal by name.
            let head = name.split('.').next().unwrap_or(name);
            let whole = name != TAG_SPECIFICATION && (name == head || name == format!("{head}.N"));
            if whole && accepted::documented(*a).contains(&head) {
                problems.push(format!("{a:?}: {name} is listed as honoured and as documented but not honoured (accepted.rs)"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn with_filter(a: Action, name: &str) -> Params {
    let mut b = base(a, None);
    b.push(("Filter.1.Name".into(), name.into()));
    b.push(("Filter.1.Value.1".into(), "x".into()));
    params(with(&[], b))
}

#[test]
fn listed_filters_are_accepted_and_others_refused() {
    let mut problems = Vec::new();
    for a in Action::ALL {
        let row = spec::spec(*a);
        let Some(f) = row.filters else {
            let e = spec::parse_input(*a, &with_filter(*a, "instance-id"));
            if e.is_ok() {
                problems.push(format!("{a:?} is listed without filters but takes Filter.N"));
            }
            continue;
        };
        let tags: &[&str] = match f.tags {
            TagFilters::No => &[],
            TagFilters::Key => &["tag:team"],
            TagFilters::All => &["tag:team", "tag-key", "tag-value"],
        };
        for name in f.names.iter().chain(tags) {
            if let Err(e) = spec::parse_input(*a, &with_filter(*a, name)) {
                problems.push(format!("{a:?}: the listed filter {name} is refused: {} {}", e.code, e.message));
            }
        }
        let refused: Vec<&str> = ["no-such-filter", "tag:team", "tag-key", "tag-value"].into_iter().filter(|n| !tags.contains(n)).collect();
        for name in refused {
            match spec::parse_input(*a, &with_filter(*a, name)) {
                Ok(()) => problems.push(format!("{a:?}: the unlisted filter {name} is accepted")),
                Err(e) if e.code == "InvalidParameterValue" && e.message == format!("The filter '{name}' is invalid") => {}
                Err(e) => problems.push(format!("{a:?}: the unlisted filter {name} is refused with {} {}", e.code, e.message)),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn listed_page_ranges_are_the_parsers() {
    let mut problems = Vec::new();
    for a in Action::ALL {
        let row = spec::spec(*a);
        let page = |n: i64| {
            let mut b = base(*a, None);
            b.push(("MaxResults".into(), n.to_string()));
            spec::parse_input(*a, &params(with(&[], b)))
        };
        match row.pages {
            Some((lo, hi)) => {
                for n in [lo, hi] {
                    if let Err(e) = page(n) {
                        problems.push(format!("{a:?}: MaxResults={n} is refused: {}", e.message));
                    }
                }
                for n in [lo - 1, hi + 1] {
                    if page(n).is_ok() {
                        problems.push(format!("{a:?}: MaxResults={n} is accepted"));
                    }
                }
                let mut b = base(*a, None);
                b.push(("NextToken".into(), String::new()));
                let given = params(with(&[], b));
                if spec::parse_input(*a, &given).is_err() || !given.unread().is_empty() {
                    problems.push(format!("{a:?}: NextToken is not read"));
                }
            }
            None => {
                if page(10).is_ok() {
                    problems.push(format!("{a:?} is listed without pages but takes MaxResults"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Parameters a parser once read and dropped are refused by name.
#[test]
fn nothing_read_is_dropped() {
    let p = |kv: &[(&str, &str)]| params(with(&[], kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
    let e = spec::parse_input(
        Action::DeleteKeyPair,
        &p(&[("KeyName", "k"), ("TagSpecification.1.ResourceType", "key-pair"), ("TagSpecification.1.Tag.1.Key", "a")]),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("UnknownParameter", "The parameter TagSpecification.1.ResourceType is not recognized")
    );
    let e = spec::parse_input(
        Action::ModifyImageAttribute,
        &p(&[("ImageId", "ami-1"), ("LaunchPermission.Add.1.UserId", "bob"), ("LaunchPermission.Add.2.OrganizationArn", "arn:x")]),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "UnsupportedOperation",
            "The parameter LaunchPermission.Add.2.OrganizationArn is not supported by this broker for ModifyImageAttribute"
        )
    );
    let e = spec::parse_input(Action::DescribeInstances, &p(&[("InstanceId.1", "i-0123456789abcdef0"), ("NextToken", "t")])).unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
}
