//! The connector registry: the effective set of connector instances, built
//! from `connectors.d` files and from parameters set in the UI/API, with the
//! origin of every value.
//!
//! **Precedence: files win.** A key set in a file is managed by that file: the
//! UI/API cannot change it (it is told which file and line to edit), and a
//! value stored earlier through the UI for the same key is kept but shown as
//! overridden. Keys not set in files come from the UI/API, then from the
//! connector kind's default. Reloading (SIGHUP, `cloudbroker connectors
//! reload`, `POST /api/v1/connectors/reload`, or a change made on another
//! replica) rebuilds the registry without a restart; connector objects whose
//! kind and parameters did not change are kept (with their worker bounds and,
//! for sandboxes, their simulated VMs).

use chrono::{DateTime, Utc};
use cloudbroker_connector_api::conf::{load_dir, ConfLoad, Location, CONNECTOR_CLASS_KEY};
use cloudbroker_connector_api::decl::{parse_declarations, Declaration};
use cloudbroker_connector_api::params::{validate_value, ParamSpec, ParamType, ParamValues};
use cloudbroker_connector_api::{Connector, ConnectorKind, Connectors, InstanceName};
use cloudbroker_store::params::StoredParam;
use cloudbroker_store::{Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Broker-wide parameters (SlipStream's "Advanced" section).
pub const SYSTEM_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "quota.enable",
        ty: ParamType::Bool,
        default: Some("false"),
        description: "Enforce VM quotas (per user and connector instance).",
        required: false,
        secret: false,
    },
    ParamSpec {
        name: "images.allow.raw",
        ty: ParamType::Bool,
        default: Some("false"),
        description: "Let users launch a raw cloud image id instead of a native image.",
        required: false,
        secret: false,
    },
];

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Origin {
    /// A `connectors.d` file.
    File { file: PathBuf, line: usize },
    /// The UI or the API.
    Ui { updated_by: String, updated_at: DateTime<Utc> },
    /// The declared default.
    Default,
}

impl Origin {
    fn file(l: &Location) -> Self {
        Origin::File { file: l.file.clone(), line: l.line }
    }

    fn ui(p: &StoredParam) -> Self {
        Origin::Ui { updated_by: p.updated_by.clone(), updated_at: p.updated_at }
    }
}

/// The effective value of one parameter.
#[derive(Clone, Debug, Serialize)]
pub struct EffectiveParam {
    pub key: String,
    /// `None` when unset. Secret values are masked.
    pub value: Option<String>,
    pub origin: Origin,
    /// A UI/API value hidden by a file value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_ui_value: Option<String>,
    pub spec: ParamSpec,
}

/// The state of one connector instance.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    Ready,
    Error { errors: Vec<String> },
}

/// One connector instance.
#[derive(Clone, Serialize)]
pub struct InstanceEntry {
    pub name: InstanceName,
    pub kind: ConnectorKind,
    pub declared_by: Origin,
    pub params: Vec<EffectiveParam>,
    pub status: Status,
    #[serde(skip)]
    pub values: ParamValues,
    #[serde(skip)]
    pub connector: Option<Arc<dyn Connector>>,
}

impl std::fmt::Debug for InstanceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceEntry").field("name", &self.name).field("kind", &self.kind).field("status", &self.status).finish()
    }
}

/// A consistent view of the whole configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub instances: Vec<InstanceEntry>,
    pub system: Vec<EffectiveParam>,
    /// Problems with files, named file:line.
    pub file_errors: Vec<String>,
    /// Problems with values stored through the UI/API.
    pub errors: Vec<String>,
    pub files: Vec<PathBuf>,
    pub config_version: i64,
    /// Image ids from `connectors.d/images/*.conf`: image -> instance -> (cloud id, where).
    pub file_images: BTreeMap<String, BTreeMap<String, (String, Location)>>,
    /// Prices and markups from `connectors.d/prices/*.conf` and those set
    /// through the UI/API (files win).
    #[serde(skip)]
    pub prices: Arc<crate::prices::PriceBook>,
    /// Applications declared by `connectors.d/applications/*.yaml|yml|json`
    /// (read-only in the UI/API; each stored as a version on load).
    #[serde(skip)]
    pub file_applications: Vec<crate::app_doc::FileApplication>,
    /// Instances a file declares that were not loaded (their file has
    /// errors, named in `file_errors`): pages list them as failed.
    #[serde(skip)]
    pub rejected: Vec<String>,
}

