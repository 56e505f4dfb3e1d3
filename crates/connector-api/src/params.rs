//! Parameters each connector kind declares: name, type, default, description,
//! whether it is required and whether it is secret. The conf loader and the
//! system configuration validate values against these specs.

use crate::names::ConnectorKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// The type of a parameter value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamType {
    /// Free text.
    String,
    /// An integer within bounds (inclusive).
    Int { min: i64, max: i64 },
    /// A decimal number within bounds (inclusive).
    Float { min: f64, max: f64 },
    /// `true` or `false`.
    Bool,
    /// An absolute `http://` or `https://` URL.
    Url,
    /// One of a fixed set of words.
    Enum { values: &'static [&'static str] },
    /// A comma-separated list of non-empty words.
    List,
}

/// One declared parameter.
#[derive(Clone, Debug, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    #[serde(flatten)]
    pub ty: ParamType,
    pub default: Option<&'static str>,
    pub description: &'static str,
    pub required: bool,
    pub secret: bool,
}

const fn p(name: &'static str, ty: ParamType, default: Option<&'static str>, description: &'static str) -> ParamSpec {
    ParamSpec { name, ty, default, description, required: false, secret: false }
}

const fn req(name: &'static str, ty: ParamType, description: &'static str) -> ParamSpec {
    ParamSpec { name, ty, default: None, description, required: true, secret: false }
}

/// `connection.policy` values (Scalr): which address the broker reports and uses.
pub const CONNECTION_POLICIES: &[&str] = &["public", "local", "auto"];

const QUOTA_VM: ParamSpec = p(
    "quota.vm",
    ParamType::Int { min: 0, max: 1_000_000 },
    None,
    "Default number of concurrent VMs a user may have on this instance (empty: unset, the broker default of 20 applies). Enforced only when quota.enable is true.",
);
const MAX_WORKERS: ParamSpec = p(
    "max.iaas.workers",
    ParamType::Int { min: 1, max: 1000 },
    Some("20"),
    "Maximum number of concurrent cloud API calls the broker makes to this instance, all users together.",
);
const CONNECTION_POLICY: ParamSpec = p(
    "connection.policy",
    ParamType::Enum { values: CONNECTION_POLICIES },
    Some("auto"),
    "Address reported for VMs: public, local (private), or auto (public if the VM has one, else private).",
);

const EC2_PARAMS: &[ParamSpec] = &[
    req("region", ParamType::String, "AWS region of this instance, e.g. eu-central-1."),
    p("endpoint", ParamType::Url, None, "Override of the EC2 endpoint URL (AWS-compatible clouds, tests)."),
    p("security.group", ParamType::String, Some("default"), "Security group VMs are launched into."),
    p("orchestrator.imageid", ParamType::String, None, "Image id of the orchestrator VM."),
    p("orchestrator.instance.type", ParamType::String, Some("t2.micro"), "Instance type of the orchestrator VM."),
    p("update.clienturl", ParamType::Url, None, "URL of the cloud client bundle given to orchestrators."),
    QUOTA_VM,
    MAX_WORKERS,
    CONNECTION_POLICY,
    p("timeout.seconds", ParamType::Int { min: 1, max: 3600 }, Some("30"), "Timeout of one cloud API call, in seconds."),
];

const EC2QUERY_PARAMS: &[ParamSpec] = &[
    req("endpoint", ParamType::Url, "EC2 Query API endpoint, may contain a path (econe's ssl_server), e.g. https://one.example.org:4567/."),
    p("region", ParamType::String, Some("opennebula"), "Region name used in SigV4 signatures."),
    p("signature.version", ParamType::Enum { values: &["2", "4"] }, Some("4"), "Request signing: 2 (HmacSHA256) or 4 (AWS SigV4)."),
    p("api.version", ParamType::String, Some("2016-11-15"), "EC2 API version sent as Version=."),
    p(
        "instance.types",
        ParamType::List,
        None,
        "Instance types offered by this cloud, comma-separated (the EC2 Query API has no call to list them).",
    ),
    p("security.group", ParamType::String, Some("default"), "Security group VMs are launched into."),
    QUOTA_VM,
    MAX_WORKERS,
    CONNECTION_POLICY,
    p("tls.verify", ParamType::Bool, Some("true"), "Verify the endpoint's TLS certificate."),
    p("timeout.seconds", ParamType::Int { min: 1, max: 3600 }, Some("30"), "Timeout of one cloud API call, in seconds."),
];

