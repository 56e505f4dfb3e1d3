//! Elastic IPs with EC2's rules: at most [`MAX_ADDRESSES`] per account; an
//! address is associated with one running or stopped VM at a time (moved to
//! another only with `AllowReassociation`, else `Resource.AlreadyAssociated`),
//! and a VM with one address (associating another moves it).

use super::*;

impl SandboxConnector {
    pub(crate) async fn do_allocate_address(&self, creds: &Credentials) -> Result<AddressInfo, ConnectorError> {
        self.enter(creds, |w, acct| {
            if w.addresses.values().filter(|a| a.account == acct).count() >= MAX_ADDRESSES {
                return Err(ConnectorError::Limit {
                    code: "AddressLimitExceeded".into(),
                    message: format!("The maximum number of addresses has been reached ({MAX_ADDRESSES})."),
                });
            }
            w.next += 1;
            let n = w.next;
            let info = AddressInfo {
                public_ip: format!("198.51.{}.{}", 100 + ((n >> 8) & 0x7f), n & 0xff),
                allocation_id: format!("eipalloc-{:017x}", n ^ 0xa11c_0000_0000),
                instance_id: None,
                association_id: None,
                private_ip: None,
            };
            w.addresses.insert(info.allocation_id.clone(), SimAddress { info: info.clone(), account: acct.to_string() });
            Ok(info)
        })
        .await
    }

    pub(crate) async fn do_associate_address(
        &self,
        creds: &Credentials,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
    ) -> Result<String, ConnectorError> {
        self.enter(creds, |w, acct| {
            let current = w.address(acct, allocation_id)?.info.clone();
            let private_ip = w.usable_vm(acct, instance_id)?.vm.private_ip.clone();
            if let Some(other) = current.instance_id.as_deref().filter(|i| *i != instance_id && !allow_reassociation) {
                return Err(err_invalid(
                    "Resource.AlreadyAssociated",
                    format!("The address with allocation id [{allocation_id}] is already associated with instance {other}"),
                ));
            }
            // The VM's previous address (another one) lets go.
            for a in w.addresses.values_mut() {
                if a.info.instance_id.as_deref() == Some(instance_id) && a.info.allocation_id != allocation_id {
                    a.info.instance_id = None;
                    a.info.association_id = None;
                    a.info.private_ip = None;
                }
            }
            w.next += 1;
            let assoc = format!("eipassoc-{:017x}", w.next ^ 0xa550_0000_0000);
            // Moved (with AllowReassociation): the VM it leaves loses its public address.
            if let Some(s) = current.instance_id.as_deref().filter(|i| *i != instance_id).and_then(|i| w.vms.get_mut(i)) {
                s.vm.public_ip = None;
            }
            let a = w.address(acct, allocation_id)?;
            a.info.instance_id = Some(instance_id.to_string());
            a.info.association_id = Some(assoc.clone());
            a.info.private_ip = private_ip;
            let ip = a.info.public_ip.clone();
            if let Some(s) = w.vms.get_mut(instance_id) {
                s.vm.public_ip = Some(ip);
            }
            Ok(assoc)
        })
        .await
    }

    pub(crate) async fn do_disassociate_address(&self, creds: &Credentials, association_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let Some(a) = w.addresses.values_mut().find(|a| a.account == acct && a.info.association_id.as_deref() == Some(association_id))
            else {
                return Err(err_not_found(
                    "InvalidAssociationID.NotFound",
                    format!("The association ID '{association_id}' does not exist"),
                ));
            };
            let vm = a.info.instance_id.take();
            a.info.association_id = None;
            a.info.private_ip = None;
            if let Some(s) = vm.and_then(|id| w.vms.get_mut(&id)) {
                s.vm.public_ip = None;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_release_address(&self, creds: &Credentials, allocation_id: &str) -> Result<(), ConnectorError> {
        self.enter(creds, |w, acct| {
            let a = w.address(acct, allocation_id)?;
            if a.info.association_id.is_some() {
                return Err(err_invalid("InvalidIPAddress.InUse", format!("Address {} is in use.", a.info.public_ip)));
            }
            w.addresses.remove(allocation_id);
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_addresses(
        &self,
        creds: &Credentials,
        allocation_ids: &[String],
    ) -> Result<Vec<AddressInfo>, ConnectorError> {
        self.enter(creds, |w, acct| {
            for id in allocation_ids {
                w.address(acct, id)?;
            }
            Ok(w.addresses
                .values()
                .filter(|a| a.account == acct && (allocation_ids.is_empty() || allocation_ids.contains(&a.info.allocation_id)))
                .map(|a| a.info.clone())
                .collect())
        })
        .await
    }
}
