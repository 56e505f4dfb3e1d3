//! The credential cache shared by API tokens and EC2 access keys, and its
//! invalidation epoch. Its invariant: a cached answer is never older than
//! [`KEY_CACHE_TTL`]; any change that can make a cached answer wrong (a
//! key's or token's state, its owner's state or role) bumps the broker's
//! [`CacheEpoch`] before the change is reported done, and every cache of
//! that broker seeing a new epoch forgets everything; an answer looked up
//! while the epoch moved is not kept; refusals are never put in.
//!
//! The epoch belongs to one broker (its services share it), not to the
//! process: two brokers in one process (tests, tools) do not empty each
//! other's caches. A leaf: it depends on [`crate::auth`] only.

use crate::auth::Actor;
use chrono::{DateTime, Utc};
use cloudbroker_connector_api::SecretString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long another replica's change to a key or its owner may go unseen here.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// Keys cached at most (a bound on memory, not a working-set guess).
const KEY_CACHE_MAX: usize = 10_000;

/// Derived keys kept per access key (one per signing date, region and service).
const DERIVED_MAX: usize = 8;

/// One broker's invalidation epoch (cheap to clone: clones share it).
/// Bumped by every change that can make a cached credential wrong; a cache
/// seeing a new value forgets everything.
#[derive(Clone, Debug, Default)]
pub struct CacheEpoch(Arc<AtomicU64>);

impl CacheEpoch {
    /// Forgets every cached access key and API token of the caches sharing
    /// this epoch (called after a key's or token's state, or its owner's
    /// state or role, changed).
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The current epoch (read before a lookup whose answer may be cached).
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Who an access key belongs to, and its secret (for signature checks only).
#[derive(Clone)]
pub struct KeyHolder {
    /// The key's owner; its `expires_at` is the key's.
    pub actor: Actor,
    pub secret: SecretString,
    derived: Arc<Mutex<Vec<Derived>>>,
}

/// A key derived from a secret, with its label (e.g. `aws4/DATE/REGION/SERVICE`).
type Derived = (String, Zeroizing<[u8; 32]>);

impl KeyHolder {
    /// A holder with no derived key yet.
    pub fn new(actor: Actor, secret: SecretString) -> Self {
        Self { actor, secret, derived: Arc::default() }
    }

    /// Whether the key has expired at `now`.
    pub(crate) fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.actor.expires_at.is_some_and(|e| e <= now)
    }

    /// A key derived from the secret (a SigV4 signing key), computed by
    /// `derive` once per `label` while this holder stays cached.
    pub fn derived(&self, label: &str, derive: impl FnOnce(&str) -> [u8; 32]) -> Zeroizing<[u8; 32]> {
        let mut slots = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, k)) = slots.iter().find(|(l, _)| l == label) {
            return k.clone();
        }
        let k = Zeroizing::new(derive(self.secret.expose()));
        if slots.len() >= DERIVED_MAX {
            slots.remove(0);
        }
        slots.push((label.to_string(), k.clone()));
        k
    }
}

struct Cached<V> {
    value: V,
    fetched: Instant,
    /// When this process last recorded the credential's use (ms), to write it at most once a minute.
    touched_ms: Option<i64>,
}

/// Credentials (access keys, API tokens) recently looked up, by key: see
/// the module's invariant (answers at most [`KEY_CACHE_TTL`] old, emptied
/// when its [`CacheEpoch`] moves, refusals never put in).
pub struct CredentialCache<V> {
    epoch: CacheEpoch,
    inner: Mutex<CacheInner<V>>,
}

/// Active access keys recently looked up.
pub type KeyCache = CredentialCache<KeyHolder>;

struct CacheInner<V> {
    epoch: u64,
    keys: HashMap<String, Cached<V>>,
}

impl<V: Clone> CredentialCache<V> {
    /// An empty cache emptied whenever `epoch` moves.
    pub fn new(epoch: CacheEpoch) -> Self {
        let now = epoch.current();
        Self { epoch, inner: Mutex::new(CacheInner { epoch: now, keys: HashMap::new() }) }
    }

