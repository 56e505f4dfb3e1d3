//! Connectors describe themselves; the binary composes them. Each connector
//! crate implements [`ConnectorBuilder`] (its [`ConnectorKind`] with its
//! parameters, and how to build an instance); the binary registers the
//! builders it ships in one [`Connectors`] set and hands it to the broker.
//! A kind name is valid exactly when a registered builder declares it: the
//! set is the only place kinds are parsed, so a new connector needs no edit
//! here nor in the broker.

use crate::error::ConnectorError;
use crate::names::{InstanceName, NameError};
use crate::params::{ConnectorKind, ParamValues};
use crate::state::WorldStore;
use crate::Connector;
use std::sync::Arc;

/// What the broker lends a builder.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// Where worlds are kept across restarts and replicas (the broker's
    /// database); `None`: in this process's memory.
    pub worlds: Option<Arc<dyn WorldStore>>,
}

/// A connector kind, and how to build instances of it.
pub trait ConnectorBuilder: Send + Sync + 'static {
    /// The kind, with its parameters, their help and defaults, and whether
    /// users need credentials.
    fn kind(&self) -> ConnectorKind;

    /// Builds the connector object of one instance from its validated values.
    fn build(&self, instance: InstanceName, params: &ParamValues, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// The connector kinds a broker knows: builders by kind name, with the
/// context they are built in.
#[derive(Clone, Default)]
pub struct Connectors {
    /// Sorted by kind name, one per name.
    builders: Vec<Arc<dyn ConnectorBuilder>>,
    context: BuildContext,
}

impl Connectors {
    /// No kind at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a builder (replacing one of the same kind name).
    pub fn with(mut self, builder: impl ConnectorBuilder) -> Self {
        let name = builder.kind().as_str();
        self.builders.retain(|b| b.kind().as_str() != name);
        self.builders.push(Arc::new(builder));
        self.builders.sort_by_key(|b| b.kind().as_str());
        self
    }

    /// The same kinds, built with `worlds` keeping their state.
    pub fn with_worlds(mut self, worlds: Arc<dyn WorldStore>) -> Self {
        self.context.worlds = Some(worlds);
        self
    }

    /// The registered kinds, sorted by name.
    pub fn kinds(&self) -> Vec<ConnectorKind> {
        self.builders.iter().map(|b| b.kind()).collect()
    }

    /// Parses a kind name (exact, lowercase) against the registered kinds.
    pub fn kind(&self, name: &str) -> Result<ConnectorKind, NameError> {
        self.builders.iter().map(|b| b.kind()).find(|k| k.as_str() == name).ok_or_else(|| {
            let known: Vec<&str> = self.builders.iter().map(|b| b.kind().as_str()).collect();
            NameError::UnknownKind(name.to_string(), known.join(", "))
        })
    }

    /// Builds the connector object of one instance of `kind`.
    pub fn build(&self, kind: ConnectorKind, instance: InstanceName, params: &ParamValues) -> Result<Arc<dyn Connector>, ConnectorError> {
        match self.builders.iter().find(|b| b.kind() == kind) {
            Some(b) => b.build(instance, params, &self.context),
            None => Err(ConnectorError::InvalidRequest {
                code: "UnknownConnectorKind".into(),
                message: format!("no connector of kind '{kind}' is registered"),
            }),
        }
    }
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors").field("kinds", &self.kinds()).field("persistent", &self.context.worlds.is_some()).finish()
    }
}
