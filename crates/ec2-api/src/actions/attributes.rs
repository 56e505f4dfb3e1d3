//! Instance attributes, console output and instance type offerings:
//! `DescribeInstanceAttribute`, `ModifyInstanceAttribute`,
//! `GetConsoleOutput`, `DescribeInstanceTypeOfferings`.
//!
//! The attributes honoured are `instanceType` and `userData` (while
//! stopped, else `IncorrectInstanceState`), `disableApiTermination` (kept
//! by the broker: a protected instance's TerminateInstances answers
//! `OperationNotPermitted`), `instanceInitiatedShutdownBehavior` and
//! `sourceDestCheck`. Every other attribute EC2 knows is refused with
//! `UnsupportedOperation` naming it; a name EC2 does not know with
//! `InvalidParameterValue`. ModifyInstanceAttribute takes one attribute per
//! call (`Attribute`+`Value`, or one `<Attribute>.Value`), as EC2 does.
//! Offerings are the region's instance types (as DescribeInstanceTypes
//! lists them) in its one zone.

use super::Ctx;
use crate::error::Ec2Error;
use crate::filter::{Filter, Page};
use crate::ids::{instance_id, shown, vm_id};
use crate::request::Params;
use base64::Engine;
use cloudbroker_connector_api::{AttributeValue, InstanceAttribute};
use cloudbroker_core::domain::VmId;
use cloudbroker_core::provisioning::{VmAttribute, VmAttributeValue};
use cloudbroker_core::ServiceError;

/// The attributes EC2 knows that this broker does not honour.
pub const UNSUPPORTED_ATTRIBUTES: &[&str] = &[
    "kernel",
    "ramdisk",
    "rootDeviceName",
    "blockDeviceMapping",
    "productCodes",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "enclaveOptions",
    "disableApiStop",
];

/// The `<Name>.Value` parameters of ModifyInstanceAttribute, with the
/// attribute each sets (`None`: EC2 knows it, the broker does not honour it).
const MODIFY_PARAMS: &[(&str, Option<&str>)] = &[
    ("InstanceType", Some("instanceType")),
    ("UserData", Some("userData")),
    ("DisableApiTermination", Some("disableApiTermination")),
    ("InstanceInitiatedShutdownBehavior", Some("instanceInitiatedShutdownBehavior")),
    ("SourceDestCheck", Some("sourceDestCheck")),
    ("Kernel", None),
    ("Ramdisk", None),
    ("EbsOptimized", None),
    ("SriovNetSupport", None),
    ("EnaSupport", None),
    ("DisableApiStop", None),
];

/// The filters DescribeInstanceTypeOfferings takes.
pub const OFFERING_FILTERS: &[&str] = &["location", "instance-type"];

/// An attribute name as sent: honoured, or refused with EC2's code.
fn attribute(name: &str) -> Result<VmAttribute, Ec2Error> {
    if let Some(a) = VmAttribute::parse(name) {
        return Ok(a);
    }
    if UNSUPPORTED_ATTRIBUTES.contains(&name) {
        return Err(Ec2Error::client("UnsupportedOperation", format!("The instance attribute '{name}' is not supported by this broker")));
    }
    Err(Ec2Error::invalid(format!("Value ({}) for parameter attribute is invalid. Unknown attribute.", shown(name))))
}

fn boolean(name: &str, v: &str) -> Result<bool, Ec2Error> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Ec2Error::invalid(format!("Value ({}) for parameter {name} is invalid: true or false", shown(v)))),
    }
}

