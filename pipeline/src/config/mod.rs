//! glassbox's configuration: one documented serde tree, TOML on disk, `GLASSBOX_…` env overrides.
//!
//! `glassbox config --print-default` prints [`Config::default`] as TOML. Any field can be
//! overridden from the environment: `GLASSBOX_KAFKA__BROKERS=host:9092` sets `kafka.brokers`
//! (sections separated by a double underscore; values parsed as TOML, else taken as strings).
//! Secrets never appear in the file: a `kafka.properties` value written `env:NAME` or
//! `file:/path` is read from that variable or file at start-up, and is never logged.
//!
//! A leaf: this tree imports nothing else of the crate, every other module reads it. One file
//! per section, its struct, defaults and validation side by side, in the order a span meets
//! them: [`secret`] (the `env:`/`file:` references any section may hold), [`kafka`]
//! (`[kafka]`, `[source]`), [`metrics`] (`[decode]`, `[metrics]`, `[telemetry]`), [`cost`]
//! (`[cost]`: prices, spend calendar, budgets), [`quality`] (`[quality]`), [`alerts`]
//! (`[alerts]`), then the sinks' sections [`influx`] and [`redis`]. This file holds the whole
//! tree ([`Config`]), its loading (TOML, env overrides), the checks that span sections, and
//! [`ConfigError`].

pub mod alerts;
pub mod cluster;
pub mod cost;
pub mod influx;
pub mod kafka;
pub mod metrics;
pub mod quality;
pub mod redis;
pub mod registry;
pub mod secret;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use alerts::AlertsConfig;
pub use cluster::{ClusterConfig, Placement};
pub use cost::{Budget, BudgetLine, BudgetsConfig, Calendar, CostConfig};
pub use influx::{InfluxApi, InfluxConfig};
pub use kafka::{KafkaConfig, SourceConfig};
pub use metrics::{DecodeConfig, MetricsConfig, TelemetryConfig};
pub use quality::QualityConfig;
pub use redis::RedisConfig;
pub use secret::Secret;

/// A configuration that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML (after env overrides) does not fit the schema.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A field's value is out of range or inconsistent.
    #[error("invalid config: `{field}`: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A secret reference could not be resolved.
    #[error("invalid config: {message}")]
    Secret {
        /// The property.
        key: String,
        /// What is wrong (never the secret).
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Kafka connection, topics and client properties.
    pub kafka: KafkaConfig,
    /// How the Kafka source reads, watermarks and commits.
    pub source: SourceConfig,
    /// Input validation limits.
    pub decode: DecodeConfig,
    /// Series dimensions and windows.
    pub metrics: MetricsConfig,
    /// The pipeline's own telemetry.
    pub telemetry: TelemetryConfig,
    /// The InfluxDB sink: every window record as line protocol (see `sink::influx`).
    pub influx: InfluxConfig,
    /// The Redis sink: live per-series state for applications (see `sink::redis`).
    pub redis: RedisConfig,
    /// Pricing, live spend and budgets (see `pricing`).
    pub cost: CostConfig,
    /// Alert rules and where their events go (see `alerting`).
    pub alerts: AlertsConfig,
    /// RAG faithfulness and user feedback (see `quality`).
    pub quality: QualityConfig,
    /// The schema registry of `avro_registry` records (see `registry`).
    pub registry: registry::RegistryConfig,
    /// Several processes as one timely cluster (none: one process).
    pub cluster: ClusterConfig,
}

