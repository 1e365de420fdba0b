//! Secrets in the configuration: `env:NAME` (read that variable), `file:/path` (read that
//! file, trailing newline removed) or the value itself. Resolved at start-up; an error names
//! the config field, never the secret.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret in the config: `env:NAME` (read from that environment variable at start),
/// `file:/path` (read from that file, trailing newline removed), or the value itself.
/// `Debug` shows `env:`/`file:` references but never a literal value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret reference or literal.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The reference or literal as configured (for showing only through
    /// `Config::redacted`).
    pub(crate) fn reference(&self) -> &str {
        &self.0
    }

    /// Nothing configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret's value. `field` names the config field in the error, which never contains
    /// the secret.
    pub fn resolve(&self, field: &str) -> Result<String, String> {
        resolve(field, &self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() || self.0.starts_with("env:") || self.0.starts_with("file:") {
            write!(f, "{:?}", self.0)
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

/// Resolves a secret reference for config field `field`.
pub fn resolve(field: &str, value: &str) -> Result<String, String> {
    if let Some(var) = value.strip_prefix("env:") {
        std::env::var(var).map_err(|_| format!("`{field}`: environment variable {var} is not set"))
    } else if let Some(path) = value.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("`{field}`: cannot read {path}: {e}"))
    } else {
        Ok(value.to_owned())
    }
}
