//! `otlp_proto` read without copying: the protobuf `TracesData` / `ExportTraceServiceRequest`
//! (one wire shape: field 1, repeated `ResourceSpans`) decoded into buffa's lazy borrowed
//! views, whose strings and bytes are `&str`/`&[u8]` into the record, then mapped onto the
//! native draft exactly as `crate::otlp` maps prost's owned types (which OTLP/JSON still uses).
//!
//! The types are generated from the official OTLP protos (`schemas/proto/`, as shipped in
//! `opentelemetry-proto` 0.33.1) by buffa's code generator and checked in under
//! `otlp_wire/`; nothing here reads wire bytes by hand. `schemas/README.md` ("OTLP protobuf
//! types") has the command that regenerates them and why buffa was chosen.
//!
//! Why lazy views: prost's owned types allocate a `String` per attribute key and string value
//! and a `Vec` per repeated field; buffa's eager views still box every attribute value and
//! grow a `Vec` of full views per repeated field. A lazy view records a nested message as its
//! byte range and decodes it, by value, when it is read, so a span costs one `Vec` of ranges
//! for its attributes (and one for its events, if any) and only the strings that end up in the
//! span are copied.
//!
//! Lazy views check a nested message only when it is read. So that a record that does not
//! parse is still refused whole, as prost refused it, every nested message is read here,
//! including the ones glassbox has no use for (links, the scope, event attributes, resource
//! entity references): a malformed byte anywhere in the record is [`DecodeError::InvalidOtlp`].

use std::borrow::Cow;

use buffa::{DecodeOptions, LazyMessageView, LazyRepeatedView, Message};

use crate::conventions::{Known, classify, is_content_attribute};
use crate::error::DecodeError;
use crate::json::{Draft, JsonDecoder, Scalar};
use crate::otlp::{
    EVENT_PRIO, MAX_SPANS_PER_RECORD, OtlpBatch, RejectedSpan, hex, is_first_token_event,
};
use crate::span::{Span, StatusCode};
use crate::text::{TextDraft, text_key};

use pb::common::v1::__buffa::view::oneof::any_value::Value;
use pb::common::v1::KeyValueLazyView;
use pb::resource::v1::ResourceLazyView;
use pb::trace::v1::__buffa::lazy_view::span::EventLazyView;
use pb::trace::v1::status::StatusCode as OtlpStatus;
use pb::trace::v1::{
    ResourceSpans, ResourceSpansLazyView, ScopeSpans, ScopeSpansLazyView, SpanLazyView, TracesData,
    TracesDataLazyView,
};

/// The generated OTLP types (owned messages, views and lazy views), in the module tree the
/// generator expects (`<root>::{common, resource, trace}::v1`).
#[allow(
    dead_code,
    unreachable_pub,
    unused_imports,
    unused_qualifications,
    non_camel_case_types,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic
)]
mod pb {
    pub mod common {
        pub mod v1 {
            include!("otlp_wire/opentelemetry.proto.common.v1.mod.rs");
        }
    }
    pub mod resource {
        pub mod v1 {
            include!("otlp_wire/opentelemetry.proto.resource.v1.mod.rs");
        }
    }
    pub mod trace {
        pub mod v1 {
            include!("otlp_wire/opentelemetry.proto.trace.v1.mod.rs");
        }
    }
}

/// A wire-level fault anywhere in the record.
type Wire<T> = Result<T, buffa::DecodeError>;

/// Decodes one `otlp_proto` record (see [`JsonDecoder::decode_otlp_proto`]).
pub(crate) fn decode(
    decoder: &JsonDecoder,
    bytes: &[u8],
    now_ms: u64,
) -> Result<OtlpBatch, DecodeError> {
    decode_record(decoder, bytes, now_ms).map_err(|e| DecodeError::InvalidOtlp {
        message: format!("not an OTLP protobuf trace request: {e}"),
    })?
}

