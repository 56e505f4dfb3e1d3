//! Checking a native image's cloud side before an admin saves it: each
//! instance's cloud image id is looked up with `DescribeImages` and its
//! default instance type in `DescribeInstanceTypes`, on the cloud behind
//! that connector instance, through the [`Connector`] trait. The cloud is
//! asked with a credential the admin may use there: the one a launch of
//! theirs would use (their own, their project's, a shared one granted to
//! it; for kinds that need none, their sandbox identity), else any shared
//! credential stored for that instance (the first by name). Nothing is
//! written and nothing fails: when no credential can ask, or the cloud
//! cannot be reached in [`CHECK_TIMEOUT`], the verdict is "not checked"
//! with the reason. Reasons never hold a key: a credential is named by its
//! scope and owner only. A cloud's list of instance types is reused for
//! [`TYPES_TTL`] per connector and credential (the form lists them, the
//! save checks against them: one question to the cloud, not two).

use crate::auth::Actor;
use crate::broker::Broker;
use crate::domain::InstanceName;
use crate::registry::Status;
use cloudbroker_connector_api::{Connector, Credentials, InstanceTypeInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a cloud's list of instance types is reused.
pub const TYPES_TTL: Duration = Duration::from_secs(600);

/// Instance types by (connector, credential), with when they were listed.
type TypeCache = Mutex<HashMap<(usize, String), (Instant, Vec<InstanceTypeInfo>)>>;

fn type_cache() -> &'static TypeCache {
    static CACHE: OnceLock<TypeCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The instance types `connector` lists for `creds` (named `label`), reused
/// for [`TYPES_TTL`], waiting at most `wait` for the cloud.
async fn listed_types(
    connector: &Arc<dyn Connector>,
    creds: &Credentials,
    label: &str,
    wait: Duration,
) -> Result<Vec<InstanceTypeInfo>, String> {
    let key = (Arc::as_ptr(connector) as *const () as usize, label.to_string());
    let cached = type_cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    if let Some((_, types)) = cached.filter(|(at, _)| at.elapsed() < TYPES_TTL) {
        return Ok(types);
    }
    match tokio::time::timeout(wait, connector.list_instance_types(creds)).await {
        Ok(Ok(mut types)) => {
            types.sort_by(|a, b| a.name.cmp(&b.name));
            type_cache().lock().unwrap_or_else(|e| e.into_inner()).insert(key, (Instant::now(), types.clone()));
            Ok(types)
        }
        Ok(Err(e)) => Err(why(Ok(e))),
        Err(e) => Err(why(Err(e))),
    }
}

/// How long one question to a cloud may take before it counts as unreachable.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the cloud said about one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The cloud has it.
    Found,
    /// The cloud was asked and has no such image or type.
    Missing,
    /// The cloud could not be asked: why (`no credential`, unreachable...).
    NotChecked(String),
}

/// The check of one instance's mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingCheck {
    /// The credential the cloud was asked with (`the shared credential 'team'`);
    /// empty when none could ask.
    pub asked_with: String,
    /// The image id's verdict (`None`: no id was given to check).
    pub image: Option<Verdict>,
    /// The instance type's verdict (`None`: no type was given).
    pub instance_type: Option<Verdict>,
}

/// The reason a check says when no credential can ask the cloud.
pub const NO_CREDENTIAL: &str = "no credential";

/// A connector that can ask, and the credential to ask with (or why not).
async fn asker(broker: &Broker, actor: &Actor, instance: &InstanceName) -> Result<(Arc<dyn Connector>, Credentials, String), String> {
    let snap = broker.registry.snapshot();
    let Some(entry) = snap.instance(instance.as_str()) else { return Err(format!("no connector instance '{instance}'")) };
    let connector = match (&entry.status, &entry.connector) {
        (Status::Ready, Some(c)) => c.clone(),
        (Status::Error { errors }, _) => return Err(format!("the instance is not ready: {}", errors.join("; "))),
        _ => return Err("the instance is not ready".into()),
    };
    match broker.vault.credentials_to_check(actor, instance).await {
        Ok(Some((creds, label))) => Ok((connector, creds, label)),
        Ok(None) => Err(NO_CREDENTIAL.into()),
        Err(e) if e.is_internal() => Err("the credentials could not be read".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a cloud call gave no answer, for people.
fn why(r: Result<cloudbroker_connector_api::ConnectorError, tokio::time::error::Elapsed>) -> String {
    match r {
        Ok(e) => crate::vault::explain(&e),
        Err(_) => format!("the cloud did not answer within {}s", CHECK_TIMEOUT.as_secs()),
    }
}

/// The instance types the cloud behind `instance` lists, asked as
/// [`check`] asks (or why they could not be listed).
pub async fn instance_types(
    broker: &Broker,
    actor: &Actor,
    instance: &InstanceName,
    wait: Duration,
) -> Result<Vec<InstanceTypeInfo>, String> {
    let (connector, creds, label) = asker(broker, actor, instance).await?;
    listed_types(&connector, &creds, &label, wait).await
}

/// Checks an image id and an instance type on `instance`'s cloud (either may
/// be absent). Never fails: what could not be asked is [`Verdict::NotChecked`].
pub async fn check(
    broker: &Broker,
    actor: &Actor,
    instance: &InstanceName,
    image_id: Option<&str>,
    instance_type: Option<&str>,
) -> MappingCheck {
    if image_id.is_none() && instance_type.is_none() {
        return MappingCheck { asked_with: String::new(), image: None, instance_type: None };
    }
    let (connector, creds, asked_with) = match asker(broker, actor, instance).await {
        Ok(a) => a,
        Err(reason) => {
            let v = Verdict::NotChecked(reason);
            return MappingCheck { asked_with: String::new(), image: image_id.map(|_| v.clone()), instance_type: instance_type.map(|_| v) };
        }
    };
    let image = match image_id {
        None => None,
        Some(id) => Some(match tokio::time::timeout(CHECK_TIMEOUT, connector.describe_image(&creds, id)).await {
            Ok(Ok(Some(_))) => Verdict::Found,
            Ok(Ok(None)) => Verdict::Missing,
            Ok(Err(e)) => Verdict::NotChecked(why(Ok(e))),
            Err(e) => Verdict::NotChecked(why(Err(e))),
        }),
    };
    let instance_type = match instance_type {
        None => None,
        Some(ty) => Some(match listed_types(&connector, &creds, &asked_with, CHECK_TIMEOUT).await {
            Ok(types) if types.iter().any(|t| t.name == ty) => Verdict::Found,
            Ok(_) => Verdict::Missing,
            Err(why) => Verdict::NotChecked(why),
        }),
    };
    MappingCheck { asked_with, image, instance_type }
}
