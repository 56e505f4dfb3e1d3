//! The EC2 Query API front-end: awscli, boto3 and the AWS SDKs drive the
//! broker unchanged. Mounted at `/ec2` (and `/ec2/<instance>` for SigV2
//! clients, which cannot name a region in their signature; SigV2 requests to
//! plain `/ec2` use the user's default region, a profile setting). The
//! region of a SigV4 signature names the connector instance to act on.
//! `DryRun=true` is honoured by every action: checks run, nothing changes,
//! the answer is `DryRunOperation` (412) or the error a check found.
//!
//! A request's parameters are its query and form body merged, but only the
//! parts its signature covers ([`auth::Covered`]).
//!
//! Layers, lowest first: [`xml`] (the writer), [`ids`], [`error`] (EC2 codes
//! and statuses), [`request`] (parameters), [`auth`] (signatures),
//! [`action`] (the action named), the [`actions`] per family, each with the
//! typed inputs it parses from the parameters, [`spec`] (what each action
//! takes: the README's table of actions), and the dispatcher here. Nothing here reaches
//! around `cloudbroker-core`: actions call its services as the signing user.

pub mod accepted;
pub mod action;
pub mod actions;
pub mod auth;
pub mod error;
pub mod filter;
pub mod ids;
pub mod request;
pub mod spec;
pub mod xml;

use action::Action;
use actions::Ctx;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use cloudbroker_core::domain::VmAction;
use cloudbroker_core::{Broker, RequestId};
use error::Ec2Error;
use request::Params;

/// The largest request body accepted (EC2 caps requests far below this).
pub const MAX_BODY: usize = 1 << 20;

/// The API version answered (the namespace of the answers).
pub const API_VERSION: &str = "2016-11-15";

/// Mounts the front-end.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ec2")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route("", web::to(handle))
            .route("/", web::to(handle))
            .route("/{instance}", web::to(handle)),
    );
}

/// The request's id, as the HTTP edge chose it (`X-Request-Id`, the log
/// span): EC2's `RequestId` is the same. Mounted without that edge (a bare
/// test app), a fresh one.
fn request_id(req: &HttpRequest) -> String {
    req.extensions().get::<RequestId>().map(|id| id.as_str().to_string()).unwrap_or_else(|| RequestId::generate().to_string())
}

/// One EC2 request: parse, authenticate, dispatch, answer.
async fn handle(req: HttpRequest, body: web::Bytes, broker: web::Data<Broker>) -> HttpResponse {
    let rid = request_id(&req);
    match serve(&req, &body, &broker, &rid).await {
        Ok(xml) => HttpResponse::Ok().content_type("text/xml;charset=UTF-8").insert_header(("x-amzn-RequestId", rid.clone())).body(xml),
        Err(e) => e.response(&rid),
    }
}