/// The batch, `Ok(Err(_))` when it holds too many spans, `Err` when the record does not parse.
fn decode_record(
    decoder: &JsonDecoder,
    bytes: &[u8],
    now_ms: u64,
) -> Wire<Result<OtlpBatch, DecodeError>> {
    let request = lazy_request(bytes)?;
    // Every resource and scope first, so that the span count is known before any span is read.
    let mut resources = Vec::with_capacity(request.resource_spans.len());
    let mut count = 0usize;
    for resource_spans in request.resource_spans.iter() {
        let resource_spans = resource_spans?;
        let scopes = resource_spans
            .scope_spans
            .iter()
            .collect::<Wire<Vec<_>>>()?;
        count += scopes.iter().map(|s| s.spans.len()).sum::<usize>();
        resources.push((resource_spans, scopes));
    }
    if count > MAX_SPANS_PER_RECORD {
        return Ok(Err(DecodeError::InvalidOtlp {
            message: format!(
                "{count} spans in one record, more than the limit of {MAX_SPANS_PER_RECORD}"
            ),
        }));
    }
    let mut out = Vec::with_capacity(count);
    for (resource_spans, scopes) in &resources {
        let resource = resource_spans.resource.get()?;
        // A resource's dimensions are made once, for all of its spans.
        let dimensions = resource_dimensions(resource.as_ref())?;
        for scope_spans in scopes {
            if let Some(scope) = scope_spans.scope.get()? {
                check_attributes(&scope.attributes)?;
            }
            for span in scope_spans.spans.iter() {
                let span = span?;
                out.push(match decode_span(decoder, &span, &dimensions, now_ms)? {
                    Ok(decoded) => Ok(decoded),
                    Err(error) => Err(RejectedSpan {
                        trace_id: hex(span.trace_id),
                        span_id: hex(span.span_id),
                        error,
                        record: alone(resource.as_ref(), resource_spans, scope_spans, &span)?,
                    }),
                });
            }
        }
    }
    Ok(Ok(out))
}

/// The record's lazy view. buffa bounds what a record may expand into (32 MiB of decoded
/// elements by default); prost had no such bound: keep buffa's, but let it grow with the
/// record, so that no record the old decoder took is refused for its size (an empty attribute
/// is 2 bytes on the wire).
fn lazy_request(bytes: &[u8]) -> Wire<TracesDataLazyView<'_>> {
    let budget = bytes
        .len()
        .saturating_mul(128)
        .max(buffa::DEFAULT_ELEMENT_MEMORY_LIMIT);
    DecodeOptions::new()
        .with_element_memory_limit(budget)
        .decode_lazy_view(bytes)
}

/// The spans at `indices` (ascending positions in the batch order) of an `otlp_proto` record,
/// each alone as [`RejectedSpan::record`] is (with `alone`): for spans refused after decoding
/// (late ones). Nothing when the record does not parse (it did when it was decoded).
pub(crate) fn spans_alone(bytes: &[u8], indices: &[usize]) -> Vec<(usize, Vec<u8>)> {
    let cut = || -> Wire<Vec<(usize, Vec<u8>)>> {
        let request = lazy_request(bytes)?;
        let mut out = Vec::with_capacity(indices.len());
        let mut at = 0;
        for resource_spans in request.resource_spans.iter() {
            let resource_spans = resource_spans?;
            let resource = resource_spans.resource.get()?;
            for scope_spans in resource_spans.scope_spans.iter() {
                let scope_spans = scope_spans?;
                for span in scope_spans.spans.iter() {
                    let span = span?;
                    if indices.binary_search(&at).is_ok() {
                        let record =
                            alone(resource.as_ref(), &resource_spans, &scope_spans, &span)?;
                        out.push((at, record));
                    }
                    at += 1;
                }
            }
        }
        Ok(out)
    };
    cut().unwrap_or_default()
}

/// One OTLP span (with its resource's dimensions) → a span, through the native draft; the same
/// steps as `crate::otlp`'s mapping of prost's span. Every nested message of the span is read,
/// even after a semantic error refused the span, so that a wire fault is never missed.
fn decode_span(
    decoder: &JsonDecoder,
    span: &SpanLazyView<'_>,
    resource: &[(String, String)],
    now_ms: u64,
) -> Wire<Result<Span, DecodeError>> {
    let mut draft = Draft::new(decoder.limits().max_tokens);
    if decoder.text_options().keep_text {
        draft.text = Some(Box::new(TextDraft::new(*decoder.text_options())));
    }
    // Empty ids and zero times are protobuf's "not set": the draft reports them missing.
    draft.trace_id = (!span.trace_id.is_empty()).then(|| hex(span.trace_id));
    draft.span_id = (!span.span_id.is_empty()).then(|| hex(span.span_id));
    draft.parent_span_id = (!span.parent_span_id.is_empty()).then(|| hex(span.parent_span_id));
    span.name.clone_into(&mut draft.name);
    draft.start = (span.start_time_unix_nano > 0).then_some(span.start_time_unix_nano);
    draft.end = (span.end_time_unix_nano > 0).then_some(span.end_time_unix_nano);
    if let Some(s) = span.status.get()? {
        draft.status = match s.code.as_known() {
            Some(OtlpStatus::STATUS_CODE_OK) => StatusCode::Ok,
            Some(OtlpStatus::STATUS_CODE_ERROR) => StatusCode::Error,
            _ => StatusCode::Unset,
        };
        draft.status_message = (!s.message.is_empty()).then(|| s.message.to_owned());
    }
    let mut refused = None;
    for kv in span.attributes.iter() {
        let kv = kv?;
        let value = kv.value.get()?;
        if refused.is_none() {
            refused = attribute(
                &mut draft,
                kv.key,
                value.as_ref().and_then(|v| v.value.as_ref()),
            )
            .err();
        }
    }
    draft.extra.extend_from_slice(resource);
    for event in span.events.iter() {
        self::event(&mut draft, &event?, span.start_time_unix_nano)?;
    }
    for link in span.links.iter() {
        check_attributes(&link?.attributes)?;
    }
    Ok(match refused {
        Some(error) => Err(error),
        None => draft.finish(decoder.limits(), now_ms),
    })
}

