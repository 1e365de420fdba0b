//! `[alerts]`: the rules file and where alert events go; the rules are parsed here (a bad
//! file fails the start), evaluated by `glassbox_operators::alerts`, delivered by the sinks.

use glassbox_operators::alerts::AlertKind;
use glassbox_operators::alerts::rules::Rules;
use glassbox_operators::{Dimensions, Views};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[alerts]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// A rules file (TOML, `[[rule]]` tables; see the README's "Alerts"); `""`: no rules, no
    /// alerting. Checked at start-up: an error names the rule and the position.
    pub rules: String,
    /// Also emit `pending` and `cancelled` transitions (by default only `firing` and
    /// `resolved` reach the sinks).
    pub pending_events: bool,
    /// Prometheus Alertmanager base URL, e.g. `http://alertmanager:9093`; `""` disables.
    pub alertmanager_url: String,
    /// How often alerts still firing are sent to Alertmanager again (ms), so that it does not
    /// resolve them by itself (`resolve_timeout`).
    pub alertmanager_resend_ms: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            rules: String::new(),
            pending_events: false,
            alertmanager_url: String::new(),
            alertmanager_resend_ms: 60_000,
        }
    }
}

impl AlertsConfig {
    /// The rules, parsed against the configured dimensions and views; `None` without rules.
    pub fn load_rules(
        &self,
        dims: &Dimensions,
        views: &Views,
    ) -> Result<Option<Rules>, ConfigError> {
        if self.rules.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.rules).map_err(|e| ConfigError::Invalid {
            field: "alerts.rules",
            message: format!("cannot read `{}`: {e}", self.rules),
        })?;
        Rules::parse(&text, dims, views)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                field: "alerts.rules",
                message: format!("`{}`: {e}", self.rules),
            })
    }

    /// Checks the section; the error names the field.
    pub fn validate(&self, dims: &Dimensions, views: &Views) -> Result<(), ConfigError> {
        let url = &self.alertmanager_url;
        let http = url.starts_with("http://") || url.starts_with("https://");
        if !url.is_empty() && !http {
            return Err(ConfigError::Invalid {
                field: "alerts.alertmanager_url",
                message: format!("must be an http(s) URL, got `{}`", self.alertmanager_url),
            });
        }
        self.load_rules(dims, views).map(|_| ())
    }

    /// Whether an event of `kind` goes to the sinks.
    pub fn delivers(&self, kind: AlertKind) -> bool {
        self.pending_events || matches!(kind, AlertKind::Firing | AlertKind::Resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_the_field() {
        let (dims, views) = (Dimensions::default(), Views::standard(60_000, 300_000));
        let c = AlertsConfig {
            alertmanager_url: "localhost:9093".into(),
            ..AlertsConfig::default()
        };
        assert!(
            c.validate(&dims, &views)
                .unwrap_err()
                .to_string()
                .contains("alerts.alertmanager_url")
        );
        let dir = std::env::temp_dir().join(format!("glassbox-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rules.toml");
        std::fs::write(
            &path,
            "[[rule]]\nname = \"r\"\nview = \"sliding_5m\"\nwhen = \"p95(latency_ms) >\"\n",
        )
        .unwrap();
        let c = AlertsConfig {
            rules: path.display().to_string(),
            ..AlertsConfig::default()
        };
        let e = c.validate(&dims, &views).unwrap_err().to_string();
        assert!(
            e.contains("alerts.rules") && e.contains("rule #1 `r`") && e.contains("1:"),
            "{e}"
        );
        let missing = AlertsConfig {
            rules: "/nonexistent/rules.toml".into(),
            ..AlertsConfig::default()
        };
        assert!(
            missing
                .validate(&dims, &views)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/rules.toml")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
