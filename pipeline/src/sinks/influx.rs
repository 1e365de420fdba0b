//! The InfluxDB sink: window records as line protocol, over the InfluxDB 1.x API
//! (`POST /write`) or the 2.x API (`POST /api/v2/write`, also spoken by VictoriaMetrics).
//!
//! # Measurements
//! One point per (view, series, window) and measurement, at the window's start (ms). Tags:
//! `view` and every series dimension (`provider`, `model`, …); a dimension whose value is
//! empty is left out, which is how InfluxDB stores an empty tag anyway.
//!
//! | measurement | extra tags | fields (`i`: integer, else float) | written |
//! |---|---|---|---|
//! | `{prefix}_requests` | | `requests`i, `errors`i, `truncations`i, `error_rate`, `truncation_rate`, `rpm`, `tpm` | always |
//! | `{prefix}_tokens` | | `input`i, `output`i, `cache_read`i, `cache_write`i, `reasoning`i | always |
//! | `{prefix}_latency_ms` | | `count`i, `mean`, `min`, `max`, `p50`, `p90`, `p95`, `p99` | when the window has latencies |
//! | `{prefix}_ttft_ms` | | same as latency | when some call reported a time to first token |
//! | `{prefix}_tpot_ms` | | same as latency | when some call has a time per output token |
//! | `{prefix}_errors` | `error_type` | `count`i | one point per error type seen in the window |
//! | `{prefix}_cost` | | `total_pico`i, `input_pico`i, `cache_read_pico`i, `cache_write_pico`i, `output_pico`i, `reasoning_pico`i (exact pico-USD), `usd` (display), `unpriced_calls`i | when `cost.enabled` |
//! | `{prefix}_unpriced` | `unpriced_model` | `calls`i | one point per model without a price in the window |
//!
//! When the price table changes, windows still open in the pipeline are re-priced and their
//! `{prefix}_cost` points written again with the new values (same timestamp and tags, so they
//! replace the old ones); see the README's "Re-pricing".
//!
//! The prefix is `influx.measurement_prefix` (`glassbox`). VictoriaMetrics names a field `f`
//! of measurement `m` as the series `m_f`, e.g. `glassbox_latency_ms_p99`.
//!
//! # Exactly-once results from at-least-once writes
//! A point is identified by measurement, tag set and timestamp, and rendering is a pure
//! function of the record: writing a batch again (a retry, or a replay after a restart)
//! overwrites the same points with the same values. Floats are written with Rust's shortest
//! round-trip representation, so InfluxDB stores exactly the `f64` the pipeline computed; a
//! field always has the same type (integers carry the `i` suffix, floats never do).
//!
//! # Failures
//! 2xx: written. 408, 429, 5xx, timeouts and connection errors: retried by the
//! [`ThreadedSink`](super::threaded::ThreadedSink) with backoff. 400 (a point the server cannot
//! parse or store) and 413 (body too large): the batch is split in halves and each half
//! written, down to single records, so only the records refused alone are dead-lettered with
//! the server's message. Any other status (401, 403, 404…): the batch is refused for good and
//! dead-lettered.
//!
//! # Text
//! What the servers store for a name, tag or string field is [`stored_text`] and
//! [`stored_string_field`] of the record's text: line breaks become spaces and backslashes in
//! names and tags become `＼` (U+FF3C), because line protocol cannot carry them alike to
//! InfluxDB 1.x and VictoriaMetrics; everything else is kept exactly. The round trip is checked
//! against both real servers (`integration/tests/line_protocol.rs`). Neither the token nor the password is
//! ever put into an error, a log line or `Debug` output.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

pub use crate::config::influx::{InfluxApi, InfluxConfig, RESERVED_TAG_KEYS, check_dimensions};
pub use crate::config::secret::Secret;

use super::Keyed;
use super::threaded::{BatchSettings, WriteError, Writer};
use crate::records::metrics::{Distribution, MetricsRecord};
use glassbox_operators::alerts::AlertEvent;