/// The value of `attribute` as sent (`raw`; user data base64).
fn value_of(attribute: VmAttribute, raw: &str) -> Result<VmAttributeValue, Ec2Error> {
    Ok(match attribute {
        VmAttribute::DisableApiTermination => VmAttributeValue::DisableApiTermination(boolean("disableApiTermination", raw)?),
        VmAttribute::Cloud(InstanceAttribute::SourceDestCheck) => {
            VmAttributeValue::Cloud(AttributeValue::SourceDestCheck(boolean("sourceDestCheck", raw)?))
        }
        VmAttribute::Cloud(InstanceAttribute::InstanceType) => {
            if raw.is_empty() {
                return Err(Ec2Error::invalid("Value () for parameter instanceType is invalid"));
            }
            VmAttributeValue::Cloud(AttributeValue::InstanceType(raw.to_string()))
        }
        VmAttribute::Cloud(InstanceAttribute::InstanceInitiatedShutdownBehavior) => {
            if !cloudbroker_connector_api::instance_attrs::SHUTDOWN_BEHAVIORS.contains(&raw) {
                return Err(Ec2Error::invalid(format!(
                    "Value ({}) for parameter instanceInitiatedShutdownBehavior is invalid. Allowed values are 'stop' and 'terminate'.",
                    shown(raw)
                )));
            }
            VmAttributeValue::Cloud(AttributeValue::InstanceInitiatedShutdownBehavior(raw.to_string()))
        }
        VmAttribute::Cloud(InstanceAttribute::UserData) => {
            let text = if raw.trim().is_empty() {
                None
            } else {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw.trim())
                    .map_err(|_| Ec2Error::invalid("Value for parameter userData is invalid: not valid base64"))?;
                Some(
                    String::from_utf8(bytes)
                        .map_err(|_| Ec2Error::invalid("Value for parameter userData is invalid: must decode to UTF-8 text"))?,
                )
            };
            VmAttributeValue::Cloud(AttributeValue::UserData(text))
        }
    })
}

/// The instance named by `InstanceId` (required).
fn instance_param(params: &Params) -> Result<VmId, Ec2Error> {
    Ok(vm_id(params.required("InstanceId")?)?)
}

/// `DescribeInstanceAttribute`'s parameters.
pub struct DescribeInstanceAttributeInput {
    pub vm: VmId,
    pub attribute: VmAttribute,
}

impl DescribeInstanceAttributeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let vm = instance_param(params)?;
        let attribute = attribute(params.required("Attribute")?)?;
        Ok(Self { vm, attribute })
    }
}

/// `ModifyInstanceAttribute`'s parameters: one attribute and its value.
pub struct ModifyInstanceAttributeInput {
    pub vm: VmId,
    pub value: VmAttributeValue,
}

impl ModifyInstanceAttributeInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let vm = instance_param(params)?;
        let mut given: Vec<(VmAttribute, String)> = Vec::new();
        if let Some(name) = params.get("Attribute") {
            let a = attribute(name)?;
            let raw = params.get("Value").ok_or_else(|| Ec2Error::missing("Value"))?;
            given.push((a, raw.to_string()));
        }
        for (param, attr) in MODIFY_PARAMS {
            let Some(raw) = params.get(&format!("{param}.Value")) else { continue };
            match attr {
                Some(name) => given.push((attribute(name)?, raw.to_string())),
                None => {
                    return Err(Ec2Error::client(
                        "UnsupportedOperation",
                        format!("The instance attribute '{param}' is not supported by this broker"),
                    ))
                }
            }
        }
        for refused in ["GroupId", "BlockDeviceMapping"] {
            if !params.names_under(refused).is_empty() {
                return Err(Ec2Error::client(
                    "UnsupportedOperation",
                    format!("The instance attribute '{refused}' is not supported by this broker"),
                ));
            }
        }
        match given.as_slice() {
            [] => Err(Ec2Error::missing("Attribute")),
            [(a, raw)] => Ok(Self { vm, value: value_of(*a, raw)? }),
            _ => Err(Ec2Error::client("InvalidParameterCombination", "Only one attribute can be modified at a time")),
        }
    }
}

/// `GetConsoleOutput`'s parameters (`Latest`: the sandbox and the clouds
/// behind answer their latest output anyway).
pub struct GetConsoleOutputInput {
    pub vm: VmId,
}

impl GetConsoleOutputInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let vm = instance_param(params)?;
        if let Some(l) = params.get("Latest") {
            boolean("Latest", l)?;
        }
        Ok(Self { vm })
    }
}

/// `DescribeInstanceTypeOfferings`' parameters.
pub struct DescribeInstanceTypeOfferingsInput {
    /// `region` (the default), `availability-zone` or `availability-zone-id`.
    pub location_type: String,
    pub filters: Vec<Filter>,
    pub page: Page,
}

impl DescribeInstanceTypeOfferingsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let location_type = params.get("LocationType").unwrap_or("region").to_string();
        if !["region", "availability-zone", "availability-zone-id"].contains(&location_type.as_str()) {
            return Err(Ec2Error::invalid(format!(
                "Value ({}) for parameter locationType is invalid. Valid values: region, availability-zone, availability-zone-id",
                shown(&location_type)
            )));
        }
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, OFFERING_FILTERS, false)?;
        let page = Page::parse(params, 5..=1000)?;
        Ok(Self { location_type, filters, page })
    }
}

/// A VM of the caller's project on this region (another's does not exist).
async fn own_vm(ctx: &Ctx<'_>, id: &VmId) -> Result<cloudbroker_core::provisioning::Vm, Ec2Error> {
    let instance = ctx.instance()?;
    let not_found = || Ec2Error::client("InvalidInstanceID.NotFound", format!("The instance ID '{}' does not exist", instance_id(id)));
    match ctx.broker.provisioning.get(&ctx.caller.actor, id).await {
        Ok(vm) if vm.instance == instance && vm.project == ctx.caller.actor.project => Ok(vm),
        Ok(_) | Err(ServiceError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

pub async fn describe_instance_attribute(ctx: &Ctx<'_>, input: DescribeInstanceAttributeInput) -> Result<String, Ec2Error> {
    let vm = own_vm(ctx, &input.vm).await?;
    let value = ctx.broker.provisioning.vm_attribute(&ctx.caller.actor, &vm.id, input.attribute).await?;
    let (mut x, root) = ctx.doc("DescribeInstanceAttribute");
    x.leaf("instanceId", &instance_id(&vm.id));
    let name = input.attribute.as_str();
    match value {
        VmAttributeValue::DisableApiTermination(b) | VmAttributeValue::Cloud(AttributeValue::SourceDestCheck(b)) => {
            x.open(name).leaf("value", if b { "true" } else { "false" }).close(name);
        }
        VmAttributeValue::Cloud(AttributeValue::InstanceType(t))
        | VmAttributeValue::Cloud(AttributeValue::InstanceInitiatedShutdownBehavior(t)) => {
            x.open(name).leaf("value", &t).close(name);
        }
        VmAttributeValue::Cloud(AttributeValue::UserData(u)) => {
            x.open(name);
            if let Some(u) = u {
                x.leaf("value", &base64::engine::general_purpose::STANDARD.encode(u.as_bytes()));
            }
            x.close(name);
        }
    }
    Ok(x.finish(&root))
}

pub async fn modify_instance_attribute(ctx: &Ctx<'_>, input: ModifyInstanceAttributeInput) -> Result<String, Ec2Error> {
    let vm = own_vm(ctx, &input.vm).await?;
    if ctx.dry_run {
        ctx.broker.provisioning.check_modify_vm_attribute(&ctx.caller.actor, &vm.id, &input.value).await?;
        return Err(Ec2Error::dry_run());
    }
    ctx.broker.provisioning.modify_vm_attribute(&ctx.caller.actor, &vm.id, &input.value).await?;
    let (mut x, root) = ctx.doc("ModifyInstanceAttribute");
    x.leaf("return", "true");
    Ok(x.finish(&root))
}

pub async fn get_console_output(ctx: &Ctx<'_>, input: GetConsoleOutputInput) -> Result<String, Ec2Error> {
    let vm = own_vm(ctx, &input.vm).await?;
    let out = ctx.broker.provisioning.console_output(&ctx.caller.actor, &vm.id).await?;
    let (mut x, root) = ctx.doc("GetConsoleOutput");
    x.leaf("instanceId", &instance_id(&vm.id));
    let at = out.timestamp.unwrap_or_else(chrono::Utc::now);
    x.leaf_time("timestamp", &at);
    if let Some(text) = out.output {
        x.leaf("output", &base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
    }
    Ok(x.finish(&root))
}

pub async fn describe_instance_type_offerings(
    ctx: &Ctx<'_>,
    instance: cloudbroker_core::domain::InstanceName,
    input: DescribeInstanceTypeOfferingsInput,
) -> Result<String, Ec2Error> {
    let DescribeInstanceTypeOfferingsInput { location_type, filters, page } = input;
    let location = match location_type.as_str() {
        "region" => instance.to_string(),
        "availability-zone" => format!("{instance}a"),
        _ => super::regions::zone_id(instance.as_str()),
    };
    let types = ctx.broker.provisioning.instance_types(&ctx.caller.actor, &instance).await?;
    let kept: Vec<_> = types
        .iter()
        .filter(|t| {
            filters.iter().all(|f| match f.name.as_str() {
                "location" => f.values.any(&location),
                _ => f.values.any(&t.name),
            })
        })
        .collect();
    let (kept, next) = page.cut(kept);
    let (mut x, root) = ctx.doc("DescribeInstanceTypeOfferings");
    x.open("instanceTypeOfferingSet");
    for t in kept {
        x.open("item").leaf("instanceType", &t.name).leaf("locationType", &location_type).leaf("location", &location).close("item");
    }
    x.close("instanceTypeOfferingSet");
    x.opt("nextToken", next.as_deref());
    Ok(x.finish(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    fn code<T>(r: Result<T, Ec2Error>) -> String {
        r.err().map(|e| e.code).unwrap_or_default()
    }

    #[test]
    fn modify_takes_one_honoured_attribute() {
        let id = "i-0123456789abcdef";
        let m = ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("InstanceType.Value", "m5.large")])).unwrap();
        assert_eq!(m.value, VmAttributeValue::Cloud(AttributeValue::InstanceType("m5.large".into())));
        let m = ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("Attribute", "disableApiTermination"), ("Value", "True")]))
            .unwrap();
        assert_eq!(m.value, VmAttributeValue::DisableApiTermination(true));
        let m = ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("UserData.Value", "aGk=")])).unwrap();
        assert_eq!(m.value, VmAttributeValue::Cloud(AttributeValue::UserData(Some("hi".into()))));
        assert_eq!(code(ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", id)]))), "MissingParameter");
        let two = [("InstanceId", id), ("InstanceType.Value", "m5.large"), ("SourceDestCheck.Value", "false")];
        assert_eq!(code(ModifyInstanceAttributeInput::parse(&p(&two))), "InvalidParameterCombination");
        assert_eq!(code(ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("Kernel.Value", "k")]))), "UnsupportedOperation");
        assert_eq!(code(ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("GroupId.1", "sg-1")]))), "UnsupportedOperation");
        let bad = [("InstanceId", id), ("DisableApiTermination.Value", "yes")];
        assert_eq!(code(ModifyInstanceAttributeInput::parse(&p(&bad))), "InvalidParameterValue");
        let bad = [("InstanceId", id), ("InstanceInitiatedShutdownBehavior.Value", "halt")];
        assert_eq!(code(ModifyInstanceAttributeInput::parse(&p(&bad))), "InvalidParameterValue");
        assert_eq!(
            code(ModifyInstanceAttributeInput::parse(&p(&[("InstanceId", "x"), ("InstanceType.Value", "a")]))),
            "InvalidInstanceID.Malformed"
        );
    }

    #[test]
    fn describe_names_the_attribute() {
        let id = "i-0123456789abcdef";
        assert_eq!(code(DescribeInstanceAttributeInput::parse(&p(&[("InstanceId", id)]))), "MissingParameter");
        assert_eq!(code(DescribeInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("Attribute", "kernel")]))), "UnsupportedOperation");
        assert_eq!(code(DescribeInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("Attribute", "nope")]))), "InvalidParameterValue");
        assert!(DescribeInstanceAttributeInput::parse(&p(&[("InstanceId", id), ("Attribute", "userData")])).is_ok());
        let bad = [("LocationType", "planet")];
        assert_eq!(code(DescribeInstanceTypeOfferingsInput::parse(&p(&bad))), "InvalidParameterValue");
        let bad = [("Filter.1.Name", "zone"), ("Filter.1.Value.1", "x")];
        assert_eq!(code(DescribeInstanceTypeOfferingsInput::parse(&p(&bad))), "InvalidParameterValue");
    }
}
