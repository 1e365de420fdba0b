//! The Prometheus Alertmanager sink (`alerts.alertmanager_url`): firing and resolved alerts
//! posted to `POST /api/v2/alerts`, firing ones re-sent so that Alertmanager keeps them.
//!
//! The rules are evaluated by [`glassbox_operators::alerts`] at every pane end, in event time;
//! their events are delivered like window records: offsets are committed only once every alert
//! sink (the alerts topic, Redis, InfluxDB, this one) acknowledged the events derived from
//! them, and a replay re-derives the same events with the same ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_operators::alerts::{AlertEvent, AlertKind};

use crate::records::alerts::rfc3339;
use crate::sinks::threaded::{WriteError, Writer};

/// Posts firing and resolved alerts to Alertmanager's `POST /api/v2/alerts`: labels
/// `alertname` (the rule), `severity` and the group's labels; annotations as rendered, plus
/// `glassbox_id` and `exemplar_trace_ids`; `startsAt` = when it started firing, `endsAt` = when
/// it resolved. Alertmanager identifies an alert by its labels, so a replayed post changes
/// nothing. Alerts still firing are posted again every `alertmanager_resend_ms`.
pub struct AlertmanagerWriter {
    url: String,
    /// `url` without its credentials, for messages and logs.
    shown: String,
    agent: ureq::Agent,
    firing: HashMap<String, serde_json::Value>,
    resend: Duration,
    last_sent: Instant,
}

impl AlertmanagerWriter {
    /// A writer for `base` (e.g. `http://127.0.0.1:9093`).
    pub fn new(base: &str, resend: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        Self {
            shown: crate::config::redact_url(&url),
            url,
            agent,
            firing: HashMap::new(),
            resend,
            last_sent: Instant::now(),
        }
    }

    fn alert(e: &AlertEvent) -> serde_json::Value {
        let mut labels: BTreeMap<String, String> = e.labels.clone();
        labels.insert("alertname".into(), e.rule.clone());
        labels.insert("severity".into(), e.severity.clone());
        let mut annotations = e.annotations.clone();
        annotations.insert("glassbox_id".into(), e.id.clone());
        let traces: Vec<&str> = e.exemplars.iter().map(|x| &*x.trace_id).collect();
        if !traces.is_empty() {
            annotations.insert("exemplar_trace_ids".into(), traces.join(","));
        }
        let mut alert = serde_json::json!({
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(e.starts_at_ms.unwrap_or(e.active_at_ms)),
        });
        if let Some(end) = e.ends_at_ms {
            alert["endsAt"] = rfc3339(end).into();
        }
        alert
    }

    fn post(&mut self, alerts: &[serde_json::Value]) -> Result<(), WriteError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(alerts).expect("alerts serialize");
        let response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|e| WriteError::retry(format!("alertmanager {}: {e}", self.shown)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(WriteError::retry(format!(
                "alertmanager {}: HTTP {status}",
                self.shown
            ))),
            _ => Err(WriteError::reject(format!(
                "alertmanager {} refused the alerts: HTTP {status}",
                self.shown
            ))),
        }
    }
}

impl Writer<AlertEvent> for AlertmanagerWriter {
    fn write(&mut self, batch: &[Arc<AlertEvent>]) -> Result<(), WriteError> {
        let mut alerts = Vec::new();
        for e in batch {
            match e.kind {
                AlertKind::Firing => {
                    let a = Self::alert(e);
                    self.firing.insert(e.key.clone(), a.clone());
                    alerts.push(a);
                }
                AlertKind::Resolved => {
                    self.firing.remove(&e.key);
                    alerts.push(Self::alert(e));
                }
                AlertKind::Pending | AlertKind::Cancelled => {}
            }
        }
        self.post(&alerts)
    }

    fn idle(&mut self) {
        if self.firing.is_empty() || self.last_sent.elapsed() < self.resend {
            return;
        }
        self.last_sent = Instant::now();
        let alerts: Vec<serde_json::Value> = self.firing.values().cloned().collect();
        if let Err(e) = self.post(&alerts) {
            tracing::warn!(sink = "alertmanager", error = %e.message, "re-sending firing alerts failed");
        }
    }
}
