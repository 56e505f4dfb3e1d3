//! One module per family of actions. Each action reads its parameters,
//! calls the core's services as the caller, and writes EC2's answer.

pub mod addresses;
pub mod images;
pub mod instances;
pub mod keypairs;
pub mod regions;
pub mod tags;
pub mod volumes;

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
    pub params: Params,
    pub request_id: String,
    /// The region (connector instance) named by the signature or the path.
    pub region: Option<String>,
    /// `scheme://host` of this broker, for endpoints in answers.
    pub base_url: String,
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

    /// A response document for `action`.
    pub fn doc(&self, action: &str) -> (Xml, String) {
        let root = format!("{action}Response");
        (Xml::response(&root, &self.request_id), root)
    }
}
