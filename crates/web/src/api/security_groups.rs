//! `/security-groups`: the security groups of the project the caller acts
//! in (the query's `project`, else the personal project), per connector
//! instance: list, create, read, delete (204), and add or remove one rule.
//! Another project's group is 404, a viewer's change 403; a cloud's refusal
//! keeps its code (`cloud.InvalidPermission.Duplicate`: 409).

use super::actor::ApiActor;
use super::body::Body;
use super::doc::ErrorBody;
use super::error::{ApiError, ApiResult};
use super::{no_content, ok};
use actix_web::{web, HttpResponse};
use cloudbroker_connector_api::{CidrRange, IpPermission, RuleDirection, SecurityGroupRule};
use cloudbroker_core::domain::{InstanceName, Tags};
use cloudbroker_core::provisioning::SecurityGroup;
use cloudbroker_core::Broker;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// A security group.
#[derive(Serialize, ToSchema)]
pub(super) struct GroupView {
    instance: String,
    group_id: String,
    name: String,
    description: String,
    vpc_id: Option<String>,
    project: String,
    user: String,
    rules: Vec<RuleView>,
    tags: BTreeMap<String, String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// One rule of a group.
#[derive(Serialize, ToSchema)]
pub(super) struct RuleView {
    rule_id: String,
    /// `ingress` or `egress`.
    direction: String,
    protocol: String,
    from_port: Option<i32>,
    to_port: Option<i32>,
    /// The IPv4 or IPv6 block, when the peer is one.
    cidr: Option<String>,
    /// The peer group, when the peer is one.
    group_id: Option<String>,
}

/// The groups of an instance.
#[derive(Serialize, ToSchema)]
pub(super) struct GroupList {
    groups: Vec<GroupView>,
}

fn view(g: SecurityGroup) -> GroupView {
    GroupView {
        instance: g.instance.as_str().to_string(),
        rules: g.rules.iter().map(rule_view).collect(),
        group_id: g.group_id,
        name: g.name,
        description: g.description,
        vpc_id: g.vpc_id,
        project: g.project,
        user: g.user,
        tags: g.tags,
        created_at: g.created_at,
    }
}

fn rule_view(r: &SecurityGroupRule) -> RuleView {
    RuleView {
        rule_id: r.rule_id.clone(),
        direction: if r.egress { "egress" } else { "ingress" }.into(),
        protocol: r.protocol.clone(),
        from_port: r.from_port,
        to_port: r.to_port,
        cidr: r.cidr_ipv4.clone().or_else(|| r.cidr_ipv6.clone()),
        group_id: r.referenced_group_id.clone(),
    }
}

fn instance(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|e| ApiError::field("instance", e.to_string()))
}

/// The instance in a path: a malformed one names nothing (404).
fn instance_in_path(s: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(s).map_err(|_| {
        ApiError(cloudbroker_core::ServiceError::NotFound(cloudbroker_core::Resource::Record(format!(
            "instance '{}'",
            s.chars().take(64).collect::<String>()
        ))))
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// The connector instance.
    #[param(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 63)]
    instance: String,
    /// The project to act in (you must be a member). Absent: your personal project.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    #[allow(dead_code)] // read by `ApiActor`
    project: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ProjectParam {
    /// The project to act in (you must be a member). Absent: your personal project.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    #[allow(dead_code)] // documentation only: read by `ApiActor`
    project: Option<String>,
}

/// A new security group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewGroup {
    #[schema(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 63)]
    instance: String,
    /// 1-255 characters; not `default` nor starting with `sg-`.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    #[schema(min_length = 1, max_length = 255)]
    description: String,
    /// The VPC (absent: the account's default VPC).
    vpc_id: Option<String>,
    #[schema(value_type = Option<super::doc::TagMap>)]
    tags: Option<BTreeMap<String, String>>,
}

/// Which way a rule lets traffic through.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Direction {
    Ingress,
    Egress,
}

impl From<Direction> for RuleDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Ingress => RuleDirection::Ingress,
            Direction::Egress => RuleDirection::Egress,
        }
    }
}

/// One rule to add or remove.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleBody {
    direction: Direction,
    /// `-1` (all), `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number.
    protocol: String,
    from_port: Option<i32>,
    to_port: Option<i32>,
    /// An IPv4 or IPv6 block.
    cidr: String,
}

impl RuleBody {
    fn permission(&self) -> IpPermission {
        let range = CidrRange { cidr: self.cidr.clone(), description: None };
        let (v4, v6) = if self.cidr.contains(':') { (vec![], vec![range]) } else { (vec![range], vec![]) };
        IpPermission {
            protocol: self.protocol.clone(),
            from_port: self.from_port,
            to_port: self.to_port,
            ipv4_ranges: v4,
            ipv6_ranges: v6,
            groups: vec![],
        }
    }
}

