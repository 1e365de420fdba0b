//! The native JSON decoder: one span per record, in one pass.
//!
//! This is the hot path, so the record is never parsed into a `serde_json::Value`. Hand-written
//! serde visitors walk the top-level object and the attributes, match each key with a `match`
//! on the borrowed `&str`, and read each recognised value straight into its typed slot; values
//! nobody needs are skipped with [`IgnoredAny`]. Strings without escapes are borrowed from the
//! input until they are stored.
//!
//! A field fed by several aliases keeps the value of the alias listed first in
//! [`crate::ATTRIBUTE_ALIASES`], whatever the order of the keys: each slot remembers the priority
//! of the alias that filled it. Every recognised attribute is validated, winner or not, so
//! whether a record is accepted never depends on key order.
//!
//! Semantic errors found inside a visitor (a negative token count, say) cannot travel through
//! serde's error type without losing their shape, so the visitor parks the typed
//! [`DecodeError`] in the draft and aborts the parse; [`JsonDecoder::decode`] returns the parked
//! error in preference to serde's.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::num::IntErrorKind;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::conventions::{Field, Known, classify, is_content_attribute};
use crate::error::{DecodeError, Horizon};
use crate::span::{Span, SpanKind, StatusCode, TokenUsage};
use crate::text::{TextDraft, TextOptions, text_key};

/// Unknown string attributes longer than this many bytes are not kept in [`Span::extra`]: a
/// value that long is text, not a series dimension.
pub const MAX_EXTRA_VALUE_LEN: usize = 256;

/// Bounds on what a record may claim before it is dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeLimits {
    /// Largest accepted token count of any kind. Default 10,000,000.
    pub max_tokens: u64,
    /// Oldest accepted span start, in ms before the decoder's clock. Default 7 days.
    pub horizon_past_ms: u64,
    /// Latest accepted span start, in ms after the decoder's clock: the clock skew allowed
    /// between a client and glassbox. Default 5 seconds. A span cannot have started after it
    /// was read, and one that claims to would move its partition's event time (and so the
    /// watermark) ahead of every honest client: it is refused as `future` instead.
    pub horizon_future_ms: u64,
    /// Longest accepted span duration and time to first token, ms. Default 24 hours. With it
    /// (and `max_tokens`) a series' window sums cannot overflow below 10^8 spans per window.
    pub max_duration_ms: u64,
    /// Largest accepted record, bytes (a whole OTLP batch counts as one record). Default 4 MiB.
    /// A larger one is refused whole as `too_large` before it is parsed.
    pub max_record_bytes: usize,
    /// Most attributes a span may carry (recognised, content and other ones alike). Default
    /// 1,024. A span with more is refused as `too_many_attributes`.
    pub max_attributes: usize,
    /// Longest accepted value, bytes, of the span's name and of every field that can be a
    /// series dimension or a label (provider, models, operation, error type, tenant, feature,
    /// user, session, feedback label, finish reasons together). Default 1,024. A longer one is
    /// refused as `value_too_long`: it would otherwise become a series key, a Redis key and an
    /// InfluxDB tag of that size. The status message is cut to this length instead (it is never
    /// a dimension).
    pub max_value_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_tokens: 10_000_000,
            horizon_past_ms: 7 * 24 * 60 * 60 * 1000,
            horizon_future_ms: 5_000,
            max_duration_ms: 86_400_000,
            max_record_bytes: 4 << 20,
            max_attributes: 1_024,
            max_value_bytes: 1_024,
        }
    }
}

/// Decodes native JSON span records (see the crate README for the contract).
///
/// # Examples
///
/// ```
/// use glassbox_schemas::{DecodeLimits, JsonDecoder, SpanKind};
///
/// let record = br#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
///   "start_time_unix_nano":1764316800000000000,"end_time_unix_nano":"1764316801250000000",
///   "attributes":{"gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":812}}"#;
/// let decoder = JsonDecoder::new(DecodeLimits::default());
/// let span = decoder.decode(record, 1_764_316_800_000).unwrap();
/// assert_eq!(span.kind, SpanKind::Llm);
/// assert_eq!(span.usage.input, Some(812));
/// assert_eq!(span.duration_ns(), 1_250_000_000);
///
/// let error = decoder.decode(b"{}", 1_764_316_800_000).unwrap_err();
/// assert_eq!(error.reason(), "missing_field");
/// ```
#[derive(Clone, Debug, Default)]
pub struct JsonDecoder {
    limits: DecodeLimits,
    text: TextOptions,
}

impl JsonDecoder {
    /// A decoder enforcing `limits`, that extracts no text.
    pub fn new(limits: DecodeLimits) -> Self {
        Self {
            limits,
            text: TextOptions::default(),
        }
    }

    /// The same decoder, extracting text into [`Span::text`] as `text` says (see
    /// [`TextOptions`]). With `keep_text: false` (the default) content attributes are skipped
    /// unread and nothing is allocated for them.
    pub fn with_text(mut self, text: TextOptions) -> Self {
        self.text = text;
        self
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// What text this decoder extracts.
    pub fn text_options(&self) -> &TextOptions {
        &self.text
    }

    /// Refuses a record over [`DecodeLimits::max_record_bytes`] before any parsing.
    pub(crate) fn check_size(&self, bytes: &[u8]) -> Result<(), DecodeError> {
        if bytes.len() > self.limits.max_record_bytes {
            return Err(DecodeError::TooLarge {
                bytes: bytes.len(),
                max: self.limits.max_record_bytes,
            });
        }
        Ok(())
    }

    /// Decodes one record.
    ///
    /// `now_ms`: wall clock used for the horizon check (passed in so tests are deterministic).
    pub fn decode(&self, bytes: &[u8], now_ms: u64) -> Result<Span, DecodeError> {
        self.check_size(bytes)?;
        // One UTF-8 check of the whole record is cheaper than serde_json's check of every
        // string, and it also rejects invalid UTF-8 inside values that are skipped unread.
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidJson {
            message: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        })?;
        let mut draft = Draft::new(self.limits.max_tokens);
        if self.text.keep_text {
            draft.text = Some(Box::new(TextDraft::new(self.text)));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let read = RecordSeed { draft: &mut draft }
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Some(error) = draft.error.take() {
            return Err(error);
        }
        if let Err(error) = read {
            return Err(draft.serde_error(&error));
        }
        draft.finish(&self.limits, now_ms)
    }
}

impl JsonDecoder {
    /// Decodes one span from a parsed value shaped like a native record (the Avro records of
    /// `crate::avro`, converted): the same fields, aliases, limits and checks. A value that is
    /// not shaped like one is refused with `not_a_span` (never quoting it).
    pub(crate) fn decode_value(
        &self,
        value: &serde_json::Value,
        now_ms: u64,
        not_a_span: impl FnOnce() -> DecodeError,
    ) -> Result<Span, DecodeError> {
        let mut draft = Draft::new(self.limits.max_tokens);
        if self.text.keep_text {
            draft.text = Some(Box::new(TextDraft::new_parsed(self.text)));
        }
        let read = RecordSeed { draft: &mut draft }.deserialize(value);
        if let Some(error) = draft.error.take() {
            return Err(error);
        }
        if read.is_err() {
            return Err(match draft.context {
                Some((field, expected)) => DecodeError::BadType { field, expected },
                None => not_a_span(),
            });
        }
        draft.finish(&self.limits, now_ms)
    }
}

/// Parks a semantic error in the draft and aborts the parse (see the module docs).
macro_rules! tri {
    ($draft:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(error) => {
                $draft.error = Some(error);
                return Err(de::Error::custom("record rejected"));
            }
        }
    };
}

/// A slot filled by the highest-priority alias seen so far.
#[derive(Debug)]
pub(crate) struct Pick<T> {
    value: Option<T>,
    prio: u8,
}

impl<T> Default for Pick<T> {
    fn default() -> Self {
        Self {
            value: None,
            prio: u8::MAX,
        }
    }
}

impl<T> Pick<T> {
    /// Whether an alias of priority `prio` would replace the current value. Among equal
    /// priorities (a repeated key) the first stays.
    pub(crate) fn wants(&self, prio: u8) -> bool {
        self.value.is_none() || prio < self.prio
    }

    pub(crate) fn offer(&mut self, prio: u8, value: Option<T>) {
        if let Some(value) = value
            && self.wants(prio)
        {
            self.value = Some(value);
            self.prio = prio;
        }
    }
}

/// Everything read so far; validated and turned into a [`Span`] by [`Draft::finish`]. The OTLP
/// decoder (`crate::otlp`) fills the same draft from protobuf, so every format shares one
/// mapping of attributes onto the span and one validation.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub(crate) max_tokens: u64,
    /// The semantic error that aborted the parse, if any.
    pub(crate) error: Option<DecodeError>,
    /// The field being read by a visitor that rejects some JSON types, with what it expects:
    /// turns serde's type error (whose message may quote the value) into [`DecodeError::BadType`].
    pub(crate) context: Option<(&'static str, &'static str)>,

    pub(crate) trace_id: Option<String>,
    pub(crate) span_id: Option<String>,
    pub(crate) parent_span_id: Option<String>,
    pub(crate) kind: Option<SpanKind>,
    pub(crate) name: String,
    pub(crate) start: Option<u64>,
    pub(crate) end: Option<u64>,
    pub(crate) status: StatusCode,
    pub(crate) status_message: Option<String>,

    pub(crate) provider: Pick<String>,
    pub(crate) request_model: Pick<String>,
    pub(crate) response_model: Pick<String>,
    pub(crate) operation: Pick<String>,
    pub(crate) input: Pick<u64>,
    pub(crate) output: Pick<u64>,
    pub(crate) cache_read: Pick<u64>,
    pub(crate) cache_write: Pick<u64>,
    pub(crate) reasoning: Pick<u64>,
    pub(crate) finish_reasons: Pick<Vec<String>>,
    pub(crate) ttft_ns: Pick<u64>,
    pub(crate) error_type: Pick<String>,
    pub(crate) tenant: Pick<String>,
    pub(crate) feature: Pick<String>,
    pub(crate) user_id: Pick<String>,
    pub(crate) session_id: Pick<String>,
    pub(crate) feedback_score: Pick<f64>,
    pub(crate) feedback_label: Pick<String>,
    pub(crate) openinference_kind: Option<SpanKind>,
    pub(crate) traceloop_kind: Option<SpanKind>,
    pub(crate) extra: Vec<(String, String)>,
    /// Text being extracted; `None` unless the decoder keeps text.
    pub(crate) text: Option<Box<TextDraft>>,
    /// Attributes seen (every kind), for [`DecodeLimits::max_attributes`].
    pub(crate) attributes: usize,
}

impl Draft {
    pub(crate) fn new(max_tokens: u64) -> Self {
        Self {
            max_tokens,
            ..Self::default()
        }
    }

    /// Maps a serde error that no visitor parked a typed error for.
    fn serde_error(&self, error: &serde_json::Error) -> DecodeError {
        use serde_json::error::Category;
        match (error.classify(), self.context) {
            (Category::Data, Some((field, expected))) => DecodeError::BadType { field, expected },
            // The only type error outside a context: the record itself is not an object.
            // serde's message would quote the value, so say it in our own words.
            (Category::Data, None) => DecodeError::InvalidJson {
                message: "the record is not a JSON object".to_owned(),
            },
            // Syntax and end-of-input messages name the problem and position, never content.
            _ => DecodeError::InvalidJson {
                message: error.to_string(),
            },
        }
    }

    /// Reads one recognised attribute into its slot.
    fn apply(&mut self, known: Known, value: Scalar<'_>) -> Result<(), DecodeError> {
        let Known { field, prio, key } = known;
        let max = self.max_tokens;
        match field {
            Field::Provider => offer_text(&mut self.provider, known, value)?,
            Field::RequestModel => offer_text(&mut self.request_model, known, value)?,
            Field::ResponseModel => offer_text(&mut self.response_model, known, value)?,
            Field::Operation => offer_text(&mut self.operation, known, value)?,
            Field::ErrorType => offer_text(&mut self.error_type, known, value)?,
            Field::Tenant => offer_text(&mut self.tenant, known, value)?,
            Field::Feature => offer_text(&mut self.feature, known, value)?,
            Field::User => offer_text(&mut self.user_id, known, value)?,
            Field::Session => offer_text(&mut self.session_id, known, value)?,
            Field::FeedbackLabel => offer_text(&mut self.feedback_label, known, value)?,
            Field::InputTokens => self.input.offer(prio, tokens(key, value, max)?),
            Field::OutputTokens => self.output.offer(prio, tokens(key, value, max)?),
            Field::CacheReadTokens => self.cache_read.offer(prio, tokens(key, value, max)?),
            Field::CacheWriteTokens => self.cache_write.offer(prio, tokens(key, value, max)?),
            Field::ReasoningTokens => self.reasoning.offer(prio, tokens(key, value, max)?),
            Field::FinishReasons => self.finish_reasons.offer(prio, finish_reasons(key, value)?),
            Field::TtftSeconds => self.ttft_ns.offer(prio, duration_ns(key, value, 1e9)?),
            Field::TtftMillis => self.ttft_ns.offer(prio, duration_ns(key, value, 1e6)?),
            Field::FeedbackScore => self.feedback_score.offer(prio, score(key, value)?),
            Field::OpenInferenceKind => {
                if let Some(name) = text(key, value)?
                    && self.openinference_kind.is_none()
                {
                    self.openinference_kind = openinference_kind(&name);
                }
            }
            Field::TraceloopKind => {
                if let Some(name) = text(key, value)?
                    && self.traceloop_kind.is_none()
                {
                    self.traceloop_kind = traceloop_kind(&name);
                }
            }
        }
        Ok(())
    }

    /// Routes one attribute: recognised → typed slot; content → dropped; other scalar → `extra`.
    pub(crate) fn attribute(
        &mut self,
        key: Cow<'_, str>,
        known: Option<Known>,
        value: Scalar<'_>,
    ) -> Result<(), DecodeError> {
        self.attributes += 1;
        match known {
            Some(known) => self.apply(known, value),
            // OpenInference puts the model of a failed call only here (its error spans have no
            // `llm.model_name`): the request model, below every attribute that names one.
            None if key == INVOCATION_PARAMETERS => {
                if let Scalar::Str(params) = &value {
                    self.request_model
                        .offer(u8::MAX, invocation_model(params).filter(|m| !m.is_empty()));
                }
                Ok(())
            }
            None if is_content_attribute(&key) => Ok(()),
            None => {
                self.push_extra(key, value);
                Ok(())
            }
        }
    }

