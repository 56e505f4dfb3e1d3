//! Where a world lives and how a call enters it: in the broker's database
//! through the [`WorldStore`] of the build context (one transaction per call
//! that excludes every other caller of the instance, on any replica), or in
//! this process's memory, shared by instance name so that rebuilding a
//! connector keeps its VMs. Every call passes the credentials check and the
//! instance's call gate first.

use super::*;

/// The simulated clouds of this process, by instance name: changing an
/// instance's parameters rebuilds its connector but keeps its VMs, as a real
/// cloud would.
pub(crate) fn shared_world(instance: &InstanceName) -> Arc<Mutex<World>> {
    static WORLDS: std::sync::OnceLock<Mutex<HashMap<String, Arc<Mutex<World>>>>> = std::sync::OnceLock::new();
    let m = WORLDS.get_or_init(|| Mutex::new(HashMap::new()));
    m.lock().unwrap_or_else(|e| e.into_inner()).entry(instance.to_string()).or_default().clone()
}

impl SandboxConnector {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) async fn enter<T: Send>(
        &self,
        creds: &Credentials,
        f: impl FnOnce(&mut World, &str) -> Result<T, ConnectorError> + Send,
    ) -> Result<T, ConnectorError> {
        check_creds(creds)?;
        let latency = self.settings.api_latency;
        let cell = Mutex::new(Some(f));
        self.gate
            .call("sandbox", || {
                let taken = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
                async move {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    let f = taken.ok_or_else(|| ConnectorError::Transport { message: "sandbox call retried".into() })?;
                    match &self.persist {
                        None => {
                            let mut w = self.world();
                            self.tick(&mut w);
                            f(&mut w, &creds.access_key_id)
                        }
                        Some(store) => self.enter_stored(store.as_ref(), &creds.access_key_id, f).await,
                    }
                }
            })
            .await
    }

    /// Runs `f` on the world kept in `store`, in its transaction.
    pub(crate) async fn enter_stored<T: Send>(
        &self,
        store: &dyn WorldStore,
        account: &str,
        f: impl FnOnce(&mut World, &str) -> Result<T, ConnectorError> + Send,
    ) -> Result<T, ConnectorError> {
        let mut out: Option<Result<T, ConnectorError>> = None;
        let slot = &mut out;
        let unreadable = |e: serde_json::Error| ConnectorError::Cloud {
            code: "SandboxStateUnreadable".into(),
            message: format!("the sandbox '{}' kept in the database cannot be read ({e}); nothing was changed", self.instance),
        };
        store
            .update(
                self.instance.as_str(),
                Box::new(move |stored: Option<&[u8]>| {
                    let mut w: World = match stored.map(serde_json::from_slice).transpose() {
                        Ok(w) => w.unwrap_or_default(),
                        Err(e) => {
                            *slot = Some(Err(unreadable(e)));
                            return None;
                        }
                    };
                    self.tick(&mut w);
                    let r = f(&mut w, account);
                    let bytes = serde_json::to_vec(&w);
                    *slot = Some(r);
                    match bytes {
                        Ok(b) if Some(b.as_slice()) != stored => Some(b),
                        _ => None,
                    }
                }),
            )
            .await
            .map_err(|e| match e {
                WorldStoreError::Unavailable(message) => ConnectorError::Cloud {
                    code: DATABASE_UNAVAILABLE_CODE.into(),
                    message: format!(
                        "the database keeping the sandbox '{}' is unavailable; nothing was changed ({message})",
                        self.instance
                    ),
                },
                WorldStoreError::Failed(message) => ConnectorError::Transport { message: format!("sandbox state: {message}") },
            })?;
        out.unwrap_or_else(|| Err(ConnectorError::Transport { message: "sandbox state: not run".into() }))
    }
}

pub(crate) fn check_creds(creds: &Credentials) -> Result<(), ConnectorError> {
    if creds.access_key_id.trim().is_empty() || creds.secret_access_key.is_empty() {
        return Err(ConnectorError::Auth {
            code: "AuthFailure".into(),
            message: "sandbox credentials need a non-empty access key id and secret".into(),
        });
    }
    Ok(())
}
