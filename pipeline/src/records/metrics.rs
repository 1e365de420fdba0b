//! The metrics record: one JSON object per (view, series, window), as written to the metrics
//! topic (and, in later sinks, to InfluxDB and Redis). Documented in the README.

use glassbox_operators::metrics::sketch::{ALPHA, Metric, Summary};
use glassbox_operators::metrics::views::{Views, WindowKey};
use glassbox_operators::{Dimensions, PriceKey, TokenClass, WindowMetrics};
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the record's shape; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A closed window's metrics, ready to serialize.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsRecord {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The view: `tumbling_1m`, `sliding_5m`, ….
    pub view: String,
    /// Window start, ms since the epoch (inclusive).
    pub window_start_ms: u64,
    /// Window end, ms since the epoch (exclusive).
    pub window_end_ms: u64,
    /// Series dimensions, by name.
    pub series: BTreeMap<String, String>,
    /// Model calls whose span started in the window.
    pub requests: i64,
    /// Calls that ended in error.
    pub errors: i64,
    /// Errors per `error.type` (`_OTHER` when the span had an error status and no type).
    pub errors_by_type: BTreeMap<String, i64>,
    /// Calls whose finish reasons include `length`.
    pub truncations: i64,
    /// errors / requests.
    pub error_rate: f64,
    /// truncations / requests.
    pub truncation_rate: f64,
    /// Requests per minute over the window.
    pub rpm: f64,
    /// Input + output tokens per minute over the window.
    pub tpm: f64,
    /// Token totals.
    pub tokens: Tokens,
    /// End-to-end latency, ms.
    pub latency_ms: Option<Distribution>,
    /// Time to first token, ms (calls that reported it).
    pub ttft_ms: Option<Distribution>,
    /// Time per output token, ms (calls with TTFT and more than one output token).
    pub tpot_ms: Option<Distribution>,
    /// Relative error bound of min, max and the percentiles.
    pub sketch_relative_error: f64,
    /// Cost, when `cost.enabled` (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostRecord>,
}

/// A window's cost: exact integer pico-USD (10⁻¹² USD), plus a float USD for humans.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostRecord {
    /// `total_pico / 10¹²`, for display only (not exact).
    pub usd: f64,
    /// Exact total, pico-USD.
    pub total_pico: i64,
    /// Exact pico-USD per token class: `input` (uncached), `cache_read`, `cache_write`,
    /// `output` (without reasoning), `reasoning`.
    pub by_class_pico: BTreeMap<&'static str, i64>,
    /// Calls whose model has no price (not in the total).
    pub unpriced_calls: i64,
    /// Unpriced calls per model.
    pub unpriced: BTreeMap<String, i64>,
    /// Calls and tokens per priced key: what the cost is computed from.
    pub usage: Vec<UsageRecord>,
}

/// Calls and tokens of one (provider, model, prompt tier) in a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageRecord {
    /// Provider as reported (absent when the span had none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model as reported.
    pub model: String,
    /// Prompt-size tier: the largest tier threshold the prompts exceeded, or 0.
    pub tier: u64,
    /// Calls, then tokens per class, in the order of [`TokenClass::ALL`].
    pub counts: [i64; 6],
}

impl UsageRecord {
    /// The key this usage is priced under.
    pub fn key(&self) -> PriceKey {
        PriceKey {
            provider: self.provider.as_deref().map(Into::into),
            model: self.model.as_str().into(),
            tier: self.tier,
        }
    }
}

fn cost_record(metrics: &WindowMetrics) -> Option<CostRecord> {
    let c = metrics.cost.as_ref()?;
    let total = c.total();
    Some(CostRecord {
        usd: total as f64 / glassbox_operators::cost::PICO_PER_USD as f64,
        total_pico: total,
        by_class_pico: TokenClass::ALL[1..]
            .iter()
            .map(|class| (class.name(), c.of(*class)))
            .collect(),
        unpriced_calls: c.unpriced_calls(),
        unpriced: c.unpriced.iter().cloned().collect(),
        usage: metrics
            .usage
            .iter()
            .map(|(k, counts)| UsageRecord {
                provider: k.provider.as_deref().map(str::to_owned),
                model: k.model.to_string(),
                tier: k.tier,
                counts: *counts,
            })
            .collect(),
    })
}

/// Token totals of a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tokens {
    /// Input tokens, cached ones included.
    pub input: i64,
    /// Output tokens, reasoning included.
    pub output: i64,
    /// Input tokens read from the prompt cache.
    pub cache_read: i64,
    /// Input tokens written to the prompt cache.
    pub cache_write: i64,
    /// Reasoning tokens.
    pub reasoning: i64,
}

/// A duration distribution in ms: exact count and mean; min, max, percentiles within ±1%.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distribution {
    /// Values.
    pub count: i64,
    /// Exact mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

fn distribution(s: Option<&Summary>, mean_us: Option<f64>) -> Option<Distribution> {
    let s = s?;
    let [p50, p90, p95, p99] = s.quantiles_us.map(ms);
    Some(Distribution {
        count: s.count,
        mean: mean_us?.round() / 1_000.0,
        min: ms(s.min_us),
        max: ms(s.max_us),
        p50,
        p90,
        p95,
        p99,
    })
}

impl MetricsRecord {
    /// The record of `metrics` for `key`.
    pub fn new(key: &WindowKey, metrics: &WindowMetrics, views: &Views, dims: &Dimensions) -> Self {
        let length = views.length_ms(key.view);
        let t = &metrics.totals;
        Self {
            schema_version: SCHEMA_VERSION,
            view: views.views[usize::from(key.view)].name.clone(),
            window_start_ms: key.end_ms - length,
            window_end_ms: key.end_ms,
            series: dims
                .names()
                .iter()
                .cloned()
                .zip(key.series.values().iter().cloned())
                .collect(),
            requests: t.requests,
            errors: t.errors,
            errors_by_type: metrics.errors_by_type.iter().cloned().collect(),
            truncations: t.truncations,
            error_rate: metrics.error_rate(),
            truncation_rate: metrics.truncation_rate(),
            rpm: metrics.rpm(length),
            tpm: metrics.tpm(length),
            tokens: Tokens {
                input: t.input_tokens,
                output: t.output_tokens,
                cache_read: t.cache_read_tokens,
                cache_write: t.cache_write_tokens,
                reasoning: t.reasoning_tokens,
            },
            latency_ms: distribution(
                metrics.summary(Metric::Latency),
                metrics.mean_us(Metric::Latency),
            ),
            ttft_ms: distribution(metrics.summary(Metric::Ttft), metrics.mean_us(Metric::Ttft)),
            tpot_ms: distribution(metrics.summary(Metric::Tpot), metrics.mean_us(Metric::Tpot)),
            sketch_relative_error: ALPHA,
            cost: cost_record(metrics),
        }
    }

    /// The Kafka key: the series' [`Dimensions::key`].
    pub fn key(key: &WindowKey, dims: &Dimensions) -> String {
        dims.key(&key.series)
    }
}

/// A record on its way to the sinks: the Kafka key (the series) and the record.
#[derive(Clone, Debug)]
pub struct Keyed {
    /// The series key.
    pub key: String,
    /// The record.
    pub record: MetricsRecord,
}

impl super::Record for Keyed {
    fn key(&self) -> &str {
        &self.key
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.record).expect("metrics records serialize")
    }
}
