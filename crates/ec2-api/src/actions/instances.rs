//! Instances: `RunInstances`, `DescribeInstances`, `DescribeInstanceStatus`,
//! `Start/Stop/Reboot/TerminateInstances`. Describe calls answer from the
//! broker's records (kept fresh by the reconciler), never by calling the
//! cloud per request. A caller sees only their own VMs (admins too: the EC2
//! front acts as the signing user); another user's instance does not exist.
//! Terminated instances stay visible for [`TERMINATED_VISIBLE_SECS`].
//! RunInstances parses its parameters into one launch request and makes one
//! call: the core resolves `KeyName`, admits MinCount..MaxCount at once,
//! and decides every default. `DryRun`: RunInstances asks the core whether
//! the launch would be admitted now (nothing reserved); the state changes
//! check every instance.
//!
//! Leases: the reserved tag [`LEASE_TAG`] (`cloudbroker:lease` = `8h` or an
//! RFC 3339 time) on RunInstances asks for the VMs' lease and is not
//! recorded as a tag; an instance with a lease is described with the tags
//! [`LEASE_EXPIRES_TAG`] (its absolute expiry, RFC 3339) and
//! [`LEASE_ACTION_TAG`] (`stop` or `terminate`), made from its record.

use super::Ctx;
use crate::action::Action;
use crate::error::Ec2Error;
use crate::filter::{Filter, Values};
use crate::ids::{image_id, instance_id, reservation_id, shown, vm_id};
use crate::request::Params;
use crate::xml::Xml;
use base64::Engine;
use chrono::Utc;
use cloudbroker_core::domain::time::{rfc3339_string, Fraction};
use cloudbroker_core::domain::{ClientToken, ImageName, ImageRef, InstanceName, LeaseAsk, PageRequest, VmAction, VmStatus};
use cloudbroker_core::provisioning::{CountRange, InstanceType, LaunchRequest, LaunchTags, Vm, VmQuery, Volume};
use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

/// How long a terminated instance is still described (econe's
/// `terminated_instances_expiration_time`).
pub const TERMINATED_VISIBLE_SECS: i64 = 900;

/// RunInstances' tag asking for the VMs' lease (`8h`, or an RFC 3339 time).
pub const LEASE_TAG: &str = "cloudbroker:lease";
/// The tag DescribeInstances shows a leased instance's expiry in (RFC 3339, UTC).
pub const LEASE_EXPIRES_TAG: &str = "cloudbroker:lease-expires";
/// The tag DescribeInstances shows what the broker does at the expiry in (`stop`, `terminate`).
pub const LEASE_ACTION_TAG: &str = "cloudbroker:lease-action";

/// The tags a VM's lease is shown as: its expiry (as the JSON API writes
/// it) and its action; none without a lease.
pub fn lease_tags(vm: &Vm) -> Option<[(&'static str, String); 2]> {
    vm.lease
        .as_ref()
        .map(|l| [(LEASE_EXPIRES_TAG, rfc3339_string(&l.expires_at, Fraction::Auto)), (LEASE_ACTION_TAG, l.action.as_str().to_string())])
}

/// Whether `key` is one of the tags made from a VM's lease (a stored tag
/// by that name is not shown beside them).
fn is_lease_tag(key: &str) -> bool {
    key == LEASE_EXPIRES_TAG || key == LEASE_ACTION_TAG
}

/// Instances one RunInstances may ask for (the broker's launch limit).
pub const MAX_COUNT: i64 = cloudbroker_core::provisioning::MAX_COUNT as i64;

/// EC2's state code and name of a broker status.
pub fn state_of(s: VmStatus) -> (u8, &'static str) {
    match s {
        VmStatus::Requested | VmStatus::Pending | VmStatus::Held => (0, "pending"),
        VmStatus::Running => (16, "running"),
        VmStatus::ShuttingDown => (32, "shutting-down"),
        VmStatus::Terminated | VmStatus::Failed => (48, "terminated"),
        VmStatus::Stopping => (64, "stopping"),
        VmStatus::Stopped => (80, "stopped"),
    }
}

/// The `ImageId` an instance is described with: a raw cloud image id
/// (launched as given, where `images.allow.raw`) as it was given; a native
/// image's stable `ami-` id.
fn ami_of(vm: &Vm) -> String {
    if vm.image == vm.image_id {
        return vm.image.clone();
    }
    match ImageName::parse(&vm.image) {
        Ok(n) => image_id(n.as_str()),
        Err(_) => vm.image.clone(),
    }
}

fn visible(vm: &Vm) -> bool {
    vm.status.is_live() || (Utc::now() - vm.updated_at).num_seconds() < TERMINATED_VISIBLE_SECS
}

fn state_xml(x: &mut Xml, tag: &str, s: VmStatus) {
    let (code, name) = state_of(s);
    x.open(tag).leaf_display("code", code).leaf("name", name).close(tag);
}

/// The `ami-` ids of the images of one answer, each hashed once.
#[derive(Default)]
struct AmiIds<'a>(Vec<(&'a str, String)>);

