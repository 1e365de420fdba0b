//! Decoding: `JsonDecoder::decode` of generated native JSON spans, the same spans as OTLP
//! batches (`decode_otlp_proto`, `decode_otlp_json`, 64 spans a record as a Collector batches
//! them), the same spans as Confluent-framed Avro (`decode_avro`), and `SpanFacts::from_span`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glassbox_benches::otlp::otlp_batches;
use glassbox_benches::{lenient, payloads};
use glassbox_operators::{Dimensions, SpanFacts};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

const N: usize = 4_096;

fn decode(c: &mut Criterion) {
    let input = payloads(N, 1_764_316_800_000, 1_000.0);
    let bytes: usize = input.iter().map(Vec::len).sum();
    let decoder = lenient();
    let dims = Dimensions::default();
    let spans: Vec<_> = input
        .iter()
        .map(|p| decoder.decode(p, 0).expect("generated spans decode"))
        .collect();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(format!("json_decode/{N}_spans_{}B_avg", bytes / N), |b| {
        b.iter(|| {
            for p in &input {
                black_box(decoder.decode(black_box(p), 0).expect("decodes"));
            }
        })
    });
    let requests = otlp_batches(&input);
    let proto: Vec<Vec<u8>> = requests.iter().map(Message::encode_to_vec).collect();
    let json: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| serde_json::to_vec(r).expect("OTLP/JSON"))
        .collect();
    for (name, records, otlp_json) in [("otlp_proto", &proto, false), ("otlp_json", &json, true)] {
        let bytes: usize = records.iter().map(Vec::len).sum();
        g.bench_function(
            format!("{name}_decode/{N}_spans_{}B_per_span", bytes / N),
            |b| {
                b.iter(|| {
                    for r in records {
                        let batch = if otlp_json {
                            decoder.decode_otlp_json(black_box(r), 0)
                        } else {
                            decoder.decode_otlp_proto(black_box(r), 0)
                        };
                        let batch = batch.expect("decodes");
                        assert!(batch.iter().all(Result::is_ok));
                        black_box(batch);
                    }
                })
            },
        );
    }
    // Avro in the Confluent framing, the schema already in the registry client's cache: the
    // framing cut, the body decoded with its writer schema, the fields mapped by name.
    let schema = glassbox_schemas::span_schema();
    let avro: Vec<Vec<u8>> = input
        .iter()
        .map(|p| {
            let body = glassbox_schemas::native_to_avro(p, &schema).expect("the span fits");
            glassbox_schemas::confluent_framed(1, &body)
        })
        .collect();
    let bytes: usize = avro.iter().map(Vec::len).sum();
    g.bench_function(format!("avro_decode/{N}_spans_{}B_avg", bytes / N), |b| {
        b.iter(|| {
            for r in &avro {
                let (id, body) = glassbox_schemas::confluent_frame(black_box(r)).expect("framed");
                black_box(decoder.decode_avro(&schema, id, body, 0).expect("decodes"));
            }
        })
    });
    // prost's part alone: what parsing the protobuf costs before any mapping.
    g.bench_function(format!("otlp_proto_prost_only/{N}_spans"), |b| {
        b.iter(|| {
            for r in &proto {
                black_box(ExportTraceServiceRequest::decode(black_box(&r[..])).expect("parses"));
            }
        })
    });
    g.bench_function(format!("span_facts/{N}_spans"), |b| {
        b.iter(|| {
            for s in &spans {
                black_box(SpanFacts::from_span(black_box(s), &dims));
            }
        })
    });
    g.bench_function(format!("decode_and_facts/{N}_spans"), |b| {
        b.iter(|| {
            for p in &input {
                let span = decoder.decode(black_box(p), 0).expect("decodes");
                black_box(SpanFacts::from_span(&span, &dims));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decode
}
criterion_main!(benches);
