//! State a connector keeps outside its process, in the broker's database:
//! the sandbox's simulated clouds. The broker implements [`WorldStore`] and
//! hands it to builders through [`crate::builder::BuildContext`], so no
//! connector crate reaches the database and the broker names no connector.

use async_trait::async_trait;

/// A change to a stored world: gets the stored JSON (if any), answers the
/// JSON to store (if anything changed).
pub type WorldChange<'a> = Box<dyn for<'b> FnOnce(Option<&'b [u8]>) -> Option<Vec<u8>> + Send + 'a>;

/// The code of the error a call answers when the database that keeps the
/// world is unavailable for now (nothing changed): not the simulated
/// cloud's refusal, so the broker answers it as its own database being
/// unavailable (503 `database_unavailable`), not as a cloud error (502).
pub const DATABASE_UNAVAILABLE_CODE: &str = "SandboxDatabaseUnavailable";

/// Why a [`WorldStore`] could not run a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorldStoreError {
    /// The database cannot be reached or refuses work for now; nothing changed.
    Unavailable(String),
    /// Anything else.
    Failed(String),
}

/// Keeps connector worlds outside the process (the broker's database).
#[async_trait]
pub trait WorldStore: Send + Sync {
    /// Runs `f` on the stored world of `instance` (`None` when none is
    /// stored yet) inside one transaction that excludes every other caller
    /// for this instance, on any replica; stores what `f` returns, if anything.
    async fn update<'a>(&'a self, instance: &'a str, f: WorldChange<'a>) -> Result<(), WorldStoreError>;
}
