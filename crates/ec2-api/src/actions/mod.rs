//! One module per family of actions. Each action has a typed input
//! (`XxxInput::parse(&Params)`, the one place its parameters are read, in
//! EC2's order of checks); its handler takes that input, calls the core's
//! services as the caller, and writes EC2's answer.
//! Under `DryRun=true` ([`Ctx::dry_run`]) an action that changes things
//! calls the core's `check_*` for it instead and answers
//! [`Ec2Error::dry_run`]: it changes nothing, in the broker or in the cloud.
//! (The dispatcher does the same for the `Describe*` actions, which change nothing anyway.)

pub mod addresses;
pub mod attributes;
pub mod images;
pub mod instances;
pub mod key_format;
pub mod keypairs;
pub mod launch_options;
pub mod regions;
pub mod security_groups;
pub mod snapshots;
pub mod tags;
pub mod volumes;
pub mod vpcs;

use crate::auth::Caller;
use crate::error::Ec2Error;
use crate::request::Params;
use crate::xml::Xml;
use cloudbroker_core::domain::InstanceName;
use cloudbroker_core::Broker;

/// What an action works with.
pub struct Ctx<'a> {
    pub broker: &'a Broker,
    pub caller: Caller,
    pub request_id: String,
    /// The region (connector instance) named by the signature or the path.
    pub region: Option<String>,
    /// `scheme://host` of this broker, for endpoints in answers.
    pub base_url: String,
    /// `DryRun=true`: check everything, change nothing, answer `DryRunOperation`.
    pub dry_run: bool,
}

