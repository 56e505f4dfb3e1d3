//! Parameters and their specs: name, type, default, description, whether
//! required and whether secret, with the [`KindSpec`] a connector crate
//! declares its kind and its parameters with, and the parameters common to
//! every kind. The conf loader and the system configuration validate values
//! against these specs; no connector's own parameters are listed here.

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
    /// A comma-separated list of tag keys, each optionally with its allowed
    /// values: `cost-center=(rd|ops|sales), owner` ([`parse_tag_rules`]).
    TagRules,
    /// A duration such as `8h`, `90m` or `1d12h` (units d, h, m, s; see
    /// [`cloudbroker_model::lease::parse_duration`]).
    Duration,
    /// An amount of money in the broker's currency: a non-negative decimal
    /// with at most six decimals (`25`, `99.50`).
    Amount,
    /// A comma-separated list of whole percents, each within bounds
    /// (inclusive): `50,80,100`.
    Percents { min: i64, max: i64 },
    /// A cloud resource id: `prefix-` then 1 to 64 lowercase letters and
    /// digits (`vpc-0a1b2c3d`, `subnet-...`).
    CloudId { prefix: &'static str },
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

impl ParamSpec {
    /// An optional parameter, with its default (if any).
    pub const fn optional(name: &'static str, ty: ParamType, default: Option<&'static str>, description: &'static str) -> Self {
        ParamSpec { name, ty, default, description, required: false, secret: false }
    }

    /// A parameter that must be set (it has no default).
    pub const fn required(name: &'static str, ty: ParamType, description: &'static str) -> Self {
        ParamSpec { name, ty, default: None, description, required: true, secret: false }
    }
}

/// `connection.policy` values (Scalr): which address the broker reports and uses.
pub const CONNECTION_POLICIES: &[&str] = &["public", "local", "auto"];

/// `quota.vm`: declared by every kind (the broker enforces it).
pub const QUOTA_VM: ParamSpec = ParamSpec::optional(
    "quota.vm",
    ParamType::Int { min: 0, max: 1_000_000 },
    None,
    "Default number of concurrent VMs a user may have on this instance (empty: unset, the broker default of 20 applies). Enforced only when quota.enable is true.",
);

/// `quota.project.vm`: declared by every kind (the broker enforces it).
pub const QUOTA_PROJECT_VM: ParamSpec = ParamSpec::optional(
    "quota.project.vm",
    ParamType::Int { min: 0, max: 1_000_000 },
    None,
    "Default number of concurrent VMs a project's members may have on this instance together (empty: no project limit; a project's override wins). Enforced, with each user's quota.vm, only when quota.enable is true.",
);

/// `max.iaas.workers`: declared by every kind (the connector bounds its calls with it).
pub const MAX_WORKERS: ParamSpec = ParamSpec::optional(
    "max.iaas.workers",
    ParamType::Int { min: 1, max: 1000 },
    Some("20"),
    "Maximum number of concurrent cloud API calls the broker makes to this instance, all users together.",
);

/// `connection.policy`: declared by every kind (the broker picks the address with it).
pub const CONNECTION_POLICY: ParamSpec = ParamSpec::optional(
    "connection.policy",
    ParamType::Enum { values: CONNECTION_POLICIES },
    Some("auto"),
    "Address reported for VMs: public, local (private), or auto (public if the VM has one, else private).",
);

/// `policy.instance.types`: declared by every kind (the broker's launch admission enforces it).
pub const POLICY_INSTANCE_TYPES: ParamSpec = ParamSpec::optional(
    "policy.instance.types",
    ParamType::List,
    None,
    "Instance types a launch may use on this instance, comma-separated, each a type or a pattern with * (e.g. t3.*, m5.large); empty: any.",
);

/// `policy.images`: declared by every kind (the broker's launch admission enforces it).
pub const POLICY_IMAGES: ParamSpec = ParamSpec::optional(
    "policy.images",
    ParamType::List,
    None,
    "Native image names a launch may use on this instance, comma-separated (raw cloud image ids are then refused); empty: any.",
);

/// `policy.tags.required`: declared by every kind (the broker's launch admission enforces it).
pub const POLICY_TAGS_REQUIRED: ParamSpec = ParamSpec::optional(
    "policy.tags.required",
    ParamType::TagRules,
    None,
    "Tag keys every launch on this instance must carry, comma-separated, each with its allowed values where given (e.g. cost-center=(rd|ops|sales), owner); empty: none.",
);

/// `policy.count.max`: declared by every kind (the broker's launch admission enforces it).
pub const POLICY_COUNT_MAX: ParamSpec = ParamSpec::optional(
    "policy.count.max",
    ParamType::Int { min: 1, max: 1000 },
    None,
    "Most VMs one launch may ask for on this instance (a launch whose count range goes higher is refused, as EC2 refuses a MaxCount over a limit); empty: no policy.",
);

/// `policy.exempt.admins`: declared by every kind (the broker's launch admission reads it).
pub const POLICY_EXEMPT_ADMINS: ParamSpec = ParamSpec::optional(
    "policy.exempt.admins",
    ParamType::Bool,
    Some("false"),
    "Whether admins' launches skip this instance's policy.* checks.",
);

/// `lease.default`: declared by every kind (the broker's launches read it).
pub const LEASE_DEFAULT: ParamSpec = ParamSpec::optional(
    "lease.default",
    ParamType::Duration,
    None,
    "Lease a launch on this instance gets when it asks for none (e.g. 8h, 1d12h); at its end the broker applies lease.action. Empty: no lease unless asked for.",
);

/// `lease.max`: declared by every kind (the broker's launch admission enforces it).
pub const LEASE_MAX: ParamSpec = ParamSpec::optional(
    "lease.max",
    ParamType::Duration,
    None,
    "Longest lease a launch or an extension may ask for on this instance, from now (admins may extend further); when set, every launch gets a lease. Empty: no limit.",
);

/// `lease.action`: declared by every kind (the broker's lease worker reads it).
pub const LEASE_ACTION: ParamSpec = ParamSpec::optional(
    "lease.action",
    ParamType::Enum { values: cloudbroker_model::LeaseAction::NAMES },
    Some("terminate"),
    "What the broker does to a VM of this instance when its lease ends: stop or terminate (recorded with the lease at launch).",
);

/// `lease.warn`: declared by every kind (the broker's lease worker reads it).
pub const LEASE_WARN: ParamSpec = ParamSpec::optional(
    "lease.warn",
    ParamType::Duration,
    Some("1h"),
    "How long before a lease ends the broker records a warning (shown on the VM and in the audit log).",
);

/// `lease.max.actions`: declared by every kind (the broker's lease worker reads it).
pub const LEASE_MAX_ACTIONS: ParamSpec = ParamSpec::optional(
    "lease.max.actions",
    ParamType::Int { min: 1, max: 100_000 },
    Some("100"),
    "Most VMs of this instance one pass of the lease worker stops or terminates; the rest wait for the next pass and are reported (a safeguard against acting on a whole fleet at once).",
);

/// `budget.user.monthly`: declared by every kind (the broker's launch admission enforces it).
pub const BUDGET_USER_MONTHLY: ParamSpec = ParamSpec::optional(
    "budget.user.monthly",
    ParamType::Amount,
    None,
    "Default monthly budget of each user on this instance, in the broker's currency (an admin may override it per user); a launch or start that would pass it is refused. Empty: no budget.",
);

/// `budget.project.monthly`: declared by every kind (the broker's launch admission enforces it).
pub const BUDGET_PROJECT_MONTHLY: ParamSpec = ParamSpec::optional(
    "budget.project.monthly",
    ParamType::Amount,
    None,
    "Default monthly budget of each team project on this instance, in the broker's currency (an admin may override it per project). Empty: no budget.",
);

/// `budget.thresholds`: declared by every kind (the broker's budget watch reads it).
pub const BUDGET_THRESHOLDS: ParamSpec = ParamSpec::optional(
    "budget.thresholds",
    ParamType::Percents { min: 1, max: 1000 },
    Some("50,80,100"),
    "Percents of a monthly budget whose crossing is recorded once a month (a banner, an audit record, a metric), comma-separated, each 1 to 1000.",
);

/// `billing.minimum.seconds`: declared by every kind (the broker's metering reads it).
pub const BILLING_MINIMUM_SECONDS: ParamSpec = ParamSpec::optional(
    "billing.minimum.seconds",
    ParamType::Int { min: 0, max: 86_400 },
    Some("60"),
    "Least running time billed per start of a VM on this instance, in seconds (AWS bills Linux per second with a 60 s minimum); 0: none.",
);

/// The launch policies every kind declares (after [`COMMON`]'s quotas);
/// the broker, not the connector, enforces them.
pub const POLICIES: [ParamSpec; 5] = [POLICY_INSTANCE_TYPES, POLICY_IMAGES, POLICY_TAGS_REQUIRED, POLICY_COUNT_MAX, POLICY_EXEMPT_ADMINS];

/// The lease parameters every kind declares (after [`POLICIES`]).
pub const LEASES: [ParamSpec; 5] = [LEASE_DEFAULT, LEASE_MAX, LEASE_ACTION, LEASE_WARN, LEASE_MAX_ACTIONS];

/// The parameters every kind declares (the broker, not the connector, reads
/// most of them); a kind lists them after its own.
pub const COMMON: [ParamSpec; 18] = [
    QUOTA_VM,
    QUOTA_PROJECT_VM,
    MAX_WORKERS,
    CONNECTION_POLICY,
    POLICY_INSTANCE_TYPES,
    POLICY_IMAGES,
    POLICY_TAGS_REQUIRED,
    POLICY_COUNT_MAX,
    POLICY_EXEMPT_ADMINS,
    LEASE_DEFAULT,
    LEASE_MAX,
    LEASE_ACTION,
    LEASE_WARN,
    LEASE_MAX_ACTIONS,
    BUDGET_USER_MONTHLY,
    BUDGET_PROJECT_MONTHLY,
    BUDGET_THRESHOLDS,
    BILLING_MINIMUM_SECONDS,
];

/// One tag rule of a [`ParamType::TagRules`] value: a key, with its allowed
/// values (`None`: any value).
pub type TagRule = (String, Option<Vec<String>>);

/// Parses a [`ParamType::TagRules`] value: comma-separated items, each a tag
/// key, or `key=(a|b|c)` (the key with its allowed values; `key=a` allows
/// one). Keys and values are trimmed, non-empty and free of `=`, `(`, `)`,
/// `|` and `,`; a key is given once.
pub fn parse_tag_rules(v: &str) -> Result<Vec<TagRule>, String> {
    let mut rules: Vec<TagRule> = Vec::new();
    let bad = |c: char| matches!(c, '=' | '(' | ')' | '|' | ',') || c.is_control();
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("'{v}' has an empty item"));
        }
        let (key, allowed) = match item.split_once('=') {
            None => (item, None),
            Some((k, rest)) => {
                let rest = rest.trim();
                let inner = match (rest.strip_prefix('('), rest.strip_suffix(')')) {
                    (Some(_), Some(_)) if rest.len() >= 2 => &rest[1..rest.len() - 1],
                    (None, None) => rest,
                    _ => return Err(format!("'{item}': write the allowed values as key=(a|b|c), without commas inside")),
                };
                let values: Vec<String> = inner.split('|').map(|x| x.trim().to_string()).collect();
                if values.iter().any(|x| x.is_empty() || x.chars().any(bad)) {
                    return Err(format!("'{item}': each allowed value is non-empty, without = ( ) | or commas (key=(a|b|c))"));
                }
                (k.trim(), Some(values))
            }
        };
        if key.is_empty() || key.chars().any(bad) {
            return Err(format!("'{item}': a tag key is non-empty, without = ( ) | or commas (key or key=(a|b|c))"));
        }
        if rules.iter().any(|(k, _)| k == key) {
            return Err(format!("tag key '{key}' is given twice"));
        }
        rules.push((key.to_string(), allowed));
    }
    Ok(rules)
}

