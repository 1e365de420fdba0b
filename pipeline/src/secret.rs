//! Secrets in the configuration: `env:NAME` (read that variable), `file:/path` (read that
//! file, trailing newline removed) or the value itself. Resolved at start-up; an error names
//! the config field, never the secret.

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