/// Reads every attribute of a message glassbox has no use for, only to find wire faults.
fn check_attributes(attributes: &LazyRepeatedView<'_, KeyValueLazyView<'_>>) -> Wire<()> {
    for kv in attributes.iter() {
        kv?.value.get()?;
    }
    Ok(())
}

/// `span` alone in a trace request, with its resource and scope (and whatever fields of theirs
/// this schema does not know), as protobuf: the dead-letter copy of a refused span. Only a
/// refused span pays for these owned copies.
fn alone(
    resource: Option<&ResourceLazyView<'_>>,
    resource_spans: &ResourceSpansLazyView<'_>,
    scope_spans: &ScopeSpansLazyView<'_>,
    span: &SpanLazyView<'_>,
) -> Wire<Vec<u8>> {
    let scope = match scope_spans.scope.get()? {
        Some(scope) => Some(scope.to_owned_message()?),
        None => None,
    };
    let resource = resource
        .map(ResourceLazyView::to_owned_message)
        .transpose()?;
    let request = TracesData {
        resource_spans: vec![ResourceSpans {
            resource: resource.into(),
            scope_spans: vec![ScopeSpans {
                scope: scope.into(),
                spans: vec![span.to_owned_message()?],
                schema_url: scope_spans.schema_url.to_owned(),
                ..ScopeSpans::default()
            }],
            schema_url: resource_spans.schema_url.to_owned(),
            ..ResourceSpans::default()
        }],
        ..TracesData::default()
    };
    Ok(request.encode_to_vec())
}

/// One span attribute: recognised → its slot; content → the text draft (or dropped); other
/// scalars → [`Span::extra`].
fn attribute(draft: &mut Draft, key: &str, value: Option<&Value<'_>>) -> Result<(), DecodeError> {
    let known = classify(key);
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
fn resource_dimensions(resource: Option<&ResourceLazyView<'_>>) -> Wire<Vec<(String, String)>> {
    let mut draft = Draft::default();
    let Some(resource) = resource else {
        return Ok(draft.extra);
    };
    for kv in resource.attributes.iter() {
        let kv = kv?;
        let value = kv.value.get()?;
        let value = value.as_ref().and_then(|v| v.value.as_ref());
        if kv.key == "service.name" {
            draft.push_extra(Cow::Borrowed("service"), scalar(value, None));
        }
        draft.push_extra(
            Cow::Owned(format!("resource.{}", kv.key)),
            scalar(value, None),
        );
    }
    for entity in resource.entity_refs.iter() {
        entity?;
    }
    Ok(draft.extra)
}

/// One span event: exceptions and first tokens.
fn event(draft: &mut Draft, event: &EventLazyView<'_>, start_ns: u64) -> Wire<()> {
    let name = event.name;
    if name == "exception" {
        // The first `exception.type` decides, as in the prost mapping.
        let mut kind: Option<Option<String>> = None;
        for kv in event.attributes.iter() {
            let kv = kv?;
            let value = kv.value.get()?;
            if kind.is_none() && kv.key == "exception.type" {
                kind = Some(match value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) if !s.is_empty() => Some((*s).to_owned()),
                    _ => None,
                });
            }
        }
        draft.error_type.offer(EVENT_PRIO, kind.flatten());
        return Ok(());
    }
    check_attributes(&event.attributes)?;
    if draft.ttft_ns.wants(EVENT_PRIO)
        && event.time_unix_nano >= start_ns
        && start_ns > 0
        && is_first_token_event(name)
    {
        draft
            .ttft_ns
            .offer(EVENT_PRIO, Some(event.time_unix_nano - start_ns));
    }
    Ok(())
}