    /// Keeps an unknown scalar attribute; arrays, objects, nulls and long strings are dropped.
    pub(crate) fn push_extra(&mut self, key: Cow<'_, str>, value: Scalar<'_>) {
        let value = match value {
            Scalar::Str(s) if s.len() <= MAX_EXTRA_VALUE_LEN => s.into_owned(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::U64(n) => n.to_string(),
            Scalar::I64(n) => n.to_string(),
            Scalar::F64(f) => render_f64(f),
            Scalar::Str(_) | Scalar::Null | Scalar::List(_) | Scalar::Complex => return,
        };
        self.extra.push((key.into_owned(), value));
    }

    /// Checks what only the whole record can tell, infers the kind, and builds the span.
    pub(crate) fn finish(self, limits: &DecodeLimits, now_ms: u64) -> Result<Span, DecodeError> {
        // Destructured whole so that a new draft field cannot be forgotten here.
        let Draft {
            max_tokens: _,
            error: _,
            context: _,
            trace_id,
            span_id,
            parent_span_id,
            kind,
            name,
            start,
            end,
            status,
            status_message,
            provider,
            request_model,
            response_model,
            operation,
            input,
            output,
            cache_read,
            cache_write,
            reasoning,
            finish_reasons,
            ttft_ns,
            error_type,
            tenant,
            feature,
            user_id,
            session_id,
            feedback_score,
            feedback_label,
            openinference_kind,
            traceloop_kind,
            extra,
            text,
            attributes,
        } = self;

        let missing = |field| DecodeError::MissingField { field };
        let trace_id = trace_id.ok_or(missing("trace_id"))?;
        let span_id = span_id.ok_or(missing("span_id"))?;
        let start = start.ok_or(missing("start_time_unix_nano"))?;
        let end = end.ok_or(missing("end_time_unix_nano"))?;
        let trace_id = hex_id("trace_id", trace_id)?;
        let span_id = hex_id("span_id", span_id)?;
        let parent_span_id = parent_span_id
            .map(|id| hex_id("parent_span_id", id))
            .transpose()?;
        if end < start {
            return Err(DecodeError::EndBeforeStart { start, end });
        }
        let max_ns = limits.max_duration_ms.saturating_mul(1_000_000);
        for (field, ns) in [
            ("end_time_unix_nano", Some(end - start)),
            ("ttft", ttft_ns.value),
        ] {
            if let Some(ns) = ns
                && ns > max_ns
            {
                return Err(DecodeError::AbsurdDuration {
                    field,
                    value_ms: ns / 1_000_000,
                    max_ms: limits.max_duration_ms,
                });
            }
        }
        let start_ms = start / 1_000_000;
        if start_ms < now_ms.saturating_sub(limits.horizon_past_ms) {
            return Err(DecodeError::BeyondHorizon {
                start_ms,
                now_ms,
                limit_ms: limits.horizon_past_ms,
                direction: Horizon::Past,
            });
        }
        if start_ms > now_ms.saturating_add(limits.horizon_future_ms) {
            return Err(DecodeError::BeyondHorizon {
                start_ms,
                now_ms,
                limit_ms: limits.horizon_future_ms,
                direction: Horizon::Future,
            });
        }

        if attributes > limits.max_attributes {
            return Err(DecodeError::TooManyAttributes {
                count: attributes,
                max: limits.max_attributes,
            });
        }
        let max = limits.max_value_bytes;
        let reasons_bytes = finish_reasons
            .value
            .as_ref()
            .map(|r| r.iter().map(String::len).sum::<usize>());
        for (field, bytes) in [
            ("name", Some(name.len())),
            ("provider", provider.value.as_ref().map(String::len)),
            (
                "request_model",
                request_model.value.as_ref().map(String::len),
            ),
            (
                "response_model",
                response_model.value.as_ref().map(String::len),
            ),
            ("operation", operation.value.as_ref().map(String::len)),
            ("error_type", error_type.value.as_ref().map(String::len)),
            ("tenant", tenant.value.as_ref().map(String::len)),
            ("feature", feature.value.as_ref().map(String::len)),
            ("user_id", user_id.value.as_ref().map(String::len)),
            ("session_id", session_id.value.as_ref().map(String::len)),
            (
                "feedback_label",
                feedback_label.value.as_ref().map(String::len),
            ),
            ("finish_reasons", reasons_bytes),
        ] {
            if let Some(bytes) = bytes
                && bytes > max
            {
                return Err(DecodeError::ValueTooLong { field, bytes, max });
            }
        }
        let status_message = status_message.map(|mut m| {
            if m.len() > max {
                let mut cut = max;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
            m
        });

        let has_feedback = feedback_score.value.is_some() || feedback_label.value.is_some();
        let calls_a_model = request_model.value.is_some()
            || response_model.value.is_some()
            || input.value.is_some()
            || output.value.is_some();
        let kind = kind
            .or_else(|| operation.value.as_deref().and_then(operation_kind))
            .or(openinference_kind)
            .or(traceloop_kind)
            .or_else(|| name_kind(&name, calls_a_model))
            .or(has_feedback.then_some(SpanKind::Feedback))
            .unwrap_or(SpanKind::Other);

        Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            kind,
            name,
            start_unix_nano: start,
            end_unix_nano: end,
            status,
            status_message,
            provider: provider.value,
            request_model: request_model.value,
            response_model: response_model.value,
            operation: operation.value,
            usage: TokenUsage {
                input: input.value,
                output: output.value,
                cache_read: cache_read.value,
                cache_write: cache_write.value,
                reasoning: reasoning.value,
            },
            finish_reasons: finish_reasons.value.unwrap_or_default(),
            ttft_ns: ttft_ns.value,
            error_type: error_type.value,
            tenant: tenant.value,
            feature: feature.value,
            user_id: user_id.value,
            session_id: session_id.value,
            feedback_score: feedback_score.value,
            feedback_label: feedback_label.value,
            extra,
            text: text.and_then(|t| t.finish()).map(Box::new),
        })
    }
}

/// OpenInference's JSON string of the request's parameters (`{"model": …, "stream": …}`).
const INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";

/// The `model` of an `llm.invocation_parameters` JSON string, if it names one. Nothing else
/// of it is read: it is not text, but it is the sender's JSON, so only one field is looked at.
fn invocation_model(params: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Params {
        model: Option<String>,
    }
    serde_json::from_str::<Params>(params).ok()?.model
}

// ---------------------------------------------------------------------------------------------
// Value conversions. Each names the field it reads, so errors can say which one was wrong.

/// A JSON (or OTLP `AnyValue`) value, as far as glassbox needs to know it.
#[derive(Debug)]
pub(crate) enum Scalar<'de> {
    Null,
    Bool(bool),
    U64(u64),
    /// Only negative integers: serde_json hands non-negative ones over as `U64`.
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    /// An array, collected only where one is expected; its elements are never lists.
    List(Vec<Scalar<'de>>),
    /// An object, or an array nobody asked for; skipped unread.
    Complex,
}

/// A string field: strings as given, numbers and booleans rendered; empty strings are absent.
fn text<'a>(field: &'static str, value: Scalar<'a>) -> Result<Option<Cow<'a, str>>, DecodeError> {
    Ok(match value {
        Scalar::Null => None,
        Scalar::Str(s) if s.is_empty() => None,
        Scalar::Str(s) => Some(s),
        Scalar::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        Scalar::U64(n) => Some(Cow::Owned(n.to_string())),
        Scalar::I64(n) => Some(Cow::Owned(n.to_string())),
        Scalar::F64(f) => Some(Cow::Owned(render_f64(f))),
        Scalar::List(_) | Scalar::Complex => {
            return Err(DecodeError::BadType {
                field,
                expected: "a string",
            });
        }
    })
}

fn offer_text(slot: &mut Pick<String>, known: Known, value: Scalar<'_>) -> Result<(), DecodeError> {
    if let Some(s) = text(known.key, value)?
        && slot.wants(known.prio)
    {
        slot.value = Some(s.into_owned());
        slot.prio = known.prio;
    }
    Ok(())
}

/// Shortest text that reads back as the same `f64` (`0.42`, `1.0`, `1e300`).
fn render_f64(f: f64) -> String {
    format!("{f:?}")
}

/// A token count: an integer, a float with no fraction, or either in a decimal string.
fn tokens(field: &'static str, value: Scalar<'_>, max: u64) -> Result<Option<u64>, DecodeError> {
    const EXPECTED: &str = "a whole number of tokens";
    let bad_type = DecodeError::BadType {
        field,
        expected: EXPECTED,
    };
    let n = match value {
        Scalar::Null => return Ok(None),
        Scalar::U64(n) => n,
        Scalar::I64(n) => return Err(DecodeError::NegativeTokens { field, value: n }),
        Scalar::F64(f) => whole_tokens(field, f).ok_or(bad_type)??,
        Scalar::Str(s) => match s.parse::<u64>() {
            Ok(n) => n,
            Err(e) if *e.kind() == IntErrorKind::PosOverflow => u64::MAX,
            Err(_) => match s.parse::<i64>() {
                Ok(n) if n < 0 => return Err(DecodeError::NegativeTokens { field, value: n }),
                Ok(n) => n.unsigned_abs(),
                Err(e) if *e.kind() == IntErrorKind::NegOverflow => {
                    return Err(DecodeError::NegativeTokens {
                        field,
                        value: i64::MIN,
                    });
                }
                Err(_) => match s.parse::<f64>() {
                    Ok(f) => whole_tokens(field, f).ok_or(bad_type)??,
                    Err(_) => return Err(bad_type),
                },
            },
        },
        Scalar::Bool(_) | Scalar::List(_) | Scalar::Complex => return Err(bad_type),
    };
    if n > max {
        return Err(DecodeError::AbsurdTokens {
            field,
            value: n,
            max,
        });
    }
    Ok(Some(n))
}

/// A float token count: `None` when it is not a whole number.
fn whole_tokens(field: &'static str, f: f64) -> Option<Result<u64, DecodeError>> {
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if f < 0.0 {
        // `as` saturates, which is what the error wants for counts below i64::MIN.
        return Some(Err(DecodeError::NegativeTokens {
            field,
            value: f as i64,
        }));
    }
    Some(Ok(f as u64))
}

/// A number, or a number in a decimal string.
fn number(field: &'static str, value: Scalar<'_>) -> Result<Option<f64>, DecodeError> {
    let f = match value {
        Scalar::Null => return Ok(None),
        Scalar::U64(n) => n as f64,
        Scalar::I64(n) => n as f64,
        Scalar::F64(f) => f,
        Scalar::Str(s) => s.parse::<f64>().unwrap_or(f64::NAN),
        Scalar::Bool(_) | Scalar::List(_) | Scalar::Complex => f64::NAN,
    };
    if f.is_finite() {
        Ok(Some(f))
    } else {
        Err(DecodeError::BadType {
            field,
            expected: "a number",
        })
    }
}

/// A non-negative duration in some unit, as nanoseconds.
fn duration_ns(
    field: &'static str,
    value: Scalar<'_>,
    ns_per_unit: f64,
) -> Result<Option<u64>, DecodeError> {
    let Some(units) = number(field, value)? else {
        return Ok(None);
    };
    let ns = (units * ns_per_unit).round();
    // 2^64 is exactly representable; anything at or above it does not fit.
    if !(0.0..18_446_744_073_709_551_616.0).contains(&ns) {
        return Err(DecodeError::BadValue {
            field,
            expected: "a non-negative duration",
        });
    }
    Ok(Some(ns as u64))
}

fn score(field: &'static str, value: Scalar<'_>) -> Result<Option<f64>, DecodeError> {
    let score = number(field, value)?;
    if score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        return Err(DecodeError::BadValue {
            field,
            expected: "a number between 0 and 1",
        });
    }
    Ok(score)
}

/// An array of strings, or a single string.
fn finish_reasons(
    field: &'static str,
    value: Scalar<'_>,
) -> Result<Option<Vec<String>>, DecodeError> {
    let bad_type = || DecodeError::BadType {
        field,
        expected: "a string or an array of strings",
    };
    match value {
        Scalar::Null => Ok(None),
        Scalar::Str(s) if s.is_empty() => Ok(None),
        Scalar::Str(s) => Ok(Some(vec![s.into_owned()])),
        Scalar::List(items) => {
            let mut reasons = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Scalar::Str(s) => reasons.push(s.into_owned()),
                    Scalar::Null => {}
                    _ => return Err(bad_type()),
                }
            }
            Ok(Some(reasons))
        }
        _ => Err(bad_type()),
    }
}

fn id_text(field: &'static str, value: Scalar<'_>) -> Result<Option<String>, DecodeError> {
    match value {
        Scalar::Null => Ok(None),
        Scalar::Str(s) => Ok(Some(s.into_owned())),
        _ => Err(DecodeError::BadType {
            field,
            expected: "a hex string",
        }),
    }
}

/// Per byte: 0 not hex, 1 digit or lowercase hex, 2 uppercase hex.
const HEX_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'0'..=b'9' | b'a'..=b'f' => 1,
            b'A'..=b'F' => 2,
            _ => 0,
        };
        b += 1;
    }
    table
};

/// Validates a trace or span id and lowercases it.
fn hex_id(field: &'static str, mut id: String) -> Result<String, DecodeError> {
    if id.is_empty() {
        return Err(DecodeError::EmptyId { field });
    }
    if id.len() > 64 {
        let problem = "longer than 64 hex digits";
        return Err(DecodeError::BadId { field, problem });
    }
    // One branch-free pass: is every byte hex, and is any of them uppercase?
    let (mut invalid, mut classes) = (false, 0u8);
    for &b in id.as_bytes() {
        let class = HEX_CLASS[usize::from(b)];
        invalid |= class == 0;
        classes |= class;
    }
    let problem = if invalid {
        "not hexadecimal"
    } else if id.len() % 2 == 1 {
        "odd number of hex digits"
    } else {
        if classes & 2 != 0 {
            id.make_ascii_lowercase();
        }
        return Ok(id);
    };
    Err(DecodeError::BadId { field, problem })
}

/// Nanoseconds since the epoch: an integer, or an integer in a decimal string (OTLP JSON).
fn nanos(field: &'static str, value: Scalar<'_>) -> Result<Option<u64>, DecodeError> {
    match value {
        Scalar::Null => Ok(None),
        Scalar::U64(n) => Ok(Some(n)),
        Scalar::Str(s) if s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| DecodeError::BadType {
                field,
                expected: "nanoseconds since the Unix epoch as an integer below 2^64",
            }),
        _ => Err(DecodeError::BadType {
            field,
            expected: "nanoseconds since the Unix epoch as a non-negative integer or decimal string",
        }),
    }
}