impl Snapshot {
    /// A connector instance by name.
    pub fn instance(&self, name: &str) -> Option<&InstanceEntry> {
        self.instances.iter().find(|i| i.name.as_str() == name)
    }

    /// A system parameter's effective value.
    pub fn system_value(&self, key: &str) -> Option<&str> {
        self.system.iter().find(|p| p.key == key).and_then(|p| p.value.as_deref())
    }

    /// A boolean system parameter.
    pub fn system_bool(&self, key: &str) -> bool {
        self.system_value(key) == Some("true")
    }

    /// The least running time billed per start of a VM on `instance`
    /// (its `billing.minimum.seconds`; the default for an unknown instance).
    pub fn billing_minimum_seconds(&self, instance: &str) -> i64 {
        self.instance(instance)
            .and_then(|i| i.values.get_set("billing.minimum.seconds"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(crate::prices::DEFAULT_MINIMUM_SECONDS)
    }

    /// Where a key is managed by a file, the file and line.
    pub fn file_location(&self, key: &str) -> Option<(PathBuf, usize)> {
        let found = self.system.iter().chain(self.instances.iter().flat_map(|i| i.params.iter())).find(|p| p.key == key);
        match found.map(|p| &p.origin) {
            Some(Origin::File { file, line }) => Some((file.clone(), *line)),
            _ => None,
        }
    }
}

/// The registry: holds the current snapshot and rebuilds it on reload.
pub struct Registry {
    store: Store,
    connectors_dir: PathBuf,
    /// The kinds this broker knows (registered by the binary), and how to build them.
    connectors: Connectors,
    current: RwLock<Arc<Snapshot>>,
    reload_lock: tokio::sync::Mutex<()>,
}

/// Errors changing the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigChangeError {
    #[error("'{key}' is managed by {file}:{line}; edit the file and reload")]
    ManagedByFile { key: String, file: String, line: usize },
    #[error("unknown parameter '{0}'")]
    UnknownKey(String),
    #[error("bad value for '{key}': {message}")]
    BadValue { key: String, message: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for ConfigChangeError {
    fn from(e: StoreError) -> Self {
        ConfigChangeError::Registry(RegistryError::Store(e))
    }
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading files failed outright (not a file's content: those are file errors).
    #[error("loading {what} failed: {message}")]
    Load { what: &'static str, message: String },
}

impl Registry {
    /// Loads files and stored parameters and builds every connector.
    pub async fn load(store: Store, connectors_dir: &Path, connectors: Connectors) -> Result<Arc<Self>, RegistryError> {
        let empty = Snapshot {
            instances: vec![],
            system: vec![],
            file_errors: vec![],
            errors: vec![],
            files: vec![],
            config_version: -1,
            file_images: BTreeMap::new(),
            prices: Arc::default(),
            file_applications: Vec::new(),
            rejected: Vec::new(),
        };
        let r = Arc::new(Self {
            store,
            connectors_dir: connectors_dir.to_path_buf(),
            connectors,
            current: RwLock::new(Arc::new(empty)),
            reload_lock: tokio::sync::Mutex::new(()),
        });
        r.reload().await?;
        Ok(r)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().map(|g| g.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The connector kinds this broker knows (registered by the binary),
    /// e.g. to list them where a kind is asked for.
    pub fn kinds(&self) -> Vec<ConnectorKind> {
        self.connectors.kinds()
    }

    /// The connectors directory.
    pub fn connectors_dir(&self) -> &Path {
        &self.connectors_dir
    }

    /// Rebuilds the snapshot from files and the store.
    pub async fn reload(&self) -> Result<Arc<Snapshot>, RegistryError> {
        let _guard = self.reload_lock.lock().await;
        let version = self.store.config_version().await?;
        let stored = self.store.list_params().await?;
        let dir = self.connectors_dir.clone();
        let kinds = self.connectors.clone();
        let load = tokio::task::spawn_blocking(move || load_dir(&dir, &kinds))
            .await
            .map_err(|e| RegistryError::Load { what: "connectors.d", message: e.to_string() })?;
        let previous = self.snapshot();
        let mut snap = compose(&load, &stored, version, &previous, &self.connectors);
        let images_dir = self.connectors_dir.join("images");
        let declared: Vec<String> = snap.instances.iter().map(|i| i.name.to_string()).collect();
        let (file_images, image_errors) = tokio::task::spawn_blocking(move || crate::image_files::load_image_files(&images_dir, &declared))
            .await
            .map_err(|e| RegistryError::Load { what: "connectors.d/images", message: e.to_string() })?;
        snap.file_images = file_images;
        snap.file_errors.extend(image_errors);
        let prices_dir = self.connectors_dir.join("prices");
        let (prices, price_errors) = tokio::task::spawn_blocking(move || crate::prices::PriceBook::load_dir(&prices_dir))
            .await
            .map_err(|e| RegistryError::Load { what: "connectors.d/prices", message: e.to_string() })?;
        let mut prices = prices;
        // Prices and markups set through the UI/API (files win: see prices.rs).
        let stored_prices = self.store.list_prices().await?;
        let stored_markups = self.store.list_markups().await?;
        snap.errors.extend(prices.merge_stored(&stored_prices, &stored_markups));
        snap.prices = Arc::new(prices);
        snap.file_errors.extend(price_errors.iter().map(ToString::to_string));
        // Applications from files, each stored as a version (by content hash).
        let apps_dir = self.connectors_dir.join("applications");
        let (file_apps, app_errors) = tokio::task::spawn_blocking(move || crate::app_doc::load_application_files(&apps_dir))
            .await
            .map_err(|e| RegistryError::Load { what: "connectors.d/applications", message: e.to_string() })?;
        snap.file_errors.extend(app_errors);
        snap.errors.extend(crate::app_doc::store_file_applications(&self.store, &file_apps).await);
        snap.file_applications = file_apps;
        let snap = Arc::new(snap);
        for e in snap.file_errors.iter().chain(snap.errors.iter()) {
            tracing::warn!(error = %e, "connector configuration");
        }
        tracing::info!(
            instances = snap.instances.len(),
            ready = snap.instances.iter().filter(|i| i.status == Status::Ready).count(),
            version,
            "connector configuration loaded"
        );
        match self.current.write() {
            Ok(mut g) => *g = snap.clone(),
            Err(e) => *e.into_inner() = snap.clone(),
        }
        Ok(snap)
    }

    /// Reloads if another replica (or this one) changed stored parameters.
    pub async fn reload_if_changed(&self) -> Result<bool, RegistryError> {
        let v = self.store.config_version().await?;
        if v != self.snapshot().config_version {
            self.reload().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Applies changes made through the UI/API (`None` clears a value), after
    /// validating every one of them: nothing is stored if any is refused.
    pub async fn set_params(&self, changes: &[(String, Option<String>)], by: &str) -> Result<Arc<Snapshot>, ConfigChangeError> {
        let snap = self.snapshot();
        let mut clean = Vec::new();
        // Kinds declared after this change, to validate instance keys.
        let mut ui_decls: Vec<Declaration> = Vec::new();
        let class_value = changes
            .iter()
            .find(|(k, _)| k == CONNECTOR_CLASS_KEY)
            .map(|(_, v)| v.clone().unwrap_or_default())
            .or_else(|| self.stored_class(&snap));
        if let Some(v) = &class_value {
            let (d, errs) = parse_declarations(v, &self.connectors);
            if changes.iter().any(|(k, _)| k == CONNECTOR_CLASS_KEY) {
                if let Some(e) = errs.first() {
                    return Err(ConfigChangeError::BadValue { key: CONNECTOR_CLASS_KEY.into(), message: e.to_string() });
                }
            }
            ui_decls = d;
        }
        for (key, value) in changes {
            if let Some((file, line)) = snap.file_location(key) {
                return Err(ConfigChangeError::ManagedByFile { key: key.clone(), file: file.display().to_string(), line });
            }
            let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty());
            if key == CONNECTOR_CLASS_KEY {
                clean.push((key.clone(), value.map(str::to_string)));
                continue;
            }
            let spec = spec_for_key(key, &snap, &ui_decls).ok_or_else(|| ConfigChangeError::UnknownKey(key.clone()))?;
            let v = match value {
                Some(v) => validate_value(spec, v).map_err(|message| ConfigChangeError::BadValue { key: key.clone(), message })?,
                None => None,
            };
            clean.push((key.clone(), v));
        }
        self.store.put_params(&clean, by).await?;
        Ok(self.reload().await?)
    }

    fn stored_class(&self, snap: &Snapshot) -> Option<String> {
        snap.system.iter().find(|p| p.key == CONNECTOR_CLASS_KEY).and_then(|p| match p.origin {
            Origin::Ui { .. } => p.value.clone(),
            _ => p.overridden_ui_value.clone(),
        })
    }
}

fn spec_for_key(key: &str, snap: &Snapshot, ui_decls: &[Declaration]) -> Option<&'static ParamSpec> {
    if let Some(s) = SYSTEM_PARAMS.iter().find(|s| s.name == key) {
        return Some(s);
    }
    let (inst, param) = key.split_once('.')?;
    let kind = snap.instance(inst).map(|i| i.kind).or_else(|| ui_decls.iter().find(|d| d.instance.as_str() == inst).map(|d| d.kind))?;
    kind.param(param)
}

fn mask(spec: &ParamSpec, v: Option<String>) -> Option<String> {
    if spec.secret {
        v.map(|_| "***".to_string())
    } else {
        v
    }
}

/// Composes the effective configuration (pure, apart from building connectors).
pub fn compose(load: &ConfLoad, stored: &[StoredParam], version: i64, previous: &Snapshot, connectors: &Connectors) -> Snapshot {
    let ui: BTreeMap<&str, &StoredParam> = stored.iter().map(|p| (p.key.as_str(), p)).collect();
    let mut errors = Vec::new();

    // System parameters (files do not set them; the UI/API does).
    let mut system: Vec<EffectiveParam> = Vec::new();
    let class = ui.get(CONNECTOR_CLASS_KEY);
    system.push(EffectiveParam {
        key: CONNECTOR_CLASS_KEY.into(),
        value: class.map(|p| p.value.clone()),
        origin: class.map(|p| Origin::ui(p)).unwrap_or(Origin::Default),
        overridden_ui_value: None,
        spec: ParamSpec {
            name: CONNECTOR_CLASS_KEY,
            ty: ParamType::String,
            default: None,
            description: "Connector instances declared through the UI/API, as <instance>:<connector>, comma-separated (files in connectors.d declare more).",
            required: false,
            secret: false,
        },
    });
    for spec in SYSTEM_PARAMS {
        let (value, origin) = match ui.get(spec.name) {
            Some(p) => match validate_value(spec, &p.value) {
                Ok(v) => (v, Origin::ui(p)),
                Err(e) => {
                    errors.push(format!("stored value of '{}': {e} (using the default)", spec.name));
                    (spec.default.map(str::to_string), Origin::Default)
                }
            },
            None => (spec.default.map(str::to_string), Origin::Default),
        };
        system.push(EffectiveParam { key: spec.name.into(), value, origin, overridden_ui_value: None, spec: spec.clone() });
    }

    // Declarations: files first, then the UI's.
    let mut decls: Vec<(Declaration, Origin, Option<&cloudbroker_connector_api::conf::FileInstance>)> = Vec::new();
    for fi in &load.instances {
        decls.push((fi.declaration.clone(), Origin::file(&fi.location), Some(fi)));
    }
    if let Some(p) = class {
        let (ds, errs) = parse_declarations(&p.value, connectors);
        for e in errs {
            errors.push(format!("{CONNECTOR_CLASS_KEY} (set in the UI): {e}"));
        }
        for d in ds {
            if load.rejected.iter().any(|r| r == d.instance.as_str()) {
                errors.push(format!("instance '{}' is declared in the UI but its file has errors; fix the file", d.instance));
                continue;
            }
            match decls.iter().find(|(x, _, _)| x.instance == d.instance) {
                Some((x, o, _)) if x.kind != d.kind => {
                    let at = match o {
                        Origin::File { file, line } => format!("{}:{line}", file.display()),
                        _ => "the UI".into(),
                    };
                    errors.push(format!(
                        "instance '{}' is declared as {} in the UI and as {} at {at}; the file wins",
                        d.instance, d.kind, x.kind
                    ));
                }
                Some(_) => {}
                None => decls.push((d, Origin::ui(p), None)),
            }
        }
    }

    let mut instances = Vec::new();
    for (decl, declared_by, file) in decls {
        let kind = decl.kind;
        let mut params = Vec::new();
        let mut values = BTreeMap::new();
        let mut inst_errors = Vec::new();
        for spec in kind.params() {
            let key = format!("{}.{}", decl.instance, spec.name);
            let ui_val = ui.get(key.as_str());
            let file_val = file.and_then(|f| f.params.get(spec.name));
            let (value, origin, overridden) = if let Some(fp) = file_val {
                (fp.value.clone(), Origin::File { file: fp.location.file.clone(), line: fp.location.line }, ui_val.map(|p| p.value.clone()))
            } else if let Some(p) = ui_val {
                match validate_value(spec, &p.value) {
                    Ok(v) => (v, Origin::ui(p), None),
                    Err(e) => {
                        inst_errors.push(format!("{key}: {e}"));
                        (None, Origin::ui(p), None)
                    }
                }
            } else {
                (spec.default.map(str::to_string), Origin::Default, None)
            };
            if let (Some(v), false) = (&value, matches!(origin, Origin::Default)) {
                values.insert(spec.name.to_string(), v.clone());
            }
            params.push(EffectiveParam {
                key,
                value: mask(spec, value),
                origin,
                overridden_ui_value: mask(spec, overridden),
                spec: spec.clone(),
            });
        }
        let values = ParamValues::new(values);
        for m in values.missing_required(kind) {
            inst_errors.push(format!("required parameter '{}.{m}' is not set", decl.instance));
        }
        let mut connector = None;
        if inst_errors.is_empty() {
            let reuse = previous
                .instance(decl.instance.as_str())
                .filter(|p| p.kind == kind && p.values == values)
                .and_then(|p| p.connector.clone());
            // Built connectors scrub their errors of the call's credentials.
            match reuse.map(Ok).unwrap_or_else(|| connectors.build(kind, decl.instance.clone(), &values).map(crate::scrubbed::wrap)) {
                Ok(c) => connector = Some(c),
                Err(e) => inst_errors.push(format!("cannot start connector: {e}")),
            }
        }
        let status = if inst_errors.is_empty() { Status::Ready } else { Status::Error { errors: inst_errors } };
        instances.push(InstanceEntry { name: decl.instance, kind, declared_by, params, status, values, connector });
    }

    Snapshot {
        instances,
        system,
        file_errors: load.errors.iter().map(|e| e.to_string()).collect(),
        errors,
        files: load.files.clone(),
        config_version: version,
        file_images: BTreeMap::new(),
        prices: Arc::default(),
        file_applications: Vec::new(),
        rejected: load.rejected.clone(),
    }
}
