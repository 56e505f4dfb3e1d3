//! The broker's one typed configuration: an optional TOML file, then
//! `CLOUDBROKER_*` environment variables, then command-line flags; validated
//! once by [`RawConfig::finish`].

use cloudbroker_connector_api::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Directory for the embedded database, the master key and the pid file.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Directory of `*.conf` connector files.
    pub connectors_dir: PathBuf,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `cloudbroker=debug,info`.
    pub log_level: String,
    /// The URL users reach the broker at (https makes cookies Secure).
    pub public_url: Option<String>,
    /// The file holding the master key(s).
    pub master_key_file: PathBuf,
    /// The initial password of `super` (only used when `super` is created).
    pub admin_password: Option<SecretString>,
    /// Seconds between reconciliation passes.
    pub reconcile_interval_secs: u64,
    /// Seconds between checks for configuration changes made on other replicas.
    pub config_poll_secs: u64,
    /// A launch not seen in the cloud after this many seconds is failed by the reconciler.
    pub launch_grace_secs: u64,
    /// A web session ends after this many idle seconds.
    pub session_idle_secs: u64,
    /// A web session ends this many seconds after login, however active.
    pub session_absolute_secs: u64,
    /// Bearer token that opens `GET /metrics` to scrapers from anywhere;
    /// without one, only direct loopback clients may scrape.
    pub metrics_token: Option<SecretString>,
    /// Seconds between SIGTERM and closing the listener, while `/readyz`
    /// already answers 503 (lets load balancers notice before connections
    /// are refused); 0 closes at once.
    pub shutdown_delay_secs: u64,
    /// PEM certificate chain and private key: serve HTTPS directly (both or neither).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Every setting, all optional; layers merge, later wins.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub connectors_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub public_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    #[serde(skip)]
    pub admin_password: Option<SecretString>,
    pub reconcile_interval_secs: Option<u64>,
    pub config_poll_secs: Option<u64>,
    pub session_idle_secs: Option<u64>,
    pub session_absolute_secs: Option<u64>,
    pub launch_grace_secs: Option<u64>,
    #[serde(skip)]
    pub metrics_token: Option<SecretString>,
    pub shutdown_delay_secs: Option<u64>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

/// Parses a number of seconds from the variable `CLOUDBROKER_<name>`.
fn secs(name: &str, v: &str) -> Result<u64, ConfigError> {
    v.parse().map_err(|_| ConfigError(format!("CLOUDBROKER_{name}: '{v}' is not a number")))
}

/// A configuration error, naming the setting and where it came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

macro_rules! merge_fields {
    ($dst:ident, $src:ident, $($f:ident),*) => { $( if $src.$f.is_some() { $dst.$f = $src.$f; } )* };
}

