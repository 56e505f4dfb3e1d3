//! The one clock time-driven rules read (VM leases; the store stamps VM
//! state changes, which metering bills, with it). In production it is the system's clock; a test makes a
//! manual one and sets or advances it, so a rule is tested at the second it
//! is due instead of by sleeping. Clones share the time: the broker hands
//! one clock to every service, and a test holding a clone moves them all.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

/// A shared clock (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Whether the time is set by hand (else the system's).
    manual: AtomicBool,
    /// The manual time, in milliseconds since the epoch.
    ms: AtomicI64,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stays at `at` until set or advanced.
    pub fn manual(at: DateTime<Utc>) -> Self {
        let c = Self::default();
        c.set(at);
        c
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        if self.0.manual.load(Ordering::Acquire) {
            DateTime::from_timestamp_millis(self.0.ms.load(Ordering::Acquire)).unwrap_or_default()
        } else {
            Utc::now()
        }
    }

    /// The time now, in milliseconds since the epoch (as the store keeps times).
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Sets the time (the clock is manual from then on).
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.ms.store(at.timestamp_millis(), Ordering::Release);
        self.0.manual.store(true, Ordering::Release);
    }

    /// Moves a manual clock on by `by` (a system clock becomes manual at now + `by`).
    pub fn advance(&self, by: Duration) {
        self.set(self.now() + by);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn clones_share_a_manual_time() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().with_timezone(&Utc);
        let c = Clock::manual(at);
        let d = c.clone();
        d.advance(Duration::seconds(90));
        assert_eq!(c.now(), at + Duration::seconds(90));
        assert_eq!(c.now_ms(), at.timestamp_millis() + 90_000);
        let sys = Clock::system();
        let before = Utc::now();
        assert!(sys.now() >= before && sys.now() <= Utc::now() + Duration::seconds(1));
    }
}
