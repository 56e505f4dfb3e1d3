//! Key pairs: `CreateKeyPair` (Ed25519; the private key is in this answer
//! only), `ImportKeyPair`, `DescribeKeyPairs`, `DeleteKeyPair`. Pairs belong
//! to the project the access key acts in: every member sees them and
//! RunInstances' `KeyName` names one of them; a viewer's create, import or
//! delete is `UnauthorizedOperation`; another project's pairs do not exist
//! (`InvalidKeyPair.NotFound`).

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::{key_pair_id, shown};
use crate::request::Params;
use crate::xml::Xml;
use base64::Engine;
use cloudbroker_core::key_pairs::KeyPair;
use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

fn duplicate(e: ServiceError, name: &str) -> Ec2Error {
    match e {
        ServiceError::Conflict(_) => Ec2Error::client("InvalidKeyPair.Duplicate", format!("The keypair '{}' already exists.", shown(name))),
        ServiceError::Invalid { field: Some("public_key"), message } => Ec2Error::client("InvalidKeyPair.Format", message),
        ServiceError::Invalid { message, .. } => Ec2Error::invalid(message),
        other => other.into(),
    }
}

pub fn not_found(name: &str) -> Ec2Error {
    Ec2Error::client("InvalidKeyPair.NotFound", format!("The key pair '{}' does not exist", shown(name)))
}

/// `CreateKeyPair`'s and `DeleteKeyPair`'s parameter: the key's name
/// (and, for CreateKeyPair, `TagSpecification` of type `key-pair`; a
/// deletion takes none: [`KeyNameInput::parse_name`]).
pub struct KeyNameInput {
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

impl KeyNameInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { name: params.required("KeyName")?.to_string(), tags: tag_specifications(params)? })
    }

    /// The name alone (DeleteKeyPair: tags given are left unread, so refused).
    pub fn parse_name(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { name: params.required("KeyName")?.to_string(), tags: BTreeMap::new() })
    }
}

/// The tags of `TagSpecification.N` with `ResourceType=key-pair`, checked.
fn tag_specifications(params: &Params) -> Result<BTreeMap<String, String>, Ec2Error> {
    let tags: BTreeMap<String, String> = params.tag_specifications("key-pair")?.into_iter().collect();
    cloudbroker_core::key_pairs::check_tags(&tags).map_err(|e| match e {
        ServiceError::Invalid { message, .. } => Ec2Error::invalid(format!("TagSpecification: {message}")),
        e => e.into(),
    })?;
    Ok(tags)
}

/// Writes a `tagSet` (empty when there are none, as EC2 does).
pub fn tag_set(x: &mut Xml, tags: &BTreeMap<String, String>) {
    x.open("tagSet");
    for (k, v) in tags {
        x.open("item").leaf("key", k).leaf("value", v).close("item");
    }
    x.close("tagSet");
}

/// `ImportKeyPair`'s parameters: the name, the public key's text, tags.
pub struct ImportKeyPairInput {
    pub name: String,
    pub public_key: String,
    pub tags: BTreeMap<String, String>,
}

impl ImportKeyPairInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let name = params.required("KeyName")?.to_string();
        let material = params.required("PublicKeyMaterial")?;
        // The Query API carries the key base64-encoded; some clients send it as is.
        let public_key = base64::engine::general_purpose::STANDARD
            .decode(material.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| material.to_string());
        Ok(Self { name, public_key, tags: tag_specifications(params)? })
    }
}

/// The filters DescribeKeyPairs takes (besides `tag:<key>`, `tag-key` and
/// `tag-value`); any other name is refused, as EC2 does.
pub const KEY_PAIR_FILTERS: &[&str] = &["key-pair-id", "key-name", "fingerprint", "key-type"];

/// `DescribeKeyPairs`' parameters.
pub struct DescribeKeyPairsInput {
    pub names: Vec<String>,
    /// `KeyPairId.N`: `key-` ids.
    pub ids: Vec<String>,
    pub filters: Vec<crate::filter::Filter>,
}

impl DescribeKeyPairsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let names = params.list("KeyName")?;
        let ids = params.list("KeyPairId")?;
        let filters = crate::filter::parse(params)?;
        crate::filter::check_names(&filters, KEY_PAIR_FILTERS, true)?;
        Ok(Self { names, ids, filters })
    }
}

/// EC2's key type of a public key (`rsa` or `ed25519`).
fn key_type(public_key: &str) -> &'static str {
    if public_key.trim_start().starts_with("ssh-rsa") {
        "rsa"
    } else {
        "ed25519"
    }
}

