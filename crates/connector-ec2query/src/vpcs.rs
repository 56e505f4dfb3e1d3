//! VPCs and subnets over the Query API: CreateVpc, DeleteVpc, DescribeVpcs,
//! CreateSubnet, DeleteSubnet, DescribeSubnets (paged when no ids are
//! given) and ModifySubnetAttribute, their parameters built and their
//! answers (`vpc`, `subnet`, `vpcSet/item`, `subnetSet/item`) read here.

use crate::parse::check_return;
use crate::request::{indexed, paged, Params};
use crate::xml::Element;
use crate::{Ec2QueryConnector, MAX_PAGES};
use cloudbroker_connector_api::{ConnectorError, CreateSubnetRequest, Credentials, SubnetInfo, VpcInfo};
use std::collections::HashSet;

fn unreadable(action: &str, what: &str) -> ConnectorError {
    ConnectorError::Transport { message: format!("unreadable {action} answer from the cloud: {what}") }
}

fn text(e: &Element, name: &str) -> Option<String> {
    e.child_text(name).map(str::to_string)
}

fn flag(e: &Element, name: &str) -> bool {
    e.child_text(name).is_some_and(|v| v.trim() == "true")
}

fn tags(e: &Element) -> Vec<(String, String)> {
    e.items("tagSet").filter_map(|t| Some((text(t, "key")?, text(t, "value").unwrap_or_default()))).collect()
}

/// A `vpc` element (CreateVpc's, or a `vpcSet/item`).
pub fn vpc_of(e: &Element, action: &str) -> Result<VpcInfo, ConnectorError> {
    Ok(VpcInfo {
        vpc_id: text(e, "vpcId").ok_or_else(|| unreadable(action, "a VPC without vpcId"))?,
        cidr_block: text(e, "cidrBlock").unwrap_or_default(),
        state: text(e, "state").unwrap_or_else(|| "available".into()),
        is_default: flag(e, "isDefault"),
        instance_tenancy: text(e, "instanceTenancy").unwrap_or_else(|| "default".into()),
        tags: tags(e),
    })
}

/// A `subnet` element (CreateSubnet's, or a `subnetSet/item`).
pub fn subnet_of(e: &Element, action: &str) -> Result<SubnetInfo, ConnectorError> {
    Ok(SubnetInfo {
        subnet_id: text(e, "subnetId").ok_or_else(|| unreadable(action, "a subnet without subnetId"))?,
        vpc_id: text(e, "vpcId").unwrap_or_default(),
        cidr_block: text(e, "cidrBlock").unwrap_or_default(),
        availability_zone: text(e, "availabilityZone").unwrap_or_default(),
        state: text(e, "state").unwrap_or_else(|| "available".into()),
        available_ip_address_count: text(e, "availableIpAddressCount").and_then(|n| n.parse().ok()).unwrap_or(0),
        default_for_az: flag(e, "defaultForAz"),
        map_public_ip_on_launch: flag(e, "mapPublicIpOnLaunch"),
        tags: tags(e),
    })
}

/// CreateSubnet's parameters.
pub fn create_subnet(req: &CreateSubnetRequest) -> Params {
    let mut p = vec![("VpcId".to_string(), req.vpc_id.clone()), ("CidrBlock".to_string(), req.cidr_block.clone())];
    if let Some(z) = &req.availability_zone {
        p.push(("AvailabilityZone".into(), z.clone()));
    }
    p
}

impl Ec2QueryConnector {
    /// A Describe call over every page (one call when ids are given).
    async fn describe_all<T>(
        &self,
        creds: &Credentials,
        action: &'static str,
        id_param: &str,
        set: &str,
        ids: &[String],
        read: fn(&Element, &str) -> Result<T, ConnectorError>,
    ) -> Result<Vec<T>, ConnectorError> {
        let (mut out, mut token, mut seen) = (Vec::new(), None::<String>, HashSet::new());
        for _ in 0..MAX_PAGES {
            let mut p = Params::new();
            indexed(&mut p, id_param, ids);
            if ids.is_empty() {
                p.extend(paged(Some(self.settings().page_size), token.as_deref()));
            }
            let root = self.call(creds, action, p).await?;
            for item in root.items(set) {
                out.push(read(item, action)?);
            }
            match text(&root, "nextToken").filter(|t| !t.is_empty() && ids.is_empty()) {
                Some(t) if seen.insert(t.clone()) => token = Some(t),
                Some(_) => {
                    return Err(ConnectorError::Cloud {
                        code: "PaginationLoop".into(),
                        message: format!("{action} answered the same nextToken twice"),
                    })
                }
                None => return Ok(out),
            }
        }
        Err(ConnectorError::Cloud { code: "PaginationLoop".into(), message: format!("{action} did not end after {MAX_PAGES} pages") })
    }