impl Config {
    /// Reads `path` (when given), applies `GLASSBOX_…` overrides from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_toml(&text, env)
    }

    /// Parses TOML text, applies env overrides, validates.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        for (key, value) in env {
            let Some(path) = key.strip_prefix("GLASSBOX_") else {
                continue;
            };
            if !path.contains("__") {
                continue; // GLASSBOX_LOG and friends are not config fields
            }
            let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // A secret is a string as given: parsed as TOML, a numeric password would fail
            // with its value in the message.
            let parsed = if is_secret_path(&parts) {
                toml::Value::String(value)
            } else {
                format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or(toml::Value::String(value))
            };
            insert(&mut tree, &parts, parsed)
                .map_err(|m| ConfigError::Parse(format!("{key}: {m}")))?;
        }
        let config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The default configuration as commented-free TOML.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).expect("the default config serializes")
    }

    /// Checks ranges and consistency; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError::Invalid { field, message });
        let k = &self.kafka;
        for (field, v) in [
            ("kafka.brokers", &k.brokers),
            ("kafka.input_topic", &k.input_topic),
            ("kafka.group_id", &k.group_id),
            ("kafka.metrics_topic", &k.metrics_topic),
            ("kafka.deadletter_topic", &k.deadletter_topic),
            ("kafka.alerts_topic", &k.alerts_topic),
            ("kafka.state_topic", &k.state_topic),
        ] {
            if v.trim().is_empty() {
                return bad(field, "must not be empty".into());
            }
        }
        if !matches!(k.frontier_store.as_str(), "metadata" | "state_topic") {
            return bad(
                "kafka.frontier_store",
                format!(
                    "must be `metadata` or `state_topic`, got `{}`",
                    k.frontier_store
                ),
            );
        }
        if k.output_partitions < 1 {
            return bad(
                "kafka.output_partitions",
                format!("must be at least 1, got {}", k.output_partitions),
            );
        }
        if k.output_replication < 1 {
            return bad(
                "kafka.output_replication",
                format!("must be at least 1, got {}", k.output_replication),
            );
        }
        if !matches!(k.auto_offset_reset.as_str(), "earliest" | "latest") {
            return bad(
                "kafka.auto_offset_reset",
                format!(
                    "must be `earliest` or `latest`, got `{}`",
                    k.auto_offset_reset
                ),
            );
        }
        let s = &self.source;
        if s.workers == 0 || s.workers > 256 {
            return bad(
                "source.workers",
                format!("must be 1..=256, got {}", s.workers),
            );
        }
        if s.max_records_per_activation == 0 {
            return bad(
                "source.max_records_per_activation",
                "must be positive".into(),
            );
        }
        if s.idle_timeout_ms == 0 {
            return bad("source.idle_timeout_ms", "must be positive".into());
        }
        if s.commit_interval_ms == 0 {
            return bad("source.commit_interval_ms", "must be positive".into());
        }
        if s.resume_rewind_records < -1 {
            return bad(
                "source.resume_rewind_records",
                format!("must be -1, 0 or positive, got {}", s.resume_rewind_records),
            );
        }
        if s.max_backlog == 0 {
            return bad("source.max_backlog", "must be positive".into());
        }
        if self.decode.max_tokens == 0 {
            return bad("decode.max_tokens", "must be positive".into());
        }
        let m = &self.metrics;
        if m.dimensions.is_empty() {
            return bad("metrics.dimensions", "needs at least one dimension".into());
        }
        if let Some(d) = m.dimensions.iter().find(|d| d.trim().is_empty()) {
            return bad("metrics.dimensions", format!("empty dimension name {d:?}"));
        }
        if let Some(d) = m.max_values.keys().find(|d| !m.dimensions.contains(d)) {
            return bad(
                "metrics.max_values",
                format!("{d:?} is not one of metrics.dimensions"),
            );
        }
        if m.window_ms == 0 {
            return bad("metrics.window_ms", "must be positive".into());
        }
        if m.sliding_ms != 0 && !m.sliding_ms.is_multiple_of(m.window_ms) {
            return bad(
                "metrics.sliding_ms",
                format!(
                    "must be a multiple of metrics.window_ms ({}), got {}",
                    m.window_ms, m.sliding_ms
                ),
            );
        }
        if m.sliding_ms / m.window_ms > 1_000 {
            return bad(
                "metrics.sliding_ms",
                "at most 1000 windows per sliding view".into(),
            );
        }
        if self.cost.enabled {
            let offset = self.cost.day_offset_minutes * 60_000;
            let w = i64::try_from(m.window_ms).unwrap_or(i64::MAX);
            if 86_400_000 % w != 0 || offset % w != 0 {
                return bad(
                    "metrics.window_ms",
                    format!(
                        "with cost.enabled, windows must tile the spend calendar's days: {} ms does not divide a day starting at cost.day_offset_minutes = {}",
                        m.window_ms, self.cost.day_offset_minutes
                    ),
                );
            }
        }
        self.cost.validate()?;
        self.registry.validate()?;
        self.cluster.validate()?;
        if self.decode.format == glassbox_schemas::InputFormat::AvroRegistry
            && !self.registry.enabled()
        {
            return bad(
                "registry.url",
                "decode.format = \"avro_registry\" needs the schema registry's URL".into(),
            );
        }
        let (dims, views) = (self.metrics.dimensions(), self.metrics.views());
        self.alerts.validate(&dims, &views)?;
        if !self.quality.enabled
            && let Some(rules) = self.alerts.load_rules(&dims, &views)?
            && rules.uses_quality()
        {
            return bad(
                "alerts.rules",
                "a rule reads a quality figure (avg(faithfulness), hallucination_rate, \
                 negative_feedback_rate, answers_scored, feedback): set quality.enabled"
                    .into(),
            );
        }
        self.quality.validate()
    }

    /// This configuration as it may be shown (`glassbox config --check`): every secret given
    /// literally replaced by `<redacted>` — `influx.token`/`password`, `redis.password`,
    /// `registry.password`/`token`, `kafka.properties` whose key names a password, secret,
    /// token or key, credentials inside `alerts.alertmanager_url`. `env:`/`file:` references
    /// stay: they say where the secret comes from, not what it is.
    pub fn redacted(&self) -> Config {
        const HIDDEN: &str = "<redacted>";
        let literal = |v: &str| !(v.is_empty() || v.starts_with("env:") || v.starts_with("file:"));
        let hide = |v: &mut String| {
            if literal(v) {
                *v = HIDDEN.to_owned();
            }
        };
        let hide_secret = |v: &mut Secret| {
            let mut text = v.reference().to_owned();
            hide(&mut text);
            *v = Secret::new(text);
        };
        let mut c = self.clone();
        hide_secret(&mut c.influx.token);
        for s in [
            c.influx.password.as_mut(),
            c.registry.password.as_mut(),
            c.registry.token.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            hide_secret(s);
        }
        if let Some(p) = c.redis.password.as_mut() {
            hide(p);
        }
        for (key, value) in &mut c.kafka.properties {
            let key = key.to_ascii_lowercase();
            if ["password", "secret", "token", "key", "jaas"]
                .iter()
                .any(|w| key.contains(w))
            {
                hide(value);
            }
        }
        c.alerts.alertmanager_url = redact_url(&c.alerts.alertmanager_url);
        c
    }

    /// `kafka.properties` with `env:` and `file:` references resolved.
    pub fn kafka_properties(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        self.kafka
            .properties
            .iter()
            .map(|(key, value)| {
                let resolved = secret::resolve(&format!("kafka.properties.{key}"), value).map_err(
                    |message| ConfigError::Secret {
                        key: key.clone(),
                        message,
                    },
                )?;
                Ok((key.clone(), resolved))
            })
            .collect()
    }
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => insert(t, rest, value),
                _ => Err(format!("`{first}` is not a section")),
            }
        }
    }
}

