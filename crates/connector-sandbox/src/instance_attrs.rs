//! Instance attributes and console output, with EC2's rules: the type and
//! the user data change only while the VM is stopped (else
//! `IncorrectInstanceState`), the type must be one the sandbox offers, the
//! shutdown behaviour is `stop` or `terminate`; a terminated VM changes
//! nothing. The console holds a simulated boot log once the VM has booted.

use super::*;
use cloudbroker_connector_api::instance_attrs::SHUTDOWN_BEHAVIORS;
use cloudbroker_connector_api::{AttributeValue, ConsoleOutput, InstanceAttribute};

/// What the sandbox keeps of a VM beyond [`Vm`] (absent: the defaults).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SimAttrs {
    pub(crate) user_data: Option<String>,
    pub(crate) shutdown_behavior: String,
    pub(crate) source_dest_check: bool,
}

impl Default for SimAttrs {
    fn default() -> Self {
        Self { user_data: None, shutdown_behavior: "stop".into(), source_dest_check: true }
    }
}

fn not_stopped(id: &str) -> ConnectorError {
    err_invalid("IncorrectInstanceState", format!("The instance '{id}' is not in the 'stopped' state."))
}

/// The boot log of a VM that has booted.
fn boot_log(vm: &Vm, instance: &str) -> String {
    let at = vm.launch_time.map(|t| t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()).unwrap_or_default();
    format!(
        "[    0.000000] Linux version 6.8.0-sandbox (cloudbroker sandbox '{instance}')\r\n\
         [    0.000000] Command line: console=ttyS0 root=LABEL=cloudimg-rootfs\r\n\
         [    1.204311] EXT4-fs (vda1): mounted filesystem with ordered data mode\r\n\
         Cloud-init v. 24.1 running 'init' at {at}. Up 3.12 seconds.\r\n\
         ci-info: eth0: {ip}\r\n\
         Cloud-init v. 24.1 finished at {at}. Datasource DataSourceEc2.  Up 5.87 seconds\r\n\
         \r\n{id} login: \r\n",
        ip = vm.private_ip.as_deref().unwrap_or("-"),
        id = vm.id,
    )
}

