//! Decoding: `JsonDecoder::decode` of generated native JSON spans, and `SpanFacts::from_span`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glassbox_benches::{lenient, payloads};
use glassbox_operators::{Dimensions, SpanFacts};

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