impl<'a> AmiIds<'a> {
    fn of(&mut self, vm: &'a Vm) -> &str {
        let at = match self.0.iter().position(|(image, _)| *image == vm.image) {
            Some(at) => at,
            None => {
                self.0.push((vm.image.as_str(), ami_of(vm)));
                self.0.len() - 1
            }
        };
        &self.0[at].1
    }
}

/// Bytes an instance's XML takes, about (to size the answer once).
const INSTANCE_XML_BYTES: usize = 2048;

/// A volume attached to an instance, as its `blockDeviceMapping` shows it.
pub struct Device {
    pub device: String,
    pub volume: String,
    /// `attaching`, `attached`, `detaching`.
    pub state: String,
    pub since: chrono::DateTime<Utc>,
}

/// The attached volumes of each VM of `volumes`, by VM.
pub fn devices(volumes: Vec<Volume>) -> BTreeMap<String, Vec<Device>> {
    let mut out: BTreeMap<String, Vec<Device>> = BTreeMap::new();
    for v in volumes {
        if let Some(a) = v.attachment {
            out.entry(a.vm.to_string()).or_default().push(Device {
                device: a.device,
                volume: v.volume_id.to_string(),
                state: a.state,
                since: a.since,
            });
        }
    }
    out
}

fn instance_xml<'a>(x: &mut Xml, vm: &'a Vm, amis: &mut AmiIds<'a>, devices: &[Device]) {
    let id = vm.id.as_str();
    x.open("item").leaf_parts("instanceId", &["i-", id.strip_prefix("vm-").unwrap_or(id)]).leaf("imageId", amis.of(vm));
    state_xml(x, "instanceState", vm.status);
    x.leaf("privateDnsName", "")
        .leaf("dnsName", "")
        .leaf("reason", vm.error.as_deref().unwrap_or(""))
        .leaf_display("amiLaunchIndex", vm.launch_index)
        .leaf("instanceType", &vm.instance_type)
        .leaf_time("launchTime", &vm.created_at)
        .open("placement")
        .leaf_parts("availabilityZone", &[vm.instance.as_str(), "a"])
        .leaf("tenancy", "default")
        .close("placement")
        .open("monitoring")
        .leaf("state", "disabled")
        .close("monitoring")
        .opt("keyName", vm.key_name.as_deref())
        .opt("privateIpAddress", vm.private_ip.as_deref())
        .opt("ipAddress", vm.public_ip.as_deref())
        .opt("subnetId", vm.network.as_ref().map(|n| n.0.as_str()))
        .opt("vpcId", vm.network.as_ref().map(|n| n.1.as_str()))
        .leaf("architecture", "x86_64")
        .leaf("rootDeviceType", "ebs")
        .leaf("rootDeviceName", ROOT_DEVICE)
        .leaf("clientToken", vm.client_token.as_str());
    // The groups it was launched in (none recorded for VMs launched before).
    x.open("groupSet");
    for g in &vm.launch_details.groups {
        x.open("item").leaf("groupId", &g.id).leaf("groupName", &g.name).close("item");
    }
    x.close("groupSet");
    x.open("blockDeviceMapping");
    // The volumes its launch made (the root volume first), then those attached since.
    for d in &vm.launch_details.devices {
        x.open("item").leaf("deviceName", &d.device).open("ebs").leaf("volumeId", &d.volume_id).leaf("status", "attached");
        x.leaf_time("attachTime", &vm.created_at).leaf("deleteOnTermination", if d.delete_on_termination { "true" } else { "false" });
        x.close("ebs").close("item");
    }
    for d in devices.iter().filter(|d| !vm.launch_details.devices.iter().any(|l| l.volume_id == d.volume)) {
        x.open("item").leaf("deviceName", &d.device).open("ebs").leaf("volumeId", &d.volume).leaf("status", &d.state);
        x.leaf_time("attachTime", &d.since).leaf("deleteOnTermination", "false").close("ebs").close("item");
    }
    x.close("blockDeviceMapping");
    let name_tag = (!vm.name.is_empty() && vm.tags.get("Name").is_none()).then_some(("Name", vm.name.as_str()));
    let lease = lease_tags(vm);
    let lease_pairs = lease.iter().flatten().map(|(k, v)| (*k, v.as_str()));
    let stored = vm.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).filter(|(k, _)| lease.is_none() || !is_lease_tag(k));
    let mut tags = stored.chain(name_tag).chain(lease_pairs).peekable();
    if tags.peek().is_some() {
        x.open("tagSet");
        for (k, v) in tags {
            x.open("item").leaf("key", k).leaf("value", v).close("item");
        }
        x.close("tagSet");
    }
    x.close("item");
}