/// An OTLP value as the draft reads it, borrowing its strings from the record. Arrays are
/// collected only for fields that take one (finish reasons); key-value lists and bytes are
/// never a field's value.
fn scalar<'a>(value: Option<&Value<'a>>, known: Option<Known>) -> Scalar<'a> {
    match value {
        None => Scalar::Null,
        Some(Value::StringValue(s)) => Scalar::Str(Cow::Borrowed(s)),
        Some(Value::BoolValue(b)) => Scalar::Bool(*b),
        Some(Value::IntValue(i)) => match u64::try_from(*i) {
            Ok(u) => Scalar::U64(u),
            Err(_) => Scalar::I64(*i),
        },
        Some(Value::DoubleValue(f)) => Scalar::F64(*f),
        Some(Value::ArrayValue(a)) if known.is_some_and(|k| k.field.takes_list()) => Scalar::List(
            a.values
                .iter()
                .map(|v| match v.value.as_ref() {
                    Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => Scalar::Complex,
                    other => scalar(other, None),
                })
                .collect(),
        ),
        // A string-table index (`string_value_strindex`) only means something inside a
        // profiles dictionary, never in a trace.
        Some(
            Value::ArrayValue(_)
            | Value::KvlistValue(_)
            | Value::BytesValue(_)
            | Value::StringValueStrindex(_),
        ) => Scalar::Complex,
    }
}

/// An OTLP value as plain JSON, for the text draft (which reads messages and documents).
fn to_json(value: Option<&Value<'_>>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None | Some(Value::BytesValue(_) | Value::StringValueStrindex(_)) => J::Null,
        Some(Value::StringValue(s)) => J::String((*s).to_owned()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(f)) => J::from(*f),
        Some(Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| to_json(v.value.as_ref())).collect())
        }
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.to_owned(),
                        to_json(kv.value.as_option().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
    use prost::Message;

    use crate::json::JsonDecoder;

    const START: u64 = 1_764_316_800_000_000_000;

    /// A length-delimited field (`tag` is the whole key byte) around `bytes`.
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
        out
    }

    /// A record of one span whose encoding is prost's plus `tail` appended inside the span.
    fn record(tail: &[u8]) -> Vec<u8> {
        let span = OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "chat".into(),
            start_time_unix_nano: START,
            end_time_unix_nano: START + 1,
            attributes: vec![KeyValue {
                key: "gen_ai.request.model".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("gpt-4o".into())),
                }),
                ..KeyValue::default()
            }],
            ..OtlpSpan::default()
        };
        let mut span = span.encode_to_vec();
        span.extend_from_slice(tail);
        // ScopeSpans.spans = 2, ResourceSpans.scope_spans = 2, TracesData.resource_spans = 1.
        field(0x0a, &field(0x12, &field(0x12, &span)))
    }

    #[test]
    fn a_wire_fault_in_a_part_glassbox_never_uses_refuses_the_record_as_prost_did() {
        let decoder = JsonDecoder::default();
        // Well-formed: an empty link, an event with an attribute, an empty attribute value.
        for tail in [
            &[0x6a, 0x00][..],
            &[0x5a, 0x06, 0x1a, 0x04, 0x0a, 0x02, 0x6b, 0x31],
            &[0x4a, 0x03, 0x0a, 0x01, 0x6b],
        ] {
            let bytes = record(tail);
            assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
            let batch = decoder
                .decode_otlp_proto(&bytes, START / 1_000_000)
                .unwrap();
            assert_eq!(batch.len(), 1);
        }
        // Malformed inside a link, inside an event's attribute, inside the value of a content
        // attribute (whose value the span never reads): each a 5-byte field with no bytes.
        let content: [&[u8]; 3] = [
            &[0x4a, 0x11, 0x0a, 0x0b],
            b"input.value",
            &[0x12, 0x02, 0x0a, 0x05],
        ];
        for tail in [
            vec![0x6a, 0x02, 0x0a, 0x05],
            vec![0x5a, 0x04, 0x1a, 0x02, 0x0a, 0x05],
            content.concat(),
        ] {
            let bytes = record(&tail);
            assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
            let error = decoder
                .decode_otlp_proto(&bytes, START / 1_000_000)
                .unwrap_err();
            assert_eq!(error.reason(), "invalid_otlp", "{error}");
        }
    }
}
