//! A test hook on listings ([`ListingHold`]): with no hold installed a
//! listing pays one map look-up; with one, listings of that instance wait
//! after reading the world until the hold is released.

use super::*;

/// A test hook: holds this process's listings (`describe_instances`, and so
/// the default `instance_states`) of one sandbox instance after they have
/// read the world and before they answer, until released. A test can then
/// act on a VM while a listing's observation of it is certainly older than
/// the action. Installed by [`ListingHold::install`]; released on
/// [`ListingHold::release`] or drop. No hold installed: one map look-up.
pub struct ListingHold {
    instance: String,
    /// One permit per listing held so far.
    held: tokio::sync::Semaphore,
    released: tokio::sync::watch::Sender<bool>,
}

fn listing_holds() -> MutexGuard<'static, HashMap<String, Arc<ListingHold>>> {
    static HOLDS: std::sync::OnceLock<Mutex<HashMap<String, Arc<ListingHold>>>> = std::sync::OnceLock::new();
    HOLDS.get_or_init(|| Mutex::new(HashMap::new())).lock().unwrap_or_else(|e| e.into_inner())
}

impl ListingHold {
    /// Holds every listing of `instance` from now on until released.
    pub fn install(instance: &str) -> Arc<Self> {
        let hold = Arc::new(Self {
            instance: instance.to_string(),
            held: tokio::sync::Semaphore::new(0),
            released: tokio::sync::watch::channel(false).0,
        });
        listing_holds().insert(instance.to_string(), hold.clone());
        hold
    }

    /// Waits until a listing has read the world and is held.
    pub async fn held(&self) {
        if let Ok(p) = self.held.acquire().await {
            p.forget();
        }
    }

    /// Lets every held listing answer (with what it read) and holds no more.
    pub fn release(&self) {
        let mut holds = listing_holds();
        if holds.get(&self.instance).is_some_and(|h| std::ptr::eq(Arc::as_ptr(h), self)) {
            holds.remove(&self.instance);
        }
        self.released.send_replace(true);
    }

    /// Holds a listing of `instance` while a hold is installed.
    pub(crate) async fn wait(instance: &str) {
        let Some(hold) = listing_holds().get(instance).cloned() else { return };
        let mut released = hold.released.subscribe();
        hold.held.add_permits(1);
        let _ = released.wait_for(|r| *r).await;
    }
}

impl Drop for ListingHold {
    fn drop(&mut self) {
        self.released.send_replace(true);
    }
}