/// Reservations in first-seen order, each with its instances.
fn reservations_xml(x: &mut Xml, owner: &str, vms: &[Vm], devices: &BTreeMap<String, Vec<Device>>) {
    let mut order: Vec<&cloudbroker_core::domain::LaunchId> = Vec::new();
    let mut by_launch: BTreeMap<&str, Vec<&Vm>> = BTreeMap::new();
    for vm in vms {
        if !by_launch.contains_key(vm.launch_id.as_str()) {
            order.push(&vm.launch_id);
        }
        by_launch.entry(vm.launch_id.as_str()).or_default().push(vm);
    }
    x.reserve(vms.len() * INSTANCE_XML_BYTES);
    let mut amis = AmiIds::default();
    x.open("reservationSet");
    for launch in order {
        x.open("item").leaf("reservationId", &reservation_id(launch)).leaf("ownerId", owner).open("groupSet").close("groupSet");
        x.open("instancesSet");
        for vm in by_launch.get(launch.as_str()).map(Vec::as_slice).unwrap_or_default() {
            instance_xml(x, vm, &mut amis, devices.get(vm.id.as_str()).map(Vec::as_slice).unwrap_or_default());
        }
        x.close("instancesSet").close("item");
    }
    x.close("reservationSet");
}

/// The filters DescribeInstances takes (besides `tag:<key>`, `tag-key`
/// and `tag-value`); any other name is refused, as EC2 does.
pub const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "ip-address",
    "private-ip-address",
    "availability-zone",
    "key-name",
    "launch-time",
    "reservation-id",
    "client-token",
    "ami-launch-index",
    "architecture",
    "root-device-type",
    "root-device-name",
    "tenancy",
    "monitoring-state",
    "owner-id",
    "subnet-id",
    "vpc-id",
    "instance.group-id",
    "instance.group-name",
    "group-id",
    "group-name",
    "block-device-mapping.device-name",
    "block-device-mapping.volume-id",
    "block-device-mapping.delete-on-termination",
];

/// DescribeInstances' filters, checked and compiled once.
fn filters(params: &Params) -> Result<(Vec<Filter>, usize), Ec2Error> {
    let parsed = crate::filter::parse(params)?;
    crate::filter::check_names(&parsed, INSTANCE_FILTERS, true)?;
    let cost = crate::filter::cost(&parsed);
    Ok((parsed, cost))
}

/// The root device every instance is described with (the broker's clouds
/// boot from an EBS-like root volume named so).
pub const ROOT_DEVICE: &str = "/dev/sda1";

/// Whether a launch-time filter value equals `t` as a time (EC2 also takes
/// the time written another way than its answer writes it).
fn same_time(values: &Values, t: &chrono::DateTime<Utc>) -> bool {
    values.raw().iter().any(|v| chrono::DateTime::parse_from_rfc3339(v).is_ok_and(|v| v == *t))
}

