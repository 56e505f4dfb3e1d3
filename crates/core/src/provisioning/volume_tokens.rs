//! CreateVolume's client token (EC2's `ClientToken`): a token is the
//! project's on a connector instance (any member may send it). The first
//! request with a token claims it in the database before the cloud is
//! asked, so concurrent requests on any replica make one volume; the others
//! wait for it and answer it, as does every later request with the same
//! parameters (no second cloud call). Other parameters with the same token
//! are a conflict (EC2's `IdempotentParameterMismatch`). A failed creation
//! releases the claim, so a retry tries again; a claim left pending by a
//! broker that stopped mid-call is taken over after [`STALE_CLAIM`].

use super::{Provisioning, Volume, VolumeOptions, VolumeSpec};
use crate::auth::Actor;
use crate::domain::InstanceName;
use crate::error::{ServiceError, ServiceResult};
use cloudbroker_store::volume_tokens::VolumeTokenOutcome;
use std::time::Duration;

/// A pending claim older than this was left by a broker that stopped.
pub const STALE_CLAIM: Duration = Duration::from_secs(600);
/// How long a request waits for the request holding its token.
const WAIT: Duration = Duration::from_secs(30);
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(50);

/// A CreateVolume client token: 1-64 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeToken(String);

impl VolumeToken {
    pub fn parse(s: &str) -> ServiceResult<Self> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid_field("client_token", "a client token is 1-64 printable ASCII characters"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request's parameters in the one form compared between requests.
fn canonical(spec: &VolumeSpec, options: &VolumeOptions, snapshot: Option<&str>) -> String {
    serde_json::json!([
        spec.size.gib(),
        spec.zone,
        spec.volume_type,
        options.iops,
        options.encrypted,
        options.throughput,
        snapshot,
        spec.tags.as_map(),
    ])
    .to_string()
}

impl Provisioning {
    /// [`Self::create_volume_from`] once per `token` in the actor's project
    /// on `instance`: a token seen before with the same parameters answers
    /// its volume (as recorded now, even if deleted since); with other
    /// parameters, [`ServiceError::Conflict`].
    pub async fn create_volume_once(
        &self,
        actor: &Actor,
        instance: &InstanceName,
        spec: VolumeSpec,
        options: VolumeOptions,
        snapshot: Option<&str>,
        token: &VolumeToken,
    ) -> ServiceResult<Volume> {
        actor.require_act()?;
        spec.check()?;
        let request = canonical(&spec, &options, snapshot);
        let (project, inst, tok) = (actor.project.as_str(), instance.as_str(), token.as_str());
        let started = std::time::Instant::now();
        loop {
            let held = match self.store.claim_volume_token(project, inst, tok, &request).await? {
                VolumeTokenOutcome::Claimed => break,
                VolumeTokenOutcome::Held(held) => held,
            };
            if held.request != request {
                return Err(ServiceError::Conflict(format!(
                    "client token '{tok}' was already used to create a volume with other parameters"
                )));
            }
            match &held.volume_id {
                Some(id) => {
                    if let Some(row) = self.store.volume(inst, id).await? {
                        return Ok(Volume::from_row(row, instance));
                    }
                }
                None => {
                    let stale = chrono::Duration::from_std(STALE_CLAIM).unwrap_or_default();
                    if held.claimed_at + stale < self.store.clock().now() {
                        let cutoff = held.claimed_at + chrono::Duration::milliseconds(1);
                        self.store.release_volume_token(project, inst, tok, Some(cutoff)).await?;
                        continue;
                    }
                }
            }
            if started.elapsed() > WAIT {
                return Err(ServiceError::Unavailable(format!(
                    "a CreateVolume with client token '{tok}' is still in progress; retry in a moment"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        match self.create_volume_from(actor, instance, spec, options, snapshot).await {
            Ok(v) => {
                self.store.settle_volume_token(project, inst, tok, v.volume_id.as_str()).await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(re) = self.store.release_volume_token(project, inst, tok, None).await {
                    tracing::error!(instance = %instance, error = %re, "a failed CreateVolume's client token was not released");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_printable_ascii_up_to_64() {
        assert!(VolumeToken::parse("3f1c0b9e-1234-4e5f-9a7b-0123456789ab").is_ok());
        assert!(VolumeToken::parse(&"x".repeat(64)).is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert!(VolumeToken::parse(bad).is_err(), "{bad}");
        }
    }
}