/// What one connector kind declares about itself: its name in
/// declarations, what it is, its parameters, whether users need their own
/// cloud credentials, and the instance type a launch gets when neither the
/// request nor the image names one. Each connector crate declares one, as a
/// `const`; the binary registers the kinds it ships
/// ([`crate::builder::Connectors`]).
pub struct KindSpec {
    /// The kind's name as written in declarations (`<instance>:<kind>`).
    pub name: &'static str,
    /// One line saying what the kind is (the README's tables use it).
    pub summary: &'static str,
    /// Every parameter, the [`COMMON`] ones included (each crate lists them after its own).
    pub params: &'static [ParamSpec],
    /// Whether users need their own cloud credentials on instances of this kind.
    pub needs_credentials: bool,
    /// The instance type launched when neither the request nor the image names one
    /// (`None`: the broker's default).
    pub default_instance_type: fn(&ParamValues) -> Option<String>,
}

/// A connector kind (`ec2`, `ec2query`, `sandbox`, ...): a name with the
/// kind's declaration behind it. Kinds are compared by name. A kind is
/// parsed only against the registered builders
/// ([`crate::builder::Connectors::kind`]), so an unknown name never becomes one.
#[derive(Clone, Copy)]
pub struct ConnectorKind(&'static KindSpec);

impl ConnectorKind {
    /// The kind declared by `spec` (for the connector crate that declares it).
    pub const fn new(spec: &'static KindSpec) -> Self {
        Self(spec)
    }

    /// The kind's name as written in declarations.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// What the kind declares.
    pub fn spec(self) -> &'static KindSpec {
        self.0
    }

    /// The parameters this kind declares.
    pub fn params(self) -> &'static [ParamSpec] {
        self.0.params
    }

    /// Looks up one declared parameter.
    pub fn param(self, name: &str) -> Option<&'static ParamSpec> {
        self.params().iter().find(|s| s.name == name)
    }

    /// Whether users need their own cloud credentials on instances of this kind.
    pub fn needs_credentials(self) -> bool {
        self.0.needs_credentials
    }

    /// The instance type launched on an instance with these values when
    /// neither the request nor the image names one.
    pub fn default_instance_type(self, values: &ParamValues) -> Option<String> {
        (self.0.default_instance_type)(values)
    }
}