    pub(crate) async fn do_create_vpc(&self, creds: &Credentials, cidr: &str) -> Result<VpcInfo, ConnectorError> {
        let root = self.call(creds, "CreateVpc", vec![("CidrBlock".into(), cidr.to_string())]).await?;
        vpc_of(root.child("vpc").ok_or_else(|| unreadable("CreateVpc", "no vpc"))?, "CreateVpc")
    }

    pub(crate) async fn do_delete_vpc(&self, creds: &Credentials, vpc_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "DeleteVpc", vec![("VpcId".into(), vpc_id.to_string())]).await?;
        check_return(&root, "DeleteVpc")
    }

    pub(crate) async fn do_describe_vpcs(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<VpcInfo>, ConnectorError> {
        self.describe_all(creds, "DescribeVpcs", "VpcId", "vpcSet", ids, vpc_of).await
    }

    pub(crate) async fn do_create_subnet(&self, creds: &Credentials, req: &CreateSubnetRequest) -> Result<SubnetInfo, ConnectorError> {
        let root = self.call(creds, "CreateSubnet", create_subnet(req)).await?;
        subnet_of(root.child("subnet").ok_or_else(|| unreadable("CreateSubnet", "no subnet"))?, "CreateSubnet")
    }

    pub(crate) async fn do_delete_subnet(&self, creds: &Credentials, subnet_id: &str) -> Result<(), ConnectorError> {
        let root = self.call(creds, "DeleteSubnet", vec![("SubnetId".into(), subnet_id.to_string())]).await?;
        check_return(&root, "DeleteSubnet")
    }

    pub(crate) async fn do_describe_subnets(&self, creds: &Credentials, ids: &[String]) -> Result<Vec<SubnetInfo>, ConnectorError> {
        self.describe_all(creds, "DescribeSubnets", "SubnetId", "subnetSet", ids, subnet_of).await
    }

    pub(crate) async fn do_modify_subnet_map_public_ip(
        &self,
        creds: &Credentials,
        subnet_id: &str,
        map: bool,
    ) -> Result<(), ConnectorError> {
        let p = vec![("SubnetId".into(), subnet_id.to_string()), ("MapPublicIpOnLaunch.Value".into(), map.to_string())];
        let root = self.call(creds, "ModifySubnetAttribute", p).await?;
        check_return(&root, "ModifySubnetAttribute")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vpcs_and_subnets() {
        let root = crate::xml::parse(
            "<DescribeSubnetsResponse><subnetSet><item><subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId>\
             <cidrBlock>10.1.2.0/24</cidrBlock><availabilityZone>eu-1a</availabilityZone><state>available</state>\
             <availableIpAddressCount>251</availableIpAddressCount><defaultForAz>false</defaultForAz>\
             <mapPublicIpOnLaunch>true</mapPublicIpOnLaunch><tagSet><item><key>k</key><value>v</value></item></tagSet></item></subnetSet>\
             </DescribeSubnetsResponse>",
        )
        .unwrap();
        let s = subnet_of(root.items("subnetSet").next().unwrap(), "DescribeSubnets").unwrap();
        assert_eq!((s.subnet_id.as_str(), s.vpc_id.as_str(), s.available_ip_address_count), ("subnet-1", "vpc-1", 251));
        assert!(s.map_public_ip_on_launch && !s.default_for_az);
        assert_eq!(s.tags, vec![("k".to_string(), "v".to_string())]);
        let root = crate::xml::parse(
            "<CreateVpcResponse><vpc><vpcId>vpc-9</vpcId><cidrBlock>10.9.0.0/16</cidrBlock><state>pending</state>\
             <isDefault>false</isDefault></vpc></CreateVpcResponse>",
        )
        .unwrap();
        let v = vpc_of(root.child("vpc").unwrap(), "CreateVpc").unwrap();
        assert_eq!((v.vpc_id.as_str(), v.cidr_block.as_str(), v.state.as_str(), v.is_default), ("vpc-9", "10.9.0.0/16", "pending", false));
        assert_eq!(
            create_subnet(&CreateSubnetRequest { vpc_id: "vpc-9".into(), cidr_block: "10.9.1.0/24".into(), availability_zone: None }),
            vec![("VpcId".to_string(), "vpc-9".to_string()), ("CidrBlock".to_string(), "10.9.1.0/24".to_string())]
        );
    }
}