impl RawConfig {
    /// Reads a TOML file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Reads `CLOUDBROKER_*` variables from the given environment.
    /// `CLOUDBROKER_ADMIN_PASSWORD_FILE` reads the password from a file.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut c = RawConfig::default();
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("CLOUDBROKER_") else { continue };
            match name {
                "LISTEN" => c.listen = Some(v),
                "DATA_DIR" => c.data_dir = Some(v.into()),
                "DATABASE_URL" => c.database_url = Some(v),
                "CONNECTORS_DIR" => c.connectors_dir = Some(v.into()),
                "LOG_FORMAT" => c.log_format = Some(v),
                "LOG_LEVEL" => c.log_level = Some(v),
                "PUBLIC_URL" => c.public_url = Some(v),
                "MASTER_KEY_FILE" => c.master_key_file = Some(v.into()),
                "ADMIN_PASSWORD" => c.admin_password = Some(SecretString::new(v)),
                "ADMIN_PASSWORD_FILE" => {
                    let p = std::fs::read_to_string(&v).map_err(|e| ConfigError(format!("CLOUDBROKER_ADMIN_PASSWORD_FILE={v}: {e}")))?;
                    c.admin_password = Some(SecretString::new(p.trim_end_matches(['\n', '\r'])));
                }
                "METRICS_TOKEN" => c.metrics_token = Some(SecretString::new(v)),
                "METRICS_TOKEN_FILE" => {
                    let p = std::fs::read_to_string(&v).map_err(|e| ConfigError(format!("CLOUDBROKER_METRICS_TOKEN_FILE={v}: {e}")))?;
                    c.metrics_token = Some(SecretString::new(p.trim()));
                }
                "LAUNCH_GRACE_SECS" => c.launch_grace_secs = Some(secs(name, &v)?),
                "SESSION_IDLE_SECS" => c.session_idle_secs = Some(secs(name, &v)?),
                "SESSION_ABSOLUTE_SECS" => c.session_absolute_secs = Some(secs(name, &v)?),
                "RECONCILE_INTERVAL_SECS" => c.reconcile_interval_secs = Some(secs(name, &v)?),
                "TLS_CERT_FILE" => c.tls_cert_file = Some(v.into()),
                "TLS_KEY_FILE" => c.tls_key_file = Some(v.into()),
                "SHUTDOWN_DELAY_SECS" => c.shutdown_delay_secs = Some(secs(name, &v)?),
                "CONFIG_POLL_SECS" => c.config_poll_secs = Some(secs(name, &v)?),
                // Variables of tools and tests, not settings.
                _ => {}
            }
        }
        Ok(c)
    }

    /// Overlays `other` on `self` (values set in `other` win).
    pub fn merge(mut self, other: RawConfig) -> Self {
        merge_fields!(
            self,
            other,
            listen,
            data_dir,
            database_url,
            connectors_dir,
            log_format,
            log_level,
            public_url,
            master_key_file,
            admin_password,
            reconcile_interval_secs,
            config_poll_secs,
            session_idle_secs,
            session_absolute_secs,
            launch_grace_secs,
            metrics_token,
            shutdown_delay_secs,
            tls_cert_file,
            tls_key_file
        );
        self
    }

    /// Validates and fills defaults.
    pub fn finish(self) -> Result<Config, ConfigError> {
        let listen_raw = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_raw
            .parse()
            .map_err(|_| ConfigError(format!("listen: '{listen_raw}' is not an address:port (e.g. 127.0.0.1:8080 or [::1]:8080)")))?;
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = self.database_url.unwrap_or_else(|| cloudbroker_store::sqlite_url_for(&data_dir));
        cloudbroker_store::Backend::from_url(&database_url).map_err(|e| ConfigError(format!("database_url: {e}")))?;
        let log_format = match self.log_format.as_deref().unwrap_or("human") {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => return Err(ConfigError(format!("log_format: '{other}' is not human or json"))),
        };
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError(format!("public_url: '{u}' must start with http:// or https://")));
            }
        }
        let reconcile_interval_secs = self.reconcile_interval_secs.unwrap_or(30);
        if reconcile_interval_secs == 0 {
            return Err(ConfigError("reconcile_interval_secs: must be at least 1".into()));
        }
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError("tls_cert_file is set but tls_key_file is not: give both or neither".into())),
            (None, Some(_)) => return Err(ConfigError("tls_key_file is set but tls_cert_file is not: give both or neither".into())),
        };
        Ok(Config {
            tls,
            listen,
            master_key_file: self.master_key_file.unwrap_or_else(|| data_dir.join("master.key")),
            data_dir,
            database_url,
            connectors_dir: self.connectors_dir.unwrap_or_else(|| PathBuf::from("./connectors.d")),
            log_format,
            log_level: self.log_level.unwrap_or_else(|| "info".into()),
            public_url: self.public_url.map(|u| u.trim_end_matches('/').to_string()),
            admin_password: self.admin_password,
            reconcile_interval_secs,
            config_poll_secs: self.config_poll_secs.unwrap_or(5).max(1),
            launch_grace_secs: self.launch_grace_secs.unwrap_or(600),
            session_idle_secs: self.session_idle_secs.unwrap_or(1800).max(1),
            session_absolute_secs: self.session_absolute_secs.unwrap_or(12 * 3600).max(1),
            metrics_token: self.metrics_token.filter(|t| !t.expose().is_empty()),
            shutdown_delay_secs: self.shutdown_delay_secs.unwrap_or(0),
        })
    }
}

