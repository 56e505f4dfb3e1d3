//! VPCs and subnets with EC2's rules: blocks `/16` to `/28`
//! (`InvalidVpc.Range`, `InvalidSubnet.Range`); a subnet's block inside its
//! VPC's and overlapping no other subnet of it (`InvalidSubnet.Conflict`);
//! a VPC is deleted only without subnets, a subnet only without live VMs
//! (`DependencyViolation`). Every account has a default VPC
//! ([`DEFAULT_VPC_CIDR`]) with one default subnet in the instance's one zone
//! (made the first time the account touches its network or launches); a
//! launch without a subnet lands there. A VM's private address comes from
//! its subnet's block; it gets a public one only where its subnet maps them.

use super::*;
use cloudbroker_connector_api::network::{Cidr, PREFIX_RANGE, RESERVED_PER_SUBNET};
use cloudbroker_connector_api::{CreateSubnetRequest, SubnetInfo, VpcInfo};

/// The block of every account's default VPC (and of its one default subnet), as AWS's.
pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimVpc {
    pub(crate) info: VpcInfo,
    pub(crate) account: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SimSubnet {
    pub(crate) info: SubnetInfo,
    pub(crate) account: String,
    /// Addresses handed out so far (the next VM takes the one after).
    pub(crate) handed: u64,
}

fn vpc_not_found(id: &str) -> ConnectorError {
    err_not_found("InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist"))
}

fn subnet_not_found(id: &str) -> ConnectorError {
    err_not_found("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
}

/// Addresses a subnet offers VMs.
fn usable(cidr: Cidr) -> u64 {
    cidr.size().saturating_sub(RESERVED_PER_SUBNET)
}

impl World {
    /// Makes the account's default VPC and subnet, once.
    pub(crate) fn ensure_default_network(&mut self, account: &str, zone: &str) {
        if !self.net_accounts.insert(account.to_string()) {
            return;
        }
        self.next += 1;
        let vpc_id = format!("vpc-{:017x}", self.next ^ 0xd0fa_0000_0000);
        self.next += 1;
        let subnet_id = format!("subnet-{:017x}", self.next ^ 0xd0fa_0000_0000);
        let info = VpcInfo {
            vpc_id: vpc_id.clone(),
            cidr_block: DEFAULT_VPC_CIDR.into(),
            state: "available".into(),
            is_default: true,
            instance_tenancy: "default".into(),
            tags: Vec::new(),
        };
        self.vpcs.insert(vpc_id.clone(), SimVpc { info, account: account.to_string() });
        // 172.31.0.0/16: 65,536 addresses.
        let free = Cidr::parse(DEFAULT_VPC_CIDR).map_or(65_536 - RESERVED_PER_SUBNET, usable);
        let info = SubnetInfo {
            subnet_id: subnet_id.clone(),
            vpc_id,
            cidr_block: DEFAULT_VPC_CIDR.into(),
            availability_zone: zone.to_string(),
            state: "available".into(),
            available_ip_address_count: u32::try_from(free).unwrap_or(u32::MAX),
            default_for_az: true,
            map_public_ip_on_launch: true,
            tags: Vec::new(),
        };
        self.subnets.insert(subnet_id, SimSubnet { info, account: account.to_string(), handed: 0 });
    }

    pub(crate) fn vpc<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimVpc, ConnectorError> {
        match self.vpcs.get_mut(id) {
            Some(v) if v.account == account => Ok(v),
            _ => Err(vpc_not_found(id)),
        }
    }

    pub(crate) fn subnet<'w>(&'w mut self, account: &str, id: &str) -> Result<&'w mut SimSubnet, ConnectorError> {
        match self.subnets.get_mut(id) {
            Some(s) if s.account == account => Ok(s),
            _ => Err(subnet_not_found(id)),
        }
    }

    /// Live VMs in a subnet.
    fn vms_in(&self, subnet_id: &str) -> usize {
        self.vms.values().filter(|s| s.vm.state != VmState::Terminated && s.vm.subnet_id.as_deref() == Some(subnet_id)).count()
    }

    /// Where `count` VMs of a launch go: the subnet named (else the
    /// account's default subnet), with a private address each and whether
    /// they get a public one. Refuses a subnet without `count` free addresses
    /// (`InsufficientFreeAddressesInSubnet`); the default subnet's addresses
    /// are reused round the block (a simulation may hold more VMs than a /16).
    pub(crate) fn place(
        &mut self,
        account: &str,
        zone: &str,
        subnet_id: Option<&str>,
        count: u32,
    ) -> Result<(SubnetInfo, Vec<String>), ConnectorError> {
        self.ensure_default_network(account, zone);
        let id = match subnet_id {
            Some(id) => id.to_string(),
            None => self
                .subnets
                .values()
                .find(|s| s.account == account && s.info.default_for_az && s.info.availability_zone == zone)
                .map(|s| s.info.subnet_id.clone())
                .ok_or_else(|| err_invalid("MissingInput", "No default subnet for availability zone: please specify a subnet."))?,
        };
        let live = {
            self.subnet(account, &id)?;
            self.vms_in(&id) as u64
        };
        let s = self.subnet(account, &id)?;
        let cidr = Cidr::parse(&s.info.cidr_block).ok_or_else(|| err_invalid("InvalidSubnet.Range", "unreadable block"))?;
        let room = usable(cidr);
        if !s.info.default_for_az && live + u64::from(count) > room {
            return Err(err_invalid(
                "InsufficientFreeAddressesInSubnet",
                format!("Insufficient Free IP Addresses in subnet {id} ({live} of {room} taken, {count} requested)."),
            ));
        }
        let mut ips = Vec::new();
        for _ in 0..count {
            // The first four addresses are the network's, the router's, DNS's and kept.
            ips.push(cidr.nth(4 + s.handed % room.max(1)).to_string());
            s.handed += 1;
        }
        s.info.available_ip_address_count = u32::try_from(room.saturating_sub(live + u64::from(count))).unwrap_or(u32::MAX);
        Ok((s.info.clone(), ips))
    }
}

