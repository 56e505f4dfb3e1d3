//! Key pairs: `CreateKeyPair` (Ed25519; the private key is in this answer
//! only), `ImportKeyPair`, `DescribeKeyPairs`, `DeleteKeyPair`. Pairs belong
//! to the project the access key acts in: every member sees them and
//! RunInstances' `KeyName` names one of them; a viewer's create, import or
//! delete is `UnauthorizedOperation`; another project's pairs do not exist
//! (`InvalidKeyPair.NotFound`).

use super::Ctx;
use crate::error::Ec2Error;
use crate::ids::shown;
use crate::request::Params;
use base64::Engine;
use cloudbroker_core::ServiceError;

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

/// `CreateKeyPair`'s and `DeleteKeyPair`'s parameter: the key's name.
pub struct KeyNameInput {
    pub name: String,
}

impl KeyNameInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        Ok(Self { name: params.required("KeyName")?.to_string() })
    }
}

/// `ImportKeyPair`'s parameters: the name and the public key's text.
pub struct ImportKeyPairInput {
    pub name: String,
    pub public_key: String,
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
        Ok(Self { name, public_key })
    }
}

/// `DescribeKeyPairs`' parameters.
pub struct DescribeKeyPairsInput {
    pub names: Vec<String>,
    pub filters: Vec<crate::filter::Filter>,
}

impl DescribeKeyPairsInput {
    pub fn parse(params: &Params) -> Result<Self, Ec2Error> {
        let names = params.list("KeyName")?;
        let filters = crate::filter::parse(params)?;
        Ok(Self { names, filters })
    }
}

pub async fn create_key_pair(ctx: &Ctx<'_>, input: KeyNameInput) -> Result<String, Ec2Error> {
    let name = input.name.as_str();
    let me = &ctx.caller.actor;
    if ctx.dry_run {
        ctx.broker.key_pairs.check_new(me, name, None).await.map_err(|e| duplicate(e, name))?;
        return Err(Ec2Error::dry_run());
    }
    let (pair, private) = ctx.broker.key_pairs.create(me, name).await.map_err(|e| duplicate(e, name))?;
    let (mut x, root) = ctx.doc("CreateKeyPair");
    x.leaf("keyName", &pair.name).leaf("keyFingerprint", &pair.fingerprint).leaf("keyMaterial", &private).leaf("keyType", "ed25519");
    Ok(x.finish(&root))
}

pub async fn import_key_pair(ctx: &Ctx<'_>, input: ImportKeyPairInput) -> Result<String, Ec2Error> {
    let (name, text) = (input.name.as_str(), input.public_key);
    let me = &ctx.caller.actor;
    if ctx.dry_run {
        ctx.broker.key_pairs.check_new(me, name, Some(&text)).await.map_err(|e| duplicate(e, name))?;
        return Err(Ec2Error::dry_run());
    }
    let pair = ctx.broker.key_pairs.import(me, name, &text).await.map_err(|e| duplicate(e, name))?;
    let (mut x, root) = ctx.doc("ImportKeyPair");
    x.leaf("keyName", &pair.name).leaf("keyFingerprint", &pair.fingerprint);
    Ok(x.finish(&root))
}

pub async fn describe_key_pairs(ctx: &Ctx<'_>, input: DescribeKeyPairsInput) -> Result<String, Ec2Error> {
    let DescribeKeyPairsInput { names, filters } = input;
    let me = &ctx.caller.actor;
    let mut all = ctx.broker.key_pairs.list(me).await?;
    if let Some(missing) = names.iter().find(|n| !all.iter().any(|p| &p.name == *n)) {
        return Err(not_found(missing));
    }
    all.retain(|p| names.is_empty() || names.contains(&p.name));
    let cost = crate::filter::cost(&filters);
    let kept = crate::filter::retain(all, cost, move |p| {
        filters.iter().all(|f| match f.name.as_str() {
            "key-name" => f.values.any(&p.name),
            "fingerprint" => f.values.any_equal(&p.fingerprint),
            _ => false,
        })
    })
    .await?;
    let (mut x, root) = ctx.doc("DescribeKeyPairs");
    x.open("keySet");
    for p in &kept {
        x.open("item").leaf("keyName", &p.name).leaf("keyFingerprint", &p.fingerprint).leaf("publicKey", &p.public_key).close("item");
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
