//! OTLP traces → spans: the protobuf `ExportTraceServiceRequest` (the same wire shape as
//! `TracesData`) that the OpenTelemetry Collector's Kafka exporter writes with encoding
//! `otlp_proto`, and the OTLP/JSON it writes with `otlp_json`.
//!
//! One record holds a batch: resource spans, each with scope spans, each with spans. Protobuf
//! is read through zero-copy views generated from the official protos (`crate::otlp_wire`);
//! OTLP/JSON through the `opentelemetry-proto` crate's types and their serde support
//! (camelCase names, hex ids, 64-bit integers as strings); nothing here reads wire bytes by
//! hand. Each span is mapped onto the same draft as a native JSON record
//! (`crate::json`), so the attribute aliases, limits, text handling and validation are the
//! ones of the native contract, and the two formats of one span decode to the same [`Span`].
//!
//! What OTLP adds to the native contract:
//! - **Resource attributes** become dimensions: each scalar one as `resource.<key>` in
//!   [`Span::extra`], and `service.name` also as `service`. They never feed a recognised field:
//!   a resource describes the process, not the call.
//! - **Status** is OTLP's `status.code` (0 unset, 1 ok, 2 error) and `status.message`.
//! - **Events**: an `exception` event gives the error type (`exception.type`) when no attribute
//!   did; a first-token event (OpenInference's `First Token Stream Event`, OpenLLMetry's first
//!   `gen_ai.content.completion.chunk`, or any event whose name says first token) gives the
//!   TTFT, relative to span start, when no attribute did.
//!
//! A span that cannot be decoded is a [`RejectedSpan`], named by its ids, beside the good spans
//! of its batch; only a record that is not a batch at all is a [`DecodeError`] of its own.

use std::borrow::Cow;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, span::Event, status,
};

use crate::conventions::{Known, classify, is_content_attribute};
use crate::error::DecodeError;
use crate::json::{Draft, JsonDecoder, Scalar};
use crate::span::{Span, StatusCode};
use crate::text::{TextDraft, text_key};

/// The most spans one OTLP record may carry; a larger batch is refused whole
/// ([`DecodeError::InvalidOtlp`]) rather than held in memory.
pub const MAX_SPANS_PER_RECORD: usize = 100_000;

/// A span of an OTLP batch that could not be decoded, named so that it can be found: its
/// trace and span ids in hex (as far as the record has them) and why it was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedSpan {
    /// The span's trace id, lowercase hex (empty when the span has none).
    pub trace_id: String,
    /// The span's id, lowercase hex (empty when the span has none).
    pub span_id: String,
    /// Why the span was refused.
    pub error: DecodeError,
    /// The span alone, as a record of the input's own encoding: a trace request holding its
    /// resource, its scope and only this span. This is what the dead-letter topic gets, so the
    /// refused span can be inspected or replayed without its good neighbours counting twice.
    pub record: Vec<u8>,
}

/// Every span of one OTLP record, in the record's order: decoded, or refused with its reason.
pub type OtlpBatch = Vec<Result<Span, RejectedSpan>>;

impl JsonDecoder {
    /// Decodes one `otlp_proto` record: a protobuf `ExportTraceServiceRequest` / `TracesData`.
    ///
    /// `Err` only when the record does not parse as one (or holds more than
    /// [`MAX_SPANS_PER_RECORD`] spans): then the record is dead-lettered whole.
    pub fn decode_otlp_proto(&self, bytes: &[u8], now_ms: u64) -> Result<OtlpBatch, DecodeError> {
        self.check_size(bytes)?;
        // Read through borrowed views (`crate::otlp_wire`), not prost's owned types.
        crate::otlp_wire::decode(self, bytes, now_ms)
    }

