//! A decoded span reduced to what the metrics operators need.
//!
//! [`SpanFacts`] is computed once per span, right after decoding, so that the dataflow never
//! carries prompt or answer text, and never re-derives TPOT or the series key.

use glassbox_schemas::{Span, SpanKind};
use std::collections::HashMap;
use std::sync::Arc;

use crate::cost::TokenSemantics;

use serde::{Deserialize, Serialize};

/// The value used for a series dimension the span does not carry.
pub const UNKNOWN: &str = "unknown";

/// The values of the configured series dimensions, in configuration order.
///
/// Shared (`Arc`): a series key is copied into every update of every window it appears in, so
/// a clone must not copy its strings, and comparing two copies of the same key (what sorting a
/// window's updates does most) must not compare its strings either.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series(pub Arc<[String]>);

impl std::hash::Hash for Series {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // By content, as equality is: two copies of one key hash alike.
        self.0.hash(state);
    }
}

impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Series {}

impl PartialOrd for Series {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Series {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl Default for Series {
    fn default() -> Self {
        Self(Arc::new([]))
    }
}

impl Series {
    /// A series of these dimension values.
    pub fn new(values: Vec<String>) -> Self {
        Self(values.into())
    }

    /// The dimension values, in configuration order.
    pub fn values(&self) -> &[String] {
        &self.0
    }
}

/// Which dimensions make a series, e.g. `["provider", "model", "tenant", "feature"]`.
///
/// Names are those of [`Span::dimension`]: a well-known name or any attribute key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimensions(pub Vec<String>);

impl Default for Dimensions {
    fn default() -> Self {
        Self(
            ["provider", "model", "tenant", "feature"]
                .map(String::from)
                .to_vec(),
        )
    }
}

impl Dimensions {
    /// The series of `span` under these dimensions; absent values become [`UNKNOWN`].
    pub fn series_of(&self, span: &Span) -> Series {
        Series(
            self.0
                .iter()
                .map(|d| span.dimension(d).unwrap_or(UNKNOWN).to_owned())
                .collect(),
        )
    }

    /// The dimension names.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The series' text key, `name=value` pairs joined by `,` in dimension order, e.g.
    /// `provider=openai,model=gpt-4o,tenant=acme,feature=search`: the Kafka key of its records
    /// and part of its Redis keys. Each value's `\`, `,`, `=` and `|` are escaped with a `\`,
    /// so two different series never share a key (a model `m,tenant=t` is `m\,tenant\=t`,
    /// not a second pair) and a key followed by `|` and more text stays unambiguous. Nothing
    /// is ever parsed back out of a key: whoever needs a value reads the record's fields.
    pub fn key(&self, series: &Series) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.0.iter().zip(series.values()).enumerate() {
            if i > 0 {
                out.push(',');
            }
            escape_into(&mut out, name);
            out.push('=');
            escape_into(&mut out, value);
        }
        out
    }
}

/// Appends `text` with `\`, `,`, `=` and `|` escaped by a `\` (see [`Dimensions::key`]).
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | ',' | '=' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// One model call, as the metrics operators see it. Durations are in microseconds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpanFacts {
    /// The series the span counts in.
    pub series: Series,
    /// Event time: the span's start, ms since the Unix epoch.
    pub start_ms: u64,
    /// End-to-end latency (end − start).
    pub latency_us: u64,
    /// Time to first token, when the span reports it.
    pub ttft_us: Option<u64>,
    /// Time per output token = (latency − TTFT) / (output_tokens − 1), only when TTFT is known,
    /// not above the latency, and more than one output token was produced.
    pub tpot_us: Option<u64>,
    /// Input tokens (under OTel semantics these include cached tokens).
    pub input_tokens: u64,
    /// Output tokens (these include reasoning tokens).
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// The error class (`error.type`, or `_OTHER` for an error status without one).
    pub error: Option<String>,
    /// `finish_reasons` contains `length`: the answer was cut off.
    pub truncated: bool,
    /// What prices the call, and its tokens by price class; `None` when cost is off.
    pub usage: Option<SpanUsage>,
    /// The span's trace id, carried only so that alerts can point at example traces
    /// ([`crate::metrics::panes::Exemplar`]); `None` when the source has none.
    pub trace_id: Option<Arc<str>>,
}

