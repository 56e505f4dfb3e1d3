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
    /// Seconds between passes of the lease worker (at most the reconcile interval).
    pub lease_interval_secs: u64,
    /// A replica's claim on a VM's lease expiry older than this many seconds
    /// is taken over by another (the claimant died mid-action).
    pub lease_claim_ttl_secs: u64,
    /// Seconds between passes of the deployments driver (it is also woken
    /// at once by a deploy, a scale, a terminate, an abort, a VM's ready).
    pub deploy_interval_secs: u64,
    /// A replica's claim on a deployment older than this many seconds is
    /// taken over by another (the replica driving it died).
    pub deploy_claim_ttl_secs: u64,
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
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers name the
    /// client (addresses or CIDR networks); from anyone else those headers
    /// are ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<ProxyNet>,
}

/// An address or network a trusted proxy connects from (`10.0.0.0/8`,
/// `127.0.0.1`, `::1`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl ProxyNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: std::net::IpAddr = a.parse().map_err(|_| format!("'{s}' is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{s}': the prefix length must be 0 to {max}")),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

impl std::fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Config {
    /// The client's address: the TCP `peer`, unless the peer is a trusted
    /// proxy, in which case the forwarding headers are read from the right
    /// (the hop nearest this broker) and the first address that is not a
    /// trusted proxy is the client. `forwarded` and `x_forwarded_for` are
    /// the raw header values (every copy, in order).
    pub fn client_address(&self, peer: Option<std::net::IpAddr>, forwarded: &[&str], x_forwarded_for: &[&str]) -> Option<std::net::IpAddr> {
        let peer = peer?;
        if !self.trusted_proxies.iter().any(|n| n.contains(peer)) {
            return Some(peer);
        }
        // RFC 7239 `Forwarded: for=...` wins over the older header when both are sent.
        // Each hop as named; `None` for one that is not an address (`unknown`, an obfuscated name).
        let hops: Vec<Option<std::net::IpAddr>> = if !forwarded.is_empty() {
            forwarded
                .iter()
                .flat_map(|h| h.split(','))
                .filter_map(|elem| {
                    elem.split(';')
                        .filter_map(|pair| pair.split_once('='))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                        .map(|(_, v)| parse_forwarded_node(v.trim()))
                })
                .collect()
        } else {
            x_forwarded_for.iter().flat_map(|h| h.split(',')).map(|v| v.trim().parse().ok()).collect()
        };
        // From the nearest hop outwards: the first one not a trusted proxy.
        // A hop that is not an address ends the walk (what lies beyond it
        // cannot be vouched for): the last trusted hop is the client then.
        let mut last = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusted_proxies.iter().any(|n| n.contains(*ip)) => last = *ip,
                Some(ip) => return Some(*ip),
                None => return Some(last),
            }
        }
        // Every hop is a proxy of ours (or none was named).
        Some(last)
    }
}