    /// Decodes one `otlp_json` record: OTLP/JSON `{"resourceSpans": […]}` as the Collector
    /// writes it.
    pub fn decode_otlp_json(&self, bytes: &[u8], now_ms: u64) -> Result<OtlpBatch, DecodeError> {
        self.check_size(bytes)?;
        let request: ExportTraceServiceRequest =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::InvalidOtlp {
                // serde's message names the position and the expected shape, never a value.
                message: format!("not an OTLP/JSON trace request: {}", otlp_json_error(&e)),
            })?;
        self.decode_otlp_request(&request, now_ms)
    }

    /// Maps every span of a parsed OTLP/JSON request.
    fn decode_otlp_request(
        &self,
        request: &ExportTraceServiceRequest,
        now_ms: u64,
    ) -> Result<OtlpBatch, DecodeError> {
        let count: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        if count > MAX_SPANS_PER_RECORD {
            return Err(DecodeError::InvalidOtlp {
                message: format!(
                    "{count} spans in one record, more than the limit of {MAX_SPANS_PER_RECORD}"
                ),
            });
        }
        let mut out = Vec::with_capacity(count);
        for resource_spans in &request.resource_spans {
            // A resource's dimensions are made once, for all of its spans.
            let resource = resource_dimensions(
                resource_spans
                    .resource
                    .as_ref()
                    .map_or(&[][..], |r| &r.attributes[..]),
            );
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    out.push(
                        self.decode_otlp_span(span, &resource, now_ms)
                            .map_err(|error| RejectedSpan {
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                error,
                                record: alone(resource_spans, scope_spans, span),
                            }),
                    );
                }
            }
        }
        Ok(out)
    }

    /// One OTLP span (with its resource's dimensions) → a span, through the native draft.
    fn decode_otlp_span(
        &self,
        span: &OtlpSpan,
        resource: &[(String, String)],
        now_ms: u64,
    ) -> Result<Span, DecodeError> {
        let mut draft = Draft::new(self.limits().max_tokens);
        if self.text_options().keep_text {
            draft.text = Some(Box::new(TextDraft::new(*self.text_options())));
        }
        // Empty ids and zero times are protobuf's "not set": the draft reports them missing.
        draft.trace_id = (!span.trace_id.is_empty()).then(|| hex(&span.trace_id));
        draft.span_id = (!span.span_id.is_empty()).then(|| hex(&span.span_id));
        draft.parent_span_id = (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id));
        draft.name = span.name.clone();
        draft.start = (span.start_time_unix_nano > 0).then_some(span.start_time_unix_nano);
        draft.end = (span.end_time_unix_nano > 0).then_some(span.end_time_unix_nano);
        if let Some(s) = &span.status {
            draft.status = match status::StatusCode::try_from(s.code) {
                Ok(status::StatusCode::Ok) => StatusCode::Ok,
                Ok(status::StatusCode::Error) => StatusCode::Error,
                _ => StatusCode::Unset,
            };
            draft.status_message = (!s.message.is_empty()).then(|| s.message.clone());
        }
        for kv in &span.attributes {
            attribute(&mut draft, kv)?;
        }
        draft.extra.extend_from_slice(resource);
        for event in &span.events {
            self::event(&mut draft, event, span.start_time_unix_nano);
        }
        draft.finish(self.limits(), now_ms)
    }
}

/// `span` alone in a trace request, with its resource and scope, as OTLP/JSON.
fn alone(resource_spans: &ResourceSpans, scope_spans: &ScopeSpans, span: &OtlpSpan) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource_spans.resource.clone(),
            scope_spans: vec![ScopeSpans {
                scope: scope_spans.scope.clone(),
                spans: vec![span.clone()],
                schema_url: scope_spans.schema_url.clone(),
            }],
            schema_url: resource_spans.schema_url.clone(),
        }],
    };
    // Serialising prost's own types cannot fail (no maps with non-string keys).
    serde_json::to_vec(&request).unwrap_or_default()
}