pub async fn create_key_pair(
    ctx: &Ctx<'_>,
    input: KeyNameInput,
    key_type: cloudbroker_core::key_pairs::KeyType,
) -> Result<String, Ec2Error> {
    let name = input.name.as_str();
    let me = &ctx.caller.actor;
    if ctx.dry_run {
        ctx.broker.key_pairs.check_new(me, name, None).await.map_err(|e| duplicate(e, name))?;
        return Err(Ec2Error::dry_run());
    }
    let (mut pair, private) = ctx.broker.key_pairs.create_of(me, name, key_type).await.map_err(|e| duplicate(e, name))?;
    if !input.tags.is_empty() {
        pair = ctx.broker.key_pairs.tag(me, name, &input.tags, &[]).await?;
    }
    let (mut x, root) = ctx.doc("CreateKeyPair");
    let id = key_pair_id(me.project.as_str(), &pair.name, &pair.created_at);
    x.leaf("keyName", &pair.name).leaf("keyFingerprint", &pair.fingerprint).leaf("keyMaterial", &private).leaf("keyPairId", &id);
    x.leaf("keyType", key_type.as_str());
    tag_set(&mut x, &pair.tags);
    Ok(x.finish(&root))
}

pub async fn import_key_pair(ctx: &Ctx<'_>, input: ImportKeyPairInput) -> Result<String, Ec2Error> {
    let (name, text) = (input.name.as_str(), input.public_key);
    let me = &ctx.caller.actor;
    if ctx.dry_run {
        ctx.broker.key_pairs.check_new(me, name, Some(&text)).await.map_err(|e| duplicate(e, name))?;
        return Err(Ec2Error::dry_run());
    }
    let mut pair = ctx.broker.key_pairs.import(me, name, &text).await.map_err(|e| duplicate(e, name))?;
    if !input.tags.is_empty() {
        pair = ctx.broker.key_pairs.tag(me, name, &input.tags, &[]).await?;
    }
    let (mut x, root) = ctx.doc("ImportKeyPair");
    let id = key_pair_id(me.project.as_str(), &pair.name, &pair.created_at);
    x.leaf("keyName", &pair.name).leaf("keyFingerprint", &pair.fingerprint).leaf("keyPairId", &id);
    tag_set(&mut x, &pair.tags);
    Ok(x.finish(&root))
}

pub async fn describe_key_pairs(ctx: &Ctx<'_>, input: DescribeKeyPairsInput) -> Result<String, Ec2Error> {
    let DescribeKeyPairsInput { names, ids, filters } = input;
    let me = &ctx.caller.actor;
    let project = me.project.to_string();
    let all: Vec<(String, KeyPair)> =
        ctx.broker.key_pairs.list(me).await?.into_iter().map(|p| (key_pair_id(&project, &p.name, &p.created_at), p)).collect();
    if let Some(missing) = names.iter().find(|n| !all.iter().any(|(_, p)| &p.name == *n)) {
        return Err(not_found(missing));
    }
    if let Some(missing) = ids.iter().find(|i| !all.iter().any(|(id, _)| id == *i)) {
        return Err(not_found(missing));
    }
    let all: Vec<(String, KeyPair)> =
        all.into_iter().filter(|(id, p)| (names.is_empty() || names.contains(&p.name)) && (ids.is_empty() || ids.contains(id))).collect();
    let cost = crate::filter::cost(&filters);
    let kept = crate::filter::retain(all, cost, move |(id, p): &(String, KeyPair)| {
        filters.iter().all(|f| match f.name.as_str() {
            n if n.starts_with("tag") => f.tags(p.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap_or(false),
            "key-pair-id" => f.values.any(id),
            "key-name" => f.values.any(&p.name),
            "fingerprint" => f.values.any_equal(&p.fingerprint),
            "key-type" => f.values.any(key_type(&p.public_key)),
            _ => false,
        })
    })
    .await?;
    let (mut x, root) = ctx.doc("DescribeKeyPairs");
    x.open("keySet");
    for (id, p) in &kept {
        x.open("item").leaf("keyPairId", id).leaf("keyName", &p.name).leaf("keyFingerprint", &p.fingerprint);
        x.leaf("keyType", key_type(&p.public_key)).leaf("publicKey", &p.public_key).leaf_time("createTime", &p.created_at);
        tag_set(&mut x, &p.tags);
        x.close("item");
    }
    x.close("keySet");
    Ok(x.finish(&root))
}

pub async fn delete_key_pair(ctx: &Ctx<'_>, input: KeyNameInput) -> Result<String, Ec2Error> {
    let name = input.name.as_str();
    let me = &ctx.caller.actor;
    // EC2 answers true whether or not the pair existed.
    if ctx.dry_run {
        ctx.broker.key_pairs.check_delete(me)?;
        match ctx.broker.key_pairs.get(me, name).await {
            Ok(_) | Err(ServiceError::NotFound(_)) => return Err(Ec2Error::dry_run()),
            Err(e) => return Err(e.into()),
        }
    }
    match ctx.broker.key_pairs.delete(me, name).await {
        Ok(()) | Err(ServiceError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let (mut x, root) = ctx.doc("DeleteKeyPair");
    x.leaf("return", "true");
    Ok(x.finish(&root))
}