/// A `Forwarded` node: `192.0.2.1`, `"[2001:db8::1]:4711"`, `"192.0.2.1:80"`.
fn parse_forwarded_node(v: &str) -> Option<std::net::IpAddr> {
    let v = v.trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    v.parse().ok().or_else(|| v.rsplit_once(':').and_then(|(a, _)| a.parse().ok()))
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
    pub lease_interval_secs: Option<u64>,
    pub lease_claim_ttl_secs: Option<u64>,
    pub deploy_interval_secs: Option<u64>,
    pub deploy_claim_ttl_secs: Option<u64>,
    #[serde(skip)]
    pub metrics_token: Option<SecretString>,
    pub shutdown_delay_secs: Option<u64>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub trusted_proxies: Option<Vec<String>>,
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
                "LEASE_INTERVAL_SECS" => c.lease_interval_secs = Some(secs(name, &v)?),
                "LEASE_CLAIM_TTL_SECS" => c.lease_claim_ttl_secs = Some(secs(name, &v)?),
                "DEPLOY_INTERVAL_SECS" => c.deploy_interval_secs = Some(secs(name, &v)?),
                "DEPLOY_CLAIM_TTL_SECS" => c.deploy_claim_ttl_secs = Some(secs(name, &v)?),
                "SESSION_IDLE_SECS" => c.session_idle_secs = Some(secs(name, &v)?),
                "SESSION_ABSOLUTE_SECS" => c.session_absolute_secs = Some(secs(name, &v)?),
                "RECONCILE_INTERVAL_SECS" => c.reconcile_interval_secs = Some(secs(name, &v)?),
                "TLS_CERT_FILE" => c.tls_cert_file = Some(v.into()),
                "TLS_KEY_FILE" => c.tls_key_file = Some(v.into()),
                "SHUTDOWN_DELAY_SECS" => c.shutdown_delay_secs = Some(secs(name, &v)?),
                "CONFIG_POLL_SECS" => c.config_poll_secs = Some(secs(name, &v)?),
                "TRUSTED_PROXIES" => {
                    c.trusted_proxies = Some(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
                }
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
            lease_interval_secs,
            lease_claim_ttl_secs,
            deploy_interval_secs,
            deploy_claim_ttl_secs,
            metrics_token,
            shutdown_delay_secs,
            tls_cert_file,
            tls_key_file,
            trusted_proxies
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
        let trusted_proxies = self
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|p| ProxyNet::parse(p).map_err(|e| ConfigError(format!("trusted_proxies: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            trusted_proxies,
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
            lease_interval_secs: self.lease_interval_secs.unwrap_or(5).max(1),
            lease_claim_ttl_secs: self.lease_claim_ttl_secs.unwrap_or(120).max(1),
            deploy_interval_secs: self.deploy_interval_secs.unwrap_or(2).max(1),
            deploy_claim_ttl_secs: self.deploy_claim_ttl_secs.unwrap_or(60).max(1),
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

    #[test]
    fn trusted_proxies_parse_and_name_the_bad_value() {
        let c = RawConfig::from_env(env(&[("CLOUDBROKER_TRUSTED_PROXIES", "10.0.0.0/8, ::1")])).unwrap().finish().unwrap();
        assert_eq!(c.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "::1/128"]);
        let file: RawConfig = toml::from_str("trusted_proxies = [\"192.168.1.0/24\"]").unwrap();
        assert_eq!(file.finish().unwrap().trusted_proxies.len(), 1);
        for bad in ["10.0.0.0/33", "proxy.local", "::1/129", "10.0.0.1/x"] {
            let e = RawConfig { trusted_proxies: Some(vec![bad.into()]), ..RawConfig::default() }.finish().unwrap_err();
            assert!(e.0.starts_with("trusted_proxies: ") && e.0.contains(bad), "{e}");
        }
    }

    #[test]
    fn client_address_trusts_forwarding_headers_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mut c = RawConfig::default().finish().unwrap();
        // No trusted proxy: the headers are the client's to forge and are ignored.
        assert_eq!(c.client_address(Some(ip("10.1.2.3")), &[], &["203.0.113.9"]), Some(ip("10.1.2.3")));
        c.trusted_proxies = vec![ProxyNet::parse("10.0.0.0/8").unwrap()];
        // From the proxy: the nearest address that is not a proxy of ours.
        assert_eq!(c.client_address(Some(ip("10.1.2.3")), &[], &["203.0.113.9"]), Some(ip("203.0.113.9")));
        // A client's forged first entry is not believed: the proxy appended the real one.
        assert_eq!(c.client_address(Some(ip("10.1.2.3")), &[], &["198.51.100.1, 203.0.113.9"]), Some(ip("203.0.113.9")));
        assert_eq!(c.client_address(Some(ip("10.1.2.3")), &[], &["203.0.113.9, 10.4.4.4"]), Some(ip("203.0.113.9")));
        // RFC 7239, with ports and IPv6 brackets; it wins over X-Forwarded-For.
        assert_eq!(
            c.client_address(Some(ip("10.1.2.3")), &["for=\"[2001:db8::7]:4711\";proto=https"], &["203.0.113.9"]),
            Some(ip("2001:db8::7"))
        );
        assert_eq!(c.client_address(Some(ip("10.1.2.3")), &["for=192.0.2.60:80, for=10.9.9.9"], &[]), Some(ip("192.0.2.60")));
        // The peer is not a proxy: headers ignored even if present.
        assert_eq!(c.client_address(Some(ip("192.0.2.1")), &["for=198.51.100.1"], &[]), Some(ip("192.0.2.1")));
        // A proxy forwarding nothing: the proxy itself.
        assert_eq!(c.client_address(Some(ip("10.1.2.3")), &[], &[]), Some(ip("10.1.2.3")));
        // An IPv4-mapped peer counts as IPv4.
        assert_eq!(c.client_address(Some(ip("::ffff:10.1.2.3")), &[], &["203.0.113.9"]), Some(ip("203.0.113.9")));
    }
}
