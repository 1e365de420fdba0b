//! Synthetic LLM spans: several providers, models, tenants and features; lognormal latency and
//! token counts; errors, truncations and streaming TTFT. Used by `glassbox demo`,
//! `glassbox loadgen` (which publishes it to Kafka, `glassbox_support::loadgen`), the tests and the
//! benchmarks.
//!
//! The generator is deterministic for a seed, and keeps each span in structured form
//! ([`GenSpan`]) beside its JSON, so that tests compute their ground truth from the structure
//! rather than from glassbox's own decoder.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::json;

/// Providers and their models.
pub const MODELS: [(&str, &str); 6] = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("anthropic", "claude-haiku-4"),
    ("google", "gemini-2.5-flash"),
    ("mistral", "mistral-large"),
];
/// Tenants.
pub const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
/// Features.
pub const FEATURES: [&str; 3] = ["support-chat", "search", "summarize"];

/// One generated span, structured.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSpan {
    /// 32 hex chars.
    pub trace_id: String,
    /// 16 hex chars.
    pub span_id: String,
    /// `llm` or `retrieval`.
    pub kind: &'static str,
    /// Provider.
    pub provider: &'static str,
    /// Model.
    pub model: &'static str,
    /// Tenant.
    pub tenant: &'static str,
    /// Feature.
    pub feature: &'static str,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// Duration, ns.
    pub duration_ns: u64,
    /// Time to first chunk, ns (streaming calls).
    pub ttft_ns: Option<u64>,
    /// Input tokens (cache reads included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// `error.type`, for failed calls.
    pub error_type: Option<&'static str>,
    /// Finish reason (`stop` or `length`).
    pub finish_reason: &'static str,
}

impl GenSpan {
    /// The native JSON record.
    pub fn to_json(&self) -> Vec<u8> {
        let mut attrs = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            attrs.insert(k.to_owned(), v);
        };
        if self.kind == "llm" {
            put("gen_ai.provider.name", json!(self.provider));
            put("gen_ai.operation.name", json!("chat"));
            put("gen_ai.request.model", json!(self.model));
            put("gen_ai.usage.input_tokens", json!(self.input_tokens));
            put("gen_ai.usage.output_tokens", json!(self.output_tokens));
            if self.cache_read_tokens > 0 {
                put(
                    "gen_ai.usage.cache_read.input_tokens",
                    json!(self.cache_read_tokens),
                );
            }
            if self.reasoning_tokens > 0 {
                put(
                    "gen_ai.usage.reasoning.output_tokens",
                    json!(self.reasoning_tokens),
                );
            }
            put(
                "gen_ai.response.finish_reasons",
                json!([self.finish_reason]),
            );
            if let Some(t) = self.ttft_ns {
                put("gen_ai.response.time_to_first_chunk", json!(t as f64 / 1e9));
            }
            if let Some(e) = self.error_type {
                put("error.type", json!(e));
            }
        } else {
            put("gen_ai.operation.name", json!("retrieval"));
        }
        put("tenant.id", json!(self.tenant));
        put("app.feature", json!(self.feature));
        let status = if self.error_type.is_some() {
            "error"
        } else {
            "ok"
        };
        serde_json::to_vec(&json!({
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": null,
            "kind": self.kind,
            "name": format!("{} {}", if self.kind == "llm" { "chat" } else { "retrieve" }, self.model),
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": self.start_ns + self.duration_ns,
            "status": {"code": status},
            "attributes": attrs,
        }))
        .expect("json serializes")
    }
}

/// A deterministic span generator.
pub struct Generator {
    rng: StdRng,
    next_start_ns: u64,
    step_ns: u64,
    latency: LogNormal<f64>,
    input: LogNormal<f64>,
    output: LogNormal<f64>,
    serial: u64,
}

