//! Caps on what one project owns and on one resource's tags, enforced here in
//! the services so every edge (EC2 front, JSON API, web UI) meets them, and
//! held under concurrency by the store (the count and the insert share one
//! transaction: `cloudbroker_store::limits`).
//!
//! Key pairs, Elastic IPs and volumes are counted per project (whichever
//! member made them; a user alone: their personal project) over every
//! connector instance (live ones only: a released address or a deleted volume
//! no longer counts). Tags are counted per VM or volume
//! ([`crate::domain::MAX_TAGS`]). The EC2 front answers each with EC2's code
//! (`ResourceLimitExceeded`, `AddressLimitExceeded`, `VolumeLimitExceeded`,
//! `TagLimitExceeded`); the JSON API and the UI with 409 `limit_exceeded`.

use crate::error::ServiceError;
use cloudbroker_store::cloud_objects::ObjectKind;
use cloudbroker_store::limits::{CapError, Owned};

/// Key pairs one project may have.
pub const MAX_KEY_PAIRS: i64 = 1_000;
/// Live Elastic IPs one project may have.
pub const MAX_ADDRESSES: i64 = 100;
/// Live volumes one project may have.
pub const MAX_VOLUMES: i64 = 500;

/// Private images (registered, or made from VMs with `CreateImage`) one
/// project may have.
pub const MAX_PRIVATE_IMAGES: i64 = 100;

/// Live recorded cloud objects of a kind one project may have (over every
/// connector instance).
pub fn max_objects(kind: ObjectKind) -> i64 {
    match kind {
        ObjectKind::SecurityGroup => 500,
        ObjectKind::Vpc => 50,
        ObjectKind::Subnet => 200,
        ObjectKind::Snapshot => 1_000,
    }
}

pub use crate::error::Limit;

/// The cap of what is counted as `kind`.
fn limit_of(kind: Owned) -> Limit {
    match kind {
        Owned::KeyPairs => Limit::KeyPairs,
        Owned::Addresses => Limit::Addresses,
        Owned::Volumes => Limit::Volumes,
        Owned::Objects(k) => Limit::Objects(k),
    }
}

/// The service error of a refused capped insert.
pub(crate) fn capped(e: CapError) -> ServiceError {
    match e {
        CapError::Full { kind, limit, .. } => ServiceError::LimitExceeded { limit: limit_of(kind), max: limit },
        CapError::Store(e) => e.into(),
    }
}

/// Refuses early (before a cloud call) when the project is already at the
/// cap; the capped insert afterwards is what holds under concurrency.
pub(crate) async fn check(store: &cloudbroker_store::Store, kind: Owned, project: &str, max: i64) -> Result<(), ServiceError> {
    if store.owned_count(kind, project).await? >= max {
        return Err(ServiceError::LimitExceeded { limit: limit_of(kind), max });
    }
    Ok(())
}