    /// The epoch this cache follows (read it before a lookup whose answer
    /// is then [`Self::put`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.current()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner<V>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.epoch.current();
        if g.epoch != now {
            g.keys.clear();
            g.epoch = now;
        }
        g
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let mut g = self.lock();
        match g.keys.get(key) {
            Some(c) if c.fetched.elapsed() < KEY_CACHE_TTL => Some(c.value.clone()),
            Some(_) => {
                g.keys.remove(key);
                None
            }
            None => None,
        }
    }

    /// Forgets one entry (e.g. a token past its expiry).
    pub(crate) fn remove(&self, key: &str) {
        self.lock().keys.remove(key);
    }

    /// Caches `value` unless the cache was invalidated since `epoch` (when the lookup started).
    pub(crate) fn put(&self, key: &str, value: &V, epoch: u64, touched_ms: Option<i64>) {
        let mut g = self.lock();
        if g.epoch != epoch {
            return;
        }
        if g.keys.len() >= KEY_CACHE_MAX {
            g.keys.retain(|_, c| c.fetched.elapsed() < KEY_CACHE_TTL);
            if g.keys.len() >= KEY_CACHE_MAX {
                g.keys.clear();
            }
        }
        g.keys.insert(key.to_string(), Cached { value: value.clone(), fetched: Instant::now(), touched_ms });
    }

    /// Whether the credential's use should be written now (at most once a
    /// minute per key); `None` when it is not cached.
    pub(crate) fn should_touch(&self, key: &str, now_ms: i64) -> Option<bool> {
        let mut g = self.lock();
        let c = g.keys.get_mut(key)?;
        if c.touched_ms.is_some_and(|t| now_ms - t <= 60_000) {
            return Some(false);
        }
        c.touched_ms = Some(now_ms);
        Some(true)
    }

    /// How many entries are cached (for tests).
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> KeyHolder {
        KeyHolder::new(Actor::new(crate::auth::user_name("alice".into()), false), SecretString::new("s3cret"))
    }

    #[test]
    fn cached_holders_expire_and_are_forgotten_on_change() {
        let epoch = CacheEpoch::default();
        let cache = KeyCache::new(epoch.clone());
        let e = cache.epoch();
        cache.put("AKIAAAAAAAAAAAAAAAAA", &holder(), e, None);
        assert!(cache.get("AKIAAAAAAAAAAAAAAAAA").is_some());
        // An entry older than the TTL is not answered (another replica's change is seen within it).
        {
            let mut g = cache.lock();
            for c in g.keys.values_mut() {
                c.fetched = Instant::now().checked_sub(KEY_CACHE_TTL).unwrap_or_else(Instant::now);
            }
        }
        assert!(cache.get("AKIAAAAAAAAAAAAAAAAA").is_none());
        // A change forgets everything.
        let e = cache.epoch();
        cache.put("AKIABBBBBBBBBBBBBBBB", &holder(), e, None);
        epoch.bump();
        assert!(cache.get("AKIABBBBBBBBBBBBBBBB").is_none());
        // A lookup that started before a change does not cache its answer.
        cache.put("AKIACCCCCCCCCCCCCCCC", &holder(), e, None);
        assert!(cache.get("AKIACCCCCCCCCCCCCCCC").is_none());
    }

    #[test]
    fn another_brokers_epoch_leaves_this_cache_alone() {
        let (mine, theirs) = (CacheEpoch::default(), CacheEpoch::default());
        let cache = KeyCache::new(mine.clone());
        cache.put("AKIAAAAAAAAAAAAAAAAA", &holder(), cache.epoch(), None);
        theirs.bump();
        assert!(cache.get("AKIAAAAAAAAAAAAAAAAA").is_some());
        mine.bump();
        assert!(cache.get("AKIAAAAAAAAAAAAAAAAA").is_none());
    }

    #[test]
    fn derived_keys_are_computed_once_per_label() {
        let h = holder();
        let mut calls = 0;
        let a = h.derived("aws4/20260101/sb/ec2", |s| {
            calls += 1;
            assert_eq!(s, "s3cret");
            [1; 32]
        });
        let b = h.derived("aws4/20260101/sb/ec2", |_| {
            calls += 1;
            [2; 32]
        });
        assert_eq!((*a, *b, calls), ([1; 32], [1; 32], 1));
        let c = h.derived("aws4/20260102/sb/ec2", |_| [3; 32]);
        assert_eq!(*c, [3; 32]);
        // Clones (what the cache hands out) share the derived keys.
        assert_eq!(*h.clone().derived("aws4/20260102/sb/ec2", |_| [9; 32]), [3; 32]);
    }
}
