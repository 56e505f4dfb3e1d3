//! Secrets shown once (a new access key's secret, a new key pair's private
//! key): each held for the session that created it until the page the
//! redirect leads to reads it (once), for at most [`KEEP`]. In this
//! process's memory only: never stored, never in a cookie or a URL (so
//! several replicas need sticky sessions for that page). A value taken is
//! gone; one unread after [`KEEP`] is never given out.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an unread secret is held.
pub const KEEP: Duration = Duration::from_secs(300);

/// One kind of secret held per session (a `static` per kind).
pub struct OneTime<T> {
    held: Mutex<BTreeMap<String, (Instant, T)>>,
}

impl<T> OneTime<T> {
    /// An empty store.
    pub const fn new() -> Self {
        OneTime { held: Mutex::new(BTreeMap::new()) }
    }

    /// Holds `value` for the session `session` (replacing one unread), and
    /// forgets every value held longer than [`KEEP`].
    pub fn put(&self, session: &str, value: T) {
        let mut m = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        m.retain(|_, (at, _)| at.elapsed() < KEEP);
        m.insert(session.to_string(), (Instant::now(), value));
    }

    /// The value held for `session`, removed as it is read.
    pub fn take(&self, session: &str) -> Option<T> {
        let mut m = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        m.remove(session).filter(|(at, _)| at.elapsed() < KEEP).map(|(_, v)| v)
    }
}

impl<T> Default for OneTime<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::OneTime;

    #[test]
    fn a_value_is_given_once_and_only_to_its_session() {
        static STORE: OneTime<String> = OneTime::new();
        STORE.put("s1", "secret".into());
        assert_eq!(STORE.take("s2"), None);
        assert_eq!(STORE.take("s1").as_deref(), Some("secret"));
        assert_eq!(STORE.take("s1"), None, "taken once");
        STORE.put("s1", "a".into());
        STORE.put("s1", "b".into());
        assert_eq!(STORE.take("s1").as_deref(), Some("b"), "a new value replaces one unread");
    }
}