/// The tags a VM is described with: the stored ones (a lease's shown from
/// the lease), the `Name` its name gives where no tag names it, and the lease's.
fn shown_tags(vm: &Vm) -> Vec<(&str, std::borrow::Cow<'_, str>)> {
    let lease = lease_tags(vm);
    let mut out: Vec<(&str, std::borrow::Cow<'_, str>)> = vm
        .tags
        .iter()
        .filter(|(k, _)| lease.is_none() || !is_lease_tag(k))
        .map(|(k, v)| (k.as_str(), std::borrow::Cow::Borrowed(v.as_str())))
        .collect();
    if !vm.name.is_empty() && vm.tags.get("Name").is_none() {
        out.push(("Name", std::borrow::Cow::Borrowed(vm.name.as_str())));
    }
    out.extend(lease.into_iter().flatten().map(|(k, v)| (k, std::borrow::Cow::Owned(v))));
    out
}

/// Whether VM `vm` passes every filter; `attached` are the volumes attached
/// to it since its launch (the `block-device-mapping.*` filters read them
/// with those its launch made).
fn matches(vm: &Vm, filters: &[Filter], owner: &str, attached: &[Device]) -> bool {
    filters.iter().all(|f| {
        if f.name.starts_with("tag") {
            let tags = shown_tags(vm);
            if let Some(m) = f.tags(tags.iter().map(|(k, v)| (*k, v.as_ref()))) {
                return m;
            }
        }
        let (code, state) = state_of(vm.status);
        let v = &f.values;
        match f.name.as_str() {
            "instance-id" => v.any(&instance_id(&vm.id)),
            "instance-state-name" => v.any(state),
            "instance-state-code" => v.any(&code.to_string()),
            "instance-type" => v.any(&vm.instance_type),
            "image-id" => v.any(&ami_of(vm)),
            "ip-address" => f.any(vm.public_ip.as_deref()),
            "private-ip-address" => f.any(vm.private_ip.as_deref()),
            "subnet-id" => f.any(vm.network.as_ref().map(|n| n.0.as_str())),
            "vpc-id" => f.any(vm.network.as_ref().map(|n| n.1.as_str())),
            "availability-zone" => v.any(&format!("{}a", vm.instance)),
            "key-name" => f.any(vm.key_name.as_deref()),
            "launch-time" => v.any(&rfc3339_string(&vm.created_at, Fraction::Millis)) || same_time(v, &vm.created_at),
            "reservation-id" => v.any(&reservation_id(&vm.launch_id)),
            "client-token" => v.any(vm.client_token.as_str()),
            "ami-launch-index" => v.any(&vm.launch_index.to_string()),
            "architecture" => v.any("x86_64"),
            "root-device-type" => v.any("ebs"),
            "root-device-name" => v.any(ROOT_DEVICE),
            "tenancy" => v.any("default"),
            "monitoring-state" => v.any("disabled"),
            "owner-id" => v.any(owner),
            "instance.group-id" | "group-id" => vm.launch_details.groups.iter().any(|g| v.any(&g.id)),
            "instance.group-name" | "group-name" => vm.launch_details.groups.iter().any(|g| v.any(&g.name)),
            "block-device-mapping.device-name" => {
                vm.launch_details.devices.iter().any(|d| v.any(&d.device)) || attached.iter().any(|d| v.any(&d.device))
            }
            "block-device-mapping.volume-id" => {
                vm.launch_details.devices.iter().any(|d| v.any(&d.volume_id)) || attached.iter().any(|d| v.any(&d.volume))
            }
            "block-device-mapping.delete-on-termination" => {
                vm.launch_details.devices.iter().any(|d| v.any(if d.delete_on_termination { "true" } else { "false" }))
                    || (!attached.is_empty() && v.any("false"))
            }
            _ => false,
        }
    })
}

/// The VMs of the caller's project (its access key's) named by
/// `InstanceId.N` on this region; any unknown id fails the whole request,
/// as in EC2.
async fn named(ctx: &Ctx<'_>, ids: &[String]) -> Result<Vec<Vm>, Ec2Error> {
    let instance = ctx.instance()?;
    let mut out = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        let vm_id = vm_id(id)?;
        match ctx.broker.provisioning.get(&ctx.caller.actor, &vm_id).await {
            Ok(vm) if vm.instance == instance && vm.project == ctx.caller.actor.project && visible(&vm) => out.push(vm),
            Ok(_) | Err(ServiceError::NotFound(_)) => missing.push(shown(id)),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        return Err(Ec2Error::client("InvalidInstanceID.NotFound", format!("The instance IDs '{}' do not exist", missing.join(", "))));
    }
    Ok(out)
}

fn own_query(ctx: &Ctx<'_>) -> Result<VmQuery, Ec2Error> {
    Ok(VmQuery { project: Some(ctx.caller.actor.project.clone()), instance: Some(ctx.instance()?), ..VmQuery::default() })
}

/// `InstanceId.N` as sent: each is parsed (and looked up) only once the
/// region is known, EC2's order.
fn instance_ids(params: &Params) -> Result<Vec<String>, Ec2Error> {
    params.list("InstanceId")
}

/// `DescribeInstances`'s parameters.
pub struct DescribeInstancesInput {
    pub ids: Vec<String>,
    filters: Vec<Filter>,
    /// The filters' cost (values × pattern characters).
    cost: usize,
    /// `MaxResults`: one page of at most this many, with a `nextToken`.
    pub max: Option<i64>,
    /// Without ids, the first page asked for (`MaxResults`, `NextToken`).
    pub first_page: Option<PageRequest>,
}

impl DescribeInstancesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let ids = instance_ids(params)?;
        let (filters, cost) = filters(params)?;
        let max = params.int("MaxResults", 5..=1000)?;
        if max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        let cursor = params.get("NextToken").filter(|t| !t.is_empty());
        if cursor.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter nextToken",
            ));
        }
        let first_page = if ids.is_empty() { Some(page(max, cursor)?) } else { None };
        Ok(Self { ids, filters, cost, max, first_page })
    }
}

