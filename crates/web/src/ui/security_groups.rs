//! The security groups of the current project (`/security-groups`),
//! through the same provisioning service as the JSON API and the EC2 front:
//! the list over every connector instance the user sees (id, name, VPC,
//! tags, its inbound and outbound rules: protocol, ports, CIDR block or
//! group, description), create (instance, name, description, optional VPC,
//! tags `key=value` checked by `Tags::parse_resource`), add an inbound or an
//! outbound rule (protocol, ports, CIDR block or `sg-` group, description)
//! and remove one, and delete behind a confirmation page. A refusal (the
//! cloud's, a duplicate rule, a bad CIDR, a bad tag) comes back as a form
//! message next to the form it came from, with what was typed. Viewers see
//! the list without forms (a forged form gets 403); another project's group
//! is "not found".

use super::confirm::{self, Confirm};
use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::FormErrors;
use super::resources::{in_path, instances, per_instance, refused, row_refused, status_of};
use super::{html, Chrome};
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use cloudbroker_connector_api::{CidrRange, GroupPair, IpPermission, RuleDirection, SecurityGroupRule};
use cloudbroker_core::domain::{InstanceName, Tags};
use cloudbroker_core::provisioning::SecurityGroup;
use cloudbroker_core::ServiceError;
use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security-groups", web::get().to(list))
        .route("/security-groups", web::post().to(create))
        .route("/security-groups/rules", web::post().to(add_rule))
        .route("/security-groups/{instance}/{id}/rules/remove", web::post().to(remove_rule))
        .route("/security-groups/{instance}/{id}/delete", web::get().to(confirm_delete))
        .route("/security-groups/{instance}/{id}/delete", web::post().to(delete));
}

struct RuleRow {
    protocol: String,
    from_port: String,
    to_port: String,
    /// The peer: a CIDR block or a group id (the remove form's `cidr`).
    cidr: String,
    /// `tcp 22 from 10.0.0.0/8`, `all to sg-1`.
    text: String,
    description: String,
}

impl RuleRow {
    fn of(r: &SecurityGroupRule) -> Self {
        let port = |p: Option<i32>| p.map(|p| p.to_string()).unwrap_or_default();
        let ports = match (r.from_port, r.to_port) {
            (Some(f), Some(t)) if f == t => format!(" {f}"),
            (Some(f), Some(t)) => format!(" {f}-{t}"),
            _ => String::new(),
        };
        let protocol = if r.protocol == "-1" { "all".to_string() } else { r.protocol.clone() };
        let peer = r.cidr_ipv4.clone().or_else(|| r.cidr_ipv6.clone()).or_else(|| r.referenced_group_id.clone()).unwrap_or_default();
        Self {
            text: format!("{protocol}{ports} {} {peer}", if r.egress { "to" } else { "from" }),
            protocol: r.protocol.clone(),
            from_port: port(r.from_port),
            to_port: port(r.to_port),
            cidr: peer,
            description: r.description.clone().unwrap_or_default(),
        }
    }
}

