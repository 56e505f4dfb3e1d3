//! Instance attributes and console output, passed to EC2 as they are:
//! ModifyInstanceAttribute with one attribute per call,
//! DescribeInstanceAttribute, GetConsoleOutput (whose base64 text is
//! decoded here). EC2 enforces its own rules (a type changes only while
//! stopped) and its codes come back unchanged.

use super::*;
use aws_sdk_ec2::types::{AttributeBooleanValue, AttributeValue as SdkValue, InstanceAttributeName, SecureBlobAttributeValue};
use cloudbroker_connector_api::{AttributeValue, ConsoleOutput, InstanceAttribute};

fn text(v: Option<&SdkValue>) -> Option<String> {
    v.and_then(|a| a.value()).map(str::to_string)
}

/// Base64 text as text (lossy: user data and consoles are text by convention).
fn decoded(b64: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok().map(|raw| String::from_utf8_lossy(&raw).into_owned())
}

impl Ec2Connector {
    pub(crate) async fn do_describe_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        attribute: InstanceAttribute,
    ) -> Result<AttributeValue, ConnectorError> {
        let name = match attribute {
            InstanceAttribute::InstanceType => InstanceAttributeName::InstanceType,
            InstanceAttribute::UserData => InstanceAttributeName::UserData,
            InstanceAttribute::InstanceInitiatedShutdownBehavior => InstanceAttributeName::InstanceInitiatedShutdownBehavior,
            InstanceAttribute::SourceDestCheck => InstanceAttributeName::SourceDestCheck,
        };
        let req = self.client(creds)?.describe_instance_attribute().instance_id(instance_id).attribute(name);
        let out = self.call("DescribeInstanceAttribute", || req.clone().send()).await?;
        Ok(match attribute {
            InstanceAttribute::InstanceType => AttributeValue::InstanceType(
                text(out.instance_type()).ok_or_else(|| unreadable("DescribeInstanceAttribute", "no instanceType"))?,
            ),
            InstanceAttribute::UserData => AttributeValue::UserData(text(out.user_data()).as_deref().and_then(decoded)),
            InstanceAttribute::InstanceInitiatedShutdownBehavior => AttributeValue::InstanceInitiatedShutdownBehavior(
                text(out.instance_initiated_shutdown_behavior()).unwrap_or_else(|| "stop".into()),
            ),
            InstanceAttribute::SourceDestCheck => {
                AttributeValue::SourceDestCheck(out.source_dest_check().and_then(|b| b.value()).unwrap_or(true))
            }
        })
    }

    pub(crate) async fn do_modify_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        value: &AttributeValue,
    ) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.modify_instance_attribute().instance_id(instance_id);
        let req = match value {
            AttributeValue::InstanceType(t) => req.instance_type(SdkValue::builder().value(t).build()),
            // The value is the user data base64-encoded (as RunInstances takes
            // it); the SDK encodes the blob once more on the wire.
            AttributeValue::UserData(u) => {
                let bytes = base64::engine::general_purpose::STANDARD.encode(u.as_deref().unwrap_or("").as_bytes()).into_bytes();
                req.user_data(SecureBlobAttributeValue::builder().value(Blob::new(bytes)).build())
            }
            // The `Attribute`/`Value` form: EC2 takes both, moto only this one.
            AttributeValue::InstanceInitiatedShutdownBehavior(b) => {
                req.attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior).value(b)
            }
            AttributeValue::SourceDestCheck(b) => req.source_dest_check(AttributeBooleanValue::builder().value(*b).build()),
        };
        self.call("ModifyInstanceAttribute", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_get_console_output(&self, creds: &Credentials, instance_id: &str) -> Result<ConsoleOutput, ConnectorError> {
        let req = self.client(creds)?.get_console_output().instance_id(instance_id);
        let out = self.call("GetConsoleOutput", || req.clone().send()).await?;
        Ok(ConsoleOutput {
            output: out.output().and_then(decoded),
            timestamp: out.timestamp().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        })
    }
}