/// The top-level `kind`: absent for OTLP's own span kinds (numbers or `SPAN_KIND_*`), so the
/// kind is inferred from the attributes instead.
fn kind_field(value: Scalar<'_>) -> Result<Option<SpanKind>, DecodeError> {
    match value {
        Scalar::Null | Scalar::U64(_) | Scalar::I64(_) => Ok(None),
        Scalar::Str(s) if s.is_empty() || s.starts_with("SPAN_KIND_") => Ok(None),
        Scalar::Str(s) => Ok(Some(SpanKind::parse(&s).unwrap_or(SpanKind::Other))),
        _ => Err(DecodeError::BadType {
            field: "kind",
            expected: "a string",
        }),
    }
}

fn name_field(value: Scalar<'_>) -> Result<Option<String>, DecodeError> {
    match value {
        Scalar::Null => Ok(None),
        Scalar::Str(s) => Ok(Some(s.into_owned())),
        _ => Err(DecodeError::BadType {
            field: "name",
            expected: "a string",
        }),
    }
}

fn status_code(value: Scalar<'_>) -> Result<StatusCode, DecodeError> {
    const FIELD: &str = "status.code";
    let bad_value = DecodeError::BadValue {
        field: FIELD,
        expected: "unset, ok or error (or 0, 1, 2)",
    };
    match value {
        Scalar::Null | Scalar::U64(0) => Ok(StatusCode::Unset),
        Scalar::U64(1) => Ok(StatusCode::Ok),
        Scalar::U64(2) => Ok(StatusCode::Error),
        Scalar::Str(s) => {
            let s = s.strip_prefix("STATUS_CODE_").unwrap_or(&s);
            let s = s.strip_prefix("status_code_").unwrap_or(s);
            if s.is_empty() || s.eq_ignore_ascii_case("unset") {
                Ok(StatusCode::Unset)
            } else if s.eq_ignore_ascii_case("ok") {
                Ok(StatusCode::Ok)
            } else if s.eq_ignore_ascii_case("error") {
                Ok(StatusCode::Error)
            } else {
                Err(bad_value)
            }
        }
        Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_) => Err(bad_value),
        Scalar::Bool(_) | Scalar::List(_) | Scalar::Complex => Err(DecodeError::BadType {
            field: FIELD,
            expected: "a string or an integer",
        }),
    }
}

fn find_kind(table: &[(&str, SpanKind)], name: &str) -> Option<SpanKind> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, kind)| *kind)
}

/// `gen_ai.operation.name` (or OpenLLMetry's `llm.request.type`) → kind.
fn operation_kind(operation: &str) -> Option<SpanKind> {
    const TABLE: &[(&str, SpanKind)] = &[
        ("chat", SpanKind::Llm),
        ("text_completion", SpanKind::Llm),
        ("generate_content", SpanKind::Llm),
        ("completion", SpanKind::Llm),
        ("embeddings", SpanKind::Embedding),
        ("embedding", SpanKind::Embedding),
        ("execute_tool", SpanKind::Tool),
        ("invoke_agent", SpanKind::Agent),
        ("create_agent", SpanKind::Agent),
        ("retrieval", SpanKind::Retrieval),
        ("retrieve", SpanKind::Retrieval),
    ];
    find_kind(TABLE, operation)
}

/// The kind by the span-name conventions, when no attribute says it: the OTel GenAI name
/// `{operation} {target}` (`chat gpt-4o`, `embeddings text-embedding-3-small`,
/// `execute_tool get_weather`, `invoke_agent planner`), or `{system}.{operation}` with no space
/// (OpenLLMetry's `openai.chat`). A name alone is weak evidence, and "chat" or "completion" is
/// an ordinary word: a model call or embedding is inferred only when the span also names a
/// model or counts tokens (`calls_a_model`), so that an application's own "chat handler" span
/// is never counted as a request.
fn name_kind(name: &str, calls_a_model: bool) -> Option<SpanKind> {
    let operation = match name.split_once(' ') {
        Some((operation, target)) if !target.trim().is_empty() => operation,
        Some(_) => return None,
        None => name.rsplit_once('.').map(|(_, operation)| operation)?,
    };
    let kind = operation_kind(operation)?;
    match kind {
        SpanKind::Llm | SpanKind::Embedding if !calls_a_model => None,
        kind => Some(kind),
    }
}

fn openinference_kind(name: &str) -> Option<SpanKind> {
    const TABLE: &[(&str, SpanKind)] = &[
        ("LLM", SpanKind::Llm),
        ("RETRIEVER", SpanKind::Retrieval),
        ("EMBEDDING", SpanKind::Embedding),
        ("CHAIN", SpanKind::Chain),
        ("TOOL", SpanKind::Tool),
        ("AGENT", SpanKind::Agent),
        ("RERANKER", SpanKind::Other),
        ("GUARDRAIL", SpanKind::Other),
        ("EVALUATOR", SpanKind::Other),
    ];
    find_kind(TABLE, name)
}

fn traceloop_kind(name: &str) -> Option<SpanKind> {
    const TABLE: &[(&str, SpanKind)] = &[
        ("workflow", SpanKind::Chain),
        ("task", SpanKind::Chain),
        ("agent", SpanKind::Agent),
        ("tool", SpanKind::Tool),
    ];
    find_kind(TABLE, name)
}

// ---------------------------------------------------------------------------------------------
// Visitors.

/// Object keys decoded to a small enum without allocating, escaped or not.
trait KeyName: Sized {
    fn from_name(name: &str) -> Self;
}

struct KeySeed<K>(PhantomData<K>);

impl<'de, K: KeyName> DeserializeSeed<'de> for KeySeed<K> {
    type Value = K;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<K: KeyName> Visitor<'_> for KeySeed<K> {
    type Value = K;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<K, E> {
        Ok(K::from_name(name))
    }
}

fn next_key<'de, K: KeyName, A: MapAccess<'de>>(map: &mut A) -> Result<Option<K>, A::Error> {
    map.next_key_seed(KeySeed(PhantomData))
}

/// Keys of the record. OTLP JSON's camelCase names are accepted beside the native ones.
enum TopKey {
    TraceId,
    SpanId,
    ParentSpanId,
    Kind,
    Name,
    Start,
    End,
    Status,
    Attributes,
    Other,
}

impl KeyName for TopKey {
    fn from_name(name: &str) -> Self {
        match name {
            "trace_id" | "traceId" => TopKey::TraceId,
            "span_id" | "spanId" => TopKey::SpanId,
            "parent_span_id" | "parentSpanId" => TopKey::ParentSpanId,
            "kind" => TopKey::Kind,
            "name" => TopKey::Name,
            "start_time_unix_nano" | "startTimeUnixNano" => TopKey::Start,
            "end_time_unix_nano" | "endTimeUnixNano" => TopKey::End,
            "status" => TopKey::Status,
            "attributes" => TopKey::Attributes,
            _ => TopKey::Other,
        }
    }
}

enum StatusKey {
    Code,
    Message,
    Other,
}

impl KeyName for StatusKey {
    fn from_name(name: &str) -> Self {
        match name {
            "code" => StatusKey::Code,
            "message" => StatusKey::Message,
            _ => StatusKey::Other,
        }
    }
}

/// Keys of one element of an OTLP attribute list.
enum KeyValueKey {
    Key,
    Value,
    Other,
}

impl KeyName for KeyValueKey {
    fn from_name(name: &str) -> Self {
        match name {
            "key" => KeyValueKey::Key,
            "value" => KeyValueKey::Value,
            _ => KeyValueKey::Other,
        }
    }
}

/// Keys of an OTLP `AnyValue`.
enum AnyValueKey {
    Scalar,
    Array,
    Opaque,
    Other,
}

impl KeyName for AnyValueKey {
    fn from_name(name: &str) -> Self {
        match name {
            "stringValue" | "intValue" | "doubleValue" | "boolValue" => AnyValueKey::Scalar,
            "arrayValue" => AnyValueKey::Array,
            "kvlistValue" | "bytesValue" => AnyValueKey::Opaque,
            _ => AnyValueKey::Other,
        }
    }
}

enum ArrayValueKey {
    Values,
    Other,
}

impl KeyName for ArrayValueKey {
    fn from_name(name: &str) -> Self {
        match name {
            "values" => ArrayValueKey::Values,
            _ => ArrayValueKey::Other,
        }
    }
}

/// An attribute key, borrowed from the input unless it contains escapes.
struct CowStr;

impl<'de> DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Reads any JSON value as a [`Scalar`]. Accepts every JSON type, so it never raises a type
/// error of its own.
#[derive(Clone, Copy)]
struct ValueSeed {
    /// Objects are OTLP `AnyValue`s (`{"stringValue": …}`) rather than opaque.
    otlp: bool,
    /// Collect an array (one level deep) instead of skipping it.
    lists: bool,
}

/// A plain JSON value, arrays skipped.
const PLAIN: ValueSeed = ValueSeed {
    otlp: false,
    lists: false,
};

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(match u64::try_from(v) {
            Ok(n) => Scalar::U64(n),
            Err(_) => Scalar::I64(v),
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if !self.lists {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Scalar::Complex);
        }
        let element = ValueSeed {
            otlp: self.otlp,
            lists: false,
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(element)? {
            items.push(item);
        }
        Ok(Scalar::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !self.otlp {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Scalar::Complex);
        }
        // An OTLP AnyValue: {"stringValue": "…"}, {"intValue": "812"}, {"arrayValue": {…}}, …
        let mut value = Scalar::Null;
        while let Some(key) = next_key::<AnyValueKey, _>(&mut map)? {
            value = match key {
                AnyValueKey::Scalar => map.next_value_seed(PLAIN)?,
                AnyValueKey::Array if self.lists => map.next_value_seed(ArrayValueSeed)?,
                AnyValueKey::Array | AnyValueKey::Opaque => {
                    map.next_value::<IgnoredAny>()?;
                    Scalar::Complex
                }
                AnyValueKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
        }
        Ok(value)
    }
}

/// An OTLP `ArrayValue`: `{"values": [AnyValue, …]}`.
struct ArrayValueSeed;

impl<'de> DeserializeSeed<'de> for ArrayValueSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArrayValueSeed {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTLP ArrayValue")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = Scalar::List(Vec::new());
        while let Some(key) = next_key::<ArrayValueKey, _>(&mut map)? {
            match key {
                ArrayValueKey::Values => {
                    value = map.next_value_seed(ValueSeed {
                        otlp: true,
                        lists: true,
                    })?;
                }
                ArrayValueKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(value)
    }
}

/// The record: the top-level object.
struct RecordSeed<'a> {
    draft: &'a mut Draft,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a span object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let draft = self.draft;
        while let Some(key) = next_key::<TopKey, _>(&mut map)? {
            match key {
                TopKey::TraceId => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.trace_id = tri!(draft, id_text("trace_id", value));
                }
                TopKey::SpanId => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.span_id = tri!(draft, id_text("span_id", value));
                }
                TopKey::ParentSpanId => {
                    let value = map.next_value_seed(PLAIN)?;
                    // OTLP JSON writes a root span's parent as "".
                    let parent = tri!(draft, id_text("parent_span_id", value));
                    draft.parent_span_id = parent.filter(|id| !id.is_empty());
                }
                TopKey::Kind => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.kind = tri!(draft, kind_field(value));
                }
                TopKey::Name => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.name = tri!(draft, name_field(value)).unwrap_or_default();
                }
                TopKey::Start => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.start = tri!(draft, nanos("start_time_unix_nano", value));
                }
                TopKey::End => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.end = tri!(draft, nanos("end_time_unix_nano", value));
                }
                TopKey::Status => {
                    draft.context = Some(("status", "an object with `code` and `message`"));
                    map.next_value_seed(StatusSeed { draft: &mut *draft })?;
                    draft.context = None;
                }
                TopKey::Attributes => {
                    draft.context = Some((
                        "attributes",
                        "an object, or an OTLP list of {key, value} objects",
                    ));
                    map.next_value_seed(AttributesSeed { draft: &mut *draft })?;
                    draft.context = None;
                }
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `status`: `{"code": …, "message": …}`, or a bare code.
struct StatusSeed<'a> {
    draft: &'a mut Draft,
}