/// The security groups of the caller's project on an instance, oldest first.
#[utoipa::path(get, path = "/api/v1/security-groups", tag = "security-groups", params(ListParams),
    responses((status = 200, body = GroupList)))]
pub(super) async fn list_security_groups(a: ApiActor, broker: web::Data<Broker>, q: web::Query<ListParams>) -> ApiResult {
    let groups = broker.provisioning.security_groups(&a.0, &instance(&q.instance)?).await?;
    ok(GroupList { groups: groups.into_iter().map(view).collect() })
}

/// Makes a security group in the caller's project.
#[utoipa::path(post, path = "/api/v1/security-groups", tag = "security-groups", params(ProjectParam), request_body = NewGroup,
    responses((status = 201, body = GroupView), (status = 409, description = "`cloud.InvalidGroup.Duplicate`: the name is taken in the VPC; `quota_exceeded`", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody)))]
pub(super) async fn create_security_group(a: ApiActor, broker: web::Data<Broker>, body: Body<NewGroup>) -> ApiResult {
    let b = body.into_inner();
    let inst = instance(&b.instance)?;
    let tags = Tags::parse(b.tags.unwrap_or_default()).map_err(|e| ApiError(e.into()))?;
    let g = broker.provisioning.create_security_group(&a.0, &inst, &b.name, &b.description, b.vpc_id.as_deref(), &tags).await?;
    Ok(HttpResponse::Created().json(view(g)))
}

/// One security group of the caller's project.
#[utoipa::path(get, path = "/api/v1/security-groups/{instance}/{id}", tag = "security-groups",
    params(("instance" = String, Path, description = "connector instance"), ("id" = String, Path, description = "group id (sg-...)"), ProjectParam),
    responses((status = 200, body = GroupView)))]
pub(super) async fn get_security_group(a: ApiActor, broker: web::Data<Broker>, p: web::Path<(String, String)>) -> ApiResult {
    let (inst, id) = p.into_inner();
    ok(view(broker.provisioning.security_group(&a.0, &instance_in_path(&inst)?, &id).await?))
}

/// Deletes a security group of the caller's project.
#[utoipa::path(delete, path = "/api/v1/security-groups/{instance}/{id}", tag = "security-groups",
    params(("instance" = String, Path, description = "connector instance"), ("id" = String, Path, description = "group id (sg-...)"), ProjectParam),
    responses((status = 204, description = "deleted"), (status = 409, description = "`cloud.DependencyViolation`: the group is in use", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody)))]
pub(super) async fn delete_security_group(a: ApiActor, broker: web::Data<Broker>, p: web::Path<(String, String)>) -> ApiResult {
    let (inst, id) = p.into_inner();
    broker.provisioning.delete_security_group(&a.0, &instance_in_path(&inst)?, &id).await?;
    no_content()
}

/// Adds one rule to a security group of the caller's project; answers the group.
#[utoipa::path(post, path = "/api/v1/security-groups/{instance}/{id}/rules", tag = "security-groups",
    params(("instance" = String, Path, description = "connector instance"), ("id" = String, Path, description = "group id (sg-...)"), ProjectParam),
    request_body = RuleBody,
    responses((status = 200, body = GroupView), (status = 409, description = "`cloud.InvalidPermission.Duplicate`: the rule exists", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody)))]
pub(super) async fn add_security_group_rule(
    a: ApiActor,
    broker: web::Data<Broker>,
    p: web::Path<(String, String)>,
    body: Body<RuleBody>,
) -> ApiResult {
    let (inst, id) = p.into_inner();
    let inst = instance_in_path(&inst)?;
    let b = body.into_inner();
    broker.provisioning.authorize_security_group(&a.0, &inst, &id, b.direction.into(), &[b.permission()]).await?;
    ok(view(broker.provisioning.security_group(&a.0, &inst, &id).await?))
}

/// Removes one rule from a security group of the caller's project; answers the group.
#[utoipa::path(post, path = "/api/v1/security-groups/{instance}/{id}/rules/remove", tag = "security-groups",
    params(("instance" = String, Path, description = "connector instance"), ("id" = String, Path, description = "group id (sg-...)"), ProjectParam),
    request_body = RuleBody,
    responses((status = 200, body = GroupView), (status = 404, description = "`cloud.InvalidPermission.NotFound`: no such rule", body = ErrorBody),
        (status = 502, description = "the cloud refused or could not be asked", body = ErrorBody)))]
pub(super) async fn remove_security_group_rule(
    a: ApiActor,
    broker: web::Data<Broker>,
    p: web::Path<(String, String)>,
    body: Body<RuleBody>,
) -> ApiResult {
    let (inst, id) = p.into_inner();
    let inst = instance_in_path(&inst)?;
    let b = body.into_inner();
    broker.provisioning.revoke_security_group(&a.0, &inst, &id, b.direction.into(), &[b.permission()]).await?;
    ok(view(broker.provisioning.security_group(&a.0, &inst, &id).await?))
}