/// What prices a call: the provider and model as the span reported them (resolved against the
/// price table only downstream, so that a new table re-prices them), and its prompt-size tier.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PriceKey {
    /// `gen_ai.provider.name` (or `gen_ai.system`), when the span has one.
    pub provider: Option<Arc<str>>,
    /// The model (response model first, then request model); [`UNKNOWN`] when absent.
    pub model: Arc<str>,
    /// The largest tier threshold of [`CostKeying`] that the prompt exceeds, or 0: every
    /// threshold `T` of the keying satisfies `prompt > T ⟺ tier ≥ T`, which is all a price
    /// tier asks of the prompt size.
    pub tier: u64,
}

impl PriceKey {
    /// A prompt size that selects the same price tiers as every prompt of this key.
    pub fn representative_prompt(&self) -> u64 {
        if self.tier == 0 { 0 } else { self.tier + 1 }
    }

    /// `provider/model@tier` (`-` for no provider): the key's text form in Redis.
    pub fn label(&self) -> String {
        format!(
            "{}/{}@{}",
            self.provider.as_deref().unwrap_or("-"),
            self.model,
            self.tier
        )
    }
}

/// The price classes of a call's tokens, each billed at its own rate. [`TokenClass::Calls`]
/// counts calls (to report unpriced ones) and is not billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TokenClass {
    /// Calls.
    Calls,
    /// Uncached input tokens.
    Input,
    /// Cache-read input tokens.
    CacheRead,
    /// Cache-write input tokens.
    CacheWrite,
    /// Output tokens that are not reasoning tokens.
    Output,
    /// Reasoning tokens.
    Reasoning,
}

impl TokenClass {
    /// Every class, in order.
    pub const ALL: [TokenClass; 6] = [
        TokenClass::Calls,
        TokenClass::Input,
        TokenClass::CacheRead,
        TokenClass::CacheWrite,
        TokenClass::Output,
        TokenClass::Reasoning,
    ];

    /// The name in records and InfluxDB fields.
    pub fn name(self) -> &'static str {
        match self {
            TokenClass::Calls => "calls",
            TokenClass::Input => "input",
            TokenClass::CacheRead => "cache_read",
            TokenClass::CacheWrite => "cache_write",
            TokenClass::Output => "output",
            TokenClass::Reasoning => "reasoning",
        }
    }
}

/// A call's [`PriceKey`] and its counts per [`TokenClass`] (in the order of
/// [`TokenClass::ALL`]; `Calls` is 1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpanUsage {
    /// What prices it.
    pub key: PriceKey,
    /// Counts per class.
    pub counts: [u64; 6],
}

/// How spans are keyed for pricing: the token semantics per provider and the prompt-size tier
/// thresholds (see [`crate::cost`] for both).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CostKeying {
    /// Tier thresholds, ascending, distinct: the union of the price table's `*_above_{N}k_tokens`
    /// tiers and any configured ones. A later table's threshold that is not here is applied at
    /// the next lower one (the pipeline warns).
    pub thresholds: Vec<u64>,
    /// Token semantics per provider (lowercase); a provider not listed gets
    /// [`TokenSemantics::default_for`].
    pub semantics: HashMap<String, TokenSemantics>,
}

impl CostKeying {
    /// The semantics of `provider`'s token counts.
    pub fn semantics(&self, provider: Option<&str>) -> TokenSemantics {
        provider
            .and_then(|p| self.semantics.get(&p.to_ascii_lowercase()).copied())
            .unwrap_or_else(|| TokenSemantics::default_for(provider))
    }

    /// The tier of a prompt of `prompt` tokens: the largest threshold below it, or 0.
    pub fn tier(&self, prompt: u64) -> u64 {
        self.thresholds
            .iter()
            .rev()
            .find(|t| prompt > **t)
            .copied()
            .unwrap_or(0)
    }

    /// The usage of a model call. The classes follow [`crate::cost::span_cost`]: under
    /// inclusive semantics the uncached input is `input − cache_read − cache_write` (clamped
    /// at 0), and output excludes reasoning (clamped at 0).
    pub fn usage(&self, span: &Span) -> SpanUsage {
        let n = |v: Option<u64>| v.unwrap_or(0);
        let u = &span.usage;
        let (input, output) = (n(u.input), n(u.output));
        let (cache_read, cache_write, reasoning) =
            (n(u.cache_read), n(u.cache_write), n(u.reasoning));
        let provider = span.dimension("provider");
        let uncached = match self.semantics(provider) {
            TokenSemantics::Inclusive => {
                input.saturating_sub(cache_read.saturating_add(cache_write))
            }
            TokenSemantics::Separate => input,
        };
        let prompt = uncached
            .saturating_add(cache_read)
            .saturating_add(cache_write);
        SpanUsage {
            key: PriceKey {
                provider: provider.map(Arc::from),
                model: Arc::from(span.model().unwrap_or(UNKNOWN)),
                tier: self.tier(prompt),
            },
            counts: [
                1,
                uncached,
                cache_read,
                cache_write,
                output.saturating_sub(reasoning),
                reasoning,
            ],
        }
    }
}

