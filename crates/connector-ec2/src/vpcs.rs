//! VPCs and subnets, mapped one to one onto EC2's calls (CreateVpc,
//! DeleteVpc, DescribeVpcs, CreateSubnet, DeleteSubnet, DescribeSubnets,
//! ModifySubnetAttribute); listings follow every page.

use super::*;
use aws_sdk_ec2::types::{AttributeBooleanValue, Subnet, Vpc};
use cloudbroker_connector_api::{CreateSubnetRequest, SubnetInfo, VpcInfo};

fn tags_of(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

pub(crate) fn vpc_from(v: &Vpc) -> Option<VpcInfo> {
    Some(VpcInfo {
        vpc_id: v.vpc_id()?.to_string(),
        cidr_block: v.cidr_block().unwrap_or_default().to_string(),
        state: v.state().map_or("available", |s| s.as_str()).to_string(),
        is_default: v.is_default().unwrap_or(false),
        instance_tenancy: v.instance_tenancy().map_or("default", |t| t.as_str()).to_string(),
        tags: tags_of(v.tags()),
    })
}

pub(crate) fn subnet_from(s: &Subnet) -> Option<SubnetInfo> {
    Some(SubnetInfo {
        subnet_id: s.subnet_id()?.to_string(),
        vpc_id: s.vpc_id().unwrap_or_default().to_string(),
        cidr_block: s.cidr_block().unwrap_or_default().to_string(),
        availability_zone: s.availability_zone().unwrap_or_default().to_string(),
        state: s.state().map_or("available", |st| st.as_str()).to_string(),
        available_ip_address_count: s.available_ip_address_count().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        default_for_az: s.default_for_az().unwrap_or(false),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        tags: tags_of(s.tags()),
    })
}

impl Ec2Connector {
    pub(crate) async fn do_create_vpc(&self, creds: &Credentials, cidr: &str) -> Result<VpcInfo, ConnectorError> {
        let req = self.client(creds)?.create_vpc().cidr_block(cidr);
        let out = self.call("CreateVpc", || req.clone().send()).await?;
        out.vpc().and_then(vpc_from).ok_or_else(|| unreadable("CreateVpc", "no vpc"))
    }

    pub(crate) async fn do_delete_vpc(&self, creds: &Credentials, vpc_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_vpc().vpc_id(vpc_id);
        self.call("DeleteVpc", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_describe_vpcs(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<VpcInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let (mut out, mut token, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let req = client.describe_vpcs().set_vpc_ids((!ids.is_empty()).then(|| ids.to_vec())).set_next_token(token.clone());
            let page = self.call("DescribeVpcs", || req.clone().send()).await?;
            out.extend(page.vpcs().iter().filter_map(vpc_from));
            match next_page("DescribeVpcs", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub(crate) async fn do_create_subnet(&self, creds: &Credentials, req: &CreateSubnetRequest) -> Result<SubnetInfo, ConnectorError> {
        let call = self
            .client(creds)?
            .create_subnet()
            .vpc_id(&req.vpc_id)
            .cidr_block(&req.cidr_block)
            .set_availability_zone(req.availability_zone.clone());
        let out = self.call("CreateSubnet", || call.clone().send()).await?;
        out.subnet().and_then(subnet_from).ok_or_else(|| unreadable("CreateSubnet", "no subnet"))
    }

    pub(crate) async fn do_delete_subnet(&self, creds: &Credentials, subnet_id: &str) -> Result<(), ConnectorError> {
        let req = self.client(creds)?.delete_subnet().subnet_id(subnet_id);
        self.call("DeleteSubnet", || req.clone().send()).await?;
        Ok(())
    }

    pub(crate) async fn do_describe_subnets(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<SubnetInfo>, ConnectorError> {
        let client = self.client(creds)?;
        let (mut out, mut token, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let req = client.describe_subnets().set_subnet_ids((!ids.is_empty()).then(|| ids.to_vec())).set_next_token(token.clone());
            let page = self.call("DescribeSubnets", || req.clone().send()).await?;
            out.extend(page.subnets().iter().filter_map(subnet_from));
            match next_page("DescribeSubnets", &mut pages, token.as_deref(), page.next_token())? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub(crate) async fn do_modify_subnet_map_public_ip(
        &self,
        creds: &Credentials,
        subnet_id: &str,
        map: bool,
    ) -> Result<(), ConnectorError> {
        let req = self
            .client(creds)?
            .modify_subnet_attribute()
            .subnet_id(subnet_id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(map).build());
        self.call("ModifySubnetAttribute", || req.clone().send()).await?;
        Ok(())
    }
}