async fn serve(req: &HttpRequest, body: &[u8], broker: &Broker, rid: &str) -> Result<String, Ec2Error> {
    let method = req.method().as_str().to_string();
    if method != "GET" && method != "POST" {
        return Err(Ec2Error::new(405, "InvalidAction", "use GET or POST"));
    }
    let raw_query = req.uri().query().unwrap_or("");
    let query = cloudbroker_sigv::parse_query(raw_query).map_err(|e| Ec2Error::invalid(format!("query string: {e}")))?;
    let form_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let form = if method == "POST" && form_type && !body.is_empty() {
        let text = std::str::from_utf8(body).map_err(|_| Ec2Error::invalid("the body is not UTF-8"))?;
        cloudbroker_sigv::parse_form_urlencoded(text).map_err(|e| Ec2Error::invalid(format!("body: {e}")))?
    } else {
        Vec::new()
    };
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let host = req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let signed = auth::Signed { method: &method, path: req.uri().path(), host: &host, query: &query, headers: &headers, body, form: &form };
    let caller = auth::authenticate(broker, &signed, chrono::Utc::now()).await?;
    // Parameters come only from what the signature covers (`auth` refuses a
    // request that carries anything else; this keeps it so).
    let mut pairs: Vec<(String, String)> = Vec::new();
    if caller.covered.query {
        pairs.extend(query.into_iter().filter(|(k, _)| !k.starts_with("X-Amz-")));
    }
    if caller.covered.body {
        pairs.extend(form);
    }
    let params = Params::new(pairs)?;
    let action = params.required("Action")?.to_string();
    let dry_run = Ctx::dry_run_param(&params)?;
    let mut region = caller.region.clone().or_else(|| req.match_info().get("instance").map(str::to_string));
    if region.is_none() {
        // SigV2 to plain `/ec2`: the user's default region (a profile setting), if chosen.
        region = broker.identity.get_user(&caller.actor, &caller.actor.name).await?.default_ec2_region;
    }
    let base_url = match &broker.config.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    let ctx = Ctx { broker, caller, request_id: rid.to_string(), region, base_url, dry_run };
    tracing::debug!(action = %action, user = %ctx.caller.actor.name, dry_run, "EC2 request");
    let action = Action::parse(&action)?;
    if dry_run && action.is_describe() {
        // A Describe changes nothing: it runs (every check of its answer),
        // and the answer is `DryRunOperation` instead of the listing.
        dispatch(&ctx, action, &params).await?;
        return Err(Ec2Error::dry_run());
    }
    dispatch(&ctx, action, &params).await
}

