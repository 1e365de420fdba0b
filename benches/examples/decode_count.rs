//! The decoders of `benches/decode.rs` (the same spans, native JSON and OTLP records of 64),
//! each run a fixed number of rounds, for instruction counts that a loaded machine cannot
//! skew: `valgrind --tool=callgrind --toggle-collect='decode_count::run' \
//! target/release/examples/decode_count <json|proto|otlp_json|prost|none> 2` (built with
//! `cargo build --profile bench -p glassbox-benches --example decode_count`). Without valgrind
//! it prints spans/s.
use std::hint::black_box;

use glassbox_benches::{lenient, payloads};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;

const N: usize = 4_096;

const BATCH: usize = 64;

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
fn otlp_batches(input: &[Vec<u8>]) -> Vec<ExportTraceServiceRequest> {
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

#[inline(never)]
fn run(mode: &str, rounds: usize, input: &[Vec<u8>], proto: &[Vec<u8>], json: &[Vec<u8>]) -> usize {
    let decoder = lenient();
    let mut n = 0;
    for _ in 0..rounds {
        match mode {
            "json" => {
                for p in input {
                    n += usize::from(black_box(decoder.decode(black_box(p), 0)).is_ok());
                }
            }
            "proto" => {
                for r in proto {
                    n += black_box(decoder.decode_otlp_proto(black_box(r), 0).unwrap()).len();
                }
            }
            "otlp_json" => {
                for r in json {
                    n += black_box(decoder.decode_otlp_json(black_box(r), 0).unwrap()).len();
                }
            }
            "prost" => {
                for r in proto {
                    n += black_box(ExportTraceServiceRequest::decode(black_box(&r[..])).unwrap())
                        .resource_spans
                        .len();
                }
            }
            "none" => {}
            _ => panic!("mode"),
        }
    }
    n
}

fn main() {
    let mode = std::env::args().nth(1).expect("mode");
    let rounds: usize = std::env::args().nth(2).map_or(3, |r| r.parse().unwrap());
    let input = payloads(N, 1_764_316_800_000, 1_000.0);
    let requests = otlp_batches(&input);
    let proto: Vec<Vec<u8>> = requests.iter().map(Message::encode_to_vec).collect();
    let json: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let t = std::time::Instant::now();
    let n = run(&mode, rounds, &input, &proto, &json);
    let el = t.elapsed();
    eprintln!(
        "{mode}: {n} in {el:?}: {:.0} spans/s",
        (rounds * N) as f64 / el.as_secs_f64()
    );
}
