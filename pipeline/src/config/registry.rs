//! `[registry]`: the Confluent-compatible Schema Registry that `avro_registry` records name
//! their schema in; the client is `crate::registry`.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::secret::Secret;

/// The schema registry (`[registry]`). Off while `url` is empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g. `http://registry:8081` (Confluent,
    /// Redpanda, Karapace) or `http://apicurio:8080/apis/ccompat/v7` (Apicurio); `https://`
    /// checks the server's certificate against the system's roots. Empty: no registry, and
    /// Confluent-framed records are `unknown_format`.
    pub url: String,
    /// HTTP basic auth user (Confluent Cloud: the API key).
    pub username: Option<String>,
    /// HTTP basic auth password: `env:NAME`, `file:/path` or the value itself; never logged.
    pub password: Option<Secret>,
    /// Bearer token (`Authorization: Bearer …`) instead of basic auth; a secret like
    /// `password`.
    pub token: Option<Secret>,
    /// Timeout of one schema request (ms).
    pub timeout_ms: u64,
    /// First wait before asking again after a failed request (ms); doubled up to
    /// `retry_max_ms`. Reading of the records that need the schema pauses meanwhile.
    pub retry_initial_ms: u64,
    /// Longest wait between two requests for a schema the registry could not serve (ms).
    pub retry_max_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            username: None,
            password: None,
            token: None,
            timeout_ms: 5_000,
            retry_initial_ms: 200,
            retry_max_ms: 10_000,
        }
    }
}

impl RegistryConfig {
    /// Whether a registry is configured.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Checks the settings; the error names the field (`registry.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.into(),
            })
        };
        if !self.enabled() {
            return Ok(());
        }
        let url = self.url.trim();
        let host = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match host {
            None => return bad("registry.url", "must start with http:// or https://"),
            Some(h) if h.is_empty() || h.starts_with('/') => {
                return bad("registry.url", "has no host");
            }
            Some(h) if h.split('/').next().is_some_and(|a| a.contains('@')) => {
                return bad(
                    "registry.url",
                    "holds credentials: put them in registry.username/registry.password",
                );
            }
            Some(_) => {}
        }
        if self.token.is_some() && (self.username.is_some() || self.password.is_some()) {
            return bad(
                "registry.token",
                "set either a bearer token or basic auth (username/password), not both",
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("registry.username", "is needed with registry.password");
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return bad("registry.username", "must not be empty when set");
        }
        if self.timeout_ms == 0 {
            return bad("registry.timeout_ms", "must be positive");
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return bad(
                "registry.retry_max_ms",
                "needs 0 < registry.retry_initial_ms <= registry.retry_max_ms",
            );
        }
        Ok(())
    }
}