/// The longest server message kept in a [`WriteError`].
const MAX_MESSAGE: usize = 500;

impl InfluxConfig {
    /// The threaded sink's batching for this section (default backoff).
    pub fn batch_settings(&self) -> BatchSettings {
        BatchSettings {
            max_records: self.batch_records,
            max_delay: Duration::from_millis(self.batch_delay_ms),
            ..BatchSettings::default()
        }
    }

    /// The write endpoint, query string included (`precision=ms`). Holds no secret.
    pub fn write_url(&self) -> String {
        let base = self.url.trim().trim_end_matches('/');
        let mut url = String::from(base);
        match self.api {
            InfluxApi::V1 => {
                url.push_str("/write?db=");
                percent_encode(&self.database, &mut url);
                if let Some(rp) = &self.retention_policy {
                    url.push_str("&rp=");
                    percent_encode(rp, &mut url);
                }
            }
            InfluxApi::V2 => {
                url.push_str("/api/v2/write?org=");
                percent_encode(&self.org, &mut url);
                url.push_str("&bucket=");
                percent_encode(&self.bucket, &mut url);
            }
        }
        url.push_str("&precision=ms");
        url
    }
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// What InfluxDB and VictoriaMetrics store for a measurement name, tag key or tag value `s`
/// written by this sink: `s` with each line break (`\n`, `\r`) made a space and each backslash
/// made `＼` (U+FF3C, fullwidth reverse solidus); every other character is kept.
///
/// Line protocol cannot carry those characters alike to both servers: a line break ends the
/// point (VictoriaMetrics would read the rest as a point of its own), InfluxDB 1.x keeps `\\`
/// as two backslashes where VictoriaMetrics reads one, and InfluxDB 1.x cannot read a
/// backslash directly before `,`, `=`, a space or the end at all, so one value made of
/// backslashes used to make the whole batch unparseable. A non-empty text stays non-empty.
pub fn stored_text(s: &str) -> String {
    s.chars().map(stored_char).collect()
}

fn stored_char(c: char) -> char {
    match c {
        '\n' | '\r' => ' ',
        '\\' => '＼',
        c => c,
    }
}

/// What InfluxDB stores for a string field value `s` written by this sink: `s` with each line
/// break made a space (see [`stored_text`]); quotes and backslashes are escaped and kept.
pub fn stored_string_field(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, '\n' | '\r') { ' ' } else { c })
        .collect()
}