impl PartialEq for ConnectorKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ConnectorKind {}

impl PartialOrd for ConnectorKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ConnectorKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for ConnectorKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::fmt::Debug for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectorKind({})", self.as_str())
    }
}

impl std::fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConnectorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether `v` is `prefix-` then 1 to 64 lowercase letters and digits.
pub fn is_cloud_id(v: &str, prefix: &str) -> bool {
    v.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|r| !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// `vpc.id`: declared by every kind that has VPCs (the broker places launches with it).
pub const VPC_ID: ParamSpec = ParamSpec::optional(
    "vpc.id",
    ParamType::CloudId { prefix: "vpc" },
    None,
    "VPC every launch on this instance goes into (a launch naming no subnet takes subnet.id, else this VPC's first subnet); a subnet named elsewhere must be in it. Empty: the cloud's default VPC.",
);

/// `subnet.id`: declared by every kind that has VPCs (the broker places launches with it).
pub const SUBNET_ID: ParamSpec = ParamSpec::optional(
    "subnet.id",
    ParamType::CloudId { prefix: "subnet" },
    None,
    "Subnet a launch on this instance goes into when it names none (EC2's SubnetId). Empty: vpc.id's first subnet, else the cloud's default.",
);

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
        ParamType::TagRules => {
            parse_tag_rules(v)?;
        }
        ParamType::Duration => {
            cloudbroker_model::lease::parse_duration(v)?;
        }
        ParamType::Percents { min, max } => {
            for item in v.split(',') {
                let item = item.trim();
                let n: i64 = item.parse().map_err(|_| format!("'{item}' is not a whole percent (write e.g. 50,80,100)"))?;
                if n < min || n > max {
                    return Err(format!("{n} is out of range ({min}..={max})"));
                }
            }
        }
        ParamType::CloudId { prefix } => {
            if !is_cloud_id(v, prefix) {
                return Err(format!("'{v}' is not a {prefix} id ({prefix}- then lowercase letters and digits)"));
            }
        }
        ParamType::Amount => {
            let (int, frac) = v.split_once('.').unwrap_or((v, ""));
            if int.is_empty() || int.len() > 9 || frac.len() > 6 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
                return Err(format!("'{v}' is not an amount (a number such as 25 or 99.50, at most six decimals)"));
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