/// A page of `max` (1000 by default) VMs after `cursor`.
fn page(max: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, Ec2Error> {
    let limit = max.unwrap_or(1000).to_string();
    PageRequest::parse(Some(&limit), cursor).map_err(|_| Ec2Error::invalid("The NextToken is not one this broker gave out"))
}

/// The filters DescribeInstanceStatus takes; any other name is refused.
pub const STATUS_FILTERS: &[&str] = &[
    "availability-zone",
    "instance-state-name",
    "instance-state-code",
    "instance-status.status",
    "instance-status.reachability",
    "system-status.status",
    "system-status.reachability",
];

/// `DescribeInstanceStatus`'s parameters.
pub struct DescribeInstanceStatusInput {
    pub ids: Vec<String>,
    /// `IncludeAllInstances=true`: not only the running ones.
    pub include_all: bool,
    pub filters: Vec<Filter>,
    /// `MaxResults` (5..1000, not with ids) and `NextToken`.
    pub page: crate::filter::Page,
}

impl DescribeInstanceStatusInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let ids = instance_ids(params)?;
        let include_all = params.get("IncludeAllInstances").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, STATUS_FILTERS, false)?;
        let page = crate::filter::Page::parse(params, 5..=1000)?;
        if page.max.is_some() && !ids.is_empty() {
            return Err(Ec2Error::client(
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        Ok(Self { ids, include_all, filters, page })
    }
}

/// An instance's status checks: `ok` and `passed` while running, else
/// `not-applicable` (the broker has no failing checks to report).
fn checks_of(vm: &Vm) -> (&'static str, &'static str) {
    if vm.status == VmStatus::Running {
        ("ok", "passed")
    } else {
        ("not-applicable", "not-applicable")
    }
}

fn status_matches(vm: &Vm, filters: &[Filter]) -> bool {
    let (code, state) = state_of(vm.status);
    let (status, reach) = checks_of(vm);
    filters.iter().all(|f| match f.name.as_str() {
        "availability-zone" => f.values.any(&format!("{}a", vm.instance)),
        "instance-state-name" => f.values.any(state),
        "instance-state-code" => f.values.any(&code.to_string()),
        "instance-status.status" | "system-status.status" => f.values.any(status),
        "instance-status.reachability" | "system-status.reachability" => f.values.any(reach),
        _ => false,
    })
}

/// `RunInstances`'s parameters, everything but the region and the image's
/// resolution (a native image's `ami-` id, else a cloud image id).
pub struct RunInstancesInput {
    /// `ImageId` as sent.
    pub image: String,
    /// `ImageId` as a cloud image id (used when no native image has that `ami-` id;
    /// a native image's `ami-` id always parses as one).
    pub cloud_image: ImageRef,
    pub count: CountRange,
    pub instance_type: Option<InstanceType>,
    pub user_data: Option<String>,
    pub key_name: Option<String>,
    pub client_token: Option<ClientToken>,
    pub name: String,
    pub tags: LaunchTags,
    /// The lease asked for by the tag [`LEASE_TAG`].
    pub lease: Option<LeaseAsk>,
    /// Zone, block devices, shutdown behaviour.
    pub options: super::launch_options::LaunchOptions,
    /// `SecurityGroup.N` (names) and `SecurityGroupId.N` (ids).
    pub security_groups: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// `SubnetId`: the subnet to launch into.
    pub subnet_id: Option<String>,
    /// `DisableApiTermination`: the broker's termination protection on every VM.
    pub disable_api_termination: bool,
}

impl RunInstancesInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let image = params.required("ImageId")?.to_string();
        let min = params.int("MinCount", 1..=MAX_COUNT)?.ok_or_else(|| Ec2Error::missing("MinCount"))?;
        let max = params.int("MaxCount", 1..=MAX_COUNT)?.ok_or_else(|| Ec2Error::missing("MaxCount"))?;
        if min > max {
            return Err(Ec2Error::invalid(format!("MinCount ({min}) is greater than MaxCount ({max})")));
        }
        let cloud_image = ImageRef::parse(&image).map_err(|e| Ec2Error::client("InvalidAMIID.Malformed", e.message))?;
        // Checked against MAX_COUNT above.
        let count = CountRange::between(min as u32, max as u32);
        let instance_type = match params.get("InstanceType").filter(|t| !t.is_empty()) {
            Some(t) => Some(InstanceType::parse(t).map_err(ServiceError::from)?),
            None => None,
        };
        let user_data = match params.get("UserData").filter(|u| !u.is_empty()) {
            Some(u) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(u.trim())
                    .map_err(|_| Ec2Error::invalid("UserData is not valid base64"))?;
                Some(String::from_utf8(raw).map_err(|_| Ec2Error::invalid("UserData must decode to UTF-8 text"))?)
            }
            None => None,
        };
        let key_name = params.get("KeyName").filter(|k| !k.is_empty()).map(str::to_string);
        let client_token = match params.get("ClientToken").filter(|t| !t.is_empty()) {
            Some(t) => Some(ClientToken::parse(t).map_err(|e| Ec2Error::invalid(e.message))?),
            None => None,
        };
        let (name, mut tags) = LaunchTags::classify(params.tag_specifications("instance")?).map_err(|e| Ec2Error::invalid(e.message))?;
        // The Name tag names the VMs and is kept as given, on every one of them.
        tags.name_tag = name.clone();
        // The lease's tag asks for a lease; it is not kept as a tag.
        let lease = match tags.reserved.remove(LEASE_TAG) {
            Some(v) => Some(LeaseAsk::parse(&v).map_err(|e| Ec2Error::invalid(format!("tag {LEASE_TAG}: {}", e.message)))?),
            None => None,
        };
        Ok(Self {
            image,
            cloud_image,
            count,
            instance_type,
            user_data,
            key_name,
            client_token,
            name: name.unwrap_or_default(),
            tags,
            lease,
            options: super::launch_options::LaunchOptions::parse(params)?,
            security_groups: super::security_groups::group_names(params, "SecurityGroup")?,
            security_group_ids: super::security_groups::group_ids(params, "SecurityGroupId")?,
            subnet_id: params.get("SubnetId").filter(|s| !s.is_empty()).map(super::vpcs::subnet_param).transpose()?,
            disable_api_termination: super::launch_options::boolean(params, "DisableApiTermination")?.unwrap_or(false),
        })
    }

    /// The one launch request, on `instance`, of `image`.
    fn into_request(self, instance: InstanceName, image: ImageRef) -> LaunchRequest {
        let mut req = LaunchRequest::new(instance, image);
        req.count = self.count;
        req.instance_type = self.instance_type;
        req.user_data = self.user_data;
        req.key_name = self.key_name;
        req.client_token = self.client_token;
        req.name = self.name;
        req.tags = self.tags;
        req.lease = self.lease;
        self.options.apply(&mut req);
        req.security_groups = self.security_groups;
        req.security_group_ids = self.security_group_ids;
        req.subnet_id = self.subnet_id;
        req.termination_protection = self.disable_api_termination;
        req
    }
}

