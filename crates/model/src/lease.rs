//! VM leases: what a lease asks for and what the broker does when it ends.
//! A lease is asked for as a duration (`8h`, `90m`, `1d12h`) or an absolute
//! time (RFC 3339); the broker stores only the absolute expiry it comes to,
//! so a restart, a clock read on another replica or a changed parameter
//! never moves a lease already given. Durations are whole seconds, at least
//! one second and at most [`MAX_LEASE_DAYS`] days.

use crate::InvalidValue;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// The longest duration written anywhere (a lease, `lease.max`, `lease.warn`).
pub const MAX_LEASE_DAYS: i64 = 3650;

/// What the broker does to a VM whose lease ends (`lease.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LeaseAction {
    Stop,
    Terminate,
}

impl LeaseAction {
    /// Every action, as written in `lease.action`.
    pub const NAMES: &'static [&'static str] = &["stop", "terminate"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Terminate => "terminate",
        }
    }

    /// Parses `stop` or `terminate`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "stop" => Ok(Self::Stop),
            "terminate" => Ok(Self::Terminate),
            other => Err(InvalidValue::new("lease_action", format!("'{}' is not stop or terminate", crate::clip(other)))),
        }
    }
}

impl std::fmt::Display for LeaseAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a duration: one or more `<number><unit>` parts, units `d`, `h`,
/// `m`, `s` (e.g. `8h`, `90m`, `1d12h`, `45s`), whole and positive, at most
/// [`MAX_LEASE_DAYS`] days. The message says what was wrong.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let shown = crate::clip(text);
    if text.is_empty() {
        return Err("a duration is empty (write e.g. 8h, 90m or 1d12h)".into());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            if digits.len() > 9 {
                return Err(format!("'{shown}' is too long a duration (at most {MAX_LEASE_DAYS} days)"));
            }
            continue;
        }
        let unit: i64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("'{shown}' is not a duration: units are d, h, m and s (e.g. 8h, 90m, 1d12h)")),
        };
        if digits.is_empty() {
            return Err(format!("'{shown}' is not a duration: a number comes before each unit (e.g. 8h, 90m, 1d12h)"));
        }
        let n: i64 = digits.parse().map_err(|_| format!("'{shown}' is not a duration"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("'{shown}' has no unit after its last number: write e.g. {digits}h or {digits}m"));
    }
    if total <= 0 {
        return Err(format!("'{shown}' is not a positive duration"));
    }
    if total > MAX_LEASE_DAYS * 86_400 {
        return Err(format!("'{shown}' is too long a duration (at most {MAX_LEASE_DAYS} days)"));
    }
    Ok(Duration::seconds(total))
}

/// Writes a duration for people, its two largest units: `2d 4h`, `3h 5m`,
/// `12m`, `40s` (negative: as its absolute value).
pub fn format_duration(d: Duration) -> String {
    let s = d.num_seconds().abs();
    let (days, hours, mins, secs) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// A VM's lease as the broker keeps it: the absolute expiry, what happens
/// then, and what has happened so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// When the lease ends (UTC).
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// What the broker does then.
    pub action: LeaseAction,
    /// When the broker recorded the warning that the lease ends soon.
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub warned_at: Option<DateTime<Utc>>,
    /// When the broker dealt with the expiry (acted, or found the VM ended).
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    /// What happened, for people (the warning, the action and how late, or why it was skipped).
    pub note: Option<String>,
}

/// A lease to record with new VMs (times in ms since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewLease {
    pub expires_at: i64,
    pub action: LeaseAction,
    /// When the warning is due (the expiry less `lease.warn`).
    pub warn_at: i64,
}

/// What a client asks a lease to be: a duration from now, or an absolute time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAsk {
    For(Duration),
    Until(DateTime<Utc>),
}

impl LeaseAsk {
    /// Parses `8h`-style durations and RFC 3339 times (field `lease`).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let t = s.trim();
        if t.len() > 64 {
            return Err(InvalidValue::new("lease", "a lease is a duration (e.g. 8h) or an RFC 3339 time, at most 64 characters"));
        }
        if t.contains('T') || t.contains('-') || t.contains(':') {
            return DateTime::parse_from_rfc3339(t).map(|d| Self::Until(d.with_timezone(&Utc))).map_err(|e| {
                InvalidValue::new("lease", format!("'{}' is not an RFC 3339 time (e.g. 2026-12-24T18:00:00Z): {e}", crate::clip(t)))
            });
        }
        parse_duration(t).map(Self::For).map_err(|m| InvalidValue::new("lease", m))
    }

    /// The absolute expiry this asks for, at `now`.
    pub fn expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::For(d) => now + *d,
            Self::Until(t) => *t,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("8h").unwrap(), Duration::hours(8));
        assert_eq!(parse_duration("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration(" 90m ").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("45s").unwrap(), Duration::seconds(45));
        for (bad, why) in [
            ("", "empty"),
            ("8", "no unit"),
            ("h", "a number comes before"),
            ("8w", "units are"),
            ("0h", "positive"),
            ("3651d", "too long"),
            ("99999999999h", "too long"),
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(format_duration(Duration::seconds(40)), "40s");
        assert_eq!(format_duration(Duration::minutes(12)), "12m");
        assert_eq!(format_duration(Duration::minutes(185)), "3h 5m");
        assert_eq!(format_duration(Duration::hours(52)), "2d 4h");
        assert_eq!(format_duration(Duration::hours(-2)), "2h");
    }

    #[test]
    fn asks_are_durations_or_times() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(LeaseAsk::parse("2h").unwrap().expiry(now), now + Duration::hours(2));
        let until = LeaseAsk::parse("2026-12-08T00:00:00+01:00").unwrap();
        assert_eq!(until.expiry(now).to_rfc3339(), "2026-12-07T23:00:00+00:00");
        assert_eq!(LeaseAsk::parse("2026-13-01T00:00:00Z").unwrap_err().field, "lease");
        assert!(LeaseAsk::parse(&"1".repeat(100)).unwrap_err().message.contains("64"));
        assert_eq!(LeaseAction::parse("stop").unwrap(), LeaseAction::Stop);
        assert!(LeaseAction::parse("halt").unwrap_err().message.contains("'halt'"));
    }
}
