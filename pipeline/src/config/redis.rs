//! `[redis]`: the Redis sink's server, keys and lifetimes; the writer is `sink::redis`.

use std::fmt;

use ::redis::IntoConnectionInfo;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The Redis sink's settings (`[redis]`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Write window records to Redis.
    pub enabled: bool,
    /// The server: `redis://host:6379`, `rediss://host:6380` for TLS (server certificate
    /// checked against the system's roots), `redis://host:6379/2` for database 2. Put no
    /// password here: use `password`.
    pub url: String,
    /// ACL user name (Redis 6+); unset: the `default` user, or the one in `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password: `"env:REDIS_PASSWORD"` (read from that variable), `"file:/run/secrets/redis"`
    /// (read from the file, trailing newline dropped) or the password itself. Resolved at
    /// start, never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// First part of every key, e.g. `"glassbox"` → `glassbox:latest:tumbling_1m:<series>`.
    pub key_prefix: String,
    /// Lifetime of a series' `latest` hash (s), renewed by each window written: a series
    /// that stops receiving calls disappears after this long.
    pub ttl_secs: u64,
    /// Pub/sub channel announcing each window written; `""` disables publishing.
    pub channel: String,
    /// Lifetime of a window's top-N sorted set and of `last_window` (s).
    pub top_n_ttl_secs: u64,
    /// Connect, read and write timeout (ms).
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "redis://127.0.0.1:6379".into(),
            username: None,
            password: None,
            key_prefix: "glassbox".into(),
            ttl_secs: 86_400,
            channel: "glassbox:windows".into(),
            top_n_ttl_secs: 3_600,
            timeout_ms: 5_000,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exhaustive, so that a new field is not forgotten here; the password never shows.
        let Self {
            enabled,
            url,
            username,
            password,
            key_prefix,
            ttl_secs,
            channel,
            top_n_ttl_secs,
            timeout_ms,
        } = self;
        f.debug_struct("RedisConfig")
            .field("enabled", enabled)
            .field("url", url)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| "<redacted>"))
            .field("key_prefix", key_prefix)
            .field("ttl_secs", ttl_secs)
            .field("channel", channel)
            .field("top_n_ttl_secs", top_n_ttl_secs)
            .field("timeout_ms", timeout_ms)
            .finish()
    }
}

impl RedisConfig {
    /// Checks the settings when the sink is enabled; the error names the field (`redis.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.into(),
            })
        };
        if !self.enabled {
            return Ok(());
        }
        match ::redis::parse_redis_url(&self.url) {
            None => return bad("redis.url", "not a redis:// or rediss:// URL"),
            Some(u) if !matches!(u.scheme(), "redis" | "rediss") => {
                return bad("redis.url", "the scheme must be redis:// or rediss://");
            }
            Some(u) if u.password().is_some() => {
                return bad(
                    "redis.url",
                    "holds a password: put it in redis.password (env:NAME or file:/path)",
                );
            }
            Some(_) => {}
        }
        if self.url.as_str().into_connection_info().is_err() {
            return bad("redis.url", "not a usable Redis URL");
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return bad("redis.username", "must not be empty when set");
        }
        if matches!(self.password.as_deref(), Some("" | "env:" | "file:")) {
            return bad("redis.password", "must not be empty when set");
        }
        if self.key_prefix.trim().is_empty() {
            return bad("redis.key_prefix", "must not be empty");
        }
        if self.ttl_secs == 0 {
            return bad("redis.ttl_secs", "must be positive");
        }
        if self.top_n_ttl_secs == 0 {
            return bad("redis.top_n_ttl_secs", "must be positive");
        }
        if self.timeout_ms == 0 {
            return bad("redis.timeout_ms", "must be positive");
        }
        Ok(())
    }
}
