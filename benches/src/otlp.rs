//! The generated native JSON spans as OTLP trace requests of [`BATCH`] spans under one
//! resource, as a Collector batches them: the OTLP input of the decode benches.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;

/// Spans per OTLP record.
pub const BATCH: usize = 64;

/// A native JSON attribute value as an OTLP one.
fn any(value: &Value) -> Option<AnyValue> {
    let value = match value {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64()?),
        },
        Value::Array(a) => any_value::Value::ArrayValue(ArrayValue {
            values: a.iter().filter_map(any).collect(),
        }),
        _ => return None,
    };
    Some(AnyValue { value: Some(value) })
}

/// The native JSON span as an OTLP span (the same fields and attributes).
fn otlp_span(json: &[u8]) -> Span {
    let v: Value = serde_json::from_slice(json).expect("generated JSON");
    let id = |k: &str| -> Vec<u8> {
        let hex = v[k].as_str().unwrap_or_default();
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex id"))
            .collect()
    };
    let error = v["status"]["code"].as_str() == Some("error");
    Span {
        trace_id: id("trace_id"),
        span_id: id("span_id"),
        parent_span_id: id("parent_span_id"),
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        start_time_unix_nano: v["start_time_unix_nano"].as_u64().expect("start"),
        end_time_unix_nano: v["end_time_unix_nano"].as_u64().expect("end"),
        attributes: v["attributes"]
            .as_object()
            .expect("attributes")
            .iter()
            .filter_map(|(k, value)| {
                Some(KeyValue {
                    key: k.clone(),
                    value: Some(any(value)?),
                    ..KeyValue::default()
                })
            })
            .collect(),
        status: Some(Status {
            code: if error { 2 } else { 1 },
            message: String::new(),
        }),
        ..Span::default()
    }
}

/// The spans as OTLP records of [`BATCH`] spans each, under one resource.
pub fn otlp_batches(input: &[Vec<u8>]) -> Vec<ExportTraceServiceRequest> {
    input
        .chunks(BATCH)
        .map(|chunk| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: any(&Value::String("bench".into())),
                        ..KeyValue::default()
                    }],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: chunk.iter().map(|j| otlp_span(j)).collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        })
        .collect()
}