impl SandboxConnector {
    pub(crate) async fn do_describe_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        attribute: InstanceAttribute,
    ) -> Result<AttributeValue, ConnectorError> {
        self.enter(creds, |w, acct| {
            let vm = Self::owned(w, acct, instance_id)?.vm.clone();
            let attrs = w.attrs.get(instance_id).cloned().unwrap_or_default();
            Ok(match attribute {
                InstanceAttribute::InstanceType => AttributeValue::InstanceType(vm.instance_type),
                InstanceAttribute::UserData => AttributeValue::UserData(attrs.user_data),
                InstanceAttribute::InstanceInitiatedShutdownBehavior => {
                    AttributeValue::InstanceInitiatedShutdownBehavior(attrs.shutdown_behavior)
                }
                InstanceAttribute::SourceDestCheck => AttributeValue::SourceDestCheck(attrs.source_dest_check),
            })
        })
        .await
    }

    pub(crate) async fn do_modify_instance_attribute(
        &self,
        creds: &Credentials,
        instance_id: &str,
        value: &AttributeValue,
    ) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let s = Self::owned(w, acct, instance_id)?;
            if matches!(s.vm.state, VmState::Terminated | VmState::ShuttingDown) {
                return Err(err_invalid("IncorrectInstanceState", format!("The instance '{instance_id}' is not in a valid state for this operation.")));
            }
            let stopped = s.vm.state == VmState::Stopped;
            match value {
                AttributeValue::InstanceType(t) => {
                    if !INSTANCE_TYPES.iter().any(|(name, _, _)| name == t) {
                        return Err(err_invalid("InvalidParameterValue", format!("Invalid value '{t}' for InstanceType.")));
                    }
                    if !stopped {
                        return Err(not_stopped(instance_id));
                    }
                    s.vm.instance_type = t.clone();
                }
                AttributeValue::UserData(u) => {
                    if !stopped {
                        return Err(not_stopped(instance_id));
                    }
                    w.attrs.entry(instance_id.to_string()).or_default().user_data = u.clone();
                }
                AttributeValue::InstanceInitiatedShutdownBehavior(b) => {
                    if !SHUTDOWN_BEHAVIORS.contains(&b.as_str()) {
                        return Err(err_invalid(
                            "InvalidParameterValue",
                            format!("Value ({b}) for parameter instanceInitiatedShutdownBehavior is invalid. Allowed values are 'stop' and 'terminate'."),
                        ));
                    }
                    w.attrs.entry(instance_id.to_string()).or_default().shutdown_behavior = b.clone();
                }
                AttributeValue::SourceDestCheck(b) => {
                    w.attrs.entry(instance_id.to_string()).or_default().source_dest_check = *b;
                }
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_get_console_output(&self, creds: &Credentials, instance_id: &str) -> Result<ConsoleOutput, ConnectorError> {
        let instance = self.instance.to_string();
        self.enter(creds, |w, acct| {
            let vm = &Self::owned(w, acct, instance_id)?.vm;
            let booted = !matches!(vm.state, VmState::Pending);
            Ok(ConsoleOutput { output: booted.then(|| boot_log(vm, &instance)), timestamp: Some(Utc::now()) })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> SandboxConnector {
        SandboxConnector::new(
            InstanceName::parse("sb").unwrap(),
            SandboxSettings {
                boot_delay: Duration::ZERO,
                failure_rate: 0.0,
                capacity: None,
                public_ips: true,
                keep_tags: true,
                api_latency: Duration::ZERO,
                workers: 4,
            },
        )
    }

    #[tokio::test]
    async fn attributes_follow_ec2s_rules_and_addresses_move_when_allowed() {
        let sb = sandbox();
        let (a, b) = (Credentials::new("alice", "s"), Credentials::new("bob", "s"));
        let req = RunRequest {
            image_id: "ami-sandbox-debian-12".into(),
            instance_type: "t2.micro".into(),
            count: 2,
            user_data: Some("#!/bin/sh".into()),
            ..RunRequest::default()
        };
        let vms = sb.run_instances(&a, &req).await.unwrap();
        let (vm, vm2) = (vms[0].id.clone(), vms[1].id.clone());
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        let ud = sb.describe_instance_attribute(&a, &vm, InstanceAttribute::UserData).await.unwrap();
        assert_eq!(ud, AttributeValue::UserData(Some("#!/bin/sh".into())));
        let big = AttributeValue::InstanceType("m5.large".into());
        let e = sb.modify_instance_attribute(&a, &vm, &big).await.unwrap_err();
        assert_eq!(e.code(), Some("IncorrectInstanceState"), "{e}");
        let e = sb.modify_instance_attribute(&a, &vm, &AttributeValue::InstanceType("x9.huge".into())).await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidParameterValue"), "{e}");
        assert_eq!(sb.modify_instance_attribute(&b, &vm, &big).await.unwrap_err().code(), Some("InvalidInstanceID.NotFound"));
        sb.stop_instances(&a, std::slice::from_ref(&vm)).await.unwrap();
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        sb.modify_instance_attribute(&a, &vm, &big).await.unwrap();
        assert_eq!(sb.describe_instance_attribute(&a, &vm, InstanceAttribute::InstanceType).await.unwrap(), big);
        let off = AttributeValue::SourceDestCheck(false);
        sb.modify_instance_attribute(&a, &vm, &off).await.unwrap();
        assert_eq!(sb.describe_instance_attribute(&a, &vm, InstanceAttribute::SourceDestCheck).await.unwrap(), off);
        let halt = AttributeValue::InstanceInitiatedShutdownBehavior("halt".into());
        assert_eq!(sb.modify_instance_attribute(&a, &vm, &halt).await.unwrap_err().code(), Some("InvalidParameterValue"));
        let console = sb.get_console_output(&a, &vm2).await.unwrap();
        assert!(console.output.unwrap().contains(&format!("{vm2} login:")));
        assert_eq!(sb.get_console_output(&b, &vm2).await.unwrap_err().code(), Some("InvalidInstanceID.NotFound"));
        // An address moves only when allowed.
        sb.start_instances(&a, std::slice::from_ref(&vm)).await.unwrap();
        sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        let addr = sb.allocate_address(&a).await.unwrap();
        sb.associate_address(&a, &addr.allocation_id, &vm, false).await.unwrap();
        let e = sb.associate_address(&a, &addr.allocation_id, &vm2, false).await.unwrap_err();
        assert_eq!(e.code(), Some("Resource.AlreadyAssociated"), "{e}");
        sb.associate_address(&a, &addr.allocation_id, &vm2, true).await.unwrap();
        let seen = sb.describe_instances(&a, &DescribeFilter::default()).await.unwrap();
        let ip = |id: &str| seen.iter().find(|v| v.id == id).unwrap().public_ip.clone();
        assert_eq!((ip(&vm2), ip(&vm)), (Some(addr.public_ip.clone()), None));
    }
}