struct GroupRow {
    instance: String,
    id: String,
    name: String,
    description: String,
    vpc: String,
    /// `key=value, ...`.
    tags: String,
    /// `("ingress", its inbound rules)` then `("egress", its outbound rules)`.
    rules: [(&'static str, Vec<RuleRow>); 2],
}

impl GroupRow {
    fn of(g: SecurityGroup) -> Self {
        Self {
            instance: g.instance.to_string(),
            rules: [
                ("ingress", g.rules.iter().filter(|r| !r.egress).map(RuleRow::of).collect()),
                ("egress", g.rules.iter().filter(|r| r.egress).map(RuleRow::of).collect()),
            ],
            tags: g.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            id: g.group_id,
            name: g.name,
            description: g.description,
            vpc: g.vpc_id.unwrap_or_default(),
        }
    }

    /// `instance/id`, the rule form's value for this group.
    fn key(&self) -> String {
        format!("{}/{}", self.instance, self.id)
    }
}

/// The create form as typed.
#[derive(Deserialize, Default, Clone)]
pub(super) struct CreateForm {
    #[serde(default)]
    instance: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    vpc_id: String,
    /// `key=value`, one per line or comma-separated.
    #[serde(default)]
    tags: String,
}

/// The rule form as typed (`group` is `instance/id`).
#[derive(Deserialize, Default, Clone)]
pub(super) struct RuleForm {
    #[serde(default)]
    group: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    from_port: String,
    #[serde(default)]
    to_port: String,
    /// A CIDR block, or a group id (`sg-...`).
    #[serde(default)]
    cidr: String,
    #[serde(default)]
    description: String,
    /// `ingress` (also when empty) or `egress`.
    #[serde(default)]
    direction: String,
}

impl RuleForm {
    /// The blank form of a direction: tcp, the whole internet.
    fn blank(direction: RuleDirection) -> Self {
        let direction = if direction == RuleDirection::Egress { "egress" } else { "ingress" };
        Self { protocol: "tcp".into(), cidr: "0.0.0.0/0".into(), direction: direction.into(), ..Self::default() }
    }

    fn direction(&self) -> Result<RuleDirection, ()> {
        match self.direction.trim() {
            "" | "ingress" => Ok(RuleDirection::Ingress),
            "egress" => Ok(RuleDirection::Egress),
            _ => Err(()),
        }
    }
}

#[derive(Template)]
#[template(path = "security_groups.html")]
struct GroupsPage {
    c: Chrome,
    groups: Vec<GroupRow>,
    problems: Vec<(String, String)>,
    instances: Vec<String>,
    form: CreateForm,
    /// The inbound rule form.
    rule: RuleForm,
    /// The outbound rule form.
    egress_rule: RuleForm,
    errors: FormErrors,
    /// Which form `errors` belong to: `create`, `rule` (inbound), `egress`, or `list` (an action on a row).
    which: &'static str,
}

/// The protocols the rule form offers (value, label).
const PROTOCOLS: [(&str, &str); 4] = [("tcp", "tcp"), ("udp", "udp"), ("icmp", "icmp"), ("-1", "all")];

impl GroupsPage {
    /// Whether the inbound rule form's protocol is `v`.
    fn picked(&self, v: &str) -> bool {
        self.rule.protocol == v
    }

    /// Whether the outbound rule form's protocol is `v`.
    fn picked_egress(&self, v: &str) -> bool {
        self.egress_rule.protocol == v
    }

    fn err(&self, which: &str, field: &str) -> Option<&str> {
        if self.which == which {
            self.errors.of(field)
        } else {
            None
        }
    }
}

async fn render(ui: &Ctx, form: CreateForm, rule: RuleForm, errors: FormErrors, which: &'static str, status: StatusCode) -> UiResult {
    // The rule typed stays in the form it came from; the other is blank.
    let (rule, egress_rule) = match rule.direction() {
        Ok(RuleDirection::Egress) => (RuleForm::blank(RuleDirection::Ingress), rule),
        _ if which == "rule" => (rule, RuleForm::blank(RuleDirection::Egress)),
        _ => (RuleForm::blank(RuleDirection::Ingress), RuleForm::blank(RuleDirection::Egress)),
    };
    let (all, problems) = per_instance(ui, |i| async move { ui.broker.provisioning.security_groups(ui.actor(), &i).await }).await;
    let groups = all.into_iter().map(GroupRow::of).collect();
    let title =
        if ui.actor().in_personal_project() { "Security groups".to_string() } else { format!("Security groups of {}", ui.actor().project) };
    let page = GroupsPage {
        c: ui.chrome("security-groups", title),
        groups,
        problems,
        instances: instances(ui),
        form,
        rule,
        egress_rule,
        errors,
        which,
    };
    Ok(html(status, &page))
}

async fn list(ui: Ctx) -> UiResult {
    render(&ui, CreateForm::default(), RuleForm::default(), FormErrors::none(), "", StatusCode::OK).await
}

/// The tags of the create form: `key=value` per line or comma-separated,
/// then the rules of every resource other than a VM (`Name` allowed).
fn parse_tags(text: &str) -> Result<Tags, String> {
    let mut map = BTreeMap::new();
    for part in text.split(['\n', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("'{part}' is not key=value"));
        };
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Tags::parse_resource(map).map_err(|e| e.message)
}

async fn create(ui: Ctx, form: CsrfForm<CreateForm>) -> UiResult {
    let form = form.into_inner();
    let mut errs = FormErrors::none();
    let instance = InstanceName::parse(form.instance.trim()).map_err(|_| errs.add("instance", "choose a connector instance")).ok();
    if form.name.trim().is_empty() {
        errs.add("name", "give the group a name");
    }
    if form.description.trim().is_empty() {
        errs.add("description", "give the group a description");
    }
    let tags = parse_tags(&form.tags).map_err(|m| errs.add("tags", m)).ok();
    let (Some(instance), Some(tags)) = (instance.filter(|_| !errs.any()), tags) else {
        return render(&ui, form, RuleForm::default(), errs, "create", StatusCode::BAD_REQUEST).await;
    };
    let vpc = Some(form.vpc_id.trim()).filter(|v| !v.is_empty());
    match ui.broker.provisioning.create_security_group(ui.actor(), &instance, form.name.trim(), form.description.trim(), vpc, &tags).await {
        Ok(g) => Ok(ui.redirect_with("/security-groups", &format!("Security group {} ({}) created on {instance}", g.group_id, g.name))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let errs = refused(&e, &["instance", "name", "description", "vpc_id", "tags"], "No security group was created.");
            render(&ui, form, RuleForm::default(), errs, "create", status_of(&e)).await
        }
    }
}

/// The permission a rule form asks for, or its problems.
fn permission(f: &RuleForm) -> Result<IpPermission, FormErrors> {
    let mut errs = FormErrors::none();
    let mut port = |field: &'static str, v: &str| -> Option<i32> {
        let v = v.trim();
        if v.is_empty() {
            return None;
        }
        v.parse::<i32>().map_err(|_| errs.add(field, "a whole number (a port, or an ICMP type or code)")).ok()
    };
    let (from, to) = (port("from_port", &f.from_port), port("to_port", &f.to_port));
    let to = to.or(from);
    let protocol = f.protocol.trim().to_string();
    if protocol.is_empty() {
        errs.add("protocol", "choose a protocol");
    }
    let cidr = f.cidr.trim().to_string();
    if cidr.is_empty() {
        errs.add("cidr", "give a CIDR block, e.g. 0.0.0.0/0, or a security group id (sg-...)");
    }
    if errs.any() {
        return Err(errs);
    }
    let description = Some(f.description.trim().to_string()).filter(|d| !d.is_empty());
    let mut p = IpPermission { protocol, from_port: from, to_port: to, ..IpPermission::default() };
    if cidr.starts_with("sg-") {
        p.groups.push(GroupPair { group_id: cidr, description });
    } else if cidr.contains(':') {
        p.ipv6_ranges.push(CidrRange { cidr, description });
    } else {
        p.ipv4_ranges.push(CidrRange { cidr, description });
    }
    Ok(p)
}

async fn add_rule(ui: Ctx, form: CsrfForm<RuleForm>) -> UiResult {
    let rule = form.into_inner();
    let parts = rule.group.split_once('/').map(|(i, g)| (i.to_string(), g.to_string()));
    let Some(target) = parts.and_then(|p| in_path(&p, |s: &str| Ok::<_, ()>(s.to_string()), "No such security group.").ok()) else {
        let errs = FormErrors::field("group", "choose a security group");
        return render(&ui, CreateForm::default(), rule, errs, "rule", StatusCode::BAD_REQUEST).await;
    };
    let (instance, id) = target;
    let Ok(direction) = rule.direction() else {
        return Err(UiError::NotFound("No such rule direction."));
    };
    let which = if direction == RuleDirection::Egress { "egress" } else { "rule" };
    let perm = match permission(&rule) {
        Ok(p) => p,
        Err(errs) => return render(&ui, CreateForm::default(), rule, errs, which, StatusCode::BAD_REQUEST).await,
    };
    match ui.broker.provisioning.authorize_security_group(ui.actor(), &instance, &id, direction, &[perm]).await {
        Ok(_) => Ok(ui.redirect_with("/security-groups", &format!("{} rule added to {id}", way(direction)))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            let errs = refused(&e, &["protocol", "from_port", "to_port", "cidr", "description"], "No rule was added.");
            render(&ui, CreateForm::default(), rule, errs, which, status_of(&e)).await
        }
    }
}

/// `Ingress` or `Egress`, as a flash message names a rule's direction.
fn way(d: RuleDirection) -> &'static str {
    if d == RuleDirection::Egress {
        "Egress"
    } else {
        "Ingress"
    }
}