/// Whether the config path (`GLASSBOX_A__B` → `["a", "b"]`) names a secret field.
fn is_secret_path(parts: &[String]) -> bool {
    let path: Vec<&str> = parts.iter().map(String::as_str).collect();
    matches!(
        path.as_slice(),
        ["influx", "token" | "password"]
            | ["redis", "password"]
            | ["registry", "token" | "password"]
            | ["kafka", "properties", _]
    )
}

/// `url` without the credentials of its authority (`https://user:pw@host` → `https://<redacted>@host`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://<redacted>@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn default_round_trips_through_toml() {
        let text = Config::default_toml();
        assert_eq!(
            Config::from_toml(&text, no_env()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn env_overrides_fields() {
        let env = vec![
            ("GLASSBOX_KAFKA__BROKERS".to_owned(), "h:1".to_owned()),
            ("GLASSBOX_METRICS__WINDOW_MS".to_owned(), "10000".to_owned()),
            (
                "GLASSBOX_METRICS__SLIDING_MS".to_owned(),
                "30000".to_owned(),
            ),
            ("GLASSBOX_LOG".to_owned(), "debug".to_owned()),
        ];
        let c = Config::from_toml("", env).unwrap();
        assert_eq!(c.kafka.brokers, "h:1");
        assert_eq!(c.metrics.window_ms, 10_000);
        assert_eq!(c.metrics.sliding_ms, 30_000);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = Config::from_toml("[kafka]\nbrokerz = \"x\"\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokerz"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Config::from_toml("[metrics]\nwindow_ms = \"soon\"\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("window_ms"), "{err}");
    }

    #[test]
    fn a_numeric_secret_from_the_environment_is_a_string() {
        let env = [
            ("GLASSBOX_REDIS__PASSWORD".to_owned(), "12345".to_owned()),
            ("GLASSBOX_INFLUX__TOKEN".to_owned(), "true".to_owned()),
        ];
        let c = Config::from_toml("", env).unwrap();
        assert_eq!(c.redis.password.as_deref(), Some("12345"));
        assert_eq!(c.influx.token.resolve("influx.token").unwrap(), "true");
    }

    #[test]
    fn a_shown_config_holds_no_literal_secret() {
        let text = r#"
            [kafka]
            properties = { "sasl.password" = "kafka-pw-1", "ssl.key.password" = "env:KEY_PW", "client.id" = "gb" }
            [influx]
            token = "influx-tok-2"
            [redis]
            password = "redis-pw-3"
            [registry]
            url = "https://registry"
            username = "u"
            password = "registry-pw-4"
            [alerts]
            alertmanager_url = "https://am-user:am-pw-5@am.example/path"
        "#;
        let c = Config::from_toml(text, no_env()).unwrap();
        let shown = toml::to_string_pretty(&c.redacted()).unwrap();
        for secret in [
            "kafka-pw-1",
            "influx-tok-2",
            "redis-pw-3",
            "registry-pw-4",
            "am-pw-5",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        // References and ordinary values stay.
        assert!(
            shown.contains("env:KEY_PW") && shown.contains("\"gb\""),
            "{shown}"
        );
        assert!(
            shown.contains("https://<redacted>@am.example/path"),
            "{shown}"
        );
    }

    #[test]
    fn the_input_format_is_read_and_a_wrong_one_is_named() {
        let c = Config::from_toml("[decode]\nformat = \"otlp_json\"\n", no_env()).unwrap();
        assert_eq!(c.decode.format, glassbox_schemas::InputFormat::OtlpJson);
        assert_eq!(
            Config::default().decode.format,
            glassbox_schemas::InputFormat::Auto
        );
        let err = Config::from_toml("[decode]\nformat = \"protobuf\"\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("format") && err.contains("otlp_proto"),
            "names the field and the choices: {err}"
        );
    }

    #[test]
    fn the_deploy_example_is_a_valid_configuration() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/glassbox.toml");
        let c = Config::load(Some(&path), no_env()).unwrap();
        assert!(c.cost.enabled);
        assert_eq!(c.cost.budget_lines().unwrap().len(), 3);
    }

    #[test]
    fn the_kubernetes_config_map_is_a_valid_cluster_of_its_statefulsets_replicas() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s");
        let map = std::fs::read_to_string(dir.join("configmap.yaml")).unwrap();
        let text: String = map
            .split_once("glassbox.toml: |\n")
            .expect("the config map holds glassbox.toml")
            .1
            .lines()
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml(&text, no_env()).unwrap();
        let sts = std::fs::read_to_string(dir.join("statefulset.yaml")).unwrap();
        let replicas: usize = sts
            .lines()
            .find_map(|l| l.trim().strip_prefix("replicas: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(c.cluster.hosts.len(), replicas);
        // Each pod finds its process index in its name.
        for i in 0..replicas {
            let pod = format!("glassbox-{i}");
            let placement = c.cluster.placement(Some(&pod)).unwrap();
            assert_eq!(placement.process, i);
            assert!(c.cluster.hosts[i].starts_with(&format!("{pod}.glassbox-headless:")));
        }
    }

    #[test]
    fn cost_settings_are_checked_against_the_windows() {
        let e = Config::from_toml("[metrics]\nwindow_ms = 7000\nsliding_ms = 0\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.window_ms") && e.contains("cost"), "{e}");
        // Without cost, any window width goes.
        Config::from_toml(
            "[metrics]\nwindow_ms = 7000\nsliding_ms = 0\n[cost]\nenabled = false\n",
            no_env(),
        )
        .unwrap();
        let e = Config::from_toml("[cost.budgets.tenants.acme]\ndaily_usd = -1\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cost.budgets") && e.contains("acme"), "{e}");
    }

    #[test]
    fn quality_settings_and_rules_on_quality_figures_are_checked() {
        let e = Config::from_toml("[quality]\ntrace_timeout_ms = 0\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("quality.trace_timeout_ms"), "{e}");
        let e = Config::from_toml(
            "[quality]\nfeedback_wait_ms = 1000000\nfeedback_horizon_ms = 1000\n",
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("quality.feedback_wait_ms"), "{e}");
        let dir = std::env::temp_dir().join(format!("glassbox-qrules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("rules.toml");
        std::fs::write(
            &rules,
            "[[rule]]\nname = \"r\"\nview = \"tumbling_1m\"\nwhen = \"hallucination_rate > 0.1\"\n",
        )
        .unwrap();
        let text = format!("[alerts]\nrules = {:?}\n", rules.display().to_string());
        let e = Config::from_toml(&text, no_env()).unwrap_err().to_string();
        assert!(
            e.contains("alerts.rules") && e.contains("quality.enabled"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inconsistent_windows_name_the_field() {
        let err = Config::from_toml(
            "[metrics]\nwindow_ms = 60000\nsliding_ms = 90000\n",
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("metrics.sliding_ms"), "{err}");
        let err = Config::from_toml("[source]\nworkers = 0\n", no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("source.workers"), "{err}");
    }

    #[test]
    fn secrets_resolve_from_env_and_file_and_fail_by_name() {
        let dir = std::env::temp_dir().join(format!("glassbox-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let mut c = Config::default();
        c.kafka
            .properties
            .insert("sasl.password".into(), format!("file:{}", dir.display()));
        assert_eq!(c.kafka_properties().unwrap()["sasl.password"], "s3cret");
        c.kafka.properties.insert(
            "sasl.password".into(),
            "env:GLASSBOX_TEST_SURELY_UNSET_VAR".into(),
        );
        let err = c.kafka_properties().unwrap_err().to_string();
        assert!(
            err.contains("kafka.properties.sasl.password")
                && err.contains("GLASSBOX_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        std::fs::remove_file(dir).unwrap();
    }
}