impl Config {
    /// A configuration for tests: port 0 on loopback, everything under `dir`.
    pub fn for_tests(dir: &Path, database_url: Option<String>) -> Self {
        let raw = RawConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.to_path_buf()),
            database_url,
            connectors_dir: Some(dir.join("connectors.d")),
            ..RawConfig::default()
        };
        let mut c = match raw.finish() {
            Ok(c) => c,
            Err(e) => unreachable!("test config is valid: {e}"),
        };
        c.reconcile_interval_secs = 3600;
        c
    }

    /// Whether cookies must be marked Secure.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) || self.tls.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_make_bare_serve_work() {
        let c = RawConfig::default().finish().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.database_url, "sqlite://./data/cloudbroker.db");
        assert_eq!(c.connectors_dir, PathBuf::from("./connectors.d"));
        assert_eq!(c.master_key_file, PathBuf::from("./data/master.key"));
        assert_eq!(c.log_format, LogFormat::Human);
        assert!(!c.secure_cookies());
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let file: RawConfig = toml::from_str("listen = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/cb\"\nlog_format = \"json\"\n").unwrap();
        let e =
            RawConfig::from_env(env(&[("CLOUDBROKER_LISTEN", "127.0.0.1:9001"), ("CLOUDBROKER_ADMIN_PASSWORD", "pw"), ("HOME", "/root")]))
                .unwrap();
        let flags = RawConfig { data_dir: Some("/srv/cb".into()), ..RawConfig::default() };
        let c = file.merge(e).merge(flags).finish().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.data_dir, PathBuf::from("/srv/cb"));
        assert_eq!(c.database_url, "sqlite:///srv/cb/cloudbroker.db");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.admin_password.as_ref().map(|p| p.expose()), Some("pw"));
        assert!(!format!("{c:?}").contains("\"pw\""));
    }

    #[test]
    fn clear_errors() {
        let e = RawConfig { listen: Some("localhost".into()), ..RawConfig::default() }.finish().unwrap_err();
        assert!(e.0.starts_with("listen: 'localhost' is not an address:port"), "{e}");
        let e = RawConfig { database_url: Some("mysql://x".into()), ..RawConfig::default() }.finish().unwrap_err();
        assert!(e.0.contains("unsupported database URL scheme 'mysql:'"), "{e}");
        let e = RawConfig { log_format: Some("xml".into()), ..RawConfig::default() }.finish().unwrap_err();
        assert!(e.0.contains("log_format"));
        let e = toml::from_str::<RawConfig>("lisen = \"x\"").unwrap_err().to_string();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        let e = RawConfig::from_env(env(&[("CLOUDBROKER_RECONCILE_INTERVAL_SECS", "soon")])).unwrap_err();
        assert!(e.0.contains("CLOUDBROKER_RECONCILE_INTERVAL_SECS"));
    }

    #[test]
    fn password_file_and_https_cookies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let e = RawConfig::from_env(env(&[
            ("CLOUDBROKER_ADMIN_PASSWORD_FILE", p.to_str().unwrap()),
            ("CLOUDBROKER_PUBLIC_URL", "https://broker.example.org/"),
        ]))
        .unwrap();
        let c = e.finish().unwrap();
        assert_eq!(c.admin_password.as_ref().unwrap().expose(), "s3cret");
        assert!(c.secure_cookies());
        assert_eq!(c.public_url.as_deref(), Some("https://broker.example.org"));
    }
}