/// Appends [`stored_text`]`(s)` to `out` with `specials` backslash-escaped.
fn push_escaped(out: &mut String, s: &str, specials: &[char]) {
    for c in s.chars().map(stored_char) {
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends `"{s}"` as a string field value: [`stored_string_field`]`(s)` with `"` and `\`
/// escaped.
fn push_string_field(out: &mut String, s: &str) {
    out.push('"');
    for c in stored_string_field(s).chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

const MEASUREMENT_SPECIALS: &[char] = &[',', ' '];
const TAG_SPECIALS: &[char] = &[',', ' ', '='];

/// `,k=v,k=v` for tags sorted by key (InfluxDB's preferred order); empty values left out.
fn push_tags(out: &mut String, tags: &[(&str, &str)]) {
    for (k, v) in tags {
        if v.is_empty() {
            continue;
        }
        out.push(',');
        push_escaped(out, k, TAG_SPECIALS);
        out.push('=');
        push_escaped(out, v, TAG_SPECIALS);
    }
}

/// One field value: integers with `i`, floats in shortest round-trip form.
enum Value {
    Int(i64),
    Float(f64),
}

fn push_point(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, Value)],
    ts_ms: u64,
) {
    push_escaped(out, measurement, MEASUREMENT_SPECIALS);
    push_tags(out, tags);
    let mut sep = ' ';
    for (name, value) in fields {
        match value {
            Value::Int(v) => {
                out.push(sep);
                out.push_str(&format!("{name}={v}i"));
            }
            // Line protocol has no NaN or infinity: such a value is left out rather than
            // having the server refuse the whole batch.
            Value::Float(v) if v.is_finite() => {
                out.push(sep);
                out.push_str(&format!("{name}={v}"));
            }
            Value::Float(_) => continue,
        }
        sep = ',';
    }
    out.push_str(&format!(" {ts_ms}\n"));
}

fn distribution_fields(d: &Distribution) -> [(&'static str, Value); 8] {
    [
        ("count", Value::Int(d.count)),
        ("mean", Value::Float(d.mean)),
        ("min", Value::Float(d.min)),
        ("max", Value::Float(d.max)),
        ("p50", Value::Float(d.p50)),
        ("p90", Value::Float(d.p90)),
        ("p95", Value::Float(d.p95)),
        ("p99", Value::Float(d.p99)),
    ]
}

/// Appends the line protocol of `record` to `out`: one line per measurement of the module's
/// table, timestamps in ms (write with `precision=ms`). Deterministic: the same record always
/// renders the same bytes. A dimension named like a [`RESERVED_TAG_KEYS`] entry is left out
/// (rejected by [`check_dimensions`] at start-up).
pub fn lines(record: &MetricsRecord, prefix: &str, out: &mut String) {
    let mut tags: Vec<(&str, &str)> = vec![("view", record.view.as_str())];
    tags.extend(
        record
            .series
            .iter()
            .filter(|(k, _)| !RESERVED_TAG_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    tags.sort_unstable();
    let ts = record.window_start_ms;
    let m = |suffix: &str| format!("{prefix}_{suffix}");

    push_point(
        out,
        &m("requests"),
        &tags,
        &[
            ("requests", Value::Int(record.requests)),
            ("errors", Value::Int(record.errors)),
            ("truncations", Value::Int(record.truncations)),
            ("error_rate", Value::Float(record.error_rate)),
            ("truncation_rate", Value::Float(record.truncation_rate)),
            ("rpm", Value::Float(record.rpm)),
            ("tpm", Value::Float(record.tpm)),
        ],
        ts,
    );
    let t = &record.tokens;
    push_point(
        out,
        &m("tokens"),
        &tags,
        &[
            ("input", Value::Int(t.input)),
            ("output", Value::Int(t.output)),
            ("cache_read", Value::Int(t.cache_read)),
            ("cache_write", Value::Int(t.cache_write)),
            ("reasoning", Value::Int(t.reasoning)),
        ],
        ts,
    );
    for (suffix, d) in [
        ("latency_ms", &record.latency_ms),
        ("ttft_ms", &record.ttft_ms),
        ("tpot_ms", &record.tpot_ms),
    ] {
        if let Some(d) = d {
            push_point(out, &m(suffix), &tags, &distribution_fields(d), ts);
        }
    }
    let errors = m("errors");
    for (error_type, count) in &record.errors_by_type {
        let mut tags = tags.clone();
        tags.push(("error_type", error_type.as_str()));
        tags.sort_unstable();
        push_point(out, &errors, &tags, &[("count", Value::Int(*count))], ts);
    }
    if let Some(c) = &record.cost {
        let class = |name: &str| Value::Int(c.by_class_pico.get(name).copied().unwrap_or(0));
        push_point(
            out,
            &m("cost"),
            &tags,
            &[
                ("total_pico", Value::Int(c.total_pico)),
                ("input_pico", class("input")),
                ("cache_read_pico", class("cache_read")),
                ("cache_write_pico", class("cache_write")),
                ("output_pico", class("output")),
                ("reasoning_pico", class("reasoning")),
                ("usd", Value::Float(c.usd)),
                ("unpriced_calls", Value::Int(c.unpriced_calls)),
            ],
            ts,
        );
        let unpriced = m("unpriced");
        for (model, calls) in &c.unpriced {
            let mut tags = tags.clone();
            tags.push(("unpriced_model", model.as_str()));
            tags.sort_unstable();
            push_point(out, &unpriced, &tags, &[("calls", Value::Int(*calls))], ts);
        }
    }
}

/// What a write outcome means for the batch.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Written,
    /// 400 (a point it cannot parse or store) or 413 (too large): something in the batch is
    /// refused, so smaller pieces are tried.
    Refused(WriteError),
    /// Worth retrying, or a refusal of any batch (e.g. 401, 404).
    Failed(WriteError),
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Classifies an HTTP answer: 2xx written; 408, 429 and 5xx worth retrying; 400 and 413 a
/// refusal of something in the batch; anything else a refusal of any batch, with the server's
/// message.
fn classify(status: u16, body: &str) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Written;
    }
    let body = body.trim();
    let message = format!(
        "influxdb answered HTTP {status}: {}",
        truncate(body, MAX_MESSAGE)
    );
    match status {
        408 | 429 | 500..=599 => Outcome::Failed(WriteError::retry(message)),
        400 | 413 => Outcome::Refused(WriteError::reject(message)),
        _ => Outcome::Failed(WriteError::reject(message)),
    }
}

/// Writes window records to InfluxDB (see the module docs). Blocking; runs on a
/// [`ThreadedSink`](super::threaded::ThreadedSink)'s thread.
pub struct InfluxWriter {
    agent: ureq::Agent,
    url: String,
    /// The `Authorization` header value: a secret, never shown.
    authorization: Option<ureq::http::HeaderValue>,
    prefix: String,
    gzip: bool,
    body: String,
    compressed: Vec<u8>,
}

impl fmt::Debug for InfluxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxWriter")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("prefix", &self.prefix)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl InfluxWriter {
    /// Resolves the secrets and builds the HTTP client. The config should have passed
    /// [`InfluxConfig::validate`]; the error names the field.
    pub fn new(config: &InfluxConfig) -> Result<Self, String> {
        config.validate()?;
        let credentials = match config.api {
            InfluxApi::V2 if !config.token.is_empty() => {
                Some(format!("Token {}", config.token.resolve("influx.token")?))
            }
            InfluxApi::V2 => None,
            InfluxApi::V1 => match &config.username {
                Some(user) => {
                    let password = match &config.password {
                        Some(p) => p.resolve("influx.password")?,
                        None => String::new(),
                    };
                    let pair = format!("{user}:{password}");
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ))
                }
                None => None,
            },
        };
        let authorization = match credentials {
            Some(c) => {
                let field = match config.api {
                    InfluxApi::V1 => "influx.username/influx.password",
                    InfluxApi::V2 => "influx.token",
                };
                let mut value = ureq::http::HeaderValue::from_str(&c).map_err(|_| {
                    format!("`{field}`: contains characters not allowed in an HTTP header")
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            // Statuses are classified here, with the server's message.
            .http_status_as_error(false)
            // A redirected POST would lose its body; report the status instead.
            .max_redirects(0)
            .user_agent(concat!("glassbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            agent,
            url: config.write_url(),
            authorization,
            prefix: config.measurement_prefix.clone(),
            gzip: config.gzip,
            body: String::new(),
            compressed: Vec::new(),
        })
    }

    /// Renders and posts `batch`. A batch the server refuses as a whole for its content (400,
    /// or 413 too large) is split in halves and each half written, down to single records, so
    /// that only the records it cannot take are refused ([`WriteError::reject_some`]); the
    /// halves it took stay written (a retry or replay rewrites the same points).
    fn write_records<T>(
        &mut self,
        batch: &[Arc<T>],
        render: fn(&T, &str, &mut String),
    ) -> Result<(), WriteError> {
        let mut refused = Vec::new();
        let mut message = None;
        self.write_part(batch, 0, render, &mut refused, &mut message)?;
        match message {
            None => Ok(()),
            Some(m) if refused.len() == batch.len() => Err(WriteError::reject(m)),
            Some(m) => Err(WriteError::reject_some(m, refused)),
        }
    }

    fn write_part<T>(
        &mut self,
        batch: &[Arc<T>],
        base: usize,
        render: fn(&T, &str, &mut String),
        refused: &mut Vec<usize>,
        message: &mut Option<String>,
    ) -> Result<(), WriteError> {
        self.body.clear();
        for item in batch {
            render(item, &self.prefix, &mut self.body);
        }
        if self.body.is_empty() {
            return Ok(());
        }
        match self.post()? {
            Outcome::Written => Ok(()),
            Outcome::Refused(_) if batch.len() > 1 => {
                let (a, b) = batch.split_at(batch.len() / 2);
                self.write_part(a, base, render, refused, message)?;
                self.write_part(b, base + a.len(), render, refused, message)
            }
            Outcome::Refused(e) => {
                refused.push(base);
                message.get_or_insert(e.message);
                Ok(())
            }
            Outcome::Failed(e) => Err(e),
        }
    }

    /// Posts `self.body`. `Err` only for transport failures (always worth retrying).
    fn post(&mut self) -> Result<Outcome, WriteError> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "text/plain; charset=utf-8");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.clone());
        }
        let sent = if self.gzip {
            self.compressed.clear();
            let mut encoder = flate2::write::GzEncoder::new(
                std::mem::take(&mut self.compressed),
                flate2::Compression::fast(),
            );
            encoder
                .write_all(self.body.as_bytes())
                .expect("writing to a Vec cannot fail");
            self.compressed = encoder.finish().expect("writing to a Vec cannot fail");
            request
                .header("Content-Encoding", "gzip")
                .send(&self.compressed[..])
        } else {
            request.send(self.body.as_bytes())
        };
        // ureq's errors name the URL at most, which holds no secret.
        let mut response =
            sent.map_err(|e| WriteError::retry(format!("influxdb write failed: {e}")))?;
        let status = response.status().as_u16();
        // Read the answer to the end so the connection can be reused; only its start matters.
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .lossy_utf8(true)
            .read_to_string()
            .unwrap_or_default();
        Ok(classify(status, &body))
    }
}

impl Writer for InfluxWriter {
    fn write(&mut self, batch: &[Arc<Keyed>]) -> Result<(), WriteError> {
        self.write_records(batch, |k, prefix, out| lines(&k.record, prefix, out))
    }
}

impl Writer<AlertEvent> for InfluxWriter {
    fn write(&mut self, batch: &[Arc<AlertEvent>]) -> Result<(), WriteError> {
        self.write_records(batch, alert_lines)
    }
}

impl Writer<crate::records::quality::QualityRecord> for InfluxWriter {
    fn write(
        &mut self,
        batch: &[Arc<crate::records::quality::QualityRecord>],
    ) -> Result<(), WriteError> {
        self.write_records(batch, quality_lines)
    }
}

/// The line of one quality record: measurement `{prefix}_quality` at the window start, tags
/// `view` and the series dimensions, fields `answers_scored`i, `feedback_count`i and, when
/// defined, `faithfulness_mean`, `faithfulness_p10`, `hallucination_rate`,
/// `answer_relevance_mean`, `context_relevance_mean`, `negative_feedback_rate`,
/// `feedback_mean_score`.
pub fn quality_lines(r: &crate::records::quality::QualityRecord, prefix: &str, out: &mut String) {
    let mut tags: Vec<(&str, &str)> = vec![("view", r.view.as_str())];
    tags.extend(
        r.series
            .iter()
            .filter(|(k, _)| !RESERVED_TAG_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    tags.sort_unstable();
    let mut fields = vec![
        ("answers_scored", Value::Int(r.answers_scored)),
        ("feedback_count", Value::Int(r.feedback_count)),
    ];
    for (name, v) in r.rates() {
        if let Some(v) = v {
            fields.push((name, Value::Float(v)));
        }
    }
    push_point(
        out,
        &format!("{prefix}_quality"),
        &tags,
        &fields,
        r.window_start_ms,
    );
}

/// The line of one alert event: measurement `{prefix}_alert_events` at the evaluation time
/// (the window end), tags `rule`, `severity`, `kind` and the group's labels (those named like a
/// [`RESERVED_TAG_KEYS`] entry or like these tags are left out), fields `id`, `key`,
/// `summary` (the `summary` annotation, or the key), `requests`i, `active_at_ms`i. For
/// dashboard annotations: `SELECT summary FROM glassbox_alert_events WHERE kind = 'firing'`.
pub fn alert_lines(e: &AlertEvent, prefix: &str, out: &mut String) {
    let own = ["rule", "severity", "kind"];
    let mut tags: Vec<(&str, &str)> = vec![
        ("rule", e.rule.as_str()),
        ("severity", e.severity.as_str()),
        ("kind", e.kind.name()),
    ];
    tags.extend(
        e.labels
            .iter()
            .filter(|(k, _)| !RESERVED_TAG_KEYS.contains(&k.as_str()) && !own.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    tags.sort_unstable();
    let summary = e.annotations.get("summary").unwrap_or(&e.key);
    push_escaped(out, &format!("{prefix}_alert_events"), MEASUREMENT_SPECIALS);
    push_tags(out, &tags);
    out.push(' ');
    for (i, (name, text)) in [("id", &e.id), ("key", &e.key), ("summary", summary)]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push('=');
        push_string_field(out, text);
    }
    out.push_str(&format!(
        ",requests={}i,active_at_ms={}i {}\n",
        e.requests, e.active_at_ms, e.window.end_ms
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::metrics::Tokens;
    use std::collections::BTreeMap;

    fn record() -> MetricsRecord {
        MetricsRecord {
            schema_version: 1,
            view: "tumbling_1m".into(),
            window_start_ms: 1_700_000_040_000,
            window_end_ms: 1_700_000_100_000,
            series: BTreeMap::from([
                ("provider".into(), "openai".into()),
                ("model".into(), "gpt 4o, mini".into()),
                ("tenant".into(), "a=b".into()),
                ("feature".into(), String::new()),
            ]),
            requests: 3,
            errors: 1,
            errors_by_type: BTreeMap::from([("rate limit".into(), 1)]),
            truncations: 0,
            error_rate: 1.0 / 3.0,
            truncation_rate: 0.0,
            rpm: 3.0,
            tpm: 1234.5,
            tokens: Tokens {
                input: 1000,
                output: 234,
                cache_read: 500,
                cache_write: 0,
                reasoning: 12,
            },
            latency_ms: Some(Distribution {
                count: 3,
                mean: 812.333,
                min: 400.0,
                max: 1200.5,
                p50: 836.0,
                p90: 1200.5,
                p95: 1200.5,
                p99: 1200.5,
            }),
            ttft_ms: None,
            tpot_ms: Some(Distribution {
                count: 2,
                mean: 20.5,
                min: 20.0,
                max: 21.0,
                p50: 20.0,
                p90: 21.0,
                p95: 21.0,
                p99: 21.0,
            }),
            sketch_relative_error: 0.01,
            cost: None,
        }
    }

    #[test]
    fn renders_exact_line_protocol_with_escaping_and_without_absent_distributions() {
        let mut out = String::new();
        lines(&record(), "gb", &mut out);
        let tags = r"model=gpt\ 4o\,\ mini,provider=openai,tenant=a\=b,view=tumbling_1m";
        let expected = [
            format!(
                "gb_requests,{tags} requests=3i,errors=1i,truncations=0i,\
                 error_rate=0.3333333333333333,truncation_rate=0,rpm=3,tpm=1234.5 1700000040000"
            ),
            format!(
                "gb_tokens,{tags} input=1000i,output=234i,cache_read=500i,cache_write=0i,\
                 reasoning=12i 1700000040000"
            ),
            format!(
                "gb_latency_ms,{tags} count=3i,mean=812.333,min=400,max=1200.5,p50=836,\
                 p90=1200.5,p95=1200.5,p99=1200.5 1700000040000"
            ),
            format!(
                "gb_tpot_ms,{tags} count=2i,mean=20.5,min=20,max=21,p50=20,p90=21,p95=21,\
                 p99=21 1700000040000"
            ),
            r"gb_errors,error_type=rate\ limit,model=gpt\ 4o\,\ mini,provider=openai,tenant=a\=b,view=tumbling_1m count=1i 1700000040000".to_owned(),
        ];
        assert_eq!(out, expected.join("\n") + "\n");
        // Deterministic: a replay renders the same bytes.
        let mut again = String::new();
        lines(&record(), "gb", &mut again);
        assert_eq!(out, again);
    }

    #[test]
    fn escapes_keys_measurements_and_unreadable_characters() {
        let mut out = String::new();
        push_escaped(&mut out, "a b,c=d", TAG_SPECIALS);
        assert_eq!(out, r"a\ b\,c\=d");
        out.clear();
        push_escaped(&mut out, "m x,y=z", MEASUREMENT_SPECIALS);
        assert_eq!(out, r"m\ x\,y=z");
        out.clear();
        // Backslashes and line breaks are what the servers cannot read back alike.
        push_escaped(&mut out, "C:\\dir\\x", TAG_SPECIALS);
        assert_eq!(out, "C:＼dir＼x");
        out.clear();
        push_escaped(&mut out, "\\\\\\", TAG_SPECIALS);
        assert_eq!(out, "＼＼＼", "a value of backslashes is not empty");
        out.clear();
        push_escaped(&mut out, "two\nlines\r", TAG_SPECIALS);
        assert_eq!(out, r"two\ lines\ ");
    }

    #[test]
    fn non_finite_floats_and_reserved_dimensions_are_left_out() {
        let mut r = record();
        r.error_rate = f64::NAN;
        r.series.insert("view".into(), "sneaky".into());
        r.errors_by_type.clear();
        r.latency_ms = None;
        r.tpot_ms = None;
        let mut out = String::new();
        lines(&r, "gb", &mut out);
        let first = out.lines().next().unwrap();
        assert!(
            first.contains("truncations=0i,truncation_rate=0,"),
            "{first}"
        );
        assert!(!out.contains("sneaky") && out.lines().count() == 2, "{out}");
        assert!(
            check_dimensions(&["model".into(), "view".into()])
                .unwrap_err()
                .contains("metrics.dimensions")
        );
        assert!(check_dimensions(&["model".into()]).is_ok());
    }

    #[test]
    fn floats_round_trip_through_their_rendering() {
        // InfluxDB parses with Go's exact ParseFloat; Rust's parser is exact too.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                assert_eq!(
                    format!("{f}").parse::<f64>().unwrap().to_bits(),
                    f.to_bits()
                );
            }
        }
        // Integral floats carry no `i`, so they stay floats.
        assert_eq!(format!("{}", 3.0f64), "3");
    }

    #[test]
    fn builds_v1_and_v2_urls() {
        let mut c = InfluxConfig {
            url: "https://influx.example.com:8086/proxy/".into(),
            api: InfluxApi::V2,
            org: "my org".into(),
            bucket: "glass&box".into(),
            ..InfluxConfig::default()
        };
        assert_eq!(
            c.write_url(),
            "https://influx.example.com:8086/proxy/api/v2/write?org=my%20org&bucket=glass%26box&precision=ms"
        );
        c.api = InfluxApi::V1;
        c.url = "http://127.0.0.1:8086".into();
        c.database = "metrics".into();
        assert_eq!(
            c.write_url(),
            "http://127.0.0.1:8086/write?db=metrics&precision=ms"
        );
        c.retention_policy = Some("one week".into());
        assert_eq!(
            c.write_url(),
            "http://127.0.0.1:8086/write?db=metrics&rp=one%20week&precision=ms"
        );
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(classify(204, ""), Outcome::Written);
        assert_eq!(classify(200, "ok"), Outcome::Written);
        for status in [408, 429, 500, 503] {
            match classify(status, "busy") {
                Outcome::Failed(e) => assert!(e.retryable, "{status}"),
                other => panic!("{status}: {other:?}"),
            }
        }
        let long = "x".repeat(2_000);
        for status in [400, 401, 403, 404, 422, 301] {
            match classify(status, &format!("{{\"error\":\"bad\"}}{long}")) {
                Outcome::Failed(e) | Outcome::Refused(e) => {
                    assert_eq!(
                        matches!(classify(status, ""), Outcome::Refused(_)),
                        status == 400
                    );
                    assert!(!e.retryable, "{status}");
                    assert!(e.message.contains("bad") && e.message.contains(&status.to_string()));
                    assert!(e.message.len() < 600, "{}", e.message.len());
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        assert!(matches!(classify(413, "too big"), Outcome::Refused(_)));
        assert_eq!(truncate("héllo", 2), "hé");
    }

    #[test]
    fn validation_names_the_field() {
        assert!(
            InfluxConfig::default().validate().is_ok(),
            "disabled: anything goes"
        );
        let enabled = InfluxConfig {
            enabled: true,
            org: "o".into(),
            ..InfluxConfig::default()
        };
        assert!(enabled.validate().is_ok());
        type Breaks = fn(&mut InfluxConfig);
        let cases: [(&str, Breaks); 8] = [
            ("influx.url", |c| c.url = "localhost:8086".into()),
            ("influx.org", |c| c.org = String::new()),
            ("influx.bucket", |c| c.bucket = " ".into()),
            ("influx.database", |c| {
                c.api = InfluxApi::V1;
                c.database = String::new();
            }),
            ("influx.password", |c| {
                c.api = InfluxApi::V1;
                c.password = Some(Secret::new("x"));
            }),
            ("influx.measurement_prefix", |c| {
                c.measurement_prefix = "glass box".into()
            }),
            ("influx.batch_records", |c| c.batch_records = 0),
            ("influx.timeout_ms", |c| c.timeout_ms = 0),
        ];
        for (field, break_it) in cases {
            let mut c = enabled.clone();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
        }
    }

    #[test]
    fn config_round_trips_through_toml_and_parses_api_names() {
        let c = InfluxConfig::default();
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(toml::from_str::<InfluxConfig>(&text).unwrap(), c);
        let c: InfluxConfig = toml::from_str(
            "enabled = true\napi = \"v1\"\nusername = \"u\"\npassword = \"env:PW\"\n",
        )
        .unwrap();
        assert_eq!(c.api, InfluxApi::V1);
        assert_eq!(c.password, Some(Secret::new("env:PW")));
        let err = toml::from_str::<InfluxConfig>("tokn = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("tokn"), "{err}");
    }

    #[test]
    fn secrets_resolve_and_never_show() {
        let path = std::env::temp_dir().join(format!("glassbox-influx-{}", std::process::id()));
        std::fs::write(&path, "t0ken-from-file\n").unwrap();
        let from_file = Secret::new(format!("file:{}", path.display()));
        assert_eq!(
            from_file.resolve("influx.token").unwrap(),
            "t0ken-from-file"
        );
        let err = Secret::new("env:GLASSBOX_TEST_SURELY_UNSET_INFLUX")
            .resolve("influx.token")
            .unwrap_err();
        assert!(
            err.contains("influx.token") && err.contains("GLASSBOX_TEST_SURELY_UNSET_INFLUX"),
            "{err}"
        );

        let config = InfluxConfig {
            enabled: true,
            org: "o".into(),
            token: Secret::new("literal-s3cret"),
            ..InfluxConfig::default()
        };
        assert!(!format!("{config:?}").contains("literal-s3cret"));
        let writer = InfluxWriter::new(&config).unwrap();
        assert!(!format!("{writer:?}").contains("s3cret"), "{writer:?}");
        let v1 = InfluxConfig {
            enabled: true,
            api: InfluxApi::V1,
            username: Some("u".into()),
            password: Some(from_file),
            ..InfluxConfig::default()
        };
        let writer = InfluxWriter::new(&v1).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("u:t0ken-from-file");
        assert_eq!(
            writer.authorization.as_ref().unwrap().to_str().unwrap(),
            format!("Basic {expected}")
        );
        assert!(!format!("{writer:?}").contains(&expected));
        std::fs::remove_file(path).unwrap();
    }
}
