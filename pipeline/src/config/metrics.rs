//! `[decode]` (input validation limits), `[metrics]` (series dimensions and windows) and
//! `[telemetry]` (the pipeline's own counters).

use glassbox_operators::{Dimensions, Views};
use glassbox_schemas::{DecodeLimits, InputFormat};
use serde::{Deserialize, Serialize};

/// Input validation limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// The input topic's record format: `auto` (default: each record told by its first bytes,
    /// `unknown_format` when none claims it), `native_json`, `otlp_proto` or `otlp_json`.
    pub format: InputFormat,
    /// A token count above this is absurd and dead-lettered.
    pub max_tokens: u64,
    /// Spans that started longer ago than this are dead-lettered (ms).
    pub horizon_past_ms: u64,
    /// Spans that start further in the future than this are dead-lettered (ms).
    pub horizon_future_ms: u64,
    /// Spans (or TTFTs) longer than this are dead-lettered as `absurd_duration` (ms).
    pub max_duration_ms: u64,
    /// Records larger than this are dead-lettered as `too_large` (bytes).
    pub max_record_bytes: usize,
    /// Spans with more attributes than this are dead-lettered as `too_many_attributes`.
    pub max_attributes: usize,
    /// Names and dimension values longer than this are dead-lettered as `value_too_long`
    /// (bytes).
    pub max_value_bytes: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        let d = DecodeLimits::default();
        Self {
            format: InputFormat::Auto,
            max_tokens: d.max_tokens,
            horizon_past_ms: d.horizon_past_ms,
            horizon_future_ms: d.horizon_future_ms,
            max_duration_ms: d.max_duration_ms,
            max_record_bytes: d.max_record_bytes,
            max_attributes: d.max_attributes,
            max_value_bytes: d.max_value_bytes,
        }
    }
}

impl DecodeConfig {
    /// The decoder's limits.
    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_tokens: self.max_tokens,
            horizon_past_ms: self.horizon_past_ms,
            horizon_future_ms: self.horizon_future_ms,
            max_duration_ms: self.max_duration_ms,
            max_record_bytes: self.max_record_bytes,
            max_attributes: self.max_attributes,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

/// Series dimensions and windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// What makes a series: `provider`, `model`, `tenant`, `feature`, `operation`, `kind`,
    /// `user`, `session`, `name`, or any attribute key (e.g. `deployment.environment`).
    pub dimensions: Vec<String>,
    /// Tumbling window width (ms); also the slide of the sliding view.
    pub window_ms: u64,
    /// Sliding view length (ms), a multiple of `window_ms`; 0 or `window_ms` disables it.
    pub sliding_ms: u64,
    /// Most values of each dimension per window: the values with the most requests keep their
    /// name, the others are counted as `__other__` (totals stay exact). 0: unlimited.
    pub max_values_per_dimension: usize,
    /// Per dimension, a limit other than `max_values_per_dimension` (0: unlimited), e.g.
    /// `{ tenant = 5000, model = 200 }`.
    pub max_values: std::collections::BTreeMap<String, usize>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            dimensions: Dimensions::default().0,
            window_ms: 60_000,
            sliding_ms: 300_000,
            max_values_per_dimension: 1_000,
            max_values: Default::default(),
        }
    }
}

impl MetricsConfig {
    /// Each dimension's value limit, in dimension order.
    pub fn cardinality(&self) -> glassbox_operators::metrics::cardinality::CardinalityLimits {
        glassbox_operators::metrics::cardinality::CardinalityLimits(
            self.dimensions
                .iter()
                .map(|d| {
                    let n = self
                        .max_values
                        .get(d)
                        .copied()
                        .unwrap_or(self.max_values_per_dimension);
                    (n > 0).then_some(n)
                })
                .collect(),
        )
    }

    /// The configured series dimensions.
    pub fn dimensions(&self) -> Dimensions {
        Dimensions(self.dimensions.clone())
    }

    /// The configured views.
    pub fn views(&self) -> Views {
        Views::standard(self.window_ms, self.sliding_ms)
    }
}

/// The pipeline's own telemetry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// How often the pipeline logs its counters (ms); 0 disables.
    pub log_interval_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_interval_ms: 10_000,
        }
    }
}