const SANDBOX_PARAMS: &[ParamSpec] = &[
    p(
        "boot.delay.ms",
        ParamType::Int { min: 0, max: 3_600_000 },
        Some("2000"),
        "Time a VM stays pending before it runs (also stopping -> stopped, shutting-down -> terminated).",
    ),
    p(
        "failure.rate",
        ParamType::Float { min: 0.0, max: 1.0 },
        Some("0"),
        "Probability that a launch fails with a capacity error (0 to 1).",
    ),
    p(
        "capacity",
        ParamType::Int { min: 0, max: 10_000_000 },
        None,
        "Maximum number of live VMs this simulated cloud holds (empty: unlimited).",
    ),
    p("public.ips", ParamType::Bool, Some("true"), "Give VMs a public address as well as a private one."),
    p(
        "keep.tags",
        ParamType::Bool,
        Some("true"),
        "Keep the tags given at launch. false simulates a cloud that drops them (econe without CreateTags).",
    ),
    p("api.latency.ms", ParamType::Int { min: 0, max: 60_000 }, Some("0"), "Simulated latency of every API call."),
    QUOTA_VM,
    MAX_WORKERS,
    CONNECTION_POLICY,
];

impl ConnectorKind {
    /// The parameters this kind declares.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            ConnectorKind::Ec2 => EC2_PARAMS,
            ConnectorKind::Ec2query => EC2QUERY_PARAMS,
            ConnectorKind::Sandbox => SANDBOX_PARAMS,
        }
    }

    /// Looks up one declared parameter.
    pub fn param(self, name: &str) -> Option<&'static ParamSpec> {
        self.params().iter().find(|s| s.name == name)
    }

    /// Whether users need their own cloud credentials on instances of this kind.
    pub fn needs_credentials(self) -> bool {
        !matches!(self, ConnectorKind::Sandbox)
    }
}

/// Validates one raw value against its spec. An empty value means "unset"
/// and is returned as `None`.
pub fn validate_value(spec: &ParamSpec, raw: &str) -> Result<Option<String>, String> {
    let v = raw.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match spec.ty {
        ParamType::String => {}
        ParamType::Int { min, max } => {
            let n: i64 = v.parse().map_err(|e: std::num::ParseIntError| match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    format!("'{v}' is out of range ({min}..={max})")
                }
                _ => format!("'{v}' is not an integer"),
            })?;
            if n < min || n > max {
                return Err(format!("{n} is out of range ({min}..={max})"));
            }
        }
        ParamType::Float { min, max } => {
            let n: f64 = v.parse().map_err(|_| format!("'{v}' is not a number"))?;
            if !(n >= min && n <= max) {
                return Err(format!("{v} is out of range ({min}..={max})"));
            }
        }
        ParamType::Bool => {
            if v != "true" && v != "false" {
                return Err(format!("'{v}' is not true or false"));
            }
        }
        ParamType::Url => {
            let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
            match rest {
                Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {}
                _ => return Err(format!("'{v}' is not an http:// or https:// URL")),
            }
        }
        ParamType::Enum { values } => {
            if !values.contains(&v) {
                return Err(format!("'{v}' is not one of {}", values.join(", ")));
            }
        }
        ParamType::List => {
            if v.split(',').any(|w| w.trim().is_empty()) {
                return Err(format!("'{v}' has an empty item"));
            }
        }
    }
    Ok(Some(v.to_string()))
}