impl SandboxConnector {
    fn zone(&self) -> String {
        format!("{}a", self.instance)
    }

    pub(crate) async fn do_create_vpc(&self, creds: &Credentials, cidr: &str) -> Result<VpcInfo, ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            let block = Cidr::parse(cidr).ok_or_else(|| {
                err_invalid(
                    "InvalidParameterValue",
                    format!("Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."),
                )
            })?;
            if !PREFIX_RANGE.contains(&block.prefix()) {
                return Err(err_invalid("InvalidVpc.Range", format!("The CIDR '{cidr}' is invalid.")));
            }
            w.next += 1;
            let info = VpcInfo {
                vpc_id: format!("vpc-{:017x}", w.next ^ 0x7bc0_0000_0000),
                cidr_block: block.to_string(),
                state: "available".into(),
                is_default: false,
                instance_tenancy: "default".into(),
                tags: Vec::new(),
            };
            w.vpcs.insert(info.vpc_id.clone(), SimVpc { info: info.clone(), account: acct.to_string() });
            Ok(info)
        })
        .await
    }

    pub(crate) async fn do_delete_vpc(&self, creds: &Credentials, vpc_id: &str) -> Result<(), ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            w.vpc(acct, vpc_id)?;
            if w.subnets.values().any(|s| s.info.vpc_id == vpc_id) {
                return Err(err_invalid("DependencyViolation", format!("The vpc '{vpc_id}' has dependencies and cannot be deleted.")));
            }
            w.vpcs.remove(vpc_id);
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_vpcs(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<VpcInfo>, ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            for id in ids {
                w.vpc(acct, id)?;
            }
            Ok(w.vpcs
                .values()
                .filter(|v| v.account == acct && (ids.is_empty() || ids.contains(&v.info.vpc_id)))
                .map(|v| v.info.clone())
                .collect())
        })
        .await
    }

    pub(crate) async fn do_create_subnet(&self, creds: &Credentials, req: &CreateSubnetRequest) -> Result<SubnetInfo, ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            let vpc_block = Cidr::parse(&w.vpc(acct, &req.vpc_id)?.info.cidr_block)
                .ok_or_else(|| err_invalid("InvalidVpc.Range", "unreadable VPC block"))?;
            let cidr = &req.cidr_block;
            let block = Cidr::parse(cidr)
                .ok_or_else(|| err_invalid("InvalidParameterValue", format!("Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block.")))?;
            if !PREFIX_RANGE.contains(&block.prefix()) || !vpc_block.contains(block) {
                return Err(err_invalid("InvalidSubnet.Range", format!("The CIDR '{cidr}' is invalid.")));
            }
            if w.subnets.values().any(|s| s.info.vpc_id == req.vpc_id && Cidr::parse(&s.info.cidr_block).is_some_and(|c| c.overlaps(block))) {
                return Err(err_invalid("InvalidSubnet.Conflict", format!("The CIDR '{cidr}' conflicts with another subnet")));
            }
            if let Some(z) = req.availability_zone.as_deref().filter(|z| *z != zone) {
                return Err(err_invalid(
                    "InvalidParameterValue",
                    format!("Value ({z}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {zone}."),
                ));
            }
            w.next += 1;
            let info = SubnetInfo {
                subnet_id: format!("subnet-{:017x}", w.next ^ 0x5b70_0000_0000),
                vpc_id: req.vpc_id.clone(),
                cidr_block: block.to_string(),
                availability_zone: zone.clone(),
                state: "available".into(),
                available_ip_address_count: u32::try_from(usable(block)).unwrap_or(u32::MAX),
                default_for_az: false,
                map_public_ip_on_launch: false,
                tags: Vec::new(),
            };
            w.subnets.insert(info.subnet_id.clone(), SimSubnet { info: info.clone(), account: acct.to_string(), handed: 0 });
            Ok(info)
        })
        .await
    }

    pub(crate) async fn do_delete_subnet(&self, creds: &Credentials, subnet_id: &str) -> Result<(), ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            w.subnet(acct, subnet_id)?;
            if w.vms_in(subnet_id) > 0 {
                return Err(err_invalid(
                    "DependencyViolation",
                    format!("The subnet '{subnet_id}' has dependencies and cannot be deleted."),
                ));
            }
            w.subnets.remove(subnet_id);
            Ok(())
        })
        .await
    }

    pub(crate) async fn do_describe_subnets(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<SubnetInfo>, ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            for id in ids {
                w.subnet(acct, id)?;
            }
            let mut out: Vec<SubnetInfo> = Vec::new();
            let ours: Vec<String> = w
                .subnets
                .values()
                .filter(|s| s.account == acct && (ids.is_empty() || ids.contains(&s.info.subnet_id)))
                .map(|s| s.info.subnet_id.clone())
                .collect();
            for id in ours {
                let live = w.vms_in(&id) as u64;
                let s = w.subnet(acct, &id)?;
                let room = Cidr::parse(&s.info.cidr_block).map(usable).unwrap_or(0);
                s.info.available_ip_address_count = u32::try_from(room.saturating_sub(live)).unwrap_or(u32::MAX);
                out.push(s.info.clone());
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn do_modify_subnet_map_public_ip(
        &self,
        creds: &Credentials,
        subnet_id: &str,
        map: bool,
    ) -> Result<(), ConnectorError> {
        let zone = self.zone();
        self.enter(creds, |w, acct| {
            w.ensure_default_network(acct, &zone);
            w.subnet(acct, subnet_id)?.info.map_public_ip_on_launch = map;
            Ok(())
        })
        .await
    }
}