fn group_in(p: &(String, String)) -> Result<(InstanceName, String), UiError> {
    in_path(p, |s: &str| if s.starts_with("sg-") { Ok(s.to_string()) } else { Err(()) }, "No such security group.")
}

async fn remove_rule(ui: Ctx, path: web::Path<(String, String)>, form: CsrfForm<RuleForm>) -> UiResult {
    let (instance, id) = group_in(&path)?;
    let rule = form.into_inner();
    let (Ok(perm), Ok(direction)) = (permission(&rule), rule.direction()) else {
        return Err(UiError::NotFound("No such rule."));
    };
    match ui.broker.provisioning.revoke_security_group(ui.actor(), &instance, &id, direction, &[perm]).await {
        Ok(()) => Ok(ui.redirect_with("/security-groups", &format!("{} rule removed from {id}", way(direction)))),
        Err(e) => {
            let (errs, status) = row_refused(e, &format!("The rule of {id} was not removed"))?;
            render(&ui, CreateForm::default(), RuleForm::default(), errs, "list", status).await
        }
    }
}

async fn confirm_delete(ui: Ctx, path: web::Path<(String, String)>) -> UiResult {
    let (instance, id) = group_in(&path)?;
    let g = ui.broker.provisioning.security_group(ui.actor(), &instance, &id).await?;
    ui.actor().require_act()?;
    let q = Confirm::new(
        format!("Delete security group {id}?"),
        format!("/security-groups/{instance}/{id}/delete"),
        "Delete security group",
        "/security-groups",
    )
    .line(format!("Security group {id} ({}) on {instance} is deleted in the cloud with its {} rules.", g.name, g.rules.len()))
    .line("The cloud refuses while a VM or another group's rule uses it.");
    Ok(confirm::page(&ui, "security-groups", q))
}

async fn delete(ui: Ctx, path: web::Path<(String, String)>, _: CsrfForm) -> UiResult {
    let (instance, id) = group_in(&path)?;
    match ui.broker.provisioning.delete_security_group(ui.actor(), &instance, &id).await {
        Ok(()) => Ok(ui.redirect_with("/security-groups", &format!("Security group {id} deleted"))),
        Err(e) => {
            let (errs, status) = row_refused(e, &format!("Security group {id} was not deleted"))?;
            render(&ui, CreateForm::default(), RuleForm::default(), errs, "list", status).await
        }
    }
}