/// Validated parameter values of one connector instance: explicitly set
/// values, with the kind's defaults behind them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamValues {
    values: BTreeMap<String, String>,
}

impl ParamValues {
    /// Builds from already-validated values (unset ones absent).
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self { values }
    }

    /// The explicitly set value, if any.
    pub fn get_set(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value, or the kind's default.
    pub fn get(&self, kind: ConnectorKind, name: &str) -> Option<String> {
        self.get_set(name).map(str::to_string).or_else(|| kind.param(name).and_then(|s| s.default.map(str::to_string)))
    }

    /// An integer value (set or default).
    pub fn get_int(&self, kind: ConnectorKind, name: &str) -> Option<i64> {
        self.get(kind, name).and_then(|v| v.parse().ok())
    }

    /// A float value (set or default).
    pub fn get_f64(&self, kind: ConnectorKind, name: &str) -> Option<f64> {
        self.get(kind, name).and_then(|v| v.parse().ok())
    }

    /// A boolean value (set or default).
    pub fn get_bool(&self, kind: ConnectorKind, name: &str) -> Option<bool> {
        self.get(kind, name).map(|v| v == "true")
    }

    /// All explicitly set values.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    /// Required parameters of `kind` that have no value.
    pub fn missing_required(&self, kind: ConnectorKind) -> Vec<&'static str> {
        kind.params().iter().filter(|s| s.required && self.get(kind, s.name).is_none()).map(|s| s.name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ConnectorKind, name: &str) -> &'static ParamSpec {
        kind.param(name).unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn every_kind_declares_common_params() {
        for k in ConnectorKind::ALL {
            for n in ["quota.vm", "max.iaas.workers", "connection.policy"] {
                assert!(k.param(n).is_some(), "{k} lacks {n}");
            }
        }
        assert!(spec(ConnectorKind::Ec2, "region").required);
        assert!(spec(ConnectorKind::Ec2query, "endpoint").required);
    }

    #[test]
    fn validates_types() {
        let w = spec(ConnectorKind::Ec2, "max.iaas.workers");
        assert_eq!(validate_value(w, "20"), Ok(Some("20".into())));
        assert_eq!(validate_value(w, "abc"), Err("'abc' is not an integer".into()));
        assert!(validate_value(w, "0").unwrap_err().contains("out of range"));
        assert_eq!(validate_value(spec(ConnectorKind::Ec2, "quota.vm"), "  "), Ok(None));
        let pol = spec(ConnectorKind::Ec2, "connection.policy");
        assert!(validate_value(pol, "private").unwrap_err().contains("public, local, auto"));
        let url = spec(ConnectorKind::Ec2, "endpoint");
        assert!(validate_value(url, "ftp://x").is_err());
        assert!(validate_value(url, "http://127.0.0.1:5000").is_ok());
        let f = spec(ConnectorKind::Sandbox, "failure.rate");
        assert!(validate_value(f, "1.5").is_err());
        assert!(validate_value(f, "NaN").is_err());
        assert!(validate_value(f, "0.25").is_ok());
        let b = spec(ConnectorKind::Ec2query, "tls.verify");
        assert!(validate_value(b, "yes").is_err());
        let l = spec(ConnectorKind::Ec2query, "instance.types");
        assert!(validate_value(l, "m1.small,,m1.large").is_err());
        let sv = spec(ConnectorKind::Ec2query, "signature.version");
        assert!(validate_value(sv, "3").is_err());
    }

    #[test]
    fn defaults_and_missing() {
        let v = ParamValues::default();
        assert_eq!(v.get_int(ConnectorKind::Ec2, "max.iaas.workers"), Some(20));
        assert_eq!(v.get(ConnectorKind::Ec2, "security.group").as_deref(), Some("default"));
        assert_eq!(v.missing_required(ConnectorKind::Ec2), ["region"]);
        assert!(v.missing_required(ConnectorKind::Sandbox).is_empty());
    }
}