impl Ctx<'_> {
    /// The connector instance the request acts on.
    pub fn instance(&self) -> Result<InstanceName, Ec2Error> {
        let snap = self.broker.registry.snapshot();
        match &self.region {
            Some(r) => match InstanceName::parse(r) {
                Ok(i) if snap.instance(i.as_str()).is_some() => Ok(i),
                _ => Err(Ec2Error::client(
                    "InvalidParameterValue",
                    format!("region '{}' is not a connector instance of this broker; DescribeRegions lists them", crate::ids::shown(r)),
                )),
            },
            None => match snap.instances.as_slice() {
                [only] => Ok(only.name.clone()),
                _ => Err(Ec2Error::client(
                    "InvalidParameterValue",
                    "this broker has several regions (connector instances): sign with SigV4 for one of them, send SigV2 requests to /ec2/<instance>, or choose a default EC2 region on your profile",
                )),
            },
        }
    }

    /// `DryRun` as given: absent or `false` is false, `true` true, anything else refused.
    pub fn dry_run_param(params: &Params) -> Result<bool, Ec2Error> {
        match params.get("DryRun") {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) => Err(Ec2Error::invalid(format!("Value ({}) for parameter DryRun is invalid: true or false", crate::ids::shown(v)))),
        }
    }

    /// A response document for `action`.
    pub fn doc(&self, action: &str) -> (Xml, String) {
        let root = format!("{action}Response");
        (Xml::response(&root, &self.request_id), root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_is_true_false_or_refused() {
        let p = |v: Option<&str>| Params::new(v.map(|v| ("DryRun".to_string(), v.to_string())).into_iter().collect()).unwrap();
        assert!(!Ctx::dry_run_param(&p(None)).unwrap());
        assert!(!Ctx::dry_run_param(&p(Some("false"))).unwrap());
        assert!(Ctx::dry_run_param(&p(Some("true"))).unwrap());
        assert!(Ctx::dry_run_param(&p(Some("TRUE"))).unwrap());
        for bad in ["", "yes", "1", "truee"] {
            let e = Ctx::dry_run_param(&p(Some(bad))).unwrap_err();
            assert_eq!((e.code.as_str(), e.status), ("InvalidParameterValue", 400), "{bad}");
            assert!(e.message.contains("DryRun"), "{}", e.message);
        }
        let e = Ec2Error::dry_run();
        assert_eq!((e.code.as_str(), e.status), ("DryRunOperation", 412));
        assert_eq!(e.message, "Request would have succeeded, but DryRun flag is set.");
    }
}

/// The typed inputs keep EC2's order of checks, deferring what EC2 checks
/// only after a lookup.
#[cfg(test)]
mod input_tests {
    use super::{addresses, instances, tags, volumes};
    use crate::request::Params;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    fn code<T>(r: Result<T, crate::error::Ec2Error>) -> String {
        r.err().map(|e| e.code).unwrap_or_default()
    }

    #[test]
    fn run_instances_checks_in_ec2s_order() {
        let base = [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "1"), ("MaxCount", "2")];
        let input = instances::RunInstancesInput::parse(&p(&base)).unwrap();
        assert_eq!(input.image, "ami-0123456789abcdef0");
        assert_eq!(code(instances::RunInstancesInput::parse(&p(&[("MinCount", "1")]))), "MissingParameter");
        let e = instances::RunInstancesInput::parse(&p(&[("ImageId", "x"), ("MinCount", "3"), ("MaxCount", "2")])).err().unwrap();
        assert_eq!(e.message, "MinCount (3) is greater than MaxCount (2)");
        // A malformed image id is reported before a bad instance type.
        let bad = [("ImageId", "a b"), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "no such/type")];
        assert_eq!(code(instances::RunInstancesInput::parse(&p(&bad))), "InvalidAMIID.Malformed");
        let bad = [("ImageId", "x"), ("MinCount", "1"), ("MaxCount", "1"), ("UserData", "%%%")];
        assert_eq!(code(instances::RunInstancesInput::parse(&p(&bad))), "InvalidParameterValue");
    }

    #[test]
    fn the_lease_tag_asks_for_a_lease_and_is_not_kept() {
        let base =
            [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "1"), ("MaxCount", "1"), ("TagSpecification.1.ResourceType", "instance")];
        let with = |v: &str| {
            let mut kv = base.to_vec();
            kv.extend([("TagSpecification.1.Tag.1.Key", "cloudbroker:lease"), ("TagSpecification.1.Tag.1.Value", v)]);
            kv.extend([("TagSpecification.1.Tag.2.Key", "cloudbroker:other"), ("TagSpecification.1.Tag.2.Value", "x")]);
            instances::RunInstancesInput::parse(&p(&kv))
        };
        let input = with("8h").unwrap();
        assert_eq!(input.lease, Some(cloudbroker_core::domain::LeaseAsk::For(chrono::Duration::hours(8))));
        assert_eq!(input.tags.reserved.keys().collect::<Vec<_>>(), ["cloudbroker:other"]);
        assert!(matches!(with("2026-12-24T18:00:00Z").unwrap().lease, Some(cloudbroker_core::domain::LeaseAsk::Until(_))));
        let e = with("8 hours").err().unwrap();
        assert_eq!(e.code, "InvalidParameterValue");
        assert_eq!(e.message, "tag cloudbroker:lease: '8 hours' is not a duration: units are d, h, m and s (e.g. 8h, 90m, 1d12h)");
        assert_eq!(instances::RunInstancesInput::parse(&p(&base)).unwrap().lease, None);
    }

    #[test]
    fn deferred_checks_wait_for_their_lookup() {
        // AssociateAddress: the address first; the instance only once it is found.
        let input = addresses::AssociateAddressInput::parse(&p(&[("PublicIp", "192.0.2.1")])).unwrap();
        assert_eq!(code(input.vm), "MissingParameter");
        assert_eq!(code(addresses::AssociateAddressInput::parse(&p(&[("InstanceId", "i-1")]))), "MissingParameter");
        let bad = [("AllocationId", "nope"), ("InstanceId", "bad")];
        assert_eq!(code(addresses::AssociateAddressInput::parse(&p(&bad))), "InvalidAllocationID.Malformed");
        // DeleteTags: the resources first; the tags only once every resource is found.
        let input = tags::DeleteTagsInput::parse(&p(&[("ResourceId.1", "i-1"), ("Tag.1.Value", "v")])).unwrap();
        assert_eq!(code(input.tags), "MissingParameter");
        assert_eq!(code(tags::DeleteTagsInput::parse(&p(&[("Tag.1.Key", "k")]))), "MissingParameter");
    }

    #[test]
    fn volume_inputs_check_filters_then_ids() {
        let bad = [("Filter.1.Name", "nope"), ("Filter.1.Value.1", "x"), ("VolumeId.1", "bad")];
        assert_eq!(code(volumes::DescribeVolumesInput::parse(&p(&bad))), "InvalidParameterValue");
        assert_eq!(code(volumes::DescribeVolumesInput::parse(&p(&[("VolumeId.1", "bad")]))), "InvalidVolumeID.Malformed");
        let bad = [("VolumeId", "vol-1"), ("InstanceId", "x")];
        assert_eq!(code(volumes::AttachVolumeInput::parse(&p(&bad))), "InvalidInstanceID.Malformed");
        assert_eq!(code(volumes::DetachVolumeInput::parse(&p(&[("VolumeId", "vol-1"), ("Force", "yes")]))), "InvalidParameterValue");
        assert_eq!(code(volumes::CreateVolumeInput::parse(&p(&[("SnapshotId", "snap-1")]))), "InvalidParameterValue");
    }
}
