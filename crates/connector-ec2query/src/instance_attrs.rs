//! Instance attributes and console output over the Query API:
//! DescribeInstanceAttribute (`<attr><value>`), ModifyInstanceAttribute
//! (`<Attr>.Value`, user data base64-encoded) and GetConsoleOutput (base64
//! `<output>`, decoded here), their parameters built and their answers
//! read here. The cloud enforces its own rules; its codes come back as
//! they are.

use crate::parse::{check_return, parse_time};
use crate::request::Params;
use crate::xml::Element;
use crate::Ec2QueryConnector;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cloudbroker_connector_api::{AttributeValue, ConnectorError, ConsoleOutput, Credentials, InstanceAttribute};

fn unreadable(action: &str, what: &str) -> ConnectorError {
    ConnectorError::Transport { message: format!("unreadable {action} answer from the cloud: {what}") }
}

/// Base64 text as text (lossy: user data and consoles are text by convention).
fn decoded(b64: &str) -> Option<String> {
    BASE64.decode(b64.trim()).ok().map(|raw| String::from_utf8_lossy(&raw).into_owned())
}

/// The `<value>` of the attribute element `name` of an answer.
fn value<'a>(root: &'a Element, name: &str) -> Option<&'a str> {
    root.child(name).and_then(|e| e.child_text("value"))
}

/// DescribeInstanceAttribute's parameters.
pub fn describe(instance_id: &str, attribute: InstanceAttribute) -> Params {
    vec![("InstanceId".to_string(), instance_id.to_string()), ("Attribute".to_string(), attribute.as_str().to_string())]
}

/// DescribeInstanceAttributeResponse → the attribute's value.
pub fn described(root: &Element, attribute: InstanceAttribute) -> Result<AttributeValue, ConnectorError> {
    let action = "DescribeInstanceAttribute";
    let v = value(root, attribute.as_str());
    Ok(match attribute {
        InstanceAttribute::InstanceType => {
            AttributeValue::InstanceType(v.ok_or_else(|| unreadable(action, "no instanceType value"))?.to_string())
        }
        InstanceAttribute::UserData => AttributeValue::UserData(v.and_then(decoded)),
        InstanceAttribute::InstanceInitiatedShutdownBehavior => {
            AttributeValue::InstanceInitiatedShutdownBehavior(v.unwrap_or("stop").to_string())
        }
        InstanceAttribute::SourceDestCheck => AttributeValue::SourceDestCheck(v.map(|b| b.eq_ignore_ascii_case("true")).unwrap_or(true)),
    })
}

/// ModifyInstanceAttribute's parameters (one attribute).
pub fn modify(instance_id: &str, value: &AttributeValue) -> Params {
    let (name, v) = match value {
        AttributeValue::InstanceType(t) => ("InstanceType.Value", t.clone()),
        AttributeValue::UserData(u) => ("UserData.Value", BASE64.encode(u.as_deref().unwrap_or("").as_bytes())),
        // The `Attribute`/`Value` form (EC2 takes both; some clouds only this one).
        AttributeValue::InstanceInitiatedShutdownBehavior(b) => {
            return vec![
                ("InstanceId".to_string(), instance_id.to_string()),
                ("Attribute".to_string(), "instanceInitiatedShutdownBehavior".to_string()),
                ("Value".to_string(), b.clone()),
            ];
        }
        AttributeValue::SourceDestCheck(b) => ("SourceDestCheck.Value", b.to_string()),
    };
    vec![("InstanceId".to_string(), instance_id.to_string()), (name.to_string(), v)]
}

/// GetConsoleOutputResponse.
pub fn console(root: &Element) -> ConsoleOutput {
    ConsoleOutput {
        output: root.child_text("output").filter(|o| !o.trim().is_empty()).and_then(decoded),
        timestamp: root.child_text("timestamp").and_then(parse_time),
    }
}

impl Ec2QueryConnector {
    pub(crate) async fn do_describe_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        attribute: InstanceAttribute,
    ) -> Result<AttributeValue, ConnectorError> {
        let root = self.call(creds, "DescribeInstanceAttribute", describe(instance_id, attribute)).await?;
        described(&root, attribute)
    }

    pub(crate) async fn do_modify_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        value: &AttributeValue,
    ) -> Result<(), ConnectorError> {
        let root = self.call(creds, "ModifyInstanceAttribute", modify(instance_id, value)).await?;
        check_return(&root, "ModifyInstanceAttribute")
    }

    pub(crate) async fn do_get_console_output(&self, creds: &Credentials, instance_id: &str) -> Result<ConsoleOutput, ConnectorError> {
        let root = self.call(creds, "GetConsoleOutput", vec![("InstanceId".to_string(), instance_id.to_string())]).await?;
        Ok(console(&root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_and_written_as_ec2_spells_them() {
        let doc = "<DescribeInstanceAttributeResponse><instanceId>i-1</instanceId><userData><value>aGVsbG8=</value></userData></DescribeInstanceAttributeResponse>";
        let root = crate::xml::parse(doc).unwrap();
        assert_eq!(described(&root, InstanceAttribute::UserData).unwrap(), AttributeValue::UserData(Some("hello".into())));
        let doc = "<R><instanceType><value>m5.large</value></instanceType></R>";
        let root = crate::xml::parse(doc).unwrap();
        assert_eq!(described(&root, InstanceAttribute::InstanceType).unwrap(), AttributeValue::InstanceType("m5.large".into()));
        assert!(described(&crate::xml::parse("<R/>").unwrap(), InstanceAttribute::InstanceType).is_err());
        assert_eq!(modify("i-1", &AttributeValue::UserData(Some("hello".into())))[1], ("UserData.Value".into(), "aGVsbG8=".into()));
        assert_eq!(modify("i-1", &AttributeValue::SourceDestCheck(false))[1], ("SourceDestCheck.Value".into(), "false".into()));
        let c = console(&crate::xml::parse("<R><output>Ym9vdA==</output><timestamp>2026-12-07T06:00:00Z</timestamp></R>").unwrap());
        assert_eq!(c.output.as_deref(), Some("boot"));
        assert!(c.timestamp.is_some());
    }
}