/// `Start/Stop/Reboot/TerminateInstances`' parameters: at least one instance.
pub struct ChangeStateInput {
    pub ids: Vec<String>,
}

impl ChangeStateInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let ids = instance_ids(params)?;
        if ids.is_empty() {
            return Err(Ec2Error::missing("InstanceId.1"));
        }
        Ok(Self { ids })
    }
}

pub async fn describe_instances(ctx: &Ctx<'_>, input: DescribeInstancesInput) -> Result<String, Ec2Error> {
    let DescribeInstancesInput { ids, filters, cost, max, first_page } = input;
    let mut next = None;
    let mut vms: Vec<Vm> = match first_page {
        None => named(ctx, &ids).await?,
        Some(mut page) => {
            let mut out = Vec::new();
            loop {
                let since = Utc::now() - chrono::Duration::seconds(TERMINATED_VISIBLE_SECS);
                let p = ctx.broker.provisioning.list_recent(&ctx.caller.actor, own_query(ctx)?, page, Some(since)).await?;
                if out.is_empty() {
                    // The first page (usually the only one): kept in place.
                    out = p.items;
                    out.retain(visible);
                } else {
                    out.extend(p.items.into_iter().filter(visible));
                }
                match (p.next_cursor, max) {
                    (Some(c), Some(_)) => {
                        next = Some(c);
                        break;
                    }
                    (Some(c), None) => page = self::page(max, Some(&c))?,
                    (None, _) => break,
                }
            }
            out
        }
    };
    ctx.broker.provisioning.fill_page_details(&mut vms).await?;
    // Tag filters read every tag of a VM: at most MAX_TAGS plus the client's.
    let cost = cost.saturating_mul(1 + cloudbroker_core::domain::MAX_TAGS);
    let owner = ctx.caller.actor.name.to_string();
    let devices = std::sync::Arc::new(if vms.is_empty() {
        BTreeMap::new()
    } else {
        devices(ctx.broker.provisioning.volumes(&ctx.caller.actor, &ctx.instance()?).await?)
    });
    let attached = devices.clone();
    let vms: Vec<Vm> = crate::filter::retain(vms, cost, move |vm| {
        matches(vm, &filters, &owner, attached.get(vm.id.as_str()).map(Vec::as_slice).unwrap_or_default())
    })
    .await?;
    let (mut x, root) = ctx.doc("DescribeInstances");
    reservations_xml(&mut x, ctx.caller.actor.name.as_str(), &vms, &devices);
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

pub async fn describe_instance_status(ctx: &Ctx<'_>, input: DescribeInstanceStatusInput) -> Result<String, Ec2Error> {
    let DescribeInstanceStatusInput { ids, include_all: all, filters, page } = input;
    let vms = if ids.is_empty() {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = PageRequest::parse(Some("1000"), cursor.as_deref()).map_err(|e| Ec2Error::invalid(e.message))?;
            let p = ctx.broker.provisioning.list(&ctx.caller.actor, own_query(ctx)?, page).await?;
            out.extend(p.items.into_iter().filter(|v| v.status.is_live()));
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out
    } else {
        named(ctx, &ids).await?
    };
    let vms: Vec<Vm> = vms.into_iter().filter(|v| (all || v.status == VmStatus::Running) && status_matches(v, &filters)).collect();
    let (vms, next) = page.cut(vms);
    let (mut x, root) = ctx.doc("DescribeInstanceStatus");
    x.open("instanceStatusSet");
    for vm in &vms {
        let (ok, reach) = checks_of(vm);
        x.open("item").leaf("instanceId", &instance_id(&vm.id)).leaf("availabilityZone", &format!("{}a", vm.instance));
        state_xml(&mut x, "instanceState", vm.status);
        for tag in ["systemStatus", "instanceStatus"] {
            x.open(tag).leaf("status", ok).open("details").open("item").leaf("name", "reachability").leaf("status", reach);
            x.close("item").close("details").close(tag);
        }
        x.close("item");
    }
    x.close("instanceStatusSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

pub async fn run_instances(ctx: &Ctx<'_>, instance: InstanceName, input: RunInstancesInput) -> Result<String, Ec2Error> {
    // A native image the caller may launch (the rule of `Images::launchable_by`,
    // without resolving every image), under its ami- id; else a raw cloud image id.
    let native = ctx
        .broker
        .images
        .catalogue()
        .await?
        .images()
        .iter()
        .find(|i| i.launchable_by(&ctx.caller.actor) && image_id(i.name.as_str()) == input.image)
        .map(|i| i.name.clone());
    let image_ref = match native {
        Some(n) => ImageRef::native(&n),
        None => input.cloud_image.clone(),
    };
    let req = input.into_request(instance, image_ref);
    if ctx.dry_run {
        ctx.broker.provisioning.check_launch(&ctx.caller.actor, req).await?;
        return Err(Ec2Error::dry_run());
    }
    // A launch's only conflict: its ClientToken was first used for a launch
    // in another project (of the same user), which EC2 calls a mismatch.
    let outcome = ctx.broker.provisioning.launch(&ctx.caller.actor, req).await.map_err(|e| match e {
        ServiceError::Conflict(m) => Ec2Error::client("IdempotentParameterMismatch", m),
        e => e.into(),
    })?;
    let (mut x, root) = ctx.doc("RunInstances");
    let launch = outcome.vms.first().map(|v| reservation_id(&v.launch_id)).unwrap_or_default();
    x.leaf("reservationId", &launch).leaf("ownerId", ctx.caller.actor.name.as_str()).open("groupSet").close("groupSet");
    x.open("instancesSet");
    let mut amis = AmiIds::default();
    let mut shown = outcome.vms.clone();
    ctx.broker.provisioning.fill_page_details(&mut shown).await?;
    for vm in &shown {
        instance_xml(&mut x, vm, &mut amis, &[]);
    }
    x.close("instancesSet");
    Ok(x.finish(&root))
}

/// Start, stop, reboot or terminate: every id is checked before any acts.
/// `action` names the answer (`StartInstances`, ...).
pub async fn change_state(ctx: &Ctx<'_>, action: Action, vm_action: VmAction, input: ChangeStateInput) -> Result<String, Ec2Error> {
    let vms = named(ctx, &input.ids).await?;
    if ctx.dry_run {
        for vm in &vms {
            ctx.broker.provisioning.check_action(&ctx.caller.actor, &vm.id, vm_action).await?;
        }
        return Err(Ec2Error::dry_run());
    }
    let mut changes = Vec::with_capacity(vms.len());
    for vm in vms {
        let after = ctx.broker.provisioning.action(&ctx.caller.actor, &vm.id, vm_action).await?;
        changes.push((vm, after.status));
    }
    let (mut x, root) = ctx.doc(action.name());
    if vm_action == VmAction::Reboot {
        x.leaf("return", "true");
        return Ok(x.finish(&root));
    }
    x.open("instancesSet");
    for (vm, now) in changes {
        x.open("item").leaf("instanceId", &instance_id(&vm.id));
        state_xml(&mut x, "currentState", now);
        state_xml(&mut x, "previousState", vm.status);
        x.close("item");
    }
    x.close("instancesSet");
    Ok(x.finish(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_are_ec2s() {
        assert_eq!(state_of(VmStatus::Running), (16, "running"));
        assert_eq!(state_of(VmStatus::Stopped), (80, "stopped"));
        assert_eq!(state_of(VmStatus::Requested), (0, "pending"));
        assert_eq!(state_of(VmStatus::Failed), (48, "terminated"));
        assert_eq!(state_of(VmStatus::ShuttingDown).0, 32);
        assert_eq!(state_of(VmStatus::Stopping).0, 64);
    }
}