/// Parses the action's typed input from `params`, then runs it. Actions
/// that check the region before their parameters (EC2's order) get it
/// first, as an argument.
async fn dispatch(ctx: &Ctx<'_>, action: Action, params: &Params) -> Result<String, Ec2Error> {
    use actions::{addresses, images, instances, keypairs, regions, tags, volumes};
    match action {
        Action::DescribeRegions => regions::describe_regions(ctx, accepted::input(action, params, regions::DescribeRegionsInput::parse)?),
        Action::DescribeAvailabilityZones => {
            regions::describe_availability_zones(ctx, accepted::input(action, params, regions::DescribeAvailabilityZonesInput::parse)?)
        }
        Action::DescribeAccountAttributes => regions::describe_account_attributes(accepted::input(action, params, |_| Ok(ctx))?).await,
        Action::DescribeInstanceTypes => {
            regions::describe_instance_types(
                ctx,
                ctx.instance()?,
                accepted::input(action, params, regions::DescribeInstanceTypesInput::parse)?,
            )
            .await
        }
        Action::DescribeImages => {
            images::describe_images(ctx, ctx.instance()?, accepted::input(action, params, images::DescribeImagesInput::parse)?).await
        }
        Action::RegisterImage => {
            images::register_image(ctx, ctx.instance()?, accepted::input(action, params, images::RegisterImageInput::parse)?).await
        }
        Action::DeregisterImage => {
            images::deregister_image(ctx, accepted::input(action, params, images::DeregisterImageInput::parse)?).await
        }
        Action::DescribeInstances => {
            instances::describe_instances(ctx, accepted::input(action, params, instances::DescribeInstancesInput::parse)?).await
        }
        Action::DescribeInstanceStatus => {
            instances::describe_instance_status(ctx, accepted::input(action, params, instances::DescribeInstanceStatusInput::parse)?).await
        }
        Action::RunInstances => {
            instances::run_instances(ctx, ctx.instance()?, accepted::input(action, params, instances::RunInstancesInput::parse)?).await
        }
        Action::StartInstances => change_state(ctx, action, VmAction::Start, params).await,
        Action::StopInstances => change_state(ctx, action, VmAction::Stop, params).await,
        Action::RebootInstances => change_state(ctx, action, VmAction::Reboot, params).await,
        Action::TerminateInstances => change_state(ctx, action, VmAction::Terminate, params).await,
        Action::CreateTags => tags::create_tags(ctx, accepted::input(action, params, tags::CreateTagsInput::parse)?).await,
        Action::DeleteTags => tags::delete_tags(ctx, accepted::input(action, params, tags::DeleteTagsInput::parse)?).await,
        Action::DescribeTags => tags::describe_tags(ctx, accepted::input(action, params, tags::DescribeTagsInput::parse)?).await,
        Action::CreateKeyPair => {
            let kind = |p: &Params| Ok((keypairs::KeyNameInput::parse(p)?, actions::key_format::KeyKindInput::parse(p)?));
            let (input, kind) = accepted::input(action, params, kind)?;
            keypairs::create_key_pair(ctx, input, kind.key_type).await
        }
        Action::ImportKeyPair => {
            keypairs::import_key_pair(ctx, accepted::input(action, params, keypairs::ImportKeyPairInput::parse)?).await
        }
        Action::DescribeKeyPairs => {
            keypairs::describe_key_pairs(ctx, accepted::input(action, params, keypairs::DescribeKeyPairsInput::parse)?).await
        }
        Action::DeleteKeyPair => keypairs::delete_key_pair(ctx, accepted::input(action, params, keypairs::KeyNameInput::parse_name)?).await,
        Action::AllocateAddress => {
            addresses::allocate_address(ctx, accepted::input(action, params, addresses::AllocateAddressInput::parse)?).await
        }
        Action::AssociateAddress => {
            addresses::associate_address(ctx, ctx.instance()?, accepted::input(action, params, addresses::AssociateAddressInput::parse)?)
                .await
        }
        Action::DisassociateAddress => {
            addresses::disassociate_address(
                ctx,
                ctx.instance()?,
                accepted::input(action, params, addresses::DisassociateAddressInput::parse)?,
            )
            .await
        }
        Action::ReleaseAddress => {
            addresses::release_address(ctx, ctx.instance()?, accepted::input(action, params, addresses::ReleaseAddressInput::parse)?).await
        }
        Action::DescribeAddresses => {
            addresses::describe_addresses(ctx, accepted::input(action, params, addresses::DescribeAddressesInput::parse)?).await
        }
        Action::CreateVolume => volumes::create_volume(ctx, accepted::input(action, params, volumes::CreateVolumeInput::parse)?).await,
        Action::AttachVolume => volumes::attach_volume(ctx, accepted::input(action, params, volumes::AttachVolumeInput::parse)?).await,
        Action::DetachVolume => volumes::detach_volume(ctx, accepted::input(action, params, volumes::DetachVolumeInput::parse)?).await,
        Action::DeleteVolume => volumes::delete_volume(ctx, accepted::input(action, params, volumes::DeleteVolumeInput::parse)?).await,
        Action::DescribeVolumes => {
            volumes::describe_volumes(ctx, accepted::input(action, params, volumes::DescribeVolumesInput::parse)?).await
        }
        Action::CreateVpc => actions::vpcs::create_vpc(ctx, accepted::input(action, params, actions::vpcs::CreateVpcInput::parse)?).await,
        Action::DeleteVpc => actions::vpcs::delete_vpc(ctx, accepted::input(action, params, actions::vpcs::DeleteVpcInput::parse)?).await,
        Action::DescribeVpcs => {
            actions::vpcs::describe_vpcs(ctx, accepted::input(action, params, actions::vpcs::DescribeNetInput::parse_vpcs)?).await
        }
        Action::CreateSubnet => {
            actions::vpcs::create_subnet(ctx, accepted::input(action, params, actions::vpcs::CreateSubnetInput::parse)?).await
        }
        Action::DeleteSubnet => {
            actions::vpcs::delete_subnet(ctx, accepted::input(action, params, actions::vpcs::DeleteSubnetInput::parse)?).await
        }
        Action::DescribeSubnets => {
            actions::vpcs::describe_subnets(ctx, accepted::input(action, params, actions::vpcs::DescribeNetInput::parse_subnets)?).await
        }
        Action::ModifySubnetAttribute => {
            let input = accepted::input(action, params, actions::vpcs::ModifySubnetAttributeInput::parse)?;
            actions::vpcs::modify_subnet_attribute(ctx, input).await
        }
        Action::CreateSnapshot => {
            actions::snapshots::create_snapshot(ctx, accepted::input(action, params, actions::snapshots::CreateSnapshotInput::parse)?).await
        }
        Action::DeleteSnapshot => {
            actions::snapshots::delete_snapshot(ctx, accepted::input(action, params, actions::snapshots::DeleteSnapshotInput::parse)?).await
        }
        Action::DescribeSnapshots => {
            let input = accepted::input(action, params, actions::snapshots::DescribeSnapshotsInput::parse)?;
            actions::snapshots::describe_snapshots(ctx, input).await
        }
        Action::CreateImage => {
            actions::snapshots::create_image(ctx, accepted::input(action, params, actions::snapshots::CreateImageInput::parse)?).await
        }
        Action::DescribeImageAttribute => {
            let input = accepted::input(action, params, actions::snapshots::DescribeImageAttributeInput::parse)?;
            actions::snapshots::describe_image_attribute(ctx, input).await
        }
        Action::ModifyImageAttribute => {
            let input = accepted::input(action, params, actions::snapshots::ModifyImageAttributeInput::parse)?;
            actions::snapshots::modify_image_attribute(ctx, input).await
        }
        Action::DescribeInstanceAttribute => {
            let input = accepted::input(action, params, actions::attributes::DescribeInstanceAttributeInput::parse)?;
            actions::attributes::describe_instance_attribute(ctx, input).await
        }
        Action::ModifyInstanceAttribute => {
            let input = accepted::input(action, params, actions::attributes::ModifyInstanceAttributeInput::parse)?;
            actions::attributes::modify_instance_attribute(ctx, input).await
        }
        Action::GetConsoleOutput => {
            let input = accepted::input(action, params, actions::attributes::GetConsoleOutputInput::parse)?;
            actions::attributes::get_console_output(ctx, input).await
        }
        Action::DescribeInstanceTypeOfferings => {
            let instance = ctx.instance()?;
            let input = accepted::input(action, params, actions::attributes::DescribeInstanceTypeOfferingsInput::parse)?;
            actions::attributes::describe_instance_type_offerings(ctx, instance, input).await
        }
        Action::CreateSecurityGroup => {
            let input = accepted::input(action, params, actions::security_groups::CreateSecurityGroupInput::parse)?;
            actions::security_groups::create_security_group(ctx, input).await
        }
        Action::DeleteSecurityGroup => {
            let input = accepted::input(action, params, actions::security_groups::DeleteSecurityGroupInput::parse)?;
            actions::security_groups::delete_security_group(ctx, input).await
        }
        Action::DescribeSecurityGroups => {
            let input = accepted::input(action, params, actions::security_groups::DescribeSecurityGroupsInput::parse)?;
            actions::security_groups::describe_security_groups(ctx, input).await
        }
        Action::AuthorizeSecurityGroupIngress => {
            actions::security_groups::authorize_ingress(
                ctx,
                accepted::input(action, params, actions::security_groups::RulesInput::parse_ingress)?,
            )
            .await
        }
        Action::AuthorizeSecurityGroupEgress => {
            actions::security_groups::authorize_egress(ctx, accepted::input(action, params, actions::security_groups::RulesInput::parse)?)
                .await
        }
        Action::RevokeSecurityGroupIngress => {
            actions::security_groups::revoke_ingress(
                ctx,
                accepted::input(action, params, actions::security_groups::RulesInput::parse_revoke_ingress)?,
            )
            .await
        }
        Action::RevokeSecurityGroupEgress => {
            actions::security_groups::revoke_egress(
                ctx,
                accepted::input(action, params, actions::security_groups::RulesInput::parse_revoke_egress)?,
            )
            .await
        }
        Action::DescribeSecurityGroupRules => {
            let input = accepted::input(action, params, actions::security_groups::DescribeSecurityGroupRulesInput::parse)?;
            actions::security_groups::describe_security_group_rules(ctx, input).await
        }
    }
}

async fn change_state(ctx: &Ctx<'_>, action: Action, vm_action: VmAction, params: &Params) -> Result<String, Ec2Error> {
    let input = accepted::input(action, params, actions::instances::ChangeStateInput::parse)?;
    actions::instances::change_state(ctx, action, vm_action, input).await
}