/// The spans at `indices` (ascending positions in the [`OtlpBatch`] order) of an OTLP/JSON
/// record, each alone as [`RejectedSpan::record`] is: for spans refused after decoding (late
/// ones), so that only they are dead-lettered (`crate::otlp_wire::spans_alone` does the same
/// for protobuf). Nothing when the record does not parse (it did when it was decoded).
pub(crate) fn json_spans_alone(bytes: &[u8], indices: &[usize]) -> Vec<(usize, Vec<u8>)> {
    let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(indices.len());
    let mut at = 0;
    for resource_spans in &request.resource_spans {
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                if indices.binary_search(&at).is_ok() {
                    out.push((at, alone(resource_spans, scope_spans, span)));
                }
                at += 1;
            }
        }
    }
    out
}

/// Lowest priority: an event's evidence never overrides an attribute's.
pub(crate) const EVENT_PRIO: u8 = u8::MAX - 1;

/// One span attribute: recognised → its slot; content → the text draft (or dropped); other
/// scalars → [`Span::extra`].
fn attribute(draft: &mut Draft, kv: &KeyValue) -> Result<(), DecodeError> {
    let key = kv.key.as_str();
    let known = classify(key);
    let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
    if known.is_none() && is_content_attribute(key) {
        draft.attributes += 1;
        if let (Some(text), Some(source)) = (draft.text.as_deref_mut(), text_key(key)) {
            text.offer(source, to_json(value));
        }
        return Ok(());
    }
    let scalar = scalar(value, known);
    draft.attribute(Cow::Borrowed(key), known, scalar)
}

/// A resource's attributes as dimensions only: `resource.<key>` for every scalar one (the
/// same rules as [`Span::extra`]), and `service` for `service.name`.
fn resource_dimensions(attributes: &[KeyValue]) -> Vec<(String, String)> {
    let mut draft = Draft::default();
    for kv in attributes {
        let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
        if kv.key == "service.name" {
            draft.push_extra(Cow::Borrowed("service"), scalar(value, None));
        }
        draft.push_extra(
            Cow::Owned(format!("resource.{}", kv.key)),
            scalar(value, None),
        );
    }
    draft.extra
}

/// One span event: exceptions and first tokens.
fn event(draft: &mut Draft, event: &Event, start_ns: u64) {
    let name = event.name.as_str();
    if name == "exception" {
        let kind = event
            .attributes
            .iter()
            .find(|kv| kv.key == "exception.type")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            });
        draft.error_type.offer(EVENT_PRIO, kind);
    } else if draft.ttft_ns.wants(EVENT_PRIO)
        && event.time_unix_nano >= start_ns
        && start_ns > 0
        && is_first_token_event(name)
    {
        draft
            .ttft_ns
            .offer(EVENT_PRIO, Some(event.time_unix_nano - start_ns));
    }
}

/// Whether an event marks the first token of a streamed answer: OpenInference's
/// `First Token Stream Event` (0.1.66), OpenLLMetry's first `gen_ai.content.completion.chunk`
/// (0.62.4 writes one per chunk received; events are in time order and the first offer stays),
/// or another library's event whose name says first token.
pub(crate) fn is_first_token_event(name: &str) -> bool {
    fn has(name: &str, needle: &str) -> bool {
        name.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    }
    name == "gen_ai.content.completion.chunk"
        || has(name, "first token")
        || has(name, "first_token")
}

/// An OTLP value as the draft reads it. Arrays are collected only for fields that take one
/// (finish reasons); key-value lists and bytes are never a field's value.
fn scalar<'a>(value: Option<&'a any_value::Value>, known: Option<Known>) -> Scalar<'a> {
    match value {
        None => Scalar::Null,
        Some(any_value::Value::StringValue(s)) => Scalar::Str(Cow::Borrowed(s)),
        Some(any_value::Value::BoolValue(b)) => Scalar::Bool(*b),
        Some(any_value::Value::IntValue(i)) => match u64::try_from(*i) {
            Ok(u) => Scalar::U64(u),
            Err(_) => Scalar::I64(*i),
        },
        Some(any_value::Value::DoubleValue(f)) => Scalar::F64(*f),
        Some(any_value::Value::ArrayValue(a)) if known.is_some_and(|k| k.field.takes_list()) => {
            Scalar::List(
                a.values
                    .iter()
                    .map(|v| match v.value.as_ref() {
                        Some(
                            any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_),
                        ) => Scalar::Complex,
                        other => scalar(other, None),
                    })
                    .collect(),
            )
        }
        // A string-table index (`string_value_strindex`) only means something inside a
        // profiles dictionary, never in a trace.
        Some(
            any_value::Value::ArrayValue(_)
            | any_value::Value::KvlistValue(_)
            | any_value::Value::BytesValue(_)
            | any_value::Value::StringValueStrindex(_),
        ) => Scalar::Complex,
    }
}

