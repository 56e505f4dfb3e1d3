//! Login throttling, per account and per client address, shared by every
//! replica through the database (see [`Throttle`]).

use crate::error::{ServiceError, ServiceResult};
use cloudbroker_store::{now_ms, Store};
use std::net::IpAddr;
use std::time::Duration;

/// Login throttling, per account and per client address, shared by every
/// replica through the database (crates/store/src/throttle.rs).
///
/// An attempt is recorded when it is admitted, before the password is
/// checked, so concurrent guesses (on one replica or several) cannot all
/// pass the check; a successful login takes its account's record back. Past
/// `per_account` failures in the window an account is slowed down, not
/// locked out: each further attempt waits twice as long as the previous one,
/// up to `max_delay`, so its owner still gets in. Records older than the
/// window are purged with the expired sessions.
///
/// The per-address rule (`per_address` failures from one client address)
/// slows down guessing across many accounts, but it never refuses a
/// correct password of an account that is not itself slowed down: behind a
/// proxy many users share one address (unless the proxy is trusted, see
/// `trusted_proxies`), and one attacker must not lock them all out. Such an
/// attempt is checked; a wrong password then answers "throttled", exactly
/// as if it had not been checked.
pub struct Throttle {
    store: Store,
}

/// Throttling limits.
#[derive(Clone, Debug)]
pub struct ThrottleLimits {
    pub window: Duration,
    pub per_account: usize,
    pub per_address: usize,
    /// The longest wait between attempts on a slowed-down account.
    pub max_delay: Duration,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self { window: Duration::from_secs(15 * 60), per_account: 5, per_address: 20, max_delay: Duration::from_secs(60) }
    }
}

/// An admitted login attempt (already counted as a failure until taken back).
pub struct Attempt {
    account: String,
    recorded: cloudbroker_store::throttle::RecordedAttempt,
    /// Set when the client address is over its limit: a wrong password is
    /// answered "throttled" (with this wait), a correct one still passes.
    pub(super) address_wait: Option<u64>,
}

impl ThrottleLimits {
    /// The address rule: `Some(seconds to wait)` when an address with
    /// `address` recent attempts (ms, oldest first) is over its limit at `now` (ms).
    fn address_wait(&self, now: i64, address: Option<&[i64]>) -> Option<u64> {
        let window = self.window.as_millis() as i64;
        let v = address?;
        if v.len() < self.per_address {
            return None;
        }
        let oldest = v.first().copied().unwrap_or(now);
        Some(((window - (now - oldest)).max(0) as u64 / 1000).max(1))
    }

    /// The account rule: `Some(seconds to wait)` when an attempt on an
    /// account with `account` recent attempts (ms, oldest first) must wait.
    fn account_wait(&self, now: i64, account: &[i64]) -> Option<u64> {
        if account.len() >= self.per_account {
            let over = u32::try_from(account.len() - self.per_account).unwrap_or(u32::MAX).min(16);
            let delay = (1000i64 << over).min(self.max_delay.as_millis() as i64);
            let since = account.last().map_or(delay, |t| now - t);
            if since < delay {
                return Some((((delay - since) as u64).div_ceil(1000)).max(1));
            }
        }
        None
    }
}

impl Throttle {
    /// The throttle on the store.
    pub(super) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Admits an attempt and records it, or says how long to wait. An
    /// attempt over only the address limit is admitted with
    /// [`Attempt::address_wait`] set: only a correct password may pass it.
    pub(super) async fn admit(&self, limits: &ThrottleLimits, user: &str, addr: Option<IpAddr>) -> ServiceResult<Attempt> {
        let now = now_ms();
        let account = format!("u:{user}");
        let mut keys = vec![account.clone()];
        if let Some(a) = addr {
            keys.push(format!("a:{a}"));
        }
        let since = now - limits.window.as_millis() as i64;
        let has_address = addr.is_some();
        // Set by the rule (run inside the store's transaction): u64::MAX for none.
        let address_wait = std::sync::atomic::AtomicU64::new(u64::MAX);
        let r = self
            .store
            .admit_attempt(&keys, now, since, |seen| {
                let by_address = limits.address_wait(now, if has_address { seen.get(1).map(Vec::as_slice) } else { None });
                address_wait.store(by_address.unwrap_or(u64::MAX), std::sync::atomic::Ordering::Relaxed);
                limits.account_wait(now, &seen[0])
            })
            .await?;
        match r {
            Ok(recorded) => {
                let w = address_wait.load(std::sync::atomic::Ordering::Relaxed);
                Ok(Attempt { account, recorded, address_wait: (w != u64::MAX).then_some(w) })
            }
            Err(retry_after_secs) => Err(ServiceError::Throttled { retry_after_secs }),
        }
    }

    /// A successful login: the account's record goes, and this attempt no
    /// longer counts against its address.
    pub(super) async fn refund(&self, attempt: &Attempt) -> ServiceResult<()> {
        Ok(self.store.take_back_attempt(&attempt.recorded, &attempt.account).await?)
    }

    /// Forgets everything older than the window.
    pub(super) async fn prune(&self, limits: &ThrottleLimits) -> ServiceResult<u64> {
        Ok(self.store.purge_attempts(now_ms() - limits.window.as_millis() as i64).await?)
    }

    /// Accounts and addresses with attempts still counting.
    pub async fn tracked(&self) -> ServiceResult<i64> {
        Ok(self.store.throttled_keys().await?)
    }
}
