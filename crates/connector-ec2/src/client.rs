//! Client setup: the instance's settings read from its parameters, one SDK
//! client per access key id (static credentials only, never the machine's
//! credential chain; rebuilt when the secret changes; the cache bounded), the
//! SDK's own retries off, and every call through the instance's call gate.

use super::*;

impl Ec2Connector {
    /// Builds the connector from the instance's parameters.
    pub fn new(instance: InstanceName, params: &ParamValues, options: Ec2Options) -> Result<Self, ConnectorError> {
        let kind = KIND;
        let region = params
            .get(kind, "region")
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| invalid("MissingParameter", format!("connector instance {instance}: the parameter 'region' is required")))?;
        let endpoint = params.get(kind, "endpoint").map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(invalid(
                    "InvalidParameterValue",
                    format!("connector instance {instance}: endpoint '{e}' is not an http(s) URL"),
                ));
            }
        }
        let timeout_s = params.get_int(kind, "timeout.seconds").unwrap_or(30).clamp(1, 3600) as u64;
        let workers = params.get_int(kind, "max.iaas.workers").unwrap_or(20).clamp(1, 1000) as usize;
        let timeout = Duration::from_secs(timeout_s);
        let policy =
            CallPolicy { max_attempts: options.max_attempts.max(1), base_delay: options.base_delay, timeout, ..CallPolicy::default() };
        let gate_name = instance.clone();
        Ok(Self {
            instance,
            region: region.trim().to_string(),
            endpoint,
            orchestrator_image: params.get(kind, "orchestrator.imageid").filter(|s| !s.trim().is_empty()),
            timeout,
            options,
            gate: CallGate::new(workers, policy).for_instance(&gate_name),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The region of this instance.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The gate all calls of this instance go through.
    pub fn gate(&self) -> &CallGate {
        &self.gate
    }

    /// The SDK client for these credentials (cached per access key id).
    pub fn client(&self, creds: &Credentials) -> Result<Client, ConnectorError> {
        if creds.access_key_id.trim().is_empty() || creds.secret_access_key.is_empty() {
            return Err(ConnectorError::Auth {
                code: "MissingAuthenticationToken".into(),
                message: "no EC2 credentials: both the access key id and the secret access key are required".into(),
            });
        }
        let mut cache = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = cache.get(&creds.access_key_id) {
            if c.secret == creds.secret_access_key {
                return Ok(c.client.clone());
            }
        }
        if cache.len() >= CLIENT_CACHE_MAX {
            cache.clear();
        }
        let client = self.new_client(creds);
        cache.insert(creds.access_key_id.clone(), CachedClient { secret: creds.secret_access_key.clone(), client: client.clone() });
        Ok(client)
    }

    pub(crate) fn new_client(&self, creds: &Credentials) -> Client {
        let static_creds = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().to_string(),
            None,
            None,
            "cloudbroker",
        );
        let mut b = aws_sdk_ec2::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(static_creds)
            // Our CallGate retries (and counts); the SDK must not.
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(self.timeout).build())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(e) = &self.endpoint {
            b = b.endpoint_url(e.clone());
        }
        Client::from_conf(b.build())
    }

    /// Runs one SDK call through the gate, mapping its errors.
    pub(crate) async fn call<T, E, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let timeout_s = self.timeout.as_secs().max(1);
        self.gate
            .call(op, || {
                let fut = f();
                async move {
                    fut.await.map_err(|e| {
                        let mapped = map_sdk_error(e, timeout_s);
                        tracing::debug!(op, error = %mapped, "EC2 call failed");
                        mapped
                    })
                }
            })
            .await
    }
}

/// At most this many per-credential clients are cached; past it the cache is emptied.
pub(crate) const CLIENT_CACHE_MAX: usize = 1024;

pub(crate) struct CachedClient {
    pub(crate) secret: SecretString,
    pub(crate) client: Client,
}

pub(crate) fn invalid(code: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidRequest { code: code.to_string(), message: message.into() }
}