/// An OTLP value as plain JSON, for the text draft (which reads messages and documents).
fn to_json(value: Option<&any_value::Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None | Some(any_value::Value::BytesValue(_) | any_value::Value::StringValueStrindex(_)) => {
            J::Null
        }
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(f)) => J::from(*f),
        Some(any_value::Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v: &AnyValue| to_json(v.value.as_ref()))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        to_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// Lowercase hex of an id (by table: `write!` per byte was a tenth of the decode time).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// serde_json's message for an OTLP/JSON record, without any quoted value: a syntax error's
/// message names only the position; a data error's may quote a value, so only its position and
/// category are kept.
fn otlp_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => format!(
            "unexpected shape at line {} column {}",
            error.line(),
            error.column()
        ),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeLimits, SpanKind, TextOptions};
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Status;
    use proptest::prelude::*;
    use prost::Message;

    const NOW: u64 = 1_764_316_800_000;
    const START: u64 = 1_764_316_800_000_000_000;
    const END: u64 = 1_764_316_801_250_000_000;
    const TRACE: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn i(v: i64) -> any_value::Value {
        any_value::Value::IntValue(v)
    }

    fn strings(values: &[&str]) -> any_value::Value {
        any_value::Value::ArrayValue(ArrayValue {
            values: values
                .iter()
                .map(|v| AnyValue { value: Some(s(v)) })
                .collect(),
        })
    }

    fn llm_span(span_id: [u8; 8], attributes: Vec<KeyValue>) -> OtlpSpan {
        OtlpSpan {
            trace_id: TRACE.to_vec(),
            span_id: span_id.to_vec(),
            name: "chat gpt-4o".into(),
            start_time_unix_nano: START,
            end_time_unix_nano: END,
            attributes,
            status: Some(Status {
                code: status::StatusCode::Ok as i32,
                message: String::new(),
            }),
            ..OtlpSpan::default()
        }
    }

    fn request(resource: Vec<KeyValue>, spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn sample_attributes() -> Vec<KeyValue> {
        vec![
            kv("gen_ai.provider.name", s("openai")),
            kv("gen_ai.request.model", s("gpt-4o")),
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.usage.input_tokens", i(812)),
            kv("gen_ai.usage.output_tokens", i(95)),
            kv("gen_ai.usage.cache_read.input_tokens", i(512)),
            kv("gen_ai.response.finish_reasons", strings(&["stop"])),
            kv(
                "gen_ai.response.time_to_first_chunk",
                any_value::Value::DoubleValue(0.42),
            ),
            kv("tenant.id", s("acme")),
            kv("app.feature", s("support-chat")),
        ]
    }

    /// The native JSON record of the same call as [`sample_attributes`].
    const NATIVE: &str = r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
      "name":"chat gpt-4o","start_time_unix_nano":1764316800000000000,
      "end_time_unix_nano":1764316801250000000,"status":{"code":"ok"},
      "attributes":{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o",
        "gen_ai.operation.name":"chat",
        "gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":95,
        "gen_ai.usage.cache_read.input_tokens":512,"gen_ai.response.finish_reasons":["stop"],
        "gen_ai.response.time_to_first_chunk":0.42,"tenant.id":"acme","app.feature":"support-chat"}}"#;

    fn proto(request: &ExportTraceServiceRequest) -> Vec<u8> {
        request.encode_to_vec()
    }

    #[test]
    fn otlp_proto_and_native_json_of_one_call_decode_to_the_same_span() {
        let decoder = JsonDecoder::default();
        let native = decoder.decode(NATIVE.as_bytes(), NOW).unwrap();
        let batch = decoder
            .decode_otlp_proto(
                &proto(&request(vec![], vec![llm_span(SPAN, sample_attributes())])),
                NOW,
            )
            .unwrap();
        assert_eq!(batch, vec![Ok(native.clone())]);
        let span = batch[0].as_ref().unwrap();
        assert_eq!(span.kind, SpanKind::Llm);
        assert_eq!(span.usage.cache_read, Some(512));
        assert_eq!(span.ttft_ns, Some(420_000_000));
        assert_eq!(span.dimension("tenant"), Some("acme"));
    }

    #[test]
    fn otlp_json_as_the_collector_writes_it_decodes_like_protobuf() {
        // OTLP/JSON by the spec: camelCase, hex ids, 64-bit integers as strings, enum as number.
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"support-bot"}}]},
          "scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai"},"spans":[{
            "traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
            "name":"chat gpt-4o","kind":3,
            "startTimeUnixNano":"1764316800000000000","endTimeUnixNano":"1764316801250000000",
            "attributes":[
              {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
              {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
              {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
              {"key":"gen_ai.usage.input_tokens","value":{"intValue":"812"}},
              {"key":"gen_ai.usage.output_tokens","value":{"intValue":"95"}},
              {"key":"gen_ai.usage.cache_read.input_tokens","value":{"intValue":"512"}},
              {"key":"gen_ai.response.finish_reasons","value":{"arrayValue":{"values":[{"stringValue":"stop"}]}}},
              {"key":"gen_ai.response.time_to_first_chunk","value":{"doubleValue":0.42}},
              {"key":"tenant.id","value":{"stringValue":"acme"}},
              {"key":"app.feature","value":{"stringValue":"support-chat"}}],
            "status":{"code":1}}]}]}]}"#;
        let decoder = JsonDecoder::default();
        let from_json = decoder.decode_otlp_json(json.as_bytes(), NOW).unwrap();
        let resource = vec![kv("service.name", s("support-bot"))];
        let from_proto = decoder
            .decode_otlp_proto(
                &proto(&request(
                    resource,
                    vec![llm_span(SPAN, sample_attributes())],
                )),
                NOW,
            )
            .unwrap();
        assert_eq!(from_json, from_proto);
        let span = from_json[0].as_ref().unwrap();
        assert_eq!(span.dimension("service"), Some("support-bot"));
        assert_eq!(span.dimension("resource.service.name"), Some("support-bot"));
        // Resource attributes are dimensions only: everything else is the native span's.
        let mut native = decoder.decode(NATIVE.as_bytes(), NOW).unwrap();
        native.extra.push(("service".into(), "support-bot".into()));
        native
            .extra
            .push(("resource.service.name".into(), "support-bot".into()));
        assert_eq!(span, &native);
    }

    #[test]
    fn a_bad_span_is_refused_alone_and_named_by_its_ids() {
        let mut negative = sample_attributes();
        negative[3] = kv("gen_ai.usage.input_tokens", i(-5));
        let good = llm_span(SPAN, sample_attributes());
        let bad = llm_span([1, 2, 3, 4, 5, 6, 7, 8], negative);
        let mut no_end = llm_span([9; 8], sample_attributes());
        no_end.end_time_unix_nano = 0;
        let batch = JsonDecoder::default()
            .decode_otlp_proto(
                &proto(&request(vec![], vec![good, bad.clone(), no_end])),
                NOW,
            )
            .unwrap();
        assert_eq!(batch.len(), 3);
        assert!(batch[0].is_ok());
        let rejected = batch[1].as_ref().unwrap_err();
        assert_eq!(rejected.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(rejected.span_id, "0102030405060708");
        assert_eq!(
            rejected.error,
            DecodeError::NegativeTokens {
                field: "gen_ai.usage.input_tokens",
                value: -5
            }
        );
        // The dead-letter copy holds the refused span alone, with its resource.
        let alone = ExportTraceServiceRequest::decode(&rejected.record[..]).unwrap();
        assert_eq!(alone, request(vec![], vec![bad.clone()]));
        let rejected = batch[2].as_ref().unwrap_err();
        assert_eq!(rejected.span_id, "0909090909090909");
        assert_eq!(
            rejected.error,
            DecodeError::MissingField {
                field: "end_time_unix_nano"
            }
        );
    }

    #[test]
    fn limits_refuse_a_long_value_or_too_many_attributes_alone_and_a_huge_record_whole() {
        // Issue #14, defect 3.
        let mut long = sample_attributes();
        long[8] = kv("tenant.id", s(&"t".repeat(1_025)));
        let mut many = sample_attributes();
        many.extend((0..1_100).map(|n| kv(&format!("x.{n}"), i(n))));
        let mut prompts = sample_attributes();
        prompts.extend((0..1_100).map(|n| kv(&format!("gen_ai.prompt.{n}.content"), s("hi"))));
        let spans = vec![
            llm_span(SPAN, sample_attributes()),
            llm_span([1; 8], long),
            llm_span([2; 8], many),
            llm_span([3; 8], prompts),
        ];
        let bytes = proto(&request(vec![], spans));
        let batch = JsonDecoder::default()
            .decode_otlp_proto(&bytes, NOW)
            .unwrap();
        assert!(batch[0].is_ok());
        let error = |i: usize| batch[i].as_ref().unwrap_err().error.clone();
        assert_eq!(
            error(1),
            DecodeError::ValueTooLong {
                field: "tenant",
                bytes: 1_025,
                max: 1_024
            }
        );
        assert_eq!(error(2).reason(), "too_many_attributes");
        assert_eq!(
            error(3).reason(),
            "too_many_attributes",
            "content counts too"
        );
        let small = JsonDecoder::new(DecodeLimits {
            max_record_bytes: bytes.len() - 1,
            ..DecodeLimits::default()
        });
        for result in [
            small.decode_otlp_proto(&bytes, NOW).map(|_| ()),
            small.decode_otlp_json(&bytes, NOW).map(|_| ()),
            small.decode(&bytes, NOW).map(|_| ()),
        ] {
            assert_eq!(
                result,
                Err(DecodeError::TooLarge {
                    bytes: bytes.len(),
                    max: bytes.len() - 1
                })
            );
        }
        // The status message is never a dimension: cut, not refused.
        let mut chatty = llm_span(SPAN, sample_attributes());
        chatty.status = Some(Status {
            code: status::StatusCode::Error as i32,
            message: "é".repeat(700),
        });
        let batch = JsonDecoder::default()
            .decode_otlp_proto(&proto(&request(vec![], vec![chatty])), NOW)
            .unwrap();
        let message = batch[0].as_ref().unwrap().status_message.clone().unwrap();
        assert_eq!(message, "é".repeat(512));
    }

    #[test]
    fn a_record_that_is_no_batch_is_refused_whole_without_quoting_it() {
        let decoder = JsonDecoder::default();
        for garbage in [&b"\xff\xff\xff\xff secret-prompt"[..], b"\x0a\x05abc"] {
            let error = decoder.decode_otlp_proto(garbage, NOW).unwrap_err();
            assert_eq!(error.reason(), "invalid_otlp", "{error}");
        }
        let error = decoder
            .decode_otlp_json(br#"{"resourceSpans":"secret-prompt"}"#, NOW)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_otlp");
        assert!(!error.to_string().contains("secret"), "{error}");
        let error = decoder
            .decode_otlp_json(b"{\"resourceSpans\": [", NOW)
            .unwrap_err();
        assert_eq!(error.reason(), "invalid_otlp");
        // An empty batch is a batch: nothing to count, nothing to refuse.
        assert_eq!(decoder.decode_otlp_proto(b"", NOW), Ok(vec![]));
    }

    #[test]
    fn events_give_the_error_type_and_the_first_token_when_no_attribute_does() {
        let mut span = llm_span(SPAN, sample_attributes()[..6].to_vec());
        span.status = Some(Status {
            code: status::StatusCode::Error as i32,
            message: "rate limited".into(),
        });
        span.events = vec![
            Event {
                name: "First Token Stream Event".into(),
                time_unix_nano: START + 180_000_000,
                ..Event::default()
            },
            Event {
                name: "exception".into(),
                time_unix_nano: START + 900_000_000,
                attributes: vec![kv("exception.type", s("openai.RateLimitError"))],
                ..Event::default()
            },
        ];
        let batch = JsonDecoder::default()
            .decode_otlp_proto(&proto(&request(vec![], vec![span.clone()])), NOW)
            .unwrap();
        let got = batch[0].as_ref().unwrap();
        assert_eq!(got.status, StatusCode::Error);
        assert_eq!(got.status_message.as_deref(), Some("rate limited"));
        assert_eq!(got.ttft_ns, Some(180_000_000));
        assert_eq!(got.error_type.as_deref(), Some("openai.RateLimitError"));
        // Attributes win over events.
        span.attributes.push(kv("error.type", s("429")));
        span.attributes.push(kv(
            "gen_ai.response.time_to_first_chunk",
            any_value::Value::DoubleValue(0.25),
        ));
        let batch = JsonDecoder::default()
            .decode_otlp_proto(&proto(&request(vec![], vec![span])), NOW)
            .unwrap();
        let got = batch[0].as_ref().unwrap();
        assert_eq!(got.ttft_ns, Some(250_000_000));
        assert_eq!(got.error_type.as_deref(), Some("429"));
    }

    #[test]
    fn text_is_read_from_attributes_only_when_kept() {
        let mut attributes = sample_attributes();
        attributes.push(kv("gen_ai.prompt.0.role", s("user")));
        attributes.push(kv(
            "gen_ai.prompt.0.content",
            s("What is the refund policy?"),
        ));
        attributes.push(kv("gen_ai.completion.0.role", s("assistant")));
        attributes.push(kv("gen_ai.completion.0.content", s("30 days.")));
        let record = proto(&request(vec![], vec![llm_span(SPAN, attributes)]));
        let plain = JsonDecoder::default()
            .decode_otlp_proto(&record, NOW)
            .unwrap();
        let plain = plain[0].as_ref().unwrap();
        assert_eq!(plain.text, None);
        assert!(
            plain
                .extra
                .iter()
                .all(|(k, _)| !k.starts_with("gen_ai.prompt")),
            "content never lands in the dimensions: {:?}",
            plain.extra
        );
        let options = TextOptions {
            keep_text: true,
            ..TextOptions::default()
        };
        let kept = JsonDecoder::default()
            .with_text(options)
            .decode_otlp_proto(&record, NOW)
            .unwrap();
        let text = kept[0].as_ref().unwrap().text.as_deref().unwrap();
        assert_eq!(text.query.as_deref(), Some("What is the refund policy?"));
        assert_eq!(text.answer.as_deref(), Some("30 days."));
    }

    #[test]
    fn many_resources_scopes_and_spans_are_all_read_in_order() {
        let mut request = request(
            vec![kv("service.name", s("a"))],
            vec![llm_span([1; 8], sample_attributes())],
        );
        let mut second = request.resource_spans[0].clone();
        second.resource = Some(Resource {
            attributes: vec![kv("service.name", s("b"))],
            ..Resource::default()
        });
        second.scope_spans.push(ScopeSpans {
            spans: vec![
                llm_span([2; 8], sample_attributes()),
                llm_span([3; 8], sample_attributes()),
            ],
            ..ScopeSpans::default()
        });
        request.resource_spans.push(second);
        let batch = JsonDecoder::default()
            .decode_otlp_proto(&proto(&request), NOW)
            .unwrap();
        let got: Vec<(String, Option<&str>)> = batch
            .iter()
            .map(|s| {
                let s = s.as_ref().unwrap();
                (s.span_id.clone(), s.dimension("service"))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("0101010101010101".into(), Some("a")),
                ("0101010101010101".into(), Some("b")),
                ("0202020202020202".into(), Some("b")),
                ("0303030303030303".into(), Some("b")),
            ]
        );
    }

    proptest! {
        /// Any call, written as native JSON and as OTLP protobuf and OTLP/JSON, is one span.
        #[test]
        fn the_formats_of_one_span_decode_to_the_same_span(
            input in 0u64..2_000_000,
            output in 0u64..200_000,
            cached in proptest::option::of(0u64..100_000),
            reasoning in proptest::option::of(0u64..100_000),
            model in "[a-z0-9.-]{1,24}",
            provider in "[a-z]{2,12}",
            finish in proptest::collection::vec("[a-z_]{1,12}", 0..3),
            error in proptest::option::of("[A-Za-z]{1,16}"),
            duration_ms in 1u64..600_000,
            ttft_ms in proptest::option::of(0u64..600_000),
        ) {
            let end = START + duration_ms * 1_000_000;
            let mut attributes = vec![
                kv("gen_ai.provider.name", s(&provider)),
                kv("gen_ai.request.model", s(&model)),
                kv("gen_ai.operation.name", s("chat")),
                kv("gen_ai.usage.input_tokens", i(input as i64)),
                kv("gen_ai.usage.output_tokens", i(output as i64)),
            ];
            let mut native = format!(
                r#""gen_ai.provider.name":"{provider}","gen_ai.request.model":"{model}","gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":{input},"gen_ai.usage.output_tokens":{output}"#
            );
            if let Some(c) = cached {
                attributes.push(kv("gen_ai.usage.cache_read.input_tokens", i(c as i64)));
                native.push_str(&format!(r#","gen_ai.usage.cache_read.input_tokens":{c}"#));
            }
            if let Some(r) = reasoning {
                attributes.push(kv("gen_ai.usage.reasoning.output_tokens", i(r as i64)));
                native.push_str(&format!(r#","gen_ai.usage.reasoning.output_tokens":{r}"#));
            }
            let finish_refs: Vec<&str> = finish.iter().map(String::as_str).collect();
            attributes.push(kv("gen_ai.response.finish_reasons", strings(&finish_refs)));
            native.push_str(&format!(
                r#","gen_ai.response.finish_reasons":{}"#,
                serde_json::to_string(&finish).unwrap()
            ));
            if let Some(e) = &error {
                attributes.push(kv("error.type", s(e)));
                native.push_str(&format!(r#","error.type":"{e}""#));
            }
            if let Some(t) = ttft_ms {
                attributes.push(kv("gen_ai.response.time_to_first_chunk", any_value::Value::DoubleValue(t as f64 / 1000.0)));
                native.push_str(&format!(r#","gen_ai.response.time_to_first_chunk":{}"#, t as f64 / 1000.0));
            }
            let status = if error.is_some() { "error" } else { "ok" };
            let native = format!(
                r#"{{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","name":"chat","start_time_unix_nano":{START},"end_time_unix_nano":{end},"status":{{"code":"{status}"}},"attributes":{{{native}}}}}"#
            );
            let mut span = llm_span(SPAN, attributes);
            span.name = "chat".into();
            span.end_time_unix_nano = end;
            span.status = Some(Status {
                code: if error.is_some() { status::StatusCode::Error } else { status::StatusCode::Ok } as i32,
                message: String::new(),
            });
            let request = request(vec![], vec![span]);
            let decoder = JsonDecoder::default();
            let from_native = decoder.decode(native.as_bytes(), NOW);
            let from_proto = decoder.decode_otlp_proto(&proto(&request), NOW).unwrap();
            let json = serde_json::to_vec(&request).unwrap();
            let from_json = decoder.decode_otlp_json(&json, NOW).unwrap();
            prop_assert_eq!(&from_proto, &from_json);
            prop_assert_eq!(from_proto.len(), 1);
            prop_assert_eq!(from_proto[0].as_ref().map_err(|r| r.error.clone()), from_native.as_ref().map_err(Clone::clone));
        }
    }
}
