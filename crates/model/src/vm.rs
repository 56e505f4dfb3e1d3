//! The broker's view of a VM's life (`VmStatus`, which adds `requested` and
//! `failed` to the cloud's states; the connector API maps its `VmState` in)
//! and the actions a user can take on one. Which statuses count against a
//! quota, are live or are transitional is decided here and nowhere else.

use super::InvalidValue;
use serde::{Deserialize, Serialize};

/// A VM's status as the broker records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VmStatus {
    /// Recorded, the cloud call in flight (or interrupted).
    Requested,
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    /// The cloud refused the launch, or it never appeared.
    Failed,
    /// Admitted with its deployment, waiting for the nodes it depends on
    /// to be ready: no cloud call yet (the reconciler and lease expiry
    /// leave it alone); counted by quotas and committed by budgets like
    /// `requested`. Released to `requested` by the deployment's driver.
    Held,
}

impl VmStatus {
    /// Every status.
    pub const ALL: [VmStatus; 9] = [
        VmStatus::Requested,
        VmStatus::Pending,
        VmStatus::Running,
        VmStatus::Stopping,
        VmStatus::Stopped,
        VmStatus::ShuttingDown,
        VmStatus::Terminated,
        VmStatus::Failed,
        VmStatus::Held,
    ];

    /// The cloud-side statuses that count against a quota: everything that
    /// holds (or may soon hold) cloud resources; a stopped VM keeps its disk.
    /// What quotas count is [`Self::COUNTED`]: these and [`VmStatus::Held`].
    pub const QUOTA_COUNTED: [VmStatus; 5] =
        [VmStatus::Requested, VmStatus::Pending, VmStatus::Running, VmStatus::Stopping, VmStatus::Stopped];

    /// Statuses that count against a quota: [`Self::QUOTA_COUNTED`] and a
    /// deployment's held VMs (admitted, to be launched).
    pub const COUNTED: [VmStatus; 6] =
        [VmStatus::Requested, VmStatus::Pending, VmStatus::Running, VmStatus::Stopping, VmStatus::Stopped, VmStatus::Held];

    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            VmStatus::Requested => "requested",
            VmStatus::Pending => "pending",
            VmStatus::Running => "running",
            VmStatus::Stopping => "stopping",
            VmStatus::Stopped => "stopped",
            VmStatus::ShuttingDown => "shutting-down",
            VmStatus::Terminated => "terminated",
            VmStatus::Failed => "failed",
            VmStatus::Held => "held",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
            InvalidValue::new("state", format!("unknown state '{}' (one of {})", s.chars().take(40).collect::<String>(), known.join(", ")))
        })
    }

    /// Whether it counts against a quota.
    pub fn counts_for_quota(self) -> bool {
        Self::COUNTED.contains(&self)
    }

    /// Whether the cloud may still hold it, or will (a held VM: the
    /// reconciler skips those, which have no cloud call yet).
    pub fn is_live(self) -> bool {
        !matches!(self, VmStatus::Terminated | VmStatus::Failed)
    }

    /// Whether it is on its way to another state (refreshed more often).
    pub fn is_transitional(self) -> bool {
        matches!(self, VmStatus::Pending | VmStatus::Stopping | VmStatus::ShuttingDown)
    }

    /// Names of the quota-counted statuses, for the store's queries.
    pub fn quota_counted_names() -> Vec<&'static str> {
        Self::QUOTA_COUNTED.iter().map(|s| s.as_str()).collect()
    }

    /// The stored names of the live statuses.
    pub fn live_names() -> Vec<&'static str> {
        Self::ALL.iter().filter(|s| s.is_live()).map(|s| s.as_str()).collect()
    }

    /// Names of the transitional statuses (what the transition watch asks about).
    pub fn transitional_names() -> Vec<&'static str> {
        Self::ALL.iter().filter(|s| s.is_transitional()).map(|s| s.as_str()).collect()
    }
}

// Stored as its name (`state` columns).
crate::sql::sql_string!(VmStatus, |s: String| VmStatus::parse(&s), |v: &VmStatus| v.as_str());

impl std::fmt::Display for VmStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user can do to a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmAction {
    Start,
    Stop,
    Reboot,
    Terminate,
}

impl VmAction {
    /// Every action.
    pub const ALL: [VmAction; 4] = [VmAction::Start, VmAction::Stop, VmAction::Reboot, VmAction::Terminate];

    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            VmAction::Start => "start",
            VmAction::Stop => "stop",
            VmAction::Reboot => "reboot",
            VmAction::Terminate => "terminate",
        }
    }

    /// Parses an action name.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            InvalidValue::new(
                "action",
                format!("unknown action '{}' (start, stop, reboot, terminate)", s.chars().take(40).collect::<String>()),
            )
        })
    }
}

impl std::fmt::Display for VmAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_classify() {
        for s in VmStatus::ALL {
            assert_eq!(VmStatus::parse(s.as_str()), Ok(s));
            assert_eq!(serde_json::to_string(&s).ok(), Some(format!("\"{}\"", s.as_str())));
        }
        assert_eq!(VmStatus::quota_counted_names(), vec!["requested", "pending", "running", "stopping", "stopped"]);
        assert!(!VmStatus::ShuttingDown.counts_for_quota() && !VmStatus::Failed.is_live() && VmStatus::Requested.is_live());
        assert!(VmStatus::Pending.is_transitional() && !VmStatus::Running.is_transitional());
        assert!(VmStatus::parse("RUNNING").unwrap_err().message.contains("one of requested"));
    }

    #[test]
    fn held_is_counted_and_live() {
        assert_eq!(VmStatus::parse("held"), Ok(VmStatus::Held));
        assert!(VmStatus::Held.counts_for_quota() && VmStatus::Held.is_live() && !VmStatus::Held.is_transitional());
        assert!(VmStatus::COUNTED.iter().all(|s| s.counts_for_quota()) && VmStatus::COUNTED.len() == VmStatus::QUOTA_COUNTED.len() + 1);
    }

    #[test]
    fn actions() {
        for a in VmAction::ALL {
            assert_eq!(VmAction::parse(a.as_str()), Ok(a));
        }
        assert_eq!(VmAction::parse("explode").unwrap_err().field, "action");
    }
}