impl SpanFacts {
    /// Whether a span is a model call that the request metrics count: `llm` and `embedding`.
    pub fn counts(span: &Span) -> bool {
        matches!(span.kind, SpanKind::Llm | SpanKind::Embedding)
    }

    /// The facts of `span` under `dims`, or `None` when the span is not a model call.
    pub fn from_span(span: &Span, dims: &Dimensions) -> Option<Self> {
        Self::from_span_priced(span, dims, None)
    }

    /// Like [`SpanFacts::from_span`], with the call's [`SpanUsage`] under `keying` when given.
    pub fn from_span_priced(
        span: &Span,
        dims: &Dimensions,
        keying: Option<&CostKeying>,
    ) -> Option<Self> {
        if !Self::counts(span) {
            return None;
        }
        let latency_us = span.duration_ns() / 1_000;
        let ttft_us = span.ttft_ns.map(|t| t / 1_000);
        let output_tokens = span.usage.output.unwrap_or(0);
        let tpot_us = match ttft_us {
            Some(ttft) if output_tokens > 1 && ttft <= latency_us => {
                Some((latency_us - ttft) / (output_tokens - 1))
            }
            _ => None,
        };
        Some(Self {
            series: dims.series_of(span),
            start_ms: span.start_ms(),
            latency_us,
            ttft_us,
            tpot_us,
            input_tokens: span.usage.input.unwrap_or(0),
            output_tokens,
            cache_read_tokens: span.usage.cache_read.unwrap_or(0),
            cache_write_tokens: span.usage.cache_write.unwrap_or(0),
            reasoning_tokens: span.usage.reasoning.unwrap_or(0),
            error: span.error_kind().map(str::to_owned),
            truncated: span.is_truncated(),
            usage: keying.map(|k| k.usage(span)),
            trace_id: (!span.trace_id.is_empty()).then(|| span.trace_id.as_str().into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits a key back into its pairs, honouring the escapes: only the test does this, to
    /// prove that the key loses nothing.
    fn pairs(key: &str) -> Vec<(String, String)> {
        let (mut pairs, mut name, mut field, mut escaped) = (vec![], None, String::new(), false);
        for c in key.chars() {
            match (escaped, c) {
                (true, c) => (field.push(c), escaped = false).0,
                (false, '\\') => escaped = true,
                (false, '=') if name.is_none() => name = Some(std::mem::take(&mut field)),
                (false, ',') => pairs.push((name.take().unwrap(), std::mem::take(&mut field))),
                (false, c) => field.push(c),
            }
        }
        pairs.push((name.take().unwrap(), field));
        pairs
    }

    #[test]
    fn a_value_that_looks_like_pairs_does_not_collide_with_a_real_pair() {
        let dims = Dimensions(vec!["model".into(), "tenant".into()]);
        let forged = dims.key(&Series::new(vec!["m,tenant=t".into(), "x".into()]));
        let other = Dimensions(vec!["model".into(), "tenant".into(), "tenant".into()])
            .key(&Series::new(vec!["m".into(), "t".into(), "x".into()]));
        assert_eq!(forged, r"model=m\,tenant\=t,tenant=x");
        assert_ne!(forged, other);
        assert_eq!(
            dims.key(&Series::new(vec![r"a\".into(), "|b".into()])),
            r"model=a\\,tenant=\|b"
        );
    }

    proptest! {
        #[test]
        fn keys_round_trip_so_distinct_series_have_distinct_keys(
            values in proptest::collection::vec("[a-z,=|\\\\ ]{0,6}", 1..5),
        ) {
            let names: Vec<String> = (0..values.len()).map(|i| format!("d{i}")).collect();
            let key = Dimensions(names.clone()).key(&Series::new(values.clone()));
            prop_assert_eq!(pairs(&key), names.into_iter().zip(values).collect::<Vec<_>>());
        }
    }
}