impl<'de> DeserializeSeed<'de> for StatusSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StatusSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a status")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.draft.status = tri!(self.draft, status_code(Scalar::U64(v)));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.draft.status = tri!(self.draft, status_code(Scalar::I64(v)));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.draft.status = tri!(self.draft, status_code(Scalar::F64(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.draft.status = tri!(self.draft, status_code(Scalar::Str(Cow::Borrowed(v))));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let draft = self.draft;
        while let Some(key) = next_key::<StatusKey, _>(&mut map)? {
            match key {
                StatusKey::Code => {
                    let value = map.next_value_seed(PLAIN)?;
                    draft.status = tri!(draft, status_code(value));
                }
                StatusKey::Message => {
                    let value = map.next_value_seed(PLAIN)?;
                    let message = tri!(draft, text("status.message", value));
                    draft.status_message = message.map(Cow::into_owned);
                }
                StatusKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `attributes`: an object, or OTLP's list of `{"key": …, "value": AnyValue}`.
struct AttributesSeed<'a> {
    draft: &'a mut Draft,
}

impl<'de> DeserializeSeed<'de> for AttributesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AttributesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attributes")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let draft = self.draft;
        while let Some(key) = map.next_key_seed(CowStr)? {
            let known = classify(&key);
            if known.is_none() && is_content_attribute(&key) {
                // Never copied, never inspected, unless the decoder keeps text and this key
                // holds some (`text_key` only runs then: the default path pays one `None` check).
                match draft
                    .text
                    .as_deref_mut()
                    .and_then(|t| Some((t, text_key(&key)?)))
                {
                    Some((text, source)) => text.offer_next(source, &mut map, false)?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                continue;
            }
            let value = map.next_value_seed(ValueSeed {
                otlp: false,
                lists: known.is_some_and(|k| k.field.takes_list()),
            })?;
            tri!(draft, draft.attribute(key, known, value));
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(KeyValueSeed {
                draft: &mut *self.draft,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One element of an OTLP attribute list. `key` usually comes first; when `value` comes first
/// it is read without knowing what it is for.
struct KeyValueSeed<'a> {
    draft: &'a mut Draft,
}

impl<'de> DeserializeSeed<'de> for KeyValueSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTLP key-value object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let draft = self.draft;
        let mut key: Option<(Cow<'de, str>, Option<Known>)> = None;
        let mut value: Option<Scalar<'de>> = None;
        while let Some(field) = next_key::<KeyValueKey, _>(&mut map)? {
            match field {
                KeyValueKey::Key => match map.next_value_seed(PLAIN)? {
                    Scalar::Str(name) => {
                        let known = classify(&name);
                        key = Some((name, known));
                    }
                    _ => tri!(
                        draft,
                        Err(DecodeError::BadType {
                            field: "attributes",
                            expected: "string keys in the OTLP attribute list",
                        })
                    ),
                },
                KeyValueKey::Value => match &key {
                    Some((name, None)) if is_content_attribute(name) => {
                        match draft
                            .text
                            .as_deref_mut()
                            .and_then(|t| Some((t, text_key(name)?)))
                        {
                            Some((text, source)) => text.offer_next(source, &mut map, true)?,
                            None => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Some((_, known)) => {
                        let lists = known.is_some_and(|k| k.field.takes_list());
                        value = Some(map.next_value_seed(ValueSeed { otlp: true, lists })?);
                    }
                    None => {
                        value = Some(map.next_value_seed(ValueSeed {
                            otlp: true,
                            lists: true,
                        })?);
                    }
                },
                KeyValueKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some((name, known)) = key {
            tri!(
                draft,
                draft.attribute(name, known, value.unwrap_or(Scalar::Null))
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conventions::ATTRIBUTE_ALIASES;

    const NOW: u64 = 1_764_316_800_000;
    const START: u64 = 1_764_316_800_000_000_000;
    const END: u64 = 1_764_316_801_250_000_000;
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    const SAMPLE: &str = r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","parent_span_id":null,
 "kind":"llm","name":"chat gpt-4o",
 "start_time_unix_nano":1764316800000000000,"end_time_unix_nano":1764316801250000000,
 "status":{"code":"ok"},
 "attributes":{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o",
   "gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":95,
   "gen_ai.usage.cache_read.input_tokens":512,"gen_ai.response.finish_reasons":["stop"],
   "gen_ai.response.time_to_first_chunk":0.42,"tenant.id":"acme","app.feature":"support-chat"}}"#;

    fn decode(record: &str) -> Result<Span, DecodeError> {
        JsonDecoder::default().decode(record.as_bytes(), NOW)
    }

    /// A valid record with the given `attributes` value (object or list form).
    fn with_attributes(attributes: &str) -> String {
        format!(
            r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{END},"attributes":{attributes}}}"#
        )
    }

    fn attrs(attributes: &str) -> Span {
        decode(&with_attributes(attributes)).unwrap()
    }

    fn attr_error(attributes: &str) -> DecodeError {
        decode(&with_attributes(attributes)).unwrap_err()
    }

    /// The span of a record with ids and times only.
    fn bare() -> Span {
        Span {
            trace_id: TRACE.into(),
            span_id: SPAN.into(),
            start_unix_nano: START,
            end_unix_nano: END,
            ..Span::default()
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn the_sample_decodes_exactly() {
        let expected = Span {
            kind: SpanKind::Llm,
            name: "chat gpt-4o".into(),
            status: StatusCode::Ok,
            provider: Some("openai".into()),
            request_model: Some("gpt-4o".into()),
            usage: TokenUsage {
                input: Some(812),
                output: Some(95),
                cache_read: Some(512),
                cache_write: None,
                reasoning: None,
            },
            finish_reasons: strings(&["stop"]),
            ttft_ns: Some(420_000_000),
            tenant: Some("acme".into()),
            feature: Some("support-chat".into()),
            ..bare()
        };
        assert_eq!(decode(SAMPLE), Ok(expected));
        let span = decode(SAMPLE).unwrap();
        assert_eq!(span.duration_ns(), 1_250_000_000);
        assert_eq!(span.start_ms(), NOW);
        assert!(!span.is_error() && !span.is_truncated());
        assert_eq!(span.dimension("model"), Some("gpt-4o"));
    }

    #[test]
    fn a_minimal_record() {
        assert_eq!(attrs("{}"), bare());
        assert_eq!(attrs("null"), bare());
        assert_eq!(attrs("[]"), bare());
        let minimal = format!(
            r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{START}}}"#
        );
        let span = decode(&minimal).unwrap();
        assert_eq!(span.duration_ns(), 0);
        assert_eq!(span.kind, SpanKind::Other);
        assert_eq!(span.status, StatusCode::Unset);
        assert_eq!(span.name, "");
    }

    #[test]
    fn the_span_name_conventions_give_the_kind_when_no_attribute_does() {
        let kind = |name: &str, attributes: &str| {
            let record = format!(
                r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","name":"{name}","start_time_unix_nano":{START},"end_time_unix_nano":{END},"attributes":{attributes}}}"#
            );
            decode(&record).unwrap().kind
        };
        let model = r#"{"gen_ai.request.model":"gpt-4o"}"#;
        let tokens = r#"{"gen_ai.usage.input_tokens":3}"#;
        assert_eq!(kind("chat gpt-4o", model), SpanKind::Llm);
        assert_eq!(kind("text_completion davinci", tokens), SpanKind::Llm);
        assert_eq!(
            kind("embeddings text-embedding-3-small", model),
            SpanKind::Embedding
        );
        assert_eq!(kind("openai.chat", tokens), SpanKind::Llm);
        assert_eq!(kind("execute_tool get_weather", "{}"), SpanKind::Tool);
        assert_eq!(kind("invoke_agent planner", "{}"), SpanKind::Agent);
        // A model call needs more than a word: no model, no tokens, no model call.
        assert_eq!(kind("chat handler", "{}"), SpanKind::Other);
        assert_eq!(kind("openai.chat", "{}"), SpanKind::Other);
        // Not the convention's shape.
        assert_eq!(kind("chat", model), SpanKind::Other);
        assert_eq!(kind("chat ", model), SpanKind::Other);
        assert_eq!(kind("POST /v1/chat", model), SpanKind::Other);
        // An attribute always wins over the name.
        assert_eq!(
            kind(
                "chat gpt-4o",
                r#"{"gen_ai.operation.name":"embeddings","gen_ai.request.model":"m"}"#
            ),
            SpanKind::Embedding
        );
        assert_eq!(
            kind("chat gpt-4o", r#"{"openinference.span.kind":"TOOL"}"#),
            SpanKind::Tool
        );
    }

    /// The facts every convention family below reports, whatever it calls them.
    fn common_facts(span: &Span) -> impl PartialEq + std::fmt::Debug + use<> {
        (
            span.kind,
            span.provider.clone(),
            span.request_model.clone(),
            span.usage,
            span.finish_reasons.clone(),
            span.ttft_ns,
            span.tenant.clone(),
            span.feature.clone(),
            span.user_id.clone(),
            span.session_id.clone(),
            span.extra.clone(),
        )
    }

    #[test]
    fn every_convention_family_decodes_to_the_same_span() {
        let current = attrs(
            r#"{"gen_ai.operation.name":"chat","gen_ai.provider.name":"openai",
            "gen_ai.request.model":"gpt-4o","gen_ai.response.model":"gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":95,
            "gen_ai.usage.cache_read.input_tokens":512,"gen_ai.usage.cache_creation.input_tokens":10,
            "gen_ai.usage.reasoning.output_tokens":7,"gen_ai.response.finish_reasons":["stop"],
            "gen_ai.response.time_to_first_chunk":0.42,"tenant.id":"acme","app.feature":"support-chat",
            "user.id":"u1","session.id":"s1","server.address":"api.openai.com",
            "gen_ai.input.messages":[{"role":"user","content":"hi"}],"gen_ai.output.messages":"[]"}"#,
        );
        let old_otel = attrs(
            r#"{"gen_ai.operation.name":"chat","gen_ai.system":"openai",
            "gen_ai.request.model":"gpt-4o","gen_ai.response.model":"gpt-4o-2024-08-06",
            "gen_ai.usage.prompt_tokens":812,"gen_ai.usage.completion_tokens":95,
            "gen_ai.usage.cache_read_input_tokens":512,"gen_ai.usage.cache_write.input_tokens":10,
            "gen_ai.usage.reasoning_tokens":7,"gen_ai.response.finish_reasons":"stop",
            "gen_ai.server.time_to_first_token":0.42,"gen_ai.tenant.id":"acme","feature":"support-chat",
            "enduser.id":"u1","gen_ai.conversation.id":"s1","server.address":"api.openai.com",
            "gen_ai.prompt":"hello","gen_ai.completion":"hi there"}"#,
        );
        let openinference = attrs(
            r#"{"openinference.span.kind":"LLM","llm.provider":"openai","llm.model_name":"gpt-4o",
            "llm.token_count.prompt":812,"llm.token_count.completion":95,"llm.token_count.total":907,
            "llm.token_count.prompt_details.cache_read":512,
            "llm.token_count.prompt_details.cache_write":10,
            "llm.token_count.completion_details.reasoning":7,"llm.finish_reason":"stop",
            "glassbox.ttft_ms":420,"enduser.tenant":"acme","feature":"support-chat",
            "user.id":"u1","session.id":"s1","server.address":"api.openai.com",
            "input.value":"hello","output.value":"hi there",
            "llm.input_messages.0.message.content":"hello"}"#,
        );
        let openllmetry = attrs(
            r#"{"llm.request.type":"chat","gen_ai.system":"openai","llm.request.model":"gpt-4o",
            "llm.response.model":"gpt-4o-2024-08-06","llm.usage.prompt_tokens":812,
            "llm.usage.completion_tokens":95,"gen_ai.usage.cache_read_input_tokens":512,
            "gen_ai.usage.cache_creation_input_tokens":10,"gen_ai.usage.reasoning_tokens":7,
            "llm.finish_reason":"stop","gen_ai.server.time_to_first_token":0.42,"tenant":"acme",
            "gen_ai.agent.name":"support-chat","enduser.id":"u1","gen_ai.conversation.id":"s1",
            "server.address":"api.openai.com","gen_ai.prompt.0.content":"hello",
            "gen_ai.completion.0.content":"hi there","traceloop.entity.input":"{}"}"#,
        );
        let expected = Span {
            kind: SpanKind::Llm,
            provider: Some("openai".into()),
            request_model: Some("gpt-4o".into()),
            usage: TokenUsage {
                input: Some(812),
                output: Some(95),
                cache_read: Some(512),
                cache_write: Some(10),
                reasoning: Some(7),
            },
            finish_reasons: strings(&["stop"]),
            ttft_ns: Some(420_000_000),
            tenant: Some("acme".into()),
            feature: Some("support-chat".into()),
            user_id: Some("u1".into()),
            session_id: Some("s1".into()),
            extra: vec![("server.address".into(), "api.openai.com".into())],
            ..bare()
        };
        assert_eq!(
            current,
            Span {
                operation: Some("chat".into()),
                response_model: Some("gpt-4o-2024-08-06".into()),
                ..expected.clone()
            }
        );
        assert_eq!(old_otel, current);
        assert_eq!(
            common_facts(&openinference),
            common_facts(&Span {
                extra: vec![
                    ("llm.token_count.total".into(), "907".into()),
                    ("server.address".into(), "api.openai.com".into()),
                ],
                ..expected.clone()
            })
        );
        assert_eq!(openinference.operation, None);
        assert_eq!(
            openllmetry,
            Span {
                operation: Some("chat".into()),
                ..current.clone()
            }
        );
        assert_eq!(openllmetry.model(), Some("gpt-4o-2024-08-06"));
    }

    /// The value a span holds for an [`ATTRIBUTE_ALIASES`] field name, rendered.
    fn field_value(span: &Span, field: &str) -> Option<String> {
        let text = |v: &Option<String>| v.clone();
        let count = |v: Option<u64>| v.map(|n| n.to_string());
        match field {
            "provider" => text(&span.provider),
            "request_model" => text(&span.request_model),
            "response_model" => text(&span.response_model),
            "operation" => text(&span.operation),
            "error_type" => text(&span.error_type),
            "tenant" => text(&span.tenant),
            "feature" => text(&span.feature),
            "user_id" => text(&span.user_id),
            "session_id" => text(&span.session_id),
            "feedback_label" => text(&span.feedback_label),
            "usage.input" => count(span.usage.input),
            "usage.output" => count(span.usage.output),
            "usage.cache_read" => count(span.usage.cache_read),
            "usage.cache_write" => count(span.usage.cache_write),
            "usage.reasoning" => count(span.usage.reasoning),
            "finish_reasons" => Some(span.finish_reasons.join(",")),
            "ttft_ns" => count(span.ttft_ns),
            "feedback_score" => span.feedback_score.map(|s| s.to_string()),
            other => panic!("no accessor for {other}"),
        }
    }

    #[test]
    fn the_first_listed_alias_wins_in_any_key_order() {
        for (field, keys) in ATTRIBUTE_ALIASES {
            if *field == "kind" || *field == "ttft_ns" {
                continue; // tested on their own below
            }
            let value = |i: usize| match *field {
                f if f.starts_with("usage.") => format!("{}", i + 1),
                "feedback_score" => format!("0.{}", i + 1),
                _ => format!("\"v{i}\""),
            };
            let entries: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, key)| format!("\"{key}\":{}", value(i)))
                .collect();
            let forward = attrs(&format!("{{{}}}", entries.join(",")));
            let backward: Vec<String> = entries.iter().rev().cloned().collect();
            let backward = attrs(&format!("{{{}}}", backward.join(",")));
            let winner = value(0).trim_matches('"').to_owned();
            assert_eq!(
                field_value(&forward, field),
                Some(winner.clone()),
                "{field}"
            );
            assert_eq!(field_value(&backward, field), Some(winner), "{field}");
            assert!(forward.extra.is_empty() && backward.extra.is_empty());
            // Each alias alone feeds the field too.
            for (i, key) in keys.iter().enumerate() {
                let alone = attrs(&format!("{{\"{key}\":{}}}", value(i)));
                let expected = value(i).trim_matches('"').to_owned();
                assert_eq!(field_value(&alone, field), Some(expected), "{key}");
            }
        }
    }

    #[test]
    fn repeated_keys_keep_the_first_and_empty_strings_are_absent() {
        let span = attrs(r#"{"tenant.id":"first","tenant.id":"second"}"#);
        assert_eq!(span.tenant.as_deref(), Some("first"));
        let span = attrs(r#"{"gen_ai.provider.name":"","gen_ai.system":"openai","tenant":""}"#);
        assert_eq!(span.provider.as_deref(), Some("openai"));
        assert_eq!(span.tenant, None);
        let span = attrs(r#"{"error.type":"","gen_ai.response.finish_reasons":""}"#);
        assert_eq!(span.error_type, None);
        assert!(span.finish_reasons.is_empty());
    }

    #[test]
    fn time_to_first_token_in_seconds_or_milliseconds() {
        let ttft = |a: &str| attrs(a).ttft_ns;
        assert_eq!(
            ttft(
                r#"{"glassbox.ttft_ms":100,"gen_ai.server.time_to_first_token":0.2,
                "gen_ai.response.time_to_first_chunk":0.3}"#
            ),
            Some(300_000_000)
        );
        assert_eq!(
            ttft(r#"{"glassbox.ttft_ms":100,"gen_ai.server.time_to_first_token":0.2}"#),
            Some(200_000_000)
        );
        assert_eq!(ttft(r#"{"glassbox.ttft_ms":100}"#), Some(100_000_000));
        assert_eq!(ttft(r#"{"glassbox.ttft_ms":"12.5"}"#), Some(12_500_000));
        assert_eq!(
            ttft(r#"{"gen_ai.response.time_to_first_chunk":2}"#),
            Some(2_000_000_000)
        );
        assert_eq!(
            ttft(r#"{"gen_ai.response.time_to_first_chunk":0.000000001}"#),
            Some(1)
        );
        assert_eq!(
            ttft(r#"{"gen_ai.response.time_to_first_chunk":null}"#),
            None
        );
    }

    #[test]
    fn otlp_list_form_attributes() {
        let record = format!(
            r#"{{"traceId":"{TRACE}","spanId":"{SPAN}","parentSpanId":"","kind":3,"name":"chat",
            "startTimeUnixNano":"{START}","endTimeUnixNano":"{END}",
            "status":{{"code":2,"message":"rate limited"}},"droppedAttributesCount":0,
            "events":[{{"name":"gen_ai.content.prompt","attributes":[]}}],
            "attributes":[
              {{"key":"gen_ai.provider.name","value":{{"stringValue":"openai"}}}},
              {{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o"}}}},
              {{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},
              {{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"812"}}}},
              {{"key":"gen_ai.usage.output_tokens","value":{{"intValue":95}}}},
              {{"value":{{"intValue":"512"}},"key":"gen_ai.usage.cache_read.input_tokens"}},
              {{"key":"gen_ai.response.finish_reasons","value":{{"arrayValue":{{"values":[
                  {{"stringValue":"stop"}},{{"stringValue":"length"}}]}}}}}},
              {{"key":"gen_ai.response.time_to_first_chunk","value":{{"doubleValue":0.42}}}},
              {{"key":"error.type","value":{{"stringValue":"rate_limit"}}}},
              {{"key":"tenant.id","value":{{"stringValue":"acme"}}}},
              {{"key":"server.port","value":{{"intValue":"443"}}}},
              {{"key":"gen_ai.request.temperature","value":{{"doubleValue":0.7}}}},
              {{"key":"gen_ai.request.stream","value":{{"boolValue":true}}}},
              {{"key":"gen_ai.request.stop_sequences","value":{{"arrayValue":{{"values":[{{"stringValue":"x"}}]}}}}}},
              {{"key":"meta","value":{{"kvlistValue":{{"values":[]}}}}}},
              {{"key":"blob","value":{{"bytesValue":"AAEC"}}}},
              {{"key":"gen_ai.prompt","value":{{"stringValue":"the prompt"}}}},
              {{"value":{{"stringValue":"the input"}},"key":"input.value"}},
              {{"key":"nothing","value":{{}}}},
              {{"key":"no.value"}},
              {{"value":{{"stringValue":"no key"}}}}
            ]}}"#
        );
        let expected = Span {
            kind: SpanKind::Llm,
            name: "chat".into(),
            status: StatusCode::Error,
            status_message: Some("rate limited".into()),
            provider: Some("openai".into()),
            request_model: Some("gpt-4o".into()),
            operation: Some("chat".into()),
            usage: TokenUsage {
                input: Some(812),
                output: Some(95),
                cache_read: Some(512),
                ..TokenUsage::default()
            },
            finish_reasons: strings(&["stop", "length"]),
            ttft_ns: Some(420_000_000),
            error_type: Some("rate_limit".into()),
            tenant: Some("acme".into()),
            extra: vec![
                ("server.port".into(), "443".into()),
                ("gen_ai.request.temperature".into(), "0.7".into()),
                ("gen_ai.request.stream".into(), "true".into()),
            ],
            ..bare()
        };
        let span = decode(&record).unwrap();
        assert_eq!(span, expected);
        assert!(span.is_truncated());
        assert_eq!(span.error_kind(), Some("rate_limit"));
    }

    #[test]
    fn object_and_list_forms_agree_on_a_plain_value_in_a_list() {
        // Plain (non-AnyValue) values inside the list form are accepted as they are.
        let span = attrs(
            r#"[{"key":"gen_ai.request.model","value":"gpt-4o"},
                {"key":"gen_ai.usage.input_tokens","value":12},
                {"key":"gen_ai.response.finish_reasons","value":["stop"]}]"#,
        );
        assert_eq!(span.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(span.usage.input, Some(12));
        assert_eq!(span.finish_reasons, strings(&["stop"]));
    }

    fn status_of(status: &str) -> Result<(StatusCode, Option<String>), DecodeError> {
        let record = format!(
            r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{END},"status":{status}}}"#
        );
        decode(&record).map(|s| (s.status, s.status_message))
    }

    #[test]
    fn status_codes() {
        use StatusCode::*;
        for (status, code) in [
            (r#"{"code":0}"#, Unset),
            (r#"{"code":1}"#, Ok),
            (r#"{"code":2}"#, Error),
            (r#"{"code":"ok"}"#, Ok),
            (r#"{"code":"OK"}"#, Ok),
            (r#"{"code":"Error"}"#, Error),
            (r#"{"code":"unset"}"#, Unset),
            (r#"{"code":""}"#, Unset),
            (r#"{"code":null}"#, Unset),
            (r#"{"code":"STATUS_CODE_OK"}"#, Ok),
            (r#"{"code":"STATUS_CODE_ERROR"}"#, Error),
            (r#"{"code":"STATUS_CODE_UNSET"}"#, Unset),
            (r#"{"code":"status_code_error"}"#, Error),
            (r#"{}"#, Unset),
            (r#"null"#, Unset),
            (r#""error""#, Error),
            (r#"2"#, Error),
        ] {
            assert_eq!(status_of(status), Result::Ok((code, None)), "{status}");
        }
        assert_eq!(
            status_of(r#"{"message":"upstream timed out","code":"ERROR","extra":[1]}"#),
            Result::Ok((Error, Some("upstream timed out".into())))
        );
        let bad_value = DecodeError::BadValue {
            field: "status.code",
            expected: "unset, ok or error (or 0, 1, 2)",
        };
        for status in [
            r#"{"code":7}"#,
            r#"{"code":-1}"#,
            r#"{"code":"fine"}"#,
            "1.5",
            "3",
        ] {
            let error = status_of(status).unwrap_err();
            assert_eq!(error, bad_value, "{status}");
            assert_eq!(error.reason(), "bad_value");
        }
        assert_eq!(
            status_of(r#"{"code":true}"#).unwrap_err(),
            DecodeError::BadType {
                field: "status.code",
                expected: "a string or an integer"
            }
        );
        for status in ["true", "[1]"] {
            assert_eq!(
                status_of(status).unwrap_err(),
                DecodeError::BadType {
                    field: "status",
                    expected: "an object with `code` and `message`"
                },
                "{status}"
            );
        }
        assert_eq!(
            status_of(r#"{"message":{"text":"x"}}"#).unwrap_err(),
            DecodeError::BadType {
                field: "status.message",
                expected: "a string"
            }
        );
    }

    fn kind_of(kind: Option<&str>, attributes: &str) -> SpanKind {
        let kind = kind.map(|k| format!(r#""kind":{k},"#)).unwrap_or_default();
        let record = format!(
            r#"{{{kind}"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{END},"attributes":{attributes}}}"#
        );
        decode(&record).unwrap().kind
    }

    #[test]
    fn kinds_given_or_inferred() {
        use SpanKind::*;
        // Given, in any case; unknown names are Other; OTLP's own span kinds are ignored.
        for (kind, expected) in [
            (r#""llm""#, Llm),
            (r#""RETRIEVAL""#, Retrieval),
            (r#""Embedding""#, Embedding),
            (r#""tool""#, Tool),
            (r#""chain""#, Chain),
            (r#""agent""#, Agent),
            (r#""feedback""#, Feedback),
            (r#""other""#, Other),
            (r#""reranker""#, Other),
        ] {
            assert_eq!(kind_of(Some(kind), "{}"), expected, "{kind}");
            // A given kind wins over every inference.
            let inferred = r#"{"gen_ai.operation.name":"embeddings","feedback.score":1}"#;
            assert_eq!(kind_of(Some(kind), inferred), expected, "{kind}");
        }
        for kind in ["null", "3", r#""SPAN_KIND_CLIENT""#, r#""""#] {
            assert_eq!(
                kind_of(Some(kind), r#"{"gen_ai.operation.name":"chat"}"#),
                Llm,
                "{kind}"
            );
        }
        let inferred = |attributes: &str| kind_of(None, attributes);
        for (operation, expected) in [
            ("chat", Llm),
            ("text_completion", Llm),
            ("generate_content", Llm),
            ("completion", Llm),
            ("embeddings", Embedding),
            ("execute_tool", Tool),
            ("invoke_agent", Agent),
            ("create_agent", Agent),
            ("retrieval", Retrieval),
            ("retrieve", Retrieval),
            ("CHAT", Llm),
        ] {
            let a = format!(r#"{{"gen_ai.operation.name":"{operation}"}}"#);
            assert_eq!(inferred(&a), expected, "{operation}");
            let a = format!(r#"{{"llm.request.type":"{operation}"}}"#);
            assert_eq!(inferred(&a), expected, "{operation}");
        }
        for (oi, expected) in [
            ("LLM", Llm),
            ("RETRIEVER", Retrieval),
            ("EMBEDDING", Embedding),
            ("CHAIN", Chain),
            ("TOOL", Tool),
            ("AGENT", Agent),
            ("RERANKER", Other),
            ("GUARDRAIL", Other),
            ("EVALUATOR", Other),
            ("llm", Llm),
        ] {
            let a = format!(r#"{{"openinference.span.kind":"{oi}","feedback.label":"x"}}"#);
            assert_eq!(inferred(&a), expected, "{oi}");
        }
        for (tl, expected) in [
            ("workflow", Chain),
            ("task", Chain),
            ("agent", Agent),
            ("tool", Tool),
        ] {
            let a = format!(r#"{{"traceloop.span.kind":"{tl}"}}"#);
            assert_eq!(inferred(&a), expected, "{tl}");
        }
        // Operation before OpenInference before Traceloop before feedback.
        assert_eq!(
            inferred(
                r#"{"traceloop.span.kind":"tool","openinference.span.kind":"AGENT",
                "gen_ai.operation.name":"chat","feedback.score":0.5}"#
            ),
            Llm
        );
        assert_eq!(
            inferred(
                r#"{"traceloop.span.kind":"tool","openinference.span.kind":"AGENT",
                "gen_ai.operation.name":"frobnicate"}"#
            ),
            Agent
        );
        assert_eq!(
            inferred(r#"{"traceloop.span.kind":"tool","openinference.span.kind":"UNKNOWN"}"#),
            Tool
        );
        assert_eq!(
            inferred(r#"{"traceloop.span.kind":"unknown","feedback.score":0}"#),
            Feedback
        );
        assert_eq!(inferred(r#"{"feedback.label":"thumbs_down"}"#), Feedback);
        assert_eq!(inferred(r#"{"gen_ai.operation.name":"frobnicate"}"#), Other);
        assert_eq!(inferred("{}"), Other);
    }

    #[test]
    fn feedback_spans() {
        let span = attrs(r#"{"feedback.score":"0.25","feedback.label":"helpful"}"#);
        assert_eq!(span.kind, SpanKind::Feedback);
        assert_eq!(span.feedback_score, Some(0.25));
        assert_eq!(span.feedback_label.as_deref(), Some("helpful"));
        assert_eq!(attrs(r#"{"feedback.score":1}"#).feedback_score, Some(1.0));
        assert_eq!(attrs(r#"{"feedback.score":0}"#).feedback_score, Some(0.0));
    }

    #[test]
    fn token_counts_as_integers_floats_or_strings() {
        for value in [
            "812",
            "812.0",
            r#""812""#,
            r#""812.0""#,
            r#""8.12e2""#,
            "8.12e2",
        ] {
            let span = attrs(&format!(r#"{{"gen_ai.usage.input_tokens":{value}}}"#));
            assert_eq!(span.usage.input, Some(812), "{value}");
        }
        for value in ["0", "-0", r#""-0""#, "0.0", "-0.0"] {
            let span = attrs(&format!(r#"{{"gen_ai.usage.input_tokens":{value}}}"#));
            assert_eq!(span.usage.input, Some(0), "{value}");
        }
        let limit = attrs(r#"{"gen_ai.usage.output_tokens":10000000}"#);
        assert_eq!(limit.usage.output, Some(10_000_000));
        assert_eq!(
            attrs(r#"{"gen_ai.usage.input_tokens":null}"#).usage.input,
            None
        );
    }

    #[test]
    fn token_count_errors() {
        const KEY: &str = "gen_ai.usage.input_tokens";
        let error = |value: &str| attr_error(&format!(r#"{{"{KEY}":{value}}}"#));
        let bad_type = DecodeError::BadType {
            field: KEY,
            expected: "a whole number of tokens",
        };
        for value in [
            "1.5",
            r#""1.5""#,
            r#""abc""#,
            r#""""#,
            r#"" 12""#,
            r#""NaN""#,
            r#""inf""#,
            "true",
            "[1]",
            r#"{"n":1}"#,
        ] {
            assert_eq!(error(value), bad_type, "{value}");
        }
        for (value, negative) in [
            ("-1", -1),
            (r#""-3""#, -3),
            ("-2.0", -2),
            (r#""-2.0""#, -2),
            ("-99999999999999999999", i64::MIN),
            (r#""-99999999999999999999""#, i64::MIN),
        ] {
            let e = error(value);
            assert_eq!(
                e,
                DecodeError::NegativeTokens {
                    field: KEY,
                    value: negative
                },
                "{value}"
            );
            assert_eq!(e.reason(), "negative_tokens");
        }
        for (value, absurd) in [
            ("10000001", 10_000_001),
            (r#""10000001""#, 10_000_001),
            ("1e30", u64::MAX),
            ("99999999999999999999", u64::MAX),
            (r#""99999999999999999999""#, u64::MAX),
            ("18446744073709551615", u64::MAX),
        ] {
            let e = error(value);
            assert_eq!(
                e,
                DecodeError::AbsurdTokens {
                    field: KEY,
                    value: absurd,
                    max: 10_000_000
                },
                "{value}"
            );
            assert_eq!(e.reason(), "absurd_tokens");
        }
        // A losing alias is checked as well, so key order never decides acceptance.
        assert_eq!(
            attr_error(r#"{"gen_ai.usage.input_tokens":5,"llm.token_count.prompt":-5}"#),
            DecodeError::NegativeTokens {
                field: "llm.token_count.prompt",
                value: -5
            }
        );
        // The limit is configurable.
        let strict = JsonDecoder::new(DecodeLimits {
            max_tokens: 100,
            ..DecodeLimits::default()
        });
        let record = with_attributes(r#"{"gen_ai.usage.reasoning_tokens":101}"#);
        assert_eq!(
            strict.decode(record.as_bytes(), NOW),
            Err(DecodeError::AbsurdTokens {
                field: "gen_ai.usage.reasoning_tokens",
                value: 101,
                max: 100
            })
        );
    }

    #[test]
    fn other_attribute_errors() {
        let cases = [
            (
                r#"{"feedback.score":1.5}"#,
                DecodeError::BadValue {
                    field: "feedback.score",
                    expected: "a number between 0 and 1",
                },
            ),
            (
                r#"{"feedback.score":-0.1}"#,
                DecodeError::BadValue {
                    field: "feedback.score",
                    expected: "a number between 0 and 1",
                },
            ),
            (
                r#"{"feedback.score":"good"}"#,
                DecodeError::BadType {
                    field: "feedback.score",
                    expected: "a number",
                },
            ),
            (
                r#"{"gen_ai.response.time_to_first_chunk":-0.5}"#,
                DecodeError::BadValue {
                    field: "gen_ai.response.time_to_first_chunk",
                    expected: "a non-negative duration",
                },
            ),
            (
                r#"{"glassbox.ttft_ms":1e300}"#,
                DecodeError::BadValue {
                    field: "glassbox.ttft_ms",
                    expected: "a non-negative duration",
                },
            ),
            (
                r#"{"gen_ai.server.time_to_first_token":[0.4]}"#,
                DecodeError::BadType {
                    field: "gen_ai.server.time_to_first_token",
                    expected: "a number",
                },
            ),
            (
                r#"{"gen_ai.request.model":{"name":"gpt-4o"}}"#,
                DecodeError::BadType {
                    field: "gen_ai.request.model",
                    expected: "a string",
                },
            ),
            (
                r#"{"llm.model_name":["gpt-4o"]}"#,
                DecodeError::BadType {
                    field: "llm.model_name",
                    expected: "a string",
                },
            ),
            (
                r#"{"gen_ai.response.finish_reasons":[1]}"#,
                DecodeError::BadType {
                    field: "gen_ai.response.finish_reasons",
                    expected: "a string or an array of strings",
                },
            ),
            (
                r#"{"gen_ai.response.finish_reasons":[["stop"]]}"#,
                DecodeError::BadType {
                    field: "gen_ai.response.finish_reasons",
                    expected: "a string or an array of strings",
                },
            ),
            (
                r#"{"llm.finish_reason":false}"#,
                DecodeError::BadType {
                    field: "llm.finish_reason",
                    expected: "a string or an array of strings",
                },
            ),
            (
                r#"[{"key":7,"value":{"stringValue":"x"}}]"#,
                DecodeError::BadType {
                    field: "attributes",
                    expected: "string keys in the OTLP attribute list",
                },
            ),
        ];
        for (attributes, expected) in cases {
            assert_eq!(attr_error(attributes), expected, "{attributes}");
        }
        let not_attributes = DecodeError::BadType {
            field: "attributes",
            expected: "an object, or an OTLP list of {key, value} objects",
        };
        for attributes in [
            r#""gen_ai.request.model=gpt-4o""#,
            "7",
            "true",
            r#"["x"]"#,
            "[[]]",
        ] {
            assert_eq!(attr_error(attributes), not_attributes, "{attributes}");
        }
        // Numbers and booleans are fine where a string is expected.
        let span = attrs(r#"{"user.id":12345,"session.id":true,"tenant.id":1.5}"#);
        assert_eq!(span.user_id.as_deref(), Some("12345"));
        assert_eq!(span.session_id.as_deref(), Some("true"));
        assert_eq!(span.tenant.as_deref(), Some("1.5"));
        // A finish reason may be a single string; nulls in the array are skipped.
        let span = attrs(r#"{"gen_ai.response.finish_reasons":["stop",null,"length"]}"#);
        assert_eq!(span.finish_reasons, strings(&["stop", "length"]));
        assert_eq!(
            attrs(r#"{"llm.finish_reason":"max_tokens"}"#).finish_reasons,
            strings(&["max_tokens"])
        );
    }

    fn record(fields: &str) -> String {
        format!("{{{fields}}}")
    }

    #[test]
    fn record_errors_with_their_reasons() {
        let ids = format!(r#""trace_id":"{TRACE}","span_id":"{SPAN}""#);
        let times = format!(r#""start_time_unix_nano":{START},"end_time_unix_nano":{END}"#);
        let missing = |field| DecodeError::MissingField { field };
        let cases: Vec<(String, DecodeError)> = vec![
            (record(&times), missing("trace_id")),
            (
                record(&format!(r#""trace_id":null,"span_id":"{SPAN}",{times}"#)),
                missing("trace_id"),
            ),
            (
                record(&format!(r#""trace_id":"{TRACE}",{times}"#)),
                missing("span_id"),
            ),
            (
                record(&format!(r#"{ids},"end_time_unix_nano":{END}"#)),
                missing("start_time_unix_nano"),
            ),
            (
                record(&format!(r#"{ids},"start_time_unix_nano":{START}"#)),
                missing("end_time_unix_nano"),
            ),
            (
                record(&format!(r#""trace_id":12,"span_id":"{SPAN}",{times}"#)),
                DecodeError::BadType {
                    field: "trace_id",
                    expected: "a hex string",
                },
            ),
            (
                record(&format!(
                    r#""trace_id":"{TRACE}","span_id":["{SPAN}"],{times}"#
                )),
                DecodeError::BadType {
                    field: "span_id",
                    expected: "a hex string",
                },
            ),
            (
                record(&format!(r#"{ids},"parent_span_id":5,{times}"#)),
                DecodeError::BadType {
                    field: "parent_span_id",
                    expected: "a hex string",
                },
            ),
            (
                record(&format!(r#"{ids},"name":5,{times}"#)),
                DecodeError::BadType {
                    field: "name",
                    expected: "a string",
                },
            ),
            (
                record(&format!(r#"{ids},"kind":true,{times}"#)),
                DecodeError::BadType {
                    field: "kind",
                    expected: "a string",
                },
            ),
            (
                record(&format!(
                    r#"{ids},"start_time_unix_nano":1.7643168e18,"end_time_unix_nano":{END}"#
                )),
                DecodeError::BadType {
                    field: "start_time_unix_nano",
                    expected: "nanoseconds since the Unix epoch as a non-negative integer or decimal string",
                },
            ),
            (
                record(&format!(
                    r#"{ids},"start_time_unix_nano":{START},"end_time_unix_nano":"soon""#
                )),
                DecodeError::BadType {
                    field: "end_time_unix_nano",
                    expected: "nanoseconds since the Unix epoch as a non-negative integer or decimal string",
                },
            ),
            (
                record(&format!(
                    r#"{ids},"start_time_unix_nano":-1,"end_time_unix_nano":{END}"#
                )),
                DecodeError::BadType {
                    field: "start_time_unix_nano",
                    expected: "nanoseconds since the Unix epoch as a non-negative integer or decimal string",
                },
            ),
            (
                record(&format!(
                    r#"{ids},"start_time_unix_nano":"99999999999999999999","end_time_unix_nano":{END}"#
                )),
                DecodeError::BadType {
                    field: "start_time_unix_nano",
                    expected: "nanoseconds since the Unix epoch as an integer below 2^64",
                },
            ),
            (
                record(&format!(
                    r#"{ids},"start_time_unix_nano":{END},"end_time_unix_nano":{START}"#
                )),
                DecodeError::EndBeforeStart {
                    start: END,
                    end: START,
                },
            ),
            (
                record(&format!(r#""trace_id":"","span_id":"{SPAN}",{times}"#)),
                DecodeError::EmptyId { field: "trace_id" },
            ),
            (
                record(&format!(r#""trace_id":"{TRACE}","span_id":"",{times}"#)),
                DecodeError::EmptyId { field: "span_id" },
            ),
            (
                record(&format!(
                    r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e473g","span_id":"{SPAN}",{times}"#
                )),
                DecodeError::BadId {
                    field: "trace_id",
                    problem: "not hexadecimal",
                },
            ),
            (
                record(&format!(
                    r#""trace_id":"{TRACE}","span_id":"00f067aa0ba902b",{times}"#
                )),
                DecodeError::BadId {
                    field: "span_id",
                    problem: "odd number of hex digits",
                },
            ),
            (
                record(&format!(
                    r#""trace_id":"{}","span_id":"{SPAN}",{times}"#,
                    "ab".repeat(33)
                )),
                DecodeError::BadId {
                    field: "trace_id",
                    problem: "longer than 64 hex digits",
                },
            ),
            (
                record(&format!(r#"{ids},"parent_span_id":"not-an-id",{times}"#)),
                DecodeError::BadId {
                    field: "parent_span_id",
                    problem: "not hexadecimal",
                },
            ),
        ];
        for (record, expected) in cases {
            let error = decode(&record).unwrap_err();
            assert_eq!(error, expected, "{record}");
            assert!(DecodeError::REASONS.contains(&error.reason()));
        }
        let reason = |r: &str| decode(r).unwrap_err().reason();
        assert_eq!(reason(&record(&times)), "missing_field");
        assert_eq!(
            reason(&record(&format!(r#""trace_id":1,{times}"#))),
            "bad_type"
        );
        assert_eq!(
            reason(&record(&format!(
                r#"{ids},"start_time_unix_nano":2,"end_time_unix_nano":1"#
            ))),
            "end_before_start"
        );
        assert_eq!(
            reason(&record(&format!(
                r#""trace_id":"","span_id":"{SPAN}",{times}"#
            ))),
            "empty_id"
        );
        assert_eq!(
            reason(&record(&format!(
                r#""trace_id":"xyz","span_id":"{SPAN}",{times}"#
            ))),
            "bad_id"
        );
    }

    #[test]
    fn invalid_json() {
        for (input, message) in [
            ("", "EOF while parsing a value at line 1 column 0"),
            ("{", "EOF while parsing an object at line 1 column 1"),
            ("{\"trace_id\" 1}", "expected `:` at line 1 column 13"),
            ("{} {}", "trailing characters at line 1 column 4"),
            ("nope", "expected ident at line 1 column 2"),
            ("[1,2]", "the record is not a JSON object"),
            ("\"a secret prompt\"", "the record is not a JSON object"),
            ("null", "the record is not a JSON object"),
            (
                "{\"a\":\"\u{1}\"}",
                "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 6",
            ),
        ] {
            let error = decode(input).unwrap_err();
            assert_eq!(
                error,
                DecodeError::InvalidJson {
                    message: message.into()
                },
                "{input}"
            );
            assert_eq!(error.reason(), "invalid_json");
        }
        let invalid_utf8 = JsonDecoder::default().decode(b"{\"name\":\"\xff\"}", NOW);
        assert_eq!(invalid_utf8.unwrap_err().reason(), "invalid_json");
        // Deep nesting never overflows the stack: values nobody reads are skipped iteratively,
        // and values that are read hit serde_json's recursion limit.
        let skipped = with_attributes(&format!(
            r#"{{"x":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        ));
        assert_eq!(decode(&skipped), Ok(bare()));
        let read = with_attributes(&format!(
            r#"[{{"key":"gen_ai.response.finish_reasons","value":{}null{}}}]"#,
            r#"{"arrayValue":{"values":"#.repeat(10_000),
            "}}".repeat(10_000)
        ));
        assert_eq!(
            decode(&read),
            Err(DecodeError::InvalidJson {
                message: "recursion limit exceeded at line 1 column 1711".into()
            })
        );
        let unclosed = with_attributes(&format!(
            r#"[{{"key":"gen_ai.response.finish_reasons","value":{}}}]"#,
            r#"{"arrayValue":{"values":["#.repeat(10_000)
        ));
        assert_eq!(decode(&unclosed).unwrap_err().reason(), "invalid_json");
    }

    #[test]
    fn horizon() {
        let decoder = JsonDecoder::default();
        let limits = *decoder.limits();
        assert_eq!(limits.horizon_past_ms, 604_800_000);
        assert_eq!(limits.horizon_future_ms, 5_000);
        let at = |start_ms: u64| {
            let start = start_ms * 1_000_000;
            let record = format!(
                r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{start},"end_time_unix_nano":{start}}}"#
            );
            decoder.decode(record.as_bytes(), NOW)
        };
        assert!(at(NOW - 604_800_000).is_ok());
        assert!(at(NOW + 5_000).is_ok());
        let past = at(NOW - 604_800_001).unwrap_err();
        assert_eq!(
            past,
            DecodeError::BeyondHorizon {
                start_ms: NOW - 604_800_001,
                now_ms: NOW,
                limit_ms: 604_800_000,
                direction: Horizon::Past
            }
        );
        assert_eq!(past.reason(), "beyond_horizon");
        let future = at(NOW + 5_001).unwrap_err();
        assert_eq!(
            future,
            DecodeError::BeyondHorizon {
                start_ms: NOW + 5_001,
                now_ms: NOW,
                limit_ms: 5_000,
                direction: Horizon::Future
            }
        );
        assert_eq!(future.reason(), "future");
        // The defect of issue #14: a client nine minutes ahead.
        assert_eq!(at(NOW + 9 * 60_000).unwrap_err().reason(), "future");
        assert_eq!(at(0).unwrap_err().reason(), "beyond_horizon");
        // A clock near zero or near the end of time does not overflow.
        let record = format!(
            r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":0,"end_time_unix_nano":0}}"#
        );
        assert!(decoder.decode(record.as_bytes(), 0).is_ok());
        assert_eq!(
            decoder
                .decode(SAMPLE.as_bytes(), u64::MAX)
                .unwrap_err()
                .reason(),
            "beyond_horizon"
        );
    }

    #[test]
    fn absurd_durations_are_refused_before_they_overflow_a_sum() {
        // Issue #14, defect 6: ~550 spans ending at u64::MAX wrapped the latency sum.
        let record = |end: &str, attributes: &str| {
            format!(
                r#"{{"trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{end},"attributes":{attributes}}}"#
            )
        };
        let e = decode(&record(&u64::MAX.to_string(), "{}")).unwrap_err();
        assert_eq!(e.reason(), "absurd_duration");
        assert_eq!(e.field(), Some("end_time_unix_nano"));
        let day_ns = 86_400_000_000_000u64;
        assert!(decode(&record(&(START + day_ns).to_string(), "{}")).is_ok());
        assert_eq!(
            decode(&record(&(START + day_ns + 1_000_000).to_string(), "{}"))
                .unwrap_err()
                .reason(),
            "absurd_duration"
        );
        let e = decode(&record(
            &END.to_string(),
            r#"{"gen_ai.response.time_to_first_chunk":1e6}"#,
        ))
        .unwrap_err();
        assert_eq!((e.reason(), e.field()), ("absurd_duration", Some("ttft")));
    }

    #[test]
    fn ids_are_lowercased_and_times_may_be_strings() {
        let record = format!(
            r#"{{"trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00F067AA0BA902B7",
            "parent_span_id":"AB","start_time_unix_nano":"{START}","end_time_unix_nano":"{END}"}}"#
        );
        let span = decode(&record).unwrap();
        assert_eq!(span.trace_id, TRACE);
        assert_eq!(span.span_id, SPAN);
        assert_eq!(span.parent_span_id.as_deref(), Some("ab"));
        assert_eq!((span.start_unix_nano, span.end_unix_nano), (START, END));
        // Any even number of hex digits up to 64.
        let record = format!(
            r#"{{"trace_id":"{}","span_id":"ab","parent_span_id":"","start_time_unix_nano":{START},"end_time_unix_nano":{END}}}"#,
            "f".repeat(64)
        );
        let span = decode(&record).unwrap();
        assert_eq!(span.trace_id.len(), 64);
        assert_eq!(span.parent_span_id, None);
    }

    #[test]
    fn extra_keeps_unknown_scalars_only() {
        let long = "x".repeat(MAX_EXTRA_VALUE_LEN + 1);
        let edge = "y".repeat(MAX_EXTRA_VALUE_LEN);
        let span = attrs(&format!(
            r#"{{"server.address":"api.openai.com","server.port":443,"gen_ai.request.temperature":0.7,
            "gen_ai.request.top_p":1.0,"offset":-3,"big":1e300,"gen_ai.request.stream":false,"nothing":null,
            "gen_ai.request.stop_sequences":["\n"],"meta":{{"a":1}},"long":"{long}","edge":"{edge}",
            "esc\"aped":"tab\there","gen_ai.prompt":"p","gen_ai.completion":"c","input.value":"i",
            "output.value":"o","gen_ai.input.messages":"m","gen_ai.output.messages":"m",
            "gen_ai.retrieval.query.text":"q","gen_ai.retrieval.documents":"[]",
            "retrieval.documents.0.document.content":"d","exception.message":"e",
            "gen_ai.system_instructions":"s"}}"#
        ));
        let expected: Vec<(String, String)> = [
            ("server.address", "api.openai.com"),
            ("server.port", "443"),
            ("gen_ai.request.temperature", "0.7"),
            ("gen_ai.request.top_p", "1.0"),
            ("offset", "-3"),
            ("big", "1e300"),
            ("gen_ai.request.stream", "false"),
            ("edge", edge.as_str()),
            ("esc\"aped", "tab\there"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(span.extra, expected);
        assert_eq!(span.dimension("server.address"), Some("api.openai.com"));
        assert_eq!(span.dimension("gen_ai.prompt"), None);
    }

    #[test]
    fn messages_never_quote_values() {
        const SECRET: &str = "SECRET";
        let cases = [
            format!("\"{SECRET}\""),
            format!("[\"{SECRET}\"]"),
            format!("{{\"trace_id\":\"{SECRET}\" \"x\"}}"),
            format!("{{\"{SECRET}\":\"{SECRET}\",}}"),
            record(&format!(
                r#""trace_id":"{SECRET}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{END}"#
            )),
            record(&format!(
                r#""trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":"{SECRET}","end_time_unix_nano":{END}"#
            )),
            record(&format!(
                r#""trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{END},"status":{{"code":"{SECRET}"}}"#
            )),
            record(&format!(
                r#""trace_id":"{TRACE}","span_id":"{SPAN}","start_time_unix_nano":{START},"end_time_unix_nano":{END},"status":["{SECRET}"]"#
            )),
            with_attributes(&format!(r#"{{"gen_ai.usage.input_tokens":"{SECRET}"}}"#)),
            with_attributes(&format!(
                r#"{{"gen_ai.request.model":{{"{SECRET}":"{SECRET}"}}}}"#
            )),
            with_attributes(&format!(r#"{{"feedback.score":"{SECRET}"}}"#)),
            with_attributes(&format!(r#""{SECRET}""#)),
            with_attributes(&format!(r#"["{SECRET}"]"#)),
            with_attributes(&format!(
                r#"[{{"key":"{SECRET}","value":["{SECRET}"]}}, 1]"#
            )),
        ];
        for case in cases {
            let error = decode(&case).unwrap_err();
            assert!(!error.to_string().contains(SECRET), "{case}: {error}");
            assert!(!format!("{error:?}").contains(SECRET), "{case}: {error:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A JSON value to be written both as a plain attribute value and as an OTLP AnyValue.
        #[derive(Clone, Debug)]
        enum V {
            Null,
            Bool(bool),
            Int(i64),
            UInt(u64),
            Float(f64),
            Str(String),
            Arr(Vec<V>),
            Obj,
        }

        fn plain(v: &V) -> String {
            match v {
                V::Null => "null".into(),
                V::Bool(b) => b.to_string(),
                V::Int(n) => n.to_string(),
                V::UInt(n) => n.to_string(),
                V::Float(f) => serde_json::to_string(f).unwrap(),
                V::Str(s) => serde_json::to_string(s).unwrap(),
                V::Arr(items) => {
                    format!(
                        "[{}]",
                        items.iter().map(plain).collect::<Vec<_>>().join(",")
                    )
                }
                V::Obj => r#"{"k":[1,{"a":"b"}]}"#.into(),
            }
        }

        fn otlp(v: &V) -> String {
            match v {
                V::Null => "{}".into(),
                V::Bool(b) => format!(r#"{{"boolValue":{b}}}"#),
                V::Int(n) => format!(r#"{{"intValue":{n}}}"#),
                V::UInt(n) => format!(r#"{{"intValue":{n}}}"#),
                V::Float(_) => format!(r#"{{"doubleValue":{}}}"#, plain(v)),
                V::Str(_) => format!(r#"{{"stringValue":{}}}"#, plain(v)),
                V::Arr(items) => format!(
                    r#"{{"arrayValue":{{"values":[{}]}}}}"#,
                    items.iter().map(otlp).collect::<Vec<_>>().join(",")
                ),
                V::Obj => r#"{"kvlistValue":{"values":[{"key":"a","value":{}}]}}"#.into(),
            }
        }

        fn leaf() -> impl Strategy<Value = V> {
            prop_oneof![
                Just(V::Null),
                any::<bool>().prop_map(V::Bool),
                (-5i64..30).prop_map(V::Int),
                any::<i64>().prop_map(V::Int),
                any::<u64>().prop_map(V::UInt),
                (-2.0f64..2.0).prop_map(V::Float),
                (0u32..20_000_000).prop_map(|n| V::Float(f64::from(n))),
                prop::num::f64::NORMAL.prop_map(V::Float),
                prop::sample::select(vec![
                    "stop",
                    "length",
                    "812",
                    "-3",
                    "1.5",
                    "0.5",
                    "abc",
                    "",
                    "LLM",
                    "chat",
                    "embeddings",
                    "tool",
                    "OK",
                    "STATUS_CODE_ERROR",
                    "1e3",
                    "NaN",
                ])
                .prop_map(|s| V::Str(s.into())),
                "[a-z0-9 .]{0,12}".prop_map(V::Str),
                Just(V::Obj),
            ]
        }

        fn value() -> impl Strategy<Value = V> {
            prop_oneof![
                4 => leaf(),
                1 => prop::collection::vec(leaf(), 0..4).prop_map(V::Arr),
                1 => prop::collection::vec(prop::collection::vec(leaf(), 0..2).prop_map(V::Arr), 0..2)
                    .prop_map(V::Arr),
            ]
        }

        fn key() -> impl Strategy<Value = String> {
            let mut pool: Vec<String> = ATTRIBUTE_ALIASES
                .iter()
                .flat_map(|(_, keys)| keys.iter().map(|k| k.to_string()))
                .collect();
            pool.extend(
                [
                    "gen_ai.prompt",
                    "input.value",
                    "server.address",
                    "x",
                    "tenant",
                    "kind",
                ]
                .map(String::from),
            );
            prop_oneof![
                4 => prop::sample::select(pool),
                1 => "[a-z._]{1,10}",
            ]
        }

        fn attributes() -> impl Strategy<Value = Vec<(String, V)>> {
            prop::collection::vec((key(), value()), 0..12)
        }

        fn object_form(attributes: &[(String, V)]) -> String {
            let entries: Vec<String> = attributes
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), plain(v)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }

        fn list_form(attributes: &[(String, V)]) -> String {
            let entries: Vec<String> = attributes
                .iter()
                .map(|(k, v)| {
                    format!(
                        r#"{{"key":{},"value":{}}}"#,
                        serde_json::to_string(k).unwrap(),
                        otlp(v)
                    )
                })
                .collect();
            format!("[{}]", entries.join(","))
        }

        /// Arbitrary JSON with keys a span record would have, so the visitors see deep paths.
        fn json() -> impl Strategy<Value = serde_json::Value> {
            use serde_json::Value;
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                prop::num::f64::NORMAL.prop_map(Value::from),
                ".{0,8}".prop_map(Value::String),
                "[0-9a-fA-F]{0,34}".prop_map(Value::String),
            ];
            let keys = prop_oneof![
                prop::sample::select(vec![
                    "trace_id",
                    "span_id",
                    "parent_span_id",
                    "kind",
                    "name",
                    "start_time_unix_nano",
                    "end_time_unix_nano",
                    "status",
                    "attributes",
                    "code",
                    "message",
                    "key",
                    "value",
                    "stringValue",
                    "intValue",
                    "doubleValue",
                    "boolValue",
                    "arrayValue",
                    "kvlistValue",
                    "values",
                    "gen_ai.usage.input_tokens",
                    "gen_ai.response.finish_reasons",
                    "gen_ai.request.model",
                    "feedback.score",
                    "glassbox.ttft_ms",
                    "openinference.span.kind",
                    "traceId",
                ])
                .prop_map(String::from),
                ".{0,6}",
            ];
            leaf.prop_recursive(4, 48, 8, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec((keys.clone(), inner), 0..8)
                        .prop_map(|entries| Value::Object(entries.into_iter().collect())),
                ]
            })
        }

        /// What must hold of every decoded span and every error.
        fn check(result: &Result<Span, DecodeError>) {
            match result {
                Ok(span) => {
                    assert!(span.end_unix_nano >= span.start_unix_nano);
                    for id in [&span.trace_id, &span.span_id]
                        .into_iter()
                        .chain(span.parent_span_id.as_ref())
                    {
                        assert!(!id.is_empty() && id.len() <= 64 && id.len() % 2 == 0);
                        assert!(
                            id.bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                        );
                    }
                    let usage = span.usage;
                    for n in [
                        usage.input,
                        usage.output,
                        usage.cache_read,
                        usage.cache_write,
                        usage.reasoning,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        assert!(n <= 10_000_000);
                    }
                    assert!(span.feedback_score.is_none_or(|s| (0.0..=1.0).contains(&s)));
                    for (key, value) in &span.extra {
                        assert!(!is_content_attribute(key), "{key}");
                        assert!(classify(key).is_none(), "{key}");
                        assert!(value.len() <= MAX_EXTRA_VALUE_LEN || !value.is_empty());
                    }
                }
                Err(error) => {
                    assert!(DecodeError::REASONS.contains(&error.reason()));
                    let message = error.to_string();
                    assert!(!message.contains("SECRET"), "{message}");
                }
            }
        }

        proptest! {
            #[test]
            fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let result = JsonDecoder::default().decode(&bytes, NOW);
                check(&result);
                let has_object = bytes.contains(&b'{');
                prop_assert!(result.is_err() || has_object);
            }

            #[test]
            fn random_json_never_panics(value in json()) {
                let bytes = serde_json::to_vec(&value).unwrap();
                check(&JsonDecoder::default().decode(&bytes, NOW));
                // The same value as the attributes of a valid record.
                let record = with_attributes(&value.to_string());
                check(&decode(&record));
            }

            #[test]
            fn object_and_list_forms_decode_alike(attributes in attributes()) {
                let object = decode(&with_attributes(&object_form(&attributes)));
                let list = decode(&with_attributes(&list_form(&attributes)));
                check(&object);
                prop_assert_eq!(object, list);
            }

            #[test]
            fn key_order_never_decides_acceptance(mut attributes in attributes()) {
                let forward = decode(&with_attributes(&object_form(&attributes)));
                attributes.reverse();
                let backward = decode(&with_attributes(&object_form(&attributes)));
                prop_assert_eq!(forward.is_ok(), backward.is_ok());
                if let (Ok(forward), Ok(mut backward)) = (forward, backward) {
                    // Only `extra` (record order) and repeated keys of one priority may differ.
                    backward.extra.reverse();
                    let keys: std::collections::HashSet<&str> =
                        attributes.iter().map(|(k, _)| k.as_str()).collect();
                    if keys.len() == attributes.len() {
                        prop_assert_eq!(forward, backward);
                    }
                }
            }

            #[test]
            fn truncated_records_are_errors(cut in 0usize..SAMPLE.len()) {
                let result = decode(&SAMPLE[..cut]);
                prop_assert_eq!(result.map_err(|e| e.reason()), Err("invalid_json"));
            }
        }
    }
}

/// Text extraction through the decoder: every alias source, both attribute forms, and that a
/// decoder without text behaves exactly as before.
#[cfg(test)]
mod text_tests {
    use super::*;
    use crate::text::SpanText;

    const NOW: u64 = 1_764_316_800_000;
    const START: u64 = 1_764_316_800_000_000_000;

    fn record(attributes: &str) -> String {
        format!(
            r#"{{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
            "start_time_unix_nano":{START},"end_time_unix_nano":{START},"attributes":{attributes}}}"#
        )
    }

    fn decoder(max_text_bytes: usize) -> JsonDecoder {
        JsonDecoder::default().with_text(TextOptions {
            keep_text: true,
            max_text_bytes,
            max_chunks: 3,
        })
    }

    fn text_of(attributes: &str) -> Option<SpanText> {
        decoder(1 << 20)
            .decode(record(attributes).as_bytes(), NOW)
            .unwrap()
            .text
            .map(|t| *t)
    }

    fn text(query: Option<&str>, answer: Option<&str>, chunks: &[&str]) -> Option<SpanText> {
        Some(SpanText {
            query: query.map(str::to_owned),
            answer: answer.map(str::to_owned),
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
            truncated: false,
        })
    }

    /// Every text source at once, in the object form.
    const ALL_SOURCES: &str = r#"{"gen_ai.operation.name":"chat",
        "gen_ai.retrieval.query.text":"Q retrieval","input.value":"Q input",
        "gen_ai.input.messages":[{"role":"user","content":"Q messages"}],
        "gen_ai.prompt":"Q prompt","gen_ai.prompt.0.content":"Q indexed",
        "gen_ai.output.messages":[{"role":"assistant","content":"A messages"}],
        "output.value":"A output","gen_ai.completion":"A completion",
        "gen_ai.completion.0.content":"A indexed",
        "gen_ai.retrieval.documents":[{"content":"C1"}],
        "retrieval.documents.0.document.content":"C indexed"}"#;

    #[test]
    fn without_keep_text_the_span_is_unchanged() {
        let plain = JsonDecoder::default()
            .decode(record(ALL_SOURCES).as_bytes(), NOW)
            .unwrap();
        assert_eq!(plain.text, None);
        assert!(plain.extra.is_empty());
        let off = JsonDecoder::default().with_text(TextOptions {
            keep_text: false,
            ..TextOptions::default()
        });
        assert_eq!(
            off.decode(record(ALL_SOURCES).as_bytes(), NOW),
            Ok(plain.clone())
        );
        // Keeping text changes nothing else.
        let mut with_text = decoder(1 << 20)
            .decode(record(ALL_SOURCES).as_bytes(), NOW)
            .unwrap();
        assert!(with_text.text.take().is_some());
        assert_eq!(with_text, plain);
    }

    #[test]
    fn the_first_listed_source_wins_in_any_key_order() {
        assert_eq!(
            text_of(ALL_SOURCES),
            text(Some("Q retrieval"), Some("A messages"), &["C1"])
        );
        // Remove the winners one by one (and reverse the key order): the next source wins.
        let entries: Vec<(&str, &str)> = vec![
            ("gen_ai.retrieval.query.text", r#""Q retrieval""#),
            ("input.value", r#""Q input""#),
            (
                "gen_ai.input.messages",
                r#"[{"role":"user","content":"Q messages"}]"#,
            ),
            ("gen_ai.prompt", r#""Q prompt""#),
            ("gen_ai.prompt.0.content", r#""Q indexed""#),
            ("llm.input_messages.0.message.content", r#""Q oi""#),
        ];
        let expected = [
            "Q retrieval",
            "Q input",
            "Q messages",
            "Q prompt",
            "Q indexed",
            "Q oi",
        ];
        for skip in 0..entries.len() {
            let mut object: Vec<String> = entries[skip..]
                .iter()
                .map(|(k, v)| format!(r#""{k}":{v}"#))
                .collect();
            object.reverse();
            let got = text_of(&format!("{{{}}}", object.join(",")));
            assert_eq!(got, text(Some(expected[skip]), None, &[]), "{skip}");
        }
        let entries: Vec<(&str, &str)> = vec![
            (
                "gen_ai.output.messages",
                r#"[{"role":"assistant","content":"A messages"}]"#,
            ),
            ("output.value", r#""A output""#),
            ("gen_ai.completion", r#""A completion""#),
            ("gen_ai.completion.0.content", r#""A indexed""#),
            ("llm.output_messages.0.message.content", r#""A oi""#),
        ];
        let expected = [
            "A messages",
            "A output",
            "A completion",
            "A indexed",
            "A oi",
        ];
        for skip in 0..entries.len() {
            let mut object: Vec<String> = entries[skip..]
                .iter()
                .map(|(k, v)| format!(r#""{k}":{v}"#))
                .collect();
            object.reverse();
            let got = text_of(&format!("{{{}}}", object.join(",")));
            assert_eq!(got, text(None, Some(expected[skip]), &[]), "{skip}");
        }
        assert_eq!(
            text_of(
                r#"{"retrieval.documents.0.document.content":"late",
                "gen_ai.retrieval.documents":[{"content":"wins"}]}"#
            ),
            text(None, None, &["wins"])
        );
    }

    #[test]
    fn current_semconv_messages_as_arrays_or_json_strings() {
        let input = r#"[{"role":"system","parts":[{"type":"text","content":"be brief"}]},
            {"role":"user","parts":[{"type":"text","content":"What is RAG?"}]},
            {"role":"assistant","parts":[{"type":"text","content":"earlier"}]},
            {"role":"user","parts":[{"type":"text","content":"And faithfulness?"}]}]"#;
        let output = r#"[{"role":"assistant","parts":[{"type":"text","content":"It means"},
            {"type":"tool_call","name":"x"},{"type":"text","content":"grounded."}],
            "finish_reason":"stop"}]"#;
        let expected = text(Some("And faithfulness?"), Some("It means\ngrounded."), &[]);
        assert_eq!(
            text_of(&format!(
                r#"{{"gen_ai.input.messages":{input},"gen_ai.output.messages":{output}}}"#
            )),
            expected
        );
        let as_strings = format!(
            r#"{{"gen_ai.input.messages":{},"gen_ai.output.messages":{}}}"#,
            serde_json::to_string(input).unwrap(),
            serde_json::to_string(output).unwrap()
        );
        assert_eq!(text_of(&as_strings), expected);
        // {role, content} messages too.
        assert_eq!(
            text_of(
                r#"{"gen_ai.input.messages":"[{\"role\":\"user\",\"content\":\"hi\"}]",
                "gen_ai.output.messages":[{"role":"assistant","content":"hello"}]}"#
            ),
            text(Some("hi"), Some("hello"), &[])
        );
    }

    #[test]
    fn retrieval_query_and_documents() {
        let expected = text(
            Some("refund policy?"),
            None,
            &["Refunds in 30 days.", "No fees."],
        );
        assert_eq!(
            text_of(
                r#"{"gen_ai.operation.name":"retrieval",
                "gen_ai.retrieval.query.text":"refund policy?",
                "gen_ai.retrieval.documents":[{"id":"d1","content":"Refunds in 30 days."},
                    {"content":"No fees."},{"id":"d3"}]}"#
            ),
            expected
        );
        // As a JSON string, and as plain strings.
        assert_eq!(
            text_of(
                r#"{"gen_ai.retrieval.query.text":"refund policy?",
                "gen_ai.retrieval.documents":"[{\"id\":\"d1\",\"content\":\"Refunds in 30 days.\"},\"No fees.\"]"}"#
            ),
            expected
        );
    }

    #[test]
    fn openllmetry_prompt_and_completion() {
        // JSON strings of messages (old OTel GenAI).
        assert_eq!(
            text_of(
                r#"{"gen_ai.prompt":"[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q\"}]",
                "gen_ai.completion":"[{\"role\":\"assistant\",\"content\":\"a\"}]"}"#
            ),
            text(Some("q"), Some("a"), &[])
        );
        // Indexed, in any key order: the last user message, the first completion.
        assert_eq!(
            text_of(
                r#"{"gen_ai.prompt.2.role":"user","gen_ai.prompt.2.content":"second question",
                "gen_ai.prompt.0.role":"system","gen_ai.prompt.0.content":"sys",
                "gen_ai.prompt.1.role":"user","gen_ai.prompt.1.content":"first question",
                "gen_ai.prompt.3.role":"assistant","gen_ai.prompt.3.content":"noise",
                "gen_ai.completion.1.content":"other choice",
                "gen_ai.completion.0.role":"assistant","gen_ai.completion.0.content":"the answer"}"#
            ),
            text(Some("second question"), Some("the answer"), &[])
        );
        // Without roles, the last prompt message.
        assert_eq!(
            text_of(r#"{"gen_ai.prompt.0.content":"a","gen_ai.prompt.1.content":"b"}"#),
            text(Some("b"), None, &[])
        );
    }

    #[test]
    fn openinference_values_and_documents() {
        assert_eq!(
            text_of(
                r#"{"openinference.span.kind":"RETRIEVER","input.value":"refund policy?",
                "retrieval.documents.1.document.content":"second",
                "retrieval.documents.1.document.id":"d2",
                "retrieval.documents.0.document.content":"first",
                "retrieval.documents.10.document.content":"eleventh"}"#
            ),
            text(
                Some("refund policy?"),
                None,
                &["first", "second", "eleventh"]
            )
        );
        assert_eq!(
            text_of(
                r#"{"openinference.span.kind":"LLM","input.mime_type":"application/json",
                "input.value":"{\"messages\":[{\"role\":\"user\",\"content\":\"q?\"}]}",
                "output.value":"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"a.\"}}]}"}"#
            ),
            text(Some("q?"), Some("a."), &[])
        );
        assert_eq!(
            text_of(
                r#"{"llm.input_messages.0.message.role":"system","llm.input_messages.0.message.content":"s",
                "llm.input_messages.1.message.role":"user","llm.input_messages.1.message.content":"u",
                "llm.output_messages.0.message.role":"assistant","llm.output_messages.0.message.content":"a"}"#
            ),
            text(Some("u"), Some("a"), &[])
        );
    }

    #[test]
    fn otlp_list_form() {
        let attributes = r#"[
            {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
            {"key":"gen_ai.input.messages","value":{"stringValue":"[{\"role\":\"user\",\"content\":\"q\"}]"}},
            {"key":"gen_ai.output.messages","value":{"arrayValue":{"values":[{"kvlistValue":{"values":[
                {"key":"role","value":{"stringValue":"assistant"}},
                {"key":"parts","value":{"arrayValue":{"values":[{"kvlistValue":{"values":[
                    {"key":"type","value":{"stringValue":"text"}},
                    {"key":"content","value":{"stringValue":"a"}}]}}]}}}]}}]}}},
            {"key":"gen_ai.retrieval.documents","value":{"arrayValue":{"values":[
                {"kvlistValue":{"values":[{"key":"id","value":{"stringValue":"d1"}},
                    {"key":"content","value":{"stringValue":"c1"}}]}}]}}},
            {"key":"retrieval.documents.0.document.content","value":{"stringValue":"ignored"}},
            {"key":"gen_ai.prompt.0.content","value":{"stringValue":"loses"}}
        ]"#;
        let span = decoder(1 << 20)
            .decode(record(attributes).as_bytes(), NOW)
            .unwrap();
        assert_eq!(span.kind, SpanKind::Llm);
        assert_eq!(span.text.map(|t| *t), text(Some("q"), Some("a"), &["c1"]));
        // The same values in the object form decode alike.
        assert_eq!(
            text_of(
                r#"{"gen_ai.input.messages":"[{\"role\":\"user\",\"content\":\"q\"}]",
                "gen_ai.output.messages":[{"role":"assistant","parts":[{"type":"text","content":"a"}]}],
                "gen_ai.retrieval.documents":[{"id":"d1","content":"c1"}]}"#
            ),
            text(Some("q"), Some("a"), &["c1"])
        );
    }

    #[test]
    fn unexpected_shapes_are_not_text_and_not_errors() {
        for attributes in [
            r#"{"gen_ai.input.messages":42,"gen_ai.output.messages":{"x":1}}"#,
            r#"{"gen_ai.retrieval.documents":[1,2,{"id":"d"}],"gen_ai.retrieval.query.text":""}"#,
            r#"{"gen_ai.input.messages":"[not json","gen_ai.output.messages":"[]"}"#,
            r#"{"gen_ai.input.messages":[{"role":"system","content":"only system"}]}"#,
            r#"{"gen_ai.prompt.0.content":7,"input.value":null,"output.value":["x"]}"#,
        ] {
            assert_eq!(text_of(attributes), None, "{attributes}");
        }
        // A content value too deeply nested to parse is not text; the record is still a span.
        let deep = format!(
            r#"{{"gen_ai.input.messages":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(text_of(&deep), None);
    }

    #[test]
    fn strings_are_cut_to_the_limit() {
        let span = decoder(5)
            .decode(
                record(
                    r#"{"gen_ai.retrieval.query.text":"ééé","output.value":"short",
                    "gen_ai.retrieval.documents":["a","b","c","d"]}"#,
                )
                .as_bytes(),
                NOW,
            )
            .unwrap();
        let text = span.text.as_deref().unwrap();
        assert_eq!(text.query.as_deref(), Some("éé"));
        assert_eq!(text.answer.as_deref(), Some("short"));
        assert_eq!(text.chunks.len(), 3);
        assert!(text.truncated);
        // Debug of the span never shows the text.
        let shown = format!("{span:?}");
        assert!(!shown.contains("short"), "{shown}");
    }

    #[test]
    fn feedback_records() {
        let span = decoder(64)
            .decode(
                record(
                    r#"{"feedback.score":0.2,"feedback.label":"thumbs_down","tenant.id":"acme"}"#,
                )
                .as_bytes(),
                NOW,
            )
            .unwrap();
        assert_eq!(span.kind, SpanKind::Feedback);
        assert_eq!(span.feedback_score, Some(0.2));
        assert_eq!(span.feedback_label.as_deref(), Some("thumbs_down"));
        assert_eq!(span.dimension("tenant"), Some("acme"));
        assert_eq!(span.text, None);
    }
}