impl Generator {
    /// Spans starting at `start_ms`, `rate` per second of event time.
    pub fn new(seed: u64, start_ms: u64, rate: f64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            next_start_ns: start_ms * 1_000_000,
            step_ns: (1e9 / rate.max(1e-3)) as u64,
            latency: LogNormal::new(6.9, 0.6).expect("valid"), // median ≈ 1 s (ms)
            input: LogNormal::new(6.5, 0.8).expect("valid"),   // median ≈ 665 tokens
            output: LogNormal::new(4.8, 0.7).expect("valid"),  // median ≈ 120 tokens
            serial: 0,
        }
    }

    /// The next span.
    pub fn next_span(&mut self) -> GenSpan {
        let r = &mut self.rng;
        self.serial += 1;
        let (provider, model) = MODELS[r.random_range(0..MODELS.len())];
        let tenant = TENANTS[r.random_range(0..TENANTS.len())];
        let feature = FEATURES[r.random_range(0..FEATURES.len())];
        let kind = if r.random_bool(0.1) {
            "retrieval"
        } else {
            "llm"
        };
        // The slow model is slower, for the demo's table to show something.
        let slow = if model == "gpt-4o" { 1.6 } else { 1.0 };
        let duration_ms = (self.latency.sample(r) * slow).clamp(5.0, 120_000.0);
        let duration_ns = (duration_ms * 1e6) as u64;
        let streaming = r.random_bool(0.7);
        let ttft_ns = streaming.then(|| (duration_ns as f64 * r.random_range(0.05..0.4)) as u64);
        let input_tokens = self.input.sample(r).clamp(1.0, 200_000.0) as u64;
        let output_tokens = self.output.sample(r).clamp(1.0, 16_000.0) as u64;
        let cache_read_tokens = if r.random_bool(0.3) {
            input_tokens / 2
        } else {
            0
        };
        let reasoning_tokens = if model.starts_with("claude-sonnet") {
            output_tokens / 3
        } else {
            0
        };
        let error_type = if r.random_bool(0.03) {
            Some(["timeout", "rate_limited", "server_error"][r.random_range(0..3)])
        } else {
            None
        };
        let finish_reason = if error_type.is_none() && r.random_bool(0.02) {
            "length"
        } else {
            "stop"
        };
        let trace_id = format!("{:016x}{:016x}", r.random::<u64>(), self.serial);
        let span_id = format!("{:016x}", r.random::<u64>());
        let start_ns = self.next_start_ns;
        self.next_start_ns += self.step_ns;
        GenSpan {
            trace_id,
            span_id,
            kind,
            provider,
            model,
            tenant,
            feature,
            start_ns,
            duration_ns,
            ttft_ns,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            reasoning_tokens,
            error_type,
            finish_reason,
        }
    }

    /// A malformed record of a rotating kind: not JSON, missing ids, end before start, negative tokens.
    pub fn malformed(&mut self) -> (Vec<u8>, &'static str) {
        self.serial += 1;
        match self.serial % 4 {
            0 => (b"{not json".to_vec(), "invalid_json"),
            1 => (br#"{"span_id":"00f067aa0ba902b7","start_time_unix_nano":1,"end_time_unix_nano":2}"#.to_vec(), "missing_field"),
            2 => {
                let s = self.next_span();
                let mut v: serde_json::Value = serde_json::from_slice(&s.to_json()).expect("own json");
                v["end_time_unix_nano"] = json!(s.start_ns - 1);
                (serde_json::to_vec(&v).expect("json"), "end_before_start")
            }
            _ => {
                let s = self.next_span();
                let mut v: serde_json::Value = serde_json::from_slice(&s.to_json()).expect("own json");
                v["attributes"]["gen_ai.usage.input_tokens"] = json!(-5);
                (serde_json::to_vec(&v).expect("json"), "negative_tokens")
            }
        }
    }
}

/// A RAG trace for one answer, as native JSON records `(key, payload)`: a retrieval span at
/// `t_ms` (40 ms, with the query and the chunks as `gen_ai.retrieval.*`) and, 50 ms later, an
/// `llm` span with the question and answer (`input.value`, `output.value`), for `tenant`.
/// `case` holds `question`, `chunks` and `answer`, as a line of
/// `quality/testdata/faithfulness_cases.jsonl` does. The retrieval is keyed by its span id and
/// the generation by the trace id, so a trace's spans land on different partitions.
pub fn rag_trace(
    trace_id: &str,
    retrieval_id: &str,
    llm_id: &str,
    t_ms: u64,
    case: &serde_json::Value,
    tenant: &str,
) -> [(String, Vec<u8>); 2] {
    let ns = |ms: u64| ms * 1_000_000;
    let documents: Vec<serde_json::Value> = case["chunks"]
        .as_array()
        .map(|chunks| chunks.iter().map(|c| json!({"content": c})).collect())
        .unwrap_or_default();
    let retrieval = json!({
        "trace_id": trace_id, "span_id": retrieval_id, "kind": "retrieval", "name": "retrieve",
        "start_time_unix_nano": ns(t_ms), "end_time_unix_nano": ns(t_ms + 40),
        "status": {"code": "ok"},
        "attributes": {
            "gen_ai.retrieval.query.text": case["question"],
            "gen_ai.retrieval.documents": serde_json::to_string(&documents).expect("json"),
            "tenant.id": tenant,
        }
    });
    let llm = json!({
        "trace_id": trace_id, "span_id": llm_id, "kind": "llm", "name": "chat",
        "start_time_unix_nano": ns(t_ms + 50), "end_time_unix_nano": ns(t_ms + 900),
        "status": {"code": "ok"},
        "attributes": {
            "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 400, "gen_ai.usage.output_tokens": 60,
            "input.value": case["question"], "output.value": case["answer"],
            "tenant.id": tenant, "app.feature": "rag",
        }
    });
    [
        (
            retrieval_id.to_owned(),
            serde_json::to_vec(&retrieval).expect("json"),
        ),
        (trace_id.to_owned(), serde_json::to_vec(&llm).expect("json")),
    ]
}
